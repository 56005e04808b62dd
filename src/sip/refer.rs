//! Call transfer building blocks (protocol layer, sans-IO): reading a REFER (RFC 3515) — its
//! `Refer-To` target, the `Replaces` an attended transfer embeds in it (RFC 3891 §6.1, escaped as
//! a URI header), `Referred-By` (RFC 3892) and `Refer-Sub: false` (RFC 4488) —, reading the
//! `Replaces` header of an INVITE, and writing the NOTIFYs that report the referred call's progress
//! as `message/sipfrag` (RFC 3515 §2.4.4, RFC 3420).
//!
//! Softphones write Refer-To in every legal form and a few illegal ones: a bare addr-spec
//! (`Refer-To: sip:7528@host`, older baresip), `<sip:2002>` without a domain (Sipdroid), the
//! Replaces escapes in upper or lower case (`%3B`, `%3b`), and the compact name `r`. Everything is
//! read leniently; anything that cannot be understood is a typed [`ReferError`], never a panic.

use std::time::Duration;

use bytes::Bytes;

use super::dialog::Dialog;
use super::message::{
    HeaderError, Method, NameAddr, Param, Replaces, Request, Response, Scheme, Uri, name, unescape,
};

/// `Refer-Sub` (RFC 4488 §5): whether the REFER creates an implicit subscription.
pub const REFER_SUB: &str = "Refer-Sub";
/// `Subscription-State` (RFC 6665 §8.2.3).
pub const SUBSCRIPTION_STATE: &str = "Subscription-State";
/// The media type of REFER progress bodies, with the version RFC 3420 §2 asks for.
pub const SIPFRAG: &str = "message/sipfrag;version=2.0";

/// Why a REFER (or an INVITE's Replaces) cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferError {
    /// The request is not a REFER.
    #[error("not a REFER request")]
    NotRefer,
    /// A REFER without Refer-To (RFC 3515 §2.4.1: 400).
    #[error("REFER without Refer-To")]
    MissingReferTo,
    /// More than one Refer-To (RFC 3515 §2.4.1: 400), or another header that may appear once
    /// appears more often.
    #[error("header {0} appears more than once")]
    Duplicate(&'static str),
    /// The Refer-To value does not parse.
    #[error("malformed Refer-To: {0}")]
    ReferTo(HeaderError),
    /// A Refer-To URI that tongdai cannot call (neither `sip:`, `sips:` nor `tel:`).
    #[error("Refer-To URI scheme is not sip, sips or tel")]
    UnsupportedScheme,
    /// The Replaces embedded in Refer-To, or an INVITE's Replaces header, does not parse (not
    /// UTF-8 once unescaped, no call-id, or a tag missing).
    #[error("malformed Replaces: {0}")]
    Replaces(HeaderError),
    /// Referred-By does not parse.
    #[error("malformed Referred-By: {0}")]
    ReferredBy(HeaderError),
    /// Refer-Sub is neither `true` nor `false`.
    #[error("malformed Refer-Sub")]
    ReferSub,
    /// The REFER's CSeq does not parse (its number names the subscription).
    #[error("malformed CSeq: {0}")]
    CSeq(HeaderError),
}

impl ReferError {
    /// The status to answer the request with: 416 for a scheme we cannot call (RFC 3261 §21.4.13),
    /// 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            ReferError::UnsupportedScheme => 416,
            _ => 400,
        }
    }
}

/// A Refer-To value (RFC 3515 §2.1), split into what a transfer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferTo {
    /// The display name, if any.
    pub display_name: Option<String>,
    /// The target to call: the Refer-To URI without its `?headers` part.
    pub target: Uri,
    /// The Replaces header embedded in the URI (attended transfer), unescaped and parsed.
    pub replaces: Option<Replaces>,
    /// The other headers embedded in the URI (to copy into the referred INVITE), unescaped.
    pub headers: Vec<(String, String)>,
    /// Header parameters after the `>`.
    pub params: Vec<Param>,
}

impl ReferTo {
    /// Parses one Refer-To value: a name-addr, or an addr-spec (which may, leniently, carry
    /// `?headers` without the angle brackets RFC 3261 §20.10 asks for).
    pub fn parse(value: &str) -> Result<ReferTo, ReferError> {
        let addr = match NameAddr::parse(value) {
            Ok(a) => a,
            Err(e) => {
                // `Refer-To: sip:b@h?Replaces=…` without brackets: the whole value is the URI
                // (there can be no header parameters, since `;` would be ambiguous).
                let bare = value.trim();
                if bare.contains(['<', '>', '"', ' ']) {
                    return Err(ReferError::ReferTo(e));
                }
                NameAddr::new(Uri::parse(bare).map_err(|u| ReferError::ReferTo(u.into()))?)
            }
        };
        if !matches!(addr.uri.scheme(), Scheme::Sip | Scheme::Sips | Scheme::Tel) {
            return Err(ReferError::UnsupportedScheme);
        }
        let mut replaces = None;
        let mut headers = Vec::new();
        for (hname, hvalue) in addr.uri.headers() {
            let text =
                unescaped_text(hvalue).map_err(|_| ReferError::Replaces(HeaderError::NotUtf8))?;
            if unescaped_text(hname).is_ok_and(|n| n.eq_ignore_ascii_case(name::REPLACES)) {
                if replaces.is_some() {
                    return Err(ReferError::Duplicate(name::REPLACES));
                }
                replaces = Some(Replaces::parse(&text).map_err(ReferError::Replaces)?);
            } else {
                let hname =
                    unescaped_text(hname).map_err(|_| ReferError::ReferTo(HeaderError::NotUtf8))?;
                headers.push((hname, text));
            }
        }
        let target = without_headers(&addr.uri).map_err(|u| ReferError::ReferTo(u.into()))?;
        Ok(ReferTo {
            display_name: addr.display_name,
            target,
            replaces,
            headers,
            params: addr.params,
        })
    }
}

/// `%HH`-decoded text; an error when the octets are not UTF-8.
fn unescaped_text(s: &str) -> Result<String, std::string::FromUtf8Error> {
    String::from_utf8(unescape(s))
}

/// `uri` without its `?headers` part (a sip/sips URI's headers start at the first `?` after the
/// userinfo, as the URI parser reads them).
fn without_headers(uri: &Uri) -> Result<Uri, super::message::UriError> {
    if uri.headers().is_empty() {
        return Ok(uri.clone());
    }
    let raw = uri.as_str();
    let host_start = raw.find('@').map_or_else(|| raw.find(':').map_or(0, |c| c + 1), |a| a + 1);
    match raw[host_start..].find('?') {
        Some(q) => Uri::parse(&raw[..host_start + q]),
        None => Ok(uri.clone()),
    }
}

/// A REFER request read for a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refer {
    /// Where the referred call goes, and what it replaces.
    pub refer_to: ReferTo,
    /// Referred-By (RFC 3892), when given.
    pub referred_by: Option<NameAddr>,
    /// False when the referrer asked for no implicit subscription (`Refer-Sub: false`,
    /// RFC 4488): then no NOTIFY is sent, and the 2xx carries `Refer-Sub: false`.
    pub subscribe: bool,
    /// The REFER's CSeq number: the `id` of its `Event: refer` subscription (RFC 3515 §2.4.6).
    pub cseq: u32,
}

impl Refer {
    /// Reads a REFER: exactly one Refer-To (RFC 3515 §2.4.1), an optional Referred-By and
    /// Refer-Sub.
    pub fn parse(request: &Request) -> Result<Refer, ReferError> {
        if request.method != Method::Refer {
            return Err(ReferError::NotRefer);
        }
        let h = &request.headers;
        let refer_to = match h.single(name::REFER_TO) {
            Ok(Some(v)) => ReferTo::parse(&v)?,
            Ok(None) => return Err(ReferError::MissingReferTo),
            Err(HeaderError::Duplicate(n)) => return Err(ReferError::Duplicate(n)),
            Err(e) => return Err(ReferError::ReferTo(e)),
        };
        let referred_by = match h.single(name::REFERRED_BY) {
            Ok(Some(v)) => Some(NameAddr::parse(&v).map_err(ReferError::ReferredBy)?),
            Ok(None) => None,
            Err(HeaderError::Duplicate(n)) => return Err(ReferError::Duplicate(n)),
            Err(e) => return Err(ReferError::ReferredBy(e)),
        };
        let subscribe = match h.single(REFER_SUB) {
            Ok(Some(v)) => {
                let token = v.split(';').next().unwrap_or("").trim();
                if token.eq_ignore_ascii_case("false") {
                    false
                } else if token.eq_ignore_ascii_case("true") {
                    true
                } else {
                    return Err(ReferError::ReferSub);
                }
            }
            Ok(None) => true,
            Err(_) => return Err(ReferError::ReferSub),
        };
        let cseq = h.cseq().map_err(ReferError::CSeq)?.seq;
        Ok(Refer { refer_to, referred_by, subscribe, cseq })
    }

    /// The 202 Accepted for this REFER (RFC 3515 §2.4.2), with `Refer-Sub: false` when the
    /// referrer asked for no subscription (RFC 4488 §4). `to_tag` as for
    /// [`Response::for_request`].
    pub fn accepted(&self, request: &Request, to_tag: Option<&str>) -> Response {
        let mut response = Response::for_request(request, 202, to_tag);
        if !self.subscribe {
            response.headers.push(REFER_SUB, "false");
        }
        response
    }
}

/// The Replaces header of an INVITE (RFC 3891 §3): `Ok(None)` when there is none; an error when
/// it is malformed or repeated (both answered with 400, §3).
pub fn invite_replaces(request: &Request) -> Result<Option<Replaces>, ReferError> {
    match request.headers.replaces() {
        Ok(r) => Ok(r),
        Err(HeaderError::Duplicate(n)) => Err(ReferError::Duplicate(n)),
        Err(e) => Err(ReferError::Replaces(e)),
    }
}

/// How far the referred call got, as a NOTIFY reports it: the status line of the sipfrag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferProgress(u16);

impl ReferProgress {
    /// `SIP/2.0 100 Trying`: the referred call is being placed (the first NOTIFY, §2.4.5).
    pub const TRYING: ReferProgress = ReferProgress(100);
    /// `SIP/2.0 180 Ringing`.
    pub const RINGING: ReferProgress = ReferProgress(180);
    /// `SIP/2.0 200 OK`: the referred call was answered; the subscription ends.
    pub const OK: ReferProgress = ReferProgress(200);
    /// `SIP/2.0 503 Service Unavailable`: the referred call failed; the subscription ends.
    pub const FAILED: ReferProgress = ReferProgress(503);

    /// Any status 100..=699 (the final status a target answered, say 486); `None` otherwise.
    pub fn status(status: u16) -> Option<ReferProgress> {
        (100..=699).contains(&status).then_some(ReferProgress(status))
    }

    /// The status code.
    pub fn code(self) -> u16 {
        self.0
    }

    /// True for a final status: the last NOTIFY of the subscription.
    pub fn is_final(self) -> bool {
        self.0 >= 200
    }

    /// The sipfrag body: the status line with its standard reason phrase.
    pub fn sipfrag(self) -> String {
        format!("SIP/2.0 {} {}", self.0, super::message::reason_phrase(self.0))
    }
}

/// The headers and body of one REFER progress NOTIFY (RFC 3515 §2.4.4–2.4.7), to put in an
/// in-dialog request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferNotify {
    /// `Event`: `refer`, with `;id=<REFER CSeq>` when given.
    pub event: String,
    /// `Subscription-State`: `active;expires=…` while the call is in progress,
    /// `terminated;reason=noresource` with its final status.
    pub subscription_state: String,
    /// `Content-Type`: [`SIPFRAG`].
    pub content_type: &'static str,
    /// The sipfrag.
    pub body: Bytes,
}

impl ReferNotify {
    /// The NOTIFY for `progress` of the REFER whose CSeq was `event_id` (`None`: no `id`
    /// parameter, allowed for the first REFER of a dialog, §2.4.6), with `expires` left on the
    /// subscription while it is active.
    pub fn new(progress: ReferProgress, event_id: Option<u32>, expires: Duration) -> ReferNotify {
        let event = match event_id {
            Some(id) => format!("refer;id={id}"),
            None => "refer".to_string(),
        };
        let subscription_state = if progress.is_final() {
            "terminated;reason=noresource".to_string()
        } else {
            format!("active;expires={}", expires.as_secs())
        };
        ReferNotify {
            event,
            subscription_state,
            content_type: SIPFRAG,
            body: Bytes::from(progress.sipfrag()),
        }
    }

    /// The headers as `(name, value)` pairs, in order: the `extra` of the endpoint's
    /// `request_in_dialog` (with [`ReferNotify::body`] as its body).
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (name::EVENT, self.event.clone()),
            (SUBSCRIPTION_STATE, self.subscription_state.clone()),
            (name::CONTENT_TYPE, self.content_type.to_string()),
        ]
    }

    /// Adds the headers and the body to `request` (a NOTIFY built for the dialog).
    pub fn apply_to(self, request: &mut Request) {
        for (n, v) in self.headers() {
            request.headers.push(n, v);
        }
        request.body = self.body;
    }

    /// The complete NOTIFY in `dialog` (the dialog the REFER came in): next CSeq, Via for
    /// `via_host` with `branch`, `Contact: <contact>` (NOTIFY is a target refresh request,
    /// RFC 6665 §4.1.2.2), and these headers and body.
    pub fn request(
        self,
        dialog: &mut Dialog,
        via_host: &str,
        branch: &str,
        contact: &Uri,
    ) -> Request {
        let mut request = dialog.request(Method::Notify, via_host, branch);
        request.headers.push(name::CONTACT, format!("<{contact}>"));
        self.apply_to(&mut request);
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_loses_only_the_headers() {
        let r = ReferTo::parse("<sip:b@h;transport=tcp?Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2>")
            .unwrap();
        assert_eq!(r.target.as_str(), "sip:b@h;transport=tcp");
        assert_eq!(r.replaces.unwrap().call_id, "a");
        let plain = ReferTo::parse("sip:b@h").unwrap();
        assert_eq!(plain.target.as_str(), "sip:b@h");
    }

    #[test]
    fn progress_lines() {
        assert_eq!(ReferProgress::FAILED.sipfrag(), "SIP/2.0 503 Service Unavailable");
        assert_eq!(ReferProgress::status(700), None);
        assert!(!ReferProgress::RINGING.is_final());
    }
}
