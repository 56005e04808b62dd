//! The daemon's life from `tongdai run`: signals, reloads and the systemd notify protocol around a
//! [`Daemon`]. Runtime layer.
//!
//! - SIGHUP: read and validate the config again; a good one is applied, a bad one is logged with every
//!   diagnostic and counted, and the old one stays in force.
//! - SIGTERM / SIGINT: drain (see [`Daemon::drain`]) and return, so that the process exits 0.
//! - SIGXFSZ: caught and ignored. A file-size limit (systemd `LimitFSIZE=`, `ulimit -f`) reached by
//!   the call records must cost records, not the hotline: with a handler installed the kernel no
//!   longer kills the process, the write fails with EFBIG, and the records writer handles it like
//!   a full disk (counted, `/readyz` not ready, writing resumes when it can).

use std::path::PathBuf;

use metrics::counter;
use tokio::signal::unix::{SignalKind, signal};

use super::Daemon;
use super::notify::Notifier;
use crate::config::Config;

/// Where a reload reads its configuration from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file, read again on every SIGHUP.
    File(PathBuf),
    /// The built-in default (nothing to re-read).
    Builtin,
}

impl ConfigSource {
    /// Reads and validates the configuration; errors carry every diagnostic.
    pub fn load(&self) -> Result<Config, crate::config::ConfigError> {
        match self {
            ConfigSource::File(path) => Config::load(path).map(|(config, warnings)| {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                config
            }),
            ConfigSource::Builtin => Config::builtin(),
        }
    }
}

/// The signals the daemon acts on, installed before anything else starts: until a handler is in
/// place, SIGTERM and SIGHUP would kill the process with their default action.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    /// Held so the SIGXFSZ handler is visibly part of the set; its events are never read.
    _xfsz: tokio::signal::unix::Signal,
}

/// SIGXFSZ on Linux (x86-64, AArch64, Arm, RISC-V): not among tokio's named signal kinds.
const SIGXFSZ: i32 = 25;

impl Signals {
    /// Installs the handlers (inside the tokio runtime).
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            _xfsz: signal(SignalKind::from_raw(SIGXFSZ))?,
        })
    }
}

/// Runs `daemon` until SIGTERM or SIGINT, then drains it.
pub async fn run(daemon: Daemon, source: ConfigSource, signals: Signals) -> anyhow::Result<()> {
    let notifier = Notifier::from_env();
    let Signals { mut term, mut int, mut hup, _xfsz } = signals;
    let watchdog_every = notifier.watchdog_interval();
    let mut watchdog =
        tokio::time::interval(watchdog_every.unwrap_or(std::time::Duration::MAX / 4));
    notifier.ready("taking calls");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                notifier.reloading();
                reload(&daemon, &source);
                notifier.ready("taking calls");
            }
            _ = watchdog.tick(), if watchdog_every.is_some() => notifier.watchdog(),
        }
    }
    tracing::info!(
        calls = daemon.shared().active_calls(),
        grace_s = daemon.shared().config().lifecycle.drain_grace.as_secs(),
        "draining"
    );
    notifier.stopping();
    daemon.drain().await;
    tracing::info!("stopped");
    Ok(())
}

/// One reload: validate, then swap, or keep the old config and say why.
pub fn reload(daemon: &Daemon, source: &ConfigSource) {
    match source.load() {
        Ok(config) => {
            let changes = daemon.reload(config);
            let sections: Vec<&str> = changes.iter().map(|c| c.section).collect();
            tracing::info!(changed = ?sections, "configuration reloaded");
        }
        Err(e) => {
            counter!(crate::metrics::CONFIG_RELOADS, "result" => "rejected").increment(1);
            for d in &e.diagnostics {
                tracing::error!("{d}");
            }
            tracing::error!(
                "configuration reload refused; the previous configuration stays in force"
            );
        }
    }
}
