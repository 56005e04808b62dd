//! RTP sockets and the media task of each call. Runtime layer: it binds ports from the configured
//! range, moves datagrams, and sleeps until the next frame is due; every decision about what to send
//! comes from the sans-IO media core ([`Playout`], [`Relay`], [`SourceLatch`]).
//!
//! One task per call owns the call's sockets (the caller leg and, once ringing, the agent leg, each
//! an RTP port and the RTCP port above it), so a bridge relays between two sockets without
//! crossing tasks. Dropping the [`MediaSession`] ends the task; ports return to the pool when their
//! [`Lease`] drops, whatever path the call took. What arrives is judged by [`LegReceiver`]: bad packets are
//! dropped and counted by reason, never ending the task; key presses and dead legs go back to the
//! core task as [`MediaEvent`]s.
//!
//! A call may gain a third leg (a transfer target, a supervisor); while the call is mixed
//! ([`MediaCommand::Mix`]), what each leg sends goes to the call's [`Mixer`] instead of a relay,
//! and every 20 ms each leg is sent what the mixer says it hears.
//!
//! A consultation (an agent's second call, to a transfer target) runs as a call of its own; when
//! it is completed or turned into a conference ([`MediaCommand::HandOver`]) its task ends by
//! sending its legs, sockets and streams as they are, to the task of the call it was made from
//! ([`MediaCommand::Adopt`]), so the target's RTP keeps flowing to the same port with the same
//! SSRC and no re-INVITE is needed.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use std::time::Duration;

use metrics::{Counter, Histogram, counter, histogram};

use super::driver::now;
use crate::acd::CallId;
use crate::acd::b2bua::{Join, MediaEvent, MediaLeg};
use crate::media::leg::{Inbound, LegReceiver};
use crate::media::mix::{AGENT, CALLER, MixMode, MixedStream, Mixer, THIRD};
use crate::media::pacing::{FRAME_DURATION, MAX_CATCH_UP_FRAMES, Playlist, Playout, RtpSender};
use crate::media::relay::{LegFormat, Relay};
use crate::metrics as m;

/// The largest datagram a media socket reads (RTP of G.711 at 60 ms is 492 bytes; RTCP compounds
/// are smaller than this too); anything longer is cut and then fails to parse.
const DATAGRAM: usize = 2048;

/// The RTP port range, shared by every call. Ports are even (RTCP takes the odd one above).
#[derive(Clone)]
pub struct PortPool {
    inner: Arc<Mutex<PoolState>>,
    address: IpAddr,
}

struct PoolState {
    min: u16,
    max: u16,
    next: u16,
    used: BTreeSet<u16>,
}

/// One port pair taken from the pool (RTP on the even port, RTCP on the odd one above); it goes
/// back when this is dropped.
pub struct Lease {
    port: u16,
    pool: Arc<Mutex<PoolState>>,
}

impl Lease {
    /// The leased port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pool.lock() {
            s.used.remove(&self.port);
        }
    }
}

/// Why no RTP port could be had.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Every port in the range is in use (by calls, or by other processes).
    #[error("no free RTP port in the configured range")]
    Exhausted,
}

impl PortPool {
    /// A pool over `min..=max` on `address`.
    pub fn new(address: IpAddr, min: u16, max: u16) -> PortPool {
        let state = PoolState { min, max, next: min, used: BTreeSet::new() };
        PortPool { inner: Arc::new(Mutex::new(state)), address }
    }

    /// The address RTP binds to and SDP advertises.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Ports in use now.
    pub fn in_use(&self) -> usize {
        self.inner.lock().map(|s| s.used.len()).unwrap_or(0)
    }

    /// Binds the RTP socket on the next free even port and the RTCP socket on the odd port above.
    /// Ports held by other processes are skipped. Must be called inside the tokio runtime.
    pub fn bind(&self) -> Result<BoundLeg, PortError> {
        let Ok(mut s) = self.inner.lock() else { return Err(PortError::Exhausted) };
        let slots = (u32::from(s.max) - u32::from(s.min)) / 2 + 1;
        for _ in 0..slots {
            let port = s.next;
            s.next = if u32::from(port) + 2 > u32::from(s.max) { s.min } else { port + 2 };
            if s.used.contains(&port) {
                continue;
            }
            let Some(rtcp_port) = port.checked_add(1) else { continue };
            let (Some(rtp), Some(rtcp)) = (self.bind_one(port), self.bind_one(rtcp_port)) else {
                continue;
            };
            s.used.insert(port);
            return Ok(BoundLeg { rtp, rtcp, lease: Lease { port, pool: self.inner.clone() } });
        }
        Err(PortError::Exhausted)
    }

    fn bind_one(&self, port: u16) -> Option<UdpSocket> {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(self.address, port)).ok()?;
        socket.set_nonblocking(true).ok()?;
        UdpSocket::from_std(socket).ok()
    }
}

/// A leg's sockets and the lease of their ports.
pub struct BoundLeg {
    /// The RTP socket (even port).
    pub rtp: UdpSocket,
    /// The RTCP socket (the odd port above).
    pub rtcp: UdpSocket,
    /// The ports' lease.
    pub lease: Lease,
}

impl BoundLeg {
    /// The RTP port.
    pub fn port(&self) -> u16 {
        self.lease.port()
    }
}

/// What the call logic asks of a call's media task.
pub enum MediaCommand {
    /// The caller hears this playlist (replacing whatever they heard).
    Play(Playlist),
    /// An agent leg's sockets, bound for our offer; its answer comes later.
    AgentLeg(BoundLeg),
    /// The agent answered: where its RTP goes and what it speaks.
    AgentAnswered {
        /// The address from the agent's SDP (before latching).
        remote: Option<SocketAddr>,
        /// Codec and payload numbering.
        format: LegFormat,
    },
    /// The caller's SDP answer arrived late (it came in the ACK of our offer): where its RTP goes
    /// and what it speaks.
    CallerAnswered {
        /// The address from the caller's SDP (before latching).
        remote: Option<SocketAddr>,
        /// Codec and payload numbering.
        format: LegFormat,
    },
    /// Connect caller and agent.
    Bridge,
    /// The agent leg is gone (hung up, failed, cancelled); the caller stays.
    DropAgent,
    /// A re-INVITE/UPDATE moved a leg or put it on (or off) hold.
    UpdateLeg {
        /// Which leg.
        leg: MediaLeg,
        /// The address from the new SDP (None: unchanged or `c=0.0.0.0`).
        remote: Option<SocketAddr>,
        /// `sendonly`/`inactive`: the dead-leg timer sleeps.
        on_hold: bool,
    },
    /// A third leg's sockets (a transfer target, a supervisor), bound for our offer. It has no
    /// dead-leg watchdog yet: [`MediaLeg`] names only caller and agent, so its SIP side must
    /// notice a vanished third party.
    ThirdLeg(BoundLeg),
    /// The third leg answered: where its RTP goes and what it speaks.
    ThirdAnswered {
        /// The address from the third leg's SDP (before latching).
        remote: Option<SocketAddr>,
        /// Codec and payload numbering.
        format: LegFormat,
    },
    /// Caller, agent and third leg hear each other through the mixer, in this mode (needs the
    /// agent and third legs; a mode change applies from the next 20 ms tick).
    Mix(MixMode),
    /// The third leg is gone; caller and agent are bridged again (or the caller waits).
    DropThird,
    /// This call is a consultation: its legs join the call behind `to` as `join` says, and this
    /// task ends.
    HandOver {
        /// The commands of the call the legs join.
        to: mpsc::UnboundedSender<MediaCommand>,
        /// How they join.
        join: Join,
    },
    /// A consultation's legs, handed over (sent by its task, never by the call logic).
    Adopt(Box<Adopted>),
}

/// The legs a consultation hands over (opaque outside this module).
pub struct Adopted {
    agent: Option<Leg>,
    third: Option<Leg>,
    join: Join,
}

/// What a media task needs to know about its call, besides its sockets.
pub struct SessionContext {
    /// The call, named in the events.
    pub call: CallId,
    /// Where key presses and dead legs go (the core task).
    pub events: mpsc::UnboundedSender<MediaEvent>,
    /// `[media] rtp_timeout`.
    pub rtp_timeout: Duration,
}

/// The handle of a call's media task. Dropping it ends the task and frees its ports.
pub struct MediaSession {
    commands: mpsc::UnboundedSender<MediaCommand>,
    caller_port: u16,
}

impl MediaSession {
    /// Starts the media task for a caller leg bound on `leg`, whose SDP said `remote` and who
    /// speaks `format`. `ssrc_seed` (random) seeds the legs' SSRCs, sequences and timestamps.
    /// The caller's watchdog starts now: a trunk that never sends media is found dead.
    pub fn start(
        leg: BoundLeg,
        remote: Option<SocketAddr>,
        format: LegFormat,
        ssrc_seed: u64,
        context: SessionContext,
    ) -> MediaSession {
        let (tx, rx) = mpsc::unbounded_channel();
        let caller_port = leg.port();
        let mut receiver = LegReceiver::new(remote, format);
        receiver.start_watchdog(context.rtp_timeout, now());
        let mut seed = ssrc_seed;
        let caller = Leg::new(leg, receiver, Outgoing::Idle(new_sender(&mut seed)));
        tokio::spawn(run(caller, seed, context, rx));
        MediaSession { commands: tx, caller_port }
    }

    /// The caller leg's port, for our SDP answer.
    pub fn caller_port(&self) -> u16 {
        self.caller_port
    }

    /// Sends a command; a task that already ended ignores it.
    pub fn send(&self, command: MediaCommand) {
        let _ = self.commands.send(command);
    }

    /// Where another session sends this one legs ([`MediaCommand::HandOver`]).
    pub fn commands(&self) -> mpsc::UnboundedSender<MediaCommand> {
        self.commands.clone()
    }
}

/// One leg: its sockets, what it receives and who feeds what it hears.
struct Leg {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    _lease: Lease,
    rx: LegReceiver,
    out: Outgoing,
}

impl Leg {
    fn new(bound: BoundLeg, rx: LegReceiver, out: Outgoing) -> Leg {
        Leg { rtp: bound.rtp, rtcp: bound.rtcp, _lease: bound.lease, rx, out }
    }

    /// Replaces who feeds the leg, keeping its stream.
    fn feed(&mut self, make: impl FnOnce(RtpSender) -> Outgoing) {
        let old = std::mem::replace(&mut self.out, Outgoing::Idle(RtpSender::new(0, 0, 0)));
        self.out = make(old.into_sender());
    }
}

/// Who feeds a leg's outgoing stream.
enum Outgoing {
    /// Nobody: the stream waits, keeping its SSRC and position.
    Idle(RtpSender),
    /// Prompts or hold music.
    Playing(Playout),
    /// The other leg's audio.
    Relaying(Relay),
    /// What the call's mixer says this leg hears.
    Mixing(MixedStream),
}

impl Outgoing {
    fn into_sender(self) -> RtpSender {
        match self {
            Outgoing::Idle(s) => s,
            Outgoing::Playing(p) => p.into_sender(),
            Outgoing::Relaying(r) => r.into_sender(),
            Outgoing::Mixing(m) => m.into_sender(),
        }
    }

    fn sender(&self) -> &RtpSender {
        match self {
            Outgoing::Idle(s) => s,
            Outgoing::Playing(p) => p.sender(),
            Outgoing::Relaying(r) => r.sender(),
            Outgoing::Mixing(m) => m.sender(),
        }
    }
}

fn new_sender(seed: &mut u64) -> RtpSender {
    let mut next = || {
        // xorshift64*: plenty for SSRC/sequence/timestamp starting points.
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let (a, b) = (next(), next());
    RtpSender::new(a as u32, (a >> 32) as u16, b as u32)
}

/// The task's metric handles, looked up once rather than per packet.
struct Meters {
    rtp_in: Counter,
    rtp_out: Counter,
    rtcp_received: Counter,
    rtcp_sent: Counter,
    lateness: Histogram,
}

impl Meters {
    fn new() -> Meters {
        Meters {
            rtp_in: counter!(m::RTP_PACKETS, "direction" => "in"),
            rtp_out: counter!(m::RTP_PACKETS, "direction" => "out"),
            rtcp_received: counter!(m::RTCP_PACKETS, "result" => "received"),
            rtcp_sent: counter!(m::RTCP_PACKETS, "result" => "sent"),
            lateness: histogram!(m::MEDIA_SEND_LATENESS),
        }
    }

    fn dropped(reason: &'static str) {
        if reason == "rtcp_malformed" {
            // Bad RTCP is not bad RTP: counted apart.
            counter!(m::RTCP_PACKETS, "result" => "malformed").increment(1);
        } else {
            counter!(m::RTP_DROPPED, "reason" => reason).increment(1);
        }
    }
}

/// The wall clock as an NTP timestamp, for RTCP sender reports.
fn ntp_now() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    crate::media::rtcp::ntp_timestamp(since.unwrap_or_default())
}

async fn run(
    mut caller: Leg,
    mut seed: u64,
    context: SessionContext,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
) {
    let meters = Meters::new();
    let mut agent: Option<Leg> = None;
    let mut third: Option<Leg> = None;
    let mut mix: Option<Mix> = None;
    let mut bridged = false;
    // A queued caller's task holds the caller leg's two buffers only; the agent's and the third
    // leg's grow when those legs exist (the task's size is most of a queued caller's memory).
    let mut caller_bufs = [[0u8; DATAGRAM]; 2];
    let mut leg_bufs: [Vec<u8>; 4] = Default::default();
    // One G.711 packet of 20 ms is 172 bytes; the buffer grows if a longer one is ever built.
    let mut out = Vec::with_capacity(256);
    let report = |leg: MediaLeg, event: MediaEvent| {
        tracing::debug!(call = %context.call, ?leg, ?event, "media event");
        let _ = context.events.send(event);
    };
    let (to, join) = loop {
        let wake = [
            match &caller.out {
                Outgoing::Playing(p) => p.poll_timeout(),
                _ => None,
            },
            caller.rx.poll_timeout(),
            agent.as_ref().and_then(|a| a.rx.poll_timeout()),
            third.as_ref().and_then(|l| l.rx.poll_timeout()),
            mix.as_ref().map(|m| m.next_tick),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(tokio::time::Instant::from_std);
        for (i, buf) in leg_bufs.iter_mut().enumerate() {
            let needed = if i < 2 { agent.is_some() } else { third.is_some() };
            if needed && buf.is_empty() {
                buf.resize(DATAGRAM, 0);
            }
        }
        let [b0, b1] = &mut caller_bufs;
        let [b2, b3, b4, b5] = &mut leg_bufs;
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                match command {
                    MediaCommand::HandOver { to, join } => {
                        break (to, join);
                    }
                    MediaCommand::Adopt(adopted) => {
                        let Adopted { agent: a, third: l, join } = *adopted;
                        if let Some(a) = a {
                            agent = Some(a);
                        }
                        if l.is_some() {
                            third = l;
                        }
                        mix = None;
                        match join {
                            Join::Transfer => {
                                let c = MediaCommand::Bridge;
                                apply(c, &mut caller, &mut agent, &mut bridged, &mut seed, &context)
                            }
                            Join::Conference => {
                                let c = MediaCommand::Mix(MixMode::Conference);
                                let (a, t, m) = (agent.as_mut(), &mut third, &mut mix);
                                apply_third(c, &mut caller, a, t, m, &mut bridged, &mut seed);
                            }
                        }
                    }
                    c @ (MediaCommand::ThirdLeg(_)
                    | MediaCommand::ThirdAnswered { .. }
                    | MediaCommand::Mix(_)
                    | MediaCommand::DropThird) => {
                        let a = agent.as_mut();
                        let (t, m, b) = (&mut third, &mut mix, &mut bridged);
                        apply_third(c, &mut caller, a, t, m, b, &mut seed);
                    }
                    c => {
                        if matches!(c, MediaCommand::Bridge) {
                            // A plain bridge again: the mix (if any) ends.
                            mix = None;
                        }
                        apply(c, &mut caller, &mut agent, &mut bridged, &mut seed, &context)
                    }
                }
            }
            received = caller.rtp.recv_from(b0) => {
                let Ok((n, from)) = received else { continue };
                let t = now();
                match caller.rx.on_rtp(t, from, &b0[..n]) {
                    Inbound::Rtp { packet, key } => {
                        meters.rtp_in.increment(1);
                        if let Some(digit) = key {
                            let event = MediaEvent::Dtmf { call: context.call, digit };
                            report(MediaLeg::Caller, event);
                        }
                        if let Some(m) = mix.as_mut() {
                            m.put(CALLER, &caller.rx, &packet);
                        } else if let Some(a) = agent.as_mut()
                            && let Outgoing::Relaying(relay) = &mut a.out
                        {
                            match relay.relay(t, &packet, &mut out) {
                                Ok(()) => {
                                    send_rtp(&a.rtp, &a.rx, &out, &meters)
                                }
                                Err(e) => Meters::dropped(e.reason()),
                            }
                        }
                    }
                    Inbound::Rtcp => meters.rtcp_received.increment(1),
                    Inbound::Dropped(reason) => Meters::dropped(reason),
                }
            }
            received = caller.rtcp.recv_from(b1) => {
                let Ok((n, from)) = received else { continue };
                match caller.rx.on_rtcp(now(), from, &b1[..n]) {
                    Ok(()) => meters.rtcp_received.increment(1),
                    Err(reason) => Meters::dropped(reason),
                }
            }
            received = recv_opt(agent.as_ref().map(|a| &a.rtp), b2) => {
                let Some((n, from)) = received else { continue };
                let Some(a) = agent.as_mut() else { continue };
                let t = now();
                match a.rx.on_rtp(t, from, &b2[..n]) {
                    Inbound::Rtp { packet, .. } => {
                        meters.rtp_in.increment(1);
                        if let Some(m) = mix.as_mut() {
                            m.put(AGENT, &a.rx, &packet);
                        } else if let Outgoing::Relaying(relay) = &mut caller.out {
                            match relay.relay(t, &packet, &mut out) {
                                Ok(()) => {
                                    send_rtp(&caller.rtp, &caller.rx, &out, &meters)
                                }
                                Err(e) => Meters::dropped(e.reason()),
                            }
                        }
                    }
                    Inbound::Rtcp => meters.rtcp_received.increment(1),
                    Inbound::Dropped(reason) => Meters::dropped(reason),
                }
            }
            received = recv_opt(agent.as_ref().map(|a| &a.rtcp), b3) => {
                let Some((n, from)) = received else { continue };
                let Some(a) = agent.as_mut() else { continue };
                match a.rx.on_rtcp(now(), from, &b3[..n]) {
                    Ok(()) => meters.rtcp_received.increment(1),
                    Err(reason) => Meters::dropped(reason),
                }
            }
            received = recv_opt(third.as_ref().map(|l| &l.rtp), b4) => {
                let Some((n, from)) = received else { continue };
                let Some(l) = third.as_mut() else { continue };
                match l.rx.on_rtp(now(), from, &b4[..n]) {
                    Inbound::Rtp { packet, .. } => {
                        meters.rtp_in.increment(1);
                        if let Some(m) = mix.as_mut() {
                            m.put(THIRD, &l.rx, &packet);
                        }
                    }
                    Inbound::Rtcp => meters.rtcp_received.increment(1),
                    Inbound::Dropped(reason) => Meters::dropped(reason),
                }
            }
            received = recv_opt(third.as_ref().map(|l| &l.rtcp), b5) => {
                let Some((n, from)) = received else { continue };
                let Some(l) = third.as_mut() else { continue };
                match l.rx.on_rtcp(now(), from, &b5[..n]) {
                    Ok(()) => meters.rtcp_received.increment(1),
                    Err(reason) => Meters::dropped(reason),
                }
            }
            _ = sleep_opt(wake) => {
                let t = now();
                if let Some(m) = mix.as_mut() {
                    let mut legs = [Some(&mut caller), agent.as_mut(), third.as_mut()];
                    m.run_due(t, &mut legs, &mut out, &meters);
                }
                if let Outgoing::Playing(playout) = &mut caller.out {
                    while let Some(due) = playout.poll_timeout().filter(|d| *d <= t) {
                        if !playout.poll_transmit_into(t, &mut out) {
                            break;
                        }
                        meters.lateness.record(t.saturating_duration_since(due).as_secs_f64());
                        send_rtp(&caller.rtp, &caller.rx, &out, &meters);
                    }
                }
                if caller.rx.poll_dead(t) {
                    let event = MediaEvent::LegDead { call: context.call, leg: MediaLeg::Caller };
                    report(MediaLeg::Caller, event);
                }
                if let Some(a) = agent.as_mut() && a.rx.poll_dead(t) {
                    let event = MediaEvent::LegDead { call: context.call, leg: MediaLeg::Agent };
                    report(MediaLeg::Agent, event);
                }
                let ntp = ntp_now();
                let extra = agent.as_mut().into_iter().chain(third.as_mut());
                for leg in std::iter::once(&mut caller).chain(extra) {
                    if let Some(to) = leg.rx.poll_report(t, ntp, leg.out.sender(), &mut out) {
                        let _ = leg.rtcp.try_send_to(&out, to);
                        meters.rtcp_sent.increment(1);
                    }
                }
            }
        }
    };
    // Handed over: this call was a consultation, its legs go on in the other call.
    let adopted = match join {
        Join::Transfer => Adopted { agent, third: None, join },
        Join::Conference => Adopted { agent: Some(caller), third: agent, join },
    };
    let _ = to.send(MediaCommand::Adopt(Box::new(adopted)));
}

/// Sends one RTP packet to the leg's peer, unless the peer holds the leg (`sendonly`/`inactive`
/// from its side: it does not want our audio; the stream's clock runs on all the same).
fn send_rtp(socket: &UdpSocket, rx: &LegReceiver, out: &[u8], meters: &Meters) {
    if rx.on_hold() {
        return;
    }
    if let Some(to) = rx.send_to() {
        let _ = socket.try_send_to(out, to);
        meters.rtp_out.increment(1);
    }
}

/// Carries out one command of the call logic.
fn apply(
    command: MediaCommand,
    caller: &mut Leg,
    agent: &mut Option<Leg>,
    bridged: &mut bool,
    seed: &mut u64,
    context: &SessionContext,
) {
    match command {
        MediaCommand::Play(playlist) => {
            let f = caller.rx.format();
            caller.feed(|s| {
                Outgoing::Playing(Playout::new(s, f.codec, f.payload_type, playlist, now()))
            });
        }
        MediaCommand::AgentLeg(bound) => {
            let rx = LegReceiver::new(None, caller.rx.format());
            *agent = Some(Leg::new(bound, rx, Outgoing::Idle(new_sender(seed))));
            *bridged = false;
        }
        MediaCommand::AgentAnswered { remote, format } => {
            if let Some(a) = agent.as_mut() {
                a.rx.answered(remote, format);
                a.rx.start_watchdog(context.rtp_timeout, now());
            }
        }
        MediaCommand::CallerAnswered { remote, format } => caller.rx.answered(remote, format),
        MediaCommand::Bridge => {
            if let Some(a) = agent.as_mut() {
                let (from_agent, from_caller) = (a.rx.format(), caller.rx.format());
                caller.feed(|s| Outgoing::Relaying(Relay::new(from_agent, from_caller, s)));
                a.feed(|s| Outgoing::Relaying(Relay::new(from_caller, from_agent, s)));
                *bridged = true;
            }
        }
        MediaCommand::DropAgent => {
            *agent = None;
            *bridged = false;
            if matches!(caller.out, Outgoing::Relaying(_)) {
                caller.feed(Outgoing::Idle);
            }
        }
        MediaCommand::UpdateLeg { leg, remote, on_hold } => {
            let target = match leg {
                MediaLeg::Caller => Some(&mut *caller),
                MediaLeg::Agent => agent.as_mut(),
            };
            if let Some(l) = target {
                l.rx.update(remote, on_hold, now());
            }
        }
        // The task hands these to `apply_third`, and takes hand-overs itself.
        MediaCommand::ThirdLeg(_)
        | MediaCommand::ThirdAnswered { .. }
        | MediaCommand::Mix(_)
        | MediaCommand::DropThird
        | MediaCommand::HandOver { .. }
        | MediaCommand::Adopt(_) => {}
    }
}

/// A call's mixer and when its next 20 ms tick is due.
struct Mix {
    mixer: Mixer,
    next_tick: std::time::Instant,
}

impl Mix {
    /// Queues the audio of a packet from leg `index`; telephone events and unknown payload
    /// types are not mixed.
    fn put(&mut self, index: usize, rx: &LegReceiver, packet: &crate::media::rtp::RtpPacket<'_>) {
        if let Some(codec) = rx.format().audio_codec(packet.payload_type) {
            self.mixer.put_payload(index, codec, packet.payload);
        }
    }

    /// Runs the ticks due by `t` (at most a few, after a stall) and sends each mixing leg its
    /// frame.
    fn run_due(
        &mut self,
        t: std::time::Instant,
        legs: &mut [Option<&mut Leg>; 3],
        out: &mut Vec<u8>,
        meters: &Meters,
    ) {
        let behind = t.saturating_duration_since(self.next_tick);
        if behind > FRAME_DURATION * MAX_CATCH_UP_FRAMES as u32 {
            self.next_tick = t;
        }
        while self.next_tick <= t {
            for (index, leg) in legs.iter().enumerate() {
                if let Some(l) = leg {
                    self.mixer.set_codec(index, l.rx.format().codec);
                }
            }
            self.mixer.tick();
            for (index, leg) in legs.iter_mut().enumerate() {
                let Some(l) = leg else { continue };
                if let Outgoing::Mixing(stream) = &mut l.out {
                    let pt = l.rx.format().payload_type;
                    stream.packet(t, pt, self.mixer.payload(index), out);
                    send_rtp(&l.rtp, &l.rx, out, meters);
                }
            }
            self.next_tick += FRAME_DURATION;
        }
    }
}

/// Carries out a command about the third leg and the mixer.
fn apply_third(
    command: MediaCommand,
    caller: &mut Leg,
    agent: Option<&mut Leg>,
    third: &mut Option<Leg>,
    mix: &mut Option<Mix>,
    bridged: &mut bool,
    seed: &mut u64,
) {
    match command {
        MediaCommand::ThirdLeg(bound) => {
            let rx = LegReceiver::new(None, caller.rx.format());
            *third = Some(Leg::new(bound, rx, Outgoing::Idle(new_sender(seed))));
        }
        MediaCommand::ThirdAnswered { remote, format } => {
            if let Some(l) = third.as_mut() {
                l.rx.answered(remote, format);
            }
        }
        MediaCommand::Mix(mode) => {
            let (Some(a), Some(l)) = (agent, third.as_mut()) else { return };
            if let Some(m) = mix.as_mut() {
                // Same three legs: only who hears whom changes.
                let _ = m.mixer.set_hearing(mode.hearing());
                return;
            }
            let codecs = [caller.rx.format().codec, a.rx.format().codec, l.rx.format().codec];
            let Ok(mixer) = Mixer::new(&codecs, mode.hearing()) else { return };
            let t = now();
            for leg in [caller, a, l] {
                leg.feed(|s| Outgoing::Mixing(MixedStream::new(s, t)));
            }
            *mix = Some(Mix { mixer, next_tick: t + FRAME_DURATION });
            *bridged = false;
        }
        MediaCommand::DropThird => {
            *third = None;
            if mix.take().is_none() {
                return;
            }
            match agent {
                Some(a) => {
                    let (from_agent, from_caller) = (a.rx.format(), caller.rx.format());
                    caller.feed(|s| Outgoing::Relaying(Relay::new(from_agent, from_caller, s)));
                    a.feed(|s| Outgoing::Relaying(Relay::new(from_caller, from_agent, s)));
                    *bridged = true;
                }
                None => caller.feed(Outgoing::Idle),
            }
        }
        _ => {}
    }
}

async fn recv_opt(socket: Option<&UdpSocket>, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await.ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exhausted_pool_refuses_and_every_port_comes_back() {
        // Ports the kernel gives us are not predictable; find a free pair range by trying.
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41_000, 41_007);
        let mut legs = Vec::new();
        while let Ok(leg) = pool.bind() {
            assert_eq!(leg.port() % 2, 0);
            assert_eq!(leg.rtcp.local_addr().unwrap().port(), leg.port() + 1);
            legs.push(leg);
        }
        assert!(matches!(pool.bind(), Err(PortError::Exhausted)));
        assert_eq!(pool.in_use(), legs.len());
        // A refused bind never disturbs the legs that hold ports.
        for leg in &legs {
            assert!(leg.rtp.local_addr().is_ok());
        }
        let held = legs.len();
        legs.clear();
        assert_eq!(pool.in_use(), 0, "every lease returned");
        let mut again = Vec::new();
        while let Ok(leg) = pool.bind() {
            again.push(leg);
        }
        assert_eq!(again.len(), held, "all ports usable again");
    }
}
