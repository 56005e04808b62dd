//! tongdai — a SIP call-distribution daemon (ACD) for the 111 child-protection hotline.
//!
//! The crate is layered as `shared/ARCHITECTURE.md` §3 describes; dependencies point down only:
//!
//! - [`runtime`]: the tokio layer. The only code that reads clocks or does I/O: sockets, timers,
//!   HTTP, signals, config reload.
//! - [`acd`]: the domain (queue, agents, strategies, schedule, overflow, B2BUA). Sans-IO.
//! - [`sip`]: the protocol (message layer, transactions, dialogs, digest, registrar, SDP). Sans-IO.
//! - [`media`]: RTP, G.711, prompts, pacing and relay rules. The pacing logic is sans-IO.
//! - [`config`]: TOML → validated types, with `file:line:col` diagnostics.
//! - [`metrics`]: every metric name and its help text, in one place.
//! - [`logging`]: tracing set-up and the caller-number redaction helper.
//! - [`store`]: SQLite (WAL) and versioned migrations; the registrar's bindings. Blocking I/O,
//!   driven from the runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acd;
pub mod config;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod records;
pub mod runtime;
pub mod sip;
pub mod store;

/// A starting instant for the sans-IO core's unit tests. The core never reads a clock; its tests
/// take their virtual epoch from here, outside the core's modules.
#[cfg(test)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
