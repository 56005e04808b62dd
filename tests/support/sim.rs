//! A deterministic network simulator around the sans-IO SIP [`Endpoint`]: scripted peers exchange
//! datagrams with it over links that delay, lose, duplicate and reorder packets, on a virtual clock,
//! with a seeded PRNG written here (so a run is the same on every machine and every Rust release).
//! Test support: no sockets, no sleeping; a 32-second timer runs in microseconds.
//!
//! The loop is quinn's `Pair::drive` in spirit: at each step the earliest of (a packet arriving, a
//! peer's timer, the endpoint's `poll_timeout`, the call logic's timer) happens; after each step the
//! endpoint is drained and its events are handed to the call logic — a closure, or any [`App`] such
//! as the real switchboard. Every packet sent is kept in [`Sim::trace`] with its fate, so that tests
//! assert exact counts and times. Peers speak UDP or TCP (a TCP peer's bytes reach the endpoint
//! through a `StreamFramer`, as in the runtime); the scripted peers live in [`peers`].

use std::any::Any;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tongdai::sip::endpoint::{Endpoint, UaEvent};
use tongdai::sip::message::StreamFramer;
use tongdai::sip::transport::{Flow, Transport};

pub mod board;
pub mod operator;
pub mod peers;

/// RFC 3261 T1 as the peers use it (the endpoint's default too).
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2.
pub const T2: Duration = Duration::from_secs(4);

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and good enough to draw link faults.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A duration in `0..=max`, in whole microseconds.
    pub fn upto(&mut self, max: Duration) -> Duration {
        let us = max.as_micros() as u64;
        if us == 0 { Duration::ZERO } else { Duration::from_micros(self.next_u64() % (us + 1)) }
    }
}

/// One direction of a link: every packet takes `delay` plus a random part of `jitter` (jitter
/// larger than the gap between two packets reorders them), is lost with probability `loss`, and
/// is delivered twice with probability `duplicate`. `block` drops chosen packets always (e.g. every
/// ACK), for tests that need a loss to be certain.
#[derive(Clone, Copy)]
pub struct Link {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..=jitter`.
    pub jitter: Duration,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Probability that a (not lost) packet arrives twice.
    pub duplicate: f64,
    /// Packets for which this returns true are always lost.
    pub block: Option<fn(&[u8]) -> bool>,
}

impl Link {
    /// 10 ms, no faults.
    pub fn perfect() -> Link {
        Link {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            block: None,
        }
    }

    /// 10 ms plus up to `jitter`, with `loss` and `duplicate` probabilities.
    pub fn lossy(loss: f64, duplicate: f64, jitter: Duration) -> Link {
        Link { loss, duplicate, jitter, ..Link::perfect() }
    }

    /// This link, also losing every packet `block` picks.
    pub fn blocking(self, block: fn(&[u8]) -> bool) -> Link {
        Link { block: Some(block), ..self }
    }
}

/// A scripted SIP peer. Times are virtual, from the start of the simulation.
pub trait Peer: Any {
    /// The peer's address.
    fn addr(&self) -> SocketAddr;
    /// A datagram arrived; push what to send back onto `out`.
    fn on_receive(&mut self, now: Duration, bytes: &[u8], out: &mut Vec<Bytes>);
    /// The peer's own timer fired (at [`Peer::next_wake`]).
    fn on_wake(&mut self, now: Duration, out: &mut Vec<Bytes>);
    /// When the peer wants [`Peer::on_wake`] next.
    fn next_wake(&self) -> Option<Duration>;
    /// The transport of the peer's flow with the endpoint (TCP links should be [`Link::perfect`]:
    /// a stream neither loses, duplicates nor reorders).
    fn transport(&self) -> Transport {
        Transport::Udp
    }
    /// For [`Sim::peer`].
    fn as_any(&self) -> &dyn Any;
}

/// One packet sent, and what the network did with it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// When it was sent.
    pub at: Duration,
    /// Sender.
    pub from: SocketAddr,
    /// Receiver.
    pub to: SocketAddr,
    /// The start line (or `<keep-alive>`/`<binary>`).
    pub line: String,
    /// The CSeq method, when the packet is a SIP message.
    pub cseq_method: String,
    /// When each copy arrived: empty when lost, two entries when duplicated.
    pub arrivals: Vec<Duration>,
    /// The packet.
    pub bytes: Bytes,
}

struct InFlight {
    at: Duration,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Bytes,
}

/// The call logic above the endpoint: a closure in simple tests, the real switchboard in others.
pub trait App: Any {
    /// One endpoint event, as it happens.
    fn event(&mut self, endpoint: &mut Endpoint, now: Instant, event: &UaEvent);
    /// When the app's own timers want [`App::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// The app's timers fired.
    fn handle_timeout(&mut self, _endpoint: &mut Endpoint, _now: Instant) {}
    /// The step is over: the endpoint has nothing more to send or report (invariant checks go
    /// here; in the middle of a step the endpoint may hold events the app has not seen yet).
    fn settled(&mut self, _endpoint: &mut Endpoint, _now: Instant) {}
}

impl<F: FnMut(&mut Endpoint, Instant, &UaEvent) + 'static> App for F {
    fn event(&mut self, endpoint: &mut Endpoint, now: Instant, event: &UaEvent) {
        self(endpoint, now, event)
    }
}

/// The network: one endpoint, its peers, the packets in flight and the clock.
pub struct Sim {
    /// The endpoint under test.
    pub endpoint: Endpoint,
    /// Its address (UDP).
    pub local: SocketAddr,
    /// Every packet sent, in order.
    pub trace: Vec<Sent>,
    /// Every endpoint event, with its time.
    pub events: Vec<(Duration, UaEvent)>,
    /// Keep [`Sim::trace`] and [`Sim::events`] (true); a day of traffic turns it off.
    pub keep_trace: bool,
    start: Instant,
    now: Duration,
    rng: Rng,
    peers: Vec<(Box<dyn Peer>, Link, Link)>,
    flight: Vec<InFlight>,
    seq: u64,
    app: Option<Box<dyn App>>,
    /// One framer per TCP peer: what it sends the endpoint is a byte stream.
    framers: Vec<(SocketAddr, StreamFramer)>,
}

impl Sim {
    /// A network around `endpoint` listening on `local`, with faults drawn from `seed`.
    pub fn new(endpoint: Endpoint, local: SocketAddr, seed: u64) -> Sim {
        Sim {
            endpoint,
            local,
            trace: Vec::new(),
            events: Vec::new(),
            keep_trace: true,
            start: Instant::now(),
            now: Duration::ZERO,
            rng: Rng::new(seed),
            peers: Vec::new(),
            flight: Vec::new(),
            seq: 0,
            app: None,
            framers: Vec::new(),
        }
    }

    /// Adds a peer; `to_endpoint` and `from_endpoint` are the two directions of its link.
    /// Returns its index for [`Sim::peer`].
    pub fn add_peer(&mut self, peer: impl Peer, to_endpoint: Link, from_endpoint: Link) -> usize {
        self.peers.push((Box::new(peer), to_endpoint, from_endpoint));
        self.peers.len() - 1
    }

    /// Draws the faults from `seed` from now on.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Rng::new(seed);
    }

    /// Changes the links of peer `i` (e.g. a clean set-up, then a bad network).
    pub fn set_links(&mut self, i: usize, to_endpoint: Link, from_endpoint: Link) {
        self.peers[i].1 = to_endpoint;
        self.peers[i].2 = from_endpoint;
    }

    /// Sets the call logic that sees every endpoint event as it happens.
    pub fn on_event(&mut self, logic: impl FnMut(&mut Endpoint, Instant, &UaEvent) + 'static) {
        self.app = Some(Box::new(logic));
    }

    /// A sim starting at `start` (the instant the app's clock began), for apps built first.
    pub fn starting(endpoint: Endpoint, local: SocketAddr, seed: u64, start: Instant) -> Sim {
        Sim { start, ..Sim::new(endpoint, local, seed) }
    }

    /// The call logic, mutably (e.g. to script an admin action between runs).
    pub fn app_mut<A: App>(&mut self) -> &mut A {
        let app: &mut dyn Any = &mut **self.app.as_mut().expect("an app");
        app.downcast_mut::<A>().expect("app type")
    }

    /// Runs `f` on the call logic with the endpoint and the current instant (e.g. to inject a
    /// media event), then moves what it produced onto the network.
    pub fn with_app<A: App, R>(
        &mut self,
        f: impl FnOnce(&mut A, &mut Endpoint, Instant) -> R,
    ) -> R {
        let now = self.instant();
        let app: &mut dyn Any = &mut **self.app.as_mut().expect("an app");
        let r = f(app.downcast_mut::<A>().expect("app type"), &mut self.endpoint, now);
        self.pump();
        r
    }

    /// Peer `i`, mutably (e.g. to script its next move between runs).
    pub fn peer_mut<P: Peer>(&mut self, i: usize) -> &mut P {
        let any: &mut dyn Any = &mut *self.peers[i].0;
        any.downcast_mut::<P>().expect("peer type")
    }

    /// Sets the call logic, with timers of its own.
    pub fn set_app(&mut self, app: impl App) {
        self.app = Some(Box::new(app));
    }

    /// The call logic, as its concrete type.
    pub fn app<A: App>(&self) -> &A {
        let app: &dyn Any = &**self.app.as_ref().expect("an app");
        app.downcast_ref::<A>().expect("app type")
    }

    /// Peer `i`, as its concrete type.
    pub fn peer<P: Peer>(&self, i: usize) -> &P {
        self.peers[i].0.as_any().downcast_ref::<P>().expect("peer type")
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The endpoint's clock value for now.
    pub fn instant(&self) -> Instant {
        self.start + self.now
    }

    /// The flow between the endpoint and `remote`, on the peer's transport (UDP for strangers).
    pub fn flow(&self, remote: SocketAddr) -> Flow {
        let transport = self
            .peers
            .iter()
            .find(|(p, _, _)| p.addr() == remote)
            .map_or(Transport::Udp, |(p, _, _)| p.transport());
        Flow { transport, local: self.local, remote }
    }

    /// Runs the network until `until` (from the start), firing everything due on the way.
    pub fn run_until(&mut self, until: Duration) {
        self.pump();
        for _ in 0..1_000_000 {
            let packet = self.flight.iter().map(|p| (p.at, p.seq)).min();
            let wake = self
                .peers
                .iter()
                .enumerate()
                .filter_map(|(i, (p, _, _))| Some((p.next_wake()?, i)))
                .min();
            let since = |t: Instant| t.saturating_duration_since(self.start);
            let timer = self.endpoint.poll_timeout().map(since);
            let app_timer = self.app.as_ref().and_then(|a| a.poll_timeout()).map(since);
            let next = [packet.map(|p| p.0), wake.map(|w| w.0), timer, app_timer]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|t| *t <= until) else {
                self.now = self.now.max(until);
                return;
            };
            self.now = self.now.max(next);
            if let Some((at, seq)) = packet.filter(|p| p.0 == next) {
                let i = self.flight.iter().position(|p| p.at == at && p.seq == seq).unwrap();
                let p = self.flight.swap_remove(i);
                self.deliver(p);
            } else if let Some((_, i)) = wake.filter(|w| w.0 == next) {
                let mut out = Vec::new();
                self.peers[i].0.on_wake(self.now, &mut out);
                self.send_from_peer(i, out);
            } else if timer == Some(next) {
                self.endpoint.handle_timeout(self.instant());
            } else if let Some(app) = self.app.as_mut() {
                app.handle_timeout(&mut self.endpoint, self.start + self.now);
            }
            self.pump();
        }
        panic!("simulation does not settle: a timer fires without advancing");
    }

    /// Moves what the endpoint produced onto the network and hands its events to the call logic
    /// (call after acting on [`Sim::endpoint`] directly).
    pub fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                progressed = true;
                let link = self.peers.iter().find(|(p, _, _)| p.addr() == t.flow.remote);
                let link = link.map(|(_, _, from)| *from);
                self.send(self.local, t.flow.remote, t.bytes, link);
            }
            while let Some(e) = self.endpoint.poll_event() {
                progressed = true;
                let now = self.instant();
                if let Some(app) = self.app.as_mut() {
                    app.event(&mut self.endpoint, now, &e);
                }
                if self.keep_trace {
                    self.events.push((self.now, e));
                }
            }
            if !progressed {
                let now = self.instant();
                if let Some(app) = self.app.as_mut() {
                    app.settled(&mut self.endpoint, now);
                }
                return;
            }
        }
    }

    fn deliver(&mut self, p: InFlight) {
        if p.to == self.local {
            let flow = self.flow(p.from);
            if flow.transport == Transport::Udp {
                self.endpoint.handle_datagram(self.instant(), flow, p.bytes);
                return;
            }
            let i = match self.framers.iter().position(|(a, _)| *a == p.from) {
                Some(i) => i,
                None => {
                    self.framers.push((p.from, StreamFramer::new()));
                    self.framers.len() - 1
                }
            };
            self.framers[i].1.push(&p.bytes);
            // A peer that breaks framing is a test bug: fail loudly.
            while let Some(frame) = self.framers[i].1.pop().expect("peer stream frames") {
                self.endpoint.handle_frame(self.instant(), flow, frame);
            }
        } else if let Some(i) = self.peers.iter().position(|(peer, _, _)| peer.addr() == p.to) {
            let mut out = Vec::new();
            self.peers[i].0.on_receive(self.now, &p.bytes, &mut out);
            self.send_from_peer(i, out);
        }
    }

    fn send_from_peer(&mut self, i: usize, out: Vec<Bytes>) {
        let (from, link) = (self.peers[i].0.addr(), self.peers[i].1);
        for bytes in out {
            self.send(from, self.local, bytes, Some(link));
        }
    }

    /// Puts a packet on the link (`None`: nobody is there, the packet is lost).
    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Bytes, link: Option<Link>) {
        let mut arrivals = Vec::new();
        if let Some(link) = link {
            let blocked = link.block.is_some_and(|b| b(&bytes));
            // Draw every random number whatever the outcome, so that one test's faults do not
            // shift when a block filter changes.
            let (lost, dup) = (self.rng.chance(link.loss), self.rng.chance(link.duplicate));
            let (j1, j2) = (self.rng.upto(link.jitter), self.rng.upto(link.jitter));
            if !blocked && !lost {
                arrivals.push(self.now + link.delay + j1);
                if dup {
                    arrivals.push(self.now + link.delay + j2);
                }
            }
        }
        for &at in &arrivals {
            self.seq += 1;
            let bytes = bytes.clone();
            self.flight.push(InFlight { at, seq: self.seq, from, to, bytes });
        }
        if !self.keep_trace {
            return;
        }
        let (line, cseq_method) = describe(&bytes);
        self.trace.push(Sent { at: self.now, from, to, line, cseq_method, arrivals, bytes });
    }

    /// Packets the endpoint sent whose start line begins with `line`.
    pub fn sent_by_endpoint(&self, line: &str) -> Vec<&Sent> {
        self.trace.iter().filter(|s| s.from == self.local && s.line.starts_with(line)).collect()
    }

    /// Packets sent to the endpoint whose start line begins with `line`.
    pub fn sent_to_endpoint(&self, line: &str) -> Vec<&Sent> {
        self.trace.iter().filter(|s| s.to == self.local && s.line.starts_with(line)).collect()
    }

    /// Events that `pick` selects.
    pub fn events_where(&self, pick: impl Fn(&UaEvent) -> bool) -> Vec<(Duration, UaEvent)> {
        self.events.iter().filter(|(_, e)| pick(e)).cloned().collect()
    }

    /// The whole trace, one line per packet, for failure messages.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for p in &self.trace {
            let dir = if p.from == self.local { "->" } else { "<-" };
            let fate: Vec<String> =
                p.arrivals.iter().map(|a| format!("{:.3}", a.as_secs_f64())).collect();
            s.push_str(&format!(
                "{:8.3} {dir} {} {:<28} [{}] arrives {}\n",
                p.at.as_secs_f64(),
                if p.from == self.local { p.to } else { p.from },
                p.line,
                p.cseq_method,
                if fate.is_empty() { "LOST".to_string() } else { fate.join(",") }
            ));
        }
        for (at, e) in &self.events {
            s.push_str(&format!("{:8.3} event {}\n", at.as_secs_f64(), event_name(e)));
        }
        s
    }
}

/// The variant name of an event, for traces.
pub fn event_name(e: &UaEvent) -> String {
    let debug = format!("{e:?}");
    debug.split([' ', '{', '(']).next().unwrap_or("").to_string()
}

fn describe(bytes: &[u8]) -> (String, String) {
    if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
        return ("<keep-alive>".into(), String::new());
    }
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or("").to_string();
    let method = text
        .lines()
        .find_map(|l| l.strip_prefix("CSeq:").map(|v| v.split_whitespace().nth(1).unwrap_or("")))
        .unwrap_or("")
        .to_string();
    (line, method)
}
