//! The daemon as a process: it starts on a config, serves `/metrics` and `/healthz`, tells systemd
//! READY / WATCHDOG / RELOADING / STOPPING, keeps its config when a reload is bad, applies a good one,
//! and exits 0 on SIGTERM. Loopback only, ports picked by the kernel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tongdai::config::DEFAULT_TOML;

struct Daemon {
    child: Child,
    http: SocketAddr,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn test_config(lines: u32) -> String {
    DEFAULT_TOML
        .replace("listen = [\"127.0.0.1:5060\"]", "listen = [\"127.0.0.1:0\"]")
        .replace("listen = \"127.0.0.1:9111\"", "listen = \"127.0.0.1:0\"")
        .replace("lines = 3", &format!("lines = {lines}"))
        .replace("drain_grace = \"30s\"", "drain_grace = \"2s\"")
        .replace(
            "prompts = \"prompts\"",
            &format!("prompts = \"{}/config/prompts\"", env!("CARGO_MANIFEST_DIR")),
        )
}

fn start(name: &str, notify: Option<&Path>) -> Daemon {
    let dir = std::env::temp_dir().join(format!("tongdai-life-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tongdai.toml"), test_config(3)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tongdai"));
    cmd.arg("run").arg("--config").arg(dir.join("tongdai.toml"));
    cmd.stdout(Stdio::piped()).stderr(Stdio::null()).env_remove("NOTIFY_SOCKET");
    if let Some(socket) = notify {
        cmd.env("NOTIFY_SOCKET", socket).env("WATCHDOG_USEC", "200000");
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut http = None;
    let mut line = String::new();
    while http.is_none() {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "daemon exited before its banner");
        if let Some(rest) = line.trim().strip_prefix("HTTP:") {
            let addr = rest.trim().trim_start_matches("http://").trim_end_matches("/metrics");
            http = Some(addr.parse().unwrap());
        }
    }
    // Keep draining stdout so the daemon never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Daemon { child, http: http.unwrap(), dir }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn signal(d: &Daemon, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(d.child.id().to_string()).status();
    assert!(ok.unwrap().success());
}

fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

fn wait_for_metric(d: &Daemon, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get(d.http, "/metrics");
        if metric(&body, series) == Some(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} never reached {value}:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(d: &mut Daemon, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "daemon did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_metrics_and_health_then_exits_0_on_sigterm() {
    let mut d = start("term", None);
    let (status, body) = get(d.http, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = get(d.http, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE tongdai_build_info gauge"), "{body}");
    assert!(body.contains("tongdai_config_reloads_total{result=\"rejected\"} 0"), "{body}");
    assert_eq!(get(d.http, "/readyz").0, 200);
    signal(&d, "TERM");
    assert_eq!(wait_exit(&mut d, Duration::from_secs(5)), Some(0));
}

#[test]
fn a_bad_reload_keeps_the_old_config_and_a_good_one_applies() {
    let d = start("hup", None);
    let path = d.dir.join("tongdai.toml");
    std::fs::write(&path, test_config(3).replace("lines = 3", "lines = 0")).unwrap();
    signal(&d, "HUP");
    wait_for_metric(&d, "tongdai_config_reloads_total{result=\"rejected\"}", 1.0);
    assert_eq!(get(d.http, "/healthz").0, 200, "still serving on the old config");
    // A deleted file is a bad reload too.
    std::fs::remove_file(&path).unwrap();
    signal(&d, "HUP");
    wait_for_metric(&d, "tongdai_config_reloads_total{result=\"rejected\"}", 2.0);
    std::fs::write(&path, test_config(2)).unwrap();
    signal(&d, "HUP");
    wait_for_metric(&d, "tongdai_config_reloads_total{result=\"applied\"}", 1.0);
    assert_eq!(get(d.http, "/healthz").0, 200);
}

#[test]
fn speaks_the_systemd_notify_protocol() {
    let dir = std::env::temp_dir().join(format!("tongdai-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let recv = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notify message");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let recv_until = |prefix: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let m = recv();
            if m.starts_with(prefix) {
                return m;
            }
            assert!(Instant::now() < deadline, "no {prefix}");
        }
    };
    let mut d = start("notify", Some(&path));
    assert!(recv_until("READY=1").contains("STATUS="));
    recv_until("WATCHDOG=1");
    signal(&d, "HUP");
    assert!(recv_until("RELOADING=1").contains("MONOTONIC_USEC="));
    recv_until("READY=1");
    signal(&d, "TERM");
    recv_until("STOPPING=1");
    assert_eq!(wait_exit(&mut d, Duration::from_secs(5)), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}
