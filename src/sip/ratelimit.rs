//! Per-source rate limiting of SIP traffic (protocol layer, sans-IO): one token bucket per source
//! address, and a temporary ban for a source that overdraws it, with one stable log line per ban
//! for fail2ban. Sources in the allow-list (the trunk's SBCs, the centre's own LAN) are never
//! limited: a surge from the trunk is real demand, queued, overflowed or refused call by call.
//!
//! Time is a value. Memory is bounded: at most [`RateLimitConfig::max_sources`] sources are
//! tracked; a source whose bucket has refilled and that is not banned carries no information and
//! is forgotten first. When every tracked source is busy, a new one passes untracked (fail open: a
//! flood from that many addresses is not something one bucket per address can stop, and the
//! agents' phones must keep working).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Settings of [`RateLimiter`].
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Messages per second a source may send on average; `0.0` turns limiting off.
    pub rate: f64,
    /// Messages a source may send at once above the average (the bucket's size, ≥ 1).
    pub burst: u32,
    /// How long a source that overdrew its bucket is dropped.
    pub ban_for: Duration,
    /// Networks never limited (the trunk's allow-list and `[registrar] allow`).
    pub allow: Vec<IpNet>,
    /// Most sources tracked at once.
    pub max_sources: usize,
}

impl Default for RateLimitConfig {
    /// 50 messages/s with bursts of 100, a 60 s ban, 10 000 sources tracked.
    fn default() -> Self {
        RateLimitConfig {
            rate: 50.0,
            burst: 100,
            ban_for: Duration::from_secs(60),
            allow: Vec::new(),
            max_sources: 10_000,
        }
    }
}

/// What to do with one message from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Take it.
    Pass,
    /// Drop it: the source is banned (count it, say nothing).
    Drop,
    /// Drop it, and a ban has just started: log [`RateBan::log_line`] once.
    Ban(RateBan),
}

impl Verdict {
    /// True when the message is taken.
    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Pass)
    }
}

/// A ban that has just started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateBan {
    /// The offending address.
    pub source: IpAddr,
    /// The configured average rate (messages per second, rounded).
    pub rate: u32,
    /// How long the ban lasts.
    pub duration: Duration,
}

impl RateBan {
    /// One stable line for fail2ban and friends: `rate ban source=<ip> rate=<n> seconds=<s>`. The
    /// format does not change between releases.
    pub fn log_line(&self) -> String {
        format!(
            "rate ban source={} rate={} seconds={}",
            self.source,
            self.rate,
            self.duration.as_secs()
        )
    }
}

/// One source's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    banned_until: Option<Instant>,
}

impl Bucket {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    /// Nothing to remember: not banned, and full again at `now`.
    fn idle(&self, now: Instant, rate: f64, burst: f64) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * rate;
        !self.banned(now) && self.tokens + refill >= burst
    }
}

/// Sweeps of the table to make room run at most this often, so that a table full of busy sources
/// never costs a scan per message.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// Token buckets per source address (sans-IO).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    sources: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    /// Nothing tracked yet.
    pub fn new(config: RateLimitConfig) -> RateLimiter {
        RateLimiter { config, sources: HashMap::new(), last_sweep: None }
    }

    /// The settings.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Applies new settings (config reload). Buckets and bans in force are kept; a source newly
    /// allowed is forgotten.
    pub fn set_config(&mut self, config: RateLimitConfig) {
        self.config = config;
        let allow = &self.config.allow;
        self.sources.retain(|ip, _| !allow.iter().any(|net| net.contains(ip)));
    }

    /// True when `source` is never limited.
    pub fn is_allowed(&self, source: IpAddr) -> bool {
        self.config.rate <= 0.0 || self.config.allow.iter().any(|net| net.contains(&source))
    }

    /// One message arrived from `source` at `now`.
    pub fn check(&mut self, now: Instant, source: IpAddr) -> Verdict {
        if self.is_allowed(source) {
            return Verdict::Pass;
        }
        let (rate, burst) = (self.config.rate, f64::from(self.config.burst.max(1)));
        if !self.sources.contains_key(&source) && !self.make_room(now) {
            return Verdict::Pass;
        }
        let fresh = Bucket { tokens: burst, last: now, banned_until: None };
        let bucket = self.sources.entry(source).or_insert(fresh);
        if bucket.banned(now) {
            return Verdict::Drop;
        }
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Pass;
        }
        // Overdrawn: banned; the bucket starts full when the ban ends.
        bucket.banned_until = Some(now + self.config.ban_for);
        bucket.tokens = burst;
        Verdict::Ban(RateBan {
            source,
            rate: rate.round().min(f64::from(u32::MAX)) as u32,
            duration: self.config.ban_for,
        })
    }

    /// True when messages from `source` are dropped at `now`.
    pub fn is_banned(&self, now: Instant, source: IpAddr) -> bool {
        self.sources.get(&source).is_some_and(|b| b.banned(now))
    }

    /// Bans in force at `now`.
    pub fn active_bans(&self, now: Instant) -> usize {
        self.sources.values().filter(|b| b.banned(now)).count()
    }

    /// How many sources are tracked.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Makes room for one more source; false when the table stays full.
    fn make_room(&mut self, now: Instant) -> bool {
        let max = self.config.max_sources.max(1);
        if self.sources.len() < max {
            return true;
        }
        let due =
            self.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_INTERVAL);
        if due {
            self.last_sweep = Some(now);
            let (rate, burst) = (self.config.rate, f64::from(self.config.burst.max(1)));
            self.sources.retain(|_, b| !b.idle(now, rate, burst));
        }
        self.sources.len() < max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limiter(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            rate,
            burst,
            ban_for: Duration::from_secs(60),
            allow: vec!["10.0.0.0/24".parse().unwrap()],
            max_sources: 4,
        })
    }

    #[test]
    fn a_burst_passes_then_the_source_is_banned_for_the_ban_time() {
        let t0 = crate::test_epoch();
        let mut l = limiter(10.0, 5);
        let src = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(l.check(t0, src), Verdict::Pass);
        }
        let Verdict::Ban(ban) = l.check(t0, src) else { panic!("no ban") };
        assert_eq!(ban.log_line(), "rate ban source=192.0.2.1 rate=10 seconds=60");
        assert_eq!(l.active_bans(t0), 1);
        // Everything during the ban is dropped, however slowly it comes.
        assert_eq!(l.check(t0 + Duration::from_secs(30), src), Verdict::Drop);
        assert_eq!(l.check(t0 + Duration::from_secs(60) - MS, src), Verdict::Drop);
        // After it, the bucket is full again.
        let after = t0 + Duration::from_secs(60);
        assert_eq!(l.active_bans(after), 0);
        for _ in 0..5 {
            assert_eq!(l.check(after, src), Verdict::Pass);
        }
    }

    #[test]
    fn a_source_at_the_average_rate_is_never_banned() {
        let t0 = crate::test_epoch();
        let mut l = limiter(10.0, 5);
        let src = ip("192.0.2.1");
        // 10 per second for 100 s, evenly spaced.
        for i in 0..1000u32 {
            assert!(l.check(t0 + 100 * MS * i, src).passes(), "message {i}");
        }
        // Slightly faster than the average drains the burst, then bans.
        let mut t = t0 + Duration::from_secs(100);
        let banned = (0..100).any(|_| {
            t += 90 * MS;
            !l.check(t, src).passes()
        });
        assert!(banned);
    }

    #[test]
    fn sources_are_limited_independently_and_the_allow_list_never() {
        let t0 = crate::test_epoch();
        let mut l = limiter(1.0, 2);
        let (a, b, trunk) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("10.0.0.7"));
        for _ in 0..2 {
            assert!(l.check(t0, a).passes());
        }
        assert!(matches!(l.check(t0, a), Verdict::Ban(_)));
        assert!(l.check(t0, b).passes());
        for _ in 0..10_000 {
            assert!(l.check(t0, trunk).passes());
        }
        assert!(!l.is_banned(t0, trunk));
        assert!(l.is_banned(t0, a) && !l.is_banned(t0, b));
    }

    #[test]
    fn rate_zero_turns_limiting_off() {
        let t0 = crate::test_epoch();
        let mut l = limiter(0.0, 1);
        for _ in 0..1000 {
            assert!(l.check(t0, ip("192.0.2.1")).passes());
        }
        assert!(l.is_empty());
    }

    #[test]
    fn the_table_is_bounded_idle_sources_go_first_and_bans_are_kept() {
        let t0 = crate::test_epoch();
        let mut l = limiter(1.0, 1);
        // Source 1 is banned; 2 to 4 sent one message each.
        let banned = ip("192.0.2.1");
        l.check(t0, banned);
        assert!(matches!(l.check(t0, banned), Verdict::Ban(_)));
        for i in 2..=4 {
            assert!(l.check(t0, ip(&format!("192.0.2.{i}"))).passes());
        }
        assert_eq!(l.len(), 4);
        // Full of busy sources: a new one passes untracked.
        assert!(l.check(t0, ip("192.0.2.5")).passes());
        assert_eq!(l.len(), 4);
        // Once 2 to 4 have refilled they are forgotten; the ban stays.
        let later = t0 + Duration::from_secs(2);
        assert!(l.check(later, ip("192.0.2.6")).passes());
        assert_eq!(l.len(), 2);
        assert!(l.is_banned(later, banned));
        assert_eq!(l.check(later, banned), Verdict::Drop);
    }

    #[test]
    fn a_flood_of_new_sources_costs_no_scan_per_message() {
        let t0 = crate::test_epoch();
        let mut l = limiter(1.0, 1);
        for i in 0..4 {
            l.check(t0, ip(&format!("192.0.2.{i}")));
        }
        // Many new sources within one sweep interval: one sweep, then untracked passes.
        for i in 0..200u32 {
            let src = IpAddr::from([198, 51, (i >> 8) as u8, i as u8]);
            assert!(l.check(t0 + MS * (i % 100), src).passes());
        }
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn a_reload_that_allows_a_source_lifts_its_ban() {
        let t0 = crate::test_epoch();
        let mut l = limiter(1.0, 1);
        let src = ip("192.0.2.1");
        l.check(t0, src);
        l.check(t0, src);
        assert!(l.is_banned(t0, src));
        let mut c = l.config().clone();
        c.allow.push("192.0.2.0/24".parse().unwrap());
        l.set_config(c);
        assert!(!l.is_banned(t0, src));
        assert!(l.check(t0, src).passes());
    }
}
