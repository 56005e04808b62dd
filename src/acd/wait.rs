//! The estimated wait a caller hears announced: recent handle times spread over the lines that
//! can serve, times the caller's place in the queue. Domain layer, sans-IO.
//!
//! The figure is deliberately simple (Asterisk's `holdtime` is of the same kind): the mean handle
//! time (talk plus wrap-up) of the last [`HISTORY`] answered calls is how long one line stays busy
//! with a caller; `servers` lines work in parallel, so the caller at position `p` waits about
//! `p · mean / servers`. It is a figure for a prompt ("about 3 minutes"), not a promise; with no
//! history yet, or nobody to serve, there is no figure at all.

use std::time::Duration;

use super::agent::Activity;
use super::call::{CallId, Lane, Phase};
use super::engine::Engine;

/// How many recent handle times the estimate averages.
pub(crate) const HISTORY: usize = 20;

impl Engine {
    /// About how long `call` still waits for an agent: `None` for an unknown call, when no call
    /// has been answered yet (no history), or when no agent is logged in and unpaused; zero once
    /// the call is bridged. A caller still in the prompt is counted at the back of their lane.
    pub fn estimated_wait(&self, call: CallId) -> Option<Duration> {
        let c = self.calls.get(&call)?;
        let position = match c.phase {
            Phase::Bridged { .. } => return Some(Duration::ZERO),
            Phase::Queued { .. } => self.queue.iter().position(|q| q == call)? + 1,
            Phase::Prompt { .. } => match c.lane {
                Lane::Urgent => self.queue.lane_len(Lane::Urgent) + 1,
                Lane::Normal => self.queue.len() + 1,
            },
        };
        if self.handle_times.is_empty() {
            return None;
        }
        // Agents who take calls now or will after their current one: present and unpaused, or
        // busy (a call or its wrap-up) whatever their presence, since they free a line on finish.
        let staffed = self
            .agents
            .iter()
            .filter(|a| {
                (a.present() && a.paused.is_none()) || !matches!(a.activity, Activity::Idle)
            })
            .count();
        let servers = staffed.min(self.config.lines.get() as usize);
        if servers == 0 {
            return None;
        }
        let total: Duration = self.handle_times.iter().sum();
        let mean = total / self.handle_times.len() as u32;
        let scaled = mean.mul_f64(position as f64 / servers as f64);
        Some(scaled)
    }

    /// Remembers one answered call's handle time: its talk plus the configured wrap-up.
    pub(super) fn record_handle_time(&mut self, talk: Duration) {
        if self.handle_times.len() == HISTORY {
            self.handle_times.pop_front();
        }
        self.handle_times.push_back(talk + self.config.wrap_up);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::acd::{AgentId, EndedBy, EngineConfig, Input};

    const S: Duration = Duration::from_secs(1);

    fn offer(e: &mut Engine, now: Instant, n: u64, lane: Lane) -> CallId {
        let call = CallId(n);
        e.handle(now, Input::CallOffered { call, lane, province: None, may_overflow: true })
            .unwrap();
        call
    }

    /// One agent, one answered call of `talk`, then 3 waiting callers (the first being rung).
    fn engine_with_history(talk: Duration) -> (Engine, Instant) {
        let now = crate::test_epoch();
        let lan = AgentId::new("lan");
        let mut e = Engine::new(EngineConfig::default(), [lan.clone(), AgentId::new("mai")]);
        e.handle(now, Input::AgentLoggedIn { agent: lan.clone() }).unwrap();
        let first = offer(&mut e, now, 1, Lane::Normal);
        e.handle(now, Input::PromptFinished { call: first }).unwrap();
        e.handle(now + S, Input::AgentAnswered { call: first, agent: lan }).unwrap();
        let end = now + S + talk;
        e.handle(end, Input::CallEnded { call: first, by: EndedBy::Agent }).unwrap();
        (e, end)
    }

    #[test]
    fn no_history_no_estimate() {
        let now = crate::test_epoch();
        let mut e = Engine::new(EngineConfig::default(), [AgentId::new("lan")]);
        e.handle(now, Input::AgentLoggedIn { agent: AgentId::new("lan") }).unwrap();
        let call = offer(&mut e, now, 1, Lane::Normal);
        assert_eq!(e.estimated_wait(call), None);
        assert_eq!(e.estimated_wait(CallId(99)), None);
    }

    #[test]
    fn the_estimate_grows_with_the_position_and_shrinks_with_the_servers() {
        // 90 s talk + 30 s wrap-up: a handle time of 120 s; one agent logged in.
        let (mut e, now) = engine_with_history(90 * S);
        let calls: Vec<CallId> = (2..5).map(|n| offer(&mut e, now, n, Lane::Normal)).collect();
        for &call in &calls {
            e.handle(now, Input::PromptFinished { call }).unwrap();
        }
        assert_eq!(e.estimated_wait(calls[0]), Some(120 * S));
        assert_eq!(e.estimated_wait(calls[2]), Some(360 * S));
        // A caller still in the prompt counts at the back of the queue.
        let late = offer(&mut e, now, 9, Lane::Normal);
        assert_eq!(e.estimated_wait(late), Some(480 * S));
        // An urgent one in the prompt counts behind the urgent lane only (empty).
        let urgent = offer(&mut e, now, 10, Lane::Urgent);
        assert_eq!(e.estimated_wait(urgent), Some(120 * S));
        // A second agent: two servers, half the wait.
        e.handle(now, Input::AgentLoggedIn { agent: AgentId::new("mai") }).unwrap();
        let waiting: Vec<CallId> = e.queued().map(|q| q.0).collect();
        let last = *waiting.last().unwrap();
        assert_eq!(e.estimated_wait(last), Some(180 * S));
    }

    #[test]
    fn nobody_to_serve_means_no_estimate_and_a_bridged_call_waits_no_more() {
        let (mut e, now) = engine_with_history(60 * S);
        let call = offer(&mut e, now, 2, Lane::Normal);
        e.handle(now, Input::PromptFinished { call }).unwrap();
        // Lan is in wrap-up: still counted, as they free a line on finishing.
        assert_eq!(e.estimated_wait(call), Some(90 * S));
        e.handle(now, Input::EndWrapUp { agent: AgentId::new("lan") }).unwrap();
        e.handle(now, Input::AgentAnswered { call, agent: AgentId::new("lan") }).unwrap();
        assert_eq!(e.estimated_wait(call), Some(Duration::ZERO));
        e.handle(now, Input::CallEnded { call, by: EndedBy::Caller }).unwrap();
        e.handle(now, Input::AgentLoggedOut { agent: AgentId::new("lan") }).unwrap();
        e.handle(now, Input::EndWrapUp { agent: AgentId::new("lan") }).unwrap();
        let next = offer(&mut e, now, 3, Lane::Normal);
        assert_eq!(e.estimated_wait(next), None);
    }

    #[test]
    fn only_the_last_calls_count() {
        let (mut e, mut now) = engine_with_history(600 * S);
        let lan = AgentId::new("lan");
        for n in 0..HISTORY as u64 {
            e.handle(now, Input::EndWrapUp { agent: lan.clone() }).unwrap();
            let call = offer(&mut e, now, 100 + n, Lane::Normal);
            e.handle(now, Input::PromptFinished { call }).unwrap();
            e.handle(now, Input::AgentAnswered { call, agent: lan.clone() }).unwrap();
            now += 30 * S;
            e.handle(now, Input::CallEnded { call, by: EndedBy::Caller }).unwrap();
        }
        let call = offer(&mut e, now, 999, Lane::Normal);
        assert_eq!(e.estimated_wait(call), Some(60 * S), "the 600 s call has aged out");
    }
}
