//! No caller number leaks (issue 10, point 5): the daemon binary, logging at debug level, takes SIPp
//! calls from known numbers — a mobile written `0…` (answered, abandoned, and asserted behind
//! `Privacy: id`), a landline written `84…` (answered) and a mobile written `+84…` (abandoned) —
//! and then each number, in its `0…`, `84…` and `+84…` forms, is searched for in the daemon's log
//! (standard error), `/metrics` scraped during and after the calls, every admin API answer
//! (`/api/v1/board`, `/queue`, `/agents`, `/calls`), `tongdai report` (table and CSV) and the
//! records database file: none is there. The SIP Call-IDs and the peers' address are not in the
//! metrics either. With `[records] callbacks` on, the abandoned callers' numbers are in the
//! `callbacks` table and nowhere else.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::callers::{call, caller_scenario};
use support::sipp::{SippRun, scenario};

/// The national significant numbers of the test callers.
const MOBILE: &str = "901234567";
const LANDLINE: &str = "2963852123";
const OTHER_MOBILE: &str = "987654321";
const NUMBERS: [&str; 3] = [MOBILE, LANDLINE, OTHER_MOBILE];

/// The three ways a Vietnamese number is written.
fn forms(nsn: &str) -> [String; 3] {
    [format!("0{nsn}"), format!("84{nsn}"), format!("+84{nsn}")]
}

/// Panics when `text` (what `what` produced) holds any form of any test number.
fn assert_no_number(what: &str, text: &[u8]) {
    for nsn in NUMBERS {
        for form in forms(nsn) {
            let found = text.windows(form.len()).position(|w| w == form.as_bytes());
            if let Some(at) = found {
                let from = at.saturating_sub(120);
                let context = String::from_utf8_lossy(&text[from..(at + 120).min(text.len())]);
                panic!("{form} in {what}:\n…{context}…");
            }
        }
    }
}

/// The daemon binary, its output in files; stopped with SIGTERM (killed if it overruns).
struct Daemon {
    child: Child,
    sip: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, dir: &Path) -> Daemon {
        let (out, log) = (dir.join("stdout.log"), dir.join("stderr.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_tongdai"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // The banner names the bound addresses: "  SIP:     udp 127.0.0.1:P | tcp …" and
        // "  HTTP:    http://127.0.0.1:P/metrics".
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut daemon =
            Daemon { child, sip: ([0, 0, 0, 0], 0).into(), http: ([0, 0, 0, 0], 0).into(), log };
        loop {
            let banner = std::fs::read_to_string(&out).unwrap_or_default();
            let field = |name: &str| {
                banner.lines().find_map(|l| l.trim().strip_prefix(name).map(str::to_owned))
            };
            let sip = field("SIP:").and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
            let http = field("HTTP:").and_then(|l| {
                l.trim().strip_prefix("http://")?.strip_suffix("/metrics")?.parse().ok()
            });
            if let (Some(sip), Some(http)) = (sip, http) {
                daemon.sip = sip;
                daemon.http = http;
                return daemon;
            }
            assert!(Instant::now() < deadline, "no banner:\n{banner}\n{}", daemon.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (bounded) for the drain to finish and the records to be flushed.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path`: the status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// One sample of `series` in a scrape of `http`, 0 when absent.
fn metric(http: SocketAddr, series: &str) -> f64 {
    get(http, "/metrics")
        .1
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn wait_metric(http: SocketAddr, series: &str, at_least: f64) -> bool {
    (0..250).any(|_| {
        let ok = metric(http, series) >= at_least;
        if !ok {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok
    })
}

/// Every answer the admin API and `/metrics` give right now.
fn scrape(http: SocketAddr) -> Vec<(String, String)> {
    ["/metrics", "/api/v1/board", "/api/v1/queue", "/api/v1/agents", "/api/v1/calls"]
        .iter()
        .map(|path| {
            let (status, body) = get(http, path);
            assert_eq!(status, 200, "{path}: {body}");
            (path.to_string(), body)
        })
        .collect()
}

/// The Call-IDs in a SIPp message trace.
fn call_ids(run: &SippRun) -> Vec<String> {
    let mut ids: Vec<String> = run
        .messages
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Call-ID:").map(|v| v.trim().to_string()))
        .filter(|v| !v.is_empty())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `tongdai report` for all time, as a table and as CSV.
fn reports(config: &Path) -> Vec<(String, String)> {
    [&[][..], &["--format", "csv"][..]]
        .iter()
        .map(|extra| (format!("report {extra:?}"), support::prompts::report(config, extra)))
        .collect()
}

/// A folder with the records tests' prompts and a config at debug level, call records in
/// `records.db`, no wrap-up, and `[records] callbacks` as given. Returns the folder, the config
/// file and the database.
fn setup(name: &str, callbacks: bool) -> (PathBuf, PathBuf, PathBuf) {
    let dir = support::prompts::records_prompts(name);
    let db = dir.join("records.db");
    let cb = format!("callbacks = {callbacks}");
    let text = support::prompts::records_config(
        &dir,
        &db,
        &[
            ("level = \"info\"", "level = \"debug\""),
            ("wrap_up = \"30s\"", "wrap_up = \"0s\""),
            ("callbacks = false", cb.as_str()),
        ],
    );
    let config = dir.join("tongdai.toml");
    std::fs::write(&config, text).unwrap();
    (dir, config, db)
}

#[test]
fn no_number_in_the_log_metrics_api_report_or_database_and_no_call_id_in_metrics() {
    let _serial = support::serial();
    let (dir, config, db) = setup("privacy-leaks", false);
    let d = Daemon::start(&config, &dir);
    let mut answers: Vec<(String, String)> = Vec::new();
    let mut runs: Vec<SippRun> = Vec::new();

    let op1 = support::sipp::agent(d.sip, "op1", "agent-answer.xml", 20_000);
    assert!(wait_metric(d.http, "tongdai_registrations", 1.0), "the SIPp agent never registered");
    // Answered calls, scraped while they are in progress (queued, ringing, bridged).
    for (from, form) in [("0", MOBILE), ("84", LANDLINE)] {
        let file = caller_scenario(&dir, &format!("{from}{form}"), "111", &[]);
        let sip = d.sip;
        let caller = std::thread::spawn(move || call(sip, &file, 3_500));
        while !caller.is_finished() {
            answers.extend(scrape(d.http));
            std::thread::sleep(Duration::from_millis(150));
        }
        runs.push(caller.join().unwrap());
    }
    // Abandoned during the welcome: the mobile again, another written +84…, and the mobile's
    // number asserted by the trunk behind `Privacy: id`.
    runs.push(call(d.sip, &caller_scenario(&dir, &format!("0{MOBILE}"), "111", &[]), 300));
    runs.push(call(d.sip, &caller_scenario(&dir, &format!("+84{OTHER_MOBILE}"), "111", &[]), 300));
    runs.push(call(d.sip, &scenario("trunk-caller-private.xml").to_string_lossy(), 300));
    for run in &runs {
        run.assert_ok();
    }
    assert!(wait_metric(d.http, "tongdai_calls_answered_total", 2.0));
    assert!(wait_metric(d.http, "tongdai_calls_abandoned_total{phase=\"prompt\"}", 3.0));
    answers.extend(scrape(d.http));
    // The API really showed the calls in progress, and the scrape is the daemon's.
    assert!(answers.iter().any(|(p, a)| p == "/api/v1/calls" && a.contains("\"bridged\"")));
    assert!(
        answers.iter().any(|(p, a)| p == "/metrics" && a.contains("tongdai_calls_offered_total"))
    );
    let log = d.log_text();
    d.stop();
    let _ = op1.join();

    // The log is at debug level, and holds no number.
    assert!(log.contains("DEBUG"), "the log is not at debug level:\n{log}");
    assert_no_number("the daemon's log", log.as_bytes());
    // Metrics and API answers: no number; metrics: no Call-ID and no address either.
    let ids: Vec<String> = runs.iter().flat_map(call_ids).collect();
    assert_eq!(ids.len(), runs.len(), "one Call-ID per SIPp call: {ids:?}");
    for (path, answer) in &answers {
        assert_no_number(path, answer.as_bytes());
        if path == "/metrics" {
            for id in &ids {
                assert!(!answer.contains(id.as_str()), "Call-ID {id} in /metrics");
            }
            assert!(!answer.contains("127.0.0.1"), "an address in /metrics");
        }
    }
    // The report and the database file.
    for (what, text) in reports(&config) {
        assert!(text.contains("unknown") && text.contains("An Giang"), "{what}:\n{text}");
        assert_no_number(&what, text.as_bytes());
    }
    let bytes = support::prompts::database_bytes(&db);
    assert!(bytes.windows(9).any(|w| w == b"abandoned"), "not the records database");
    assert_no_number("the records database file", &bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_callbacks_on_abandoned_callers_numbers_are_in_the_callbacks_table_and_nowhere_else() {
    let _serial = support::serial();
    let (dir, config, db) = setup("privacy-callbacks", true);
    let d = Daemon::start(&config, &dir);
    let mut runs = Vec::new();
    runs.push(call(d.sip, &caller_scenario(&dir, &format!("0{MOBILE}"), "111", &[]), 300));
    runs.push(call(d.sip, &caller_scenario(&dir, &format!("84{LANDLINE}"), "111", &[]), 300));
    runs.push(call(d.sip, &caller_scenario(&dir, &format!("+84{OTHER_MOBILE}"), "111", &[]), 300));
    runs.push(call(d.sip, &scenario("trunk-caller-private.xml").to_string_lossy(), 300));
    for run in &runs {
        run.assert_ok();
    }
    assert!(wait_metric(d.http, "tongdai_calls_abandoned_total{phase=\"prompt\"}", 4.0));
    let answers = scrape(d.http);
    let log = d.log_text();
    d.stop();

    assert_no_number("the daemon's log", log.as_bytes());
    for (path, answer) in &answers {
        assert_no_number(path, answer.as_bytes());
    }
    for (what, text) in reports(&config) {
        assert_no_number(&what, text.as_bytes());
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut kept: Vec<String> = conn
        .prepare("SELECT number FROM callbacks")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    kept.sort();
    // Three abandoned callers with a number, in E.164; the private one is not kept.
    assert_eq!(
        kept,
        [format!("+84{LANDLINE}"), format!("+84{MOBILE}"), format!("+84{OTHER_MOBILE}")]
    );
    // Every other table, every column, as text: no number.
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'callbacks'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tables.iter().any(|t| t == "calls") && tables.iter().any(|t| t == "call_events"));
    for table in &tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let text: String = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..columns)
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                        rusqlite::types::ValueRef::Real(x) => x.to_string(),
                        rusqlite::types::ValueRef::Null => String::new(),
                    })
                    .collect();
                Ok(cells.join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("\n");
        assert_no_number(&format!("table {table}"), text.as_bytes());
    }
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}
