//! Outbound calls the switchboard places for an agent (call-backs, issue 11), the engine's side.
//! Domain layer, sans-IO.
//!
//! The engine never sees such a call in its queue: it only learns that the agent took a line for it
//! ([`Input::OutboundStarted`](super::Input::OutboundStarted)) and when it ended
//! ([`Input::OutboundEnded`](super::Input::OutboundEnded)). Meanwhile the agent shows `on_call`, holds
//! one of the centre's lines (so `[centre] lines` bounds queue calls and call-backs together) and
//! is not rung for queue calls. An agent who talked with the person called back goes to wrap-up
//! afterwards; one who talked with nobody (the operator did not answer, the caller was busy) is
//! free again at once, paused or not as before.

use std::time::Instant;

use super::agent::{Activity, AgentId};
use super::call::CallId;
use super::engine::Engine;
use super::event::InputError;

impl Engine {
    /// `agent` takes a line for the switchboard's outbound `call`.
    pub(super) fn on_outbound_started(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
    ) -> Result<(), InputError> {
        let _ = now;
        let i = self.index.get(&agent).copied().ok_or(InputError::UnknownAgent(agent.clone()))?;
        let a = &self.agents[i];
        let free = matches!(a.activity, Activity::Idle | Activity::WrapUp(_));
        if !a.present() || !free {
            return Err(InputError::AgentUnavailable(agent));
        }
        if self.lines_busy() >= self.config.lines.get() as usize {
            return Err(InputError::NoFreeLine);
        }
        self.agents[i].activity = Activity::Outbound(call);
        Ok(())
    }

    /// The outbound `call` of `agent` ended.
    pub(super) fn on_outbound_ended(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
        talked: bool,
    ) -> Result<(), InputError> {
        let i = self.index.get(&agent).copied().ok_or(InputError::UnknownAgent(agent.clone()))?;
        if self.agents[i].activity != Activity::Outbound(call) {
            return Err(InputError::NotOutbound { call, agent });
        }
        if talked {
            self.start_wrap_up(now, i);
        } else {
            // Nobody was reached: no after-call work, and the agent keeps their idle time.
            self.agents[i].activity = Activity::Idle;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::acd::call::Lane;
    use crate::acd::{AgentState, EngineConfig, Input, Output, PauseReason};

    const S: Duration = Duration::from_secs(1);

    fn drain(e: &mut Engine) -> Vec<Output> {
        std::iter::from_fn(|| e.poll_output()).collect()
    }

    /// Two lines, agents `a` and `b` logged in.
    fn engine() -> (Engine, Instant, AgentId, AgentId) {
        let now = crate::test_epoch();
        let (a, b) = (AgentId::new("a"), AgentId::new("b"));
        let config = EngineConfig {
            lines: std::num::NonZeroU32::new(2).unwrap(),
            announce_interval: None,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(config, [a.clone(), b.clone()]);
        for agent in [&a, &b] {
            e.handle(now, Input::AgentLoggedIn { agent: agent.clone() }).unwrap();
        }
        drain(&mut e);
        (e, now, a, b)
    }

    fn offer(e: &mut Engine, now: Instant, call: u64) {
        let call = CallId(call);
        let offered =
            Input::CallOffered { call, lane: Lane::Normal, province: None, may_overflow: true };
        e.handle(now, offered).unwrap();
        e.handle(now, Input::PromptFinished { call }).unwrap();
    }

    #[test]
    fn an_agent_calling_back_holds_a_line_and_is_not_rung_by_the_queue() {
        let (mut e, now, a, b) = engine();
        let cb = CallId(100);
        e.handle(now, Input::OutboundStarted { call: cb, agent: a.clone() }).unwrap();
        assert_eq!(e.agent_state(&a), Some(AgentState::OnCall { call: cb }));
        assert_eq!(e.lines_busy(), 1);
        e.check_invariants().unwrap();
        // A queue call goes to `b`, never to `a`.
        offer(&mut e, now, 1);
        let out = drain(&mut e);
        assert!(out.contains(&Output::RingAgent { call: CallId(1), agent: b.clone() }));
        assert!(!out.iter().any(|o| matches!(o, Output::RingAgent { agent, .. } if *agent == a)));
        let refused = e.handle(now, Input::OutboundStarted { call: CallId(101), agent: b.clone() });
        assert_eq!(refused, Err(InputError::AgentUnavailable(b.clone())), "b is ringing");
        e.handle(now, Input::AgentAnswered { call: CallId(1), agent: b.clone() }).unwrap();
        e.check_invariants().unwrap();
        // Both lines are in use now: a second caller waits.
        offer(&mut e, now, 2);
        assert!(!drain(&mut e).iter().any(|o| matches!(o, Output::RingAgent { .. })));
        e.check_invariants().unwrap();
        // The call-back ends after a conversation: `a` wraps up, then takes the waiting caller.
        e.handle(now + 60 * S, Input::OutboundEnded { call: cb, agent: a.clone(), talked: true })
            .unwrap();
        assert!(matches!(e.agent_state(&a), Some(AgentState::WrapUp { .. })));
        e.check_invariants().unwrap();
        e.handle_timeout(now + 200 * S);
        assert!(drain(&mut e).contains(&Output::RingAgent { call: CallId(2), agent: a.clone() }));
        e.check_invariants().unwrap();
    }

    #[test]
    fn no_call_back_without_a_free_line_or_a_present_free_agent() {
        let (mut e, now, a, b) = engine();
        e.handle(now, Input::OutboundStarted { call: CallId(100), agent: a.clone() }).unwrap();
        let again = e.handle(now, Input::OutboundStarted { call: CallId(101), agent: a.clone() });
        assert_eq!(again, Err(InputError::AgentUnavailable(a.clone())));
        e.handle(now, Input::AgentLoggedOut { agent: b.clone() }).unwrap();
        let absent = e.handle(now, Input::OutboundStarted { call: CallId(101), agent: b.clone() });
        assert_eq!(absent, Err(InputError::AgentUnavailable(b.clone())));
        // Both lines in use (a call-back and a queue call): a third agent finds none.
        let (mut e, now, a, b) = engine();
        e.handle(now, Input::OutboundStarted { call: CallId(100), agent: a.clone() }).unwrap();
        offer(&mut e, now, 1);
        drain(&mut e);
        e.handle(now, Input::AgentAnswered { call: CallId(1), agent: b.clone() }).unwrap();
        let (c, agents) = (e.config().clone(), vec![a.clone(), b.clone(), AgentId::new("c")]);
        e.handle(now, Input::ConfigChanged { config: c, agents }).unwrap();
        e.handle(now, Input::AgentLoggedIn { agent: AgentId::new("c") }).unwrap();
        let full =
            e.handle(now, Input::OutboundStarted { call: CallId(102), agent: AgentId::new("c") });
        assert_eq!(full, Err(InputError::NoFreeLine));
        e.check_invariants().unwrap();
        let unknown = e.handle(now, Input::OutboundStarted { call: CallId(9), agent: "x".into() });
        assert_eq!(unknown, Err(InputError::UnknownAgent("x".into())));
    }

    #[test]
    fn a_call_back_that_reached_nobody_frees_the_agent_as_they_were() {
        let (mut e, now, a, _b) = engine();
        let reason = PauseReason::Agent;
        e.handle(now, Input::AgentPaused { agent: a.clone(), reason }).unwrap();
        e.handle(now, Input::OutboundStarted { call: CallId(100), agent: a.clone() }).unwrap();
        let wrong = Input::OutboundEnded { call: CallId(7), agent: a.clone(), talked: false };
        assert_eq!(
            e.handle(now, wrong),
            Err(InputError::NotOutbound { call: CallId(7), agent: a.clone() })
        );
        e.handle(
            now + S,
            Input::OutboundEnded { call: CallId(100), agent: a.clone(), talked: false },
        )
        .unwrap();
        assert_eq!(e.agent_state(&a), Some(AgentState::Paused { reason }));
        assert_eq!(e.lines_busy(), 0);
        e.check_invariants().unwrap();
    }

    #[test]
    fn the_audit_frees_an_agent_whose_call_back_the_switchboard_lost() {
        let (mut e, now, a, b) = engine();
        e.handle(now, Input::OutboundStarted { call: CallId(100), agent: a.clone() }).unwrap();
        let alive = Input::Audit {
            registered: vec![a.clone(), b.clone()],
            calls: vec![],
            agent_legs: vec![(CallId(100), a.clone())],
        };
        e.handle(now, alive).unwrap();
        assert_eq!(e.audit_repairs(), 0);
        let lost = Input::Audit {
            registered: vec![a.clone(), b.clone()],
            calls: vec![],
            agent_legs: vec![],
        };
        e.handle(now, lost).unwrap();
        assert_eq!(e.audit_repairs(), 1);
        assert!(matches!(e.agent_state(&a), Some(AgentState::WrapUp { .. })));
        e.check_invariants().unwrap();
    }
}
