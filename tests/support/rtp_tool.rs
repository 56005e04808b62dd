//! The in-repo RTP test tool: a UDP endpoint on 127.0.0.1 that sends a known tone as G.711 RTP at
//! 50 packets/s (or RFC 4733 key presses) and records everything it receives (packets, sequence
//! gaps, SSRC changes, decoded audio, DTMF), with a Goertzel detector to tell which tone came
//! through and a sample-exact matcher for prompts. It runs inside the test's tokio runtime and is bounded in time by its callers'
//! timeouts; its receive task stops when the tool is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tongdai::media::dtmf::{DtmfDetector, TelephoneEvent};
use tongdai::media::g711::Codec;
use tongdai::media::pacing::{FRAME_DURATION, FRAME_SAMPLES, SAMPLE_RATE};
use tongdai::media::rtp::{RtpHeader, RtpPacket};

/// A sine tone to send.
#[derive(Debug, Clone, Copy)]
pub struct Tone {
    /// Frequency in Hz.
    pub hz: f64,
    /// Peak amplitude, 0–32767.
    pub amplitude: f64,
    /// The law to encode with.
    pub codec: Codec,
    /// The payload type to put on the packets.
    pub payload_type: u8,
    /// The SSRC of the stream.
    pub ssrc: u32,
}

impl Tone {
    /// A tone at half scale with the codec's static payload type.
    pub fn new(hz: f64, codec: Codec, ssrc: u32) -> Tone {
        Tone { hz, amplitude: 16000.0, codec, payload_type: codec.static_payload_type(), ssrc }
    }

    /// Sample `n` of the tone.
    pub fn sample(&self, n: u64) -> i16 {
        let phase = 2.0 * std::f64::consts::PI * self.hz * n as f64 / f64::from(SAMPLE_RATE);
        (self.amplitude * phase.sin()).round() as i16
    }
}

/// One received RTP packet.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Where it came from.
    pub from: SocketAddr,
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Everything the tool received so far.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// RTP packets in arrival order.
    pub packets: Vec<Received>,
    /// Datagrams that did not parse as RTP.
    pub invalid: usize,
    /// Decoded audio of the G.711 packets, in arrival order.
    pub samples: Vec<i16>,
}

impl Recording {
    /// Number of RTP packets.
    pub fn packet_count(&self) -> usize {
        self.packets.len()
    }

    /// Packets per second between the first and the last arrival.
    pub fn rate_pps(&self) -> f64 {
        match (self.packets.first(), self.packets.last()) {
            (Some(first), Some(last)) if self.packets.len() > 1 => {
                let secs = last.at.duration_since(first.at).as_secs_f64();
                (self.packets.len() - 1) as f64 / secs
            }
            _ => 0.0,
        }
    }

    /// Packets missing from sequence gaps between consecutive packets of the same SSRC.
    pub fn sequence_loss(&self) -> u64 {
        self.packets
            .windows(2)
            .filter(|w| w[0].ssrc == w[1].ssrc)
            .map(|w| {
                let step = w[1].sequence.wrapping_sub(w[0].sequence);
                // A step back (reordering, duplicates) is not loss.
                if (1..0x8000).contains(&step) { u64::from(step - 1) } else { 0 }
            })
            .sum()
    }

    /// Times the SSRC differed from the previous packet's.
    pub fn ssrc_changes(&self) -> usize {
        self.packets.windows(2).filter(|w| w[0].ssrc != w[1].ssrc).count()
    }

    /// The distinct SSRCs seen, in order of first appearance.
    pub fn ssrcs(&self) -> Vec<u32> {
        let mut seen = Vec::new();
        for p in &self.packets {
            if !seen.contains(&p.ssrc) {
                seen.push(p.ssrc);
            }
        }
        seen
    }

    /// Fraction (0–1) of the audio's energy at `hz`, by the Goertzel algorithm over all samples.
    pub fn tone_ratio(&self, hz: f64) -> f64 {
        goertzel_ratio(&self.samples, hz)
    }

    /// The candidate frequency holding the most energy, if it holds at least half of it.
    pub fn dominant_tone(&self, hz_candidates: &[f64]) -> Option<f64> {
        hz_candidates
            .iter()
            .map(|hz| (*hz, self.tone_ratio(*hz)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|(_, ratio)| *ratio >= 0.5)
            .map(|(hz, _)| hz)
    }

    /// True when at least half of the audio's energy is at `hz`.
    pub fn contains_tone(&self, hz: f64) -> bool {
        self.tone_ratio(hz) >= 0.5
    }

    /// The telephone-event packets received with payload type `pt`, in arrival order.
    pub fn telephone_events(&self, pt: u8) -> Vec<TelephoneEvent> {
        self.packets
            .iter()
            .filter(|p| p.payload_type == pt)
            .filter_map(|p| TelephoneEvent::parse(&p.payload).ok())
            .collect()
    }

    /// The DTMF keys pressed, each once, from telephone-event packets with payload type `pt`.
    pub fn dtmf_digits(&self, pt: u8) -> String {
        let mut detector = DtmfDetector::new();
        self.packets
            .iter()
            .filter(|p| p.payload_type == pt)
            .filter_map(|p| {
                let event = TelephoneEvent::parse(&p.payload).ok()?;
                detector.on_packet(p.ssrc, p.timestamp, &event)
            })
            .collect()
    }

    /// True when `expected` appears sample for sample, contiguously, in the received audio.
    pub fn matches_samples(&self, expected: &[i16]) -> bool {
        !expected.is_empty()
            && self.samples.len() >= expected.len()
            && self.samples.windows(expected.len()).any(|w| w == expected)
    }
}

/// Goertzel power at `hz`, normalised by the signal energy: 1.0 for a pure tone at `hz` over a
/// whole number of periods, near 0 for a tone elsewhere.
pub fn goertzel_ratio(samples: &[i16], hz: f64) -> f64 {
    let n = samples.len() as f64;
    let energy: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    if samples.is_empty() || energy == 0.0 {
        return 0.0;
    }
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(SAMPLE_RATE)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (n * energy)
}

/// An RTP endpoint on loopback.
pub struct RtpTool {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    state: Arc<Mutex<State>>,
    receiver: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    recording: Recording,
    codecs: HashMap<u8, Codec>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RtpTool {
    /// Binds 127.0.0.1:0 and starts recording. PT 0 decodes as µ-law and PT 8 as A-law.
    pub async fn bind() -> (RtpTool, SocketAddr) {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let local = socket.local_addr().unwrap();
        let mut codecs = HashMap::new();
        codecs.insert(0, Codec::Pcmu);
        codecs.insert(8, Codec::Pcma);
        let state = Arc::new(Mutex::new(State { recording: Recording::default(), codecs }));
        let receiver = tokio::spawn(receive_loop(socket.clone(), state.clone()));
        (RtpTool { socket, local, state, receiver }, local)
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Decodes payload type `pt` as `codec` from now on.
    pub fn decode_as(&self, pt: u8, codec: Codec) {
        lock(&self.state).codecs.insert(pt, codec);
    }

    /// Sends `packets` frames of `tone` to `to`, one every 20 ms, starting now. Returns when the
    /// last one is sent. Sequence starts at 1, timestamp at 0, marker on the first packet.
    pub async fn send_tone(&self, to: SocketAddr, tone: Tone, packets: u32) {
        send_tone_on(&self.socket, to, tone, packets).await;
    }

    /// Like [`Self::send_tone`], in a task of its own, so a test can talk and listen at once.
    pub fn spawn_tone(&self, to: SocketAddr, tone: Tone, packets: u32) -> JoinHandle<()> {
        let socket = self.socket.clone();
        tokio::spawn(async move { send_tone_on(&socket, to, tone, packets).await })
    }

    /// Presses a DTMF key the RFC 4733 way: an event lasting 100 ms, one packet per 20 ms with
    /// the same timestamp and a growing duration, marker on the first, the end packet sent three
    /// times. `sequence` and `timestamp` place it in the sender's stream.
    pub async fn send_dtmf(
        &self,
        to: SocketAddr,
        key: char,
        payload_type: u8,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
    ) {
        let event = match key {
            '0'..='9' => key as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => key as u8 - b'A' + 12,
            _ => panic!("not a DTMF key: {key}"),
        };
        let mut ticks = tokio::time::interval(FRAME_DURATION);
        let durations = [160u16, 320, 480, 640, 800, 800, 800];
        for (i, duration) in durations.into_iter().enumerate() {
            ticks.tick().await;
            let end = i >= 4;
            let payload = TelephoneEvent { event, end, volume: 10, duration }.to_bytes();
            let header = RtpHeader {
                marker: i == 0,
                payload_type,
                sequence: sequence.wrapping_add(i as u16),
                timestamp,
                ssrc,
            };
            self.socket.send_to(&header.to_packet(&payload), to).await.unwrap();
        }
    }

    /// Sends one datagram as is.
    pub async fn send_raw(&self, to: SocketAddr, bytes: &[u8]) {
        self.socket.send_to(bytes, to).await.unwrap();
    }

    /// Forgets what was received so far (what comes next is recorded afresh).
    pub fn clear(&self) {
        lock(&self.state).recording = Recording::default();
    }

    /// A copy of what was received so far.
    pub fn recording(&self) -> Recording {
        lock(&self.state).recording.clone()
    }

    /// Waits until `packets` RTP packets arrived, or `timeout` passed; returns the recording.
    pub async fn wait_for(&self, packets: usize, timeout: Duration) -> Recording {
        let deadline = Instant::now() + timeout;
        while lock(&self.state).recording.packets.len() < packets && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.recording()
    }

    /// Waits until no packet arrived for `quiet`, bounded by `timeout`; returns the recording.
    pub async fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> Recording {
        let deadline = Instant::now() + timeout;
        loop {
            let last = lock(&self.state).recording.packets.last().map(|p| p.at);
            let now = Instant::now();
            let idle = last.is_none_or(|at| now.duration_since(at) >= quiet);
            if (idle && last.is_some()) || now >= deadline {
                return self.recording();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn send_tone_on(socket: &UdpSocket, to: SocketAddr, tone: Tone, packets: u32) {
    let mut ticks = tokio::time::interval(FRAME_DURATION);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut payload = Vec::with_capacity(FRAME_SAMPLES as usize);
    for k in 0..packets {
        ticks.tick().await;
        payload.clear();
        let first = u64::from(k) * u64::from(FRAME_SAMPLES);
        let samples = first..first + u64::from(FRAME_SAMPLES);
        payload.extend(samples.map(|n| tone.codec.encode(tone.sample(n))));
        let header = RtpHeader {
            marker: k == 0,
            payload_type: tone.payload_type,
            sequence: (k as u16).wrapping_add(1),
            timestamp: k.wrapping_mul(FRAME_SAMPLES),
            ssrc: tone.ssrc,
        };
        socket.send_to(&header.to_packet(&payload), to).await.unwrap();
    }
}

impl Drop for RtpTool {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

async fn receive_loop(socket: Arc<UdpSocket>, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let at = Instant::now();
        let mut state = lock(&state);
        let Ok(rtp) = RtpPacket::parse(&buf[..len]) else {
            state.recording.invalid += 1;
            continue;
        };
        if let Some(codec) = state.codecs.get(&rtp.payload_type).copied() {
            let decoded = rtp.payload.iter().map(|b| codec.decode(*b));
            state.recording.samples.extend(decoded);
        }
        state.recording.packets.push(Received {
            at,
            from,
            marker: rtp.marker,
            payload_type: rtp.payload_type,
            sequence: rtp.sequence,
            timestamp: rtp.timestamp,
            ssrc: rtp.ssrc,
            payload: rtp.payload.to_vec(),
        });
    }
}

impl Recording {
    /// The decoded samples `from..to` only (clamped), e.g. what was heard first.
    pub fn window(&self, from: usize, to: usize) -> Recording {
        let mut part = self.clone();
        part.samples =
            self.samples[from.min(self.samples.len())..to.min(self.samples.len())].to_vec();
        part
    }
}

/// The source of the first packet a tool received: the daemon's RTP port for that leg.
pub fn first_source(r: &Recording) -> SocketAddr {
    r.packets.first().expect("no RTP received").from
}

/// Talks on both legs of a call through the daemon and returns (what the caller heard, what the
/// far side heard). The caller hears the daemon first (a prompt), which tells the caller leg's
/// port; once bridged, the far side (an agent, the national centre) receives the caller's audio,
/// which tells its leg's port.
pub async fn talk_both_ways(
    caller: &RtpTool,
    caller_tone: Tone,
    far: &RtpTool,
    far_tone: Tone,
) -> (Recording, Recording) {
    let heard = caller.wait_for(20, Duration::from_secs(10)).await;
    caller.spawn_tone(first_source(&heard), caller_tone, 400);
    let heard = far.wait_for(20, Duration::from_secs(10)).await;
    far.spawn_tone(first_source(&heard), far_tone, 150);
    tokio::time::sleep(Duration::from_secs(4)).await;
    (caller.recording(), far.recording())
}

/// Each `(tool, to, hz)` sends its tone to `to` for 3 s from a clean recording; what each heard.
pub fn talk(
    rt: &tokio::runtime::Runtime,
    parties: &[(&RtpTool, SocketAddr, f64)],
) -> Vec<Recording> {
    for (tool, _, _) in parties {
        tool.clear();
    }
    for (i, (tool, to, hz)) in parties.iter().enumerate() {
        tool.spawn_tone(*to, Tone::new(*hz, Codec::Pcmu, 0x7000 + i as u32), 150);
    }
    rt.block_on(tokio::time::sleep(Duration::from_secs(3)));
    parties.iter().map(|(tool, _, _)| tool.recording()).collect()
}

/// The share of `r`'s audio energy at `hz`, over its last `seconds`.
pub fn share(r: &Recording, hz: f64, seconds: usize) -> f64 {
    let n = r.samples.len();
    r.window(n.saturating_sub(seconds * 8000), n).tone_ratio(hz)
}
