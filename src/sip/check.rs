//! Request sanity checks of RFC 3261 §8.2 (protocol layer, sans-IO): what a UAS must verify before
//! a request reaches a transaction user, and the status code each failure earns. Policy answers
//! (403 for a source outside the allow-list, 404 for a number that is not a hotline) belong to the
//! layers above; this module only knows the protocol.
//!
//! The checks run in the RFC's order: the request must be routable (a usable top Via, or there is
//! nowhere to send an answer), the mandatory headers must parse (400), the method must be one we
//! implement (501 for an unknown method, 405 for a known one we do not serve, both with Allow),
//! CSeq must name the request's method (400), the Request-URI scheme must be served (416), Require
//! may only name extensions we support (420 with Unsupported), the body must be a type we accept
//! (415 with Accept), and an INVITE must let us answer with SDP (406 with a 399 Warning, see
//! [`check_request`]). An ACK is never answered: anything wrong with one is a drop.

use super::message::{
    Headers, Method, ParseError, ParseErrorKind, Request, Response, Scheme, name, reason_phrase,
};

/// What this UAS implements, for the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Methods served; listed in Allow.
    pub methods: Vec<Method>,
    /// Option tags supported (RFC 3261 §19.2), compared case-insensitively.
    pub option_tags: Vec<String>,
    /// Body types accepted (`application/sdp`); listed in Accept.
    pub content_types: Vec<String>,
    /// Request-URI schemes served.
    pub uri_schemes: Vec<Scheme>,
}

impl Capabilities {
    /// What tongdai serves as a UAS and registrar: the INVITE dialog methods with PRACK (RFC 3262),
    /// UPDATE (RFC 3311, session timers), INFO (DTMF), REFER and NOTIFY (transfers), REGISTER and
    /// OPTIONS; SDP bodies; `sip`, `sips` and `tel` Request-URIs.
    pub fn tongdai() -> Capabilities {
        Capabilities {
            methods: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Register,
                Method::Prack,
                Method::Update,
                Method::Info,
                Method::Refer,
                Method::Notify,
            ],
            option_tags: ["100rel", "timer", "replaces", "path", "outbound"]
                .map(String::from)
                .to_vec(),
            content_types: vec!["application/sdp".to_owned()],
            uri_schemes: vec![Scheme::Sip, Scheme::Sips, Scheme::Tel],
        }
    }

    fn allow_value(&self) -> String {
        let m: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        m.join(", ")
    }
}

/// A response the UAS sends instead of processing the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The status code.
    pub status: u16,
    /// Its reason phrase (from [`reason_phrase`]).
    pub reason: &'static str,
    /// Extra headers the code requires: Allow, Unsupported, Accept or Warning.
    pub headers: Vec<(&'static str, String)>,
    /// A bounded label for metrics and logs (`tongdai_sip_invalid_messages_total{reason}`).
    pub cause: &'static str,
}

impl Rejection {
    fn new(status: u16, cause: &'static str) -> Rejection {
        Rejection { status, reason: reason_phrase(status), headers: Vec::new(), cause }
    }

    fn with(mut self, name: &'static str, value: String) -> Rejection {
        self.headers.push((name, value));
        self
    }

    /// Builds the response to the request whose headers are `request` (RFC 3261 §8.2.6), adding a
    /// To tag when given (a UAS tags every final response).
    pub fn response_to(&self, request: &Headers, to_tag: Option<&str>) -> Response {
        let mut r = Response::for_headers(request, self.status, to_tag);
        for (n, v) in &self.headers {
            r.headers.push(*n, v.clone());
        }
        r
    }
}

/// Why a message is dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// The message could not be read at all, or it is a response that does not parse.
    #[error("unparsable message")]
    Unparsable,
    /// A request whose top Via cannot be read: there is nowhere to send a response.
    #[error("no usable top Via")]
    UnusableVia,
    /// A bad ACK: ACKs are never answered (RFC 3261 §17.2.1).
    #[error("malformed ACK")]
    BadAck,
    /// A response whose mandatory headers (Via, From, To, Call-ID, CSeq) are bad.
    #[error("malformed response")]
    MalformedResponse,
}

impl DropReason {
    /// A bounded label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Unparsable => "unparsable",
            DropReason::UnusableVia => "unusable_via",
            DropReason::BadAck => "bad_ack",
            DropReason::MalformedResponse => "malformed_response",
        }
    }
}

/// The outcome of a failed check: answer with a response, or drop silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Send this response.
    Respond(Rejection),
    /// Send nothing; count the drop.
    Drop(DropReason),
}

/// Whether a response can be routed for a request with these headers and method.
fn routable(method: &Method, headers: &Headers) -> Result<(), Refusal> {
    if *method == Method::Ack {
        return Err(Refusal::Drop(DropReason::BadAck));
    }
    if headers.top_via().is_err() {
        return Err(Refusal::Drop(DropReason::UnusableVia));
    }
    Ok(())
}

/// Maps a parse error to what to do: 505 for another SIP version, 400 for anything else when a
/// response can be routed, otherwise a drop.
pub fn refuse_unparsable(error: &ParseError) -> Refusal {
    let Some(head) = &error.request_head else {
        return Refusal::Drop(DropReason::Unparsable);
    };
    if let Err(r) = routable(&head.method, &head.headers) {
        return r;
    }
    let rejection = match error.kind {
        ParseErrorKind::UnsupportedVersion => Rejection::new(505, "version"),
        ParseErrorKind::BadRequestUri(_) => Rejection::new(400, "request_uri"),
        ParseErrorKind::BodyTruncated
        | ParseErrorKind::BadContentLength
        | ParseErrorKind::DuplicateContentLength
        | ParseErrorKind::MissingContentLength => Rejection::new(400, "content_length"),
        _ => Rejection::new(400, "syntax"),
    };
    Refusal::Respond(rejection)
}

/// RFC 3261 §8.2 checks of a parsed request against what we implement. `Ok(())` means the request
/// may go on to the transaction user (which still applies policy: 403, 404, 401 challenges).
///
/// For an INVITE whose Accept header leaves out every body type we can answer with, this returns
/// 406 with `Warning: 399 tongdai "…"` rather than 400 (RFC 4475 §3.3.15 allows either): the
/// request is well-formed, we just cannot produce an answer the caller takes.
pub fn check_request(request: &Request, caps: &Capabilities) -> Result<(), Refusal> {
    if request.method == Method::Ack {
        // A valid ACK passes; anything wrong with one is a drop, since an ACK is never answered.
        return check_fields(request, caps).map_err(|_| Refusal::Drop(DropReason::BadAck));
    }
    routable(&request.method, &request.headers)?;
    check_fields(request, caps)
}

/// The §8.2 checks proper, once the request is known to be answerable.
fn check_fields(request: &Request, caps: &Capabilities) -> Result<(), Refusal> {
    let h = &request.headers;
    if h.top_via().is_err() {
        return Err(Refusal::Drop(DropReason::UnusableVia));
    }
    let bad = |cause| Err(Refusal::Respond(Rejection::new(400, cause)));

    // Mandatory headers (§8.1.1): each present once and well-formed.
    if h.via().is_err() {
        return bad("via");
    }
    if h.from().is_err() || h.to().is_err() {
        return bad("from_to");
    }
    if h.call_id().is_err() {
        return bad("call_id");
    }
    let Ok(cseq) = h.cseq() else {
        return bad("cseq");
    };
    if h.max_forwards().is_err() {
        return bad("max_forwards");
    }

    // Method (§8.2.1).
    if !caps.methods.contains(&request.method) {
        let (status, cause) = match request.method {
            Method::Other(_) => (501, "unknown_method"),
            _ => (405, "method_not_allowed"),
        };
        return Err(Refusal::Respond(
            Rejection::new(status, cause).with(name::ALLOW, caps.allow_value()),
        ));
    }
    if cseq.method != request.method {
        return bad("cseq_method");
    }

    // Request-URI (§8.2.2.1); headers are not allowed in a Request-URI (§19.1.1 table).
    if !caps.uri_schemes.contains(request.uri.scheme()) {
        return Err(Refusal::Respond(Rejection::new(416, "uri_scheme")));
    }
    if !request.uri.headers().is_empty() {
        return bad("request_uri_headers");
    }

    // REGISTER specifics (§10.3): the To is a SIP or SIPS AOR, Contacts and Expires parse.
    if request.method == Method::Register {
        let to_ok = h.to().is_ok_and(|t| matches!(t.uri.scheme(), Scheme::Sip | Scheme::Sips));
        if !to_ok || h.contacts().is_err() || h.expires().is_err() {
            return bad("register");
        }
    }

    // Require (§8.2.2.3); an ACK or a CANCEL cannot be refused for it.
    if request.method != Method::Cancel && request.method != Method::Ack {
        let Ok(required) = h.require() else {
            return bad("require");
        };
        let unsupported: Vec<&str> = required
            .iter()
            .filter(|t| !caps.option_tags.iter().any(|o| o.eq_ignore_ascii_case(t)))
            .map(String::as_str)
            .collect();
        if !unsupported.is_empty() {
            return Err(Refusal::Respond(
                Rejection::new(420, "bad_extension")
                    .with(name::UNSUPPORTED, unsupported.join(", ")),
            ));
        }
    }

    // Body (§8.2.3).
    let accept_value = || caps.content_types.join(", ");
    if !request.body.is_empty() {
        let Ok(ctype) = h.content_type() else {
            return bad("content_type");
        };
        let Some(ctype) = ctype else {
            return bad("content_type");
        };
        let essence = ctype.essence();
        if !caps.content_types.iter().any(|c| c.eq_ignore_ascii_case(&essence)) {
            return Err(Refusal::Respond(
                Rejection::new(415, "media_type").with(name::ACCEPT, accept_value()),
            ));
        }
    }

    // Accept on an INVITE: our answer will be SDP (RFC 3261 §21.4.7).
    if request.method == Method::Invite {
        let Ok(accept) = h.accept() else {
            return bad("accept");
        };
        if let Some(ranges) = accept {
            let ok = caps.content_types.iter().any(|c| ranges.iter().any(|r| r.covers(c)));
            if !ok {
                let warning = format!(
                    "399 tongdai \"answers carry {}, which Accept leaves out\"",
                    accept_value()
                );
                return Err(Refusal::Respond(
                    Rejection::new(406, "not_acceptable").with(name::WARNING, warning),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that a response can be matched to a transaction at all (RFC 3261 §18.1.2, §17.1.3): top
/// Via, From, To, Call-ID and CSeq must parse. Responses that fail are dropped and counted.
pub fn check_response(response: &Response) -> Result<(), DropReason> {
    let h = &response.headers;
    let ok = h.top_via().is_ok()
        && h.from().is_ok()
        && h.to().is_ok()
        && h.call_id().is_ok()
        && h.cseq().is_ok();
    if ok { Ok(()) } else { Err(DropReason::MalformedResponse) }
}
