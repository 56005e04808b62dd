//! Dead-leg detection (media protocol layer, sans-IO): a leg that sends us nothing for
//! `rtp_timeout` while not on hold is reported dead, so a vanished agent sends the caller back to
//! the front of the queue and a vanished caller frees the line (ARCHITECTURE §6).
//!
//! Only what the peer sends counts: we always send to a live leg (prompts, music or relay), so
//! our own traffic says nothing about the peer. RTCP counts as well as RTP, since a phone with
//! silence suppression may pause RTP while its RTCP reports keep coming.

use std::time::{Duration, Instant};

/// Watches one leg for incoming media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpWatchdog {
    timeout: Duration,
    last_activity: Instant,
    on_hold: bool,
}

impl RtpWatchdog {
    /// Starts watching at `now` (when the leg's media starts, e.g. on answer): the peer has
    /// `timeout` to send its first packet.
    pub fn new(timeout: Duration, now: Instant) -> RtpWatchdog {
        RtpWatchdog { timeout, last_activity: now, on_hold: false }
    }

    /// An RTP or RTCP packet from the leg's latched source arrived at `now`.
    pub fn on_packet(&mut self, now: Instant) {
        if now > self.last_activity {
            self.last_activity = now;
        }
    }

    /// The leg went on or off hold (a peer on hold may legitimately send nothing). Leaving hold
    /// restarts the clock at `now`.
    pub fn set_on_hold(&mut self, on_hold: bool, now: Instant) {
        if self.on_hold && !on_hold {
            self.last_activity = now;
        }
        self.on_hold = on_hold;
    }

    /// When the leg will be dead if nothing arrives; `None` while on hold.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.on_hold).then(|| self.last_activity + self.timeout)
    }

    /// True when the leg is dead at `now`.
    pub fn is_dead(&self, now: Instant) -> bool {
        self.poll_timeout().is_some_and(|deadline| now >= deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_after_timeout_without_packets_but_not_on_hold() {
        let t0 = crate::test_epoch();
        let s = Duration::from_secs(1);
        let mut w = RtpWatchdog::new(s * 30, t0);
        assert_eq!(w.poll_timeout(), Some(t0 + s * 30));
        w.on_packet(t0 + s * 10);
        assert!(!w.is_dead(t0 + s * 39));
        assert!(w.is_dead(t0 + s * 40));
        // A late, out-of-order report never moves the clock back.
        w.on_packet(t0 + s * 5);
        assert_eq!(w.poll_timeout(), Some(t0 + s * 40));
        w.set_on_hold(true, t0 + s * 20);
        assert_eq!(w.poll_timeout(), None);
        assert!(!w.is_dead(t0 + s * 500));
        w.set_on_hold(false, t0 + s * 600);
        assert!(!w.is_dead(t0 + s * 629));
        assert!(w.is_dead(t0 + s * 630));
    }
}
