//! One call leg's receive side (media protocol layer, sans-IO): every datagram that reaches a leg's
//! RTP or RTCP port goes through [`LegReceiver`], which says what it is — an RTP packet for the
//! relay (with the key press it starts, if any), RTCP to terminate, or a drop with its metric
//! reason — and keeps the leg's dead-leg watchdog, reception statistics and report schedule.
//!
//! Order of checks on the RTP port: RFC 7983 demux (STUN, DTLS and unknown first bytes are dropped;
//! RTCP multiplexed on the RTP port is terminated, never counted as bad RTP), then the source latch
//! (no RTP bleed), then the RTP header, then the payload type against what the leg negotiated. A
//! packet never ends anything but its own processing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dtmf::{DtmfDetector, TelephoneEvent};
use super::liveness::RtpWatchdog;
use super::pacing::RtpSender;
use super::relay::{LegFormat, SourceLatch};
use super::rtcp::{ReceptionStats, RtcpPacket, SenderInfo, parse_compound, write_report};
use super::rtp::{PacketKind, RtpPacket, classify};

/// RFC 3550 §6.2: the minimum interval between our reports on a leg.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Packets from one source before a leg's latch closes on it (symmetric RTP learning).
pub const LATCH_LEARN_PACKETS: u32 = 3;

/// What a datagram on a leg's RTP port turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// RTP from the leg's peer in a negotiated payload type.
    Rtp {
        /// The packet.
        packet: RtpPacket<'a>,
        /// The key this telephone-event packet starts (once per press).
        key: Option<char>,
    },
    /// RTCP multiplexed on the RTP port (RFC 5761): terminated here.
    Rtcp,
    /// Dropped; the `tongdai_rtp_dropped_packets_total` reason.
    Dropped(&'static str),
}

/// The receive side of one leg.
#[derive(Debug, Clone)]
pub struct LegReceiver {
    latch: SourceLatch,
    signalled: Option<SocketAddr>,
    format: LegFormat,
    watchdog: Option<RtpWatchdog>,
    on_hold: bool,
    reception: Option<ReceptionStats>,
    dtmf: DtmfDetector,
    next_report: Option<Instant>,
    packets_at_last_report: u64,
}

impl LegReceiver {
    /// A leg whose SDP gave `signalled` (None: unknown yet, or on hold) and `format`.
    pub fn new(signalled: Option<SocketAddr>, format: LegFormat) -> LegReceiver {
        LegReceiver {
            latch: SourceLatch::new(signalled, LATCH_LEARN_PACKETS),
            signalled,
            format,
            watchdog: None,
            on_hold: false,
            reception: None,
            dtmf: DtmfDetector::new(),
            next_report: None,
            packets_at_last_report: 0,
        }
    }

    /// Starts the dead-leg watchdog (at answer): the peer has `timeout` to send anything. Also
    /// starts the RTCP report schedule.
    pub fn start_watchdog(&mut self, timeout: Duration, now: Instant) {
        let mut w = RtpWatchdog::new(timeout, now);
        w.set_on_hold(self.on_hold, now);
        self.watchdog = Some(w);
        self.next_report.get_or_insert(now + REPORT_INTERVAL);
    }

    /// The leg's negotiated format.
    pub fn format(&self) -> LegFormat {
        self.format
    }

    /// Where this leg's RTP goes: the latched source, else the SDP address.
    pub fn send_to(&self) -> Option<SocketAddr> {
        self.latch.send_to()
    }

    /// The peer's answer (or a re-offer) gave `remote` and `format`. A new address reopens the
    /// latch; the same address keeps it closed, so a re-INVITE cannot open a window for strangers.
    pub fn answered(&mut self, remote: Option<SocketAddr>, format: LegFormat) {
        self.format = format;
        if remote.is_some() && remote != self.signalled {
            self.signalled = remote;
            self.latch.relearn(remote);
        }
    }

    /// A re-INVITE/UPDATE: the peer moved to `remote` (media re-pointed) and is on hold or not.
    /// On hold the watchdog sleeps; resuming restarts its clock at `now`.
    pub fn update(&mut self, remote: Option<SocketAddr>, on_hold: bool, now: Instant) {
        if remote.is_some() && remote != self.signalled {
            self.signalled = remote;
            self.latch.relearn(remote);
        }
        self.on_hold = on_hold;
        if let Some(w) = self.watchdog.as_mut() {
            w.set_on_hold(on_hold, now);
        }
    }

    /// True while the leg is on hold.
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// A datagram from `from` on the leg's RTP port at `now`.
    pub fn on_rtp<'a>(&mut self, now: Instant, from: SocketAddr, buf: &'a [u8]) -> Inbound<'a> {
        match classify(buf) {
            PacketKind::Rtp => {}
            PacketKind::Rtcp => {
                return match self.on_rtcp(now, from, buf) {
                    Ok(()) => Inbound::Rtcp,
                    Err(reason) => Inbound::Dropped(reason),
                };
            }
            PacketKind::Stun => return Inbound::Dropped("stun"),
            PacketKind::Dtls => return Inbound::Dropped("dtls"),
            PacketKind::Unknown => {
                // Under two bytes with RTP's version: a truncated header. A first byte past the
                // STUN/DTLS ranges with another version: an RTP-like packet of the wrong version.
                let reason = match buf.first() {
                    None => "short",
                    Some(b) if b >> 6 == 2 => "short",
                    Some(b) if *b >= 64 => "version",
                    Some(_) => "unknown",
                };
                return Inbound::Dropped(reason);
            }
        }
        if self.latch.check(from).is_err() {
            return Inbound::Dropped("foreign_source");
        }
        let packet = match RtpPacket::parse(buf) {
            Ok(p) => p,
            Err(e) => return Inbound::Dropped(e.reason()),
        };
        // Anything well-formed from the peer proves the leg alive, even comfort noise.
        if let Some(w) = self.watchdog.as_mut() {
            w.on_packet(now);
        }
        let is_event = Some(packet.payload_type) == self.format.telephone_event;
        if !is_event && self.format.audio_codec(packet.payload_type).is_none() {
            return Inbound::Dropped("unknown_payload_type");
        }
        match self.reception.as_mut() {
            Some(r) if r.ssrc() == packet.ssrc => {}
            _ => self.reception = Some(ReceptionStats::new(packet.ssrc, packet.sequence, now)),
        }
        if let Some(r) = self.reception.as_mut() {
            r.on_packet(now, packet.sequence, packet.timestamp);
        }
        let key = if is_event {
            match TelephoneEvent::parse(packet.payload) {
                Ok(event) => self.dtmf.on_packet(packet.ssrc, packet.timestamp, &event),
                Err(_) => return Inbound::Dropped("malformed_telephone_event"),
            }
        } else {
            None
        };
        Inbound::Rtp { packet, key }
    }

    /// A datagram from `from` on the leg's RTCP port (or multiplexed) at `now`. Only the peer's
    /// host may report (its RTCP port is its own business); the reports keep the leg alive.
    pub fn on_rtcp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
    ) -> Result<(), &'static str> {
        if let Some(latched) = self.latch.latched()
            && latched.ip() != from.ip()
        {
            return Err("foreign_source");
        }
        let packets = parse_compound(buf).map_err(|_| "rtcp_malformed")?;
        if let Some(w) = self.watchdog.as_mut() {
            w.on_packet(now);
        }
        for p in packets {
            if let (RtcpPacket::SenderReport { info, .. }, Some(r)) = (p, self.reception.as_mut()) {
                r.on_sender_report(now, info.ntp_timestamp);
            }
        }
        Ok(())
    }

    /// When [`Self::poll_dead`] or [`Self::poll_report`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dead = self.watchdog.as_ref().and_then(RtpWatchdog::poll_timeout);
        [dead, self.next_report].into_iter().flatten().min()
    }

    /// True once, when the leg is found dead at `now`; the watchdog is then disarmed.
    pub fn poll_dead(&mut self, now: Instant) -> bool {
        if self.watchdog.as_ref().is_some_and(|w| w.is_dead(now)) {
            self.watchdog = None;
            return true;
        }
        false
    }

    /// Our report for this leg when one is due at `now` (`ntp` is `now` on the wall clock):
    /// written into `out`, returns where it goes (the peer's RTP port + 1). An SR when `sender`
    /// (our stream to the leg) sent media since the last report, else an RR.
    pub fn poll_report(
        &mut self,
        now: Instant,
        ntp: u64,
        sender: &RtpSender,
        out: &mut Vec<u8>,
    ) -> Option<SocketAddr> {
        let due = self.next_report?;
        if now < due {
            return None;
        }
        self.next_report = Some(now + REPORT_INTERVAL);
        let mut to = self.latch.send_to()?;
        to.set_port(to.port().checked_add(1)?);
        let sent = sender.packets_sent() > self.packets_at_last_report;
        self.packets_at_last_report = sender.packets_sent();
        let info = sent.then(|| SenderInfo::for_stream(sender, now, ntp));
        let block = self.reception.as_mut().map(|r| r.report_block(now));
        write_report(out, sender.ssrc(), info, block, "tongdai");
        Some(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Codec;
    use crate::media::rtcp::{PT_RR, PT_SR};
    use crate::media::rtp::RtpHeader;

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        RtpHeader { marker: false, payload_type: pt, sequence: seq, timestamp: ts, ssrc: 7 }
            .to_packet(payload)
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[test]
    fn bad_input_is_dropped_by_reason() {
        let t0 = crate::test_epoch();
        let mut leg =
            LegReceiver::new(Some(peer()), LegFormat::static_codec(Codec::Pcmu, Some(101)));
        let stranger: SocketAddr = "127.0.0.1:40002".parse().unwrap();
        let good = rtp(0, 1, 160, &[0xFF; 160]);
        assert!(matches!(leg.on_rtp(t0, peer(), &good), Inbound::Rtp { key: None, .. }));
        let cases: Vec<(Vec<u8>, SocketAddr, &str)> = vec![
            (vec![0x80; 5], peer(), "short"),
            (vec![0x80], peer(), "short"),
            (vec![0x00, 0x01, 0, 0], peer(), "stun"),
            (vec![22, 254, 253, 0], peer(), "dtls"),
            (vec![0x40; 20], peer(), "version"),
            (vec![0xC0; 20], peer(), "version"),
            (vec![0x10; 20], peer(), "unknown"),
            (good.clone(), stranger, "foreign_source"),
            (
                {
                    let mut p = good.clone();
                    p[0] |= 0x0F;
                    p.truncate(20);
                    p
                },
                peer(),
                "csrc_overflow",
            ),
            (
                {
                    let mut p = good.clone();
                    p[0] |= 0x10;
                    p.truncate(14);
                    p
                },
                peer(),
                "extension_overflow",
            ),
            (
                {
                    let mut p = good.clone();
                    p[0] |= 0x20;
                    *p.last_mut().unwrap() = 0;
                    p
                },
                peer(),
                "padding",
            ),
            (rtp(13, 2, 320, &[0; 1]), peer(), "unknown_payload_type"),
            (rtp(101, 3, 480, &[1, 2]), peer(), "malformed_telephone_event"),
            (vec![0x80, 201, 0, 9], peer(), "rtcp_malformed"),
        ];
        for (buf, from, reason) in cases {
            assert_eq!(leg.on_rtp(t0, from, &buf), Inbound::Dropped(reason), "{reason}");
        }
        // The leg still works after all of it.
        assert!(matches!(
            leg.on_rtp(t0, peer(), &rtp(8, 4, 640, &[0xD5; 160])),
            Inbound::Rtp { .. }
        ));
    }

    #[test]
    fn a_key_press_is_reported_once() {
        let t0 = crate::test_epoch();
        let mut leg = LegReceiver::new(None, LegFormat::static_codec(Codec::Pcma, Some(96)));
        let mut keys = Vec::new();
        // RFC 4733: the event repeats with one timestamp; the end packet comes three times.
        for (seq, flags) in [(1u16, 10u8), (2, 10), (3, 10), (4, 0x8A), (5, 0x8A), (6, 0x8A)] {
            let buf = rtp(96, seq, 8000, &[1, flags, 0, 160]);
            match leg.on_rtp(t0, peer(), &buf) {
                Inbound::Rtp { key: Some(k), .. } => keys.push(k),
                Inbound::Rtp { key: None, .. } => {}
                other => panic!("{other:?}"),
            }
        }
        let again = rtp(96, 7, 16000, &[1, 0x8A, 0, 160]);
        if let Inbound::Rtp { key: Some(k), .. } = leg.on_rtp(t0, peer(), &again) {
            keys.push(k);
        }
        assert_eq!(keys, vec!['1', '1']);
    }

    #[test]
    fn dead_without_packets_never_on_hold_and_reports_keep_it_alive() {
        let t0 = crate::test_epoch();
        let s = Duration::from_secs(1);
        let mut leg = LegReceiver::new(Some(peer()), LegFormat::static_codec(Codec::Pcmu, None));
        assert!(!leg.poll_dead(t0 + s * 1000), "no watchdog before the answer");
        leg.start_watchdog(s * 30, t0);
        assert!(!leg.poll_dead(t0 + s * 29));
        // RTCP alone keeps a silent (VAD) leg alive.
        let mut rr = Vec::new();
        write_report(&mut rr, 9, None, None, "peer");
        let rtcp_from = SocketAddr::new(peer().ip(), 40001);
        assert_eq!(leg.on_rtcp(t0 + s * 20, rtcp_from, &rr), Ok(()));
        assert!(!leg.poll_dead(t0 + s * 49));
        // On hold: no timer at all, however long.
        leg.update(Some(peer()), true, t0 + s * 40);
        assert!(leg.poll_timeout().is_none_or(|t| t <= t0 + s * 45));
        assert!(!leg.poll_dead(t0 + s * 10_000));
        // Resumed at a new address: the clock restarts, the latch moves.
        let moved: SocketAddr = "127.0.0.1:40100".parse().unwrap();
        leg.update(Some(moved), false, t0 + s * 10_000);
        assert_eq!(leg.send_to(), Some(moved));
        assert!(!leg.poll_dead(t0 + s * 10_029));
        assert!(leg.poll_dead(t0 + s * 10_030));
        assert!(!leg.poll_dead(t0 + s * 10_031), "reported once");
    }

    #[test]
    fn reports_every_interval_sr_only_after_sending() {
        let t0 = crate::test_epoch();
        let mut leg = LegReceiver::new(Some(peer()), LegFormat::static_codec(Codec::Pcmu, None));
        leg.start_watchdog(Duration::from_secs(120), t0);
        let _ = leg.on_rtp(t0, peer(), &rtp(0, 1, 160, &[0xFF; 160]));
        let mut sender = RtpSender::new(0xABCD, 1, 0);
        let mut out = Vec::new();
        assert_eq!(leg.poll_report(t0, 0, &sender, &mut out), None);
        let to = leg.poll_report(t0 + REPORT_INTERVAL, 0, &sender, &mut out).unwrap();
        assert_eq!(to.port(), 40001);
        assert_eq!(out[1], PT_RR);
        let h = RtpHeader { marker: false, payload_type: 0, sequence: 1, timestamp: 0, ssrc: 0 };
        sender.record(t0 + REPORT_INTERVAL, h, 160, 160);
        let t = t0 + REPORT_INTERVAL * 2;
        assert!(leg.poll_report(t, 0, &sender, &mut out).is_some());
        assert_eq!(out[1], PT_SR);
        match &parse_compound(&out).unwrap()[0] {
            RtcpPacket::SenderReport { ssrc, reports, .. } => {
                assert_eq!(*ssrc, 0xABCD);
                assert_eq!(reports[0].ssrc, 7);
            }
            other => panic!("{other:?}"),
        }
    }
}
