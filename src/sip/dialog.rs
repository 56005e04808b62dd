//! Dialogs (RFC 3261 §12), sans-IO: the state a UAS or UAC keeps between an INVITE and its BYE —
//! identifiers, CSeq spaces, route set, remote target and the flow requests take. In-dialog requests
//! are built here so that every one carries the right Route, CSeq and tags. Protocol layer.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::{Method, NameAddr, Request, Response, Uri, name};
use super::transport::Flow;

/// A dialog's identity (§12): Call-ID and the two tags, from our side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Call-IDs may embed a caller's number (some trunks do): print only the tags.
        write!(f, "dialog {}/{}", self.local_tag, self.remote_tag)
    }
}

/// Which side of the INVITE we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the INVITE (agent legs, overflow legs).
    Uac,
    /// We received the INVITE (trunk legs).
    Uas,
}

/// Early (after a tagged 1xx) or confirmed (after a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Why an in-dialog request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// CSeq lower than (or equal to) the last one seen: §12.2.2 says 500.
    #[error("CSeq out of order")]
    CSeqOutOfOrder,
    /// The request lacks a header needed to process it.
    #[error("malformed in-dialog request")]
    Malformed,
}

/// One dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Identity.
    pub id: DialogId,
    /// Our side.
    pub role: Role,
    /// Early or confirmed.
    pub state: DialogState,
    /// Our From (UAC) / To (UAS) header value, tag included.
    pub local: Bytes,
    /// The peer's header value, tag included.
    pub remote: Bytes,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: Uri,
    /// Route set, in the order Route headers are written.
    pub route_set: Vec<Bytes>,
    /// Our next CSeq.
    pub local_seq: u32,
    /// The last CSeq received from the peer.
    pub remote_seq: Option<u32>,
    /// The flow requests take (for NAT: the one the peer's REGISTER or INVITE came on).
    pub flow: Flow,
    /// The session timer (RFC 4028) negotiated for this dialog, if any.
    pub session_timer: Option<SessionTimer>,
    /// The last session description we sent in this dialog (a refresh by re-INVITE offers it
    /// again, unchanged).
    pub local_sdp: Option<Bytes>,
    /// The peer listed UPDATE in its Allow (so a session refresh may use UPDATE, RFC 4028 §7.4).
    pub peer_allows_update: bool,
}

/// A session timer (RFC 4028) on virtual time. The refresher refreshes at half the interval
/// (§7.2, §9); the other side ends the session when no refresh came by `expiry - min(32 s, SE/3)`
/// (§10), so that a refresh in flight at the last moment still counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// The session interval (the Session-Expires delta).
    pub interval: Duration,
    /// True when we are the refresher.
    pub we_refresh: bool,
    /// When we send the next refresh (only when we are the refresher and none is in flight).
    pub refresh_at: Option<Instant>,
    /// When the session is considered expired and we send BYE.
    pub bye_at: Instant,
}

impl SessionTimer {
    /// A timer started (or restarted by a refresh) at `now`.
    pub fn started(now: Instant, interval: Duration, we_refresh: bool) -> SessionTimer {
        // §10: the BYE goes out `min(32, SE/3)` seconds before the session would expire.
        let margin = Duration::from_secs(32).min(interval / 3);
        SessionTimer {
            interval,
            we_refresh,
            refresh_at: we_refresh.then(|| now + interval / 2),
            bye_at: now + interval - margin,
        }
    }

    /// The earliest instant this timer needs attention.
    pub fn next_deadline(&self) -> Instant {
        self.refresh_at.map_or(self.bye_at, |r| r.min(self.bye_at))
    }
}

impl Dialog {
    /// The UAS dialog for a received INVITE answered with a 2xx tagged `local_tag` (§12.1.1).
    pub fn uas(request: &Request, local_tag: &str, flow: Flow) -> Option<Dialog> {
        let h = &request.headers;
        let remote_tag = h.from().ok()?.tag()?.to_string();
        let to = h.get(name::TO)?;
        let local = if h.to().ok()?.tag().is_some() {
            to.clone()
        } else {
            Bytes::from(format!("{};tag={local_tag}", String::from_utf8_lossy(to)))
        };
        let remote_target = contact_uri(h).unwrap_or_else(|| request.uri.clone());
        Some(Dialog {
            id: DialogId {
                call_id: h.call_id().ok()?.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag,
            },
            role: Role::Uas,
            state: DialogState::Confirmed,
            local,
            remote: h.get(name::FROM)?.clone(),
            remote_target,
            // §12.1.1: Record-Route in order.
            route_set: h.get_all(name::RECORD_ROUTE).cloned().collect(),
            local_seq: 0,
            remote_seq: h.cseq().ok().map(|c| c.seq),
            flow,
            session_timer: None,
            local_sdp: None,
            peer_allows_update: allows_update(h),
        })
    }

    /// The UAC dialog created by `response` (1xx with a To tag, or 2xx) to our `request` (§12.1.2).
    pub fn uac(request: &Request, response: &Response, flow: Flow) -> Option<Dialog> {
        let h = &request.headers;
        let rh = &response.headers;
        let from = h.from().ok()?;
        let remote_tag = rh.to().ok()?.tag()?.to_string();
        let mut route_set: Vec<Bytes> = rh.get_all(name::RECORD_ROUTE).cloned().collect();
        route_set.reverse(); // §12.1.2: reverse order
        Some(Dialog {
            id: DialogId {
                call_id: h.call_id().ok()?.to_string(),
                local_tag: from.tag()?.to_string(),
                remote_tag,
            },
            role: Role::Uac,
            state: if (200..300).contains(&response.status) {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local: h.get(name::FROM)?.clone(),
            remote: rh.get(name::TO)?.clone(),
            remote_target: contact_uri(rh).unwrap_or_else(|| request.uri.clone()),
            route_set,
            local_seq: h.cseq().ok()?.seq,
            remote_seq: None,
            flow,
            session_timer: None,
            local_sdp: (!request.body.is_empty()).then(|| request.body.clone()),
            peer_allows_update: allows_update(rh),
        })
    }

    /// Takes a 2xx (or a target refresh) from the peer: confirmed state, new remote target.
    pub fn update_from_response(&mut self, response: &Response) {
        if (200..300).contains(&response.status) {
            self.state = DialogState::Confirmed;
            if let Some(to) = response.headers.get(name::TO) {
                self.remote = to.clone();
            }
        }
        if let Some(uri) = contact_uri(&response.headers) {
            self.remote_target = uri;
        }
    }

    /// Checks a request received in this dialog (§12.2.2): CSeq must grow. ACK and CANCEL carry the
    /// INVITE's number and are not checked. A target refresh (re-INVITE, UPDATE) updates the target.
    pub fn recv_request(&mut self, request: &Request) -> Result<(), DialogError> {
        let cseq = request.headers.cseq().map_err(|_| DialogError::Malformed)?;
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if self.remote_seq.is_some_and(|last| cseq.seq <= last) {
                return Err(DialogError::CSeqOutOfOrder);
            }
            self.remote_seq = Some(cseq.seq);
        }
        if matches!(request.method, Method::Invite | Method::Update)
            && let Some(uri) = contact_uri(&request.headers)
        {
            self.remote_target = uri;
        }
        Ok(())
    }

    /// A new in-dialog request (§12.2.1.1) with the next CSeq, a Via for `via_host` with `branch`,
    /// and Max-Forwards 70. ACK must use [`Dialog::ack`] instead.
    pub fn request(&mut self, method: Method, via_host: &str, branch: &str) -> Request {
        self.local_seq += 1;
        let seq = self.local_seq;
        self.build(method, seq, via_host, branch)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `seq` (§13.2.2.4): same CSeq number, new branch.
    pub fn ack(&self, seq: u32, via_host: &str, branch: &str) -> Request {
        self.build(Method::Ack, seq, via_host, branch)
    }

    fn build(&self, method: Method, seq: u32, via_host: &str, branch: &str) -> Request {
        let mut r = Request::new(method.clone(), self.remote_target.clone());
        let h = &mut r.headers;
        h.push(
            name::VIA,
            format!("SIP/2.0/{} {via_host};branch={branch};rport", self.flow.transport.via_name()),
        );
        h.push(name::MAX_FORWARDS, "70");
        for route in &self.route_set {
            h.push(name::ROUTE, route.clone());
        }
        h.push(name::FROM, self.local.clone());
        h.push(name::TO, self.remote.clone());
        h.push(name::CALL_ID, self.id.call_id.clone());
        h.push(name::CSEQ, format!("{seq} {}", method.as_str()));
        r
    }
}

fn allows_update(headers: &super::message::Headers) -> bool {
    headers.allow().is_ok_and(|methods| methods.contains(&Method::Update))
}

/// The URI of the first Contact, if there is exactly a usable one.
fn contact_uri(headers: &super::message::Headers) -> Option<Uri> {
    match headers.contacts().ok()? {
        super::message::Contacts::List(list) => list.into_iter().next().map(|c| c.addr.uri),
        super::message::Contacts::Wildcard => None,
    }
}

/// The display form of a name-addr for a From/To we generate.
pub fn name_addr(uri: &Uri, display: Option<&str>, tag: Option<&str>) -> String {
    let mut n = NameAddr::new(uri.clone());
    n.display_name = display.map(str::to_string);
    let mut s = n.to_string();
    if let Some(tag) = tag {
        s.push_str(";tag=");
        s.push_str(tag);
    }
    s
}
