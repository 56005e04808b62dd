//! Media (wire and protocol): RTP packets, G.711, prompts, pacing and relay rules. The pacing and
//! relay logic is sans-IO: it takes the current time as a value and says what to send.
//!
//! - wire: [`rtp`] (packet view, header writer, RFC 7983 demux), [`g711`] (µ-law/A-law tables),
//!   [`dtmf`] (RFC 4733 events and key-press detection);
//! - loaded once: [`prompt`] (8 kHz WAV encoded to both laws, shared by `Arc`);
//! - protocol, sans-IO: [`pacing`] (each leg's [`pacing::RtpSender`] and the 20 ms
//!   [`pacing::Playout`]), [`relay`] (source latching and the per-direction [`relay::Relay`]),
//!   [`liveness`] (dead-leg detection).
//!
//! A leg's outgoing stream is one [`pacing::RtpSender`] that moves between a playout and a relay,
//! which is what keeps a caller's stream continuous from hold music to the agent and back.

pub mod dtmf;
pub mod g711;
pub mod liveness;
pub mod pacing;
pub mod prompt;
pub mod relay;
pub mod rtp;
