//! The admin API and the wallboard against a daemon on loopback: a SIPp agent registers and answers
//! a SIPp trunk call; the API shows the agent, the answered call and today's counts (never a
//! number); pause/resume need the bearer token of `[http] token_file`; the OpenAPI document names
//! every route; and the wallboard, loaded in headless Chromium (Debian `chromium`), shows the same
//! numbers as the API. The wallboard screenshot is kept as `target/test-artefacts/wallboard.png`.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::daemon::{TestDaemon, test_config_text};
use support::sipp::{free_port, run, scenario};

const TOKEN: &str = "s3cret-supervisor-token";

/// One HTTP/1.1 request; the status and body.
fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn agent_of<'a>(board: &'a Value, id: &str) -> &'a Value {
    board["agents"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap()
}

/// Polls `/api/v1/board` (bounded) until `ok` holds; the last board.
fn wait_board(addr: SocketAddr, ok: impl Fn(&Value) -> bool) -> Value {
    let mut board = json(addr, "/api/v1/board");
    for _ in 0..400 {
        if ok(&board) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
        board = json(addr, "/api/v1/board");
    }
    board
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn daemon(with_token: bool) -> (TestDaemon, Dir, Dir) {
    let dir =
        std::env::temp_dir().join(format!("tongdai-admin-{}-{with_token}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let prompts = support::prompts::short_prompts(&format!("admin-{with_token}"));
    let mut text = support::prompts::with_prompts(&test_config_text(), &prompts)
        .replace("menu_timeout = \"4s\"", "menu_timeout = \"300ms\"")
        .replace("wrap_up = \"30s\"", "wrap_up = \"1s\"");
    if with_token {
        text = text.replace(
            "# token_file = \"admin.token\"",
            &format!("token_file = {:?}", token_file.display().to_string()),
        );
    }
    (TestDaemon::with_config(&text), Dir(dir), Dir(prompts))
}

#[test]
fn board_agents_and_supervisor_commands() {
    let _serial = support::serial();
    let (d, _dir, _prompts) = daemon(true);
    let api = d.http();
    // A SIPp agent registers (MD5 digest) and answers one call.
    let target = d.sip_udp();
    let agent = support::sipp::agent(target, "op1", "agent-answer.xml", 6000);
    let board = wait_board(api, |b| agent_of(b, "op1")["state"] == "available");
    assert_eq!(agent_of(&board, "op1")["state"], "available", "{board}");
    assert_eq!(agent_of(&board, "op2")["state"], "logged_out");
    assert_eq!(board["lines"]["total"], 3);

    // One trunk call, answered and talked for 1 s.
    let caller_rtp = free_port().to_string();
    let trunk = scenario("trunk-caller.xml");
    let caller = run(
        target,
        &["-sf", trunk.to_str().unwrap(), "-key", "rtp_port", &caller_rtp, "-d", "1000", "-m", "1"],
        Duration::from_secs(30),
    );
    caller.assert_ok();
    let board = wait_board(api, |b| b["today"]["answered"] == 1);
    assert_eq!(board["today"]["answered"], 1, "{board}");
    assert_eq!(board["today"]["offered"], 1);
    assert_eq!(board["today"]["abandoned"], 0);
    assert_eq!(board["today"]["service_level_pct"], 100.0);
    assert_eq!(agent_of(&board, "op1")["answered_today"], 1);
    // The trunk caller's number (From of trunk-caller.xml) is nowhere in any view.
    for path in ["/api/v1/board", "/api/v1/queue", "/api/v1/agents", "/api/v1/calls"] {
        let (_, body) = http(api, "GET", path, None);
        assert!(!body.contains("0901234567") && !body.contains("84901234567"), "{path}: {body}");
    }
    assert_eq!(json(api, "/api/v1/queue")["queue"]["waiting"], 0);
    assert!(json(api, "/api/v1/calls")["calls"].as_array().unwrap().is_empty());

    // Changes need the token.
    assert_eq!(http(api, "POST", "/api/v1/agents/op1/pause", None).0, 401);
    assert_eq!(http(api, "POST", "/api/v1/agents/op1/pause", Some("guess")).0, 401);
    assert_eq!(http(api, "POST", "/api/v1/agents/nobody/pause", Some(TOKEN)).0, 404);
    let board = wait_board(api, |b| agent_of(b, "op1")["state"] == "available");
    assert_eq!(agent_of(&board, "op1")["state"], "available", "wrap-up should end: {board}");
    assert_eq!(http(api, "POST", "/api/v1/agents/op1/pause", Some(TOKEN)).0, 200);
    let a = json(api, "/api/v1/agents");
    let op1 = a["agents"].as_array().unwrap().iter().find(|a| a["id"] == "op1").unwrap().clone();
    assert_eq!(
        (op1["state"].as_str(), op1["pause_reason"].as_str()),
        (Some("paused"), Some("supervisor"))
    );
    // The wallboard shows the same: one answered call, op1 paused.
    check_wallboard(api);
    assert_eq!(http(api, "POST", "/api/v1/agents/op1/resume", Some(TOKEN)).0, 200);
    assert_eq!(agent_of(&json(api, "/api/v1/board"), "op1")["state"], "available");
    agent.join().unwrap().assert_ok();
}

#[test]
fn changes_are_refused_without_a_token_file_and_the_document_names_every_route() {
    let _serial = support::serial();
    let (d, _dir, _prompts) = daemon(false);
    let (status, body) = http(d.http(), "POST", "/api/v1/agents/op1/pause", Some(TOKEN));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("[http] token_file"));
    let doc = json(d.http(), "/api/v1/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let routes = [
        "/",
        "/metrics",
        "/healthz",
        "/readyz",
        "/api/v1/openapi.json",
        "/api/v1/board",
        "/api/v1/queue",
        "/api/v1/agents",
        "/api/v1/calls",
        "/api/v1/directory",
        "/api/v1/agents/{id}/pause",
        "/api/v1/agents/{id}/resume",
        "/api/v1/agents/{id}/supervise",
        "/api/v1/callbacks",
        "/api/v1/callbacks/{id}/start",
    ];
    assert_eq!(paths.len(), routes.len());
    for route in routes {
        assert!(paths.contains_key(route), "{route} missing from the OpenAPI document");
        let concrete = route.replace("{id}", "op1");
        let post = ["pause", "resume", "supervise", "start"].iter().any(|r| route.ends_with(r));
        let method = if post { "POST" } else { "GET" };
        let (status, _) = http(d.http(), method, &concrete, None);
        assert_ne!(status, 404, "{route} documented but not served");
    }
}

/// Loads the wallboard in headless Chromium and checks it shows what `/api/v1/board` says; saves
/// a screenshot.
fn check_wallboard(api: SocketAddr) {
    let board = json(api, "/api/v1/board");
    let url = format!("http://{api}/");
    let artefacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("wallboard.png");
    let chromium = |extra: &[&str]| {
        let profile = std::env::temp_dir().join(format!("tongdai-chromium-{}", std::process::id()));
        let mut cmd = Command::new("chromium");
        // As root (CI) Chromium needs --no-sandbox; containers often have a tiny /dev/shm.
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            .arg("--disable-dev-shm-usage")
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--virtual-time-budget=5000", "--window-size=1280,900"])
            .args(extra)
            .arg(&url);
        let out = cmd.output().expect("chromium (Debian package `chromium`) must be installed");
        let _ = std::fs::remove_dir_all(&profile);
        out
    };
    let out = chromium(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("data-loaded=\"1\""), "the page never rendered the board:\n{dom}");
    let text_of = |id: &str| -> String {
        let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("{id} missing"));
        let rest = &dom[start..];
        let open = rest.find('>').unwrap() + 1;
        rest[open..open + rest[open..].find('<').unwrap()].to_string()
    };
    assert_eq!(text_of("waiting"), board["queue"]["waiting"].to_string());
    assert_eq!(text_of("answered"), board["today"]["answered"].to_string());
    assert_eq!(text_of("abandoned"), board["today"]["abandoned"].to_string());
    assert_eq!(text_of("overflowed"), board["today"]["overflowed"].to_string());
    assert_eq!(text_of("lines"), format!("{}/{}", board["lines"]["busy"], board["lines"]["total"]));
    assert_eq!(text_of("answered"), "1", "the wallboard runs after one answered call");
    for a in board["agents"].as_array().unwrap() {
        let row = format!("data-agent=\"{}\"", a["id"].as_str().unwrap());
        let at = dom.find(&row).unwrap_or_else(|| panic!("no row for {row}"));
        let state = format!("data-state=\"{}\"", a["state"].as_str().unwrap());
        assert!(dom[at..].contains(&state), "{row} should show {state}");
    }
    assert!(dom.contains("Đang chờ") && dom.contains("Callers waiting"), "both languages");
    let out = chromium(&[&format!("--screenshot={}", shot.display())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot too small");
}
