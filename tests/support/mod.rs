//! Shared helpers for the integration tests. Each test binary uses a subset, hence the allow.
#![allow(dead_code)]

pub mod agent;
pub mod baresip;
pub mod callers;
pub mod config_text;
pub mod daemon;
pub mod mutate;
pub mod process;
pub mod prompts;
pub mod rig;
pub mod rtp_tool;
pub mod sim;
pub mod sipp;

/// Serialises the tests of one binary that run real peers: they share the process-wide metrics
/// recorder (so counters are read as deltas) and, on two cores, timing-sensitive media.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
pub mod ua;
