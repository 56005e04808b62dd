//! Call records: what happened to every call and agent, kept in SQLite for reports and audits
//! (ARCHITECTURE.md §9). Storage layer, fed by the runtime.
//!
//! The runtime turns each switchboard [`Report`] into [`Record`]s ([`Recorder::report`]) and hands
//! them to a writer thread through a bounded channel ([`writer`]): a call never waits on the disk.
//! A call's row is inserted when it is offered and updated as it progresses, so after a crash the
//! rows left open are closed as `interrupted` with their last phase ([`close_interrupted`]).
//! Callers are their pseudonym. The one exception is opt-in (`[records] callbacks`): the runtime
//! then hands the [`Recorder`] each caller's number when the call starts
//! ([`Recorder::caller_number`]); it is forgotten when the call ends, unless the caller abandoned,
//! when it becomes a [`Record::Callback`] row in the `callbacks` table for an operator to call
//! back, purged after `callbacks_retention` ([`purge_callbacks`]). Each call-back attempt's
//! outcome comes back as a [`Record::CallbackAttempt`]; [`callbacks`] reads the list back for the
//! admin API (without numbers) and the numbers to dial for the switchboard.

pub mod callbacks;
pub mod report;
pub mod schema;
pub mod writer;

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, params};

use crate::acd::b2bua::Report;
use crate::acd::identity::CallerNumber;
use crate::acd::{AgentState, Outcome, Output};
use crate::sip::registrar::Presence;
use crate::store::{self, StoreError};

pub use writer::{Records, Retention};

/// One change to the records, stamped with UNIX milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A call was answered on the trunk and offered to the queue: its row is inserted.
    CallStarted {
        /// The switchboard's call number (this process's; the row id is the record's).
        call: u64,
        /// When.
        at_ms: i64,
        /// The caller's pseudonym (hex), `None` when withheld.
        pseudonym: Option<String>,
        /// The province, `None` when unknown.
        province: Option<String>,
        /// `urgent` or `normal`.
        lane: &'static str,
    },
    /// A queue-log event of a call; `phase` moves the row's last phase when set.
    CallEvent {
        /// The call.
        call: u64,
        /// When.
        at_ms: i64,
        /// `queued`, `announced`, `ring`, `ring_cancelled`, `answered`, `menu_choice`, ….
        kind: &'static str,
        /// The agent concerned, if any.
        agent: Option<String>,
        /// A bounded detail (a position, `urgent`).
        detail: Option<String>,
    },
    /// The call ended: its row gets its outcome.
    CallFinished {
        /// The call.
        call: u64,
        /// When.
        at_ms: i64,
        /// `answered`, `abandoned`, `rejected`, `overflowed`.
        outcome: &'static str,
        /// The abandon phase, refusal or overflow reason.
        reason: Option<&'static str>,
        /// The (last) agent who talked with the caller.
        agent: Option<String>,
        /// Queue wait.
        wait_ms: Option<i64>,
        /// Talk time.
        talk_ms: Option<i64>,
    },
    /// An abandoned call's caller, to be called back (`[records] callbacks` only). Comes before
    /// the call's [`Record::CallFinished`], so that its row is still known to the writer.
    Callback {
        /// The call.
        call: u64,
        /// When the caller hung up.
        at_ms: i64,
        /// The number (its `Debug` is redacted).
        number: CallerNumber,
    },
    /// A call-back attempt ended (or its caller answered): the `callbacks` row's outcome,
    /// attempts and last attempt time; an answered one's number is blanked.
    CallbackAttempt {
        /// The `callbacks` row id.
        id: i64,
        /// When.
        at_ms: i64,
        /// `answered`, `busy`, `no_answer`, `failed`, `operator_no_answer`, `cancelled`.
        outcome: &'static str,
    },
    /// An agent's login, logout, pause, resume.
    AgentEvent {
        /// The agent id.
        agent: String,
        /// When.
        at_ms: i64,
        /// `login`, `logout`, `pause`, `resume`, `registered`, `unregistered`.
        kind: &'static str,
        /// A bounded detail (the pause reason, the logout reason).
        detail: Option<String>,
    },
}

/// Opens (creating it when missing) the records database at `path`, brings its schema up to date
/// and closes what a crash left open. Blocking.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = store::open(path)?;
    prepare(&mut conn)?;
    Ok(conn)
}

/// Migrates `conn` and closes the calls a previous run left open.
pub fn prepare(conn: &mut Connection) -> Result<usize, StoreError> {
    store::migrate(conn, schema::COMPONENT, schema::STEPS)?;
    close_interrupted(conn)
}

/// Closes every call row without an outcome (the process that wrote it died) as `interrupted`,
/// keeping its last phase; its end is its last logged event. Returns how many.
pub fn close_interrupted(conn: &Connection) -> Result<usize, StoreError> {
    let n = conn.execute(
        "UPDATE calls SET outcome = 'interrupted',
             ended_ms = COALESCE(
                 (SELECT MAX(at_ms) FROM call_events WHERE call_events.call = calls.id),
                 offered_ms)
         WHERE outcome IS NULL",
        [],
    )?;
    Ok(n)
}

/// Deletes calls (with their events) and agent events older than `before_ms`. Returns the calls
/// deleted.
pub fn purge(conn: &Connection, before_ms: i64) -> Result<usize, StoreError> {
    conn.execute(
        "DELETE FROM call_events WHERE call IN (SELECT id FROM calls WHERE offered_ms < ?1)",
        params![before_ms],
    )?;
    conn.execute(
        "DELETE FROM callbacks WHERE call IN (SELECT id FROM calls WHERE offered_ms < ?1)",
        params![before_ms],
    )?;
    let n = conn.execute("DELETE FROM calls WHERE offered_ms < ?1", params![before_ms])?;
    conn.execute("DELETE FROM agent_events WHERE at_ms < ?1", params![before_ms])?;
    Ok(n)
}

/// Deletes the call-back numbers kept since before `before_ms` (all of them with `i64::MAX`, when
/// `[records] callbacks` is off). Returns how many.
pub fn purge_callbacks(conn: &Connection, before_ms: i64) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM callbacks WHERE at_ms < ?1", params![before_ms])?)
}

/// Turns switchboard reports into records: it remembers each agent's last state, so that a state
/// change becomes the login, logout, pause or resume it means, and, when call-backs are kept, the
/// number of each call in progress.
#[derive(Debug, Default)]
pub struct Recorder {
    agents: HashMap<String, AgentState>,
    /// The callers of calls in progress (`[records] callbacks` only).
    numbers: HashMap<u64, CallerNumber>,
}

impl Recorder {
    /// `call`'s caller has `number`: kept until the call ends, and then only if they abandon
    /// (`[records] callbacks`). Never given otherwise.
    pub fn caller_number(&mut self, call: u64, number: CallerNumber) {
        self.numbers.insert(call, number);
    }

    /// The records `report` makes at `at_ms`.
    pub fn report(&mut self, at_ms: i64, report: &Report) -> Vec<Record> {
        let event = |call: u64, kind: &'static str, agent: Option<String>, detail| {
            Record::CallEvent { call, at_ms, kind, agent, detail }
        };
        match report {
            Report::CallStarted { call, pseudonym, province, lane } => {
                vec![Record::CallStarted {
                    call: call.0,
                    at_ms,
                    pseudonym: pseudonym.clone(),
                    province: province.map(str::to_owned),
                    lane: lane_label(*lane),
                }]
            }
            Report::MenuChoice { call, urgent } => {
                let detail = if *urgent { "urgent" } else { "none" };
                vec![event(call.0, "menu_choice", None, Some(detail.to_owned()))]
            }
            Report::Presence(Presence::LoggedIn { agent }) => vec![Record::AgentEvent {
                agent: agent.clone(),
                at_ms,
                kind: "registered",
                detail: None,
            }],
            Report::Presence(Presence::LoggedOut { agent, reason }) => vec![Record::AgentEvent {
                agent: agent.clone(),
                at_ms,
                kind: "unregistered",
                detail: Some(format!("{reason:?}").to_lowercase()),
            }],
            Report::Engine(output) => self.output(at_ms, output),
            Report::Callback { id, outcome, .. } => {
                vec![Record::CallbackAttempt { id: *id, at_ms, outcome: outcome.as_str() }]
            }
            _ => Vec::new(),
        }
    }

    fn output(&mut self, at_ms: i64, output: &Output) -> Vec<Record> {
        let event = |call: u64, kind: &'static str, agent: Option<String>, detail| {
            Record::CallEvent { call, at_ms, kind, agent, detail }
        };
        let name = |a: &crate::acd::AgentId| Some(a.as_str().to_owned());
        match output {
            Output::StartHold { call } => vec![event(call.0, "queued", None, None)],
            Output::AnnouncePosition { call, position } => {
                vec![event(call.0, "announced", None, Some(position.to_string()))]
            }
            Output::RingAgent { call, agent } => vec![event(call.0, "ring", name(agent), None)],
            Output::CancelRing { call, agent } => {
                vec![event(call.0, "ring_cancelled", name(agent), None)]
            }
            Output::Bridge { call, agent } => vec![event(call.0, "answered", name(agent), None)],
            Output::Refuse { call, reason } => {
                vec![event(call.0, "refused", None, Some(reason.as_str().to_owned()))]
            }
            Output::Overflow { call, reason } => {
                vec![event(call.0, "overflow_attempt", None, Some(reason.as_str().to_owned()))]
            }
            Output::HangUpAgent { .. } | Output::HangUpCaller { .. } => Vec::new(),
            Output::CallFinished { call, outcome } => {
                let ms = |d: std::time::Duration| Some(i64::try_from(d.as_millis()).unwrap_or(0));
                let (reason, agent, wait_ms, talk_ms) = match outcome {
                    Outcome::Answered { agent, wait, talk } => {
                        (None, name(agent), ms(*wait), ms(*talk))
                    }
                    Outcome::Abandoned { phase, wait } => {
                        (Some(phase.as_str()), None, ms(*wait), None)
                    }
                    Outcome::Transferred { agent, wait, talk } => {
                        (None, name(agent), ms(*wait), ms(*talk))
                    }
                    Outcome::Rejected { reason } => (Some(reason.as_str()), None, None, None),
                    Outcome::Overflowed { reason, wait } => {
                        (Some(reason.as_str()), None, ms(*wait), None)
                    }
                };
                let kind = outcome.as_str();
                let mut out = Vec::new();
                let number = self.numbers.remove(&call.0);
                if let (Outcome::Abandoned { .. }, Some(number)) = (outcome, number) {
                    out.push(Record::Callback { call: call.0, at_ms, number });
                }
                if !matches!(outcome, Outcome::Answered { .. }) {
                    out.push(event(call.0, kind, None, reason.map(str::to_owned)));
                }
                out.push(event(call.0, "ended", None, None));
                out.push(Record::CallFinished {
                    call: call.0,
                    at_ms,
                    outcome: kind,
                    reason,
                    agent,
                    wait_ms,
                    talk_ms,
                });
                out
            }
            Output::AgentState { agent, state } => {
                let before = self.agents.insert(agent.as_str().to_owned(), *state);
                let kind = agent_change(before, *state);
                kind.map(|(kind, detail)| Record::AgentEvent {
                    agent: agent.as_str().to_owned(),
                    at_ms,
                    kind,
                    detail,
                })
                .into_iter()
                .collect()
            }
        }
    }
}

fn lane_label(lane: crate::acd::Lane) -> &'static str {
    match lane {
        crate::acd::Lane::Urgent => "urgent",
        crate::acd::Lane::Normal => "normal",
    }
}

/// What a change of public state means for the agent log: login (from logged out), logout, pause
/// (with its reason), resume (out of a pause). Ringing, talking and wrap-up are the call log's.
fn agent_change(
    before: Option<AgentState>,
    now: AgentState,
) -> Option<(&'static str, Option<String>)> {
    let was_out = matches!(before, None | Some(AgentState::LoggedOut));
    let was_paused = matches!(before, Some(AgentState::Paused { .. }));
    match now {
        AgentState::LoggedOut if !was_out => Some(("logout", None)),
        AgentState::LoggedOut => None,
        AgentState::Paused { reason } if !was_paused => {
            Some(("pause", Some(reason.as_str().to_owned())))
        }
        AgentState::Paused { .. } => None,
        _ if was_out => Some(("login", None)),
        _ if was_paused => Some(("resume", None)),
        _ => None,
    }
}
