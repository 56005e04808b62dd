//! Bindings survive a restart: the SQLite store (schema, one transaction per change, wall-clock
//! conversion), the registrar's change log and restore on virtual time, and a daemon stopped and
//! started again on the same database with the agent still logged in.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use support::agent::Agent;
use support::daemon::{TestDaemon, test_config_text};
use tongdai::config::{AgentConfig, AgentRole, Credential, Secret};
use tongdai::sip::auth::{Algorithm, VerifiedUser};
use tongdai::sip::message::{Message, Method, Request, parse_datagram};
use tongdai::sip::registrar::{Presence, Registrar, RegistrarConfig};
use tongdai::sip::transport::{Flow, Transport};
use tongdai::store::{self, WallClock, bindings};

fn temp_db(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tongdai-persist-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("state").join("tongdai.db")
}

fn agents() -> Vec<AgentConfig> {
    ["an", "binh"]
        .iter()
        .zip(["1001", "1002"])
        .map(|(id, user)| AgentConfig {
            id: (*id).into(),
            name: (*id).into(),
            user: user.into(),
            credential: Credential::Password(Secret::new("secret".into())),
            role: AgentRole::Operator,
        })
        .collect()
}

fn register(user: &str, host: &str, expires: u32, cseq: u32) -> Request {
    let text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {host};branch=z9hG4bK{user}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         From: <sip:{user}@127.0.0.1>;tag=f{user}\r\n\
         Call-ID: c-{user}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{host}>;q=0.5;+sip.instance=\"<urn:uuid:{user}>\";reg-id=1\r\n\
         Expires: {expires}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(text.into_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn flow(remote: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

fn verified(user: &str) -> VerifiedUser {
    VerifiedUser { user: user.into(), algorithm: Algorithm::Md5 }
}

/// Registrar → change log → SQLite file → a new process's clock → a fresh registrar: the binding
/// comes back whole (flow, instance, q, Call-ID/CSeq, expiry to the millisecond), the lapsed one is
/// dropped, and a logout deletes the agent's rows.
#[test]
fn bindings_round_trip_through_the_store_and_lapsed_ones_are_dropped() {
    let path = temp_db("store");
    let t0 = Instant::now();
    let clock1 = WallClock { instant: t0, wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000) };
    let mut reg = Registrar::new(RegistrarConfig::default(), &agents());
    let out = reg.handle_register(
        t0,
        &register("1001", "192.168.1.50:5062", 600, 1),
        flow("127.0.0.1:40001"),
        &verified("1001"),
    );
    assert_eq!(out.response.status, 200);
    reg.handle_register(
        t0,
        &register("1002", "10.0.0.2:5060", 60, 1),
        flow("127.0.0.1:40002"),
        &verified("1002"),
    );
    let changes = reg.take_changes();
    assert_eq!(changes.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["an", "binh"]);
    assert!(reg.take_changes().is_empty(), "the change log empties when taken");
    {
        let mut conn = store::open(&path).unwrap();
        bindings::prepare(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        for (agent, list) in &changes {
            bindings::replace_agent(&tx, &clock1, agent, list).unwrap();
        }
        tx.commit().unwrap();
    }

    // The next process: another monotonic origin, 5 minutes later on the wall clock.
    let t1 = t0 + Duration::from_secs(7);
    let clock2 = WallClock { instant: t1, wall: clock1.wall + Duration::from_secs(300) };
    let mut conn = store::open(&path).unwrap();
    bindings::prepare(&mut conn).unwrap();
    let saved = bindings::load(&conn, &clock2).unwrap();
    assert_eq!(saved.len(), 2);
    let an = saved.iter().find(|b| b.agent == "an").unwrap();
    let before = reg.lookup("an")[0].clone();
    assert_eq!(an.flow, before.flow);
    assert_eq!(an.contact, before.contact);
    assert_eq!(
        (an.instance.as_deref(), an.reg_id, an.q),
        (Some("<urn:uuid:1001>"), Some(1), Some(500))
    );
    assert_eq!((an.call_id.as_str(), an.cseq), ("c-1001", 1));
    // 600 s granted, 300 s passed on the wall clock: 300 s left on the new monotonic clock.
    assert_eq!(an.expires_at, t1 + Duration::from_secs(300));

    let mut fresh = Registrar::new(RegistrarConfig::default(), &agents());
    let events = fresh.restore(t1, saved);
    assert_eq!(events, [Presence::LoggedIn { agent: "an".into() }]);
    assert!(fresh.is_registered("an") && !fresh.is_registered("binh"));
    // binh's lapsed row goes from the file too: every restored agent is rewritten.
    let tx = conn.transaction().unwrap();
    for (agent, list) in fresh.take_changes() {
        bindings::replace_agent(&tx, &clock2, &agent, &list).unwrap();
    }
    tx.commit().unwrap();
    let left = bindings::load(&conn, &clock2).unwrap();
    assert_eq!(left.iter().map(|b| b.agent.as_str()).collect::<Vec<_>>(), ["an"]);

    // A logout (the *24 feature code) empties the agent's rows.
    fresh.unregister_agent("an");
    let tx = conn.transaction().unwrap();
    for (agent, list) in fresh.take_changes() {
        bindings::replace_agent(&tx, &clock2, &agent, &list).unwrap();
    }
    tx.commit().unwrap();
    assert!(bindings::load(&conn, &clock2).unwrap().is_empty());
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

/// The daemon is stopped and started again on the same database: the agent that registered
/// before is still registered and available after, without a new REGISTER — and the new daemon
/// proves it holds the binding by probing the agent's socket (the restored flow) with OPTIONS.
#[test]
fn a_restart_keeps_the_agent_logged_in() {
    let _serial = support::serial();
    let path = temp_db("daemon");
    let line = "database = \"\"";
    let text = test_config_text();
    assert_eq!(text.matches(line).count(), 1);
    let text = text
        .replace(line, &format!("database = \"{}\"", path.display()))
        .replace("keepalive_interval = \"0s\"", "keepalive_interval = \"1s\"");
    let available = "tongdai_agents{state=\"available\"} ";
    let mut agent;
    {
        let daemon = TestDaemon::with_config(&text);
        agent = Agent::new(daemon.sip_udp(), "op1", "op1-test-password");
        assert_eq!(agent.register(600).status, 200);
        assert_eq!(daemon.wait_metric("tongdai_registrations ", 1.0), 1.0);
        assert_eq!(daemon.wait_metric(available, 1.0), 1.0);
    }
    assert!(path.exists(), "the database file is created");
    // Whatever the first daemon sent is stale now.
    while agent.recv(Duration::from_millis(200)).is_some() {}

    let daemon = TestDaemon::with_config(&text);
    let (options, from) =
        agent.recv_request(Duration::from_secs(10)).expect("the restored binding is probed");
    assert_eq!(options.method, Method::Options);
    assert_eq!(from, daemon.sip_udp(), "sent by the new daemon, on the agent's flow");
    agent.answer(&options, 200, from, None);
    assert_eq!(daemon.wait_metric("tongdai_registrations ", 1.0), 1.0);
    assert_eq!(daemon.wait_metric(available, 1.0), 1.0);
    drop(daemon);
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}
