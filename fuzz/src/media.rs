//! The RTP fuzz target's properties, as a plain function so that `cargo test` replays the
//! committed corpus (`tests/media_rtp_fuzz.rs` includes this file) without a fuzzer.
//!
//! One datagram goes through everything a media port does with what it receives: the RFC 7983
//! demux, a leg's receiver (latch, RTP parse, payload type, RFC 4733), the relay (µ-law↔A-law and
//! payload type rewriting) and the RTCP parser. Nothing may panic, a parsed packet's parts must
//! lie inside the datagram, and a relayed packet must parse again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tongdai::media::g711::Codec;
use tongdai::media::leg::{Inbound, LegReceiver};
use tongdai::media::pacing::RtpSender;
use tongdai::media::relay::{LegFormat, Relay};
use tongdai::media::rtcp::parse_compound;
use tongdai::media::rtp::RtpPacket;

/// The RTP target: `data` is one datagram on a leg's RTP port.
pub fn rtp(data: &[u8]) {
    if let Ok(p) = RtpPacket::parse(data) {
        let inside = |s: &[u8]| {
            let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
            s.is_empty() || (s.as_ptr() as usize >= start && s.as_ptr() as usize + s.len() <= end)
        };
        assert!(inside(p.payload) && inside(p.csrc));
        assert!(p.payload.len() + 12 <= data.len());
    }
    let _ = parse_compound(data);
    let t0 = Instant::now();
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let mut leg = LegReceiver::new(Some(peer), LegFormat::static_codec(Codec::Pcma, Some(101)));
    leg.start_watchdog(Duration::from_secs(120), t0);
    let to = LegFormat { codec: Codec::Pcmu, payload_type: 0, telephone_event: Some(96) };
    let mut relay = Relay::new(leg.format(), to, RtpSender::new(1, 2, 3));
    let mut out = Vec::new();
    for k in 0..2u32 {
        let now = t0 + Duration::from_millis(20 * u64::from(k));
        if let Inbound::Rtp { packet, .. } = leg.on_rtp(now, peer, data)
            && relay.relay(now, &packet, &mut out).is_ok()
        {
            let again = RtpPacket::parse(&out).expect("a relayed packet parses");
            assert!(again.payload_type == 0 || again.payload_type == 96);
        }
    }
    let _ = leg.on_rtcp(t0, peer, data);
}
