//! The INVITE server transaction (RFC 3261 §17.2.1, Figure 7, with the Accepted state of RFC 6026 §8.5).
//! Protocol layer, sans-IO.
//!
//! ```text
//!                      |INVITE
//!                      |pass INV to TU
//!   INVITE             V send 100 Trying
//!   send response+-----------+
//!       +--------|           |--------+ 101-199 from TU
//!       |        | Proceeding|        | send response
//!       +------->|           |<-------+
//!                |           |          Transport Err.
//!                |           |          Inform TU
//!                |           |--------------->+
//!                +-----------+                |
//!   300-699 from TU |     |2xx from TU        |
//!   send response   |     |send response      |
//!                   |     +------------------>+---------+
//!                   |                         |Accepted | INVITE: absorb
//!   INVITE          V          Timer G fires  |         | 2xx from TU: send
//!   send response+-----------+ send response  +---------+ ACK: to TU
//!       +--------|           |--------+           | Timer L fires
//!       |        | Completed |        |           V
//!       +------->|           |<-------+      Terminated
//!                +-----------+
//!                 |    |  Timer H fires: inform TU (no ACK)
//!             ACK |    +------------------------> Terminated
//!                 V
//!                +-----------+
//!                | Confirmed | ACK: absorb
//!                +-----------+
//!                      | Timer I fires
//!                      V
//!                  Terminated
//! ```

use bytes::Bytes;

use super::timer::Timer;
use super::{Cx, Delivery, Step, TransactionError};

/// The states of Figure 7 plus Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the TU's final response; provisional responses may be sent.
    Proceeding,
    /// A 300–699 was sent; retransmitting it until the ACK arrives.
    Completed,
    /// The ACK arrived; absorbing ACK retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026): INVITE retransmissions are absorbed, the TU retransmits the 2xx.
    Accepted,
    /// Done.
    Terminated,
}

/// One INVITE server transaction.
#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    last_response: Option<Bytes>,
    g_interval: std::time::Duration,
}

impl ServerInvite {
    /// A transaction for a newly received INVITE, in Proceeding.
    pub fn new(cx: &Cx<'_>) -> ServerInvite {
        ServerInvite { state: State::Proceeding, last_response: None, g_interval: cx.values.t1 }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The INVITE arrived again.
    pub fn recv_invite(&mut self, cx: &mut Cx<'_>) {
        match self.state {
            State::Proceeding | State::Completed => {
                if let Some(r) = &self.last_response {
                    cx.out.push(Step::Send(r.clone()));
                }
            }
            State::Confirmed | State::Accepted | State::Terminated => {}
        }
    }

    /// An ACK matched this transaction.
    pub fn recv_ack(&mut self, cx: &mut Cx<'_>, ack: super::Request) {
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                cx.out.push(Step::Disarm(Timer::G));
                cx.out.push(Step::Disarm(Timer::H));
                cx.arm(Timer::I);
            }
            State::Accepted => cx.out.push(Step::Deliver(Delivery::Ack(Box::new(ack)))),
            State::Proceeding | State::Confirmed | State::Terminated => {}
        }
    }

    /// The TU sends a response with `status`, already printed as `bytes`.
    pub fn send_response(
        &mut self,
        cx: &mut Cx<'_>,
        status: u16,
        bytes: Bytes,
    ) -> Result<(), TransactionError> {
        match (self.state, status) {
            (State::Proceeding, 100..=199) => {}
            (State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                cx.arm(Timer::L);
            }
            (State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                if !cx.reliable {
                    cx.arm(Timer::G);
                }
                cx.arm(Timer::H);
            }
            // RFC 6026 §8.5: the TU retransmits its 2xx through the Accepted transaction.
            (State::Accepted, 200..=299) => {}
            (state, _) => {
                return Err(TransactionError::NotAllowed { state: format!("{state:?}"), status });
            }
        }
        cx.out.push(Step::Send(bytes.clone()));
        self.last_response = Some(bytes);
        Ok(())
    }

    /// `timer` fired.
    pub fn on_timer(&mut self, cx: &mut Cx<'_>, timer: Timer) {
        match (self.state, timer) {
            (State::Completed, Timer::G) => {
                if let Some(r) = &self.last_response {
                    cx.out.push(Step::Send(r.clone()));
                }
                self.g_interval = cx.values.backoff(Timer::G, self.g_interval);
                cx.out.push(Step::Arm(Timer::G, self.g_interval));
            }
            (State::Completed, Timer::H) => {
                self.state = State::Terminated;
                cx.out.push(Step::Deliver(Delivery::NoAck));
                cx.out.push(Step::Terminated);
            }
            (State::Confirmed, Timer::I) | (State::Accepted, Timer::L) => {
                self.state = State::Terminated;
                cx.out.push(Step::Terminated);
            }
            _ => {}
        }
    }
}
