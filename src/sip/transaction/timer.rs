//! The RFC 3261 §17 timer table (plus RFC 6026's L and M), in one enum, with every duration derived
//! from T1, T2 and T4 in one function. Protocol layer.

use std::time::Duration;

use crate::config::SipTimers;

/// A transaction timer. Each variant's doc names its RFC timer and what it guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// A: INVITE request retransmission (client, unreliable transports); starts at T1, doubles.
    A,
    /// B: INVITE transaction timeout (client); 64·T1.
    B,
    /// D: wait time for response retransmissions (client INVITE, Completed); ≥ 32 s unreliable, 0
    /// reliable.
    D,
    /// E: non-INVITE request retransmission (client, unreliable); T1 doubling up to T2.
    E,
    /// F: non-INVITE transaction timeout (client); 64·T1.
    F,
    /// G: INVITE final response retransmission (server, unreliable); T1 doubling up to T2.
    G,
    /// H: wait time for ACK receipt (server INVITE, Completed); 64·T1.
    H,
    /// I: wait time for ACK retransmissions (server INVITE, Confirmed); T4 unreliable, 0 reliable.
    I,
    /// J: wait time for non-INVITE request retransmissions (server, Completed); 64·T1 unreliable, 0
    /// reliable.
    J,
    /// K: wait time for response retransmissions (client non-INVITE, Completed); T4 unreliable, 0
    /// reliable.
    K,
    /// L: wait time for accepted INVITE request retransmissions (server, Accepted; RFC 6026); 64·T1.
    L,
    /// M: wait time for retransmission of 2xx to INVITE (client, Accepted; RFC 6026); 64·T1.
    M,
}

/// The base values every timer derives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerValues {
    /// T1, the RTT estimate.
    pub t1: Duration,
    /// T2, the maximum retransmit interval.
    pub t2: Duration,
    /// T4, how long a message may stay in the network.
    pub t4: Duration,
}

impl Default for TimerValues {
    fn default() -> Self {
        TimerValues {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl From<SipTimers> for TimerValues {
    fn from(t: SipTimers) -> Self {
        TimerValues { t1: t.t1, t2: t.t2, t4: t.t4 }
    }
}

impl TimerValues {
    /// The first duration of `timer` on a transport that is (or is not) reliable. The retransmit
    /// timers (A, E, G) are only started on unreliable transports; their later intervals are computed
    /// by [`TimerValues::backoff`].
    pub fn initial(&self, timer: Timer, reliable: bool) -> Duration {
        let zero_if_reliable = |d: Duration| if reliable { Duration::ZERO } else { d };
        match timer {
            Timer::A | Timer::E | Timer::G => self.t1,
            Timer::B | Timer::F | Timer::H | Timer::L | Timer::M => self.t1 * 64,
            Timer::D => zero_if_reliable(Duration::from_secs(32).max(self.t1 * 64)),
            Timer::I | Timer::K => zero_if_reliable(self.t4),
            Timer::J => zero_if_reliable(self.t1 * 64),
        }
    }

    /// The next interval of a retransmit timer after `previous`: A doubles without bound (§17.1.1.2);
    /// E and G double up to T2 (§17.1.2.2, §17.2.1).
    pub fn backoff(&self, timer: Timer, previous: Duration) -> Duration {
        match timer {
            Timer::A => previous * 2,
            _ => (previous * 2).min(self.t2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3261_table_4_defaults() {
        let t = TimerValues::default();
        let s = Duration::from_secs;
        assert_eq!(t.initial(Timer::B, false), s(32));
        assert_eq!(t.initial(Timer::D, false), s(32));
        assert_eq!(t.initial(Timer::D, true), s(0));
        assert_eq!(t.initial(Timer::H, false), s(32));
        assert_eq!(t.initial(Timer::I, false), s(5));
        assert_eq!(t.initial(Timer::I, true), s(0));
        assert_eq!(t.initial(Timer::J, false), s(32));
        assert_eq!(t.initial(Timer::K, true), s(0));
        assert_eq!(t.backoff(Timer::E, s(2)), s(4));
        assert_eq!(t.backoff(Timer::E, s(4)), s(4));
        assert_eq!(t.backoff(Timer::A, s(4)), s(8));
    }
}
