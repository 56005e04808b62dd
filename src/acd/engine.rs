//! The ACD engine: one state machine that owns the queue, the agents' states and the lines, and
//! decides who rings for which caller. Domain layer, sans-IO: it knows nothing of SIP or sockets,
//! and time comes in as a value.
//!
//! The contract is quinn's. The B2BUA turns SIP dialogs into [`Input`]s and carries out the
//! [`Output`]s:
//!
//! ```text
//! engine.handle(now, input)?          // CallOffered, AgentAnswered, CallerHungUp, ...
//! while let Some(out) = engine.poll_output() { b2bua.execute(out) }
//! sleep until engine.poll_timeout(), then engine.handle_timeout(now) and drain again
//! ```
//!
//! A call goes `Prompt` → `Queued` (agents are rung while the caller keeps their place) → `Bridged`
//! → finished, possibly back to the front of the queue when a bridged agent leg dies; every call ends
//! with exactly one `CallFinished`. After every input the engine dispatches (rings free agents for
//! waiting callers within the line cap), announces positions that are due and reports every agent
//! whose public state changed.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::agent::{Activity, Agent, AgentId, AgentState, PauseReason};
use super::call::{AbandonPhase, Call, CallId, EndedBy, Lane, Leg, Outcome, Phase, RefuseReason};
use super::event::{Input, InputError, Output};
use super::queue::Queue;
use super::settings::EngineConfig;
use super::strategy::{self, Strategy};
use super::timer::Timer;
use crate::config::Config;

/// The ACD engine. See the module documentation for the contract.
#[derive(Debug)]
pub struct Engine {
    pub(super) config: EngineConfig,
    /// Configured agents in priority order, then removed agents still busy.
    pub(super) agents: Vec<Agent>,
    pub(super) index: BTreeMap<AgentId, usize>,
    pub(super) calls: BTreeMap<CallId, Call>,
    pub(super) queue: Queue,
    pub(super) outputs: VecDeque<Output>,
    /// Round-robin cursor: the index after the agent rung last.
    rr_next: usize,
    /// Lines in use when the cap was last lowered, still allowed until calls end.
    pub(super) lines_grandfathered: usize,
    /// The handle times (talk plus wrap-up) of the last answered calls, newest last, for
    /// [`Engine::estimated_wait`].
    pub(super) handle_times: VecDeque<Duration>,
    /// Agents and calls the periodic audit had to repair.
    audit_repairs: u64,
    /// Some overflow target is up ([`Input::OverflowAvailable`]).
    pub(super) overflow_up: bool,
    /// The daemon is draining ([`Input::Drain`]).
    pub(super) draining: bool,
}

impl Engine {
    /// An engine with `agents` (configured ids, in priority order), all logged out and on shift.
    pub fn new(config: EngineConfig, agents: impl IntoIterator<Item = AgentId>) -> Self {
        let mut engine = Engine {
            config: config.normalised(),
            agents: Vec::new(),
            index: BTreeMap::new(),
            calls: BTreeMap::new(),
            queue: Queue::default(),
            outputs: VecDeque::new(),
            rr_next: 0,
            lines_grandfathered: 0,
            handle_times: VecDeque::new(),
            audit_repairs: 0,
            overflow_up: false,
            draining: false,
        };
        for id in agents {
            if !engine.index.contains_key(&id) {
                engine.index.insert(id.clone(), engine.agents.len());
                engine.agents.push(Agent::new(id));
            }
        }
        engine
    }

    /// An engine for the validated configuration: `[centre] lines` and the ids of the
    /// `[[agents]]` that are operators (supervisors are never rung).
    pub fn from_config(config: &Config) -> Self {
        Engine::new(
            EngineConfig::from_config(config),
            config.agents.iter().filter(|a| a.is_operator()).map(|a| AgentId::new(&a.id)),
        )
    }

    /// Applies one input at time `now`, then dispatches, announces and reports state changes.
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        let result = match input {
            Input::CallOffered { call, lane, province, may_overflow } => self.on_call_offered(
                now,
                call,
                Call::new_offered(now, &self.config, lane, province, may_overflow),
            ),
            Input::PromptFinished { call } => self.on_prompt_finished(now, call),
            Input::MenuChoice { call, urgent } => self.on_menu_choice(call, urgent),
            Input::CallerHungUp { call } => self.on_caller_hung_up(now, call),
            Input::AgentLoggedIn { agent } => self.on_presence(now, &agent, Some(true), None),
            Input::AgentLoggedOut { agent } => self.on_presence(now, &agent, Some(false), None),
            Input::AgentOnShift { agent, on_shift } => {
                self.on_presence(now, &agent, None, Some(on_shift))
            }
            Input::AgentPaused { agent, reason } => self.agent_index(&agent).map(|i| {
                self.agents[i].paused = Some(reason);
                self.agents[i].resume_at = None;
                // A pause means "no calls now": a ringing call goes to someone else (no miss).
                if let Activity::Ringing(call) = self.agents[i].activity {
                    self.release_leg(call, i);
                    self.outputs.push_back(Output::CancelRing { call, agent });
                }
            }),
            Input::AgentResumed { agent } => self.agent_index(&agent).map(|i| self.resume(i)),
            Input::AgentRinging { call, agent } => self.on_agent_ringing(call, agent),
            Input::AgentAnswered { call, agent } => self.on_agent_answered(now, call, agent),
            Input::AgentRejected { call, agent, reason: _ } => {
                // Every refusal counts as a miss: an agent whose phone keeps failing must be paused
                // rather than rung again and again.
                self.on_agent_rejected(now, call, agent)
            }
            Input::AgentLegFailed { call, agent } => self.on_agent_leg_failed(now, call, agent),
            Input::CallEnded { call, by } => self.on_call_ended(now, call, by),
            Input::EndWrapUp { agent } => self.agent_index(&agent).map(|i| {
                if let Activity::WrapUp(_) = self.agents[i].activity {
                    self.become_idle(i, now);
                }
            }),
            Input::Audit { registered, calls, agent_legs } => {
                self.audit_repairs += self.on_audit(now, &registered, &calls, &agent_legs);
                Ok(())
            }
            Input::OverflowAvailable { up } => {
                self.overflow_up = up;
                Ok(())
            }
            Input::OverflowAnswered { call } => self.on_overflow_answered(now, call),
            Input::OverflowFailed { call } => self.on_overflow_failed(now, call),
            Input::Drain => {
                self.draining = true;
                Ok(())
            }
            Input::TransferStarted { call, agent } => self.on_transfer_started(now, call, agent),
            Input::TransferAnswered { call } => self.on_transfer_answered(call),
            Input::TransferFailed { call } => self.on_transfer_failed(now, call),
            Input::OutboundStarted { call, agent } => self.on_outbound_started(now, call, agent),
            Input::OutboundEnded { call, agent, talked } => {
                self.on_outbound_ended(now, call, agent, talked)
            }
            Input::ConfigChanged { config, agents } => {
                self.on_config_changed(config, agents);
                Ok(())
            }
        };
        self.settle(now);
        result
    }

    /// The next output, if any. Drain after every `handle` and `handle_timeout`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` must be called next (`None`: no timer runs).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        self.visit_timers(|at, _| next = Some(next.map_or(at, |n| n.min(at))));
        next
    }

    /// The next timer and its deadline, for the runtime's trace logs (`poll_timeout` is its time).
    pub fn next_timer(&self) -> Option<(Instant, Timer)> {
        let mut next: Option<(Instant, Timer)> = None;
        self.visit_timers(|at, timer| {
            if next.as_ref().is_none_or(|(n, _)| at < *n) {
                next = Some((at, timer));
            }
        });
        next
    }

    /// Fires every timer due at `now` (ring time-outs, end of wrap-up, prompt time-outs,
    /// auto-resume, announcements), then dispatches and reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let mut due: Vec<(Instant, Timer)> = Vec::new();
            self.visit_timers(|at, timer| {
                // Announcements and overflow are decided in `settle`, not by firing.
                if at <= now && !matches!(timer, Timer::Announce { .. } | Timer::Overflow { .. }) {
                    due.push((at, timer));
                }
            });
            if due.is_empty() {
                break;
            }
            due.sort();
            for (_, timer) in due {
                self.fire(now, timer);
            }
        }
        self.settle(now);
    }

    /// How many agents and calls the periodic audit ([`Input::Audit`]) found out of step and
    /// repaired since start: each one is an event the engine missed (for logs and tests).
    pub fn audit_repairs(&self) -> u64 {
        self.audit_repairs
    }

    /// The current tunables.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// An agent's public state.
    pub fn agent_state(&self, agent: &AgentId) -> Option<AgentState> {
        self.index.get(agent).map(|i| self.agents[*i].state())
    }

    /// Every known agent and its state, configured ones in priority order.
    pub fn agents(&self) -> impl Iterator<Item = (&AgentId, AgentState)> {
        self.agents.iter().map(|a| (&a.id, a.state()))
    }

    /// The waiting calls in service order (urgent lane first), with their lane and the instant
    /// they entered the queue (for the longest-wait gauge and the wallboard).
    pub fn queued(&self) -> impl Iterator<Item = (CallId, Lane, Instant)> + '_ {
        self.queue.iter().filter_map(|id| {
            let c = self.calls.get(&id)?;
            let Phase::Queued { since } = c.phase else { return None };
            Some((id, c.lane, since))
        })
    }

    /// How many calls wait in the queue.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// True while fewer than `max_queue` callers wait (in the prompt or the queue), i.e. a new call
    /// would be accepted. The B2BUA asks before answering, so a full queue is refused with 486
    /// rather than answered and hung up.
    pub fn has_room(&self) -> bool {
        let waiting = self.calls.values().filter(|c| !matches!(c.phase, Phase::Bridged { .. }));
        waiting.count() < self.config.max_queue
    }

    /// How many calls are in progress (prompt, queue or bridged).
    pub fn calls_in_progress(&self) -> usize {
        self.calls.len()
    }

    /// The caller's province as offered, while the call is in progress.
    pub fn province(&self, call: CallId) -> Option<&str> {
        self.calls.get(&call).and_then(|c| c.province.as_deref())
    }

    /// Lines in use: agents ringing or on a call.
    pub fn lines_busy(&self) -> usize {
        self.agents.iter().filter(|a| a.holds_line()).count()
    }

    fn agent_index(&self, agent: &AgentId) -> Result<usize, InputError> {
        self.index.get(agent).copied().ok_or_else(|| InputError::UnknownAgent(agent.clone()))
    }

    fn on_call_offered(&mut self, now: Instant, call: CallId, c: Call) -> Result<(), InputError> {
        if self.calls.contains_key(&call) {
            return Err(InputError::DuplicateCall(call));
        }
        if !self.has_room() {
            if self.overflow_on_arrival(now, call, c) {
                return Ok(());
            }
            let reason = RefuseReason::QueueFull;
            self.outputs.push_back(Output::Refuse { call, reason });
            self.finish(call, Outcome::Rejected { reason });
            return Ok(());
        }
        self.calls.insert(call, c);
        Ok(())
    }

    fn on_prompt_finished(&mut self, now: Instant, call: CallId) -> Result<(), InputError> {
        let c = self.calls.get(&call).ok_or(InputError::UnknownCall(call))?;
        // Already queued by the prompt time-out: nothing left to do.
        if let Phase::Prompt { .. } = c.phase {
            self.enqueue(now, call, false);
        }
        Ok(())
    }

    fn on_menu_choice(&mut self, call: CallId, urgent: bool) -> Result<(), InputError> {
        let c = self.calls.get_mut(&call).ok_or(InputError::UnknownCall(call))?;
        let lane = if urgent { Lane::Urgent } else { Lane::Normal };
        if c.lane != lane {
            c.lane = lane;
            if self.queue.remove(call) {
                self.queue.push_back(lane, call);
            }
        }
        Ok(())
    }

    pub(super) fn on_caller_hung_up(
        &mut self,
        now: Instant,
        call: CallId,
    ) -> Result<(), InputError> {
        if self.abandoned_in_overflow(now, call) || self.ended_in_transfer(call) {
            return Ok(());
        }
        let c = self.calls.get(&call).ok_or(InputError::UnknownCall(call))?;
        match c.phase {
            Phase::Bridged { .. } => self.end_bridged(now, call, EndedBy::Caller),
            Phase::Prompt { .. } | Phase::Queued { .. } => {
                let Some(c) = self.calls.remove(&call) else { return Ok(()) };
                self.queue.remove(call);
                let phase = match c.phase {
                    Phase::Prompt { .. } => AbandonPhase::Prompt,
                    _ if c.legs.is_empty() => AbandonPhase::Queue,
                    _ => AbandonPhase::Ringing,
                };
                for leg in c.legs {
                    self.cancel_ring(now, call, &leg.agent);
                }
                let wait = match c.phase {
                    Phase::Queued { since } => c.queued + (now - since),
                    _ => c.queued,
                };
                self.finish(call, Outcome::Abandoned { phase, wait });
                Ok(())
            }
        }
    }

    pub(super) fn on_presence(
        &mut self,
        now: Instant,
        agent: &AgentId,
        registered: Option<bool>,
        on_shift: Option<bool>,
    ) -> Result<(), InputError> {
        let i = self.agent_index(agent)?;
        let a = &mut self.agents[i];
        let was = a.present();
        a.registered = registered.unwrap_or(a.registered);
        a.on_shift = on_shift.unwrap_or(a.on_shift);
        let is = a.present();
        if !was && is && a.activity == Activity::Idle {
            a.idle_since = Some(now);
        }
        if was
            && !is
            && let Activity::Ringing(call) = a.activity
        {
            self.release_leg(call, i);
            self.outputs.push_back(Output::CancelRing { call, agent: agent.clone() });
        }
        Ok(())
    }

    fn on_agent_ringing(&mut self, call: CallId, agent: AgentId) -> Result<(), InputError> {
        let leg = self.calls.get_mut(&call).and_then(|c| {
            let i = c.leg(&agent)?;
            c.legs.get_mut(i)
        });
        match leg {
            Some(leg) => {
                leg.alerting = true;
                Ok(())
            }
            None => Err(InputError::NotRinging { call, agent }),
        }
    }

    fn on_agent_answered(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
    ) -> Result<(), InputError> {
        let i = self.agent_index(&agent)?;
        if self.agents[i].activity == Activity::OnCall(call) {
            // The same answer reported twice (a retransmitted 2xx): already bridged.
            return Ok(());
        }
        let Some(c) = self.calls.get_mut(&call).filter(|c| c.leg(&agent).is_some()) else {
            // A 2xx that crossed our CANCEL (ring-all loser, ring time-out, caller gone): the leg
            // exists on the wire only, so it must be ended there.
            self.outputs.push_back(Output::HangUpAgent { call, agent });
            return Ok(());
        };
        let losers: Vec<AgentId> = std::mem::take(&mut c.legs)
            .into_iter()
            .map(|l| l.agent)
            .filter(|a| *a != agent)
            .collect();
        if let Phase::Queued { since } = c.phase {
            c.queued += now - since;
        }
        c.phase = Phase::Bridged { since: now };
        c.agent = Some(agent.clone());
        c.next_announce = None;
        self.queue.remove(call);
        let a = &mut self.agents[i];
        a.activity = Activity::OnCall(call);
        a.misses = 0;
        a.answered += 1;
        self.outputs.push_back(Output::Bridge { call, agent });
        for loser in losers {
            // The race was lost, not missed: no miss counted, and the agent keeps their idle time.
            if let Some(j) = self.index.get(&loser).copied() {
                self.agents[j].activity = Activity::Idle;
                self.hold_off(now, j);
            }
            self.outputs.push_back(Output::CancelRing { call, agent: loser });
        }
        Ok(())
    }

    fn on_agent_rejected(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
    ) -> Result<(), InputError> {
        let i = self.agent_index(&agent)?;
        if !self.release_leg(call, i) {
            return Err(InputError::NotRinging { call, agent });
        }
        self.count_miss(now, i);
        Ok(())
    }

    pub(super) fn on_agent_leg_failed(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
    ) -> Result<(), InputError> {
        let i = self.agent_index(&agent)?;
        let c = self.calls.get_mut(&call).ok_or(InputError::UnknownCall(call))?;
        if c.leg(&agent).is_some() {
            return self.on_agent_rejected(now, call, agent);
        }
        let Phase::Bridged { since } = c.phase else {
            return Err(InputError::NotBridged { call });
        };
        if c.agent.as_ref() != Some(&agent) {
            return Err(InputError::NotBridged { call });
        }
        c.talk += now - since;
        self.agents[i].talk += now - since;
        self.outputs.push_back(Output::HangUpAgent { call, agent });
        self.start_wrap_up(now, i);
        self.enqueue(now, call, true);
        Ok(())
    }

    fn on_call_ended(&mut self, now: Instant, call: CallId, by: EndedBy) -> Result<(), InputError> {
        let c = self.calls.get(&call).ok_or(InputError::UnknownCall(call))?;
        match (c.phase, by) {
            (Phase::Bridged { .. }, _) => self.end_bridged(now, call, by),
            // The trunk leg ended before the B2BUA saw the bridge: the caller simply left.
            (_, EndedBy::Caller) => self.on_caller_hung_up(now, call),
            (_, EndedBy::Agent) => Err(InputError::NotBridged { call }),
        }
    }

    fn on_config_changed(&mut self, config: EngineConfig, ids: Vec<AgentId>) {
        self.config = config.normalised();
        if self.config.announce_interval.is_none() {
            self.calls.values_mut().for_each(|c| c.next_announce = None);
        }
        self.lines_grandfathered = self.lines_busy();
        let mut old: BTreeMap<AgentId, Agent> =
            self.agents.drain(..).map(|a| (a.id.clone(), a)).collect();
        let mut agents = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(mut a) = old.remove(&id) {
                a.configured = true;
                agents.push(a);
            } else if !agents.iter().any(|a: &Agent| a.id == id) {
                agents.push(Agent::new(id));
            }
        }
        // In id order (a `BTreeMap`), so a reload is reproducible.
        let mut removed: Vec<Agent> = old.into_values().collect();
        for a in &mut removed {
            a.configured = false;
        }
        agents.extend(removed);
        self.agents = agents;
        self.reindex();
        let ringing: Vec<(usize, CallId)> = (0..self.agents.len())
            .filter(|i| !self.agents[*i].configured)
            .filter_map(|i| match self.agents[i].activity {
                Activity::Ringing(call) => Some((i, call)),
                _ => None,
            })
            .collect();
        for (i, call) in ringing {
            self.release_leg(call, i);
            let agent = self.agents[i].id.clone();
            self.outputs.push_back(Output::CancelRing { call, agent });
        }
    }

    fn reindex(&mut self) {
        self.index = self.agents.iter().enumerate().map(|(i, a)| (a.id.clone(), i)).collect();
        self.rr_next = self.rr_next.min(self.agents.len());
    }

    /// Puts a call in the queue (at the back of its lane, or the front after a failed agent leg).
    fn enqueue(&mut self, now: Instant, call: CallId, front: bool) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        c.phase = Phase::Queued { since: now };
        c.next_announce = self.config.announce_interval.map(|_| now);
        if front {
            self.queue.push_front(c.lane, call);
        } else {
            self.queue.push_back(c.lane, call);
        }
        self.outputs.push_back(Output::StartHold { call });
    }

    /// Ends a bridged call: the other side is hung up, the agent starts wrap-up, the outcome goes out.
    fn end_bridged(&mut self, now: Instant, call: CallId, by: EndedBy) -> Result<(), InputError> {
        let Some(c) = self.calls.remove(&call) else { return Err(InputError::UnknownCall(call)) };
        let (Phase::Bridged { since }, Some(agent)) = (c.phase, c.agent.clone()) else {
            self.calls.insert(call, c);
            return Err(InputError::NotBridged { call });
        };
        let talk = now - since;
        match by {
            EndedBy::Caller => {
                self.outputs.push_back(Output::HangUpAgent { call, agent: agent.clone() })
            }
            EndedBy::Agent => self.outputs.push_back(Output::HangUpCaller { call }),
        }
        if let Some(i) = self.index.get(&agent).copied() {
            self.agents[i].talk += talk;
            self.start_wrap_up(now, i);
        }
        self.record_handle_time(c.talk + talk);
        self.finish(call, Outcome::Answered { agent, wait: c.queued, talk: c.talk + talk });
        Ok(())
    }

    pub(super) fn finish(&mut self, call: CallId, outcome: Outcome) {
        self.outputs.push_back(Output::CallFinished { call, outcome });
    }

    pub(super) fn start_wrap_up(&mut self, now: Instant, i: usize) {
        if self.config.wrap_up.is_zero() {
            self.become_idle(i, now);
        } else {
            self.agents[i].activity = Activity::WrapUp(now + self.config.wrap_up);
        }
    }

    fn become_idle(&mut self, i: usize, since: Instant) {
        self.agents[i].activity = Activity::Idle;
        self.agents[i].idle_since = Some(since);
    }

    fn resume(&mut self, i: usize) {
        let a = &mut self.agents[i];
        a.paused = None;
        a.resume_at = None;
        a.retry_at = None;
        a.misses = 0;
    }

    /// Removes agent `i`'s ringing leg for `call` and frees the agent (keeping their idle time);
    /// false if there was none.
    pub(super) fn release_leg(&mut self, call: CallId, i: usize) -> bool {
        let id = &self.agents[i].id;
        let Some(c) = self.calls.get_mut(&call) else { return false };
        let Some(l) = c.leg(id) else { return false };
        c.legs.remove(l);
        self.agents[i].activity = Activity::Idle;
        true
    }

    /// CancelRing for an agent whose call is gone (the leg is already out of the call).
    pub(super) fn cancel_ring(&mut self, now: Instant, call: CallId, agent: &AgentId) {
        if let Some(i) = self.index.get(agent).copied()
            && self.agents[i].activity == Activity::Ringing(call)
        {
            self.agents[i].activity = Activity::Idle;
            self.hold_off(now, i);
        }
        self.outputs.push_back(Output::CancelRing { call, agent: agent.clone() });
    }

    /// A cancelled ring is not over on the wire yet: the agent may have answered as our CANCEL
    /// left (the 2xx crosses it and is torn down with ACK + BYE) and their phone stays busy until
    /// the 487 or that BYE. Ringing them again at once for the next caller would reach a busy
    /// phone (486, counted as a miss), so they wait `retry_delay`, like after a miss (no miss is
    /// counted, and they keep their idle time).
    fn hold_off(&mut self, now: Instant, i: usize) {
        let retry = self.config.retry_delay;
        if !retry.is_zero() {
            let a = &mut self.agents[i];
            a.retry_at = Some(a.retry_at.map_or(now + retry, |at| at.max(now + retry)));
        }
    }

    fn count_miss(&mut self, now: Instant, i: usize) {
        let (max, resume) = (self.config.max_misses, self.config.auto_resume);
        let retry = self.config.retry_delay;
        let a = &mut self.agents[i];
        a.misses += 1;
        a.retry_at = (!retry.is_zero()).then(|| now + retry);
        if max > 0 && a.misses >= max && a.paused.is_none() {
            a.paused = Some(PauseReason::NoAnswer);
            a.resume_at = resume.map(|d| now + d);
            a.misses = 0;
        }
    }

    /// Visits every running timer with its deadline. A plain loop rather than an iterator chain: it
    /// runs after every step, and stays cheap in debug builds (the simulator's full days).
    fn visit_timers(&self, mut visit: impl FnMut(Instant, Timer)) {
        let announcing = self.config.announce_interval.is_some();
        for (&call, c) in &self.calls {
            match c.phase {
                Phase::Prompt { deadline } => visit(deadline, Timer::Prompt { call }),
                Phase::Queued { .. } if c.handed_over() => {}
                Phase::Queued { .. } => {
                    if let Some((Some(at), _)) = self.overflow_due(call, c) {
                        visit(at, Timer::Overflow { call });
                    }
                    if let Some(at) = c.next_announce.filter(|_| announcing) {
                        visit(at, Timer::Announce { call });
                    }
                    for l in &c.legs {
                        visit(l.deadline, Timer::Ring { call, agent: l.agent.clone() });
                    }
                }
                Phase::Bridged { .. } => {}
            }
        }
        for a in &self.agents {
            if let Activity::WrapUp(until) = a.activity {
                visit(until, Timer::WrapUp { agent: a.id.clone() });
            }
            if let Some(at) = a.retry_at {
                visit(at, Timer::Retry { agent: a.id.clone() });
            }
            if let Some(at) = a.resume_at.filter(|_| a.paused == Some(PauseReason::NoAnswer)) {
                visit(at, Timer::AutoResume { agent: a.id.clone() });
            }
        }
    }

    fn fire(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::Prompt { call } => {
                let due = self.calls.get(&call).is_some_and(
                    |c| matches!(c.phase, Phase::Prompt { deadline } if deadline <= now),
                );
                if due {
                    self.enqueue(now, call, false);
                }
            }
            Timer::Ring { call, agent } => {
                let due = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.leg(&agent).is_some_and(|l| c.legs[l].deadline <= now));
                if let (true, Some(i)) = (due, self.index.get(&agent).copied()) {
                    self.release_leg(call, i);
                    self.outputs.push_back(Output::CancelRing { call, agent });
                    self.count_miss(now, i);
                }
            }
            Timer::WrapUp { agent } => {
                if let Some(i) = self.index.get(&agent).copied()
                    && let Activity::WrapUp(until) = self.agents[i].activity
                    && until <= now
                {
                    self.become_idle(i, until);
                }
            }
            Timer::Retry { agent } => {
                if let Some(i) = self.index.get(&agent).copied()
                    && self.agents[i].retry_at.is_some_and(|at| at <= now)
                {
                    self.agents[i].retry_at = None;
                }
            }
            Timer::AutoResume { agent } => {
                if let Some(i) = self.index.get(&agent).copied()
                    && self.agents[i].resume_at.is_some_and(|at| at <= now)
                {
                    self.resume(i);
                }
            }
            // Announcements are made in `settle`, after dispatch, so a caller about to be rung
            // hears no position; overflow rules are asked there too.
            Timer::Announce { .. } | Timer::Overflow { .. } => {}
        }
    }

    /// After every input and timer: ring free agents, announce due positions, drop removed agents
    /// that are done, report state changes.
    fn settle(&mut self, now: Instant) {
        self.overflow_check(now);
        self.dispatch(now);
        self.announce(now);
        self.sweep_removed();
        for a in &mut self.agents {
            let state = a.state();
            if state != a.reported {
                a.reported = state;
                self.outputs.push_back(Output::AgentState { agent: a.id.clone(), state });
            }
        }
        self.lines_grandfathered = self.lines_grandfathered.min(self.lines_busy());
    }

    /// Rings free agents for waiting callers, in queue order, within the line cap.
    ///
    /// The agents are scanned once per dispatch, not once per waiting caller: every input
    /// dispatches, and under a surge (a long queue, thousands of agents) re-scanning them for each
    /// caller made each input cost queue × agents and the daemon fall further behind the busier it
    /// was. Ringing an agent takes it out of the candidates (it is no longer idle) and takes a line,
    /// exactly as a fresh scan would find.
    fn dispatch(&mut self, now: Instant) {
        let cap = self.config.lines.get() as usize;
        let ring_all = self.config.strategy == Strategy::RingAll;
        let mut busy = self.lines_busy();
        let candidates: Vec<usize> =
            (0..self.agents.len()).filter(|i| self.agents[*i].eligible()).collect();
        let mut rung = vec![false; self.agents.len()];
        let mut left = candidates.len();
        let order: Vec<CallId> = self.queue.iter().collect();
        for call in order {
            let free = cap.saturating_sub(busy);
            if free == 0 || left == 0 {
                break;
            }
            let Some(c) = self.calls.get_mut(&call) else { continue };
            if c.handed_over() || (!c.legs.is_empty() && !ring_all) {
                continue;
            }
            // Prefer agents not yet tried for this caller; once all were, start over, unless some
            // are still ringing for it (ring-all): a refusal is not retried at once.
            let agents = &self.agents;
            let mut fresh: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|i| !rung[*i] && !c.tried.contains(&agents[*i].id))
                .collect();
            if fresh.is_empty() {
                if !c.legs.is_empty() {
                    continue;
                }
                c.tried.clear();
                fresh = candidates.iter().copied().filter(|i| !rung[*i]).collect();
            }
            let picks: Vec<usize> = if ring_all {
                fresh.sort_by_key(|i| (agents[*i].idle_since, *i));
                fresh.truncate(free);
                fresh
            } else {
                strategy::choose(self.config.strategy, agents, &fresh, self.rr_next)
                    .into_iter()
                    .collect()
            };
            for i in picks {
                self.ring(now, call, i);
                rung[i] = true;
                left -= 1;
                busy += 1;
            }
        }
    }

    fn ring(&mut self, now: Instant, call: CallId, i: usize) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        let agent = self.agents[i].id.clone();
        self.agents[i].activity = Activity::Ringing(call);
        self.rr_next = i + 1;
        c.legs.push(Leg {
            agent: agent.clone(),
            deadline: now + self.config.ring_timeout,
            alerting: false,
        });
        c.tried.push(agent.clone());
        self.outputs.push_back(Output::RingAgent { call, agent });
    }

    /// Announces positions that are due, to callers no agent is being rung for.
    fn announce(&mut self, now: Instant) {
        let Some(interval) = self.config.announce_interval else { return };
        let order: Vec<CallId> = self.queue.iter().collect();
        for (n, call) in order.into_iter().enumerate() {
            let Some(c) = self.calls.get_mut(&call) else { continue };
            if c.next_announce.is_none_or(|at| at > now) {
                continue;
            }
            c.next_announce = Some(now + interval);
            if !c.legs.is_empty() || c.handed_over() {
                continue;
            }
            let here = u32::try_from(n + 1).unwrap_or(u32::MAX);
            let position = c.announced.map_or(here, |last| last.min(here));
            c.announced = Some(position);
            self.outputs.push_back(Output::AnnouncePosition { call, position });
        }
    }

    /// Forgets removed agents once they are idle.
    fn sweep_removed(&mut self) {
        let done = |a: &Agent| !a.configured && a.activity == Activity::Idle;
        if !self.agents.iter().any(done) {
            return;
        }
        for a in self.agents.iter().filter(|a| done(a)) {
            if a.reported != AgentState::LoggedOut {
                let (agent, state) = (a.id.clone(), AgentState::LoggedOut);
                self.outputs.push_back(Output::AgentState { agent, state });
            }
        }
        self.agents.retain(|a| !done(a));
        self.reindex();
    }
}
