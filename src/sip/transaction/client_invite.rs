//! The INVITE client transaction (RFC 3261 §17.1.1, Figure 5, with the Accepted state of RFC 6026 §8.4).
//! Protocol layer, sans-IO.
//!
//! ```text
//!                                |INVITE from TU
//!              Timer A fires     |INVITE sent
//!              Reset A,          V                      Timer B fires
//!              INVITE sent +-----------+                or Transport Err.
//!                +---------|           |---------------+inform TU
//!                |         |  Calling  |               |
//!                +-------->|           |-------------->|
//!                          +-----------+ 2xx           |
//!                             |  |       2xx to TU     |
//!                             |  |1xx                  |
//!     300-699 +---------------+  |1xx to TU            |
//!    ACK sent |                  |                     |
//! resp. to TU |  1xx             V                     |
//!             |  1xx to TU  -----------+               |
//!             |  +---------|           |               |
//!             |  |         |Proceeding |-------------->|
//!             |  +-------->|           | 2xx           |
//!             |            +-----------+ 2xx to TU     |
//!             |       300-699    |                     |
//!             |       ACK sent,  |      +-----------+  |
//!             |       resp. to TU|      | Accepted  |  | 2xx: to TU (the TU ACKs)
//!             |                  |      +-----------+  | Timer M fires
//!             |  300-699         V                     V
//!             |  ACK sent  +-----------+          Terminated
//!             |  +---------|           |
//!             |  |         | Completed |
//!             |  +-------->|           |
//!             |            +-----------+
//!             |                 |Timer D fires
//!             +---------------->V
//!                           Terminated
//! ```

use bytes::Bytes;

use super::timer::Timer;
use super::{Cx, Delivery, Request, Response, Step};
use crate::sip::message::{Method, name};

/// The states of Figure 5 plus Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE sent, no response yet.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A 300–699 arrived and was ACKed; absorbing its retransmissions.
    Completed,
    /// A 2xx arrived (RFC 6026): further 2xx (other forks, retransmissions) go to the TU.
    Accepted,
    /// Done.
    Terminated,
}

/// One INVITE client transaction.
#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    request: Request,
    bytes: Bytes,
    ack: Option<Bytes>,
    a_interval: std::time::Duration,
}

impl ClientInvite {
    /// Starts the transaction: sends the INVITE and arms A (unreliable) and B.
    pub fn start(cx: &mut Cx<'_>, request: Request, bytes: Bytes) -> ClientInvite {
        cx.out.push(Step::Send(bytes.clone()));
        if !cx.reliable {
            cx.arm(Timer::A);
        }
        cx.arm(Timer::B);
        ClientInvite { state: State::Calling, request, bytes, ack: None, a_interval: cx.values.t1 }
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
        let status = response.status;
        match (self.state, status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                cx.out.push(Step::Disarm(Timer::A));
                cx.out.push(Step::Deliver(Delivery::Response(Box::new(response))));
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                cx.out.push(Step::Disarm(Timer::A));
                cx.out.push(Step::Disarm(Timer::B));
                cx.arm(Timer::M);
                cx.out.push(Step::Deliver(Delivery::Response(Box::new(response))));
            }
            (State::Calling | State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                let ack = self.ack_for(&response).to_bytes();
                cx.out.push(Step::Send(ack.clone()));
                self.ack = Some(ack);
                cx.out.push(Step::Disarm(Timer::A));
                cx.out.push(Step::Disarm(Timer::B));
                cx.arm(Timer::D);
                cx.out.push(Step::Deliver(Delivery::Response(Box::new(response))));
            }
            (State::Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    cx.out.push(Step::Send(ack.clone()));
                }
            }
            (State::Accepted, 200..=299) => {
                cx.out.push(Step::Deliver(Delivery::Response(Box::new(response))))
            }
            _ => {}
        }
    }

    /// `timer` fired.
    pub fn on_timer(&mut self, cx: &mut Cx<'_>, timer: Timer) {
        match (self.state, timer) {
            (State::Calling, Timer::A) => {
                cx.out.push(Step::Send(self.bytes.clone()));
                self.a_interval = cx.values.backoff(Timer::A, self.a_interval);
                cx.out.push(Step::Arm(Timer::A, self.a_interval));
            }
            (State::Calling | State::Proceeding, Timer::B) => {
                self.state = State::Terminated;
                cx.out.push(Step::Deliver(Delivery::Timeout));
                cx.out.push(Step::Terminated);
            }
            (State::Completed, Timer::D) | (State::Accepted, Timer::M) => {
                self.state = State::Terminated;
                cx.out.push(Step::Terminated);
            }
            _ => {}
        }
    }

    /// The ACK for a non-2xx final response (§17.1.1.3): the INVITE's Request-URI, top Via, From,
    /// Call-ID, CSeq number and Route; the response's To (with its tag).
    fn ack_for(&self, response: &Response) -> Request {
        let mut ack = Request::new(Method::Ack, self.request.uri.clone());
        let h = &self.request.headers;
        if let Some(via) = h.get(name::VIA) {
            let top = h.top_via().map(|v| Bytes::from(v.to_string())).unwrap_or(via.clone());
            ack.headers.push(name::VIA, top);
        }
        for n in [name::MAX_FORWARDS, name::FROM] {
            if let Some(v) = h.get(n) {
                ack.headers.push(n, v.clone());
            }
        }
        if let Some(to) = response.headers.get(name::TO) {
            ack.headers.push(name::TO, to.clone());
        }
        if let Some(v) = h.get(name::CALL_ID) {
            ack.headers.push(name::CALL_ID, v.clone());
        }
        if let Ok(cseq) = h.cseq() {
            ack.headers.push(name::CSEQ, format!("{} ACK", cseq.seq));
        }
        for route in h.get_all(name::ROUTE) {
            ack.headers.push(name::ROUTE, route.clone());
        }
        ack
    }
}
