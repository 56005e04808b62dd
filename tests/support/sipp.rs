//! SIPp (Debian `sip-tester`) as a real peer: runs a scenario against an address on loopback, bounded
//! in time, and reports whether it passed with its logs. Scenario files live in
//! `sip-test-scenarios/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The result of one SIPp run.
#[derive(Debug)]
pub struct SippRun {
    /// Exit status (0: every call succeeded).
    pub code: Option<i32>,
    /// Standard output and error.
    pub output: String,
    /// The message trace (`-trace_msg`).
    pub messages: String,
}

impl SippRun {
    /// Panics with the logs unless SIPp exited 0.
    pub fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "SIPp failed:\n{}\n--- messages ---\n{}",
            self.output,
            self.messages
        );
    }

    /// A server scenario that ended itself with `stop_now` (SIPp exits 97 then, whatever
    /// happened): no call may have failed.
    pub fn assert_stopped_ok(&self) {
        let failed = self
            .output
            .lines()
            .filter(|l| l.trim_start().starts_with("Failed call"))
            .filter_map(|l| l.rsplit('|').next().and_then(|n| n.trim().parse::<u64>().ok()))
            .max();
        let fail = format!("SIPp failed:\n{}\n--- messages ---\n{}", self.output, self.messages);
        assert_eq!(self.code, Some(97), "{fail}");
        assert_eq!(failed, Some(0), "{fail}");
    }
}

/// The path of a scenario in `sip-test-scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-test-scenarios").join(name)
}

/// Fails the test with a clear message when SIPp is not installed (scripts/test installs it).
pub fn require_sipp() {
    let ok =
        Command::new("sipp").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    assert!(ok, "SIPp is not installed: run scripts/test, which installs Debian's sip-tester");
}

/// Runs `sipp` with `args` against `target`, at most `limit` long; extra args go first. A unique
/// temporary directory holds its logs; SIPp is killed if it overruns.
pub fn run(target: SocketAddr, args: &[&str], limit: Duration) -> SippRun {
    run_on(free_port(), target, args, limit)
}

/// [`run`] with SIPp on 127.0.0.1:`port` (a UAS the daemon must be configured to reach).
pub fn run_on(port: u16, target: SocketAddr, args: &[&str], limit: Duration) -> SippRun {
    require_sipp();
    let dir = std::env::temp_dir().join(format!(
        "tongdai-sipp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("messages.log");
    // Output goes to files, never pipes: a chatty SIPp must not block on a full pipe.
    let stdout = std::fs::File::create(dir.join("stdout.log")).unwrap();
    let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let mut child = Command::new("sipp")
        .args(args)
        .arg(target.to_string())
        // An explicit free port: SIPp's default, 5060, may belong to a daemon on this machine, and
        // a SIPp that shares an address with the daemon reports it as failing.
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-nostdin", "-trace_msg", "-message_file"])
        .arg(&trace)
        .args(["-timeout", &format!("{}s", limit.as_secs().max(1)), "-timeout_error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start sipp");
    let deadline = Instant::now() + limit + Duration::from_secs(5);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let output = format!("{}{}", read("stdout.log"), read("stderr.log"));
    let messages = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    SippRun { code, output, messages }
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// SIPp as agent `user` (password `<user>-test-password`): registers with MD5 digest
/// (`agent-register.xml`), answers the daemon's INVITEs with the out-of-call scenario `answer`
/// (e.g. `agent-answer.xml`) and stays registered `stay_ms`; on its own thread.
pub fn agent(
    target: SocketAddr,
    user: &str,
    answer: &str,
    stay_ms: u64,
) -> std::thread::JoinHandle<SippRun> {
    let rtp = free_port().to_string();
    agent_with(target, user, answer, stay_ms, &[("rtp_port", &rtp)])
}

/// [`agent`] with the scenario keys `keys` (`rtp_port` among them, and any the answer scenario
/// takes, e.g. a transfer's `target_port`).
pub fn agent_with(
    target: SocketAddr,
    user: &str,
    answer: &str,
    stay_ms: u64,
    keys: &[(&str, &str)],
) -> std::thread::JoinHandle<SippRun> {
    let register = scenario("agent-register.xml").to_string_lossy().into_owned();
    let answer = scenario(answer).to_string_lossy().into_owned();
    let password = format!("{user}-test-password");
    let mut args: Vec<String> =
        ["-sf", &register, "-oocsf", &answer].into_iter().map(str::to_string).collect();
    for (key, value) in [("user", user), ("password", &password), ("expires", "120")]
        .into_iter()
        .chain(keys.iter().copied())
    {
        args.extend(["-key".to_string(), key.to_string(), value.to_string()]);
    }
    args.extend(["-d".to_string(), stay_ms.to_string(), "-m".to_string(), "1".to_string()]);
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(target, &args, Duration::from_millis(stay_ms + 10_000))
    })
}
