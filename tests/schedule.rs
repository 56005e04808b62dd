//! Shift schedules and holidays from configuration text to `tongdai schedule`: the example
//! three-shift rota with Tết, local rules read from UTC instants, and each schedule mistake refused
//! (or warned about) at its `file:line:col`.

use std::path::Path;
use std::process::Command;

use jiff::Timestamp;
use tongdai::acd::schedule::Schedule;
use tongdai::config::{Config, ConfigError, Diagnostic, Severity, Source};

const EXAMPLE: &str = "config/examples/three-shifts.toml";

fn example_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE)).unwrap()
}

fn load(text: &str) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    Config::from_source(&Source::new("s.toml", text.to_string()), &base)
}

fn plan(config: &Config) -> Schedule {
    Schedule::new(config.schedule.zone.clone(), &config.shifts, &config.holidays)
}

fn on_duty(plan: &Schedule, utc: &str) -> Vec<String> {
    plan.on_duty(utc.parse::<Timestamp>().unwrap()).into_iter().collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_example_rota_changes_at_06_14_and_22_local_and_across_midnight() {
    let (config, warnings) = load(&example_text()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let plan = plan(&config);
    // Ho Chi Minh City is UTC+7: 05:59 local on Monday 2026-11-30 is 22:59 UTC on Sunday.
    assert_eq!(on_duty(&plan, "2026-11-29T22:59:00Z"), strings(&["op7", "op8", "op9"]));
    assert_eq!(on_duty(&plan, "2026-11-29T23:00:00Z"), strings(&["op1", "op2", "op3"]));
    assert_eq!(on_duty(&plan, "2026-11-30T06:59:59Z"), strings(&["op1", "op2", "op3"]));
    assert_eq!(on_duty(&plan, "2026-11-30T07:00:00Z"), strings(&["op4", "op5", "op6"]));
    assert_eq!(on_duty(&plan, "2026-11-30T15:00:00Z"), strings(&["op7", "op8", "op9"]));
    // Local midnight (17:00 UTC) is inside the night shift: no change there.
    let before_midnight: Timestamp = "2026-11-30T16:00:00Z".parse().unwrap();
    assert_eq!(plan.next_change(before_midnight), Some("2026-11-30T23:00:00Z".parse().unwrap()));
}

#[test]
fn tet_replaces_the_weekly_rule_and_the_eve_night_shift_still_ends_at_six() {
    let (config, _) = load(&example_text()).unwrap();
    let plan = plan(&config);
    // 2027-02-05 03:00 local: the weekly night shift that began on the 4th.
    assert_eq!(on_duty(&plan, "2027-02-04T20:00:00Z"), strings(&["op7", "op8", "op9"]));
    // 2027-02-06 (Tết) 10:00 local: the volunteers' day shift, not the weekly morning shift.
    assert_eq!(on_duty(&plan, "2027-02-06T03:00:00Z"), strings(&["tet1", "tet2", "tet3"]));
    assert_eq!(on_duty(&plan, "2027-02-06T12:00:00Z"), strings(&["tet4", "tet5", "tet6"]));
    // 2027-02-11 07:00 local: the holiday's last night shift has handed over to the weekly rule.
    assert_eq!(on_duty(&plan, "2027-02-11T00:00:00Z"), strings(&["op1", "op2", "op3"]));
    let from: Timestamp = "2027-02-03T17:00:00Z".parse().unwrap();
    assert!(plan.gaps(from, "2027-02-12T17:00:00Z".parse().unwrap()).is_empty());
}

#[test]
fn schedule_command_prints_the_days_and_flags_nobody_on_duty() {
    let root = env!("CARGO_MANIFEST_DIR");
    let run = |config: &str| {
        Command::new(env!("CARGO_BIN_EXE_tongdai"))
            .current_dir(root)
            .args(["schedule", "--config", config, "--from", "2027-02-04", "--days", "2"])
            .output()
            .unwrap()
    };
    let out = run(EXAMPLE);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Thu 2027-02-04\n  00:00–06:00  night: op7, op8, op9\n"), "{text}");
    assert!(text.contains("Fri 2027-02-05  (holiday: Tết Nguyên Đán 2027)\n"), "{text}");
    assert!(text.contains("  06:00–18:00  tet-day: tet1, tet2, tet3\n"), "{text}");
    assert!(text.ends_with("times in Asia/Ho_Chi_Minh; 0 stretch(es) with nobody on duty\n"));

    // Without the night shift, every night is a gap.
    let dir = std::env::temp_dir().join(format!("tongdai-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("no-night.toml");
    let text = example_text().replace("end = \"22:00\"", "end = \"21:00\"");
    let prompts = format!("prompts = \"{root}/config/prompts\"");
    std::fs::write(&file, text.replace("prompts = \"../prompts\"", &prompts)).unwrap();
    let out = run(file.to_str().unwrap());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("  21:00–22:00  !! nobody on duty (calls overflow)\n"), "{text}");
    assert!(text.ends_with("; 1 stretch(es) with nobody on duty\n"), "{text}");
    let check = Command::new(env!("CARGO_BIN_EXE_tongdai"))
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8(check.stderr).unwrap();
    assert!(check.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("nobody on duty 21:00–22:00 every day"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("accepted"),
        Err(e) => e
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect(),
    }
}

#[test]
fn an_agent_on_two_shifts_at_once_is_refused_at_the_later_shift() {
    let text = example_text().replace(
        "agents = [\"op4\", \"op5\", \"op6\"]",
        "agents = [\"op4\", \"op5\", \"op6\", \"op1\"]",
    );
    let text = text.replace(
        "name = \"morning\"\nstart = \"06:00\"\nend = \"14:00\"",
        "name = \"morning\"\nstart = \"06:00\"\nend = \"15:00\"",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let at = text[..text.find("name = \"afternoon\"").unwrap()].rfind("[[shifts]]").unwrap();
    let line = text[..at].matches('\n').count() + 1;
    assert!(errs[0].starts_with(&format!("s.toml:{line}:")), "{errs:?}");
    assert!(
        errs[0].contains("agent `op1` is on shifts `morning` and `afternoon` at once"),
        "{errs:?}"
    );
    assert!(errs[0].contains("hint:"), "{errs:?}");
}

#[test]
fn schedule_mistakes_each_get_their_own_error() {
    let text = example_text()
        .replace("timezone = \"Asia/Ho_Chi_Minh\"", "timezone = \"Asia/Saigon_City\"")
        .replace(
            "dates = [\"2027-02-05..2027-02-10\"]",
            "dates = [\"2027-02-30\", \"2027-02-10..2027-02-05\"]",
        )
        .replace("shifts = [\"tet-day\", \"tet-night\"]", "shifts = [\"tet-day\", \"tet-nite\"]");
    let errs = errors(&text).join("\n");
    assert!(errs.contains("`Asia/Saigon_City` is not a time zone"), "{errs}");
    assert!(errs.contains("`2027-02-30` is not a date or a date range"), "{errs}");
    assert!(errs.contains("`2027-02-10..2027-02-05` is not a date or a date range"), "{errs}");
    assert!(
        errs.contains("no shift named `tet-nite`") && errs.contains("did you mean `tet-night`?"),
        "{errs}"
    );
}
