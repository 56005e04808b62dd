//! The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6). Protocol layer, sans-IO.
//!
//! ```text
//!                                    |Request from TU
//!                                    |send request
//!                Timer E             V
//!                send request  +-----------+
//!                    +---------|           |-------------------+
//!                    |         |  Trying   |  Timer F          |
//!                    +-------->|           |  or Transport Err.|
//!                              +-----------+  inform TU        |
//!                 200-699         |  |                         |
//!                 resp. to TU     |  |1xx                      |
//!                 +---------------+  |resp. to TU              |
//!                 |                  |                         |
//!                 |   Timer E        V       Timer F           |
//!                 |   send req +-----------+ or Transport Err. |
//!                 |  +---------|           | inform TU         |
//!                 |  |         |Proceeding |------------------>|
//!                 |  +-------->|           |-----+             |
//!                 |            +-----------+     |1xx          |
//!                 |              |      ^        |resp to TU   |
//!                 | 200-699      |      +--------+             |
//!                 | resp. to TU  |                             |
//!                 |              |                             |
//!                 |              V                             |
//!                 |            +-----------+                   |
//!                 |            |           |                   |
//!                 |            | Completed |                   |
//!                 |            |           |                   |
//!                 |            +-----------+                   |
//!                 |              ^   |                         |
//!                 |              |   | Timer K                 |
//!                 +--------------+   | -                       |
//!                                    |                         |
//!                                    V                         |
//!              NOTE:           +-----------+                   |
//!                              |           |                   |
//!          transitions         | Terminated|<------------------+
//!          labeled with        |           |
//!          the event           +-----------+
//!          over the action
//!          to take
//! ```

use bytes::Bytes;

use super::timer::Timer;
use super::{Cx, Delivery, Request, Response, Step};

/// The states of Figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Request sent, no response yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; absorbing its retransmissions.
    Completed,
    /// Done.
    Terminated,
}

/// One non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: State,
    request: Request,
    bytes: Bytes,
    e_interval: std::time::Duration,
}

impl ClientNonInvite {
    /// Starts the transaction: sends the request and arms E (unreliable) and F.
    pub fn start(cx: &mut Cx<'_>, request: Request, bytes: Bytes) -> ClientNonInvite {
        cx.out.push(Step::Send(bytes.clone()));
        if !cx.reliable {
            cx.arm(Timer::E);
        }
        cx.arm(Timer::F);
        ClientNonInvite { state: State::Trying, request, bytes, e_interval: cx.values.t1 }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The request this transaction sent.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A response matched this transaction.
    pub fn recv_response(&mut self, cx: &mut Cx<'_>, response: Response) {
        match (self.state, response.status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                cx.out.push(Step::Deliver(Delivery::Response(Box::new(response))));
            }
            (State::Trying | State::Proceeding, 200..=699) => {
                self.state = State::Completed;
                cx.out.push(Step::Disarm(Timer::E));
                cx.out.push(Step::Disarm(Timer::F));
                cx.arm(Timer::K);
                cx.out.push(Step::Deliver(Delivery::Response(Box::new(response))));
            }
            _ => {}
        }
    }

    /// `timer` fired.
    pub fn on_timer(&mut self, cx: &mut Cx<'_>, timer: Timer) {
        match (self.state, timer) {
            (State::Trying | State::Proceeding, Timer::E) => {
                cx.out.push(Step::Send(self.bytes.clone()));
                // §17.1.2.2: in Proceeding the interval is T2 at once.
                self.e_interval = if self.state == State::Proceeding {
                    cx.values.t2
                } else {
                    cx.values.backoff(Timer::E, self.e_interval)
                };
                cx.out.push(Step::Arm(Timer::E, self.e_interval));
            }
            (State::Trying | State::Proceeding, Timer::F) => {
                self.state = State::Terminated;
                cx.out.push(Step::Deliver(Delivery::Timeout));
                cx.out.push(Step::Terminated);
            }
            (State::Completed, Timer::K) => {
                self.state = State::Terminated;
                cx.out.push(Step::Terminated);
            }
            _ => {}
        }
    }
}
