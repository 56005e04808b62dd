//! Scripted SIP peers for the simulator, written from RFC 3261 independently of tongdai's own
//! transaction layer (only its message parser is shared): a trunk placing a call, an OPTIONS
//! prober, an agent's softphone that registers with digest and answers. Test support.

use std::any::Any;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tongdai::sip::message::{Message, Response, parse_datagram};
use tongdai::sip::transport::Transport;

use super::{Peer, T1, T2};

/// A parsed view of what a peer received.
pub(crate) fn parse(bytes: &[u8]) -> Option<Message> {
    parse_datagram(Bytes::copy_from_slice(bytes)).ok()
}

pub(crate) fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub(crate) fn tag_of(value: &str) -> Option<String> {
    value.split(';').find_map(|p| p.trim().strip_prefix("tag=")).map(str::to_string)
}

pub(crate) fn branch_of(text: &str) -> Option<String> {
    let via = header(text, "Via")?;
    via.split(';').find_map(|p| p.trim().strip_prefix("branch=")).map(str::to_string)
}

/// A non-INVITE client transaction on UDP (RFC 3261 §17.1.2): Timer E retransmits from T1,
/// doubling to T2, until a final response; Timer F gives up at 64·T1.
#[derive(Debug, Clone)]
pub struct NonInviteClient {
    bytes: Bytes,
    next: Option<Duration>,
    interval: Duration,
    give_up: Duration,
    /// Times it was sent (retransmissions included).
    pub sent: Vec<Duration>,
    /// The final responses received (status, time); retransmissions included.
    pub finals: Vec<(u16, Duration)>,
    /// Over a reliable transport Timer E does not retransmit (§17.1.2.2); Timer F still runs.
    pub reliable: bool,
}

impl NonInviteClient {
    /// Starts the transaction at `now`; the first copy goes into `out`.
    pub fn start(now: Duration, bytes: Bytes, out: &mut Vec<Bytes>) -> NonInviteClient {
        out.push(bytes.clone());
        NonInviteClient {
            bytes,
            next: Some(now + T1),
            interval: T1,
            give_up: now + T1 * 64,
            sent: vec![now],
            finals: Vec::new(),
            reliable: false,
        }
    }

    /// When it wants [`NonInviteClient::on_wake`] next.
    pub fn wake(&self) -> Option<Duration> {
        self.next
    }

    /// Timer E or F fired.
    pub fn on_wake(&mut self, now: Duration, out: &mut Vec<Bytes>) {
        if self.next.is_some_and(|n| n <= now) {
            if now >= self.give_up {
                self.next = None;
                return;
            }
            if self.reliable {
                self.next = Some(self.give_up);
                return;
            }
            out.push(self.bytes.clone());
            self.sent.push(now);
            self.interval = (self.interval * 2).min(T2);
            self.next = Some(now + self.interval);
        }
    }

    /// A response arrived.
    pub fn on_response(&mut self, now: Duration, status: u16) {
        if status >= 200 {
            self.finals.push((status, now));
            self.next = None;
        } else {
            // Proceeding: retransmissions continue every T2 (§17.1.2.2).
            if self.next.is_some() {
                self.next = Some(now + T2);
            }
            self.interval = T2;
        }
    }
}

/// A trunk placing one call (the UAC side of RFC 3261 §17.1.1 written independently of tongdai):
/// INVITE with Timer A retransmissions until a response, ACK to every 2xx (and to non-2xx finals),
/// optionally a BYE once the call is up, and optionally OPTIONS pings.
pub struct TrunkCaller {
    addr: SocketAddr,
    target: SocketAddr,
    call_id: String,
    invite: Bytes,
    invite_next: Option<Duration>,
    invite_interval: Duration,
    invite_give_up: Duration,
    /// When to send BYE after the first 2xx (None: never).
    pub bye_after: Option<Duration>,
    /// When to send BYE once the call is up, asked again at every wake so the test can move it
    /// (e.g. once an agent answers); an absolute time from the start. Used when `bye_after` is None;
    /// before the call is answered (early media) it is when the caller CANCELs.
    pub bye_when: Option<Box<dyn Fn() -> Option<Duration>>>,
    bye_due: Option<Duration>,
    /// When the caller hangs up before the answer: CANCEL, sent once a provisional has arrived
    /// (§9.1). None: never.
    pub cancel_at: Option<Duration>,
    provisional_seen: bool,
    reliable: bool,
    to_tag: Option<String>,
    /// Times the INVITE was sent.
    pub invites_sent: Vec<Duration>,
    /// Every response received: (status, CSeq method, time).
    pub responses: Vec<(u16, String, Duration)>,
    /// Times an ACK was sent.
    pub acks_sent: Vec<Duration>,
    /// The BYE transaction, once started.
    pub bye: Option<NonInviteClient>,
    /// The CANCEL transaction, once started.
    pub cancel: Option<NonInviteClient>,
    /// Times a BYE from the far end arrived (each answered 200); the call is then over.
    pub byes_received: Vec<Duration>,
    /// Send a re-INVITE (putting the call on hold) at this time once the call is up; after a
    /// 491 it is sent again 2.5 s later (§14.1: we own the Call-ID). Sent once per attempt, with
    /// no retransmission: for tests on clean links.
    pub reinvite_at: Option<Duration>,
    /// The CSeq of our re-INVITE awaiting its final response.
    reinvite_pending: Option<u32>,
    /// Final responses to our re-INVITEs: (status, time).
    pub reinvite_finals: Vec<(u16, Duration)>,
    /// Re-INVITEs from the far end: (time, the status we answered: 491 while ours is pending).
    pub reinvites_received: Vec<(Duration, u16)>,
    /// Our last CSeq in the dialog.
    cseq: u32,
    /// Our SDP offer (answered again in our 200 to a re-INVITE).
    sdp: Option<String>,
}

impl TrunkCaller {
    /// A caller at `addr` dialling `111` at `target`, starting at time 0.
    pub fn new(addr: SocketAddr, target: SocketAddr, call_id: &str) -> TrunkCaller {
        let invite = format!(
            "INVITE sip:111@{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {addr};branch=z9hG4bK-{call_id}-inv;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:0901234567@{addr}>;tag=caller-{call_id}\r\n\
             To: <sip:111@{target}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:trunk@{addr}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: 0\r\n\r\n"
        );
        TrunkCaller {
            addr,
            target,
            call_id: call_id.to_string(),
            invite: Bytes::from(invite),
            invite_next: Some(Duration::ZERO),
            invite_interval: T1,
            invite_give_up: T1 * 64,
            bye_after: None,
            bye_when: None,
            bye_due: None,
            cancel_at: None,
            provisional_seen: false,
            reliable: false,
            to_tag: None,
            invites_sent: Vec::new(),
            responses: Vec::new(),
            acks_sent: Vec::new(),
            bye: None,
            cancel: None,
            byes_received: Vec::new(),
            reinvite_at: None,
            reinvite_pending: None,
            reinvite_finals: Vec::new(),
            reinvites_received: Vec::new(),
            cseq: 1,
            sdp: None,
        }
    }

    /// The same caller, asking for RFC 4028 session timers with `interval` seconds and the UAS
    /// (tongdai) as the refresher.
    pub fn with_session_timer(mut self, interval: u32) -> TrunkCaller {
        let text = String::from_utf8_lossy(&self.invite).replace(
            "Contact: ",
            &format!("Session-Expires: {interval};refresher=uas\r\nSupported: timer\r\nContact: "),
        );
        self.invite = Bytes::from(text);
        self
    }

    /// The same caller, sending its INVITE at `at` rather than at time 0.
    pub fn starting_at(mut self, at: Duration) -> TrunkCaller {
        self.invite_next = Some(at);
        self.invite_give_up = at + T1 * 64;
        self
    }

    /// The BYE time `bye_when` asks for, while the call is up and no BYE was sent.
    fn bye_wanted(&self) -> Option<Duration> {
        if self.to_tag.is_none() || self.bye.is_some() || !self.byes_received.is_empty() {
            return None;
        }
        self.bye_when.as_ref().and_then(|f| f())
    }

    fn provisional_at(&self) -> Duration {
        self.responses.iter().find(|r| r.0 < 200).map(|r| r.2).unwrap_or_default()
    }

    /// The same caller over TCP: Via says so, and nothing is retransmitted (§17.1.1.2).
    pub fn over_tcp(mut self) -> TrunkCaller {
        self.reliable = true;
        let text = String::from_utf8_lossy(&self.invite).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        self.invite = Bytes::from(text);
        self
    }

    /// The same caller, dialling `number` instead of 111.
    pub fn dialling(mut self, number: &str) -> TrunkCaller {
        let text =
            String::from_utf8_lossy(&self.invite).replace("sip:111@", &format!("sip:{number}@"));
        self.invite = Bytes::from(text);
        self
    }

    /// The same caller, offering `sdp` in its INVITE.
    pub fn with_offer(mut self, sdp: &str) -> TrunkCaller {
        self.sdp = Some(sdp.to_string());
        let text = String::from_utf8_lossy(&self.invite).replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()),
        );
        self.invite = Bytes::from(text);
        self
    }

    /// Statuses received for `method`, in order (retransmissions included).
    pub fn statuses(&self, method: &str) -> Vec<u16> {
        self.responses.iter().filter(|r| r.1 == method).map(|r| r.0).collect()
    }

    fn ack(&self, branch: &str, to: &str) -> Bytes {
        self.ack_cseq(branch, to, 1)
    }

    fn ack_cseq(&self, branch: &str, to: &str, cseq: u32) -> Bytes {
        let (addr, target, call_id) = (self.addr, self.target, &self.call_id);
        let t = if self.reliable { "TCP" } else { "UDP" };
        Bytes::from(format!(
            "ACK sip:111@{target} SIP/2.0\r\n\
             Via: SIP/2.0/{t} {addr};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:0901234567@{addr}>;tag=caller-{call_id}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    }

    /// A re-INVITE putting the call on hold (our offer, `sendonly`).
    fn reinvite_request(&mut self) -> Bytes {
        self.cseq += 1;
        let (addr, target, call_id, n) = (self.addr, self.target, &self.call_id, self.cseq);
        let tag = self.to_tag.as_deref().unwrap_or("");
        let sdp =
            self.sdp.clone().unwrap_or_default().replace("2 1 IN", "2 2 IN") + "a=sendonly\r\n";
        Bytes::from(format!(
            "INVITE sip:tongdai@{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {addr};branch=z9hG4bK-{call_id}-re{n};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:0901234567@{addr}>;tag=caller-{call_id}\r\n\
             To: <sip:111@{target}>;tag={tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {n} INVITE\r\n\
             Contact: <sip:trunk@{addr}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ))
    }

    fn cancel_request(&self) -> Bytes {
        let (addr, target, call_id) = (self.addr, self.target, &self.call_id);
        let t = if self.reliable { "TCP" } else { "UDP" };
        Bytes::from(format!(
            "CANCEL sip:111@{target} SIP/2.0\r\n\
             Via: SIP/2.0/{t} {addr};branch=z9hG4bK-{call_id}-inv;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:0901234567@{addr}>;tag=caller-{call_id}\r\n\
             To: <sip:111@{target}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 CANCEL\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    }

    fn cancel_due(&self) -> Option<Duration> {
        if self.cancel.is_some() || !self.provisional_seen || self.to_tag.is_some() {
            return None;
        }
        // Unanswered (early media): `bye_when` says when the caller gives up, by CANCEL.
        self.cancel_at.or_else(|| self.bye_when.as_ref().and_then(|f| f()))
    }

    fn bye_request(&mut self) -> Bytes {
        self.cseq += 1;
        let n = self.cseq;
        let (addr, target, call_id) = (self.addr, self.target, &self.call_id);
        let t = if self.reliable { "TCP" } else { "UDP" };
        let tag = self.to_tag.as_deref().unwrap_or("");
        Bytes::from(format!(
            "BYE sip:tongdai@{target} SIP/2.0\r\n\
             Via: SIP/2.0/{t} {addr};branch=z9hG4bK-{call_id}-bye;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:0901234567@{addr}>;tag=caller-{call_id}\r\n\
             To: <sip:111@{target}>;tag={tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {n} BYE\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    }
}

impl Peer for TrunkCaller {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn on_receive(&mut self, now: Duration, bytes: &[u8], out: &mut Vec<Bytes>) {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let r = match parse(bytes) {
            Some(Message::Response(r)) => r,
            Some(Message::Request(req)) => {
                // The far end's requests in the dialog: its BYE (200, and the call is over), its
                // re-INVITE (200 with our description, or 491 while ours is pending), and the
                // ACK of our 200 (no answer).
                let status = match req.method.as_str() {
                    "ACK" => return,
                    "BYE" => {
                        self.byes_received.push(now);
                        self.bye_due = None;
                        200
                    }
                    "INVITE" => {
                        let status = if self.reinvite_pending.is_some() { 491 } else { 200 };
                        self.reinvites_received.push((now, status));
                        status
                    }
                    _ => 200,
                };
                let phrase = tongdai::sip::message::reason_phrase(status);
                let mut ok = format!("SIP/2.0 {status} {phrase}\r\n");
                for l in text.lines().skip(1).take_while(|l| !l.is_empty()) {
                    let name = l.split(':').next().unwrap_or("").trim();
                    if ["Via", "From", "To", "Call-ID", "CSeq"]
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(name))
                    {
                        ok.push_str(l);
                        ok.push_str("\r\n");
                    }
                }
                match (&self.sdp, req.method.as_str(), status) {
                    (Some(sdp), "INVITE", 200) => {
                        ok.push_str(&format!("Contact: <sip:trunk@{}>\r\n", self.addr));
                        ok.push_str("Content-Type: application/sdp\r\n");
                        ok.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
                    }
                    _ => ok.push_str("Content-Length: 0\r\n\r\n"),
                }
                out.push(Bytes::from(ok));
                return;
            }
            None => return,
        };
        let method = r.headers.cseq().map(|c| c.method.as_str().to_string()).unwrap_or_default();
        self.responses.push((r.status, method.clone(), now));
        if method == "BYE" {
            if let Some(bye) = self.bye.as_mut() {
                bye.on_response(now, r.status);
            }
            return;
        }
        if method == "CANCEL" {
            if let Some(cancel) = self.cancel.as_mut() {
                cancel.on_response(now, r.status);
            }
            return;
        }
        if method != "INVITE" {
            return;
        }
        let seq = r.headers.cseq().map(|c| c.seq).unwrap_or(1);
        if seq > 1 {
            // The answer to our re-INVITE.
            if r.status < 200 || self.reinvite_pending != Some(seq) {
                return;
            }
            self.reinvite_pending = None;
            self.reinvite_finals.push((r.status, now));
            let to = header(&text, "To").unwrap_or("").to_string();
            if r.status >= 300 {
                out.push(self.ack_cseq(&format!("z9hG4bK-{}-re{seq}", self.call_id), &to, seq));
                if r.status == 491 {
                    self.reinvite_at = Some(now + Duration::from_millis(2500));
                }
            } else {
                out.push(self.ack_cseq(&format!("z9hG4bK-{}-reack{seq}", self.call_id), &to, seq));
            }
            return;
        }
        // Any response stops Timer A (§17.1.1.2); a final one stops Timer B too.
        self.invite_next = None;
        self.provisional_seen |= r.status < 200;
        let to = header(&text, "To").unwrap_or("").to_string();
        if r.status >= 300 {
            // Non-2xx: the ACK belongs to the INVITE transaction (same branch).
            out.push(self.ack(&format!("z9hG4bK-{}-inv", self.call_id), &to));
            self.acks_sent.push(now);
        } else if r.status >= 200 {
            // §13.2.2.4: every 2xx (retransmissions too) gets an ACK, a new transaction.
            if self.to_tag.is_none() {
                self.to_tag = tag_of(&to);
                self.bye_due = self.bye_after.map(|d| now + d);
            }
            out.push(self.ack(&format!("z9hG4bK-{}-ack", self.call_id), &to));
            self.acks_sent.push(now);
        }
    }

    fn on_wake(&mut self, now: Duration, out: &mut Vec<Bytes>) {
        if self.invite_next.is_some_and(|n| n <= now) {
            if now >= self.invite_give_up {
                self.invite_next = None;
            } else {
                out.push(self.invite.clone());
                self.invites_sent.push(now);
                let next = if self.reliable {
                    // Timer A is not armed on a reliable transport; nothing more to send.
                    self.invite_give_up
                } else if self.invites_sent.len() == 1 {
                    now + self.invite_interval
                } else {
                    self.invite_interval *= 2;
                    now + self.invite_interval
                };
                self.invite_next = Some(next);
            }
        }
        if self.cancel_due().is_some_and(|d| d <= now) {
            let mut cancel = NonInviteClient::start(now, self.cancel_request(), out);
            cancel.reliable = self.reliable;
            self.cancel = Some(cancel);
        } else if let Some(cancel) = self.cancel.as_mut() {
            cancel.on_wake(now, out);
        }
        if self.to_tag.is_some() && self.bye.is_none() && self.reinvite_at.is_some_and(|t| t <= now)
        {
            self.reinvite_at = None;
            let request = self.reinvite_request();
            self.reinvite_pending = Some(self.cseq);
            out.push(request);
        }
        if self.bye_due.is_some_and(|d| d <= now) || self.bye_wanted().is_some_and(|d| d <= now) {
            self.bye_due = None;
            let mut bye = NonInviteClient::start(now, self.bye_request(), out);
            bye.reliable = self.reliable;
            self.bye = Some(bye);
        } else if let Some(bye) = self.bye.as_mut() {
            bye.on_wake(now, out);
        }
    }

    fn next_wake(&self) -> Option<Duration> {
        let cancel_due = self.cancel_due().map(|d| d.max(self.provisional_at()));
        [
            self.invite_next,
            self.bye_due,
            self.bye_wanted(),
            self.reinvite_at.filter(|_| self.to_tag.is_some() && self.bye.is_none()),
            self.bye.as_ref().and_then(NonInviteClient::wake),
            cancel_due,
            self.cancel.as_ref().and_then(NonInviteClient::wake),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn transport(&self) -> Transport {
        if self.reliable { Transport::Tcp } else { Transport::Udp }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A peer that sends one out-of-dialog OPTIONS (a trunk's health probe) at time 0, per §17.1.2.
pub struct Pinger {
    addr: SocketAddr,
    target: SocketAddr,
    /// The transaction, once started.
    pub txn: Option<NonInviteClient>,
}

impl Pinger {
    /// A pinger at `addr` probing `target`.
    pub fn new(addr: SocketAddr, target: SocketAddr) -> Pinger {
        Pinger { addr, target, txn: None }
    }
}

impl Peer for Pinger {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn on_receive(&mut self, now: Duration, bytes: &[u8], _out: &mut Vec<Bytes>) {
        if let (Some(Message::Response(r)), Some(t)) = (parse(bytes), self.txn.as_mut()) {
            t.on_response(now, r.status);
        }
    }

    fn on_wake(&mut self, now: Duration, out: &mut Vec<Bytes>) {
        match self.txn.as_mut() {
            Some(t) => t.on_wake(now, out),
            None => {
                let (addr, target) = (self.addr, self.target);
                let options = format!(
                    "OPTIONS sip:{target} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {addr};branch=z9hG4bK-ping1;rport\r\n\
                     Max-Forwards: 70\r\n\
                     From: <sip:probe@{addr}>;tag=probe1\r\n\
                     To: <sip:{target}>\r\n\
                     Call-ID: ping1@{addr}\r\n\
                     CSeq: 1 OPTIONS\r\n\
                     Content-Length: 0\r\n\r\n"
                );
                self.txn = Some(NonInviteClient::start(now, Bytes::from(options), out));
            }
        }
    }

    fn next_wake(&self) -> Option<Duration> {
        match &self.txn {
            None => Some(Duration::ZERO),
            Some(t) => t.wake(),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An agent's softphone answering our INVITEs (UAS side, written independently of tongdai): 180
/// at once, 200 after `answer_after` (or never), the final response retransmitted per Timer G
/// (T1 doubling to T2) until its ACK, for 64·T1; CANCEL before the answer gets 200 + 487; BYE 200;
/// a retransmitted INVITE gets the last response again.
pub struct Agent {
    addr: SocketAddr,
    /// Delay from the INVITE to the 200 (None: never answers).
    pub answer_after: Option<Duration>,
    /// Delay from the INVITE to the 180 (None: never rings).
    pub ring_after: Option<Duration>,
    invite: Option<String>,
    invite_at: Duration,
    rang: bool,
    last: Option<Bytes>,
    final_rtx: Option<(Duration, Duration, Duration)>,
    /// The SDP answer in our 200 (None: no body).
    pub sdp: Option<String>,
    /// Register first as (user, password) with the endpoint at `registrar`, digest MD5.
    pub credentials: Option<(String, String)>,
    /// The registrar's address.
    pub registrar: Option<SocketAddr>,
    register: Option<NonInviteClient>,
    register_cseq: u32,
    /// True once a REGISTER got 200.
    pub registered: bool,
    /// Every request received: (start line method, time).
    pub requests: Vec<(String, Duration)>,
    /// Every response sent: (status, CSeq method, time).
    pub responses: Vec<(u16, String, Duration)>,
}

impl Agent {
    /// An agent at `addr` that rings at once and answers after `answer_after`.
    pub fn new(addr: SocketAddr, answer_after: Option<Duration>) -> Agent {
        Agent {
            addr,
            answer_after,
            ring_after: Some(Duration::ZERO),
            invite: None,
            invite_at: Duration::ZERO,
            rang: false,
            last: None,
            final_rtx: None,
            sdp: None,
            credentials: None,
            registrar: None,
            register: None,
            register_cseq: 0,
            registered: false,
            requests: Vec::new(),
            responses: Vec::new(),
        }
    }

    /// Requests received with `method`.
    pub fn received(&self, method: &str) -> Vec<Duration> {
        self.requests.iter().filter(|r| r.0 == method).map(|r| r.1).collect()
    }

    fn response(&mut self, now: Duration, request: &str, status: u16, out: &mut Vec<Bytes>) {
        let mut r =
            format!("SIP/2.0 {status} {}\r\n", tongdai::sip::message::reason_phrase(status));
        for l in request.lines().skip(1).take_while(|l| !l.is_empty()) {
            let name = l.split(':').next().unwrap_or("").trim();
            if ["Via", "From", "Call-ID", "CSeq"].iter().any(|n| n.eq_ignore_ascii_case(name)) {
                r.push_str(l);
                r.push_str("\r\n");
            } else if name.eq_ignore_ascii_case("To") {
                r.push_str(l);
                if status > 100 && tag_of(l).is_none() {
                    r.push_str(";tag=agent1");
                }
                r.push_str("\r\n");
            }
        }
        if status > 100 && status < 300 {
            r.push_str(&format!("Contact: <sip:agent@{}>\r\n", self.addr));
        }
        let method = header(request, "CSeq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string();
        match &self.sdp {
            Some(sdp) if status == 200 && method == "INVITE" => {
                r.push_str("Content-Type: application/sdp\r\n");
                r.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
            }
            _ => r.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.responses.push((status, method.clone(), now));
        let bytes = Bytes::from(r);
        if method == "INVITE" {
            self.last = Some(bytes.clone());
            if status >= 200 {
                self.final_rtx = Some((now + T1, T1, now + T1 * 64));
            }
        }
        out.push(bytes);
    }

    fn register_request(&mut self, authorization: Option<String>) -> Bytes {
        let (user, _) = self.credentials.clone().unwrap_or_default();
        let registrar = self.registrar.expect("registrar address");
        self.register_cseq += 1;
        let (addr, n) = (self.addr, self.register_cseq);
        let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        Bytes::from(format!(
            "REGISTER sip:{registrar} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {addr};branch=z9hG4bK-reg{n};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{registrar}>;tag=reg-{user}\r\n\
             To: <sip:{user}@{registrar}>\r\n\
             Call-ID: reg-{user}@{addr}\r\n\
             CSeq: {n} REGISTER\r\n\
             Contact: <sip:{user}@{addr}>\r\n\
             Expires: 3600\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        ))
    }

    /// The Authorization for an MD5 challenge in `response` (RFC 7616 with qop=auth).
    fn authorization(&self, response: &Response) -> Option<String> {
        use tongdai::sip::auth::{Algorithm, QopAuth, digest_response};
        let (user, password) = self.credentials.clone()?;
        let challenge = response
            .headers
            .www_authenticate()
            .ok()?
            .into_iter()
            .find(|c| c.0.param("algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")))?;
        let realm = challenge.0.param("realm")?.to_string();
        let nonce = challenge.0.param("nonce")?.to_string();
        let uri = format!("sip:{}", self.registrar?);
        let ha1 = Algorithm::Md5.ha1(&user, &realm, &password);
        let qop = QopAuth { nc: "00000001", cnonce: "simcnonce" };
        let digest = digest_response(Algorithm::Md5, &ha1, &nonce, Some(qop), "REGISTER", &uri);
        let opaque =
            challenge.0.param("opaque").map(|o| format!(", opaque=\"{o}\"")).unwrap_or_default();
        Some(format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{digest}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"simcnonce\"{opaque}"
        ))
    }

    fn answered(&self) -> bool {
        self.responses.iter().any(|r| r.1 == "INVITE" && r.0 >= 200)
    }
}

impl Peer for Agent {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn on_receive(&mut self, now: Duration, bytes: &[u8], out: &mut Vec<Bytes>) {
        let req = match parse(bytes) {
            Some(Message::Request(req)) => req,
            Some(Message::Response(r)) => {
                // Only REGISTER is ever sent by an agent.
                let Some(reg) = self.register.as_mut() else { return };
                reg.on_response(now, r.status);
                if r.status == 200 {
                    self.registered = true;
                } else if r.status == 401 && self.register_cseq == 1 {
                    let auth = self.authorization(&r);
                    let request = self.register_request(auth);
                    self.register = Some(NonInviteClient::start(now, request, out));
                }
                return;
            }
            None => return,
        };
        let text = String::from_utf8_lossy(bytes).into_owned();
        let method = req.method.as_str().to_string();
        self.requests.push((method.clone(), now));
        match method.as_str() {
            "INVITE" => match &self.invite {
                Some(first) if branch_of(first) == branch_of(&text) => {
                    if let Some(last) = self.last.clone() {
                        out.push(last);
                    }
                }
                _ => {
                    self.invite = Some(text);
                    self.invite_at = now;
                }
            },
            "ACK" => self.final_rtx = None,
            "CANCEL" => {
                self.response(now, &text, 200, out);
                if !self.answered()
                    && let Some(invite) = self.invite.clone()
                {
                    self.response(now, &invite, 487, out);
                }
            }
            _ => self.response(now, &text, 200, out),
        }
    }

    fn on_wake(&mut self, now: Duration, out: &mut Vec<Bytes>) {
        if self.credentials.is_some() {
            match self.register.as_mut() {
                None => {
                    let request = self.register_request(None);
                    self.register = Some(NonInviteClient::start(now, request, out));
                }
                Some(reg) => reg.on_wake(now, out),
            }
        }
        let Some(invite) = self.invite.clone() else { return };
        if !self.rang && self.ring_after.is_some_and(|d| self.invite_at + d <= now) {
            self.rang = true;
            if !self.answered() {
                self.response(now, &invite, 180, out);
            }
        }
        if !self.answered() && self.answer_after.is_some_and(|d| self.invite_at + d <= now) {
            self.response(now, &invite, 200, out);
        }
        if let Some((next, interval, give_up)) = self.final_rtx
            && next <= now
        {
            if now >= give_up {
                self.final_rtx = None;
            } else if let Some(last) = self.last.clone() {
                out.push(last);
                let interval = (interval * 2).min(T2);
                self.final_rtx = Some((now + interval, interval, give_up));
            }
        }
    }

    fn next_wake(&self) -> Option<Duration> {
        let register = match (&self.credentials, &self.register) {
            (Some(_), None) => Some(Duration::ZERO),
            (_, Some(reg)) => reg.wake(),
            _ => None,
        };
        if self.invite.is_none() {
            return register;
        }
        let ring = self.ring_after.filter(|_| !self.rang).map(|d| self.invite_at + d);
        let answer = self.answer_after.filter(|_| !self.answered()).map(|d| self.invite_at + d);
        [register, ring, answer, self.final_rtx.map(|f| f.0)].into_iter().flatten().min()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
