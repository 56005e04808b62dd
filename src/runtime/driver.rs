//! The core task: the one task that owns the sans-IO SIP endpoint and the call logic. Socket tasks
//! send it what arrived; it feeds the core with the current time, carries out what the core wants
//! sent, and sleeps until the core's next timeout. Runtime layer: no protocol decisions are made here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use metrics::counter;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::metrics::{SIP_INVALID, SIP_MESSAGES};
use crate::sip::endpoint::{Endpoint, EndpointConfig, UaEvent};
use crate::sip::message::Frame;
use crate::sip::transaction::Transmit;
use crate::sip::transport::{Flow, Transport};

/// What socket tasks send the core task.
#[derive(Debug)]
pub enum CoreInput {
    /// A UDP datagram.
    Datagram(Flow, Bytes),
    /// A framed message (or keep-alive) from a TCP connection.
    Frame(Flow, Frame),
    /// A TCP stream that could not be framed; the connection task closed it.
    Unframable(Flow),
    /// A TCP connection opened; the core writes to it through the sender.
    Connected(Flow, mpsc::Sender<Bytes>),
    /// A TCP connection closed.
    Closed(Flow),
}

/// The current time as the sans-IO core takes it: tokio's clock (so that paused-time tests reach the
/// core), as a std `Instant`.
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The endpoint settings from the configuration.
pub fn endpoint_config(config: &crate::config::Config) -> EndpointConfig {
    EndpointConfig {
        timers: config.sip.timers.into(),
        trunk_allow: config.trunk.allow.clone(),
        numbers: config.trunk.numbers.clone(),
        user_agent: config.sip.user_agent.clone(),
        retry_after: config.sip.retry_after,
        force_rport: config.sip.force_rport,
    }
}

/// The state the core task owns.
pub struct Core {
    endpoint: Endpoint,
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    tcp: HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Bytes>>,
    shared: Arc<Shared>,
}

impl Core {
    /// A core over the bound UDP sockets.
    pub fn new(shared: Arc<Shared>, udp: Vec<Arc<UdpSocket>>, salt: u64) -> Core {
        let endpoint = Endpoint::new(endpoint_config(&shared.config()), salt);
        let udp = udp.into_iter().filter_map(|s| Some((s.local_addr().ok()?, s))).collect();
        Core { endpoint, udp, tcp: HashMap::new(), shared }
    }

    /// Runs until `stop` is cancelled or every input sender is gone.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<CoreInput>, stop: CancellationToken) {
        let mut config = self.shared.config.subscribe();
        loop {
            let wake =
                self.endpoint.poll_timeout().map(tokio::time::Instant::from_std).unwrap_or_else(
                    || tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
                );
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(input) => self.input(input),
                    None => break,
                },
                changed = config.changed() => {
                    if changed.is_ok() {
                        let c = config.borrow_and_update().clone();
                        self.endpoint.set_config(endpoint_config(&c));
                    }
                }
                _ = tokio::time::sleep_until(wake) => self.endpoint.handle_timeout(now()),
            }
            self.endpoint.set_draining(self.shared.is_draining());
            self.drain();
        }
    }

    fn input(&mut self, input: CoreInput) {
        match input {
            CoreInput::Datagram(flow, bytes) => self.endpoint.handle_datagram(now(), flow, bytes),
            CoreInput::Frame(flow, frame) => self.endpoint.handle_frame(now(), flow, frame),
            CoreInput::Unframable(_) => self.endpoint.count_unframable(),
            CoreInput::Connected(flow, tx) => {
                self.tcp.insert((flow.local, flow.remote), tx);
            }
            CoreInput::Closed(flow) => {
                self.tcp.remove(&(flow.local, flow.remote));
            }
        }
    }

    /// Carries out everything the core produced.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                self.transmit(t);
                progressed = true;
            }
            while let Some(e) = self.endpoint.poll_event() {
                self.event(e);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.export_stats();
    }

    fn event(&mut self, event: UaEvent) {
        let now = now();
        match event {
            // Until the call flow lands, every call is refused with the code a trunk retries
            // elsewhere for a single call (not 503, which makes it skip this destination).
            UaEvent::IncomingCall { txn, .. } => self.endpoint.reject(now, txn, 480, &[]),
            UaEvent::Register { txn, request, .. } => {
                let r = crate::sip::message::Response::for_request(&request, 403, None);
                self.endpoint.respond(now, txn, r);
            }
            UaEvent::InDialog { txn, request, .. } => {
                let r = crate::sip::message::Response::for_request(&request, 488, None);
                self.endpoint.respond(now, txn, r);
            }
            UaEvent::AckTimeout { dialog } => {
                self.endpoint.bye(now, &dialog);
            }
            UaEvent::CallCancelled { .. }
            | UaEvent::Confirmed { .. }
            | UaEvent::Bye { .. }
            | UaEvent::Response { .. }
            | UaEvent::Timeout { .. } => {}
        }
    }

    fn transmit(&mut self, t: Transmit) {
        match t.flow.transport {
            Transport::Udp => {
                let Some(socket) = self.udp.get(&t.flow.local) else {
                    tracing::warn!(flow = %t.flow, "no UDP socket for flow");
                    return;
                };
                if let Err(e) = socket.try_send_to(&t.bytes, t.flow.remote) {
                    tracing::debug!(flow = %t.flow, error = %e, "SIP UDP send failed");
                }
            }
            Transport::Tcp => match self.tcp.get(&(t.flow.local, t.flow.remote)) {
                Some(tx) => {
                    if tx.try_send(t.bytes).is_err() {
                        tracing::warn!(flow = %t.flow, "SIP TCP write queue full; message dropped");
                    }
                }
                None => {
                    tracing::debug!(flow = %t.flow, "no TCP connection for flow; message dropped")
                }
            },
        }
    }

    fn export_stats(&mut self) {
        let s = self.endpoint.take_stats();
        let count = |direction: &'static str, kind: &'static str, n: u64| {
            if n > 0 {
                counter!(SIP_MESSAGES, "direction" => direction, "kind" => kind).increment(n);
            }
        };
        count("in", "request", s.requests_in);
        count("in", "response", s.responses_in);
        count("in", "keepalive", s.keepalives_in);
        count("out", "request", s.requests_out);
        count("out", "response", s.responses_out);
        for (reason, n) in s.invalid {
            counter!(SIP_INVALID, "reason" => reason).increment(n);
        }
    }
}
