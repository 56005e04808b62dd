//! Overflow to the national centre, the engine's side (ARCHITECTURE.md §8): which rule hands a
//! call over and when, and what happens when the hand-over succeeds or fails. Domain layer,
//! sans-IO; the switchboard carries the hand-over out (transfer prompt, INVITE or 302).
//!
//! The rules, in the order they are asked, each with its reason label:
//!
//! | reason           | fires                                                               |
//! |------------------|---------------------------------------------------------------------|
//! | `draining`       | the daemon stops: every caller not yet bridged, new ones at once    |
//! | `no_agents`      | nobody is on shift and logged in (paused agents count as there)     |
//! | `queue_full`     | a new call finds `max_queue` callers waiting                        |
//! | `predicted_wait` | a queued caller's estimated wait is over the threshold              |
//! | `max_wait`       | a queued caller has waited `max_wait` (the urgent lane its own)     |
//!
//! A rule fires only while some target is up ([`Input::OverflowAvailable`]); otherwise the
//! caller simply stays queued, and the rules are asked again when a target comes back. A call
//! being handed over keeps its place in the queue (one handed over from the welcome prompt or on
//! arrival takes the back of its lane) but is rung for no agent; if every target fails
//! it gets its hold audio back and waits at least `retry_interval` before the next attempt. A
//! call that came overflowed from another centre is never overflowed (no loops).
//!
//! [`Input::OverflowAvailable`]: super::Input::OverflowAvailable

use std::time::Instant;

use super::call::{AbandonPhase, Call, CallId, Lane, Outcome, OverflowReason, Phase};
use super::engine::Engine;
use super::event::{InputError, Output};

impl Engine {
    /// Overflow rules may fire: configured, and some target is up.
    pub(super) fn overflow_active(&self) -> bool {
        self.config.overflow.enabled && self.overflow_up
    }

    /// True while some configured agent is on shift and logged in (paused or not).
    pub fn anyone_on_duty(&self) -> bool {
        self.agents.iter().any(|a| a.present())
    }

    /// Would a new call (not looped: `may_overflow`) be handed over on arrival? Asked before the
    /// trunk INVITE is answered, so that it can be redirected instead.
    pub fn overflows_on_arrival(&self, may_overflow: bool) -> bool {
        let rules = &self.config.overflow;
        self.overflow_active()
            && may_overflow
            && (self.draining
                || (rules.no_agents && !self.anyone_on_duty())
                || (rules.queue_full && !self.has_room()))
    }

    /// Why `call` is being handed over, while it is.
    pub fn overflow_reason(&self, call: CallId) -> Option<OverflowReason> {
        self.calls.get(&call).and_then(|c| c.overflowing)
    }

    /// The rule that will hand `c` over, and the instant it falls due (`None`: due now).
    pub(super) fn overflow_due(
        &self,
        call: CallId,
        c: &Call,
    ) -> Option<(Option<Instant>, OverflowReason)> {
        if !self.overflow_active() || !c.may_overflow || c.handed_over() {
            return None;
        }
        let rules = &self.config.overflow;
        let (at, reason) = match c.phase {
            Phase::Bridged { .. } => return None,
            _ if self.draining => (None, OverflowReason::Draining),
            _ if rules.no_agents && !self.anyone_on_duty() => (None, OverflowReason::NoAgents),
            Phase::Prompt { .. } => return None,
            Phase::Queued { since } => {
                let predicted = rules
                    .predicted_wait
                    .zip(self.estimated_wait(call))
                    .is_some_and(|(limit, estimate)| estimate > limit);
                let max_wait = match c.lane {
                    Lane::Urgent => rules.max_wait_urgent,
                    Lane::Normal => rules.max_wait,
                };
                if predicted {
                    (None, OverflowReason::PredictedWait)
                } else if let Some(max) = max_wait {
                    (Some(since + max.saturating_sub(c.queued)), OverflowReason::MaxWait)
                } else {
                    return None;
                }
            }
        };
        let at = match (at, c.overflow_retry) {
            (Some(a), Some(r)) => Some(a.max(r)),
            (a, r) => a.or(r),
        };
        Some((at, reason))
    }

    /// Hands over every call whose rule is due at `now` (the settle step, before dispatch).
    pub(super) fn overflow_check(&mut self, now: Instant) {
        if !self.overflow_active() {
            return;
        }
        let due: Vec<(CallId, OverflowReason)> = self
            .calls
            .iter()
            .filter_map(|(id, c)| {
                let (at, reason) = self.overflow_due(*id, c)?;
                at.is_none_or(|t| t <= now).then_some((*id, reason))
            })
            .collect();
        for (call, reason) in due {
            self.start_overflow(now, call, reason);
        }
    }

    /// A new call when the queue is full: handed over at once when the rule allows (true), else
    /// the caller refuses it.
    pub(super) fn overflow_on_arrival(&mut self, now: Instant, call: CallId, c: Call) -> bool {
        let rules = &self.config.overflow;
        if !(self.overflow_active() && rules.queue_full && c.may_overflow) {
            return false;
        }
        self.calls.insert(call, c);
        self.start_overflow(now, call, OverflowReason::QueueFull);
        true
    }

    fn start_overflow(&mut self, now: Instant, call: CallId, reason: OverflowReason) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        // A caller still in the welcome prompt (or just arrived) takes a place in the queue now,
        // at the back of their lane, which they keep if the hand-over fails.
        if let Phase::Prompt { .. } = c.phase {
            c.phase = Phase::Queued { since: now };
            self.queue.push_back(c.lane, call);
        }
        c.overflowing = Some(reason);
        c.overflow_retry = None;
        let legs = std::mem::take(&mut c.legs);
        for leg in legs {
            self.cancel_ring(now, call, &leg.agent);
        }
        self.outputs.push_back(Output::Overflow { call, reason });
    }

    /// The national centre took the call.
    pub(super) fn on_overflow_answered(
        &mut self,
        now: Instant,
        call: CallId,
    ) -> Result<(), InputError> {
        let c = self.calls.get(&call).ok_or(InputError::UnknownCall(call))?;
        let (Some(reason), Phase::Queued { since }) = (c.overflowing, c.phase) else {
            return Err(InputError::NotOverflowing { call });
        };
        let wait = c.queued + (now - since);
        self.calls.remove(&call);
        self.queue.remove(call);
        self.finish(call, Outcome::Overflowed { reason, wait });
        Ok(())
    }

    /// Every target failed: back to the queue at the caller's old place, retried later.
    pub(super) fn on_overflow_failed(
        &mut self,
        now: Instant,
        call: CallId,
    ) -> Result<(), InputError> {
        let retry = self.config.overflow.retry_interval;
        let c = self.calls.get_mut(&call).ok_or(InputError::UnknownCall(call))?;
        if c.overflowing.take().is_none() {
            return Err(InputError::NotOverflowing { call });
        }
        c.overflow_retry = Some(now + retry);
        // Position announcements resume from now.
        c.next_announce = self.config.announce_interval.map(|_| now);
        self.outputs.push_back(Output::StartHold { call });
        Ok(())
    }

    /// The caller hung up while being handed over.
    pub(super) fn abandoned_in_overflow(&mut self, now: Instant, call: CallId) -> bool {
        let Some(c) = self.calls.get(&call).filter(|c| c.overflowing.is_some()) else {
            return false;
        };
        let wait = match c.phase {
            Phase::Queued { since } => c.queued + (now - since),
            _ => c.queued,
        };
        self.calls.remove(&call);
        self.queue.remove(call);
        self.finish(call, Outcome::Abandoned { phase: AbandonPhase::Overflow, wait });
        true
    }
}
