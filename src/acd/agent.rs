//! Agents: the operator's identity, the state the wallboard and metrics see, and the engine's private
//! record of each operator (presence, activity, counters). Domain layer, sans-IO.
//!
//! The public [`AgentState`] is derived, never stored on its own: an agent's *activity* (idle,
//! ringing, on a call, wrapping up) and its *presence* (registered, on shift, paused) are kept apart,
//! so a registration that lapses mid-call or a shift that ends mid-call never cuts the call: the agent
//! shows `OnCall` until the call ends and `LoggedOut` afterwards.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::call::CallId;

/// An agent: the configured `[[agents]] id` (stable across reloads, used in metrics and records).
/// Cloning is cheap.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(Arc<str>);

impl AgentId {
    /// The agent with configured id `id`.
    pub fn new(id: &str) -> Self {
        AgentId(Arc::from(id))
    }

    /// The configured id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AgentId {
    fn from(id: &str) -> Self {
        AgentId::new(id)
    }
}

/// Why an agent takes no calls although logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PauseReason {
    /// The engine paused the agent after `max_misses` consecutive unanswered or refused rings.
    NoAnswer,
    /// The agent asked for it (feature code on the softphone).
    Agent,
    /// A supervisor did it (admin API).
    Supervisor,
}

impl PauseReason {
    /// The metric/record label: `no_answer`, `agent`, `supervisor`.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::NoAnswer => "no_answer",
            PauseReason::Agent => "agent",
            PauseReason::Supervisor => "supervisor",
        }
    }
}

/// What an agent is doing, as the wallboard and metrics see it (ARCHITECTURE.md §7). The engine is
/// the one owner of this state; the runtime learns every change from `Output::AgentState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// Not registered, or off shift, and not busy with a call.
    LoggedOut,
    /// Registered, on shift, not paused, idle: may be offered a call.
    Available,
    /// Reserved for `call`: its phone is ringing.
    Ringing {
        /// The call being offered.
        call: CallId,
    },
    /// Talking with the caller of `call`.
    OnCall {
        /// The bridged call.
        call: CallId,
    },
    /// After-call work until `until` (or an early `EndWrapUp`).
    WrapUp {
        /// When wrap-up ends by itself.
        until: Instant,
    },
    /// Logged in but taking no calls.
    Paused {
        /// Why.
        reason: PauseReason,
    },
}

impl AgentState {
    /// The `state` label of `tongdai_agents{state}`.
    pub fn label(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::Ringing { .. } => "ringing",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::Paused { .. } => "paused",
        }
    }
}

/// What the agent's phone is busy with, independent of presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activity {
    /// Nothing.
    Idle,
    /// Ringing for a call (one line in use).
    Ringing(CallId),
    /// Bridged to a call (one line in use).
    OnCall(CallId),
    /// After-call work.
    WrapUp(Instant),
    /// On an outbound call the switchboard placed for the agent (a call-back), which the engine
    /// knows by its id only (one line in use; the queue does not ring the agent meanwhile).
    Outbound(CallId),
}

/// The engine's record of one agent.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub id: AgentId,
    /// Still in the configuration; a removed agent is kept until its call and wrap-up end.
    pub configured: bool,
    /// A live registration (the registrar's word).
    pub registered: bool,
    /// On shift now (the schedule's word; "always" until shifts are wired).
    pub on_shift: bool,
    pub paused: Option<PauseReason>,
    /// When a `no_answer` pause lifts by itself, if `auto_resume` is configured.
    pub resume_at: Option<Instant>,
    pub activity: Activity,
    /// Since when the agent has been free; `None` (never worked) sorts as the longest idle.
    pub idle_since: Option<Instant>,
    /// Consecutive rings missed or refused.
    pub misses: u32,
    /// Not rung again before this, after a miss (`retry_delay`).
    pub retry_at: Option<Instant>,
    /// Calls answered, for the fewest-calls strategy.
    pub answered: u64,
    /// Talk time accumulated, for the least-talk-time strategy.
    pub talk: Duration,
    /// The state last reported through `Output::AgentState`.
    pub reported: AgentState,
}

impl Agent {
    pub fn new(id: AgentId) -> Self {
        Agent {
            id,
            configured: true,
            registered: false,
            on_shift: true,
            paused: None,
            resume_at: None,
            activity: Activity::Idle,
            idle_since: None,
            misses: 0,
            retry_at: None,
            answered: 0,
            talk: Duration::ZERO,
            reported: AgentState::LoggedOut,
        }
    }

    /// Present: registered, on shift and still configured.
    pub fn present(&self) -> bool {
        self.registered && self.on_shift && self.configured
    }

    /// May be offered a call now.
    pub fn eligible(&self) -> bool {
        self.present()
            && self.paused.is_none()
            && self.activity == Activity::Idle
            && self.retry_at.is_none()
    }

    /// Holds one of the centre's lines (ringing or talking).
    pub fn holds_line(&self) -> bool {
        matches!(self.activity, Activity::Ringing(_) | Activity::OnCall(_) | Activity::Outbound(_))
    }

    /// The public state, derived from activity and presence.
    pub fn state(&self) -> AgentState {
        match self.activity {
            Activity::Ringing(call) => AgentState::Ringing { call },
            Activity::OnCall(call) | Activity::Outbound(call) => AgentState::OnCall { call },
            Activity::WrapUp(until) => AgentState::WrapUp { until },
            Activity::Idle if !self.present() => AgentState::LoggedOut,
            Activity::Idle => match self.paused {
                Some(reason) => AgentState::Paused { reason },
                None => AgentState::Available,
            },
        }
    }
}
