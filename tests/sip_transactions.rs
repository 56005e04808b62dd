//! The RFC 3261 §17 transaction machines on virtual time: every timer path of each machine, over UDP
//! and TCP, matching (RFC 3261 and RFC 2543 style), CANCEL lookup and stray responses. No sockets, no
//! sleeping: a whole 32-second Timer B runs in microseconds.

use std::time::{Duration, Instant};

use tongdai::sip::message::{Message, Request, Response, parse_datagram};
use tongdai::sip::transaction::timer::TimerValues;
use tongdai::sip::transaction::{Event, Received, Transactions, Transmit, TxnId};
use tongdai::sip::transport::{Flow, Transport};

const PEER: &str = "127.0.0.1:5070";

fn flow(transport: Transport) -> Flow {
    Flow { transport, local: "127.0.0.1:5060".parse().unwrap(), remote: PEER.parse().unwrap() }
}

fn request(method: &str, branch: &str, extra: &str) -> Request {
    let text = format!(
        "{method} sip:111@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n\
         From: <sip:0901234567@trunk>;tag=a1\r\n\
         To: <sip:111@127.0.0.1>{extra}\r\n\
         Call-ID: c1@trunk\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(text.into_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn response_to(req: &Request, status: u16) -> Response {
    Response::for_request(req, status, Some("b2"))
}

/// A transaction layer on a virtual clock.
struct Sim {
    t: Transactions,
    start: Instant,
    now: Instant,
    sent: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, Event)>,
}

impl Sim {
    fn new() -> Sim {
        let start = Instant::now();
        Sim {
            t: Transactions::new(TimerValues::default(), 7),
            start,
            now: start,
            sent: vec![],
            events: vec![],
        }
    }

    fn drain(&mut self) {
        let at = self.now - self.start;
        while let Some(x) = self.t.poll_transmit() {
            self.sent.push((at, x));
        }
        while let Some(e) = self.t.poll_event() {
            self.events.push((at, e));
        }
    }

    /// Advances virtual time to `until` (seconds from the start), firing timers on the way.
    fn run_until(&mut self, until: f64) {
        let end = self.start + Duration::from_secs_f64(until);
        while let Some(at) = self.t.poll_timeout() {
            if at > end {
                break;
            }
            self.now = at.max(self.now);
            self.t.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    fn recv(&mut self, transport: Transport, req: Request) -> Received {
        let r = self.t.recv_request(self.now, flow(transport), req);
        self.drain();
        r
    }

    fn new_server(&mut self, transport: Transport, req: Request) -> (TxnId, Request) {
        match self.recv(transport, req) {
            Received::New { id, request, .. } => (id, request),
            other => panic!("{other:?}"),
        }
    }

    fn respond(&mut self, id: TxnId, resp: &Response) {
        self.t.respond(self.now, id, resp).unwrap();
        self.drain();
    }

    /// Start lines of what was sent, with the second it was sent at.
    fn sent_lines(&self) -> Vec<(f64, String)> {
        self.sent
            .iter()
            .map(|(at, x)| {
                let text = String::from_utf8_lossy(&x.bytes).into_owned();
                (at.as_secs_f64(), text.lines().next().unwrap_or("").to_string())
            })
            .collect()
    }

    fn count_sent(&self, start_line: &str) -> usize {
        self.sent_lines().iter().filter(|(_, l)| l == start_line).count()
    }

    fn terminated(&self, id: TxnId) -> Option<f64> {
        self.events.iter().find_map(|(at, e)| {
            matches!(e, Event::Terminated { id: x } if *x == id).then_some(at.as_secs_f64())
        })
    }
}

#[test]
fn server_invite_sends_100_at_once_and_absorbs_retransmissions() {
    let mut s = Sim::new();
    let (_, req) = s.new_server(Transport::Udp, request("INVITE", "z9hG4bKinv1", ""));
    assert_eq!(s.sent_lines(), vec![(0.0, "SIP/2.0 100 Trying".to_string())]);
    // The Via of what we answer carries received/rport (RFC 3581).
    let trying = String::from_utf8_lossy(&s.sent[0].1.bytes).into_owned();
    assert!(trying.contains("rport=5070"), "{trying}");
    assert_eq!(req.headers.top_via().unwrap().rport(), Some(Some(5070)));
    // Retransmission: absorbed, the last provisional is repeated.
    assert!(matches!(
        s.recv(Transport::Udp, request("INVITE", "z9hG4bKinv1", "")),
        Received::Absorbed
    ));
    assert_eq!(s.count_sent("SIP/2.0 100 Trying"), 2);
    assert_eq!(s.t.len(), 1);
}

#[test]
fn server_invite_error_response_is_retransmitted_by_timer_g_until_ack() {
    let mut s = Sim::new();
    let (id, req) = s.new_server(Transport::Udp, request("INVITE", "z9hG4bKinv2", ""));
    s.respond(id, &response_to(&req, 486));
    s.run_until(4.0);
    // Sent at 0, then G at 0.5, 1.5, 3.5 (T1 doubling).
    let times: Vec<f64> = s
        .sent_lines()
        .into_iter()
        .filter(|(_, l)| l.starts_with("SIP/2.0 486"))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(times, vec![0.0, 0.5, 1.5, 3.5]);
    // ACK → Confirmed: no more 486, Terminated after T4 = 5 s.
    assert!(matches!(
        s.recv(Transport::Udp, request("ACK", "z9hG4bKinv2", ";tag=b2")),
        Received::Absorbed
    ));
    s.run_until(20.0);
    assert_eq!(s.count_sent("SIP/2.0 486 Busy Here"), 4);
    assert_eq!(s.terminated(id), Some(9.0));
}

#[test]
fn server_invite_without_ack_times_out_with_timer_h() {
    let mut s = Sim::new();
    let (id, req) = s.new_server(Transport::Udp, request("INVITE", "z9hG4bKinv3", ""));
    s.respond(id, &response_to(&req, 480));
    s.run_until(40.0);
    // G: 0.5, 1.5, 3.5, 7.5, then capped at T2 = 4 s: 11.5 … 31.5 → 1 + 10 sends before H at 32 s.
    assert_eq!(s.count_sent("SIP/2.0 480 Temporarily Unavailable"), 11);
    assert!(s.events.iter().any(|(at, e)| matches!(e, Event::NoAck { .. }) && at.as_secs() == 32));
    assert_eq!(s.terminated(id), Some(32.0));
}

#[test]
fn server_invite_2xx_goes_to_accepted_and_ends_after_timer_l() {
    let mut s = Sim::new();
    let (id, req) = s.new_server(Transport::Udp, request("INVITE", "z9hG4bKinv4", ""));
    s.respond(id, &response_to(&req, 200));
    // INVITE retransmission in Accepted: absorbed without resending (the dialog retransmits 2xx).
    s.recv(Transport::Udp, request("INVITE", "z9hG4bKinv4", ""));
    assert_eq!(s.count_sent("SIP/2.0 200 OK"), 1);
    // The TU's 2xx retransmission passes through.
    s.respond(id, &response_to(&req, 200));
    assert_eq!(s.count_sent("SIP/2.0 200 OK"), 2);
    // A second, different final response is refused.
    assert!(s.t.respond(s.now, id, &response_to(&req, 486)).is_err());
    s.run_until(40.0);
    assert_eq!(s.terminated(id), Some(32.0));
}

#[test]
fn server_invite_over_tcp_does_not_retransmit_and_ends_at_once_after_ack() {
    let mut s = Sim::new();
    let (id, req) = s.new_server(Transport::Tcp, request("INVITE", "z9hG4bKinv5", ""));
    s.respond(id, &response_to(&req, 486));
    s.run_until(10.0);
    assert_eq!(s.count_sent("SIP/2.0 486 Busy Here"), 1);
    s.recv(Transport::Tcp, request("ACK", "z9hG4bKinv5", ";tag=b2"));
    s.run_until(10.0);
    assert_eq!(s.terminated(id), Some(10.0), "Timer I is zero on TCP");
}

#[test]
fn server_non_invite_repeats_its_final_response_and_ends_after_timer_j() {
    let mut s = Sim::new();
    let (id, req) = s.new_server(Transport::Udp, request("OPTIONS", "z9hG4bKopt1", ""));
    assert!(s.sent.is_empty(), "no automatic 100 for non-INVITE");
    // Retransmission before any response: absorbed silently.
    s.recv(Transport::Udp, request("OPTIONS", "z9hG4bKopt1", ""));
    assert!(s.sent.is_empty());
    s.respond(id, &response_to(&req, 200));
    s.recv(Transport::Udp, request("OPTIONS", "z9hG4bKopt1", ""));
    assert_eq!(s.count_sent("SIP/2.0 200 OK"), 2);
    s.run_until(40.0);
    assert_eq!(s.terminated(id), Some(32.0));
    // After Terminated the same request is new again.
    assert!(matches!(
        s.recv(Transport::Udp, request("OPTIONS", "z9hG4bKopt1", "")),
        Received::New { .. }
    ));
}

#[test]
fn server_non_invite_over_tcp_ends_when_answered() {
    let mut s = Sim::new();
    let (id, req) = s.new_server(Transport::Tcp, request("OPTIONS", "z9hG4bKopt2", ""));
    s.respond(id, &response_to(&req, 200));
    s.run_until(0.0);
    assert_eq!(s.terminated(id), Some(0.0));
}

fn client_invite(s: &mut Sim, transport: Transport, branch: &str) -> (TxnId, Request) {
    let mut req = request("INVITE", branch, "");
    req.headers.set("Via", format!("SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"));
    let id = s.t.send_request(s.now, flow(transport), req.clone()).unwrap();
    s.drain();
    (id, req)
}

fn incoming_response(s: &mut Sim, req: &Request, status: u16) -> Option<Response> {
    let r = s.t.recv_response(s.now, response_to(req, status));
    s.drain();
    r
}

#[test]
fn client_invite_retransmits_with_timer_a_and_times_out_with_timer_b() {
    let mut s = Sim::new();
    let (id, _) = client_invite(&mut s, Transport::Udp, "z9hG4bKc1");
    s.run_until(40.0);
    let times: Vec<f64> = s.sent_lines().into_iter().map(|(t, _)| t).collect();
    // A doubles without a cap: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5; B at 32.
    assert_eq!(times, vec![0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]);
    assert!(
        s.events
            .iter()
            .any(|(at, e)| matches!(e, Event::Timeout { id: x } if *x == id) && at.as_secs() == 32)
    );
    assert_eq!(s.terminated(id), Some(32.0));
}

#[test]
fn client_invite_stops_retransmitting_on_a_provisional() {
    let mut s = Sim::new();
    let (_, req) = client_invite(&mut s, Transport::Udp, "z9hG4bKc2");
    s.run_until(1.0);
    assert!(incoming_response(&mut s, &req, 180).is_none());
    s.run_until(20.0);
    assert_eq!(s.sent.len(), 2, "INVITE at 0 and 0.5 only");
    assert!(
        s.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Response { response, .. } if response.status == 180))
    );
}

#[test]
fn client_invite_acks_an_error_response_itself_and_again_on_retransmission() {
    let mut s = Sim::new();
    let (id, req) = client_invite(&mut s, Transport::Udp, "z9hG4bKc3");
    incoming_response(&mut s, &req, 486);
    incoming_response(&mut s, &req, 486);
    let acks: Vec<String> = s
        .sent
        .iter()
        .map(|(_, x)| String::from_utf8_lossy(&x.bytes).into_owned())
        .filter(|t| t.starts_with("ACK "))
        .collect();
    assert_eq!(acks.len(), 2);
    let ack = &acks[0];
    assert!(ack.starts_with("ACK sip:111@127.0.0.1 SIP/2.0\r\n"), "{ack}");
    assert!(ack.contains("branch=z9hG4bKc3"), "same branch as the INVITE: {ack}");
    assert!(ack.contains("CSeq: 1 ACK"), "{ack}");
    assert!(ack.contains("tag=b2"), "the response's To tag: {ack}");
    // Only one 486 reaches the user.
    let finals = s
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { response, .. } if response.status == 486));
    assert_eq!(finals.count(), 1);
    s.run_until(40.0);
    assert_eq!(s.terminated(id), Some(32.0), "Timer D = 32 s on UDP");
}

#[test]
fn client_invite_passes_every_2xx_up_until_timer_m() {
    let mut s = Sim::new();
    let (id, req) = client_invite(&mut s, Transport::Udp, "z9hG4bKc4");
    incoming_response(&mut s, &req, 200);
    incoming_response(&mut s, &req, 200);
    let oks = s
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { response, .. } if response.status == 200));
    assert_eq!(oks.count(), 2, "the TU ACKs each 2xx");
    assert!(
        s.sent.iter().all(|(_, x)| !x.bytes.starts_with(b"ACK")),
        "the transaction never ACKs a 2xx"
    );
    s.run_until(40.0);
    assert_eq!(s.terminated(id), Some(32.0));
    // After Timer M a 2xx retransmission is stray: handed back for the dialog layer to re-ACK.
    assert!(incoming_response(&mut s, &req, 200).is_some());
}

#[test]
fn client_non_invite_backs_off_to_t2_and_times_out_with_timer_f() {
    let mut s = Sim::new();
    let mut req = request("OPTIONS", "z9hG4bKn1", "");
    req.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKn1");
    let id = s.t.send_request(s.now, flow(Transport::Udp), req).unwrap();
    s.drain();
    s.run_until(40.0);
    let times: Vec<f64> = s.sent_lines().into_iter().map(|(t, _)| t).collect();
    assert_eq!(&times[..6], &[0.0, 0.5, 1.5, 3.5, 7.5, 11.5], "E: T1 doubling, capped at T2");
    assert_eq!(*times.last().unwrap(), 31.5);
    assert!(
        s.events.iter().any(|(at, e)| matches!(e, Event::Timeout { .. }) && at.as_secs() == 32)
    );
    assert_eq!(s.terminated(id), Some(32.0));
}

#[test]
fn client_non_invite_in_proceeding_retransmits_every_t2_and_ends_after_timer_k() {
    let mut s = Sim::new();
    let mut req = request("OPTIONS", "z9hG4bKn2", "");
    req.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKn2");
    let id = s.t.send_request(s.now, flow(Transport::Udp), req.clone()).unwrap();
    s.drain();
    s.run_until(0.2);
    s.t.recv_response(s.now, response_to(&req, 100));
    s.run_until(9.0);
    let times: Vec<f64> = s.sent_lines().into_iter().map(|(t, _)| t).collect();
    assert_eq!(times, vec![0.0, 0.5, 4.5, 8.5]);
    s.t.recv_response(s.now, response_to(&req, 200));
    s.drain();
    s.run_until(20.0);
    assert_eq!(s.terminated(id), Some(14.0), "K = T4 after the final response at 9 s");
}

#[test]
fn client_transactions_over_tcp_never_retransmit() {
    let mut s = Sim::new();
    client_invite(&mut s, Transport::Tcp, "z9hG4bKt1");
    s.run_until(40.0);
    assert_eq!(s.sent.len(), 1);
    assert!(s.events.iter().any(|(_, e)| matches!(e, Event::Timeout { .. })), "Timer B still runs");
}

#[test]
fn rfc_2543_requests_match_without_the_magic_cookie() {
    let mut s = Sim::new();
    let (id, req) = s.new_server(Transport::Udp, request("INVITE", "old1", ""));
    assert!(matches!(s.recv(Transport::Udp, request("INVITE", "old1", "")), Received::Absorbed));
    s.respond(id, &response_to(&req, 404));
    // The ACK (To now tagged) matches the INVITE transaction and stops Timer G.
    assert!(matches!(
        s.recv(Transport::Udp, request("ACK", "old1", ";tag=b2")),
        Received::Absorbed
    ));
    s.run_until(30.0);
    assert_eq!(s.count_sent("SIP/2.0 404 Not Found"), 1);
}

#[test]
fn cancel_finds_its_invite_and_an_unmatched_ack_goes_to_the_dialog_layer() {
    let mut s = Sim::new();
    let (invite, _) = s.new_server(Transport::Udp, request("INVITE", "z9hG4bKx1", ""));
    let cancel = request("CANCEL", "z9hG4bKx1", "");
    assert_eq!(s.t.invite_for_cancel(&cancel), Some(invite));
    let (cancel_id, _) = s.new_server(Transport::Udp, cancel);
    assert_ne!(cancel_id, invite, "CANCEL is its own transaction");
    assert_eq!(s.t.invite_for_cancel(&request("CANCEL", "z9hG4bKother", "")), None);
    assert!(matches!(
        s.recv(Transport::Udp, request("ACK", "z9hG4bKnew", ";tag=b2")),
        Received::Ack { .. }
    ));
}

#[test]
fn responses_matching_nothing_are_handed_back() {
    let mut s = Sim::new();
    let stray = response_to(&request("INVITE", "z9hG4bKnobody", ""), 200);
    assert!(s.t.recv_response(s.now, stray).is_some());
    assert!(s.events.is_empty() && s.sent.is_empty());
}
