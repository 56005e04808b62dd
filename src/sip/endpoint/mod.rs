//! The SIP endpoint (UA core), sans-IO: everything between bytes on a flow and the call logic above.
//! Protocol layer.
//!
//! Inbound, in order: keep-alives (CRLF, STUN) are answered and counted apart; unparsable messages get
//! 400/505 when a response can be routed, else are dropped and counted; responses go to their client
//! transaction or, as stray 2xx, are re-ACKed through their dialog; requests pass the RFC 3261 §8.2
//! checks ([`check_request`]), then policy — the one place the stateless and policy answers are made:
//! 403 (source outside the trunk allow-list), 404 (not a hotline number), 481 (no dialog or
//! transaction), 503 + Retry-After while draining, 200 to OPTIONS. What survives becomes a [`UaEvent`]
//! for the call logic, which answers through the methods here. The endpoint keeps the dialogs,
//! retransmits our 2xx until the ACK (§13.3.1.4), ACKs the 2xx to our INVITEs (§13.2.2.4), answers
//! CANCEL with 200 and the INVITE with 487, and sends a CANCEL only once a provisional arrived (§9.1).
//!
//! In a dialog it answers what needs no call logic: BYE, OPTIONS, INFO (DTMF via
//! `application/dtmf-relay` is reported), and UPDATE without a body; a re-INVITE or an UPDATE with
//! SDP goes up as [`UaEvent::InDialog`] and is answered with [`Endpoint::accept_in_dialog`]. Offer
//! glare is refused here: a second re-INVITE while one is being answered gets 500 + Retry-After
//! (§14.2), a new offer while our offer (in a 2xx, or in our refreshing re-INVITE) awaits its
//! answer gets 491, and an ACK that brings no answer to our offer ends the dialog with BYE
//! (§13.2.1, §14.2). Session timers (RFC 4028) run here: a Session-Expires below our Min-SE gets
//! 422 from a UAC that supports `timer` (one a proxy added is raised to Min-SE, and we refresh);
//! the refresher refreshes at half the interval — we do so by UPDATE without a body when the peer
//! allows UPDATE, else by re-INVITE offering our last description unchanged, retried after the
//! §14.1 back-off on 491 — and a session nobody refreshed is ended with BYE at `expiry - min(32 s,
//! SE/3)`. A BYE that crosses ours gets 200 (RFC 5407 §3.2.1), requests left pending in an ended
//! dialog get 487 (§15.1.2), and a CANCEL that crosses our 2xx gets 200 while the call goes on
//! (RFC 5407 §3.1.2).
//!
//! Reliable provisionals (RFC 3262). As UAC our INVITEs carry `Supported: 100rel`; a 101–199
//! with `Require: 100rel` and RSeq creates (or continues) its early dialog, which the INVITE
//! keeps, and gets a PRACK in it (`RAck: rseq cseq INVITE`, the dialog's next CSeq) — once per
//! RSeq: a retransmission, an RSeq that is not one more than the last, or one for a dialog
//! already answered is discarded and not reported. The PRACK's answer is absorbed; the 2xx
//! confirms the dialog with the CSeq the PRACKs reached, and its ACK carries the INVITE's number.
//! An SDP answer that came in a reliable provisional is reported with a 2xx that repeats none.
//! As UAS we never send a provisional reliably: we answer at once, which §3 allows when the
//! INVITE only supports 100rel, and to one that requires it we send no 18x at all (100 Trying,
//! then the final response). So every PRACK we receive matches nothing we sent and gets 481 (§3),
//! in a dialog or out of one, and the call goes on.
//!
//! Output follows the quinn contract: `poll_transmit`, `poll_event`, `poll_timeout`.

mod reliable;
mod session_timer;
mod stun;

use reliable::{EarlyDialog, Provisional, reliable_rseq};
use session_timer::{Refresh, SessionAsk, session_ask, session_headers};
use stun::stun_binding_response;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ipnet::IpNet;

use super::check::{Capabilities, Refusal, check_request, check_response, refuse_unparsable};
use super::dialog::{Dialog, DialogId, SessionTimer};
use super::message::{
    Frame, Message, Method, Request, Response, Uri, is_keep_alive, name, parse_datagram,
};
use super::transaction::timer::TimerValues;
use super::transaction::{Event, Received, Transactions, Transmit, TxnId};
use super::transport::Flow;

/// How many server transactions may be alive at once unless configured otherwise
/// (`[limits] max_transactions`). A call holds two for about 32 s over UDP (the INVITE's
/// Accepted state and the BYE's Completed state, 64·T1), so this passes ~500 calls/s.
pub const DEFAULT_MAX_SERVER_TRANSACTIONS: usize = 32_768;

/// The `Retry-After` (seconds) of a request refused over the transaction cap: transactions end
/// within 64·T1 (32 s), so room comes back within seconds of a burst.
pub const CAP_RETRY_AFTER_SECS: u32 = 10;

/// Our Min-SE (RFC 4028 §5): the shortest session interval we accept, the RFC's floor of 90 s.
pub const MIN_SE_SECS: u32 = 90;

/// The media type of DTMF carried in INFO (the de-facto `application/dtmf-relay` of Cisco and
/// most SBCs: `Signal=5` and `Duration=160` lines).
pub const DTMF_RELAY: &str = "application/dtmf-relay";

/// What the endpoint needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Transaction timers.
    pub timers: TimerValues,
    /// Sources allowed to place calls (the trunk).
    pub trunk_allow: Vec<IpNet>,
    /// Dialled numbers we answer.
    pub numbers: Vec<String>,
    /// `User-Agent` / `Server` value.
    pub user_agent: String,
    /// `Retry-After` while draining.
    pub retry_after: Duration,
    /// Answer over UDP to the packet's source port even without `rport` (see
    /// [`super::transport::stamp_received`]).
    pub force_rport: bool,
}

/// What the endpoint tells the call logic (and the runtime, for counting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UaEvent {
    /// An INVITE for a hotline number from an allowed source. 100 Trying was sent; answer with
    /// [`Endpoint::answer`], [`Endpoint::provisional`] or [`Endpoint::reject`].
    IncomingCall {
        /// The server transaction.
        txn: TxnId,
        /// The INVITE (top Via stamped).
        request: Request,
        /// The flow it came on.
        flow: Flow,
    },
    /// The caller cancelled an INVITE we had not answered; 200 and 487 were sent.
    CallCancelled {
        /// The INVITE's server transaction.
        txn: TxnId,
    },
    /// The ACK for our 2xx arrived (its body, if any, is the late SDP answer).
    Confirmed {
        /// The dialog.
        dialog: DialogId,
        /// The ACK's body.
        body: Bytes,
    },
    /// Our 2xx was never ACKed (64·T1): the dialog is dead; send BYE.
    AckTimeout {
        /// The dialog.
        dialog: DialogId,
    },
    /// The peer hung up (BYE answered 200; the dialog is gone).
    Bye {
        /// The dialog.
        dialog: DialogId,
    },
    /// A REGISTER, for the registrar: answer with [`Endpoint::respond`].
    Register {
        /// The server transaction.
        txn: TxnId,
        /// The REGISTER.
        request: Request,
        /// The flow it came on (bindings remember it for NAT).
        flow: Flow,
    },
    /// A re-INVITE (with or without an offer) or an UPDATE with an offer in a dialog: answer it
    /// with [`Endpoint::accept_in_dialog`] (200, with our SDP) or refuse it with
    /// [`Endpoint::respond`] (e.g. 488: the session goes on as it was). Other in-dialog methods
    /// we do not handle (REFER, NOTIFY …) come here too; answer them with `respond`.
    InDialog {
        /// The dialog.
        dialog: DialogId,
        /// The server transaction.
        txn: TxnId,
        /// The request.
        request: Request,
    },
    /// We ended a dialog on our own and sent its BYE: the session timer expired, a refresh failed,
    /// or the ACK for our offer brought no answer. Handle it like [`UaEvent::Bye`].
    Ended {
        /// The dialog.
        dialog: DialogId,
        /// Why.
        cause: EndCause,
    },
    /// A DTMF digit in an INFO (`application/dtmf-relay`); the INFO was answered 200.
    Dtmf {
        /// The dialog.
        dialog: DialogId,
        /// The `Signal=` value: `0`–`9`, `*`, `#`, `A`–`D`.
        signal: char,
        /// The `Duration=` value in milliseconds, if given.
        duration_ms: Option<u32>,
    },
    /// A response to a request we sent. For a 2xx to an INVITE the ACK has been sent and
    /// `dialog` names the new dialog; a 2xx without a body whose dialog got the SDP answer in a
    /// reliable provisional (RFC 3262 §5) is reported with that answer as its body.
    Response {
        /// The client transaction.
        txn: TxnId,
        /// The response.
        response: Response,
        /// The dialog a 2xx (or tagged 1xx) established.
        dialog: Option<DialogId>,
    },
    /// A request we sent got no final response.
    Timeout {
        /// The client transaction.
        txn: TxnId,
    },
}

/// Why the endpoint ended a dialog itself (see [`UaEvent::Ended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// No refresh arrived before the session interval ran out (RFC 4028 §10).
    SessionExpired,
    /// Our session refresh got 408/481 or no answer (RFC 3261 §12.2.1.2).
    RefreshFailed,
    /// Our 2xx carried an offer and the ACK brought no answer (RFC 3261 §13.2.1: the UAC must
    /// then end the session; it did not, so we do).
    NoAnswerInAck,
}

/// Counters since the last [`Endpoint::take_stats`], for the metrics the runtime exports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SipStats {
    /// Requests received.
    pub requests_in: u64,
    /// Responses received.
    pub responses_in: u64,
    /// Keep-alives received (CRLF, STUN).
    pub keepalives_in: u64,
    /// Requests sent (retransmissions included).
    pub requests_out: u64,
    /// Responses sent (retransmissions included).
    pub responses_out: u64,
    /// Messages dropped or refused as invalid, by reason label.
    pub invalid: Vec<(&'static str, u64)>,
    /// New INVITEs refused (480) because the server transactions were at their cap.
    pub invites_over_cap: u64,
    /// Other new requests refused (500 + Retry-After) because the server transactions were at
    /// their cap.
    pub requests_over_cap: u64,
    /// New calls' INVITEs shed (480) while the core was overloaded.
    pub invites_shed: u64,
}

impl SipStats {
    fn invalid(&mut self, reason: &'static str) {
        match self.invalid.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.invalid.push((reason, 1)),
        }
    }
}

/// An INVITE we received and have not finally answered.
#[derive(Debug)]
struct OpenInvite {
    request: Request,
    flow: Flow,
    to_tag: String,
    session: SessionAsk,
}

/// A re-INVITE or UPDATE we received in a dialog and have not answered.
#[derive(Debug)]
struct OpenInDialog {
    dialog: DialogId,
    request: Request,
    session: SessionAsk,
}

/// An INVITE we sent.
#[derive(Debug)]
struct SentInvite {
    request: Request,
    flow: Flow,
    provisional_seen: bool,
    cancel_wanted: bool,
    cancelled: bool,
    /// The To tags of the 2xx responses reported so far (one per dialog; forks differ).
    answered: Vec<String>,
    /// The early dialogs reliable provisionals created (one per To tag: forks differ).
    early: Vec<EarlyDialog>,
}

/// The identifiers of an INVITE we originate (see [`Endpoint::invite_with`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingIds {
    /// The Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub from_tag: String,
    /// The CSeq number of the INVITE.
    pub cseq: u32,
}

/// Our 2xx waiting for its ACK (§13.3.1.4).
#[derive(Debug)]
struct PendingAck {
    txn: TxnId,
    /// The 2xx carried our offer (the INVITE had none): the ACK must carry the answer.
    offer_outstanding: bool,
    response: Response,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

impl PendingAck {
    /// Our 2xx `response` on INVITE transaction `txn`, sent at `now`: retransmitted from T1,
    /// doubling up to T2, until 64·T1 (§13.3.1.4).
    fn new(
        txn: TxnId,
        response: Response,
        offer_outstanding: bool,
        now: Instant,
        t1: Duration,
    ) -> Self {
        PendingAck {
            txn,
            offer_outstanding,
            response,
            next: now + t1,
            interval: t1,
            give_up: now + t1 * 64,
        }
    }
}

/// The SIP UA core.
pub struct Endpoint {
    config: EndpointConfig,
    caps: Capabilities,
    txns: Transactions,
    dialogs: HashMap<DialogId, Dialog>,
    open_invites: HashMap<TxnId, OpenInvite>,
    sent_invites: HashMap<TxnId, SentInvite>,
    pending_acks: HashMap<DialogId, PendingAck>,
    open_in_dialog: HashMap<TxnId, OpenInDialog>,
    /// Session refreshes we sent, by client transaction.
    refreshes: HashMap<TxnId, Refresh>,
    /// Our BYEs in flight: their dialog is gone, but a BYE crossing ours still gets 200.
    byes: HashMap<TxnId, DialogId>,
    /// Our PRACKs in flight (RFC 3262): their responses are the endpoint's, not the call logic's.
    pracks: HashSet<TxnId>,
    /// Capabilities for INFO, which may also carry DTMF.
    info_caps: Capabilities,
    events: VecDeque<UaEvent>,
    transmits: VecDeque<Transmit>,
    stats: SipStats,
    salt: u64,
    counter: u64,
    draining: bool,
    /// The core is behind (its input backlog, told by the runtime): new calls are shed.
    overloaded: bool,
    /// `User-Agent` fragments (lower case) of scanners whose requests are dropped unanswered.
    scanners: Vec<String>,
    /// At most this many server transactions at once (see [`Endpoint::set_max_transactions`]).
    max_server_transactions: usize,
}

impl Endpoint {
    /// A new endpoint; `salt` (random, from the runtime) makes tags, branches and Call-IDs unique.
    pub fn new(config: EndpointConfig, salt: u64) -> Endpoint {
        let mut txns = Transactions::new(config.timers, salt);
        txns.set_force_rport(config.force_rport);
        let caps = Capabilities::tongdai();
        let mut info_caps = caps.clone();
        info_caps.content_types.push(DTMF_RELAY.to_owned());
        Endpoint {
            txns,
            config,
            caps,
            info_caps,
            dialogs: HashMap::new(),
            open_invites: HashMap::new(),
            sent_invites: HashMap::new(),
            pending_acks: HashMap::new(),
            open_in_dialog: HashMap::new(),
            refreshes: HashMap::new(),
            byes: HashMap::new(),
            pracks: HashSet::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            stats: SipStats::default(),
            salt,
            counter: 0,
            draining: false,
            overloaded: false,
            scanners: Vec::new(),
            max_server_transactions: DEFAULT_MAX_SERVER_TRANSACTIONS,
        }
    }

    /// Caps the server transactions alive at once (at least 1). A new request past the cap
    /// creates no state: an INVITE gets a stateless 480 + Retry-After (one refused call, RFC 3261
    /// §21.4.18 — never 503, which would make the trunk skip us for every call), any other
    /// request 500 + Retry-After (§21.5.1: the client may retry after it). Retransmissions, ACKs,
    /// a CANCEL of a live INVITE and requests in a live dialog are never refused: they belong to
    /// calls already admitted, and their number is bounded by those calls.
    pub fn set_max_transactions(&mut self, max: usize) {
        self.max_server_transactions = max.max(1);
    }

    /// How many server transactions are alive.
    pub fn server_transactions(&self) -> usize {
        self.txns.server_count()
    }

    /// Requests whose `User-Agent` contains one of `fragments` (any case) are dropped without an
    /// answer and counted as invalid (`scanner`): SIPVicious and its clones probe every public SIP
    /// port, and an answer only tells them someone is there.
    pub fn set_scanner_user_agents(&mut self, fragments: Vec<String>) {
        self.scanners = fragments.into_iter().map(|f| f.to_ascii_lowercase()).collect();
    }

    fn is_scanner(&self, request: &Request) -> bool {
        if self.scanners.is_empty() {
            return false;
        }
        request.headers.user_agent().is_some_and(|ua| {
            let ua = ua.to_ascii_lowercase();
            self.scanners.iter().any(|s| ua.contains(s.as_str()))
        })
    }

    /// Applies a reloaded configuration.
    pub fn set_config(&mut self, config: EndpointConfig) {
        self.txns.set_timer_values(config.timers);
        self.txns.set_force_rport(config.force_rport);
        self.config = config;
    }

    /// From now on, new calls get 503 + Retry-After (the trunk fails over).
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// While `overloaded` (the runtime finds the core falling behind its input), a new call's
    /// INVITE is answered at once, statelessly, 480 + Retry-After (one refused call, RFC 3261
    /// §21.4.18), so that the calls already admitted keep their pace instead of every call
    /// timing out together. Requests of admitted calls, feature codes and other methods are taken
    /// as ever.
    pub fn set_overloaded(&mut self, overloaded: bool) {
        self.overloaded = overloaded;
    }

    /// How many dialogs are alive.
    pub fn dialog_count(&self) -> usize {
        self.dialogs.len()
    }

    /// A dialog by id.
    pub fn dialog(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    /// Counters since the last call.
    pub fn take_stats(&mut self) -> SipStats {
        std::mem::take(&mut self.stats)
    }

    // ---- input -------------------------------------------------------------------------------

    /// One UDP datagram (or any transport's whole message) arrived on `flow`.
    pub fn handle_datagram(&mut self, now: Instant, flow: Flow, datagram: Bytes) {
        if is_keep_alive(&datagram) {
            self.stats.keepalives_in += 1;
            if datagram.len() >= 4 {
                // RFC 5626 §4.4.1: a double-CRLF ping gets a single-CRLF pong.
                self.transmits.push_back(Transmit { flow, bytes: Bytes::from_static(b"\r\n") });
            }
            return;
        }
        if let Some(reply) = stun_binding_response(&datagram, flow.remote) {
            self.stats.keepalives_in += 1;
            self.transmits.push_back(Transmit { flow, bytes: reply });
            return;
        }
        match parse_datagram(datagram) {
            Ok(message) => self.handle_message(now, flow, message),
            Err(e) => self.refuse_unparsable(now, flow, &e),
        }
        self.flush(now);
    }

    /// One frame from a stream transport's framer arrived on `flow`.
    pub fn handle_frame(&mut self, now: Instant, flow: Flow, frame: Frame) {
        match frame {
            Frame::Message(m) => self.handle_message(now, flow, m),
            Frame::Invalid(e) => self.refuse_unparsable(now, flow, &e),
            Frame::Ping => {
                self.stats.keepalives_in += 1;
                self.transmits.push_back(Transmit { flow, bytes: Bytes::from_static(b"\r\n") });
            }
            Frame::Pong => self.stats.keepalives_in += 1,
        }
        self.flush(now);
    }

    /// Counts a stream the runtime had to close because it could not be framed.
    pub fn count_unframable(&mut self) {
        self.stats.invalid("unframable");
    }

    fn refuse_unparsable(&mut self, now: Instant, flow: Flow, e: &super::message::ParseError) {
        match refuse_unparsable(e) {
            Refusal::Respond(rejection) => {
                self.stats.invalid(rejection.cause);
                if let Some(head) = &e.request_head {
                    let response = rejection.response_to(&head.headers, Some(&self.new_tag()));
                    self.send_stateless(now, flow, response);
                }
            }
            Refusal::Drop(reason) => self.stats.invalid(reason.label()),
        }
    }

    fn handle_message(&mut self, now: Instant, flow: Flow, message: Message) {
        match message {
            Message::Response(r) => {
                self.stats.responses_in += 1;
                if let Err(reason) = check_response(&r) {
                    self.stats.invalid(reason.label());
                    return;
                }
                if let Some(stray) = self.txns.recv_response(now, r) {
                    self.stray_response(stray);
                }
            }
            Message::Request(r) => {
                self.stats.requests_in += 1;
                self.handle_request(now, flow, r);
            }
        }
    }

    fn handle_request(&mut self, now: Instant, flow: Flow, request: Request) {
        if self.is_scanner(&request) {
            return self.stats.invalid("scanner");
        }
        let caps = if request.method == Method::Info { &self.info_caps } else { &self.caps };
        let checked = check_request(&request, caps);
        if let Err(Refusal::Drop(reason)) = &checked {
            return self.stats.invalid(reason.label());
        }
        if self.over_transaction_cap(&request) {
            return self.refuse_over_cap(now, flow, &request);
        }
        if self.sheds(&request) {
            self.stats.invites_shed += 1;
            let mut r = Response::for_request(&request, 480, Some(&self.new_tag()));
            r.headers.push(name::RETRY_AFTER, CAP_RETRY_AFTER_SECS.to_string());
            return self.send_stateless(now, flow, r);
        }
        if let Err(refusal) = checked {
            match refusal {
                Refusal::Drop(reason) => self.stats.invalid(reason.label()),
                Refusal::Respond(rejection) => {
                    self.stats.invalid(rejection.cause);
                    if let Received::New { id, request, .. } =
                        self.txns.recv_request(now, flow, request)
                    {
                        let response =
                            rejection.response_to(&request.headers, Some(&self.new_tag()));
                        self.respond(now, id, response);
                    }
                }
            }
            return;
        }
        let (id, request, response_flow) = match self.txns.recv_request(now, flow, request) {
            Received::New { id, request, response_flow } => (id, request, response_flow),
            Received::Absorbed => return,
            Received::Ack { request } => return self.recv_ack(now, request),
        };
        let in_dialog = request.headers.to().is_ok_and(|t| t.tag().is_some());
        match request.method {
            Method::Cancel => self.recv_cancel(now, id, &request),
            _ if in_dialog => self.recv_in_dialog(now, id, request),
            Method::Options => {
                let mut r = Response::for_request(&request, 200, Some(&self.new_tag()));
                self.capability_headers(&mut r);
                self.respond(now, id, r);
            }
            Method::Register => self.events.push_back(UaEvent::Register { txn: id, request, flow }),
            Method::Invite => self.recv_invite(now, id, request, flow, response_flow),
            // BYE, INFO, UPDATE, PRACK, NOTIFY, REFER outside any dialog.
            _ => self.refuse(now, id, &request, 481),
        }
    }

    /// True when `request` would start a server transaction past the cap and is not one of those
    /// always taken (see [`Endpoint::set_max_transactions`]).
    fn over_transaction_cap(&self, request: &Request) -> bool {
        if self.txns.server_count() < self.max_server_transactions
            || request.method == Method::Ack
            || self.txns.matches_server(request)
        {
            return false;
        }
        if request.method == Method::Cancel && self.txns.invite_for_cancel(request).is_some() {
            return false;
        }
        let in_dialog = request.headers.to().is_ok_and(|t| t.tag().is_some());
        !(in_dialog && dialog_id_of_request(request).is_some_and(|d| self.dialogs.contains_key(&d)))
    }

    /// True when `request` is a new call's INVITE to shed while overloaded (not a retransmission,
    /// not in a dialog, not a feature code, from the trunk).
    fn sheds(&self, request: &Request) -> bool {
        self.overloaded
            && request.method == Method::Invite
            && request.headers.to().is_ok_and(|t| t.tag().is_none())
            && !is_feature_code(&request.uri)
            && !self.txns.matches_server(request)
    }

    /// Answers a request past the transaction cap statelessly (no transaction is created).
    fn refuse_over_cap(&mut self, now: Instant, flow: Flow, request: &Request) {
        let status = if request.method != Method::Invite {
            self.stats.requests_over_cap += 1;
            500
        } else if !is_feature_code(&request.uri) && !self.trunk_allows(flow.remote.ip()) {
            // The allow-list holds before any cap: a stranger learns nothing of our load.
            self.stats.invalid("forbidden_source");
            403
        } else {
            self.stats.invites_over_cap += 1;
            480
        };
        let mut r = Response::for_request(request, status, Some(&self.new_tag()));
        if status != 403 {
            r.headers.push(name::RETRY_AFTER, CAP_RETRY_AFTER_SECS.to_string());
        }
        self.send_stateless(now, flow, r);
    }

    fn recv_invite(&mut self, now: Instant, id: TxnId, request: Request, flow: Flow, _rf: Flow) {
        // Feature codes (`*21` …) come from agents, not the trunk: the call logic authenticates
        // them (407), so the trunk's allow-list and numbers do not apply, nor does draining.
        let feature = is_feature_code(&request.uri);
        if !feature && !self.trunk_allows(flow.remote.ip()) {
            self.stats.invalid("forbidden_source");
            return self.refuse(now, id, &request, 403);
        }
        if !feature && !self.is_hotline(&request.uri) {
            return self.refuse(now, id, &request, 404);
        }
        if self.draining && !feature {
            let mut r = Response::for_request(&request, 503, Some(&self.new_tag()));
            r.headers.push(name::RETRY_AFTER, self.config.retry_after.as_secs().to_string());
            return self.respond(now, id, r);
        }
        let session = session_ask(&request, false);
        if session == SessionAsk::TooSmall {
            return self.refuse_too_small(now, id, &request);
        }
        let to_tag = self.new_tag();
        self.open_invites
            .insert(id, OpenInvite { request: request.clone(), flow, to_tag, session });
        self.events.push_back(UaEvent::IncomingCall { txn: id, request, flow });
    }

    fn recv_cancel(&mut self, now: Instant, id: TxnId, cancel: &Request) {
        let Some(invite) = self.txns.invite_for_cancel(cancel) else {
            return self.refuse(now, id, cancel, 481);
        };
        let ok = Response::for_request(cancel, 200, None);
        self.respond(now, id, ok);
        // §9.2: only an INVITE not yet finally answered is cancelled; otherwise the CANCEL has no
        // effect (a 2xx crossing it: RFC 5407 — the call goes on and the caller will BYE).
        if let Some(open) = self.open_invites.remove(&invite) {
            let r = Response::for_request(&open.request, 487, Some(&open.to_tag));
            self.respond(now, invite, r);
            self.events.push_back(UaEvent::CallCancelled { txn: invite });
        }
    }

    fn recv_ack(&mut self, now: Instant, ack: Request) {
        let Some(id) = dialog_id_of_request(&ack) else { return };
        match self.pending_acks.remove(&id) {
            // §13.2.1/§14.2: an offer in our 2xx must be answered in the ACK; a UAC that cannot
            // answer should BYE at once. Ours it is then, so the session does not hang half-set.
            Some(p) if p.offer_outstanding && ack.body.is_empty() => {
                self.end_dialog(now, &id, EndCause::NoAnswerInAck);
            }
            Some(_) => self.events.push_back(UaEvent::Confirmed { dialog: id, body: ack.body }),
            // A repeated ACK (the peer retransmitted it, or the network duplicated it): the 2xx
            // it acknowledges was confirmed already, so the call logic hears of it once.
            None => {}
        }
    }

    fn recv_in_dialog(&mut self, now: Instant, id: TxnId, request: Request) {
        let Some(did) = dialog_id_of_request(&request) else {
            return self.refuse(now, id, &request, 481);
        };
        let Some(dialog) = self.dialogs.get_mut(&did) else {
            // RFC 5407 §3.2.1: a BYE crossing ours is answered 200; the dialog ended already.
            if request.method == Method::Bye && self.byes.values().any(|d| *d == did) {
                let ok = Response::for_request(&request, 200, None);
                return self.respond(now, id, ok);
            }
            return self.refuse(now, id, &request, 481);
        };
        if dialog.recv_request(&request).is_err() {
            return self.refuse(now, id, &request, 500);
        }
        match request.method {
            Method::Bye => {
                let ok = Response::for_request(&request, 200, None);
                self.respond(now, id, ok);
                self.dialogs.remove(&did);
                self.pending_acks.remove(&did);
                self.terminate_pending(now, &did);
                self.events.push_back(UaEvent::Bye { dialog: did });
            }
            Method::Options => {
                let mut r = Response::for_request(&request, 200, None);
                self.capability_headers(&mut r);
                self.respond(now, id, r);
            }
            Method::Info => self.recv_info(now, id, did, &request),
            // RFC 3262 §3: a PRACK that matches no unacknowledged reliable provisional gets 481;
            // we send none, so none matches. The dialog goes on.
            Method::Prack => self.refuse(now, id, &request, 481),
            Method::Invite | Method::Update => self.recv_offer_or_refresh(now, id, did, request),
            _ => self.events.push_back(UaEvent::InDialog { dialog: did, txn: id, request }),
        }
    }

    /// A re-INVITE or UPDATE: the glare and session-timer checks, then up to the call logic
    /// (or, for an UPDATE without a body — a session refresh — answered here).
    fn recv_offer_or_refresh(&mut self, now: Instant, id: TxnId, did: DialogId, request: Request) {
        let is_invite = request.method == Method::Invite;
        let has_offer = !request.body.is_empty();
        let answering_offer = self.open_in_dialog.values().any(|o| {
            o.dialog == did && (o.request.method == Method::Invite || !o.request.body.is_empty())
        });
        // §14.2: a second INVITE while the first is unanswered gets 500 + Retry-After 0–10 s;
        // RFC 3311 §5.2: likewise an UPDATE offer while we owe an answer to an offer.
        if answering_offer && (is_invite || has_offer) {
            let mut r = Response::for_request(&request, 500, None);
            // "Randomly chosen" (§14.2), from the salt, so both sides do not retry in step.
            let n = self.next();
            let wait = (self.salt ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(29) % 11;
            r.headers.push(name::RETRY_AFTER, wait.to_string());
            return self.respond(now, id, r);
        }
        // Our offer (in a 2xx, or in our refreshing re-INVITE) still waits for its answer: no new
        // offer may cross it (§14.2, RFC 3264 §4, RFC 3311 §5.2): 491, and the peer backs off.
        let our_offer_pending = self.pending_acks.get(&did).is_some_and(|p| p.offer_outstanding)
            || self.refreshes.values().any(|r| r.invite && !r.answered && r.dialog == did);
        if our_offer_pending && (is_invite || has_offer) {
            return self.refuse(now, id, &request, 491);
        }
        let session = session_ask(&request, true);
        if session == SessionAsk::TooSmall {
            return self.refuse_too_small(now, id, &request);
        }
        self.open_in_dialog
            .insert(id, OpenInDialog { dialog: did.clone(), request: request.clone(), session });
        if is_invite || has_offer {
            self.events.push_back(UaEvent::InDialog { dialog: did, txn: id, request });
        } else {
            self.accept_in_dialog(now, id, None);
        }
    }

    /// INFO (RFC 6086): 200, and a DTMF digit reported when it carries one.
    fn recv_info(&mut self, now: Instant, id: TxnId, did: DialogId, request: &Request) {
        let ok = Response::for_request(request, 200, None);
        self.respond(now, id, ok);
        let is_dtmf = request
            .headers
            .content_type()
            .ok()
            .flatten()
            .is_some_and(|t| t.essence().eq_ignore_ascii_case(DTMF_RELAY));
        if is_dtmf && let Some((signal, duration_ms)) = parse_dtmf_relay(&request.body) {
            self.events.push_back(UaEvent::Dtmf { dialog: did, signal, duration_ms });
        }
    }

    /// §15.1.2: requests of an ended dialog still waiting for our answer get 487.
    fn terminate_pending(&mut self, now: Instant, dialog: &DialogId) {
        let pending: Vec<TxnId> = self
            .open_in_dialog
            .iter()
            .filter(|(_, o)| o.dialog == *dialog)
            .map(|(txn, _)| *txn)
            .collect();
        for txn in pending {
            if let Some(open) = self.open_in_dialog.remove(&txn) {
                let r = Response::for_request(&open.request, 487, None);
                self.respond(now, txn, r);
            }
        }
    }

    /// Sends BYE on a dialog we end ourselves and reports it.
    fn end_dialog(&mut self, now: Instant, id: &DialogId, cause: EndCause) {
        if !self.dialogs.contains_key(id) {
            return;
        }
        self.refreshes.retain(|_, r| r.dialog != *id);
        self.bye(now, id);
        self.events.push_back(UaEvent::Ended { dialog: id.clone(), cause });
    }

    fn stray_response(&mut self, response: Response) {
        // A 2xx retransmission for an INVITE whose client transaction has ended: ACK it again
        // through its dialog (§13.2.2.4). Anything else matches nothing: drop and count.
        let is_invite_2xx = (200..300).contains(&response.status)
            && response.headers.cseq().is_ok_and(|c| c.method == Method::Invite);
        if is_invite_2xx
            && let Some(id) = dialog_id_of_response(&response)
            && let Some(dialog) = self.dialogs.get(&id)
            && let Ok(cseq) = response.headers.cseq()
        {
            let branch = self.txns.new_branch();
            let ack = dialog.ack(cseq.seq, &via_host(dialog.flow.local), &branch);
            let flow = dialog.flow;
            self.send_request_raw(flow, &ack);
            return;
        }
        self.stats.invalid("stray_response");
    }

    /// Fires due timers: transactions, 2xx retransmissions awaiting an ACK, and session timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txns.handle_timeout(now);
        self.session_timers(now);
        let mut due = Vec::new();
        for (id, p) in &self.pending_acks {
            if p.next <= now || p.give_up <= now {
                due.push(id.clone());
            }
        }
        for id in due {
            let Some(p) = self.pending_acks.get_mut(&id) else { continue };
            if p.give_up <= now {
                self.pending_acks.remove(&id);
                self.events.push_back(UaEvent::AckTimeout { dialog: id });
                continue;
            }
            p.interval = (p.interval * 2).min(self.config.timers.t2);
            p.next = now + p.interval;
            let (txn, response) = (p.txn, p.response.clone());
            // The INVITE transaction (Accepted) carries the retransmission; if it has ended,
            // send it directly on the dialog's flow.
            if self.txns.respond(now, txn, &response).is_err()
                && let Some(flow) = self.dialogs.get(&id).map(|d| d.flow)
            {
                self.stats.responses_out += 1;
                self.transmits.push_back(Transmit { flow, bytes: response.to_bytes() });
            }
        }
        self.flush(now);
    }

    /// When to call [`Endpoint::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let acks = self.pending_acks.values().map(|p| p.next.min(p.give_up)).min();
        let sessions = self
            .dialogs
            .values()
            .filter_map(|d| d.session_timer.as_ref().map(SessionTimer::next_deadline))
            .min();
        [self.txns.poll_timeout(), acks, sessions].into_iter().flatten().min()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    // ---- actions of the call logic -----------------------------------------------------------

    /// Sends `response` on server transaction `txn` (any request).
    pub fn respond(&mut self, now: Instant, txn: TxnId, mut response: Response) {
        if response.headers.get(name::SERVER).is_none() {
            response.headers.push(name::SERVER, self.config.user_agent.clone());
        }
        if response.status >= 200 {
            self.open_invites.remove(&txn);
            self.open_in_dialog.remove(&txn);
        }
        // A refused response (e.g. the transaction ended) has nobody left to hear it.
        let _ = self.txns.respond(now, txn, &response);
        self.flush(now);
    }

    /// Sends a provisional (180/183, with SDP for early media) on an incoming INVITE. We never
    /// send provisionals reliably (RFC 3262): to an INVITE with `Require: 100rel` none is sent
    /// (§3 forbids an unreliable one there; the caller hears 100 Trying, then the final answer).
    pub fn provisional(&mut self, now: Instant, txn: TxnId, status: u16, sdp: Option<Bytes>) {
        let Some(open) = self.open_invites.get(&txn) else { return };
        let requires_100rel = open
            .request
            .headers
            .require()
            .is_ok_and(|tags| tags.iter().any(|t| t.eq_ignore_ascii_case("100rel")));
        if requires_100rel {
            return;
        }
        let mut r = Response::for_request(&open.request, status, Some(&open.to_tag));
        self.contact_header(&mut r.headers, open.flow);
        if let Some(sdp) = sdp {
            r.headers.push(name::CONTENT_TYPE, "application/sdp");
            r.body = sdp;
        }
        self.respond(now, txn, r);
    }

    /// Answers an incoming INVITE with 200 and `sdp`; returns the new dialog. The 2xx is
    /// retransmitted until the ACK arrives ([`UaEvent::Confirmed`]) or 64·T1 passes
    /// ([`UaEvent::AckTimeout`]).
    pub fn answer(&mut self, now: Instant, txn: TxnId, sdp: Bytes) -> Option<DialogId> {
        let open = self.open_invites.get(&txn)?;
        let mut r = Response::for_request(&open.request, 200, Some(&open.to_tag));
        self.contact_header(&mut r.headers, open.flow);
        let offer_outstanding = open.request.body.is_empty() && !sdp.is_empty();
        let mut dialog = Dialog::uas(&open.request, &open.to_tag, open.flow)?;
        dialog.session_timer = session_headers(now, open.session, None, &mut r);
        dialog.local_sdp = (!sdp.is_empty()).then(|| sdp.clone());
        r.headers.push(name::CONTENT_TYPE, "application/sdp");
        r.body = sdp;
        let id = dialog.id.clone();
        self.dialogs.insert(id.clone(), dialog);
        let pending =
            PendingAck::new(txn, r.clone(), offer_outstanding, now, self.config.timers.t1);
        self.pending_acks.insert(id.clone(), pending);
        self.respond(now, txn, r);
        Some(id)
    }

    /// Answers a re-INVITE or UPDATE received in a dialog ([`UaEvent::InDialog`]) with 200 and
    /// `sdp` (our answer to its offer, or our offer when a re-INVITE came without one; `None`
    /// only for an UPDATE without a body). The 200 carries our Contact and, when a session timer
    /// runs, Session-Expires (the request is a refresh: the timer restarts). A 2xx to a re-INVITE
    /// is retransmitted until its ACK ([`UaEvent::Confirmed`]). Returns false when `txn` is not
    /// an open in-dialog request (already answered, or its dialog ended).
    pub fn accept_in_dialog(&mut self, now: Instant, txn: TxnId, sdp: Option<Bytes>) -> bool {
        let Some(open) = self.open_in_dialog.remove(&txn) else { return false };
        let Some(dialog) = self.dialogs.get_mut(&open.dialog) else { return false };
        let mut r = Response::for_request(&open.request, 200, None);
        let current = dialog.session_timer;
        dialog.session_timer = session_headers(now, open.session, current, &mut r);
        if sdp.is_some() {
            dialog.local_sdp = sdp.clone();
        }
        let flow = dialog.flow;
        self.contact_header(&mut r.headers, flow);
        let offer_outstanding = open.request.body.is_empty() && sdp.is_some();
        if let Some(sdp) = sdp {
            r.headers.push(name::CONTENT_TYPE, "application/sdp");
            r.body = sdp;
        }
        if open.request.method == Method::Invite {
            let t1 = self.config.timers.t1;
            let pending = PendingAck::new(txn, r.clone(), offer_outstanding, now, t1);
            self.pending_acks.insert(open.dialog, pending);
        }
        self.respond(now, txn, r);
        true
    }

    /// The INVITE of server transaction `txn` while it awaits our final response.
    pub fn open_invite(&self, txn: TxnId) -> Option<&Request> {
        self.open_invites.get(&txn).map(|o| &o.request)
    }

    /// Refuses an incoming INVITE with `status` (486, 480, 503 …) and optional extra headers.
    pub fn reject(
        &mut self,
        now: Instant,
        txn: TxnId,
        status: u16,
        headers: &[(&'static str, String)],
    ) {
        let Some(open) = self.open_invites.get(&txn) else { return };
        let mut r = Response::for_request(&open.request, status, Some(&open.to_tag));
        for (n, v) in headers {
            r.headers.push(*n, v.clone());
        }
        self.respond(now, txn, r);
    }

    /// Sends an INVITE to `target` over `flow` with `sdp`; From is `from` (a name-addr without tag),
    /// To is the target. Returns the client transaction.
    pub fn invite(
        &mut self,
        now: Instant,
        flow: Flow,
        target: Uri,
        from: &str,
        sdp: Bytes,
        extra: &[(&str, String)],
    ) -> Option<TxnId> {
        let ids = self.new_outgoing_ids();
        self.invite_with(now, flow, target, from, sdp, extra, &ids)
    }

    /// Fresh identifiers for an INVITE we originate.
    pub fn new_outgoing_ids(&mut self) -> OutgoingIds {
        OutgoingIds { call_id: self.new_call_id(), from_tag: self.new_tag(), cseq: 1 }
    }

    /// [`Endpoint::invite`] with given identifiers: the retry of an INVITE a target challenged
    /// (401/407) keeps its Call-ID and From tag with the next CSeq (RFC 3261 §22.2), and carries
    /// the credentials in `extra`.
    #[allow(clippy::too_many_arguments)]
    pub fn invite_with(
        &mut self,
        now: Instant,
        flow: Flow,
        target: Uri,
        from: &str,
        sdp: Bytes,
        extra: &[(&str, String)],
        ids: &OutgoingIds,
    ) -> Option<TxnId> {
        let (call_id, tag) = (ids.call_id.clone(), ids.from_tag.clone());
        let branch = self.txns.new_branch();
        let mut r = Request::new(Method::Invite, target.clone());
        let h = &mut r.headers;
        h.push(
            name::VIA,
            format!(
                "SIP/2.0/{} {};branch={branch};rport",
                flow.transport.via_name(),
                via_host(flow.local)
            ),
        );
        // A B2BUA passes the incoming Max-Forwards minus one in `extra`, so that a loop between
        // two centres ends; otherwise the RFC 3261 §8.1.1.6 default.
        if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name::MAX_FORWARDS)) {
            h.push(name::MAX_FORWARDS, "70");
        }
        h.push(name::FROM, format!("{from};tag={tag}"));
        h.push(name::TO, format!("<{}>", target.as_str()));
        h.push(name::CALL_ID, call_id);
        h.push(name::CSEQ, format!("{} INVITE", ids.cseq));
        h.push(name::USER_AGENT, self.config.user_agent.clone());
        for (n, v) in extra {
            h.push(*n, v.clone());
        }
        self.contact_header(&mut r.headers, flow);
        r.headers.push(name::ALLOW, self.allow_value());
        // RFC 3262 §4: we PRACK reliable provisionals, so agents may send them; RFC 4028: the
        // agent leg has a session timer like the trunk leg, so a vanished phone is noticed.
        r.headers.push(name::SUPPORTED, "100rel, timer");
        r.headers.push(name::SESSION_EXPIRES, session_timer::UAC_SESSION_EXPIRES.to_string());
        r.headers.push(name::CONTENT_TYPE, "application/sdp");
        r.body = sdp;
        let txn = self.txns.send_request(now, flow, r.clone()).ok()?;
        self.stats.requests_out += 1;
        self.sent_invites.insert(
            txn,
            SentInvite {
                request: r,
                flow,
                provisional_seen: false,
                cancel_wanted: false,
                cancelled: false,
                answered: Vec::new(),
                early: Vec::new(),
            },
        );
        self.flush(now);
        Some(txn)
    }

    /// Sends an out-of-dialog non-INVITE request (a keep-alive OPTIONS, our own REGISTER) on
    /// `flow`. The caller writes the request line, From (with tag), To, Call-ID and CSeq; this adds
    /// the top Via with a new branch and `rport`, and Max-Forwards and User-Agent when absent. The
    /// final response comes back as [`UaEvent::Response`] and a missing one as
    /// [`UaEvent::Timeout`], both with the returned transaction.
    pub fn send_request(
        &mut self,
        now: Instant,
        flow: Flow,
        mut request: Request,
    ) -> Option<TxnId> {
        if matches!(request.method, Method::Invite | Method::Ack | Method::Cancel) {
            return None;
        }
        let branch = self.txns.new_branch();
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            flow.transport.via_name(),
            via_host(flow.local)
        );
        let headers = &mut request.headers;
        headers.push_front(name::VIA, via);
        if headers.get(name::MAX_FORWARDS).is_none() {
            headers.push(name::MAX_FORWARDS, "70");
        }
        if headers.get(name::USER_AGENT).is_none() {
            headers.push(name::USER_AGENT, self.config.user_agent.clone());
        }
        let txn = self.txns.send_request(now, flow, request).ok()?;
        self.flush(now);
        Some(txn)
    }

    /// A new Call-ID for a request we originate.
    pub fn new_call_id(&mut self) -> String {
        let n = self.next();
        format!("{:016x}{n:x}@tongdai", self.salt)
    }

    /// A new From tag for a request we originate.
    pub fn new_from_tag(&mut self) -> String {
        self.new_tag()
    }

    /// Cancels an INVITE we sent (§9.1): at once if a provisional arrived, else as soon as one does.
    /// A 2xx that crosses the CANCEL is ACKed and then BYEd by the caller of this method when it sees
    /// the [`UaEvent::Response`].
    pub fn cancel(&mut self, now: Instant, txn: TxnId) {
        let Some(sent) = self.sent_invites.get_mut(&txn) else { return };
        if sent.cancelled {
            return;
        }
        if !sent.provisional_seen {
            sent.cancel_wanted = true;
            return;
        }
        sent.cancelled = true;
        let cancel = cancel_for(&sent.request);
        let flow = sent.flow;
        if self.txns.send_request(now, flow, cancel).is_ok() {
            self.stats.requests_out += 1;
        }
        self.flush(now);
    }

    /// Sends a non-INVITE request in `dialog` (a NOTIFY for a REFER's progress, RFC 3515 §2.4.4)
    /// with `extra` headers and `body`; its response comes back as [`UaEvent::Response`] or
    /// [`UaEvent::Timeout`]. `None` when the dialog is gone.
    pub fn request_in_dialog(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        method: Method,
        extra: &[(&str, String)],
        body: Bytes,
    ) -> Option<TxnId> {
        if matches!(method, Method::Invite | Method::Ack | Method::Cancel | Method::Bye) {
            return None;
        }
        let d = self.dialogs.get_mut(dialog)?;
        let branch = self.txns.new_branch();
        let flow = d.flow;
        let mut r = d.request(method, &via_host(flow.local), &branch);
        for (n, v) in extra {
            r.headers.push(*n, v.clone());
        }
        self.contact_header(&mut r.headers, flow);
        r.body = body;
        let txn = self.txns.send_request(now, flow, r).ok()?;
        self.stats.requests_out += 1;
        self.flush(now);
        Some(txn)
    }

    /// Hangs up an established dialog with BYE; the dialog is forgotten at once (the BYE's
    /// response is only informative).
    pub fn bye(&mut self, now: Instant, dialog: &DialogId) -> Option<TxnId> {
        let mut d = self.dialogs.remove(dialog)?;
        self.pending_acks.remove(dialog);
        self.terminate_pending(now, dialog);
        let branch = self.txns.new_branch();
        let bye = d.request(Method::Bye, &via_host(d.flow.local), &branch);
        let txn = self.txns.send_request(now, d.flow, bye).ok()?;
        self.stats.requests_out += 1;
        self.byes.insert(txn, dialog.clone());
        self.flush(now);
        Some(txn)
    }

    // ---- internals ---------------------------------------------------------------------------

    /// Moves transaction output into ours and turns transaction events into UA events.
    fn flush(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.txns.poll_transmit() {
                if t.bytes.starts_with(b"SIP/2.0") {
                    self.stats.responses_out += 1;
                } else {
                    self.stats.requests_out += 1;
                }
                self.transmits.push_back(t);
                progressed = true;
            }
            while let Some(e) = self.txns.poll_event() {
                self.txn_event(now, e);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }

    fn txn_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Response { id, response } => self.client_response(now, id, response),
            Event::Timeout { id } => {
                // A PRACK without answer leaves the INVITE to its own final response or timeout.
                if self.pracks.remove(&id) {
                    return;
                }
                self.sent_invites.remove(&id);
                self.byes.remove(&id);
                if let Some(r) = self.refreshes.remove(&id) {
                    return self.end_dialog(now, &r.dialog, EndCause::RefreshFailed);
                }
                self.events.push_back(UaEvent::Timeout { txn: id });
            }
            Event::NoAck { .. } => {}
            Event::Ack { request, .. } => self.recv_ack(now, request),
            Event::Terminated { id } => {
                self.pracks.remove(&id);
                self.open_invites.remove(&id);
                self.byes.remove(&id);
                self.refreshes.remove(&id);
                if self
                    .sent_invites
                    .get(&id)
                    .is_some_and(|s| !s.provisional_seen || s.cancelled || !s.answered.is_empty())
                {
                    self.sent_invites.remove(&id);
                }
            }
        }
    }

    fn client_response(&mut self, now: Instant, txn: TxnId, mut response: Response) {
        let status = response.status;
        if status >= 200 {
            self.byes.remove(&txn);
        }
        // The answer to our PRACK (RFC 3262 §4) needs nobody: the INVITE goes on either way.
        if self.pracks.contains(&txn) {
            if status >= 200 {
                self.pracks.remove(&txn);
            }
            return;
        }
        // Our own session refreshes are the endpoint's business, not the call logic's.
        if let Some(r) = self.refreshes.get_mut(&txn) {
            if status < 200 {
                return;
            }
            let did = r.dialog.clone();
            if r.answered {
                // A retransmission of the 2xx to our re-INVITE (RFC 6026 Accepted): ACK again.
                return self.ack_2xx(&did, &response);
            }
            r.answered = true;
            if !(r.invite && (200..300).contains(&status)) {
                self.refreshes.remove(&txn);
            }
            return self.refresh_response(now, did, &response);
        }
        let mut dialog_id = None;
        if let Some(sent) = self.sent_invites.get_mut(&txn) {
            if (101..200).contains(&status) || status == 100 {
                sent.provisional_seen = true;
                if sent.cancel_wanted {
                    sent.cancel_wanted = false;
                    sent.cancelled = true;
                    let cancel = cancel_for(&sent.request);
                    let flow = sent.flow;
                    if self.txns.send_request(now, flow, cancel).is_ok() {
                        self.stats.requests_out += 1;
                    }
                }
                if let Some(rseq) = reliable_rseq(&response) {
                    let branch = self.txns.new_branch();
                    let flow = sent.flow;
                    match sent.reliable(&response, rseq, &via_host(flow.local), &branch) {
                        Provisional::Plain => {}
                        Provisional::Discard => return,
                        Provisional::Reliable(prack) => {
                            if let Ok(id) = self.txns.send_request(now, flow, *prack) {
                                self.pracks.insert(id);
                            }
                        }
                    }
                }
            } else if (200..300).contains(&status) {
                // ACK every 2xx (§13.2.2.4), then hand it up with its dialog — once per dialog:
                // a copy (a network duplicate, or a retransmission because our ACK was lost,
                // which RFC 6026's Accepted state passes up) is ACKed again and goes no further.
                let (request, flow) = (sent.request.clone(), sent.flow);
                if let Some(id) = dialog_id_of_response(&response) {
                    let repeat = sent.answered.contains(&id.remote_tag);
                    if !repeat {
                        sent.answered.push(id.remote_tag.clone());
                    }
                    // The confirmed dialog goes on from the CSeq the PRACKs reached.
                    let early = sent.early(&id.remote_tag);
                    let early_seq = early.map(|e| e.dialog.local_seq);
                    // The answer came in a reliable provisional (RFC 3262 §5, RFC 3264 §4): a
                    // 2xx without a body is reported with it, so the call logic finds it there.
                    if let Some(answer) = early.and_then(|e| e.answer.clone())
                        && response.body.is_empty()
                        && response.headers.get(name::CONTENT_TYPE).is_none()
                    {
                        response.headers.push(name::CONTENT_TYPE, "application/sdp");
                        response.body = answer;
                    }
                    let dialog = match self.dialogs.get_mut(&id) {
                        Some(d) => {
                            if !repeat {
                                d.update_from_response(&response);
                            }
                            Some(d.clone())
                        }
                        // A copy for a dialog already hung up is still ACKed. A dialog that PRACKs
                        // made early keeps its CSeq; the 2xx sets its route set (§13.2.2.4).
                        None => Dialog::uac(&request, &response, flow).map(|mut d| {
                            d.local_seq = d.local_seq.max(early_seq.unwrap_or(0));
                            d
                        }),
                    };
                    if let Some(d) = dialog {
                        let branch = self.txns.new_branch();
                        let seq = response.headers.cseq().map(|c| c.seq).unwrap_or(1);
                        let ack = d.ack(seq, &via_host(flow.local), &branch);
                        self.send_request_raw(flow, &ack);
                        if repeat {
                            return;
                        }
                        dialog_id = Some(id.clone());
                        let entry = self.dialogs.entry(id).or_insert(d);
                        // RFC 4028 §7.2: the 2xx's Session-Expires starts the agent leg's timer.
                        if entry.session_timer.is_none() {
                            entry.session_timer = session_timer::uac_timer(now, &response);
                        }
                    }
                }
            } else if status >= 300 {
                self.sent_invites.remove(&txn);
            }
        }
        self.events.push_back(UaEvent::Response { txn, response, dialog: dialog_id });
    }

    fn send_request_raw(&mut self, flow: Flow, request: &Request) {
        self.stats.requests_out += 1;
        self.transmits.push_back(Transmit { flow, bytes: request.to_bytes() });
    }

    fn send_stateless(&mut self, _now: Instant, flow: Flow, response: Response) {
        let flow = match response.headers.top_via() {
            Ok(v) if !self.config.force_rport => super::transport::response_flow(flow, &v),
            _ => flow,
        };
        self.stats.responses_out += 1;
        self.transmits.push_back(Transmit { flow, bytes: response.to_bytes() });
    }

    fn refuse(&mut self, now: Instant, txn: TxnId, request: &Request, status: u16) {
        let r = Response::for_request(request, status, Some(&self.new_tag()));
        self.respond(now, txn, r);
    }

    fn capability_headers(&self, r: &mut Response) {
        r.headers.push(name::ALLOW, self.allow_value());
        r.headers.push(name::ACCEPT, self.caps.content_types.join(", "));
        r.headers.push(name::SUPPORTED, self.caps.option_tags.join(", "));
    }

    fn allow_value(&self) -> String {
        self.caps.methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
    }

    fn contact_header(&self, headers: &mut super::message::Headers, flow: Flow) {
        let transport = if flow.transport.is_reliable() { ";transport=tcp" } else { "" };
        headers.push(name::CONTACT, format!("<sip:tongdai@{}{transport}>", via_host(flow.local)));
    }

    fn trunk_allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.config.trunk_allow.iter().any(|net| net.contains(&ip))
    }

    fn is_hotline(&self, uri: &Uri) -> bool {
        let dialled = uri.tel_number().or_else(|| uri.user()).unwrap_or("");
        // Visual separators are allowed in tel: numbers and some trunks' user parts.
        let digits: String =
            dialled.chars().filter(|c| !matches!(c, '-' | '.' | '(' | ')')).collect();
        self.config.numbers.contains(&digits)
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn new_tag(&mut self) -> String {
        let n = self.next();
        format!("{:x}", (self.salt.rotate_left(17) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }
}

/// `Signal=` and `Duration=` of an `application/dtmf-relay` body.
fn parse_dtmf_relay(body: &[u8]) -> Option<(char, Option<u32>)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut signal = None;
    let mut duration = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                let mut chars = value.chars();
                signal = match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii_digit() || "*#ABCDabcd".contains(c) => {
                        Some(c.to_ascii_uppercase())
                    }
                    _ => None,
                };
            }
            "duration" => duration = value.parse().ok(),
            _ => {}
        }
    }
    signal.map(|s| (s, duration))
}

/// The host:port we put in Via and Contact for a local address.
pub fn via_host(local: SocketAddr) -> String {
    match local {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// The CANCEL for an INVITE we sent (§9.1): same Request-URI, Call-ID, From, To, CSeq number and
/// top Via (so the same branch), Route headers copied.
fn cancel_for(invite: &Request) -> Request {
    let mut c = Request::new(Method::Cancel, invite.uri.clone());
    let h = &invite.headers;
    if let Ok(via) = h.top_via() {
        c.headers.push(name::VIA, via.to_string());
    }
    for n in [name::MAX_FORWARDS, name::FROM, name::TO, name::CALL_ID] {
        if let Some(v) = h.get(n) {
            c.headers.push(n, v.clone());
        }
    }
    if let Ok(cseq) = h.cseq() {
        c.headers.push(name::CSEQ, format!("{} CANCEL", cseq.seq));
    }
    for r in h.get_all(name::ROUTE) {
        c.headers.push(name::ROUTE, r.clone());
    }
    c
}

/// The dialog a request belongs to, from our side: local tag = To tag, remote tag = From tag.
fn dialog_id_of_request(r: &Request) -> Option<DialogId> {
    Some(DialogId {
        call_id: r.headers.call_id().ok()?.to_string(),
        local_tag: r.headers.to().ok()?.tag()?.to_string(),
        remote_tag: r.headers.from().ok()?.tag()?.to_string(),
    })
}

/// The dialog a response to our request belongs to: local tag = From tag, remote = To tag.
fn dialog_id_of_response(r: &Response) -> Option<DialogId> {
    Some(DialogId {
        call_id: r.headers.call_id().ok()?.to_string(),
        local_tag: r.headers.from().ok()?.tag()?.to_string(),
        remote_tag: r.headers.to().ok()?.tag()?.to_string(),
    })
}

/// True when `uri` dials an agent feature code: its user part starts with `*` (or `%2A`).
fn is_feature_code(uri: &Uri) -> bool {
    uri.user().is_some_and(|u| {
        u.starts_with('*') || u.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%2a"))
    })
}
