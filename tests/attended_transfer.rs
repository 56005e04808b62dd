//! Consultation, attended transfer (REFER with Replaces, RFC 3891) and the three-way conference,
//! through the switchboard on virtual time, fed literal SIP from a trunk, an operator's softphone
//! and a transfer target, around a media that records what it is told. The operator holds the
//! caller (who hears hold audio), dials a directory code (authenticated with 407), the target is
//! INVITEd from `111` and its answer answers the operator; then the REFER with Replaces hands the
//! target's leg to the caller, or `*3` mixes all three, or the consultation fails or is hung up
//! and the operator resumes the caller.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use support::rig::{Rig, proxy_answer, reply, trunk_offer, trunk_request};
use tongdai::acd::b2bua::{Join, MediaControl, Report};
use tongdai::acd::{AgentState, CallId, Outcome, Output};
use tongdai::media::mix::MixMode;
use tongdai::media::pacing::Playlist;
use tongdai::media::relay::LegFormat;
use tongdai::sip::message::{Message, Method, Request, Response};

const AGENT: &str = "127.0.0.1:5080";
const TARGET: &str = "127.0.0.1:5099";
const US: &str = "127.0.0.1:5060";
const S: Duration = Duration::from_secs(1);

const DIRECTORY: &str = "\n[[directory]]\nname = \"Sở LĐTBXH Đồng Nai\"\nkind = \"focal_point\"\n\
                         uri = \"sip:focal@127.0.0.1:5099\"\ncode = \"*31\"\n";

/// A media that records what the switchboard asks of it.
#[derive(Default)]
struct Recorder {
    log: Vec<String>,
    next_port: u16,
}

impl Recorder {
    fn port(&mut self) -> Option<u16> {
        self.next_port += 2;
        Some(30_000 + self.next_port)
    }
}

impl MediaControl for Recorder {
    fn address(&self) -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }
    fn open_caller(&mut self, call: CallId, _: Option<SocketAddr>, _: LegFormat) -> Option<u16> {
        self.log.push(format!("open_caller {call}"));
        self.port()
    }
    fn open_agent(&mut self, call: CallId) -> Option<u16> {
        self.log.push(format!("open_agent {call}"));
        self.port()
    }
    fn agent_answered(&mut self, call: CallId, _: Option<SocketAddr>, _: LegFormat) {
        self.log.push(format!("agent_answered {call}"));
    }
    fn caller_answered(&mut self, _: CallId, _: Option<SocketAddr>, _: LegFormat) {}
    fn play(&mut self, call: CallId, _: Playlist) {
        self.log.push(format!("play {call}"));
    }
    fn bridge(&mut self, call: CallId) {
        self.log.push(format!("bridge {call}"));
    }
    fn drop_agent(&mut self, call: CallId) {
        self.log.push(format!("drop_agent {call}"));
    }
    fn close(&mut self, call: CallId) {
        self.log.push(format!("close {call}"));
    }
    fn set_mix(&mut self, call: CallId, mode: MixMode) {
        self.log.push(format!("mix {call} {mode:?}"));
    }
    fn drop_third(&mut self, call: CallId) {
        self.log.push(format!("drop_third {call}"));
    }
    fn join(&mut self, from: CallId, to: CallId, join: Join) {
        self.log.push(format!("join {from} {to} {join:?}"));
    }
}

fn header(r: &Request, name: &str) -> String {
    r.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn sdp(port: u16, direction: &str) -> String {
    trunk_offer(1, direction).replace("o=trunk", "o=peer").replace("40000", &port.to_string())
}

/// The rig once op1 talks with the trunk's caller: the trunk dialog's tag and op1's INVITE.
struct Talk {
    rig: Rig<Recorder>,
    trunk_tag: String,
    invite: Request,
    /// op1's next CSeq in its dialog with us.
    cseq: u32,
}

fn talking() -> Talk {
    let mut rig = Rig::build(&[], DIRECTORY, Recorder::default(), &[]);
    let status = rig.register("op1", "op1-test-password", AGENT.parse().unwrap(), AGENT);
    assert_eq!(status, 200);
    let trunk_tag = rig.call_trunk();
    rig.advance(2 * S);
    let invite = rig.sent_to(AGENT, Method::Invite).remove(0);
    rig.receive(AGENT.parse().unwrap(), &reply(AGENT, &invite, 200, "", &sdp(42_000, "sendrecv")));
    assert!(matches!(rig.state("op1"), Some(AgentState::OnCall { .. })));
    Talk { rig, trunk_tag, invite, cseq: 1 }
}

impl Talk {
    /// The caller's call (the first one).
    fn call(&self) -> CallId {
        CallId(1)
    }

    /// A request from op1 in its dialog with the caller's call.
    fn in_call(&mut self, method: &str, extra: &str, body: &str) {
        let ours = header(&self.invite, "From");
        let theirs = header(&self.invite, "To");
        let ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        let cseq = self.cseq;
        self.cseq += 1;
        let text = format!(
            "{method} sip:tongdai@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKin{cseq}\r\n\
             From: {theirs};tag=peer200\r\nTo: {ours}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:op1@{AGENT}>\r\nMax-Forwards: 70\r\n{extra}{ctype}Content-Length: {}\r\n\r\n{body}",
            header(&self.invite, "Call-ID"),
            body.len()
        );
        self.rig.receive(AGENT.parse().unwrap(), &text);
    }

    /// op1's phone holds the caller (re-INVITE `sendonly`).
    fn hold(&mut self) {
        self.in_call("INVITE", "", &sdp(42_000, "sendonly"));
    }

    /// op1's phone resumes the caller.
    fn resume(&mut self) {
        self.in_call("INVITE", "", &sdp(42_000, "sendrecv"));
    }

    /// op1's consultation INVITE to `code` (CSeq `cseq`, with `auth` lines).
    fn consult_invite(&mut self, code: &str, cseq: u32, auth: &str) {
        let body = sdp(42_100, "sendrecv");
        let text = format!(
            "INVITE sip:{code}@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKcs{cseq}\r\n\
             From: <sip:op1@{US}>;tag=cf1\r\nTo: <sip:{code}@{US}>\r\nCall-ID: consult-1@agent\r\n\
             CSeq: {cseq} INVITE\r\nContact: <sip:op1@{AGENT}>\r\nMax-Forwards: 70\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.rig.receive(AGENT.parse().unwrap(), &text);
    }

    /// The final responses to op1's consultation INVITE since the last look.
    fn consult_finals(&mut self) -> Vec<Response> {
        let mut seen: Vec<Response> = Vec::new();
        for (flow, m) in &self.rig.sent {
            if let Message::Response(r) = m
                && flow.remote == AGENT.parse().unwrap()
                && r.headers.call_id().is_ok_and(|c| c == "consult-1@agent")
                && r.status >= 200
                && !seen.iter().any(|s| s.status == r.status)
            {
                seen.push(r.clone());
            }
        }
        seen
    }

    /// op1 dials `*31` and authenticates; returns the INVITE that went to the target.
    fn consult(&mut self) -> Request {
        self.consult_invite("*31", 1, "");
        let challenge = self.consult_finals().pop().expect("a 407");
        assert_eq!(challenge.status, 407);
        self.ack_consult(&challenge);
        let uri = format!("sip:*31@{US}");
        let value = proxy_answer(&challenge, "op1", "op1-test-password", Method::Invite, &uri);
        self.rig.sent.clear();
        self.consult_invite("*31", 2, &format!("Proxy-Authorization: {value}\r\n"));
        let to_target = self.rig.sent_to(TARGET, Method::Invite);
        assert_eq!(to_target.len(), 1, "the target is INVITEd");
        to_target[0].clone()
    }

    /// op1's ACK to a final response of its consultation INVITE.
    fn ack_consult(&mut self, r: &Response) {
        let h =
            |n: &str| r.headers.get(n).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap();
        let seq = r.headers.cseq().unwrap().seq;
        let text = format!(
            "ACK sip:{US} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: consult-1@agent\r\n\
             CSeq: {seq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            h("Via"),
            h("From"),
            h("To")
        );
        self.rig.receive(AGENT.parse().unwrap(), &text);
    }

    /// The target answers `to_target`; op1's consultation is answered and ACKed: our tag in it.
    fn target_answers(&mut self, to_target: &Request) -> String {
        self.rig.sent.clear();
        let target = TARGET.parse().unwrap();
        self.rig.receive(target, &reply(TARGET, to_target, 180, "", ""));
        let ringing = self.rig.sent.iter().any(|(f, m)| {
            matches!(m, Message::Response(r) if r.status == 180) && f.remote.port() == 5080
        });
        assert!(ringing, "the target's ringing reaches op1");
        self.rig.receive(target, &reply(TARGET, to_target, 200, "", &sdp(43_000, "sendrecv")));
        assert_eq!(self.rig.sent_to(TARGET, Method::Ack).len(), 1);
        let ok = self.consult_finals().pop().expect("op1's consultation is answered");
        assert_eq!(ok.status, 200);
        assert!(!ok.body.is_empty(), "with our SDP answer");
        self.ack_consult(&ok);
        let to = ok.headers.get("To").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap();
        to.split(";tag=").nth(1).unwrap().to_owned()
    }

    /// An INFO key press from op1 in the consultation (our tag `tag`).
    fn consult_key(&mut self, tag: &str, key: char, cseq: u32) {
        let body = format!("Signal={key}\r\nDuration=160\r\n");
        let text = format!(
            "INFO sip:tongdai@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKkey{cseq}\r\n\
             From: <sip:op1@{US}>;tag=cf1\r\nTo: <sip:*31@{US}>;tag={tag}\r\nCall-ID: consult-1@agent\r\n\
             CSeq: {cseq} INFO\r\nMax-Forwards: 70\r\nContent-Type: application/dtmf-relay\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.rig.receive(AGENT.parse().unwrap(), &text);
    }

    /// op1 hangs up the consultation (our tag `tag`).
    fn consult_bye(&mut self, tag: &str) {
        let text = format!(
            "BYE sip:tongdai@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKcbye\r\n\
             From: <sip:op1@{US}>;tag=cf1\r\nTo: <sip:*31@{US}>;tag={tag}\r\nCall-ID: consult-1@agent\r\n\
             CSeq: 9 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        self.rig.receive(AGENT.parse().unwrap(), &text);
    }

    /// A BYE from the target in its dialog (`to_target` answered with tag `peer200`).
    fn target_bye(&mut self, to_target: &Request) {
        let text = format!(
            "BYE sip:tongdai@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {TARGET};branch=z9hG4bKtbye\r\n\
             From: {};tag=peer200\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            header(to_target, "To"),
            header(to_target, "From"),
            header(to_target, "Call-ID"),
        );
        self.rig.receive(TARGET.parse().unwrap(), &text);
    }

    fn media_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.rig.media.log)
    }

    fn outcomes(&self) -> Vec<Outcome> {
        let each = self.rig.reports.iter().filter_map(|r| match r {
            Report::Engine(Output::CallFinished { outcome, .. }) => Some(outcome.clone()),
            _ => None,
        });
        each.collect()
    }

    /// Statuses we answered op1's in-dialog requests with, by CSeq.
    fn status_of(&mut self, cseq: u32) -> Option<u16> {
        self.rig
            .finals()
            .iter()
            .find(|r| r.headers.cseq().is_ok_and(|c| c.seq == cseq))
            .map(|r| r.status)
    }
}

#[test]
fn holding_gives_the_caller_hold_audio_and_resuming_bridges_again() {
    let mut t = talking();
    t.media_log();
    t.hold();
    let call = t.call();
    assert_eq!(t.media_log(), [format!("play {call}")], "hold audio for the caller");
    t.hold();
    assert!(t.media_log().is_empty(), "a second hold offer changes nothing");
    t.resume();
    assert_eq!(t.media_log(), [format!("bridge {call}")]);
    assert!(matches!(t.rig.state("op1"), Some(AgentState::OnCall { .. })));
}

#[test]
fn an_attended_transfer_hands_the_targets_leg_to_the_caller_and_releases_the_operator() {
    let mut t = talking();
    t.hold();
    let to_target = t.consult();
    assert_eq!(to_target.uri.as_str(), "sip:focal@127.0.0.1:5099");
    assert!(header(&to_target, "From").starts_with("\"111\" <sip:111@"), "the hotline calls");
    assert!(!String::from_utf8_lossy(&to_target.to_bytes()).contains("901234567"));
    assert!(t.consult_finals().is_empty(), "op1 waits for the target's answer");
    let tag = t.target_answers(&to_target);
    let consultation = CallId(2);
    let log = t.media_log();
    assert!(log.contains(&format!("bridge {consultation}")), "op1 and target talk: {log:?}");
    assert!(matches!(t.rig.state("op1"), Some(AgentState::OnCall { .. })));
    // The softphone completes: REFER in the caller's dialog, Replaces naming the consultation.
    t.rig.sent.clear();
    let refer_to = format!(
        "Refer-To: <sip:*31@{US}?Replaces=consult-1%40agent%3Bto-tag%3D{tag}%3Bfrom-tag%3Dcf1>\r\n"
    );
    let refer_cseq = t.cseq;
    t.in_call("REFER", &refer_to, "");
    let notify = t.rig.sent_to(AGENT, Method::Notify);
    let byes = t.rig.sent_to(AGENT, Method::Bye);
    assert_eq!(t.status_of(refer_cseq), Some(202));
    assert_eq!(String::from_utf8_lossy(&notify.last().unwrap().body), "SIP/2.0 200 OK");
    let ids: Vec<String> = byes.iter().map(|b| header(b, "Call-ID")).collect();
    assert_eq!(ids.len(), 2, "both operator legs are hung up: {ids:?}");
    assert!(ids.contains(&"consult-1@agent".to_owned()));
    assert!(ids.contains(&header(&t.invite, "Call-ID")));
    assert!(t.rig.sent_to(TARGET, Method::Bye).is_empty(), "the target stays");
    let call = t.call();
    let log = t.media_log();
    assert!(log.contains(&format!("join {consultation} {call} Transfer")), "{log:?}");
    assert!(!log.contains(&format!("play {call}")), "no hold audio over the target: {log:?}");
    assert!(matches!(&t.outcomes()[..], [Outcome::Transferred { .. }]));
    assert!(matches!(t.rig.state("op1"), Some(AgentState::WrapUp { .. })));
    // Caller and target talk through us until the caller hangs up.
    assert_eq!(t.rig.sb.calls(), 1);
    let tag = t.trunk_tag.clone();
    t.rig.send_trunk(trunk_request("BYE", 2, "bye", Some(&tag), ""));
    assert_eq!(t.rig.sent_to(TARGET, Method::Bye).len(), 1);
    assert_eq!(t.rig.sb.calls(), 0);
}

#[test]
fn a_busy_target_fails_the_consultation_and_the_operator_resumes_the_caller() {
    let mut t = talking();
    t.hold();
    let to_target = t.consult();
    t.rig.receive(TARGET.parse().unwrap(), &reply(TARGET, &to_target, 486, "", ""));
    let finals = t.consult_finals();
    assert_eq!(finals.iter().map(|r| r.status).collect::<Vec<_>>(), [486]);
    assert!(t.outcomes().is_empty(), "the caller's call goes on");
    t.media_log();
    t.resume();
    assert_eq!(t.media_log(), [format!("bridge {}", t.call())]);
    assert!(matches!(t.rig.state("op1"), Some(AgentState::OnCall { .. })));
}

#[test]
fn a_target_that_does_not_answer_is_cancelled_and_the_operator_hears_480() {
    let mut t = talking();
    t.hold();
    let to_target = t.consult();
    // Ringing (a CANCEL waits for a provisional response, RFC 3261 §9.1).
    t.rig.receive(TARGET.parse().unwrap(), &reply(TARGET, &to_target, 180, "", ""));
    t.rig.sent.clear();
    t.rig.advance(31 * S);
    assert_eq!(t.rig.sent_to(TARGET, Method::Cancel).len(), 1);
    let finals = t.consult_finals();
    assert_eq!(finals.iter().map(|r| r.status).collect::<Vec<_>>(), [480]);
    assert!(matches!(t.rig.state("op1"), Some(AgentState::OnCall { .. })));
}

#[test]
fn hanging_up_the_consultation_hangs_up_the_target_and_keeps_the_caller() {
    let mut t = talking();
    t.hold();
    let to_target = t.consult();
    let tag = t.target_answers(&to_target);
    t.media_log();
    t.consult_bye(&tag);
    assert_eq!(t.rig.sent_to(TARGET, Method::Bye).len(), 1);
    assert_eq!(t.media_log(), [format!("close {}", CallId(2))]);
    assert_eq!(t.rig.sb.calls(), 1);
    assert!(t.outcomes().is_empty());
}

#[test]
fn star_3_makes_a_conference_and_the_operator_leaving_hands_the_caller_over() {
    let mut t = talking();
    t.hold();
    let to_target = t.consult();
    let tag = t.target_answers(&to_target);
    t.media_log();
    t.rig.sent.clear();
    t.consult_key(&tag, '*', 3);
    t.consult_key(&tag, '3', 4);
    let call = t.call();
    assert_eq!(t.media_log(), [format!("join {} {call} Conference", CallId(2))]);
    assert!(t.rig.reports.iter().any(|r| matches!(r, Report::Conference { .. })));
    // The held first leg is hung up; the consultation is op1's leg of the call now.
    let byes = t.rig.sent_to(AGENT, Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(header(&byes[0], "Call-ID"), header(&t.invite, "Call-ID"));
    assert!(matches!(t.rig.state("op1"), Some(AgentState::OnCall { .. })));
    // op1 leaves: caller and target stay together, the call counts as transferred.
    t.consult_bye(&tag);
    assert_eq!(t.media_log(), [format!("drop_agent {call}")]);
    assert!(matches!(&t.outcomes()[..], [Outcome::Transferred { .. }]));
    assert!(matches!(t.rig.state("op1"), Some(AgentState::WrapUp { .. })));
    assert_eq!(t.rig.sb.calls(), 1);
    t.target_bye(&to_target);
    let tag = t.trunk_tag.clone();
    let byes = t.rig.sent.iter().filter(|(f, m)| {
        f.remote.port() == 5070 && matches!(m, Message::Request(r) if r.method == Method::Bye)
    });
    assert_eq!(byes.count(), 1, "the caller is hung up when the target leaves ({tag})");
    assert_eq!(t.rig.sb.calls(), 0);
}

#[test]
fn the_target_leaving_a_conference_leaves_caller_and_operator_talking() {
    let mut t = talking();
    t.hold();
    let to_target = t.consult();
    let tag = t.target_answers(&to_target);
    t.consult_key(&tag, '*', 3);
    t.consult_key(&tag, '3', 4);
    t.media_log();
    t.target_bye(&to_target);
    assert_eq!(t.media_log(), [format!("drop_third {}", t.call())]);
    assert!(matches!(t.rig.state("op1"), Some(AgentState::OnCall { .. })));
    assert!(t.outcomes().is_empty());
    // The caller hanging up now ends the call with op1's leg (the consultation dialog).
    t.rig.sent.clear();
    let trunk = t.trunk_tag.clone();
    t.rig.send_trunk(trunk_request("BYE", 2, "bye", Some(&trunk), ""));
    let byes = t.rig.sent_to(AGENT, Method::Bye);
    assert_eq!(byes.iter().map(|b| header(b, "Call-ID")).collect::<Vec<_>>(), ["consult-1@agent"]);
    assert!(matches!(&t.outcomes()[..], [Outcome::Answered { .. }]));
}

#[test]
fn a_replaces_naming_no_consultation_is_refused_and_nothing_changes() {
    let mut t = talking();
    let refer_to =
        format!("Refer-To: <sip:*31@{US}?Replaces=nope%40x%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n");
    let cseq = t.cseq;
    t.in_call("REFER", &refer_to, "");
    assert_eq!(t.status_of(cseq), Some(403));
    assert!(matches!(t.rig.state("op1"), Some(AgentState::OnCall { .. })));
    // Without a call of their own, an operator's directory code is refused too.
    assert!(t.rig.sent_to(TARGET, Method::Invite).is_empty());
}

/// The REFER with Replaces naming the consultation while its target still rings (the phone
/// knows our To tag from the 180 we passed on).
fn refer_while_ringing(t: &mut Talk) -> u32 {
    let refer_to = format!(
        "Refer-To: <sip:*31@{US}?Replaces=consult-1%40agent%3Bto-tag%3Dx%3Bfrom-tag%3Dcf1>\r\n"
    );
    let cseq = t.cseq;
    t.in_call("REFER", &refer_to, "");
    cseq
}

#[test]
fn a_transfer_completed_while_the_target_rings_goes_on_blind_and_bridges_on_its_answer() {
    let mut t = talking();
    t.hold();
    let to_target = t.consult();
    t.rig.receive(TARGET.parse().unwrap(), &reply(TARGET, &to_target, 180, "", ""));
    t.rig.sent.clear();
    let cseq = refer_while_ringing(&mut t);
    let finals = t.consult_finals();
    assert_eq!(finals.iter().map(|r| r.status).collect::<Vec<_>>(), [487], "consultation ended");
    assert_eq!(t.status_of(cseq), Some(202));
    assert!(matches!(t.rig.state("op1"), Some(AgentState::WrapUp { .. })));
    t.media_log();
    t.rig.receive(
        TARGET.parse().unwrap(),
        &reply(TARGET, &to_target, 200, "", &sdp(43_000, "sendrecv")),
    );
    let notify = t.rig.sent_to(AGENT, Method::Notify);
    assert_eq!(String::from_utf8_lossy(&notify.last().unwrap().body), "SIP/2.0 200 OK");
    let byes = t.rig.sent_to(AGENT, Method::Bye);
    assert_eq!(
        byes.iter().map(|b| header(b, "Call-ID")).collect::<Vec<_>>(),
        [header(&t.invite, "Call-ID")]
    );
    let log = t.media_log();
    assert!(log.contains(&format!("join {} {} Transfer", CallId(2), t.call())), "{log:?}");
    assert!(matches!(&t.outcomes()[..], [Outcome::Transferred { .. }]));
    assert_eq!(t.rig.sb.calls(), 1, "caller and target talk");
}

#[test]
fn a_target_failing_after_a_semi_attended_transfer_sends_the_caller_back_first_in_line() {
    let mut t = talking();
    t.hold();
    let to_target = t.consult();
    t.rig.receive(TARGET.parse().unwrap(), &reply(TARGET, &to_target, 180, "", ""));
    refer_while_ringing(&mut t);
    t.rig.sent.clear();
    t.rig.receive(TARGET.parse().unwrap(), &reply(TARGET, &to_target, 486, "", ""));
    let notify = t.rig.sent_to(AGENT, Method::Notify);
    assert_eq!(String::from_utf8_lossy(&notify.last().unwrap().body), "SIP/2.0 486 Busy Here");
    assert_eq!(t.rig.sent_to(AGENT, Method::Bye).len(), 1, "the operator's leg is hung up");
    assert!(t.outcomes().is_empty(), "the caller is not dropped");
    assert_eq!(
        t.rig.sb.engine().waiting(),
        1,
        "the caller waits for the next agent, first in line"
    );
}
