//! RTP load probe for the scripts in `benches/load/`: the far ends of many calls at once, on loopback.
//!
//! Two modes, each bounded by `--seconds`, each printing one line of `key=value` figures at the end:
//!
//! - `hold`: binds `--count` UDP sockets at `--base-port`, `--base-port + 2`, … (one per caller, the
//!   ports the SIPp callers put in their SDP) and checks the hold audio the daemon sends them:
//!   packets, sequence loss, and arrival lateness — how late each packet arrives against the schedule
//!   its RTP timestamp implies (8 kHz), anchored at the stream's earliest packet, so 0 is on time.
//! - `relay`: one caller-side socket and one agent-side socket (every SIPp caller and agent puts the
//!   same port in its SDP; the daemon tells the calls apart by its own ports). Each daemon leg
//!   address that sends us anything (hold audio to the caller side, relayed audio to the agent side)
//!   gets a 50 packet/s PCMU stream back whose payload carries a send timestamp, so a bridged call
//!   carries audio both ways; each side reads the timestamps off the packets relayed to it and
//!   records the one-way latency added by the daemon (both legs must use PCMU, so the payload passes
//!   unchanged).
//!
//! - `limits`: this machine's physical limits on loopback, with no daemon: the UDP round trip (one
//!   172-byte datagram, the size of a 20 ms PCMU RTP packet, echoed by a second thread, p50/p99/p99.9)
//!   and the CPU cost of the least a relay can do per packet (one blocking `recv_from` and one
//!   `send_to` on a thread of its own, timed with that thread's CPU clock from `/proc`).
//!
//! This is a measuring tool, not part of the daemon: it reads the clock freely and runs on tokio.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::net::UdpSocket;

/// Marks a payload written by `relay`, so stray packets (hold audio) are never mistaken for ours.
const MAGIC: &[u8; 4] = b"TDLT";
/// 20 ms of G.711 at 8 kHz.
const FRAME_SAMPLES: u32 = 160;

#[derive(Parser)]
#[command(about = "RTP load probe for benches/load (hold audio checker, relay latency meter)")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Receive hold audio on COUNT sockets and report loss and lateness.
    Hold {
        /// First port; socket i binds base-port + 2 i on 127.0.0.1.
        #[arg(long)]
        base_port: u16,
        /// Number of sockets (callers).
        #[arg(long)]
        count: u16,
        /// Run this long, then report.
        #[arg(long)]
        seconds: u64,
        /// Count only packets arriving after this many seconds (while the calls are being set up
        /// the sequence is only followed, so a gap across the boundary still counts as loss).
        #[arg(long, default_value_t = 2)]
        settle: u64,
    },
    /// Send timestamped RTP into the callers' legs and time it out of the agents' legs.
    Relay {
        /// The port every caller's SDP names.
        #[arg(long)]
        caller_port: u16,
        /// The port every agent's SDP names.
        #[arg(long)]
        agent_port: u16,
        /// Run this long, then report.
        #[arg(long)]
        seconds: u64,
        /// Latency samples from the first this-many seconds are not counted (calls being set up).
        #[arg(long, default_value_t = 0)]
        warmup: u64,
    },
    /// Measure loopback UDP round trip and the bare relay cost per packet (no daemon).
    Limits {
        /// Round trips to time, and packets to relay.
        #[arg(long, default_value_t = 200_000)]
        packets: u32,
    },
}

/// utime + stime of the calling thread, in microseconds (from `/proc/thread-self/stat`).
fn thread_cpu_us() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else { return 0 };
    let Some((_, rest)) = stat.rsplit_once(") ") else { return 0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After "(comm) ", state is field 3; utime and stime are fields 14 and 15. Clock ticks are
    // 100 per second on Linux.
    (ticks(11) + ticks(12)) * 10_000
}

fn limits(packets: u32) -> std::io::Result<()> {
    use std::net::UdpSocket as Std;
    let payload = [0x80u8; 172];
    // Round trip: an echo thread and a client that waits for each answer.
    let echo = Std::bind("127.0.0.1:0")?;
    let echo_addr = echo.local_addr()?;
    let rounds = packets.min(50_000);
    let echo_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..rounds {
            let Ok((n, from)) = echo.recv_from(&mut buf) else { break };
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let client = Std::bind("127.0.0.1:0")?;
    client.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut rtt = Vec::with_capacity(rounds as usize);
    let mut buf = [0u8; 2048];
    for _ in 0..rounds {
        let t = Instant::now();
        client.send_to(&payload, echo_addr)?;
        if client.recv_from(&mut buf).is_ok() {
            rtt.push(t.elapsed().as_micros() as i64);
        }
    }
    let _ = echo_thread.join();
    rtt.sort_unstable();
    // Relay: sender → relay thread → sink; the relay thread's CPU per packet forwarded. The
    // sender paces itself against the sink's count so no receive buffer overflows.
    let relay = Std::bind("127.0.0.1:0")?;
    let relay_addr = relay.local_addr()?;
    let sink = Std::bind("127.0.0.1:0")?;
    let sink_addr = sink.local_addr()?;
    sink.set_read_timeout(Some(Duration::from_millis(500)))?;
    relay.set_read_timeout(Some(Duration::from_millis(500)))?;
    let relay_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let cpu0 = thread_cpu_us();
        let t0 = Instant::now();
        let mut n = 0u64;
        while let Ok((len, _)) = relay.recv_from(&mut buf) {
            if relay.send_to(&buf[..len], sink_addr).is_ok() {
                n += 1;
            }
        }
        // The last 500 ms were the time-out: the thread was asleep then.
        (n, thread_cpu_us() - cpu0, t0.elapsed())
    });
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink_count = received.clone();
    let sink_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while sink.recv_from(&mut buf).is_ok() {
            sink_count.fetch_add(1, Ordering::Relaxed);
        }
    });
    let sender = Std::bind("127.0.0.1:0")?;
    for i in 0..u64::from(packets) {
        let waiting = Instant::now();
        // A lost packet would stall the window for good: give up waiting after a second.
        while i > received.load(Ordering::Relaxed) + 64
            && waiting.elapsed() < Duration::from_secs(1)
        {
            std::thread::yield_now();
        }
        sender.send_to(&payload, relay_addr)?;
    }
    let (relayed, relay_cpu_us, _) = relay_thread.join().unwrap_or_default();
    let _ = sink_thread.join();
    let per_packet = relay_cpu_us as f64 / relayed.max(1) as f64;
    println!(
        "mode=limits rtt_samples={} rtt_p50_ms={} rtt_p99_ms={} rtt_p999_ms={} relayed={relayed} \
         sink_received={} relay_cpu_us_per_packet={per_packet:.2} \
         relay_packets_per_core_s={:.0}",
        rtt.len(),
        ms(percentile(&rtt, 50.0)),
        ms(percentile(&rtt, 99.0)),
        ms(percentile(&rtt, 99.9)),
        received.load(Ordering::Relaxed),
        1e6 / per_packet.max(0.001),
    );
    Ok(())
}

/// One received stream (one daemon source address on one socket).
#[derive(Default)]
struct Stream {
    first_at: Option<Instant>,
    first_ts: u32,
    last_seq: Option<u16>,
    packets: u64,
    lost: u64,
    /// Arrival minus the timestamp's schedule, in microseconds (anchored later at the minimum).
    offsets_us: Vec<i64>,
}

fn parse_rtp(buf: &[u8]) -> Option<(u8, u16, u32, &[u8])> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(buf[0] & 0x0f);
    let start = 12 + 4 * csrc;
    let payload = buf.get(start..)?;
    let pt = buf[1] & 0x7f;
    let seq = u16::from_be_bytes([buf[2], buf[3]]);
    let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some((pt, seq, ts, payload))
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(us: i64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

async fn hold(base_port: u16, count: u16, seconds: u64, settle: u64) -> std::io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let counting_from = Instant::now() + Duration::from_secs(settle);
    let mut tasks = Vec::new();
    for i in 0..count {
        let port = base_port + 2 * i;
        let socket = UdpSocket::bind(("127.0.0.1", port)).await?;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut streams: HashMap<SocketAddr, Stream> = HashMap::new();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok((n, from))) =
                    tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf))
                        .await
                else {
                    continue;
                };
                let now = Instant::now();
                let Some((_pt, seq, ts, _)) = parse_rtp(&buf[..n]) else { continue };
                let s = streams.entry(from).or_default();
                let first = *s.first_at.get_or_insert_with(|| {
                    s.first_ts = ts;
                    now
                });
                if now < counting_from {
                    s.last_seq = Some(seq);
                    continue;
                }
                if let Some(last) = s.last_seq {
                    let step = seq.wrapping_sub(last);
                    if (1..0x8000).contains(&step) {
                        s.lost += u64::from(step - 1);
                    }
                }
                s.last_seq = Some(seq);
                s.packets += 1;
                let media_us = i64::from(ts.wrapping_sub(s.first_ts)) * 1_000_000 / 8000;
                let arrival_us = now.duration_since(first).as_micros() as i64;
                s.offsets_us.push(arrival_us - media_us);
            }
            streams
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut packets, mut lost, mut streams_seen, mut silent) = (0u64, 0u64, 0usize, 0usize);
    let mut lateness = Vec::new();
    for task in tasks {
        let streams = task.await.unwrap_or_default();
        if streams.values().all(|s| s.packets == 0) {
            silent += 1;
        }
        for s in streams.into_values() {
            if s.packets == 0 {
                continue;
            }
            streams_seen += 1;
            packets += s.packets;
            lost += s.lost;
            let min = s.offsets_us.iter().copied().min().unwrap_or(0);
            lateness.extend(s.offsets_us.iter().map(|o| o - min));
        }
    }
    lateness.sort_unstable();
    println!(
        "mode=hold sockets={count} silent_sockets={silent} streams={streams_seen} packets={packets} \
         lost={lost} late_p50_ms={} late_p99_ms={} late_p999_ms={} late_max_ms={}",
        ms(percentile(&lateness, 50.0)),
        ms(percentile(&lateness, 99.0)),
        ms(percentile(&lateness, 99.9)),
        ms(lateness.last().copied().unwrap_or(0)),
    );
    Ok(())
}

/// What one end of the relay measurement saw.
#[derive(Default)]
struct EndReport {
    /// Daemon leg addresses that sent us anything (hold audio or relayed audio).
    legs: usize,
    /// Daemon leg addresses that relayed our timestamped packets to us.
    relaying_legs: usize,
    sent: u64,
    relayed: u64,
    /// Frames missing between consecutive relayed frames of one leg, after the warm-up (our own
    /// frame counter in the payload: the daemon renumbers RTP sequence numbers per leg).
    lost: u64,
    /// One-way latencies in microseconds, of packets sent after the warm-up.
    latencies_us: Vec<i64>,
}

/// One end of every bridged call on one socket: learns each daemon leg from what it sends us,
/// streams timestamped PCMU back to it at 50 packet/s, and times the timestamped packets that the
/// daemon relays to us from the other end.
fn spawn_end(
    socket: UdpSocket,
    epoch: Instant,
    warmup: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<EndReport> {
    let socket = Arc::new(socket);
    // New daemon legs go from the receive task to the send task over a channel, so neither takes a
    // lock per packet.
    let (new_legs, mut learned) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
    // One tick a millisecond; leg k sends in slot k mod 20, so the load is spread over the frame
    // like real calls rather than sent in one burst.
    let send = {
        let (socket, stop) = (socket.clone(), stop.clone());
        tokio::spawn(async move {
            let mut legs: Vec<SocketAddr> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut frame_no: HashMap<SocketAddr, u32> = HashMap::new();
            let mut sent = 0u64;
            let start = Instant::now();
            let mut done_ms = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                // Slots follow real time: a late tick serves every slot it missed, so no leg drifts.
                let now_ms = start.elapsed().as_millis() as u64;
                while let Ok(leg) = learned.try_recv() {
                    legs.push(leg);
                }
                while done_ms < now_ms {
                    done_ms += 1;
                    let slot = (done_ms % 20) as usize;
                    for (k, to) in legs.iter().enumerate().filter(|(k, _)| k % 20 == slot) {
                        let n = frame_no.entry(*to).or_insert(0);
                        let mut packet = [0xffu8; 12 + 160];
                        packet[0] = 0x80;
                        packet[1] = 0; // PCMU
                        packet[2..4].copy_from_slice(&(*n as u16).to_be_bytes());
                        packet[4..8].copy_from_slice(&n.wrapping_mul(FRAME_SAMPLES).to_be_bytes());
                        packet[8..12].copy_from_slice(&(0x7d00_0000u32 + k as u32).to_be_bytes());
                        packet[12..16].copy_from_slice(MAGIC);
                        let at = epoch.elapsed().as_nanos() as u64;
                        packet[16..24].copy_from_slice(&at.to_be_bytes());
                        packet[24..28].copy_from_slice(&n.to_be_bytes());
                        *n += 1;
                        if socket.send_to(&packet, *to).await.is_ok() {
                            sent += 1;
                        }
                    }
                }
            }
            (sent, legs.len())
        })
    };
    tokio::spawn(async move {
        let mut report = EndReport::default();
        let mut known: HashSet<SocketAddr> = HashSet::new();
        let mut relaying: HashMap<SocketAddr, u32> = HashMap::new();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await
            else {
                continue;
            };
            let now_ns = epoch.elapsed().as_nanos() as u64;
            if known.insert(from) {
                let _ = new_legs.send(from);
            }
            let Some((_, _, _, payload)) = parse_rtp(&buf[..n]) else { continue };
            if payload.len() < 16 || &payload[..4] != MAGIC {
                continue; // hold audio
            }
            report.relayed += 1;
            let mut at = [0u8; 8];
            at.copy_from_slice(&payload[4..12]);
            let sent_ns = u64::from_be_bytes(at);
            let frame = u32::from_be_bytes([payload[12], payload[13], payload[14], payload[15]]);
            let previous = relaying.insert(from, frame);
            if Duration::from_nanos(sent_ns) >= warmup {
                report.latencies_us.push((now_ns.saturating_sub(sent_ns) / 1000) as i64);
                if let Some(step) = previous.map(|p| frame.wrapping_sub(p))
                    && (1..0x8000_0000).contains(&step)
                {
                    report.lost += u64::from(step - 1);
                }
            }
        }
        (report.sent, report.legs) = send.await.unwrap_or((0, 0));
        report.relaying_legs = relaying.len();
        report
    })
}

async fn relay(
    caller_port: u16,
    agent_port: u16,
    seconds: u64,
    warmup: u64,
) -> std::io::Result<()> {
    let epoch = Instant::now();
    let warmup = Duration::from_secs(warmup);
    let stop = Arc::new(AtomicBool::new(false));
    let caller = UdpSocket::bind(("127.0.0.1", caller_port)).await?;
    let agent = UdpSocket::bind(("127.0.0.1", agent_port)).await?;
    let caller = spawn_end(caller, epoch, warmup, stop.clone());
    let agent = spawn_end(agent, epoch, warmup, stop.clone());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let caller = caller.await.unwrap_or_default();
    let agent = agent.await.unwrap_or_default();
    let mut all: Vec<i64> =
        caller.latencies_us.iter().chain(agent.latencies_us.iter()).copied().collect();
    all.sort_unstable();
    let mut to_agent = agent.latencies_us;
    to_agent.sort_unstable();
    println!(
        "mode=relay caller_legs={} bridged_calls={} caller_sent={} agent_sent={} \
         relayed_to_agent={} relayed_to_caller={} lost={} samples={} lat_p50_ms={} \
         lat_p99_ms={} lat_p999_ms={} lat_max_ms={} to_agent_p50_ms={} to_agent_p99_ms={}",
        caller.legs,
        agent.relaying_legs,
        caller.sent,
        agent.sent,
        agent.relayed,
        caller.relayed,
        caller.lost + agent.lost,
        all.len(),
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0)),
        ms(percentile(&all, 99.9)),
        ms(all.last().copied().unwrap_or(0)),
        ms(percentile(&to_agent, 50.0)),
        ms(percentile(&to_agent, 99.0)),
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    match Cli::parse().mode {
        Mode::Hold { base_port, count, seconds, settle } => {
            hold(base_port, count, seconds, settle).await
        }
        Mode::Relay { caller_port, agent_port, seconds, warmup } => {
            relay(caller_port, agent_port, seconds, warmup).await
        }
        Mode::Limits { packets } => tokio::task::spawn_blocking(move || limits(packets))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e))),
    }
}
