//! The service level: `[service_level]` is read with its defaults and its mistakes at
//! `file:line:col`; the one formula judges the thresholds' edges as documented; the daily report
//! and the live board (behind the wallboard, the API and `tongdai_service_level_ratio`) both take
//! the configured thresholds and give the same figure for the same calls.

mod support;

use std::time::{Duration, Instant};

use rusqlite::params;
use support::config_text::{check, errors, position_of};
use tongdai::acd::b2bua::Report;
use tongdai::acd::{AbandonPhase, AgentId, CallId, Outcome, Output, OverflowReason};
use tongdai::config::{DEFAULT_TOML, ServiceLevelConfig, Tally};
use tongdai::records::report;
use tongdai::runtime::admin::Board;

fn default_with(from: &str, to: &str) -> String {
    assert_eq!(DEFAULT_TOML.matches(from).count(), 1, "{from}");
    let prompts = format!("prompts = \"{}/config/prompts\"", env!("CARGO_MANIFEST_DIR"));
    DEFAULT_TOML.replace(from, to).replace("prompts = \"prompts\"", &prompts)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_section_has_the_hotline_defaults_and_positions_its_mistakes() {
    let c = check(&default_with("[service_level]", "[service_level]")).unwrap();
    assert_eq!(c.service_level, ServiceLevelConfig::default());
    assert_eq!((c.service_level.answer_within, c.service_level.short_abandon), (secs(20), secs(5)));
    assert_eq!(c.service_level.threshold_label(), "20");

    let text = default_with("answer_within = \"20s\"", "answer_within = \"30s\"");
    assert_eq!(check(&text).unwrap().service_level.answer_within, secs(30));

    let text = default_with("short_abandon = \"5s\"", "short_abandon = \"20s\"");
    // The value of short_abandon (the section's last key, before a blank line).
    let (line, col) = position_of(&text, "\"20s\"\n\n");
    let at = format!("t.toml:{line}:{col}: error: `service_level.short_abandon`");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&at) && e.contains("must be shorter than `answer_within`")),
        "{errs:?}"
    );

    let text = default_with("answer_within = \"20s\"", "answer_within = \"0s\"");
    let (line, col) = position_of(&text, "answer_within = \"0s\"");
    let col = col + "answer_within = ".len();
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "one mistake, one error: {errs:?}");
    let at = format!("t.toml:{line}:{col}: error: `service_level.answer_within`");
    assert!(
        errs.iter().any(|e| e.starts_with(&at) && e.contains("at least one second")),
        "{errs:?}"
    );

    let text = default_with("short_abandon = \"5s\"", "short_abandon = \"5 seconds\"");
    assert!(
        errors(&text).iter().any(|e| e.contains("`service_level.short_abandon`")),
        "a bad duration names the key"
    );
    let text =
        default_with("short_abandon = \"5s\"", "short_abandon = \"5s\"\nanswer_whitin = \"9s\"");
    assert!(errors(&text).iter().any(|e| e.contains("answer_within")), "did-you-mean hint");
}

#[test]
fn the_formula_judges_the_edges_as_documented() {
    let sl = ServiceLevelConfig::default();
    let mut t = Tally::default();
    assert_eq!(t.ratio(), None, "no judged call: no figure");
    sl.abandoned(&mut t, secs(5)); // short: not judged
    sl.abandoned(&mut t, Duration::ZERO); // in the prompt: not judged
    assert_eq!(t.ratio(), None);
    sl.answered(&mut t, secs(20)); // at the target: in time
    assert_eq!(t.ratio(), Some(1.0));
    sl.answered(&mut t, Duration::from_millis(20_001)); // late
    sl.abandoned(&mut t, Duration::from_millis(5_001)); // long abandon
    sl.abandoned(&mut t, secs(300));
    assert_eq!(t, Tally { answered: 2, answered_in_time: 1, long_abandoned: 2 });
    assert_eq!(t.ratio(), Some(0.25));
}

/// The calls both the report and the board are given: waits in seconds.
fn outcomes() -> Vec<Outcome> {
    let answered =
        |wait| Outcome::Answered { agent: AgentId::new("op1"), wait: secs(wait), talk: secs(120) };
    let abandoned = |wait| Outcome::Abandoned { phase: AbandonPhase::Queue, wait: secs(wait) };
    vec![
        answered(10),
        answered(25),
        answered(35),
        answered(50),
        abandoned(3),
        abandoned(8),
        Outcome::Overflowed { reason: OverflowReason::MaxWait, wait: secs(60) },
    ]
}

#[test]
fn the_report_and_the_board_apply_the_configured_thresholds_alike() {
    // T = 30 s, S = 10 s: in time 10 and 25; judged 4 answered + 0 long abandons (8 s is short).
    let sl = ServiceLevelConfig { answer_within: secs(30), short_abandon: secs(10) };
    let expected = 2.0 / 4.0;
    // With the defaults (20 s, 5 s): in time 10; judged 4 + 1 (the 8 s abandon).
    let default_expected = 1.0 / 5.0;

    // The report, from rows as the writer leaves them.
    let dir = std::env::temp_dir().join(format!("tongdai-sl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conn = tongdai::records::open(&dir.join("records.db")).unwrap();
    let day0 = 1_800_000_000_000_i64;
    for (i, o) in outcomes().iter().enumerate() {
        let (wait, reason) = match o {
            Outcome::Answered { wait, .. } => (Some(wait.as_millis() as i64), None),
            Outcome::Abandoned { wait, .. } => (Some(wait.as_millis() as i64), Some("queue")),
            _ => (None, Some("max_wait")),
        };
        conn.execute(
            "INSERT INTO calls (offered_ms, ended_ms, outcome, phase, reason, wait_ms, lane)
             VALUES (?1, ?1, ?2, 'queue', ?3, ?4, 'normal')",
            params![day0 + i as i64 * 1000, o.as_str(), reason, wait],
        )
        .unwrap();
    }
    let zone = jiff::tz::TimeZone::UTC;
    let day = zone.to_datetime(jiff::Timestamp::from_millisecond(day0).unwrap()).date();
    let all = |sl: &ServiceLevelConfig| {
        let r = report::build(&conn, &zone, day, day, sl).unwrap();
        r.groups[&(day, "all", "all".to_string())].service_level()
    };
    assert_eq!(all(&sl), Some(100.0 * expected));
    assert_eq!(all(&ServiceLevelConfig::default()), Some(100.0 * default_expected));

    // The board, from the switchboard's reports.
    let mut board = Board::new(sl);
    let now = Instant::now();
    assert_eq!(board.service_level(day), None);
    for (i, outcome) in outcomes().into_iter().enumerate() {
        let report = Report::Engine(Output::CallFinished { call: CallId(i as u64), outcome });
        board.observe(now, day, &report);
    }
    assert_eq!(board.service_level(day), Some(expected));
    assert_eq!(board.service_level_config().threshold_label(), "30");
    // A new local day starts from nothing.
    let next = day.tomorrow().unwrap();
    assert_eq!(board.service_level(next), None);
    board.roll(next);
    assert_eq!(board.service_level(day), None, "yesterday's figures are gone");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (bounded, 10 s) until `series` reaches `value`.
fn wait_for(d: &support::daemon::TestDaemon, series: &str, value: f64) -> bool {
    (0..400).any(|_| {
        let ok = d.metric(series) >= value;
        if !ok {
            std::thread::sleep(Duration::from_millis(25));
        }
        ok
    })
}

/// `GET path` on the admin listener, as JSON.
fn json(d: &support::daemon::TestDaemon, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(d.http()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

#[test]
fn the_live_gauge_and_the_board_show_the_configured_service_level_of_sipp_calls() {
    use support::sipp::{free_port, run, scenario};
    let _serial = support::serial();
    // A 2 s welcome, then the queue. T = 1 s, S = 0 s: any abandon from the queue is judged.
    let dir = support::prompts::records_prompts("sl-live");
    let mut text = support::prompts::with_prompts(&support::daemon::test_config_text(), &dir);
    for (from, to) in [
        ("wrap_up = \"30s\"", "wrap_up = \"0s\""),
        ("answer_within = \"20s\"", "answer_within = \"1s\""),
        ("short_abandon = \"5s\"", "short_abandon = \"0s\""),
    ] {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text = text.replace(from, to);
    }
    let d = support::daemon::TestDaemon::with_config(&text);
    let caller = scenario("trunk-caller.xml").to_string_lossy().into_owned();
    let call = |talk_ms: u64| {
        let rtp = free_port().to_string();
        let args =
            ["-sf", &caller, "-key", "rtp_port", &rtp, "-d", &talk_ms.to_string(), "-m", "1"];
        run(d.sip_udp(), &args, Duration::from_secs(30)).assert_ok();
    };
    let gauge = "tongdai_service_level_ratio{threshold=\"1\"}";
    let waits = |outcome: &str| {
        d.metric(&format!("tongdai_queue_wait_seconds_count{{outcome=\"{outcome}\"}}"))
    };
    let (abandoned_waits, answered_waits) = (waits("abandoned"), waits("answered"));
    let talks = d.metric("tongdai_talk_seconds_count");

    // With nobody logged in, a caller hangs up 1.5 s into the queue: a judged abandon.
    let abandoned = d.metric("tongdai_calls_abandoned_total{phase=\"queue\"}");
    call(3_500);
    assert!(wait_for(&d, "tongdai_calls_abandoned_total{phase=\"queue\"}", abandoned + 1.0));
    assert_eq!(d.wait_metric(gauge, 0.0), 0.0, "0 in time of 1 judged");

    // An agent answers the next caller as soon as the welcome ends: 1 in time of 2 judged.
    let before = d.metric("tongdai_registrations");
    let op1 = support::sipp::agent(d.sip_udp(), "op1", "agent-answer.xml", 15_000);
    assert!(wait_for(&d, "tongdai_registrations", before + 1.0), "the SIPp agent never registered");
    let answered = d.metric("tongdai_calls_answered_total");
    call(4_000);
    assert!(wait_for(&d, "tongdai_calls_answered_total", answered + 1.0), "not answered");
    assert_eq!(d.wait_metric(gauge, 0.5), 0.5);
    let today = &json(&d, "/api/v1/board")["today"];
    assert_eq!(today["service_level_pct"], 50.0, "{today}");
    assert_eq!(waits("abandoned"), abandoned_waits + 1.0);
    assert_eq!(waits("answered"), answered_waits + 1.0);
    assert_eq!(d.metric("tongdai_talk_seconds_count"), talks + 1.0);
    // The caller's queue wait (≤ 1 s) is in the 1 s bucket; the abandon's (≈ 1.5 s) is not.
    let bucket = |outcome: &str, le: &str| {
        d.metric(&format!("tongdai_queue_wait_seconds_bucket{{outcome=\"{outcome}\",le=\"{le}\"}}"))
    };
    assert_eq!(bucket("answered", "1"), answered_waits + 1.0);
    assert!(bucket("abandoned", "1") < abandoned_waits + 1.0);
    drop(d);
    let _ = op1.join();
    let _ = std::fs::remove_dir_all(&dir);
}
