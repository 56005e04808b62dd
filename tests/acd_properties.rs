//! The ACD engine under arbitrary input sequences, stale and out-of-order ones included (a late 2xx,
//! a reject for a cancelled ring, a hang-up for a finished call, a reload mid-call): it never panics,
//! its invariants hold after every step, and every offered call ends with exactly one outcome once
//! the callers hang up.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tongdai::acd::{
    AgentId, AgentState, CallId, EndedBy, Engine, EngineConfig, Input, Lane, Output, PauseReason,
    RejectReason, Strategy as RingStrategy,
};

const AGENTS: [&str; 4] = ["a0", "a1", "a2", "a3"];

#[derive(Debug, Clone)]
enum Op {
    Offer {
        urgent: bool,
    },
    PromptFinished(u8),
    Menu(u8, bool),
    CallerHungUp(u8),
    LoggedIn(u8),
    LoggedOut(u8),
    OnShift(u8, bool),
    Paused(u8),
    Resumed(u8),
    Ringing(u8, u8),
    Answered(u8, u8),
    Rejected(u8, u8),
    LegFailed(u8, u8),
    Ended(u8, bool),
    EndWrapUp(u8),
    Reload {
        lines: u8,
        strategy: u8,
        drop_last: bool,
    },
    Wait(u16),
    /// Acts on the n-th agent actually ringing / on a call, so the interesting paths are hit often.
    AnswerRinging(u8),
    RejectRinging(u8),
    EndBridged(u8, bool),
    FailBridged(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let call = 0u8..12;
    let agent = 0u8..4;
    prop_oneof![
        3 => any::<bool>().prop_map(|urgent| Op::Offer { urgent }),
        2 => call.clone().prop_map(Op::PromptFinished),
        1 => (call.clone(), any::<bool>()).prop_map(|(c, u)| Op::Menu(c, u)),
        2 => call.clone().prop_map(Op::CallerHungUp),
        2 => agent.clone().prop_map(Op::LoggedIn),
        1 => agent.clone().prop_map(Op::LoggedOut),
        1 => (agent.clone(), any::<bool>()).prop_map(|(a, s)| Op::OnShift(a, s)),
        1 => agent.clone().prop_map(Op::Paused),
        1 => agent.clone().prop_map(Op::Resumed),
        1 => (call.clone(), agent.clone()).prop_map(|(c, a)| Op::Ringing(c, a)),
        4 => (call.clone(), agent.clone()).prop_map(|(c, a)| Op::Answered(c, a)),
        2 => (call.clone(), agent.clone()).prop_map(|(c, a)| Op::Rejected(c, a)),
        1 => (call.clone(), agent.clone()).prop_map(|(c, a)| Op::LegFailed(c, a)),
        2 => (call, any::<bool>()).prop_map(|(c, by)| Op::Ended(c, by)),
        1 => agent.prop_map(Op::EndWrapUp),
        1 => (1u8..4, 0u8..6, any::<bool>())
            .prop_map(|(lines, strategy, drop_last)| Op::Reload { lines, strategy, drop_last }),
        4 => (0u16..40_000).prop_map(Op::Wait),
        6 => (0u8..4).prop_map(Op::AnswerRinging),
        2 => (0u8..4).prop_map(Op::RejectRinging),
        3 => (0u8..4, any::<bool>()).prop_map(|(n, by)| Op::EndBridged(n, by)),
        1 => (0u8..4).prop_map(Op::FailBridged),
    ]
}

fn config(lines: u8, strategy: u8) -> EngineConfig {
    EngineConfig {
        lines: NonZeroU32::new(u32::from(lines)).unwrap_or(NonZeroU32::MIN),
        strategy: RingStrategy::ALL[usize::from(strategy) % RingStrategy::ALL.len()],
        max_queue: 8,
        auto_resume: Some(Duration::from_secs(60)),
        prompt_timeout: Duration::from_secs(2),
        ..EngineConfig::default()
    }
}

struct World {
    engine: Engine,
    now: Instant,
    next_call: u64,
    outcomes: HashMap<CallId, usize>,
}

impl World {
    fn drain(&mut self) {
        self.engine.check_invariants().unwrap_or_else(|e| panic!("{e}\n{:#?}", self.engine));
        while let Some(out) = self.engine.poll_output() {
            if let Output::CallFinished { call, .. } = out {
                *self.outcomes.entry(call).or_default() += 1;
            }
        }
    }

    fn input(&mut self, input: Input) {
        // Stale inputs are allowed to fail; they must not corrupt anything.
        let _ = self.engine.handle(self.now, input);
        self.drain();
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(at) = self.engine.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.engine.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }
}

impl World {
    /// The n-th (modulo) agent ringing (`on_call` false) or on a call, with the call.
    fn busy(&self, n: u8, on_call: bool) -> Option<(CallId, AgentId)> {
        let busy: Vec<(CallId, AgentId)> = self
            .engine
            .agents()
            .filter_map(|(a, s)| match s {
                AgentState::Ringing { call } if !on_call => Some((call, a.clone())),
                AgentState::OnCall { call } if on_call => Some((call, a.clone())),
                _ => None,
            })
            .collect();
        (!busy.is_empty()).then(|| busy[usize::from(n) % busy.len()].clone())
    }
}

fn agent(i: u8) -> AgentId {
    AgentId::new(AGENTS[usize::from(i) % AGENTS.len()])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_input_sequence_keeps_the_invariants(ops in proptest::collection::vec(op(), 1..200)) {
        let mut w = World {
            engine: Engine::new(config(3, 0), AGENTS.map(AgentId::new)),
            now: Instant::now(),
            next_call: 0,
            outcomes: HashMap::new(),
        };
        for a in AGENTS {
            w.input(Input::AgentLoggedIn { agent: AgentId::new(a) });
        }
        for op in ops {
            let call = |c: u8| CallId(u64::from(c));
            match op {
                Op::Offer { urgent } => {
                    let c = CallId(w.next_call);
                    w.next_call += 1;
                    let lane = if urgent { Lane::Urgent } else { Lane::Normal };
                    w.input(Input::CallOffered { call: c, lane, province: None, may_overflow: true });
                }
                Op::PromptFinished(c) => w.input(Input::PromptFinished { call: call(c) }),
                Op::Menu(c, urgent) => w.input(Input::MenuChoice { call: call(c), urgent }),
                Op::CallerHungUp(c) => w.input(Input::CallerHungUp { call: call(c) }),
                Op::LoggedIn(a) => w.input(Input::AgentLoggedIn { agent: agent(a) }),
                Op::LoggedOut(a) => w.input(Input::AgentLoggedOut { agent: agent(a) }),
                Op::OnShift(a, on_shift) => {
                    w.input(Input::AgentOnShift { agent: agent(a), on_shift })
                }
                Op::Paused(a) => {
                    w.input(Input::AgentPaused { agent: agent(a), reason: PauseReason::Agent })
                }
                Op::Resumed(a) => w.input(Input::AgentResumed { agent: agent(a) }),
                Op::Ringing(c, a) => w.input(Input::AgentRinging { call: call(c), agent: agent(a) }),
                Op::Answered(c, a) => {
                    w.input(Input::AgentAnswered { call: call(c), agent: agent(a) })
                }
                Op::Rejected(c, a) => w.input(Input::AgentRejected {
                    call: call(c),
                    agent: agent(a),
                    reason: RejectReason::Busy,
                }),
                Op::LegFailed(c, a) => {
                    w.input(Input::AgentLegFailed { call: call(c), agent: agent(a) })
                }
                Op::Ended(c, by_caller) => {
                    let by = if by_caller { EndedBy::Caller } else { EndedBy::Agent };
                    w.input(Input::CallEnded { call: call(c), by })
                }
                Op::EndWrapUp(a) => w.input(Input::EndWrapUp { agent: agent(a) }),
                Op::Reload { lines, strategy, drop_last } => {
                    let keep = if drop_last { 3 } else { 4 };
                    let agents = AGENTS[..keep].iter().map(|a| AgentId::new(a)).collect();
                    w.input(Input::ConfigChanged { config: config(lines, strategy), agents });
                }
                Op::Wait(ms) => w.advance(Duration::from_millis(u64::from(ms))),
                Op::AnswerRinging(n) => {
                    if let Some((call, agent)) = w.busy(n, false) {
                        w.input(Input::AgentAnswered { call, agent });
                    }
                }
                Op::RejectRinging(n) => {
                    if let Some((call, agent)) = w.busy(n, false) {
                        let reason = RejectReason::Declined;
                        w.input(Input::AgentRejected { call, agent, reason });
                    }
                }
                Op::EndBridged(n, by_caller) => {
                    if let Some((call, _)) = w.busy(n, true) {
                        let by = if by_caller { EndedBy::Caller } else { EndedBy::Agent };
                        w.input(Input::CallEnded { call, by });
                    }
                }
                Op::FailBridged(n) => {
                    if let Some((call, agent)) = w.busy(n, true) {
                        w.input(Input::AgentLegFailed { call, agent });
                    }
                }
            }
        }
        // Every caller hangs up; then every offered call has exactly one outcome.
        for c in 0..w.next_call {
            w.input(Input::CallerHungUp { call: CallId(c) });
        }
        w.advance(Duration::from_secs(3600));
        prop_assert_eq!(w.engine.calls_in_progress(), 0);
        for c in 0..w.next_call {
            prop_assert_eq!(w.outcomes.get(&CallId(c)).copied(), Some(1), "call {}", c);
        }
        prop_assert_eq!(w.engine.lines_busy(), 0);
        // An hour later every wrap-up, retry delay and auto-resume is over: no timer is left.
        prop_assert_eq!(w.engine.poll_timeout(), None);
    }
}
