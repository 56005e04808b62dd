//! Configuration texts for the config tests: read a text as `check-config` would (relative paths
//! from the repository's `config/`), render its errors, and find where a piece of it sits.

use std::path::Path;

use tongdai::config::{Config, ConfigError, Severity, Source};

/// `text` read as the file `t.toml` in the repository's `config/` folder.
pub fn check(text: &str) -> Result<Config, ConfigError> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    Config::from_source(&Source::new("t.toml", text.to_string()), &base).map(|(c, _)| c)
}

/// The rendered errors of a refused config (panics when it is accepted).
pub fn errors(text: &str) -> Vec<String> {
    match check(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect(),
    }
}

/// The 1-based line and column where `needle` first occurs in `text`.
pub fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap();
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}
