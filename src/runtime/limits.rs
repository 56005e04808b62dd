//! The per-source rate limit where the SIP socket tasks first see a message: one
//! [`RateLimiter`] shared by the UDP receive loops and the TCP connection tasks, fed with tokio's
//! clock, and the counting and logging of what it drops. Runtime layer: the decisions are the
//! sans-IO limiter's.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{counter, gauge};
use tokio_util::sync::CancellationToken;

use super::driver::now;
use crate::metrics::{RATE_BANS, RATE_BANS_ACTIVE, RATE_LIMITED};
use crate::sip::ratelimit::{RateLimitConfig, RateLimiter, Verdict};

/// How often the gauge of bans in force is refreshed (bans end on their own).
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// The shared limiter and the TCP connection cap (cheap to clone).
#[derive(Debug, Clone)]
pub struct Limits(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limiter: Mutex<RateLimiter>,
    /// `[limits] max_tcp_connections`, read at each accept so that a reload applies at once.
    max_tcp_connections: AtomicUsize,
}

impl Limits {
    /// A limiter with `config`, and the default cap on TCP connections.
    pub fn new(config: RateLimitConfig) -> Limits {
        Limits(Arc::new(Inner {
            limiter: Mutex::new(RateLimiter::new(config)),
            max_tcp_connections: AtomicUsize::new(
                crate::config::Caps::default().max_tcp_connections,
            ),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateLimiter> {
        // The limiter holds counters only: one a panicking holder left half-updated is still usable.
        self.0.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the cap on open SIP TCP connections (at start and on reload; open ones stay).
    pub fn set_max_tcp_connections(&self, max: usize) {
        self.0.max_tcp_connections.store(max.max(1), Ordering::Relaxed);
    }

    /// The cap on open SIP TCP connections.
    pub fn max_tcp_connections(&self) -> usize {
        self.0.max_tcp_connections.load(Ordering::Relaxed)
    }

    /// Applies reloaded settings.
    pub fn reload(&self, config: RateLimitConfig) {
        self.lock().set_config(config);
    }

    /// Whether a message from `source` that came over `transport` (`udp` or `tcp`) is taken; a
    /// dropped one is counted, and a ban that starts is logged on its stable line.
    pub fn admit(&self, source: IpAddr, transport: &'static str) -> bool {
        let t = now();
        let mut limiter = self.lock();
        match limiter.check(t, source) {
            Verdict::Pass => true,
            Verdict::Drop => {
                drop(limiter);
                counter!(RATE_LIMITED, "transport" => transport).increment(1);
                false
            }
            Verdict::Ban(ban) => {
                let active = limiter.active_bans(t);
                drop(limiter);
                tracing::warn!(target: "tongdai::limits", "{}", ban.log_line());
                counter!(RATE_BANS).increment(1);
                counter!(RATE_LIMITED, "transport" => transport).increment(1);
                gauge!(RATE_BANS_ACTIVE).set(active as f64);
                false
            }
        }
    }

    /// True while messages from `source` are dropped (a TCP connection from it is refused).
    pub fn is_banned(&self, source: IpAddr) -> bool {
        self.lock().is_banned(now(), source)
    }

    /// Keeps the gauge of bans in force current until `stop` is cancelled.
    pub async fn upkeep(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(GAUGE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let active = self.lock().active_bans(now());
                    gauge!(RATE_BANS_ACTIVE).set(active as f64);
                }
            }
        }
    }
}
