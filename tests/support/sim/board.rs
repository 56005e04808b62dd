//! The real switchboard as the simulator's [`App`], with a fake media that tells the test which
//! call each trunk caller became and when it was bridged, and checks run after every step: the
//! engine's invariants, every call ending exactly once, at most `lines` agent legs on the wire,
//! and no agent ringing or on a call without a live leg (nor a live leg without its agent). Test
//! support for the day and race simulations.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tongdai::acd::b2bua::{MediaControl, PROMPT_HOLD, PROMPT_WELCOME, Report, Switchboard};
use tongdai::acd::{AgentId, AgentState, CallId, Input, Outcome, Output};
use tongdai::config::{Config, DEFAULT_TOML, Source};
use tongdai::media::pacing::Playlist;
use tongdai::media::prompt::{Prompt, PromptSet};
use tongdai::media::relay::LegFormat;
use tongdai::sip::endpoint::{Endpoint, UaEvent};

use super::App;

/// What the test learns from the switchboard, shared with the scripted callers.
#[derive(Debug, Default)]
pub struct World {
    /// Virtual time of the step being run.
    pub now: Duration,
    /// The call each caller became, by the RTP port of its SDP offer (unique per caller).
    pub by_port: HashMap<u16, CallId>,
    /// When each call was offered (its caller answered).
    pub offered_at: HashMap<CallId, Duration>,
    /// When each call was last bridged to an agent.
    pub bridged_at: HashMap<CallId, Duration>,
    /// Bridges made, all calls together.
    pub bridges: usize,
    /// Agent legs closed by the media (`drop_agent`).
    pub agent_drops: usize,
    /// Every call's outcome, in order.
    pub outcomes: Vec<(CallId, Outcome, Duration)>,
    /// Calls refused before reaching the engine, by reason.
    pub refused: Vec<&'static str>,
    /// The largest number of live agent legs seen after a step.
    pub max_legs: usize,
    /// Steps checked.
    pub steps: u64,
    /// Agent state changes reported, by state label (`paused`, `logged_out`, …).
    pub agent_states: BTreeMap<&'static str, usize>,
}

/// The world, shared between the board and the callers' `bye_when` closures.
pub type Shared = Rc<RefCell<World>>;

impl World {
    /// The call a caller offering RTP port `port` became, if it was offered.
    pub fn call_of(&self, port: u16) -> Option<CallId> {
        self.by_port.get(&port).copied()
    }

    /// The outcome of `call`, if it ended.
    pub fn outcome(&self, call: CallId) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.0 == call).map(|o| &o.1)
    }
}

/// A media fake that records into the world.
pub struct WorldMedia {
    world: Shared,
}

impl MediaControl for WorldMedia {
    fn address(&self) -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }
    fn open_caller(
        &mut self,
        call: CallId,
        remote: Option<SocketAddr>,
        _: LegFormat,
    ) -> Option<u16> {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        if let Some(remote) = remote {
            assert!(w.by_port.insert(remote.port(), call).is_none(), "a caller offered twice");
        }
        w.offered_at.insert(call, now);
        Some(20_000)
    }
    fn open_agent(&mut self, _: CallId) -> Option<u16> {
        Some(20_002)
    }
    fn agent_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {}
    fn caller_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {}
    fn play(&mut self, _: CallId, _: Playlist) {}
    fn bridge(&mut self, call: CallId) {
        let mut w = self.world.borrow_mut();
        let now = w.now;
        w.bridged_at.insert(call, now);
        w.bridges += 1;
    }
    fn drop_agent(&mut self, _: CallId) {
        self.world.borrow_mut().agent_drops += 1;
    }
    fn close(&mut self, _: CallId) {}
}

/// The configuration: the built-in default with `agents` operators (`op1`…, password
/// `opN-test-password`) on duty all day, bindings in memory, and `edit` applied to the TOML text.
pub fn config(agents: usize, edit: impl Fn(String) -> String) -> Config {
    let mut toml = DEFAULT_TOML.to_owned();
    let first = toml.find("\n[[agents]]\nid").unwrap() + 1;
    let end = toml.find("# Shifts:").unwrap();
    let blocks: String = (1..=agents)
        .map(|n| format!("[[agents]]\nid = \"op{n}\"\nuser = \"op{n}\"\npassword = \"op{n}-test-password\"\n\n"))
        .collect();
    toml.replace_range(first..end, &blocks);
    let ids: Vec<String> = (1..=agents).map(|n| format!("\"op{n}\"")).collect();
    toml = toml
        .replace("agents = [\"op1\", \"op2\", \"op3\"]", &format!("agents = [{}]", ids.join(", ")));
    toml = toml.replace("database = \"tongdai.db\"", "database = \"\"");
    let toml = edit(toml);
    let source = Source::new("test.toml", toml);
    let (config, _) = Config::from_source(&source, "config".as_ref()).unwrap();
    config
}

/// Picks endpoint events to lose.
pub type EventFilter = Box<dyn FnMut(&UaEvent) -> bool>;

/// The switchboard under test, checked after every step.
pub struct Board {
    /// The switchboard.
    pub sb: Switchboard,
    /// Its media fake.
    pub media: WorldMedia,
    /// What the test learns.
    pub world: Shared,
    start: Instant,
    /// Check that no agent is busy without a live leg after every step (off while a test
    /// deliberately loses an event, until the audit repairs it).
    pub strict: bool,
    /// Endpoint events for which this returns true never reach the switchboard (an event lost
    /// between the SIP stack and the call logic, for the audit tests).
    pub lose_event: Option<EventFilter>,
    /// The last reports, for failure messages.
    pub log: Vec<String>,
}

impl Board {
    /// A board for `config`, its clock starting at `start`; returns the endpoint to simulate.
    pub fn new(config: &Config, start: Instant) -> (Board, Endpoint) {
        let mut prompts = PromptSet::new();
        // A 5 s welcome: callers can leave during it.
        prompts.insert(Prompt::from_samples(PROMPT_WELCOME, &[0; 40_000]));
        prompts.insert(Prompt::from_samples(PROMPT_HOLD, &[0; 800]));
        let endpoint = Endpoint::new(tongdai::runtime::driver::endpoint_config(config), 11);
        let sb = Switchboard::new(config, prompts, [7; 32], start);
        let world: Shared = Rc::default();
        let media = WorldMedia { world: world.clone() };
        let board =
            Board { sb, media, world, start, strict: true, lose_event: None, log: Vec::new() };
        (board, endpoint)
    }

    fn tick(&mut self, now: Instant) {
        self.world.borrow_mut().now = now.saturating_duration_since(self.start);
    }

    fn reports(&mut self) {
        let now = self.world.borrow().now;
        for r in self.sb.take_reports() {
            match &r {
                Report::Engine(Output::CallFinished { call, outcome }) => {
                    let mut w = self.world.borrow_mut();
                    assert!(
                        w.outcome(*call).is_none(),
                        "{call} finished twice: {outcome:?} after {:?}",
                        w.outcome(*call)
                    );
                    w.outcomes.push((*call, outcome.clone(), now));
                }
                Report::Refused { reason } => self.world.borrow_mut().refused.push(reason),
                Report::Engine(Output::AgentState { state, .. }) => {
                    *self.world.borrow_mut().agent_states.entry(state.label()).or_default() += 1;
                }
                _ => {}
            }
            if self.log.len() > 400 {
                self.log.drain(..200);
            }
            self.log.push(format!("{:9.3} {r:?}", now.as_secs_f64()));
        }
    }

    /// The checks of every step; panics with the recent reports on a violation.
    pub fn check(&self, now: Instant, endpoint: &Endpoint) {
        let engine = self.sb.engine();
        let fail = |what: String| -> ! {
            panic!(
                "at {:?}: {what}\nrecent reports:\n{}",
                self.world.borrow().now,
                self.log.join("\n")
            )
        };
        if let Err(v) = engine.check_invariants() {
            fail(format!("engine invariant: {v}"));
        }
        let Input::Audit { agent_legs, calls, .. } = self.sb.audit_snapshot(now, endpoint) else {
            unreachable!()
        };
        let lines = engine.config().lines.get() as usize;
        if agent_legs.len() > lines {
            fail(format!(
                "{} agent legs on the wire, {lines} lines: {agent_legs:?}",
                agent_legs.len()
            ));
        }
        let legs: BTreeSet<(CallId, AgentId)> = agent_legs.iter().cloned().collect();
        if legs.len() != agent_legs.len() {
            fail(format!("an agent has two legs in one call: {agent_legs:?}"));
        }
        let mut agents_in_legs = BTreeSet::new();
        for (_, a) in &agent_legs {
            if !agents_in_legs.insert(a) {
                fail(format!("agent {a} has legs in two calls: {agent_legs:?}"));
            }
        }
        {
            let mut w = self.world.borrow_mut();
            w.max_legs = w.max_legs.max(agent_legs.len());
            w.steps += 1;
        }
        if !self.strict {
            return;
        }
        for (agent, state) in engine.agents() {
            let busy = match state {
                AgentState::Ringing { call } | AgentState::OnCall { call } => Some(call),
                _ => None,
            };
            if let Some(call) = busy
                && !legs.contains(&(call, agent.clone()))
            {
                fail(format!("agent {agent} is stuck: {state:?} without a live leg"));
            }
        }
        for (call, agent) in &legs {
            match engine.agent_state(agent) {
                Some(AgentState::Ringing { call: c } | AgentState::OnCall { call: c })
                    if c == *call => {}
                other => fail(format!("a zombie leg: {call} to {agent}, who is {other:?}")),
            }
        }
        let live: BTreeSet<CallId> = calls.into_iter().collect();
        if live.len() != engine.calls_in_progress() {
            fail(format!(
                "{} calls up on the trunk side, {} in the engine",
                live.len(),
                engine.calls_in_progress()
            ));
        }
    }
}

impl App for Board {
    fn event(&mut self, endpoint: &mut Endpoint, now: Instant, event: &UaEvent) {
        self.tick(now);
        if self.lose_event.as_mut().is_some_and(|lose| lose(event)) {
            self.log.push(format!("LOST EVENT {event:?}"));
            return;
        }
        self.sb.handle_ua_event(now, event.clone(), endpoint, &mut self.media);
        self.reports();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.sb.poll_timeout()
    }
    fn handle_timeout(&mut self, endpoint: &mut Endpoint, now: Instant) {
        self.tick(now);
        self.sb.handle_timeout(now, endpoint, &mut self.media);
        self.reports();
    }
    fn settled(&mut self, endpoint: &mut Endpoint, now: Instant) {
        self.tick(now);
        self.check(now, endpoint);
    }
}

/// A caller's SDP offer on RTP `port` (the port names the caller in [`World::by_port`]).
pub fn caller_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    )
}

/// A shorthand for seconds.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}
