//! `[registrar]` and `[trunk_registration]`: registration limits, where bindings are kept across
//! restarts, keep-alives, the ban on password guessing and dropped scanners; and the optional
//! registration of tongdai itself to the provider. Part of the config layer: TOML → validated
//! types, every problem with its position.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::Secret;
use super::diag::Diagnostics;
use super::read::Section;
use crate::sip::auth::BanConfig;
use crate::sip::registrar::RegistrarConfig;

/// `[registrar]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarSettings {
    /// Expiry limits and bindings per agent.
    pub limits: RegistrarConfig,
    /// The SQLite file bindings are kept in (resolved against the config file's folder); `None`
    /// keeps them in memory only, so a restart logs every agent out.
    pub database: Option<PathBuf>,
    /// How often each binding is probed with OPTIONS; `None` sends no keep-alives.
    pub keepalive_interval: Option<Duration>,
    /// Unanswered keep-alives in a row after which the binding is removed (≥ 1).
    pub keepalive_failures: u32,
    /// Banning repeated guesses. Its `allow` holds this section's `allow` and the trunk's.
    pub bans: BanConfig,
    /// `User-Agent` fragments (case-insensitive) of scanners whose requests are dropped unanswered.
    pub scanner_user_agents: Vec<String>,
}

/// `[trunk_registration]`: tongdai registers to the provider as `user` (RFC 3261 §10.2).
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkRegistrationConfig {
    /// The provider's registrar (UDP).
    pub registrar: SocketAddr,
    /// The domain of our AOR and of the Request-URI (default: the registrar's address).
    pub domain: String,
    /// Our user at the provider (AOR user part).
    pub user: String,
    /// The digest username (default: `user`).
    pub auth_user: String,
    /// The password.
    pub password: Secret,
    /// The only digest realm we answer; a challenge for any other realm is not answered, so
    /// the credentials never leak to another party.
    pub realm: String,
    /// The expiry we ask for.
    pub expires: Duration,
    /// The first wait after a failure; it doubles after each further failure.
    pub retry_min: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
}

/// Reads `[registrar]`; `trunk_allow` joins the networks never banned wholesale.
pub(super) fn read_registrar(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    base: &Path,
    trunk_allow: &[IpNet],
) -> Option<RegistrarSettings> {
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let min = s.or(cx, "min_expires", Duration::from_secs(60));
    let max = s.or(cx, "max_expires", Duration::from_secs(600));
    let default = s.or(cx, "default_expires", Duration::from_secs(3600));
    if min.is_zero() || max < min {
        cx.error(
            s.span_of("max_expires"),
            &s.key_path("max_expires"),
            "max_expires must be at least min_expires, and min_expires above zero",
            Some("defaults: min_expires = \"60s\", max_expires = \"10m\"".into()),
        );
    }
    let max_bindings: u32 = s.or(cx, "max_bindings", 8);
    let database: String = s.or(cx, "database", "tongdai.db".to_string());
    let database = (!database.is_empty()).then(|| base.join(database));
    let keepalive_interval = s.or(cx, "keepalive_interval", Duration::from_secs(30));
    let keepalive_failures: u32 = s.or(cx, "keepalive_failures", 3);
    if keepalive_failures == 0 {
        cx.error(
            s.span_of("keepalive_failures"),
            &s.key_path("keepalive_failures"),
            "must be at least 1",
            Some("3 removes a binding after three unanswered keep-alives".into()),
        );
    }
    let ban_failures: u32 = s.or(cx, "ban_failures", 10);
    let ban_source_failures: u32 = s.or(cx, "ban_source_failures", 30);
    let ban_window = s.or(cx, "ban_window", Duration::from_secs(60));
    let ban_duration = s.or(cx, "ban_duration", Duration::from_secs(600));
    if ban_failures == 0 || ban_source_failures == 0 || ban_window.is_zero() {
        cx.error(
            s.span_of("ban_failures"),
            &s.key_path("ban_failures"),
            "ban thresholds and window must be above zero",
            Some("defaults: 10 failures (30 per source) in \"60s\" ban for \"10m\"".into()),
        );
    }
    let mut allow: Vec<IpNet> = s.or(cx, "allow", Vec::new());
    allow.extend(trunk_allow.iter().copied());
    let scanner_user_agents: Vec<String> =
        s.or(cx, "scanner_user_agents", DEFAULT_SCANNERS.iter().map(|s| s.to_string()).collect());
    s.finish(cx);
    Some(RegistrarSettings {
        limits: RegistrarConfig {
            min_expires: secs(min),
            max_expires: secs(max),
            default_expires: secs(default),
            max_bindings: max_bindings.max(1) as usize,
        },
        database,
        keepalive_interval: (!keepalive_interval.is_zero()).then_some(keepalive_interval),
        keepalive_failures: keepalive_failures.max(1),
        bans: BanConfig {
            max_failures: ban_failures.max(1),
            max_source_failures: ban_source_failures.max(1),
            window: ban_window,
            ban_for: ban_duration,
            allow,
            ..BanConfig::default()
        },
        scanner_user_agents: scanner_user_agents
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.to_ascii_lowercase())
            .collect(),
    })
}

/// Scanner `User-Agent`s seen on every public SIP port (SIPVicious and its clones).
const DEFAULT_SCANNERS: &[&str] =
    &["friendly-scanner", "sipvicious", "sipcli", "pplsip", "sip-scan", "sundayddr", "iwar"];

/// Reads `[trunk_registration]` when present (`Ok(None)` when absent).
pub(super) fn read_trunk_registration(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    base: &Path,
) -> Result<Option<TrunkRegistrationConfig>, ()> {
    let registrar: Option<SocketAddr> = s.required(cx, "registrar");
    let domain: Option<String> = s.opt(cx, "domain");
    let user: Option<String> = s.required(cx, "user");
    let auth_user: Option<String> = s.opt(cx, "auth_user");
    let realm: Option<String> = s.required(cx, "realm");
    let password: Option<String> = s.opt(cx, "password");
    let password_file: Option<PathBuf> = s.opt(cx, "password_file");
    let expires = s.or(cx, "expires", Duration::from_secs(3600));
    let retry_min = s.or(cx, "retry_min", Duration::from_secs(30));
    let retry_max = s.or(cx, "retry_max", Duration::from_secs(600));
    if expires < Duration::from_secs(60) || retry_min.is_zero() || retry_max < retry_min {
        cx.error(
            s.span_of("expires"),
            &s.key_path("expires"),
            "expires must be at least 60s, retry_min above zero and retry_max at least retry_min",
            Some("defaults: expires = \"1h\", retry_min = \"30s\", retry_max = \"10m\"".into()),
        );
    }
    let password = read_password(cx, &s, password, password_file, base);
    s.finish(cx);
    let (Some(registrar), Some(user), Some(realm), Some(password)) =
        (registrar, user, realm, password)
    else {
        return Err(());
    };
    Ok(Some(TrunkRegistrationConfig {
        domain: domain.unwrap_or_else(|| registrar.ip().to_string()),
        auth_user: auth_user.unwrap_or_else(|| user.clone()),
        registrar,
        user,
        password,
        realm,
        expires,
        retry_min,
        retry_max,
    }))
}

/// The password of a section with `password` or `password_file` (exactly one; a relative file is
/// read from the config file's folder, its trailing newline dropped).
pub(super) fn read_password(
    cx: &mut Diagnostics<'_>,
    s: &Section<'_, '_>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    base: &Path,
) -> Option<Secret> {
    match (password, password_file) {
        (Some(p), None) => Some(Secret::new(p)),
        (None, Some(path)) => {
            let key = s.key_path("password_file");
            super::secret::read_secret_file(cx, s.span_of("password_file"), &key, &base.join(path))
        }
        _ => {
            cx.error(
                s.span(),
                &s.key_path("password"),
                "exactly one of `password` and `password_file` is needed",
                None,
            );
            None
        }
    }
}
