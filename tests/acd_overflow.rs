//! Overflow to the national centre, the engine's rules on virtual time: each condition with its
//! reason, nothing fired while no target is up, a failed hand-over returning the caller to their
//! place, loop prevention, the urgent lane's shorter wait, and draining with calls in every phase.
//! Every step is followed by `check_invariants()`.

use std::time::{Duration, Instant};

use tongdai::acd::{
    AbandonPhase, AgentId, CallId, EndedBy, Engine, EngineConfig, Input, Lane, Outcome, Output,
    OverflowReason, OverflowRules,
};

const S: Duration = Duration::from_secs(1);

/// An engine with agents `a` and `b` (logged in unless `logged_in` is false), overflow on with the
/// default rules, and a target up.
struct Bench {
    engine: Engine,
    t: Instant,
    outputs: Vec<Output>,
}

impl Bench {
    fn new(rules: OverflowRules, logged_in: bool) -> Bench {
        let config = EngineConfig {
            overflow: OverflowRules { enabled: true, ..rules },
            announce_interval: None,
            max_queue: 3,
            ..EngineConfig::default()
        };
        let mut b = Bench {
            engine: Engine::new(config, ["a", "b"].map(AgentId::new)),
            t: Instant::now(),
            outputs: Vec::new(),
        };
        if logged_in {
            b.input(Input::AgentLoggedIn { agent: AgentId::new("a") });
            b.input(Input::AgentLoggedIn { agent: AgentId::new("b") });
        }
        b.input(Input::OverflowAvailable { up: true });
        b
    }

    fn input(&mut self, input: Input) {
        self.engine.handle(self.t, input).unwrap();
        self.collect();
    }

    fn collect(&mut self) {
        self.engine.check_invariants().unwrap();
        self.outputs.extend(std::iter::from_fn(|| self.engine.poll_output()));
    }

    /// Runs the engine's timers up to `t + d`.
    fn advance(&mut self, d: Duration) {
        let end = self.t + d;
        while let Some(at) = self.engine.poll_timeout().filter(|at| *at <= end) {
            self.t = at.max(self.t);
            self.engine.handle_timeout(self.t);
            self.collect();
        }
        self.t = end;
    }

    fn offer(&mut self, call: u64, may_overflow: bool) {
        let call = CallId(call);
        self.input(Input::CallOffered { call, lane: Lane::Normal, province: None, may_overflow });
    }

    fn queue(&mut self, call: u64) {
        self.offer(call, true);
        self.input(Input::PromptFinished { call: CallId(call) });
    }

    fn overflows(&self) -> Vec<(u64, OverflowReason)> {
        let each = self.outputs.iter().filter_map(|o| match o {
            Output::Overflow { call, reason } => Some((call.0, *reason)),
            _ => None,
        });
        each.collect()
    }

    fn outcome(&self, call: u64) -> Option<&Outcome> {
        self.outputs.iter().find_map(|o| match o {
            Output::CallFinished { call: c, outcome } if c.0 == call => Some(outcome),
            _ => None,
        })
    }

    fn rings(&self, call: u64) -> usize {
        let rung = |o: &&Output| matches!(o, Output::RingAgent { call: c, .. } if c.0 == call);
        self.outputs.iter().filter(rung).count()
    }
}

#[test]
fn nobody_on_duty_overflows_at_once_even_during_the_welcome() {
    let mut b = Bench::new(OverflowRules::default(), false);
    b.offer(1, true);
    assert_eq!(b.overflows(), [(1, OverflowReason::NoAgents)]);
    b.advance(4 * S);
    b.input(Input::OverflowAnswered { call: CallId(1) });
    assert_eq!(
        b.outcome(1),
        Some(&Outcome::Overflowed { reason: OverflowReason::NoAgents, wait: 4 * S })
    );
    assert_eq!(b.engine.calls_in_progress(), 0);
}

#[test]
fn agents_off_shift_count_as_nobody_but_paused_agents_do_not() {
    let mut b = Bench::new(OverflowRules::default(), true);
    for agent in ["a", "b"] {
        let reason = tongdai::acd::PauseReason::Agent;
        b.input(Input::AgentPaused { agent: AgentId::new(agent), reason });
    }
    b.queue(1);
    assert!(b.overflows().is_empty(), "a paused agent is still on duty: the caller waits");
    for agent in ["a", "b"] {
        b.input(Input::AgentOnShift { agent: AgentId::new(agent), on_shift: false });
    }
    assert_eq!(b.overflows(), [(1, OverflowReason::NoAgents)]);
}

#[test]
fn max_wait_hands_over_after_sixty_seconds_and_urgent_after_thirty() {
    let mut b = Bench::new(OverflowRules::default(), true);
    // Both agents busy with calls 1 and 2; calls 3 (normal) and 4 (urgent) wait.
    for call in [1, 2] {
        b.queue(call);
    }
    for (call, agent) in [(1, "a"), (2, "b")] {
        let agent = AgentId::new(agent);
        b.input(Input::AgentAnswered { call: CallId(call), agent });
    }
    b.queue(3);
    b.offer(4, true);
    b.input(Input::MenuChoice { call: CallId(4), urgent: true });
    b.input(Input::PromptFinished { call: CallId(4) });
    b.advance(29 * S);
    assert!(b.overflows().is_empty());
    b.advance(S);
    assert_eq!(b.overflows(), [(4, OverflowReason::MaxWait)], "the urgent lane waits 30 s");
    b.advance(29 * S);
    assert_eq!(b.overflows().len(), 1);
    b.advance(S);
    assert_eq!(b.overflows()[1], (3, OverflowReason::MaxWait), "the normal lane waits 60 s");
}

#[test]
fn max_wait_cancels_a_ring_in_progress_without_a_miss() {
    let rules = OverflowRules { max_wait: Some(10 * S), ..OverflowRules::default() };
    let mut b = Bench::new(rules, true);
    b.input(Input::AgentLoggedOut { agent: AgentId::new("b") });
    b.queue(1);
    assert_eq!(b.rings(1), 1);
    b.advance(10 * S);
    assert_eq!(b.overflows(), [(1, OverflowReason::MaxWait)]);
    let cancelled = Output::CancelRing { call: CallId(1), agent: AgentId::new("a") };
    assert!(b.outputs.contains(&cancelled));
    assert_eq!(b.engine.agent_state(&AgentId::new("a")), Some(tongdai::acd::AgentState::Available));
}

#[test]
fn no_target_up_keeps_callers_queued_until_one_comes_back() {
    let mut b = Bench::new(OverflowRules::default(), false);
    b.input(Input::OverflowAvailable { up: false });
    b.queue(1);
    b.advance(120 * S);
    assert!(b.overflows().is_empty(), "nobody to hand over to: the caller stays queued");
    assert_eq!(b.engine.waiting(), 1);
    b.input(Input::OverflowAvailable { up: true });
    assert_eq!(b.overflows(), [(1, OverflowReason::NoAgents)]);
}

#[test]
fn a_failed_hand_over_returns_the_caller_to_their_place_and_retries_later() {
    let rules = OverflowRules { max_wait: Some(20 * S), ..OverflowRules::default() };
    let mut b = Bench::new(rules, true);
    for call in [1, 2] {
        b.queue(call);
        let agent = AgentId::new(if call == 1 { "a" } else { "b" });
        b.input(Input::AgentAnswered { call: CallId(call), agent });
    }
    b.queue(3);
    b.advance(5 * S);
    b.queue(4);
    b.advance(15 * S);
    assert_eq!(b.overflows(), [(3, OverflowReason::MaxWait)]);
    b.advance(8 * S);
    b.input(Input::OverflowFailed { call: CallId(3) });
    assert!(b.outputs.ends_with(&[Output::StartHold { call: CallId(3) }]));
    let order: Vec<CallId> = b.engine.queued().map(|q| q.0).collect();
    assert_eq!(order, [CallId(3), CallId(4)], "call 3 keeps its place ahead of call 4");
    // Call 4's own max wait passes meanwhile; call 3 waits `retry_interval` (30 s) first.
    b.advance(29 * S);
    assert_eq!(b.overflows().iter().filter(|o| o.0 == 3).count(), 1);
    assert_eq!(b.overflows().last(), Some(&(4, OverflowReason::MaxWait)));
    b.advance(S);
    assert_eq!(b.overflows().last(), Some(&(3, OverflowReason::MaxWait)));
    // An agent freed meanwhile takes call 3 only if no hand-over is running.
    b.input(Input::CallEnded { call: CallId(1), by: EndedBy::Caller });
    assert_eq!(b.rings(3), 0, "a caller being handed over is rung for nobody");
}

#[test]
fn a_full_queue_overflows_the_next_caller_instead_of_refusing_them() {
    let mut b = Bench::new(OverflowRules::default(), true);
    for agent in ["a", "b"] {
        let reason = tongdai::acd::PauseReason::Agent;
        b.input(Input::AgentPaused { agent: AgentId::new(agent), reason });
    }
    for call in 1..=3 {
        b.queue(call);
    }
    assert!(!b.engine.has_room());
    assert!(b.engine.overflows_on_arrival(true));
    assert!(!b.engine.overflows_on_arrival(false), "a looped call is refused, not sent back");
    b.offer(4, true);
    assert_eq!(b.overflows(), [(4, OverflowReason::QueueFull)]);
    b.offer(5, false);
    assert!(matches!(b.outcome(5), Some(Outcome::Rejected { .. })));
}

#[test]
fn a_predicted_wait_over_the_threshold_overflows_at_queue_entry() {
    let rules =
        OverflowRules { predicted_wait: Some(100 * S), max_wait: None, ..OverflowRules::default() };
    let mut b = Bench::new(rules, true);
    b.input(Input::AgentLoggedOut { agent: AgentId::new("b") });
    // One answered call of 200 s talk + 30 s wrap-up makes the history: ~230 s per caller.
    b.queue(1);
    b.input(Input::AgentAnswered { call: CallId(1), agent: AgentId::new("a") });
    b.advance(200 * S);
    b.input(Input::CallEnded { call: CallId(1), by: EndedBy::Agent });
    // `a` is in wrap-up: call 2 waits, with one server, about 230 s.
    b.queue(2);
    assert_eq!(b.overflows(), [(2, OverflowReason::PredictedWait)]);
}

#[test]
fn a_call_from_another_centre_is_never_overflowed_back() {
    let mut b = Bench::new(OverflowRules::default(), false);
    b.offer(1, false);
    b.input(Input::PromptFinished { call: CallId(1) });
    b.advance(600 * S);
    assert!(b.overflows().is_empty());
    assert_eq!(b.engine.waiting(), 1);
}

#[test]
fn draining_overflows_every_caller_not_yet_bridged_and_new_ones() {
    let mut b = Bench::new(OverflowRules::default(), true);
    b.input(Input::AgentLoggedOut { agent: AgentId::new("b") });
    b.queue(1);
    b.input(Input::AgentAnswered { call: CallId(1), agent: AgentId::new("a") });
    b.queue(2); // waiting
    b.offer(3, true); // in the welcome prompt
    b.input(Input::Drain);
    let mut got = b.overflows();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, [(2, OverflowReason::Draining), (3, OverflowReason::Draining)]);
    b.offer(4, true);
    assert_eq!(b.overflows().last(), Some(&(4, OverflowReason::Draining)));
    // The bridged call goes on; the caller who hangs up during the hand-over is an abandon.
    b.input(Input::CallerHungUp { call: CallId(3) });
    assert!(matches!(b.outcome(3), Some(Outcome::Abandoned { phase: AbandonPhase::Overflow, .. })));
    b.advance(100 * S);
    b.input(Input::CallEnded { call: CallId(1), by: EndedBy::Caller });
    assert!(matches!(b.outcome(1), Some(Outcome::Answered { .. })));
}
