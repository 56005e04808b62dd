//! Blind transfer end to end on loopback (issue 11): a SIPp trunk caller reaches a SIPp agent,
//! which transfers the call with REFER to a SIPp target; the agent gets 202, the NOTIFYs (100,
//! then 200 ending the subscription) and the BYE for its leg, the target is called from `111`, and
//! caller and target then hear each other — checked with the in-repo RTP tool.

mod support;

use std::thread::JoinHandle;
use std::time::Duration;

use support::daemon::{TestDaemon, test_config_text};
use support::rtp_tool::{RtpTool, Tone, talk_both_ways};
use support::sipp::{SippRun, free_port, run, run_on, scenario};
use tongdai::media::g711::Codec;

const CALLER_HZ: f64 = 440.0;
const TARGET_HZ: f64 = 1000.0;

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

/// SIPp as op1: registers, answers, then REFERs the caller to 127.0.0.1:`target_port`.
fn transferring_agent(d: &TestDaemon, target_port: u16) -> JoinHandle<SippRun> {
    let (rtp, target) = (free_port().to_string(), target_port.to_string());
    let keys = [("rtp_port", rtp.as_str()), ("target_port", target.as_str())];
    support::sipp::agent_with(d.sip_udp(), "op1", "agent-transfer.xml", 20_000, &keys)
}

#[test]
fn an_agent_transfers_the_caller_blind_and_caller_and_target_hear_each_other() {
    let _serial = support::serial();
    let dir = support::prompts::short_prompts("transfer");
    let text = support::prompts::with_prompts(&test_config_text(), &dir)
        .replace("menu_timeout = \"4s\"", "menu_timeout = \"1s\"");
    let d = TestDaemon::with_config(&text);
    let transferred = d.metric("tongdai_calls_transferred_total");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (target_rtp, target_addr) = rt.block_on(RtpTool::bind());
    let target_port = free_port();
    let target = {
        let (sip, file, rtp) = (d.sip_udp(), sf("transfer-target.xml"), target_addr.port());
        std::thread::spawn(move || {
            let rtp = rtp.to_string();
            run_on(
                target_port,
                sip,
                &["-sf", &file, "-key", "rtp_port", &rtp],
                Duration::from_secs(35),
            )
        })
    };
    let agent = transferring_agent(&d, target_port);
    d.wait_logged_in("op1");
    let caller = {
        let (sip, file, rtp) =
            (d.sip_udp(), sf("trunk-caller.xml"), caller_addr.port().to_string());
        std::thread::spawn(move || {
            let args = ["-sf", &file, "-key", "rtp_port", &rtp, "-d", "12000", "-m", "1"];
            run(sip, &args, Duration::from_secs(35))
        })
    };
    // Welcome, menu window, op1 answers, talks 1.5 s, transfers: the target answers at once.
    assert_eq!(
        d.wait_metric("tongdai_calls_transferred_total", transferred + 1.0),
        transferred + 1.0,
        "{}",
        d.metrics()
    );
    let caller_tone = Tone::new(CALLER_HZ, Codec::Pcmu, 0x1111);
    let target_tone = Tone::new(TARGET_HZ, Codec::Pcmu, 0x2222);
    let (caller_heard, target_heard) =
        rt.block_on(talk_both_ways(&caller_rtp, caller_tone, &target_rtp, target_tone));
    caller.join().unwrap().assert_ok();
    // op1's side (an out-of-call scenario's failure does not reach SIPp's exit code, so its
    // message log is read): the 202, both NOTIFYs in order, the last ending the subscription,
    // then our BYE for its leg.
    let agent = agent.join().unwrap();
    agent.assert_ok();
    let log = &agent.messages;
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("no {needle:?} in\n{log}"));
    let accepted = at("SIP/2.0 202");
    let trying = at("\r\nSIP/2.0 100 Trying");
    let done = at("\r\nSIP/2.0 200 OK");
    let bye = at("BYE sip:agent@");
    assert!(accepted < trying && trying < done && done < bye, "out of order:\n{log}");
    assert!(log.contains("Subscription-State: terminated"), "{log}");
    // The target's passes only if the INVITE came from 111 and the caller's BYE reached it.
    target.join().unwrap().assert_stopped_ok();
    assert!(caller_heard.contains_tone(TARGET_HZ), "the caller never heard the target");
    assert!(target_heard.contains_tone(CALLER_HZ), "the target never heard the caller");
    assert_eq!(caller_heard.ssrc_changes(), 0, "one stream to the caller throughout");
    let _ = std::fs::remove_dir_all(dir);
}

/// A blind transfer to a SIPp target running `target_file` that fails: op1 hears why (a NOTIFY
/// matching `status`), its leg is hung up, the call is not counted as transferred, and the caller
/// is back on hold audio (300 Hz), waiting first in line — never left alone.
fn a_failed_blind_transfer(target_file: &str, status: &str, caller_ms: u32) {
    let _serial = support::serial();
    let dir = support::prompts::short_prompts(&format!("transfer-fails-{status}"));
    let text = support::prompts::with_prompts(&test_config_text(), &dir)
        .replace("menu_timeout = \"4s\"", "menu_timeout = \"1s\"");
    let d = TestDaemon::with_config(&text);
    let transferred = d.metric("tongdai_calls_transferred_total");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let target_port = free_port();
    let target = {
        let (sip, file) = (d.sip_udp(), sf(target_file));
        std::thread::spawn(move || {
            run_on(target_port, sip, &["-sf", &file, "-m", "1"], Duration::from_secs(60))
        })
    };
    let agent = {
        let (rtp, target) = (free_port().to_string(), target_port.to_string());
        let keys = [("rtp_port", rtp.as_str()), ("target_port", target.as_str())];
        // op1's SIPp stops 6 s before the caller hangs up, so the caller is heard after.
        let stay = u64::from(caller_ms) - 6_000;
        support::sipp::agent_with(d.sip_udp(), "op1", "agent-transfer-fails.xml", stay, &keys)
    };
    d.wait_logged_in("op1");
    let caller = {
        let (sip, file, rtp) =
            (d.sip_udp(), sf("trunk-caller.xml"), caller_addr.port().to_string());
        let ms = caller_ms.to_string();
        std::thread::spawn(move || {
            let args = ["-sf", &file, "-key", "rtp_port", &rtp, "-d", &ms, "-m", "1"];
            run(sip, &args, Duration::from_secs(70))
        })
    };
    let agent = agent.join().unwrap();
    agent.assert_ok();
    let log = &agent.messages;
    assert!(log.contains(&format!("\r\nSIP/2.0 {status}")), "no NOTIFY with {status}:\n{log}");
    assert!(log.contains("BYE sip:agent@"), "op1's leg is hung up:\n{log}");
    // Back on hold audio, first in line, until the caller gives up.
    caller_rtp.clear();
    let heard = rt.block_on(caller_rtp.wait_for(50, Duration::from_secs(5)));
    assert!(heard.tone_ratio(300.0) > 0.5, "the caller hears hold music again");
    caller.join().unwrap().assert_ok();
    target.join().unwrap().assert_ok();
    assert_eq!(d.metric("tongdai_calls_transferred_total"), transferred);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_busy_target_gets_the_agent_a_486_notify_and_the_caller_back_on_hold() {
    a_failed_blind_transfer("agent-busy.xml", "486", 14_000);
}

#[test]
fn a_target_ringing_too_long_is_cancelled_and_the_caller_is_back_on_hold() {
    a_failed_blind_transfer("agent-ring-cancelled.xml", "408", 44_000);
}
