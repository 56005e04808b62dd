//! The SIP protocol layer (sans-IO): message parsing and printing, transactions, dialogs, digest
//! authentication, the registrar, SDP and the REFER/Replaces transfer blocks. Nothing here touches
//! a socket or reads a clock: time comes in as a value and actions come out for the runtime to
//! carry out.

pub mod auth;
pub mod check;
pub mod dialog;
pub mod endpoint;
pub mod keepalive;
pub mod message;
pub mod ratelimit;
pub mod refer;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod transport;
pub mod trunk_register;
