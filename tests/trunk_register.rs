//! tongdai's own registration to the provider: on virtual time through the real endpoint and
//! switchboard (digest only for the configured realm, refresh before expiry, back-off doubling to
//! its cap, 423, wrong password is a failure and not a loop, "up" while a granted registration
//! lasts), and live against SIPp playing a registrar that challenges with 401.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::daemon::{TestDaemon, test_config_text};
use support::rig::{Rig, addr};
use tongdai::acd::b2bua::Report;
use tongdai::config::{Credential, Secret};
use tongdai::sip::auth::{ChallengeKind, DigestServer, DigestServerConfig};
use tongdai::sip::message::{Method, Request, Response};
use tongdai::sip::trunk_register::RegistrationEvent;

const PROVIDER: &str = "127.0.0.1:5999";

fn section(registrar: &str) -> String {
    format!(
        "\n[trunk_registration]\nregistrar = \"{registrar}\"\ndomain = \"provider.test\"\n\
         user = \"842873001111\"\npassword = \"trunk-secret\"\nrealm = \"provider.test\"\n\
         expires = \"30m\"\nretry_min = \"30s\"\nretry_max = \"4m\"\n"
    )
}

fn rig() -> Rig {
    Rig::with_text(&[], &section(PROVIDER))
}

/// The REGISTERs sent to the provider since the last look (retransmissions folded).
fn registers(rig: &mut Rig) -> Vec<Request> {
    let mut out: Vec<Request> = rig
        .requests()
        .into_iter()
        .filter(|(f, r)| f.remote == addr(PROVIDER) && r.method == Method::Register)
        .map(|(_, r)| r)
        .collect();
    out.dedup_by_key(|r| r.headers.get("Via").cloned());
    out
}

fn reply(rig: &mut Rig, request: &Request, status: u16, extra: &[(&'static str, String)]) {
    let mut r = Response::for_request(request, status, Some("prov"));
    for (n, v) in extra {
        r.headers.push(*n, v.clone());
    }
    rig.receive(addr(PROVIDER), std::str::from_utf8(&r.to_bytes()).unwrap());
}

fn provider_digest(now: Instant) -> DigestServer {
    DigestServer::new(DigestServerConfig::new("provider.test"), [5; 32], now)
}

fn challenge(digest: &mut DigestServer, now: Instant, request: &Request, stale: bool) -> String {
    let algorithms = digest.config().algorithms.clone();
    let r = digest.challenge_response(now, request, ChallengeKind::Www, &algorithms, stale, None);
    r.headers.www_authenticate().unwrap().iter().map(|c| c.0.to_text()).next().unwrap()
}

fn up(rig: &Rig) -> Option<bool> {
    rig.sb.trunk_registration_up(rig.now)
}

fn events(rig: &mut Rig) -> Vec<RegistrationEvent> {
    std::mem::take(&mut rig.reports)
        .into_iter()
        .filter_map(|r| match r {
            Report::TrunkRegistration(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn registers_with_digest_for_its_realm_and_refreshes_before_expiry() {
    let mut rig = rig();
    let mut provider = provider_digest(rig.now);
    assert_eq!(up(&rig), Some(false));
    rig.advance(Duration::ZERO);
    let first = registers(&mut rig);
    assert_eq!(first.len(), 1, "one REGISTER at start");
    let r = &first[0];
    assert_eq!(r.uri.as_str(), "sip:provider.test");
    assert_eq!(r.headers.to().unwrap().uri.as_str(), "sip:842873001111@provider.test");
    assert_eq!(r.headers.expires().unwrap(), Some(1800));
    assert!(r.headers.get("Authorization").is_none());
    let call_id = r.headers.call_id().unwrap().to_owned();

    // 401 with SHA-256 and MD5 challenges for our realm: the answer verifies at the provider.
    let c = challenge(&mut provider, rig.now, r, false);
    reply(&mut rig, r, 401, &[("WWW-Authenticate", c)]);
    let second = registers(&mut rig);
    assert_eq!(second.len(), 1);
    let creds = Credential::Password(Secret::new("trunk-secret".into()));
    let lookup = |u: &str| (u == "842873001111").then_some(&creds);
    let verified = provider.verify_request(rig.now, &second[0], ChallengeKind::Www, lookup);
    assert_eq!(verified.map(|v| v.user).as_deref(), Ok("842873001111"));
    assert_eq!(second[0].headers.call_id().unwrap(), call_id);
    assert_eq!(second[0].headers.cseq().unwrap().seq, 2);

    // Granted 600 s (less than asked): up, refreshed a minute before it lapses, same Call-ID.
    let contact = second[0].headers.get("Contact").map(|v| String::from_utf8_lossy(v).into_owned());
    reply(&mut rig, &second[0], 200, &[("Contact", format!("{};expires=600", contact.unwrap()))]);
    assert_eq!(up(&rig), Some(true));
    assert_eq!(
        events(&mut rig),
        [RegistrationEvent::Registered { expires: Duration::from_secs(600) }]
    );
    rig.advance(Duration::from_secs(539));
    assert!(registers(&mut rig).is_empty());
    rig.advance(Duration::from_secs(1));
    let refresh = registers(&mut rig);
    assert_eq!(refresh.len(), 1);
    assert_eq!(refresh[0].headers.call_id().unwrap(), call_id);
    assert_eq!(refresh[0].headers.cseq().unwrap().seq, 3);
    assert_eq!(up(&rig), Some(true), "still up while the refresh is in flight");
}

/// A challenge from any realm but the configured one is not answered (no digest leaks to whoever
/// asks); failures back off 30 s, 60 s, 120 s, then stay at the 4 min cap.
#[test]
fn another_realm_is_never_answered_and_failures_back_off() {
    let mut rig = rig();
    let mut stranger = DigestServer::new(DigestServerConfig::new("evil.example"), [6; 32], rig.now);
    rig.advance(Duration::ZERO);
    let mut waits = Vec::new();
    for _ in 0..5 {
        let r = registers(&mut rig).pop().expect("a REGISTER");
        assert!(r.headers.get("Authorization").is_none());
        let c = challenge(&mut stranger, rig.now, &r, false);
        reply(&mut rig, &r, 401, &[("WWW-Authenticate", c)]);
        assert!(registers(&mut rig).is_empty(), "no credentials for another realm");
        match events(&mut rig).pop() {
            Some(RegistrationEvent::Failed { retry_in, .. }) => waits.push(retry_in.as_secs()),
            other => panic!("{other:?}"),
        }
        rig.advance(Duration::from_secs(*waits.last().unwrap()));
    }
    assert_eq!(waits, [30, 60, 120, 240, 240]);
    assert_eq!(up(&rig), Some(false));
}

/// A second challenge that is not `stale=true` means the password was refused: a failure, not a
/// loop. A stale one is answered once more.
#[test]
fn a_refused_password_fails_and_a_stale_nonce_is_answered_again() {
    let mut rig = rig();
    let mut provider = provider_digest(rig.now);
    rig.advance(Duration::ZERO);
    let r = registers(&mut rig).pop().unwrap();
    let c = challenge(&mut provider, rig.now, &r, false);
    reply(&mut rig, &r, 401, &[("WWW-Authenticate", c)]);
    let r = registers(&mut rig).pop().unwrap();
    let c = challenge(&mut provider, rig.now, &r, true);
    reply(&mut rig, &r, 401, &[("WWW-Authenticate", c)]);
    let r = registers(&mut rig).pop().expect("stale: answered again");
    assert!(r.headers.get("Authorization").is_some());
    let c = challenge(&mut provider, rig.now, &r, false);
    reply(&mut rig, &r, 401, &[("WWW-Authenticate", c)]);
    assert!(registers(&mut rig).is_empty());
    assert!(matches!(events(&mut rig).pop(), Some(RegistrationEvent::Failed { .. })));
}

#[test]
fn interval_too_brief_asks_again_with_min_expires_and_a_timeout_backs_off() {
    let mut rig = rig();
    rig.advance(Duration::ZERO);
    let r = registers(&mut rig).pop().unwrap();
    reply(&mut rig, &r, 423, &[("Min-Expires", "3600".into())]);
    let again = registers(&mut rig).pop().expect("asked again");
    assert_eq!(again.headers.expires().unwrap(), Some(3600));
    reply(&mut rig, &again, 200, &[("Expires", "3600".into())]);
    assert_eq!(up(&rig), Some(true));
    events(&mut rig);
    // The refresh is never answered: Timer F, then back-off; up until the 3600 s lapse.
    rig.advance(Duration::from_secs(3540 + 40));
    assert!(matches!(
        events(&mut rig).pop(),
        Some(RegistrationEvent::Failed { reason: "timeout", .. })
    ));
    assert_eq!(up(&rig), Some(true));
    rig.advance(Duration::from_secs(30));
    assert_eq!(up(&rig), Some(false));
}

fn sipp_uas(port: u16, limit: Duration, dir: &std::path::Path) -> std::process::Child {
    support::sipp::require_sipp();
    Command::new("sipp")
        .args(["-sf"])
        .arg(support::sipp::scenario("trunk-registrar-uas.xml"))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1", "-nostdin"])
        .args(["-timeout", &format!("{}s", limit.as_secs()), "-timeout_error"])
        .args(["-trace_msg", "-trace_err"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp")
}

/// The daemon registers to SIPp playing the provider's registrar: 401 (MD5, realm
/// provider.test), our answer verifies (SIPp's verifyauth), 200; the metric says up.
#[test]
fn the_daemon_registers_to_a_sipp_registrar_that_challenges() {
    let _serial = support::serial();
    let port = support::sipp::free_port();
    let dir = std::env::temp_dir().join(format!("tongdai-trunk-reg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut sipp = sipp_uas(port, Duration::from_secs(20), &dir);
    // SIPp needs a moment to bind; a REGISTER sent before is retransmitted (Timer E) anyway.
    let registrar: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let text = format!("{}{}", test_config_text(), section(&registrar.to_string()));
    let daemon = TestDaemon::with_config(&text);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut up = 0.0;
    while Instant::now() < deadline {
        up = daemon.metric("tongdai_trunk_registration_up ");
        if up == 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let code = loop {
        if let Some(status) = sipp.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = sipp.kill();
            let _ = sipp.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut logs = String::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        logs.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(up, 1.0, "the registration is up; SIPp:\n{logs}");
    assert_eq!(code, Some(0), "SIPp verified our digest and answered 200:\n{logs}");
}
