//! The tokio runtime layer: the only code that binds sockets, reads clocks, sleeps, serves HTTP and
//! handles signals. It carries out what the sans-IO core decides and stays thin.
//!
//! [`Daemon::start`] binds every listener from a validated [`Config`] (config is always validated before
//! any port is bound), [`Daemon::reload`] swaps in a new config, and [`Daemon::drain`] is the shutdown
//! sequence: stop taking calls → let active calls finish within the grace period → stop the tasks.

pub mod admin;
pub mod driver;
mod http;
pub mod lifecycle;
mod limits;
pub mod media;
pub mod notify;
pub mod pseudonym_key;
pub mod rtp_io;
mod sip_tcp;
mod sip_udp;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use metrics::counter;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Change, Config};

/// State shared by the runtime's tasks.
pub struct Shared {
    config: watch::Sender<Arc<Config>>,
    draining: AtomicBool,
    /// Wakes the core task when a drain begins.
    drain_started: tokio::sync::Notify,
    active_calls: AtomicUsize,
    metrics: PrometheusHandle,
    /// What `/readyz` checks besides draining.
    ready: http::Readiness,
    /// The per-source rate limit of the SIP socket tasks.
    limits: limits::Limits,
}

impl Shared {
    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// True once a drain has begun: new calls are refused or overflowed.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Calls in progress (any phase).
    pub fn active_calls(&self) -> usize {
        self.active_calls.load(Ordering::Acquire)
    }
}

/// A running daemon: its bound addresses and the handles to reload or stop it.
pub struct Daemon {
    shared: Arc<Shared>,
    sip_udp: Vec<SocketAddr>,
    sip_tcp: Vec<SocketAddr>,
    http: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Daemon {
    /// Binds every listener of `config` and starts serving. Port 0 in the config picks free ports
    /// (tests); the bound addresses are then read back with the accessors.
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        // Everything that can fail on the config's content happens before any port is bound.
        let prompts = crate::media::prompt::PromptSet::load_dir(&config.media.prompts)
            .with_context(|| format!("prompts in {}", config.media.prompts.display()))?;
        let shared = Arc::new(Shared {
            config: watch::Sender::new(Arc::new(config.clone())),
            draining: AtomicBool::new(false),
            drain_started: tokio::sync::Notify::new(),
            active_calls: AtomicUsize::new(0),
            metrics: crate::metrics::install(),
            ready: http::Readiness::new(&config),
            limits: limits::Limits::new(config.limits.clone()),
        });
        shared.limits.set_max_tcp_connections(config.caps.max_tcp_connections);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        // The database is opened before any port is bound: a path the daemon cannot write is a
        // start-up error, not a surprise at the first REGISTER.
        let bindings = match &config.registrar.database {
            Some(path) => {
                Some(store::BindingStore::open(path, shared.ready.bindings.clone(), &tasks).await?)
            }
            None => None,
        };
        let records = match &config.records.path {
            Some(path) => {
                let health = shared.ready.records.clone();
                Some(crate::records::Records::open(path, &config.records, health, &tasks).await?)
            }
            None => None,
        };
        let (core_tx, core_rx) = mpsc::channel(CORE_QUEUE);
        let (mut sip_udp, mut sip_tcp, mut udp_sockets) = (Vec::new(), Vec::new(), Vec::new());
        for addr in &config.sip.listen {
            if config.sip.udp {
                let socket =
                    UdpSocket::bind(addr).await.with_context(|| format!("SIP UDP {addr}"))?;
                let socket = Arc::new(socket);
                sip_udp.push(socket.local_addr()?);
                udp_sockets.push(socket.clone());
                let limits = shared.limits.clone();
                tasks.spawn(sip_udp::serve(socket, core_tx.clone(), limits, stop.clone()));
            }
            if config.sip.tcp {
                // With port 0, TCP takes the port UDP got, so one address serves both transports.
                let want = sip_udp.last().filter(|_| addr.port() == 0).copied().unwrap_or(*addr);
                let listener =
                    bind_tcp(want, *addr).await.with_context(|| format!("SIP TCP {addr}"))?;
                sip_tcp.push(listener.local_addr()?);
                let (limits, stop) = (shared.limits.clone(), stop.clone());
                tasks.spawn(sip_tcp::serve(listener, core_tx.clone(), limits, stop, tasks.clone()));
            }
        }
        let mut core = driver::Core::new(shared.clone(), udp_sockets, prompts);
        if let Some((store, saved)) = bindings {
            core = core.with_store(store, saved);
        }
        if let Some(records) = records {
            core = core.with_records(records);
        }
        tasks.spawn(core.run(core_rx, stop.clone()));
        tasks.spawn(media::metrics_upkeep(shared.metrics.clone(), stop.clone()));
        tasks.spawn(shared.limits.clone().upkeep(stop.clone()));
        let listener = TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("HTTP {}", config.http.listen))?;
        let http = listener.local_addr()?;
        shared.ready.bound(&sip_udp, &sip_tcp, http);
        tasks.spawn(http::serve(listener, shared.clone(), core_tx.clone(), stop.clone()));
        Ok(Daemon { shared, sip_udp, sip_tcp, http, stop, tasks })
    }

    /// The bound SIP UDP addresses.
    pub fn sip_udp_addrs(&self) -> &[SocketAddr] {
        &self.sip_udp
    }

    /// The bound SIP TCP addresses.
    pub fn sip_tcp_addrs(&self) -> &[SocketAddr] {
        &self.sip_tcp
    }

    /// The bound admin HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// State shared with the running tasks.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Applies a new, already validated configuration and returns what changed. Sections that need a
    /// restart (listeners) are logged and keep their old values until then.
    pub fn reload(&self, new: Config) -> Vec<Change> {
        let changes = new.changes_from(&self.shared.config());
        for change in changes.iter().filter(|c| c.needs_restart) {
            tracing::warn!(section = change.section, "changed; takes effect after a restart");
        }
        self.shared.limits.reload(new.limits.clone());
        self.shared.limits.set_max_tcp_connections(new.caps.max_tcp_connections);
        self.shared.config.send_replace(Arc::new(new));
        counter!(crate::metrics::CONFIG_RELOADS, "result" => "applied").increment(1);
        changes
    }

    /// The shutdown sequence: stop taking calls, wait for active calls to end (at most the configured
    /// grace period), then stop every task and wait for them.
    pub async fn drain(self) {
        self.shared.draining.store(true, Ordering::Release);
        self.shared.drain_started.notify_one();
        metrics::gauge!(crate::metrics::DRAINING).set(1.0);
        let grace = self.shared.config().lifecycle.drain_grace;
        let deadline = tokio::time::Instant::now() + grace;
        while self.shared.active_calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.shared.active_calls() > 0 {
            tracing::warn!(calls = self.shared.active_calls(), "grace period over; ending calls");
        }
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Inputs queued for the core task before socket tasks wait (back-pressure instead of unbounded
/// memory under a flood).
const CORE_QUEUE: usize = 4096;

async fn bind_tcp(want: SocketAddr, configured: SocketAddr) -> std::io::Result<TcpListener> {
    match TcpListener::bind(want).await {
        Err(_) if want != configured => TcpListener::bind(configured).await,
        other => other,
    }
}
