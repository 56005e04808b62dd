//! An operator's softphone for long simulations (a full day, races): it registers with digest over
//! its shifts (REGISTER with `Expires: 0` at the end of each), refreshes its binding, answers
//! keep-alive OPTIONS, and takes any number of INVITEs one after the other, each by a [`Plan`]
//! the test draws when the INVITE arrives: answer (and maybe hang up first), refuse, or ring until
//! cancelled. A second INVITE while a call is up gets 486, as a real phone with one line does.
//! Written from RFC 3261 independently of tongdai (only its parser and digest helpers are shared).
//! Test support.

use std::any::Any;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tongdai::sip::message::{Message, Response};

use super::peers::{NonInviteClient, header, parse, tag_of};
use super::{Peer, T1};

/// What the phone does with one INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 200 after `after`; once ACKed, BYE after `talk` (None: wait for the other side's BYE).
    Answer {
        /// Delay from the INVITE to the 200.
        after: Duration,
        /// Talk before the operator hangs up.
        talk: Option<Duration>,
    },
    /// A final `status` (486, 603, 480 …) after `after`.
    Refuse {
        /// Delay from the INVITE.
        after: Duration,
        /// The status.
        status: u16,
    },
    /// 180 only; rings until CANCEL.
    Ignore,
}

/// Draws a plan for an INVITE arriving at the given time.
pub type Planner = Box<dyn FnMut(Duration) -> Plan>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ringing,
    /// Final response sent (retransmitted until ACK for a 2xx; Timer G for a refusal).
    Answered,
    Refused,
    Confirmed,
    Ended,
}

struct Leg {
    call_id: String,
    invite: String,
    at: Duration,
    plan: Plan,
    tag: String,
    state: State,
    last: Option<Bytes>,
    rtx: Option<(Duration, Duration, Duration)>,
    bye_at: Option<Duration>,
    bye: Option<NonInviteClient>,
}

/// What happened on the phone, for the test's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneEvent {
    /// An INVITE arrived (first copy), with its Call-ID.
    Invite(String),
    /// We answered 200.
    Answered(String),
    /// The call was cancelled before we answered.
    Cancelled(String),
    /// We refused with this status.
    Refused(String, u16),
    /// The other side hung up (BYE received).
    ByeReceived(String),
    /// We hung up (BYE sent).
    ByeSent(String),
    /// An INVITE arrived while a call was up: 486.
    BusyHere(String),
}

/// The softphone.
pub struct Operator {
    addr: SocketAddr,
    registrar: SocketAddr,
    user: String,
    password: String,
    /// When the phone is logged in: REGISTER at each start, `Expires: 0` at each end.
    pub shifts: Vec<(Duration, Duration)>,
    /// Re-REGISTER this often while on shift (below the registrar's `max_expires`).
    pub refresh: Duration,
    /// Asked for each new INVITE.
    pub planner: Planner,
    /// The SDP answer in our 200s.
    pub sdp: String,
    /// Answer re-INVITEs with 491 (glare) while true.
    pub glare: bool,
    legs: Vec<Leg>,
    reg: Option<NonInviteClient>,
    reg_cseq: u32,
    reg_expires: u32,
    reg_authorised: bool,
    next_reg: Option<Duration>,
    /// The `Expires` last confirmed by a 200 (0: logged out).
    pub registered: bool,
    /// Everything that happened, with times.
    pub log: Vec<(Duration, PhoneEvent)>,
    /// Every request received: (method, time).
    pub requests: Vec<(String, Duration)>,
    next_tag: u64,
}

impl Operator {
    /// The phone of SIP user `user` at `addr`, registering at `registrar`; it answers everything
    /// after 2 s until `planner` is set, and is on shift all day until `shifts` is set.
    pub fn new(addr: SocketAddr, registrar: SocketAddr, user: &str, password: &str) -> Operator {
        Operator {
            addr,
            registrar,
            user: user.to_string(),
            password: password.to_string(),
            shifts: vec![(Duration::ZERO, Duration::from_secs(365 * 86_400))],
            refresh: Duration::from_secs(300),
            planner: Box::new(|_| Plan::Answer { after: Duration::from_secs(2), talk: None }),
            sdp: format!(
                "v=0\r\no=op 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                ip = addr.ip(),
                port = addr.port() + 10_000
            ),
            glare: false,
            legs: Vec::new(),
            reg: None,
            reg_cseq: 0,
            reg_expires: 0,
            reg_authorised: false,
            next_reg: Some(Duration::ZERO),
            registered: false,
            log: Vec::new(),
            requests: Vec::new(),
            next_tag: 0,
        }
    }

    /// The SIP user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Requests received with `method`.
    pub fn received(&self, method: &str) -> Vec<Duration> {
        self.requests.iter().filter(|r| r.0 == method).map(|r| r.1).collect()
    }

    /// Calls up now (answered and not ended).
    pub fn calls_up(&self) -> usize {
        self.legs.iter().filter(|l| matches!(l.state, State::Answered | State::Confirmed)).count()
    }

    /// Hangs up the call with `call_id` at `at` (a test's scripted BYE).
    pub fn hang_up_at(&mut self, call_id: &str, at: Duration) {
        if let Some(l) = self.legs.iter_mut().find(|l| l.call_id == call_id) {
            l.bye_at = Some(at);
        }
    }

    fn on_shift(&self, now: Duration) -> bool {
        self.shifts.iter().any(|(from, to)| *from <= now && now < *to)
    }

    /// The next shift boundary after `now`.
    fn next_boundary(&self, now: Duration) -> Option<Duration> {
        self.shifts.iter().flat_map(|(a, b)| [*a, *b]).filter(|t| *t > now).min()
    }

    fn register_request(&mut self, authorization: Option<String>) -> Bytes {
        self.reg_cseq += 1;
        let (addr, registrar, user, n) = (self.addr, self.registrar, &self.user, self.reg_cseq);
        let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        Bytes::from(format!(
            "REGISTER sip:{registrar} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {addr};branch=z9hG4bK-{user}-reg{n};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{registrar}>;tag=reg-{user}\r\n\
             To: <sip:{user}@{registrar}>\r\n\
             Call-ID: reg-{user}@{addr}\r\n\
             CSeq: {n} REGISTER\r\n\
             Contact: <sip:{user}@{addr}>\r\n\
             Expires: {}\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            self.reg_expires
        ))
    }

    /// The Authorization for an MD5 challenge (RFC 7616, qop=auth).
    fn authorization(&self, response: &Response) -> Option<String> {
        use tongdai::sip::auth::{Algorithm, QopAuth, digest_response};
        let challenge = response
            .headers
            .www_authenticate()
            .ok()?
            .into_iter()
            .find(|c| c.0.param("algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")))?;
        let realm = challenge.0.param("realm")?.to_string();
        let nonce = challenge.0.param("nonce")?.to_string();
        let uri = format!("sip:{}", self.registrar);
        let ha1 = Algorithm::Md5.ha1(&self.user, &realm, &self.password);
        let cnonce = format!("c{}", self.reg_cseq);
        let qop = QopAuth { nc: "00000001", cnonce: &cnonce };
        let digest = digest_response(Algorithm::Md5, &ha1, &nonce, Some(qop), "REGISTER", &uri);
        let opaque =
            challenge.0.param("opaque").map(|o| format!(", opaque=\"{o}\"")).unwrap_or_default();
        Some(format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{digest}\", algorithm=MD5, qop=auth, nc=00000001, \
             cnonce=\"{cnonce}\"{opaque}",
            self.user
        ))
    }

    /// A response to `request` (text), with our tag on a dialog-forming one.
    fn response(
        request: &str,
        status: u16,
        tag: &str,
        contact: SocketAddr,
        sdp: Option<&str>,
    ) -> Bytes {
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
                    r.push_str(&format!(";tag={tag}"));
                }
                r.push_str("\r\n");
            }
        }
        if status > 100 && status < 300 {
            r.push_str(&format!("Contact: <sip:op@{contact}>\r\n"));
        }
        match sdp {
            Some(sdp) => {
                r.push_str("Content-Type: application/sdp\r\n");
                r.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
            }
            None => r.push_str("Content-Length: 0\r\n\r\n"),
        }
        Bytes::from(r)
    }

    fn bye_request(&self, leg: &Leg) -> Bytes {
        let target = header(&leg.invite, "Contact")
            .map(|c| c.trim().trim_start_matches('<').split('>').next().unwrap_or("").to_string())
            .unwrap_or_default();
        let from = header(&leg.invite, "From").unwrap_or("");
        let to = header(&leg.invite, "To").unwrap_or("");
        let (addr, call_id, tag) = (self.addr, &leg.call_id, &leg.tag);
        Bytes::from(format!(
            "BYE {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {addr};branch=z9hG4bK-{tag}-bye;rport\r\n\
             Max-Forwards: 70\r\n\
             From: {to};tag={tag}\r\n\
             To: {from}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 BYE\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    }

    fn leg_final(&mut self, i: usize, now: Duration, status: u16, out: &mut Vec<Bytes>) {
        let (addr, sdp) = (self.addr, self.sdp.clone());
        let l = &mut self.legs[i];
        let body = (status == 200).then_some(sdp.as_str());
        let bytes = Operator::response(&l.invite, status, &l.tag, addr, body);
        l.last = Some(bytes.clone());
        l.rtx = Some((now + T1, T1, now + T1 * 64));
        l.state = if status == 200 { State::Answered } else { State::Refused };
        let event = if status == 200 {
            PhoneEvent::Answered(l.call_id.clone())
        } else {
            PhoneEvent::Refused(l.call_id.clone(), status)
        };
        self.log.push((now, event));
        out.push(bytes);
    }

    fn on_request(&mut self, now: Duration, text: String, method: &str, out: &mut Vec<Bytes>) {
        let call_id = header(&text, "Call-ID").unwrap_or("").to_string();
        let to_tag = header(&text, "To").and_then(tag_of);
        let i = self.legs.iter().position(|l| l.call_id == call_id);
        let addr = self.addr;
        match (method, i) {
            ("INVITE", Some(i)) if to_tag.is_none() => {
                // A retransmission of the INVITE: the last response again.
                if let Some(last) = self.legs[i].last.clone() {
                    out.push(last);
                }
            }
            ("INVITE", Some(i)) => {
                // A re-INVITE in the dialog.
                let status = if self.glare { 491 } else { 200 };
                let body = (status == 200).then_some(self.sdp.as_str());
                out.push(Operator::response(&text, status, &self.legs[i].tag, addr, body));
            }
            ("INVITE", None) => {
                self.next_tag += 1;
                let tag = format!("{}-{}", self.user, self.next_tag);
                let busy = self.calls_up() > 0;
                let plan = if busy { Plan::Ignore } else { (self.planner)(now) };
                self.log.push((now, PhoneEvent::Invite(call_id.clone())));
                self.legs.push(Leg {
                    call_id: call_id.clone(),
                    invite: text.clone(),
                    at: now,
                    plan,
                    tag: tag.clone(),
                    state: State::Ringing,
                    last: None,
                    rtx: None,
                    bye_at: None,
                    bye: None,
                });
                let i = self.legs.len() - 1;
                if busy {
                    self.log.push((now, PhoneEvent::BusyHere(call_id)));
                    self.leg_final(i, now, 486, out);
                } else {
                    let ringing = Operator::response(&text, 180, &tag, addr, None);
                    self.legs[i].last = Some(ringing.clone());
                    out.push(ringing);
                    if let Plan::Answer { after, .. } | Plan::Refuse { after, .. } = plan
                        && after.is_zero()
                    {
                        self.on_wake(now, out);
                    }
                }
            }
            ("ACK", Some(i)) => {
                let l = &mut self.legs[i];
                l.rtx = None;
                if l.state == State::Answered {
                    l.state = State::Confirmed;
                    if let Plan::Answer { talk: Some(talk), .. } = l.plan {
                        l.bye_at.get_or_insert(now + talk);
                    }
                }
            }
            ("CANCEL", Some(i)) => {
                out.push(Operator::response(&text, 200, &self.legs[i].tag, addr, None));
                if self.legs[i].state == State::Ringing {
                    let (invite, tag) = (self.legs[i].invite.clone(), self.legs[i].tag.clone());
                    let bytes = Operator::response(&invite, 487, &tag, addr, None);
                    self.legs[i].last = Some(bytes.clone());
                    self.legs[i].rtx = Some((now + T1, T1, now + T1 * 64));
                    self.legs[i].state = State::Refused;
                    self.log.push((now, PhoneEvent::Cancelled(call_id)));
                    out.push(bytes);
                }
            }
            ("BYE", Some(i)) => {
                out.push(Operator::response(&text, 200, &self.legs[i].tag, addr, None));
                if matches!(self.legs[i].state, State::Answered | State::Confirmed) {
                    self.legs[i].state = State::Ended;
                    self.legs[i].rtx = None;
                    self.legs[i].bye_at = None;
                    self.log.push((now, PhoneEvent::ByeReceived(call_id)));
                }
            }
            ("BYE", None) => out.push(Operator::response(&text, 481, "x", addr, None)),
            (_, Some(i)) => {
                let tag = self.legs[i].tag.clone();
                let ended = self.legs[i].state == State::Ended;
                out.push(Operator::response(
                    &text,
                    if ended { 481 } else { 200 },
                    &tag,
                    addr,
                    None,
                ));
            }
            // OPTIONS keep-alives and anything else out of dialog.
            (_, None) => out.push(Operator::response(&text, 200, "ka", addr, None)),
        }
    }

    fn on_response(&mut self, now: Duration, r: &Response, out: &mut Vec<Bytes>) {
        let method = r.headers.cseq().map(|c| c.method.as_str().to_string()).unwrap_or_default();
        if method == "BYE" {
            let call_id = r.headers.call_id().unwrap_or_default().to_string();
            if let Some(l) = self.legs.iter_mut().find(|l| l.call_id == call_id)
                && let Some(bye) = l.bye.as_mut()
            {
                bye.on_response(now, r.status);
            }
            return;
        }
        let Some(reg) = self.reg.as_mut() else { return };
        let before = reg.finals.len();
        reg.on_response(now, r.status);
        if reg.finals.len() == before || before > 0 {
            // A provisional, or a retransmitted final.
            return;
        }
        match r.status {
            200 => self.registered = self.reg_expires > 0,
            401 if !self.reg_authorised => {
                self.reg_authorised = true;
                let auth = self.authorization(r);
                let request = self.register_request(auth);
                self.reg = Some(NonInviteClient::start(now, request, out));
            }
            _ => {}
        }
    }
}

impl Peer for Operator {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn on_receive(&mut self, now: Duration, bytes: &[u8], out: &mut Vec<Bytes>) {
        match parse(bytes) {
            Some(Message::Request(req)) => {
                let method = req.method.as_str().to_string();
                self.requests.push((method.clone(), now));
                let text = String::from_utf8_lossy(bytes).into_owned();
                self.on_request(now, text, &method, out);
            }
            Some(Message::Response(r)) => self.on_response(now, &r, out),
            None => {}
        }
    }

    fn on_wake(&mut self, now: Duration, out: &mut Vec<Bytes>) {
        if self.next_reg.is_some_and(|t| t <= now) {
            let on = self.on_shift(now);
            // Log in (or refresh) on shift; log out once at the end of a shift.
            if on || self.registered {
                self.reg_expires = if on { 600 } else { 0 };
                self.reg_authorised = false;
                let request = self.register_request(None);
                self.reg = Some(NonInviteClient::start(now, request, out));
                if !on {
                    self.registered = false;
                }
            }
            let refresh = on.then(|| now + self.refresh);
            self.next_reg = [refresh, self.next_boundary(now)].into_iter().flatten().min();
        }
        if let Some(reg) = self.reg.as_mut() {
            reg.on_wake(now, out);
        }
        let mut bye = Vec::new();
        for i in 0..self.legs.len() {
            let l = &mut self.legs[i];
            if l.state == State::Ringing {
                match l.plan {
                    Plan::Answer { after, .. } if l.at + after <= now => {
                        self.leg_final(i, now, 200, out);
                    }
                    Plan::Refuse { after, status } if l.at + after <= now => {
                        self.leg_final(i, now, status, out);
                    }
                    _ => {}
                }
                continue;
            }
            if let Some((next, interval, give_up)) = l.rtx
                && next <= now
            {
                if now >= give_up {
                    l.rtx = None;
                } else if let Some(last) = l.last.clone() {
                    out.push(last);
                    let interval = (interval * 2).min(super::T2);
                    l.rtx = Some((now + interval, interval, give_up));
                }
            }
            if l.bye_at.is_some_and(|t| t <= now)
                && matches!(l.state, State::Answered | State::Confirmed)
            {
                l.bye_at = None;
                l.state = State::Ended;
                l.rtx = None;
                bye.push(i);
            } else if let Some(b) = l.bye.as_mut() {
                b.on_wake(now, out);
            }
        }
        for i in bye {
            let request = self.bye_request(&self.legs[i]);
            self.legs[i].bye = Some(NonInviteClient::start(now, request, out));
            self.log.push((now, PhoneEvent::ByeSent(self.legs[i].call_id.clone())));
        }
    }

    fn next_wake(&self) -> Option<Duration> {
        let mut next =
            [self.next_reg, self.reg.as_ref().and_then(|r| r.wake())].into_iter().flatten().min();
        let mut consider = |t: Option<Duration>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for l in &self.legs {
            if l.state == State::Ringing {
                if let Plan::Answer { after, .. } | Plan::Refuse { after, .. } = l.plan {
                    consider(Some(l.at + after));
                }
                continue;
            }
            consider(l.rtx.map(|r| r.0));
            if matches!(l.state, State::Answered | State::Confirmed) {
                consider(l.bye_at);
            }
            consider(l.bye.as_ref().and_then(|b| b.wake()));
        }
        next
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
