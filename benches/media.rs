//! Media hot paths: transcoding one 20 ms G.711 frame, one relay step (parse, rewrite, transcode),
//! one received datagram through a leg's receiver and the relay (demux, latch, parse, payload
//! type, watchdog, reception statistics, rewrite), one paced playout frame, and one 20 ms tick of
//! a three-leg mixer (decode three frames, sum per leg, encode three frames).
//! Run: `cargo bench --bench media`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tongdai::media::g711::{Codec, transcode_in_place, transcode_into};
use tongdai::media::leg::{Inbound, LegReceiver};
use tongdai::media::mix::{AGENT, CALLER, Hearing, Mixer, THIRD};
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

/// What the media task does per received packet of a bridged call, without the socket calls.
fn leg_receive_and_relay(c: &mut Criterion) {
    let caller = LegFormat::static_codec(Codec::Pcma, Some(101));
    let agent = LegFormat::static_codec(Codec::Pcmu, Some(101));
    let peer = "127.0.0.1:40000".parse().unwrap();
    let t0 = Instant::now();
    let mut leg = LegReceiver::new(Some(peer), agent);
    leg.start_watchdog(std::time::Duration::from_secs(120), t0);
    let mut relay = Relay::new(agent, caller, RtpSender::new(1, 0, 0));
    let mut out = Vec::with_capacity(200);
    let mut seq = 0u16;
    let payload = frame();
    let mut datagram = Vec::with_capacity(200);
    c.bench_function("leg_receive_and_relay_transcoding", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let ts = u32::from(seq) * 160;
            let h =
                RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: ts, ssrc: 9 };
            datagram.clear();
            h.write_vec(&payload, &mut datagram);
            let now = t0 + FRAME_DURATION * u32::from(seq);
            if let Inbound::Rtp { packet, .. } = leg.on_rtp(now, peer, black_box(&datagram)) {
                let _ = relay.relay(now, &packet, &mut out);
            }
            black_box(&out);
        })
    });
}

/// What a conference call's media task does every 20 ms, without the socket calls: three legs'
/// payloads decoded, each leg's mix summed and encoded in its law.
fn mix_tick(c: &mut Criterion) {
    let codecs = [Codec::Pcma, Codec::Pcmu, Codec::Pcmu];
    let mut mixer = Mixer::new(&codecs, Hearing::conference(3)).unwrap();
    let payload = frame();
    let mut group = c.benchmark_group("mix");
    group.bench_function("tick_3_legs_conference", |b| {
        b.iter(|| {
            for leg in [CALLER, AGENT, THIRD] {
                mixer.put_payload(leg, codecs[leg], black_box(&payload));
            }
            mixer.tick();
            black_box(mixer.payload(CALLER));
        })
    });
    group.finish();
}

criterion_group!(benches, transcoding, relay_step, leg_receive_and_relay, playout_frame, mix_tick);
criterion_main!(benches);
