//! The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8). Protocol layer, sans-IO.
//!
//! ```text
//!                      |Request received
//!                      |pass to TU
//!                      V
//!                +-----------+
//!                |           |
//!                | Trying    |-------------+
//!                |           |             |
//!                +-----------+             |200-699 from TU
//!                      |                   |send response
//!                      |1xx from TU        |
//!                      |send response      |
//!                      |                   |
//!   Request            V      1xx from TU  |
//!   send response+-----------+send response|
//!       +--------|           |--------+    |
//!       |        | Proceeding|        |    |
//!       +------->|           |<-------+    |
//!                +-----------+             |
//!                      |200-699 from TU    |
//!                      |send response      |
//!   Request            V                   |
//!   send response+-----------+             |
//!       +--------|           |             |
//!       |        | Completed |<------------+
//!       +------->|           |
//!                +-----------+
//!                      |Timer J fires
//!                      V
//!                  Terminated
//! ```

use bytes::Bytes;

use super::timer::Timer;
use super::{Cx, Step, TransactionError};

/// The states of Figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Passed to the TU; no response yet (request retransmissions are absorbed).
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent; retransmitted on each request retransmission.
    Completed,
    /// Done.
    Terminated,
}

/// One non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    last_response: Option<Bytes>,
}

impl ServerNonInvite {
    /// A transaction for a newly received request, in Trying.
    pub fn new() -> ServerNonInvite {
        ServerNonInvite { state: State::Trying, last_response: None }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The request arrived again.
    pub fn recv_request(&mut self, cx: &mut Cx<'_>) {
        if let (State::Proceeding | State::Completed, Some(r)) = (self.state, &self.last_response) {
            cx.out.push(Step::Send(r.clone()));
        }
    }

    /// The TU sends a response with `status`, printed as `bytes`.
    pub fn send_response(
        &mut self,
        cx: &mut Cx<'_>,
        status: u16,
        bytes: Bytes,
    ) -> Result<(), TransactionError> {
        match (self.state, status) {
            (State::Trying | State::Proceeding, 100..=199) => self.state = State::Proceeding,
            (State::Trying | State::Proceeding, 200..=699) => {
                self.state = State::Completed;
                cx.arm(Timer::J);
            }
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
        if let (State::Completed, Timer::J) = (self.state, timer) {
            self.state = State::Terminated;
            cx.out.push(Step::Terminated);
        }
    }
}

impl Default for ServerNonInvite {
    fn default() -> Self {
        ServerNonInvite::new()
    }
}
