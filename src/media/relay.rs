//! The bridging rules between two legs (media protocol layer, sans-IO): [`SourceLatch`] decides
//! whether a datagram may enter from a leg (symmetric RTP with strict latching), and [`Relay`]
//! turns an accepted packet from one leg into the packet for the other: payload type renumbered,
//! µ-law↔A-law transcoded by table, DTMF events passed through, and SSRC, sequence and timestamp
//! rewritten onto the destination leg's own continuous stream ([`RtpSender`]).
//!
//! A bridge is two relays, one per direction, each owning the destination leg's sender. Because
//! the sender moves from a [`super::pacing::Playout`] into the relay, a caller taken off hold
//! hears the agent on the same stream the hold music came on.

use std::net::SocketAddr;
use std::time::Instant;

use thiserror::Error;

use super::dtmf::TelephoneEvent;
use super::g711::{Codec, transcode_into};
use super::pacing::RtpSender;
use super::rtp::{RtpHeader, RtpPacket, sequence_newer};

/// What one leg negotiated in SDP: its audio codec and payload type numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegFormat {
    /// The G.711 law the leg uses.
    pub codec: Codec,
    /// The payload type number the leg uses for that codec.
    pub payload_type: u8,
    /// The payload type of telephone-event/8000, when the leg negotiated RFC 4733.
    pub telephone_event: Option<u8>,
}

impl LegFormat {
    /// The format for a leg using `codec` at its static payload type, with events at `dtmf`.
    pub fn static_codec(codec: Codec, telephone_event: Option<u8>) -> LegFormat {
        LegFormat { codec, payload_type: codec.static_payload_type(), telephone_event }
    }

    /// The audio codec a received payload type stands for: the negotiated one, or either law at
    /// its RFC 3551 static number (a peer may switch to another codec it offered).
    pub fn audio_codec(&self, payload_type: u8) -> Option<Codec> {
        if payload_type == self.payload_type {
            Some(self.codec)
        } else {
            Codec::from_static_payload_type(payload_type)
        }
    }
}

/// Why a packet from the source leg was not relayed. Each variant is a metric `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RelayDrop {
    /// The payload type is neither G.711 nor the leg's telephone-event (e.g. comfort noise).
    #[error("payload type {0} was not negotiated")]
    UnknownPayloadType(u8),
    /// A DTMF event arrived but the destination leg did not negotiate telephone-event.
    #[error("destination leg has no telephone-event payload type")]
    TelephoneEventUnsupported,
    /// A telephone-event payload shorter than one event block.
    #[error("malformed telephone-event payload")]
    MalformedTelephoneEvent,
    /// A packet older than the first one relayed in this direction: its mapped sequence number
    /// would collide with packets sent before the switch (e.g. hold music).
    #[error("packet predates the start of the relay")]
    BeforeStart,
}

impl RelayDrop {
    /// The bounded metric label of this drop (`tongdai_rtp_dropped_packets_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            RelayDrop::UnknownPayloadType(_) => "unknown_payload_type",
            RelayDrop::TelephoneEventUnsupported => "telephone_event_unsupported",
            RelayDrop::MalformedTelephoneEvent => "malformed_telephone_event",
            RelayDrop::BeforeStart => "before_start",
        }
    }
}

/// Counters of one relay direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets relayed.
    pub relayed: u64,
    /// Of those, audio packets transcoded between laws.
    pub transcoded: u64,
    /// Of those, telephone-event packets.
    pub telephone_events: u64,
    /// Packets dropped, all reasons.
    pub dropped: u64,
    /// Times the source's SSRC changed and the mapping was re-anchored.
    pub source_changes: u64,
}

/// The mapping of the source stream onto the destination stream, fixed when a source starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    source_ssrc: u32,
    first_sequence: u16,
    /// The newest source sequence relayed so far.
    highest_sequence: u16,
    /// Set once the source is far past `first_sequence`: from then on modulo-2^16 comparison with
    /// it means nothing, and packets that late collide with nothing the receiver still holds.
    settled: bool,
    sequence_offset: u16,
    timestamp_offset: u32,
}

/// Packets after the start at which a stream no longer needs the [`RelayDrop::BeforeStart`]
/// check: a quarter of the sequence space, about 5 minutes at 50 packets/s.
const SETTLE_PACKETS: u16 = 0x4000;

/// One direction of a bridge: packets from leg `from` go out on leg `to`'s stream.
#[derive(Debug, Clone)]
pub struct Relay {
    from: LegFormat,
    to: LegFormat,
    sender: RtpSender,
    anchor: Option<Anchor>,
    stats: RelayStats,
}

impl Relay {
    /// A relay writing onto `sender`, the destination leg's stream (taken from its playout, or
    /// new for a fresh leg).
    pub fn new(from: LegFormat, to: LegFormat, sender: RtpSender) -> Relay {
        Relay { from, to, sender, anchor: None, stats: RelayStats::default() }
    }

    /// Counters so far.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// The destination stream.
    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    /// Ends the relay and hands the destination stream back (e.g. to play hold music again).
    pub fn into_sender(self) -> RtpSender {
        self.sender
    }

    /// Updates the formats after a re-INVITE renegotiated either leg.
    pub fn set_formats(&mut self, from: LegFormat, to: LegFormat) {
        self.from = from;
        self.to = to;
    }

    /// Rewrites one packet received from the source leg at `now` (already accepted by its
    /// [`SourceLatch`]) into `out`, the datagram for the destination leg.
    pub fn relay(
        &mut self,
        now: Instant,
        packet: &RtpPacket<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RelayDrop> {
        let result = self.relay_inner(now, packet, out);
        if result.is_err() {
            self.stats.dropped += 1;
        }
        result
    }

    fn relay_inner(
        &mut self,
        now: Instant,
        packet: &RtpPacket<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), RelayDrop> {
        enum Kind {
            Audio(Codec),
            Event(u8, u32),
        }
        let kind = if Some(packet.payload_type) == self.from.telephone_event {
            let pt = self.to.telephone_event.ok_or(RelayDrop::TelephoneEventUnsupported)?;
            let event = TelephoneEvent::parse(packet.payload)
                .map_err(|_| RelayDrop::MalformedTelephoneEvent)?;
            Kind::Event(pt, u32::from(event.duration))
        } else if let Some(codec) = self.from.audio_codec(packet.payload_type) {
            Kind::Audio(codec)
        } else {
            return Err(RelayDrop::UnknownPayloadType(packet.payload_type));
        };

        let mut marker = packet.marker;
        let anchor = match self.anchor {
            Some(mut a) if a.source_ssrc == packet.ssrc => {
                if !a.settled && packet.sequence.wrapping_sub(a.first_sequence) >= 0x8000 {
                    return Err(RelayDrop::BeforeStart);
                }
                if sequence_newer(packet.sequence, a.highest_sequence) {
                    a.highest_sequence = packet.sequence;
                    a.settled |= packet.sequence.wrapping_sub(a.first_sequence) >= SETTLE_PACKETS;
                    self.anchor = Some(a);
                }
                a
            }
            previous => {
                // A new source (first packet, or the peer restarted its stream): continue our
                // stream where it stands and mark the discontinuity for the receiver's buffer.
                if previous.is_some() {
                    self.stats.source_changes += 1;
                }
                let (_, timestamp) = self.sender.continuation(now);
                let a = Anchor {
                    source_ssrc: packet.ssrc,
                    first_sequence: packet.sequence,
                    highest_sequence: packet.sequence,
                    settled: false,
                    sequence_offset: self.sender.next_sequence().wrapping_sub(packet.sequence),
                    timestamp_offset: timestamp.wrapping_sub(packet.timestamp),
                };
                self.anchor = Some(a);
                marker = true;
                a
            }
        };
        let mut header = RtpHeader {
            marker,
            payload_type: 0,
            sequence: packet.sequence.wrapping_add(anchor.sequence_offset),
            timestamp: packet.timestamp.wrapping_add(anchor.timestamp_offset),
            ssrc: self.sender.ssrc(),
        };
        out.clear();
        out.resize(super::rtp::RTP_HEADER_LEN, 0);
        let samples = match kind {
            Kind::Audio(codec) => {
                header.payload_type = self.to.payload_type;
                transcode_into(codec, self.to.codec, packet.payload, out);
                if codec != self.to.codec {
                    self.stats.transcoded += 1;
                }
                u32::try_from(packet.payload.len()).unwrap_or(u32::MAX)
            }
            Kind::Event(pt, duration) => {
                header.payload_type = pt;
                out.extend_from_slice(packet.payload);
                self.stats.telephone_events += 1;
                duration
            }
        };
        let payload_len = out.len() - super::rtp::RTP_HEADER_LEN;
        let header = self.sender.record(now, header, samples, payload_len);
        let mut fixed = [0u8; super::rtp::RTP_HEADER_LEN];
        header.write_header(&mut fixed);
        out[..super::rtp::RTP_HEADER_LEN].copy_from_slice(&fixed);
        self.stats.relayed += 1;
        Ok(())
    }
}

/// Why a datagram was refused at a leg's port. A metric `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SourceRejected {
    /// The leg is latched to another address: no RTP bleed from strangers.
    #[error("packet from {from}, leg latched to {latched}")]
    ForeignSource {
        /// Where the packet came from.
        from: SocketAddr,
        /// The address the leg is latched to.
        latched: SocketAddr,
    },
}

/// Counters of one leg's latch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatchStats {
    /// Datagrams accepted.
    pub accepted: u64,
    /// Datagrams refused as [`SourceRejected::ForeignSource`].
    pub rejected: u64,
    /// Times the learning candidate changed before the latch closed.
    pub relearned: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LatchState {
    Learning { candidate: Option<SocketAddr>, seen: u32 },
    Latched(SocketAddr),
}

/// Symmetric RTP with strict source latching for one leg's port.
///
/// The leg's address is learnt from the traffic, not trusted from SDP (the peer may sit behind
/// NAT): the first packets are accepted from any source, and once `learn_packets` consecutive
/// packets came from one address the latch closes on it. A packet from exactly the SDP address
/// closes it at once, since signalling and traffic agree. After that every other source is
/// refused. A re-INVITE that moves the peer calls [`SourceLatch::relearn`].
#[derive(Debug, Clone)]
pub struct SourceLatch {
    signalled: Option<SocketAddr>,
    learn_packets: u32,
    state: LatchState,
    stats: LatchStats,
}

impl SourceLatch {
    /// A latch for a leg whose SDP gave `signalled` (None when on hold or unknown), closing after
    /// `learn_packets` packets from one source (at least 1).
    pub fn new(signalled: Option<SocketAddr>, learn_packets: u32) -> SourceLatch {
        SourceLatch {
            signalled,
            learn_packets: learn_packets.max(1),
            state: LatchState::Learning { candidate: None, seen: 0 },
            stats: LatchStats::default(),
        }
    }

    /// Checks a datagram's source address; Ok means it may be processed.
    pub fn check(&mut self, from: SocketAddr) -> Result<(), SourceRejected> {
        match self.state {
            LatchState::Latched(latched) if latched == from => {}
            LatchState::Latched(latched) => {
                self.stats.rejected += 1;
                return Err(SourceRejected::ForeignSource { from, latched });
            }
            LatchState::Learning { candidate, seen } => {
                let seen = if candidate == Some(from) {
                    seen + 1
                } else {
                    if candidate.is_some() {
                        self.stats.relearned += 1;
                    }
                    1
                };
                self.state = if seen >= self.learn_packets || self.signalled == Some(from) {
                    LatchState::Latched(from)
                } else {
                    LatchState::Learning { candidate: Some(from), seen }
                };
            }
        }
        self.stats.accepted += 1;
        Ok(())
    }

    /// Where to send this leg's RTP: the learnt address, else the SDP address.
    pub fn send_to(&self) -> Option<SocketAddr> {
        match self.state {
            LatchState::Latched(addr) => Some(addr),
            LatchState::Learning { candidate: Some(addr), .. } => Some(addr),
            LatchState::Learning { candidate: None, .. } => self.signalled,
        }
    }

    /// The address the latch closed on, if it has.
    pub fn latched(&self) -> Option<SocketAddr> {
        match self.state {
            LatchState::Latched(addr) => Some(addr),
            LatchState::Learning { .. } => None,
        }
    }

    /// Opens the latch again for a new SDP address (re-INVITE).
    pub fn relearn(&mut self, signalled: Option<SocketAddr>) {
        self.signalled = signalled;
        self.state = LatchState::Learning { candidate: None, seen: 0 };
    }

    /// Counters so far.
    pub fn stats(&self) -> LatchStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::{ALAW_TO_ULAW, ULAW_TO_ALAW};
    use crate::media::pacing::{FRAME_DURATION, Playlist, Playout};
    use crate::media::prompt::Prompt;

    const PCMU: LegFormat =
        LegFormat { codec: Codec::Pcmu, payload_type: 0, telephone_event: Some(101) };
    const PCMA_96: LegFormat =
        LegFormat { codec: Codec::Pcma, payload_type: 8, telephone_event: Some(96) };

    fn incoming(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        RtpHeader { marker: false, payload_type: pt, sequence: seq, timestamp: ts, ssrc }
            .to_packet(payload)
    }

    #[test]
    fn transcodes_and_renumbers_sample_by_sample() {
        let t0 = crate::test_epoch();
        let mut relay = Relay::new(PCMU, PCMA_96, RtpSender::new(0xB0B, 1000, 50_000));
        let payload: Vec<u8> = (0..160).map(|i| (i * 3 % 256) as u8).collect();
        let mut out = Vec::new();
        for k in 0..3u16 {
            let bytes = incoming(0, 7000 + k, 90_000 + 160 * u32::from(k), 0xCA11, &payload);
            let pkt = RtpPacket::parse(&bytes).unwrap();
            relay.relay(t0 + FRAME_DURATION * u32::from(k), &pkt, &mut out).unwrap();
            let sent = RtpPacket::parse(&out).unwrap();
            assert_eq!(sent.payload_type, 8);
            assert_eq!(sent.ssrc, 0xB0B);
            assert_eq!(sent.sequence, 1000 + k);
            assert_eq!(sent.timestamp, 50_000 + 160 * u32::from(k));
            assert_eq!(sent.marker, k == 0);
            for (i, b) in sent.payload.iter().enumerate() {
                assert_eq!(*b, ULAW_TO_ALAW[usize::from(payload[i])]);
            }
        }
        // The other direction: A-law to µ-law.
        let mut back = Relay::new(PCMA_96, PCMU, RtpSender::new(0xCA11, 0, 0));
        let bytes = incoming(8, 1, 1, 0xB0B, &payload);
        back.relay(t0, &RtpPacket::parse(&bytes).unwrap(), &mut out).unwrap();
        let sent = RtpPacket::parse(&out).unwrap();
        assert_eq!(sent.payload_type, 0);
        for (i, b) in sent.payload.iter().enumerate() {
            assert_eq!(*b, ALAW_TO_ULAW[usize::from(payload[i])]);
        }
        assert_eq!(relay.stats().transcoded, 3);
    }

    #[test]
    fn same_codec_passes_payload_unchanged_with_renumbered_pt() {
        let dynamic = LegFormat { codec: Codec::Pcmu, payload_type: 0, telephone_event: Some(100) };
        let mut relay = Relay::new(dynamic, PCMU, RtpSender::new(5, 0, 0));
        let payload = [0x12u8; 160];
        let mut out = Vec::new();
        let bytes = incoming(0, 1, 1, 9, &payload);
        relay.relay(crate::test_epoch(), &RtpPacket::parse(&bytes).unwrap(), &mut out).unwrap();
        assert_eq!(RtpPacket::parse(&out).unwrap().payload, &payload);
        assert_eq!(relay.stats().transcoded, 0);
    }

    #[test]
    fn telephone_events_pass_with_pt_rewritten() {
        let t0 = crate::test_epoch();
        let mut relay = Relay::new(PCMU, PCMA_96, RtpSender::new(1, 0, 0));
        let mut out = Vec::new();
        let event = [1u8, 0x8A, 0x03, 0x20];
        let bytes = incoming(101, 10, 8000, 3, &event);
        relay.relay(t0, &RtpPacket::parse(&bytes).unwrap(), &mut out).unwrap();
        let sent = RtpPacket::parse(&out).unwrap();
        assert_eq!(sent.payload_type, 96);
        assert_eq!(sent.payload, &event);
        // Without telephone-event on the far leg the event is dropped, with its reason.
        let no_dtmf = LegFormat { telephone_event: None, ..PCMA_96 };
        let mut relay = Relay::new(PCMU, no_dtmf, RtpSender::new(1, 0, 0));
        assert_eq!(
            relay.relay(t0, &RtpPacket::parse(&bytes).unwrap(), &mut out),
            Err(RelayDrop::TelephoneEventUnsupported)
        );
        let cn = incoming(13, 10, 8000, 3, &[0x40]);
        assert_eq!(
            relay.relay(t0, &RtpPacket::parse(&cn).unwrap(), &mut out),
            Err(RelayDrop::UnknownPayloadType(13))
        );
        assert_eq!(relay.stats().dropped, 2);
    }

    #[test]
    fn hold_music_to_relay_switch_is_continuous() {
        let t0 = crate::test_epoch();
        let music = Prompt::from_samples("hold", &[100; 1600]);
        let mut playout = Playout::new(
            RtpSender::new(0xCA11E4, 500, 10_000),
            Codec::Pcma,
            8,
            Playlist::new().looped(music),
            t0,
        );
        for k in 0..10u32 {
            playout.poll_transmit(t0 + FRAME_DURATION * k).unwrap();
        }
        // The agent answers 50 ms after the last music frame went out.
        let mut relay = Relay::new(PCMU, PCMA_96, playout.into_sender());
        let answered = t0 + FRAME_DURATION * 9 + std::time::Duration::from_millis(50);
        let mut out = Vec::new();
        let bytes = incoming(0, 40_000, 1_234_567, 0xA6E, &[0xFF; 160]);
        relay.relay(answered, &RtpPacket::parse(&bytes).unwrap(), &mut out).unwrap();
        let first = RtpPacket::parse(&out).unwrap().header();
        assert_eq!(first.ssrc, 0xCA11E4);
        assert_eq!(first.sequence, 510);
        assert_eq!(first.timestamp, 10_000 + 9 * 160 + 400);
        assert!(first.marker);
        // Reordering and loss in the source are preserved in the mapped stream.
        let bytes = incoming(0, 40_002, 1_234_567 + 320, 0xA6E, &[0xFF; 160]);
        relay.relay(answered, &RtpPacket::parse(&bytes).unwrap(), &mut out).unwrap();
        let third = RtpPacket::parse(&out).unwrap();
        assert_eq!((third.sequence, third.timestamp), (512, first.timestamp + 320));
        let bytes = incoming(0, 40_001, 1_234_567 + 160, 0xA6E, &[0xFF; 160]);
        relay.relay(answered, &RtpPacket::parse(&bytes).unwrap(), &mut out).unwrap();
        let second = RtpPacket::parse(&out).unwrap();
        assert_eq!((second.sequence, second.marker), (511, false));
        assert_eq!(relay.sender().next_sequence(), 513);
        // A straggler from before the switch would collide with the music's numbers.
        let bytes = incoming(0, 39_999, 1_234_567 - 160, 0xA6E, &[0xFF; 160]);
        assert_eq!(
            relay.relay(answered, &RtpPacket::parse(&bytes).unwrap(), &mut out),
            Err(RelayDrop::BeforeStart)
        );
        // The agent's phone restarts its stream: new anchor, marker, still continuous.
        let bytes = incoming(0, 3, 77, 0xB0B, &[0xFF; 160]);
        relay.relay(answered, &RtpPacket::parse(&bytes).unwrap(), &mut out).unwrap();
        let restarted = RtpPacket::parse(&out).unwrap();
        assert_eq!((restarted.sequence, restarted.marker), (513, true));
        assert_eq!(restarted.timestamp, first.timestamp + 480);
        assert_eq!(relay.stats().source_changes, 1);
    }

    #[test]
    fn long_calls_wrap_the_sequence_without_drops() {
        let t0 = crate::test_epoch();
        let mut relay = Relay::new(PCMU, PCMU, RtpSender::new(1, 60_000, 0));
        let mut out = Vec::new();
        let mut bytes = incoming(0, 65_000, 0, 42, &[0xFF; 160]);
        for k in 0..140_000u32 {
            let seq = 65_000u16.wrapping_add(k as u16);
            bytes[2..4].copy_from_slice(&seq.to_be_bytes());
            bytes[4..8].copy_from_slice(&(k * 160).to_be_bytes());
            let packet = RtpPacket::parse(&bytes).unwrap();
            relay.relay(t0 + FRAME_DURATION * k, &packet, &mut out).unwrap();
            let sent = RtpPacket::parse(&out).unwrap();
            assert_eq!(sent.sequence, 60_000u16.wrapping_add(k as u16));
        }
        assert_eq!(relay.stats().dropped, 0);
    }

    #[test]
    fn latch_learns_then_rejects_strangers() {
        let sdp: SocketAddr = "192.168.1.10:7078".parse().unwrap();
        let nat: SocketAddr = "203.0.113.5:40000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.66:5004".parse().unwrap();
        let mut latch = SourceLatch::new(Some(sdp), 3);
        assert_eq!(latch.send_to(), Some(sdp));
        latch.check(nat).unwrap();
        assert_eq!(latch.send_to(), Some(nat));
        latch.check(stranger).unwrap(); // still learning: the candidate moves
        latch.check(nat).unwrap();
        latch.check(nat).unwrap();
        assert_eq!(latch.latched(), None);
        latch.check(nat).unwrap();
        assert_eq!(latch.latched(), Some(nat));
        assert_eq!(
            latch.check(stranger),
            Err(SourceRejected::ForeignSource { from: stranger, latched: nat })
        );
        assert_eq!(latch.check(sdp).map_err(|_| ()), Err(()));
        let stats = latch.stats();
        assert_eq!((stats.accepted, stats.rejected, stats.relearned), (5, 2, 2));
        latch.relearn(Some(stranger));
        latch.check(stranger).unwrap();
        assert_eq!(latch.latched(), Some(stranger), "the SDP address latches at once");
    }
}
