//! SIGTERM end to end on loopback with SIPp (issue 9 §6, issue 12 §3): a drain hands the waiting
//! caller to the national centre (reason `draining`), lets the bridged call go on for the grace
//! period and then hangs up every leg still up (BYE to caller, agent and centre alike); with no
//! target up, a new call during the drain gets 503 with Retry-After.

mod support;

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use support::daemon::{TestDaemon, test_config_text};
use support::sipp::{SippRun, free_port, run, run_on, scenario};

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

/// A SIPp trunk caller that stays until tongdai hangs up (`trunk-caller-waits.xml`).
fn waiting_caller(target: SocketAddr) -> JoinHandle<SippRun> {
    let (file, rtp) = (sf("trunk-caller-waits.xml"), free_port().to_string());
    std::thread::spawn(move || {
        run(target, &["-sf", &file, "-key", "rtp_port", &rtp, "-m", "1"], Duration::from_secs(30))
    })
}

/// Reads `series` from a Prometheus text.
fn value(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// `GET /metrics` on `http`.
fn scrape(http: SocketAddr) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(http) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// Short prompts (0.3 s welcome and menu, a 1 s menu window), one line, no wrap-up.
fn config(name: &str, grace: &str) -> String {
    let dir = support::prompts::short_prompts(name);
    support::prompts::with_prompts(&test_config_text(), &dir)
        .replace("menu_timeout = \"4s\"", "menu_timeout = \"1s\"")
        .replace("drain_grace = \"1s\"", &format!("drain_grace = {grace:?}"))
        .replace("lines = 3", "lines = 1")
        .replace("wrap_up = \"30s\"", "wrap_up = \"0s\"")
}

#[test]
fn a_drain_overflows_the_waiting_caller_and_hangs_up_the_rest_after_the_grace_period() {
    let _serial = support::serial();
    let port = free_port();
    let mut text = config("drain-overflow", "4s");
    text.push_str(&format!(
        "\n[overflow]\nprobe_interval = \"1s\"\n\n[[overflow.targets]]\nname = \"national\"\n\
         uri = \"sip:111@127.0.0.1:{port}\"\n"
    ));
    let d = TestDaemon::with_config(&text);
    let (sip, http) = (d.sip_udp(), d.http());
    let draining = "tongdai_calls_overflowed_total{reason=\"draining\"}";
    let before = d.metric(draining);
    // op1 answers caller A; caller B waits (one line).
    let op1 = support::sipp::agent(sip, "op1", "agent-answer.xml", 25_000);
    d.wait_logged_in("op1");
    let a = waiting_caller(sip);
    // Counted when a call ends: watch the line instead.
    assert_eq!(d.wait_metric("tongdai_lines_busy", 1.0), 1.0, "caller A never reached op1");
    let b = waiting_caller(sip);
    assert_eq!(d.wait_metric("tongdai_queue_waiting_calls", 1.0), 1.0, "caller B never queued");
    let centre = {
        let (file, rtp) = (sf("national-answer.xml"), free_port().to_string());
        std::thread::spawn(move || {
            run_on(port, sip, &["-sf", &file, "-key", "rtp_port", &rtp], Duration::from_secs(30))
        })
    };
    assert_eq!(d.wait_metric("tongdai_overflow_target_up{target=\"national\"}", 1.0), 1.0);
    // SIGTERM.
    let stopped = d.drain_in_background();
    let overflowed = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        value(&scrape(http), draining) >= before + 1.0
    });
    assert!(overflowed, "caller B was not handed over on the drain");
    stopped.join().unwrap();
    // Every scenario passes only if its BYE came: caller A and op1 at the end of the grace period
    // (the bridged call was not cut before), caller B and the centre as the daemon stopped.
    a.join().unwrap().assert_ok();
    b.join().unwrap().assert_ok();
    op1.join().unwrap().assert_ok();
    centre.join().unwrap().assert_stopped_ok();
}

#[test]
fn with_no_target_up_a_new_call_during_the_drain_gets_503_with_retry_after() {
    let _serial = support::serial();
    let d = TestDaemon::with_config(&config("drain-503", "3s"));
    let sip = d.sip_udp();
    // A caller waiting (nobody on duty, no overflow) keeps the drain in its grace period.
    let a = waiting_caller(sip);
    assert_eq!(d.wait_metric("tongdai_queue_waiting_calls", 1.0), 1.0);
    let stopped = d.drain_in_background();
    std::thread::sleep(Duration::from_millis(300));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let local = socket.local_addr().unwrap();
    let invite = support::rig::trunk_request(
        "INVITE",
        1,
        "drain",
        None,
        &support::rig::trunk_offer(1, "sendrecv"),
    )
    .replace(support::rig::TRUNK, &local.to_string());
    socket.send_to(invite.as_bytes(), sip).unwrap();
    let mut final_answer = String::new();
    let mut buf = [0u8; 4096];
    while let Ok((n, _)) = socket.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 100") {
            final_answer = text;
            break;
        }
    }
    assert!(final_answer.starts_with("SIP/2.0 503"), "{final_answer}");
    assert!(final_answer.contains("\r\nRetry-After: "), "{final_answer}");
    stopped.join().unwrap();
    a.join().unwrap().assert_ok();
}
