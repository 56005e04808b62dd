//! Supervisor modes on the audio, end to end: a daemon started in-process on loopback, a trunk
//! caller, an operator (op1) and a supervisor (sup1) as literal-SIP phones, each with an RTP tool
//! sending its own tone (caller 400 Hz, operator 1000 Hz, supervisor 1600 Hz), and who hears whom
//! judged by Goertzel on what each tool received:
//! - listen (`*51op1`): the supervisor hears caller and operator; caller and operator do not
//!   hear the supervisor. The supervisor's BYE leaves caller and operator talking as before;
//! - whisper (`*52op1`): the operator hears the supervisor, the caller does not; the caller's
//!   hang-up reaches the supervisor as a BYE;
//! - barge (`POST /api/v1/agents/op1/supervise`, tongdai rings the supervisor's phone): everyone
//!   hears the two others.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use support::agent::Agent;
use support::daemon::{TestDaemon, test_config_text};
use support::prompts::{with_prompts, write_tone};
use support::rtp_tool::{Recording, RtpTool, Tone};
use tongdai::media::g711::Codec;
use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::message::{Method, Request, Response};

const CALLER_HZ: f64 = 400.0;
const AGENT_HZ: f64 = 1000.0;
const SUPERVISOR_HZ: f64 = 1600.0;
/// Tone packets each phone sends per round (1 s).
const PACKETS: u32 = 50;
/// A tone's share of a recording's energy above which it was heard; below `FAINT`, not heard.
const HEARD: f64 = 0.25;
const FAINT: f64 = 0.02;
const TOKEN: &str = "supervise-test-token";
const WAIT: Duration = Duration::from_secs(10);

/// A temporary folder removed at the end.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon with short prompts far from the test tones (welcome 700 Hz, hold 250 Hz), a
/// supervisor account `sup1` and an admin token.
fn daemon(name: &str) -> (TestDaemon, Dir) {
    let dir = std::env::temp_dir().join(format!("tongdai-sup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_tone(&dir.join("welcome.wav"), 700.0, 0.3);
    write_tone(&dir.join("hold-music.wav"), 250.0, 1.0);
    let token = dir.join("admin.token");
    std::fs::write(&token, TOKEN).unwrap();
    let mut text = with_prompts(&test_config_text(), &dir).replace(
        "# token_file = \"admin.token\"",
        &format!("token_file = {:?}", token.display().to_string()),
    );
    text.push_str(
        "\n[[agents]]\nid = \"sup1\"\nname = \"Giám sát 1\"\nrole = \"supervisor\"\npassword = \"sup1-pw\"\n",
    );
    (TestDaemon::with_config(&text), Dir(dir))
}

fn value(r: &Response, name: &str) -> String {
    r.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

/// A phone's SDP at RTP `port` on loopback (PCMU, PCMA, telephone-event).
fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// The RTP port an SDP body names.
fn audio_port(body: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().find(|l| l.starts_with("m=audio ")).expect("an m=audio line");
    line.split(' ').nth(1).and_then(|p| p.parse().ok()).expect("a port")
}

/// An INVITE from `phone` (user `user`) to `target` (a user at the daemon), CSeq `cseq`.
fn invite(
    phone: &Agent,
    daemon: SocketAddr,
    user: &str,
    target: &str,
    cseq: u32,
    extra: &str,
    body: &str,
) -> String {
    let local = phone.local_addr();
    format!(
        "INVITE sip:{target}@{daemon} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{user}{cseq};rport\r\n\
         From: <sip:{user}@{daemon}>;tag={user}-tag\r\nTo: <sip:{target}@{daemon}>\r\n\
         Call-ID: {user}-{target}-{}@phone\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{user}@{local}>\r\n\
         Max-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        local.port(),
        body.len()
    )
}

/// A request in the dialog our INVITE made and `ok` answered (ACK of a 2xx, BYE, …).
fn in_dialog(phone: &Agent, ok: &Response, method: &str, cseq: u32, branch: &str) -> String {
    let local = phone.local_addr();
    format!(
        "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        contact_uri(ok),
        value(ok, "From"),
        value(ok, "To"),
        value(ok, "Call-ID")
    )
}

/// The URI in a response's Contact.
fn contact_uri(r: &Response) -> String {
    let contact = value(r, "Contact");
    let inner = contact.split('<').nth(1).and_then(|c| c.split('>').next());
    inner.unwrap_or(&contact).to_string()
}

/// The final response within [`WAIT`].
fn final_response(phone: &Agent) -> Response {
    loop {
        let r = phone.recv_response(WAIT).expect("no final response");
        if r.status >= 200 {
            return r;
        }
    }
}

/// The next request with `method` within [`WAIT`] (others are skipped).
fn next_request(phone: &Agent, method: Method) -> (Request, SocketAddr) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (r, from) = phone.recv_request(left).unwrap_or_else(|| panic!("no {method:?}"));
        if r.method == method {
            return (r, from);
        }
    }
}

/// A call with caller, operator and supervisor phones and their RTP tools.
struct Call {
    daemon: TestDaemon,
    _dir: Dir,
    rt: tokio::runtime::Runtime,
    caller: Agent,
    caller_ok: Response,
    op1: Agent,
    supervisor: Agent,
    /// (tool, the daemon's port for its leg, its tone): caller, operator, supervisor.
    legs: [(RtpTool, SocketAddr, Tone); 3],
}

impl Call {
    /// A trunk call bridged to op1, with sup1 registered (not yet on the call).
    fn bridged(name: &str) -> Call {
        let (daemon, dir) = daemon(name);
        let target = daemon.sip_udp();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let tools = [(); 3].map(|_| rt.block_on(RtpTool::bind()));
        let mut op1 = Agent::new(target, "op1", "op1-test-password");
        assert_eq!(op1.register(600).status, 200);
        let mut supervisor = Agent::new(target, "sup1", "sup1-pw");
        assert_eq!(supervisor.register(600).status, 200);
        let caller = Agent::new(target, "0901234567", "");
        caller.send(&invite(&caller, target, "0901234567", "111", 1, "", &sdp(tools[0].1.port())));
        let caller_ok = final_response(&caller);
        assert_eq!(caller_ok.status, 200);
        caller.send(&in_dialog(&caller, &caller_ok, "ACK", 1, "callerack"));
        let (ring, from) = next_request(&op1, Method::Invite);
        op1.answer(&ring, 200, from, Some(&sdp(tools[1].1.port())));
        let ip = target.ip();
        let ports = [audio_port(&caller_ok.body), audio_port(&ring.body), 0];
        let tones = [
            Tone::new(CALLER_HZ, Codec::Pcmu, 1),
            Tone::new(AGENT_HZ, Codec::Pcmu, 2),
            Tone::new(SUPERVISOR_HZ, Codec::Pcmu, 3),
        ];
        let mut i = 0;
        let legs = tools.map(|(tool, _)| {
            let leg = (tool, SocketAddr::new(ip, ports[i]), tones[i]);
            i += 1;
            leg
        });
        // The daemon has sent its ACK for op1's 200 once the operator's leg is up.
        let call = Call { daemon, _dir: dir, rt, caller, caller_ok, op1, supervisor, legs };
        call.wait_metric("tongdai_agents{state=\"on_call\"}", 1.0);
        call
    }

    fn wait_metric(&self, series: &str, want: f64) {
        assert_eq!(self.daemon.wait_metric(series, want), want, "{series}");
    }

    /// The supervisor dials `code`, answers the 407 and is answered: our 200.
    fn dial(&mut self, code: &str) -> Response {
        let target = self.daemon.sip_udp();
        let sup = &self.supervisor;
        let body = sdp(self.legs[2].0.local_addr().port());
        sup.send(&invite(sup, target, "sup1", code, 1, "", &body));
        let challenge = final_response(sup);
        assert_eq!(challenge.status, 407);
        // The ACK of a non-2xx takes the INVITE's branch.
        let ack = in_dialog(sup, &challenge, "ACK", 1, "sup11").replace(
            &format!("ACK {} SIP", contact_uri(&challenge)),
            &format!("ACK sip:{code}@{target} SIP"),
        );
        sup.send(&ack);
        let challenges = challenge.headers.proxy_authenticate().unwrap();
        let uri = format!("sip:{code}@{target}");
        let answer = ClientAnswer {
            user: "sup1",
            password: "sup1-pw",
            method: &Method::Invite,
            uri: &uri,
            cnonce: "5ca1ab1e",
            nc: 1,
        };
        let value = authorization(preferred_challenge(&challenges).unwrap(), &answer).unwrap();
        let auth = format!("Proxy-Authorization: {value}\r\n");
        sup.send(&invite(sup, target, "sup1", code, 2, &auth, &body));
        let ok = final_response(sup);
        assert_eq!(ok.status, 200, "{ok:?}");
        sup.send(&in_dialog(sup, &ok, "ACK", 2, "supack"));
        self.legs[2].1 = SocketAddr::new(target.ip(), audio_port(&ok.body));
        ok
    }

    /// Every phone talks for one second at once; how many samples each had heard before.
    fn talk(&self) -> [usize; 3] {
        let before = self.legs.each_ref().map(|(tool, _, _)| tool.recording().samples.len());
        self.rt.block_on(async {
            let talking: Vec<_> = self
                .legs
                .iter()
                .map(|(tool, to, tone)| tool.spawn_tone(*to, *tone, PACKETS))
                .collect();
            for t in talking {
                t.await.unwrap();
            }
            // The last frames through the mixer's queue.
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        before
    }

    /// What each phone heard since sample `from[i]`.
    fn heard_since(&self, from: [usize; 3]) -> [Recording; 3] {
        let mut i = 0;
        self.legs.each_ref().map(|(tool, _, _)| {
            let r = tool.recording();
            let part = r.window(from[i], r.samples.len());
            i += 1;
            part
        })
    }
}

/// Asserts which of the caller's, operator's and supervisor's tones `who` heard in `r`.
fn assert_heard(who: &str, r: &Recording, expected: [bool; 3]) {
    assert!(r.samples.len() >= 160 * 40, "{who} heard {} samples", r.samples.len());
    for (hz, heard) in [CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ].into_iter().zip(expected) {
        let ratio = r.tone_ratio(hz);
        if heard {
            assert!(ratio > HEARD, "{who} should hear {hz} Hz: share {ratio:.3}");
        } else {
            assert!(ratio < FAINT, "{who} should not hear {hz} Hz: share {ratio:.3}");
        }
    }
}

/// One HTTP POST with a JSON body and the admin token: status and body.
fn post(addr: SocketAddr, path: &str, json: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn listen_the_supervisor_hears_both_and_nobody_hears_the_supervisor() {
    let _serial = support::serial();
    let mut call = Call::bridged("listen");
    let listens = "tongdai_supervisions_total{mode=\"listen\"}";
    let before = call.daemon.metric(listens);
    let ok = call.dial("*51op1");
    let from = call.talk();
    let [caller, agent, supervisor] = call.heard_since(from);
    assert_heard("caller", &caller, [false, true, false]);
    assert_heard("operator", &agent, [true, false, false]);
    assert_heard("supervisor", &supervisor, [true, true, false]);
    assert_eq!(call.daemon.metric(listens) - before, 1.0);
    // The supervisor hangs up: caller and operator talk as before, the supervisor hears no more.
    let sup = &call.supervisor;
    sup.send(&in_dialog(sup, &ok, "BYE", 3, "supbye"));
    assert_eq!(final_response(sup).status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let sup_packets = call.legs[2].0.recording().packets.len();
    let from = call.talk();
    let [caller, agent, _] = call.heard_since(from);
    assert_heard("caller after the supervisor left", &caller, [false, true, false]);
    assert_heard("operator after the supervisor left", &agent, [true, false, false]);
    assert_eq!(
        call.legs[2].0.recording().packets.len(),
        sup_packets,
        "the supervisor hears no more"
    );
    assert_eq!(call.daemon.metric("tongdai_agents{state=\"on_call\"}"), 1.0, "the call goes on");
}

#[test]
fn whisper_the_operator_hears_the_supervisor_and_the_caller_does_not() {
    let _serial = support::serial();
    let mut call = Call::bridged("whisper");
    call.dial("*52op1");
    let from = call.talk();
    let [caller, agent, supervisor] = call.heard_since(from);
    assert_heard("caller", &caller, [false, true, false]);
    assert_heard("operator", &agent, [true, false, true]);
    assert_heard("supervisor", &supervisor, [true, true, false]);
    // The caller hangs up: the operator and the supervisor get BYE.
    let bye = in_dialog(&call.caller, &call.caller_ok, "BYE", 2, "callerbye");
    call.caller.send(&bye);
    let (request, from) = next_request(&call.supervisor, Method::Bye);
    call.supervisor.answer(&request, 200, from, None);
    let (request, from) = next_request(&call.op1, Method::Bye);
    call.op1.answer(&request, 200, from, None);
}

#[test]
fn barge_by_the_admin_api_everyone_hears_the_two_others() {
    let _serial = support::serial();
    let mut call = Call::bridged("barge");
    let barges = "tongdai_supervisions_total{mode=\"barge\"}";
    let before = call.daemon.metric(barges);
    let api = call.daemon.http();
    let body = r#"{"supervisor": "sup1", "mode": "barge"}"#;
    let (status, answer) = post(api, "/api/v1/agents/op1/supervise", body);
    assert_eq!(status, 202, "{answer}");
    // tongdai rings the supervisor's phone, which answers.
    let (ring, from) = next_request(&call.supervisor, Method::Invite);
    let display = String::from_utf8_lossy(ring.headers.get("From").unwrap()).into_owned();
    assert!(display.starts_with("\"111 · barge · Điện thoại viên 1\""), "{display}");
    assert!(!String::from_utf8_lossy(&ring.to_bytes()).contains("0901234567"), "no caller number");
    let port = call.legs[2].0.local_addr().port();
    call.supervisor.answer(&ring, 200, from, Some(&sdp(port)));
    call.legs[2].1 = SocketAddr::new(call.daemon.sip_udp().ip(), audio_port(&ring.body));
    call.wait_metric(barges, before + 1.0);
    let from = call.talk();
    let [caller, agent, supervisor] = call.heard_since(from);
    assert_heard("caller", &caller, [false, true, true]);
    assert_heard("operator", &agent, [true, false, true]);
    assert_heard("supervisor", &supervisor, [true, true, false]);
    // A second supervision of the same call is refused.
    let (status, _) = post(api, "/api/v1/agents/op1/supervise", body);
    assert_eq!(status, 409);
    // An operator cannot be a supervisor.
    let (status, _) =
        post(api, "/api/v1/agents/op1/supervise", r#"{"supervisor": "op2", "mode": "listen"}"#);
    assert_eq!(status, 403);
}
