//! The ACD's outcomes end to end with SIPp (Debian `sip-tester`) on loopback: SIPp agents register
//! with MD5 digest and then answer, decline (603), are busy (486), never answer or hang up first;
//! SIPp trunk callers call 111; each outcome is read back from the daemon's metrics (calls answered
//! or abandoned by phase, agents by state, feature codes). One caller withholds their number
//! (`Privacy: id` with a P-Asserted-Identity) and the SIPp agent fails the call if its INVITE
//! carries the number; agents dial `*21` (407 digest) and are paused, or `*24` and are logged out;
//! with `answer = "early-media"` the caller gets 183 with SDP, and 200 when the agent answers.

mod support;

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use support::daemon::{TestDaemon, test_config_text};
use support::prompts::write_tone;
use support::sipp::{SippRun, free_port, run, scenario};

/// A daemon with short prompts and `edits` (from → to, each found once) on the test config.
struct Rig {
    d: TestDaemon,
    prompts: PathBuf,
}

impl Rig {
    fn start(name: &str, edits: &[(&str, &str)]) -> Rig {
        let prompts =
            std::env::temp_dir().join(format!("tongdai-acd-sipp-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&prompts).unwrap();
        write_tone(&prompts.join("welcome.wav"), 400.0, 0.3);
        write_tone(&prompts.join("hold-music.wav"), 400.0, 1.0);
        write_tone(&prompts.join("feature-paused.wav"), 400.0, 0.4);
        let mut text = test_config_text().replace(
            "prompts = \"prompts\"",
            &format!("prompts = {:?}", prompts.display().to_string()),
        );
        for (from, to) in edits {
            assert_eq!(text.matches(from).count(), 1, "{from}");
            text = text.replace(from, to);
        }
        let rig = Rig { d: TestDaemon::with_config(&text), prompts };
        // The metrics recorder is process-wide: until this daemon exports its own gauges, they
        // show the previous test's daemon. A keep-alive makes it export them.
        let ping = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        ping.send_to(b"\r\n\r\n", rig.d.sip_udp()).unwrap();
        let fresh = (0..400).any(|_| {
            let ready = rig.metric("tongdai_agents{state=\"logged_out\"}") == 3.0
                && rig.metric("tongdai_registrations") == 0.0;
            if !ready {
                std::thread::sleep(Duration::from_millis(25));
            }
            ready
        });
        assert!(fresh, "the new daemon never exported its gauges");
        rig
    }

    fn metric(&self, series: &str) -> f64 {
        self.d.metric(series)
    }

    /// Waits (bounded) until `series` reaches `value`; false if it never does.
    fn wait_for(&self, series: &str, value: f64) -> bool {
        for _ in 0..400 {
            if self.metric(series) >= value {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// SIPp agent `op1`: registers with digest and answers the daemon's INVITEs with `answer`
    /// (an out-of-call scenario), staying registered `stay_ms`.
    fn agent(&self, answer: &str, stay_ms: u64) -> JoinHandle<SippRun> {
        let before = self.metric("tongdai_registrations");
        let handle = support::sipp::agent(self.d.sip_udp(), "op1", answer, stay_ms);
        assert!(
            self.wait_for("tongdai_registrations", before + 1.0),
            "the SIPp agent never registered"
        );
        handle
    }

    /// A SIPp trunk caller (`file`) that talks or waits `talk_ms` before hanging up.
    fn caller(&self, file: &str, talk_ms: u64) -> JoinHandle<SippRun> {
        let target = self.d.sip_udp();
        let file = sf(file);
        let rtp = free_port().to_string();
        std::thread::spawn(move || {
            run(
                target,
                &["-sf", &file, "-key", "rtp_port", &rtp, "-d", &talk_ms.to_string(), "-m", "1"],
                Duration::from_secs(30),
            )
        })
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.prompts);
    }
}

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

const ANSWERED: &str = "tongdai_calls_answered_total";
const ABANDONED_QUEUE: &str = "tongdai_calls_abandoned_total{phase=\"queue\"}";
const ABANDONED_RINGING: &str = "tongdai_calls_abandoned_total{phase=\"ringing\"}";
const PAUSED: &str = "tongdai_agents{state=\"paused\"}";
const AVAILABLE: &str = "tongdai_agents{state=\"available\"}";

#[test]
fn agent_answers_and_the_call_is_answered() {
    let _serial = support::serial();
    let rig = Rig::start("answer", &[]);
    let answered = rig.metric(ANSWERED);
    let agent = rig.agent("agent-answer.xml", 12_000);
    rig.caller("trunk-caller.xml", 3_000).join().unwrap().assert_ok();
    // The agent's scenario passes only if the caller's hang-up reached it as BYE.
    agent.join().unwrap().assert_ok();
    assert_eq!(rig.metric(ANSWERED) - answered, 1.0);
}

#[test]
fn agent_hanging_up_first_ends_the_callers_leg() {
    let _serial = support::serial();
    let rig = Rig::start("hangup", &[]);
    let answered = rig.metric(ANSWERED);
    let agent = rig.agent("agent-hangup.xml", 14_000);
    // The caller's scenario passes only when our BYE reaches it.
    rig.caller("trunk-caller-waits.xml", 0).join().unwrap().assert_ok();
    agent.join().unwrap().assert_ok();
    assert_eq!(rig.metric(ANSWERED) - answered, 1.0);
    // After the call, wrap-up (30 s by default) before the agent is offered calls again.
    assert!(rig.wait_for("tongdai_agents{state=\"wrap_up\"}", 1.0));
}

/// An agent who refuses (`scenario`) once with `max_misses = 1` is paused; the caller, still
/// queued, gives up: abandoned in the queue, never lost.
fn refusal_pauses_the_agent_and_the_caller_stays_queued(name: &str, scenario: &str) {
    let _serial = support::serial();
    let rig = Rig::start(name, &[("max_misses = 2", "max_misses = 1")]);
    let (abandoned, paused) = (rig.metric(ABANDONED_QUEUE), rig.metric(PAUSED));
    let agent = rig.agent(scenario, 6_000);
    let caller = rig.caller("trunk-caller.xml", 3_000);
    assert!(rig.wait_for(PAUSED, paused + 1.0), "the refusing agent was not paused");
    caller.join().unwrap().assert_ok();
    agent.join().unwrap().assert_ok();
    assert_eq!(rig.metric(ABANDONED_QUEUE) - abandoned, 1.0);
}

#[test]
fn agent_declining_603_is_a_miss_and_is_paused() {
    refusal_pauses_the_agent_and_the_caller_stays_queued("decline", "agent-decline.xml");
}

#[test]
fn agent_busy_486_is_a_miss_and_is_paused() {
    refusal_pauses_the_agent_and_the_caller_stays_queued("busy", "agent-busy.xml");
}

#[test]
fn agent_never_answering_is_cancelled_at_the_ring_timeout_and_paused() {
    let _serial = support::serial();
    let rig = Rig::start(
        "noanswer",
        &[
            ("ring_timeout = \"15s\"", "ring_timeout = \"2s\""),
            ("max_misses = 2", "max_misses = 1"),
        ],
    );
    let (abandoned, paused) = (rig.metric(ABANDONED_QUEUE), rig.metric(PAUSED));
    // The agent's scenario passes only if the daemon CANCELs its ringing INVITE.
    let agent = rig.agent("agent-ring-cancelled.xml", 8_000);
    let caller = rig.caller("trunk-caller.xml", 5_000);
    assert!(rig.wait_for(PAUSED, paused + 1.0), "the agent was not paused after the ring timeout");
    agent.join().unwrap().assert_ok();
    caller.join().unwrap().assert_ok();
    assert_eq!(rig.metric(ABANDONED_QUEUE) - abandoned, 1.0);
}

#[test]
fn caller_hanging_up_while_the_agent_rings_is_abandoned_ringing() {
    let _serial = support::serial();
    let rig = Rig::start("ringing", &[]);
    let abandoned = rig.metric(ABANDONED_RINGING);
    // The agent rings without answering; the caller leaves after 2 s: CANCEL to the agent.
    let agent = rig.agent("agent-ring-cancelled.xml", 8_000);
    rig.caller("trunk-caller.xml", 2_000).join().unwrap().assert_ok();
    agent.join().unwrap().assert_ok();
    assert_eq!(rig.metric(ABANDONED_RINGING) - abandoned, 1.0);
}

#[test]
fn a_private_caller_reaches_the_agent_without_their_number() {
    let _serial = support::serial();
    let rig = Rig::start("private", &[]);
    let answered = rig.metric(ANSWERED);
    // agent-answer-private.xml fails the call if the INVITE carries the number in any form.
    let agent = rig.agent("agent-answer-private.xml", 12_000);
    rig.caller("trunk-caller-private.xml", 3_000).join().unwrap().assert_ok();
    let result = agent.join().unwrap();
    result.assert_ok();
    // The agent's checks passed: otherwise it would have failed the call and refused it.
    assert_eq!(rig.metric(ANSWERED) - answered, 1.0);
    for failure in ["Regexp matched but should not", "Failed regexp match"] {
        assert!(!result.output.contains(failure), "{}", result.output);
    }
    // Belt and braces: SIPp's own trace of what the agent received.
    let invite = result.messages.split("INVITE sip:").nth(1).unwrap_or("");
    assert!(invite.contains("From: \"111 "), "{invite}");
    assert!(!invite.contains("901234567"), "{invite}");
}

#[test]
fn an_agent_dials_star_21_with_digest_and_is_paused() {
    let _serial = support::serial();
    let rig = Rig::start("feature", &[]);
    let (codes, paused) =
        (rig.metric("tongdai_feature_codes_total{code=\"pause\"}"), rig.metric(PAUSED));
    // REGISTER (401), INVITE *21 (407, then 200 with SDP), the confirmation, our BYE.
    run(
        rig.d.sip_udp(),
        &[
            "-sf",
            &sf("agent-feature-code.xml"),
            "-key",
            "user",
            "op1",
            "-key",
            "password",
            "op1-test-password",
            "-key",
            "code",
            "*21",
            "-key",
            "rtp_port",
            &free_port().to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(15),
    )
    .assert_ok();
    assert_eq!(rig.metric("tongdai_feature_codes_total{code=\"pause\"}") - codes, 1.0);
    assert!(rig.wait_for(PAUSED, paused + 1.0));
    assert_eq!(rig.metric(AVAILABLE), 0.0, "op1 is paused, op2 and op3 never registered");
}

#[test]
fn the_agents_privacy_check_fails_when_the_number_is_shown() {
    // The check above cannot pass vacuously: with the number shown by policy, the same SIPp
    // agent fails the call on the INVITE and refuses it. (An out-of-call scenario's failure does
    // not reach SIPp's exit code: its log line and the daemon's answered count tell.)
    let _serial = support::serial();
    let rig = Rig::start(
        "shown",
        &[
            ("show_number_to_agents = false", "show_number_to_agents = true"),
            ("ring_timeout = \"15s\"", "ring_timeout = \"2s\""),
        ],
    );
    let answered = rig.metric(ANSWERED);
    // The agent stays registered well past the caller's 3 s, even on a loaded machine.
    let agent = rig.agent("agent-answer-private.xml", 10_000);
    rig.caller("trunk-caller.xml", 3_000).join().unwrap().assert_ok();
    let result = agent.join().unwrap();
    assert_eq!(
        rig.metric(ANSWERED) - answered,
        0.0,
        "the agent answered an INVITE with the number:\n{}",
        result.output
    );
    assert!(result.output.contains("Regexp matched but should not"), "{}", result.output);
    let invite = result.messages.split("INVITE sip:").nth(1).unwrap_or("");
    assert!(invite.contains("<sip:+84901234567@"), "{invite}");
}

#[test]
fn early_media_caller_hears_the_queue_in_183_and_gets_200_when_the_agent_answers() {
    let _serial = support::serial();
    let rig = Rig::start("early", &[("answer = \"answer\"", "answer = \"early-media\"")]);
    let answered = rig.metric(ANSWERED);
    let agent = rig.agent("agent-answer.xml", 12_000);
    let caller = rig.caller("trunk-caller.xml", 3_000).join().unwrap();
    caller.assert_ok();
    agent.join().unwrap().assert_ok();
    assert_eq!(rig.metric(ANSWERED) - answered, 1.0);
    // The caller got 183 with our SDP first, and the 200 only after the agent's answer.
    let progress = caller.messages.find("SIP/2.0 183").expect("no 183");
    let ok = caller.messages.find("SIP/2.0 200").expect("no 200");
    assert!(progress < ok, "{}", caller.messages);
    let early = &caller.messages[progress..ok];
    assert!(early.contains("m=audio "), "the 183 carries SDP:\n{early}");
}

#[test]
fn an_agent_logs_out_with_star_24() {
    let _serial = support::serial();
    let rig = Rig::start("logout", &[]);
    let codes = rig.metric("tongdai_feature_codes_total{code=\"log_out\"}");
    run(
        rig.d.sip_udp(),
        &[
            "-sf",
            &sf("agent-feature-code.xml"),
            "-key",
            "user",
            "op1",
            "-key",
            "password",
            "op1-test-password",
            "-key",
            "code",
            "*24",
            "-key",
            "rtp_port",
            &free_port().to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(15),
    )
    .assert_ok();
    assert_eq!(rig.metric("tongdai_feature_codes_total{code=\"log_out\"}") - codes, 1.0);
    assert_eq!(rig.metric("tongdai_registrations"), 0.0, "the binding is gone");
    assert_eq!(rig.metric("tongdai_agents{state=\"logged_out\"}"), 3.0);
}
