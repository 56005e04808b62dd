//! `/readyz` follows the call-records database: a daemon whose records file cannot be opened is
//! not ready (and says why), becomes ready once the file can be written, goes not-ready again when
//! a write fails (a trigger stands in for a failing disk), and ready again when a write succeeds.
//! The daemon keeps taking calls throughout.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use support::daemon::{TestDaemon, test_config_text};

/// `GET /readyz`: the status code and the JSON body.
fn readyz(http: SocketAddr) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// Polls `/readyz` (bounded, 10 s) until it answers `want`; the last answer.
fn wait_readyz(http: SocketAddr, want: u16) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = readyz(http);
        if answer.0 == want || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `records` check of a `/readyz` body.
fn records_check(body: &serde_json::Value) -> serde_json::Value {
    body["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "records"))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// An INVITE to 111 from the trunk at `from` (Call-ID `call`), with an SDP offer.
fn invite(from: SocketAddr, to: SocketAddr, call: &str) -> String {
    let sdp = support::rig::trunk_offer_at(1, "sendrecv", 40_000);
    format!(
        "INVITE sip:111@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call};rport\r\n\
         From: <sip:0901234567@{from}>;tag=t-{call}\r\n\
         To: <sip:111@{to}>\r\n\
         Call-ID: {call}@trunk\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:trunk@{from}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Sends an INVITE and waits (bounded) for the daemon's 200.
fn call(trunk: &UdpSocket, sip: SocketAddr, id: &str) {
    let from = trunk.local_addr().unwrap();
    trunk.send_to(invite(from, sip, id).as_bytes(), sip).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, _)) = trunk.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.starts_with("SIP/2.0 200") && text.contains(&format!("{id}@trunk")) {
                return;
            }
        }
    }
    panic!("no 200 for call {id}");
}

fn calls_in(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).unwrap()
}

#[test]
fn readyz_follows_the_records_writer_down_and_back_up() {
    let _serial = support::serial();
    let dir = std::env::temp_dir().join(format!("tongdai-readyz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The records folder is a plain file: the database cannot be created.
    let blocker = dir.join("records");
    std::fs::write(&blocker, "not a folder").unwrap();
    let db = blocker.join("records.db");
    let text = test_config_text();
    assert_eq!(text.matches("path = \"\"").count(), 1);
    let text = text.replace("path = \"\"", &format!("path = {:?}", db.display().to_string()));
    let d = TestDaemon::with_config(&text);

    let (status, body) = readyz(d.http());
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    let records = records_check(&body);
    assert_eq!(records["ok"], false, "{body}");
    assert!(records["detail"].as_str().unwrap_or("").contains("writes failing"), "{body}");
    assert_eq!(d.metric("tongdai_records_writable"), 0.0);
    // The other checks pass: only the records hold readiness back.
    for check in body["checks"].as_array().unwrap() {
        if check["name"] != "records" {
            assert_eq!(check["ok"], true, "{body}");
        }
    }

    // The folder can be made now: the writer opens the file by itself and the daemon is ready.
    std::fs::remove_file(&blocker).unwrap();
    let (status, body) = wait_readyz(d.http(), 200);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(records_check(&body)["detail"], "writable");
    assert_eq!(d.metric("tongdai_records_writable"), 1.0);

    // Writes start failing (a trigger refuses every new call row), while the daemon takes a call.
    let side = rusqlite::Connection::open(&db).unwrap();
    side.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let trunk = UdpSocket::bind("127.0.0.1:0").unwrap();
    trunk.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    call(&trunk, d.sip_udp(), "ready-1");
    let (status, body) = wait_readyz(d.http(), 503);
    assert_eq!(status, 503, "{body}");
    assert!(records_check(&body)["detail"].as_str().unwrap_or("").contains("disk full"), "{body}");
    assert_eq!(calls_in(&db), 0);
    assert_eq!(d.metric("tongdai_records_writable"), 0.0);

    // The disk is back: the next call's row is written and the daemon is ready again.
    side.execute_batch("DROP TRIGGER refuse").unwrap();
    call(&trunk, d.sip_udp(), "ready-2");
    let (status, body) = wait_readyz(d.http(), 200);
    assert_eq!(status, 200, "{body}");
    assert_eq!(calls_in(&db), 1);
    assert_eq!(d.metric("tongdai_records_writable"), 1.0);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
