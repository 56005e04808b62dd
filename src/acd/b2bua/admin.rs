//! Supervisor commands from the admin API: pause and resume an agent. Domain layer, sans-IO.

use super::*;
use crate::acd::PauseReason;

impl Switchboard {
    /// Pauses (`pause = true`, reason `supervisor`) or resumes agent `agent`; `false` when no such
    /// agent is configured. A ringing call moves on to the next agent; a running call goes on.
    pub fn admin_set_paused(
        &mut self,
        now: Instant,
        agent: &str,
        pause: bool,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> bool {
        if !self.agents.iter().any(|a| a.id == agent) {
            return false;
        }
        let agent = AgentId::new(agent);
        let input = if pause {
            Input::AgentPaused { agent, reason: PauseReason::Supervisor }
        } else {
            Input::AgentResumed { agent }
        };
        let applied = self.engine.handle(now, input).is_ok();
        self.drive(now, sip, media);
        applied
    }
}
