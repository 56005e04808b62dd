//! `[limits]`: per-source rate limiting of SIP traffic (token bucket and temporary ban). Part of the
//! config layer: TOML → [`RateLimitConfig`].

use std::time::Duration;

use ipnet::IpNet;

use super::diag::Diagnostics;
use super::read::Section;
use crate::sip::ratelimit::RateLimitConfig;

/// Reads `[limits]`; `allow` (the trunk's allow-list and `[registrar] allow`) is never limited.
pub(super) fn read_limits(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    allow: &[IpNet],
) -> Option<RateLimitConfig> {
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
    s.finish(cx);
    Some(RateLimitConfig {
        rate: f64::from(rate),
        burst: burst.max(1),
        ban_for,
        allow: allow.to_vec(),
        max_sources: max_sources.max(1) as usize,
    })
}
