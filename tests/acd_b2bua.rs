//! The switchboard's caller identity, feature codes and early media, sans-IO: the endpoint and the
//! switchboard around a fake media, fed literal SIP from a trunk and an agent on virtual time.
//! What the agent's INVITE shows of the caller (RFC 3325 / RFC 3323), the 407 → 200 → BYE of a
//! feature code and its effect on the engine, 183 early media answered 200 on an agent's 2xx, and
//! session timers (RFC 4028) on the agent leg.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tongdai::acd::b2bua::{FEATURE_PROMPTS, MediaControl};
use tongdai::acd::{AgentId, AgentState, CallId};
use tongdai::media::pacing::Playlist;
use tongdai::media::relay::LegFormat;
use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::message::{Message, Method, Request, Response};
use tongdai::sip::transport::{Flow, Transport};

/// What the switchboard asked of the media.
#[derive(Debug, Clone, PartialEq)]
enum Media {
    Open,
    Play,
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
        self.log.push(Media::Open);
        Some(20_000)
    }
    fn open_agent(&mut self, _: CallId) -> Option<u16> {
        self.log.push(Media::Other);
        Some(20_002)
    }
    fn agent_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {
        self.log.push(Media::Other);
    }
    fn caller_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {
        self.log.push(Media::Other);
    }
    fn play(&mut self, _: CallId, _: Playlist) {
        self.log.push(Media::Play);
    }
    fn bridge(&mut self, _: CallId) {
        self.log.push(Media::Bridge);
    }
    fn drop_agent(&mut self, _: CallId) {
        self.log.push(Media::Other);
    }
    fn close(&mut self, _: CallId) {
        self.log.push(Media::Close);
    }
}

const US: &str = "127.0.0.1:5060";
const TRUNK: &str = "127.0.0.1:5070";
const AGENT: &str = "127.0.0.1:5080";

fn flow(remote: &str) -> Flow {
    Flow { transport: Transport::Udp, local: US.parse().unwrap(), remote: remote.parse().unwrap() }
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    )
}

/// The test's rig: the shared one around the recording media, with one feature confirmation
/// prompt of two (the others are missing: skipped, the call still ends) and a fixed pseudonym key.
type Rig = support::rig::Rig<FakeMedia>;

impl Rig {
    /// A switchboard over the default configuration with `from` → `to` replacements.
    fn new(edits: &[(&str, &str)]) -> Rig {
        let prompts = [(FEATURE_PROMPTS[0].1, 1600)];
        let mut rig = Rig::build(edits, "", FakeMedia::default(), &prompts);
        rig.sb.set_pseudonym_key([9; 32]);
        rig
    }

    fn send(&mut self, from: &str, text: String) {
        self.receive(from.parse().unwrap(), &text);
    }

    /// Responses sent to `to` since the last look (provisional and final).
    fn responses_to(&mut self, to: &str) -> Vec<Response> {
        let to: SocketAddr = to.parse().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.sent).into_iter().partition(|(f, m)| {
                f.remote == to && matches!(m, Message::Response(r) if r.status > 100)
            });
        self.sent = rest;
        mine.into_iter()
            .filter_map(|(_, m)| match m {
                Message::Response(r) => Some(r),
                Message::Request(_) => None,
            })
            .collect()
    }

    /// Requests sent to `to` since the last look.
    fn requests_to(&mut self, to: &str) -> Vec<Request> {
        let to: SocketAddr = to.parse().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|(f, m)| f.remote == to && matches!(m, Message::Request(_)));
        self.sent = rest;
        mine.into_iter()
            .filter_map(|(_, m)| match m {
                Message::Request(r) => Some(r),
                Message::Response(_) => None,
            })
            .collect()
    }

    /// The one final response sent to `to`; must be `status`.
    fn final_to(&mut self, to: &str, status: u16) -> Response {
        let mut finals: Vec<Response> =
            self.responses_to(to).into_iter().filter(|r| r.status >= 200).collect();
        finals.dedup_by(|a, b| a.status == b.status);
        assert_eq!(finals.len(), 1, "{finals:?}");
        assert_eq!(finals[0].status, status, "{:?}", finals[0]);
        finals.remove(0)
    }

    /// The agent `op1` registers with digest from [`AGENT`].
    fn register_op1(&mut self) {
        let register = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:{US} SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKreg{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:op1@{US}>;tag=r1\r\nTo: <sip:op1@{US}>\r\n\
                 Call-ID: reg-op1@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:op1@{AGENT}>\r\n\
                 Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        self.send(AGENT, register(1, ""));
        let challenge = self.final_to(AGENT, 401);
        let value = self.answer_challenge(&challenge, Method::Register, &format!("sip:{US}"));
        self.send(AGENT, register(2, &format!("Authorization: {value}\r\n")));
        self.final_to(AGENT, 200);
        assert_eq!(self.sb.engine().agent_state(&AgentId::new("op1")), Some(AgentState::Available));
    }

    fn answer_challenge(&mut self, challenge: &Response, method: Method, uri: &str) -> String {
        let challenges = if challenge.status == 407 {
            challenge.headers.proxy_authenticate().unwrap()
        } else {
            challenge.headers.www_authenticate().unwrap()
        };
        let chosen = preferred_challenge(&challenges).unwrap();
        let answer = ClientAnswer {
            user: "op1",
            password: "op1-test-password",
            method: &method,
            uri,
            cnonce: "feedc0de",
            nc: 1,
        };
        authorization(chosen, &answer).unwrap()
    }

    /// A trunk INVITE from `from_user` with extra headers; the call's branch is `branch`.
    fn trunk_invite(&mut self, branch: &str, from_user: &str, extra: &str) {
        let body = sdp(40_000);
        self.send(
            TRUNK,
            format!(
                "INVITE sip:111@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bK{branch};rport\r\n\
                 From: <sip:{from_user}@{TRUNK}>;tag=trunk1\r\nTo: <sip:111@{US}>\r\n\
                 Call-ID: {branch}@trunk\r\nCSeq: 1 INVITE\r\nContact: <sip:trunk@{TRUNK}>\r\n\
                 Max-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
    }

    /// Lets the welcome prompt end and returns the INVITE the agent gets.
    fn agent_invite(&mut self) -> Request {
        self.advance(Duration::from_secs(2));
        // Timer A retransmissions are copies of one INVITE.
        let mut invites: Vec<Request> =
            self.requests_to(AGENT).into_iter().filter(|r| r.method == Method::Invite).collect();
        assert!(!invites.is_empty(), "no INVITE to the agent");
        let call_ids: Vec<&str> = invites.iter().map(|r| r.headers.call_id().unwrap()).collect();
        assert!(call_ids.iter().all(|c| *c == call_ids[0]), "one INVITE: {call_ids:?}");
        invites.remove(0)
    }

    /// A feature-code INVITE from the agent (`auth`: a Proxy-Authorization line or "").
    fn feature_invite(&mut self, code: &str, cseq: u32, auth: &str) {
        let body = sdp(42_000);
        self.send(
            AGENT,
            format!(
                "INVITE sip:{code}@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKfc{code}-{cseq};rport\r\n\
                 From: <sip:op1@{US}>;tag=fc1\r\nTo: <sip:{code}@{US}>\r\nCall-ID: fc-{code}@agent\r\n\
                 CSeq: {cseq} INVITE\r\nContact: <sip:op1@{AGENT}>\r\nMax-Forwards: 70\r\n\
                 User-Agent: test-agent\r\n{auth}Content-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
    }

    fn ack_to(&mut self, from: &str, to: &str, r: &Response) {
        let via = r.headers.get("Via").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap();
        let from_h =
            r.headers.get("From").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap();
        let to_h = r.headers.get("To").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap();
        let call_id = r.headers.call_id().unwrap().to_string();
        let seq = r.headers.cseq().unwrap().seq;
        self.send(
            from,
            format!(
                "ACK sip:{to} SIP/2.0\r\nVia: {via}\r\nFrom: {from_h}\r\nTo: {to_h}\r\n\
                 Call-ID: {call_id}\r\nCSeq: {seq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ),
        );
    }

    /// The agent dials `code` and authenticates: the 200.
    fn dial_feature(&mut self, code: &str) -> Response {
        self.sent.clear();
        self.feature_invite(code, 1, "");
        let challenge = self.final_to(AGENT, 407);
        self.ack_to(AGENT, US, &challenge);
        let value = self.answer_challenge(&challenge, Method::Invite, &format!("sip:{code}@{US}"));
        self.feature_invite(code, 2, &format!("Proxy-Authorization: {value}\r\n"));
        let ok = self.final_to(AGENT, 200);
        self.ack_to(AGENT, US, &ok);
        ok
    }

    fn op1(&self) -> Option<AgentState> {
        self.sb.engine().agent_state(&AgentId::new("op1"))
    }
}

/// The agent's INVITE as one text (headers and body).
fn text_of(r: &Request) -> String {
    String::from_utf8_lossy(&r.to_bytes()).into_owned()
}

fn from_of(r: &Request) -> String {
    String::from_utf8_lossy(r.headers.get("From").unwrap()).into_owned()
}

#[test]
fn privacy_id_leaves_no_number_in_the_agents_invite() {
    let mut rig = Rig::new(&[]);
    rig.register_op1();
    rig.trunk_invite(
        "priv",
        "0901234567",
        "P-Asserted-Identity: <tel:+84901234567>\r\nPrivacy: id\r\n",
    );
    rig.final_to(TRUNK, 200);
    let invite = rig.agent_invite();
    let text = text_of(&invite);
    for digits in ["901234567", "0901234567", "84901234567"] {
        assert!(!text.contains(digits), "number in the agent's INVITE:\n{text}");
    }
    assert!(from_of(&invite).starts_with("\"111 · Nam Bộ · ẩn danh\" <sip:111@"), "{text}");
    assert_eq!(rig.sb.caller_pseudonym(CallId(1)), None, "no pseudonym either");
}

#[test]
fn an_anonymous_from_is_shown_as_anonymous() {
    let mut rig = Rig::new(&[]);
    rig.register_op1();
    rig.trunk_invite("anon", "anonymous", "");
    rig.final_to(TRUNK, 200);
    let invite = rig.agent_invite();
    assert!(from_of(&invite).contains("ẩn danh"), "{}", from_of(&invite));
}

#[test]
fn the_trunks_asserted_identity_gives_province_and_pseudonym_never_the_number() {
    let mut rig = Rig::new(&[]);
    rig.register_op1();
    // From says one thing, the trunk asserts the real (landline, An Giang) number.
    rig.trunk_invite("pai", "0911111111", "P-Asserted-Identity: <sip:+842963852123@trunk>\r\n");
    rig.final_to(TRUNK, 200);
    let invite = rig.agent_invite();
    let from = from_of(&invite);
    assert!(from.starts_with("\"111 · An Giang · #"), "{from}");
    let pseudonym = rig.sb.caller_pseudonym(CallId(1)).expect("a pseudonym for records");
    assert!(from.contains(&pseudonym.to_string()), "{from}");
    assert!(from.contains("<sip:111@"), "{from}");
    let text = text_of(&invite);
    assert!(!text.contains("2963852123") && !text.contains("911111111"), "{text}");
    // The pseudonym is the same however the trunk writes the number.
    let mut again = Rig::new(&[]);
    again.register_op1();
    again.trunk_invite("pai2", "0911111111", "P-Asserted-Identity: <tel:0296-3852-123>\r\n");
    again.final_to(TRUNK, 200);
    assert_eq!(from_of(&again.agent_invite()), from);
}

#[test]
fn the_agent_sees_the_province_the_call_was_attributed_to_not_just_the_area_code() {
    // A mobile caller tells no province; the trunk's carrier header does.
    let mut rig = Rig::new(&[("dialled = {}\n", "dialled = {}\nheader = \"X-Province\"\n")]);
    rig.register_op1();
    rig.trunk_invite("prov", "0901234567", "X-Province: Dong Thap\r\n");
    rig.final_to(TRUNK, 200);
    let from = from_of(&rig.agent_invite());
    assert!(from.starts_with("\"111 · Đồng Tháp · #"), "{from}");
    assert_eq!(rig.sb.engine().province(CallId(1)), Some("Đồng Tháp"));
}

#[test]
fn without_trust_the_number_comes_from_from_and_policy_may_show_it() {
    let mut rig = Rig::new(&[
        ("trust_asserted_identity = true", "trust_asserted_identity = false"),
        ("show_number_to_agents = false", "show_number_to_agents = true"),
    ]);
    rig.register_op1();
    rig.trunk_invite("show", "02838221234", "P-Asserted-Identity: <tel:+84296385212>\r\n");
    rig.final_to(TRUNK, 200);
    let from = from_of(&rig.agent_invite());
    assert!(from.starts_with("\"111 · TP. Hồ Chí Minh · #"), "{from}");
    assert!(from.contains("<sip:+842838221234@"), "{from}");
}

#[test]
fn a_feature_code_is_challenged_then_answered_confirmed_and_hung_up() {
    let mut rig = Rig::new(&[]);
    rig.register_op1();
    let ok = rig.dial_feature("*21");
    assert!(!ok.body.is_empty(), "the 200 carries our SDP answer");
    assert!(matches!(rig.op1(), Some(AgentState::Paused { .. })), "{:?}", rig.op1());
    assert!(rig.media.log.contains(&Media::Play), "the confirmation plays");
    // No call was offered for it and no line is held.
    assert_eq!(rig.sb.calls(), 0);
    assert_eq!(rig.sb.engine().lines_busy(), 0);
    // After the prompt (0.2 s) we hang up.
    rig.advance(Duration::from_secs(2));
    // One BYE (Timer E may repeat it: the test agent does not answer).
    let mut byes: Vec<String> = rig
        .requests_to(AGENT)
        .into_iter()
        .filter(|r| r.method == Method::Bye)
        .map(|r| r.headers.call_id().unwrap().to_string())
        .collect();
    byes.dedup();
    assert_eq!(byes, vec!["fc-*21@agent".to_string()]);
    assert!(rig.media.log.contains(&Media::Close));
    // A trunk call now finds nobody available.
    rig.trunk_invite("paused", "0901234567", "");
    rig.final_to(TRUNK, 200);
    rig.advance(Duration::from_secs(2));
    assert!(rig.requests_to(AGENT).iter().all(|r| r.method != Method::Invite));
}

#[test]
fn resume_without_its_prompt_still_confirms_and_ends() {
    let mut rig = Rig::new(&[]);
    rig.register_op1();
    rig.dial_feature("*21");
    rig.advance(Duration::from_secs(2));
    rig.dial_feature("*22");
    assert_eq!(rig.op1(), Some(AgentState::Available));
    rig.advance(Duration::from_secs(2));
    assert!(rig.requests_to(AGENT).iter().any(|r| r.method == Method::Bye));
}

#[test]
fn log_out_by_feature_code_ends_the_registration() {
    let mut rig = Rig::new(&[]);
    rig.register_op1();
    rig.dial_feature("%2A24");
    assert_eq!(rig.op1(), Some(AgentState::LoggedOut));
    assert!(rig.sb.registrar().lookup("op1").is_empty());
}

#[test]
fn end_wrap_up_by_feature_code_frees_the_agent() {
    let mut rig = Rig::new(&[]);
    rig.register_op1();
    rig.trunk_invite("wrap", "0901234567", "");
    let ok = rig.final_to(TRUNK, 200);
    rig.ack_to(TRUNK, US, &ok);
    let invite = rig.agent_invite();
    // The agent answers, then hangs up: wrap-up (30 s).
    let body = sdp(44_000);
    let mut answer = Response::for_request(&invite, 200, Some("agent1"));
    answer.headers.push("Contact", format!("<sip:op1@{AGENT}>"));
    answer.headers.push("Content-Type", "application/sdp");
    answer.body = Bytes::from(body);
    rig.ep.handle_datagram(rig.now, flow(AGENT), answer.to_bytes());
    rig.pump();
    assert!(matches!(rig.op1(), Some(AgentState::OnCall { .. })), "{:?}", rig.op1());
    let call_id = invite.headers.call_id().unwrap().to_string();
    let from = from_of(&invite);
    rig.send(
        AGENT,
        format!(
            "BYE sip:111@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKbye1;rport\r\n\
             From: <sip:op1@{AGENT}>;tag=agent1\r\nTo: {from}\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    assert!(matches!(rig.op1(), Some(AgentState::WrapUp { .. })), "{:?}", rig.op1());
    rig.dial_feature("*23");
    assert_eq!(rig.op1(), Some(AgentState::Available));
}

#[test]
fn feature_codes_refuse_clearly() {
    let mut rig = Rig::new(&[]);
    rig.register_op1();
    // A code nobody configured: 404 once authenticated.
    rig.feature_invite("*99", 1, "");
    let challenge = rig.final_to(AGENT, 407);
    rig.ack_to(AGENT, US, &challenge);
    let value = rig.answer_challenge(&challenge, Method::Invite, &format!("sip:*99@{US}"));
    rig.feature_invite("*99", 2, &format!("Proxy-Authorization: {value}\r\n"));
    rig.final_to(AGENT, 404);
    // Wrong credentials: 403, not a challenge loop.
    rig.feature_invite("*21", 3, "");
    let challenge = rig.final_to(AGENT, 407);
    let challenges = challenge.headers.proxy_authenticate().unwrap();
    let wrong = authorization(
        preferred_challenge(&challenges).unwrap(),
        &ClientAnswer {
            user: "op1",
            password: "guess",
            method: &Method::Invite,
            uri: &format!("sip:*21@{US}"),
            cnonce: "abc",
            nc: 1,
        },
    )
    .unwrap();
    rig.feature_invite("*21", 4, &format!("Proxy-Authorization: {wrong}\r\n"));
    rig.final_to(AGENT, 403);
    assert_eq!(rig.op1(), Some(AgentState::Available), "nothing changed");
    // A feature code never reaches the queue, even from outside the trunk's allow-list.
    assert_eq!(rig.sb.calls(), 0);
}

#[test]
fn early_media_sends_183_then_200_when_the_agent_answers() {
    let mut rig = Rig::new(&[("answer = \"answer\"", "answer = \"early-media\"")]);
    rig.register_op1();
    rig.trunk_invite("early", "0901234567", "");
    let provisional = rig.responses_to(TRUNK);
    assert!(provisional.iter().all(|r| r.status < 200), "no final answer yet: {provisional:?}");
    let progress = provisional.iter().find(|r| r.status == 183).expect("183");
    assert!(!progress.body.is_empty(), "the 183 carries our SDP");
    assert!(rig.media.log.contains(&Media::Play), "the welcome prompt plays as early media");
    let invite = rig.agent_invite();
    assert!(rig.responses_to(TRUNK).iter().all(|r| r.status < 200));
    let mut answer = Response::for_request(&invite, 200, Some("agent1"));
    answer.headers.push("Contact", format!("<sip:op1@{AGENT}>"));
    answer.headers.push("Content-Type", "application/sdp");
    answer.body = Bytes::from(sdp(44_000));
    rig.ep.handle_datagram(rig.now, flow(AGENT), answer.to_bytes());
    rig.pump();
    let ok = rig.final_to(TRUNK, 200);
    assert_eq!(ok.body, progress.body, "the 200 repeats the 183's answer");
    assert!(rig.media.log.contains(&Media::Bridge));
    rig.ack_to(TRUNK, US, &ok);
    assert_eq!(rig.sb.calls(), 1);
}

#[test]
fn early_media_caller_cancelling_in_the_queue_is_abandoned() {
    let mut rig = Rig::new(&[("answer = \"answer\"", "answer = \"early-media\"")]);
    rig.trunk_invite("cancel", "0901234567", "");
    rig.advance(Duration::from_secs(2));
    rig.send(
        TRUNK,
        format!(
            "CANCEL sip:111@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bKcancel;rport\r\n\
             From: <sip:0901234567@{TRUNK}>;tag=trunk1\r\nTo: <sip:111@{US}>\r\n\
             Call-ID: cancel@trunk\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        ),
    );
    let finals: Vec<u16> =
        rig.responses_to(TRUNK).iter().filter(|r| r.status >= 200).map(|r| r.status).collect();
    assert!(finals.contains(&487), "{finals:?}");
    assert!(!finals.contains(&480), "one final answer to the INVITE: {finals:?}");
    assert_eq!(rig.sb.calls(), 0);
    assert!(rig.media.log.contains(&Media::Close));
}

#[test]
fn early_media_caller_refused_when_nobody_can_take_it_gets_a_final_answer() {
    // max_queue 1: the second caller is refused before anything is sent but 100.
    let mut rig = Rig::new(&[
        ("answer = \"answer\"", "answer = \"early-media\""),
        ("max_queue = 20", "max_queue = 1"),
    ]);
    rig.trunk_invite("first", "0901234567", "");
    rig.trunk_invite("second", "0907654321", "");
    let finals: Vec<u16> =
        rig.responses_to(TRUNK).iter().filter(|r| r.status >= 200).map(|r| r.status).collect();
    assert_eq!(finals, vec![486]);
}

impl Rig {
    /// A trunk call bridged to op1, whose 200 carries `extra` headers: the agent's INVITE.
    fn bridged_call(&mut self, extra: &[(&'static str, &str)]) -> Request {
        self.register_op1();
        self.trunk_invite("timer", "0901234567", "");
        let ok = self.final_to(TRUNK, 200);
        self.ack_to(TRUNK, US, &ok);
        let invite = self.agent_invite();
        let mut answer = Response::for_request(&invite, 200, Some("agent1"));
        answer.headers.push("Contact", format!("<sip:op1@{AGENT}>"));
        for (name, value) in extra {
            answer.headers.push(*name, value.to_string());
        }
        answer.headers.push("Content-Type", "application/sdp");
        answer.body = Bytes::from(sdp(44_000));
        self.ep.handle_datagram(self.now, flow(AGENT), answer.to_bytes());
        self.pump();
        assert!(matches!(self.op1(), Some(AgentState::OnCall { .. })), "{:?}", self.op1());
        self.sent.clear();
        invite
    }
}

/// The registrar's OPTIONS keep-alives off: the test agents answer nothing but what they are
/// scripted to, and these tests run minutes of virtual time.
const NO_KEEPALIVES: &[(&str, &str)] =
    &[("keepalive_interval = \"30s\"", "keepalive_interval = \"0s\"")];

#[test]
fn our_invite_to_an_agent_offers_a_session_timer() {
    let mut rig = Rig::new(NO_KEEPALIVES);
    let invite = rig.bridged_call(&[]);
    assert_eq!(invite.headers.get("Session-Expires").map(|v| v.as_ref()), Some(&b"1800"[..]));
    let supported = invite.headers.supported().unwrap();
    assert!(supported.iter().any(|t| t == "timer"), "{supported:?}");
    // An agent without session timers (no Session-Expires in its 200): no refresh, no expiry.
    rig.advance(Duration::from_secs(1000));
    let to_agent = rig.requests_to(AGENT);
    assert!(to_agent.is_empty(), "{to_agent:?}");
    assert_eq!(rig.sb.calls(), 1);
}

#[test]
fn the_agent_leg_is_refreshed_when_the_agent_makes_us_the_refresher() {
    let mut rig = Rig::new(NO_KEEPALIVES);
    rig.bridged_call(&[("Session-Expires", "90;refresher=uac"), ("Require", "timer")]);
    rig.advance(Duration::from_secs(44));
    assert!(rig.requests_to(AGENT).is_empty(), "no refresh before half the interval");
    rig.advance(Duration::from_secs(2));
    let refresh: Vec<Request> = rig.requests_to(AGENT);
    assert!(!refresh.is_empty(), "no refresh at half the interval");
    let r = &refresh[0];
    assert_eq!(r.method, Method::Invite, "the agent allows no UPDATE: a re-INVITE");
    assert!(r.headers.to().unwrap().tag().is_some(), "in the dialog");
    let se = r.headers.get("Session-Expires").unwrap();
    assert_eq!(se.as_ref(), b"90;refresher=uac");
    assert!(!r.body.is_empty(), "our unchanged description");
}

#[test]
fn an_agent_leg_nobody_refreshes_is_hung_up_and_so_is_the_caller() {
    let mut rig = Rig::new(NO_KEEPALIVES);
    rig.bridged_call(&[("Session-Expires", "90;refresher=uas"), ("Require", "timer")]);
    // §10: BYE at expiry - min(32 s, 90/3) = 60 s, when the agent sent no refresh.
    rig.advance(Duration::from_secs(59));
    assert!(rig.requests_to(AGENT).is_empty());
    rig.advance(Duration::from_secs(2));
    assert!(rig.requests_to(AGENT).iter().any(|r| r.method == Method::Bye), "no BYE to the agent");
    assert!(rig.requests_to(TRUNK).iter().any(|r| r.method == Method::Bye), "caller left alone");
    assert_eq!(rig.sb.calls(), 0);
}

#[test]
fn password_guessing_through_feature_codes_is_banned_like_register() {
    let mut rig = Rig::new(&[("ban_failures = 10", "ban_failures = 2")]);
    rig.register_op1();
    let wrong = |rig: &mut Rig, cseq: u32| {
        rig.feature_invite("*21", cseq, "");
        let challenge = rig.final_to(AGENT, 407);
        let challenges = challenge.headers.proxy_authenticate().unwrap();
        let guess = authorization(
            preferred_challenge(&challenges).unwrap(),
            &ClientAnswer {
                user: "op1",
                password: "guess",
                method: &Method::Invite,
                uri: &format!("sip:*21@{US}"),
                cnonce: "abc",
                nc: 1,
            },
        )
        .unwrap();
        rig.feature_invite("*21", cseq + 1, &format!("Proxy-Authorization: {guess}\r\n"));
        rig.final_to(AGENT, 403);
    };
    wrong(&mut rig, 1);
    wrong(&mut rig, 3);
    // Banned now: even the right password is refused, with no challenge to answer.
    rig.sent.clear();
    rig.feature_invite("*21", 5, "");
    rig.final_to(AGENT, 403);
    assert_eq!(rig.op1(), Some(AgentState::Available), "the guesses changed nothing");
}
