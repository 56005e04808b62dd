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
