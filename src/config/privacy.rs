//! `[privacy]`: where caller identity comes from, how callers are shown to agents, and the key
//! that turns numbers into pseudonyms. Part of the config layer: TOML → [`PrivacyConfig`].
//!
//! The key file itself is read (and created on first start) by the runtime, never here:
//! `check-config` must not write files.

use std::path::{Path, PathBuf};

use super::diag::Diagnostics;
use super::read::Section;

/// The placeholders an `agent_display` template may use.
pub const DISPLAY_PLACEHOLDERS: [&str; 2] = ["{province}", "{caller}"];

/// `[privacy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyConfig {
    /// The pseudonym key (32 random bytes, mode 0600), resolved against the config file's folder.
    pub key_file: PathBuf,
    /// Trust P-Asserted-Identity (RFC 3325) on INVITEs from the trunk (`[trunk] allow`): the
    /// trunk is our trust domain. Otherwise the number comes from From.
    pub trust_asserted_identity: bool,
    /// Put the caller's number in the agent's INVITE (From user part). Off: agents see only the
    /// display and the pseudonym.
    pub show_number_to_agents: bool,
    /// The display name of the agent's INVITE; `{province}` and `{caller}` (the pseudonym, `#…`,
    /// or the anonymous label) are replaced.
    pub agent_display: String,
    /// What `{province}` shows when the number tells no province (mobiles, anonymous callers).
    pub region: String,
    /// What `{caller}` shows for a caller without a number (anonymous or `Privacy: id`).
    pub anonymous_label: String,
    /// Who a transfer target sees calling: off (default), the hotline's `111`; on, the caller's
    /// number unless the caller withheld it (a focal point may need to call back).
    pub show_number_to_transfer_targets: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            key_file: PathBuf::from("pseudonym.key"),
            trust_asserted_identity: true,
            show_number_to_agents: false,
            agent_display: "111 · {province} · {caller}".into(),
            region: "Nam Bộ".into(),
            anonymous_label: "ẩn danh".into(),
            show_number_to_transfer_targets: false,
        }
    }
}

/// Reads `[privacy]`; the relative `key_file` is taken from `base`.
pub(super) fn read_privacy(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    base: &Path,
) -> Option<PrivacyConfig> {
    let d = PrivacyConfig::default();
    let key_file: PathBuf = s.or(cx, "key_file", d.key_file);
    if key_file.as_os_str().is_empty() {
        cx.error(
            s.span_of("key_file"),
            &s.key_path("key_file"),
            "no key file",
            Some("e.g. key_file = \"/var/lib/tongdai/pseudonym.key\"".into()),
        );
    }
    let trust_asserted_identity = s.or(cx, "trust_asserted_identity", d.trust_asserted_identity);
    let show_number_to_agents = s.or(cx, "show_number_to_agents", d.show_number_to_agents);
    let agent_display: String = s.or(cx, "agent_display", d.agent_display);
    check_template(cx, &s, &agent_display);
    let region = s.or(cx, "region", d.region);
    let anonymous_label = s.or(cx, "anonymous_label", d.anonymous_label);
    let show_number_to_transfer_targets =
        s.or(cx, "show_number_to_transfer_targets", d.show_number_to_transfer_targets);
    s.finish(cx);
    Some(PrivacyConfig {
        key_file: base.join(key_file),
        trust_asserted_identity,
        show_number_to_agents,
        agent_display,
        region,
        anonymous_label,
        show_number_to_transfer_targets,
    })
}

fn check_template(cx: &mut Diagnostics<'_>, s: &Section<'_, '_>, template: &str) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            cx.error(
                s.span_of("agent_display"),
                &s.key_path("agent_display"),
                "a `{` is never closed",
                Some(format!("placeholders: {}", DISPLAY_PLACEHOLDERS.join(", "))),
            );
            return;
        };
        let placeholder = &after[..=close];
        if !DISPLAY_PLACEHOLDERS.contains(&placeholder) {
            cx.error(
                s.span_of("agent_display"),
                &s.key_path("agent_display"),
                format!("unknown placeholder `{placeholder}`"),
                Some(format!("placeholders: {}", DISPLAY_PLACEHOLDERS.join(", "))),
            );
        }
        rest = &after[close + 1..];
    }
    if template.chars().any(|c| c.is_control()) {
        cx.error(
            s.span_of("agent_display"),
            &s.key_path("agent_display"),
            "control characters cannot go in a SIP display name",
            None,
        );
    }
}
