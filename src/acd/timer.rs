//! The engine's timers, in one enum. Each deadline is stored on the call or agent it belongs to, so
//! a timer can never outlive its owner; [`Timer`] names them when they fall due. Domain layer,
//! sans-IO.

use super::agent::AgentId;
use super::call::CallId;

/// A timer of the ACD engine.
/// Timers sort by kind, then owner, so equal deadlines fire in a reproducible order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// `prompt_timeout`: the welcome prompt did not report its end; queue the caller anyway so no
    /// call waits in the prompt phase for ever.
    Prompt {
        /// The call in its prompt phase.
        call: CallId,
    },
    /// `ring_timeout`: the agent did not answer; CancelRing, count a miss, try the next agent.
    Ring {
        /// The queued call.
        call: CallId,
        /// The agent being rung.
        agent: AgentId,
    },
    /// `announce_interval`: tell a waiting caller their position.
    Announce {
        /// The queued call.
        call: CallId,
    },
    /// `retry_delay`: an agent who missed a ring may be rung again.
    Retry {
        /// The agent.
        agent: AgentId,
    },
    /// `wrap_up`: after-call work is over; the agent becomes available.
    WrapUp {
        /// The agent in wrap-up.
        agent: AgentId,
    },
    /// An overflow rule falls due for a call (`max_wait` reached, or the wait after a failed
    /// hand-over over); [`super::overflow`] decides in the engine's settle step.
    Overflow {
        /// The call.
        call: CallId,
    },
    /// `auto_resume`: a `no_answer` pause lifts by itself.
    AutoResume {
        /// The paused agent.
        agent: AgentId,
    },
}
