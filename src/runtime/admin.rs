//! The admin API's view of the centre and its commands. Runtime layer: the core task keeps a
//! [`Board`] up to date from the switchboard's reports and answers [`AdminRequest`]s from the HTTP
//! task with a [`BoardView`] (plain data, serialised as JSON), by pausing/resuming an agent, or by
//! calling a supervisor into an operator's call.
//!
//! No caller number, Call-ID or address ever reaches a view: calls are shown by the engine's call
//! number, lane, phase, province and durations only.
//!
//! Service level, as the wallboard, `/api/v1/board` and `tongdai_service_level_ratio` show it for
//! today (local date): the formula and thresholds of `[service_level]`
//! ([`crate::config::ServiceLevelConfig`]), the same as `tongdai report`'s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiff::civil::Date;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::acd::b2bua::{Report, Switchboard};
use crate::acd::directory::{Destination, Directory, TargetKind};
use crate::acd::{AgentId, AgentState, CallId, Lane, Outcome, Output};
use crate::config::{Config, ServiceLevelConfig, Tally};

/// A request from the HTTP task to the core.
#[derive(Debug)]
pub enum AdminRequest {
    /// The current view.
    Board(oneshot::Sender<BoardView>),
    /// Start a call-back of `target` by `agent` (the number read from the records).
    StartCallback {
        /// The agent id.
        agent: String,
        /// The pending call-back and its number.
        target: crate::acd::b2bua::CallbackTarget,
        /// The answer: started, or why not.
        reply: oneshot::Sender<Result<(), crate::acd::b2bua::CallbackRefusal>>,
    },
    /// Pause (`pause = true`) or resume an agent, as a supervisor.
    SetPaused {
        /// The agent id.
        agent: String,
        /// Pause or resume.
        pause: bool,
        /// The answer: `false` when no such agent is configured.
        reply: oneshot::Sender<bool>,
    },
    /// A supervisor joins an operator's bridged call: tongdai calls the supervisor's phone.
    Supervise {
        /// The operator's id.
        operator: String,
        /// The supervisor's account id.
        supervisor: String,
        /// Listen, whisper or barge.
        mode: crate::config::SupervisionMode,
        /// The answer: the supervisor's phone rings, or why not.
        reply: oneshot::Sender<Result<(), crate::acd::b2bua::SuperviseError>>,
    },
}

/// Everything the wallboard and the API show, at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct BoardView {
    /// `[centre] name`.
    pub centre: String,
    /// Unix milliseconds when the view was taken.
    pub at_unix_ms: i64,
    /// The daemon is draining (SIGTERM received).
    pub draining: bool,
    /// Lines (agent calls at once) configured and in use.
    pub lines: Lines,
    /// The queue.
    pub queue: QueueView,
    /// Each configured agent.
    pub agents: Vec<AgentView>,
    /// Calls in progress (no numbers).
    pub calls: Vec<CallView>,
    /// Today's counts (local date in the configured zone).
    pub today: TodayView,
    /// Overflow targets' health, in the order they are tried.
    pub overflow_targets: Vec<TargetView>,
}

/// Lines in use.
#[derive(Debug, Clone, Serialize)]
pub struct Lines {
    /// Configured.
    pub total: u32,
    /// Ringing or bridged agent calls.
    pub busy: usize,
}

/// The queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    /// Callers waiting for an agent (queued, including those whose agent is ringing).
    pub waiting: usize,
    /// Of those, in the urgent lane.
    pub urgent: usize,
    /// The longest current wait, seconds.
    pub longest_wait_s: u64,
}

/// One agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    /// Configured id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `logged_out`, `available`, `ringing`, `on_call`, `wrap_up` or `paused`.
    pub state: &'static str,
    /// The pause reason when paused.
    pub pause_reason: Option<&'static str>,
    /// Seconds in this state (since the daemon saw it change).
    pub in_state_s: u64,
    /// The call it rings for or talks on.
    pub call: Option<u64>,
    /// Calls answered today.
    pub answered_today: u64,
}

/// One call in progress.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    /// The engine's call number (not a SIP Call-ID).
    pub id: u64,
    /// `queued`, `ringing` or `bridged`.
    pub phase: &'static str,
    /// `normal` or `urgent` (queued calls).
    pub lane: Option<&'static str>,
    /// The agent ringing or talking.
    pub agent: Option<String>,
    /// Province, when the number or the dialled access number tells it.
    pub province: Option<String>,
    /// Seconds in this phase.
    pub for_s: u64,
}

/// Today's counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TodayView {
    /// Local date.
    pub date: String,
    /// Calls offered to the queue.
    pub offered: u64,
    /// Answered by an agent.
    pub answered: u64,
    /// Abandoned by the caller.
    pub abandoned: u64,
    /// Sent to the national centre.
    pub overflowed: u64,
    /// Refused (queue full, …).
    pub rejected: u64,
    /// Service level in percent, `None` before the first counted call (see module docs).
    pub service_level_pct: Option<f64>,
    /// Mean queue wait of answered calls, seconds.
    pub mean_wait_s: Option<f64>,
}

/// An overflow target's health.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    /// The configured name (the metric label).
    pub name: String,
    /// The target URI.
    pub uri: String,
    /// Probes answered.
    pub up: bool,
}

/// One transfer directory entry (`[[directory]]`), as `/api/v1/directory` and the wallboard show
/// it: configuration only (service numbers and addresses, never a caller's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectoryEntryView {
    /// The name operators see.
    pub name: String,
    /// `focal_point`, `police`, `medical`, `national` or `other`.
    pub kind: TargetKind,
    /// The province served, by its official name.
    pub province: Option<String>,
    /// The short code dialled from a softphone.
    pub code: Option<String>,
    /// The SIP URI, for an entry reached directly.
    pub uri: Option<String>,
    /// The number, for an entry dialled through the trunk.
    pub number: Option<String>,
}

impl DirectoryEntryView {
    /// Every entry of `directory`, in configuration order.
    pub fn list(directory: &Directory) -> Vec<DirectoryEntryView> {
        directory
            .entries()
            .iter()
            .map(|e| {
                let (uri, number) = match &e.destination {
                    Destination::Sip { uri, .. } => (Some(uri.to_string()), None),
                    Destination::Number(n) => (None, Some(n.clone())),
                };
                DirectoryEntryView {
                    name: e.name.clone(),
                    kind: e.kind,
                    province: e.province.map(|p| p.as_str().to_string()),
                    code: e.code.clone(),
                    uri,
                    number,
                }
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct Today {
    date: Option<Date>,
    offered: u64,
    answered: u64,
    abandoned: u64,
    service_level: Tally,
    overflowed: u64,
    rejected: u64,
    wait_total: Duration,
    by_agent: HashMap<String, u64>,
}

/// The core's running view: when each agent and call entered its state, and today's counts.
#[derive(Debug, Default)]
pub struct Board {
    agents_since: HashMap<String, Instant>,
    calls_since: HashMap<CallId, (&'static str, Instant)>,
    today: Today,
    /// The thresholds of today's service level (kept for the run: a day's figure is one rule's).
    service_level: ServiceLevelConfig,
}

impl Board {
    /// An empty board judging the service level by `service_level`.
    pub fn new(service_level: ServiceLevelConfig) -> Board {
        Board { service_level, ..Board::default() }
    }

    /// Starts a new day's counts when `date` (local) is not the day counted so far.
    pub fn roll(&mut self, date: Date) {
        if self.today.date != Some(date) {
            self.today = Today { date: Some(date), ..Today::default() };
        }
    }

    /// Today's service level as a ratio (0–1); `None` before the first judged call of `date`.
    pub fn service_level(&self, date: Date) -> Option<f64> {
        (self.today.date == Some(date)).then(|| self.today.service_level.ratio()).flatten()
    }

    /// The thresholds the board judges by.
    pub fn service_level_config(&self) -> &ServiceLevelConfig {
        &self.service_level
    }

    /// Takes one switchboard report observed at `now` (monotonic) on local date `date`.
    pub fn observe(&mut self, now: Instant, date: Date, report: &Report) {
        self.roll(date);
        let sl = self.service_level;
        let t = &mut self.today;
        match report {
            Report::Offered => t.offered += 1,
            Report::Refused { .. } => t.rejected += 1,
            Report::Engine(Output::AgentState { agent, .. }) => {
                self.agents_since.insert(agent.as_str().to_string(), now);
            }
            Report::Engine(Output::CallFinished { call, outcome }) => {
                self.calls_since.remove(call);
                match outcome {
                    // A transferred call was answered by an agent first.
                    Outcome::Answered { agent, wait, .. }
                    | Outcome::Transferred { agent, wait, .. } => {
                        t.answered += 1;
                        t.wait_total += *wait;
                        sl.answered(&mut t.service_level, *wait);
                        *t.by_agent.entry(agent.as_str().to_string()).or_default() += 1;
                    }
                    Outcome::Abandoned { wait, .. } => {
                        t.abandoned += 1;
                        sl.abandoned(&mut t.service_level, *wait);
                    }
                    Outcome::Overflowed { .. } => t.overflowed += 1,
                    Outcome::Rejected { .. } => t.rejected += 1,
                }
            }
            _ => {}
        }
    }

    /// The view at `now` (monotonic), `unix_ms` (wall clock) and local `date`.
    pub fn view(
        &mut self,
        now: Instant,
        unix_ms: i64,
        date: Date,
        config: &Config,
        switchboard: &Switchboard,
        draining: bool,
    ) -> BoardView {
        let engine = switchboard.engine();
        let secs = |since: Option<&Instant>| {
            since.map_or(0, |s| now.saturating_duration_since(*s).as_secs())
        };
        // Phases of calls with an agent: ringing or bridged.
        let mut agent_of: HashMap<CallId, (&'static str, String)> = HashMap::new();
        let states: HashMap<&AgentId, AgentState> = engine.agents().collect();
        for (id, state) in &states {
            match state {
                AgentState::Ringing { call } => {
                    agent_of.entry(*call).or_insert(("ringing", id.as_str().to_string()));
                }
                AgentState::OnCall { call } => {
                    agent_of.insert(*call, ("bridged", id.as_str().to_string()));
                }
                _ => {}
            }
        }
        let mut calls = Vec::new();
        let queued: Vec<(CallId, Lane, Instant)> = engine.queued().collect();
        for (call, lane, _) in &queued {
            let (phase, agent) = match agent_of.remove(call) {
                Some((phase, agent)) => (phase, Some(agent)),
                None => ("queued", None),
            };
            calls.push((*call, phase, Some(*lane), agent));
        }
        for (call, (phase, agent)) in agent_of {
            calls.push((call, phase, None, Some(agent)));
        }
        calls.sort_by_key(|c| c.0);
        let mut seen = HashMap::new();
        let calls: Vec<CallView> = calls
            .into_iter()
            .map(|(call, phase, lane, agent)| {
                let since = match self.calls_since.get(&call) {
                    Some((p, at)) if *p == phase => *at,
                    _ => now,
                };
                seen.insert(call, (phase, since));
                CallView {
                    id: call.0,
                    phase,
                    lane: lane.map(lane_label),
                    agent,
                    province: engine.province(call).map(str::to_string),
                    for_s: now.saturating_duration_since(since).as_secs(),
                }
            })
            .collect();
        self.calls_since = seen;
        let agents = config
            .agents
            .iter()
            .filter(|a| a.is_operator())
            .map(|a| {
                let state =
                    states.get(&AgentId::new(&a.id)).copied().unwrap_or(AgentState::LoggedOut);
                let (call, pause_reason) = match state {
                    AgentState::Ringing { call } | AgentState::OnCall { call } => {
                        (Some(call.0), None)
                    }
                    AgentState::Paused { reason } => (None, Some(reason.as_str())),
                    _ => (None, None),
                };
                AgentView {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    state: state.label(),
                    pause_reason,
                    in_state_s: secs(self.agents_since.get(&a.id)),
                    call,
                    answered_today: self.today.by_agent.get(&a.id).copied().unwrap_or(0),
                }
            })
            .collect();
        let longest =
            queued.iter().map(|(_, _, since)| now.saturating_duration_since(*since)).max();
        let t = &self.today;
        let today_matches = t.date == Some(date);
        BoardView {
            centre: config.centre.name.clone(),
            at_unix_ms: unix_ms,
            draining,
            lines: Lines { total: config.centre.lines.get(), busy: engine.lines_busy() },
            queue: QueueView {
                waiting: queued.len(),
                urgent: queued.iter().filter(|q| q.1 == Lane::Urgent).count(),
                longest_wait_s: longest.map_or(0, |d| d.as_secs()),
            },
            agents,
            calls,
            today: if today_matches {
                TodayView {
                    date: date.to_string(),
                    offered: t.offered,
                    answered: t.answered,
                    abandoned: t.abandoned,
                    overflowed: t.overflowed,
                    rejected: t.rejected,
                    service_level_pct: t.service_level.ratio().map(|r| 100.0 * r),
                    mean_wait_s: (t.answered > 0)
                        .then(|| t.wait_total.as_secs_f64() / t.answered as f64),
                }
            } else {
                TodayView { date: date.to_string(), ..TodayView::default() }
            },
            overflow_targets: switchboard
                .overflow_targets()
                .into_iter()
                .map(|t| TargetView { name: t.name, uri: t.uri, up: t.up })
                .collect(),
        }
    }
}

fn lane_label(lane: Lane) -> &'static str {
    match lane {
        Lane::Urgent => "urgent",
        _ => "normal",
    }
}
