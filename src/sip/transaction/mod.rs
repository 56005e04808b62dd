//! The transaction layer (RFC 3261 §17), sans-IO: the four transaction machines (one file each, with
//! RFC 6026's Accepted state), matching per §17.1.3 / §17.2.3 with the RFC 2543 fallback, and every
//! timer in one table ([`timer`]). Protocol layer.
//!
//! The contract is quinn's: feed input with the current time as a value, then drain output.
//!
//! ```text
//! recv_request / recv_response / send_request / respond / handle_timeout   (input, `now` given)
//! poll_transmit  -> bytes for a flow                                        (output)
//! poll_event     -> responses, time-outs, ACKs for the transaction user     (output)
//! poll_timeout   -> when to call handle_timeout next
//! ```
//!
//! The transaction user (the endpoint above) sees each new server transaction once, answers it through
//! [`Transactions::respond`], and never deals with retransmissions: they are absorbed or repeated here.

mod client_invite;
mod client_non_invite;
mod server_invite;
mod server_non_invite;
pub mod timer;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use self::client_invite::ClientInvite;
pub use self::client_non_invite::ClientNonInvite;
pub use self::server_invite::ServerInvite;
pub use self::server_non_invite::ServerNonInvite;
use self::timer::{Timer, TimerValues};
use super::message::{Headers, Method, Request, Response, name};
use super::transport::{Flow, response_flow, stamp_received};

/// The RFC 3261 branch prefix ("magic cookie").
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Identifies one transaction for the transaction user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(u64);

/// Bytes to send on a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub flow: Flow,
    /// The message.
    pub bytes: Bytes,
}

/// What the transaction layer tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A response for a client transaction (provisional or final; for INVITE, every 2xx).
    Response {
        /// The client transaction.
        id: TxnId,
        /// The response.
        response: Response,
    },
    /// A client transaction got no final response (Timer B or F).
    Timeout {
        /// The client transaction.
        id: TxnId,
    },
    /// An INVITE server transaction sent a 300–699 and no ACK came (Timer H).
    NoAck {
        /// The server transaction.
        id: TxnId,
    },
    /// An ACK that matched an Accepted INVITE server transaction (an RFC 2543 peer reusing the
    /// INVITE's branch for the 2xx ACK).
    Ack {
        /// The server transaction.
        id: TxnId,
        /// The ACK.
        request: Request,
    },
    /// The transaction is gone; its id will not be used again.
    Terminated {
        /// The transaction.
        id: TxnId,
    },
}

/// What became of a received request.
#[derive(Debug)]
pub enum Received {
    /// A new server transaction: the user must answer it with [`Transactions::respond`]. For an
    /// INVITE, 100 Trying has already been sent.
    New {
        /// The new transaction.
        id: TxnId,
        /// The request, top Via stamped with `received`/`rport`.
        request: Request,
        /// Where responses to it go.
        response_flow: Flow,
    },
    /// A retransmission, absorbed (or answered with the last response).
    Absorbed,
    /// An ACK that matched no transaction: the ACK for a 2xx, for the dialog layer.
    Ack {
        /// The ACK.
        request: Request,
    },
}

/// A transaction-layer error: the user asked for something the machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// A response the state does not allow (e.g. a second final response).
    #[error("response {status} not allowed in state {state}")]
    NotAllowed {
        /// The machine's state.
        state: String,
        /// The status the user tried to send.
        status: u16,
    },
    /// No such transaction (it ended, or never was).
    #[error("no such transaction")]
    Unknown,
    /// The request cannot start a client transaction (no Via with a branch, or ACK).
    #[error("request cannot start a transaction: {0}")]
    BadRequest(&'static str),
}

/// One step a machine asks the layer to take.
#[derive(Debug)]
pub enum Step {
    /// Send bytes on the transaction's flow.
    Send(Bytes),
    /// (Re)start a timer to fire after the duration.
    Arm(Timer, Duration),
    /// Stop a timer.
    Disarm(Timer),
    /// Tell the user something.
    Deliver(Delivery),
    /// The machine reached Terminated.
    Terminated,
}

/// What a machine tells its user (the layer adds the transaction id).
#[derive(Debug)]
pub enum Delivery {
    /// A response.
    Response(Box<Response>),
    /// No final response in time.
    Timeout,
    /// No ACK in time.
    NoAck,
    /// An ACK in Accepted.
    Ack(Box<Request>),
}

/// What a machine needs from the layer while it runs.
pub struct Cx<'a> {
    /// The timer table.
    pub values: &'a TimerValues,
    /// Whether the transport is reliable (no retransmit timers, zero wait timers).
    pub reliable: bool,
    /// Where the machine puts its steps.
    pub out: &'a mut Vec<Step>,
}

impl Cx<'_> {
    /// Arms `timer` with its initial duration.
    pub fn arm(&mut self, timer: Timer) {
        self.out.push(Step::Arm(timer, self.values.initial(timer, self.reliable)));
    }
}

// The variants are the RFC's four machine names.
#[allow(clippy::enum_variant_names)]
#[derive(Debug)]
enum Machine {
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
}

impl Machine {
    fn is_server(&self) -> bool {
        matches!(self, Machine::ServerInvite(_) | Machine::ServerNonInvite(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// §17.2.3 / §17.1.3: branch, sent-by (server side only), and method (ACK counts as INVITE).
    Branch { branch: String, sent_by: Option<String>, method: String },
    /// RFC 2543 fallback for branches without the magic cookie.
    Legacy {
        call_id: String,
        from_tag: String,
        cseq: u32,
        via: String,
        uri: String,
        method: String,
    },
}

#[derive(Debug)]
struct Entry {
    machine: Machine,
    flow: Flow,
    key: Key,
    armed: Vec<(Timer, Instant)>,
}

/// All transactions of one endpoint.
#[derive(Debug)]
pub struct Transactions {
    values: TimerValues,
    force_rport: bool,
    salt: u64,
    next_id: u64,
    entries: HashMap<TxnId, Entry>,
    /// How many of `entries` are server transactions (the endpoint caps them).
    servers: usize,
    index: HashMap<Key, TxnId>,
    timers: BTreeSet<(Instant, TxnId, Timer)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    steps: Vec<Step>,
}

impl Transactions {
    /// An empty layer. `salt` (random, from the runtime) makes our branches unique across restarts.
    pub fn new(values: TimerValues, salt: u64) -> Transactions {
        Transactions {
            values,
            force_rport: true,
            salt,
            next_id: 1,
            entries: HashMap::new(),
            servers: 0,
            index: HashMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            steps: Vec::new(),
        }
    }

    /// Replaces the timer table (config reload); running timers keep their deadlines.
    pub fn set_timer_values(&mut self, values: TimerValues) {
        self.values = values;
    }

    /// Whether responses over UDP always go back to the source address and port (default: yes; see
    /// [`stamp_received`]). Off means strict RFC 3261 §18.2.2: the Via's sent-by port unless `rport`.
    pub fn set_force_rport(&mut self, force: bool) {
        self.force_rport = force;
    }

    /// A fresh RFC 3261 branch for a request we send.
    pub fn new_branch(&mut self) -> String {
        self.next_id += 1;
        format!("{MAGIC_COOKIE}{:016x}{:x}", self.salt, self.next_id)
    }

    /// How many transactions are alive.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many server transactions are alive.
    pub fn server_count(&self) -> usize {
        self.servers
    }

    /// True when `request` matches a live server transaction (a retransmission, or an ACK for a
    /// non-2xx final response): [`Transactions::recv_request`] would absorb it, creating nothing.
    pub fn matches_server(&self, request: &Request) -> bool {
        server_key(request).is_some_and(|key| self.index.contains_key(&key))
    }

    /// A request arrived on `flow`. Its top Via must parse (the endpoint checks that first).
    pub fn recv_request(&mut self, now: Instant, flow: Flow, mut request: Request) -> Received {
        stamp_top_via(&mut request.headers, flow, self.force_rport);
        let Some(key) = server_key(&request) else {
            // No usable Via: nothing could be matched or answered; the endpoint filters these.
            return Received::Absorbed;
        };
        if let Some(&id) = self.index.get(&key) {
            self.step(now, id, |machine, cx| match (machine, &request.method) {
                (Machine::ServerInvite(m), Method::Ack) => m.recv_ack(cx, request),
                (Machine::ServerInvite(m), _) => m.recv_invite(cx),
                (Machine::ServerNonInvite(m), _) => m.recv_request(cx),
                _ => {}
            });
            return Received::Absorbed;
        }
        if request.method == Method::Ack {
            return Received::Ack { request };
        }
        let response_flow =
            request.headers.top_via().map(|v| response_flow(flow, &v)).unwrap_or(flow);
        let id = self.create(now, response_flow, key, |cx| {
            if request.method == Method::Invite {
                let mut m = ServerInvite::new(cx);
                let trying = Response::for_request(&request, 100, None).to_bytes();
                // Proceeding allows a 100: this cannot fail.
                let _ = m.send_response(cx, 100, trying);
                Machine::ServerInvite(m)
            } else {
                Machine::ServerNonInvite(ServerNonInvite::new())
            }
        });
        Received::New { id, request, response_flow }
    }

    /// The INVITE server transaction a CANCEL refers to (§9.2: same key, method INVITE).
    pub fn invite_for_cancel(&self, cancel: &Request) -> Option<TxnId> {
        let key = match server_key(cancel)? {
            Key::Branch { branch, sent_by, .. } => {
                Key::Branch { branch, sent_by, method: "INVITE".into() }
            }
            Key::Legacy { call_id, from_tag, cseq, via, uri, .. } => {
                Key::Legacy { call_id, from_tag, cseq, via, uri, method: "INVITE".into() }
            }
        };
        self.index.get(&key).copied()
    }

    /// The state of an INVITE server transaction, if `id` is one.
    pub fn server_invite_state(&self, id: TxnId) -> Option<server_invite::State> {
        match &self.entries.get(&id)?.machine {
            Machine::ServerInvite(m) => Some(m.state()),
            _ => None,
        }
    }

    /// A response arrived. Returns it back when it matches no client transaction (a stray response,
    /// or a 2xx retransmission after the INVITE transaction ended: the dialog layer re-ACKs those).
    pub fn recv_response(&mut self, now: Instant, response: Response) -> Option<Response> {
        let Some(id) = client_key(&response).and_then(|k| self.index.get(&k).copied()) else {
            return Some(response);
        };
        self.step(now, id, |machine, cx| match machine {
            Machine::ClientInvite(m) => m.recv_response(cx, response),
            Machine::ClientNonInvite(m) => m.recv_response(cx, response),
            _ => {}
        });
        None
    }

    /// Starts a client transaction for `request` on `flow`. The request's top Via must carry a branch
    /// (see [`Transactions::new_branch`]); ACK is not a transaction and is refused.
    pub fn send_request(
        &mut self,
        now: Instant,
        flow: Flow,
        request: Request,
    ) -> Result<TxnId, TransactionError> {
        if request.method == Method::Ack {
            return Err(TransactionError::BadRequest("ACK is sent outside transactions"));
        }
        let branch = request
            .headers
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string))
            .ok_or(TransactionError::BadRequest("no Via branch"))?;
        let key = Key::Branch { branch, sent_by: None, method: method_key(&request.method) };
        let bytes = request.to_bytes();
        Ok(self.create(now, flow, key, |cx| {
            if request.method == Method::Invite {
                Machine::ClientInvite(ClientInvite::start(cx, request, bytes))
            } else {
                Machine::ClientNonInvite(ClientNonInvite::start(cx, request, bytes))
            }
        }))
    }

    /// The request a client transaction sent (to build a CANCEL or a retry with credentials).
    pub fn client_request(&self, id: TxnId) -> Option<&Request> {
        match &self.entries.get(&id)?.machine {
            Machine::ClientInvite(m) => Some(m.request()),
            Machine::ClientNonInvite(m) => Some(m.request()),
            _ => None,
        }
    }

    /// The flow a transaction sends on.
    pub fn flow(&self, id: TxnId) -> Option<Flow> {
        self.entries.get(&id).map(|e| e.flow)
    }

    /// Sends `response` on server transaction `id`.
    pub fn respond(
        &mut self,
        now: Instant,
        id: TxnId,
        response: &Response,
    ) -> Result<(), TransactionError> {
        let bytes = response.to_bytes();
        self.step(now, id, |machine, cx| match machine {
            Machine::ServerInvite(m) => m.send_response(cx, response.status, bytes),
            Machine::ServerNonInvite(m) => m.send_response(cx, response.status, bytes),
            _ => Err(TransactionError::Unknown),
        })
        .unwrap_or(Err(TransactionError::Unknown))
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(entry) = self.entries.get_mut(&id) else { continue };
            let Some(pos) = entry.armed.iter().position(|&(t, a)| t == timer && a == at) else {
                continue; // re-armed or disarmed since
            };
            entry.armed.swap_remove(pos);
            self.step(now, id, |machine, cx| match machine {
                Machine::ServerInvite(m) => m.on_timer(cx, timer),
                Machine::ServerNonInvite(m) => m.on_timer(cx, timer),
                Machine::ClientInvite(m) => m.on_timer(cx, timer),
                Machine::ClientNonInvite(m) => m.on_timer(cx, timer),
            });
        }
    }

    /// When [`Transactions::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Stale entries (disarmed timers) only cause an early, harmless wake-up.
        self.timers.first().map(|&(at, _, _)| at)
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Runs `f` on transaction `id`'s machine, then carries out the steps it took; `None` when the
    /// transaction is gone.
    fn step<R>(
        &mut self,
        now: Instant,
        id: TxnId,
        f: impl FnOnce(&mut Machine, &mut Cx<'_>) -> R,
    ) -> Option<R> {
        let mut steps = std::mem::take(&mut self.steps);
        steps.clear();
        let result = self.entries.get_mut(&id).map(|entry| {
            let reliable = entry.flow.transport.is_reliable();
            let mut cx = Cx { values: &self.values, reliable, out: &mut steps };
            f(&mut entry.machine, &mut cx)
        });
        self.apply(now, id, &mut steps);
        self.steps = steps;
        result
    }

    /// Creates a transaction sending on `flow` under `key`, its machine built by `start` (which may
    /// already send and arm timers), and carries out its first steps.
    fn create(
        &mut self,
        now: Instant,
        flow: Flow,
        key: Key,
        start: impl FnOnce(&mut Cx<'_>) -> Machine,
    ) -> TxnId {
        let id = self.allocate();
        let mut steps = std::mem::take(&mut self.steps);
        steps.clear();
        let reliable = flow.transport.is_reliable();
        let machine = start(&mut Cx { values: &self.values, reliable, out: &mut steps });
        if machine.is_server() {
            self.servers += 1;
        }
        self.entries.insert(id, Entry { machine, flow, key: key.clone(), armed: Vec::new() });
        self.index.insert(key, id);
        self.apply(now, id, &mut steps);
        self.steps = steps;
        id
    }

    fn allocate(&mut self) -> TxnId {
        self.next_id += 1;
        TxnId(self.next_id)
    }

    fn apply(&mut self, now: Instant, id: TxnId, steps: &mut Vec<Step>) {
        for step in steps.drain(..) {
            let Some(entry) = self.entries.get_mut(&id) else { return };
            match step {
                Step::Send(bytes) => self.transmits.push_back(Transmit { flow: entry.flow, bytes }),
                Step::Arm(timer, after) => {
                    let at = now + after;
                    entry.armed.retain(|&(t, _)| t != timer);
                    entry.armed.push((timer, at));
                    self.timers.insert((at, id, timer));
                }
                Step::Disarm(timer) => entry.armed.retain(|&(t, _)| t != timer),
                Step::Deliver(d) => self.events.push_back(match d {
                    Delivery::Response(response) => Event::Response { id, response: *response },
                    Delivery::Timeout => Event::Timeout { id },
                    Delivery::NoAck => Event::NoAck { id },
                    Delivery::Ack(request) => Event::Ack { id, request: *request },
                }),
                Step::Terminated => {
                    if let Some(entry) = self.entries.remove(&id) {
                        if entry.machine.is_server() {
                            self.servers -= 1;
                        }
                        if self.index.get(&entry.key) == Some(&id) {
                            self.index.remove(&entry.key);
                        }
                    }
                    self.events.push_back(Event::Terminated { id });
                }
            }
        }
    }
}

fn method_key(method: &Method) -> String {
    match method {
        Method::Ack => "INVITE".to_string(),
        m => m.as_str().to_string(),
    }
}

fn server_key(request: &Request) -> Option<Key> {
    let via = request.headers.top_via().ok()?;
    let sent_by =
        format!("{}:{}", via.host.to_string().to_ascii_lowercase(), via.port.unwrap_or(5060));
    let method = method_key(&request.method);
    if via.has_rfc3261_branch() {
        return Some(Key::Branch {
            branch: via.branch()?.to_string(),
            sent_by: Some(sent_by),
            method,
        });
    }
    let h = &request.headers;
    Some(Key::Legacy {
        call_id: h.call_id().ok()?.to_string(),
        from_tag: h.from().ok()?.tag().unwrap_or("").to_string(),
        cseq: h.cseq().ok()?.seq,
        via: format!("{sent_by};{}", via.branch().unwrap_or("")),
        uri: request.uri.as_str().to_string(),
        method,
    })
}

fn client_key(response: &Response) -> Option<Key> {
    let via = response.headers.top_via().ok()?;
    let cseq = response.headers.cseq().ok()?;
    Some(Key::Branch {
        branch: via.branch()?.to_string(),
        sent_by: None,
        method: method_key(&cseq.method),
    })
}

/// Rewrites the top Via with `received`/`rport` (RFC 3261 §18.2.1, RFC 3581). All Via lines are
/// re-printed in canonical form as one list at the first Via's position, which is equivalent.
fn stamp_top_via(headers: &mut Headers, flow: Flow, force_rport: bool) {
    let Ok(mut vias) = headers.via() else { return };
    let Some(top) = vias.first_mut() else { return };
    if stamp_received(top, flow.remote, force_rport) {
        let text: Vec<String> = vias.iter().map(ToString::to_string).collect();
        headers.set(name::VIA, text.join(", "));
    }
}
