//! RTP sockets and the media task of each call. Runtime layer: it binds ports from the configured
//! range, moves datagrams, and sleeps until the next frame is due; every decision about what to send
//! comes from the sans-IO media core ([`Playout`], [`Relay`], [`SourceLatch`]).
//!
//! One task per call owns the call's sockets (the caller leg and, once ringing, the agent leg), so
//! a bridge relays between two sockets without crossing tasks. Dropping the [`MediaSession`] ends
//! the task; ports return to the pool when their [`Lease`] drops, whatever path the call took.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::driver::now;
use crate::media::pacing::{Playlist, Playout, RtpSender};
use crate::media::relay::{LegFormat, Relay, SourceLatch};
use crate::media::rtp::{PacketKind, RtpPacket, classify};

/// Packets from one source before a leg's latch closes on it (symmetric RTP learning).
const LATCH_LEARN_PACKETS: u32 = 3;

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

/// One port taken from the pool; it goes back when this is dropped.
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

    /// Binds a socket on the next free even port. Ports held by other processes are skipped.
    /// Must be called inside the tokio runtime.
    pub fn bind(&self) -> Result<(UdpSocket, Lease), PortError> {
        let Ok(mut s) = self.inner.lock() else { return Err(PortError::Exhausted) };
        let slots = (u32::from(s.max) - u32::from(s.min)) / 2 + 1;
        for _ in 0..slots {
            let port = s.next;
            s.next = if u32::from(port) + 2 > u32::from(s.max) { s.min } else { port + 2 };
            if s.used.contains(&port) {
                continue;
            }
            let Ok(socket) = std::net::UdpSocket::bind(SocketAddr::new(self.address, port)) else {
                continue;
            };
            if socket.set_nonblocking(true).is_err() {
                continue;
            }
            let Ok(socket) = UdpSocket::from_std(socket) else { continue };
            s.used.insert(port);
            return Ok((socket, Lease { port, pool: self.inner.clone() }));
        }
        Err(PortError::Exhausted)
    }
}

/// What the call logic asks of a call's media task.
pub enum MediaCommand {
    /// The caller hears this playlist (replacing whatever they heard).
    Play(Playlist),
    /// An agent leg's socket, bound for our offer; its answer comes later.
    AgentLeg(UdpSocket, Lease),
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
}

/// The handle of a call's media task. Dropping it ends the task and frees its ports.
pub struct MediaSession {
    commands: mpsc::UnboundedSender<MediaCommand>,
    caller_port: u16,
}

impl MediaSession {
    /// Starts the media task for a caller leg bound on `socket`, whose SDP said `remote` and who
    /// speaks `format`. `ssrc_seed` (random) seeds the legs' SSRCs, sequences and timestamps.
    pub fn start(
        socket: UdpSocket,
        lease: Lease,
        remote: Option<SocketAddr>,
        format: LegFormat,
        ssrc_seed: u64,
    ) -> MediaSession {
        let (tx, rx) = mpsc::unbounded_channel();
        let caller_port = lease.port();
        let caller = Leg {
            socket,
            _lease: lease,
            latch: SourceLatch::new(remote, LATCH_LEARN_PACKETS),
            format,
        };
        let mut seed = ssrc_seed;
        let caller_out = Outgoing::Idle(new_sender(&mut seed));
        tokio::spawn(run(caller, caller_out, seed, rx));
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
}

struct Leg {
    socket: UdpSocket,
    _lease: Lease,
    latch: SourceLatch,
    format: LegFormat,
}

/// Who feeds a leg's outgoing stream.
enum Outgoing {
    /// Nobody: the stream waits, keeping its SSRC and position.
    Idle(RtpSender),
    /// Prompts or hold music.
    Playing(Playout),
    /// The other leg's audio.
    Relaying(Relay),
}

impl Outgoing {
    fn into_sender(self) -> RtpSender {
        match self {
            Outgoing::Idle(s) => s,
            Outgoing::Playing(p) => p.into_sender(),
            Outgoing::Relaying(r) => r.into_sender(),
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

async fn run(
    mut caller: Leg,
    mut caller_out: Outgoing,
    mut seed: u64,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
) {
    let mut agent: Option<Leg> = None;
    let mut agent_out: Option<Outgoing> = None;
    let mut caller_buf = vec![0u8; 2048];
    let mut agent_buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(2048);
    loop {
        let wake = match &caller_out {
            Outgoing::Playing(p) => p.poll_timeout().map(tokio::time::Instant::from_std),
            _ => None,
        };
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                match command {
                    MediaCommand::Play(playlist) => {
                        let sender = std::mem::replace(&mut caller_out, Outgoing::Idle(RtpSender::new(0, 0, 0))).into_sender();
                        let f = caller.format;
                        caller_out = Outgoing::Playing(Playout::new(sender, f.codec, f.payload_type, playlist, now()));
                    }
                    MediaCommand::AgentLeg(socket, lease) => {
                        agent = Some(Leg { socket, _lease: lease, latch: SourceLatch::new(None, LATCH_LEARN_PACKETS), format: caller.format });
                        agent_out = Some(Outgoing::Idle(new_sender(&mut seed)));
                    }
                    MediaCommand::AgentAnswered { remote, format } => {
                        if let Some(a) = agent.as_mut() {
                            a.latch.relearn(remote);
                            a.format = format;
                        }
                    }
                    MediaCommand::CallerAnswered { remote, format } => {
                        caller.latch.relearn(remote);
                        caller.format = format;
                    }
                    MediaCommand::Bridge => {
                        if let (Some(a), Some(a_out)) = (agent.as_ref(), agent_out.take()) {
                            let to_caller = std::mem::replace(&mut caller_out, Outgoing::Idle(RtpSender::new(0, 0, 0))).into_sender();
                            caller_out = Outgoing::Relaying(Relay::new(a.format, caller.format, to_caller));
                            agent_out = Some(Outgoing::Relaying(Relay::new(caller.format, a.format, a_out.into_sender())));
                        }
                    }
                    MediaCommand::DropAgent => {
                        agent = None;
                        agent_out = None;
                        if matches!(caller_out, Outgoing::Relaying(_)) {
                            let s = std::mem::replace(&mut caller_out, Outgoing::Idle(RtpSender::new(0, 0, 0))).into_sender();
                            caller_out = Outgoing::Idle(s);
                        }
                    }
                }
            }
            received = caller.socket.recv_from(&mut caller_buf) => {
                let Ok((n, from)) = received else { continue };
                if caller.latch.check(from).is_err() || classify(&caller_buf[..n]) != PacketKind::Rtp {
                    continue;
                }
                if let (Some(a), Some(Outgoing::Relaying(relay))) = (agent.as_ref(), agent_out.as_mut())
                    && let Ok(packet) = RtpPacket::parse(&caller_buf[..n])
                    && relay.relay(now(), &packet, &mut out).is_ok()
                    && let Some(to) = a.latch.send_to()
                {
                    let _ = a.socket.try_send_to(&out, to);
                }
            }
            received = recv_opt(agent.as_ref(), &mut agent_buf) => {
                let Some((n, from)) = received else { continue };
                let Some(a) = agent.as_mut() else { continue };
                if a.latch.check(from).is_err() || classify(&agent_buf[..n]) != PacketKind::Rtp {
                    continue;
                }
                if let Outgoing::Relaying(relay) = &mut caller_out
                    && let Ok(packet) = RtpPacket::parse(&agent_buf[..n])
                    && relay.relay(now(), &packet, &mut out).is_ok()
                    && let Some(to) = caller.latch.send_to()
                {
                    let _ = caller.socket.try_send_to(&out, to);
                }
            }
            _ = sleep_opt(wake) => {
                if let Outgoing::Playing(playout) = &mut caller_out {
                    let t = now();
                    while playout.poll_transmit_into(t, &mut out) {
                        if let Some(to) = caller.latch.send_to() {
                            let _ = caller.socket.try_send_to(&out, to);
                        }
                    }
                }
            }
        }
    }
}

async fn recv_opt(leg: Option<&Leg>, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match leg {
        Some(l) => l.socket.recv_from(buf).await.ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
