//! The periodic audit (ARCHITECTURE.md §7): the switchboard tells the engine which agents are
//! registered, which calls are up and which agent legs are alive, and the engine repairs whatever
//! disagrees, so a lost event (a BYE, a registration expiry, a dialog the endpoint dropped) can
//! never leave an agent stuck ringing or on a call. Domain layer, sans-IO.
//!
//! The audit trusts the switchboard's snapshot over its own record: the switchboard sees the SIP
//! dialogs and the registrar, the engine only the events it was told. Each repair is what the
//! missed event would have done — a log-out, a caller's hang-up, a failed agent leg — so the
//! outputs (CANCEL, BYE, the caller back to the front of the queue) are the usual ones.

use std::collections::BTreeSet;
use std::time::Instant;

use super::agent::{Activity, AgentId};
use super::call::CallId;
use super::engine::Engine;
use super::event::Output;

impl Engine {
    /// Applies [`super::Input::Audit`]; returns how many agents and calls it had to repair.
    pub(super) fn on_audit(
        &mut self,
        now: Instant,
        registered: &[AgentId],
        calls: &[CallId],
        agent_legs: &[(CallId, AgentId)],
    ) -> u64 {
        let registered: BTreeSet<&AgentId> = registered.iter().collect();
        let live_calls: BTreeSet<CallId> = calls.iter().copied().collect();
        let live_legs: BTreeSet<(CallId, &AgentId)> =
            agent_legs.iter().map(|(c, a)| (*c, a)).collect();
        let mut repairs = 0;

        // Presence first, so a call whose agent's leg is gone is not offered to an absent agent.
        let presence: Vec<(AgentId, bool)> = self
            .agents
            .iter()
            .filter(|a| a.registered != registered.contains(&a.id))
            .map(|a| (a.id.clone(), !a.registered))
            .collect();
        for (agent, now_registered) in presence {
            repairs += 1;
            let _ = self.on_presence(now, &agent, Some(now_registered), None);
        }

        // Calls whose caller is gone: as if the hang-up had arrived.
        let gone: Vec<CallId> =
            self.calls.keys().copied().filter(|c| !live_calls.contains(c)).collect();
        for call in gone {
            repairs += 1;
            let _ = self.on_caller_hung_up(now, call);
        }

        // Agents busy with a leg that no longer exists.
        let stuck: Vec<(usize, CallId, bool)> = (0..self.agents.len())
            .filter_map(|i| {
                let a = &self.agents[i];
                let (call, bridged) = match a.activity {
                    Activity::Ringing(call) => (call, false),
                    Activity::OnCall(call) => (call, true),
                    Activity::Outbound(call) => {
                        // A call-back the switchboard lost: the agent is free again.
                        return (!live_legs.contains(&(call, &a.id))).then_some((i, call, true));
                    }
                    Activity::Idle | Activity::WrapUp(_) => return None,
                };
                (!live_legs.contains(&(call, &a.id))).then_some((i, call, bridged))
            })
            .collect();
        for (i, call, bridged) in stuck {
            repairs += 1;
            let agent = self.agents[i].id.clone();
            if self.agents[i].activity == Activity::Outbound(call) {
                self.start_wrap_up(now, i);
            } else if bridged {
                // The caller goes back to the front of the queue; the agent to wrap-up.
                let _ = self.on_agent_leg_failed(now, call, agent);
            } else {
                // A ring that no longer exists on the wire is not the agent's miss.
                self.release_leg(call, i);
                self.outputs.push_back(Output::CancelRing { call, agent });
            }
        }
        repairs
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::acd::call::Lane;
    use crate::acd::{AgentState, EngineConfig, Input, Outcome};

    const S: Duration = Duration::from_secs(1);

    fn drain(e: &mut Engine) -> Vec<Output> {
        std::iter::from_fn(|| e.poll_output()).collect()
    }

    /// Lan bridged to call 1, Mai ringing for call 2, both registered.
    fn engine() -> (Engine, Instant, AgentId, AgentId) {
        let now = crate::test_epoch();
        let (lan, mai) = (AgentId::new("lan"), AgentId::new("mai"));
        let mut e = Engine::new(EngineConfig::default(), [lan.clone(), mai.clone()]);
        e.handle(now, Input::AgentLoggedIn { agent: lan.clone() }).unwrap();
        e.handle(
            now,
            Input::CallOffered {
                call: CallId(1),
                lane: Lane::Normal,
                province: None,
                may_overflow: true,
            },
        )
        .unwrap();
        e.handle(now, Input::PromptFinished { call: CallId(1) }).unwrap();
        e.handle(now + S, Input::AgentAnswered { call: CallId(1), agent: lan.clone() }).unwrap();
        e.handle(now, Input::AgentLoggedIn { agent: mai.clone() }).unwrap();
        e.handle(
            now,
            Input::CallOffered {
                call: CallId(2),
                lane: Lane::Normal,
                province: None,
                may_overflow: true,
            },
        )
        .unwrap();
        e.handle(now, Input::PromptFinished { call: CallId(2) }).unwrap();
        assert_eq!(e.agent_state(&mai), Some(AgentState::Ringing { call: CallId(2) }));
        drain(&mut e);
        (e, now + 2 * S, lan, mai)
    }

    fn audit(registered: &[&AgentId], calls: &[u64], legs: &[(u64, &AgentId)]) -> Input {
        Input::Audit {
            registered: registered.iter().map(|a| (*a).clone()).collect(),
            calls: calls.iter().map(|c| CallId(*c)).collect(),
            agent_legs: legs.iter().map(|(c, a)| (CallId(*c), (*a).clone())).collect(),
        }
    }

    #[test]
    fn an_audit_that_agrees_changes_nothing() {
        let (mut e, now, lan, mai) = engine();
        e.handle(now, audit(&[&lan, &mai], &[1, 2], &[(1, &lan), (2, &mai)])).unwrap();
        assert_eq!(drain(&mut e), []);
        assert_eq!(e.audit_repairs(), 0);
        e.check_invariants().unwrap();
    }

    #[test]
    fn a_lost_bye_frees_the_agent_and_the_caller_goes_back_to_the_front() {
        let (mut e, now, lan, mai) = engine();
        // Lan's dialog is gone; call 2 is still ringing Mai.
        e.handle(now, audit(&[&lan, &mai], &[1, 2], &[(2, &mai)])).unwrap();
        let out = drain(&mut e);
        assert!(out.contains(&Output::HangUpAgent { call: CallId(1), agent: lan.clone() }));
        assert!(matches!(e.agent_state(&lan), Some(AgentState::WrapUp { .. })));
        assert_eq!(e.queued().map(|q| q.0).collect::<Vec<_>>(), [CallId(1), CallId(2)]);
        assert_eq!(e.audit_repairs(), 1);
        e.check_invariants().unwrap();
    }

    #[test]
    fn a_ring_without_a_leg_is_cancelled_without_a_miss_and_tried_again() {
        let (mut e, now, lan, mai) = engine();
        e.handle(now, audit(&[&lan, &mai], &[1, 2], &[(1, &lan)])).unwrap();
        let out = drain(&mut e);
        assert!(out.contains(&Output::CancelRing { call: CallId(2), agent: mai.clone() }));
        // No miss: Mai is free at once and rung again for the waiting caller.
        assert!(out.contains(&Output::RingAgent { call: CallId(2), agent: mai.clone() }));
        e.check_invariants().unwrap();
    }

    #[test]
    fn missed_presence_and_a_vanished_caller_are_repaired() {
        let (mut e, now, lan, mai) = engine();
        // Mai's registration lapsed unseen; call 1's caller is gone unseen.
        e.handle(now, audit(&[&lan], &[2], &[(1, &lan), (2, &mai)])).unwrap();
        let out = drain(&mut e);
        assert!(out.contains(&Output::CancelRing { call: CallId(2), agent: mai.clone() }));
        assert!(out.contains(&Output::HangUpAgent { call: CallId(1), agent: lan.clone() }));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::CallFinished { call: CallId(1), outcome: Outcome::Answered { .. } }
        )));
        assert_eq!(e.agent_state(&mai), Some(AgentState::LoggedOut));
        assert_eq!(e.audit_repairs(), 2);
        e.check_invariants().unwrap();
        // A registration the engine missed logs the agent in.
        e.handle(now, audit(&[&lan, &mai], &[2], &[])).unwrap();
        assert_eq!(e.agent_state(&mai), Some(AgentState::Ringing { call: CallId(2) }));
        e.check_invariants().unwrap();
    }
}
