//! Configuration diagnostics: every mistake found in a file, each with `file:line:col`, the key, what
//! was wrong and a hint. Part of the config layer; used by `check-config`, `run` and reload alike.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The text of one configuration file, with what is needed to turn byte offsets into lines and columns.
#[derive(Debug)]
pub struct Source {
    name: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl Source {
    /// Wraps `text`, read from `name` (a path, or a label such as `<built-in default>`).
    pub fn new(name: impl Into<PathBuf>, text: String) -> Self {
        let line_starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Source { name: name.into(), text, line_starts }
    }

    /// The file's name as given.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration is refused.
    Error,
    /// The configuration is accepted, but something is probably not what the operator meant.
    Warning,
}

/// One finding about a configuration file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file it was found in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// The dotted key path, e.g. `sip.timers.t1` or `agents[2].user`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: `{}`: {}",
            self.file.display(),
            self.line,
            self.col,
            self.key,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Collects diagnostics while a file is read, so that every mistake is reported, not only the first.
#[derive(Debug)]
pub struct Diagnostics<'s> {
    source: &'s Source,
    found: Vec<Diagnostic>,
}

impl<'s> Diagnostics<'s> {
    /// Starts an empty collection for `source`.
    pub fn new(source: &'s Source) -> Self {
        Diagnostics { source, found: Vec::new() }
    }

    /// Records an error at `span` (byte offsets into the source).
    pub fn error(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, span, key, message.into(), hint);
    }

    /// Records a warning at `span`.
    pub fn warning(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Warning, span, key, message.into(), hint);
    }

    fn push(
        &mut self,
        severity: Severity,
        span: Range<usize>,
        key: &str,
        message: String,
        hint: Option<String>,
    ) {
        let (line, col) = self.source.line_col(span.start);
        self.found.push(Diagnostic {
            severity,
            file: self.source.name().to_path_buf(),
            line,
            col,
            key: key.to_string(),
            message,
            hint,
        });
    }

    /// True when at least one error (not a warning) was recorded.
    pub fn has_errors(&self) -> bool {
        self.found.iter().any(|d| d.severity == Severity::Error)
    }

    /// Everything found, in source order.
    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|d| (d.line, d.col));
        self.found
    }
}

/// A configuration that was refused: every error and warning found, in source order.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// What was found; at least one is an error.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        write!(f, "configuration refused: {errors} error(s)")
    }
}

/// The suggestion for a mistyped name: the known name closest to `typo`, if it is close enough.
pub fn closest<'k>(typo: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(typo, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb { diag } else { 1 + diag.min(above).min(row[j]) };
            diag = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let s = Source::new("t.toml", "a = 1\n# ổ\nbé = 2\n".to_string());
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        let b = s.text().find("= 2").unwrap();
        assert_eq!(s.line_col(b), (3, 4));
    }

    #[test]
    fn suggests_the_near_key_only() {
        assert_eq!(closest("ring_timout", &["ring_timeout", "lines"]), Some("ring_timeout"));
        assert_eq!(closest("zzz", &["ring_timeout", "lines"]), None);
    }
}
