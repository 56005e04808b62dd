//! The caller-facing media paths through the whole daemon on loopback: the urgent-lane menu
//! (an RFC 4733 `1` on the caller's RTP, or a SIP INFO, puts the caller in the urgent lane; no key
//! means the normal lane once the menu times out) and dead-leg detection (a caller leg from which
//! nothing arrives for `rtp_timeout` is hung up; one that sends only RTCP is kept). The caller is
//! a literal SIP UA over UDP plus the in-repo RTP tool; prompts are short tones.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::daemon::{TestDaemon, test_config_text};
use support::prompts::write_tone;
use support::rtp_tool::{RtpTool, Tone};
use tongdai::media::g711::Codec;
use tongdai::media::rtcp::write_report;

/// A daemon whose welcome and menu prompts are 0.3 s tones, with `media` lines added to `[media]`.
fn daemon(name: &str, media: &str) -> TestDaemon {
    TestDaemon::with_config(&config_text(name, media, 600.0))
}

/// The configuration of [`daemon`], with a welcome tone at `welcome_hz`.
fn config_text(name: &str, media: &str, welcome_hz: f64) -> String {
    let dir = std::env::temp_dir().join(format!("tongdai-menu-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, hz, secs) in [
        ("welcome.wav", welcome_hz, 0.3),
        ("urgent-menu.wav", 800.0, 0.3),
        ("hold-music.wav", 300.0, 1.0),
    ] {
        write_tone(&dir.join(file), hz, secs);
    }
    let dir: PathBuf = dir;
    // The lines given replace the defaults of the same keys.
    let mut text = test_config_text();
    for line in media.lines() {
        let key = line.split('=').next().unwrap().trim();
        let default = text.lines().find(|l| l.starts_with(&format!("{key} = "))).map(str::to_owned);
        if let Some(default) = default {
            text = text.replacen(&format!("{default}\n"), "", 1);
        }
    }
    text.replace(
        "prompts = \"prompts\"",
        &format!("prompts = {:?}\n{media}", dir.display().to_string()),
    )
}

/// Our offer: PCMU and telephone-event/8000 at 101 on `port`, `o=` version `version`.
fn offer(port: u16, version: u32, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na={direction}\r\n"
    )
}

/// A trunk caller speaking literal SIP over UDP.
struct Caller {
    sock: UdpSocket,
    daemon: SocketAddr,
    call_id: String,
    to_tag: String,
    /// The daemon's RTP address from its answer.
    rtp: SocketAddr,
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Caller {
    /// Calls 111 offering PCMU and telephone-event/8000 at 101, with `rtp` as our media address;
    /// returns once the 200 is ACKed.
    fn call(daemon: SocketAddr, rtp: SocketAddr, n: u32) -> Caller {
        Caller::try_call(daemon, rtp, n).unwrap()
    }

    /// Like [`Caller::call`]; a refusal gives its status line.
    fn try_call(daemon: SocketAddr, rtp: SocketAddr, n: u32) -> Result<Caller, String> {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let me = sock.local_addr().unwrap();
        let call_id = format!("menu-{n}-{}@test", std::process::id());
        let sdp = offer(rtp.port(), 1, "sendrecv");
        let invite = format!(
            "INVITE sip:111@{daemon} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-inv-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=c{n}\r\n\
             To: <sip:111@{daemon}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        sock.send_to(invite.as_bytes(), daemon).unwrap();
        let is_final = |m: &str| m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1");
        let ok = wait_message(&sock, Duration::from_secs(5), is_final).expect("a final response");
        if !ok.starts_with("SIP/2.0 200") {
            return Err(ok.lines().next().unwrap_or_default().to_owned());
        }
        let to = header(&ok, "To").unwrap();
        let to_tag = to.split(";tag=").nth(1).unwrap().split(';').next().unwrap().to_owned();
        let port: u16 = ok
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        let mut caller = Caller {
            sock,
            daemon,
            call_id,
            to_tag,
            rtp: SocketAddr::new("127.0.0.1".parse().unwrap(), port),
        };
        caller.in_dialog("ACK", 1, "", "");
        Ok(caller)
    }

    fn in_dialog(&mut self, method: &str, cseq: u32, content_type: &str, body: &str) {
        let me = self.sock.local_addr().unwrap();
        let daemon = self.daemon;
        let ct = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        let msg = format!(
            "{method} sip:111@{daemon} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-{method}-{cseq}-{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=c{}\r\n\
             To: <sip:111@{daemon}>;tag={}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            self.call_id.split('-').nth(1).unwrap(),
            self.call_id.split('-').nth(1).unwrap(),
            self.to_tag,
            self.call_id,
            body.len()
        );
        self.sock.send_to(msg.as_bytes(), self.daemon).unwrap();
    }

    /// True when the daemon sends us a BYE within `within` (answered with 200).
    fn receives_bye(&self, within: Duration) -> bool {
        match wait_message(&self.sock, within, |m| m.starts_with("BYE ")) {
            Some(bye) => {
                let reply: String = bye
                    .lines()
                    .take_while(|l| !l.is_empty())
                    .filter(|l| {
                        ["via", "from", "to", "call-id", "cseq"].iter().any(|h| {
                            l.split(':').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(h))
                        })
                    })
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                let ok = format!("SIP/2.0 200 OK\r\n{reply}Content-Length: 0\r\n\r\n");
                let _ = self.sock.send_to(ok.as_bytes(), self.daemon);
                true
            }
            None => false,
        }
    }
}

fn wait_message(sock: &UdpSocket, within: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if want(&text) {
                return Some(text);
            }
        }
    }
    None
}

fn wait_metric(d: &TestDaemon, series: &str, at_least: f64, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let v = d.metric(series);
        if v >= at_least || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const URGENT: &str = "tongdai_menu_choices_total{choice=\"urgent\"} ";
const TIMEOUT: &str = "tongdai_menu_choices_total{choice=\"timeout\"} ";
const DEAD_CALLERS: &str = "tongdai_media_dead_legs_total{leg=\"caller\"} ";
const RTCP_IN: &str = "tongdai_rtcp_packets_total{result=\"received\"} ";
const FOREIGN: &str = "tongdai_rtp_dropped_packets_total{reason=\"foreign_source\"} ";
const NO_PORT: &str = "tongdai_calls_refused_total{reason=\"no_rtp_port\"} ";

#[test]
fn rfc4733_one_joins_the_urgent_lane_and_no_key_the_normal_lane() {
    // The metrics registry is one per process: one daemon at a time, and counts as differences.
    let _serial = support::serial();
    let d = daemon("dtmf", "menu_timeout = \"1s\"");
    let (urgent0, timeout0) = (d.metric(URGENT), d.metric(TIMEOUT));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tool, local) = rt.block_on(RtpTool::bind());

    // A caller whose trunk sends RFC 4733: presses 1 during the menu.
    let pressing = Caller::call(d.sip_udp(), local, 1);
    rt.block_on(async {
        tool.send_tone(pressing.rtp, Tone::new(440.0, Codec::Pcmu, 0x1111), 3).await;
        tool.send_dtmf(pressing.rtp, '1', 101, 0x1111, 4, 480).await;
    });
    let urgent = wait_metric(&d, URGENT, urgent0 + 1.0, Duration::from_secs(5));
    assert_eq!(urgent, urgent0 + 1.0, "{}", d.metrics());
    // Queued at once: the menu's time-out never fires for this caller.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.metric(TIMEOUT), timeout0);

    // A caller who sends no key waits out the menu and joins the normal lane.
    let (tool2, local2) = rt.block_on(RtpTool::bind());
    let silent = Caller::call(d.sip_udp(), local2, 2);
    assert_eq!(wait_metric(&d, TIMEOUT, timeout0 + 1.0, Duration::from_secs(5)), timeout0 + 1.0);
    assert_eq!(d.metric(URGENT), urgent0 + 1.0);
    drop((silent, tool2));

    // SIP INFO (application/dtmf-relay) is the other path.
    let (tool3, local3) = rt.block_on(RtpTool::bind());
    let mut info = Caller::call(d.sip_udp(), local3, 3);
    info.in_dialog("INFO", 2, "application/dtmf-relay", "Signal=1\r\nDuration=160\r\n");
    let answer = wait_message(&info.sock, Duration::from_secs(5), |m| m.contains("CSeq: 2 INFO"));
    assert!(answer.as_deref().is_some_and(|a| a.starts_with("SIP/2.0 200")), "{answer:?}");
    assert_eq!(wait_metric(&d, URGENT, urgent0 + 2.0, Duration::from_secs(5)), urgent0 + 2.0);
    drop((info, tool3, pressing, tool));
}

#[test]
fn a_caller_leg_without_media_is_hung_up_and_a_silent_one_with_rtcp_is_kept() {
    let _serial = support::serial();
    let d = daemon("dead", "rtp_timeout = \"1s\"");
    let dead0 = d.metric(DEAD_CALLERS);
    let foreign0 = d.metric(FOREIGN);
    let rtcp0 = d.metric(RTCP_IN);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tool, local) = rt.block_on(RtpTool::bind());
    let dead = Caller::call(d.sip_udp(), local, 10);
    let (alive_tool, alive_local) = rt.block_on(RtpTool::bind());
    let alive = Caller::call(d.sip_udp(), alive_local, 11);
    // The live caller's phone suppresses silence: one RTP packet, then only RTCP (to the odd port).
    let mut rr = Vec::new();
    write_report(&mut rr, 0x2222, None, None, "alive@test");
    let rtcp = SocketAddr::new(alive.rtp.ip(), alive.rtp.port() + 1);
    rt.block_on(alive_tool.send_tone(alive.rtp, Tone::new(440.0, Codec::Pcmu, 0x2222), 1));
    let reports = rt.spawn(async move {
        // RTCP comes from another port of the same host, as phones do.
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..20 {
            let _ = sock.send_to(&rr, rtcp).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    assert!(dead.receives_bye(Duration::from_secs(4)), "the silent leg is hung up");
    assert!(!alive.receives_bye(Duration::from_millis(1500)), "a leg sending RTCP stays");
    reports.abort();
    assert_eq!(d.metric(DEAD_CALLERS), dead0 + 1.0);
    assert!(d.metric(RTCP_IN) >= rtcp0 + 5.0);
    assert_eq!(d.metric(FOREIGN), foreign0);
    drop((tool, alive_tool));
}

#[test]
fn running_out_of_ports_refuses_the_new_call_only_and_every_port_comes_back() {
    let _serial = support::serial();
    // One RTP/RTCP pair in the range: room for exactly one caller leg.
    let first = 43_000 + (std::process::id() % 500) as u16 * 2;
    let d = daemon("ports", &format!("rtp_port_min = {first}\nrtp_port_max = {}", first + 1));
    let no_port0 = d.metric(NO_PORT);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tool, local) = rt.block_on(RtpTool::bind());
    let mut running = Caller::call(d.sip_udp(), local, 20);
    assert_eq!(running.rtp.port(), first);
    let (tool2, local2) = rt.block_on(RtpTool::bind());
    let refused = Caller::try_call(d.sip_udp(), local2, 21).err();
    assert_eq!(refused.as_deref(), Some("SIP/2.0 480 Temporarily Unavailable"));
    assert_eq!(d.metric(NO_PORT), no_port0 + 1.0);
    // The running call still hears its prompts, 50 packets a second.
    let before = tool.recording().packet_count();
    let heard = rt.block_on(tool.wait_for(before + 25, Duration::from_secs(3)));
    assert!(heard.packet_count() >= before + 25, "{} packets", heard.packet_count());
    // It hangs up; its ports return and the next caller gets them.
    running.in_dialog("BYE", 2, "", "");
    let next = (0..40).find_map(|i| {
        std::thread::sleep(Duration::from_millis(50));
        Caller::try_call(d.sip_udp(), local2, 22 + i).ok()
    });
    assert_eq!(next.map(|c| c.rtp.port()), Some(first));
    drop((tool, tool2));
}

#[test]
fn a_held_caller_hears_nothing_and_is_not_timed_out_and_resumes() {
    let _serial = support::serial();
    let d = daemon("hold", "rtp_timeout = \"1s\"");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tool, local) = rt.block_on(RtpTool::bind());
    let mut caller = Caller::call(d.sip_udp(), local, 30);
    rt.block_on(tool.send_tone(caller.rtp, Tone::new(440.0, Codec::Pcmu, 0x3333), 1));
    let heard = rt.block_on(tool.wait_for(10, Duration::from_secs(3))).packet_count();
    assert!(heard >= 10, "prompts before the hold: {heard}");
    // The trunk holds the call (sendonly) and then sends nothing for longer than rtp_timeout.
    let reinvite = |c: &mut Caller, cseq: u32, direction: &str| {
        c.in_dialog("INVITE", cseq, "application/sdp", &offer(local.port(), cseq, direction));
        let cseq_line = format!("CSeq: {cseq} INVITE");
        let is_final = |m: &str| m.contains(&cseq_line) && !m.starts_with("SIP/2.0 1");
        let ok = wait_message(&c.sock, Duration::from_secs(5), is_final);
        assert!(ok.as_deref().is_some_and(|m| m.starts_with("SIP/2.0 200")), "{ok:?}");
        c.in_dialog("ACK", cseq, "", "");
    };
    reinvite(&mut caller, 2, "sendonly");
    std::thread::sleep(Duration::from_millis(200));
    let at_hold = tool.recording().packet_count();
    assert!(!caller.receives_bye(Duration::from_millis(2500)), "no dead-leg timer on hold");
    let during = tool.recording().packet_count() - at_hold;
    assert_eq!(during, 0, "a held leg gets no audio");
    // Resumed: the audio comes back, on the same stream.
    reinvite(&mut caller, 3, "sendrecv");
    let after = rt.block_on(tool.wait_for(at_hold + 10, Duration::from_secs(3)));
    assert!(after.packet_count() >= at_hold + 10, "{} packets", after.packet_count());
    assert_eq!(after.ssrcs().len(), 1, "one stream throughout");
}

#[test]
fn the_daemon_reports_on_its_own_stream_over_rtcp_to_the_port_above() {
    use tongdai::media::rtcp::{RtcpPacket, parse_compound};
    use tongdai::media::rtp::{RtpHeader, RtpPacket};
    let _serial = support::serial();
    let d = daemon("rtcp", "");
    // Our RTP socket and the RTCP socket on the port above it, as a phone has them.
    let (rtp, rtcp) = (0..50)
        .find_map(|_| {
            let rtp = UdpSocket::bind("127.0.0.1:0").ok()?;
            let port = rtp.local_addr().ok()?.port();
            let rtcp = UdpSocket::bind(("127.0.0.1", port.checked_add(1)?)).ok()?;
            Some((rtp, rtcp))
        })
        .expect("a free port pair");
    let caller = Caller::call(d.sip_udp(), rtp.local_addr().unwrap(), 40);
    let h = RtpHeader { marker: true, payload_type: 0, sequence: 1, timestamp: 0, ssrc: 0x4444 };
    rtp.send_to(&h.to_packet(&[0xFF; 160]), caller.rtp).unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = rtp.recv_from(&mut buf).expect("prompt audio");
    let stream = RtpPacket::parse(&buf[..n]).unwrap().ssrc;
    // The first report is due 5 s (RFC 3550's minimum interval) after the answer.
    rtcp.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (n, from) = rtcp.recv_from(&mut buf).expect("an RTCP report");
    assert_eq!(from.port(), caller.rtp.port() + 1, "sent from our RTCP port");
    match &parse_compound(&buf[..n]).unwrap()[0] {
        RtcpPacket::SenderReport { ssrc, info, reports } => {
            assert_eq!(*ssrc, stream, "about the stream we send");
            assert!(info.packet_count > 100, "{info:?}");
            assert_eq!(reports.first().map(|r| r.ssrc), Some(0x4444), "and on what we received");
        }
        other => panic!("expected an SR: {other:?}"),
    }
}

#[test]
fn bad_datagrams_on_a_media_port_are_counted_by_reason_and_the_leg_keeps_working() {
    let _serial = support::serial();
    let d = daemon("bad", "");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tool, local) = rt.block_on(RtpTool::bind());
    let caller = Caller::call(d.sip_udp(), local, 50);
    rt.block_on(tool.send_tone(caller.rtp, Tone::new(440.0, Codec::Pcmu, 0x5555), 3));
    let reason = |r: &str| format!("tongdai_rtp_dropped_packets_total{{reason=\"{r}\"}} ");
    let reasons = ["short", "version", "csrc_overflow", "stun", "dtls", "foreign_source"];
    let before: Vec<f64> = reasons.iter().map(|r| d.metric(&reason(r))).collect();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    rt.block_on(async {
        tool.send_raw(caller.rtp, &[0x80, 0x00, 0x00]).await;
        tool.send_raw(caller.rtp, &[0x40; 20]).await;
        tool.send_raw(caller.rtp, &[0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]).await;
        tool.send_raw(caller.rtp, &[0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]).await;
        tool.send_raw(caller.rtp, &[22, 254, 253, 0, 0]).await;
    });
    // The same RTP as the caller's, from another port: no RTP bleed.
    let h = tongdai::media::rtp::RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: 9,
        timestamp: 1440,
        ssrc: 0x5555,
    };
    stranger.send_to(&h.to_packet(&[0xFF; 160]), caller.rtp).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let counted = loop {
        let now: Vec<f64> = reasons.iter().map(|r| d.metric(&reason(r))).collect();
        let all = now.iter().zip(&before).all(|(n, b)| *n >= b + 1.0);
        if all || Instant::now() >= deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for ((r, n), b) in reasons.iter().zip(&counted).zip(&before) {
        assert_eq!(*n, b + 1.0, "{r}");
    }
    // The receive loop is still there: a key press still reaches the menu.
    let urgent0 = d.metric(URGENT);
    rt.block_on(tool.send_dtmf(caller.rtp, '1', 101, 0x5555, 10, 1600));
    assert_eq!(wait_metric(&d, URGENT, urgent0 + 1.0, Duration::from_secs(5)), urgent0 + 1.0);
}

#[test]
fn a_reload_brings_new_prompts_to_new_calls() {
    let _serial = support::serial();
    let d = daemon("reload-a", "");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let welcome = |n: u32| {
        let (tool, local) = rt.block_on(RtpTool::bind());
        let caller = Caller::call(d.sip_udp(), local, n);
        rt.block_on(tool.send_tone(caller.rtp, Tone::new(440.0, Codec::Pcmu, 0x6666), 1));
        let heard = rt.block_on(tool.wait_for(10, Duration::from_secs(3)));
        (heard.tone_ratio(600.0), heard.tone_ratio(1000.0))
    };
    let (old, new) = welcome(60);
    assert!(old > 0.3 && old > new, "before: 600 Hz {old:.2}, 1000 Hz {new:.2}");
    // A real recording replaces the welcome (here: another folder with a 1000 Hz welcome).
    d.reload(&config_text("reload-b", "", 1000.0));
    std::thread::sleep(Duration::from_millis(300));
    let (old, new) = welcome(61);
    assert!(new > 0.3 && new > old, "after: 600 Hz {old:.2}, 1000 Hz {new:.2}");
}
