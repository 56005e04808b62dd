//! The first real call: a SIPp trunk caller reaches a SIPp agent that registered with digest, with
//! audio both ways checked by the in-repo RTP tool, on a daemon started in-process on loopback.
//! The caller sends a 440 Hz tone (µ-law), the agent a 1000 Hz tone (A-law, so the bridge
//! transcodes); the welcome prompt is a 600 Hz tone and the hold music 300 Hz, so the test can tell
//! what the caller hears when. A second agent is a real softphone: baresip (Debian `baresip-core`),
//! registered with digest and answering automatically, whose `sndfile` dump proves what it heard.

mod support;

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use support::daemon::{TestDaemon, test_config_text};
use support::prompts::write_tone;
use support::rtp_tool::{Recording, RtpTool, Tone, first_source, goertzel_ratio};
use support::sipp::{SippRun, run, scenario};
use tongdai::media::g711::Codec;

const CALLER_HZ: f64 = 440.0;
const AGENT_HZ: f64 = 1000.0;
const WELCOME_HZ: f64 = 600.0;
const HOLD_HZ: f64 = 300.0;

/// Writes a prompt folder with a 0.6 s welcome tone and a 2 s hold-music tone, so calls reach the
/// queue quickly and the test can recognise each.
fn tone_prompts(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tongdai-first-call-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, hz, secs) in [("welcome.wav", WELCOME_HZ, 0.6), ("hold-music.wav", HOLD_HZ, 2.0)] {
        write_tone(&dir.join(file), hz, secs);
    }
    dir
}

fn daemon(name: &str) -> (TestDaemon, PathBuf) {
    let prompts = tone_prompts(name);
    // SHA-256 stays first: SIPp ("User-Agent: SIPp agent") is offered MD5 alone by
    // `md5_only_user_agents`.
    let text = test_config_text().replace(
        "prompts = \"prompts\"",
        &format!("prompts = {:?}", prompts.display().to_string()),
    );
    (TestDaemon::with_config(&text), prompts)
}

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

/// Starts a SIPp agent `op1` that registers, stays `stay_ms`, and answers with `answer` (an
/// out-of-call scenario) using `rtp_port`.
fn agent(d: &TestDaemon, answer: &str, rtp_port: u16, stay_ms: u64) -> JoinHandle<SippRun> {
    let rtp = rtp_port.to_string();
    support::sipp::agent_with(d.sip_udp(), "op1", answer, stay_ms, &[("rtp_port", &rtp)])
}

fn wait_registered(d: &TestDaemon) {
    for _ in 0..200 {
        if d.metric("tongdai_registrations") >= 1.0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the SIPp agent never registered:\n{}", d.metrics());
}

fn caller(d: &TestDaemon, scenario_file: &str, rtp_port: u16, talk_ms: u64) -> JoinHandle<SippRun> {
    let target = d.sip_udp();
    let file = sf(scenario_file);
    std::thread::spawn(move || {
        run(
            target,
            &[
                "-sf",
                &file,
                "-key",
                "rtp_port",
                &rtp_port.to_string(),
                "-d",
                &talk_ms.to_string(),
                "-m",
                "1",
            ],
            Duration::from_secs(30),
        )
    })
}

/// Talks on both legs and returns (what the caller heard, what the agent heard).
async fn talk_both_ways(caller: &RtpTool, agent: &RtpTool) -> (Recording, Recording) {
    let mut tone = Tone::new(AGENT_HZ, Codec::Pcma, 0x2222);
    tone.payload_type = 8;
    let caller_tone = Tone::new(CALLER_HZ, Codec::Pcmu, 0x1111);
    support::rtp_tool::talk_both_ways(caller, caller_tone, agent, tone).await
}

fn assert_audio(caller_heard: &Recording, agent_heard: &Recording) {
    // The caller first heard the welcome prompt, then (on the same stream) the agent.
    let start = caller_heard.window(0, 1600);
    assert!(start.contains_tone(WELCOME_HZ), "caller did not hear the welcome prompt first");
    assert!(caller_heard.contains_tone(AGENT_HZ), "caller never heard the agent's tone");
    assert_eq!(
        caller_heard.ssrc_changes(),
        0,
        "the caller's stream keeps one SSRC from prompt to agent"
    );
    assert!(caller_heard.rate_pps() > 40.0, "caller got {} packets/s", caller_heard.rate_pps());
    // The agent heard the caller (transcoded from µ-law to the agent's A-law).
    assert!(agent_heard.contains_tone(CALLER_HZ), "agent never heard the caller's tone");
    assert!(agent_heard.packets.iter().all(|p| p.payload_type == 8 || p.payload_type == 101));
}

#[test]
fn caller_hangs_up_and_the_agent_gets_bye_with_audio_both_ways() {
    let _serial = support::serial();
    let (d, prompts) = daemon("caller-bye");
    let answered_before = d.metric("tongdai_calls_answered_total");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (agent_rtp, agent_addr) = rt.block_on(RtpTool::bind());
    let agent_run = agent(&d, "agent-answer.xml", agent_addr.port(), 18_000);
    wait_registered(&d);
    let caller_run = caller(&d, "trunk-caller.xml", caller_addr.port(), 11_000);
    let (caller_heard, agent_heard) = rt.block_on(talk_both_ways(&caller_rtp, &agent_rtp));
    caller_run.join().unwrap().assert_ok();
    // The agent scenario passes only if the caller's hang-up reached it as BYE.
    let agent_result = agent_run.join().unwrap();
    agent_result.assert_ok();
    assert_audio(&caller_heard, &agent_heard);
    assert_eq!(d.metric("tongdai_calls_answered_total") - answered_before, 1.0);
    // The agent leg carries the trunk INVITE's Max-Forwards (70) minus one: no loops.
    let invite = agent_result.messages.split("INVITE sip:").nth(1).unwrap_or("");
    assert!(invite.contains("Max-Forwards: 69"), "{invite}");
    std::fs::remove_dir_all(prompts).unwrap();
}

#[test]
fn agent_hangs_up_and_the_caller_gets_bye_with_audio_both_ways() {
    let _serial = support::serial();
    let (d, prompts) = daemon("agent-bye");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (agent_rtp, agent_addr) = rt.block_on(RtpTool::bind());
    let agent_run = agent(&d, "agent-hangup.xml", agent_addr.port(), 18_000);
    wait_registered(&d);
    let caller_run = caller(&d, "trunk-caller-waits.xml", caller_addr.port(), 0);
    let (caller_heard, agent_heard) = rt.block_on(talk_both_ways(&caller_rtp, &agent_rtp));
    // The caller scenario passes only if tongdai sent it BYE after the agent's.
    agent_run.join().unwrap().assert_ok();
    caller_run.join().unwrap().assert_ok();
    assert_audio(&caller_heard, &agent_heard);
    std::fs::remove_dir_all(prompts).unwrap();
}

#[test]
fn caller_hanging_up_while_the_agent_rings_cancels_the_agent_leg() {
    let _serial = support::serial();
    let (d, prompts) = daemon("cancel");
    let abandoned = "tongdai_calls_abandoned_total{phase=\"ringing\"}";
    let abandoned_before = d.metric(abandoned);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let agent_run = agent(&d, "agent-ring-cancelled.xml", 9, 6_000);
    wait_registered(&d);
    // Welcome 0.6 s, then the agent rings; the caller hangs up at 2 s.
    let caller_run = caller(&d, "trunk-caller.xml", caller_addr.port(), 2_000);
    caller_run.join().unwrap().assert_ok();
    // The agent scenario passes only if it received CANCEL (and the ACK for its 487).
    agent_run.join().unwrap().assert_ok();
    drop(caller_rtp);
    // Nobody is left busy: the agent is available again, no line is held.
    assert_eq!(d.metric("tongdai_lines_busy"), 0.0);
    assert_eq!(d.metric(abandoned) - abandoned_before, 1.0);
    assert_eq!(d.metric("tongdai_agents{state=\"available\"}"), 1.0, "{}", d.metrics());
    std::fs::remove_dir_all(prompts).unwrap();
}

#[test]
fn a_real_softphone_answers_and_hears_the_caller() {
    let _serial = support::serial();
    let (d, prompts) = daemon("baresip");
    let phone_dir = prompts.join("baresip");
    std::fs::create_dir_all(&phone_dir).unwrap();
    let phone = support::baresip::start(&phone_dir, d.sip_udp(), "op2", AGENT_HZ, None);
    wait_registered(&d);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let caller_run = caller(&d, "trunk-caller.xml", caller_addr.port(), 10_000);
    let heard = rt.block_on(async {
        let first = caller_rtp.wait_for(20, Duration::from_secs(10)).await;
        caller_rtp.spawn_tone(first_source(&first), Tone::new(CALLER_HZ, Codec::Pcmu, 0x3333), 300);
        tokio::time::sleep(Duration::from_secs(5)).await;
        caller_rtp.recording()
    });
    caller_run.join().unwrap().assert_ok();
    // baresip's own tone reached the caller, after the welcome prompt.
    assert!(heard.contains_tone(AGENT_HZ), "the caller never heard baresip's tone");
    drop(phone);
    let samples = support::baresip::heard(&phone_dir);
    assert!(samples.len() > 8000, "baresip heard {} samples", samples.len());
    let ratio = goertzel_ratio(&samples, CALLER_HZ);
    assert!(ratio > 0.3, "baresip's dump holds little of the caller's tone (ratio {ratio:.3})");
    let log = std::fs::read_to_string(phone_dir.join("baresip.log")).unwrap_or_default();
    assert!(log.contains("Call established"), "{log}");
    std::fs::remove_dir_all(prompts).unwrap();
}

#[test]
fn an_agent_ringing_reliably_gets_prack_and_the_call_completes() {
    let _serial = support::serial();
    let (d, prompts) = daemon("prack");
    let answered_before = d.metric("tongdai_calls_answered_total");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (_agent_rtp, agent_addr) = rt.block_on(RtpTool::bind());
    let agent_run = agent(&d, "agent-answer-100rel.xml", agent_addr.port(), 10_000);
    wait_registered(&d);
    let caller_run = caller(&d, "trunk-caller.xml", caller_addr.port(), 5_000);
    caller_run.join().unwrap().assert_ok();
    // The agent scenario passes only if the daemon PRACKed its 180 (RAck 1 1 INVITE), ACKed its
    // 200 and passed the caller's hang-up on as BYE.
    let agent_result = agent_run.join().unwrap();
    agent_result.assert_ok();
    let trace = &agent_result.messages;
    assert!(trace.contains("Supported: 100rel"), "our INVITE lacks Supported: 100rel:\n{trace}");
    // One PRACK transaction for the one reliable 180, though SIPp retransmitted the 180 until the
    // PRACK came (copies of the PRACK itself, on a slow machine, share its branch).
    let branches: Vec<&str> = trace
        .split("PRACK sip:")
        .skip(1)
        .filter_map(|m| m.split("branch=").nth(1))
        .filter_map(|b| b.split([';', '\r', '\n', ' ']).next())
        .collect();
    assert!(!branches.is_empty(), "no PRACK:\n{trace}");
    assert!(branches.iter().all(|b| *b == branches[0]), "PRACKed twice:\n{trace}");
    assert!(trace.contains("RAck: 1 1 INVITE"), "{trace}");
    assert_eq!(d.metric("tongdai_calls_answered_total") - answered_before, 1.0);
    std::fs::remove_dir_all(prompts).unwrap();
}
