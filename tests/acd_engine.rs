//! The ACD engine in a synchronous simulator: scripted agents and callers around the sans-IO core,
//! on virtual time. Every step is followed by `check_invariants()`, and every offered call must end
//! with exactly one `CallFinished`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use tongdai::acd::{
    AbandonPhase, AgentId, AgentState, CallId, EndedBy, Engine, EngineConfig, Input, Lane, Outcome,
    Output, PauseReason, RefuseReason, RejectReason, Strategy,
};

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// A tiny seeded PRNG (SplitMix64): reproducible runs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + (hi - lo).mul_f64(self.unit())
    }
    /// Log-uniform in [lo, hi): most calls short, a few long.
    fn log_between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let ratio = hi.as_secs_f64() / lo.as_secs_f64();
        lo.mul_f64(ratio.powf(self.unit()))
    }
    /// Exponential with the given mean (Poisson arrivals).
    fn exp(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(-(1.0 - self.unit()).ln())
    }
}

/// How a scripted agent's phone behaves when rung.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Answers after `after`, talks for `talk`, then `by` hangs up.
    Answer { after: Duration, talk: Duration, by: EndedBy },
    /// Rings until cancelled.
    Never,
    /// Answers after `after`, and the leg dies after `talk` (no RTP).
    DeadLeg { after: Duration, talk: Duration },
    /// Refuses after `after`.
    Reject { after: Duration, reason: RejectReason },
    /// Draws a behaviour from the simulator's PRNG on each ring.
    Random,
}

/// What a scheduled input belongs to, so outputs can withdraw it (a CANCEL stops an answer, a
/// hang-up stops the talk timer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Tag {
    Phone(CallId, AgentId),
    Talk(CallId),
    Caller(CallId),
    Other(u64),
}

struct Sim {
    engine: Engine,
    now: Instant,
    t0: Instant,
    scripts: HashMap<AgentId, Script>,
    events: BTreeMap<(Instant, u64), (Tag, Input)>,
    tags: HashMap<Tag, (Instant, u64)>,
    seq: u64,
    rng: Rng,
    /// Talk time and who hangs up, decided at answer time, applied at Bridge.
    talk: HashMap<(CallId, AgentId), (Duration, Option<EndedBy>)>,
    log: Vec<(Duration, Output)>,
    offered: HashSet<CallId>,
    outcomes: HashMap<CallId, Outcome>,
    announced: HashMap<CallId, u32>,
    steps: u64,
    /// Talk times uniform in 2-20 minutes (mean 11) instead of log-uniform (mean 7.8).
    uniform_talk: bool,
}

impl Sim {
    fn new(config: EngineConfig, agents: &[(&str, Script)]) -> Sim {
        let ids = agents.iter().map(|(id, _)| AgentId::new(id));
        let now = Instant::now();
        let mut sim = Sim {
            engine: Engine::new(config, ids),
            now,
            t0: now,
            scripts: agents.iter().map(|(id, s)| (AgentId::new(id), *s)).collect(),
            events: BTreeMap::new(),
            tags: HashMap::new(),
            seq: 0,
            rng: Rng(0x111),
            talk: HashMap::new(),
            log: Vec::new(),
            offered: HashSet::new(),
            outcomes: HashMap::new(),
            announced: HashMap::new(),
            steps: 0,
            uniform_talk: false,
        };
        for (id, _) in agents {
            sim.input(Input::AgentLoggedIn { agent: AgentId::new(id) });
        }
        sim
    }

    fn t(&self) -> Duration {
        self.now - self.t0
    }

    /// Applies an input now; the engine must accept it.
    fn input(&mut self, input: Input) {
        if let Input::CallOffered { call, .. } = &input {
            assert!(self.offered.insert(*call), "{call} offered twice");
        }
        let copy = input.clone();
        if let Err(e) = self.engine.handle(self.now, input) {
            panic!("{copy:?}: {e}");
        }
        self.after_step();
    }

    /// Schedules `input` `after` from now.
    fn at(&mut self, after: Duration, tag: Tag, input: Input) {
        self.seq += 1;
        let key = (self.now + after, self.seq);
        if let Some(old) = self.tags.insert(tag.clone(), key) {
            self.events.remove(&old);
        }
        self.events.insert(key, (tag, input));
    }

    fn later(&mut self, after: Duration, input: Input) {
        let tag = Tag::Other(self.seq);
        self.at(after, tag, input);
    }

    fn withdraw(&mut self, tag: &Tag) {
        if let Some(key) = self.tags.remove(tag) {
            self.events.remove(&key);
        }
    }

    /// A caller: offered now, prompt for `prompt`, hangs up after `patience` if not answered.
    fn call(&mut self, call: u64, lane: Lane, prompt: Duration, patience: Option<Duration>) {
        let call = CallId(call);
        self.input(Input::CallOffered { call, lane, province: None, may_overflow: true });
        if self.outcomes.contains_key(&call) {
            return;
        }
        self.at(prompt, Tag::Other(u64::MAX - call.0), Input::PromptFinished { call });
        if let Some(p) = patience {
            self.at(p, Tag::Caller(call), Input::CallerHungUp { call });
        }
    }

    fn after_step(&mut self) {
        self.steps += 1;
        if std::env::var_os("NOCHECK").is_none()
            && let Err(e) = self.engine.check_invariants()
        {
            panic!("at {:?} after step {}: {e}\n{:#?}", self.t(), self.steps, self.engine);
        }
        while let Some(out) = self.engine.poll_output() {
            self.react(&out);
            self.log.push((self.t(), out));
        }
    }

    /// The scripted world answers the engine's outputs.
    fn react(&mut self, out: &Output) {
        match out {
            Output::RingAgent { call, agent } => {
                let script = match self.scripts[agent] {
                    Script::Random => self.random_script(),
                    s => s,
                };
                let tag = Tag::Phone(*call, agent.clone());
                let (call, agent) = (*call, agent.clone());
                match script {
                    Script::Answer { after, talk, by } => {
                        self.talk.insert((call, agent.clone()), (talk, Some(by)));
                        self.at(after, tag, Input::AgentAnswered { call, agent });
                    }
                    Script::DeadLeg { after, talk } => {
                        self.talk.insert((call, agent.clone()), (talk, None));
                        self.at(after, tag, Input::AgentAnswered { call, agent });
                    }
                    Script::Reject { after, reason } => {
                        self.at(after, tag, Input::AgentRejected { call, agent, reason });
                    }
                    Script::Never | Script::Random => {}
                }
            }
            Output::CancelRing { call, agent } => {
                self.withdraw(&Tag::Phone(*call, agent.clone()));
            }
            Output::Bridge { call, agent } => {
                self.withdraw(&Tag::Caller(*call));
                let (talk, by) = self
                    .talk
                    .remove(&(*call, agent.clone()))
                    .unwrap_or((S * 60, Some(EndedBy::Caller)));
                let input = match by {
                    Some(by) => Input::CallEnded { call: *call, by },
                    None => Input::AgentLegFailed { call: *call, agent: agent.clone() },
                };
                self.at(talk, Tag::Talk(*call), input);
            }
            Output::HangUpAgent { call, .. } | Output::HangUpCaller { call } => {
                self.withdraw(&Tag::Talk(*call));
            }
            Output::AnnouncePosition { call, position } => {
                let last = self.announced.insert(*call, *position);
                assert!(last.is_none_or(|l| *position <= l), "{call} position went up");
            }
            Output::CallFinished { call, outcome } => {
                assert!(self.offered.contains(call), "{call} finished but never offered");
                let old = self.outcomes.insert(*call, outcome.clone());
                assert!(old.is_none(), "{call} finished twice: {old:?} then {outcome:?}");
                self.withdraw(&Tag::Caller(*call));
                self.withdraw(&Tag::Talk(*call));
                self.withdraw(&Tag::Other(u64::MAX - call.0));
            }
            Output::Overflow { call, .. } => panic!("{call} overflowed with overflow off"),
            Output::StartHold { .. } | Output::Refuse { .. } | Output::AgentState { .. } => {}
        }
    }

    /// Hotline-like agent behaviour: mostly answers within a few seconds, sometimes too late,
    /// sometimes busy, rarely never; talks 2-20 minutes; 1% of bridged legs die.
    fn random_script(&mut self) -> Script {
        let r = self.rng.unit();
        let talk = if self.uniform_talk {
            self.rng.between(S * 120, S * 1200)
        } else {
            self.rng.log_between(S * 120, S * 1200)
        };
        let by = if self.rng.unit() < 0.5 { EndedBy::Caller } else { EndedBy::Agent };
        if r < 0.85 {
            let after = self.rng.between(S * 2, S * 10);
            if self.rng.unit() < 0.01 {
                return Script::DeadLeg { after, talk };
            }
            Script::Answer { after, talk, by }
        } else if r < 0.90 {
            Script::Answer { after: S * 20, talk, by }
        } else if r < 0.95 {
            Script::Reject { after: S, reason: RejectReason::Busy }
        } else {
            Script::Never
        }
    }

    /// Runs until virtual time `until` (from the start), delivering events and timers in order.
    fn run_until(&mut self, until: Duration) {
        let end = self.t0 + until;
        loop {
            let event = self.events.keys().next().map(|k| k.0);
            let timer = self.engine.poll_timeout();
            let next = match (event, timer) {
                (Some(e), Some(t)) => e.min(t),
                (Some(e), None) => e,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            assert!(next >= self.now, "time went backwards");
            self.now = next;
            if event == Some(next) {
                let Some((_, (tag, input))) = self.events.pop_first() else { unreachable!() };
                self.tags.remove(&tag);
                self.input(input);
            } else {
                self.engine.handle_timeout(self.now);
                self.after_step();
            }
        }
        self.now = self.now.max(end);
    }

    fn run(&mut self, more: Duration) {
        let until = self.t() + more;
        self.run_until(until);
    }

    fn outputs(&self) -> impl Iterator<Item = &Output> {
        self.log.iter().map(|(_, o)| o)
    }

    fn rings(&self) -> Vec<(u64, String)> {
        self.outputs()
            .filter_map(|o| match o {
                Output::RingAgent { call, agent } => Some((call.0, agent.to_string())),
                _ => None,
            })
            .collect()
    }

    fn count(&self, f: impl Fn(&Output) -> bool) -> usize {
        self.outputs().filter(|o| f(o)).count()
    }

    fn state(&self, agent: &str) -> AgentState {
        self.engine.agent_state(&AgentId::new(agent)).unwrap()
    }
}

fn answers(after: Duration, talk: Duration) -> Script {
    Script::Answer { after, talk, by: EndedBy::Caller }
}

fn config(strategy: Strategy) -> EngineConfig {
    EngineConfig { strategy, ..EngineConfig::default() }
}

#[test]
fn basic_flow_rings_bridges_and_wraps_up() {
    let mut sim = Sim::new(EngineConfig::default(), &[("an", answers(3 * S, 60 * S))]);
    assert_eq!(sim.state("an"), AgentState::Available);
    sim.call(1, Lane::Normal, 10 * S, None);
    sim.run(200 * S);
    let kinds: Vec<&str> = sim
        .outputs()
        .filter_map(|o| match o {
            Output::StartHold { .. } => Some("hold"),
            Output::RingAgent { .. } => Some("ring"),
            Output::Bridge { .. } => Some("bridge"),
            Output::HangUpAgent { .. } => Some("hangup-agent"),
            Output::CallFinished { .. } => Some("finished"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["hold", "ring", "bridge", "hangup-agent", "finished"]);
    assert_eq!(
        sim.outcomes[&CallId(1)],
        Outcome::Answered { agent: AgentId::new("an"), wait: 3 * S, talk: 60 * S }
    );
    let states: Vec<(Duration, &str)> = sim
        .log
        .iter()
        .filter_map(|(t, o)| match o {
            Output::AgentState { state, .. } => Some((*t, state.label())),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            (Duration::ZERO, "available"),
            (10 * S, "ringing"),
            (13 * S, "on_call"),
            (73 * S, "wrap_up"),
            (103 * S, "available")
        ]
    );
    assert_eq!(sim.engine.poll_timeout(), None, "nothing left to time");
}

#[test]
fn prompt_timeout_queues_a_caller_whose_prompt_end_was_never_reported() {
    let mut sim = Sim::new(EngineConfig::default(), &[("an", answers(S, S))]);
    sim.input(Input::CallOffered {
        call: CallId(1),
        lane: Lane::Normal,
        province: None,
        may_overflow: true,
    });
    sim.run(59 * S);
    assert!(sim.rings().is_empty());
    sim.run(2 * S);
    assert_eq!(sim.rings(), [(1, "an".into())]);
}

#[test]
fn ring_timeout_cancels_and_tries_the_next_agent_while_the_caller_keeps_their_place() {
    let agents = [("deaf", Script::Never), ("ok", answers(2 * S, 30 * S))];
    let mut sim = Sim::new(config(Strategy::Linear), &agents);
    sim.call(1, Lane::Normal, S, None);
    sim.call(2, Lane::Normal, 2 * S, None);
    sim.run(15 * S);
    // Call 1 rings `deaf`; call 2 gets `ok` meanwhile (a free agent never waits).
    assert_eq!(sim.rings(), [(1, "deaf".into()), (2, "ok".into())]);
    sim.run(2 * S);
    assert!(sim.outputs().any(|o| matches!(o,
        Output::CancelRing { call: CallId(1), agent } if agent.as_str() == "deaf")));
    assert_eq!(sim.rings().len(), 2, "not rung again within retry_delay");
    sim.run(5 * S);
    // `deaf` may be rung again and call 1 (still first) is retried.
    assert_eq!(sim.rings()[2], (1, "deaf".into()));
    sim.run(15 * S);
    // Second miss: paused with `no_answer`.
    assert_eq!(sim.state("deaf"), AgentState::Paused { reason: PauseReason::NoAnswer });
    sim.run(200 * S);
    assert!(
        matches!(&sim.outcomes[&CallId(1)], Outcome::Answered { agent, .. } if agent.as_str() == "ok")
    );
    assert_eq!(sim.outcomes.len(), 2);
}

#[test]
fn six_agents_never_get_more_than_three_lines() {
    let agents: Vec<(String, Script)> =
        (0..6).map(|i| (format!("a{i}"), answers(S, 600 * S))).collect();
    let agents: Vec<(&str, Script)> = agents.iter().map(|(a, s)| (a.as_str(), *s)).collect();
    let mut sim = Sim::new(EngineConfig::default(), &agents);
    for call in 1..=6 {
        sim.call(call, Lane::Normal, S, None);
    }
    sim.run(60 * S);
    assert_eq!(sim.engine.lines_busy(), 3);
    assert_eq!(sim.engine.waiting(), 3);
    assert_eq!(sim.count(|o| matches!(o, Output::Bridge { .. })), 3);
    let on_call = sim.engine.agents().filter(|(_, s)| matches!(s, AgentState::OnCall { .. }));
    assert_eq!(on_call.count(), 3);
    // When the first three end, the waiting three go to the three agents who were idle longest.
    sim.run(600 * S);
    assert_eq!(sim.count(|o| matches!(o, Output::Bridge { .. })), 6);
    let second: HashSet<String> = sim.rings()[3..].iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(second, ["a3", "a4", "a5"].map(String::from).into());
    sim.run(1200 * S);
    assert_eq!(sim.outcomes.len(), 6);
}

#[test]
fn wrap_up_delays_the_next_call_and_can_end_early() {
    let mut sim = Sim::new(EngineConfig::default(), &[("an", answers(S, 10 * S))]);
    sim.call(1, Lane::Normal, S, None);
    sim.run(13 * S);
    sim.call(2, Lane::Normal, S, None);
    sim.run(5 * S);
    assert!(matches!(sim.state("an"), AgentState::WrapUp { .. }));
    assert_eq!(sim.rings().len(), 1);
    sim.run(30 * S);
    assert_eq!(sim.rings().len(), 2, "rung when wrap-up ended");
    sim.run(13 * S);
    assert!(matches!(sim.state("an"), AgentState::WrapUp { .. }));
    sim.input(Input::EndWrapUp { agent: AgentId::new("an") });
    assert_eq!(sim.state("an"), AgentState::Available);
}

#[test]
fn misses_auto_pause_and_auto_resume() {
    let cfg = EngineConfig { auto_resume: Some(300 * S), ..EngineConfig::default() };
    let agents = [("busy", Script::Reject { after: S, reason: RejectReason::Busy })];
    let mut sim = Sim::new(cfg, &agents);
    sim.call(1, Lane::Normal, S, Some(200 * S));
    sim.run(10 * S);
    // Busy twice in a row (retried at once: nobody else), then paused.
    assert_eq!(sim.rings().len(), 2);
    assert_eq!(sim.state("busy"), AgentState::Paused { reason: PauseReason::NoAnswer });
    sim.run(100 * S);
    assert_eq!(sim.rings().len(), 2);
    sim.run(250 * S);
    assert_eq!(
        sim.outcomes[&CallId(1)],
        Outcome::Abandoned { phase: AbandonPhase::Queue, wait: 199 * S }
    );
    // Resumed by itself 300 s after the pause.
    assert_eq!(sim.state("busy"), AgentState::Available);
}

#[test]
fn a_manual_resume_clears_the_miss_count() {
    let mut sim = Sim::new(EngineConfig::default(), &[("deaf", Script::Never)]);
    sim.call(1, Lane::Normal, S, None);
    sim.run(40 * S);
    assert_eq!(sim.state("deaf"), AgentState::Paused { reason: PauseReason::NoAnswer });
    sim.input(Input::AgentResumed { agent: AgentId::new("deaf") });
    assert_eq!(sim.state("deaf"), AgentState::Ringing { call: CallId(1) });
    sim.run(16 * S);
    assert_eq!(sim.state("deaf"), AgentState::Available, "one miss only: not paused");
    sim.run(5 * S);
    assert_eq!(sim.state("deaf"), AgentState::Ringing { call: CallId(1) });
    sim.input(Input::CallerHungUp { call: CallId(1) });
    sim.input(Input::AgentPaused { agent: AgentId::new("deaf"), reason: PauseReason::Agent });
    assert_eq!(sim.state("deaf"), AgentState::Paused { reason: PauseReason::Agent });
}

#[test]
fn an_agent_who_refuses_at_once_is_not_rung_in_a_loop() {
    let cfg = EngineConfig { max_misses: 0, ..EngineConfig::default() };
    let agents =
        [("nope", Script::Reject { after: Duration::ZERO, reason: RejectReason::NotFound })];
    let mut sim = Sim::new(cfg, &agents);
    sim.call(1, Lane::Normal, S, Some(60 * S));
    sim.run(100 * S);
    // Rung at 1 s, then every retry_delay (5 s) until the caller leaves at 60 s.
    assert_eq!(sim.rings().len(), 12);
    assert!(matches!(
        sim.outcomes[&CallId(1)],
        Outcome::Abandoned { phase: AbandonPhase::Queue, .. }
    ));
}

#[test]
fn a_retransmitted_answer_does_not_hang_up_the_bridged_agent() {
    let mut sim = Sim::new(EngineConfig::default(), &[("an", answers(S, 100 * S))]);
    sim.call(1, Lane::Normal, S, None);
    sim.run(5 * S);
    sim.input(Input::AgentAnswered { call: CallId(1), agent: AgentId::new("an") });
    assert!(!sim.outputs().any(|o| matches!(o, Output::HangUpAgent { .. })));
    assert_eq!(sim.state("an"), AgentState::OnCall { call: CallId(1) });
}

#[test]
fn caller_hangs_up_in_each_phase() {
    let mut sim = Sim::new(EngineConfig::default(), &[("slow", answers(10 * S, 100 * S))]);
    // During the prompt.
    sim.call(1, Lane::Normal, 10 * S, Some(5 * S));
    sim.run(6 * S);
    assert!(matches!(
        sim.outcomes[&CallId(1)],
        Outcome::Abandoned { phase: AbandonPhase::Prompt, .. }
    ));
    // While ringing: the ring is cancelled, no miss counted.
    sim.call(2, Lane::Normal, S, Some(5 * S));
    // In the queue behind call 2 (no line free for it: one agent).
    sim.call(3, Lane::Normal, S, Some(4 * S));
    sim.run(6 * S);
    assert!(matches!(
        sim.outcomes[&CallId(2)],
        Outcome::Abandoned { phase: AbandonPhase::Ringing, .. }
    ));
    assert!(matches!(
        sim.outcomes[&CallId(3)],
        Outcome::Abandoned { phase: AbandonPhase::Queue, .. }
    ));
    assert!(sim.outputs().any(|o| matches!(o, Output::CancelRing { call: CallId(2), .. })));
    assert_eq!(sim.state("slow"), AgentState::Available);
    // While bridged: the agent's leg is hung up and the call counts as answered.
    sim.call(4, Lane::Normal, S, None);
    sim.run(20 * S);
    sim.input(Input::CallerHungUp { call: CallId(4) });
    assert!(sim.outputs().any(|o| matches!(o, Output::HangUpAgent { call: CallId(4), .. })));
    assert!(matches!(sim.outcomes[&CallId(4)], Outcome::Answered { .. }));
    assert!(matches!(sim.state("slow"), AgentState::WrapUp { .. }));
}

#[test]
fn the_agent_hanging_up_first_hangs_up_the_caller() {
    let script = Script::Answer { after: S, talk: 30 * S, by: EndedBy::Agent };
    let mut sim = Sim::new(EngineConfig::default(), &[("an", script)]);
    sim.call(1, Lane::Normal, S, None);
    sim.run(40 * S);
    assert!(sim.outputs().any(|o| matches!(o, Output::HangUpCaller { call: CallId(1) })));
    assert!(!sim.outputs().any(|o| matches!(o, Output::HangUpAgent { .. })));
}

#[test]
fn a_failed_agent_leg_returns_the_caller_to_the_front() {
    let agents =
        [("a1", answers(S, 1000 * S)), ("a2", answers(S, 1000 * S)), ("a3", answers(S, 1000 * S))];
    let cfg = EngineConfig { lines: NonZeroU32::new(2).unwrap(), ..config(Strategy::Linear) };
    let mut sim = Sim::new(cfg, &agents);
    sim.call(1, Lane::Normal, S, None);
    sim.call(2, Lane::Normal, S, None);
    sim.run(5 * S);
    sim.call(3, Lane::Normal, S, None);
    sim.run(60 * S);
    assert_eq!(sim.engine.waiting(), 1);
    sim.input(Input::AgentLegFailed { call: CallId(1), agent: AgentId::new("a1") });
    assert!(sim.outputs().any(|o| matches!(o,
        Output::HangUpAgent { call: CallId(1), agent } if agent.as_str() == "a1")));
    // Back at the front, ahead of call 3, and the freed line goes to it: a3 (a1 is wrapping up).
    assert_eq!(sim.rings().last(), Some(&(1, "a3".to_string())));
    assert_eq!(sim.engine.queued().next().map(|q| q.0), Some(CallId(1)));
    sim.run(2000 * S);
    assert!(matches!(&sim.outcomes[&CallId(1)],
        Outcome::Answered { agent, talk, .. } if agent.as_str() == "a3" && *talk > 1000 * S));
    assert_eq!(sim.outcomes.len(), 3);
}

#[test]
fn ring_all_two_answers_within_a_millisecond_bridge_exactly_one() {
    let agents = ["x", "y", "z"].map(AgentId::new);
    let mut engine = Engine::new(config(Strategy::RingAll), agents.clone());
    let t = Instant::now();
    for agent in &agents {
        engine.handle(t, Input::AgentLoggedIn { agent: agent.clone() }).unwrap();
    }
    let call = CallId(7);
    engine
        .handle(
            t,
            Input::CallOffered { call, lane: Lane::Normal, province: None, may_overflow: true },
        )
        .unwrap();
    engine.handle(t, Input::PromptFinished { call }).unwrap();
    let drain = |e: &mut Engine| std::iter::from_fn(|| e.poll_output()).collect::<Vec<_>>();
    let out = drain(&mut engine);
    assert_eq!(out.iter().filter(|o| matches!(o, Output::RingAgent { .. })).count(), 3);
    engine.check_invariants().unwrap();
    let t1 = t + 5 * S;
    engine.handle(t1, Input::AgentAnswered { call, agent: agents[1].clone() }).unwrap();
    engine.check_invariants().unwrap();
    engine.handle(t1 + MS, Input::AgentAnswered { call, agent: agents[0].clone() }).unwrap();
    engine.check_invariants().unwrap();
    let out = drain(&mut engine);
    let bridges: Vec<_> = out.iter().filter(|o| matches!(o, Output::Bridge { .. })).collect();
    assert_eq!(bridges, [&Output::Bridge { call, agent: agents[1].clone() }]);
    for loser in [&agents[0], &agents[2]] {
        assert!(out.contains(&Output::CancelRing { call, agent: loser.clone() }));
    }
    // The crossed 200 from x is ended with ACK+BYE.
    assert!(out.contains(&Output::HangUpAgent { call, agent: agents[0].clone() }));
    assert_eq!(engine.agent_state(&agents[0]), Some(AgentState::Available));
    assert_eq!(engine.agent_state(&agents[1]), Some(AgentState::OnCall { call }));
}

#[test]
fn a_cancelled_agent_waits_retry_delay_before_the_next_ring() {
    // Ring-all loser: its 2xx may be crossing our CANCEL, its phone busy until that leg is torn
    // down; the next waiting caller must not ring it at once.
    let agents = ["x", "y"].map(AgentId::new);
    let mut engine = Engine::new(config(Strategy::RingAll), agents.clone());
    let t = Instant::now();
    for agent in &agents {
        engine.handle(t, Input::AgentLoggedIn { agent: agent.clone() }).unwrap();
    }
    for call in [CallId(7), CallId(8)] {
        engine
            .handle(
                t,
                Input::CallOffered { call, lane: Lane::Normal, province: None, may_overflow: true },
            )
            .unwrap();
        engine.handle(t, Input::PromptFinished { call }).unwrap();
    }
    let drain = |e: &mut Engine| std::iter::from_fn(|| e.poll_output()).collect::<Vec<_>>();
    drain(&mut engine);
    let t1 = t + 3 * S;
    engine.handle(t1, Input::AgentAnswered { call: CallId(7), agent: agents[1].clone() }).unwrap();
    let out = drain(&mut engine);
    assert!(out.contains(&Output::CancelRing { call: CallId(7), agent: agents[0].clone() }));
    assert!(!out.iter().any(|o| matches!(o, Output::RingAgent { .. })), "{out:?}");
    assert_eq!(engine.agent_state(&agents[0]), Some(AgentState::Available), "no miss, no pause");
    engine.check_invariants().unwrap();
    let retry = engine.config().retry_delay;
    assert_eq!(engine.poll_timeout(), Some(t1 + retry));
    engine.handle_timeout(t1 + retry);
    let out = drain(&mut engine);
    let ring = Output::RingAgent { call: CallId(8), agent: agents[0].clone() };
    assert!(out.contains(&ring), "{out:?}");
    engine.check_invariants().unwrap();
}

#[test]
fn ring_all_respects_the_line_cap_and_a_timeout_counts_a_miss_for_each() {
    let agents: Vec<(String, Script)> = (0..5).map(|i| (format!("r{i}"), Script::Never)).collect();
    let agents: Vec<(&str, Script)> = agents.iter().map(|(a, s)| (a.as_str(), *s)).collect();
    let cfg = EngineConfig { max_misses: 1, ..config(Strategy::RingAll) };
    let mut sim = Sim::new(cfg, &agents);
    sim.call(1, Lane::Normal, S, Some(40 * S));
    sim.run(2 * S);
    assert_eq!(sim.rings().len(), 3, "three lines");
    sim.run(15 * S);
    // The three missed (paused at once with max_misses 1); the other two ring now.
    assert_eq!(sim.rings().len(), 5);
    let paused = sim.engine.agents().filter(|(_, s)| matches!(s, AgentState::Paused { .. }));
    assert_eq!(paused.count(), 3);
    sim.run(60 * S);
    assert_eq!(sim.outcomes.len(), 1);
}

#[test]
fn urgent_callers_are_served_first_and_positions_never_go_up() {
    let mut sim = Sim::new(EngineConfig::default(), &[("an", answers(S, 100 * S))]);
    sim.input(Input::AgentPaused { agent: AgentId::new("an"), reason: PauseReason::Agent });
    sim.call(1, Lane::Normal, S, None);
    sim.call(2, Lane::Normal, S, None);
    sim.call(3, Lane::Normal, 5 * S, None);
    sim.run(2 * S);
    sim.input(Input::MenuChoice { call: CallId(3), urgent: true });
    sim.run(60 * S);
    let order: Vec<u64> = sim.engine.queued().map(|(c, _, _)| c.0).collect();
    assert_eq!(order, [3, 1, 2]);
    // Call 2 heard "2" at entry; later it is third, but it never hears a larger number.
    assert_eq!(sim.announced[&CallId(2)], 2);
    assert_eq!(sim.announced[&CallId(3)], 1);
    sim.input(Input::AgentResumed { agent: AgentId::new("an") });
    assert_eq!(sim.rings(), [(3, "an".into())]);
    sim.run(1000 * S);
    let rung: Vec<u64> = sim.rings().iter().map(|r| r.0).collect();
    assert_eq!(rung, [3, 1, 2]);
}

#[test]
fn a_full_queue_refuses_the_next_caller() {
    let cfg = EngineConfig { max_queue: 2, ..EngineConfig::default() };
    let mut sim = Sim::new(cfg, &[]);
    sim.call(1, Lane::Normal, S, None);
    sim.call(2, Lane::Normal, S, None);
    sim.call(3, Lane::Urgent, S, None);
    assert!(
        sim.outputs().any(|o| matches!(
            o,
            Output::Refuse { call: CallId(3), reason: RefuseReason::QueueFull }
        ))
    );
    assert_eq!(sim.outcomes[&CallId(3)], Outcome::Rejected { reason: RefuseReason::QueueFull });
    assert_eq!(sim.engine.calls_in_progress(), 2);
    assert!(sim.engine.handle(sim.now, Input::PromptFinished { call: CallId(3) }).is_err());
}

#[test]
fn logout_or_shift_end_while_ringing_cancels_and_tries_the_next_agent() {
    let agents = [("a", Script::Never), ("b", Script::Never), ("c", answers(S, 10 * S))];
    let mut sim = Sim::new(config(Strategy::Linear), &agents);
    sim.call(1, Lane::Normal, S, None);
    sim.run(2 * S);
    sim.input(Input::AgentLoggedOut { agent: AgentId::new("a") });
    assert_eq!(sim.rings(), [(1, "a".into()), (1, "b".into())]);
    sim.input(Input::AgentOnShift { agent: AgentId::new("b"), on_shift: false });
    assert_eq!(sim.rings()[2], (1, "c".into()));
    assert_eq!(sim.state("a"), AgentState::LoggedOut);
    assert_eq!(sim.state("b"), AgentState::LoggedOut);
    sim.run(60 * S);
    assert!(matches!(sim.outcomes[&CallId(1)], Outcome::Answered { .. }));
    // Leaving was not a miss: back on shift, b is offered calls.
    sim.input(Input::AgentOnShift { agent: AgentId::new("b"), on_shift: true });
    assert_eq!(sim.state("b"), AgentState::Available);
}

#[test]
fn pausing_a_ringing_agent_moves_the_call_on() {
    let agents = [("a", Script::Never), ("b", answers(S, 10 * S))];
    let mut sim = Sim::new(config(Strategy::Linear), &agents);
    sim.call(1, Lane::Normal, S, None);
    sim.run(2 * S);
    let reason = PauseReason::Supervisor;
    sim.input(Input::AgentPaused { agent: AgentId::new("a"), reason });
    assert_eq!(sim.rings(), [(1, "a".into()), (1, "b".into())]);
    assert_eq!(sim.state("a"), AgentState::Paused { reason });
    sim.run(60 * S);
    assert!(
        matches!(&sim.outcomes[&CallId(1)], Outcome::Answered { agent, .. } if agent.as_str() == "b")
    );
}

#[test]
fn a_shift_end_or_logout_never_cuts_a_call() {
    let mut sim = Sim::new(EngineConfig::default(), &[("an", answers(S, 100 * S))]);
    sim.call(1, Lane::Normal, S, None);
    sim.run(10 * S);
    sim.input(Input::AgentOnShift { agent: AgentId::new("an"), on_shift: false });
    assert_eq!(sim.state("an"), AgentState::OnCall { call: CallId(1) });
    sim.run(200 * S);
    assert!(matches!(sim.outcomes[&CallId(1)], Outcome::Answered { .. }));
    assert_eq!(sim.state("an"), AgentState::LoggedOut);
}

#[test]
fn round_robin_and_fewest_calls_spread_the_calls() {
    for strategy in [Strategy::RoundRobin, Strategy::FewestCalls, Strategy::LeastTalkTime] {
        let agents =
            [("p", answers(S, 10 * S)), ("q", answers(S, 10 * S)), ("r", answers(S, 10 * S))];
        let cfg = EngineConfig { wrap_up: Duration::ZERO, ..config(strategy) };
        let mut sim = Sim::new(cfg, &agents);
        for call in 0..6 {
            sim.call(call, Lane::Normal, S, None);
            sim.run(60 * S);
        }
        let who: Vec<String> = sim.rings().into_iter().map(|(_, a)| a).collect();
        assert_eq!(who, ["p", "q", "r", "p", "q", "r"], "{strategy}");
    }
}

#[test]
fn a_reload_removes_agents_without_cutting_calls_and_lowers_the_cap_gently() {
    let agents = [("a", answers(S, 100 * S)), ("b", answers(S, 100 * S)), ("c", Script::Never)];
    let mut sim = Sim::new(config(Strategy::Linear), &agents);
    for call in 1..=3 {
        sim.call(call, Lane::Normal, S, None);
    }
    sim.run(5 * S);
    assert_eq!(sim.engine.lines_busy(), 3);
    let cfg = EngineConfig { lines: NonZeroU32::MIN, ..config(Strategy::Linear) };
    let ids = vec![AgentId::new("b"), AgentId::new("c"), AgentId::new("d")];
    sim.input(Input::ConfigChanged { config: cfg, agents: ids });
    // `a` keeps its call; `c` is still configured and keeps ringing; `d` is new and logged out.
    assert_eq!(sim.state("a"), AgentState::OnCall { call: CallId(1) });
    assert_eq!(sim.state("d"), AgentState::LoggedOut);
    assert_eq!(sim.engine.lines_busy(), 3);
    sim.run(200 * S);
    assert!(sim.engine.agent_state(&AgentId::new("a")).is_none(), "forgotten after its call");
    assert!(matches!(sim.outcomes[&CallId(1)], Outcome::Answered { .. }));
    assert!(sim.engine.lines_busy() <= 1);
}

#[test]
fn the_builtin_configuration_builds_an_engine() {
    let config = tongdai::config::Config::builtin().unwrap();
    let engine = Engine::from_config(&config);
    assert_eq!(engine.config().lines, config.centre.lines);
    assert_eq!(engine.agents().count(), config.agents.len());
    assert!(engine.agents().all(|(_, s)| s == AgentState::LoggedOut));
}

#[test]
fn a_reload_that_raises_the_cap_rings_the_waiting_callers() {
    let agents = [("a", answers(S, 100 * S)), ("b", answers(S, 100 * S))];
    let one = EngineConfig { lines: NonZeroU32::MIN, ..EngineConfig::default() };
    let mut sim = Sim::new(one.clone(), &agents);
    sim.call(1, Lane::Normal, S, None);
    sim.call(2, Lane::Normal, S, None);
    sim.run(5 * S);
    assert_eq!((sim.engine.lines_busy(), sim.engine.waiting()), (1, 1));
    let two = EngineConfig { lines: NonZeroU32::new(2).unwrap(), ..one };
    let ids = vec![AgentId::new("a"), AgentId::new("b")];
    sim.input(Input::ConfigChanged { config: two, agents: ids });
    // Call 2 rings `b` (and keeps its place in the queue until answered).
    assert_eq!(sim.engine.lines_busy(), 2);
    assert_eq!(sim.state("b"), AgentState::Ringing { call: CallId(2) });
}

#[test]
fn stale_inputs_are_errors_and_change_nothing() {
    let mut sim = Sim::new(EngineConfig::default(), &[("an", Script::Never)]);
    let (now, an) = (sim.now, AgentId::new("an"));
    let e = &mut sim.engine;
    assert!(e.handle(now, Input::CallerHungUp { call: CallId(9) }).is_err());
    assert!(e.handle(now, Input::AgentLoggedIn { agent: AgentId::new("nobody") }).is_err());
    let reject =
        Input::AgentRejected { call: CallId(9), agent: an.clone(), reason: RejectReason::Error };
    assert!(e.handle(now, reject).is_err());
    e.handle(
        now,
        Input::CallOffered {
            call: CallId(1),
            lane: Lane::Normal,
            province: Some("An Giang".into()),
            may_overflow: true,
        },
    )
    .unwrap();
    assert_eq!(e.province(CallId(1)), Some("An Giang"));
    assert!(
        e.handle(
            now,
            Input::CallOffered {
                call: CallId(1),
                lane: Lane::Normal,
                province: None,
                may_overflow: true
            }
        )
        .is_err()
    );
    assert!(e.handle(now, Input::CallEnded { call: CallId(1), by: EndedBy::Agent }).is_err());
    e.check_invariants().unwrap();
    // A late 200 for a call that is gone is hung up.
    e.handle(now, Input::AgentAnswered { call: CallId(5), agent: an.clone() }).unwrap();
    let out: Vec<Output> = std::iter::from_fn(|| e.poll_output()).collect();
    assert!(out.contains(&Output::HangUpAgent { call: CallId(5), agent: an }));
}

/// A day at hotline load: Poisson arrivals, 6 agents on 3 lines, talk 2-20 minutes, 10% of callers
/// give up after 10 s-5 min, agents who sometimes answer late, refuse or never answer (auto-resumed
/// after 5 minutes), 1% dead agent legs, a few logouts. Two days: a busy one (a call every 3 minutes,
/// mostly short talks: about 0.9 Erlang per line) and an overloaded one (every 2.5 minutes, talks
/// uniform in 2-20 minutes: 1.5 Erlang per line, so the queue fills and callers are refused).
/// Invariants are checked after every step; every call gets exactly one outcome.
#[test]
fn a_full_day_of_poisson_traffic_keeps_every_invariant() {
    for (seed, gap, uniform_talk) in [(1u64, 180 * S, false), (2, 150 * S, true)] {
        let cfg = EngineConfig { auto_resume: Some(300 * S), ..EngineConfig::default() };
        let agents: Vec<(String, Script)> =
            (0..6).map(|i| (format!("op{i}"), Script::Random)).collect();
        let agents: Vec<(&str, Script)> = agents.iter().map(|(a, s)| (a.as_str(), *s)).collect();
        let mut sim = Sim::new(cfg, &agents);
        sim.rng = Rng(seed);
        sim.uniform_talk = uniform_talk;
        let mut arrivals = Rng(seed ^ 0xDEAD_BEEF);
        let day = 24 * 3600 * S;
        let mut t = Duration::ZERO;
        let mut n = 0;
        loop {
            t += arrivals.exp(gap);
            if t > day {
                break;
            }
            sim.run_until(t);
            n += 1;
            let lane = if arrivals.unit() < 0.1 { Lane::Urgent } else { Lane::Normal };
            let patience = (arrivals.unit() < 0.1).then(|| arrivals.between(10 * S, 300 * S));
            let prompt = arrivals.between(5 * S, 15 * S);
            sim.call(n, lane, prompt, patience);
            if n % 7 == 0 {
                // A dead agent leg on the oldest bridged call, if any.
                let bridged = sim.engine.agents().find_map(|(a, s)| match s {
                    AgentState::OnCall { call } => Some((call, a.clone())),
                    _ => None,
                });
                if let Some((call, agent)) = bridged.filter(|_| n % 70 == 0) {
                    sim.withdraw(&Tag::Talk(call));
                    sim.input(Input::AgentLegFailed { call, agent });
                }
            }
            if n % 50 == 0 {
                let agent = AgentId::new(&format!("op{}", n % 6));
                sim.input(Input::AgentLoggedOut { agent: agent.clone() });
                sim.later(600 * S, Input::AgentLoggedIn { agent });
            }
        }
        sim.run_until(day + 6 * 3600 * S);
        assert_eq!(sim.outcomes.len(), n as usize, "seed {seed}: every call finished once");
        assert_eq!(sim.engine.calls_in_progress(), 0);
        assert_eq!(sim.engine.lines_busy(), 0);
        // Nobody is stuck: every agent is free (or logged out), every pause auto-resumed, no timer
        // is left running.
        for (agent, state) in sim.engine.agents() {
            let free = matches!(state, AgentState::Available | AgentState::LoggedOut);
            assert!(free, "seed {seed}: {agent} is {state:?}");
        }
        assert_eq!(sim.engine.poll_timeout(), None, "seed {seed}");
        let answered = sim.outcomes.values().filter(|o| matches!(o, Outcome::Answered { .. }));
        let abandoned = sim.outcomes.values().filter(|o| matches!(o, Outcome::Abandoned { .. }));
        let refused = sim.outcomes.values().filter(|o| matches!(o, Outcome::Rejected { .. }));
        let (answered, abandoned, refused) = (answered.count(), abandoned.count(), refused.count());
        assert_eq!(answered + abandoned + refused, n as usize, "seed {seed}");
        assert!(answered as f64 > 0.5 * n as f64, "seed {seed}: {answered}/{n} answered");
        assert!(sim.steps > 3 * n, "seed {seed}");
        eprintln!(
            "seed {seed}: {n} calls, {answered} answered, {abandoned} abandoned, {refused} refused, \
             {} steps",
            sim.steps
        );
    }
}
