//! Short prompt WAVs for tests that need calls to reach an agent quickly: the shipped Vietnamese
//! prompts last seconds, which would make every call test slow.

use std::path::{Path, PathBuf};

/// Writes an 8 kHz 16-bit mono WAV of a `hz` tone, `secs` long.
pub fn write_tone(path: &Path, hz: f64, secs: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..(8000.0 * secs) as usize {
        let v = (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin() * 8000.0;
        w.write_sample(v as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// A fresh folder `tongdai-<name>-<pid>` in the temporary folder with a 0.3 s welcome, a 0.3 s
/// urgent-lane menu and 1 s of hold audio. The caller removes it.
pub fn short_prompts(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tongdai-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_tone(&dir.join("welcome.wav"), 400.0, 0.3);
    write_tone(&dir.join("urgent-menu.wav"), 500.0, 0.3);
    write_tone(&dir.join("hold-music.wav"), 300.0, 1.0);
    dir
}

/// `config` (the text of a tongdai.toml) taking its prompts from `dir`.
pub fn with_prompts(config: &str, dir: &Path) -> String {
    assert_eq!(config.matches("prompts = \"prompts\"").count(), 1);
    config.replace("prompts = \"prompts\"", &format!("prompts = {:?}", dir.display().to_string()))
}

/// A fresh folder `tongdai-<name>-<pid>` holding the records tests' prompts: a 2 s welcome (a
/// caller who hangs up within it abandons in the prompt), 1 s of hold audio and a feature
/// confirmation. The caller removes it.
pub fn records_prompts(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tongdai-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_tone(&dir.join("welcome.wav"), 400.0, 2.0);
    write_tone(&dir.join("hold-music.wav"), 400.0, 1.0);
    write_tone(&dir.join("feature-paused.wav"), 400.0, 0.4);
    dir
}

/// The test configuration with its prompts from `dir`, call records in `db` and `edits` (from →
/// to, each found once).
pub fn records_config(dir: &Path, db: &Path, edits: &[(&str, &str)]) -> String {
    let path = format!("path = {:?}", db.display().to_string());
    let mut text = with_prompts(&super::daemon::test_config_text(), dir);
    for (from, to) in [("path = \"\"", path.as_str())].iter().chain(edits) {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text = text.replace(from, to);
    }
    text
}

/// `tongdai report` for all time on the records of `config` (`extra`: e.g. `["--format", "csv"]`);
/// fails the test when the command does.
pub fn report(config: &Path, extra: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tongdai"))
        .args(["report", "--from", "2000-01-01", "--to", "2100-01-01"])
        .args(extra)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Every byte of the SQLite database `db` with its WAL and journal, to search for what must not
/// be there.
pub fn database_bytes(db: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        if let Ok(b) = std::fs::read(PathBuf::from(name)) {
            all.extend(b);
        }
    }
    all
}
