//! SIP over TCP: the accept loop and one task per connection. Each connection frames its byte
//! stream with the sans-IO [`StreamFramer`] and hands frames to the core; the core writes back through
//! the connection's queue. A stream that cannot be framed is closed and counted. Runtime layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::driver::CoreInput;
use crate::sip::message::StreamFramer;
use crate::sip::transport::{Flow, Transport};

/// At most this many SIP TCP connections at once; more are refused at accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// A connection with no traffic for this long is closed (clients with a registration refresh and
/// keep-alive far more often).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Messages queued for one connection before further ones are dropped (the peer is not reading).
const WRITE_QUEUE: usize = 256;

/// Accepts connections on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    core: mpsc::Sender<CoreInput>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, remote)) => {
                if open.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                    tracing::warn!(%remote, "SIP TCP connection refused: too many connections");
                    continue;
                }
                let Ok(local) = stream.local_addr() else { continue };
                let flow = Flow { transport: Transport::Tcp, local, remote };
                open.fetch_add(1, Ordering::AcqRel);
                let open = open.clone();
                let (core, stop) = (core.clone(), stop.clone());
                tasks.spawn(async move {
                    connection(stream, flow, core, stop).await;
                    open.fetch_sub(1, Ordering::AcqRel);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIP TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    flow: Flow,
    core: mpsc::Sender<CoreInput>,
    stop: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    if core.send(CoreInput::Connected(flow, tx)).await.is_err() {
        return;
    }
    let (mut reader, mut writer) = stream.into_split();
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            out = rx.recv() => match out {
                Some(bytes) => if writer.write_all(&bytes).await.is_err() { break },
                None => break,
            },
            read = tokio::time::timeout(IDLE_TIMEOUT, reader.read(&mut buf)) => {
                let n = match read {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Err(_) => { tracing::debug!(%flow, "idle SIP TCP connection closed"); break }
                    Ok(Ok(n)) => n,
                };
                framer.push(&buf[..n]);
                let mut failed = false;
                loop {
                    match framer.pop() {
                        Ok(Some(frame)) => {
                            if core.send(CoreInput::Frame(flow, Box::new(frame))).await.is_err() { return; }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::info!(%flow, error = %e.kind, "SIP TCP stream cannot be framed; closing");
                            let _ = core.send(CoreInput::Unframable(flow)).await;
                            failed = true;
                            break;
                        }
                    }
                }
                if failed { break }
            }
        }
    }
    let _ = core.send(CoreInput::Closed(flow)).await;
}
