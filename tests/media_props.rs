//! Property tests for the media wire formats: nothing the network sends can panic a parser, and
//! what we write parses back to what we meant.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tongdai::media::dtmf::TelephoneEvent;
use tongdai::media::g711::{ALAW_TO_ULAW, Codec, ULAW_TO_ALAW};
use tongdai::media::pacing::RtpSender;
use tongdai::media::relay::{LegFormat, Relay};
use tongdai::media::rtp::{RtpHeader, RtpPacket, classify};
use tongdai::sip::sdp::{SessionDescription, answer};

const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 10126 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\na=ptime:20\r\n";

proptest! {
    #[test]
    fn rtp_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = classify(&bytes);
        if let Ok(p) = RtpPacket::parse(&bytes) {
            prop_assert!(p.payload.len() + 12 <= bytes.len());
            prop_assert_eq!(p.csrcs().count(), p.csrc_count());
        }
        let _ = TelephoneEvent::parse(&bytes);
        let _ = tongdai::media::rtcp::parse_compound(&bytes);
    }

    #[test]
    fn rtp_header_round_trips(
        marker: bool, pt in 0u8..128, sequence: u16, timestamp: u32, ssrc: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let header = RtpHeader { marker, payload_type: pt, sequence, timestamp, ssrc };
        let bytes = header.to_packet(&payload);
        let parsed = RtpPacket::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.header(), header);
        prop_assert_eq!(parsed.payload, &payload[..]);
    }

    #[test]
    fn sdp_parse_never_panics(text in "\\PC{0,400}") {
        let _ = SessionDescription::parse(&text);
    }

    #[test]
    fn mutated_offers_never_panic_the_answerer(
        cut in 0usize..BARESIP.len(),
        junk in "[ -~\r\n]{0,40}",
    ) {
        let mut text = BARESIP[..cut].to_owned();
        text.push_str(&junk);
        text.push_str(&BARESIP[cut..]);
        let ours = [Codec::Pcmu, Codec::Pcma];
        if let Ok(offer) = SessionDescription::parse(&text)
            && let Ok(a) = answer(&offer, &ours, "10.0.0.1".parse().unwrap(), 4000)
        {
            // Whatever we answer, we can read back.
            prop_assert!(SessionDescription::parse(&a.sdp.to_string()).is_ok());
        }
    }

    #[test]
    fn relayed_packets_always_parse(
        packets in proptest::collection::vec(
            (0u8..2, any::<u16>(), any::<u32>(), 0u32..3, 0usize..200),
            1..40,
        ),
    ) {
        let t0 = Instant::now();
        let from = LegFormat::static_codec(Codec::Pcmu, Some(101));
        let to = LegFormat::static_codec(Codec::Pcma, Some(96));
        let mut relay = Relay::new(from, to, RtpSender::new(7, 0, 0));
        let mut out = Vec::new();
        for (i, (kind, seq, ts, ssrc, len)) in packets.into_iter().enumerate() {
            let pt = if kind == 0 { 0 } else { 101 };
            let header = RtpHeader {
                marker: false,
                payload_type: pt,
                sequence: seq,
                timestamp: ts,
                ssrc,
            };
            let bytes = header.to_packet(&vec![0x55; len]);
            let now = t0 + Duration::from_millis(20 * i as u64);
            if relay.relay(now, &RtpPacket::parse(&bytes).unwrap(), &mut out).is_ok() {
                let sent = RtpPacket::parse(&out).unwrap();
                prop_assert_eq!(sent.ssrc, 7);
                prop_assert!(sent.payload_type == 8 || sent.payload_type == 96);
                prop_assert_eq!(sent.payload.len(), len);
            }
        }
    }

}

#[test]
fn transcoding_twice_is_stable() {
    // After one trip through the other law, every code is a fixed point of the round trip.
    for b in 0..=255u8 {
        let u = ALAW_TO_ULAW[usize::from(ULAW_TO_ALAW[usize::from(b)])];
        let again = ALAW_TO_ULAW[usize::from(ULAW_TO_ALAW[usize::from(u)])];
        assert_eq!(u, again, "{b:#04x}");
    }
}
