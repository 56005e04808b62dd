//! The engine's self-audit: the invariants every test checks after every step, and that the runtime
//! may check in debug builds. Domain layer, sans-IO.
//!
//! Checked: every call is in exactly one place (prompt, queue once, or bridged to one agent); every
//! ringing leg and bridged call matches its agent's state, and back; no agent is in two calls; no
//! logged-out agent is rung; the lines in use stay within the cap; and no agent is stuck idle while a
//! waiting caller (not being handed to the national centre) could ring them on a free line.

use std::collections::BTreeMap;

use super::agent::{Activity, AgentId};
use super::call::{CallId, Phase};
use super::engine::Engine;
use super::strategy::Strategy;

/// A broken engine invariant (a bug in the engine, never in its input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    /// A call is in the queue more or fewer times than its phase says.
    #[error("{call} is queued {times} times in phase {phase}")]
    CallMisplaced {
        /// The call.
        call: CallId,
        /// How often it is in the queue.
        times: usize,
        /// Its phase.
        phase: &'static str,
    },
    /// The queue holds a call the engine does not know.
    #[error("the queue holds unknown {0}")]
    QueuedUnknown(CallId),
    /// A call not in the queue has ringing legs.
    #[error("{0} rings agents outside the queue")]
    LegsOutsideQueue(CallId),
    /// A call refers to an agent the engine does not know.
    #[error("{call} refers to unknown agent `{agent}`")]
    UnknownAgent {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// An agent appears in two calls, or twice in one.
    #[error("agent `{agent}` is in {first} and {second}")]
    AgentInTwoCalls {
        /// The agent.
        agent: AgentId,
        /// One call.
        first: CallId,
        /// The other.
        second: CallId,
    },
    /// A call's leg or bridge and its agent's state disagree.
    #[error("{call} and agent `{agent}` disagree")]
    Mismatch {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// A bridged call has no agent.
    #[error("{0} is bridged to nobody")]
    BridgedToNobody(CallId),
    /// An agent is ringing for or on a call that does not list them.
    #[error("agent `{0}` is busy with a call that does not know them")]
    OrphanAgent(AgentId),
    /// A logged-out, off-shift or removed agent is being rung.
    #[error("absent agent `{0}` is ringing")]
    AbsentAgentRinging(AgentId),
    /// More lines in use than the cap allows.
    #[error("{used} lines in use, cap {cap}")]
    LinesOverCap {
        /// Lines in use.
        used: usize,
        /// The cap (or the count in use when it was lowered).
        cap: usize,
    },
    /// An agent sits idle while a waiting caller could ring them on a free line.
    #[error("{call} waits while agent `{agent}` is free")]
    Unserved {
        /// The waiting call.
        call: CallId,
        /// The free agent.
        agent: AgentId,
    },
}

impl Engine {
    /// Audits the engine's state; tests call it after every step.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let mut busy: BTreeMap<&AgentId, CallId> = BTreeMap::new();
        let mut book = |agent: &'_ AgentId, call: CallId| -> Result<(), InvariantViolation> {
            match busy.insert(
                self.agents.iter().map(|a| &a.id).find(|a| *a == agent).ok_or_else(|| {
                    InvariantViolation::UnknownAgent { call, agent: agent.clone() }
                })?,
                call,
            ) {
                Some(first) => Err(InvariantViolation::AgentInTwoCalls {
                    agent: agent.clone(),
                    first,
                    second: call,
                }),
                None => Ok(()),
            }
        };
        let mut queued: Vec<CallId> = self.queue.iter().collect();
        queued.sort_unstable();
        for (&call, c) in &self.calls {
            let first = queued.partition_point(|q| *q < call);
            let times = queued[first..].iter().take_while(|q| **q == call).count();
            let (phase, expected) = match c.phase {
                Phase::Prompt { .. } => ("prompt", 0),
                Phase::Queued { .. } => ("queued", 1),
                Phase::Bridged { .. } => ("bridged", 0),
            };
            if times != expected {
                return Err(InvariantViolation::CallMisplaced { call, times, phase });
            }
            if expected == 0 && !c.legs.is_empty() {
                return Err(InvariantViolation::LegsOutsideQueue(call));
            }
            for leg in &c.legs {
                book(&leg.agent, call)?;
                let i = self.index[&leg.agent];
                if self.agents[i].activity != Activity::Ringing(call) {
                    return Err(InvariantViolation::Mismatch { call, agent: leg.agent.clone() });
                }
            }
            if let Phase::Bridged { .. } = c.phase {
                let agent = c.agent.as_ref().ok_or(InvariantViolation::BridgedToNobody(call))?;
                book(agent, call)?;
                let i = self.index[agent];
                if self.agents[i].activity != Activity::OnCall(call) {
                    return Err(InvariantViolation::Mismatch { call, agent: agent.clone() });
                }
            }
        }
        for call in queued {
            if !self.calls.contains_key(&call) {
                return Err(InvariantViolation::QueuedUnknown(call));
            }
        }
        for a in &self.agents {
            let owner = match a.activity {
                Activity::Ringing(call) => {
                    if !a.present() {
                        return Err(InvariantViolation::AbsentAgentRinging(a.id.clone()));
                    }
                    Some(call)
                }
                Activity::OnCall(call) => Some(call),
                // The switchboard's own call (a call-back): no queue call lists the agent.
                Activity::Idle | Activity::WrapUp(_) | Activity::Outbound(_) => None,
            };
            if owner.is_some() && !busy.contains_key(&a.id) {
                return Err(InvariantViolation::OrphanAgent(a.id.clone()));
            }
        }
        let used = self.lines_busy();
        let cap = (self.config.lines.get() as usize).max(self.lines_grandfathered);
        if used > cap {
            return Err(InvariantViolation::LinesOverCap { used, cap });
        }
        if used < self.config.lines.get() as usize {
            let ring_all = self.config.strategy == Strategy::RingAll;
            for call in self.queue.iter() {
                let c = &self.calls[&call];
                // A caller being handed to the national centre or transferred is rung for nobody.
                if c.handed_over() {
                    continue;
                }
                let free = self.agents.iter().find(|a| {
                    a.eligible() && (c.legs.is_empty() || (ring_all && !c.tried.contains(&a.id)))
                });
                if let Some(a) = free {
                    return Err(InvariantViolation::Unserved { call, agent: a.id.clone() });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::acd::call::Lane;
    use crate::acd::{EngineConfig, Input};

    /// An engine with one agent ringing for call 1 and call 2 waiting behind it.
    fn engine() -> (Engine, Instant) {
        let now = crate::test_epoch();
        let agents = ["a", "b"].map(AgentId::new);
        let mut e = Engine::new(EngineConfig::default(), agents);
        e.handle(now, Input::AgentLoggedIn { agent: AgentId::new("a") }).unwrap();
        for call in [CallId(1), CallId(2)] {
            e.handle(
                now,
                Input::CallOffered { call, lane: Lane::Normal, province: None, may_overflow: true },
            )
            .unwrap();
            e.handle(now, Input::PromptFinished { call }).unwrap();
        }
        e.check_invariants().unwrap();
        (e, now)
    }

    #[test]
    fn the_audit_catches_each_kind_of_corruption() {
        let (mut e, _) = engine();
        e.queue.push_back(Lane::Urgent, CallId(2));
        assert!(matches!(e.check_invariants(), Err(InvariantViolation::CallMisplaced { .. })));

        let (mut e, _) = engine();
        e.agents[0].activity = Activity::Idle;
        assert!(matches!(e.check_invariants(), Err(InvariantViolation::Mismatch { .. })));

        let (mut e, _) = engine();
        e.agents[1].registered = true;
        assert!(matches!(e.check_invariants(), Err(InvariantViolation::Unserved { .. })));

        let (mut e, _) = engine();
        e.agents[1].activity = Activity::OnCall(CallId(9));
        assert!(matches!(e.check_invariants(), Err(InvariantViolation::OrphanAgent(_))));

        let (mut e, _) = engine();
        e.agents[0].registered = false;
        assert!(matches!(e.check_invariants(), Err(InvariantViolation::AbsentAgentRinging(_))));

        let (mut e, now) = engine();
        let leg = e.calls[&CallId(1)].legs[0].clone();
        e.calls.get_mut(&CallId(2)).unwrap().legs.push(leg);
        assert!(matches!(e.check_invariants(), Err(InvariantViolation::AgentInTwoCalls { .. })));

        let (mut e, _) = engine();
        e.config.lines = std::num::NonZeroU32::MIN;
        e.agents[1].registered = true;
        e.agents[1].activity = Activity::Ringing(CallId(2));
        let deadline = now + Duration::from_secs(15);
        let agent = AgentId::new("b");
        let leg = crate::acd::call::Leg { agent, deadline, alerting: false };
        e.calls.get_mut(&CallId(2)).unwrap().legs.push(leg);
        assert!(matches!(e.check_invariants(), Err(InvariantViolation::LinesOverCap { .. })));
    }
}
