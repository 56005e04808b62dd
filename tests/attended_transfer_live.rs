//! Attended transfer and the three-way conference end to end on loopback (issue 11): a SIPp trunk
//! caller reaches op1, a literal-SIP softphone (SIPp cannot hold two dialogs with different
//! Call-IDs in one scenario), which holds the caller, dials the directory code `*31` (answered by
//! a SIPp target), talks with the target, then either completes with REFER + Replaces (caller and
//! target then hear each other) or presses `*3` (caller, operator and target each hear the other
//! two, never themselves). A busy target fails the consultation with 486 and the operator
//! resumes the caller. All audio is checked with the in-repo RTP tool.

mod support;

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use support::agent::Agent;
use support::daemon::{TestDaemon, test_config_text};
use support::rtp_tool::{RtpTool, Tone, first_source, share, talk};
use support::sipp::{SippRun, free_port, run, run_on, scenario};
use tongdai::media::g711::Codec;
use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::message::{Message, Method, Request, Response};

const CALLER_HZ: f64 = 440.0;
const AGENT_HZ: f64 = 1000.0;
const TARGET_HZ: f64 = 1700.0;
const WAIT: Duration = Duration::from_secs(15);

fn sf(name: &str) -> String {
    scenario(name).to_string_lossy().into_owned()
}

fn h(m: &Request, name: &str) -> String {
    m.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn rh(m: &Response, name: &str) -> String {
    m.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn sdp(port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=op1 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

/// The daemon with short prompts and the directory entry `*31` → the target at `target_port`.
fn daemon(name: &str, target_port: u16) -> TestDaemon {
    let dir = support::prompts::short_prompts(name);
    let directory = format!(
        "\n[[directory]]\nname = \"Sở LĐTBXH Đồng Nai\"\nkind = \"focal_point\"\n\
         uri = \"sip:focal@127.0.0.1:{target_port}\"\ncode = \"*31\"\n"
    );
    let text = support::prompts::with_prompts(&test_config_text(), &dir)
        .replace("menu_timeout = \"4s\"", "menu_timeout = \"1s\"")
        + &directory;
    TestDaemon::with_config(&text)
}

/// op1's softphone: the call from the daemon (dialog A) and its consultation (dialog B).
struct Phone {
    agent: Agent,
    daemon: SocketAddr,
    /// The daemon's INVITE of the caller's call.
    invite: Request,
    /// Where the daemon sent it from.
    from: SocketAddr,
    cseq: u32,
    /// Our consultation's INVITE and the daemon's To tag in it, once answered.
    consult: Option<(String, String)>,
}

impl Phone {
    /// Registers op1.
    fn register(daemon: SocketAddr) -> Agent {
        let mut agent = Agent::new(daemon, "op1", "op1-test-password");
        assert_eq!(agent.register(120).status, 200);
        agent
    }

    /// Answers the daemon's INVITE with media at `rtp`.
    fn answer_call(agent: Agent, daemon: SocketAddr, rtp: u16) -> Phone {
        let (invite, from) = loop {
            let (r, from) = agent.recv_request(WAIT).expect("the daemon rings op1");
            if r.method == Method::Invite {
                break (r, from);
            }
            agent.answer(&r, 200, from, None);
        };
        agent.answer(&invite, 200, from, Some(&sdp(rtp, "sendrecv")));
        Phone { agent, daemon, invite, from, cseq: 1, consult: None }
    }

    /// A request in dialog A (the caller's call), e.g. a hold re-INVITE or the REFER.
    fn in_call(&mut self, method: &str, extra: &str, body: &str) -> u32 {
        let cseq = self.cseq;
        self.cseq += 1;
        let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        let local = self.agent.local_addr();
        let text = format!(
            "{method} sip:tongdai@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-a-{cseq}\r\n\
             From: {to};tag=agenttag\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:op1@{local}>\r\nMax-Forwards: 70\r\n{extra}{ctype}\
             Content-Length: {len}\r\n\r\n{body}",
            d = self.from,
            to = h(&self.invite, "To"),
            from = h(&self.invite, "From"),
            cid = h(&self.invite, "Call-ID"),
            len = body.len(),
        );
        self.agent.send_to(&text, self.from);
        cseq
    }

    /// The final response to our request `cseq` of `call_id`, answering the daemon's requests
    /// (NOTIFY, BYE) with 200 meanwhile; those are returned too.
    fn final_for(&mut self, call_id: &str, cseq: u32) -> (Response, Vec<Request>) {
        let mut seen = Vec::new();
        loop {
            let (m, from) = self.agent.recv(WAIT).expect("an answer from the daemon");
            match m {
                Message::Response(r)
                    if r.status >= 200
                        && r.headers.call_id().is_ok_and(|c| c == call_id)
                        && r.headers.cseq().is_ok_and(|c| c.seq == cseq) =>
                {
                    return (r, seen);
                }
                Message::Response(_) => {}
                Message::Request(q) => {
                    if q.method != Method::Ack {
                        self.agent.answer(&q, 200, from, None);
                    }
                    seen.push(q);
                }
            }
        }
    }

    /// ACK for a final response `r` of ours in dialog A.
    fn ack_in_call(&mut self, cseq: u32) {
        let local = self.agent.local_addr();
        let text = format!(
            "ACK sip:tongdai@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ack-{cseq}\r\n\
             From: {to};tag=agenttag\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            d = self.from,
            to = h(&self.invite, "To"),
            from = h(&self.invite, "From"),
            cid = h(&self.invite, "Call-ID"),
        );
        self.agent.send_to(&text, self.from);
    }

    /// Holds the caller (re-INVITE `sendonly`) and ACKs the 200.
    fn hold(&mut self, rtp: u16) {
        let cseq = self.in_call("INVITE", "", &sdp(rtp, "sendonly"));
        let call_id = h(&self.invite, "Call-ID");
        let (ok, seen) = self.final_for(&call_id, cseq);
        assert_eq!(ok.status, 200, "hold accepted: {seen:?}");
        self.ack_in_call(cseq);
    }

    fn consult_invite(&self, cseq: u32, rtp: u16, auth: &str) -> String {
        let local = self.agent.local_addr();
        let body = sdp(rtp, "sendrecv");
        format!(
            "INVITE sip:*31@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-c-{cseq};rport\r\n\
             From: <sip:op1@{d}>;tag=cons1\r\nTo: <sip:*31@{d}>\r\nCall-ID: consult-{port}@op1\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:op1@{local}>\r\nMax-Forwards: 70\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len(),
            d = self.daemon,
            port = local.port(),
        )
    }

    fn consult_call_id(&self) -> String {
        format!("consult-{}@op1", self.agent.local_addr().port())
    }

    /// ACK for our consultation's final response `r`.
    fn ack_consult(&self, r: &Response) {
        let local = self.agent.local_addr();
        let seq = r.headers.cseq().unwrap().seq;
        let text = format!(
            "ACK sip:*31@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-c-{seq};rport\r\n\
             From: <sip:op1@{d}>;tag=cons1\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {seq} ACK\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            d = self.daemon,
            to = rh(r, "To"),
            cid = self.consult_call_id(),
        );
        self.agent.send_to(&text, self.daemon);
    }

    /// Dials `*31` with media at `rtp`, authenticating the 407: the final response (ACKed).
    fn consult(&mut self, rtp: u16) -> Response {
        self.agent.send_to(&self.consult_invite(1, rtp, ""), self.daemon);
        let call_id = self.consult_call_id();
        let (challenge, _) = self.final_for(&call_id, 1);
        assert_eq!(challenge.status, 407);
        self.ack_consult(&challenge);
        let challenges = challenge.headers.proxy_authenticate().unwrap();
        let chosen = preferred_challenge(&challenges).unwrap();
        let uri = format!("sip:*31@{}", self.daemon);
        let answer = ClientAnswer {
            user: "op1",
            password: "op1-test-password",
            method: &Method::Invite,
            uri: &uri,
            cnonce: "ab12cd34",
            nc: 1,
        };
        let value = authorization(chosen, &answer).unwrap();
        let auth = format!("Proxy-Authorization: {value}\r\n");
        self.agent.send_to(&self.consult_invite(2, rtp, &auth), self.daemon);
        let (r, _) = self.final_for(&call_id, 2);
        self.ack_consult(&r);
        if r.status == 200 {
            let to = rh(&r, "To");
            let tag = to.split(";tag=").nth(1).unwrap().to_owned();
            self.consult = Some((call_id, tag));
        }
        r
    }

    /// An INFO key press in the consultation.
    fn consult_key(&self, key: char, cseq: u32) {
        let (call_id, tag) = self.consult.clone().expect("a consultation");
        let local = self.agent.local_addr();
        let body = format!("Signal={key}\r\nDuration=160\r\n");
        let text = format!(
            "INFO sip:tongdai@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-k-{cseq}\r\n\
             From: <sip:op1@{d}>;tag=cons1\r\nTo: <sip:*31@{d}>;tag={tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} INFO\r\nMax-Forwards: 70\r\nContent-Type: application/dtmf-relay\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len(),
            d = self.daemon,
        );
        self.agent.send_to(&text, self.daemon);
    }

    /// Hangs up the consultation (or, after a conference, op1's leg of the call).
    fn consult_bye(&self) {
        let (call_id, tag) = self.consult.clone().expect("a consultation");
        let local = self.agent.local_addr();
        let text = format!(
            "BYE sip:tongdai@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-cbye\r\n\
             From: <sip:op1@{d}>;tag=cons1\r\nTo: <sip:*31@{d}>;tag={tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: 20 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            d = self.daemon,
        );
        self.agent.send_to(&text, self.daemon);
    }
}

/// SIPp as the target on `port` with `file`, its media at `rtp`.
fn target(d: &TestDaemon, port: u16, file: &str, rtp: u16) -> JoinHandle<SippRun> {
    let (sip, file) = (d.sip_udp(), sf(file));
    std::thread::spawn(move || {
        let rtp = rtp.to_string();
        run_on(port, sip, &["-sf", &file, "-key", "rtp_port", &rtp, "-m", "1"], WAIT * 3)
    })
}

/// SIPp as the trunk's caller (talks for `ms`), its media at `rtp`.
fn caller(d: &TestDaemon, rtp: u16, ms: u32) -> JoinHandle<SippRun> {
    let (sip, file) = (d.sip_udp(), sf("trunk-caller.xml"));
    std::thread::spawn(move || {
        let (rtp, ms) = (rtp.to_string(), ms.to_string());
        run(sip, &["-sf", &file, "-key", "rtp_port", &rtp, "-d", &ms, "-m", "1"], WAIT * 3)
    })
}

/// The RTP port of the first `m=audio` line of an SDP body.
fn sdp_port(body: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().find(|l| l.starts_with("m=audio ")).expect("an m=audio line");
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The daemon's RTP address at `port`.
fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One call under test: the daemon with `*31` → a SIPp target running `target_file` (its media at
/// `target_rtp`), op1 registered and answering with media at `a_port`, the SIPp trunk's caller
/// (media at `caller_tool`, talking for `caller_ms`) bridged to op1.
struct Scene {
    d: TestDaemon,
    target: JoinHandle<SippRun>,
    caller: JoinHandle<SippRun>,
    phone: Phone,
    /// The daemon's RTP address for the caller's leg and for op1's.
    to_caller: SocketAddr,
    to_a: SocketAddr,
}

#[allow(clippy::too_many_arguments)]
fn scene(
    rt: &tokio::runtime::Runtime,
    name: &str,
    target_file: &str,
    target_rtp: u16,
    caller_tool: &RtpTool,
    caller_port: u16,
    a_port: u16,
    caller_ms: u32,
) -> Scene {
    let target_port = free_port();
    let d = daemon(name, target_port);
    let target = target(&d, target_port, target_file, target_rtp);
    let op1 = Phone::register(d.sip_udp());
    let caller = caller(&d, caller_port, caller_ms);
    let phone = Phone::answer_call(op1, d.sip_udp(), a_port);
    let to_caller = first_source(&rt.block_on(caller_tool.wait_for(10, WAIT)));
    let to_a = at(sdp_port(&phone.invite.body));
    Scene { d, target, caller, phone, to_caller, to_a }
}

#[test]
fn an_attended_transfer_hands_the_caller_to_the_target_they_talked_with() {
    let _serial = support::serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _rt = rt.enter();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (a_rtp, a_addr) = rt.block_on(RtpTool::bind());
    let (b_rtp, b_addr) = rt.block_on(RtpTool::bind());
    let (target_rtp, target_addr) = rt.block_on(RtpTool::bind());
    let (ta, ca, aa) = (target_addr.port(), caller_addr.port(), a_addr.port());
    let Scene { d, target, caller, mut phone, to_caller, to_a } =
        scene(&rt, "attended", "transfer-target.xml", ta, &caller_rtp, ca, aa, 14_000);
    let transferred = d.metric("tongdai_calls_transferred_total");
    // op1 and the caller talk; then op1 holds and the caller hears hold audio, not silence.
    let heard = talk(&rt, &[(&caller_rtp, to_caller, CALLER_HZ), (&a_rtp, to_a, AGENT_HZ)]);
    assert!(share(&heard[0], AGENT_HZ, 2) > 0.5, "the caller hears op1");
    assert!(share(&heard[1], CALLER_HZ, 2) > 0.5, "op1 hears the caller");
    phone.hold(a_addr.port());
    caller_rtp.clear();
    rt.block_on(tokio::time::sleep(Duration::from_millis(800)));
    let held = caller_rtp.recording();
    assert!(held.packets.len() > 20, "hold audio flows to the caller");
    assert!(held.tone_ratio(300.0) > 0.5, "the caller hears the hold music (300 Hz)");
    // The consultation: op1 and the target hear each other.
    let answered = phone.consult(b_addr.port());
    assert_eq!(answered.status, 200, "{answered:?}");
    let to_b = at(sdp_port(&answered.body));
    b_rtp.spawn_tone(to_b, Tone::new(AGENT_HZ, Codec::Pcmu, 0x3333), 50);
    let to_target = first_source(&rt.block_on(target_rtp.wait_for(10, WAIT)));
    let heard = talk(&rt, &[(&b_rtp, to_b, AGENT_HZ), (&target_rtp, to_target, TARGET_HZ)]);
    assert!(share(&heard[0], TARGET_HZ, 2) > 0.5, "op1 hears the target in the consultation");
    assert!(share(&heard[1], AGENT_HZ, 2) > 0.5, "the target hears op1");
    // Complete: REFER in the caller's dialog, Replaces naming the consultation.
    let (consult_id, tag) = phone.consult.clone().unwrap();
    let replaces =
        format!("{}%3Bto-tag%3D{tag}%3Bfrom-tag%3Dcons1", consult_id.replace('@', "%40"));
    let refer_to = format!("Refer-To: <sip:*31@{}?Replaces={replaces}>\r\n", d.sip_udp());
    let cseq = phone.in_call("REFER", &refer_to, "");
    let call_id = h(&phone.invite, "Call-ID");
    let (accepted, mut seen) = phone.final_for(&call_id, cseq);
    assert_eq!(accepted.status, 202);
    assert_eq!(
        d.wait_metric("tongdai_calls_transferred_total", transferred + 1.0),
        transferred + 1.0
    );
    // Both of op1's legs are hung up (NOTIFYs answered on the way).
    while seen.iter().filter(|q| q.method == Method::Bye).count() < 2 {
        let (q, from) = phone.agent.recv_request(WAIT).expect("the daemon hangs up op1's legs");
        if q.method != Method::Ack {
            phone.agent.answer(&q, 200, from, None);
        }
        seen.push(q);
    }
    let byes: Vec<String> =
        seen.iter().filter(|q| q.method == Method::Bye).map(|q| h(q, "Call-ID")).collect();
    assert!(byes.contains(&consult_id) && byes.contains(&call_id), "{byes:?}");
    let notified = seen.iter().filter(|q| q.method == Method::Notify);
    assert!(
        notified
            .map(|q| String::from_utf8_lossy(&q.body).into_owned())
            .any(|b| b.starts_with("SIP/2.0 200")),
        "the last NOTIFY says 200"
    );
    // Caller and target hear each other: the target's RTP goes on to the same port, now the
    // caller's call's.
    let heard =
        talk(&rt, &[(&caller_rtp, to_caller, CALLER_HZ), (&target_rtp, to_target, TARGET_HZ)]);
    assert!(share(&heard[0], TARGET_HZ, 2) > 0.5, "the caller hears the target");
    assert!(share(&heard[1], CALLER_HZ, 2) > 0.5, "the target hears the caller");
    caller.join().unwrap().assert_ok();
    // transfer-target.xml stops SIPp once the call is over (`stop_now`).
    target.join().unwrap().assert_stopped_ok();
}

#[test]
fn star_3_mixes_caller_operator_and_target_each_hearing_the_other_two() {
    let _serial = support::serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _rt = rt.enter();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (a_rtp, a_addr) = rt.block_on(RtpTool::bind());
    let (b_rtp, b_addr) = rt.block_on(RtpTool::bind());
    let (target_rtp, target_addr) = rt.block_on(RtpTool::bind());
    let (ta, ca, aa) = (target_addr.port(), caller_addr.port(), a_addr.port());
    let Scene { d, target, caller, mut phone, to_caller, to_a } =
        scene(&rt, "conference", "transfer-target.xml", ta, &caller_rtp, ca, aa, 20_000);
    // The metrics recorder is the test process's: counts are relative.
    let (transferred, conferences) =
        (d.metric("tongdai_calls_transferred_total"), d.metric("tongdai_conferences_total"));
    let heard = talk(&rt, &[(&caller_rtp, to_caller, CALLER_HZ), (&a_rtp, to_a, AGENT_HZ)]);
    assert!(share(&heard[1], CALLER_HZ, 2) > 0.5, "op1 hears the caller");
    phone.hold(a_addr.port());
    let answered = phone.consult(b_addr.port());
    assert_eq!(answered.status, 200);
    let to_b = at(sdp_port(&answered.body));
    b_rtp.spawn_tone(to_b, Tone::new(AGENT_HZ, Codec::Pcmu, 0x3333), 25);
    let to_target = first_source(&rt.block_on(target_rtp.wait_for(10, WAIT)));
    phone.consult_key('*', 3);
    phone.consult_key('3', 4);
    assert_eq!(d.wait_metric("tongdai_conferences_total", conferences + 1.0), conferences + 1.0);
    // Each party speaks its own tone and must hear the other two, and not itself.
    let parties = [
        (&caller_rtp, to_caller, CALLER_HZ),
        (&b_rtp, to_b, AGENT_HZ),
        (&target_rtp, to_target, TARGET_HZ),
    ];
    let heard = talk(&rt, &parties);
    for (recording, (_, _, own)) in heard.iter().zip(parties) {
        for (_, _, other) in parties.iter().filter(|(_, _, hz)| *hz != own) {
            let s = share(recording, *other, 2);
            assert!(s > 0.2, "the {own} Hz party hears {other} Hz (share {s:.2})");
        }
        let s = share(recording, own, 2);
        assert!(s < 0.05, "the {own} Hz party does not hear itself (share {s:.2})");
    }
    // op1 leaves: caller and target stay together.
    phone.consult_bye();
    let want = transferred + 1.0;
    assert_eq!(d.wait_metric("tongdai_calls_transferred_total", want), want);
    let heard =
        talk(&rt, &[(&caller_rtp, to_caller, CALLER_HZ), (&target_rtp, to_target, TARGET_HZ)]);
    let s = share(&heard[0], TARGET_HZ, 2);
    assert!(s > 0.5, "after op1 left, the caller hears the target alone (share {s:.2})");
    let s = share(&heard[1], CALLER_HZ, 2);
    let (n, agent) = (heard[1].packets.len(), share(&heard[1], AGENT_HZ, 2));
    assert!(
        s > 0.5,
        "and the target the caller (share {s:.2}, {n} packets, op1's tone {agent:.2})"
    );
    caller.join().unwrap().assert_ok();
    target.join().unwrap().assert_stopped_ok();
    drop(a_rtp);
}

#[test]
fn a_busy_target_fails_the_consultation_and_the_operator_resumes_the_caller() {
    let _serial = support::serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _rt = rt.enter();
    let (caller_rtp, caller_addr) = rt.block_on(RtpTool::bind());
    let (a_rtp, a_addr) = rt.block_on(RtpTool::bind());
    let (ca, aa) = (caller_addr.port(), a_addr.port());
    let Scene { d, target, caller, mut phone, to_caller, to_a } =
        scene(&rt, "attended-busy", "agent-busy.xml", free_port(), &caller_rtp, ca, aa, 10_000);
    let transferred = d.metric("tongdai_calls_transferred_total");
    let heard = talk(&rt, &[(&caller_rtp, to_caller, CALLER_HZ), (&a_rtp, to_a, AGENT_HZ)]);
    assert!(share(&heard[1], CALLER_HZ, 2) > 0.5, "op1 hears the caller");
    phone.hold(a_addr.port());
    let refused = phone.consult(free_port());
    assert_eq!(refused.status, 486, "the target's busy reaches op1");
    // op1 resumes: caller and op1 hear each other again.
    let cseq = phone.in_call("INVITE", "", &sdp(a_addr.port(), "sendrecv"));
    let call_id = h(&phone.invite, "Call-ID");
    assert_eq!(phone.final_for(&call_id, cseq).0.status, 200);
    phone.ack_in_call(cseq);
    let heard = talk(&rt, &[(&caller_rtp, to_caller, CALLER_HZ), (&a_rtp, to_a, AGENT_HZ)]);
    assert!(share(&heard[0], AGENT_HZ, 2) > 0.5, "the caller hears op1 again");
    assert!(share(&heard[1], CALLER_HZ, 2) > 0.5, "op1 hears the caller again");
    assert_eq!(d.metric("tongdai_calls_transferred_total"), transferred);
    caller.join().unwrap().assert_ok();
    target.join().unwrap().assert_ok();
}
