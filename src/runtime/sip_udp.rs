//! SIP over UDP: one receive loop per socket, handing each datagram to the core task. Sending is done
//! by the core itself with `try_send_to` (UDP sends do not block; a full buffer drops the datagram,
//! which SIP's retransmissions cover). Runtime layer.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::driver::CoreInput;
use crate::sip::transport::{Flow, Transport};

/// The largest datagram read; a bigger one is truncated by the kernel and then fails to parse.
const MAX_DATAGRAM: usize = 65_535;

/// Receives datagrams on `socket` until `stop` is cancelled.
pub async fn serve(socket: Arc<UdpSocket>, core: mpsc::Sender<CoreInput>, stop: CancellationToken) {
    let Ok(local) = socket.local_addr() else { return };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        match received {
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
