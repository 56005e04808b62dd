//! SIP over TCP: the accept loop and one task per connection. Each connection frames its byte
//! stream with the sans-IO [`StreamFramer`] and hands frames to the core; the core writes back through
//! the connection's queue. A stream that cannot be framed is closed and counted. Runtime layer.
//!
//! Idle connections are closed after [`IDLE_TIMEOUT`], except those that carry state the far end
//! relies on (RFC 5626 §3: a registered user agent behind NAT is reachable only over the flow it
//! registered on). The connection task learns this from the messages it carries, without asking the
//! core: a 2xx to REGISTER that it writes pins the connection until the longest binding in that
//! response expires (a later 2xx re-pins or, with no live binding, unpins), and a 2xx to an INVITE
//! in either direction pins it until a BYE for that Call-ID passes either way (at most 12 hours,
//! in case the BYE took another path). See [`Pins`].
//!
//! Caps: at most `[limits] max_tcp_connections` connections ([`Limits::max_tcp_connections`]; more
//! are refused at accept — closed at once, before a byte is read — and counted); a source over its
//! rate limit ([`Limits`]) has its connection closed and new ones refused while banned.

use std::collections::HashMap;
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
use super::limits::Limits;
use crate::metrics::{SIP_TCP_CONNECTIONS, SIP_TCP_REFUSED};
use crate::sip::message::{Frame, Message, Method, StreamFramer, parse_datagram};
use crate::sip::transport::{Flow, Transport};

/// A connection with no traffic for this long is closed, unless `Pins` keeps it (clients with a
/// registration refresh and keep-alive far more often; a call may be silent in SIP much longer).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long past its expiry a registration still pins its connection: the client's refresh may be
/// a little late, and the registrar's own expiry decides whether the binding is gone.
const REGISTRATION_GRACE: Duration = Duration::from_secs(32);
/// Dialogs remembered per connection; past this, new ones are not tracked (the connection is
/// already pinned by the others).
const MAX_PINNED_DIALOGS: usize = 64;
/// The longest a dialog pins its connection: a BYE that took another path (a new connection, UDP)
/// must not keep a dead connection forever. Far longer than any hotline call.
const MAX_DIALOG_PIN: Duration = Duration::from_secs(12 * 3600);
/// Messages queued for one connection before further ones are dropped (the peer is not reading).
const WRITE_QUEUE: usize = 256;

/// Accepts connections on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    core: mpsc::Sender<CoreInput>,
    limits: Limits,
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
                if open.load(Ordering::Acquire) >= limits.max_tcp_connections() {
                    tracing::warn!(%remote, "SIP TCP connection refused: too many connections");
                    metrics::counter!(SIP_TCP_REFUSED, "reason" => "max_connections").increment(1);
                    continue;
                }
                if limits.is_banned(remote.ip()) {
                    tracing::debug!(%remote, "SIP TCP connection refused: source rate-banned");
                    metrics::counter!(SIP_TCP_REFUSED, "reason" => "rate_banned").increment(1);
                    continue;
                }
                let Ok(local) = stream.local_addr() else { continue };
                let flow = Flow { transport: Transport::Tcp, local, remote };
                let now_open = open.fetch_add(1, Ordering::AcqRel) + 1;
                metrics::gauge!(SIP_TCP_CONNECTIONS).set(now_open as f64);
                let open = open.clone();
                let (core, stop, limits) = (core.clone(), stop.clone(), limits.clone());
                tasks.spawn(async move {
                    connection(stream, flow, core, &limits, stop, IDLE_TIMEOUT).await;
                    let now_open = open.fetch_sub(1, Ordering::AcqRel) - 1;
                    metrics::gauge!(SIP_TCP_CONNECTIONS).set(now_open as f64);
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
    limits: &Limits,
    stop: CancellationToken,
    idle_timeout: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    if core.send(CoreInput::Connected(flow, tx)).await.is_err() {
        return;
    }
    let (mut reader, mut writer) = stream.into_split();
    let mut framer = StreamFramer::new();
    let mut pins = Pins::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            out = rx.recv() => match out {
                Some(bytes) => {
                    pins.outgoing(&bytes, tokio::time::Instant::now());
                    if writer.write_all(&bytes).await.is_err() { break }
                }
                None => break,
            },
            read = tokio::time::timeout(idle_timeout, reader.read(&mut buf)) => {
                let n = match read {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Err(_) if pins.is_pinned(tokio::time::Instant::now()) => continue,
                    Err(_) => { tracing::debug!(%flow, "idle SIP TCP connection closed"); break }
                    Ok(Ok(n)) => n,
                };
                framer.push(&buf[..n]);
                let mut failed = false;
                loop {
                    match framer.pop() {
                        Ok(Some(_)) if !limits.admit(flow.remote.ip(), "tcp") => {
                            tracing::debug!(%flow, "SIP TCP source over its rate limit; closing");
                            failed = true;
                            break;
                        }
                        Ok(Some(frame)) => {
                            pins.incoming(&frame, tokio::time::Instant::now());
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

/// What keeps one connection open past [`IDLE_TIMEOUT`]: a registration made over it, until it
/// expires, and the dialogs set up over it, until their BYE. Learnt from the messages the
/// connection carries, so the core needs no channel back to its connections.
#[derive(Debug, Default)]
struct Pins {
    /// When the longest binding of the last 2xx to REGISTER sent here expires (plus grace).
    registration_until: Option<tokio::time::Instant>,
    /// Call-IDs of dialogs answered over this connection and not yet hung up, with when.
    dialogs: HashMap<String, tokio::time::Instant>,
}

impl Pins {
    /// A message the core writes to the connection.
    fn outgoing(&mut self, bytes: &Bytes, now: tokio::time::Instant) {
        // Only 2xx responses and BYEs matter; skip parsing anything else.
        if !bytes.starts_with(b"SIP/2.0 2") && !bytes.starts_with(b"BYE ") {
            return;
        }
        if let Ok(message) = parse_datagram(bytes.clone()) {
            self.message(&message, now, true);
        }
    }

    /// A frame read from the connection.
    fn incoming(&mut self, frame: &Frame, now: tokio::time::Instant) {
        if let Frame::Message(message) = frame {
            self.message(message, now, false);
        }
    }

    /// `ours`: we sent it (only a 2xx to REGISTER that we send is a binding we granted).
    fn message(&mut self, message: &Message, now: tokio::time::Instant, ours: bool) {
        let Ok(call_id) = message.headers().call_id() else { return };
        match message {
            Message::Request(r) if r.method == Method::Bye => {
                self.dialogs.remove(call_id);
            }
            Message::Request(_) => {}
            Message::Response(r) if (200..300).contains(&r.status) => {
                let Ok(cseq) = r.headers.cseq() else { return };
                match cseq.method {
                    Method::Invite => {
                        self.dialogs.retain(|_, since| now.duration_since(*since) < MAX_DIALOG_PIN);
                        if self.dialogs.len() < MAX_PINNED_DIALOGS {
                            self.dialogs.entry(call_id.to_string()).or_insert(now);
                        }
                    }
                    Method::Register if ours => {
                        self.registration_until = registration_expiry(r).map(|secs| {
                            now + Duration::from_secs(secs.into()) + REGISTRATION_GRACE
                        });
                    }
                    _ => {}
                }
            }
            Message::Response(_) => {}
        }
    }

    /// True while the connection must stay open however idle it is.
    fn is_pinned(&self, now: tokio::time::Instant) -> bool {
        self.dialogs.values().any(|since| now.duration_since(*since) < MAX_DIALOG_PIN)
            || self.registration_until.is_some_and(|until| now < until)
    }
}

/// The longest binding a registrar's 2xx grants (RFC 3261 §10.3 step 8: every Contact carries its
/// `expires`; the Expires header is the fallback), `None` when no binding is left.
fn registration_expiry(response: &crate::sip::message::Response) -> Option<u32> {
    let default = response.headers.expires().ok().flatten();
    let contacts = match response.headers.contacts() {
        Ok(crate::sip::message::Contacts::List(list)) => list,
        _ => return None,
    };
    contacts.iter().filter_map(|c| c.expires.or(default)).filter(|&e| e > 0).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Bytes {
        Bytes::from(text.replace('\n', "\r\n"))
    }

    fn response(status: &str, method: &str, call_id: &str, extra: &str) -> Bytes {
        message(&format!(
            "SIP/2.0 {status}\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\n\
             From: <sip:a@x>;tag=1\nTo: <sip:a@x>;tag=2\nCall-ID: {call_id}\n\
             CSeq: 1 {method}\n{extra}Content-Length: 0\n\n"
        ))
    }

    fn bye(call_id: &str) -> Bytes {
        message(&format!(
            "BYE sip:a@x SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK2\n\
             Max-Forwards: 70\nFrom: <sip:a@x>;tag=1\nTo: <sip:a@x>;tag=2\n\
             Call-ID: {call_id}\nCSeq: 2 BYE\nContent-Length: 0\n\n"
        ))
    }

    fn frame(bytes: Bytes) -> Frame {
        Frame::Message(parse_datagram(bytes).unwrap())
    }

    #[test]
    fn a_registration_pins_until_its_longest_binding_expires() {
        let t0 = tokio::time::Instant::now();
        let mut pins = Pins::default();
        assert!(!pins.is_pinned(t0));
        // A 401 challenge pins nothing.
        pins.outgoing(&response("401 Unauthorized", "REGISTER", "r1", ""), t0);
        assert!(!pins.is_pinned(t0));
        let ok = response(
            "200 OK",
            "REGISTER",
            "r1",
            "Contact: <sip:a@1.2.3.4;transport=tcp>;expires=3600\n\
             Contact: <sip:a@5.6.7.8>;expires=60\n",
        );
        pins.outgoing(&ok, t0);
        let expiry = Duration::from_secs(3600) + REGISTRATION_GRACE;
        assert!(pins.is_pinned(t0 + IDLE_TIMEOUT));
        assert!(pins.is_pinned(t0 + expiry - Duration::from_secs(1)));
        assert!(!pins.is_pinned(t0 + expiry));
        // Unregistering (no binding left in the 2xx) unpins at once.
        pins.outgoing(&response("200 OK", "REGISTER", "r1", ""), t0);
        assert!(!pins.is_pinned(t0));
    }

    #[test]
    fn the_expires_header_is_the_fallback_and_zero_is_no_binding() {
        let t0 = tokio::time::Instant::now();
        let mut pins = Pins::default();
        let extra = "Contact: <sip:a@1.2.3.4>\nExpires: 900\n";
        pins.outgoing(&response("200 OK", "REGISTER", "r1", extra), t0);
        assert!(pins.is_pinned(t0 + Duration::from_secs(900)));
        let extra = "Contact: <sip:a@1.2.3.4>;expires=0\n";
        pins.outgoing(&response("200 OK", "REGISTER", "r1", extra), t0);
        assert!(!pins.is_pinned(t0));
    }

    #[test]
    fn a_dialog_pins_until_its_bye_either_way() {
        let t0 = tokio::time::Instant::now();
        let mut pins = Pins::default();
        // We answered an INVITE that came over this connection.
        pins.outgoing(&response("200 OK", "INVITE", "c1", ""), t0);
        // We sent an INVITE over it and the agent answered.
        pins.incoming(&frame(response("200 OK", "INVITE", "c2", "")), t0);
        // A provisional or an error pins nothing.
        pins.incoming(&frame(response("486 Busy Here", "INVITE", "c3", "")), t0);
        assert!(pins.is_pinned(t0 + IDLE_TIMEOUT * 50));
        // A dialog whose BYE never passes here stops pinning after MAX_DIALOG_PIN.
        assert!(!pins.is_pinned(t0 + MAX_DIALOG_PIN));
        pins.incoming(&frame(bye("c1")), t0);
        assert!(pins.is_pinned(t0));
        pins.outgoing(&bye("c2"), t0);
        assert!(!pins.is_pinned(t0));
    }

    #[test]
    fn a_2xx_to_register_received_pins_nothing() {
        let t0 = tokio::time::Instant::now();
        let mut pins = Pins::default();
        let extra = "Contact: <sip:a@1.2.3.4>;expires=3600\n";
        pins.incoming(&frame(response("200 OK", "REGISTER", "r1", extra)), t0);
        assert!(!pins.is_pinned(t0));
    }

    async fn closed(rx: &mut mpsc::Receiver<CoreInput>, within: Duration) -> bool {
        matches!(tokio::time::timeout(within, rx.recv()).await, Ok(Some(CoreInput::Closed(_))))
    }

    /// The connection task with a short idle timeout: an idle connection closes; one that carries
    /// a dialog stays open through many idle periods and closes after its BYE.
    #[tokio::test]
    async fn idle_connections_close_but_pinned_ones_stay_open() {
        use tokio::net::TcpStream;

        let idle = Duration::from_millis(50);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stop = CancellationToken::new();
        for pinned in [false, true] {
            let local = listener.local_addr().unwrap();
            let (client, server) = tokio::join!(TcpStream::connect(local), listener.accept());
            let (client, server) = (client.unwrap(), server.unwrap().0);
            let flow = Flow {
                transport: Transport::Tcp,
                local: server.local_addr().unwrap(),
                remote: server.peer_addr().unwrap(),
            };
            let (core_tx, mut core_rx) = mpsc::channel(16);
            let limits = Limits::new(Default::default());
            let stop = stop.clone();
            let task = tokio::spawn(async move {
                connection(server, flow, core_tx, &limits, stop, idle).await
            });
            let Some(CoreInput::Connected(_, tx)) = core_rx.recv().await else { panic!() };
            if pinned {
                tx.send(response("200 OK", "INVITE", "c1", "")).await.unwrap();
                // Ten idle periods: a pinned connection is never closed, whatever the timing.
                assert!(!closed(&mut core_rx, idle * 10).await, "pinned connection closed");
                tx.send(bye("c1")).await.unwrap();
            }
            assert!(closed(&mut core_rx, Duration::from_secs(5)).await, "idle connection kept");
            task.await.unwrap();
            drop(client);
        }
    }
}
