//! Blind transfer, the engine's rules on virtual time (issue 11): the transferring agent goes to
//! wrap-up, the caller waits first in line and rung for nobody while the target rings, a target
//! that answers ends the call as transferred, one that fails gives the caller to the next free
//! agent at once, and a caller who hangs up meanwhile ends an answered call. Every step is
//! followed by `check_invariants()`.

use std::time::{Duration, Instant};

use tongdai::acd::{
    AgentId, AgentState, CallId, Engine, EngineConfig, Input, InputError, Lane, Outcome, Output,
};

const S: Duration = Duration::from_secs(1);

struct Bench {
    engine: Engine,
    t: Instant,
    outputs: Vec<Output>,
}

impl Bench {
    /// Agents `a` and `b` logged in; call 1 bridged to `a` at t = 10 s after 10 s of talk; call 2
    /// waiting behind it with `b` paused, so nobody else can take a call until the test says.
    fn new() -> Bench {
        let config = EngineConfig { announce_interval: None, ..EngineConfig::default() };
        let mut b = Bench {
            engine: Engine::new(config, ["a", "b"].map(AgentId::new)),
            t: Instant::now(),
            outputs: Vec::new(),
        };
        for agent in ["a", "b"] {
            b.input(Input::AgentLoggedIn { agent: AgentId::new(agent) });
        }
        let pause = tongdai::acd::PauseReason::Agent;
        b.input(Input::AgentPaused { agent: AgentId::new("b"), reason: pause });
        for call in [1, 2] {
            let call = CallId(call);
            let offered =
                Input::CallOffered { call, lane: Lane::Normal, province: None, may_overflow: true };
            b.input(offered);
            b.input(Input::PromptFinished { call });
        }
        b.input(Input::AgentAnswered { call: CallId(1), agent: AgentId::new("a") });
        b.t += 10 * S;
        b
    }

    fn input(&mut self, input: Input) {
        self.engine.handle(self.t, input).unwrap();
        self.engine.check_invariants().unwrap();
        self.outputs.extend(std::iter::from_fn(|| self.engine.poll_output()));
    }

    fn outcome(&self, call: u64) -> Option<&Outcome> {
        self.outputs.iter().find_map(|o| match o {
            Output::CallFinished { call: c, outcome } if c.0 == call => Some(outcome),
            _ => None,
        })
    }

    fn rung(&self, call: u64, agent: &str) -> bool {
        self.outputs.iter().any(|o| {
            matches!(o, Output::RingAgent { call: c, agent: a } if c.0 == call && a.as_str() == agent)
        })
    }
}

#[test]
fn the_agent_wraps_up_and_the_caller_waits_first_in_line_rung_for_nobody() {
    let mut b = Bench::new();
    b.input(Input::TransferStarted { call: CallId(1), agent: AgentId::new("a") });
    assert!(matches!(b.engine.agent_state(&AgentId::new("a")), Some(AgentState::WrapUp { .. })));
    assert!(
        b.outputs.contains(&Output::StartHold { call: CallId(1) }),
        "hold audio while it rings"
    );
    let order: Vec<CallId> = b.engine.queued().map(|q| q.0).collect();
    assert_eq!(order, [CallId(1), CallId(2)], "the transferred caller is first in line");
    // `b` comes back while the target rings: it takes call 2, not the caller being transferred.
    b.input(Input::AgentResumed { agent: AgentId::new("b") });
    assert!(!b.rung(1, "b"));
    assert!(b.rung(2, "b"));
    b.t += 5 * S;
    b.input(Input::TransferAnswered { call: CallId(1) });
    assert_eq!(
        b.outcome(1),
        Some(&Outcome::Transferred {
            agent: AgentId::new("a"),
            wait: Duration::ZERO,
            talk: 10 * S
        })
    );
}

#[test]
fn a_failed_transfer_gives_the_caller_to_the_next_free_agent_at_once() {
    let mut b = Bench::new();
    b.input(Input::TransferStarted { call: CallId(1), agent: AgentId::new("a") });
    b.input(Input::AgentResumed { agent: AgentId::new("b") });
    assert!(b.rung(2, "b"), "b took call 2 meanwhile");
    b.input(Input::AgentRejected {
        call: CallId(2),
        agent: AgentId::new("b"),
        reason: tongdai::acd::RejectReason::Busy,
    });
    b.t += 6 * S;
    b.input(Input::TransferFailed { call: CallId(1) });
    assert!(b.outcome(1).is_none(), "the caller is not dropped");
    b.t += 10 * S;
    b.engine.handle_timeout(b.t);
    b.outputs.extend(std::iter::from_fn(|| b.engine.poll_output()));
    assert!(b.rung(1, "b"), "first in line, the caller goes to the next free agent");
}

#[test]
fn a_caller_hanging_up_during_the_transfer_ends_an_answered_call() {
    let mut b = Bench::new();
    b.input(Input::TransferStarted { call: CallId(1), agent: AgentId::new("a") });
    b.input(Input::CallerHungUp { call: CallId(1) });
    assert!(matches!(b.outcome(1), Some(Outcome::Answered { agent, .. }) if agent.as_str() == "a"));
}

#[test]
fn transfer_inputs_out_of_place_are_refused_and_change_nothing() {
    let mut b = Bench::new();
    let t = b.t;
    let wrong_agent = Input::TransferStarted { call: CallId(1), agent: AgentId::new("b") };
    assert_eq!(b.engine.handle(t, wrong_agent), Err(InputError::NotBridged { call: CallId(1) }));
    let queued = Input::TransferStarted { call: CallId(2), agent: AgentId::new("a") };
    assert_eq!(b.engine.handle(t, queued), Err(InputError::NotBridged { call: CallId(2) }));
    let answered = Input::TransferAnswered { call: CallId(1) };
    assert_eq!(b.engine.handle(t, answered), Err(InputError::NotTransferring { call: CallId(1) }));
    let failed = Input::TransferFailed { call: CallId(2) };
    assert_eq!(b.engine.handle(t, failed), Err(InputError::NotTransferring { call: CallId(2) }));
    b.engine.check_invariants().unwrap();
    assert!(matches!(b.engine.agent_state(&AgentId::new("a")), Some(AgentState::OnCall { .. })));
}
