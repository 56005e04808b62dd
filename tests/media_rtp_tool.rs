//! The RTP test tool against itself on loopback: pacing, counting, tone detection.

mod support;

use std::time::Duration;

use support::rtp_tool::{RtpTool, Tone, goertzel_ratio};
use tongdai::media::g711::Codec;

#[tokio::test]
async fn two_tools_exchange_tones_at_50_pps() {
    let (a, a_addr) = RtpTool::bind().await;
    let (b, b_addr) = RtpTool::bind().await;
    let to_b = a.send_tone(b_addr, Tone::new(440.0, Codec::Pcmu, 0xA), 25);
    let to_a = b.send_tone(a_addr, Tone::new(1000.0, Codec::Pcma, 0xB), 25);
    tokio::join!(to_b, to_a);
    let at_b = b.wait_for(25, Duration::from_secs(2)).await;
    let at_a = a.wait_for(25, Duration::from_secs(2)).await;

    assert_eq!(at_b.packet_count(), 25);
    assert_eq!(at_b.sequence_loss(), 0);
    assert_eq!(at_b.ssrcs(), [0xA]);
    assert_eq!(at_b.samples.len(), 25 * 160);
    assert!(at_b.packets[0].marker && !at_b.packets[1].marker);
    let rate = at_b.rate_pps();
    // A sanity bound only: exact pacing is proven on virtual time in media::pacing; here a
    // loaded CI machine may delay a packet.
    assert!((30.0..=70.0).contains(&rate), "rate {rate}");
    let candidates = [440.0, 1000.0, 2000.0];
    assert_eq!(at_b.dominant_tone(&candidates), Some(440.0));
    assert!(at_b.contains_tone(440.0) && !at_b.contains_tone(1000.0));

    assert_eq!(at_a.packet_count(), 25);
    assert_eq!(at_a.packets[0].payload_type, 8);
    assert_eq!(at_a.dominant_tone(&candidates), Some(1000.0));
    assert_eq!(at_a.packets[0].from, b_addr);
}

#[tokio::test]
async fn loss_ssrc_changes_and_exact_samples_are_seen() {
    let (a, _) = RtpTool::bind().await;
    let (b, b_addr) = RtpTool::bind().await;
    let tone = Tone::new(600.0, Codec::Pcmu, 1);
    a.send_tone(b_addr, tone, 3).await;
    // A second stream with another SSRC; its sequence restarts at 1.
    a.send_tone(b_addr, Tone::new(600.0, Codec::Pcmu, 2), 2).await;
    // A gap: a raw packet with sequence 5 after 2 (3 and 4 lost), then garbage.
    let header = tongdai::media::rtp::RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: 5,
        timestamp: 800,
        ssrc: 2,
    };
    a.send_raw(b_addr, &header.to_packet(&[0xFF; 160])).await;
    a.send_raw(b_addr, b"not rtp").await;
    let rec = b.wait_quiet(Duration::from_millis(50), Duration::from_secs(2)).await;
    assert_eq!(rec.packet_count(), 6);
    assert_eq!(rec.invalid, 1);
    assert_eq!(rec.ssrc_changes(), 1);
    assert_eq!(rec.sequence_loss(), 2);
    let expected: Vec<i16> =
        (0..480).map(|n| Codec::Pcmu.decode(Codec::Pcmu.encode(tone.sample(n)))).collect();
    assert!(rec.matches_samples(&expected));
    assert!(!rec.matches_samples(&[1, 2, 3]));
}

#[test]
fn goertzel_separates_tones() {
    let tone = |hz: f64| -> Vec<i16> {
        (0..1600)
            .map(|n| {
                (8000.0 * (2.0 * std::f64::consts::PI * hz * f64::from(n) / 8000.0).sin()) as i16
            })
            .collect()
    };
    assert!(goertzel_ratio(&tone(440.0), 440.0) > 0.95);
    assert!(goertzel_ratio(&tone(440.0), 1000.0) < 0.01);
    assert_eq!(goertzel_ratio(&[0; 160], 440.0), 0.0);
}

#[tokio::test]
async fn dtmf_press_is_seen_once_and_talking_runs_in_the_background() {
    let (a, a_addr) = RtpTool::bind().await;
    let (b, b_addr) = RtpTool::bind().await;
    let talk = b.spawn_tone(a_addr, Tone::new(440.0, Codec::Pcmu, 0xB), 10);
    a.send_dtmf(b_addr, '1', 101, 0xA, 100, 16_000).await;
    a.send_dtmf(b_addr, '#', 101, 0xA, 107, 17_600).await;
    talk.await.unwrap();
    let at_b = b.wait_for(14, Duration::from_secs(2)).await;
    assert_eq!(at_b.dtmf_digits(101), "1#");
    let events = at_b.telephone_events(101);
    assert_eq!(events.len(), 14);
    assert_eq!(events.iter().filter(|e| e.end).count(), 6);
    assert!(at_b.samples.is_empty(), "events are not audio");
    let at_a = a.wait_for(10, Duration::from_secs(2)).await;
    assert_eq!(at_a.dominant_tone(&[440.0, 1000.0]), Some(440.0));
}
