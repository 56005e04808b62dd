//! The sans-IO media rules driven over real loopback sockets, the way the runtime will drive
//! them: a prompt paced to the caller, then the caller bridged to an agent on another law, a
//! stranger trying to inject audio, and the caller's stream staying one continuous stream.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use support::rtp_tool::{RtpTool, Tone, goertzel_ratio};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tongdai::media::g711::Codec;
use tongdai::media::pacing::{Playlist, Playout, RtpSender};
use tongdai::media::prompt::{Prompt, PromptSet};
use tongdai::media::relay::{LegFormat, Relay, SourceLatch};
use tongdai::media::rtp::{PacketKind, RtpPacket, classify};

const CALLER: LegFormat =
    LegFormat { codec: Codec::Pcma, payload_type: 8, telephone_event: Some(101) };
const AGENT: LegFormat =
    LegFormat { codec: Codec::Pcmu, payload_type: 0, telephone_event: Some(101) };

/// Plays `playout` to `to` in real time until it finishes; returns the sender for what follows.
async fn play(socket: &UdpSocket, to: SocketAddr, mut playout: Playout) -> RtpSender {
    loop {
        let now = Instant::now().into_std();
        while let Some(packet) = playout.poll_transmit(now) {
            socket.send_to(&packet, to).await.unwrap();
        }
        match playout.poll_timeout() {
            Some(due) => tokio::time::sleep_until(Instant::from_std(due)).await,
            None => return playout.into_sender(),
        }
    }
}

/// Relays one direction until the source leg is idle for 300 ms; returns the relay and latch.
async fn relay_direction(
    from_leg: Arc<UdpSocket>,
    to_leg: Arc<UdpSocket>,
    to_peer: SocketAddr,
    mut latch: SourceLatch,
    mut relay: Relay,
) -> (Relay, SourceLatch) {
    let mut buf = [0u8; 1500];
    let mut out = Vec::with_capacity(200);
    while let Ok(Ok((len, from))) =
        tokio::time::timeout(Duration::from_millis(300), from_leg.recv_from(&mut buf)).await
    {
        if latch.check(from).is_err() || classify(&buf[..len]) != PacketKind::Rtp {
            continue;
        }
        let Ok(packet) = RtpPacket::parse(&buf[..len]) else { continue };
        if relay.relay(Instant::now().into_std(), &packet, &mut out).is_ok() {
            to_leg.send_to(&out, to_peer).await.unwrap();
        }
    }
    (relay, latch)
}

#[tokio::test]
async fn prompt_then_bridge_across_laws_without_bleed() {
    let (caller, caller_addr) = RtpTool::bind().await;
    let (agent, agent_addr) = RtpTool::bind().await;
    let (stranger, _) = RtpTool::bind().await;
    let caller_leg = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let agent_leg = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let caller_leg_addr = caller_leg.local_addr().unwrap();
    let agent_leg_addr = agent_leg.local_addr().unwrap();

    // 1. A 0.3 s prompt (a sweep, so any misplaced sample shows) paced to the caller in A-law.
    let sweep: Vec<i16> = (0..2400).map(|n: i32| ((n * n / 7) % 20000 - 10000) as i16).collect();
    let prompt = Prompt::from_samples("welcome", &sweep);
    let playout = Playout::new(
        RtpSender::new(0xCA11, 1000, 77_000),
        CALLER.codec,
        CALLER.payload_type,
        Playlist::new().once(prompt.clone()),
        Instant::now().into_std(),
    );
    let caller_sender = play(&caller_leg, caller_addr, playout).await;
    assert_eq!(caller_sender.packets_sent(), 15);

    // 2. Bridge: the agent's 440 Hz µ-law reaches the caller in A-law on the caller's stream, the
    // caller's 1000 Hz A-law reaches the agent in µ-law; a stranger hits the agent leg meanwhile.
    let to_caller = tokio::spawn(relay_direction(
        agent_leg.clone(),
        caller_leg.clone(),
        caller_addr,
        SourceLatch::new(Some(agent_addr), 3),
        Relay::new(AGENT, CALLER, caller_sender),
    ));
    let to_agent = tokio::spawn(relay_direction(
        caller_leg.clone(),
        agent_leg.clone(),
        agent_addr,
        SourceLatch::new(Some(caller_addr), 3),
        Relay::new(CALLER, AGENT, RtpSender::new(0xA6E7, 5, 0)),
    ));
    let stranger_attack = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stranger.send_tone(agent_leg_addr, Tone::new(2000.0, Codec::Pcmu, 0xBAD), 10).await;
    };
    tokio::join!(
        agent.send_tone(agent_leg_addr, Tone::new(440.0, Codec::Pcmu, 0xA9), 20),
        caller.send_tone(caller_leg_addr, Tone::new(1000.0, Codec::Pcma, 0xC0), 20),
        stranger_attack,
    );
    let (to_caller, agent_latch) = to_caller.await.unwrap();
    let (to_agent, _) = to_agent.await.unwrap();

    let heard = caller.wait_for(35, Duration::from_secs(2)).await;
    assert_eq!(heard.packet_count(), 35, "15 prompt frames + 20 relayed");
    assert_eq!(heard.ssrcs(), [0xCA11], "one stream from hold to bridge");
    assert_eq!(heard.sequence_loss(), 0);
    let seqs: Vec<u16> = heard.packets.iter().map(|p| p.sequence).collect();
    assert_eq!(seqs, (1000..1035).collect::<Vec<u16>>());
    assert!(heard.packets[0].marker && heard.packets[15].marker);
    let ts_step = heard.packets[15].timestamp.wrapping_sub(heard.packets[14].timestamp);
    assert!(ts_step >= 160, "timestamp moves on with the clock: {ts_step}");
    assert!(heard.packets.iter().all(|p| p.payload_type == 8));
    // Sample-exact prompt, then the agent's tone and nothing of the stranger's.
    let expected: Vec<i16> = prompt.pcma.iter().map(|b| Codec::Pcma.decode(*b)).collect();
    assert!(heard.matches_samples(&expected));
    let bridged = &heard.samples[2400..];
    assert!(goertzel_ratio(bridged, 440.0) > 0.9);
    assert!(goertzel_ratio(bridged, 2000.0) < 0.01);
    assert_eq!(agent_latch.stats().rejected, 10);
    assert_eq!(agent_latch.latched(), Some(agent_addr));
    assert_eq!(to_caller.stats().transcoded, 20);

    let agent_heard = agent.wait_for(20, Duration::from_secs(2)).await;
    assert_eq!(agent_heard.packet_count(), 20);
    assert_eq!(agent_heard.ssrcs(), [0xA6E7]);
    assert!(agent_heard.packets.iter().all(|p| p.payload_type == 0));
    assert_eq!(agent_heard.dominant_tone(&[440.0, 1000.0, 2000.0]), Some(1000.0));
    assert_eq!(to_agent.stats().relayed, 20);
}

#[tokio::test]
async fn shipped_prompts_play_sample_exact() {
    let prompts = PromptSet::load_dir(std::path::Path::new("config/prompts")).unwrap();
    let menu = prompts.get("urgent-menu").unwrap().clone();
    // Play the first second only: the test stays short, the shipped file is still proven.
    let head = Prompt::from_samples("head", &decode_pcmu(&menu.pcmu[..8000]));
    let (tool, addr) = RtpTool::bind().await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let playout = Playout::new(
        RtpSender::new(1, 0, 0),
        Codec::Pcmu,
        0,
        Playlist::new().once(head),
        Instant::now().into_std(),
    );
    play(&socket, addr, playout).await;
    let heard = tool.wait_for(50, Duration::from_secs(2)).await;
    assert_eq!(heard.packet_count(), 50);
    assert!(heard.matches_samples(&decode_pcmu(&menu.pcmu[..8000])));
}

fn decode_pcmu(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|b| Codec::Pcmu.decode(*b)).collect()
}
