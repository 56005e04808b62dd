//! A call-back end to end on loopback (issue 11): a SIPp trunk caller from 0901234567 abandons
//! while nobody is logged in, and with `[records] callbacks` on their number lands in the
//! `callbacks` table; the admin API lists it without the number (a pseudonym and the last two
//! digits); a supervisor starts it for op1 (a SIPp phone); tongdai rings op1, then dials
//! `+84901234567` through `[trunk] outbound` (a SIPp UAS checking the Request-URI and the `111`
//! caller id), and operator and caller hear each other — checked with the in-repo RTP tool.
//! When the caller hangs up, op1's leg is hung up, `tongdai_callbacks_total{outcome="answered"}`
//! counts it, and the row says `answered`, one attempt, with its number blanked.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use support::callers::{call, caller_scenario};
use support::rtp_tool::{RtpTool, Tone, talk_both_ways};
use support::sipp::{free_port, run_on, scenario};
use tongdai::media::g711::Codec;

const TOKEN: &str = "call-back-supervisor-token";
const OPERATOR_HZ: f64 = 700.0;
const CALLER_HZ: f64 = 1300.0;

/// One HTTP/1.1 request with an optional JSON body; the status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Polls (bounded) until `read` gives `Some`.
fn wait_for<T>(mut read: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..400 {
        if let Some(v) = read() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

#[test]
fn an_abandoned_caller_is_called_back_by_an_operator_and_they_hear_each_other() {
    let _serial = support::serial();
    let dir = support::prompts::records_prompts("callback-sipp");
    let db = dir.join("records.db");
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let trunk_port = free_port();
    let outbound = format!("outbound = \"127.0.0.1:{trunk_port}\"");
    let token = format!("token_file = {:?}", token_file.display().to_string());
    let text = support::prompts::records_config(
        &dir,
        &db,
        &[
            ("callbacks = false", "callbacks = true"),
            ("# outbound = \"203.0.113.10:5060\"", &outbound),
            ("# token_file = \"admin.token\"", &token),
        ],
    );
    let d = support::daemon::TestDaemon::with_config(&text);
    let api = d.http();

    // Nobody is logged in: the caller waits, then hangs up: kept for a call-back.
    call(d.sip_udp(), &caller_scenario(&dir, "0901234567", "111", &[]), 300).assert_ok();
    let listed = wait_for(|| {
        let (status, body) = http(api, "GET", "/api/v1/callbacks", "");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let list = v["callbacks"].as_array().cloned().unwrap_or_default();
        (!list.is_empty()).then_some((list, body))
    });
    let (list, body) = listed.expect("the abandoned call never became a call-back");
    assert_eq!(list.len(), 1, "{body}");
    assert!(!body.contains("901234567"), "no number in the list: {body}");
    assert_eq!(list[0]["last_digits"], "67");
    assert!(list[0]["caller"].as_str().unwrap().starts_with('#'), "{body}");
    assert_eq!(list[0]["attempts"], 0);
    let id = list[0]["id"].as_i64().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (operator_rtp, operator_addr) = rt.block_on(RtpTool::bind());
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let trunk = {
        let (sip, file) = (d.sip_udp(), scenario("callback-trunk.xml"));
        let rtp = caller_addr.port().to_string();
        std::thread::spawn(move || {
            let file = file.to_string_lossy().into_owned();
            run_on(
                trunk_port,
                sip,
                &["-sf", &file, "-key", "rtp_port", &rtp],
                Duration::from_secs(40),
            )
        })
    };
    let registered = d.metric("tongdai_registrations");
    let rtp = operator_addr.port().to_string();
    let op1 = support::sipp::agent_with(
        d.sip_udp(),
        "op1",
        "agent-answer.xml",
        25_000,
        &[("rtp_port", rtp.as_str())],
    );
    assert_eq!(d.wait_metric("tongdai_registrations", registered + 1.0), registered + 1.0);

    let answered = r#"tongdai_callbacks_total{outcome="answered"}"#;
    let before = d.metric(answered);
    // Unknown agent, then the real start.
    let path = format!("/api/v1/callbacks/{id}/start");
    assert_eq!(http(api, "POST", &path, r#"{"agent":"nobody"}"#).0, 404);
    let (status, body) = http(api, "POST", &path, r#"{"agent":"op1"}"#);
    assert_eq!(status, 202, "{body}");
    assert_eq!(http(api, "POST", &path, r#"{"agent":"op1"}"#).0, 409, "already in progress");

    // op1 answers (PCMA), hears ringback, then the caller (PCMU): both ways.
    let operator_tone = Tone::new(OPERATOR_HZ, Codec::Pcma, 0x0b01);
    let caller_tone = Tone::new(CALLER_HZ, Codec::Pcmu, 0xca11);
    let (operator_heard, caller_heard) =
        rt.block_on(talk_both_ways(&operator_rtp, operator_tone, &caller_rtp, caller_tone));
    assert!(operator_heard.contains_tone(CALLER_HZ), "the operator never heard the caller");
    assert!(caller_heard.contains_tone(OPERATOR_HZ), "the caller never heard the operator");
    let first = operator_heard.window(0, 4_000);
    assert!(first.contains_tone(425.0), "no ringback while the caller's phone rang");
    assert_eq!(operator_heard.ssrc_changes(), 0, "one stream to the operator throughout");

    // The caller hangs up after 8 s: op1's leg gets our BYE (agent-answer.xml waits for it).
    trunk.join().unwrap().assert_stopped_ok();
    assert_eq!(d.wait_metric(answered, before + 1.0), before + 1.0, "{}", d.metrics());
    let op1 = op1.join().unwrap();
    op1.assert_ok();
    assert!(op1.messages.contains("BYE sip:"), "op1 never got the BYE:\n{}", op1.messages);
    drop(d);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let row: (String, i64, Option<i64>, String) = conn
        .query_row(
            "SELECT outcome, attempts, last_attempt_ms, number FROM callbacks WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((row.0.as_str(), row.1, row.3.as_str()), ("answered", 1, ""), "{row:?}");
    assert!(row.2.is_some());
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}
