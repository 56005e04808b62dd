//! The runtime side of the SQLite store: the database is opened and read once at start-up on a
//! blocking thread, then one blocking task owns the connection and writes what the core sends it,
//! so no SQLite call ever runs on an async worker. Runtime layer.
//!
//! The core sends each agent's whole set of bindings whenever it changes; the writer merges what
//! queued up while it was busy (the last set per agent wins) and writes it in one transaction. When
//! the core stops, the channel closes and the writer finishes the queue before its task ends, so a
//! clean shutdown loses nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use rusqlite::Connection;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::records::writer::Health;
use crate::sip::registrar::Binding;
use crate::sip::transport::Transport;
use crate::store::{self, WallClock, bindings};

/// One agent's bindings now (none: logged out).
pub type AgentBindings = (String, Vec<Binding>);

/// The core's handle on the binding writer.
#[derive(Debug, Clone)]
pub struct BindingStore {
    tx: mpsc::UnboundedSender<Vec<AgentBindings>>,
}

impl BindingStore {
    /// Opens (creating it when missing) the database at `path`, reads the saved bindings, and
    /// starts the writer task on `tasks`; `health` follows whether its writes succeed.
    pub async fn open(
        path: &Path,
        health: Health,
        tasks: &TaskTracker,
    ) -> anyhow::Result<(BindingStore, Vec<Binding>)> {
        let path: PathBuf = path.to_path_buf();
        let shown = path.display().to_string();
        let (conn, saved) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut conn = store::open(&path)?;
            bindings::prepare(&mut conn)?;
            let saved = bindings::load(&conn, &clock())?;
            Ok((conn, saved))
        })
        .await
        .context("store start-up task")?
        .with_context(|| format!("registrar database {shown}"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn_blocking(move || write_loop(conn, rx, health));
        Ok((BindingStore { tx }, saved))
    }

    /// Queues `changes` for writing; never waits.
    pub fn save(&self, changes: Vec<AgentBindings>) {
        if !changes.is_empty() && self.tx.send(changes).is_err() {
            tracing::warn!("registrar database writer has stopped; bindings not saved");
        }
    }
}

/// The clocks read together, for converting the core's instants.
fn clock() -> WallClock {
    WallClock { instant: super::driver::now(), wall: SystemTime::now() }
}

fn write_loop(
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Vec<AgentBindings>>,
    health: Health,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut pending: BTreeMap<String, Vec<Binding>> = first.into_iter().collect();
        while let Ok(more) = rx.try_recv() {
            pending.extend(more);
        }
        match write(&mut conn, &pending) {
            Ok(()) => health.recovered(),
            Err(e) => {
                tracing::error!(error = %e, agents = pending.len(), "saving registrar bindings failed");
                health.failed(format!("{e:#}"));
            }
        }
    }
}

fn write(conn: &mut Connection, pending: &BTreeMap<String, Vec<Binding>>) -> anyhow::Result<()> {
    let clock = clock();
    let tx = conn.transaction()?;
    for (agent, list) in pending {
        bindings::replace_agent(&tx, &clock, agent, list)?;
    }
    tx.commit()?;
    Ok(())
}

/// Saved bindings as this process can use them: a TCP connection does not survive a restart (the
/// softphone registers again when it reconnects), so TCP bindings are dropped; a UDP binding whose
/// local socket is not bound any more (the listen address changed) moves to a bound socket of the
/// same address family, since the agent answers wherever it is reached from.
pub fn usable_after_restart(saved: Vec<Binding>, udp: &[SocketAddr]) -> Vec<Binding> {
    saved
        .into_iter()
        .filter(|b| b.flow.transport == Transport::Udp)
        .filter_map(|mut b| {
            if !udp.contains(&b.flow.local) {
                b.flow.local = *udp.iter().find(|a| a.is_ipv4() == b.flow.remote.is_ipv4())?;
            }
            Some(b)
        })
        .collect()
}
