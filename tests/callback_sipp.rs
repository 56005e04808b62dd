//! A call-back end to end on loopback (issue 11): a SIPp trunk caller from 0901234567 abandons
//! while nobody is logged in, and with `[records] callbacks` on their number lands in the
//! `callbacks` table; the admin API and the wallboard list it without the number (a pseudonym
//! and the last two digits); a supervisor starts it for op1 (a SIPp phone); tongdai rings op1, then dials
//! `+84901234567` through `[trunk] outbound` (a SIPp UAS checking the Request-URI and the `111`
//! caller id), and operator and caller hear each other — checked with the in-repo RTP tool.
//! When the caller hangs up, op1's leg is hung up, `tongdai_callbacks_total{outcome="answered"}`
//! counts it, and the row says `answered`, one attempt, with its number blanked. The same with
//! the `*25` feature code dialled by op2 (SIPp), the runtime reading the oldest call-back from the
//! records for the switchboard.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use support::callers::{call, caller_scenario};
use support::daemon::TestDaemon;
use support::rtp_tool::{RtpTool, Tone, talk_both_ways};
use support::sipp::{SippRun, free_port, run_on, scenario};
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

/// A daemon with call-backs on, the trunk at 127.0.0.1:`trunk_port` and an admin token, after a
/// caller from 0901234567 abandoned (nobody was logged in): the daemon, its folder, the
/// call-back's id as the API lists it.
fn daemon_with_a_callback(tag: &str, trunk_port: u16) -> (TestDaemon, PathBuf, i64) {
    let dir = support::prompts::records_prompts(tag);
    let db = dir.join("records.db");
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let outbound = format!("outbound = \"127.0.0.1:{trunk_port}\"");
    // RTP ports of our own, between other test daemons' default 20000–20999 (a stray stream from
    // one of them must not reach a leg of ours) and the load benchmarks' 30000–39999.
    let first = 21_000 + (std::process::id() % 180) * 50;
    let (min, max) = (format!("rtp_port_min = {first}"), format!("rtp_port_max = {}", first + 49));
    let token = format!("token_file = {:?}", token_file.display().to_string());
    let text = support::prompts::records_config(
        &dir,
        &db,
        &[
            ("callbacks = false", "callbacks = true"),
            ("# outbound = \"203.0.113.10:5060\"", &outbound),
            ("# token_file = \"admin.token\"", &token),
            ("rtp_port_min = 20000", &min),
            ("rtp_port_max = 20999", &max),
        ],
    );
    let d = TestDaemon::with_config(&text);
    let api = d.http();
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
    (d, dir, id)
}

/// SIPp as the trunk on `port`, answering the call-back with its RTP at `rtp`.
fn trunk(d: &TestDaemon, port: u16, rtp: SocketAddr) -> JoinHandle<SippRun> {
    let (sip, file) = (d.sip_udp(), scenario("callback-trunk.xml"));
    let rtp = rtp.port().to_string();
    std::thread::spawn(move || {
        let file = file.to_string_lossy().into_owned();
        run_on(port, sip, &["-sf", &file, "-key", "rtp_port", &rtp], Duration::from_secs(40))
    })
}

/// Operator (`operator_codec`) and caller talk through the daemon: each hears the other, and the
/// operator heard ringback first.
fn both_hear_each_other(
    rt: &tokio::runtime::Runtime,
    operator: &RtpTool,
    operator_codec: Codec,
    caller: &RtpTool,
) {
    let operator_tone = Tone::new(OPERATOR_HZ, operator_codec, 0x0b01);
    let caller_tone = Tone::new(CALLER_HZ, Codec::Pcmu, 0xca11);
    let (operator_heard, caller_heard) =
        rt.block_on(talk_both_ways(operator, operator_tone, caller, caller_tone));
    let first = operator_heard.window(0, 4_000);
    let about = format!(
        "operator heard {} packets (425 Hz {:.2} in the first 0.5 s, caller {:.2}), caller heard {} \
         (operator {:.2})",
        operator_heard.packet_count(),
        first.tone_ratio(425.0),
        operator_heard.tone_ratio(CALLER_HZ),
        caller_heard.packet_count(),
        caller_heard.tone_ratio(OPERATOR_HZ),
    );
    assert!(
        operator_heard.contains_tone(CALLER_HZ),
        "the operator never heard the caller: {about}"
    );
    assert!(
        caller_heard.contains_tone(OPERATOR_HZ),
        "the caller never heard the operator: {about}"
    );
    assert!(first.contains_tone(425.0), "no ringback while the caller's phone rang: {about}");
    assert_eq!(operator_heard.ssrc_changes(), 0, "one stream to the operator throughout");
}

/// The call-back row `id` after the daemon stopped: answered, one attempt, number blanked.
fn assert_answered_row(dir: &Path, id: i64) {
    let conn = rusqlite::Connection::open(dir.join("records.db")).unwrap();
    let row: (String, i64, Option<i64>, String) = conn
        .query_row(
            "SELECT outcome, attempts, last_attempt_ms, number FROM callbacks WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((row.0.as_str(), row.1, row.3.as_str()), ("answered", 1, ""), "{row:?}");
    assert!(row.2.is_some());
}

/// The wallboard's DOM after its scripts ran, from headless Chromium (Debian `chromium`).
fn wallboard_dom(api: SocketAddr) -> String {
    let profile = std::env::temp_dir().join(format!("tongdai-cb-chromium-{}", std::process::id()));
    let out = std::process::Command::new("chromium")
        // As root (CI) Chromium needs --no-sandbox; containers often have a tiny /dev/shm.
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg("--disable-dev-shm-usage")
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("http://{api}/"))
        .output()
        .expect("chromium (Debian package `chromium`) must be installed");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ANSWERED: &str = r#"tongdai_callbacks_total{outcome="answered"}"#;

#[test]
fn an_abandoned_caller_is_called_back_from_the_api_and_they_hear_each_other() {
    let _serial = support::serial();
    let trunk_port = free_port();
    let (d, dir, id) = daemon_with_a_callback("callback-api", trunk_port);
    let api = d.http();
    // The wallboard lists it too, without the number.
    let dom = wallboard_dom(api);
    assert!(dom.contains(&format!("data-callback=\"{id}\"")), "not on the wallboard:\n{dom}");
    assert!(dom.contains("…67") && !dom.contains("901234567"), "{dom}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (operator_rtp, operator_addr) = rt.block_on(RtpTool::bind());
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let trunk = trunk(&d, trunk_port, caller_addr);
    let rtp = operator_addr.port().to_string();
    let keys = [("rtp_port", rtp.as_str())];
    let op1 = support::sipp::agent_with(d.sip_udp(), "op1", "agent-answer.xml", 25_000, &keys);
    d.wait_logged_in("op1");

    let before = d.metric(ANSWERED);
    // Unknown agent, then the real start, then the same again.
    let path = format!("/api/v1/callbacks/{id}/start");
    assert_eq!(http(api, "POST", &path, r#"{"agent":"nobody"}"#).0, 404);
    let (status, body) = http(api, "POST", &path, r#"{"agent":"op1"}"#);
    assert_eq!(status, 202, "{body}");
    assert_eq!(http(api, "POST", &path, r#"{"agent":"op1"}"#).0, 409, "already in progress");

    // op1 answers (PCMA), hears ringback, then the caller (PCMU): both ways.
    both_hear_each_other(&rt, &operator_rtp, Codec::Pcma, &caller_rtp);

    // The caller hangs up after 8 s: op1's leg gets our BYE (agent-answer.xml waits for it).
    trunk.join().unwrap().assert_stopped_ok();
    assert_eq!(d.wait_metric(ANSWERED, before + 1.0), before + 1.0, "{}", d.metrics());
    let op1 = op1.join().unwrap();
    op1.assert_ok();
    assert!(op1.messages.contains("BYE sip:"), "op1 never got the BYE:\n{}", op1.messages);
    drop(d);
    assert_answered_row(&dir, id);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_operator_dials_star_25_and_the_oldest_abandoned_caller_is_called_back() {
    let _serial = support::serial();
    let trunk_port = free_port();
    let (d, dir, id) = daemon_with_a_callback("callback-code", trunk_port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (operator_rtp, operator_addr) = rt.block_on(RtpTool::bind());
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let trunk = trunk(&d, trunk_port, caller_addr);
    let before = (d.metric(ANSWERED), d.metric(r#"tongdai_feature_codes_total{code="callback"}"#));
    // op2 registers and dials *25 (407, then 200 at once: PCMU); the BYE comes when the caller
    // hangs up.
    let op2 = {
        let (sip, file) = (d.sip_udp(), scenario("agent-feature-code.xml"));
        let rtp = operator_addr.port().to_string();
        std::thread::spawn(move || {
            let file = file.to_string_lossy().into_owned();
            let keys = ["-key", "user", "op2", "-key", "password", "op2-test-password"];
            let args = [&["-sf", &file][..], &keys, &["-key", "code", "*25", "-key", "rtp_port"]];
            let mut args: Vec<&str> = args.concat();
            args.extend([rtp.as_str(), "-m", "1"]);
            support::sipp::run(sip, &args, Duration::from_secs(40))
        })
    };
    let code = r#"tongdai_feature_codes_total{code="callback"}"#;
    assert_eq!(d.wait_metric(code, before.1 + 1.0), before.1 + 1.0, "*25 was not taken");
    both_hear_each_other(&rt, &operator_rtp, Codec::Pcmu, &caller_rtp);
    trunk.join().unwrap().assert_stopped_ok();
    op2.join().unwrap().assert_ok();
    assert_eq!(d.wait_metric(ANSWERED, before.0 + 1.0), before.0 + 1.0, "{}", d.metrics());
    drop(d);
    assert_answered_row(&dir, id);
    let _ = std::fs::remove_dir_all(&dir);
}
