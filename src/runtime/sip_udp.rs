//! SIP over UDP: one receive loop per socket. Runtime layer: it moves datagrams between the socket and
//! the SIP core and counts them.

use std::sync::Arc;

use metrics::counter;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::metrics::SIP_MESSAGES;

/// The largest datagram read; bigger ones are truncated by the kernel and fail to parse.
const MAX_DATAGRAM: usize = 65_535;

/// Receives datagrams on `socket` until `stop` is cancelled.
pub async fn serve(socket: UdpSocket, _shared: Arc<Shared>, stop: CancellationToken) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        match received {
            Ok((_len, _peer)) => {
                counter!(SIP_MESSAGES, "direction" => "in", "kind" => "request").increment(1);
            }
            // ICMP port-unreachable from an earlier send shows up here on Linux: not fatal.
            Err(e) => tracing::debug!(error = %e, "SIP UDP receive error"),
        }
    }
}
