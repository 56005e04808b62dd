//! The transfer directory (issue 11, point 1): the people an operator hands a call over to — the
//! provinces' child-protection focal points, police 113, medical 115, the national centre — each
//! reached at a SIP address or by a number dialled through the trunk, and optionally by a short
//! code the softphone dials (`*31`). Domain layer, sans-IO: a read-only lookup built from
//! `[[directory]]` once the configuration is validated.

use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use crate::acd::province::Province;
use crate::sip::message::Uri;

/// What kind of service a directory entry is, for the wallboard and the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A province's child-protection focal point (its Department of Labour, Invalids and Social
    /// Affairs).
    FocalPoint,
    /// Police (113).
    Police,
    /// Emergency medical services (115).
    Medical,
    /// The national centre.
    National,
    /// Anything else.
    Other,
}

impl TargetKind {
    /// Every kind, in configuration order.
    pub const ALL: [TargetKind; 5] = [
        TargetKind::FocalPoint,
        TargetKind::Police,
        TargetKind::Medical,
        TargetKind::National,
        TargetKind::Other,
    ];

    /// The configuration and API name (`focal_point`, `police`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::FocalPoint => "focal_point",
            TargetKind::Police => "police",
            TargetKind::Medical => "medical",
            TargetKind::National => "national",
            TargetKind::Other => "other",
        }
    }

    /// The kind called `name` in the configuration.
    pub fn from_name(name: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a transferred call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A SIP URI with an IP address, reached directly over UDP.
    Sip {
        /// The Request-URI of the INVITE.
        uri: Uri,
        /// The URI's address and port (5060 by default).
        address: SocketAddr,
    },
    /// A number (digits, a leading `+`) dialled through the trunk (`[trunk] outbound`).
    Number(String),
}

/// One `[[directory]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The name operators and the wallboard see.
    pub name: String,
    /// Where the call goes.
    pub destination: Destination,
    /// The province it serves, for provincial entries.
    pub province: Option<Province>,
    /// What kind of service it is.
    pub kind: TargetKind,
    /// The short code dialled from the softphone (`*31`), if any.
    pub code: Option<String>,
}

/// The configured transfer targets, in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    entries: Vec<DirectoryEntry>,
}

impl Directory {
    /// A directory of `entries` (the config layer has checked that names and codes are unique).
    pub fn new(entries: Vec<DirectoryEntry>) -> Directory {
        Directory { entries }
    }

    /// Every entry, in configuration order.
    pub fn entries(&self) -> &[DirectoryEntry] {
        &self.entries
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry whose short code is `dialled` (a Request-URI or Refer-To user part: `%2A` and
    /// `%23` are read as `*` and `#`, as softphones escape them).
    pub fn by_code(&self, dialled: &str) -> Option<&DirectoryEntry> {
        let dialled = unescape_code(dialled);
        self.entries.iter().find(|e| e.code.as_deref() == Some(dialled.as_str()))
    }

    /// The entry called `name`.
    pub fn by_name(&self, name: &str) -> Option<&DirectoryEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// `%2A`/`%2a` → `*`, `%23` → `#`.
fn unescape_code(dialled: &str) -> String {
    dialled.replace("%2A", "*").replace("%2a", "*").replace("%23", "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, code: Option<&str>) -> DirectoryEntry {
        DirectoryEntry {
            name: name.into(),
            destination: Destination::Number("113".into()),
            province: None,
            kind: TargetKind::Police,
            code: code.map(Into::into),
        }
    }

    #[test]
    fn codes_are_found_escaped_or_not() {
        let d = Directory::new(vec![entry("a", Some("*31")), entry("b", None)]);
        assert_eq!(d.by_code("*31").map(|e| e.name.as_str()), Some("a"));
        assert_eq!(d.by_code("%2A31").map(|e| e.name.as_str()), Some("a"));
        assert_eq!(d.by_code("*32"), None);
        assert_eq!(d.by_code(""), None, "an entry without a code is never matched");
        assert_eq!(d.by_name("b").map(|e| e.code.clone()), Some(None));
        assert_eq!(TargetKind::from_name("focal_point"), Some(TargetKind::FocalPoint));
        assert_eq!(TargetKind::from_name("fire"), None);
    }
}
