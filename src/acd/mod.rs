//! The ACD domain (sans-IO): queue, agents, strategies, schedule, overflow and the B2BUA.
//!
//! [`Engine`] is the core: it owns the queue, the agents' states and the line cap, and is driven
//! the quinn way (`handle(now, Input)`, `poll_output()`, `poll_timeout()`, `handle_timeout(now)`).
//! It knows nothing of SIP: the B2BUA turns dialogs into [`Input`]s and carries out [`Output`]s.
//! Shifts reach it as `Input::AgentOnShift` flags from the schedule, which alone reads the wall clock
//! and the zone.

mod agent;
pub mod b2bua;
mod call;
mod engine;
mod event;
mod invariants;
mod queue;
mod settings;
mod strategy;
mod timer;

pub use agent::{AgentId, AgentState, PauseReason};
pub use call::{
    AbandonPhase, CallId, EndedBy, Lane, Outcome, OverflowReason, RefuseReason, RejectReason,
};
pub use engine::Engine;
pub use event::{Input, InputError, Output};
pub use invariants::InvariantViolation;
pub use settings::EngineConfig;
pub use strategy::{Strategy, UnknownStrategy};
pub use timer::Timer;
