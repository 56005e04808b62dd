//! SIP transports of a running daemon, from raw sockets on loopback: IPv6 over UDP and TCP, CRLF
//! keep-alives (RFC 5626) on both, a STUN binding request on the SIP port, a TCP stream that cannot
//! be framed (closed and counted), and an oversized UDP datagram (dropped and counted, no reply).
//! Metrics are process-global, so every test takes `support::serial()` and reads deltas.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use support::daemon::{TestDaemon, test_config_text};

const WAIT: Duration = Duration::from_secs(5);

fn options(transport: &str, local: SocketAddr, branch: &str) -> String {
    let host = match local {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    format!(
        "OPTIONS sip:111@{host} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {host};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{host}>;tag=p1\r\n\
         To: <sip:111@{host}>\r\n\
         Call-ID: {branch}@probe\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn udp_socket(ip: IpAddr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Sends `payload` and returns the first datagram back (panics after [`WAIT`]).
fn udp_exchange(s: &UdpSocket, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    s.send_to(payload, to).unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, from) = s.recv_from(&mut buf).expect("no answer over UDP");
    assert_eq!(from, to, "the answer comes from the SIP port");
    buf.truncate(n);
    buf
}

/// Reads one SIP message (head and Content-Length body) from a stream.
fn read_message(s: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read"), 1, "connection closed mid-message");
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length:").or_else(|| l.strip_prefix("l:")))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

fn tcp(to: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&to, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Polls `metric` until it reaches `at_least` or [`WAIT`] passes; returns the last value.
fn wait_metric(d: &TestDaemon, series: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = d.metric(series);
        if v >= at_least || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const UNFRAMABLE: &str = "tongdai_sip_invalid_messages_total{reason=\"unframable\"}";
const TOO_LARGE: &str = "tongdai_sip_invalid_messages_total{reason=\"too_large\"}";
const KEEPALIVES: &str = "tongdai_sip_messages_total{direction=\"in\",kind=\"keepalive\"}";

/// Every invalid-message counter, summed.
fn invalid_total(d: &TestDaemon) -> f64 {
    d.metrics()
        .lines()
        .filter(|l| l.starts_with("tongdai_sip_invalid_messages_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn ipv6_daemon() -> TestDaemon {
    // Check first that this machine has IPv6 loopback, so that a missing ::1 fails with a clear
    // message rather than as a daemon start-up error.
    if let Err(e) = UdpSocket::bind("[::1]:0") {
        panic!("IPv6 loopback ::1 is not available on this machine ({e}); these tests need it");
    }
    let text = test_config_text().replace("listen = [\"127.0.0.1:0\"]", "listen = [\"[::1]:0\"]");
    assert!(text.contains("[::1]:0"), "the test config's SIP listen line changed");
    TestDaemon::with_config(&text)
}

#[test]
fn ipv6_options_over_udp_and_tcp_get_200() {
    let _serial = support::serial();
    let d = ipv6_daemon();
    assert!(d.sip_udp().is_ipv6() && d.sip_tcp().is_ipv6());

    let s = udp_socket(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let local = s.local_addr().unwrap();
    let answer = udp_exchange(&s, d.sip_udp(), options("UDP", local, "v6udp").as_bytes());
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    // RFC 3581: the Via tells where the request came from (RFC 3261's ABNF writes the IPv6
    // address bare, RFC 5118 §4.5 sees it bracketed too; either names ::1).
    let via = text.lines().find(|l| l.starts_with("Via:")).unwrap();
    assert!(via.contains(&format!("rport={}", local.port())), "{text}");
    assert!(via.contains("received=[::1]") || via.contains("received=::1"), "{text}");
    assert!(text.contains("Allow: "), "{text}");

    let mut c = tcp(d.sip_tcp());
    let local = c.local_addr().unwrap();
    c.write_all(options("TCP", local, "v6tcp").as_bytes()).unwrap();
    let text = read_message(&mut c);
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Call-ID: v6tcp@probe"), "{text}");
}

#[test]
fn crlf_ping_gets_a_pong_over_udp_and_tcp_and_is_not_invalid() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let (invalid, keepalives) = (invalid_total(&d), d.metric(KEEPALIVES));

    let s = udp_socket(IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(udp_exchange(&s, d.sip_udp(), b"\r\n\r\n"), b"\r\n");

    let mut c = tcp(d.sip_tcp());
    c.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    c.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    // The connection is still usable for SIP after the ping.
    let local = c.local_addr().unwrap();
    c.write_all(options("TCP", local, "afterping").as_bytes()).unwrap();
    assert!(read_message(&mut c).starts_with("SIP/2.0 200 OK\r\n"));

    assert_eq!(wait_metric(&d, KEEPALIVES, keepalives + 2.0), keepalives + 2.0);
    assert_eq!(invalid_total(&d), invalid, "keep-alives are not invalid messages");
}

/// A STUN binding request (RFC 5389 §6) with transaction id `txid`.
fn stun_request(txid: [u8; 12]) -> Vec<u8> {
    let mut r = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    r.extend_from_slice(&txid);
    r
}

/// The XOR-MAPPED-ADDRESS of a binding success response to `txid`.
fn xor_mapped_address(response: &[u8], txid: [u8; 12]) -> SocketAddr {
    assert!(response.len() >= 20, "short STUN response: {response:?}");
    assert_eq!(&response[0..2], &[0x01, 0x01], "binding success response");
    assert_eq!(&response[4..8], &[0x21, 0x12, 0xA4, 0x42], "magic cookie");
    assert_eq!(&response[8..20], &txid, "transaction id echoed");
    let length = u16::from_be_bytes([response[2], response[3]]) as usize;
    assert_eq!(response.len(), 20 + length);
    let key: Vec<u8> = [0x21, 0x12, 0xA4, 0x42].into_iter().chain(txid).collect();
    let mut attrs = &response[20..];
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let value = &attrs[4..4 + len];
        if kind == 0x0020 {
            let port = u16::from_be_bytes([value[2], value[3]]) ^ 0x2112;
            let ip = match value[1] {
                0x01 => IpAddr::from(std::array::from_fn::<u8, 4, _>(|i| value[4 + i] ^ key[i])),
                0x02 => IpAddr::from(std::array::from_fn::<u8, 16, _>(|i| value[4 + i] ^ key[i])),
                f => panic!("unknown address family {f}"),
            };
            return SocketAddr::new(ip, port);
        }
        attrs = &attrs[4 + len.div_ceil(4) * 4..];
    }
    panic!("no XOR-MAPPED-ADDRESS in {response:?}");
}

#[test]
fn stun_binding_request_on_the_sip_port_gets_the_sender_address() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let invalid = invalid_total(&d);
    let s = udp_socket(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let txid = *b"tongdai-stun";
    let response = udp_exchange(&s, d.sip_udp(), &stun_request(txid));
    assert_eq!(xor_mapped_address(&response, txid), s.local_addr().unwrap());
    assert_eq!(invalid_total(&d), invalid);
}

#[test]
fn stun_binding_request_over_ipv6_gets_the_sender_address() {
    let _serial = support::serial();
    let d = ipv6_daemon();
    let s = udp_socket(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let txid = [7u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    let response = udp_exchange(&s, d.sip_udp(), &stun_request(txid));
    assert_eq!(xor_mapped_address(&response, txid), s.local_addr().unwrap());
}

#[test]
fn unframable_tcp_stream_is_closed_and_counted() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let before = d.metric(UNFRAMABLE);
    let mut c = tcp(d.sip_tcp());
    let local = c.local_addr().unwrap();
    let bad = options("TCP", local, "neglen").replace("Content-Length: 0", "Content-Length: -5");
    c.write_all(bad.as_bytes()).unwrap();
    // The daemon closes the connection: the read ends (EOF or reset), it does not time out.
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the connection was left open: {e}"
        ),
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.contains("SIP/2.0 200"), "an unframable stream is not processed: {text}");
    assert_eq!(wait_metric(&d, UNFRAMABLE, before + 1.0), before + 1.0);
    // The listener still serves new connections.
    let mut c = tcp(d.sip_tcp());
    let local = c.local_addr().unwrap();
    c.write_all(options("TCP", local, "afterbad").as_bytes()).unwrap();
    assert!(read_message(&mut c).starts_with("SIP/2.0 200 OK\r\n"));
}

#[test]
fn oversized_udp_datagram_is_dropped_and_counted_without_reply() {
    let _serial = support::serial();
    let d = TestDaemon::start();
    let before = d.metric(TOO_LARGE);
    let s = udp_socket(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let local = s.local_addr().unwrap();
    // A well-formed OPTIONS that would be answered if it were small: only its size is wrong.
    // Over the runtime's 32 KiB UDP cap (`MAX_UDP_MESSAGE`), under what UDP can carry.
    let body = "a".repeat(40_000);
    let big = options("UDP", local, "big").replace(
        "Content-Length: 0\r\n\r\n",
        &format!("Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
    );
    assert!(big.len() > 32 * 1024);
    s.send_to(big.as_bytes(), d.sip_udp()).unwrap();
    assert_eq!(wait_metric(&d, TOO_LARGE, before + 1.0), before + 1.0);
    // No reply to it; the next OPTIONS is answered, and is the first thing we receive.
    let answer = udp_exchange(&s, d.sip_udp(), options("UDP", local, "small").as_bytes());
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Call-ID: small@probe"), "the oversized datagram got a reply: {text}");
}
