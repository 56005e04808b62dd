//! `[records]`: where call records are kept, for how long, and whether (and how long) abandoned
//! callers' numbers are kept for a call-back. Part of the config layer: TOML → [`RecordsConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diag::Diagnostics;
use super::read::Section;

/// `[records]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsConfig {
    /// The SQLite file of call records (resolved against the config file's folder); `None` keeps
    /// no records.
    pub path: Option<PathBuf>,
    /// Rows older than this are purged (hourly).
    pub retention: Duration,
    /// Keep the clear number of abandoned calls for a call-back (off: never stored, and any kept
    /// while it was on are deleted at start-up).
    pub callbacks: bool,
    /// Call-back numbers older than this are deleted (at most `retention`).
    pub callbacks_retention: Duration,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            path: Some(PathBuf::from("records.db")),
            retention: Duration::from_secs(365 * 86_400),
            callbacks: false,
            callbacks_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Reads `[records]`; a relative `path` is taken from `base`, an empty one keeps no records.
pub(super) fn read_records(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    base: &Path,
) -> Option<RecordsConfig> {
    let d = RecordsConfig::default();
    let path: String = s.or(cx, "path", "records.db".to_string());
    let retention: Duration = s.or(cx, "retention", d.retention);
    if retention < Duration::from_secs(86_400) {
        cx.error(
            s.span_of("retention"),
            &s.key_path("retention"),
            "must be at least one day",
            Some("e.g. retention = \"365d\"".into()),
        );
    }
    let callbacks = s.or(cx, "callbacks", d.callbacks);
    let callbacks_retention: Duration = s.or(cx, "callbacks_retention", d.callbacks_retention);
    if callbacks_retention < Duration::from_secs(3_600) {
        cx.error(
            s.span_of("callbacks_retention"),
            &s.key_path("callbacks_retention"),
            "must be at least one hour",
            Some("e.g. callbacks_retention = \"7d\"".into()),
        );
    } else if callbacks_retention > retention {
        cx.error(
            s.span_of("callbacks_retention"),
            &s.key_path("callbacks_retention"),
            "longer than `retention`: a call-back goes with its call's row",
            Some("make it at most `retention`, e.g. callbacks_retention = \"7d\"".into()),
        );
    }
    s.finish(cx);
    let path = (!path.is_empty()).then(|| base.join(path));
    Some(RecordsConfig { path, retention, callbacks, callbacks_retention })
}
