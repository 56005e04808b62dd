//! Ring strategies: which free agent gets the next call (ARCHITECTURE.md §7). Domain layer, sans-IO.
//!
//! Ties always fall back to the configured agent order, so a run is reproducible.

use std::fmt;
use std::str::FromStr;

use super::agent::Agent;

/// How the engine picks among free agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// The agent free for the longest time (the default: spreads the load and the rest).
    #[default]
    LongestIdle,
    /// Agents in turn, in configured order, starting after the last one rung.
    RoundRobin,
    /// The agent who answered the fewest calls (then longest idle).
    FewestCalls,
    /// The agent with the least accumulated talk time (then longest idle).
    LeastTalkTime,
    /// The first free agent in configured order (priority order).
    Linear,
    /// Every free agent at once (within the line cap); the first answer wins, the others are
    /// cancelled.
    RingAll,
}

impl Strategy {
    /// The configuration spelling: `longest-idle`, `round-robin`, `fewest-calls`, `least-talk-time`,
    /// `linear`, `ring-all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest-idle",
            Strategy::RoundRobin => "round-robin",
            Strategy::FewestCalls => "fewest-calls",
            Strategy::LeastTalkTime => "least-talk-time",
            Strategy::Linear => "linear",
            Strategy::RingAll => "ring-all",
        }
    }

    /// Every strategy, for help texts and tests.
    pub const ALL: [Strategy; 6] = [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::LeastTalkTime,
        Strategy::Linear,
        Strategy::RingAll,
    ];
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of [`Strategy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown strategy `{0}` (use longest-idle, round-robin, fewest-calls, least-talk-time, linear or ring-all)"
)]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// Picks one of `candidates` (indices into `agents`, in configured order, never empty for a useful
/// answer) for a single-agent strategy. `rr_next` is the round-robin cursor (an index into
/// `agents`). For [`Strategy::RingAll`] it returns the longest idle, which is the order ring-all uses
/// when the line cap lets it ring only some.
pub(crate) fn choose(
    strategy: Strategy,
    agents: &[Agent],
    candidates: &[usize],
    rr_next: usize,
) -> Option<usize> {
    let idle = |i: &usize| agents[*i].idle_since;
    // `min_by_key` keeps the first of equal keys: configured order breaks ties.
    match strategy {
        Strategy::LongestIdle | Strategy::RingAll => candidates.iter().copied().min_by_key(idle),
        Strategy::RoundRobin => candidates.iter().copied().min_by_key(|i| (*i < rr_next, *i)),
        Strategy::FewestCalls => {
            candidates.iter().copied().min_by_key(|i| (agents[*i].answered, idle(i)))
        }
        Strategy::LeastTalkTime => {
            candidates.iter().copied().min_by_key(|i| (agents[*i].talk, idle(i)))
        }
        Strategy::Linear => candidates.first().copied(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::acd::agent::AgentId;

    fn agents(n: usize) -> Vec<Agent> {
        (0..n).map(|i| Agent::new(AgentId::new(&format!("a{i}")))).collect()
    }

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
        }
        assert!("random".parse::<Strategy>().is_err());
    }

    #[test]
    fn each_strategy_picks_as_documented() {
        let t0 = crate::test_epoch();
        let mut a = agents(4);
        a[0].idle_since = Some(t0 + Duration::from_secs(30));
        a[1].idle_since = Some(t0 + Duration::from_secs(10));
        a[2].idle_since = Some(t0 + Duration::from_secs(20));
        a[3].idle_since = Some(t0);
        a[0].answered = 1;
        a[1].answered = 5;
        a[2].answered = 1;
        a[3].answered = 9;
        a[0].talk = Duration::from_secs(100);
        a[2].talk = Duration::from_secs(50);
        a[1].talk = Duration::from_secs(500);
        a[3].talk = Duration::from_secs(900);
        let c = [0, 1, 2];
        assert_eq!(choose(Strategy::LongestIdle, &a, &c, 0), Some(1));
        assert_eq!(choose(Strategy::Linear, &a, &c, 0), Some(0));
        assert_eq!(choose(Strategy::FewestCalls, &a, &c, 0), Some(2));
        assert_eq!(choose(Strategy::LeastTalkTime, &a, &c, 0), Some(2));
        assert_eq!(choose(Strategy::RoundRobin, &a, &c, 2), Some(2));
        assert_eq!(choose(Strategy::RoundRobin, &a, &c, 3), Some(0));
        assert_eq!(choose(Strategy::RoundRobin, &a, &[0, 3], 1), Some(3));
        assert_eq!(choose(Strategy::LongestIdle, &a, &[], 0), None);
    }
}
