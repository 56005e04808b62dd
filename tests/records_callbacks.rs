//! The opt-in call-back list (`[records] callbacks`): only an abandoned call from a known number
//! leaves its clear number (E.164) in `callbacks`, with its call's row and the time; answered and
//! withheld callers leave none; numbers past `callbacks_retention` are purged; with the option off
//! (the default) nothing is written and what an earlier run kept is deleted at start-up. In
//! process (the recorder and the writer), then end to end with SIPp on loopback.

mod support;

use std::time::Duration;

use tongdai::acd::b2bua::Report;
use tongdai::acd::identity::CallerNumber;
use tongdai::acd::{AbandonPhase, AgentId, CallId, Lane, Outcome, Output};
use tongdai::records::{self, Record, Recorder, Records, Retention};

use support::callers::{call, caller_scenario};
use support::daemon::TestDaemon;

const DAY_MS: i64 = 86_400_000;

fn started(call: u64) -> Report {
    Report::CallStarted {
        call: CallId(call),
        pseudonym: Some("ab".repeat(32)),
        province: None,
        lane: Lane::Normal,
    }
}

fn finished(call: u64, outcome: Outcome) -> Report {
    Report::Engine(Output::CallFinished { call: CallId(call), outcome })
}

fn abandoned() -> Outcome {
    Outcome::Abandoned { phase: AbandonPhase::Queue, wait: Duration::from_secs(9) }
}

fn number(raw: &str) -> CallerNumber {
    CallerNumber::normalise(raw).unwrap()
}

#[test]
fn only_an_abandoned_call_with_a_number_becomes_a_callback_before_its_end() {
    let mut r = Recorder::default();
    let answered = Outcome::Answered {
        agent: AgentId::new("op1"),
        wait: Duration::from_secs(3),
        talk: Duration::from_secs(60),
    };
    r.report(1_000, &started(1));
    r.caller_number(1, number("0901234567"));
    r.report(1_000, &started(2));
    r.caller_number(2, number("0912345678"));
    r.report(1_000, &started(3)); // withheld: no number given
    let one = r.report(9_000, &finished(1, abandoned()));
    let callback = one.iter().position(|x| matches!(x, Record::Callback { .. }));
    let end = one.iter().position(|x| matches!(x, Record::CallFinished { .. }));
    assert!(callback.unwrap() < end.unwrap(), "{one:?}");
    match &one[callback.unwrap()] {
        Record::Callback { call, at_ms, number } => {
            assert_eq!((*call, *at_ms, number.expose()), (1, 9_000, "+84901234567"));
        }
        other => panic!("{other:?}"),
    }
    // The Debug form of a callback record is redacted like every number.
    assert!(!format!("{one:?}").contains("901234567"));
    let two = r.report(9_000, &finished(2, answered));
    let three = r.report(9_000, &finished(3, abandoned()));
    for records in [two, three] {
        assert!(!records.iter().any(|x| matches!(x, Record::Callback { .. })), "{records:?}");
    }
}

fn temp_db(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tongdai-callbacks-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("records.db")
}

/// Runs `reports` (with `numbers` given at the start) through a writer with `retention`, and
/// flushes it.
fn write(
    path: &std::path::Path,
    retention: Retention,
    numbers: &[(u64, &str)],
    reports: &[Report],
) {
    let conn = records::open(path).unwrap();
    let mut handle = None;
    let mut records = Records::start(conn, retention, |f| handle = Some(std::thread::spawn(f)));
    for report in reports {
        if let Report::CallStarted { call, .. } = report {
            for (_, n) in numbers.iter().filter(|(c, _)| *c == call.0) {
                records.caller_number(call.0, number(n));
            }
        }
        records.report(report);
    }
    drop(records);
    handle.unwrap().join().unwrap();
}

fn callbacks(path: &std::path::Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT call, number FROM callbacks ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn the_writer_keeps_callbacks_only_when_on_purges_them_and_forgets_them_when_turned_off() {
    let path = temp_db("writer");
    let on = Retention {
        calls: Duration::from_secs(365 * 86_400),
        callbacks: Some(Duration::from_secs(7 * 86_400)),
    };
    let reports = [started(1), started(2), finished(1, abandoned()), finished(2, abandoned())];
    write(&path, on, &[(1, "0901234567")], &reports);
    // Call 1's row is the first: the number points at it.
    assert_eq!(callbacks(&path), vec![(1, "+84901234567".to_string())]);
    // Off: the numbers are not even taken.
    let off = Retention::from(Duration::from_secs(365 * 86_400));
    let mut records = Records::start(records::open(&path).unwrap(), off, |_| {});
    assert!(!records.keeps_callbacks());
    records.caller_number(3, number("0901234567"));
    drop(records);

    // Retention: an old number goes, a recent one stays.
    let conn = records::open(&path).unwrap();
    let now = tongdai::records::writer::unix_ms(std::time::SystemTime::now());
    conn.execute("UPDATE callbacks SET at_ms = ?1", [now - 8 * DAY_MS]).unwrap();
    conn.execute(
        "INSERT INTO callbacks (call, at_ms, number) VALUES (2, ?1, '+84912345678')",
        [now - DAY_MS],
    )
    .unwrap();
    assert_eq!(records::purge_callbacks(&conn, now - 7 * DAY_MS).unwrap(), 1);
    assert_eq!(callbacks(&path), vec![(2, "+84912345678".to_string())]);
    // A call purged by the calls' retention takes its call-back with it.
    assert_eq!(records::purge(&conn, i64::MAX).unwrap(), 2);
    assert!(callbacks(&path).is_empty());
    drop(conn);

    // Turned off: what an earlier run kept is deleted when the writer starts.
    write(&path, on, &[(1, "0901234567")], &reports);
    assert_eq!(callbacks(&path).len(), 1);
    write(&path, off, &[], &[]);
    assert!(callbacks(&path).is_empty());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn with_sipp_an_abandoned_caller_is_kept_for_a_callback_and_nobody_else_and_off_keeps_none() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("callbacks-sipp");
    let db = dir.join("records.db");
    let on =
        support::prompts::records_config(&dir, &db, &[("callbacks = false", "callbacks = true")]);
    let d = TestDaemon::with_config(&on);

    // 1: answered (a SIPp agent), from a landline.
    let before = d.metric("tongdai_registrations");
    let op1 = support::sipp::agent(d.sip_udp(), "op1", "agent-answer.xml", 6_000);
    if d.wait_metric("tongdai_registrations", before + 1.0) != before + 1.0 {
        panic!("the SIPp agent never registered: {:?}", op1.join());
    }
    let answered = d.metric("tongdai_calls_answered_total");
    call(d.sip_udp(), &caller_scenario(&dir, "02963852123", "111", &[]), 4_000).assert_ok();
    assert_eq!(d.wait_metric("tongdai_calls_answered_total", answered + 1.0), answered + 1.0);
    // 2: abandoned during the 2 s welcome, from a mobile written 84….
    call(d.sip_udp(), &caller_scenario(&dir, "84901234567", "111", &[]), 300).assert_ok();
    // 3: abandoned, with `Privacy: id` (the trunk asserts the number, which must not be kept).
    let private = support::sipp::scenario("trunk-caller-private.xml");
    call(d.sip_udp(), &private.to_string_lossy(), 300).assert_ok();
    drop(d);
    let _ = op1.join();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT id, outcome FROM calls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let outcomes: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(outcomes, ["answered", "abandoned", "abandoned"]);
    let kept: Vec<(i64, i64, String, i64)> = conn
        .prepare(
            "SELECT cb.call, cb.at_ms, cb.number, c.ended_ms FROM callbacks cb
             JOIN calls c ON c.id = cb.call",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (row, at_ms, number, ended_ms) = kept[0].clone();
    assert_eq!((row, number.as_str()), (rows[1].0, "+84901234567"));
    assert!((at_ms - ended_ms).abs() < 1_000, "kept at {at_ms}, the call ended at {ended_ms}");
    drop(conn);

    // Off (the default) on the same file: the kept number is deleted at start-up, and a new
    // abandoned call leaves none.
    let off = support::prompts::records_config(&dir, &db, &[]);
    let d = TestDaemon::with_config(&off);
    let offered = d.metric("tongdai_calls_offered_total");
    call(d.sip_udp(), &caller_scenario(&dir, "0901234567", "111", &[]), 300).assert_ok();
    assert_eq!(d.wait_metric("tongdai_calls_offered_total", offered + 1.0), offered + 1.0);
    drop(d);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM calls WHERE outcome = 'abandoned'"), 3);
    assert_eq!(count("SELECT COUNT(*) FROM callbacks"), 0);
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}
