//! Shared helpers for the integration tests. Each test binary uses a subset, hence the allow.
#![allow(dead_code)]

pub mod daemon;
pub mod rtp_tool;
pub mod sipp;
