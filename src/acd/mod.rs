//! The ACD domain (sans-IO): queue, agents, strategies, schedule, overflow and the B2BUA.
//!
//! [`Engine`] is the core: it owns the queue, the agents' states and the line cap, and is driven
//! the quinn way (`handle(now, Input)`, `poll_output()`, `poll_timeout()`, `handle_timeout(now)`).
//! It knows nothing of SIP: the B2BUA turns dialogs into [`Input`]s and carries out [`Output`]s.
//! Shifts reach it as `Input::AgentOnShift` flags from the schedule, which alone reads the wall clock
//! and the zone.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tongdai::acd::{AgentId, CallId, EndedBy, Engine, EngineConfig, Input, Lane, Output};
//!
//! let mut engine = Engine::new(EngineConfig::default(), [AgentId::new("lan")]);
//! let (t0, call, lan) = (Instant::now(), CallId(1), AgentId::new("lan"));
//! engine.handle(t0, Input::AgentLoggedIn { agent: lan.clone() })?;
//! engine.handle(t0, Input::CallOffered { call, lane: Lane::Normal, province: None, may_overflow: true })?;
//! engine.handle(t0, Input::PromptFinished { call })?;
//! let mut outputs = std::iter::from_fn(|| engine.poll_output());
//! assert!(outputs.any(|o| o == Output::RingAgent { call, agent: lan.clone() }));
//! engine.handle(t0 + Duration::from_secs(4), Input::AgentAnswered { call, agent: lan.clone() })?;
//! engine.handle(t0 + Duration::from_secs(90), Input::CallEnded { call, by: EndedBy::Agent })?;
//! // Wrap-up runs until t0 + 120 s; the runtime sleeps until then.
//! assert_eq!(engine.poll_timeout(), Some(t0 + Duration::from_secs(120)));
//! engine.handle_timeout(t0 + Duration::from_secs(120));
//! # Ok::<(), tongdai::acd::InputError>(())
//! ```

mod agent;
mod audit;
pub mod b2bua;
mod call;
pub mod directory;
mod engine;
mod event;
pub mod identity;
mod invariants;
mod outbound;
mod overflow;
pub mod province;
mod queue;
pub mod schedule;
mod settings;
mod strategy;
mod timer;
mod transfer;
mod wait;

pub use agent::{AgentId, AgentState, PauseReason};
pub use call::{
    AbandonPhase, CallId, EndedBy, Lane, Outcome, OverflowReason, RefuseReason, RejectReason,
};
pub use engine::Engine;
pub use event::{Input, InputError, Output};
pub use invariants::InvariantViolation;
pub use settings::{EngineConfig, OverflowRules};
pub use strategy::{Strategy, UnknownStrategy};
pub use timer::Timer;
