//! The records writer: one thread owns the SQLite connection and writes what the core sends it
//! through a bounded channel, batching what queued up into one transaction. Runtime side of the
//! records (blocking I/O, never on an async worker).
//!
//! The core never waits: when the channel is full the record is dropped and counted
//! (`tongdai_records_dropped_total`). A failed write (disk full, I/O error) is logged without any
//! content and counted (`tongdai_records_write_failures_total`); the batch is lost, the next one
//! is tried again, so writing resumes by itself once the disk is back. Meanwhile [`Health`] (read
//! by `/readyz`) and `tongdai_records_writable` say the records are not being written, until a
//! batch is written again. Every hour rows older than the retention are purged, and call-back
//! numbers older than theirs (all of them, from the start, when call-backs are off: turning the
//! option off forgets what it kept). When the core stops, the channel closes and the writer finishes the
//! queue before its task ends, so a clean shutdown loses nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use metrics::{counter, gauge};
use rusqlite::{Connection, params};
use tokio_util::task::TaskTracker;

use super::{Record, Recorder};
use crate::acd::b2bua::Report;
use crate::acd::identity::CallerNumber;
use crate::metrics::{RECORDS_DROPPED, RECORDS_WRITABLE, RECORDS_WRITE_FAILURES};

/// Records queued for the writer before new ones are dropped (minutes of a busy centre).
pub const QUEUE: usize = 8192;

/// Records written in one transaction at most.
const BATCH: usize = 512;

/// How often the retention purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(3_600);

/// How long records are kept (`[records] retention`, `callbacks`, `callbacks_retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Calls, their events and agent events.
    pub calls: Duration,
    /// Call-back numbers; `None`: none are kept (and any left from before are deleted).
    pub callbacks: Option<Duration>,
}

impl From<Duration> for Retention {
    /// Calls kept for `calls`, no call-backs.
    fn from(calls: Duration) -> Retention {
        Retention { calls, callbacks: None }
    }
}

impl From<&crate::config::RecordsConfig> for Retention {
    fn from(c: &crate::config::RecordsConfig) -> Retention {
        Retention { calls: c.retention, callbacks: c.callbacks.then_some(c.callbacks_retention) }
    }
}

/// Whether a database writer (this one, and the registrar's bindings writer) can write, shared
/// with `/readyz`: failing from a failed write (or a file that cannot be opened) until the next
/// write succeeds. Cheap to clone (one shared cell).
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<Option<String>>>);

impl Health {
    /// The last write failed, for `why` (SQLite's or the OS's words: never a caller's data).
    pub fn failed(&self, why: impl std::fmt::Display) {
        *self.cell() = Some(why.to_string());
    }

    /// A write succeeded.
    pub fn recovered(&self) {
        *self.cell() = None;
    }

    /// Why writes fail now; `None` while they succeed.
    pub fn problem(&self) -> Option<String> {
        self.cell().clone()
    }

    fn cell(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic while holding the lock cannot leave a half-written Option: take it as it is.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The core's handle on the records writer.
#[derive(Debug)]
pub struct Records {
    tx: SyncSender<Record>,
    recorder: Recorder,
    health: Health,
    callbacks: bool,
}

impl Records {
    /// Opens (creating it when missing) the database at `path`, closes what a crash left open,
    /// and starts the writer on `tasks`, purging rows older than `retention` every hour. A
    /// database that cannot be opened does not stop the daemon: calls go on, the failure is
    /// logged and counted, and the writer tries again (at most every second). `health` follows
    /// whether writes succeed.
    pub async fn open(
        path: &Path,
        retention: impl Into<Retention>,
        health: Health,
        tasks: &TaskTracker,
    ) -> anyhow::Result<Records> {
        let at: PathBuf = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || super::open(&at))
            .await
            .context("records start-up task")?;
        let mut writer = Writer::new(None, retention.into(), health);
        writer.path = Some(path.to_path_buf());
        match conn {
            Ok(conn) => {
                writer.conn = Some(conn);
                writer.succeeded();
            }
            Err(e) => {
                counter!(RECORDS_WRITE_FAILURES).increment(1);
                writer.failed(&e);
                tracing::error!(
                    error = %e,
                    path = %path.display(),
                    "call records database unusable; calls go on, writing will be retried"
                );
                writer.opened = false;
            }
        }
        Ok(Records::spawn(writer, |f| {
            tasks.spawn_blocking(f);
        }))
    }

    /// A writer on `conn`, its loop handed to `spawn` (a thread or a tracked blocking task).
    pub fn start(
        conn: Connection,
        retention: impl Into<Retention>,
        spawn: impl FnOnce(Box<dyn FnOnce() + Send + 'static>),
    ) -> Records {
        Records::spawn(Writer::new(Some(conn), retention.into(), Health::default()), spawn)
    }

    fn spawn(writer: Writer, spawn: impl FnOnce(Box<dyn FnOnce() + Send + 'static>)) -> Records {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let health = writer.health.clone();
        let callbacks = writer.retention.callbacks.is_some();
        spawn(Box::new(move || writer.run(rx)));
        Records { tx, recorder: Recorder::default(), health, callbacks }
    }

    /// Whether the writer can write now.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// True when abandoned callers' numbers are kept (`[records] callbacks`): only then does the
    /// runtime hand over numbers ([`Records::caller_number`]).
    pub fn keeps_callbacks(&self) -> bool {
        self.callbacks
    }

    /// `call`'s caller has `number`, kept for a call-back if they abandon; ignored unless
    /// [`Records::keeps_callbacks`].
    pub fn caller_number(&mut self, call: u64, number: CallerNumber) {
        if self.callbacks {
            self.recorder.caller_number(call, number);
        }
    }

    /// Queues what `report` means for the records; never waits.
    pub fn report(&mut self, report: &Report) {
        let records = self.recorder.report(unix_ms(SystemTime::now()), report);
        for record in records {
            self.send(record);
        }
    }

    /// Queues one record; never waits.
    pub fn send(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => counter!(RECORDS_DROPPED).increment(1),
            Err(TrySendError::Disconnected(_)) => {
                counter!(RECORDS_DROPPED).increment(1);
                tracing::warn!("call records writer has stopped; record dropped");
            }
        }
    }
}

/// UNIX milliseconds of `t`.
pub fn unix_ms(t: SystemTime) -> i64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// How long the writer waits between attempts to open a database that failed to open.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// Why a batch of records was not written.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// The database could not be opened (yet).
    #[error("the records database is not open")]
    NotOpen,
    /// SQLite refused (disk full, I/O error, locked).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

struct Writer {
    /// `None` while the database cannot be opened.
    conn: Option<Connection>,
    /// Where to open it again; `None`: a connection given by the caller, never reopened.
    path: Option<PathBuf>,
    /// The database was opened (and what a crash left open was closed) in this run.
    opened: bool,
    next_open: Instant,
    retention: Retention,
    /// This run's call numbers → their rows.
    rows: HashMap<u64, i64>,
    next_purge: Instant,
    /// Whether the last write (or open) succeeded.
    health: Health,
}

impl Writer {
    fn new(conn: Option<Connection>, retention: Retention, health: Health) -> Writer {
        // The first purge waits a little: start-up is busy enough.
        let next_purge = Instant::now() + Duration::from_secs(60);
        let next_open = Instant::now();
        let opened = conn.is_some();
        if opened {
            gauge!(RECORDS_WRITABLE).set(1.0);
        }
        Writer {
            conn,
            path: None,
            opened,
            next_open,
            retention,
            rows: HashMap::new(),
            next_purge,
            health,
        }
    }

    fn failed(&self, why: impl std::fmt::Display) {
        gauge!(RECORDS_WRITABLE).set(0.0);
        self.health.failed(why);
    }

    fn succeeded(&self) {
        gauge!(RECORDS_WRITABLE).set(1.0);
        self.health.recovered();
    }

    /// Tries to open the database again (rate-limited). The first success of a run also closes
    /// what the last run left open: none of this run's calls are in the file yet.
    fn reopen(&mut self) {
        let Some(path) = &self.path else { return };
        if self.conn.is_some() || Instant::now() < self.next_open {
            return;
        }
        self.next_open = Instant::now() + REOPEN_EVERY;
        let conn = if self.opened {
            crate::store::open(path).and_then(|mut c| {
                crate::store::migrate(&mut c, super::schema::COMPONENT, super::schema::STEPS)?;
                Ok(c)
            })
        } else {
            super::open(path)
        };
        match conn {
            Ok(conn) => {
                tracing::info!("call records database writable again");
                self.conn = Some(conn);
                self.opened = true;
                // Opening migrated the schema (and closed what a crash left open): it writes.
                self.succeeded();
                self.purge_callbacks();
            }
            Err(e) => {
                tracing::error!(error = %e, "call records database still unusable");
                self.failed(&e);
            }
        }
    }

    fn run(mut self, rx: Receiver<Record>) {
        // Call-back numbers go at once when the option was turned off or their time is up.
        self.purge_callbacks();
        loop {
            let mut wait = self.next_purge.saturating_duration_since(Instant::now());
            if self.conn.is_none() && self.path.is_some() {
                // A file that cannot be opened is retried without waiting for a record.
                wait = wait.min(REOPEN_EVERY);
            }
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    self.reopen();
                    match self.write(&batch) {
                        // A batch of records of lost rows wrote nothing: it proves nothing.
                        Ok(false) => {}
                        Ok(true) => {
                            if self.health.problem().is_some() {
                                tracing::info!("call records written again");
                            }
                            self.succeeded();
                        }
                        Err(e) => {
                            counter!(RECORDS_WRITE_FAILURES).increment(1);
                            // The error is SQLite's or the OS's: it names no caller.
                            tracing::error!(error = %e, records = batch.len(), "writing call records failed");
                            self.failed(&e);
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) if self.conn.is_none() => self.reopen(),
                Err(RecvTimeoutError::Timeout) => self.purge(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= self.next_purge {
                self.purge();
            }
        }
    }

    fn purge(&mut self) {
        self.next_purge = Instant::now() + PURGE_EVERY;
        self.purge_callbacks();
        let before = SystemTime::now().checked_sub(self.retention.calls).unwrap_or(UNIX_EPOCH);
        let Some(conn) = &self.conn else { return };
        match super::purge(conn, unix_ms(before)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(calls = n, "call records past retention purged"),
            Err(e) => {
                counter!(RECORDS_WRITE_FAILURES).increment(1);
                tracing::error!(error = %e, "purging call records failed");
                self.failed(&e);
            }
        }
    }

    fn purge_callbacks(&mut self) {
        let Some(conn) = &self.conn else { return };
        let before = match self.retention.callbacks {
            Some(keep) => unix_ms(SystemTime::now().checked_sub(keep).unwrap_or(UNIX_EPOCH)),
            None => i64::MAX,
        };
        match super::purge_callbacks(conn, before) {
            Ok(0) => {}
            Ok(n) => tracing::info!(numbers = n, "call-back numbers past retention deleted"),
            Err(e) => {
                counter!(RECORDS_WRITE_FAILURES).increment(1);
                tracing::error!(error = %e, "deleting call-back numbers failed");
            }
        }
    }

    /// Writes `batch` in one transaction; `Ok(false)` when none of it touched the file.
    fn write(&mut self, batch: &[Record]) -> Result<bool, WriteError> {
        let Some(conn) = &mut self.conn else { return Err(WriteError::NotOpen) };
        let tx = conn.transaction()?;
        let mut started = HashMap::new();
        let mut wrote = false;
        for record in batch {
            wrote |= apply(&tx, &self.rows, &mut started, record)?;
        }
        tx.commit()?;
        // Only rows that really exist are remembered (a failed batch rolled them back).
        self.rows.extend(started);
        for record in batch {
            if let Record::CallFinished { call, .. } = record {
                self.rows.remove(call);
            }
        }
        Ok(wrote)
    }
}

/// Writes one record; a call it starts goes in `started` (this batch's new rows, remembered once
/// the batch commits). Records of a call whose row is unknown (its insert was lost) are skipped:
/// `Ok(false)`.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    rows: &HashMap<u64, i64>,
    started: &mut HashMap<u64, i64>,
    record: &Record,
) -> rusqlite::Result<bool> {
    let row_of = |call: &u64| rows.get(call).or_else(|| started.get(call)).copied();
    match record {
        Record::CallStarted { call, at_ms, pseudonym, province, lane } => {
            tx.execute(
                "INSERT INTO calls (offered_ms, phase, lane, province, caller)
                 VALUES (?1, 'prompt', ?2, ?3, ?4)",
                params![at_ms, lane, province.as_deref().unwrap_or("unknown"), pseudonym],
            )?;
            let row = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO call_events (call, at_ms, kind) VALUES (?1, ?2, 'offered')",
                params![row, at_ms],
            )?;
            started.insert(*call, row);
            Ok(true)
        }
        Record::CallEvent { call, at_ms, kind, agent, detail } => {
            let Some(row) = row_of(call) else { return Ok(false) };
            tx.execute(
                "INSERT INTO call_events (call, at_ms, kind, agent, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row, at_ms, kind, agent, detail],
            )?;
            match *kind {
                "queued" => tx.execute(
                    "UPDATE calls SET phase = 'queue', queued_ms = COALESCE(queued_ms, ?2)
                     WHERE id = ?1",
                    params![row, at_ms],
                )?,
                "ring" => {
                    tx.execute("UPDATE calls SET phase = 'ringing' WHERE id = ?1", params![row])?
                }
                "answered" => tx.execute(
                    "UPDATE calls SET phase = 'talking', agent = ?2,
                         answered_ms = COALESCE(answered_ms, ?3)
                     WHERE id = ?1",
                    params![row, agent, at_ms],
                )?,
                "menu_choice" if detail.as_deref() == Some("urgent") => {
                    tx.execute("UPDATE calls SET lane = 'urgent' WHERE id = ?1", params![row])?
                }
                _ => 0,
            };
            Ok(true)
        }
        Record::CallFinished { call, at_ms, outcome, reason, agent, wait_ms, talk_ms } => {
            let Some(row) = row_of(call) else { return Ok(false) };
            tx.execute(
                "UPDATE calls SET outcome = ?2, ended_ms = ?3, reason = ?4,
                     agent = COALESCE(?5, agent), wait_ms = ?6, talk_ms = ?7,
                     phase = COALESCE(?4, phase)
                 WHERE id = ?1",
                params![row, outcome, at_ms, reason, agent, wait_ms, talk_ms],
            )?;
            Ok(true)
        }
        Record::Callback { call, at_ms, number } => {
            let Some(row) = row_of(call) else { return Ok(false) };
            tx.execute(
                "INSERT INTO callbacks (call, at_ms, number) VALUES (?1, ?2, ?3)",
                params![row, at_ms, number.expose()],
            )?;
            Ok(true)
        }
        Record::CallbackAttempt { id, at_ms, outcome } => {
            // An answered call-back's number is not needed any more: blanked at once.
            let n = tx.execute(
                "UPDATE callbacks SET attempts = attempts + 1, last_attempt_ms = ?2, outcome = ?3,
                     number = CASE WHEN ?3 = 'answered' THEN '' ELSE number END
                 WHERE id = ?1",
                params![id, at_ms, outcome],
            )?;
            Ok(n > 0)
        }
        Record::AgentEvent { agent, at_ms, kind, detail } => {
            tx.execute(
                "INSERT INTO agent_events (agent, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![agent, at_ms, kind, detail],
            )?;
            Ok(true)
        }
    }
}
