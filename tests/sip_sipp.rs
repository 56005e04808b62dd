//! SIP basics against a real peer: SIPp (Debian `sip-tester`) drives a daemon started in-process on
//! loopback ports the kernel picked.

mod support;

use std::time::Duration;

use support::daemon::TestDaemon;
use support::sipp::{run, scenario};

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

#[test]
fn options_ping_over_udp_and_tcp_gets_200_with_capabilities() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    run(d.sip_udp(), &["-sf", &sf("options.xml"), "-m", "3"], Duration::from_secs(10)).assert_ok();
    run(d.sip_tcp(), &["-sf", &sf("options.xml"), "-m", "3", "-t", "t1"], Duration::from_secs(10))
        .assert_ok();
}

#[test]
fn trunk_invite_gets_100_then_one_final_response_with_retransmissions_absorbed() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let r = run(
        d.sip_udp(),
        &["-sf", &sf("trunk-invite-refused.xml"), "-key", "number", "112", "-m", "2"],
        Duration::from_secs(15),
    );
    r.assert_ok();
    // The repeated INVITE was answered from its transaction (the 100, or the 480 again once the
    // call was refused), never as a second call: each call's final responses share one To tag.
    let mut tags: Vec<&str> = r
        .messages
        .split("SIP/2.0 404")
        .skip(1)
        .filter_map(|m| m.split("tag=").nth(2)?.split(['\r', '\n', ';']).next())
        .collect();
    assert!(tags.len() >= 2, "{}", r.messages);
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 2, "one To tag per call: {tags:?}");
    // Over TCP as well (once: TCP clients do not retransmit, and our answer to a repeated INVITE
    // would race with the ACK).
    run(
        d.sip_tcp(),
        &["-sf", &sf("trunk-invite-404.xml"), "-key", "number", "112", "-m", "1", "-t", "t1"],
        Duration::from_secs(15),
    )
    .assert_ok();
}

#[test]
fn call_requiring_100rel_is_answered_not_refused_with_420() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    run(
        d.sip_udp(),
        &["-sf", &sf("trunk-invite-100rel.xml"), "-key", "rtp_port", "9", "-d", "500", "-m", "1"],
        Duration::from_secs(15),
    )
    .assert_ok();
}

#[test]
fn sipp_builtin_uac_call_is_answered_and_ended() {
    // SIPp's own default caller, unchanged: its call is answered, and its BYE ends it.
    let _serial = support::serial();
    let d = TestDaemon::start();
    let r = run(d.sip_udp(), &["-sn", "uac", "-s", "111", "-m", "1"], Duration::from_secs(10));
    r.assert_ok();
    assert!(r.messages.contains("SIP/2.0 100 Trying"), "{}", r.messages);
}

#[test]
fn an_agent_added_by_a_reload_can_register() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let register = |user: &str, password: &str| {
        run(
            d.sip_udp(),
            &[
                "-sf",
                &sf("agent-register.xml"),
                "-key",
                "user",
                user,
                "-key",
                "password",
                password,
                "-key",
                "expires",
                "120",
                "-d",
                "100",
                "-m",
                "1",
            ],
            Duration::from_secs(10),
        )
    };
    // Unknown before the reload: challenged again, never 200.
    assert_ne!(register("op4", "op4-secret").code, Some(0));
    let text = support::daemon::test_config_text().replace(
        "[[shifts]]",
        "[[agents]]\nid = \"op4\"\nname = \"Điện thoại viên 4\"\npassword = \"op4-secret\"\n\n[[shifts]]",
    );
    d.reload(&text);
    register("op4", "op4-secret").assert_ok();
}

#[test]
fn a_full_queue_refuses_with_486_before_answering() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let refused_before = d.metric("tongdai_calls_refused_total{reason=\"queue_full\"}");
    // 25 callers within half a second, each staying 3 s in the welcome prompt: the default queue
    // holds 20 (prompt + queue), so exactly 5 are refused.
    let r = run(
        d.sip_udp(),
        &[
            "-sf",
            &sf("trunk-caller.xml"),
            "-key",
            "rtp_port",
            "9",
            "-d",
            "3000",
            "-m",
            "25",
            "-r",
            "50",
            "-l",
            "25",
        ],
        Duration::from_secs(20),
    );
    // Calls (by Call-ID) that received `status`: SIPp aborts a call on the unexpected 486 without
    // ACKing it, so Timer G repeats the 486 and one call may log it more than once.
    let received = |status: &str| {
        let mut calls: Vec<&str> = r
            .messages
            .split("-----------------------------------------------")
            .filter(|block| block.contains("message received") && block.contains(status))
            .filter_map(|block| block.split("Call-ID: ").nth(1)?.lines().next())
            .collect();
        calls.sort();
        calls.dedup();
        calls.len()
    };
    assert_eq!(received("SIP/2.0 486 Busy Here"), 5, "{}", r.output);
    assert!(received("SIP/2.0 200 OK") >= 20, "{}", r.output);
    let refused = d.metric("tongdai_calls_refused_total{reason=\"queue_full\"}") - refused_before;
    assert_eq!(refused, 5.0);
}
