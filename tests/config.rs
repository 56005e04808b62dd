//! Configuration: the shipped default is valid, and each mistake an operator can make gets its own
//! message at the right `file:line:col`, all reported at once, with nothing bound.

mod support;

use std::process::Command;

use support::config_text::{check, errors, position_of};
use tongdai::config::{Config, DEFAULT_TOML};

/// The default with `from` replaced by `to` (which must occur exactly once), and the prompt folder
/// made absolute so the file may be written anywhere.
fn default_with(from: &str, to: &str) -> String {
    assert_eq!(DEFAULT_TOML.matches(from).count(), 1, "{from}");
    let prompts = format!("prompts = \"{}/config/prompts\"", env!("CARGO_MANIFEST_DIR"));
    DEFAULT_TOML.replace(from, to).replace("prompts = \"prompts\"", &prompts)
}

#[test]
fn the_shipped_default_is_valid_and_loopback_only() {
    let c = Config::builtin().unwrap();
    assert_eq!(c.sip.listen, vec!["127.0.0.1:5060".parse().unwrap()]);
    assert!(c.sip.udp && c.sip.tcp);
    assert_eq!(c.http.listen, "127.0.0.1:9111".parse().unwrap());
    assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max), (20000, 20999));
    assert_eq!(c.agents.len(), 3);
    assert_eq!(c.centre.lines.get(), 3);
    assert_eq!(c.trunk.numbers, vec!["111"]);
    assert_eq!(c.shifts.len(), 1);
    assert_eq!((c.shifts[0].start, c.shifts[0].end, c.shifts[0].days), (0, 1440, 0x7f));
}

#[test]
fn the_repo_file_is_the_embedded_default() {
    let on_disk = std::fs::read_to_string("config/tongdai.toml").unwrap();
    assert_eq!(on_disk, DEFAULT_TOML);
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = default_with("lines = 3", "lines = \"three\"");
    let errs = errors(&text);
    let (line, col) = position_of(&text, "\"three\"");
    assert_eq!(
        errs,
        vec![format!(
            "t.toml:{line}:{col}: error: `centre.lines`: expected an integer, found string"
        )]
    );
}

#[test]
fn unknown_key_suggests_the_near_one() {
    let text = default_with("drain_grace = \"30s\"", "drain_grace = \"30s\"\ndrain_grce = \"1s\"");
    let errs = errors(&text);
    let (line, col) = position_of(&text, "drain_grce");
    assert_eq!(
        errs,
        vec![format!(
            "t.toml:{line}:{col}: error: `lifecycle.drain_grce`: unknown key (hint: did you mean `drain_grace`?)"
        )]
    );
}

#[test]
fn unknown_section_is_refused() {
    let errs = errors(&format!("{DEFAULT_TOML}\n[queu]\nring_timeout = \"15s\"\n"));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("`queu`: unknown key (hint: did you mean `queue`?)"), "{errs:?}");
}

#[test]
fn bad_address_says_how_to_write_one() {
    let text = default_with("listen = \"127.0.0.1:9111\"", "listen = \"localhost:9111\"");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("`http.listen`: `localhost:9111` is not an address with a port"));
    assert!(errs[0].contains("hint: write IP:PORT"));
}

#[test]
fn bad_cidr_points_at_the_element() {
    let text = default_with(
        "allow = [\"127.0.0.0/8\", \"::1/128\"]",
        "allow = [\"127.0.0.0/8\", \"10.0.0.0/33\"]",
    );
    let errs = errors(&text);
    let (line, col) = position_of(&text, "\"10.0.0.0/33\"");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(&format!(
            "t.toml:{line}:{col}: error: `trunk.allow`: `10.0.0.0/33` is not an IP address or CIDR"
        )),
        "{errs:?}"
    );
}

#[test]
fn duplicate_agent_id_and_sip_user_are_refused() {
    let text = default_with("id = \"op2\"", "id = \"op1\"");
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("`agents[1].id`: duplicate agent id `op1`")),
        "{errs:?}"
    );
    let text = default_with("user = \"op3\"", "user = \"OP1\"");
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.contains("`agents[2].user`: duplicate SIP user `OP1`")),
        "{errs:?}"
    );
}

#[test]
fn unreadable_secret_file_is_named() {
    let text = default_with("password = \"op1-test-password\"", "password_file = \"secrets/op1\"");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    let want =
        format!("cannot read secret file `{}/config/secrets/op1`", env!("CARGO_MANIFEST_DIR"));
    assert!(errs[0].contains("`agents[0].password_file`") && errs[0].contains(&want), "{errs:?}");
}

#[test]
fn secret_files_are_read_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!("tongdai-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("op1.secret"), "s3cret\n").unwrap();
    let text = default_with("password = \"op1-test-password\"", "password_file = \"op1.secret\"");
    std::fs::write(dir.join("t.toml"), &text).unwrap();
    let (c, _) = Config::load(&dir.join("t.toml")).unwrap();
    match &c.agents[0].credential {
        tongdai::config::Credential::Password(p) => assert_eq!(p.expose(), "s3cret"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_secret_file_other_users_can_read_is_warned_about_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tongdai-cfg-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("op1.secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let text = default_with("password = \"op1-test-password\"", "password_file = \"op1.secret\"");
    std::fs::write(dir.join("t.toml"), &text).unwrap();
    let warnings = |mode: u32| {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let (_, diagnostics) = Config::load(&dir.join("t.toml")).unwrap();
        diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let loose = warnings(0o644);
    assert!(
        loose.iter().any(|w| w.contains("`agents[0].password_file`")
            && w.contains("readable by other users (mode 0644)")
            && w.contains("chmod 600")),
        "{loose:?}"
    );
    assert!(warnings(0o600).iter().all(|w| !w.contains("readable by other users")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_allow_list_on_a_public_address_is_refused() {
    let text = default_with("listen = [\"127.0.0.1:5060\"]", "listen = [\"0.0.0.0:5060\"]")
        .replace("allow = [\"127.0.0.0/8\", \"::1/128\"]", "allow = []");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains(
        "`trunk.allow`: the trunk allow-list is empty while SIP listens on a non-loopback address"
    ));
    // On loopback alone, an empty allow-list is fine.
    check(&DEFAULT_TOML.replace("allow = [\"127.0.0.0/8\", \"::1/128\"]", "allow = []")).unwrap();
}

#[test]
fn zero_lines_is_refused() {
    let errs = errors(&default_with("lines = 3", "lines = 0"));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("`centre.lines`: must be at least 1"), "{errs:?}");
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = default_with("lines = 3", "lines = 0")
        .replace("t1 = \"500ms\"", "t1 = \"fast\"")
        .replace("level = \"info\"", "levle = \"info\"");
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:?}");
    // In source order.
    assert!(
        errs[0].contains("centre.lines")
            && errs[1].contains("sip.timers.t1")
            && errs[2].contains("log.levle")
    );
}

#[test]
fn syntax_errors_have_positions() {
    let errs = errors("[centre]\nlines = = 3\n");
    assert!(errs[0].starts_with("t.toml:2:"), "{errs:?}");
}

#[test]
fn other_mistakes() {
    let cases = [
        (
            default_with("t1 = \"500ms\"", "t1 = \"5s\""),
            "`sip.timers.t1`: T1 must be above zero and below T2",
        ),
        (default_with("format = \"human\"", "format = \"xml\""), "unknown log format `xml`"),
        (
            default_with("start = \"00:00\"", "start = \"25:00\""),
            "`shifts[0].start`: `25:00` is not a time of day",
        ),
        (
            default_with("agents = [\"op1\", \"op2\", \"op3\"]", "agents = [\"op1\", \"op4\"]"),
            "no agent with id `op4`",
        ),
        (
            default_with("numbers = [\"111\"]", "numbers = [\"1-1-1\"]"),
            "`1-1-1` is not a dialled number",
        ),
        (
            default_with("rtp_port_min = 20000", "rtp_port_min = 20001"),
            "bad RTP port range 20001-20999",
        ),
        (
            default_with("drain_grace = \"30s\"", "drain_grace = 30"),
            "expected a duration string, found integer",
        ),
        (
            default_with("udp = true", "udp = false").replace("tcp = true", "tcp = false"),
            "both UDP and TCP are off",
        ),
    ];
    for (text, want) in cases {
        let errs = errors(&text);
        assert!(errs.iter().any(|e| e.contains(want)), "want {want:?} in {errs:?}");
    }
}

#[test]
fn a_missing_or_broken_prompt_is_a_config_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("tongdai-prompts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy("config/prompts/welcome.wav", dir.join("welcome.wav")).unwrap();
    let text = default_with(
        "prompts = \"prompts\"",
        &format!("prompts = {:?}", dir.display().to_string()),
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("prompt `hold-music.wav` is missing"), "{errs:?}");
    std::fs::write(dir.join("hold-music.wav"), b"RIFF not really a wav").unwrap();
    let errs = errors(&text);
    assert!(errs.iter().any(|e| e.contains("hold-music.wav")), "{errs:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let text = default_with("lines = 3", "lines = 0");
    let e = check(&text).unwrap_err().to_string();
    assert!(!e.contains("test-password"), "{e}");
    let c = Config::builtin().unwrap();
    assert!(!format!("{c:?}").contains("test-password"));
}

#[test]
fn check_config_command_exits_0_or_2_with_the_messages() {
    let bin = env!("CARGO_BIN_EXE_tongdai");
    let ok = Command::new(bin).args(["check-config", "config/tongdai.toml"]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let dir = std::env::temp_dir().join(format!("tongdai-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, default_with("lines = 3", "lines = 0")).unwrap();
    let out = Command::new(bin).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:") && stderr.contains("`centre.lines`: must be at least 1"),
        "{stderr}"
    );
    // `run` refuses the same file before binding anything.
    let out = Command::new(bin).arg("run").arg("--config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "no banner: nothing was started");
    std::fs::remove_dir_all(&dir).unwrap();
}
