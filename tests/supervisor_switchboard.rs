//! Supervisor modes through the switchboard, sans-IO: the endpoint and the switchboard on virtual
//! time around a fake media that records what it is asked, fed literal SIP from a trunk, an
//! operator (op1) and a supervisor account (sup1). A supervisor's `*51op1` / `*52op1` / `*53op1`
//! is challenged like a feature code, answered with our SDP, and puts the supervisor on the call's
//! third leg in listen, whisper or barge; INFO keys switch modes; the supervisor's BYE drops the third
//! leg, and the call ending or being transferred hangs the supervisor up (the third leg dropped
//! before the operator's media goes). The admin API rings the supervisor's phone instead. Operators
//! may not supervise, the queue never rings a supervisor, and the refusals are clear.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use support::rig::{Rig as BaseRig, reply, trunk_offer, trunk_request};
use tongdai::acd::b2bua::{MediaControl, Report, SuperviseError};
use tongdai::acd::{AgentId, AgentState, CallId};
use tongdai::config::{Config, DEFAULT_TOML, Source, SupervisionMode};
use tongdai::media::mix::MixMode;
use tongdai::media::pacing::Playlist;
use tongdai::media::relay::LegFormat;
use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::message::{Method, Request, Response};

const OP1: &str = "127.0.0.1:5080";
const SUP: &str = "127.0.0.1:5090";
const SUP2: &str = "127.0.0.1:5091";
const OP2: &str = "127.0.0.1:5082";
const S: Duration = Duration::from_secs(1);

/// The supervisor accounts appended to the default configuration.
const SUPERVISORS: &str = "\n[[agents]]\nid = \"sup1\"\nname = \"Giám sát 1\"\nrole = \"supervisor\"\n\
    password = \"sup1-pw\"\n\n[[agents]]\nid = \"sup2\"\nrole = \"supervisor\"\npassword = \"sup2-pw\"\n";

/// What the switchboard asked of the media, in order.
#[derive(Debug, Clone, PartialEq)]
enum Media {
    OpenThird(CallId),
    ThirdAnswered(Option<SocketAddr>),
    Mix(MixMode),
    DropThird,
    DropAgent,
    Bridge,
    Close,
    Other,
}

#[derive(Default)]
struct FakeMedia {
    log: Vec<Media>,
}

impl MediaControl for FakeMedia {
    fn address(&self) -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }
    fn open_caller(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) -> Option<u16> {
        Some(20_000)
    }
    fn open_agent(&mut self, _: CallId) -> Option<u16> {
        Some(20_002)
    }
    fn agent_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {}
    fn caller_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {}
    fn play(&mut self, _: CallId, _: Playlist) {
        self.log.push(Media::Other);
    }
    fn bridge(&mut self, _: CallId) {
        self.log.push(Media::Bridge);
    }
    fn drop_agent(&mut self, _: CallId) {
        self.log.push(Media::DropAgent);
    }
    fn close(&mut self, _: CallId) {
        self.log.push(Media::Close);
    }
    fn open_third(&mut self, call: CallId) -> Option<u16> {
        self.log.push(Media::OpenThird(call));
        Some(20_004)
    }
    fn third_answered(&mut self, _: CallId, remote: Option<SocketAddr>, _: LegFormat) {
        self.log.push(Media::ThirdAnswered(remote));
    }
    fn set_mix(&mut self, _: CallId, mode: MixMode) {
        self.log.push(Media::Mix(mode));
    }
    fn drop_third(&mut self, _: CallId) {
        self.log.push(Media::DropThird);
    }
}

type Rig = BaseRig<FakeMedia>;

fn header(r: &Request, name: &str) -> String {
    r.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

/// An SDP offer or answer from a phone at RTP `port`.
fn phone_sdp(port: u16) -> String {
    trunk_offer(1, "sendrecv").replace("o=trunk", "o=phone").replace("40000", &port.to_string())
}

/// The default configuration with the supervisors and `edits`, around the recording media, with
/// op1 and sup1 registered.
fn rig_with(edits: &[(&str, &str)]) -> Rig {
    let mut rig = Rig::build(edits, SUPERVISORS, FakeMedia::default(), &[]);
    assert_eq!(rig.register("op1", "op1-test-password", OP1.parse().unwrap(), OP1), 200);
    assert_eq!(rig.register("sup1", "sup1-pw", SUP.parse().unwrap(), SUP), 200);
    rig
}

/// A trunk call bridged to op1: the rig, the trunk dialog's tag and op1's INVITE.
fn bridged() -> (Rig, String, Request) {
    let mut rig = rig_with(&[]);
    let tag = rig.call_trunk();
    rig.advance(2 * S);
    assert!(rig.sent_to(SUP, Method::Invite).is_empty(), "the queue never rings a supervisor");
    let invite = rig.sent_to(OP1, Method::Invite).remove(0);
    rig.receive(OP1.parse().unwrap(), &reply(OP1, &invite, 200, "", &phone_sdp(44_000)));
    assert!(matches!(rig.state("op1"), Some(AgentState::OnCall { .. })));
    rig.take_sent();
    (rig, tag, invite)
}

/// An INVITE from `user` at `from` dialling `code` (`auth`: a Proxy-Authorization line or "").
fn code_invite(user: &str, from: &str, code: &str, cseq: u32, auth: &str, body: &str) -> String {
    // Each dial its own transaction and call.
    static DIALS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = DIALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) / 2;
    let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
    format!(
        "INVITE sip:{code}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKsv{n}x{cseq}{user};rport\r\n\
         From: <sip:{user}@127.0.0.1:5060>;tag=sv{user}\r\nTo: <sip:{code}@127.0.0.1:5060>\r\n\
         Call-ID: sv{n}-{code}-{user}@phone\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{user}@{from}>\r\n\
         Max-Forwards: 70\r\n{auth}{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The ACK of the INVITE answered by `r`.
fn ack(r: &Response, from: &str) -> String {
    let h = |n: &str| {
        r.headers.get(n).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
    };
    let seq = r.headers.cseq().unwrap().seq;
    format!(
        "ACK sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKack{seq}{}\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} ACK\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        r.status,
        h("From"),
        h("To"),
        h("Call-ID")
    )
}

/// `user` dials `code` from `from` with an offer (none when `body` is empty), answering the 407:
/// the final response (a 200 is ACKed, without an answer).
fn dial(rig: &mut Rig, user: &str, password: &str, from: &str, code: &str, body: &str) -> Response {
    rig.take_sent();
    rig.receive(from.parse().unwrap(), &code_invite(user, from, code, 1, "", body));
    let challenge = rig.final_response(407);
    rig.receive(from.parse().unwrap(), &ack(&challenge, from));
    let challenges = challenge.headers.proxy_authenticate().unwrap();
    let uri = format!("sip:{code}@127.0.0.1:5060");
    let answer =
        ClientAnswer { user, password, method: &Method::Invite, uri: &uri, cnonce: "5eed", nc: 1 };
    let value = authorization(preferred_challenge(&challenges).unwrap(), &answer).unwrap();
    let auth = format!("Proxy-Authorization: {value}\r\n");
    rig.receive(from.parse().unwrap(), &code_invite(user, from, code, 2, &auth, body));
    let r = rig.final_response_any();
    if r.status == 200 && !body.is_empty() {
        rig.receive(from.parse().unwrap(), &ack(&r, from));
    }
    r
}

impl Rig {
    /// The one final response sent since the last look, whatever its status.
    fn final_response_any(&mut self) -> Response {
        let mut r = self.finals();
        r.dedup_by(|a, b| a.status == b.status);
        assert_eq!(r.len(), 1, "{r:?}");
        r.remove(0)
    }
}

/// A request from the supervisor in the dialog our 200 `ok` made.
fn from_supervisor(ok: &Response, method: &str, cseq: u32, extra: &str, body: &str) -> String {
    let h = |n: &str| {
        ok.headers.get(n).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
    };
    format!(
        "{method} sip:tongdai@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {SUP};branch=z9hG4bKin{cseq}\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        h("From"),
        h("To"),
        h("Call-ID"),
        body.len()
    )
}

fn supervision_reports(rig: &Rig) -> Vec<(String, SupervisionMode, &'static str)> {
    let each = rig.reports.iter().filter_map(|r| match r {
        Report::Supervision { supervisor, operator, mode, event } => {
            assert_eq!(operator, &AgentId::new("op1"));
            Some((supervisor.as_str().to_string(), *mode, *event))
        }
        _ => None,
    });
    each.collect()
}

#[test]
fn listen_by_code_puts_the_supervisor_on_the_third_leg_and_holds_no_line() {
    let (mut rig, _, _) = bridged();
    let lines = rig.sb.engine().lines_busy();
    rig.media.log.clear();
    let ok = dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op1", &phone_sdp(46_000));
    assert_eq!(ok.status, 200);
    let answer = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(answer.contains("m=audio 20004 "), "our answer names the third leg's port:\n{answer}");
    let sup_rtp: SocketAddr = "127.0.0.1:46000".parse().unwrap();
    assert_eq!(
        rig.media.log,
        vec![
            Media::OpenThird(CallId(1)),
            Media::ThirdAnswered(Some(sup_rtp)),
            Media::Mix(MixMode::Listen)
        ]
    );
    assert_eq!(
        supervision_reports(&rig),
        vec![("sup1".into(), SupervisionMode::Listen, "started")]
    );
    // No line, no call and no engine state for the supervisor.
    assert_eq!(rig.sb.engine().lines_busy(), lines);
    assert_eq!(rig.sb.calls(), 1);
    assert_eq!(rig.state("sup1"), None);
    let (operator, supervisor, mode) = rig.sb.supervisions().remove(0);
    assert_eq!(
        (operator.as_str(), supervisor.as_str(), mode),
        ("op1", "sup1", SupervisionMode::Listen)
    );
}

#[test]
fn whisper_and_barge_codes_pick_their_modes_and_info_keys_switch() {
    let (mut rig, _, _) = bridged();
    rig.media.log.clear();
    // The escaped form a softphone may send, with the operator named by its user.
    let ok = dial(&mut rig, "sup1", "sup1-pw", SUP, "%2A52OP1", &phone_sdp(46_000));
    assert_eq!(ok.status, 200);
    assert_eq!(rig.media.log.last(), Some(&Media::Mix(MixMode::Whisper)));
    let info = |key: char, cseq: u32| {
        from_supervisor(
            &ok,
            "INFO",
            cseq,
            "Content-Type: application/dtmf-relay\r\n",
            &format!("Signal={key}\r\nDuration=160\r\n"),
        )
    };
    rig.receive(SUP.parse().unwrap(), &info('3', 3));
    assert_eq!(rig.media.log.last(), Some(&Media::Mix(MixMode::Conference)), "3 = barge");
    rig.receive(SUP.parse().unwrap(), &info('1', 4));
    assert_eq!(rig.media.log.last(), Some(&Media::Mix(MixMode::Listen)), "1 = listen");
    // Another key changes nothing.
    let before = rig.media.log.len();
    rig.receive(SUP.parse().unwrap(), &info('9', 5));
    assert_eq!(rig.media.log.len(), before);
    let events: Vec<_> = supervision_reports(&rig).into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        events,
        vec![
            (SupervisionMode::Whisper, "started"),
            (SupervisionMode::Barge, "switched"),
            (SupervisionMode::Listen, "switched")
        ]
    );

    // Barge directly, on a fresh call.
    let (mut rig, _, _) = bridged();
    let ok = dial(&mut rig, "sup1", "sup1-pw", SUP, "*53op1", &phone_sdp(46_000));
    assert_eq!(ok.status, 200);
    assert_eq!(rig.media.log.last(), Some(&Media::Mix(MixMode::Conference)));
}

#[test]
fn a_supervisor_without_an_offer_joins_when_the_ack_brings_the_answer() {
    let (mut rig, _, _) = bridged();
    rig.media.log.clear();
    let ok = dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op1", "");
    assert_eq!(ok.status, 200);
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio 20004 "), "our offer");
    assert_eq!(rig.media.log, vec![Media::OpenThird(CallId(1))], "not mixed before the answer");
    let mut ack_text = ack(&ok, SUP);
    let body = phone_sdp(46_002);
    ack_text = ack_text.replace(
        "Content-Length: 0\r\n\r\n",
        &format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
    );
    rig.receive(SUP.parse().unwrap(), &ack_text);
    let sup_rtp: SocketAddr = "127.0.0.1:46002".parse().unwrap();
    assert_eq!(
        &rig.media.log[1..],
        &[Media::ThirdAnswered(Some(sup_rtp)), Media::Mix(MixMode::Listen)]
    );
}

#[test]
fn the_supervisors_bye_leaves_caller_and_operator_bridged() {
    let (mut rig, tag, _) = bridged();
    let ok = dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op1", &phone_sdp(46_000));
    rig.media.log.clear();
    rig.receive(SUP.parse().unwrap(), &from_supervisor(&ok, "BYE", 3, "", ""));
    assert_eq!(rig.media.log, vec![Media::DropThird]);
    assert!(matches!(rig.state("op1"), Some(AgentState::OnCall { .. })), "the call goes on");
    assert_eq!(rig.sb.calls(), 1);
    assert!(rig.sb.supervisions().is_empty());
    assert_eq!(supervision_reports(&rig).last().map(|r| r.2), Some("ended"));
    // The caller hangs up later: nothing more goes to the supervisor.
    rig.take_sent();
    rig.send_trunk(trunk_request("BYE", 2, "bye", Some(&tag), ""));
    assert_eq!(rig.sent_to(OP1, Method::Bye).len(), 1);
    assert!(rig.sent_to(SUP, Method::Bye).is_empty());
    // The same supervisor may supervise again, the next call.
}

#[test]
fn the_call_ending_hangs_the_supervisor_up() {
    let (mut rig, tag, _) = bridged();
    dial(&mut rig, "sup1", "sup1-pw", SUP, "*52op1", &phone_sdp(46_000));
    rig.take_sent();
    rig.send_trunk(trunk_request("BYE", 2, "bye", Some(&tag), ""));
    assert_eq!(rig.sent_to(SUP, Method::Bye).len(), 1, "the supervisor is hung up");
    assert_eq!(rig.sent_to(OP1, Method::Bye).len(), 1);
    assert!(rig.sb.supervisions().is_empty());
    assert_eq!(rig.sb.calls(), 0);
}

#[test]
fn the_operator_hanging_up_hangs_the_supervisor_up() {
    let (mut rig, _, invite) = bridged();
    dial(&mut rig, "sup1", "sup1-pw", SUP, "*53op1", &phone_sdp(46_000));
    rig.take_sent();
    let bye = format!(
        "BYE sip:111@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {OP1};branch=z9hG4bKopbye\r\n\
         From: {};tag=peer200\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        header(&invite, "To"),
        header(&invite, "From"),
        header(&invite, "Call-ID")
    );
    rig.receive(OP1.parse().unwrap(), &bye);
    assert_eq!(rig.sent_to(SUP, Method::Bye).len(), 1);
    assert!(rig.sb.supervisions().is_empty());
}

#[test]
fn a_transfer_hangs_the_supervisor_up_before_the_operators_media_goes() {
    let (mut rig, _, invite) = bridged();
    dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op1", &phone_sdp(46_000));
    rig.media.log.clear();
    rig.take_sent();
    let refer = format!(
        "REFER sip:tongdai@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {OP1};branch=z9hG4bKref1\r\n\
         From: {};tag=peer200\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 REFER\r\n\
         Contact: <sip:op1@{OP1}>\r\nMax-Forwards: 70\r\nRefer-To: <sip:113@127.0.0.1:5099>\r\n\
         Content-Length: 0\r\n\r\n",
        header(&invite, "To"),
        header(&invite, "From"),
        header(&invite, "Call-ID")
    );
    rig.receive(OP1.parse().unwrap(), &refer);
    assert_eq!(rig.sent_to(SUP, Method::Bye).len(), 1, "the supervisor is hung up");
    let third = rig.media.log.iter().position(|m| *m == Media::DropThird);
    let agent = rig.media.log.iter().position(|m| *m == Media::DropAgent);
    assert!(third.is_some() && third < agent, "third leg first: {:?}", rig.media.log);
}

#[test]
fn refusals_are_clear() {
    let (mut rig, _, _) = bridged();
    // An operator may not supervise.
    assert_eq!(rig.register("op2", "op2-test-password", OP2.parse().unwrap(), OP2), 200);
    let r = dial(&mut rig, "op2", "op2-test-password", OP2, "*51op1", &phone_sdp(46_000));
    assert_eq!(r.status, 403);
    // Nobody by that name, an operator in no call, a bare prefix.
    assert_eq!(dial(&mut rig, "sup1", "sup1-pw", SUP, "*51nobody", &phone_sdp(46_000)).status, 404);
    assert_eq!(dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op2", &phone_sdp(46_000)).status, 404);
    assert_eq!(dial(&mut rig, "sup1", "sup1-pw", SUP, "*51", &phone_sdp(46_000)).status, 404);
    // A supervisor cannot be supervised either.
    assert_eq!(dial(&mut rig, "sup1", "sup1-pw", SUP, "*51sup2", &phone_sdp(46_000)).status, 404);
    // An offer without a codec we speak.
    let g722 = phone_sdp(46_000).replace("RTP/AVP 0 8 101", "RTP/AVP 9");
    assert_eq!(dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op1", &g722).status, 488);
    // Wrong password: 403, and nothing opened.
    rig.media.log.clear();
    assert_eq!(dial(&mut rig, "sup1", "guess", SUP, "*51op1", &phone_sdp(46_000)).status, 403);
    assert!(rig.media.log.is_empty());
    // One supervisor per call.
    assert_eq!(dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op1", &phone_sdp(46_000)).status, 200);
    assert_eq!(rig.register("sup2", "sup2-pw", SUP2.parse().unwrap(), SUP2), 200);
    assert_eq!(dial(&mut rig, "sup2", "sup2-pw", SUP2, "*53op1", &phone_sdp(46_002)).status, 486);
    assert_eq!(rig.media.log.iter().filter(|m| matches!(m, Media::OpenThird(_))).count(), 1);
}

#[test]
fn the_admin_api_rings_the_supervisors_phone_and_joins_on_answer() {
    let (mut rig, tag, _) = bridged();
    rig.media.log.clear();
    let now = rig.now;
    let started = rig.sb.admin_supervise(
        now,
        "op1",
        "sup1",
        SupervisionMode::Whisper,
        &mut rig.ep,
        &mut rig.media,
    );
    assert_eq!(started, Ok(()));
    rig.pump();
    let invite = rig.sent_to(SUP, Method::Invite).remove(0);
    let from = header(&invite, "From");
    assert!(from.starts_with("\"111 · whisper · Điện thoại viên 1\" <sip:111@"), "{from}");
    assert!(!String::from_utf8_lossy(&invite.to_bytes()).contains("0901234567"));
    assert_eq!(rig.media.log, vec![Media::OpenThird(CallId(1))]);
    rig.receive(SUP.parse().unwrap(), &reply(SUP, &invite, 180, "", ""));
    rig.receive(SUP.parse().unwrap(), &reply(SUP, &invite, 200, "", &phone_sdp(46_000)));
    assert_eq!(rig.sent_to(SUP, Method::Ack).len(), 1);
    let sup_rtp: SocketAddr = "127.0.0.1:46000".parse().unwrap();
    assert_eq!(
        &rig.media.log[1..],
        &[Media::ThirdAnswered(Some(sup_rtp)), Media::Mix(MixMode::Whisper)]
    );
    // A second request for the same call is refused; the call ending hangs the supervisor up.
    let now = rig.now;
    let again = rig.sb.admin_supervise(
        now,
        "op1",
        "sup2",
        SupervisionMode::Listen,
        &mut rig.ep,
        &mut rig.media,
    );
    assert_eq!(again, Err(SuperviseError::AlreadySupervised));
    rig.send_trunk(trunk_request("BYE", 2, "bye", Some(&tag), ""));
    assert_eq!(rig.sent_to(SUP, Method::Bye).len(), 1);
}

#[test]
fn the_admin_api_refuses_clearly_and_cancels_a_phone_that_rings_too_long() {
    let (mut rig, _, _) = bridged();
    let ask = |rig: &mut Rig, operator: &str, supervisor: &str| {
        let now = rig.now;
        rig.sb.admin_supervise(
            now,
            operator,
            supervisor,
            SupervisionMode::Listen,
            &mut rig.ep,
            &mut rig.media,
        )
    };
    assert_eq!(ask(&mut rig, "op1", "nobody"), Err(SuperviseError::UnknownSupervisor));
    assert_eq!(ask(&mut rig, "op1", "op2"), Err(SuperviseError::NotSupervisor));
    assert_eq!(ask(&mut rig, "op3", "sup1"), Err(SuperviseError::NotInCall));
    assert_eq!(ask(&mut rig, "ghost", "sup1"), Err(SuperviseError::UnknownOperator));
    assert_eq!(ask(&mut rig, "op1", "sup2"), Err(SuperviseError::NotRegistered));
    assert_eq!(rig.media.log.iter().filter(|m| matches!(m, Media::OpenThird(_))).count(), 0);
    // sup1's phone rings and nobody answers: CANCEL after 30 s, the third leg dropped.
    assert_eq!(ask(&mut rig, "op1", "sup1"), Ok(()));
    rig.pump();
    let invite = rig.sent_to(SUP, Method::Invite).remove(0);
    rig.receive(SUP.parse().unwrap(), &reply(SUP, &invite, 180, "", ""));
    rig.advance(29 * S);
    assert!(rig.sent_to(SUP, Method::Cancel).is_empty());
    rig.advance(2 * S);
    assert_eq!(rig.sent_to(SUP, Method::Cancel).len(), 1);
    assert_eq!(rig.media.log.last(), Some(&Media::DropThird));
    assert!(rig.sb.supervisions().is_empty());
    assert!(matches!(rig.state("op1"), Some(AgentState::OnCall { .. })), "the call goes on");
}

#[test]
fn only_supervisors_are_kept_out_of_the_queue() {
    let mut rig = rig_with(&[]);
    rig.take_sent();
    // op1 logs out: with only the supervisor registered, nobody is rung.
    let now = rig.now;
    assert!(rig.sb.admin_set_paused(now, "op1", true, &mut rig.ep, &mut rig.media));
    rig.call_trunk();
    rig.advance(5 * S);
    assert!(rig.sent_to(SUP, Method::Invite).is_empty());
    let ids: Vec<String> =
        rig.sb.engine().agents().map(|(id, _)| id.as_str().to_string()).collect();
    assert_eq!(ids, vec!["op1", "op2", "op3"]);
}

fn check(text: &str) -> Result<Config, String> {
    Config::from_source(&Source::new("t.toml", text.to_string()), "config".as_ref())
        .map(|(c, _)| c)
        .map_err(|e| e.to_string())
}

#[test]
fn the_config_reads_roles_and_supervision_codes_and_refuses_bad_ones() {
    let c = check(&format!("{DEFAULT_TOML}{SUPERVISORS}")).unwrap();
    let roles: Vec<(&str, bool)> =
        c.agents.iter().map(|a| (a.id.as_str(), a.is_operator())).collect();
    assert_eq!(
        roles,
        vec![("op1", true), ("op2", true), ("op3", true), ("sup1", false), ("sup2", false)]
    );
    let codes = &c.queue.feature_codes;
    assert_eq!(codes.supervision("*51op1"), Some((SupervisionMode::Listen, "op1".to_string())));
    assert_eq!(codes.supervision("%2a53op2"), Some((SupervisionMode::Barge, "op2".to_string())));
    assert_eq!(codes.supervision("*51"), None);
    assert_eq!(codes.supervision("*21"), None);
    // A role nobody knows: where, and what to write.
    let bad = DEFAULT_TOML.replacen("user = \"op1\"\n", "user = \"op1\"\nrole = \"boss\"\n", 1);
    let e = check(&bad).unwrap_err();
    assert!(e.contains("t.toml:") && e.contains("unknown role `boss`"), "{e}");
    assert!(e.contains("\"supervisor\""), "a hint: {e}");
    // A code that begins with a supervision prefix would be ambiguous.
    let clash = DEFAULT_TOML.replace("pause = \"*21\"", "pause = \"*511\"");
    let e = check(&clash).unwrap_err();
    assert!(e.contains("queue.feature_codes.listen") && e.contains("start alike"), "{e}");
    // So would a transfer directory code that an operator's softphone dials.
    let directory = "\n[[directory]]\nname = \"X\"\nkind = \"other\"\n\
                     uri = \"sip:x@127.0.0.1:5099\"\ncode = \"*512\"\n";
    let e = check(&format!("{DEFAULT_TOML}{directory}")).unwrap_err();
    assert!(e.contains("supervisors' `listen` prefix"), "{e}");
}

#[test]
fn the_operator_holding_the_caller_hangs_the_supervisor_up_and_the_caller_hears_hold_audio() {
    let (mut rig, _, invite) = bridged();
    dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op1", &phone_sdp(46_000));
    rig.media.log.clear();
    rig.take_sent();
    // op1's phone holds the caller (before a consultation, say).
    let body = trunk_offer(2, "sendonly").replace("o=trunk", "o=phone").replace("40000", "44000");
    let reinvite = format!(
        "INVITE sip:tongdai@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {OP1};branch=z9hG4bKhold1\r\n\
         From: {};tag=peer200\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 INVITE\r\n\
         Contact: <sip:op1@{OP1}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        header(&invite, "To"),
        header(&invite, "From"),
        header(&invite, "Call-ID"),
        body.len()
    );
    rig.receive(OP1.parse().unwrap(), &reinvite);
    assert_eq!(rig.sent_to(SUP, Method::Bye).len(), 1, "the supervisor is hung up");
    assert!(rig.sb.supervisions().is_empty());
    // The third leg goes, then the caller hears hold audio (not the held operator).
    let third = rig.media.log.iter().position(|m| *m == Media::DropThird).expect("dropped");
    assert_eq!(rig.media.log.get(third + 1), Some(&Media::Other), "{:?}", rig.media.log);
    // Nobody can supervise a call on hold.
    assert_eq!(dial(&mut rig, "sup1", "sup1-pw", SUP, "*51op1", &phone_sdp(46_000)).status, 404);
}
