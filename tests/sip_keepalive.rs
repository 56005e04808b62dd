//! The registration side of the switchboard on virtual time, with literal SIP: OPTIONS keep-alives
//! (sent on the binding's flow whatever private address the Contact names, any answer means alive,
//! N misses log the agent out), the ban on password guessing (and its expiry, the allow-listed
//! LAN, the first 401 not counted, unknown user and wrong password alike), and scanners dropped
//! unanswered.

mod support;

use std::time::Duration;

use support::rig::{Rig, addr, answer};
use tongdai::acd::AgentState;
use tongdai::acd::b2bua::Report;
use tongdai::sip::message::{Method, Response};
use tongdai::sip::registrar::{LogoutReason, Presence};

const KEEPALIVE_ON: (&str, &str) = ("keepalive_interval = \"30s\"", "keepalive_interval = \"30s\"");

/// An agent behind NAT: its Contact names 192.168.1.50, its REGISTER came from 127.0.0.1:40000.
/// Every OPTIONS goes to the flow; 404 and 405 prove it alive; then it falls silent and after
/// three unanswered keep-alives (and not before) the agent is logged out as unreachable.
#[test]
fn keepalives_go_to_the_flow_and_three_misses_log_the_agent_out() {
    let mut rig = Rig::new(&[KEEPALIVE_ON]);
    let nat = addr("127.0.0.1:40000");
    assert_eq!(rig.register("op1", "op1-test-password", nat, "192.168.1.50:5062"), 200);
    assert!(rig.sb.registrar().is_registered("op1"));
    assert_eq!(rig.state("op1"), Some(AgentState::Available));
    rig.take_sent();

    rig.advance(Duration::from_secs(29));
    assert!(rig.requests().is_empty(), "no keep-alive before the interval");
    for status in [404, 405, 200] {
        rig.advance(Duration::from_secs(30));
        let mut probes = rig.requests();
        // UDP retransmissions of the one OPTIONS (Timer E) carry the same branch.
        probes.dedup_by_key(|(_, r)| r.headers.get("Via").cloned());
        assert_eq!(probes.len(), 1, "one keep-alive per interval");
        let (flow, options) = &probes[0];
        assert_eq!(options.method, Method::Options);
        assert_eq!(flow.remote, nat, "sent on the flow, not to the private Contact");
        assert_eq!(options.uri.as_str(), "sip:op1@192.168.1.50:5062");
        let reply = Response::for_request(options, status, Some("x"));
        rig.receive(nat, std::str::from_utf8(&reply.to_bytes()).unwrap());
        assert!(rig.sb.registrar().is_registered("op1"), "{status} means alive");
    }

    // Silence: UDP retransmissions of each OPTIONS, then Timer F; the third miss logs out.
    rig.advance(Duration::from_secs(30 + 32 + 30 + 32 + 29));
    assert!(rig.sb.registrar().is_registered("op1"), "two misses are not enough");
    let probes = rig.requests();
    assert!(probes.iter().all(|(f, r)| f.remote == nat && r.method == Method::Options));
    rig.advance(Duration::from_secs(40));
    assert!(!rig.sb.registrar().is_registered("op1"));
    assert_eq!(rig.state("op1"), Some(AgentState::LoggedOut));
    let logged_out = Report::Presence(Presence::LoggedOut {
        agent: "op1".into(),
        reason: LogoutReason::Unreachable,
    });
    assert!(rig.reports.contains(&logged_out), "{:?}", rig.reports);
    // No more probes for a binding that is gone.
    rig.take_sent();
    rig.advance(Duration::from_secs(300));
    assert!(rig.requests().is_empty());
}

#[test]
fn keepalives_can_be_switched_off() {
    let mut rig = Rig::new(&[("keepalive_interval = \"30s\"", "keepalive_interval = \"0s\"")]);
    assert_eq!(rig.register("op1", "op1-test-password", addr("127.0.0.1:40000"), "h:5062"), 200);
    rig.take_sent();
    rig.advance(Duration::from_secs(500));
    assert!(rig.requests().is_empty());
    assert!(rig.sb.registrar().is_registered("op1"));
}

/// Ten wrong passwords from one address outside the allow-lists ban that (source, user) for ten
/// minutes: the right password gets 403 meanwhile, works after; the ban is logged once on the
/// stable line; unknown user and wrong password get the same answer; other users and addresses
/// are not affected.
#[test]
fn guesses_ban_the_pair_until_the_ban_expires() {
    let mut rig = Rig::new(&[KEEPALIVE_ON]);
    let attacker = addr("198.51.100.7:5060");
    // The first 401 of every registration is not a failure: many of them ban nothing.
    for _ in 0..25 {
        let text = rig.register_text("op1", attacker, "198.51.100.7:5060", "");
        rig.receive(attacker, &text);
        assert_eq!(rig.finals().pop().unwrap().status, 401);
    }
    assert!(!rig.reports.iter().any(|r| matches!(r, Report::AuthFailure { .. })));

    // Unknown user and wrong password: same status, same headers (bar the nonce).
    let first = rig.register_text("nobody", attacker, "x:1", "");
    rig.receive(attacker, &first);
    let c = rig.finals().pop().unwrap();
    let wrong_user = rig.register_text("nobody", attacker, "x:1", &answer(&c, "nobody", "pw"));
    rig.receive(attacker, &wrong_user);
    let unknown = rig.finals().pop().unwrap();
    let first = rig.register_text("op1", attacker, "x:1", "");
    rig.receive(attacker, &first);
    let c = rig.finals().pop().unwrap();
    let wrong_pw = rig.register_text("op1", attacker, "x:1", &answer(&c, "op1", "guess"));
    rig.receive(attacker, &wrong_pw);
    let wrong = rig.finals().pop().unwrap();
    let shape = |r: &Response| {
        let names: Vec<String> = r.headers.iter().map(|h| h.name.as_str().to_owned()).collect();
        (r.status, names, r.headers.www_authenticate().unwrap().len())
    };
    assert_eq!(shape(&unknown), shape(&wrong));
    assert_eq!(unknown.status, 401);

    // Nine more wrong passwords for op1 make ten: the pair is banned.
    for i in 0..9 {
        assert_eq!(rig.register("op1", &format!("guess{i}"), attacker, "x:1"), 401);
    }
    let bans: Vec<String> = rig
        .reports
        .iter()
        .filter_map(|r| match r {
            Report::AuthBan(b) => Some(b.log_line()),
            _ => None,
        })
        .collect();
    assert_eq!(bans, ["auth ban source=198.51.100.7 user=op1 failures=10 seconds=600"]);
    assert_eq!(rig.sb.active_bans(rig.now), 1);
    assert_eq!(rig.register("op1", "op1-test-password", attacker, "x:1"), 403);
    // Only that pair: another user from the same address, the same user from elsewhere.
    assert_eq!(rig.register("op2", "op2-test-password", attacker, "x:2"), 200);
    assert_eq!(rig.register("op1", "op1-test-password", addr("127.0.0.1:40000"), "h:1"), 200);

    rig.advance(Duration::from_secs(599));
    assert_eq!(rig.register("op1", "op1-test-password", attacker, "x:1"), 403);
    rig.advance(Duration::from_secs(2));
    assert_eq!(rig.sb.active_bans(rig.now), 0);
    assert_eq!(rig.register("op1", "op1-test-password", attacker, "x:1"), 200);
}

/// The centre's LAN (the trunk allow-list, here loopback) sits behind one address: a user
/// guessing there bans only that user, never the whole address.
#[test]
fn the_allow_listed_lan_is_never_banned_wholesale() {
    let mut rig = Rig::new(&[KEEPALIVE_ON]);
    let lan = addr("127.0.0.1:5062");
    for i in 0..40 {
        let user = format!("ghost{}", i % 4);
        assert_eq!(rig.register(&user, "nope", lan, "10.0.0.9:5062"), 401);
    }
    assert!(rig.reports.iter().any(|r| matches!(r, Report::AuthBan(b) if b.user.is_some())));
    assert!(!rig.reports.iter().any(|r| matches!(r, Report::AuthBan(b) if b.user.is_none())));
    assert_eq!(rig.register("op3", "op3-test-password", lan, "10.0.0.3:5062"), 200);

    // Outside the allow-list the same spray bans the whole source.
    let outside = addr("203.0.113.9:5060");
    for i in 0..30 {
        rig.register(&format!("ghost{}", i % 4), "nope", outside, "x:1");
    }
    assert!(rig.reports.iter().any(|r| matches!(r, Report::AuthBan(b) if b.user.is_none())));
    assert_eq!(rig.register("op3", "op3-test-password", outside, "x:3"), 403);
}

#[test]
fn scanners_are_dropped_without_an_answer_and_counted() {
    let mut rig = Rig::new(&[KEEPALIVE_ON]);
    rig.ep.take_stats();
    for ua in ["friendly-scanner", "sipvicious 0.3", "SIPCLI/v1.8", "pplsip"] {
        let text = rig
            .register_text("op1", addr("203.0.113.1:5060"), "x:1", "")
            .replace("User-Agent: Linphone/5.2", &format!("User-Agent: {ua}"));
        rig.receive(addr("203.0.113.1:5060"), &text);
        let options =
            text.replace("REGISTER sip:", "OPTIONS sip:").replace(" REGISTER\r\n", " OPTIONS\r\n");
        rig.receive(addr("203.0.113.1:5060"), &options);
    }
    assert!(rig.take_sent().is_empty(), "not a byte back");
    let stats = rig.ep.take_stats();
    assert_eq!(stats.invalid, [("scanner", 8)]);
}
