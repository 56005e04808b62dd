//! SIP over UDP: one receive loop per socket, handing each datagram to the core task. Sending is done
//! by the core itself with `try_send_to` (UDP sends do not block; a full buffer drops the datagram,
//! which SIP's retransmissions cover). Datagrams larger than [`MAX_UDP_MESSAGE`] are dropped here,
//! counted under `tongdai_sip_invalid_messages_total{reason="too_large"}`, and never answered.
//! Datagrams from a source over its rate limit ([`Limits`]) are dropped here, before they cost
//! the core anything. Runtime layer.

use std::sync::Arc;

use bytes::Bytes;
use metrics::counter;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::driver::CoreInput;
use super::limits::Limits;
use crate::metrics::SIP_INVALID;
use crate::sip::transport::{Flow, Transport};

/// The largest SIP message taken over UDP. RFC 3261 §18.1.1 moves any request near the path MTU
/// to TCP, so real trunks and softphones stay far below this; the crate-wide
/// [`crate::sip::message::MAX_MESSAGE_SIZE`] (64 KiB) can never be exceeded by a datagram (UDP
/// carries at most 65 507 octets over IPv4), so this tighter cap is what bounds the work a flood of
/// jumbo datagrams costs the core.
pub const MAX_UDP_MESSAGE: usize = 32 * 1024;

/// The receive buffer: the largest UDP payload, so that the kernel never truncates silently and an
/// oversized datagram is seen whole, then dropped.
const RECEIVE_BUFFER: usize = 65_535;

/// The `reason` label for a datagram over [`MAX_UDP_MESSAGE`].
pub const TOO_LARGE: &str = "too_large";

/// Receives datagrams on `socket` until `stop` is cancelled.
pub async fn serve(
    socket: Arc<UdpSocket>,
    core: mpsc::Sender<CoreInput>,
    limits: Limits,
    stop: CancellationToken,
) {
    let Ok(local) = socket.local_addr() else { return };
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        match received {
            Ok((_, remote)) if !limits.admit(remote.ip(), "udp") => {}
            Ok((len, remote)) if len > MAX_UDP_MESSAGE => {
                // No reply: a response to a forged source would make us an amplifier.
                tracing::debug!(%remote, len, "oversized SIP UDP datagram dropped");
                counter!(SIP_INVALID, "reason" => TOO_LARGE).increment(1);
            }
            Ok((len, remote)) => {
                let flow = Flow { transport: Transport::Udp, local, remote };
                let input = CoreInput::Datagram(flow, Bytes::copy_from_slice(&buf[..len]));
                if core.send(input).await.is_err() {
                    return;
                }
            }
            // ICMP port-unreachable from an earlier send shows up here on Linux: not fatal.
            Err(e) => tracing::debug!(error = %e, "SIP UDP receive error"),
        }
    }
}
