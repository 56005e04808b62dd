//! A tongdai daemon started in-process for a test: its own tokio runtime, the default config with
//! every port picked by the kernel (port 0), and a clean drain when dropped.

use std::net::SocketAddr;
use std::time::Duration;

use tongdai::config::{Config, DEFAULT_TOML, Source};
use tongdai::runtime::Daemon;

/// A running daemon and the runtime it runs on.
pub struct TestDaemon {
    runtime: Option<tokio::runtime::Runtime>,
    daemon: Option<Daemon>,
}

/// The default configuration text with loopback port-0 listeners and a short drain.
pub fn test_config_text() -> String {
    DEFAULT_TOML
        .replace("listen = [\"127.0.0.1:5060\"]", "listen = [\"127.0.0.1:0\"]")
        .replace("listen = \"127.0.0.1:9111\"", "listen = \"127.0.0.1:0\"")
        .replace("drain_grace = \"30s\"", "drain_grace = \"1s\"")
        // Bindings stay in memory: tests running at once must not share one database (a test of
        // persistence names its own file).
        .replace("database = \"tongdai.db\"", "database = \"\"")
        // No call records either (a records test names its own file).
        .replace("path = \"records.db\"", "path = \"\"")
        // No OPTIONS keep-alives: scripted agents (SIPp) would take them for unexpected calls. The
        // keep-alive tests switch them on.
        .replace("keepalive_interval = \"30s\"", "keepalive_interval = \"0s\"")
        // The pseudonym key goes to the temporary folder, not into the checkout's config/.
        .replace(
            "key_file = \"pseudonym.key\"",
            &format!("key_file = {:?}", std::env::temp_dir().join("tongdai-test-pseudonym.key")),
        )
}

impl TestDaemon {
    /// Starts the default test configuration.
    pub fn start() -> TestDaemon {
        TestDaemon::with_config(&test_config_text())
    }

    /// Starts with `text` as the configuration.
    pub fn with_config(text: &str) -> TestDaemon {
        let (config, _) =
            Config::from_source(&Source::new("test.toml", text.to_string()), "config".as_ref())
                .unwrap_or_else(|e| panic!("test config refused:\n{e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let daemon = runtime.block_on(Daemon::start(config)).unwrap();
        TestDaemon { runtime: Some(runtime), daemon: Some(daemon) }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }

    /// Applies `text` as a reloaded configuration (what SIGHUP does with a good file).
    pub fn reload(&self, text: &str) {
        let (config, _) =
            Config::from_source(&Source::new("test.toml", text.to_string()), "config".as_ref())
                .unwrap_or_else(|e| panic!("reload config refused:\n{e}"));
        self.daemon().reload(config);
    }

    /// The SIP UDP address.
    pub fn sip_udp(&self) -> SocketAddr {
        self.daemon().sip_udp_addrs()[0]
    }

    /// The SIP TCP address.
    pub fn sip_tcp(&self) -> SocketAddr {
        self.daemon().sip_tcp_addrs()[0]
    }

    /// The admin HTTP address.
    pub fn http(&self) -> SocketAddr {
        self.daemon().http_addr()
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        self.get("/metrics")
    }

    /// The whole HTTP answer (head and body) to `GET path` on the admin listener.
    pub fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    }

    /// Polls `series` (bounded, 5 s) until it equals `want`; the last value read.
    pub fn wait_metric(&self, series: &str, want: f64) -> f64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.metric(series);
            if v == want || std::time::Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded, 10 s) until `agent` is logged in on this daemon (its state in
    /// `/api/v1/agents` is no longer `logged_out`): the registrations gauge is the test process's,
    /// shared by every daemon a test binary starts, so it cannot tell.
    pub fn wait_logged_in(&self, agent: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.get("/api/v1/agents");
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
            let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let state = json["agents"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["id"] == agent))
                .and_then(|a| a["state"].as_str().map(str::to_owned));
            if state.as_deref().is_some_and(|s| s != "logged_out") {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{agent} never logged in: {text}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// One sample of `series` (name with labels), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl TestDaemon {
    /// Starts the SIGTERM sequence (drain, grace period, stop) on a thread of its own, returned
    /// so the test can wait for the daemon's end; SIP and HTTP answer until the stop.
    pub fn drain_in_background(mut self) -> std::thread::JoinHandle<()> {
        let (rt, d) = (self.runtime.take(), self.daemon.take());
        std::thread::spawn(move || {
            if let (Some(rt), Some(d)) = (rt, d) {
                rt.block_on(d.drain());
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        })
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let (Some(rt), Some(d)) = (self.runtime.take(), self.daemon.take()) {
            rt.block_on(d.drain());
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
