//! Black-box replay against the running daemon binary: 3,000 grammar-aware mutations of the
//! RFC 4475 / RFC 5118 torture corpus, real captures and the hotline's own call flow
//! (`support::mutate`), over UDP and TCP, from the trunk's address (where a mutated INVITE may
//! well be answered and then never ACKed) and from an address outside the allow-list.
//!
//! After every batch of 200 the daemon must still answer OPTIONS (UDP and TCP), complete a valid
//! call (INVITE, 200, ACK, BYE, 200), come back to no call and no dialog once the half-open calls'
//! timers ran (T1 = 50 ms here, so 64·T1 = 3.2 s), close every TCP connection we closed, and keep
//! its memory and file descriptors bounded. Each answer is checked against what our own parser
//! makes of the message: an unparsable one gets 400/505 or nothing, and is counted in
//! `tongdai_sip_invalid_messages_total`; an INVITE from outside the allow-list never gets a
//! provisional or a 2xx (no call starts). At the end the process is alive and its log has no
//! panic. Deterministic: a fixed seed.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use support::mutate::{Rng, loopback_only, mutate};
use support::process::DaemonProcess;
use tongdai::sip::message::{Message, Method, is_keep_alive, parse_datagram};

const SEED: u64 = 0x0111_7016_da11;
const BATCHES: usize = 15;
/// Per batch: UDP datagrams, each from its own socket (half from the trunk).
const UDP_PER_BATCH: usize = 100;
/// Per batch: TCP connections carrying one message each (half from the trunk).
const TCP_SINGLE_PER_BATCH: usize = 60;
/// Per batch: TCP connections carrying several messages back to back, and how many.
const TCP_PIPELINES_PER_BATCH: usize = 4;
const PIPELINE_DEPTH: usize = 10;
/// How long answers to one batch are collected.
const COLLECT: Duration = Duration::from_millis(400);

const TRUNK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const OUTSIDER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// The hotline's own messages, as the trunk and an agent send them.
fn templates() -> Vec<Vec<u8>> {
    let sdp = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
               a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    let request = |method: &str, to_tag: &str, extra: &str, body: &str| {
        let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        format!(
            "{method} sip:111@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKseed;rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"0901234567\" <sip:0901234567@127.0.0.1:5070>;tag=trunk1\r\n\
             To: <sip:111@127.0.0.1:5060>{to_tag}\r\n\
             Call-ID: seed@trunk\r\n\
             CSeq: 1 {method}\r\n\
             Contact: <sip:trunk@127.0.0.1:5070>\r\n\
             {extra}{ctype}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let pai = "P-Asserted-Identity: <sip:+84901234567@127.0.0.1;user=phone>\r\n\
               Supported: 100rel, timer\r\nSession-Expires: 1800;refresher=uac\r\n";
    vec![
        request("INVITE", "", "", sdp),
        request("INVITE", "", pai, sdp),
        request("INVITE", "", "Require: 100rel\r\n", sdp),
        request("INVITE", "", "", ""),
        request("INVITE", ";tag=abc", "", sdp),
        request("ACK", ";tag=abc", "", ""),
        request("BYE", ";tag=abc", "", ""),
        request("CANCEL", "", "", ""),
        request("OPTIONS", "", "Accept: application/sdp\r\n", ""),
        request("INFO", ";tag=abc", "", ""),
        request("UPDATE", ";tag=abc", "", sdp),
        request("PRACK", ";tag=abc", "RAck: 1 1 INVITE\r\n", ""),
        b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKr\r\n\
Max-Forwards: 70\r\nFrom: <sip:op1@127.0.0.1>;tag=r1\r\nTo: <sip:op1@127.0.0.1>\r\n\
Call-ID: reg@agent\r\nCSeq: 1 REGISTER\r\nContact: <sip:op1@127.0.0.1:5070>;expires=60\r\n\
Authorization: Digest username=\"op1\", realm=\"tongdai\", nonce=\"00\", uri=\"sip:127.0.0.1\", \
response=\"00000000000000000000000000000000\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    ]
}

/// The torture corpus and the captures, as bytes (never normalised: some hold NUL and bare CR).
fn corpus() -> Vec<Vec<u8>> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files = Vec::new();
    for dir in ["rfc4475", "rfc5118", "captures"] {
        for entry in std::fs::read_dir(data.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if dir != "captures" || path.extension().is_some_and(|e| e == "sip") {
                files.push(path);
            }
        }
    }
    // read_dir's order is the file system's: sort, so the seed alone decides the run.
    files.sort();
    files.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// One mutated message: two times in five from the hotline's own flow, else from the corpus.
fn next_message(rng: &mut Rng, templates: &[Vec<u8>], corpus: &[Vec<u8>], n: usize) -> Vec<u8> {
    let seed = if rng.chance(2, 5) { rng.pick(templates) } else { rng.pick(corpus) };
    loopback_only(&mutate(rng, seed, &format!("m{n}")))
}

/// What the daemon's answers to one message must satisfy; `Err` says why not.
fn judge(sent: &[u8], from_trunk: bool, answers: &[Vec<u8>]) -> Result<(), String> {
    let local = parse_datagram(sent.to_vec());
    for answer in answers {
        if is_keep_alive(answer) {
            continue;
        }
        let status = match parse_datagram(answer.clone()) {
            Ok(Message::Response(r)) => r.status,
            // A request from the daemon: a BYE ending a half-open call, sent to a Contact that
            // the mutations pointed at this socket.
            Ok(Message::Request(_)) => continue,
            Err(e) => {
                let shown = String::from_utf8_lossy(&answer[..answer.len().min(400)]).into_owned();
                // Sockets are per message and their ports are reused by later batches: a late
                // datagram for an earlier owner of the port (a BYE ending a half-open call 32 s
                // on) is not this message's answer. Only what names this message's Call-ID is
                // judged; a stray is shown, not attributed.
                let call_id = match &local {
                    Ok(Message::Request(r)) => r.headers.call_id().ok().map(str::to_owned),
                    _ => None,
                };
                let ours = call_id
                    .as_deref()
                    .is_none_or(|id| answer.windows(id.len().max(1)).any(|w| w == id.as_bytes()));
                if !ours {
                    eprintln!("a stray unparsable datagram on a reused port ({e}): {shown:?}");
                    continue;
                }
                return Err(format!("the daemon sent something unparsable ({e}): {shown:?}"));
            }
        };
        match &local {
            Err(_) if status != 400 && status != 505 => {
                return Err(format!("unparsable message answered {status}"));
            }
            Ok(Message::Request(r))
                if r.method == Method::Invite && !from_trunk && status > 100 && status < 300 =>
            {
                return Err(format!("INVITE from outside the allow-list answered {status}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// True when `sent` is an INVITE from the trunk that the daemon answered with a 2xx: a call was
/// set up, and since its ACK never comes, it must end at 64·T1.
fn half_open(sent: &[u8], from_trunk: bool, answers: &[Vec<u8>]) -> bool {
    let invite = matches!(parse_datagram(sent.to_vec()), Ok(Message::Request(r)) if r.method == Method::Invite);
    from_trunk
        && invite
        && answers.iter().any(|a| {
            matches!(parse_datagram(a.clone()), Ok(Message::Response(r)) if (200..300).contains(&r.status))
        })
}

/// Counts a message that our parser refuses and that the daemon must count as invalid (not a
/// keep-alive, not STUN, which the daemon answers apart).
fn must_count_invalid(sent: &[u8]) -> bool {
    let stun = sent.first().is_some_and(|b| b & 0xc0 == 0) && sent.len() >= 20;
    !is_keep_alive(sent) && !stun && parse_datagram(sent.to_vec()).is_err()
}

/// Datagrams the kernel dropped on full UDP receive buffers, machine-wide (`/proc/net/snmp`).
fn udp_receive_buffer_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
    let column = names.split_whitespace().position(|n| n == "RcvbufErrors");
    column.and_then(|c| values.split_whitespace().nth(c)?.parse().ok()).unwrap_or(0)
}

/// Everything that arrives on `sockets` within [`COLLECT`], per socket.
fn collect_udp(sockets: &[UdpSocket]) -> Vec<Vec<Vec<u8>>> {
    let mut answers = vec![Vec::new(); sockets.len()];
    let deadline = Instant::now() + COLLECT;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        let mut got = false;
        for (i, s) in sockets.iter().enumerate() {
            while let Ok(n) = s.recv(&mut buf) {
                answers[i].push(buf[..n].to_vec());
                got = true;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    answers
}

/// A TCP connection to `to` from `source` (std cannot bind before connecting; tokio can).
fn tcp_from(rt: &tokio::runtime::Runtime, source: IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        socket.connect(to).await.ok()
    })?;
    stream.into_std().ok()
}

/// Everything each stream receives within [`COLLECT`] (the streams are non-blocking).
fn collect_tcp(streams: &mut [TcpStream]) -> Vec<Vec<u8>> {
    let mut got = vec![Vec::new(); streams.len()];
    let deadline = Instant::now() + COLLECT;
    let mut buf = vec![0u8; 65536];
    let mut open = vec![true; streams.len()];
    while Instant::now() < deadline && open.iter().any(|o| *o) {
        for (i, s) in streams.iter_mut().enumerate() {
            while open[i] {
                match s.read(&mut buf) {
                    Ok(0) => open[i] = false,
                    Ok(n) => got[i].extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => open[i] = false,
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}

/// The responses in a TCP byte stream from the daemon (framed by Content-Length, as it prints
/// them); `Err` when the stream holds anything else.
fn tcp_responses(mut bytes: &[u8]) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::new();
    while !bytes.is_empty() {
        let skip = bytes.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
        bytes = &bytes[skip..];
        if bytes.is_empty() {
            break;
        }
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("a truncated message from the daemon")?;
        let head = String::from_utf8_lossy(&bytes[..head_end]);
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length:").or_else(|| l.strip_prefix("l:")))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("a message from the daemon without Content-Length")?;
        let end = (head_end + 4 + length).min(bytes.len());
        match parse_datagram(bytes[..end].to_vec()) {
            Ok(Message::Response(r)) => statuses.push(r.status),
            Ok(Message::Request(_)) => {}
            Err(e) => return Err(format!("the daemon sent something unparsable ({e})")),
        }
        bytes = &bytes[end..];
    }
    Ok(statuses)
}

fn options(branch: &str, via: SocketAddr, transport: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {via};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The status of the first final response on `socket` within 5 s.
fn final_status(socket: &UdpSocket) -> Option<(u16, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65536];
    socket.set_nonblocking(false).ok()?;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).ok()?;
        let n = socket.recv(&mut buf).ok()?;
        if let Ok(Message::Response(r)) = parse_datagram(buf[..n].to_vec())
            && r.status >= 200
        {
            return Some((r.status, String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    None
}

/// OPTIONS over UDP and over TCP from the trunk both get 200.
fn answers_options(d: &DaemonProcess, batch: usize) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = socket.local_addr().unwrap();
    socket.send_to(&options(&format!("ping{batch}"), me, "UDP"), d.sip).unwrap();
    match final_status(&socket) {
        Some((200, _)) => {}
        other => return Err(format!("OPTIONS over UDP: {:?}", other.map(|o| o.0))),
    }
    let mut tcp = TcpStream::connect(d.sip).map_err(|e| format!("TCP connect: {e}"))?;
    let me = tcp.local_addr().unwrap();
    tcp.write_all(&options(&format!("tping{batch}"), me, "TCP")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).map_err(|e| format!("OPTIONS over TCP: {e}"))?;
    match buf[..n].starts_with(b"SIP/2.0 200") {
        true => Ok(()),
        false => Err(format!("OPTIONS over TCP: {}", String::from_utf8_lossy(&buf[..n]))),
    }
}

/// A valid call from the trunk: INVITE, 200 (with SDP), ACK, BYE, 200.
fn completes_a_call(d: &DaemonProcess, batch: usize) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = socket.local_addr().unwrap();
    let rtp = media.local_addr().unwrap().port();
    let sdp = format!(
        "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    let call_id = format!("valid-{batch}@trunk");
    let request = |method: &str, cseq: u32, to: &str, body: &str| {
        let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        format!(
            "{method} sip:111@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKv{batch}{method};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=valid{batch}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:trunk@{me}>\r\n\
             {ctype}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            sip = d.sip,
        )
    };
    let to = format!("<sip:111@{}>", d.sip);
    socket.send_to(request("INVITE", 1, &to, &sdp).as_bytes(), d.sip).unwrap();
    let (status, text) = final_status(&socket).ok_or("no final answer to a valid INVITE")?;
    if status != 200 {
        return Err(format!("a valid INVITE got {status}"));
    }
    let to = text
        .lines()
        .find_map(|l| l.strip_prefix("To:").or_else(|| l.strip_prefix("t:")))
        .ok_or("200 without To")?
        .trim()
        .to_string();
    socket.send_to(request("ACK", 1, &to, "").as_bytes(), d.sip).unwrap();
    socket.send_to(request("BYE", 2, &to, "").as_bytes(), d.sip).unwrap();
    match final_status(&socket) {
        Some((200, _)) => Ok(()),
        other => Err(format!("BYE: {:?}", other.map(|o| o.0))),
    }
}

fn config(prompts: &Path) -> String {
    let mut text = support::prompts::with_prompts(&support::daemon::test_config_text(), prompts);
    for (from, to) in [
        // 127.0.0.1 is the trunk; 127.0.0.2 is outside the allow-list.
        ("allow = [\"127.0.0.0/8\", \"::1/128\"]", "allow = [\"127.0.0.1/32\"]"),
        // Half-open calls end at 64·T1 = 3.2 s.
        ("t1 = \"500ms\"", "t1 = \"50ms\""),
        // The outsider's mutations must reach the daemon, not the rate limit.
        ("requests_per_second = 50", "requests_per_second = 10000"),
        ("burst = 100", "burst = 10000"),
    ] {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text = text.replace(from, to);
    }
    text
}

#[test]
fn thousands_of_mutated_messages_leave_the_daemon_answering_and_bounded() {
    let dir = support::prompts::short_prompts("replay");
    let d = DaemonProcess::start(&dir, &config(&dir));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (templates, corpus) = (templates(), corpus());
    let mut rng = Rng::new(SEED);
    let mut d = d;
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let (mut sent, mut answered, mut expected_invalid) = (0usize, 0usize, 0usize);
    let mut half_open_calls = 0usize;
    let (mut rss, mut fds) = (Vec::new(), Vec::new());
    let invalid_metric = "tongdai_sip_invalid_messages_total";
    let invalid_at_start = d.metric_sum(invalid_metric);
    let drops_at_start = udp_receive_buffer_drops();

    for batch in 0..BATCHES {
        // UDP: one socket per message, so every answer is attributed to its message.
        let mut messages = Vec::new();
        let mut sockets = Vec::new();
        for i in 0..UDP_PER_BATCH {
            let from_trunk = i % 2 == 0;
            let source = if from_trunk { TRUNK } else { OUTSIDER };
            let socket = UdpSocket::bind(SocketAddr::new(source, 0)).unwrap();
            socket.set_nonblocking(true).unwrap();
            let bytes = next_message(&mut rng, &templates, &corpus, sent);
            sent += 1;
            // A datagram over 64 KiB cannot be sent at all; such a mutation is simply skipped.
            if socket.send_to(&bytes, d.sip).is_ok() {
                expected_invalid += usize::from(must_count_invalid(&bytes));
                messages.push((bytes, from_trunk));
                sockets.push(socket);
            }
        }
        let answers = collect_udp(&sockets);
        for ((bytes, from_trunk), got) in messages.iter().zip(&answers) {
            answered += usize::from(!got.is_empty());
            half_open_calls += usize::from(half_open(bytes, *from_trunk, got));
            for a in got {
                if let Ok(Message::Response(r)) = parse_datagram(a.clone()) {
                    *statuses.entry(r.status).or_default() += 1;
                }
            }
            if let Err(why) = judge(bytes, *from_trunk, got) {
                let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                failures.push(format!("batch {batch} UDP: {why}\n{shown}"));
            }
        }

        // TCP: one message per connection, then a few connections with several back to back.
        let mut streams = Vec::new();
        for i in 0..TCP_SINGLE_PER_BATCH + TCP_PIPELINES_PER_BATCH {
            let source = if i % 2 == 0 { TRUNK } else { OUTSIDER };
            let depth = if i < TCP_SINGLE_PER_BATCH { 1 } else { PIPELINE_DEPTH };
            let mut bytes = Vec::new();
            for _ in 0..depth {
                bytes.extend(next_message(&mut rng, &templates, &corpus, sent));
                sent += 1;
            }
            let Some(mut stream) = tcp_from(&rt, source, d.sip) else {
                failures.push(format!("batch {batch}: TCP connection refused"));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            // The daemon may close a stream it cannot frame before reading all of it.
            let _ = stream.write_all(&bytes);
            stream.set_nonblocking(true).unwrap();
            streams.push(stream);
        }
        for (i, got) in collect_tcp(&mut streams).iter().enumerate() {
            match tcp_responses(got) {
                Ok(list) => {
                    answered += usize::from(!list.is_empty());
                    for s in list {
                        *statuses.entry(s).or_default() += 1;
                    }
                }
                Err(why) => failures.push(format!("batch {batch} TCP stream {i}: {why}")),
            }
        }
        drop(streams);

        // Health after the batch.
        if let Err(why) = answers_options(&d, batch) {
            failures.push(format!("batch {batch}: {why}"));
        }
        let calls = d.wait_metric("tongdai_calls_active", 0.0, Duration::from_secs(15));
        let dialogs = d.wait_metric("tongdai_sip_dialogs", 0.0, Duration::from_secs(5));
        if calls != 0.0 || dialogs != 0.0 {
            failures.push(format!("batch {batch}: {calls} calls and {dialogs} dialogs left"));
        }
        if let Err(why) = completes_a_call(&d, batch) {
            failures.push(format!("batch {batch}: {why}"));
        }
        if d.wait_metric("tongdai_calls_active", 0.0, Duration::from_secs(15)) != 0.0 {
            failures.push(format!("batch {batch}: the valid call did not end"));
        }
        // Every connection we opened is closed: its task and socket are gone.
        let tcp = d.wait_metric("tongdai_sip_tcp_connections", 0.0, Duration::from_secs(5));
        if tcp != 0.0 {
            failures.push(format!("batch {batch}: {tcp} TCP connections left open"));
        }
        rss.push(d.rss_kb());
        fds.push(d.open_fds());
        println!(
            "batch {batch:2}: {sent} sent, {answered} answered, RSS {} kB, {} fds, invalid counted {}",
            rss[batch],
            fds[batch],
            d.metric_sum(invalid_metric) - invalid_at_start
        );
        assert!(d.is_alive(), "the daemon died in batch {batch}:\n{}", d.log_text());
        if failures.len() > 20 {
            break;
        }
    }
    println!("final statuses: {statuses:?}; {half_open_calls} half-open calls (UDP)");

    // Every unparsable datagram is counted, unless the kernel dropped it before the daemon read
    // it (a loaded machine): those drops are counted too, machine-wide, so this cannot flake.
    let counted = d.metric_sum(invalid_metric) - invalid_at_start;
    let dropped = udp_receive_buffer_drops() - drops_at_start;
    println!("{expected_invalid} unparsable datagrams sent, {counted} counted, {dropped} dropped");
    assert!(
        counted + dropped as f64 >= expected_invalid as f64,
        "{expected_invalid} unparsable UDP messages sent, {counted} counted invalid, {dropped} \
         dropped by the kernel"
    );
    // The harness must exercise the daemon, not a wall: most messages get some answer, and the
    // answers span refusals and successes.
    assert!(answered * 2 > sent / PIPELINE_DEPTH, "only {answered} of {sent} messages answered");
    assert!(statuses.keys().any(|s| *s == 400) && statuses.keys().any(|s| (200..300).contains(s)));
    // Mutated INVITEs from the trunk were answered and never ACKed, and none of them stayed.
    assert!(half_open_calls > 0, "no mutated INVITE set up a call: the half-open check is vacuous");
    // Memory: after the first batch (warm-up: buffers, prompts, allocator arenas) it must not grow
    // with the traffic. A leak of the state of each mutated call, transaction or connection would
    // grow it by tens of megabytes over 3,000 messages.
    let warm = rss[0];
    let peak = *rss.iter().max().unwrap_or(&0);
    assert!(peak < warm * 2 + 8 * 1024, "RSS grew from {warm} kB to {peak} kB: {rss:?}");
    // File descriptors: sockets of calls and connections are all closed again.
    let most = *fds.iter().max().unwrap_or(&0);
    assert!(most <= fds[0] + 4, "open fds grew from {} to {most}: {fds:?}", fds[0]);
    assert!(d.is_alive(), "the daemon died");
    let log = d.log_text();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_mutator_is_deterministic_and_keeps_messages_on_loopback() {
    let seed =
        b"INVITE sip:111@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa\r\n\
Call-ID: c1\r\nContact: <sip:a@[2001:db8::1]:5060>\r\nContent-Length: 4\r\n\r\nbody";
    let parts = support::mutate::Parts::parse(seed);
    assert_eq!(parts.print(), seed.to_vec(), "parse then print is the identity");
    let run = |s| {
        let mut rng = Rng::new(s);
        (0..200).map(|i| loopback_only(&mutate(&mut rng, seed, &i.to_string()))).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    let clean = loopback_only(seed);
    let text = String::from_utf8_lossy(&clean);
    assert!(text.contains("SIP/2.0/UDP 127.0.0.1:5070;"), "{text}");
    assert!(text.contains("<sip:a@[::1]:5060>"), "{text}");
    assert!(text.contains("sip:111@127.0.0.1 "), "{text}");
    for m in run(7) {
        let text = String::from_utf8_lossy(&m).into_owned();
        for bad in ["192.0.2", "2001:db8", "203.0.113", "198.51.100"] {
            assert!(!text.contains(bad), "{bad} left in:\n{text}");
        }
    }
}
