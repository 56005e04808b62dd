//! Province attribution (`[provinces]`): a bad name is refused at its `file:line:col` with the
//! list of names, and, end to end with SIPp (Debian `sip-tester`) on loopback, a call to a
//! per-province access number, a call carrying the carrier's header, a landline and a mobile
//! land in `calls.province` as Đồng Nai, Cần Thơ, An Giang and `unknown`, and in the bounded
//! metric `tongdai_calls_offered_by_province_total{province}`.

mod support;

use support::callers::{call, caller_scenario};
use support::config_text::{check, errors, position_of};
use support::daemon::{TestDaemon, test_config_text};

/// The test configuration with `[provinces]` as given and `1110251` among the hotline numbers.
fn with_provinces(text: &str, provinces: &str) -> String {
    for from in ["numbers = [\"111\"]", "dialled = {}\ncodes = {}"] {
        assert_eq!(text.matches(from).count(), 1, "{from}");
    }
    text.replace("numbers = [\"111\"]", "numbers = [\"111\", \"1110251\"]")
        .replace("dialled = {}\ncodes = {}", provinces)
}

fn prompts_absolute(text: &str) -> String {
    let prompts = format!("prompts = \"{}/config/prompts\"", env!("CARGO_MANIFEST_DIR"));
    text.replace("prompts = \"prompts\"", &prompts)
}

#[test]
fn a_province_outside_the_region_is_refused_where_it_is_written_with_the_names() {
    let text = prompts_absolute(&with_provinces(
        &test_config_text(),
        "dialled = { \"1110251\" = \"Dong Nai\" }\nheader = \"X-Province\"\ncodes = { \"HN\" = \"Hà Nội\" }",
    ));
    let errs = errors(&text);
    // (The commented default mentions "Dong Nai" too: find the value after its key.)
    let (line, col) = position_of(&text, "\"1110251\" = \"Dong Nai\"");
    let col = col + "\"1110251\" = ".len();
    assert!(
        errs[0].starts_with(&format!(
            "t.toml:{line}:{col}: error: `provinces.dialled.1110251`: unknown province `Dong Nai` (hint: did you mean \"Đồng Nai\"?"
        )),
        "{errs:?}"
    );
    let (line, col) = position_of(&text, "\"Hà Nội\"");
    assert!(
        errs[1].starts_with(&format!(
            "t.toml:{line}:{col}: error: `provinces.codes.HN`: unknown province `Hà Nội` (hint: the region's provinces are: \"TP. Hồ Chí Minh\", \"Đồng Nai\""
        )),
        "{errs:?}"
    );
    assert!(errs[1].contains("\"Cà Mau\""), "{errs:?}");
    assert_eq!(errs.len(), 2, "{errs:?}");
}

#[test]
fn access_numbers_header_names_and_codes_are_checked() {
    let text = prompts_absolute(&with_provinces(
        &test_config_text(),
        "dialled = { \"111-0251\" = \"Đồng Nai\", \"1110251\" = \"Cần Thơ\", \"1x\" = \"Cà Mau\" }\nheader = \"X Province\"\ncodes = {}",
    ));
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].contains("`1110251` is listed twice"), "{errs:?}");
    assert!(errs[1].contains("`1x` is not a dialled number"), "{errs:?}");
    assert!(errs[2].contains("`X Province` is not a SIP header name"), "{errs:?}");
    // A good map is accepted; an access number outside [trunk] numbers is a warning, not an error.
    let good = prompts_absolute(&with_provinces(
        &test_config_text(),
        "dialled = { \"1110251\" = \"Đồng Nai\", \"1110292\" = \"Cần Thơ\" }\nheader = \"X-Province\"\ncodes = { \"CTO\" = \"Cần Thơ\" }",
    ));
    let config = check(&good).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(config.provinces, Default::default());
}

#[test]
fn calls_land_in_the_records_and_metrics_with_the_province_the_trunk_or_number_tells() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("provinces-sipp");
    let db = dir.join("records.db");
    let text = support::prompts::records_config(&dir, &db, &[]);
    let text = with_provinces(
        &text,
        "dialled = { \"1110251\" = \"Đồng Nai\" }\nheader = \"X-Province\"\ncodes = { \"CTO\" = \"Cần Thơ\" }",
    );
    let d = TestDaemon::with_config(&text);
    let series = |p: &str| format!("tongdai_calls_offered_by_province_total{{province=\"{p}\"}}");
    let provinces = ["Đồng Nai", "Cần Thơ", "An Giang", "unknown"];
    let before: Vec<f64> = provinces.iter().map(|p| d.metric(&series(p))).collect();
    let offered = d.metric("tongdai_calls_offered_total");

    // Each caller hangs up during the welcome prompt: an abandoned call with its province.
    let calls = [
        // The per-province access number, from a mobile (which alone tells nothing).
        caller_scenario(&dir, "0901234567", "1110251", &[]),
        // The hotline number with the carrier's header (the trunk is 127.0.0.0/8 here).
        caller_scenario(&dir, "0901234567", "111", &["X-Province: cto"]),
        // A landline in An Giang (0296).
        caller_scenario(&dir, "02963852123", "111", &[]),
        // A mobile: unknown.
        caller_scenario(&dir, "0912345678", "111", &[]),
    ];
    for file in &calls {
        call(d.sip_udp(), file, 300).assert_ok();
    }
    assert_eq!(d.wait_metric("tongdai_calls_offered_total", offered + 4.0), offered + 4.0);
    for (i, p) in provinces.iter().enumerate() {
        assert_eq!(d.metric(&series(p)), before[i] + 1.0, "{p}");
    }
    // Only the 19 names and `unknown` ever appear as the label.
    let scrape = d.metrics();
    for line in scrape.lines().filter(|l| l.starts_with("tongdai_calls_offered_by_province_total{"))
    {
        let value = line.split('"').nth(1).unwrap();
        let known = tongdai::acd::province::Province::from_name(value).is_some();
        assert!(known || value == "unknown", "{line}");
    }
    drop(d);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT province, outcome FROM calls ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let got: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(got, provinces, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "abandoned"), "{rows:?}");
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_header_with_nobody_to_believe_it_from_is_a_warning() {
    let text = prompts_absolute(&with_provinces(
        &test_config_text(),
        "header = \"X-Province\"\ncodes = { \"CTO\" = \"Cần Thơ\" }",
    ));
    let allow = "allow = [\"127.0.0.0/8\", \"::1/128\"]";
    assert_eq!(text.matches(allow).count(), 1);
    let text = text.replace(allow, "allow = []");
    let source = tongdai::config::Source::new("t.toml", text.clone());
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let (_, warnings) = tongdai::config::Config::from_source(&source, &base).unwrap();
    let (line, col) = position_of(&text, "\"X-Province\"\ncodes");
    let warning = warnings.iter().map(ToString::to_string).find(|w| w.contains("provinces.header"));
    assert_eq!(
        warning.as_deref(),
        Some(format!(
            "t.toml:{line}:{col}: warning: `provinces.header`: the header is believed only from [trunk] allow, which is empty: it is never used (hint: list the provider SBC's addresses in [trunk] allow)"
        ).as_str())
    );
}
