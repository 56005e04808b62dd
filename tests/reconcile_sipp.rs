//! One scripted SIPp run on loopback — K calls overflowed to a SIPp national centre while nobody
//! is on duty, then M callers hanging up in the welcome prompt and N calls answered by a SIPp agent
//! — after which the metrics, the admin API, `tongdai report` and the records database all show
//! exactly those numbers.

mod support;

use std::thread::JoinHandle;
use std::time::Duration;

use support::daemon::TestDaemon;
use support::sipp::{SippRun, free_port, run, run_on, scenario};

const N_ANSWERED: u64 = 2;
const M_ABANDONED: u64 = 2;
const K_OVERFLOWED: u64 = 1;

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

fn call(d: &TestDaemon, talk_ms: u64) -> SippRun {
    let rtp = free_port().to_string();
    let (file, talk) = (sf("trunk-caller.xml"), talk_ms.to_string());
    let args = ["-sf", &file, "-key", "rtp_port", &rtp, "-d", &talk, "-m", "1"];
    run(d.sip_udp(), &args, Duration::from_secs(30))
}

fn national(d: &TestDaemon, port: u16) -> JoinHandle<SippRun> {
    let (target, file, rtp) = (d.sip_udp(), sf("national-answer.xml"), free_port().to_string());
    std::thread::spawn(move || {
        run_on(port, target, &["-sf", &file, "-key", "rtp_port", &rtp], Duration::from_secs(30))
    })
}

/// Polls (bounded) until `series` has grown by `by` since `from`.
fn grew(d: &TestDaemon, series: &str, from: f64, by: u64) -> bool {
    let want = from + by as f64;
    d.wait_metric(series, want) == want
}

/// `"key":value` of a flat JSON object's number field in `text`.
fn json_number(text: &str, key: &str) -> u64 {
    let body = &text[text.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["today"][key].as_u64().unwrap_or_else(|| panic!("no today.{key} in {body}"))
}

#[test]
fn metrics_api_report_and_database_agree_after_a_scripted_run() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("reconcile");
    let db = dir.join("records.db");
    let port = free_port();
    let mut text =
        support::prompts::records_config(&dir, &db, &[("wrap_up = \"30s\"", "wrap_up = \"0s\"")]);
    text.push_str(&format!(
        "\n[overflow]\nprobe_interval = \"1s\"\n\n[[overflow.targets]]\nname = \"national\"\n\
         uri = \"sip:111@127.0.0.1:{port}\"\n"
    ));
    let d = TestDaemon::with_config(&text);
    // Metrics are process-wide: this test counts from its own start.
    let series = [
        "tongdai_calls_offered_total",
        "tongdai_calls_answered_total",
        "tongdai_calls_abandoned_total{phase=\"prompt\"}",
        "tongdai_calls_overflowed_total{reason=\"no_agents\"}",
    ];
    let before: Vec<f64> = series.iter().map(|s| d.metric(s)).collect();

    // K overflowed: nobody is on duty; the national centre takes the call, then stops.
    let centre = national(&d, port);
    for _ in 0..K_OVERFLOWED {
        call(&d, 3_000).assert_ok();
    }
    centre.join().unwrap().assert_stopped_ok();
    assert!(grew(&d, series[3], before[3], K_OVERFLOWED), "{}", d.metrics());

    // An agent comes on duty: callers now stay in the region.
    let registered = d.metric("tongdai_registrations");
    let op1 = support::sipp::agent(d.sip_udp(), "op1", "agent-answer.xml", 25_000);
    assert!(grew(&d, "tongdai_registrations", registered, 1), "the SIPp agent never registered");
    // M abandoned: each hangs up 0.5 s into the 2 s welcome.
    for _ in 0..M_ABANDONED {
        call(&d, 500).assert_ok();
    }
    assert!(grew(&d, series[2], before[2], M_ABANDONED));
    // N answered by op1.
    for i in 0..N_ANSWERED {
        call(&d, 3_000).assert_ok();
        assert!(grew(&d, series[1], before[1], i + 1), "call {i} not answered");
    }
    let total = N_ANSWERED + M_ABANDONED + K_OVERFLOWED;
    assert!(grew(&d, series[0], before[0], total));

    // The API's figures for today.
    let board = d.get("/api/v1/board");
    assert_eq!(json_number(&board, "offered"), total, "{board}");
    assert_eq!(json_number(&board, "answered"), N_ANSWERED, "{board}");
    assert_eq!(json_number(&board, "abandoned"), M_ABANDONED, "{board}");
    assert_eq!(json_number(&board, "overflowed"), K_OVERFLOWED, "{board}");

    // The drain flushes the records writer.
    drop(d);
    let _ = op1.join();

    // The database.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |outcome: &str| -> u64 {
        let sql = "SELECT COUNT(*) FROM calls WHERE outcome = ?1";
        conn.query_row(sql, [outcome], |r| r.get::<_, i64>(0)).unwrap() as u64
    };
    assert_eq!(count("answered"), N_ANSWERED);
    assert_eq!(count("abandoned"), M_ABANDONED);
    assert_eq!(count("overflowed"), K_OVERFLOWED);
    let all: i64 = conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).unwrap();
    assert_eq!(all as u64, total, "no other rows (nothing left unfinished)");
    let reason: String = conn
        .query_row("SELECT reason FROM calls WHERE outcome = 'overflowed'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reason, "no_agents");
    drop(conn);

    // The report on the same file.
    let config = dir.join("tongdai.toml");
    std::fs::write(&config, &text).unwrap();
    let report = support::prompts::report(&config, &["--format", "csv"]);
    let all: Vec<&str> = report.lines().filter(|l| l.contains(",all,all,")).collect();
    let expected = format!(",all,all,{total},{N_ANSWERED},{M_ABANDONED},{K_OVERFLOWED},");
    assert!(all.len() == 1 && all[0].contains(&expected), "{expected} in\n{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
