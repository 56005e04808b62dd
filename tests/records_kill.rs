//! Durability of the call records across `kill -9`: the daemon binary takes SIPp calls, one
//! finished well before the kill and one still waiting in the queue, and is killed with SIGKILL;
//! at the next start-up no offered call is missing, the finished one keeps its outcome and the
//! one in progress is closed as `interrupted` with its last phase.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::sipp::{free_port, run, scenario};

/// The phase of every call row, in order (read-only, while the daemon may be writing).
fn phases(db: &Path) -> Vec<(String, Option<String>)> {
    let Ok(conn) = rusqlite::Connection::open(db) else { return Vec::new() };
    let Ok(mut stmt) = conn.prepare("SELECT phase, outcome FROM calls ORDER BY id") else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// The daemon process, killed (SIGKILL) and reaped however the test ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn after_sigkill_finished_calls_keep_their_outcome_and_the_rest_are_interrupted() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("records-kill");
    let db = dir.join("records.db");
    let text = support::prompts::records_config(&dir, &db, &[]);
    let config = dir.join("tongdai.toml");
    std::fs::write(&config, &text).unwrap();

    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_tongdai"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The banner names the bound SIP address: "  SIP:     udp 127.0.0.1:PORT | tcp …".
    let mut lines = BufReader::new(daemon.0.stdout.take().unwrap()).lines();
    let sip: SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.trim().strip_prefix("SIP:").map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|a| a.parse().ok()))
        .expect("no SIP address in the banner");
    let caller = scenario("trunk-caller.xml").to_string_lossy().into_owned();

    // Call 1 hangs up during the prompt, well before the kill.
    let rtp = free_port().to_string();
    let first = run(
        sip,
        &["-sf", &caller, "-key", "rtp_port", &rtp, "-d", "500", "-m", "1"],
        Duration::from_secs(15),
    );
    first.assert_ok();
    std::thread::sleep(Duration::from_millis(1200));
    // Call 2 waits in the queue (no agent) when the daemon dies; its SIPp is cut short after.
    let rtp = free_port().to_string();
    let second = std::thread::spawn(move || {
        run(
            sip,
            &["-sf", &caller, "-key", "rtp_port", &rtp, "-d", "4000", "-m", "1"],
            Duration::from_secs(7),
        )
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while phases(&db).get(1).is_none_or(|p| p.0 != "queue") {
        if Instant::now() > deadline {
            panic!("call 2 never reached the queue: {:?}", phases(&db));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL: no drain, no flush.
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    let _ = second.join();

    // The next start-up's records open.
    let conn = tongdai::records::open(&db).unwrap();
    let rows: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT outcome, phase, reason FROM calls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![
            ("abandoned".into(), "prompt".into(), Some("prompt".into())),
            ("interrupted".into(), "queue".into(), None),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
