//! Paced playout of prompts and hold audio (media protocol layer, sans-IO): one [`RtpSender`] per
//! leg owns the outgoing stream's identity (SSRC, sequence, timestamp), and a [`Playout`] drives
//! it through a [`Playlist`] in 20 ms frames. Time comes in as an `Instant` value; the runtime
//! sleeps until [`Playout::poll_timeout`] and drains [`Playout::poll_transmit`].
//!
//! Frames are due at `start + k × 20 ms` and carry timestamp `base + k × 160`: both are computed
//! from the frame index, never by adding intervals, so no drift accumulates. When the runtime is
//! late it catches up by sending at most [`MAX_CATCH_UP_FRAMES`] frames back to back; frames due
//! before that are skipped (the audio and the timestamp jump forward, the sequence does not), so
//! the far end's jitter buffer sees a short gap rather than a long burst and the audio stays in
//! step with the wall clock.
//!
//! The same [`RtpSender`] moves from the playout to the relay ([`Playout::into_sender`], then
//! [`super::relay::Relay::new`]) and back, so a caller taken off hold keeps one continuous stream:
//! same SSRC, sequence + 1, timestamp advanced by the elapsed time, marker bit set.

use std::time::{Duration, Instant};

use super::g711::Codec;
use super::prompt::Prompt;
use super::rtp::{RtpHeader, sequence_newer};

/// G.711 sample rate, also the RTP clock rate of PCMU, PCMA and telephone-event/8000.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms frame (RFC 3551 default packetisation for G.711).
pub const FRAME_SAMPLES: u32 = 160;
/// Duration of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// Frames sent back to back at most when the caller is late; older due frames are skipped.
pub const MAX_CATCH_UP_FRAMES: u64 = 3;

/// Duration of `samples` at 8 kHz (125 µs each).
pub fn samples_to_duration(samples: u32) -> Duration {
    Duration::from_micros(u64::from(samples) * 125)
}

/// Whole samples at 8 kHz in `d`, saturating at `u32::MAX`.
pub fn duration_to_samples(d: Duration) -> u32 {
    u32::try_from(d.as_micros() / 125).unwrap_or(u32::MAX)
}

/// The last packet an [`RtpSender`] sent, the reference for continuing its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LastSent {
    at: Instant,
    timestamp: u32,
    samples: u32,
}

/// The outgoing RTP stream of one leg: SSRC, next sequence number and the timestamp reference.
///
/// Whoever currently feeds the leg (a [`Playout`] or a relay) owns the sender, so there is exactly
/// one writer of the stream at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpSender {
    ssrc: u32,
    next_sequence: u16,
    initial_timestamp: u32,
    last: Option<LastSent>,
    packets_sent: u64,
    octets_sent: u64,
}

impl RtpSender {
    /// A new stream. RFC 3550 §5.1 wants SSRC, first sequence and first timestamp random: the
    /// runtime draws them (this layer has no randomness, so tests are deterministic).
    pub fn new(ssrc: u32, first_sequence: u16, first_timestamp: u32) -> RtpSender {
        RtpSender {
            ssrc,
            next_sequence: first_sequence,
            initial_timestamp: first_timestamp,
            last: None,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// Packets sent so far (for the RTCP sender report).
    pub fn packets_sent(&self) -> u64 {
        self.packets_sent
    }

    /// Payload octets sent so far (for the RTCP sender report).
    pub fn octets_sent(&self) -> u64 {
        self.octets_sent
    }

    /// The RTP timestamp of `now` on this stream's clock, e.g. for the RTCP sender report.
    pub fn timestamp_at(&self, now: Instant) -> u32 {
        match self.last {
            None => self.initial_timestamp,
            Some(last) => last
                .timestamp
                .wrapping_add(duration_to_samples(now.saturating_duration_since(last.at))),
        }
    }

    /// The instant and RTP timestamp at which a new source (a playlist, a relayed stream) should
    /// start so the stream stays continuous: right after the last packet's audio ends, or at `now`
    /// with the timestamp advanced by the time elapsed, whichever is later.
    pub fn continuation(&self, now: Instant) -> (Instant, u32) {
        match self.last {
            None => (now, self.initial_timestamp),
            Some(last) => {
                let end = last.at + samples_to_duration(last.samples);
                if now <= end {
                    (end, last.timestamp.wrapping_add(last.samples))
                } else {
                    let elapsed = duration_to_samples(now.saturating_duration_since(last.at));
                    (now, last.timestamp.wrapping_add(elapsed))
                }
            }
        }
    }

    /// Records one packet sent at `now` and returns its header. `sequence` is normally
    /// [`Self::next_sequence`]; a relay passes the mapped number of a reordered packet, which does
    /// not move the stream backwards. `samples` is the audio the packet covers.
    pub fn record(
        &mut self,
        now: Instant,
        header: RtpHeader,
        samples: u32,
        payload_len: usize,
    ) -> RtpHeader {
        let header = RtpHeader { ssrc: self.ssrc, ..header };
        if !sequence_newer(self.next_sequence, header.sequence) {
            self.next_sequence = header.sequence.wrapping_add(1);
        }
        let newer = match self.last {
            None => true,
            Some(last) => header.timestamp.wrapping_sub(last.timestamp) < 0x8000_0000,
        };
        if newer {
            self.last = Some(LastSent { at: now, timestamp: header.timestamp, samples });
        }
        self.packets_sent += 1;
        self.octets_sent += payload_len as u64;
        header
    }
}

/// How often a playlist item plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Play once, then go on to the next item.
    Once,
    /// Play forever (hold music); items after it are never reached.
    Loop,
}

/// One entry of a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistItem {
    /// The audio.
    pub prompt: Prompt,
    /// Once or looped.
    pub repeat: Repeat,
}

/// What a leg hears, in order: e.g. the welcome prompt once, then hold music looped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Playlist {
    /// The items in play order.
    pub items: Vec<PlaylistItem>,
}

impl Playlist {
    /// An empty playlist (a playout of it finishes at once).
    pub fn new() -> Playlist {
        Playlist::default()
    }

    /// Appends a prompt played once.
    pub fn once(mut self, prompt: Prompt) -> Playlist {
        self.items.push(PlaylistItem { prompt, repeat: Repeat::Once });
        self
    }

    /// Appends a prompt played in a loop.
    pub fn looped(mut self, prompt: Prompt) -> Playlist {
        self.items.push(PlaylistItem { prompt, repeat: Repeat::Loop });
        self
    }
}

/// Plays a [`Playlist`] on one leg as paced RTP.
///
/// Each item starts a new talkspurt: it begins on a frame boundary with the marker bit set, and
/// its last frame is padded with silence. A looped item wraps inside the frame, with no gap and
/// no marker, since it is one continuous piece of audio.
#[derive(Debug, Clone)]
pub struct Playout {
    sender: RtpSender,
    codec: Codec,
    payload_type: u8,
    items: Vec<PlaylistItem>,
    item: usize,
    offset: usize,
    start: Instant,
    base_timestamp: u32,
    frame: u64,
    marker_next: bool,
    frames_skipped: u64,
}

impl Playout {
    /// Starts playing `playlist` on the leg whose stream is `sender`, encoded as `codec` with
    /// payload type `payload_type` (the leg's negotiated numbering). The first frame is due at
    /// `now`, or when the sender's previous packet ends if that is later.
    pub fn new(
        sender: RtpSender,
        codec: Codec,
        payload_type: u8,
        playlist: Playlist,
        now: Instant,
    ) -> Playout {
        let (start, base_timestamp) = sender.continuation(now);
        Playout {
            sender,
            codec,
            payload_type,
            items: playlist.items,
            item: 0,
            offset: 0,
            start,
            base_timestamp,
            frame: 0,
            marker_next: true,
            frames_skipped: 0,
        }
    }

    /// True once every item has played (never for a playlist with a looped item).
    pub fn is_finished(&self) -> bool {
        self.item >= self.items.len()
    }

    /// The name of the prompt playing now, if any.
    pub fn current_prompt(&self) -> Option<&str> {
        self.items.get(self.item).map(|i| &*i.prompt.name)
    }

    /// Frames skipped so far because the caller was late (see the module notes).
    pub fn frames_skipped(&self) -> u64 {
        self.frames_skipped
    }

    /// The leg's stream, to read its SSRC or sequence.
    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    /// Stops the playout and hands the stream to whoever feeds the leg next.
    pub fn into_sender(self) -> RtpSender {
        self.sender
    }

    fn due(&self, frame: u64) -> Instant {
        // u32 frames of 20 ms cover 2.7 years; the multiplication cannot overflow in practice.
        self.start + FRAME_DURATION * u32::try_from(frame).unwrap_or(u32::MAX)
    }

    /// When the next frame is due, or `None` when the playlist is finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_finished()).then(|| self.due(self.frame))
    }

    /// The next RTP packet if one is due at `now`. Call until it returns `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.poll_transmit_into(now, &mut out).then_some(out)
    }

    /// Like [`Self::poll_transmit`], writing the packet into `out` (cleared first) so the runtime
    /// can reuse one buffer; returns false when nothing is due.
    pub fn poll_transmit_into(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.is_finished() || now < self.due(self.frame) {
            return false;
        }
        // Index of the latest frame due at `now`, computed from the start so rounding never
        // accumulates.
        let elapsed = now.saturating_duration_since(self.start);
        let latest = (elapsed.as_micros() / FRAME_DURATION.as_micros()) as u64;
        if latest >= self.frame + MAX_CATCH_UP_FRAMES {
            let skip = latest + 1 - MAX_CATCH_UP_FRAMES - self.frame;
            let mut scratch = [0u8; FRAME_SAMPLES as usize];
            for _ in 0..skip {
                self.fill_frame(&mut scratch);
                if self.is_finished() {
                    return false;
                }
            }
            self.frame += skip;
            self.frames_skipped += skip;
        }
        let mut payload = [0u8; FRAME_SAMPLES as usize];
        let marker = self.marker_next;
        self.marker_next = false;
        self.fill_frame(&mut payload);
        let timestamp =
            self.base_timestamp.wrapping_add((self.frame as u32).wrapping_mul(FRAME_SAMPLES));
        let header = RtpHeader {
            marker,
            payload_type: self.payload_type,
            sequence: self.sender.next_sequence(),
            timestamp,
            ssrc: self.sender.ssrc(),
        };
        let header = self.sender.record(self.due(self.frame), header, FRAME_SAMPLES, payload.len());
        self.frame += 1;
        header.write_vec(&payload, out);
        true
    }

    /// Fills one frame from the playlist and advances it; sets the marker for the next frame when
    /// an item ends.
    fn fill_frame(&mut self, out: &mut [u8]) {
        let mut filled = 0;
        while filled < out.len() {
            let Some(item) = self.items.get(self.item) else {
                out[filled..].fill(self.codec.silence());
                return;
            };
            let audio = item.prompt.encoded(self.codec);
            if audio.is_empty() {
                // Nothing to play, looped or not: skipping it also keeps a looped empty prompt
                // from spinning here forever.
                self.item += 1;
                continue;
            }
            let take = (audio.len() - self.offset).min(out.len() - filled);
            out[filled..filled + take].copy_from_slice(&audio[self.offset..self.offset + take]);
            filled += take;
            self.offset += take;
            if self.offset >= audio.len() {
                self.offset = 0;
                if item.repeat == Repeat::Once {
                    // The next item starts a new talkspurt on the next frame boundary.
                    self.item += 1;
                    self.marker_next = true;
                    out[filled..].fill(self.codec.silence());
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::ulaw_encode;
    use crate::media::rtp::RtpPacket;

    fn ramp(name: &str, len: usize, base: i16) -> Prompt {
        let samples: Vec<i16> = (0..len).map(|i| base + (i as i16 % 100) * 50).collect();
        Prompt::from_samples(name, &samples)
    }

    fn drain(p: &mut Playout, now: Instant) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| p.poll_transmit(now)).collect()
    }

    #[test]
    fn paces_50_packets_per_second_with_exact_headers() {
        let t0 = crate::test_epoch();
        let music = ramp("hold", 8000, 0);
        let mut p = Playout::new(
            RtpSender::new(0x1111, 65530, 4_294_967_000),
            Codec::Pcmu,
            0,
            Playlist::new().looped(music),
            t0,
        );
        let mut packets = Vec::new();
        let mut now = t0;
        for _ in 0..50 {
            assert_eq!(p.poll_timeout(), Some(now));
            let sent = drain(&mut p, now);
            assert_eq!(sent.len(), 1, "exactly one frame per 20 ms");
            assert!(p.poll_transmit(now).is_none());
            packets.extend(sent);
            now += FRAME_DURATION;
        }
        for (i, bytes) in packets.iter().enumerate() {
            let rtp = RtpPacket::parse(bytes).unwrap();
            assert_eq!(rtp.ssrc, 0x1111);
            assert_eq!(rtp.payload_type, 0);
            assert_eq!(rtp.sequence, 65530u16.wrapping_add(i as u16));
            assert_eq!(rtp.timestamp, 4_294_967_000u32.wrapping_add(160 * i as u32));
            assert_eq!(rtp.marker, i == 0);
            assert_eq!(rtp.payload.len(), 160);
        }
        assert_eq!(p.sender().packets_sent(), 50);
        assert_eq!(p.sender().octets_sent(), 8000);
    }

    #[test]
    fn plays_in_order_pads_once_items_and_loops_seamlessly() {
        let t0 = crate::test_epoch();
        let welcome = ramp("welcome", 400, 1000); // 2.5 frames
        let hold = ramp("hold", 250, -3000); // loops every 1.5625 frames
        let mut p = Playout::new(
            RtpSender::new(1, 0, 0),
            Codec::Pcmu,
            0,
            Playlist::new().once(welcome.clone()).looped(hold.clone()),
            t0,
        );
        let mut payload = Vec::new();
        let mut markers = Vec::new();
        for k in 0..10u32 {
            let bytes = p.poll_transmit(t0 + FRAME_DURATION * k).unwrap();
            let rtp = RtpPacket::parse(&bytes).unwrap();
            markers.push(rtp.marker);
            payload.extend_from_slice(rtp.payload);
            assert_eq!(rtp.timestamp, 160 * k);
            assert_eq!(rtp.sequence, k as u16);
        }
        // Welcome: 400 samples then 80 of silence, marker on frames 0 and 3.
        assert_eq!(&payload[..400], &welcome.pcmu[..]);
        assert!(payload[400..480].iter().all(|b| *b == ulaw_encode(0)));
        assert_eq!(markers, [true, false, false, true, false, false, false, false, false, false]);
        // Then hold music back to back, wrapping without gaps.
        let after = &payload[480..];
        for (i, b) in after.iter().enumerate() {
            assert_eq!(*b, hold.pcmu[i % 250], "sample {i}");
        }
        assert_eq!(p.current_prompt(), Some("hold"));
        assert!(!p.is_finished());
    }

    #[test]
    fn finishes_after_last_once_item() {
        let t0 = crate::test_epoch();
        let mut p = Playout::new(
            RtpSender::new(1, 0, 0),
            Codec::Pcma,
            8,
            Playlist::new().once(ramp("a", 320, 0)),
            t0,
        );
        assert!(p.poll_transmit(t0).is_some());
        assert!(p.poll_transmit(t0 + FRAME_DURATION).is_some());
        assert!(p.is_finished());
        assert_eq!(p.poll_timeout(), None);
        assert!(p.poll_transmit(t0 + FRAME_DURATION * 5).is_none());
        let empty = Playout::new(RtpSender::new(1, 0, 0), Codec::Pcma, 8, Playlist::new(), t0);
        assert!(empty.is_finished());
        // An empty prompt, even looped, is skipped rather than spun on.
        let silent = Prompt::from_samples("silent", &[]);
        let mut p = Playout::new(
            RtpSender::new(1, 0, 0),
            Codec::Pcmu,
            0,
            Playlist::new().looped(silent).once(ramp("b", 160, 0)),
            t0,
        );
        let mut out = Vec::new();
        assert!(p.poll_transmit_into(t0, &mut out));
        assert_eq!(RtpPacket::parse(&out).unwrap().payload.len(), 160);
        assert!(p.is_finished());
    }

    #[test]
    fn late_caller_catches_up_three_frames_then_skips() {
        let t0 = crate::test_epoch();
        let samples: Vec<i16> = (0..16000).map(|i| i as i16).collect();
        let mut p = Playout::new(
            RtpSender::new(1, 0, 0),
            Codec::Pcmu,
            0,
            Playlist::new().looped(Prompt::from_samples("count", &samples)),
            t0,
        );
        assert_eq!(drain(&mut p, t0).len(), 1);
        // 2 frames late: both are sent (within the catch-up allowance).
        assert_eq!(drain(&mut p, t0 + FRAME_DURATION * 2).len(), 2);
        // Now 10 frames late (frames 3..=12 due): only the last three go out.
        let sent = drain(&mut p, t0 + FRAME_DURATION * 12 + Duration::from_millis(5));
        assert_eq!(sent.len(), 3);
        assert_eq!(p.frames_skipped(), 7);
        let first = RtpPacket::parse(&sent[0]).unwrap();
        assert_eq!(first.sequence, 3, "sequence stays continuous");
        assert_eq!(first.timestamp, 160 * 10, "timestamp follows the clock");
        assert_eq!(first.payload[0], ulaw_encode(160 * 10));
        assert_eq!(p.poll_timeout(), Some(t0 + FRAME_DURATION * 13));
    }

    #[test]
    fn switching_playlists_keeps_the_stream_continuous() {
        let t0 = crate::test_epoch();
        let mut p = Playout::new(
            RtpSender::new(77, 100, 5000),
            Codec::Pcmu,
            0,
            Playlist::new().looped(ramp("hold", 800, 0)),
            t0,
        );
        for k in 0..5u32 {
            assert!(p.poll_transmit(t0 + FRAME_DURATION * k).is_some());
        }
        // Switch 3 ms after the last frame went out: the new source starts when that frame's
        // audio ends, with the next timestamp, the next sequence and a marker.
        let switch_at = t0 + FRAME_DURATION * 4 + Duration::from_millis(3);
        let sender = p.into_sender();
        let mut q = Playout::new(
            sender,
            Codec::Pcmu,
            0,
            Playlist::new().once(ramp("position-3", 320, 0)),
            switch_at,
        );
        assert_eq!(q.poll_timeout(), Some(t0 + FRAME_DURATION * 5));
        let rtp_bytes = q.poll_transmit(t0 + FRAME_DURATION * 5).unwrap();
        let rtp = RtpPacket::parse(&rtp_bytes).unwrap();
        assert_eq!((rtp.ssrc, rtp.sequence, rtp.timestamp, rtp.marker), (77, 105, 5800, true));
        // After a pause of a second, the timestamp advances by the elapsed time.
        let _ = q.poll_transmit(t0 + FRAME_DURATION * 6).unwrap();
        let later = t0 + FRAME_DURATION * 7 + Duration::from_secs(1);
        let mut r = Playout::new(
            q.into_sender(),
            Codec::Pcmu,
            0,
            Playlist::new().once(ramp("x", 160, 0)),
            later,
        );
        let rtp_bytes = r.poll_transmit(later).unwrap();
        let rtp = RtpPacket::parse(&rtp_bytes).unwrap();
        assert_eq!((rtp.sequence, rtp.timestamp, rtp.marker), (107, 5960 + 8160, true));
    }
}
