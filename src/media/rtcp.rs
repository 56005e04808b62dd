//! RTCP (RFC 3550 §6), wire and protocol layer, sans-IO: tongdai terminates RTCP on each leg
//! rather than forwarding it, because the relay rewrites SSRCs and sequence numbers, so a report
//! about one leg's stream means nothing on the other leg.
//!
//! Per leg: [`ReceptionStats`] follows the incoming stream (RFC 3550 A.1 sequence tracking, A.3
//! loss, A.8 interarrival jitter) and produces the report block; [`write_report`] builds the
//! compound packet we send (SR when we sent media since the last report, else RR, then SDES CNAME,
//! as §6.1 requires); [`parse_compound`] reads what the peer sends, for the leg's statistics and
//! the round-trip time. The runtime passes the wall clock in as an NTP timestamp value.

use std::time::{Duration, Instant};

use thiserror::Error;

use super::pacing::RtpSender;

/// Sender report.
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Goodbye.
pub const PT_BYE: u8 = 203;

/// Why a datagram is not a valid compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// Shorter than a 4-byte RTCP header, or than the fixed part of a report.
    #[error("RTCP packet of {len} bytes is too short")]
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTCP version {version}, expected 2")]
    WrongVersion {
        /// The version found.
        version: u8,
    },
    /// A length field points past the end of the datagram.
    #[error("RTCP length of {words} words runs past the end of the datagram")]
    LengthPastEnd {
        /// The length field (in 32-bit words minus one).
        words: u16,
    },
    /// The report count announces more report blocks than the packet holds.
    #[error("RTCP report count {count} does not fit in the packet")]
    CountPastEnd {
        /// The report count.
        count: u8,
    },
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed; duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the top 16 bits).
    pub highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP timestamp of the last SR received (LSR), or 0.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (DLSR), or 0.
    pub delay_since_last_sr: u32,
}

/// The sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// Wall-clock time of the report as a 64-bit NTP timestamp.
    pub ntp_timestamp: u64,
    /// The same instant in the stream's RTP timestamp units.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packet_count: u32,
    /// Payload octets sent since the start.
    pub octet_count: u32,
}

impl SenderInfo {
    /// The sender information for our stream `sender` at `now`, which is `ntp_timestamp` on the
    /// wall clock. Counts wrap at 2^32 as RFC 3550 §6.4.1 has them.
    pub fn for_stream(sender: &RtpSender, now: Instant, ntp_timestamp: u64) -> SenderInfo {
        SenderInfo {
            ntp_timestamp,
            rtp_timestamp: sender.timestamp_at(now),
            packet_count: sender.packets_sent() as u32,
            octet_count: sender.octets_sent() as u32,
        }
    }
}

/// One packet of a compound RTCP datagram, as far as a leg needs to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR: the peer sends media.
    SenderReport {
        /// The sender's SSRC.
        ssrc: u32,
        /// Its sender information.
        info: SenderInfo,
        /// Its reports on the streams it receives (ours).
        reports: Vec<ReportBlock>,
    },
    /// RR: the peer only receives.
    ReceiverReport {
        /// The reporter's SSRC.
        ssrc: u32,
        /// Its reports on the streams it receives (ours).
        reports: Vec<ReportBlock>,
    },
    /// BYE: the listed sources leave.
    Bye {
        /// The departing SSRCs.
        ssrcs: Vec<u32>,
    },
    /// SDES, APP, feedback or XR: accepted, not interpreted.
    Other {
        /// The packet type.
        packet_type: u8,
    },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_block(b: &[u8]) -> ReportBlock {
    // Sign-extend the 24-bit cumulative loss.
    let cumulative = i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8;
    ReportBlock {
        ssrc: be32(&b[0..4]),
        fraction_lost: b[4],
        cumulative_lost: cumulative,
        highest_sequence: be32(&b[8..12]),
        jitter: be32(&b[12..16]),
        last_sr: be32(&b[16..20]),
        delay_since_last_sr: be32(&b[20..24]),
    }
}

fn parse_blocks(body: &[u8], count: u8) -> Result<Vec<ReportBlock>, RtcpError> {
    let needed = usize::from(count) * 24;
    let blocks = body.get(..needed).ok_or(RtcpError::CountPastEnd { count })?;
    Ok(blocks.chunks_exact(24).map(parse_block).collect())
}

/// Parses a compound RTCP datagram into its packets.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut packets = Vec::new();
    let mut rest = buf;
    if rest.is_empty() {
        return Err(RtcpError::TooShort { len: 0 });
    }
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtcpError::TooShort { len: rest.len() });
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::WrongVersion { version });
        }
        let count = rest[0] & 0x1F;
        let packet_type = rest[1];
        let words = u16::from_be_bytes([rest[2], rest[3]]);
        let len = (usize::from(words) + 1) * 4;
        let packet = rest.get(..len).ok_or(RtcpError::LengthPastEnd { words })?;
        let body = &packet[4..];
        packets.push(match packet_type {
            PT_SR => {
                if body.len() < 24 {
                    return Err(RtcpError::TooShort { len: packet.len() });
                }
                let ntp = (u64::from(be32(&body[4..8])) << 32) | u64::from(be32(&body[8..12]));
                RtcpPacket::SenderReport {
                    ssrc: be32(&body[0..4]),
                    info: SenderInfo {
                        ntp_timestamp: ntp,
                        rtp_timestamp: be32(&body[12..16]),
                        packet_count: be32(&body[16..20]),
                        octet_count: be32(&body[20..24]),
                    },
                    reports: parse_blocks(&body[24..], count)?,
                }
            }
            PT_RR => {
                if body.len() < 4 {
                    return Err(RtcpError::TooShort { len: packet.len() });
                }
                RtcpPacket::ReceiverReport {
                    ssrc: be32(&body[0..4]),
                    reports: parse_blocks(&body[4..], count)?,
                }
            }
            PT_BYE => {
                let ids =
                    body.get(..usize::from(count) * 4).ok_or(RtcpError::CountPastEnd { count })?;
                RtcpPacket::Bye { ssrcs: ids.chunks_exact(4).map(be32).collect() }
            }
            other => RtcpPacket::Other { packet_type: other },
        });
        rest = &rest[len..];
    }
    Ok(packets)
}

/// The 64-bit NTP timestamp for a wall-clock time given as the duration since the Unix epoch
/// (the runtime reads `SystemTime`; this layer only converts).
pub fn ntp_timestamp(since_unix_epoch: Duration) -> u64 {
    // NTP counts from 1900; 70 years including 17 leap days.
    const UNIX_TO_NTP_SECONDS: u64 = 2_208_988_800;
    let seconds = since_unix_epoch.as_secs() + UNIX_TO_NTP_SECONDS;
    let fraction = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// Writes our compound report for one leg into `out` (cleared first): an SR when `sender` is
/// given, else an RR; at most one report block; then SDES with the CNAME (RFC 3550 §6.1).
pub fn write_report(
    out: &mut Vec<u8>,
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
    cname: &str,
) {
    out.clear();
    let count = u8::from(block.is_some());
    let packet_type = if sender.is_some() { PT_SR } else { PT_RR };
    let words = 1 + if sender.is_some() { 5 } else { 0 } + 6 * u16::from(count);
    out.extend_from_slice(&[0x80 | count, packet_type]);
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(info) = sender {
        out.extend_from_slice(&info.ntp_timestamp.to_be_bytes());
        out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&info.packet_count.to_be_bytes());
        out.extend_from_slice(&info.octet_count.to_be_bytes());
    }
    if let Some(b) = block {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF).to_be_bytes();
        out.extend_from_slice(&[b.fraction_lost, lost[1], lost[2], lost[3]]);
        out.extend_from_slice(&b.highest_sequence.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
    // SDES: one chunk, CNAME item, null terminator, padded to 32 bits.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let chunk_len = 4 + 2 + name.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    let words = u16::try_from(padded / 4).unwrap_or(u16::MAX);
    out.extend_from_slice(&[0x81, PT_SDES]);
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&[1, name.len() as u8]);
    out.extend_from_slice(name);
    out.resize(out.len() + (padded - chunk_len + 1), 0);
}

/// Reception statistics of one incoming stream (RFC 3550 A.1, A.3, A.8), for our report block
/// and for the leg's quality metrics.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    ssrc: u32,
    base_sequence: u32,
    max_sequence: u16,
    cycles: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Jitter estimate in timestamp units, scaled by 16 as in RFC 3550 A.8.
    jitter_q4: u64,
    /// Previous transit time (arrival in samples minus RTP timestamp).
    last_transit: Option<i64>,
    epoch: Instant,
    last_sr: Option<(u32, Instant)>,
}

impl ReceptionStats {
    /// Starts following `ssrc` whose first packet carries `sequence`; `now` is the time base for
    /// jitter. Feed that first packet to [`Self::on_packet`] too.
    pub fn new(ssrc: u32, sequence: u16, now: Instant) -> ReceptionStats {
        ReceptionStats {
            ssrc,
            base_sequence: u32::from(sequence),
            max_sequence: sequence,
            cycles: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_q4: 0,
            last_transit: None,
            epoch: now,
            last_sr: None,
        }
    }

    /// The source followed.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Records an RTP packet that arrived at `now` (8 kHz clock).
    pub fn on_packet(&mut self, now: Instant, sequence: u16, timestamp: u32) {
        let delta = sequence.wrapping_sub(self.max_sequence);
        if delta != 0 && delta < 0x8000 {
            if sequence < self.max_sequence {
                self.cycles += 1 << 16;
            }
            self.max_sequence = sequence;
        }
        self.received += 1;
        // A.8: transit = arrival - timestamp, both in timestamp units; jitter += (|D| - J) / 16.
        let arrival = (now.saturating_duration_since(self.epoch).as_micros() / 125) as i64;
        let transit = arrival - i64::from(timestamp);
        if let Some(last) = self.last_transit {
            // Timestamps wrap; the difference of two transits is small, so fold it into i32.
            let d = u64::from(((transit - last) as i32).unsigned_abs());
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Records an SR from the peer received at `now`, for the LSR/DLSR fields (round-trip time).
    pub fn on_sender_report(&mut self, now: Instant, ntp_timestamp: u64) {
        self.last_sr = Some(((ntp_timestamp >> 16) as u32, now));
    }

    /// The extended highest sequence number received.
    pub fn highest_sequence(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_sequence))
    }

    /// Packets expected from the sequence numbers seen.
    pub fn expected(&self) -> u64 {
        u64::from(self.highest_sequence()).saturating_sub(u64::from(self.base_sequence)) + 1
    }

    /// Packets lost since the start (negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter, in milliseconds (8 kHz clock).
    pub fn jitter_ms(&self) -> f64 {
        (self.jitter_q4 >> 4) as f64 / 8.0
    }

    /// The report block for our next RR/SR; starts a new interval for `fraction_lost`.
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost =
            (lost_interval << 8).checked_div(expected_interval).map_or(0, |f| f.min(255) as u8);
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let delay = now.saturating_duration_since(at);
                let units = (delay.as_micros() * 65_536 / 1_000_000) as u32;
                (lsr, units)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_sequence: self.highest_sequence(),
            jitter: (self.jitter_q4 >> 4) as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// Round-trip time from a report block about our stream (RFC 3550 §6.4.1): `now_ntp` is the
/// arrival time of the report as an NTP timestamp. `None` when the peer has no SR of ours yet.
pub fn round_trip_time(block: &ReportBlock, now_ntp: u64) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let now_mid = (now_ntp >> 16) as u32;
    let rtt = now_mid.wrapping_sub(block.last_sr).wrapping_sub(block.delay_since_last_sr);
    // Units of 1/65536 s; a "negative" result (clock skew) reads as huge: reject it.
    (rtt < 0x8000_0000).then(|| Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::{PacketKind, classify};

    #[test]
    fn sr_with_block_and_cname_round_trips() {
        let info = SenderInfo {
            ntp_timestamp: ntp_timestamp(Duration::new(1_800_000_000, 500_000_000)),
            rtp_timestamp: 12345,
            packet_count: 50,
            octet_count: 8000,
        };
        let block = ReportBlock {
            ssrc: 9,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_sequence: 0x0001_0005,
            jitter: 40,
            last_sr: 0xABCD_1234,
            delay_since_last_sr: 65_536,
        };
        let mut out = Vec::new();
        write_report(&mut out, 7, Some(info), Some(block), "tongdai@hotline111");
        assert_eq!(out.len() % 4, 0);
        assert_eq!(classify(&out), PacketKind::Rtcp);
        let packets = parse_compound(&out).unwrap();
        assert_eq!(packets[0], RtcpPacket::SenderReport { ssrc: 7, info, reports: vec![block] });
        assert_eq!(packets[1], RtcpPacket::Other { packet_type: PT_SDES });
        // The NTP fraction of half a second is 2^31.
        assert_eq!(info.ntp_timestamp & 0xFFFF_FFFF, 0x8000_0000);
        assert_eq!(info.ntp_timestamp >> 32, 1_800_000_000 + 2_208_988_800);

        write_report(&mut out, 7, None, None, "x");
        let packets = parse_compound(&out).unwrap();
        assert_eq!(packets[0], RtcpPacket::ReceiverReport { ssrc: 7, reports: vec![] });
    }

    #[test]
    fn sender_info_follows_the_stream_clock() {
        use crate::media::rtp::RtpHeader;
        let t0 = crate::test_epoch();
        let mut sender = RtpSender::new(7, 0, 1000);
        let header =
            RtpHeader { marker: true, payload_type: 0, sequence: 0, timestamp: 1000, ssrc: 7 };
        sender.record(t0, header, 160, 160);
        let info = SenderInfo::for_stream(&sender, t0 + Duration::from_millis(500), 42);
        assert_eq!(info.rtp_timestamp, 1000 + 4000);
        assert_eq!((info.packet_count, info.octet_count, info.ntp_timestamp), (1, 160, 42));
    }

    #[test]
    fn rejects_bad_compounds() {
        assert_eq!(parse_compound(&[]), Err(RtcpError::TooShort { len: 0 }));
        assert_eq!(parse_compound(&[0x80, 201]), Err(RtcpError::TooShort { len: 2 }));
        assert_eq!(
            parse_compound(&[0x40, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::WrongVersion { version: 1 })
        );
        assert_eq!(
            parse_compound(&[0x80, 201, 0, 5, 0, 0, 0, 0]),
            Err(RtcpError::LengthPastEnd { words: 5 })
        );
        assert_eq!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::CountPastEnd { count: 1 })
        );
        assert_eq!(
            parse_compound(&[0x82, 203, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::CountPastEnd { count: 2 })
        );
        assert_eq!(
            parse_compound(&[0x81, 203, 0, 1, 0, 0, 0, 1]).unwrap(),
            vec![RtcpPacket::Bye { ssrcs: vec![1] }]
        );
    }

    #[test]
    fn reception_stats_count_loss_wrap_and_jitter() {
        let t0 = crate::test_epoch();
        let mut stats = ReceptionStats::new(5, 65_530, t0);
        // 20 packets across the wrap, every 20 ms, two lost (65_534 and 3).
        for k in 0..20u16 {
            let seq = 65_530u16.wrapping_add(k);
            if seq == 65_534 || seq == 3 {
                continue;
            }
            let at = t0 + Duration::from_millis(20 * u64::from(k));
            stats.on_packet(at, seq, 1000 + 160 * u32::from(k));
        }
        assert_eq!(stats.highest_sequence(), 0x0001_0000 + 13);
        assert_eq!(stats.expected(), 20);
        assert_eq!(stats.cumulative_lost(), 2);
        assert_eq!(stats.jitter_ms(), 0.0, "perfectly paced");
        let block = stats.report_block(t0 + Duration::from_secs(1));
        assert_eq!(block.fraction_lost, (2 * 256 / 20) as u8);
        assert_eq!(block.cumulative_lost, 2);
        assert_eq!((block.last_sr, block.delay_since_last_sr), (0, 0));
        // The next interval starts clean.
        assert_eq!(stats.report_block(t0 + Duration::from_secs(2)).fraction_lost, 0);

        // Packets arriving 10 ms early/late alternately make jitter grow towards ~10 ms.
        let mut jittery = ReceptionStats::new(6, 0, t0);
        for k in 0..400u32 {
            let wobble = if k % 2 == 0 { 0 } else { 10 };
            let at = t0 + Duration::from_millis(u64::from(20 * k + wobble));
            jittery.on_packet(at, k as u16, 160 * k);
        }
        let j = jittery.jitter_ms();
        assert!((8.0..=10.5).contains(&j), "jitter {j} ms");
    }

    #[test]
    fn lsr_dlsr_give_the_round_trip_time() {
        let t0 = crate::test_epoch();
        let sr_sent = ntp_timestamp(Duration::from_secs(1_800_000_000));
        // The peer got our SR, held it 250 ms, and its RR reaches us 400 ms after we sent the SR.
        let mut peer = ReceptionStats::new(1, 0, t0);
        peer.on_packet(t0, 0, 0);
        peer.on_sender_report(t0, sr_sent);
        let block = peer.report_block(t0 + Duration::from_millis(250));
        let arrived = ntp_timestamp(Duration::from_millis(1_800_000_000_400));
        let rtt = round_trip_time(&block, arrived).unwrap();
        assert!((149..=151).contains(&rtt.as_millis()), "{rtt:?}");
        let no_sr = ReportBlock::default();
        assert_eq!(round_trip_time(&no_sr, arrived), None);
    }
}
