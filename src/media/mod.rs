//! Media (wire and protocol): RTP packets, G.711, prompts, pacing and relay rules. The pacing and
//! relay logic is sans-IO: it takes the current time as a value and says what to send.

pub mod dtmf;
pub mod g711;
pub mod pacing;
pub mod prompt;
pub mod relay;
pub mod rtp;
