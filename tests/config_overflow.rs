//! The `[overflow]` section and `[trunk] channels`: off by default, the commented example in the
//! shipped config is valid once uncommented, and each mistake is reported at its `file:line:col`
//! with a hint.

mod support;

use std::time::Duration;

use support::config_text::{check, errors, position_of};
use tongdai::acd::EngineConfig;
use tongdai::config::{DEFAULT_TOML, OverflowMethod};

#[test]
fn overflow_is_off_by_default_and_the_trunk_unbounded() {
    let c = check(DEFAULT_TOML).unwrap();
    assert!(c.overflow.targets.is_empty());
    assert!(!EngineConfig::from_config(&c).overflow.enabled);
    assert_eq!(c.trunk.channels, None);
}

#[test]
fn the_shipped_example_uncommented_is_valid_and_means_what_it_says() {
    let start = DEFAULT_TOML.find("# [overflow]").unwrap();
    let example: String = DEFAULT_TOML[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .filter(|l| !l.starts_with('#') && !l.contains("password_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    let example = example
        .replace("username = \"region-south\"", "username = \"region-south\"\npassword = \"p\"");
    let text = format!("{}{example}", &DEFAULT_TOML[..start]);
    let c = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let o = &c.overflow;
    assert_eq!(o.method, OverflowMethod::Bridge);
    assert_eq!(o.rules.max_wait, Some(Duration::from_secs(60)));
    assert_eq!(o.rules.max_wait_urgent, Some(Duration::from_secs(30)));
    assert_eq!(o.rules.predicted_wait, None);
    assert_eq!(o.targets.len(), 1);
    assert_eq!(o.targets[0].address, "198.51.100.20:5060".parse().unwrap());
    assert_eq!(o.targets[0].credentials.as_ref().map(|c| c.realm.as_str()), Some("national"));
    assert!(EngineConfig::from_config(&c).overflow.enabled);
}

#[test]
fn each_mistake_is_reported_where_it_is_with_a_hint() {
    let extra = "\n[overflow]\nmethod = \"forward\"\nmax_wait = \"0s\"\nprobe_interval = \"0s\"\n\n\
                 [[overflow.targets]]\nname = \"national\"\nuri = \"sip:111@national.example.vn\"\n\n\
                 [[overflow.targets]]\nname = \"bad name\"\nuri = \"sip:111@127.0.0.1:5090\"\n\n\
                 [[overflow.targets]]\nname = \"b\"\nuri = \"sip:111@127.0.0.1:5091\"\nusername = \"x\"\n";
    let text = format!(
        "{}{extra}",
        DEFAULT_TOML.replace("numbers = [\"111\"]\n", "numbers = [\"111\"]\nchannels = 0\n")
    );
    let errs = errors(&text);
    // Where the value of `line` (a `key = value` line) starts.
    let at = |line: &str| {
        let (row, col) = position_of(&text, line);
        let value = line.find("= ").map_or(0, |i| i + 2);
        format!("t.toml:{row}:{}:", col + value)
    };
    let expect = [
        (at("channels = 0"), "no channel"),
        (at("method = \"forward\""), "unknown overflow method"),
        (at("probe_interval = \"0s\""), "at least 1s"),
        (at("uri = \"sip:111@national"), "IP address"),
        (at("name = \"bad name\""), "not a usable target name"),
    ];
    for (position, words) in expect {
        assert!(
            errs.iter().any(|e| e.starts_with(&position) && e.contains(words)),
            "{position} {words}: {errs:#?}"
        );
    }
    assert!(errs.iter().any(|e| e.contains("credentials need") && e.contains("hint")), "{errs:#?}");
    // `max_wait = "0s"` is not a mistake: it turns the rule off.
    assert!(!errs.iter().any(|e| e.contains("max_wait")), "{errs:#?}");
}

#[test]
fn a_second_target_with_the_same_name_is_refused() {
    let extra = "\n[[overflow.targets]]\nname = \"n\"\nuri = \"sip:111@127.0.0.1:5090\"\n\n\
                 [[overflow.targets]]\nname = \"n\"\nuri = \"sip:111@127.0.0.1:5091\"\n";
    let errs = errors(&format!("{DEFAULT_TOML}{extra}"));
    assert!(errs.iter().any(|e| e.contains("a second overflow target named `n`")), "{errs:#?}");
}
