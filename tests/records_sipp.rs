//! Call records end to end with SIPp (Debian `sip-tester`) on loopback: callers whose number the
//! trunk writes as `0…`, `84…` and `+84…` are answered by a SIPp agent or hang up during the
//! welcome prompt; afterwards the records database holds exactly one finished row per call with
//! the right outcome (one pseudonym per caller, whatever the form), `tongdai report` shows the
//! same numbers, and neither the database file nor the report holds any form of the numbers, an
//! IP address or a Call-ID in clear.

mod support;

use std::path::Path;
use std::time::Duration;

use support::daemon::TestDaemon;
use support::sipp::{SippRun, free_port, run, scenario};

/// An 8 kHz 16-bit mono tone, `secs` long.
/// The caller the answered calls come from (a Vietnamese mobile number), and the one who hangs up.
const ANSWERED_NSN: &str = "912345678";
const ABANDONING_NSN: &str = "987654321";

/// The three ways a trunk writes a Vietnamese number.
fn forms(nsn: &str) -> [String; 3] {
    [format!("0{nsn}"), format!("84{nsn}"), format!("+84{nsn}")]
}

/// A copy of trunk-caller.xml whose From is `number`.
fn caller_scenario(dir: &Path, number: &str) -> String {
    let text = std::fs::read_to_string(scenario("trunk-caller.xml")).unwrap();
    assert!(text.contains("sip:0901234567@"));
    let path = dir.join(format!("caller-{number}.xml"));
    std::fs::write(&path, text.replace("sip:0901234567@", &format!("sip:{number}@"))).unwrap();
    path.to_string_lossy().into_owned()
}

fn call(d: &TestDaemon, file: &str, talk_ms: u64) -> SippRun {
    let rtp = free_port().to_string();
    run(
        d.sip_udp(),
        &["-sf", file, "-key", "rtp_port", &rtp, "-d", &talk_ms.to_string(), "-m", "1"],
        Duration::from_secs(30),
    )
}

/// Waits (bounded) until `series` reaches `value`.
fn wait_for(d: &TestDaemon, series: &str, value: f64) -> bool {
    (0..400).any(|_| {
        let ok = d.metric(series) >= value;
        if !ok {
            std::thread::sleep(Duration::from_millis(25));
        }
        ok
    })
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn answered_and_abandoned_calls_give_exactly_those_rows_and_report_with_no_number_in_clear() {
    let _serial = support::serial();
    // A 2 s welcome: a caller who hangs up after 0.5 s abandons during the prompt.
    let dir = support::prompts::records_prompts("records-sipp");
    let db = dir.join("records.db");
    let text =
        support::prompts::records_config(&dir, &db, &[("wrap_up = \"30s\"", "wrap_up = \"0s\"")]);
    let d = TestDaemon::with_config(&text);

    // M = 2 abandoned: 0… and +84… forms of one number.
    let abandoning = forms(ABANDONING_NSN);
    for number in [&abandoning[0], &abandoning[2]] {
        call(&d, &caller_scenario(&dir, number), 500).assert_ok();
    }
    // N = 3 answered: one number in each of its three forms.
    let before = d.metric("tongdai_registrations");
    let op1 = support::sipp::agent(d.sip_udp(), "op1", "agent-answer.xml", 30_000);
    assert!(wait_for(&d, "tongdai_registrations", before + 1.0), "the SIPp agent never registered");
    let answered = d.metric("tongdai_calls_answered_total");
    let answering = forms(ANSWERED_NSN);
    for (i, number) in answering.iter().enumerate() {
        call(&d, &caller_scenario(&dir, number), 5_000).assert_ok();
        assert!(
            wait_for(&d, "tongdai_calls_answered_total", answered + i as f64 + 1.0),
            "call from the {number:?} form not answered"
        );
    }
    // The drain flushes the writer.
    drop(d);
    let _ = op1.join();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, Option<String>, Option<String>, String)> = conn
        .prepare("SELECT outcome, caller, agent, phase FROM calls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    let outcomes: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(outcomes, ["abandoned", "abandoned", "answered", "answered", "answered"]);
    assert!(rows[..2].iter().all(|r| r.3 == "prompt"), "{rows:?}");
    assert!(rows[2..].iter().all(|r| r.2.as_deref() == Some("op1")), "{rows:?}");
    // One caller, one pseudonym, whichever form the trunk used; two callers, two pseudonyms.
    let pseudonym = |i: usize| rows[i].1.clone().unwrap();
    assert_eq!(pseudonym(0), pseudonym(1));
    assert_eq!(pseudonym(2), pseudonym(3));
    assert_eq!(pseudonym(3), pseudonym(4));
    assert_ne!(pseudonym(0), pseudonym(2));
    assert_eq!(pseudonym(2).len(), 64);
    drop(conn);

    // `tongdai report` on the same file.
    let config = dir.join("tongdai.toml");
    std::fs::write(&config, &text).unwrap();
    let report = support::prompts::report(&config, &["--format", "csv"]);
    let all: Vec<&str> = report.lines().filter(|l| l.contains(",all,all,")).collect();
    assert_eq!(all.len(), 1, "{report}");
    assert!(all[0].contains(",all,all,5,3,2,0,"), "{report}");
    assert!(report.lines().any(|l| l.contains(",agent,op1,3,3,0,0,")), "{report}");
    assert!(report.lines().any(|l| l.contains(",province,unknown,5,3,2,0,")), "{report}");
    let table = support::prompts::report(&config, &[]);

    // No form of either number, and no address, anywhere.
    let file = support::prompts::database_bytes(&db);
    assert!(contains(&file, "answered"), "the database is not where the test looks");
    for nsn in [ANSWERED_NSN, ABANDONING_NSN] {
        for form in forms(nsn).iter().map(String::as_str).chain([nsn]) {
            assert!(!contains(&file, form), "{form} in the database file");
            assert!(!report.contains(form) && !table.contains(form), "{form} in the report");
        }
    }
    assert!(!contains(&file, "127.0.0.1"), "an IP address in the database file");
    assert!(!contains(&file, "SIPpTag"), "a SIP tag in the database file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unusable_records_database_costs_records_not_calls_and_writing_resumes() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("records-down");
    // The database's folder is a regular file: nothing can be opened or written there.
    let blocker = dir.join("state");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let db = blocker.join("records.db");
    let text = support::prompts::records_config(&dir, &db, &[]);
    // The daemon starts anyway, and takes calls.
    let d = TestDaemon::with_config(&text);
    let failures = d.metric("tongdai_records_write_failures_total");
    let offered = d.metric("tongdai_calls_offered_total");
    let caller = caller_scenario(&dir, "0912000111");
    call(&d, &caller, 500).assert_ok();
    assert!(wait_for(&d, "tongdai_calls_offered_total", offered + 1.0));
    assert!(
        wait_for(&d, "tongdai_records_write_failures_total", failures + 1.0),
        "the failure was not counted"
    );
    // The disk comes back: the next calls are recorded (the writer retries every second).
    std::fs::remove_file(&blocker).unwrap();
    let recorded = || {
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row("SELECT COUNT(*) FROM calls WHERE outcome = 'abandoned'", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .unwrap_or(0)
    };
    let resumed = (0..10).any(|_| {
        call(&d, &caller, 500).assert_ok();
        std::thread::sleep(Duration::from_millis(1200));
        recorded() > 0
    });
    assert!(resumed, "writing never resumed");
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
