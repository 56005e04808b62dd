//! The caps of `[limits]` (issue 12 §2), each where it bites and with what it answers: calls in
//! progress (486 for the one call past it), SIP server transactions (a stateless 480 for an INVITE,
//! 500 + Retry-After for any other request, while retransmissions, CANCELs and requests of live
//! dialogs still pass), followed digest nonces (the oldest forgotten, counted, answering stale),
//! SIP TCP connections (closed at accept, counted) and the config keys themselves (a zero is an
//! error with its position). Everything but the TCP cap runs sans-IO on virtual time.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::rig::{Rig, trunk_offer, trunk_request as sb_request};
use support::ua::{Ua, trunk_request as req};
use tongdai::acd::b2bua::Report;
use tongdai::config::Caps;
use tongdai::config::{Credential, Secret};
use tongdai::sip::auth::{Algorithm, AuthFailure, ChallengeKind, DigestServer, DigestServerConfig};
use tongdai::sip::message::{Challenge, Message, Request, Response, name, parse_datagram};

const SDP: &str = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn finals(ua: &mut Ua) -> Vec<Response> {
    ua.responses().into_iter().filter(|r| r.status >= 200).collect()
}

fn retry_after(r: &Response) -> Option<String> {
    r.headers.get(name::RETRY_AFTER).map(|v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn past_the_transaction_cap_new_requests_are_refused_statelessly_and_counted() {
    let mut ua = Ua::with_salt(1);
    ua.ep.set_max_transactions(2);
    ua.send(req("OPTIONS", 1, "o1", None, "", ""));
    ua.send(req("OPTIONS", 2, "o2", None, "", ""));
    assert_eq!(finals(&mut ua).iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200]);
    assert_eq!(ua.ep.server_transactions(), 2);

    // A third request and a new call find no room: 500 + Retry-After and 480 + Retry-After (one
    // refused call — never 503, which would turn the trunk away for every call).
    ua.send(req("OPTIONS", 3, "o3", None, "", ""));
    ua.send(req("INVITE", 4, "i4", None, "", SDP));
    let refused = finals(&mut ua);
    assert_eq!(refused.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 480]);
    assert!(refused.iter().all(|r| retry_after(r).as_deref() == Some("10")), "{refused:?}");
    assert!(ua.take_events().is_empty(), "nothing reaches the call logic");
    assert_eq!(ua.ep.server_transactions(), 2, "no state was made for them");
    let stats = ua.ep.take_stats();
    assert_eq!((stats.requests_over_cap, stats.invites_over_cap), (1, 1));

    // A retransmission of an admitted request is still answered from its transaction.
    ua.send(req("OPTIONS", 1, "o1", None, "", ""));
    assert_eq!(finals(&mut ua).iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    assert_eq!(ua.ep.take_stats().requests_over_cap, 0);

    // The admitted transactions end (Timer J, 64·T1 over UDP): room again.
    ua.run_until(Duration::from_secs(33));
    assert_eq!(ua.ep.server_transactions(), 0);
    ua.send(req("INVITE", 5, "i5", None, "", SDP));
    assert!(
        ua.take_events()
            .iter()
            .any(|e| matches!(e, tongdai::sip::endpoint::UaEvent::IncomingCall { .. }))
    );
}

#[test]
fn at_the_transaction_cap_a_cancel_and_requests_in_a_live_dialog_still_pass() {
    use tongdai::sip::endpoint::UaEvent;
    let mut ua = Ua::with_salt(2);
    ua.ep.set_max_transactions(1);
    ua.send(req("INVITE", 1, "inv", None, "", SDP));
    let txn = match ua.take_events().as_slice() {
        [UaEvent::IncomingCall { txn, .. }] => *txn,
        other => panic!("{other:?}"),
    };
    // The cap is reached by the INVITE itself; its CANCEL is taken: 200, then 487 to the INVITE.
    ua.send(req("CANCEL", 1, "inv", None, "", ""));
    let statuses: Vec<u16> = finals(&mut ua).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 487]);
    assert_eq!(ua.ep.take_stats().requests_over_cap, 0);
    assert_eq!(ua.take_events(), [UaEvent::CallCancelled { txn }]);

    // A second call once the first transactions are gone, answered; at the cap again (its INVITE
    // transaction waits in Accepted), the caller's BYE in the dialog is still answered 200.
    ua.run_until(Duration::from_secs(40));
    ua.send(req("INVITE", 2, "inv2", None, "", SDP));
    let txn = match ua.take_events().as_slice() {
        [UaEvent::IncomingCall { txn, .. }] => *txn,
        other => panic!("{other:?}"),
    };
    let now = ua.now;
    let dialog = ua.ep.answer(now, txn, SDP.into()).expect("answered");
    let ok = finals(&mut ua).pop().expect("200");
    let tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    ua.send(req("ACK", 2, "ack2", Some(&tag), "", ""));
    assert!(ua.ep.server_transactions() >= 1);
    // A stranger's new request is refused meanwhile ...
    ua.send(req("OPTIONS", 3, "o3", None, "", ""));
    assert_eq!(finals(&mut ua).iter().map(|r| r.status).collect::<Vec<_>>(), [500]);
    // ... but the dialog's BYE is not.
    ua.send(req("BYE", 3, "bye2", Some(&tag), "", ""));
    assert_eq!(finals(&mut ua).iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    assert!(ua.take_events().contains(&UaEvent::Bye { dialog }));
}

#[test]
fn past_the_transaction_cap_a_stranger_s_invite_still_gets_403() {
    let mut ua = Ua::with_salt(3);
    ua.ep.set_max_transactions(1);
    ua.send(req("OPTIONS", 1, "o1", None, "", ""));
    let _ = finals(&mut ua);
    let stranger: std::net::SocketAddr = "192.0.2.9:5060".parse().unwrap();
    let flow = tongdai::sip::transport::Flow { remote: stranger, ..support::ua::flow() };
    let invite = req("INVITE", 2, "i2", None, "", SDP).replace("127.0.0.1:5070", "192.0.2.9:5060");
    let now = ua.now;
    ua.ep.handle_datagram(now, flow, invite.into());
    assert_eq!(finals(&mut ua).iter().map(|r| r.status).collect::<Vec<_>>(), [403]);
    assert_eq!(ua.ep.take_stats().invites_over_cap, 0);
}

/// A second trunk call (its own Call-ID and branch) on the rig.
fn second_call(rig: &mut Rig) {
    let text = sb_request("INVITE", 1, "inv-b", None, &trunk_offer(1, "sendrecv"))
        .replace("sb-1@trunk", "sb-2@trunk")
        .replace("tag=trunk1", "tag=trunk2");
    rig.send_trunk(text);
}

#[test]
fn past_max_calls_the_next_call_gets_486_and_is_counted() {
    let mut rig = Rig::new(&[("max_calls = 1000", "max_calls = 1")]);
    rig.call_trunk();
    second_call(&mut rig);
    let refused = rig.final_response(486);
    assert!(retry_after(&refused).is_none());
    assert!(rig.reports.contains(&Report::Refused { reason: "max_calls" }));
    assert_eq!(rig.sb.calls(), 1);
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A REGISTER from op1 answering `nonce` with count `nc` (password `pw`, realm `tongdai`).
fn register(nonce: &str, nc: u32) -> Request {
    let (uri, cnonce) = ("sip:127.0.0.1", "0a4f113b");
    let ha1 = md5_hex("op1:tongdai:pw");
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"));
    let text = format!(
        "REGISTER {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKr{nc}\r\n\
         From: <sip:op1@127.0.0.1>;tag=a\r\nTo: <sip:op1@127.0.0.1>\r\n\
         Call-ID: reg-op1\r\nCSeq: {nc} REGISTER\r\nMax-Forwards: 70\r\n\
         Contact: <sip:op1@127.0.0.1:5062>\r\n\
         Authorization: Digest username=\"op1\", realm=\"tongdai\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5, cnonce=\"{cnonce}\", qop=auth, \
         nc={nc:08x}\r\nContent-Length: 0\r\n\r\n"
    );
    match parse_datagram(text.into_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

#[test]
fn past_max_nonces_the_oldest_nonce_is_dropped_counted_and_answers_stale() {
    let t0 = Instant::now();
    let mut config = DigestServerConfig::new("tongdai");
    config.nonce_table_size = 2;
    let mut s = DigestServer::new(config, [3; 32], t0);
    let secret = Credential::Password(Secret::new("pw".to_owned()));
    let mut nonces = Vec::new();
    for i in 0..3 {
        let value = s.challenge(t0, &[Algorithm::Md5], false).remove(0);
        let nonce = Challenge::parse(&value).unwrap().nonce().unwrap().to_owned();
        let r = register(&nonce, 1);
        let lookup = |u: &str| (u == "op1").then_some(&secret);
        assert!(s.verify_request(t0, &r, ChallengeKind::Www, lookup).is_ok(), "nonce {i}");
        nonces.push(nonce);
    }
    assert_eq!(s.nonces_followed(), 2, "bounded");
    assert_eq!(s.take_dropped(), 1);
    assert_eq!(s.take_dropped(), 0, "taken once");
    // The first nonce, used again with a higher count, is stale: the client retries afresh.
    let lookup = |u: &str| (u == "op1").then_some(&secret);
    let stale = s.verify_request(t0, &register(&nonces[0], 2), ChallengeKind::Www, lookup);
    assert_eq!(stale.map(|_| ()), Err(AuthFailure::Stale));
    // The daemon's own setting reaches the table: the default config follows max_nonces.
    let config = support::config_text::check(&support::daemon::test_config_text()).unwrap();
    assert_eq!(config.caps.max_nonces, tongdai::sip::auth::DEFAULT_NONCE_TABLE_SIZE);
}

#[test]
fn past_max_tcp_connections_a_connection_is_closed_at_accept_and_counted() {
    let _serial = support::serial();
    let text = support::daemon::test_config_text()
        .replace("max_tcp_connections = 1024", "max_tcp_connections = 2");
    let d = support::daemon::TestDaemon::with_config(&text);
    let open: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(d.sip_tcp()).unwrap()).collect();
    d.wait_metric("tongdai_sip_tcp_connections", 2.0);
    let mut third = TcpStream::connect(d.sip_tcp()).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    // Closed by the daemon without a byte: end of stream (or a reset).
    assert!(matches!(third.read(&mut buf), Ok(0) | Err(_)));
    d.wait_metric("tongdai_sip_tcp_refused_total{reason=\"max_connections\"}", 1.0);
    assert_eq!(d.metric("tongdai_sip_tcp_connections"), 2.0);
    drop(open);
    d.wait_metric("tongdai_sip_tcp_connections", 0.0);
}

#[test]
fn a_zero_cap_is_an_error_with_its_position() {
    let c = Caps::default();
    let defaults = [
        ("max_calls", c.max_calls),
        ("max_transactions", c.max_transactions),
        ("max_tcp_connections", c.max_tcp_connections),
        ("max_nonces", c.max_nonces),
    ];
    for (key, default) in defaults {
        let line = format!("{key} = {default}\n");
        let text = support::daemon::test_config_text().replace(&line, &format!("{key} = 0\n"));
        let errors = support::config_text::errors(&text);
        assert!(
            errors.iter().any(|e| e.contains(&format!("limits.{key}")) && e.contains("above zero")),
            "{key}: {errors:?}"
        );
    }
    let config = support::config_text::check(&support::daemon::test_config_text()).unwrap();
    assert_eq!(config.caps, Caps::default());
}

#[test]
fn while_overloaded_new_calls_are_shed_with_480_and_admitted_ones_go_on() {
    let mut ua = Ua::with_salt(3);
    ua.send(req("INVITE", 1, "a1", None, "", SDP));
    let admitted = ua.take_events();
    assert!(
        admitted.iter().any(|e| matches!(e, tongdai::sip::endpoint::UaEvent::IncomingCall { .. }))
    );
    // The runtime finds the core behind its input: the next new call is refused at once.
    ua.ep.set_overloaded(true);
    ua.send(req("INVITE", 2, "a2", None, "", SDP));
    let shed = finals(&mut ua);
    assert_eq!(shed.iter().map(|r| r.status).collect::<Vec<_>>(), [480]);
    assert_eq!(retry_after(&shed[0]).as_deref(), Some("10"));
    assert!(ua.take_events().is_empty(), "the shed call never reaches the call logic");
    assert_eq!(ua.ep.take_stats().invites_shed, 1);
    // The admitted call's retransmission and CANCEL are still its own.
    ua.send(req("INVITE", 1, "a1", None, "", SDP));
    ua.send(req("CANCEL", 1, "a1", None, "", ""));
    let events = ua.take_events();
    assert!(
        events.iter().any(|e| matches!(e, tongdai::sip::endpoint::UaEvent::CallCancelled { .. })),
        "{events:?}"
    );
    assert_eq!(ua.ep.take_stats().invites_shed, 0);
    // Caught up: calls are taken again.
    ua.ep.set_overloaded(false);
    ua.send(req("INVITE", 3, "a3", None, "", SDP));
    assert!(
        ua.take_events()
            .iter()
            .any(|e| matches!(e, tongdai::sip::endpoint::UaEvent::IncomingCall { .. }))
    );
}
