//! The per-source rate limit on the running daemon binary: a flood of OPTIONS from an address
//! outside the allow-list gets the source banned (one stable log line, counted, later messages
//! dropped unanswered, TCP connections refused), while the same flood from the trunk's address is
//! all answered and never limited.

mod support;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use support::process::DaemonProcess;

const TRUNK: &str = "127.0.0.1";
const OUTSIDER: &str = "127.0.0.2";
const FLOOD: usize = 300;

fn options(n: usize, via: SocketAddr) -> Vec<u8> {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKflood{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:flood@127.0.0.1>;tag=f\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: flood-{n}-{via}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Sends `count` OPTIONS from `source`, twenty at a time (each group once the last one's answers
/// came, or after 200 ms without them, so no socket buffer ever overflows), and counts the 200s
/// (waiting up to 2 s for the last ones).
fn flood(d: &DaemonProcess, source: &str, count: usize) -> usize {
    let socket = UdpSocket::bind((source.parse::<IpAddr>().unwrap(), 0)).unwrap();
    let me = socket.local_addr().unwrap();
    let mut answered = 0;
    let mut buf = vec![0u8; 4096];
    let mut sent = 0;
    while sent < count {
        let group = (count - sent).min(20);
        for n in sent..sent + group {
            socket.send_to(&options(n, me), d.sip).unwrap();
        }
        sent += group;
        // The last group's answers get longer: a loaded machine must not lose the trunk's.
        let wait = if sent == count { 2000 } else { 200 };
        let deadline = Instant::now() + Duration::from_millis(wait);
        while answered < sent {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            let Ok(len) = socket.recv(&mut buf) else { break };
            answered += usize::from(buf[..len].starts_with(b"SIP/2.0 200"));
        }
    }
    answered
}

/// Whether a fresh TCP connection from `source` gets an answer to OPTIONS.
fn tcp_answers(rt: &tokio::runtime::Runtime, d: &DaemonProcess, source: &str) -> bool {
    let source: IpAddr = source.parse().unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        socket.connect(d.sip).await.ok()
    });
    let Some(mut stream) = stream.and_then(|s| s.into_std().ok()) else { return false };
    let me = stream.local_addr().unwrap();
    let text = String::from_utf8(options(0, me)).unwrap().replace("/UDP", "/TCP");
    stream.set_nonblocking(false).unwrap();
    use std::io::Write;
    if stream.write_all(text.as_bytes()).is_err() {
        return false;
    }
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = vec![0u8; 4096];
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"SIP/2.0 200"))
}

#[test]
fn a_flood_from_outside_the_allow_list_is_banned_and_the_trunk_never_is() {
    let dir = support::prompts::short_prompts("rate-limit");
    let mut text = support::prompts::with_prompts(&support::daemon::test_config_text(), &dir);
    for (from, to) in [
        ("allow = [\"127.0.0.0/8\", \"::1/128\"]", "allow = [\"127.0.0.1/32\"]"),
        ("requests_per_second = 50", "requests_per_second = 20"),
        ("burst = 100", "burst = 20"),
    ] {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text = text.replace(from, to);
    }
    let d = DaemonProcess::start(&dir, &text);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // The trunk: fifteen times the burst at once, every one answered, nothing limited.
    let answered = flood(&d, TRUNK, FLOOD);
    assert_eq!(answered, FLOOD, "the trunk's OPTIONS were not all answered");
    assert_eq!(d.metric_sum("tongdai_rate_limited_total"), 0.0);
    assert_eq!(d.metric_sum("tongdai_rate_bans_total"), 0.0);

    // The outsider: the burst passes, then the source is banned and the rest dropped.
    let answered = flood(&d, OUTSIDER, FLOOD);
    assert!((1..FLOOD).contains(&answered), "{answered} of {FLOOD} answered");
    assert_eq!(d.metric_sum("tongdai_rate_bans_total"), 1.0);
    assert_eq!(d.metric_sum("tongdai_rate_bans_active"), 1.0);
    let limited = d.metric_sum("tongdai_rate_limited_total");
    assert_eq!(limited as usize, FLOOD - answered, "every unanswered message counted as limited");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = "rate ban source=127.0.0.2 rate=20 seconds=60";
    while !d.log_text().contains(line) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log_text();
    assert_eq!(log.matches(line).count(), 1, "one stable ban line:\n{log}");
    assert!(log.lines().any(|l| l.contains(line) && l.contains("tongdai::limits")), "{log}");

    // While banned: a single OPTIONS is not answered, a TCP connection is refused; the trunk is
    // still served over both.
    assert_eq!(flood(&d, OUTSIDER, 1), 0);
    assert!(!tcp_answers(&rt, &d, OUTSIDER), "a banned source was served over TCP");
    assert_eq!(d.metric_sum("tongdai_sip_tcp_refused_total"), 1.0);
    assert_eq!(flood(&d, TRUNK, 1), 1);
    assert!(tcp_answers(&rt, &d, TRUNK));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_limits_section_is_refused_with_its_position_and_a_hint() {
    use support::config_text::{errors, position_of};
    let text = tongdai::config::DEFAULT_TOML.replace("burst = 100", "burst = 0");
    // The position is the value's.
    let (line, col) = position_of(&text, "burst = 0");
    let col = col + "burst = ".len();
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!("t.toml:{line}:{col}: error: `limits.burst`")),
        "{errs:?}"
    );
    assert!(errs[0].contains("hint:"), "{errs:?}");
    // requests_per_second = 0 turns limiting off, whatever the other keys say.
    let off = text.replace("requests_per_second = 50", "requests_per_second = 0");
    let config = support::config_text::check(&off).unwrap();
    assert_eq!(config.limits.rate, 0.0);
}
