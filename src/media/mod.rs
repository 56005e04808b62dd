//! Media (wire and protocol): RTP packets, G.711, prompts, pacing and relay rules. The pacing and
//! relay logic is sans-IO: it takes the current time as a value and says what to send.
//!
//! - wire: [`rtp`] (packet view, header writer, RFC 7983 demux), [`g711`] (µ-law/A-law tables),
//!   [`dtmf`] (RFC 4733 events and key-press detection);
//! - loaded once: [`prompt`] (8 kHz WAV encoded to both laws, shared by `Arc`);
//! - protocol, sans-IO: [`pacing`] (each leg's [`pacing::RtpSender`] and the 20 ms
//!   [`pacing::Playout`]), [`relay`] (source latching and the per-direction [`relay::Relay`]),
//!   [`liveness`] (dead-leg detection), [`rtcp`] (reports terminated per leg, never relayed),
//!   [`leg`] (what each datagram on a leg's ports is: relay, terminate, or drop by reason),
//!   [`mix`] (who hears whom when a call has more than two legs: conference, listen, whisper).
//!
//! A leg's outgoing stream is one [`pacing::RtpSender`] that moves between a playout and a relay,
//! which is what keeps a caller's stream continuous from hold music to the agent and back:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tongdai::media::{g711::Codec, pacing::*, prompt::Prompt, relay::*, rtp::RtpPacket};
//!
//! let music = Prompt::from_samples("hold-music", &[0; 8000]);
//! let caller = LegFormat::static_codec(Codec::Pcma, Some(101));
//! let agent = LegFormat::static_codec(Codec::Pcmu, Some(101));
//! let t0 = Instant::now(); // in the runtime: its clock, read once per wake-up
//!
//! // Waiting: the runtime sleeps until poll_timeout() and sends what poll_transmit() yields.
//! let sender = RtpSender::new(0x1234, 1, 0); // random values in the runtime
//! let mut hold = Playout::new(sender, caller.codec, caller.payload_type,
//!                             Playlist::new().looped(music), t0);
//! while let Some(packet) = hold.poll_transmit(t0) { /* socket.send_to(&packet, caller_addr) */ }
//!
//! // The agent answers: the caller's stream moves into the agent→caller relay.
//! let mut to_caller = Relay::new(agent, caller, hold.into_sender());
//! let mut latch = SourceLatch::new(None, 3);
//! let from_agent = "127.0.0.1:40000".parse().unwrap();
//! let datagram = tongdai::media::rtp::RtpHeader {
//!     marker: false, payload_type: 0, sequence: 9, timestamp: 99, ssrc: 7,
//! }.to_packet(&[0xFF; 160]);
//! let mut out = Vec::new();
//! if latch.check(from_agent).is_ok() {
//!     let packet = RtpPacket::parse(&datagram).unwrap(); // count the error in the runtime
//!     to_caller.relay(t0 + Duration::from_millis(20), &packet, &mut out).unwrap();
//! }
//! let sent = RtpPacket::parse(&out).unwrap();
//! assert_eq!((sent.ssrc, sent.sequence, sent.payload_type), (0x1234, 2, 8));
//! ```
//!
//! `tests/media_bridge.rs` drives the same objects over real sockets.

pub mod dtmf;
pub mod g711;
pub mod leg;
pub mod liveness;
pub mod mix;
pub mod pacing;
pub mod prompt;
pub mod relay;
pub mod rtcp;
pub mod rtp;
