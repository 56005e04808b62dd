//! Call-backs through the switchboard, sans-IO (issue 11): the endpoint and the switchboard on
//! virtual time around a recording media, fed literal SIP from the operator's phone and the trunk.
//! Started from the admin API, tongdai rings the operator first (showing the caller's pseudonym,
//! never the number), plays them ringback, INVITEs the number through `[trunk] outbound` from
//! 111 and bridges on answer; each outcome (`answered`, `busy`, `no_answer`, `failed`,
//! `operator_no_answer`, `cancelled`) is reported once, with the operator's line and state right
//! after. The `*25` feature code takes the oldest candidate not already being called. No
//! number ever appears in a report.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use support::rig::{Rig, reply};
use tongdai::acd::b2bua::{
    CALLBACK_ANSWER_TIMEOUT, CallbackOutcome, CallbackRefusal, CallbackTarget, MediaControl, Report,
};
use tongdai::acd::identity::CallerNumber;
use tongdai::acd::{AgentId, AgentState, CallId};
use tongdai::media::pacing::Playlist;
use tongdai::media::relay::LegFormat;
use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::message::{Method, Request, Response};

const AGENT: &str = "127.0.0.1:5080";
/// `[trunk] outbound` in these tests.
const OUTBOUND: &str = "127.0.0.1:5090";
const NUMBER: &str = "+84901234567";
const S: Duration = Duration::from_secs(1);

/// What the switchboard asked of the media, in order.
#[derive(Default)]
struct Log(Vec<&'static str>);

impl MediaControl for Log {
    fn address(&self) -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }
    fn open_caller(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) -> Option<u16> {
        self.0.push("open_caller");
        Some(20_000)
    }
    fn open_agent(&mut self, _: CallId) -> Option<u16> {
        self.0.push("open_agent");
        Some(20_002)
    }
    fn agent_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {
        self.0.push("agent_answered");
    }
    fn caller_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {
        self.0.push("caller_answered");
    }
    fn play(&mut self, _: CallId, _: Playlist) {
        self.0.push("play");
    }
    fn bridge(&mut self, _: CallId) {
        self.0.push("bridge");
    }
    fn drop_agent(&mut self, _: CallId) {
        self.0.push("drop_agent");
    }
    fn close(&mut self, _: CallId) {
        self.0.push("close");
    }
    fn update_leg(
        &mut self,
        _: CallId,
        _: tongdai::acd::b2bua::MediaLeg,
        _: Option<SocketAddr>,
        hold: bool,
    ) {
        self.0.push(if hold { "update_leg_hold" } else { "update_leg" });
    }
}

type CbRig = Rig<Log>;

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    )
}

fn target(id: i64) -> CallbackTarget {
    CallbackTarget { id, number: CallerNumber::normalise(NUMBER).unwrap() }
}

/// Call-backs on, the trunk at [`OUTBOUND`], `edits` besides; op1 registered from [`AGENT`].
fn rig_with(edits: &[(&str, &str)]) -> CbRig {
    let mut all = vec![
        ("callbacks = false", "callbacks = true"),
        ("# outbound = \"203.0.113.10:5060\"", "outbound = \"127.0.0.1:5090\""),
    ];
    all.extend_from_slice(edits);
    let mut rig = CbRig::build(&all, "", Log::default(), &[]);
    rig.sb.set_pseudonym_key([9; 32]);
    assert_eq!(rig.register("op1", "op1-test-password", AGENT.parse().unwrap(), AGENT), 200);
    rig.take_sent();
    rig
}

fn rig() -> CbRig {
    rig_with(&[])
}

fn op1(rig: &CbRig) -> Option<AgentState> {
    rig.sb.engine().agent_state(&AgentId::new("op1"))
}

fn outcomes(rig: &CbRig) -> Vec<(i64, CallbackOutcome)> {
    let each = rig.reports.iter().filter_map(|r| match r {
        Report::Callback { id, outcome, .. } => Some((*id, *outcome)),
        _ => None,
    });
    each.collect()
}

fn header(r: &Request, name: &str) -> String {
    r.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

/// Starts call-back 7 by op1 from the API: the INVITE op1's phone gets.
fn start(rig: &mut CbRig) -> Request {
    let (now, sip, media) = (rig.now, &mut rig.ep, &mut rig.media);
    rig.sb.start_callback(now, "op1", target(7), sip, media).unwrap();
    rig.pump();
    let mut invites = rig.sent_to(AGENT, Method::Invite);
    assert_eq!(invites.len(), 1, "one INVITE to the operator");
    invites.remove(0)
}

/// op1's phone answers `invite`: the INVITE the trunk gets.
fn operator_answers(rig: &mut CbRig, invite: &Request) -> Request {
    rig.receive(AGENT.parse().unwrap(), &reply(AGENT, invite, 180, "", ""));
    rig.receive(AGENT.parse().unwrap(), &reply(AGENT, invite, 200, "", &sdp(42_000)));
    assert_eq!(rig.sent_to(AGENT, Method::Ack).len(), 1);
    let mut invites = rig.sent_to(OUTBOUND, Method::Invite);
    assert_eq!(invites.len(), 1, "one INVITE to the trunk");
    invites.remove(0)
}

/// The number never shows in what the switchboard reports (logs, metrics, records).
fn no_number_in_reports(rig: &CbRig) {
    let text = format!("{:?}", rig.reports);
    assert!(!text.contains("901234567"), "{text}");
}

#[test]
fn answered_the_operator_first_then_the_caller_from_111_bridged_and_ended_together() {
    let mut rig = rig();
    let invite = start(&mut rig);
    assert_eq!(invite.uri.as_str(), format!("sip:op1@{AGENT}"));
    // The operator sees the caller's pseudonym, never the number (show_number_to_agents off).
    let from = header(&invite, "From");
    assert!(from.contains('#') && from.contains("<sip:111@"), "{from}");
    assert!(!String::from_utf8_lossy(&invite.to_bytes()).contains("901234567"));
    assert!(matches!(op1(&rig), Some(AgentState::OnCall { .. })), "the line is taken at once");
    assert_eq!(rig.sb.engine().lines_busy(), 1);
    assert!(rig.sent_to(OUTBOUND, Method::Invite).is_empty(), "the caller waits for the operator");

    let to_trunk = operator_answers(&mut rig, &invite);
    assert_eq!(to_trunk.uri.as_str(), format!("sip:{NUMBER}@{OUTBOUND}"));
    assert!(header(&to_trunk, "From").starts_with("\"111\" <sip:111@"), "the hotline calls");
    assert_eq!(rig.media.0, ["open_caller", "caller_answered", "play", "open_agent"]);
    rig.receive(OUTBOUND.parse().unwrap(), &reply(OUTBOUND, &to_trunk, 180, "", ""));
    rig.receive(OUTBOUND.parse().unwrap(), &reply(OUTBOUND, &to_trunk, 200, "", &sdp(44_000)));
    assert_eq!(rig.sent_to(OUTBOUND, Method::Ack).len(), 1);
    assert_eq!(rig.media.0[4..], ["agent_answered", "bridge"]);
    assert_eq!(outcomes(&rig), [(7, CallbackOutcome::Answered)]);
    assert!(rig.sb.callback_in_progress(7));
    assert_eq!(rig.sb.calls(), 1);

    // The caller hangs up: the operator's leg is hung up too, and they wrap up.
    let to_tag = "peer200";
    let bye = format!(
        "BYE sip:tongdai@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {OUTBOUND};branch=z9hG4bKbye1\r\n\
         From: {};tag={to_tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        header(&to_trunk, "To"),
        header(&to_trunk, "From"),
        header(&to_trunk, "Call-ID"),
    );
    rig.receive(OUTBOUND.parse().unwrap(), &bye);
    assert_eq!(rig.sent_to(AGENT, Method::Bye).len(), 1);
    assert_eq!(rig.media.0.last(), Some(&"close"));
    assert!(matches!(op1(&rig), Some(AgentState::WrapUp { .. })), "{:?}", op1(&rig));
    assert_eq!(rig.sb.calls(), 0);
    assert!(!rig.sb.callback_in_progress(7));
    assert_eq!(outcomes(&rig).len(), 1, "one outcome per attempt");
    no_number_in_reports(&rig);
}

/// The operator answers and the trunk gives `status`: the reported outcome; op1 is free at once.
fn caller_refuses(status: u16) -> CallbackOutcome {
    let mut rig = rig();
    let invite = start(&mut rig);
    let to_trunk = operator_answers(&mut rig, &invite);
    rig.receive(OUTBOUND.parse().unwrap(), &reply(OUTBOUND, &to_trunk, status, "", ""));
    assert_eq!(rig.sent_to(AGENT, Method::Bye).len(), 1, "the operator's leg is hung up");
    assert_eq!(op1(&rig), Some(AgentState::Available), "nobody reached: no wrap-up");
    assert_eq!(rig.sb.engine().lines_busy(), 0);
    assert_eq!(rig.sb.calls(), 0);
    no_number_in_reports(&rig);
    let all = outcomes(&rig);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].1
}

#[test]
fn busy_and_failed_by_the_trunks_final_answer() {
    assert_eq!(caller_refuses(486), CallbackOutcome::Busy);
    assert_eq!(caller_refuses(603), CallbackOutcome::Busy);
    assert_eq!(caller_refuses(480), CallbackOutcome::NoAnswer);
    assert_eq!(caller_refuses(404), CallbackOutcome::Failed);
    assert_eq!(caller_refuses(503), CallbackOutcome::Failed);
}

#[test]
fn no_answer_after_the_timeout_cancels_the_callers_invite() {
    let mut rig = rig();
    let invite = start(&mut rig);
    let to_trunk = operator_answers(&mut rig, &invite);
    rig.receive(OUTBOUND.parse().unwrap(), &reply(OUTBOUND, &to_trunk, 180, "", ""));
    rig.advance(CALLBACK_ANSWER_TIMEOUT - S);
    assert!(outcomes(&rig).is_empty(), "still ringing");
    rig.advance(2 * S);
    assert_eq!(rig.sent_to(OUTBOUND, Method::Cancel).len(), 1);
    assert_eq!(rig.sent_to(AGENT, Method::Bye).len(), 1);
    assert_eq!(outcomes(&rig), [(7, CallbackOutcome::NoAnswer)]);
    assert_eq!(op1(&rig), Some(AgentState::Available));
    // The 487 that follows the CANCEL changes nothing.
    rig.receive(OUTBOUND.parse().unwrap(), &reply(OUTBOUND, &to_trunk, 487, "", ""));
    assert_eq!(outcomes(&rig).len(), 1);
}

#[test]
fn an_operator_who_does_not_answer_is_cancelled_and_the_caller_never_dialled() {
    let mut rig = rig();
    let invite = start(&mut rig);
    rig.receive(AGENT.parse().unwrap(), &reply(AGENT, &invite, 180, "", ""));
    rig.advance(16 * S); // [queue] ring_timeout = 15s
    assert_eq!(rig.sent_to(AGENT, Method::Cancel).len(), 1);
    assert!(rig.sent_to(OUTBOUND, Method::Invite).is_empty());
    assert_eq!(outcomes(&rig), [(7, CallbackOutcome::OperatorNoAnswer)]);
    assert_eq!(op1(&rig), Some(AgentState::Available));
    // An operator who declines is no answer either.
    let mut rig = rig_with(&[]);
    let invite = start(&mut rig);
    rig.receive(AGENT.parse().unwrap(), &reply(AGENT, &invite, 603, "", ""));
    assert_eq!(outcomes(&rig), [(7, CallbackOutcome::OperatorNoAnswer)]);
    assert!(rig.sent_to(OUTBOUND, Method::Invite).is_empty());
}

#[test]
fn an_operator_hanging_up_while_the_caller_rings_cancels_it() {
    let mut rig = rig();
    let invite = start(&mut rig);
    let to_trunk = operator_answers(&mut rig, &invite);
    rig.receive(OUTBOUND.parse().unwrap(), &reply(OUTBOUND, &to_trunk, 180, "", ""));
    let bye = format!(
        "BYE sip:tongdai@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKopbye\r\n\
         From: {};tag=peer200\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        header(&invite, "To"),
        header(&invite, "From"),
        header(&invite, "Call-ID"),
    );
    rig.receive(AGENT.parse().unwrap(), &bye);
    assert_eq!(rig.sent_to(OUTBOUND, Method::Cancel).len(), 1);
    assert_eq!(outcomes(&rig), [(7, CallbackOutcome::Cancelled)]);
    assert_eq!(op1(&rig), Some(AgentState::Available));
    assert_eq!(rig.sb.calls(), 0);
}

#[test]
fn starts_that_cannot_be_carried_out_are_refused_and_change_nothing() {
    let mut rig = rig();
    let try_start = |rig: &mut CbRig, agent: &str, id: i64| {
        let (now, sip, media) = (rig.now, &mut rig.ep, &mut rig.media);
        rig.sb.start_callback(now, agent, target(id), sip, media)
    };
    assert_eq!(try_start(&mut rig, "nobody", 7), Err(CallbackRefusal::UnknownAgent));
    assert_eq!(try_start(&mut rig, "op2", 7), Err(CallbackRefusal::NotRegistered));
    assert_eq!(try_start(&mut rig, "op1", 7), Ok(()));
    assert_eq!(try_start(&mut rig, "op1", 7), Err(CallbackRefusal::InProgress));
    assert_eq!(try_start(&mut rig, "op1", 8), Err(CallbackRefusal::AgentBusy));
    rig.pump();
    assert_eq!(rig.sent_to(AGENT, Method::Invite).len(), 1, "one INVITE for the one start");
    // The trunk channel is taken from the start: with one channel, a caller is refused now.
    let mut rig = rig_with(&[("# channels = 30", "channels = 1")]);
    start(&mut rig);
    rig.send_trunk(support::rig::trunk_request(
        "INVITE",
        1,
        "inv",
        None,
        &support::rig::trunk_offer(1, "sendrecv"),
    ));
    assert_eq!(rig.final_response(486).status, 486);
    let mut rig = rig_with(&[("# channels = 30", "channels = 1")]);
    rig.call_trunk();
    assert_eq!(try_start(&mut rig, "op1", 7), Err(CallbackRefusal::NoChannel));
    // Off, or no trunk to dial through.
    let mut off = CbRig::build(&[], "", Log::default(), &[]);
    assert_eq!(try_start(&mut off, "op1", 7), Err(CallbackRefusal::Disabled));
    let mut no_trunk =
        CbRig::build(&[("callbacks = false", "callbacks = true")], "", Log::default(), &[]);
    assert_eq!(try_start(&mut no_trunk, "op1", 7), Err(CallbackRefusal::NoTrunk));
}

/// op1 dials `code` and answers the 407: the final responses (none before the candidates).
fn dial(rig: &mut CbRig, code: &str) -> Vec<Response> {
    dial_as(rig, "op1", AGENT, code)
}

/// [`dial`] by `user` from `at`.
fn dial_as(rig: &mut CbRig, user: &str, at: &str, code: &str) -> Vec<Response> {
    let invite = |cseq: u32, auth: &str| {
        let body = sdp(42_000);
        format!(
            "INVITE sip:{code}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {at};branch=z9hG4bKcb{cseq};rport\r\n\
             From: <sip:{user}@127.0.0.1:5060>;tag=cb1\r\nTo: <sip:{code}@127.0.0.1:5060>\r\n\
             Call-ID: cb-{code}-{user}@agent\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{user}@{at}>\r\n\
             Max-Forwards: 70\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    rig.receive(at.parse().unwrap(), &invite(1, ""));
    let challenge = rig.finals().pop().unwrap();
    assert_eq!(challenge.status, 407);
    let challenges = challenge.headers.proxy_authenticate().unwrap();
    let password = format!("{user}-test-password");
    let answer = ClientAnswer {
        user,
        password: &password,
        method: &Method::Invite,
        uri: &format!("sip:{code}@127.0.0.1:5060"),
        cnonce: "c0ffee01",
        nc: 1,
    };
    let value = authorization(preferred_challenge(&challenges).unwrap(), &answer).unwrap();
    rig.receive(at.parse().unwrap(), &invite(2, &format!("Proxy-Authorization: {value}\r\n")));
    rig.finals()
}

#[test]
fn the_feature_code_calls_back_the_oldest_candidate_not_in_progress() {
    let mut rig = rig();
    assert!(dial(&mut rig, "*25").is_empty(), "no answer before the candidates");
    let lookups = rig.sb.take_callback_lookups();
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].agent.as_str(), "op1");
    assert!(matches!(op1(&rig), Some(AgentState::OnCall { .. })), "the line is held meanwhile");
    let (now, sip, media) = (rig.now, &mut rig.ep, &mut rig.media);
    rig.sb.callback_candidates(now, lookups[0].lookup, vec![target(3), target(4)], sip, media);
    rig.pump();
    let to_trunk = rig.sent_to(OUTBOUND, Method::Invite);
    let ok = rig.finals();
    assert_eq!(ok.iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    assert_eq!(to_trunk.len(), 1);
    assert_eq!(to_trunk[0].uri.as_str(), format!("sip:{NUMBER}@{OUTBOUND}"));
    assert!(rig.sb.callback_in_progress(3));
    rig.receive(OUTBOUND.parse().unwrap(), &reply(OUTBOUND, &to_trunk[0], 200, "", &sdp(44_000)));
    assert_eq!(outcomes(&rig), [(3, CallbackOutcome::Answered)]);
    assert!(rig.reports.iter().any(|r| matches!(r, Report::FeatureCode { code: "callback", .. })));
    no_number_in_reports(&rig);

    // op2's code while op1 calls back 3 (from the API) takes 4, the next oldest.
    let mut rig = rig_with(&[]);
    let op2_at = "127.0.0.1:5081";
    assert_eq!(rig.register("op2", "op2-test-password", op2_at.parse().unwrap(), op2_at), 200);
    let (now, sip, media) = (rig.now, &mut rig.ep, &mut rig.media);
    rig.sb.start_callback(now, "op1", target(3), sip, media).unwrap();
    rig.take_sent();
    dial_as(&mut rig, "op2", op2_at, "*25");
    let lookup = rig.sb.take_callback_lookups().remove(0);
    assert_eq!(lookup.agent.as_str(), "op2");
    let (now, sip, media) = (rig.now, &mut rig.ep, &mut rig.media);
    rig.sb.callback_candidates(now, lookup.lookup, vec![target(3), target(4)], sip, media);
    rig.pump();
    assert!(rig.sb.callback_in_progress(4));
    assert_eq!(rig.sb.engine().lines_busy(), 2, "each call-back holds a line");
    assert_eq!(rig.sent_to(OUTBOUND, Method::Invite).len(), 1, "op2's is dialled at once");
    // Nobody waiting: 404, and the operator is free again.
    let mut rig = rig_with(&[]);
    dial(&mut rig, "*25");
    let lookup = rig.sb.take_callback_lookups().remove(0);
    let (now, sip, media) = (rig.now, &mut rig.ep, &mut rig.media);
    rig.sb.callback_candidates(now, lookup.lookup, vec![], sip, media);
    rig.pump();
    assert_eq!(rig.finals().iter().map(|r| r.status).collect::<Vec<_>>(), [404]);
    assert_eq!(op1(&rig), Some(AgentState::Available));
    assert!(outcomes(&rig).is_empty(), "no attempt was made");
}

#[test]
fn the_feature_code_is_refused_when_call_backs_are_off() {
    let mut rig = CbRig::build(&[], "", Log::default(), &[]);
    assert_eq!(rig.register("op1", "op1-test-password", AGENT.parse().unwrap(), AGENT), 200);
    rig.take_sent();
    let finals = dial(&mut rig, "*25");
    assert_eq!(finals.iter().map(|r| r.status).collect::<Vec<_>>(), [404]);
    assert!(rig.sb.take_callback_lookups().is_empty());
    assert_eq!(op1(&rig), Some(AgentState::Available));
}

/// A request from op1's phone in the dialog our `invite` made (answered with tag `peer200`).
fn from_operator(invite: &Request, method: &str, cseq: u32, body: &str) -> String {
    let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
    format!(
        "{method} sip:tongdai@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKop{cseq}\r\n\
         From: {};tag=peer200\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:op1@{AGENT}>\r\nMax-Forwards: 70\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        header(invite, "To"),
        header(invite, "From"),
        header(invite, "Call-ID"),
        body.len()
    )
}

#[test]
fn the_operator_may_hold_and_resume_a_call_back_by_re_invite() {
    let mut rig = rig();
    let invite = start(&mut rig);
    let to_trunk = operator_answers(&mut rig, &invite);
    rig.receive(OUTBOUND.parse().unwrap(), &reply(OUTBOUND, &to_trunk, 200, "", &sdp(44_000)));
    rig.take_sent();
    let hold = sdp(42_000).replace("o=peer 1 1", "o=peer 1 2") + "a=sendonly\r\n";
    rig.receive(AGENT.parse().unwrap(), &from_operator(&invite, "INVITE", 2, &hold));
    let ok = rig.finals();
    assert_eq!(ok.iter().map(|r| r.status).collect::<Vec<_>>(), [200], "{ok:?}");
    let answer = String::from_utf8_lossy(&ok[0].body).into_owned();
    assert!(answer.contains("a=recvonly"), "the hold is mirrored: {answer}");
    assert_eq!(rig.media.0.last(), Some(&"update_leg_hold"));
    let resume = sdp(42_000).replace("o=peer 1 1", "o=peer 1 3");
    rig.receive(AGENT.parse().unwrap(), &from_operator(&invite, "INVITE", 3, &resume));
    assert_eq!(rig.finals().iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    assert_eq!(rig.media.0.last(), Some(&"update_leg"));
    // A REFER of a call-back is not carried out.
    let refer = from_operator(&invite, "REFER", 4, "");
    rig.receive(AGENT.parse().unwrap(), &refer);
    assert_eq!(rig.finals().iter().map(|r| r.status).collect::<Vec<_>>(), [501]);
    assert!(rig.sb.callback_in_progress(7), "the call goes on");
    assert_eq!(outcomes(&rig), [(7, CallbackOutcome::Answered)]);
}
