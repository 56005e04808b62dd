//! Call records: the queue log and agent log a run of reports makes, durability across a crash
//! (rows left open are closed as `interrupted` with their last phase), the retention purge, the
//! writer surviving a failing disk, and the daily report's figures.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;
use tongdai::acd::b2bua::Report;
use tongdai::acd::{AbandonPhase, AgentId, AgentState, CallId, Lane, Outcome, Output, PauseReason};
use tongdai::records::report::{self, Format};
use tongdai::records::{self, Record, Recorder, Records};

fn temp_db(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tongdai-records-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("records.db")
}

/// A writer on its own thread; dropping the handle and joining the thread flushes it.
fn writer(path: &std::path::Path) -> (Records, std::thread::JoinHandle<()>) {
    let conn = records::open(path).unwrap();
    let mut handle = None;
    let records = Records::start(conn, Duration::from_secs(365 * 86_400), |f| {
        handle = Some(std::thread::spawn(f));
    });
    (records, handle.unwrap())
}

fn started(call: u64, pseudonym: Option<&str>, province: Option<&'static str>) -> Report {
    Report::CallStarted {
        call: CallId(call),
        pseudonym: pseudonym.map(str::to_owned),
        province,
        lane: Lane::Normal,
    }
}

fn engine(o: Output) -> Report {
    Report::Engine(o)
}

/// outcome, phase, province, agent, lane.
type CallRow = (String, String, String, Option<String>, Option<String>);

const DAY0_MS: i64 = 1_800_000_000_000;

/// Feeds reports at successive seconds from `DAY0_MS`.
fn feed(records: &mut Recorder, reports: &[Report]) -> Vec<Record> {
    reports
        .iter()
        .enumerate()
        .flat_map(|(i, r)| records.report(DAY0_MS + i as i64 * 1000, r))
        .collect()
}

#[test]
fn a_call_and_an_agent_leave_their_logs_and_a_crash_leaves_interrupted_rows() {
    let path = temp_db("crash");
    let a = AgentId::new("op1");
    let (records, thread) = writer(&path);
    let mut recorder = Recorder::default();
    let answered = feed(
        &mut recorder,
        &[
            engine(Output::AgentState { agent: a.clone(), state: AgentState::Available }),
            started(1, Some("ab12"), Some("Cần Thơ")),
            Report::MenuChoice { call: CallId(1), urgent: true },
            engine(Output::StartHold { call: CallId(1) }),
            engine(Output::AnnouncePosition { call: CallId(1), position: 1 }),
            engine(Output::RingAgent { call: CallId(1), agent: a.clone() }),
            engine(Output::Bridge { call: CallId(1), agent: a.clone() }),
            engine(Output::CallFinished {
                call: CallId(1),
                outcome: Outcome::Answered {
                    agent: a.clone(),
                    wait: Duration::from_secs(3),
                    talk: Duration::from_secs(60),
                },
            }),
            engine(Output::AgentState {
                agent: a.clone(),
                state: AgentState::Paused { reason: PauseReason::Agent },
            }),
            engine(Output::AgentState { agent: a.clone(), state: AgentState::Available }),
            engine(Output::AgentState { agent: a.clone(), state: AgentState::LoggedOut }),
            // Call 2 is queued and ringing when the process dies.
            started(2, None, None),
            engine(Output::StartHold { call: CallId(2) }),
            engine(Output::RingAgent { call: CallId(2), agent: a.clone() }),
            // Call 3 is still in its prompt.
            started(3, None, None),
        ],
    );
    for r in answered {
        records.send(r);
    }
    // The process state is lost: the writer flushes what it was given, nobody finishes the calls.
    drop(records);
    thread.join().unwrap();

    let conn = Connection::open(&path).unwrap();
    let open: i64 = conn
        .query_row("SELECT COUNT(*) FROM calls WHERE outcome IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(open, 2);
    drop(conn);

    // Start-up closes them.
    let conn = records::open(&path).unwrap();
    let rows: Vec<CallRow> = conn
        .prepare("SELECT outcome, phase, province, agent, lane FROM calls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "answered".into(),
                "talking".into(),
                "Cần Thơ".into(),
                Some("op1".into()),
                Some("urgent".into())
            ),
            ("interrupted".into(), "ringing".into(), "unknown".into(), None, Some("normal".into())),
            ("interrupted".into(), "prompt".into(), "unknown".into(), None, Some("normal".into())),
        ]
    );
    let (wait, talk, caller): (i64, i64, String) = conn
        .query_row("SELECT wait_ms, talk_ms, caller FROM calls WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((wait, talk, caller.as_str()), (3000, 60_000, "ab12"));
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM call_events WHERE call = 1 ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kinds,
        ["offered", "menu_choice", "queued", "announced", "ring", "answered", "ended"]
    );
    let agent_log: Vec<(String, Option<String>)> = conn
        .prepare("SELECT kind, detail FROM agent_events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        agent_log,
        vec![
            ("login".into(), None),
            ("pause".into(), Some("agent".into())),
            ("resume".into(), None),
            ("logout".into(), None),
        ]
    );
    // An interrupted call ends at its last logged event.
    let ended: i64 =
        conn.query_row("SELECT ended_ms FROM calls WHERE id = 2", [], |r| r.get(0)).unwrap();
    assert_eq!(ended, DAY0_MS + 13_000);
    // A second start finds nothing left to close.
    drop(conn);
    let mut conn = tongdai::store::open(&path).unwrap();
    assert_eq!(records::prepare(&mut conn).unwrap(), 0);
}

#[test]
fn the_purge_removes_calls_and_events_past_retention_only() {
    let path = temp_db("purge");
    let (records, thread) = writer(&path);
    let mut recorder = Recorder::default();
    for r in feed(
        &mut recorder,
        &[started(1, None, None), engine(Output::StartHold { call: CallId(1) })],
    ) {
        records.send(r);
    }
    for r in recorder.report(DAY0_MS + 86_400_000, &started(2, None, None)) {
        records.send(r);
    }
    drop(records);
    thread.join().unwrap();
    let conn = records::open(&path).unwrap();
    assert_eq!(records::purge(&conn, DAY0_MS + 1).unwrap(), 1);
    let calls: i64 = conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).unwrap();
    let events: i64 = conn.query_row("SELECT COUNT(*) FROM call_events", [], |r| r.get(0)).unwrap();
    assert_eq!((calls, events), (1, 1));
}

#[test]
fn a_failing_disk_costs_records_not_calls_and_writing_resumes() {
    let path = temp_db("fail");
    let (records, thread) = writer(&path);
    // The table the writer needs goes away (as a stand-in for a failing disk), then comes back.
    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("ALTER TABLE agent_events RENAME TO agent_events_away").unwrap();
    let mut recorder = Recorder::default();
    let a = AgentId::new("op1");
    for r in recorder.report(
        DAY0_MS,
        &engine(Output::AgentState { agent: a.clone(), state: AgentState::Available }),
    ) {
        records.send(r); // Fails: no table.
    }
    drop(records);
    thread.join().unwrap();
    blocker.execute_batch("ALTER TABLE agent_events_away RENAME TO agent_events").unwrap();
    let n: i64 = blocker.query_row("SELECT COUNT(*) FROM agent_events", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "the failed batch is lost, not half-written");
    // A new writer on the repaired file writes again.
    let (records, thread) = writer(&path);
    for r in recorder.report(
        DAY0_MS + 1000,
        &engine(Output::AgentState { agent: a, state: AgentState::LoggedOut }),
    ) {
        records.send(r);
    }
    drop(records);
    thread.join().unwrap();
    let n: i64 = blocker.query_row("SELECT COUNT(*) FROM agent_events", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn the_report_counts_by_day_province_and_agent_with_the_documented_service_level() {
    let path = temp_db("report");
    let (records, thread) = writer(&path);
    let mut recorder = Recorder::default();
    let a = AgentId::new("op1");
    let b = AgentId::new("op2");
    let mut at = DAY0_MS;
    let mut call = 0;
    let mut finish = |province: Option<&'static str>, outcome: Outcome| {
        call += 1;
        at += 1000;
        for r in recorder.report(at, &started(call, None, province)) {
            records.send(r);
        }
        let o = engine(Output::CallFinished { call: CallId(call), outcome });
        for r in recorder.report(at + 500, &o) {
            records.send(r);
        }
    };
    let answered = |agent: &AgentId, wait: u64| Outcome::Answered {
        agent: agent.clone(),
        wait: Duration::from_secs(wait),
        talk: Duration::from_secs(100),
    };
    finish(Some("Cần Thơ"), answered(&a, 10)); // in target
    finish(Some("Cần Thơ"), answered(&a, 30)); // late
    finish(None, answered(&b, 5)); // in target
    finish(None, Outcome::Abandoned { phase: AbandonPhase::Queue, wait: Duration::from_secs(3) }); // short
    finish(
        None,
        Outcome::Abandoned { phase: AbandonPhase::Ringing, wait: Duration::from_secs(40) },
    );
    finish(
        None,
        Outcome::Overflowed {
            reason: tongdai::acd::OverflowReason::NoAgents,
            wait: Duration::from_secs(3),
        },
    );
    drop(records);
    thread.join().unwrap();
    let conn = records::open(&path).unwrap();
    let zone = jiff::tz::TimeZone::UTC;
    let day = zone.to_datetime(jiff::Timestamp::from_millisecond(DAY0_MS).unwrap()).date();
    let r = report::build(&conn, &zone, day, day, &Default::default()).unwrap();
    let all = &r.groups[&(day, "all", "all".to_string())];
    assert_eq!((all.offered, all.answered, all.abandoned, all.overflowed), (6, 3, 2, 1));
    // 2 answered within 20 s ÷ (3 answered + 1 abandoned after 5 s).
    assert_eq!(all.service_level(), Some(50.0));
    assert_eq!(all.average_wait(), Some(15.0));
    assert_eq!(all.p90_wait(), Some(30.0));
    assert_eq!(all.average_talk(), Some(100.0));
    let can_tho = &r.groups[&(day, "province", "Cần Thơ".to_string())];
    assert_eq!((can_tho.offered, can_tho.answered), (2, 2));
    let unknown = &r.groups[&(day, "province", "unknown".to_string())];
    assert_eq!((unknown.offered, unknown.abandoned, unknown.overflowed), (4, 2, 1));
    let op2 = &r.groups[&(day, "agent", "op2".to_string())];
    assert_eq!((op2.offered, op2.answered), (1, 1));
    let csv = r.render(Format::Csv);
    assert!(csv.starts_with("day,by,key,offered,answered,abandoned,overflowed,service_level_pct"));
    assert!(csv.contains(&format!("{day},all,all,6,3,2,1,50.0,15.0,30.0,100.0")), "{csv}");
    let table = r.render(Format::Table);
    assert!(table.lines().any(|l| l.starts_with(&day.to_string()) && l.contains("op2")), "{table}");
    // The day after holds nothing.
    let next = day.tomorrow().unwrap();
    assert!(
        report::build(&conn, &zone, next, next, &Default::default()).unwrap().groups.is_empty()
    );
}
