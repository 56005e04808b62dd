//! Checks `systemd/tongdai.service` with the real `systemd-analyze`: the unit verifies cleanly
//! against an installed copy of the daemon, its sandbox rates an overall exposure of 2.0 or below,
//! and it keeps the settings the daemon cannot run without (notify socket, watchdog, network
//! families, state directory, no capabilities).
//!
//! This is a deployment test, outside the crate's layers. `systemd-analyze` (Debian package
//! `systemd`) must be installed: a missing tool fails the test instead of skipping it, so CI cannot
//! pass without having looked at the unit.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The unit under test, as shipped in the repository.
const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/tongdai.service");

/// Highest overall exposure `systemd-analyze security` may report (0.0 best, 10.0 worst).
const MAX_EXPOSURE: f64 = 2.0;

/// The daemon's default `lifecycle.drain_grace`; `TimeoutStopSec` must leave room above it.
const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Where the unit points: the daemon binary and the reload helper.
const EXEC_START_BINARY: &str = "usr/bin/tongdai";
const EXEC_RELOAD_BINARY: &str = "bin/kill";

/// Units the default dependencies of a service pull in (`Requires=sysinit.target` makes a missing
/// one fatal for verify). The scratch root gets empty stand-ins, so nothing of the host's own
/// unit files leaks into the result.
const DEFAULT_DEPENDENCY_TARGETS: [&str; 3] = ["sysinit.target", "basic.target", "shutdown.target"];

/// `systemd-analyze verify` is clean: no warning and exit status 0, for the unit installed under
/// a scratch root with a copy of the built daemon at `/usr/bin/tongdai`.
///
/// Verify only warns (exit 0) about unknown or misspelt keys, so stderr must be empty too.
#[test]
fn unit_verifies_cleanly_when_installed() {
    let root = ScratchDir::new("verify");
    install(Path::new(env!("CARGO_BIN_EXE_tongdai")), &root.path().join(EXEC_START_BINARY));
    // Verify only checks that the ExecReload= command is an executable file; a stand-in keeps
    // the test from depending on the host's procps.
    write_executable(&root.path().join(EXEC_RELOAD_BINARY), "#!/bin/sh\nexit 0\n");
    let units = root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    for target in DEFAULT_DEPENDENCY_TARGETS {
        fs::write(units.join(target), "[Unit]\nDescription=stand-in for verify\n").unwrap();
    }
    let installed = root.path().join("etc/systemd/system/tongdai.service");
    install(Path::new(UNIT), &installed);

    let mut root_arg = std::ffi::OsString::from("--root=");
    root_arg.push(root.path());
    let output = systemd_analyze(&[root_arg.as_os_str(), "verify".as_ref(), installed.as_os_str()]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify is not clean ({}):\n{stderr}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
    );
}

/// `systemd-analyze security --offline=true` rates the sandbox at `MAX_EXPOSURE` or better.
#[test]
fn sandbox_exposure_is_at_most_two() {
    let output = systemd_analyze(&["security".as_ref(), "--offline=true".as_ref(), UNIT.as_ref()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze security failed ({}):\n{stderr}{stdout}",
        output.status
    );
    let exposure = overall_exposure(&stdout)
        .unwrap_or_else(|| panic!("no overall exposure line in:\n{stdout}{stderr}"));
    assert!(
        exposure <= MAX_EXPOSURE,
        "overall exposure {exposure} is above {MAX_EXPOSURE}; settings that cost exposure:\n{}",
        stdout.lines().filter(|line| line.starts_with('✗')).collect::<Vec<_>>().join("\n"),
    );
}

/// The settings the daemon needs to work, which hardening must never take away.
#[test]
fn unit_keeps_what_the_daemon_needs() {
    let text = fs::read_to_string(UNIT).unwrap();
    let service = ServiceSection::parse(&text);

    assert_eq!(service.last("Type"), Some("notify"), "READY=1/STOPPING=1 need Type=notify");
    assert_eq!(service.last("NotifyAccess"), Some("main"));
    let watchdog = service.last("WatchdogSec").expect("WatchdogSec is set");
    assert!(
        !matches!(watchdog, "" | "0" | "infinity"),
        "WatchdogSec={watchdog} disables the watchdog"
    );
    assert_eq!(service.last("Restart"), Some("on-failure"));
    assert_eq!(
        service.last("ExecStart"),
        Some("/usr/bin/tongdai run --config /etc/tongdai/tongdai.toml --log-format json")
    );
    assert_eq!(service.last("ExecReload"), Some("/bin/kill -HUP $MAINPID"));

    let stop_timeout = service.last("TimeoutStopSec").expect("TimeoutStopSec is set");
    let stop_timeout = parse_plain_seconds(stop_timeout)
        .unwrap_or_else(|| panic!("TimeoutStopSec={stop_timeout} is not plain seconds"));
    assert!(
        stop_timeout > DEFAULT_DRAIN_GRACE,
        "TimeoutStopSec ({stop_timeout:?}) must exceed the drain grace ({DEFAULT_DRAIN_GRACE:?})"
    );

    let families = service.list("RestrictAddressFamilies");
    assert!(
        !families.iter().any(|family| family.starts_with('~')),
        "RestrictAddressFamilies must be an allow list: {families:?}"
    );
    for needed in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(
            families.contains(&needed),
            "RestrictAddressFamilies lacks {needed} (SIP/RTP over IPv4/IPv6, sd_notify): \
             {families:?}"
        );
    }

    assert_eq!(service.last("StateDirectory"), Some("tongdai"), "SQLite records live there");
    assert_eq!(service.last("ConfigurationDirectory"), Some("tongdai"));
    for capabilities in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        assert_eq!(
            service.last(capabilities),
            Some(""),
            "{capabilities}= must be present and empty: the daemon holds no capability"
        );
    }
    assert!(
        service.last("IPAddressAllow").is_none() && service.last("IPAddressDeny").is_none(),
        "IP address lists would cut off remote SIP trunks and agents"
    );
}

/// The `[Service]` section of a unit file: every assignment in order, per key.
struct ServiceSection<'a> {
    assignments: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> ServiceSection<'a> {
    /// Reads the `[Service]` assignments; comments, blank lines and other sections are skipped.
    /// Unit files in this repository use no line continuations, so none are handled.
    fn parse(text: &'a str) -> Self {
        let mut assignments: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut in_service = false;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            if !in_service {
                continue;
            }
            let (key, value) =
                line.split_once('=').unwrap_or_else(|| panic!("not an assignment: {line}"));
            assignments.entry(key.trim()).or_default().push(value.trim());
        }
        Self { assignments }
    }

    /// The value systemd uses for a single-valued setting: the last assignment wins.
    fn last(&self, key: &str) -> Option<&'a str> {
        self.assignments.get(key).and_then(|values| values.last().copied())
    }

    /// The items of a list setting: assignments accumulate, and an empty one resets the list.
    fn list(&self, key: &str) -> Vec<&'a str> {
        let mut items = Vec::new();
        for value in self.assignments.get(key).into_iter().flatten() {
            if value.is_empty() {
                items.clear();
            }
            items.extend(value.split_whitespace());
        }
        items
    }
}

/// A time span written as bare seconds (`45`) or with an `s` suffix (`45s`), as in this unit.
fn parse_plain_seconds(value: &str) -> Option<Duration> {
    let digits = value.strip_suffix('s').unwrap_or(value);
    digits.parse().ok().map(Duration::from_secs)
}

/// The number in `→ Overall exposure level for tongdai.service: 1.2 OK 🙂`.
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report.lines().find(|line| line.contains("Overall exposure level for"))?;
    let (_, verdict) = line.rsplit_once(": ")?;
    verdict.split_whitespace().next()?.parse().ok()
}

/// Runs `systemd-analyze` without colours or pager, and fails with an install hint if absent.
fn systemd_analyze(args: &[&std::ffi::OsStr]) -> Output {
    // Debian installs it in /usr/bin; fall back on PATH for other layouts.
    let program = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("systemd-analyze");
    match Command::new(program)
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == ErrorKind::NotFound => panic!(
            "systemd-analyze is not installed, so systemd/tongdai.service cannot be checked; \
             install the Debian package `systemd` (apt-get install systemd), as CI does"
        ),
        Err(error) => panic!("cannot run {program}: {error}"),
    }
}

/// Copies `from` to `to`, creating parent directories and keeping the mode.
fn install(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, to).unwrap_or_else(|error| panic!("copy {from:?} to {to:?}: {error}"));
}

/// Writes an executable file (mode 0755), creating parent directories.
fn write_executable(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory under the system temp dir with a name unique to this process and call, removed
/// on drop (also when the test panics).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(purpose: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "tongdai-systemd-{purpose}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
        ));
        fs::create_dir(&path).unwrap_or_else(|error| panic!("create {path:?}: {error}"));
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover scratch dir in /tmp must not turn a passing test into a panic.
        let _ = fs::remove_dir_all(&self.0);
    }
}
