//! Agents behind NAT and dead agents, end to end against the daemon on loopback: an agent whose
//! Contact names a private address (192.168.1.50) but registers from loopback is reached at its
//! flow for the INVITE and for our BYE; an agent that registers and then stops answering the
//! keep-alives is logged out; a TCP connection that closes takes its binding with it.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use support::agent::Agent;
use support::daemon::{TestDaemon, test_config_text};
use tongdai::sip::message::{Message, Method, Response, parse_datagram};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                   a=rtpmap:101 telephone-event/8000\r\n";

fn sdp(port: u16) -> String {
    SDP.replace("{port}", &port.to_string())
}

/// A literal trunk placing one call to 111.
struct Trunk {
    socket: UdpSocket,
    daemon: SocketAddr,
    rtp: UdpSocket,
    to_tag: Option<String>,
}

impl Trunk {
    fn new(daemon: SocketAddr) -> Trunk {
        Trunk {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            daemon,
            rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            to_tag: None,
        }
    }

    fn request(&self, method: &str, seq: u32, branch: &str, body: &str) -> String {
        let local = self.socket.local_addr().unwrap();
        let to_tag = self.to_tag.as_ref().map(|t| format!(";tag={t}")).unwrap_or_default();
        let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        format!(
            "{method} sip:111@{d} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:0281234567@{local}>;tag=trunk1\r\n\
             To: <sip:111@{d}>{to_tag}\r\n\
             Call-ID: nat-call@trunk\r\n\
             CSeq: {seq} {method}\r\n\
             Contact: <sip:trunk@{local}>\r\n\
             {ctype}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            d = self.daemon,
        )
    }

    fn send(&self, text: &str) {
        self.socket.send_to(text.as_bytes(), self.daemon).unwrap();
    }

    /// The next final response within `limit`.
    fn final_response(&self, limit: Duration) -> Option<Response> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            let (n, _) = self.socket.recv_from(&mut buf).ok()?;
            if let Ok(Message::Response(r)) = parse_datagram(buf[..n].to_vec())
                && r.status >= 200
            {
                return Some(r);
            }
        }
    }

    /// Calls 111 and confirms the answer.
    fn call(&mut self) {
        let port = self.rtp.local_addr().unwrap().port();
        self.send(&self.request("INVITE", 1, "inv1", &sdp(port)));
        let ok = self.final_response(Duration::from_secs(10)).expect("the trunk call is answered");
        assert_eq!(ok.status, 200);
        self.to_tag = ok.headers.to().unwrap().tag().map(str::to_owned);
        self.send(&self.request("ACK", 1, "ack1", ""));
    }

    fn hang_up(&self) {
        self.send(&self.request("BYE", 2, "bye1", ""));
    }
}

fn wait_metric(daemon: &TestDaemon, series: &str, want: f64, limit: Duration) -> f64 {
    let deadline = Instant::now() + limit;
    loop {
        let v = daemon.metric(series);
        if v == want || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The agent's Contact and its 2xx Contact name 192.168.1.50:5062, an address nobody can reach
/// from here; the INVITE, the ACK and our BYE all arrive at the loopback socket it registered
/// from.
#[test]
fn an_agent_behind_nat_is_reached_at_its_flow_for_invite_and_bye() {
    let _serial = support::serial();
    let daemon = TestDaemon::start();
    let mut agent = Agent::new(daemon.sip_udp(), "op1", "op1-test-password");
    agent.contact_host = "192.168.1.50:5062".into();
    assert_eq!(agent.register(600).status, 200);
    assert_eq!(wait_metric(&daemon, "tongdai_registrations ", 1.0, Duration::from_secs(5)), 1.0);

    let mut trunk = Trunk::new(daemon.sip_udp());
    trunk.call();
    // After the welcome prompt the only agent is rung: at its flow.
    let (invite, from) = loop {
        let (r, from) =
            agent.recv_request(Duration::from_secs(30)).expect("the INVITE reaches the agent");
        if r.method == Method::Invite {
            break (r, from);
        }
    };
    assert_eq!(from, daemon.sip_udp());
    assert_eq!(invite.uri.as_str(), "sip:op1@192.168.1.50:5062");
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let body = sdp(media.local_addr().unwrap().port());
    agent.answer(&invite, 200, from, Some(&body));
    let ack = agent.recv_request(Duration::from_secs(5)).expect("the ACK reaches the flow");
    assert_eq!(ack.0.method, Method::Ack);

    trunk.hang_up();
    let bye = loop {
        let (r, from) =
            agent.recv_request(Duration::from_secs(10)).expect("our BYE reaches the agent");
        if r.method == Method::Bye {
            agent.answer(&r, 200, from, None);
            break r;
        }
    };
    // In the dialog the target is the private Contact; the flow is what carried it.
    assert_eq!(bye.uri.as_str(), "sip:op1@192.168.1.50:5062");
    assert_eq!(trunk.final_response(Duration::from_secs(5)).map(|r| r.status), Some(200));
}

fn live_keepalive_config() -> String {
    let text = test_config_text();
    // One-second keep-alives, two misses, and a T1 of 50 ms so that an unanswered OPTIONS times
    // out (Timer F = 64·T1) in 3.2 s instead of 32 s.
    for line in ["keepalive_interval = \"0s\"", "keepalive_failures = 3", "t1 = \"500ms\""] {
        assert_eq!(text.matches(line).count(), 1, "{line}");
    }
    text.replace("keepalive_interval = \"0s\"", "keepalive_interval = \"1s\"")
        .replace("keepalive_failures = 3", "keepalive_failures = 2")
        .replace("t1 = \"500ms\"", "t1 = \"50ms\"")
}

/// An agent answers two keep-alives (one with 405), then its softphone dies without
/// de-registering: it is logged out long before its 600 s registration would lapse.
#[test]
fn an_agent_that_stops_answering_keepalives_is_logged_out() {
    let _serial = support::serial();
    let daemon = TestDaemon::with_config(&live_keepalive_config());
    let mut agent = Agent::new(daemon.sip_udp(), "op2", "op2-test-password");
    assert_eq!(agent.register(600).status, 200);
    assert_eq!(wait_metric(&daemon, "tongdai_registrations ", 1.0, Duration::from_secs(5)), 1.0);
    let available = "tongdai_agents{state=\"available\"} ";
    assert_eq!(wait_metric(&daemon, available, 1.0, Duration::from_secs(5)), 1.0);
    for status in [200, 405] {
        let (options, from) =
            agent.recv_request(Duration::from_secs(5)).expect("a keep-alive arrives");
        assert_eq!(options.method, Method::Options);
        agent.answer(&options, status, from, None);
    }
    assert_eq!(daemon.metric("tongdai_registrations "), 1.0, "answered keep-alives keep it");
    // Silence from now on.
    let gone = wait_metric(&daemon, "tongdai_registrations ", 0.0, Duration::from_secs(30));
    assert_eq!(gone, 0.0, "the silent agent's binding is removed");
    assert_eq!(wait_metric(&daemon, available, 0.0, Duration::from_secs(5)), 0.0);
    assert_eq!(daemon.metric("tongdai_agents{state=\"logged_out\"} "), 3.0);
}

/// Reads one SIP message (headers and a Content-Length body) from a stream.
fn read_message(stream: &mut std::net::TcpStream) -> Option<Response> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    buf.extend(body);
    match parse_datagram(buf).ok()? {
        Message::Response(r) => Some(r),
        Message::Request(_) => None,
    }
}

/// A softphone registered over TCP is reachable only over that connection (we never connect out
/// to agents): when it closes, the binding goes and the agent is logged out at once.
#[test]
fn a_closed_tcp_flow_takes_its_binding_with_it() {
    use std::io::Write;
    let _serial = support::serial();
    let daemon = TestDaemon::start();
    let mut stream = std::net::TcpStream::connect(daemon.sip_tcp()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = stream.local_addr().unwrap();
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{d} SIP/2.0\r\n\
             Via: SIP/2.0/TCP {local};branch=z9hG4bKtcp{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:op3@{d}>;tag=tcp1\r\n\
             To: <sip:op3@{d}>\r\n\
             Call-ID: tcp-reg@test\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:op3@192.168.1.53:5060;transport=tcp>\r\n\
             Expires: 600\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            d = daemon.sip_tcp(),
        )
    };
    stream.write_all(register(1, "").as_bytes()).unwrap();
    let challenge = read_message(&mut stream).expect("401");
    assert_eq!(challenge.status, 401);
    let challenges = challenge.headers.www_authenticate().unwrap();
    let chosen = tongdai::sip::auth::preferred_challenge(&challenges).unwrap();
    let uri = format!("sip:{}", daemon.sip_tcp());
    let answer = tongdai::sip::auth::ClientAnswer {
        user: "op3",
        password: "op3-test-password",
        method: &Method::Register,
        uri: &uri,
        cnonce: "7cp",
        nc: 1,
    };
    let value = tongdai::sip::auth::authorization(chosen, &answer).unwrap();
    stream.write_all(register(2, &format!("Authorization: {value}\r\n")).as_bytes()).unwrap();
    assert_eq!(read_message(&mut stream).map(|r| r.status), Some(200));
    assert_eq!(wait_metric(&daemon, "tongdai_registrations ", 1.0, Duration::from_secs(5)), 1.0);

    drop(stream);
    let left = wait_metric(&daemon, "tongdai_registrations ", 0.0, Duration::from_secs(5));
    assert_eq!(left, 0.0, "the closed connection's binding is gone");
}
