//! Overflow end to end on loopback: a SIPp trunk caller, nobody on duty, and a SIPp UAS as the
//! national centre (answering tongdai's OPTIONS probes too). The caller hears the "outside hours"
//! prompt, then the centre; the centre hears the caller — audio both ways checked with the in-repo
//! RTP tool. A second run has the centre challenge the INVITE with 407 and take only the retry
//! carrying our Proxy-Authorization.

mod support;

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use support::daemon::{TestDaemon, test_config_text};
use support::prompts::write_tone;
use support::rtp_tool::{RtpTool, Tone, talk_both_ways};
use support::sipp::{SippRun, free_port, run, run_on, scenario};
use tongdai::media::g711::Codec;

const CALLER_HZ: f64 = 440.0;
const NATIONAL_HZ: f64 = 1000.0;
const WELCOME_HZ: f64 = 600.0;
const HOLD_HZ: f64 = 300.0;
const OUTSIDE_HOURS_HZ: f64 = 800.0;

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

/// Prompts: welcome 600 Hz, hold 300 Hz, "outside hours" 800 Hz (1 s).
fn prompts(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tongdai-overflow-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        ("welcome.wav", WELCOME_HZ, 0.6),
        ("hold-music.wav", HOLD_HZ, 2.0),
        ("outside-hours.wav", OUTSIDE_HOURS_HZ, 1.0),
    ];
    for (file, hz, secs) in files {
        write_tone(&dir.join(file), hz, secs);
    }
    dir
}

/// A daemon whose one overflow target is 127.0.0.1:`port` (with `credentials` lines).
fn daemon(name: &str, port: u16, credentials: &str) -> (TestDaemon, PathBuf) {
    let dir = prompts(name);
    let mut text = test_config_text()
        .replace("prompts = \"prompts\"", &format!("prompts = {:?}", dir.display().to_string()));
    text.push_str(&format!(
        "\n[overflow]\nprobe_interval = \"1s\"\n\n[[overflow.targets]]\nname = \"national\"\n\
         uri = \"sip:111@127.0.0.1:{port}\"\n{credentials}"
    ));
    (TestDaemon::with_config(&text), dir)
}

/// SIPp as the national centre on `port`, answering probes and taking one call with
/// `scenario_file`.
fn national(d: &TestDaemon, port: u16, scenario_file: &str, rtp_port: u16) -> JoinHandle<SippRun> {
    let (target, file) = (d.sip_udp(), sf(scenario_file));
    std::thread::spawn(move || {
        // No `-m`: each health probe counts as a call; the scenario stops SIPp after the call.
        let rtp = rtp_port.to_string();
        let args = ["-sf", &file, "-key", "rtp_port", &rtp];
        run_on(port, target, &args, Duration::from_secs(40))
    })
}

fn caller(d: &TestDaemon, rtp_port: u16, talk_ms: u64) -> JoinHandle<SippRun> {
    let (target, file) = (d.sip_udp(), sf("trunk-caller.xml"));
    std::thread::spawn(move || {
        let (rtp, talk) = (rtp_port.to_string(), talk_ms.to_string());
        let args = ["-sf", &file, "-key", "rtp_port", &rtp, "-d", &talk, "-m", "1"];
        run(target, &args, Duration::from_secs(40))
    })
}

/// One overflowed call with audio both ways; the centre's scenario is `scenario_file`.
fn overflowed_call(name: &str, scenario_file: &str, credentials: &str) {
    let _serial = support::serial();
    let port = free_port();
    let (d, dir) = daemon(name, port, credentials);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (national_rtp, national_addr) = rt.block_on(RtpTool::bind());
    // Metrics are process-wide: the tests of this file count from their own start.
    let overflowed = "tongdai_calls_overflowed_total{reason=\"no_agents\"}";
    let before = d.metric(overflowed);
    let centre = national(&d, port, scenario_file, national_addr.port());
    // The target is up from the start (and its probes are answered).
    assert_eq!(d.wait_metric("tongdai_overflow_target_up{target=\"national\"}", 1.0), 1.0);
    let board = d.get("/api/v1/board");
    assert!(
        board.contains(&format!(
            "{{\"name\":\"national\",\"uri\":\"sip:111@127.0.0.1:{port}\",\"up\":true}}"
        )),
        "{board}"
    );
    let call = caller(&d, caller_addr.port(), 9_000);
    let caller_tone = Tone::new(CALLER_HZ, Codec::Pcmu, 0x1111);
    let national_tone = Tone::new(NATIONAL_HZ, Codec::Pcmu, 0x2222);
    let (caller_heard, national_heard) =
        rt.block_on(talk_both_ways(&caller_rtp, caller_tone, &national_rtp, national_tone));
    call.join().unwrap().assert_ok();
    // The centre's scenario passes only if the loop header came, its 200 was ACKed and the
    // caller's hang-up reached it as BYE (and, with the 407, only if the digest was right).
    centre.join().unwrap().assert_stopped_ok();
    let first = caller_heard.window(0, 4000);
    assert!(first.contains_tone(OUTSIDE_HOURS_HZ), "no 'outside hours' prompt first");
    assert!(caller_heard.contains_tone(NATIONAL_HZ), "the caller never heard the centre");
    assert_eq!(caller_heard.ssrc_changes(), 0, "one stream from prompt to centre");
    assert!(national_heard.contains_tone(CALLER_HZ), "the centre never heard the caller");
    assert_eq!(d.wait_metric(overflowed, before + 1.0), before + 1.0, "{}", d.metrics());
    assert_eq!(d.wait_metric("tongdai_queue_waiting_calls", 0.0), 0.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn nobody_on_duty_the_national_centre_takes_the_call_with_audio_both_ways() {
    overflowed_call("answer", "national-answer.xml", "");
}

#[test]
fn the_national_centre_challenges_with_407_and_takes_the_call() {
    let credentials = "username = \"region-south\"\nrealm = \"national\"\npassword = \"overflow-test-password\"\n";
    overflowed_call("challenge", "national-challenge.xml", credentials);
}
