//! Abuse resistance against the running daemon: repeated wrong passwords ban the (source, user)
//! pair with the ban counted and gauged, the allow-listed LAN stays open to other users, and
//! scanner User-Agents get no answer at all but are counted.

mod support;

use std::time::Duration;

use support::agent::Agent;
use support::daemon::TestDaemon;

#[test]
fn ten_wrong_passwords_ban_the_pair_and_are_counted() {
    let _serial = support::serial();
    let daemon = TestDaemon::start();
    let bans_before = daemon.metric("tongdai_auth_bans_total ");
    let wrong_before = daemon.metric("tongdai_auth_failures_total{reason=\"wrong_password\"} ");
    let mut guesser = Agent::new(daemon.sip_udp(), "op1", "op1-test-password");
    for i in 0..10 {
        assert_eq!(guesser.register_with(600, &format!("guess{i}")).status, 401);
    }
    let bans = daemon.wait_metric("tongdai_auth_bans_total ", bans_before + 1.0);
    assert_eq!(bans, bans_before + 1.0);
    assert_eq!(daemon.wait_metric("tongdai_auth_bans_active ", 1.0), 1.0);
    assert_eq!(
        daemon.metric("tongdai_auth_failures_total{reason=\"wrong_password\"} "),
        wrong_before + 10.0
    );
    // Banned: even the right password is refused, before any challenge.
    assert_eq!(guesser.register(600).status, 403);
    // Loopback is on the trunk allow-list (the centre's LAN): other users still log in from it.
    let mut colleague = Agent::new(daemon.sip_udp(), "op2", "op2-test-password");
    assert_eq!(colleague.register(600).status, 200);
}

#[test]
fn scanners_get_no_answer_and_are_counted() {
    let _serial = support::serial();
    let daemon = TestDaemon::start();
    let series = "tongdai_sip_invalid_messages_total{reason=\"scanner\"} ";
    let before = daemon.metric(series);
    let mut scanner = Agent::new(daemon.sip_udp(), "100", "x");
    scanner.user_agent = "friendly-scanner".into();
    let probe = scanner.register_request(600, None);
    scanner.send(&probe);
    assert!(scanner.recv(Duration::from_millis(500)).is_none(), "not a byte back");
    assert_eq!(daemon.wait_metric(series, before + 1.0), before + 1.0);
}
