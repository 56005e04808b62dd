//! `[limits]`: per-source rate limiting of SIP traffic (token bucket and temporary ban), and the
//! caps that bound what a flood can make the daemon hold (calls, server transactions, TCP
//! connections, followed nonces). Part of the config layer: TOML → [`RateLimitConfig`], [`Caps`].

use std::time::Duration;

use ipnet::IpNet;

use super::diag::Diagnostics;
use super::read::Section;
use crate::sip::ratelimit::RateLimitConfig;

/// The caps of `[limits]`: how much state the daemon holds at most, whoever sends what. Each is
/// answered and counted where it bites (see the README's "Limits" and metrics tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Calls in progress in any phase (prompt, queue, ringing, bridged, overflowed); a new call
    /// past it gets 486 (`tongdai_calls_refused_total{reason="max_calls"}`).
    pub max_calls: usize,
    /// Server transactions alive in the SIP endpoint; a new INVITE past it gets 480, any other new
    /// request 500 + Retry-After, statelessly (`tongdai_sip_transactions_refused_total`).
    pub max_transactions: usize,
    /// Open SIP TCP connections; more are refused at accept
    /// (`tongdai_sip_tcp_refused_total{reason="max_connections"}`).
    pub max_tcp_connections: usize,
    /// Nonces the digest replay table follows; past it the oldest is forgotten and answers
    /// `stale=true` (`tongdai_auth_nonces_dropped_total`).
    pub max_nonces: usize,
}

impl Default for Caps {
    /// 1000 calls, 32 768 server transactions, 1024 TCP connections, 4096 nonces.
    fn default() -> Self {
        Caps {
            max_calls: 1000,
            max_transactions: crate::sip::endpoint::DEFAULT_MAX_SERVER_TRANSACTIONS,
            max_tcp_connections: 1024,
            max_nonces: crate::sip::auth::DEFAULT_NONCE_TABLE_SIZE,
        }
    }
}

/// Reads one cap: a count above zero.
fn read_cap(
    cx: &mut Diagnostics<'_>,
    s: &mut Section<'_, '_>,
    key: &'static str,
    default: usize,
) -> usize {
    let value: u32 = s.or(cx, key, u32::try_from(default).unwrap_or(u32::MAX));
    if value == 0 {
        cx.error(
            s.span_of(key),
            &s.key_path(key),
            "must be above zero (a cap of 0 would refuse everything)",
            Some(format!("default: {key} = {default}")),
        );
    }
    value.max(1) as usize
}

/// Reads `[limits]`; `allow` (the trunk's allow-list and `[registrar] allow`) is never limited.
pub(super) fn read_limits(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    allow: &[IpNet],
) -> Option<(RateLimitConfig, Caps)> {
    let d = RateLimitConfig::default();
    let rate: u32 = s.or(cx, "requests_per_second", d.rate as u32);
    let burst: u32 = s.or(cx, "burst", d.burst);
    let ban_for: Duration = s.or(cx, "ban_duration", d.ban_for);
    let max_sources: u32 = s.or(cx, "max_sources", d.max_sources as u32);
    if rate > 0 && (burst == 0 || ban_for.is_zero() || max_sources == 0) {
        let key = if burst == 0 {
            "burst"
        } else if ban_for.is_zero() {
            "ban_duration"
        } else {
            "max_sources"
        };
        cx.error(
            s.span_of(key),
            &s.key_path(key),
            "must be above zero while requests_per_second is",
            Some("defaults: burst = 100, ban_duration = \"60s\", max_sources = 10000".into()),
        );
    }
    let c = Caps::default();
    let caps = Caps {
        max_calls: read_cap(cx, &mut s, "max_calls", c.max_calls),
        max_transactions: read_cap(cx, &mut s, "max_transactions", c.max_transactions),
        max_tcp_connections: read_cap(cx, &mut s, "max_tcp_connections", c.max_tcp_connections),
        max_nonces: read_cap(cx, &mut s, "max_nonces", c.max_nonces),
    };
    s.finish(cx);
    let rate = RateLimitConfig {
        rate: f64::from(rate),
        burst: burst.max(1),
        ban_for,
        allow: allow.to_vec(),
        max_sources: max_sources.max(1) as usize,
    };
    Some((rate, caps))
}
