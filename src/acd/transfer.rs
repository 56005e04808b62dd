//! Blind transfer, the engine's side (issue 11): an agent hands the caller to someone outside the
//! queue (a provincial focal point, 113, 115, …). Domain layer, sans-IO; the switchboard carries
//! the REFER out.
//!
//! When the transfer starts the agent's part of the call is over: their talk time is counted and
//! they go to wrap-up. The caller waits at the front of their lane, rung for no agent, while the
//! target rings. If the target answers, the call ends as `Transferred`. If it fails, the caller is
//! back at the front of the queue (hold audio again) and goes to the next free agent: never left
//! alone.

use std::time::Instant;

use super::agent::AgentId;
use super::call::{CallId, Outcome, Phase};
use super::engine::Engine;
use super::event::{InputError, Output};

impl Engine {
    /// `agent`, bridged to `call`, transfers it.
    pub(super) fn on_transfer_started(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
    ) -> Result<(), InputError> {
        let i = self.index.get(&agent).copied().ok_or(InputError::UnknownAgent(agent.clone()))?;
        let c = self.calls.get_mut(&call).ok_or(InputError::UnknownCall(call))?;
        let Phase::Bridged { since } = c.phase else { return Err(InputError::NotBridged { call }) };
        if c.agent.as_ref() != Some(&agent) {
            return Err(InputError::NotBridged { call });
        }
        c.talk += now - since;
        c.transfer_from = Some(agent);
        c.phase = Phase::Queued { since: now };
        c.next_announce = None;
        let lane = c.lane;
        self.agents[i].talk += now - since;
        self.queue.push_front(lane, call);
        self.start_wrap_up(now, i);
        self.outputs.push_back(Output::StartHold { call });
        Ok(())
    }

    /// The transfer target answered: the call is finished as transferred.
    pub(super) fn on_transfer_answered(&mut self, call: CallId) -> Result<(), InputError> {
        let c = self.calls.get(&call).ok_or(InputError::UnknownCall(call))?;
        let Some(agent) = c.transfer_from.clone() else {
            return Err(InputError::NotTransferring { call });
        };
        let (wait, talk) = (c.queued, c.talk);
        self.calls.remove(&call);
        self.queue.remove(call);
        self.finish(call, Outcome::Transferred { agent, wait, talk });
        Ok(())
    }

    /// The caller hung up while their transfer rang: the call was answered (by the transferring
    /// agent), and ends as such.
    pub(super) fn ended_in_transfer(&mut self, call: CallId) -> bool {
        let Some(c) = self.calls.get(&call).filter(|c| c.transfer_from.is_some()) else {
            return false;
        };
        let Some(agent) = c.transfer_from.clone() else { return false };
        let (wait, talk) = (c.queued, c.talk);
        self.calls.remove(&call);
        self.queue.remove(call);
        self.finish(call, Outcome::Answered { agent, wait, talk });
        true
    }

    /// The transfer failed: the caller stays at the front of the queue for the next agent.
    pub(super) fn on_transfer_failed(
        &mut self,
        now: Instant,
        call: CallId,
    ) -> Result<(), InputError> {
        let c = self.calls.get_mut(&call).ok_or(InputError::UnknownCall(call))?;
        if c.transfer_from.take().is_none() {
            return Err(InputError::NotTransferring { call });
        }
        // The time the target rang was spent waiting: it counts as queue wait from here on.
        c.next_announce = self.config.announce_interval.map(|_| now);
        Ok(())
    }
}
