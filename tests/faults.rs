//! Faults from issue 12 §3 against the whole daemon on loopback, each checked for what matters to
//! the caller: an agent softphone killed mid-call (no BYE, no RTP) is found dead by the RTP
//! timeout and the caller is answered by another agent without ever being hung up; a records
//! disk that fills (a file-size limit on the daemon) costs records, not calls, and shows in
//! `/readyz` and the metrics; and a daemon killed with SIGKILL comes back with its agents still
//! registered (from SQLite) and no call left over from before the crash. The other faults have
//! their tests named in `benches/RESULTS.md` ("Faults").

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use support::agent::Agent;
use support::daemon::{TestDaemon, test_config_text};
use support::process::DaemonProcess;
use support::rtp_tool::{RtpTool, Tone};
use tongdai::media::g711::Codec;
use tongdai::sip::message::{Message, Method, Request, parse_datagram};

/// The daemon's own RTP range: apart from the default one, which other daemons on a shared
/// machine (other test binaries) may fill, so that a call is never refused 480 for want of a port.
fn own_ports(config: String) -> String {
    assert!(config.contains("rtp_port_min = 20000\nrtp_port_max = 20999"));
    config.replace(
        "rtp_port_min = 20000\nrtp_port_max = 20999",
        "rtp_port_min = 24000\nrtp_port_max = 24999",
    )
}

const CALLER_HZ: f64 = 440.0;
const AGENT_HZ: f64 = 1000.0;

/// An SDP offer or answer with PCMU at `port` on loopback.
fn sdp(origin: &str, port: u16) -> String {
    format!(
        "v=0\r\no={origin} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

/// The audio address an SDP body names (`c=` and `m=audio`).
fn media_addr(body: &[u8]) -> SocketAddr {
    let text = String::from_utf8_lossy(body);
    let ip = text.lines().find_map(|l| l.strip_prefix("c=IN IP4 ")).unwrap().trim();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .unwrap();
    format!("{ip}:{port}").parse().unwrap()
}

/// A trunk caller speaking literal SIP over UDP.
struct Caller {
    sock: UdpSocket,
    daemon: SocketAddr,
    call_id: String,
    to_tag: String,
    /// Where the daemon wants the caller's RTP.
    rtp: SocketAddr,
}

impl Caller {
    /// Calls 111 with our audio at `rtp`; returns once the 200 is ACKed.
    fn call(daemon: SocketAddr, rtp: SocketAddr, tag: &str) -> Caller {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let me = sock.local_addr().unwrap();
        let call_id = format!("fault-{tag}-{}@test", std::process::id());
        let body = sdp("caller", rtp.port());
        let invite = format!(
            "INVITE sip:111@{daemon} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{tag}-1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag={tag}\r\n\
             To: <sip:111@{daemon}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:caller@{me}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.send_to(invite.as_bytes(), daemon).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let ok = loop {
            assert!(Instant::now() < deadline, "no answer to the INVITE");
            if let Some(Message::Response(r)) = recv(&sock)
                && r.status >= 200
            {
                break r;
            }
        };
        assert_eq!(ok.status, 200, "{ok:?}");
        let to_tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
        let caller = Caller { sock, daemon, call_id, to_tag, rtp: media_addr(&ok.body) };
        caller.in_dialog("ACK", 1, tag);
        caller
    }

    fn in_dialog(&self, method: &str, cseq: u32, tag: &str) {
        let me = self.sock.local_addr().unwrap();
        let daemon = self.daemon;
        let msg = format!(
            "{method} sip:111@{daemon} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{tag}-{method}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag={tag}\r\n\
             To: <sip:111@{daemon}>;tag={}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            self.to_tag, self.call_id
        );
        self.sock.send_to(msg.as_bytes(), self.daemon).unwrap();
    }

    /// What reached the caller since the last look (methods and status codes), read without
    /// waiting long.
    fn received(&self) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(m) = recv(&self.sock) {
            seen.push(match m {
                Message::Request(r) => r.method.as_str().to_owned(),
                Message::Response(r) => r.status.to_string(),
            });
        }
        seen
    }

    /// True when a BYE reached the caller so far.
    fn got_bye(&self) -> bool {
        self.received().iter().any(|m| m == "BYE")
    }
}

fn recv(sock: &UdpSocket) -> Option<Message> {
    let mut buf = [0u8; 8192];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    parse_datagram(bytes::Bytes::copy_from_slice(&buf[..n])).ok()
}

/// The first INVITE either agent receives within `within`: (index of the agent, the INVITE, who
/// sent it).
fn first_invite(agents: &[&Agent], within: Duration) -> Option<(usize, Request, SocketAddr)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for (i, a) in agents.iter().enumerate() {
            if let Some((r, from)) = a.recv_request(Duration::from_millis(50))
                && r.method == Method::Invite
            {
                return Some((i, r, from));
            }
        }
    }
    None
}

/// An agent killed mid-call: op answers, is bridged, then its process is gone (no BYE, no RTP, its
/// port closed). The RTP timeout finds the dead leg; the caller, never hung up, goes back to the
/// front of the queue and the other agent answers; the caller then hears that agent.
#[test]
fn an_agent_killed_mid_call_is_found_dead_and_the_caller_is_answered_by_another_agent() {
    let _serial = support::serial();
    let prompts = support::prompts::short_prompts("fault-agent-killed");
    let text = support::prompts::with_prompts(&test_config_text(), &prompts)
        .replace("rtp_timeout = \"120s\"", "rtp_timeout = \"2s\"")
        .replace("menu_timeout = \"4s\"", "menu_timeout = \"200ms\"")
        .replace("ring_timeout = \"15s\"", "ring_timeout = \"3s\"");
    let d = TestDaemon::with_config(&own_ports(text));
    let dead_agents = "tongdai_media_dead_legs_total{leg=\"agent\"} ";
    let dead0 = d.metric(dead_agents);
    let mut op1 = Agent::new(d.sip_udp(), "op1", "op1-test-password");
    let mut op2 = Agent::new(d.sip_udp(), "op2", "op2-test-password");
    assert_eq!(op1.register(600).status, 200);
    assert_eq!(op2.register(600).status, 200);
    d.wait_metric("tongdai_agents{state=\"available\"} ", 2.0);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let (caller_rtp, caller_local) = rt.block_on(RtpTool::bind());
    let (agent_rtp, agent_local) = rt.block_on(RtpTool::bind());
    let caller = Caller::call(d.sip_udp(), caller_local, "k1");
    // The caller talks for the whole test (30 s at most).
    let talk = caller_rtp.spawn_tone(caller.rtp, Tone::new(CALLER_HZ, Codec::Pcmu, 0x1111), 1500);

    let (first, invite, from) =
        first_invite(&[&op1, &op2], Duration::from_secs(10)).expect("an agent is rung");
    let (killed, other) = if first == 0 { (op1, op2) } else { (op2, op1) };
    // The doomed softphone answers with audio at a port where nothing will ever listen ...
    let nowhere = UdpSocket::bind("127.0.0.1:0").unwrap();
    let nowhere_port = nowhere.local_addr().unwrap().port();
    drop(nowhere);
    killed.answer(&invite, 200, from, Some(&sdp("killed", nowhere_port)));
    std::thread::sleep(Duration::from_millis(300));
    // ... and is killed: its socket closes, no BYE is ever sent.
    drop(killed);

    let (_, invite, from) =
        first_invite(&[&other], Duration::from_secs(15)).expect("the other agent is rung");
    assert_eq!(d.metric(dead_agents), dead0 + 1.0, "the dead leg was detected");
    other.answer(&invite, 200, from, Some(&sdp("other", agent_local.port())));
    let agent_side = media_addr(&invite.body);
    let reply = agent_rtp.spawn_tone(agent_side, Tone::new(AGENT_HZ, Codec::Pcmu, 0x2222), 150);
    rt.block_on(async {
        agent_rtp.wait_for(100, Duration::from_secs(10)).await;
        caller_rtp.wait_for(1, Duration::from_secs(10)).await;
    });
    rt.block_on(reply).unwrap();
    let heard_by_agent = agent_rtp.recording();
    assert!(heard_by_agent.contains_tone(CALLER_HZ), "the other agent hears the caller");
    let heard_by_caller = caller_rtp.recording();
    assert!(heard_by_caller.contains_tone(AGENT_HZ), "the caller hears the other agent");
    assert!(!caller.got_bye(), "the caller was never hung up");
    caller.in_dialog("BYE", 2, "k1");
    talk.abort();
    d.wait_metric("tongdai_calls_active ", 0.0);
    let _ = std::fs::remove_dir_all(prompts);
}

/// The records disk fills: the daemon runs under a file-size limit (`prlimit --fsize`) far below
/// what its call records need. Calls are still answered, `/readyz` reports the records writer
/// down and the failures are counted, nothing panics, and the daemon stays up.
#[test]
fn a_full_records_disk_costs_records_not_calls_and_shows_in_readyz() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("fault-disk-full");
    let db = dir.join("records.db");
    let text = own_ports(support::prompts::records_config(&dir, &db, &[]));
    // 64 KiB per file: the empty database fits, a few dozen calls do not.
    let mut d = DaemonProcess::start_limited(&dir, &text, 64 * 1024);
    assert!(d.get("/readyz").contains("\"records\""), "{}", d.get("/readyz"));
    let caller = support::sipp::scenario("trunk-caller.xml").to_string_lossy().into_owned();
    let mut failures = 0.0;
    for _ in 0..40 {
        let rtp = support::sipp::free_port().to_string();
        let run = support::sipp::run(
            d.sip,
            &["-sf", &caller, "-key", "rtp_port", &rtp, "-d", "100", "-m", "5", "-r", "50"],
            Duration::from_secs(20),
        );
        run.assert_ok();
        failures = d.metric_sum("tongdai_records_write_failures_total");
        if failures > 0.0 {
            break;
        }
    }
    assert!(failures > 0.0, "the limit was never reached; log:\n{}", d.log_text());
    assert!(d.is_alive(), "the daemon died; log:\n{}", d.log_text());
    // Calls go on: a new one is still answered (and abandoned by its caller after the prompt).
    let rtp = support::sipp::free_port().to_string();
    let run = support::sipp::run(
        d.sip,
        &["-sf", &caller, "-key", "rtp_port", &rtp, "-d", "100", "-m", "1"],
        Duration::from_secs(20),
    );
    run.assert_ok();
    assert_eq!(d.metric_sum("tongdai_records_writable"), 0.0);
    let ready = d.get("/readyz");
    assert!(ready.contains("\"records\""), "{ready}");
    assert!(!ready.contains("\"ready\":true"), "{ready}");
    let log = d.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(d.is_alive());
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGKILL and restart on the same databases: the agent registered before the crash is still
/// logged in (restored from SQLite, probed on its old flow), no call or dialog from before the
/// crash lingers (the one in progress is closed as `interrupted` in the records), and a new call
/// reaches the agent without a new REGISTER.
#[test]
fn after_sigkill_a_restart_restores_registrations_and_keeps_no_stale_call() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("fault-sigkill");
    let db = dir.join("records.db");
    let bindings = dir.join("bindings.db");
    let text = support::prompts::records_config(
        &dir,
        &db,
        &[
            ("database = \"\"", &format!("database = {:?}", bindings.display().to_string())),
            ("keepalive_interval = \"0s\"", "keepalive_interval = \"1s\""),
        ],
    );
    let text = own_ports(text);
    let mut first = DaemonProcess::start(&dir, &text);
    let mut agent = Agent::new(first.sip, "op1", "op1-test-password");
    assert_eq!(agent.register(600).status, 200);
    assert_eq!(first.wait_metric("tongdai_registrations", 1.0, Duration::from_secs(10)), 1.0);
    // A caller is in the welcome prompt when the daemon dies.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tool, rtp) = rt.block_on(RtpTool::bind());
    let caller = Caller::call(first.sip, rtp, "s1");
    assert_eq!(first.wait_metric("tongdai_calls_active", 1.0, Duration::from_secs(5)), 1.0);
    first.kill();
    drop(first);
    drop(caller);
    // Whatever the first daemon sent is stale now.
    while agent.recv(Duration::from_millis(200)).is_some() {}

    let second = DaemonProcess::start(&dir, &text);
    let (options, from) =
        agent.recv_request(Duration::from_secs(10)).expect("the restored binding is probed");
    assert_eq!(options.method, Method::Options);
    assert_eq!(from, second.sip);
    agent.answer(&options, 200, from, None);
    assert_eq!(second.wait_metric("tongdai_registrations", 1.0, Duration::from_secs(10)), 1.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !second.get("/metrics").contains("tongdai_agents{state=\"available\"} 1") {
        assert!(Instant::now() < deadline, "op1 is not available after the restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(second.metric_sum("tongdai_calls_active"), 0.0, "no call survives the crash");
    assert_eq!(second.metric_sum("tongdai_sip_dialogs"), 0.0);
    let conn = tongdai::records::open(&db).unwrap();
    let outcomes: Vec<String> = conn
        .prepare("SELECT outcome FROM calls ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(outcomes, ["interrupted"]);
    // A new call reaches the restored agent without a new REGISTER.
    let (_tool2, rtp2) = rt.block_on(RtpTool::bind());
    let _caller2 = Caller::call(second.sip, rtp2, "s2");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut rung = false;
    while !rung && Instant::now() < deadline {
        match agent.recv_request(Duration::from_millis(200)) {
            Some((r, from)) if r.method == Method::Options => agent.answer(&r, 200, from, None),
            Some((r, _)) => rung = r.method == Method::Invite,
            None => {}
        }
    }
    assert!(rung, "the restored agent is rung");
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The methods a [`ringing_peer`] received (each INVITE once), as they come.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<Method>>>;

/// A peer that only ever rings: OPTIONS get 200, an INVITE 180 (and, once CANCELled, 200 and
/// 487), a BYE 200. Runs on its own thread until `stop` and its socket is empty, noting what it
/// received in `seen`.
fn ringing_peer(
    peer: Agent,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: Seen,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let note = |m: Method| seen.lock().unwrap().push(m);
        let mut invites: Vec<(Request, SocketAddr)> = Vec::new();
        loop {
            // Once stopped, what is still queued on the socket is read before leaving.
            let Some((r, from)) = peer.recv_request(Duration::from_millis(50)) else {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                continue;
            };
            match r.method {
                Method::Options | Method::Bye => peer.answer(&r, 200, from, None),
                Method::Invite => {
                    if !invites.iter().any(|(i, _)| i.headers.call_id() == r.headers.call_id()) {
                        note(Method::Invite);
                        invites.push((r.clone(), from));
                    }
                    peer.answer(&r, 180, from, None);
                }
                Method::Cancel => {
                    note(Method::Cancel);
                    peer.answer(&r, 200, from, None);
                    let invite =
                        invites.iter().find(|(i, _)| i.headers.call_id() == r.headers.call_id());
                    if let Some((invite, from)) = invite {
                        peer.answer(invite, 487, *from, None);
                    }
                }
                _ => {}
            }
        }
    })
}

/// Waits (bounded, 10 s) until `seen` holds `n` INVITEs.
fn wait_invites(seen: &Seen, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if seen.lock().unwrap().iter().filter(|m| **m == Method::Invite).count() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// SIGTERM with calls ringing, end to end: caller R rings the one agent, caller O (the queue
/// full) is being handed over and rings at the national centre. The drain hands R to the centre
/// too (the agent's ringing leg is CANCELled), and when the grace period ends every centre leg
/// still ringing is CANCELled and every caller gets a BYE: nobody is left on an open line, and the
/// daemon stops. (Bridged and queued calls and a new call during the drain are in
/// `tests/drain_sipp.rs`; a caller in the welcome prompt in `tests/acd_overflow.rs`.)
#[test]
fn sigterm_with_a_call_ringing_an_agent_and_one_ringing_at_the_centre_ends_every_leg() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let _serial = support::serial();
    let dir = std::env::temp_dir().join(format!("tongdai-fault-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, secs) in [
        ("welcome.wav", 8.0),
        ("urgent-menu.wav", 0.2),
        ("hold-music.wav", 1.0),
        ("transfer-national.wav", 0.2),
    ] {
        support::prompts::write_tone(&dir.join(file), 400.0, secs);
    }
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let centre = Agent::new(unused, "national", "-");
    let centre_addr = centre.local_addr();
    let text = support::prompts::with_prompts(&test_config_text(), &dir)
        .replace("menu_timeout = \"4s\"", "menu_timeout = \"200ms\"")
        .replace("drain_grace = \"1s\"", "drain_grace = \"3s\"")
        .replace("max_queue = 20", "max_queue = 1")
        .replace("lines = 3", "lines = 1")
        + &format!(
            "\n[overflow]\nprobe_interval = \"1s\"\n\n[[overflow.targets]]\nname = \"national\"\n\
             uri = \"sip:111@{centre_addr}\"\n"
        );
    let d = TestDaemon::with_config(&own_ports(text));
    let sip = d.sip_udp();
    let mut op1 = Agent::new(sip, "op1", "op1-test-password");
    assert_eq!(op1.register(600).status, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let (centre_seen, op1_seen) = (Seen::default(), Seen::default());
    let centre = ringing_peer(centre, stop.clone(), centre_seen.clone());
    let op1 = ringing_peer(op1, stop.clone(), op1_seen.clone());
    assert_eq!(d.wait_metric("tongdai_overflow_target_up{target=\"national\"}", 1.0), 1.0);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let tools: Vec<(RtpTool, SocketAddr)> = (0..2).map(|_| rt.block_on(RtpTool::bind())).collect();
    let r = Caller::call(sip, tools[0].1, "dr");
    std::thread::sleep(Duration::from_secs(5));
    // R (prompt, 3 s left) fills the queue's one place; O overflows on arrival.
    let o = Caller::call(sip, tools[1].1, "do");
    assert!(wait_invites(&centre_seen, 1), "O was not handed over");
    assert!(wait_invites(&op1_seen, 1), "R never rang the agent");
    std::thread::sleep(Duration::from_millis(300));
    // SIGTERM.
    let stopped = d.drain_in_background();
    let started = Instant::now();
    stopped.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(15), "the drain overran its grace period");
    stop.store(true, Ordering::Relaxed);
    centre.join().unwrap();
    op1.join().unwrap();
    let centre = centre_seen.lock().unwrap().clone();
    let op1 = op1_seen.lock().unwrap().clone();
    assert_eq!(op1, [Method::Invite, Method::Cancel], "the agent's ringing leg is cancelled");
    let invites = centre.iter().filter(|m| **m == Method::Invite).count();
    let cancels = centre.iter().filter(|m| **m == Method::Cancel).count();
    assert_eq!(invites, 2, "R handed to the centre as well as O: {centre:?}");
    assert_eq!(cancels, invites, "every leg still ringing at the stop is cancelled: {centre:?}");
    for (name, caller) in [("R", &r), ("O", &o)] {
        let seen = caller.received();
        assert!(
            seen.iter().any(|m| m == "BYE"),
            "caller {name} was left on an open line: it received {seen:?}; the centre {centre:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The config file is deleted, then SIGHUP: the reload is refused with a clear error naming the
/// file, counted, and the daemon keeps serving on the config it had — a call is still answered.
#[test]
fn a_reload_after_the_config_file_was_deleted_keeps_the_old_config_and_serves() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("fault-config-gone");
    let text = own_ports(support::prompts::with_prompts(&test_config_text(), &dir));
    let d = DaemonProcess::start(&dir, &text);
    let path = dir.join("tongdai.toml");
    std::fs::remove_file(&path).unwrap();
    let hup =
        std::process::Command::new("kill").args(["-HUP", &d.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    let rejected = "tongdai_config_reloads_total";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.get("/metrics").contains("tongdai_config_reloads_total{result=\"rejected\"} 1") {
        assert!(Instant::now() < deadline, "the reload was not refused; log:\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log_text();
    let refused = log.lines().find(|l| l.contains("reload refused")).unwrap_or_default();
    assert!(refused.contains("previous configuration stays"), "{log}");
    let error = log.lines().find(|l| l.contains("cannot read the file")).unwrap_or_default();
    assert!(error.contains("tongdai.toml"), "the error names the file:\n{log}");
    assert_eq!(d.metric_sum(rejected), 1.0, "nothing applied");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tool, rtp) = rt.block_on(RtpTool::bind());
    let caller = Caller::call(d.sip, rtp, "cg");
    caller.in_dialog("BYE", 2, "cg");
    let _ = std::fs::remove_dir_all(&dir);
}
