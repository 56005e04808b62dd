//! The audio mixer of one call's legs (media protocol layer, sans-IO: no clock, no socket, no
//! allocation per tick). A call with more than two parties (a three-way conference, a supervisor
//! listening, whispering or barging in) cannot be relayed packet by packet: each leg must hear the
//! sum of the others. Every 20 ms the runtime gives the [`Mixer`] each leg's decoded frame (or
//! nothing, when the leg sent nothing this tick: silence), and takes back, per leg, the clipped sum
//! of the legs it may hear, never its own, encoded in that leg's G.711 law.
//!
//! Who hears whom is a [`Hearing`] matrix; its constructors are the call modes:
//! [`Hearing::conference`] (everyone hears everyone else; a barge is a conference),
//! [`Hearing::listen`] (the supervisor hears the call, nobody hears the supervisor) and
//! [`Hearing::whisper`] (as listen, but the agent hears the supervisor; the caller never does).
//! [`MixMode`] names the three for a call of caller, agent and third leg.
//!
//! ```
//! use tongdai::media::g711::Codec;
//! use tongdai::media::mix::{AGENT, CALLER, Hearing, Mixer, THIRD};
//!
//! let laws = [Codec::Pcma, Codec::Pcmu, Codec::Pcmu];
//! let mut mixer = Mixer::new(&laws, Hearing::whisper(3, THIRD, AGENT)).unwrap();
//! mixer.put_samples(CALLER, &[1000; 160]);
//! mixer.put_samples(AGENT, &[200; 160]);
//! mixer.put_samples(THIRD, &[30; 160]); // the supervisor whispers
//! mixer.tick();
//! assert_eq!(mixer.samples(CALLER)[0], 200); // the agent only
//! assert_eq!(mixer.samples(AGENT)[0], 1030); // the caller and the supervisor
//! assert_eq!(mixer.samples(THIRD)[0], 1200); // the caller and the agent
//! assert_eq!(mixer.payload(CALLER).len(), 160); // A-law, ready for the caller's RTP
//! ```

use std::time::Instant;

use thiserror::Error;

use super::g711::Codec;
use super::pacing::RtpSender;
use super::rtp::RtpHeader;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = super::pacing::FRAME_SAMPLES as usize;

/// The most legs one mixer joins: caller, agent, a third party and a supervisor.
pub const MAX_LEGS: usize = 4;

/// The caller's leg index, by convention of the runtime.
pub const CALLER: usize = 0;
/// The agent's leg index.
pub const AGENT: usize = 1;
/// The third leg's index: a transfer target or a supervisor.
pub const THIRD: usize = 2;

/// Frames a leg may have waiting for the next ticks. Packets arrive on the sender's clock, not the
/// mixer's, so two may land in one tick and none in the next; a short queue absorbs that jitter,
/// and dropping the oldest when it is full bounds the delay to this many frames.
pub const QUEUE_FRAMES: usize = 3;

/// One decoded 20 ms frame.
pub type Frame = [i16; FRAME_SAMPLES];

/// Who hears whom among a call's legs: for each listening leg, the set of legs it hears. A leg
/// never hears itself, whatever is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hearing {
    legs: usize,
    /// Bit `s` of `hears[l]`: leg `l` hears leg `s`.
    hears: [u8; MAX_LEGS],
}

impl Hearing {
    /// `legs` legs (clamped to 1..=[`MAX_LEGS`]) hearing nobody.
    pub fn silent(legs: usize) -> Hearing {
        Hearing { legs: legs.clamp(1, MAX_LEGS), hears: [0; MAX_LEGS] }
    }

    /// Everyone hears everyone else: a conference, and a supervisor's barge.
    pub fn conference(legs: usize) -> Hearing {
        let mut h = Hearing::silent(legs);
        for listener in 0..h.legs {
            for speaker in 0..h.legs {
                h = h.with(listener, speaker);
            }
        }
        h
    }

    /// The supervisor on leg `supervisor` hears every other leg; nobody hears the supervisor. The
    /// other legs hear each other as in a conference.
    pub fn listen(legs: usize, supervisor: usize) -> Hearing {
        let mut h = Hearing::conference(legs);
        for listener in 0..h.legs {
            h = h.without(listener, supervisor);
        }
        h
    }

    /// As [`Hearing::listen`], and the agent on leg `agent` also hears the supervisor; the other
    /// legs (the caller) do not.
    pub fn whisper(legs: usize, supervisor: usize, agent: usize) -> Hearing {
        Hearing::listen(legs, supervisor).with(agent, supervisor)
    }

    /// This matrix, and `listener` hears `speaker` (ignored when they are the same leg or out of
    /// range).
    pub fn with(mut self, listener: usize, speaker: usize) -> Hearing {
        if listener != speaker && listener < self.legs && speaker < self.legs {
            self.hears[listener] |= 1 << speaker;
        }
        self
    }

    /// This matrix, and `listener` does not hear `speaker`.
    pub fn without(mut self, listener: usize, speaker: usize) -> Hearing {
        if listener < self.legs && speaker < self.legs {
            self.hears[listener] &= !(1 << speaker);
        }
        self
    }

    /// Whether `listener` hears `speaker`.
    pub fn hears(&self, listener: usize, speaker: usize) -> bool {
        listener < self.legs && speaker < MAX_LEGS && self.hears[listener] & (1 << speaker) != 0
    }

    /// The number of legs.
    pub fn legs(&self) -> usize {
        self.legs
    }
}

/// The modes of a call of three legs (caller, agent and a third leg), as the runtime switches
/// between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixMode {
    /// Everyone hears everyone else: a warm handover to the third leg, or a supervisor's barge.
    Conference,
    /// The third leg (a supervisor) hears caller and agent; nobody hears it.
    Listen,
    /// The third leg (a supervisor) hears caller and agent; the agent hears it, the caller not.
    Whisper,
}

impl MixMode {
    /// Who hears whom among [`CALLER`], [`AGENT`] and [`THIRD`].
    pub fn hearing(self) -> Hearing {
        match self {
            MixMode::Conference => Hearing::conference(3),
            MixMode::Listen => Hearing::listen(3, THIRD),
            MixMode::Whisper => Hearing::whisper(3, THIRD, AGENT),
        }
    }
}

/// One leg's outgoing stream while it hears a mix: a packet per tick on the leg's continuous
/// [`RtpSender`] (the one hold music or a relay used before, so the leg's peer sees one stream).
pub struct MixedStream {
    sender: RtpSender,
    timestamp: u32,
    marker: bool,
}

impl MixedStream {
    /// Continues `sender`'s stream with mixed audio from `now`.
    pub fn new(sender: RtpSender, now: Instant) -> MixedStream {
        let (_, timestamp) = sender.continuation(now);
        MixedStream { sender, timestamp, marker: true }
    }

    /// The stream (for RTCP sender reports).
    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    /// Gives the stream back, for whatever feeds the leg next.
    pub fn into_sender(self) -> RtpSender {
        self.sender
    }

    /// Writes into `out` the packet carrying one mixed frame `payload` with `payload_type`, sent
    /// at `now`: the next sequence number, the timestamp one frame on, the marker on the first.
    pub fn packet(&mut self, now: Instant, payload_type: u8, payload: &[u8], out: &mut Vec<u8>) {
        let header = RtpHeader {
            marker: self.marker,
            payload_type,
            sequence: self.sender.next_sequence(),
            timestamp: self.timestamp,
            ssrc: 0,
        };
        let header = self.sender.record(now, header, FRAME_SAMPLES as u32, payload.len());
        header.write_vec(payload, out);
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        self.marker = false;
    }
}

/// Why a mixer could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MixError {
    /// A mixer joins 2 to [`MAX_LEGS`] legs.
    #[error("a mixer joins 2 to {MAX_LEGS} legs, not {0}")]
    LegCount(usize),
    /// The hearing matrix is for another number of legs.
    #[error("the hearing matrix is for {matrix} legs, the mixer has {legs}")]
    HearingSize {
        /// Legs of the matrix.
        matrix: usize,
        /// Legs of the mixer.
        legs: usize,
    },
}

/// The mixer of one call: per leg, the frame it sent this tick and the frame it hears, decoded and
/// encoded. All buffers are fixed arrays made once; [`Mixer::tick`] allocates nothing.
pub struct Mixer {
    legs: usize,
    hearing: Hearing,
    codecs: [Codec; MAX_LEGS],
    /// Per leg, a ring of [`QUEUE_FRAMES`] frames: `head[leg]` is the oldest, `queued[leg]` many.
    input: [[Frame; QUEUE_FRAMES]; MAX_LEGS],
    head: [usize; MAX_LEGS],
    queued: [usize; MAX_LEGS],
    mixed: [Frame; MAX_LEGS],
    heard: [bool; MAX_LEGS],
    encoded: [[u8; FRAME_SAMPLES]; MAX_LEGS],
}

impl Mixer {
    /// A mixer for legs speaking `codecs` (one per leg, 2 to [`MAX_LEGS`]) under `hearing`.
    pub fn new(codecs: &[Codec], hearing: Hearing) -> Result<Mixer, MixError> {
        let legs = codecs.len();
        if !(2..=MAX_LEGS).contains(&legs) {
            return Err(MixError::LegCount(legs));
        }
        let mut all = [Codec::Pcmu; MAX_LEGS];
        all[..legs].copy_from_slice(codecs);
        let mut mixer = Mixer {
            legs,
            hearing: Hearing::silent(legs),
            codecs: all,
            input: [[[0; FRAME_SAMPLES]; QUEUE_FRAMES]; MAX_LEGS],
            head: [0; MAX_LEGS],
            queued: [0; MAX_LEGS],
            mixed: [[0; FRAME_SAMPLES]; MAX_LEGS],
            heard: [false; MAX_LEGS],
            encoded: [[0; FRAME_SAMPLES]; MAX_LEGS],
        };
        mixer.set_hearing(hearing)?;
        for (encoded, codec) in mixer.encoded.iter_mut().zip(all) {
            *encoded = [codec.silence(); FRAME_SAMPLES];
        }
        Ok(mixer)
    }

    /// The number of legs.
    pub fn legs(&self) -> usize {
        self.legs
    }

    /// Who hears whom now.
    pub fn hearing(&self) -> Hearing {
        self.hearing
    }

    /// Changes who hears whom from the next tick (a listen becoming a whisper or a barge).
    pub fn set_hearing(&mut self, hearing: Hearing) -> Result<(), MixError> {
        if hearing.legs != self.legs {
            return Err(MixError::HearingSize { matrix: hearing.legs, legs: self.legs });
        }
        self.hearing = hearing;
        Ok(())
    }

    /// Changes the law `leg` speaks (a re-INVITE); out-of-range legs are ignored.
    pub fn set_codec(&mut self, leg: usize, codec: Codec) {
        if leg < self.legs {
            self.codecs[leg] = codec;
        }
    }

    /// The law `leg` speaks.
    pub fn codec(&self, leg: usize) -> Codec {
        self.codecs[leg.min(MAX_LEGS - 1)]
    }

    /// Queues a frame from `leg`, as samples: the first [`FRAME_SAMPLES`] are taken, a short
    /// frame is padded with silence. The next tick takes the oldest queued frame; with
    /// [`QUEUE_FRAMES`] already waiting, the oldest is dropped.
    pub fn put_samples(&mut self, leg: usize, samples: &[i16]) {
        let Some(frame) = self.slot(leg) else { return };
        let n = samples.len().min(FRAME_SAMPLES);
        frame[..n].copy_from_slice(&samples[..n]);
        frame[n..].fill(0);
    }

    /// Queues a frame from `leg`, as a G.711 payload in `codec` (the law the packet's payload
    /// type names, which a peer may switch), decoded; sizes as [`Mixer::put_samples`].
    pub fn put_payload(&mut self, leg: usize, codec: Codec, payload: &[u8]) {
        let Some(frame) = self.slot(leg) else { return };
        let n = payload.len().min(FRAME_SAMPLES);
        for (sample, byte) in frame.iter_mut().zip(&payload[..n]) {
            *sample = codec.decode(*byte);
        }
        frame[n..].fill(0);
    }

    /// The queue slot for `leg`'s next frame, making room by dropping the oldest.
    fn slot(&mut self, leg: usize) -> Option<&mut Frame> {
        if leg >= self.legs {
            return None;
        }
        if self.queued[leg] == QUEUE_FRAMES {
            self.head[leg] = (self.head[leg] + 1) % QUEUE_FRAMES;
            self.queued[leg] -= 1;
        }
        let at = (self.head[leg] + self.queued[leg]) % QUEUE_FRAMES;
        self.queued[leg] += 1;
        Some(&mut self.input[leg][at])
    }

    /// Frames `leg` has waiting for the next ticks.
    pub fn queued(&self, leg: usize) -> usize {
        if leg < self.legs { self.queued[leg] } else { 0 }
    }

    /// Mixes this tick: each leg gives its oldest queued frame (a leg with none is silent), and
    /// each leg's output becomes the clipped sum of the frames of the legs it hears (the sum is
    /// taken whole, then clipped to the i16 range, so two loud legs in opposite phase cancel
    /// rather than clip), encoded in its law.
    pub fn tick(&mut self) {
        // The queue slot each leg gives to this tick, if any.
        let mut taken = [None; MAX_LEGS];
        for (leg, slot) in taken.iter_mut().enumerate().take(self.legs) {
            if self.queued[leg] > 0 {
                *slot = Some(self.head[leg]);
                self.head[leg] = (self.head[leg] + 1) % QUEUE_FRAMES;
                self.queued[leg] -= 1;
            }
        }
        for listener in 0..self.legs {
            let mut sum = [0i32; FRAME_SAMPLES];
            let mut heard = false;
            for (speaker, slot) in taken.iter().enumerate().take(self.legs) {
                let Some(at) = slot else { continue };
                if !self.hearing.hears(listener, speaker) {
                    continue;
                }
                heard = true;
                for (acc, s) in sum.iter_mut().zip(&self.input[speaker][*at]) {
                    *acc += i32::from(*s);
                }
            }
            self.heard[listener] = heard;
            let codec = self.codecs[listener];
            let (mixed, encoded) = (&mut self.mixed[listener], &mut self.encoded[listener]);
            for ((m, e), acc) in mixed.iter_mut().zip(encoded.iter_mut()).zip(&sum) {
                // In range after the clamp, so the cast cannot truncate.
                *m = (*acc).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                *e = codec.encode(*m);
            }
        }
    }

    /// What `leg` hears after the last tick, as samples (silence for an out-of-range leg).
    pub fn samples(&self, leg: usize) -> &Frame {
        &self.mixed[leg.min(MAX_LEGS - 1)]
    }

    /// What `leg` hears after the last tick, encoded in its law: one RTP payload.
    pub fn payload(&self, leg: usize) -> &[u8] {
        &self.encoded[leg.min(MAX_LEGS - 1)]
    }

    /// Whether any leg `leg` hears gave a frame in the last tick (if not, its output is silence
    /// and the runtime may skip sending it).
    pub fn heard_anyone(&self, leg: usize) -> bool {
        leg < self.legs && self.heard[leg]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SUPERVISOR: usize = THIRD;

    /// A mixer of caller (A-law), agent (µ-law) and a third leg (µ-law).
    fn three(hearing: Hearing) -> Mixer {
        Mixer::new(&[Codec::Pcma, Codec::Pcmu, Codec::Pcmu], hearing).unwrap()
    }

    /// Distinct constants, one power of two per leg, so every sum names its terms.
    const LEVEL: [i16; MAX_LEGS] = [1, 2, 4, 8];

    /// Which legs `listener` heard, read off the constant sum.
    fn heard_set(m: &Mixer, listener: usize) -> Vec<usize> {
        let v = m.samples(listener)[0];
        assert!(m.samples(listener).iter().all(|s| *s == v), "a constant in, a constant out");
        (0..m.legs()).filter(|s| v & LEVEL[*s] != 0).collect()
    }

    fn speak_all(m: &mut Mixer) {
        for (leg, level) in LEVEL.iter().enumerate().take(m.legs()) {
            m.put_samples(leg, &[*level; FRAME_SAMPLES]);
        }
        m.tick();
    }

    #[test]
    fn conference_each_hears_the_others_never_itself() {
        for legs in 2..=MAX_LEGS {
            let codecs = vec![Codec::Pcmu; legs];
            let mut m = Mixer::new(&codecs, Hearing::conference(legs)).unwrap();
            speak_all(&mut m);
            for leg in 0..legs {
                let expected: Vec<usize> = (0..legs).filter(|s| *s != leg).collect();
                assert_eq!(heard_set(&m, leg), expected, "{legs} legs, leg {leg}");
            }
        }
    }

    #[test]
    fn listen_supervisor_hears_both_and_nobody_hears_the_supervisor() {
        let mut m = three(Hearing::listen(3, SUPERVISOR));
        speak_all(&mut m);
        assert_eq!(heard_set(&m, CALLER), vec![AGENT]);
        assert_eq!(heard_set(&m, AGENT), vec![CALLER]);
        assert_eq!(heard_set(&m, SUPERVISOR), vec![CALLER, AGENT]);
    }

    #[test]
    fn whisper_agent_hears_the_supervisor_and_the_caller_does_not() {
        let mut m = three(Hearing::whisper(3, SUPERVISOR, AGENT));
        speak_all(&mut m);
        assert_eq!(heard_set(&m, CALLER), vec![AGENT]);
        assert_eq!(heard_set(&m, AGENT), vec![CALLER, SUPERVISOR]);
        assert_eq!(heard_set(&m, SUPERVISOR), vec![CALLER, AGENT]);
    }

    #[test]
    fn four_legs_whisper_keeps_the_third_party_in_the_call() {
        // Caller, agent, a focal point in conference, and a supervisor whispering to the agent.
        let codecs = [Codec::Pcmu; 4];
        let mut m = Mixer::new(&codecs, Hearing::whisper(4, 3, AGENT)).unwrap();
        speak_all(&mut m);
        assert_eq!(heard_set(&m, CALLER), vec![AGENT, 2]);
        assert_eq!(heard_set(&m, AGENT), vec![CALLER, 2, 3]);
        assert_eq!(heard_set(&m, 2), vec![CALLER, AGENT]);
        assert_eq!(heard_set(&m, 3), vec![CALLER, AGENT, 2]);
    }

    #[test]
    fn a_mode_change_applies_from_the_next_tick() {
        let mut m = three(Hearing::listen(3, SUPERVISOR));
        speak_all(&mut m);
        assert_eq!(heard_set(&m, CALLER), vec![AGENT]);
        m.set_hearing(Hearing::conference(3)).unwrap(); // barge
        speak_all(&mut m);
        assert_eq!(heard_set(&m, CALLER), vec![AGENT, SUPERVISOR]);
        assert_eq!(
            m.set_hearing(Hearing::conference(4)),
            Err(MixError::HearingSize { matrix: 4, legs: 3 })
        );
    }

    #[test]
    fn sums_clip_at_the_i16_limits() {
        let mut m = three(Hearing::conference(3));
        m.put_samples(CALLER, &[30_000; FRAME_SAMPLES]);
        m.put_samples(AGENT, &[30_000; FRAME_SAMPLES]);
        m.put_samples(THIRD, &[-30_000; FRAME_SAMPLES]);
        m.tick();
        assert_eq!(m.samples(THIRD)[0], i16::MAX);
        assert_eq!(m.samples(CALLER)[0], 0, "opposite phases cancel before clipping");
        m.put_samples(CALLER, &[i16::MIN; FRAME_SAMPLES]);
        m.put_samples(AGENT, &[i16::MIN; FRAME_SAMPLES]);
        m.tick();
        assert_eq!(m.samples(THIRD)[0], i16::MIN);
        assert_eq!(m.samples(CALLER)[0], i16::MIN, "the agent alone, the third leg silent");
    }

    #[test]
    fn a_leg_without_a_frame_is_silence_and_inputs_clear_each_tick() {
        let mut m = three(Hearing::conference(3));
        m.put_samples(CALLER, &[500; FRAME_SAMPLES]);
        m.tick();
        assert_eq!(m.samples(AGENT), &[500; FRAME_SAMPLES]);
        assert_eq!(m.samples(CALLER), &[0; FRAME_SAMPLES], "nobody else spoke");
        assert!(m.heard_anyone(AGENT) && !m.heard_anyone(CALLER));
        assert_eq!(m.payload(CALLER), &[Codec::Pcma.silence(); FRAME_SAMPLES]);
        m.tick();
        assert_eq!(m.samples(AGENT), &[0; FRAME_SAMPLES], "the caller's frame was for one tick");
        assert!(!m.heard_anyone(AGENT));
    }

    #[test]
    fn frames_arriving_together_play_on_successive_ticks_and_the_oldest_goes_first() {
        let mut m = three(Hearing::conference(3));
        for level in [100, 200, 300, 400] {
            m.put_samples(CALLER, &[level; FRAME_SAMPLES]);
        }
        assert_eq!(m.queued(CALLER), QUEUE_FRAMES, "the queue is bounded");
        let mut heard = Vec::new();
        for _ in 0..4 {
            m.tick();
            heard.push(m.samples(AGENT)[0]);
        }
        assert_eq!(heard, vec![200, 300, 400, 0], "100 dropped as the oldest, then silence");
    }

    #[test]
    fn a_short_frame_is_padded_with_silence() {
        let mut m = three(Hearing::conference(3));
        m.put_samples(CALLER, &[700; FRAME_SAMPLES]);
        m.tick();
        m.put_payload(CALLER, Codec::Pcmu, &[Codec::Pcmu.encode(1000); 80]);
        m.tick();
        let heard = m.samples(AGENT);
        assert_eq!(heard[..80], [Codec::Pcmu.decode(Codec::Pcmu.encode(1000)); 80]);
        assert_eq!(heard[80..], [0; 80], "nothing left of the previous tick");
    }

    #[test]
    fn payloads_decode_and_encode_in_each_legs_law() {
        // A 1 kHz tone from the A-law caller reaches the µ-law agent as the same samples,
        // within one G.711 step.
        let tone: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|i| (8000.0 * (i as f64 * std::f64::consts::TAU / 8.0).sin()) as i16)
            .collect();
        let alaw: Vec<u8> = tone.iter().map(|s| Codec::Pcma.encode(*s)).collect();
        let mut m = three(Hearing::conference(3));
        m.put_payload(CALLER, Codec::Pcma, &alaw);
        m.tick();
        for (law, leg) in [(Codec::Pcmu, AGENT), (Codec::Pcmu, THIRD)] {
            for ((out, byte), original) in m.samples(leg).iter().zip(m.payload(leg)).zip(&tone) {
                assert_eq!(*out, Codec::Pcma.decode(Codec::Pcma.encode(*original)));
                let back = law.decode(*byte);
                assert!((i32::from(back) - i32::from(*out)).abs() <= 256, "{out} -> {back}");
            }
        }
    }

    #[test]
    fn g711_round_trips_are_fixed_points_in_both_laws() {
        for law in [Codec::Pcmu, Codec::Pcma] {
            for byte in 0..=255u8 {
                let sample = law.decode(byte);
                let mut m = Mixer::new(&[law, law], Hearing::conference(2)).unwrap();
                m.put_samples(CALLER, &[sample; FRAME_SAMPLES]);
                m.tick();
                let out = m.payload(AGENT)[0];
                // µ-law has two zeros (0x7F, 0xFF); every other code comes back as itself.
                assert_eq!(law.decode(out), sample, "{law:?} {byte:#04x}");
            }
        }
    }

    #[test]
    fn mix_modes_are_the_three_leg_matrices() {
        assert_eq!(MixMode::Conference.hearing(), Hearing::conference(3));
        assert_eq!(MixMode::Listen.hearing(), Hearing::listen(3, THIRD));
        assert_eq!(MixMode::Whisper.hearing(), Hearing::whisper(3, THIRD, AGENT));
    }

    #[test]
    fn a_mixed_stream_continues_the_legs_stream_one_frame_per_packet() {
        use crate::media::rtp::RtpPacket;
        let t0 = Instant::now();
        let mut sender = RtpSender::new(0xABCD, 100, 5000);
        let h =
            RtpHeader { marker: true, payload_type: 8, sequence: 100, timestamp: 5000, ssrc: 0 };
        sender.record(t0, h, 160, 160); // hold music's last frame
        let mut stream = MixedStream::new(sender, t0 + std::time::Duration::from_millis(20));
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for k in 0..3u32 {
            let at = t0 + std::time::Duration::from_millis(20 * u64::from(k + 1));
            stream.packet(at, 8, &[0xD5; FRAME_SAMPLES], &mut out);
            let p = RtpPacket::parse(&out).unwrap();
            assert_eq!((p.ssrc, p.payload_type, p.payload.len()), (0xABCD, 8, FRAME_SAMPLES));
            seen.push((p.marker, p.sequence, p.timestamp));
        }
        assert_eq!(seen, vec![(true, 101, 5160), (false, 102, 5320), (false, 103, 5480)]);
        assert_eq!(stream.into_sender().packets_sent(), 4);
    }

    #[test]
    fn bad_leg_counts_are_refused() {
        assert_eq!(
            Mixer::new(&[Codec::Pcmu], Hearing::conference(1)).err(),
            Some(MixError::LegCount(1))
        );
        assert_eq!(
            Mixer::new(&[Codec::Pcmu; 5], Hearing::conference(4)).err(),
            Some(MixError::LegCount(5))
        );
        assert!(!Hearing::conference(3).hears(1, 1), "never itself");
        assert!(!Hearing::silent(3).with(1, 1).hears(1, 1));
    }

    fn frames() -> impl Strategy<Value = Vec<Option<Vec<i16>>>> {
        (2..=MAX_LEGS).prop_flat_map(|legs| {
            prop::collection::vec(
                prop::option::of(prop::collection::vec(any::<i16>(), FRAME_SAMPLES)),
                legs,
            )
        })
    }

    proptest! {
        #[test]
        fn each_output_is_the_clipped_sum_of_the_legs_it_hears(
            frames in frames(),
            bits in prop::array::uniform4(any::<u8>()),
            laws in prop::array::uniform4(any::<bool>()),
        ) {
            let legs = frames.len();
            let mut hearing = Hearing::silent(legs);
            for (listener, b) in bits.iter().enumerate().take(legs) {
                for speaker in 0..legs {
                    if b & (1 << speaker) != 0 {
                        hearing = hearing.with(listener, speaker);
                    }
                }
            }
            let codecs: Vec<Codec> =
                laws[..legs].iter().map(|a| if *a { Codec::Pcma } else { Codec::Pcmu }).collect();
            let mut m = Mixer::new(&codecs, hearing).unwrap();
            for (leg, frame) in frames.iter().enumerate() {
                if let Some(f) = frame {
                    m.put_samples(leg, f);
                }
            }
            m.tick();
            for listener in 0..legs {
                for i in 0..FRAME_SAMPLES {
                    let sum: i32 = (0..legs)
                        .filter(|s| *s != listener && bits[listener] & (1 << s) != 0)
                        .filter_map(|s| frames[s].as_ref())
                        .map(|f| i32::from(f[i]))
                        .sum();
                    let expected = sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                    prop_assert_eq!(m.samples(listener)[i], expected);
                    prop_assert_eq!(m.payload(listener)[i], codecs[listener].encode(expected));
                }
            }
        }
    }
}
