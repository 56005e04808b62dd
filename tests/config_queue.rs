//! The `[queue]` and `[privacy]` sections: defaults equal the engine's, each mistake is reported at
//! its `file:line:col` with a hint, and the engine's tunables follow the section.

mod support;

use std::path::Path;
use std::time::Duration;

use support::config_text::{check, errors, position_of};
use tongdai::acd::{EngineConfig, Strategy};
use tongdai::config::{AnswerMode, DEFAULT_TOML, FeatureCode, QueueConfig};

/// The default with `from` (exactly once in it) replaced by `to`.
fn default_with(from: &str, to: &str) -> String {
    assert_eq!(DEFAULT_TOML.matches(from).count(), 1, "{from}");
    DEFAULT_TOML.replace(from, to)
}

#[test]
fn the_shipped_queue_section_is_the_engine_default() {
    let c = check(DEFAULT_TOML).unwrap();
    assert_eq!(c.queue, QueueConfig::default());
    assert_eq!(EngineConfig::from_config(&c), EngineConfig::default());
    assert_eq!(c.queue.answer, AnswerMode::Answer);
    assert_eq!(c.queue.feature_codes.lookup("*21"), Some(FeatureCode::Pause));
    assert_eq!(c.queue.feature_codes.lookup("%2A24"), Some(FeatureCode::LogOut));
    assert_eq!(c.queue.feature_codes.lookup("*99"), None);
    assert!(!c.privacy.show_number_to_agents);
    assert!(c.privacy.key_file.ends_with("config/pseudonym.key"), "{:?}", c.privacy.key_file);
}

#[test]
fn an_empty_queue_section_means_the_defaults() {
    let start = DEFAULT_TOML.find("[queue]").unwrap();
    let end = DEFAULT_TOML.find("[privacy]").unwrap();
    let text = format!("{}{}", &DEFAULT_TOML[..start], &DEFAULT_TOML[end..]);
    assert_eq!(check(&text).unwrap().queue, QueueConfig::default());
}

#[test]
fn every_queue_key_reaches_the_engine() {
    let text = DEFAULT_TOML
        .replace("strategy = \"longest-idle\"", "strategy = \"ring-all\"")
        .replace("ring_timeout = \"15s\"", "ring_timeout = \"8s\"")
        .replace("wrap_up = \"30s\"", "wrap_up = \"0s\"")
        .replace("max_misses = 2", "max_misses = 4")
        .replace("auto_resume = \"off\"", "auto_resume = \"10m\"")
        .replace("max_queue = 20", "max_queue = 7")
        .replace("announce_interval = \"30s\"", "announce_interval = \"off\"")
        .replace("prompt_timeout = \"60s\"", "prompt_timeout = \"20s\"")
        .replace("retry_delay = \"5s\"", "retry_delay = \"1s\"")
        .replace("answer = \"answer\"", "answer = \"early-media\"")
        .replace("lines = 3", "lines = 5");
    let c = check(&text).unwrap();
    let e = EngineConfig::from_config(&c);
    assert_eq!(e.strategy, Strategy::RingAll);
    assert_eq!(e.ring_timeout, Duration::from_secs(8));
    assert_eq!(e.wrap_up, Duration::ZERO);
    assert_eq!(e.max_misses, 4);
    assert_eq!(e.auto_resume, Some(Duration::from_secs(600)));
    assert_eq!(e.max_queue, 7);
    assert_eq!(e.announce_interval, None);
    assert_eq!(e.prompt_timeout, Duration::from_secs(20));
    assert_eq!(e.retry_delay, Duration::from_secs(1));
    assert_eq!(e.lines.get(), 5);
    assert_eq!(c.queue.answer, AnswerMode::EarlyMedia);
}

#[test]
fn every_strategy_name_is_accepted() {
    for s in Strategy::ALL {
        let text =
            default_with("strategy = \"longest-idle\"", &format!("strategy = \"{}\"", s.as_str()));
        assert_eq!(check(&text).unwrap().queue.strategy, s);
    }
}

#[test]
fn unknown_strategy_lists_the_known_ones_at_its_position() {
    let text = default_with("strategy = \"longest-idle\"", "strategy = \"random\"");
    let (line, col) = position_of(&text, "\"random\"");
    assert_eq!(
        errors(&text),
        vec![format!(
            "t.toml:{line}:{col}: error: `queue.strategy`: unknown strategy `random` (hint: use \
             longest-idle, round-robin, fewest-calls, least-talk-time, linear or ring-all)"
        )]
    );
}

#[test]
fn bad_values_are_all_reported_at_once() {
    let text = DEFAULT_TOML
        .replace("ring_timeout = \"15s\"", "ring_timeout = \"0s\"")
        .replace("max_queue = 20", "max_queue = 0")
        .replace("announce_interval = \"30s\"", "announce_interval = \"0s\"")
        .replace("auto_resume = \"off\"", "auto_resume = 5")
        .replace("answer = \"answer\"", "answer = \"183\"")
        .replace("wrap_up = \"30s\"", "wrap_up = \"30\"");
    let errs = errors(&text);
    let expect = [
        "`queue.ring_timeout`: must be above zero",
        "`queue.max_queue`: must be at least 1",
        "`queue.announce_interval`: a zero interval would repeat for ever",
        "`queue.auto_resume`: expected \"off\" or a duration, found integer",
        "`queue.answer`: unknown answer mode `183` (hint: use \"answer\"",
        "`queue.wrap_up`: `30` is not a duration",
    ];
    for e in expect {
        assert!(errs.iter().any(|x| x.contains(e)), "no `{e}` in {errs:#?}");
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    let (line, col) = position_of(&text, "\"183\"");
    assert!(errs.iter().any(|e| e.starts_with(&format!("t.toml:{line}:{col}: error"))));
}

#[test]
fn typo_in_the_queue_section_suggests_the_key() {
    let text = default_with("retry_delay = \"5s\"", "retry_dealy = \"5s\"");
    let errs = errors(&text);
    let (line, col) = position_of(&text, "retry_dealy");
    assert_eq!(
        errs,
        vec![format!(
            "t.toml:{line}:{col}: error: `queue.retry_dealy`: unknown key (hint: did you mean \
             `retry_delay`?)"
        )]
    );
}

#[test]
fn feature_codes_must_be_star_codes_and_distinct() {
    let text = default_with("resume = \"*22\"", "resume = \"*21\"");
    let errs = errors(&text);
    let (line, col) = position_of(&text, "\"*21\"\nend_wrap_up");
    assert_eq!(
        errs,
        vec![format!(
            "t.toml:{line}:{col}: error: `queue.feature_codes.resume`: `*21` is also the code for \
             `pause` (hint: give each feature its own code)"
        )]
    );
    let errs = errors(&default_with("log_out = \"*24\"", "log_out = \"24\""));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("`queue.feature_codes.log_out`: `24` is not a feature code"));
    let c = check(&default_with("pause = \"*21\"", "pause = \"*7#\"")).unwrap();
    assert_eq!(c.queue.feature_codes.lookup("*7#"), Some(FeatureCode::Pause));
    assert_eq!(c.queue.feature_codes.lookup("*21"), None);
}

#[test]
fn the_agent_display_template_knows_its_placeholders() {
    let text = default_with(
        "agent_display = \"111 · {province} · {caller}\"",
        "agent_display = \"111 {number}\"",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("`privacy.agent_display`: unknown placeholder `{number}`"),
        "{errs:?}"
    );
    assert!(errs[0].contains("{province}, {caller}"), "{errs:?}");
    let errs = errors(&default_with(
        "agent_display = \"111 · {province} · {caller}\"",
        "agent_display = \"111 {caller\"",
    ));
    assert!(errs[0].contains("never closed"), "{errs:?}");
}

#[test]
fn privacy_keys_are_read() {
    let text = DEFAULT_TOML
        .replace("show_number_to_agents = false", "show_number_to_agents = true")
        .replace("trust_asserted_identity = true", "trust_asserted_identity = false")
        .replace("key_file = \"pseudonym.key\"", "key_file = \"/var/lib/tongdai/k\"");
    let c = check(&text).unwrap();
    assert!(c.privacy.show_number_to_agents);
    assert!(!c.privacy.trust_asserted_identity);
    assert_eq!(c.privacy.key_file, Path::new("/var/lib/tongdai/k"));
}

#[test]
fn a_queue_change_is_a_reload_and_a_new_key_file_needs_a_restart() {
    let old = check(DEFAULT_TOML).unwrap();
    let new = check(&default_with("wrap_up = \"30s\"", "wrap_up = \"10s\"")).unwrap();
    let changes = new.changes_from(&old);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].section, changes[0].needs_restart), ("queue", false));
    let new =
        check(&default_with("key_file = \"pseudonym.key\"", "key_file = \"other.key\"")).unwrap();
    let changes = new.changes_from(&old);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].section, changes[0].needs_restart), ("privacy.key_file", true));
}
