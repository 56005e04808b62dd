//! `[overflow]` and `[[overflow.targets]]`: when calls go to the national centre, to which
//! addresses, how (bridged through tongdai or redirected with 302), how targets are probed, and
//! how looped calls are recognised. Part of the config layer: TOML → [`OverflowConfig`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Secret;
use super::diag::Diagnostics;
use super::read::Section;
use super::registrar::read_password;
use crate::acd::OverflowRules;
use crate::sip::message::{Host, Scheme, Uri};

/// How a call is handed to the national centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowMethod {
    /// INVITE the target and relay the media through tongdai (works in every phase of a call).
    #[default]
    Bridge,
    /// 302 Moved Temporarily to the trunk with the targets as Contacts: possible only while the
    /// trunk leg is unanswered (early media, or a call overflowed on arrival); otherwise bridged.
    Redirect,
}

/// Credentials for a target that challenges our INVITE or OPTIONS (401/407).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCredentials {
    /// The digest username.
    pub user: String,
    /// The password.
    pub password: Secret,
    /// The only realm answered: the password's digest reaches no one else.
    pub realm: String,
}

/// One national-centre address (`[[overflow.targets]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct OverflowTarget {
    /// A short name for logs, metrics (`target` label) and the wallboard.
    pub name: String,
    /// The Request-URI of our INVITE (and the 302's Contact).
    pub uri: Uri,
    /// Where requests go: the URI's IP host and port (5060 by default), over UDP.
    pub address: SocketAddr,
    /// Digest credentials, when the target challenges us.
    pub credentials: Option<TargetCredentials>,
}

/// `[overflow]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OverflowConfig {
    /// The rules the engine applies (see [`crate::acd::OverflowRules`]).
    pub rules: OverflowRules,
    /// The targets, in the order they are tried.
    pub targets: Vec<OverflowTarget>,
    /// Bridge (default) or redirect.
    pub method: OverflowMethod,
    /// How long a target may take to answer our INVITE before the next one is tried.
    pub answer_timeout: Duration,
    /// How often each target is probed with OPTIONS.
    pub probe_interval: Duration,
    /// A target is down after this many failed probes in a row.
    pub down_after: u32,
    /// A down target is up again after this many answered probes in a row.
    pub up_after: u32,
    /// The header that marks a call as already overflowed by a centre (ours is added to every
    /// overflowed INVITE); a call arriving with it is never overflowed again.
    pub loop_header: String,
    /// The national centre sees the caller's number (From and P-Asserted-Identity), unless the
    /// caller withheld it; off: they see `anonymous`.
    pub send_caller_number: bool,
}

impl Default for OverflowConfig {
    fn default() -> Self {
        OverflowConfig {
            rules: OverflowRules::default(),
            targets: Vec::new(),
            method: OverflowMethod::Bridge,
            answer_timeout: Duration::from_secs(30),
            probe_interval: Duration::from_secs(30),
            down_after: 3,
            up_after: 2,
            loop_header: "X-Tongdai-Overflow".to_string(),
            send_caller_number: true,
        }
    }
}

/// Reads `[overflow]` (absent: no overflow).
pub(super) fn read_overflow(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    base: &Path,
) -> Option<OverflowConfig> {
    let d = OverflowConfig::default();
    let dr = &d.rules;
    let method = match s.or(cx, "method", "bridge".to_string()).as_str() {
        "bridge" => OverflowMethod::Bridge,
        "redirect" => OverflowMethod::Redirect,
        other => {
            cx.error(
                s.span_of("method"),
                &s.key_path("method"),
                format!("unknown overflow method `{other}`"),
                Some("use \"bridge\" (INVITE and relay) or \"redirect\" (302)".into()),
            );
            OverflowMethod::Bridge
        }
    };
    // "0s" turns a time rule off.
    let off = |d: Duration| (!d.is_zero()).then_some(d);
    let max_wait = off(s.or(cx, "max_wait", dr.max_wait.unwrap_or_default()));
    let max_wait_urgent = off(s.or(cx, "max_wait_urgent", dr.max_wait_urgent.unwrap_or_default()));
    let predicted_wait = off(s.or(cx, "predicted_wait", Duration::ZERO));
    let no_agents = s.or(cx, "no_agents", dr.no_agents);
    let queue_full = s.or(cx, "queue_full", dr.queue_full);
    let retry_interval = s.or(cx, "retry_interval", dr.retry_interval);
    let answer_timeout = s.or(cx, "answer_timeout", d.answer_timeout);
    let probe_interval = s.or(cx, "probe_interval", d.probe_interval);
    let down_after: u32 = s.or(cx, "down_after", d.down_after);
    let up_after: u32 = s.or(cx, "up_after", d.up_after);
    let loop_header: String = s.or(cx, "loop_header", d.loop_header.clone());
    let send_caller_number = s.or(cx, "send_caller_number", d.send_caller_number);
    for (key, value) in [
        ("retry_interval", retry_interval),
        ("answer_timeout", answer_timeout),
        ("probe_interval", probe_interval),
    ] {
        if value < Duration::from_secs(1) {
            cx.error(
                s.span_of(key),
                &s.key_path(key),
                "must be at least 1s",
                Some(format!("e.g. {key} = \"30s\"")),
            );
        }
    }
    if down_after == 0 || up_after == 0 {
        cx.error(
            s.span_of(if down_after == 0 { "down_after" } else { "up_after" }),
            &s.key_path("down_after"),
            "down_after and up_after count probes and must be at least 1",
            Some("defaults: down_after = 3, up_after = 2".into()),
        );
    }
    if loop_header.is_empty()
        || !loop_header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        cx.error(
            s.span_of("loop_header"),
            &s.key_path("loop_header"),
            format!("`{loop_header}` is not a SIP header name"),
            Some("e.g. loop_header = \"X-Tongdai-Overflow\"".into()),
        );
    }
    let sections = s.tables(cx, "targets");
    let mut targets = Vec::new();
    for t in sections {
        if let Some(target) = read_target(cx, t, base, &targets) {
            targets.push(target);
        }
    }
    s.finish(cx);
    Some(OverflowConfig {
        rules: OverflowRules {
            enabled: !targets.is_empty(),
            no_agents,
            max_wait,
            max_wait_urgent,
            predicted_wait,
            queue_full,
            retry_interval,
        },
        targets,
        method,
        answer_timeout,
        probe_interval,
        down_after,
        up_after,
        loop_header,
        send_caller_number,
    })
}

fn read_target(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    base: &Path,
    earlier: &[OverflowTarget],
) -> Option<OverflowTarget> {
    let name: Option<String> = s.required(cx, "name");
    let uri_text: Option<String> = s.required(cx, "uri");
    let user: Option<String> = s.opt(cx, "username");
    let realm: Option<String> = s.opt(cx, "realm");
    let password: Option<String> = s.opt(cx, "password");
    let password_file: Option<PathBuf> = s.opt(cx, "password_file");
    let name = name.filter(|n| {
        let ok = !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            cx.error(
                s.span_of("name"),
                &s.key_path("name"),
                format!("`{n}` is not a usable target name"),
                Some("letters, digits, `-`, `_` and `.` only (it is a metric label)".into()),
            );
        } else if earlier.iter().any(|e| &e.name == n) {
            cx.error(
                s.span_of("name"),
                &s.key_path("name"),
                format!("a second overflow target named `{n}`"),
                Some("target names must be unique".into()),
            );
            return false;
        }
        ok
    });
    let parsed = uri_text.as_deref().map(|text| sip_address(cx, &s, "uri", text));
    let credentials = match (user, realm) {
        (None, None) if password.is_none() && password_file.is_none() => Some(None),
        (Some(user), Some(realm)) => read_password(cx, &s, password, password_file, base)
            .map(|password| Some(TargetCredentials { user, password, realm })),
        _ => {
            cx.error(
                s.span(),
                &s.key_path("username"),
                "credentials need `username`, `realm` and one of `password`/`password_file`",
                Some("or leave all of them out for a target that does not challenge".into()),
            );
            None
        }
    };
    s.finish(cx);
    let (uri, address) = parsed??;
    Some(OverflowTarget { name: name?, uri, address, credentials: credentials? })
}

/// Reads `key`'s value `text` as a `sip:` URI with an IP host (the only kind tongdai dials
/// directly: no DNS), and the UDP address it names (port 5060 by default); `None` after an error.
/// Shared by `[[overflow.targets]]` and `[[directory]]`.
pub(super) fn sip_address(
    cx: &mut Diagnostics<'_>,
    s: &Section<'_, '_>,
    key: &str,
    text: &str,
) -> Option<(Uri, SocketAddr)> {
    match Uri::parse(text) {
        Ok(uri) => {
            let ip = match uri.host() {
                Some(Host::Ipv4(ip)) => Some(IpAddr::V4(*ip)),
                Some(Host::Ipv6(ip)) => Some(IpAddr::V6(*ip)),
                _ => None,
            };
            match (uri.scheme(), ip) {
                (Scheme::Sip, Some(ip)) => {
                    let address = SocketAddr::new(ip, uri.port().unwrap_or(5060));
                    Some((uri, address))
                }
                _ => {
                    cx.error(
                        s.span_of(key),
                        &s.key_path(key),
                        format!("`{text}` is not a sip: URI with an IP address"),
                        Some(
                            "targets are reached over UDP at an address, e.g. \
                         uri = \"sip:111@198.51.100.20:5060\""
                                .into(),
                        ),
                    );
                    None
                }
            }
        }
        Err(e) => {
            cx.error(
                s.span_of(key),
                &s.key_path(key),
                format!("`{text}` is not a SIP URI: {e}"),
                Some("e.g. uri = \"sip:111@198.51.100.20:5060\"".into()),
            );
            None
        }
    }
}
