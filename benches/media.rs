//! Media hot paths: transcoding one 20 ms G.711 frame, one relay step (parse, rewrite, transcode),
//! and one paced playout frame. Run: `cargo bench --bench media`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tongdai::media::g711::{Codec, transcode_in_place, transcode_into};
use tongdai::media::pacing::{FRAME_DURATION, Playlist, Playout, RtpSender};
use tongdai::media::prompt::Prompt;
use tongdai::media::relay::{LegFormat, Relay};
use tongdai::media::rtp::{RtpHeader, RtpPacket};

fn frame() -> Vec<u8> {
    (0..160u32).map(|i| (i * 37 % 256) as u8).collect()
}

fn transcoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("g711");
    group.throughput(Throughput::Bytes(160));
    let input = frame();
    let mut out = Vec::with_capacity(160);
    group.bench_function("transcode_160_ulaw_to_alaw", |b| {
        b.iter(|| {
            out.clear();
            transcode_into(Codec::Pcmu, Codec::Pcma, black_box(&input), &mut out);
            black_box(&out);
        })
    });
    let mut buf = input.clone();
    group.bench_function("transcode_160_in_place", |b| {
        b.iter(|| transcode_in_place(Codec::Pcma, Codec::Pcmu, black_box(&mut buf)))
    });
    group.finish();
}

fn relay_step(c: &mut Criterion) {
    let caller = LegFormat::static_codec(Codec::Pcma, Some(101));
    let agent = LegFormat::static_codec(Codec::Pcmu, Some(101));
    let mut relay = Relay::new(agent, caller, RtpSender::new(1, 0, 0));
    let t0 = Instant::now();
    let mut packet =
        RtpHeader { marker: false, payload_type: 0, sequence: 0, timestamp: 0, ssrc: 9 }
            .to_packet(&frame());
    let mut out = Vec::with_capacity(200);
    let mut k: u16 = 0;
    c.bench_function("relay_step_pcmu_to_pcma", |b| {
        b.iter(|| {
            // A new sequence and timestamp each time, as on the wire.
            k = k.wrapping_add(1);
            packet[2..4].copy_from_slice(&k.to_be_bytes());
            packet[4..8].copy_from_slice(&(u32::from(k) * 160).to_be_bytes());
            let parsed = RtpPacket::parse(black_box(&packet)).unwrap();
            relay.relay(t0, &parsed, &mut out).unwrap();
            black_box(&out);
        })
    });
}

fn playout_frame(c: &mut Criterion) {
    let music = Prompt::from_samples("hold", &vec![1000; 8000 * 24]);
    let t0 = Instant::now();
    let mut playout =
        Playout::new(RtpSender::new(1, 0, 0), Codec::Pcma, 8, Playlist::new().looped(music), t0);
    let mut now = t0;
    c.bench_function("playout_frame", |b| {
        b.iter(|| {
            let packet = playout.poll_transmit(now);
            now += FRAME_DURATION;
            black_box(packet)
        })
    });
}

criterion_group!(benches, transcoding, relay_step, playout_frame);
criterion_main!(benches);
