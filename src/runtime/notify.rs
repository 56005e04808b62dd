//! The systemd notify protocol (`sd_notify(3)`): READY, RELOADING, STOPPING and WATCHDOG messages sent
//! as datagrams to `$NOTIFY_SOCKET`, when it is set. Runtime layer. Written here rather than taken from
//! a crate because it is one datagram per state and the crate would add nothing but a dependency.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to the service manager, or nothing when not run by systemd.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (honouring `WATCHDOG_PID`) from the environment.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = if let Some(name) = path.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            } else {
                std::os::unix::net::SocketAddr::from_pathname(&path).ok()?
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .map(|pid| pid.trim() == std::process::id().to_string())
            .unwrap_or(true);
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// How often to send WATCHDOG=1: half the configured watchdog interval, as systemd advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Sends one state string; failures are logged, never fatal (the daemon serves calls regardless).
    pub fn send(&self, state: &str) {
        if let Some((socket, addr)) = &self.socket
            && let Err(e) = socket.send_to_addr(state.as_bytes(), addr)
        {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }

    /// READY=1 with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// RELOADING=1 with the monotonic timestamp systemd requires for `Type=notify-reload`.
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// STOPPING=1.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=draining");
    }

    /// WATCHDOG=1.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

/// Microseconds since boot, for `MONOTONIC_USEC`. std offers no absolute CLOCK_MONOTONIC reading
/// without `unsafe`; `/proc/uptime` (CLOCK_BOOTTIME) equals it unless the host has been suspended, and
/// systemd only compares the value with its own reading of the same moment.
fn monotonic_usec() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map(|secs| (secs * 1e6) as u64)
        .unwrap_or(0)
}
