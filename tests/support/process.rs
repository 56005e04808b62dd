//! The daemon binary as a separate process, for black-box tests: a crash or a panic is seen as
//! such, its memory (VmRSS) is its own, and its log (standard error) is kept in a file to read.
//! Killed and reaped however the test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `tongdai run --config …` process.
pub struct DaemonProcess {
    child: Child,
    /// The SIP address (UDP and TCP share the port).
    pub sip: SocketAddr,
    /// The admin HTTP address.
    pub http: SocketAddr,
    /// Where its standard error (the log) goes.
    pub log: PathBuf,
}

impl DaemonProcess {
    /// Writes `config` to `dir/tongdai.toml` and starts the binary on it; the banner on standard
    /// output gives the bound addresses.
    pub fn start(dir: &Path, config: &str) -> DaemonProcess {
        DaemonProcess::spawn(dir, config, Command::new(env!("CARGO_BIN_EXE_tongdai")))
    }

    /// Like [`DaemonProcess::start`], with every file the daemon writes limited to `max_bytes`
    /// (`prlimit --fsize`, util-linux): a disk that fills, without root or a small filesystem.
    pub fn start_limited(dir: &Path, config: &str, max_bytes: u64) -> DaemonProcess {
        let mut command = Command::new("prlimit");
        command.arg(format!("--fsize={max_bytes}")).arg("--").arg(env!("CARGO_BIN_EXE_tongdai"));
        DaemonProcess::spawn(dir, config, command)
    }

    fn spawn(dir: &Path, config: &str, mut command: Command) -> DaemonProcess {
        let path = dir.join("tongdai.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.join("tongdai.log");
        let mut child = command
            .arg("run")
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut sip, mut http) = (None, None);
        for line in lines.by_ref().map_while(Result::ok) {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("SIP:") {
                sip = rest.split_whitespace().nth(1).and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.strip_prefix("HTTP:") {
                let addr = rest.trim().trim_start_matches("http://").trim_end_matches("/metrics");
                http = addr.parse().ok();
            }
            if sip.is_some() && http.is_some() {
                break;
            }
        }
        // Keep reading the banner's pipe so the daemon never blocks on a full one.
        std::thread::spawn(move || for _ in lines {});
        let (Some(sip), Some(http)) = (sip, http) else {
            let _ = child.kill();
            panic!("no SIP/HTTP address in the banner; log:\n{}", read(&log));
        };
        DaemonProcess { child, sip, http, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reaps it: no drain, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process runs.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its resident memory, in kB (VmRSS).
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()));
        status
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:")?.trim().split(' ').next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// How many file descriptors it has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        read(&self.log)
    }

    /// The body of `GET path` on the admin listener.
    pub fn get(&self, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
    }

    /// The sum of every sample of `metric` (all label sets), 0 when absent.
    pub fn metric_sum(&self, metric: &str) -> f64 {
        self.get("/metrics")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                let bare = name.split('{').next()?;
                (bare == metric).then(|| value.parse::<f64>().ok()).flatten()
            })
            .sum()
    }

    /// Polls `metric` (bounded by `within`) until it equals `want`; the last value read.
    pub fn wait_metric(&self, metric: &str, want: f64, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let v = self.metric_sum(metric);
            if v == want || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
