//! Banning repeated password guesses (protocol layer, sans-IO): per (source address, user), and per
//! source for sources outside the allow-list, with one stable log line per ban for fail2ban.
//! Time is a value; records are bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::AuthFailure;

/// Settings of [`AuthBans`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanConfig {
    /// Password guesses for one (source, user) within `window` that start a ban.
    pub max_failures: u32,
    /// Guesses from one source, whatever the users, within `window` that ban the whole source (a
    /// scanner trying user names). Sources in `allow` are never banned wholesale.
    pub max_source_failures: u32,
    /// The counting window.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban_for: Duration,
    /// Networks never banned wholesale (the centre's own LAN, where every softphone shares one NAT
    /// address): only the (source, user) pair that keeps failing is.
    pub allow: Vec<IpNet>,
    /// Most (source, user) and source records kept, to survive a flood of made-up names.
    pub table_size: usize,
}

impl Default for BanConfig {
    /// 5 guesses per user or 20 per source within 60 s ban for 10 minutes; 4096 records.
    fn default() -> Self {
        BanConfig {
            max_failures: 5,
            max_source_failures: 20,
            window: Duration::from_secs(60),
            ban_for: Duration::from_secs(600),
            allow: Vec::new(),
            table_size: 4096,
        }
    }
}

/// A ban that has just started; log [`Ban::log_line`] once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The offending address.
    pub source: IpAddr,
    /// The user it guessed for; `None` when the whole source is banned.
    pub user: Option<String>,
    /// Guesses counted in the window.
    pub failures: u32,
    /// How long the ban lasts.
    pub duration: Duration,
}

impl Ban {
    /// One stable line for fail2ban and friends: `auth ban source=<ip> user=<user|*> failures=<n>
    /// seconds=<s>`. The format does not change between releases.
    pub fn log_line(&self) -> String {
        format!(
            "auth ban source={} user={} failures={} seconds={}",
            self.source,
            self.user.as_deref().unwrap_or("*"),
            self.failures,
            self.duration.as_secs()
        )
    }
}

/// Failure counts in one window, and the ban they led to.
#[derive(Debug, Clone, Copy)]
struct FailureRecord {
    window_start: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

impl FailureRecord {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    /// Counts one failure; true when it reaches `limit` (and a ban starts).
    fn count(&mut self, now: Instant, window: Duration, limit: u32, ban_for: Duration) -> bool {
        if now.saturating_duration_since(self.window_start) > window {
            self.window_start = now;
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures >= limit && !self.banned(now) {
            self.banned_until = Some(now + ban_for);
            return true;
        }
        false
    }

    fn idle(&self, now: Instant, window: Duration) -> bool {
        !self.banned(now) && now.saturating_duration_since(self.window_start) > window
    }
}

/// Bans repeated password guesses (sans-IO): per (source address, user), and per source for
/// sources outside the allow-list. Only guesses count ([`AuthFailure::is_guess`]): a missing or
/// stale credential is part of every honest exchange.
#[derive(Debug, Clone)]
pub struct AuthBans {
    config: BanConfig,
    pairs: HashMap<(IpAddr, String), FailureRecord>,
    sources: HashMap<IpAddr, FailureRecord>,
}

impl AuthBans {
    /// No bans yet.
    pub fn new(config: BanConfig) -> AuthBans {
        AuthBans { config, pairs: HashMap::new(), sources: HashMap::new() }
    }

    /// True when requests from `source` for `user` must be refused without a challenge.
    pub fn is_banned(&self, now: Instant, source: IpAddr, user: &str) -> bool {
        self.sources.get(&source).is_some_and(|r| r.banned(now))
            || self.pairs.get(&(source, user.to_owned())).is_some_and(|r| r.banned(now))
    }

    fn allowed(&self, source: IpAddr) -> bool {
        self.config.allow.iter().any(|net| net.contains(&source))
    }

    /// Counts `failure` for (`source`, `user`); returns the bans it starts (log each once).
    pub fn record_failure(
        &mut self,
        now: Instant,
        source: IpAddr,
        user: &str,
        failure: &AuthFailure,
    ) -> Vec<Ban> {
        if !failure.is_guess() {
            return Vec::new();
        }
        self.make_room(now);
        let c = &self.config;
        let fresh = FailureRecord { window_start: now, failures: 0, banned_until: None };
        let mut bans = Vec::new();
        let pair = self.pairs.entry((source, user.to_owned())).or_insert(fresh);
        if pair.count(now, c.window, c.max_failures, c.ban_for) {
            bans.push(Ban {
                source,
                user: Some(user.to_owned()),
                failures: pair.failures,
                duration: c.ban_for,
            });
        }
        if !self.allowed(source) {
            let c = &self.config;
            let whole = self.sources.entry(source).or_insert(fresh);
            if whole.count(now, c.window, c.max_source_failures, c.ban_for) {
                bans.push(Ban {
                    source,
                    user: None,
                    failures: whole.failures,
                    duration: c.ban_for,
                });
            }
        }
        bans
    }

    /// Forgets the guesses of (`source`, `user`) after a success (a ban in force stays).
    pub fn record_success(&mut self, now: Instant, source: IpAddr, user: &str) {
        let key = (source, user.to_owned());
        if self.pairs.get(&key).is_some_and(|r| !r.banned(now)) {
            self.pairs.remove(&key);
        }
    }

    /// The settings.
    pub fn config(&self) -> &BanConfig {
        &self.config
    }

    /// Bans in force at `now`: (source, user) pairs and whole sources.
    pub fn active(&self, now: Instant) -> usize {
        let pairs = self.pairs.values().filter(|r| r.banned(now)).count();
        pairs + self.sources.values().filter(|r| r.banned(now)).count()
    }

    /// How many records are kept.
    pub fn len(&self) -> usize {
        self.pairs.len() + self.sources.len()
    }

    /// True when no record is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the tables under `table_size`: idle records go first, then the oldest windows.
    fn make_room(&mut self, now: Instant) {
        // Each failure may add two records: a pair and a source.
        let limit = self.config.table_size.max(2);
        if self.len() + 2 <= limit {
            return;
        }
        let window = self.config.window;
        self.pairs.retain(|_, r| !r.idle(now, window));
        self.sources.retain(|_, r| !r.idle(now, window));
        while self.len() + 2 > limit {
            let oldest_pair = self.pairs.iter().min_by_key(|(_, r)| r.window_start);
            let oldest_pair = oldest_pair.map(|(k, r)| (k.clone(), r.window_start));
            let oldest_source = self.sources.iter().min_by_key(|(_, r)| r.window_start);
            let oldest_source = oldest_source.map(|(k, r)| (*k, r.window_start));
            match (oldest_pair, oldest_source) {
                (Some((k, a)), Some((_, b))) if a <= b => {
                    self.pairs.remove(&k);
                }
                (_, Some((k, _))) => {
                    self.sources.remove(&k);
                }
                (Some((k, _)), None) => {
                    self.pairs.remove(&k);
                }
                (None, None) => break,
            }
        }
    }
}
