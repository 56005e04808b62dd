//! Calls: the caller's side of the ACD — ids, lanes, how a call ends ([`Outcome`]), and the engine's
//! private record of each call in progress (phase, ringing legs, accumulated wait and talk). Domain
//! layer, sans-IO.

use std::fmt;
use std::time::{Duration, Instant};

use super::agent::AgentId;

/// One caller's call, allocated by the B2BUA (unique for the life of the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// The queue's priority lanes: FIFO within a lane, every urgent caller before any normal one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lane {
    /// "A child is in danger now" (the caller pressed 1).
    Urgent,
    /// Everyone else.
    #[default]
    Normal,
}

/// Where a caller was when they hung up without being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbandonPhase {
    /// During the welcome prompt / menu.
    Prompt,
    /// Waiting in the queue, no agent being rung.
    Queue,
    /// While at least one agent's phone was ringing for them.
    Ringing,
    /// While the call was being handed to the national centre (transfer prompt, target ringing).
    Overflow,
}

impl AbandonPhase {
    /// The `phase` label of `tongdai_calls_abandoned_total{phase}`.
    pub fn as_str(self) -> &'static str {
        match self {
            AbandonPhase::Prompt => "prompt",
            AbandonPhase::Queue => "queue",
            AbandonPhase::Ringing => "ringing",
            AbandonPhase::Overflow => "overflow",
        }
    }
}

/// Which side ended a bridged call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndedBy {
    /// The caller (BYE from the trunk).
    Caller,
    /// The agent (BYE from the softphone).
    Agent,
}

/// Why an agent's phone did not take an offered call (the final response class of its INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// 486 Busy Here / 600 Busy Everywhere.
    Busy,
    /// 603 Decline: the agent pressed reject.
    Declined,
    /// 480 Temporarily Unavailable (do-not-disturb, no answer from the device).
    Unavailable,
    /// 404: no such binding any more.
    NotFound,
    /// Any other failure: other 4xx–6xx, a transaction time-out, a transport error.
    Error,
}

impl RejectReason {
    /// The record/metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Busy => "busy",
            RejectReason::Declined => "declined",
            RejectReason::Unavailable => "unavailable",
            RejectReason::NotFound => "not_found",
            RejectReason::Error => "error",
        }
    }
}

/// Why the engine refused a call outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// `max_queue` callers were already waiting (prompt or queue).
    QueueFull,
}

impl RefuseReason {
    /// The record/metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseReason::QueueFull => "queue_full",
        }
    }
}

/// Why a call went to the national centre (ARCHITECTURE.md §8; the rules are in
/// [`super::overflow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverflowReason {
    /// Nobody on shift or logged in.
    NoAgents,
    /// The caller waited longer than `max_wait`.
    MaxWait,
    /// The regional queue was full.
    QueueFull,
    /// The predicted wait was over the threshold.
    PredictedWait,
    /// The daemon is draining.
    Draining,
}

impl OverflowReason {
    /// The `reason` label of `tongdai_calls_overflowed_total{reason}`.
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowReason::NoAgents => "no_agents",
            OverflowReason::MaxWait => "max_wait",
            OverflowReason::QueueFull => "queue_full",
            OverflowReason::PredictedWait => "predicted_wait",
            OverflowReason::Draining => "draining",
        }
    }
}

/// How a call ended. Every offered call gets exactly one, in `Output::CallFinished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An agent answered and the call later ended. For a caller returned to the queue by a failed
    /// agent leg and answered again, `agent` is the last agent and both times are sums.
    Answered {
        /// The (last) agent who talked with the caller.
        agent: AgentId,
        /// Time in the queue (from the end of the prompt to the answer; summed over both stays
        /// for a caller returned by a failed leg): the queue wait of records and metrics.
        wait: Duration,
        /// Time bridged to agents.
        talk: Duration,
    },
    /// The caller hung up before any agent answered (or after being returned to the queue).
    Abandoned {
        /// Where they were.
        phase: AbandonPhase,
        /// Time in the queue (zero when the caller left during the prompt).
        wait: Duration,
    },
    /// The engine refused the call (the B2BUA sends 486/480 or plays a notice and hangs up).
    Rejected {
        /// Why.
        reason: RefuseReason,
    },
    /// An agent transferred the call (blind transfer) and the target answered.
    Transferred {
        /// The agent who transferred it.
        agent: AgentId,
        /// Time in the queue before the agent answered.
        wait: Duration,
        /// Time bridged to agents.
        talk: Duration,
    },
    /// The call was handed to the national centre (its INVITE answered, or a 302 sent).
    Overflowed {
        /// Why.
        reason: OverflowReason,
        /// Time in the regional queue before the hand-over (zero when overflowed on arrival).
        wait: Duration,
    },
}

impl Outcome {
    /// The record label: `answered`, `abandoned`, `rejected`, `transferred`, `overflowed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Answered { .. } => "answered",
            Outcome::Abandoned { .. } => "abandoned",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Transferred { .. } => "transferred",
            Outcome::Overflowed { .. } => "overflowed",
        }
    }
}

/// Where a live call is. A call is in exactly one phase; `Queued` calls are in the queue exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The welcome prompt / menu plays; queued at `PromptFinished` or at `deadline`.
    Prompt { deadline: Instant },
    /// In the queue since `since`; agents may be ringing for it (the caller keeps their place).
    Queued { since: Instant },
    /// Bridged to `Call::agent` since `since`.
    Bridged { since: Instant },
}

/// One agent's phone ringing for a queued call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leg {
    pub agent: AgentId,
    /// Ring timeout: CancelRing and a miss when it passes.
    pub deadline: Instant,
    /// A 180 was seen (informational).
    pub alerting: bool,
}

/// The engine's record of one call in progress.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub lane: Lane,
    pub province: Option<String>,
    pub phase: Phase,
    /// Ringing legs (only while `Queued`).
    pub legs: Vec<Leg>,
    /// The agent bridged (while `Bridged`) or last bridged.
    pub agent: Option<AgentId>,
    /// Agents already tried for this call, so the next try prefers someone else.
    pub tried: Vec<AgentId>,
    /// Accumulated time bridged before the current phase.
    pub talk: Duration,
    /// Accumulated time queued before the current phase.
    pub queued: Duration,
    /// Next position announcement (while `Queued`).
    pub next_announce: Option<Instant>,
    /// The last position announced: later announcements never say a larger number.
    pub announced: Option<u32>,
    /// False for a call that already came from another centre's overflow: never sent back.
    pub may_overflow: bool,
    /// Being handed to the national centre, and why (the caller keeps their queue place).
    pub overflowing: Option<OverflowReason>,
    /// After a hand-over failed: no new attempt before this instant.
    pub overflow_retry: Option<Instant>,
    /// Being transferred by this agent (blind transfer): the caller waits at the front of their
    /// lane, rung for nobody, until the target answers or fails.
    pub transfer_from: Option<AgentId>,
}

impl Call {
    pub fn new(
        lane: Lane,
        province: Option<String>,
        deadline: Instant,
        may_overflow: bool,
    ) -> Self {
        Call {
            lane,
            province,
            phase: Phase::Prompt { deadline },
            legs: Vec::new(),
            agent: None,
            tried: Vec::new(),
            talk: Duration::ZERO,
            queued: Duration::ZERO,
            next_announce: None,
            announced: None,
            may_overflow,
            overflowing: None,
            overflow_retry: None,
            transfer_from: None,
        }
    }

    /// A call just offered at `now`: in its prompt phase until `prompt_timeout` at the latest.
    pub fn new_offered(
        now: Instant,
        config: &super::EngineConfig,
        lane: Lane,
        province: Option<String>,
        may_overflow: bool,
    ) -> Self {
        Call::new(lane, province, now + config.prompt_timeout, may_overflow)
    }

    /// Being handed to someone outside the queue (the national centre or a transfer target):
    /// rung for no agent, announced no position.
    pub fn handed_over(&self) -> bool {
        self.overflowing.is_some() || self.transfer_from.is_some()
    }

    /// The leg ringing `agent`, if any.
    pub fn leg(&self, agent: &AgentId) -> Option<usize> {
        self.legs.iter().position(|l| &l.agent == agent)
    }
}
