//! Real softphones against the digest server and the registrar, on loopback: a UDP socket on port 0
//! stands in for the runtime, the sans-IO cores decide every answer. baresip 1.0 registers through
//! a 401 with MD5 (and gives up when SHA-256 is offered at all), SIPp 3.6.1 registers with MD5.
//! Each peer is bounded in time and stopped by its own process id.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tongdai::config::{AgentConfig, AgentRole, Credential, Secret};
use tongdai::sip::auth::{
    Algorithm, AuthAnswer, ChallengeKind, DigestServer, DigestServerConfig, VerifiedUser,
};
use tongdai::sip::message::{Message, Request, parse_datagram};
use tongdai::sip::registrar::{Presence, Registrar, RegistrarConfig, to_tag};
use tongdai::sip::transport::{Flow, Transport};

/// A child process killed (by its id) and reaped when dropped, so a failing test leaves nothing.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tongdai-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn installed(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The registrar side: one socket, the digest server and the registrar, as the endpoint will run
/// them for a REGISTER.
struct Registry {
    socket: UdpSocket,
    digest: DigestServer,
    registrar: Registrar,
    agents: Vec<AgentConfig>,
    events: Vec<Presence>,
    verified: Vec<VerifiedUser>,
    challenges: usize,
}

impl Registry {
    fn new(config: DigestServerConfig) -> Registry {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let agents = vec![AgentConfig {
            id: "an".into(),
            name: "An".into(),
            user: "1001".into(),
            credential: Credential::Password(Secret::new("secret".into())),
            role: AgentRole::Operator,
        }];
        Registry {
            socket,
            digest: DigestServer::new(config, [42; 32], Instant::now()),
            registrar: Registrar::new(RegistrarConfig::default(), &agents),
            agents,
            events: Vec::new(),
            verified: Vec::new(),
            challenges: 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Answers REGISTERs until the agent is registered or `limit` passes.
    fn serve(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline && self.events.is_empty() {
            let Ok((n, from)) = self.socket.recv_from(&mut buf) else { continue };
            let Ok(Message::Request(request)) = parse_datagram(buf[..n].to_vec()) else {
                continue;
            };
            self.answer(&request, from);
        }
    }

    fn answer(&mut self, request: &Request, from: SocketAddr) {
        let now = Instant::now();
        let flow = Flow { transport: Transport::Udp, local: self.addr(), remote: from };
        let agents = &self.agents;
        let lookup = |u: &str| agents.iter().find(|a| a.user == u).map(|a| &a.credential);
        let response = match self.digest.verify_request(now, request, ChallengeKind::Www, lookup) {
            Ok(user) => {
                let out = self.registrar.handle_register(now, request, flow, &user);
                self.events.extend(out.events);
                self.verified.push(user);
                out.response
            }
            Err(failure) => {
                let AuthAnswer::Challenge { stale } = failure.answer() else {
                    panic!("{failure}: {request}")
                };
                self.challenges += 1;
                let to_user =
                    request.headers.to().ok().and_then(|to| to.uri.user().map(str::to_owned));
                let credential = to_user.as_deref().and_then(lookup);
                let algorithms = self.digest.algorithms_for_request(request, credential);
                let tag = to_tag(request);
                self.digest.challenge_response(
                    now,
                    request,
                    ChallengeKind::Www,
                    &algorithms,
                    stale,
                    Some(&tag),
                )
            }
        };
        // rport: answer where the request came from.
        self.socket.send_to(&response.to_bytes(), from).unwrap();
    }
}

fn start_baresip(dir: &Path, registrar: SocketAddr) -> Peer {
    std::fs::write(
        dir.join("config"),
        "sip_listen\t\t127.0.0.1:0\n\
         net_interface\t\t127.0.0.1\n\
         dns_server\t\t127.0.0.1:53\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tg711.so\n\
         module\t\t\tuuid.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tmenu.so\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:1001@{registrar};transport=udp>;auth_user=1001;auth_pass=secret;regint=600;\
             sipnat=outbound;outbound=\"sip:{registrar};transport=udp\"\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
    let child = Command::new("baresip")
        .arg("-f")
        .arg(dir)
        .args(["-t", "30", "-s"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Peer(child)
}

fn digest_config(algorithms: Vec<Algorithm>) -> DigestServerConfig {
    DigestServerConfig { algorithms, ..DigestServerConfig::new("tongdai") }
}

/// Runs baresip against a registry with `config` for at most `limit`; returns the registry and
/// baresip's log (with its SIP trace).
fn run_baresip(tag: &str, config: DigestServerConfig, limit: Duration) -> (Registry, String) {
    assert!(installed("baresip", "-h"), "baresip is not installed: run scripts/test");
    let mut registry = Registry::new(config);
    let dir = temp_dir(tag);
    let peer = start_baresip(&dir, registry.addr());
    registry.serve(limit);
    drop(peer);
    let log = std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default();
    (registry, log)
}

fn assert_registered_with_md5(registry: &Registry, log: &str) {
    assert_eq!(registry.events, [Presence::LoggedIn { agent: "an".into() }], "baresip:\n{log}");
    assert_eq!(registry.challenges, 1);
    assert_eq!(registry.verified[0].algorithm, Algorithm::Md5);
    let binding = registry.registrar.lookup("an")[0].clone();
    assert!(binding.instance.as_deref().is_some_and(|i| i.starts_with("<urn:uuid:")));
    assert_eq!(binding.flow.remote.ip(), registry.addr().ip());
}

#[test]
fn baresip_registers_with_md5() {
    let config = digest_config(vec![Algorithm::Md5]);
    let (registry, log) = run_baresip("baresip-md5", config, Duration::from_secs(15));
    assert_registered_with_md5(&registry, &log);
}

/// The trap this pins down: baresip 1.0 (libre 1.x) does not skip a challenge it cannot compute,
/// it gives up on the whole 401 ("Register: Function not implemented"), whatever the order.
#[test]
fn baresip_1_0_gives_up_when_sha256_is_offered() {
    for (tag, algorithms) in [
        ("baresip-sha-first", vec![Algorithm::Sha256, Algorithm::Md5]),
        ("baresip-md5-first", vec![Algorithm::Md5, Algorithm::Sha256]),
    ] {
        let (registry, log) = run_baresip(tag, digest_config(algorithms), Duration::from_secs(3));
        assert!(registry.events.is_empty(), "{tag}: {:?}", registry.events);
        assert_eq!(registry.challenges, 1, "{tag}");
        assert!(log.contains("Register: Function not implemented"), "{tag}:\n{log}");
    }
}

/// The way out: the default offer (SHA-256, MD5) for everyone, MD5 alone for `baresip v1.`.
#[test]
fn baresip_1_0_is_challenged_with_md5_alone_by_user_agent() {
    let config = DigestServerConfig {
        md5_only_user_agents: vec!["baresip v1.".into()],
        ..DigestServerConfig::new("tongdai")
    };
    assert_eq!(config.algorithms, [Algorithm::Sha256, Algorithm::Md5]);
    let (registry, log) = run_baresip("baresip-by-ua", config, Duration::from_secs(15));
    assert_registered_with_md5(&registry, &log);
}

/// Runs the SIPp register scenario against a registry with `config`; returns SIPp's exit code,
/// the registry and SIPp's output.
fn run_sipp(tag: &str, config: DigestServerConfig) -> (Option<i32>, Registry, String) {
    assert!(installed("sipp", "-v"), "SIPp is not installed: run scripts/test");
    let mut registry = Registry::new(config);
    let dir = temp_dir(tag);
    // The project's own agent scenario: REGISTER, 401, REGISTER with credentials, 200.
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-test-scenarios/agent-register.xml");
    let log = std::fs::File::create(dir.join("sipp.log")).unwrap();
    let child = Command::new("sipp")
        .arg(registry.addr().to_string())
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.1", "-p", "0", "-m", "1", "-nostdin", "-timeout", "5s"])
        .args(["-key", "user", "1001", "-key", "password", "secret", "-key", "expires", "120"])
        .args(["-d", "0"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut peer = Peer(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    registry.serve(Duration::from_secs(5));
    // Let SIPp read the 200 (or give up) and exit on its own.
    let code = loop {
        if let Some(status) = peer.0.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.join("sipp.log")).unwrap_or_default();
    (code, registry, log)
}

#[test]
fn sipp_registers_with_md5() {
    let (code, registry, log) = run_sipp("sipp-md5", digest_config(vec![Algorithm::Md5]));
    assert_eq!(code, Some(0), "SIPp:\n{log}");
    assert_eq!(registry.events, [Presence::LoggedIn { agent: "an".into() }]);
    assert_eq!(registry.verified[0].algorithm, Algorithm::Md5);
}

/// SIPp answers the first challenge only, and computes MD5 alone: SHA-256 first fails it
/// ("createAuthHeader: authentication must use MD5 or AKAv1-MD5"), MD5 first works.
#[test]
fn sipp_answers_only_the_first_challenge() {
    let sha_first = digest_config(vec![Algorithm::Sha256, Algorithm::Md5]);
    let (code, registry, log) = run_sipp("sipp-sha-first", sha_first);
    assert_ne!(code, Some(0));
    assert!(registry.events.is_empty());
    assert!(log.contains("authentication must use MD5"), "SIPp:\n{log}");
    let md5_first = digest_config(vec![Algorithm::Md5, Algorithm::Sha256]);
    let (code, registry, log) = run_sipp("sipp-md5-first", md5_first);
    assert_eq!(code, Some(0), "SIPp:\n{log}");
    assert_eq!(registry.verified[0].algorithm, Algorithm::Md5);
}
