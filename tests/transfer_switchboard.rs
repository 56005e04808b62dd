//! Blind transfer by REFER (RFC 3515) through the switchboard, sans-IO: the endpoint and the
//! switchboard on virtual time, fed literal SIP from a trunk, an agent and a transfer target. The
//! agent's REFER gets 202 and NOTIFYs with `message/sipfrag` progress; the target is INVITEd from
//! the hotline's `111`; on its answer the caller is bridged to it and the agent's leg hung up; on
//! its failure the agent hears why and the caller goes back first in line. A caller's REFER, an
//! attended transfer and an unknown target are refused clearly.

mod support;

use std::time::Duration;

use support::rig::{Rig, reply, trunk_offer, trunk_request};
use tongdai::acd::b2bua::Report;
use tongdai::acd::{AgentId, AgentState, Outcome, Output};
use tongdai::sip::message::{Method, Request};

const AGENT: &str = "127.0.0.1:5080";
const TARGET: &str = "127.0.0.1:5099";
const S: Duration = Duration::from_secs(1);

fn value(h: &tongdai::sip::message::Headers, name: &str) -> String {
    h.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn header(r: &Request, name: &str) -> String {
    value(&r.headers, name)
}

fn sdp() -> String {
    trunk_offer(1, "sendrecv").replace("o=trunk", "o=peer")
}

/// A trunk call bridged to op1; returns the rig, the trunk dialog's tag and op1's INVITE.
fn bridged() -> (Rig, String, Request) {
    bridged_with(&[], "")
}

/// [`bridged`] on the default configuration with `edits` and `extra` appended.
fn bridged_with(edits: &[(&str, &str)], extra: &str) -> (Rig, String, Request) {
    let mut rig = Rig::with_text(edits, extra);
    let status = rig.register("op1", "op1-test-password", AGENT.parse().unwrap(), AGENT);
    assert_eq!(status, 200);
    let tag = rig.call_trunk();
    rig.advance(2 * S);
    let invite = rig.sent_to(AGENT, Method::Invite).remove(0);
    rig.receive(AGENT.parse().unwrap(), &reply(AGENT, &invite, 200, "", &sdp()));
    assert_eq!(rig.sent_to(AGENT, Method::Ack).len(), 1);
    assert!(matches!(rig.state("op1"), Some(AgentState::OnCall { .. })));
    (rig, tag, invite)
}

/// A request from op1 in its dialog (the one our `invite` made, answered with tag `peer200`).
fn from_agent(invite: &Request, method: &str, cseq: u32, extra: &str) -> String {
    let ours = header(invite, "From");
    let theirs = header(invite, "To");
    format!(
        "{method} sip:tongdai@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bKag{cseq}\r\n\
         From: {theirs};tag=peer200\r\nTo: {ours}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:op1@{AGENT}>\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
        header(invite, "Call-ID")
    )
}

/// The final response to op1's request `cseq` (folded retransmissions).
fn answer_to_agent(rig: &mut Rig, cseq: u32) -> u16 {
    let finals = rig.finals();
    let ours = finals.iter().find(|r| r.headers.cseq().is_ok_and(|c| c.seq == cseq));
    ours.map_or(0, |r| r.status)
}

fn outcomes(rig: &Rig) -> Vec<Outcome> {
    let each = rig.reports.iter().filter_map(|r| match r {
        Report::Engine(Output::CallFinished { outcome, .. }) => Some(outcome.clone()),
        _ => None,
    });
    each.collect()
}

#[test]
fn a_blind_transfer_bridges_the_caller_to_the_target_and_releases_the_agent() {
    let (mut rig, tag, invite) = bridged();
    rig.take_sent();
    let refer = from_agent(&invite, "REFER", 1, &format!("Refer-To: <sip:113@{TARGET}>\r\n"));
    rig.receive(AGENT.parse().unwrap(), &refer);
    let sent = rig.take_sent();
    let accepted = sent
        .iter()
        .any(|(_, m)| matches!(m, tongdai::sip::message::Message::Response(r) if r.status == 202));
    assert!(accepted, "REFER not accepted: {sent:?}");
    rig.sent = sent;
    let notify = rig.sent_to(AGENT, Method::Notify);
    assert_eq!(notify.len(), 1);
    assert_eq!(header(&notify[0], "Event"), "refer;id=1");
    assert!(header(&notify[0], "Content-Type").starts_with("message/sipfrag"));
    assert_eq!(String::from_utf8_lossy(&notify[0].body), "SIP/2.0 100 Trying");
    // The agent is done with the call; the caller waits on hold, first in line.
    assert!(matches!(rig.state("op1"), Some(AgentState::WrapUp { .. })));
    let to_target = rig.sent_to(TARGET, Method::Invite);
    assert_eq!(to_target.len(), 1);
    assert_eq!(to_target[0].uri.as_str(), format!("sip:113@{TARGET}"));
    assert!(header(&to_target[0], "From").starts_with("\"111\" <sip:111@"), "the hotline calls");
    assert!(!String::from_utf8_lossy(&to_target[0].to_bytes()).contains("901234567"));
    rig.receive(TARGET.parse().unwrap(), &reply(TARGET, &to_target[0], 180, "", ""));
    rig.receive(TARGET.parse().unwrap(), &reply(TARGET, &to_target[0], 200, "", &sdp()));
    assert_eq!(rig.sent_to(TARGET, Method::Ack).len(), 1);
    let last = rig.sent_to(AGENT, Method::Notify);
    assert_eq!(last.len(), 1);
    assert_eq!(String::from_utf8_lossy(&last[0].body), "SIP/2.0 200 OK");
    assert!(header(&last[0], "Subscription-State").starts_with("terminated"));
    assert_eq!(rig.sent_to(AGENT, Method::Bye).len(), 1, "the agent's leg is hung up");
    let agent = AgentId::new("op1");
    assert!(matches!(&outcomes(&rig)[..], [Outcome::Transferred { agent: a, .. }] if *a == agent));
    // The caller and the target talk through us until one hangs up.
    assert_eq!(rig.sb.calls(), 1);
    rig.send_trunk(trunk_request("BYE", 2, "bye", Some(&tag), ""));
    assert_eq!(rig.sent_to(TARGET, Method::Bye).len(), 1);
    assert_eq!(rig.sb.calls(), 0);
}

#[test]
fn a_busy_target_sends_the_caller_back_first_in_line_and_tells_the_agent() {
    let (mut rig, _tag, invite) = bridged();
    let refer = from_agent(&invite, "REFER", 1, &format!("Refer-To: <sip:115@{TARGET}>\r\n"));
    rig.receive(AGENT.parse().unwrap(), &refer);
    let to_target = rig.sent_to(TARGET, Method::Invite).remove(0);
    rig.sent_to(AGENT, Method::Notify);
    rig.receive(TARGET.parse().unwrap(), &reply(TARGET, &to_target, 486, "", ""));
    let last = rig.sent_to(AGENT, Method::Notify);
    assert_eq!(String::from_utf8_lossy(&last[0].body), "SIP/2.0 486 Busy Here");
    assert!(header(&last[0], "Subscription-State").starts_with("terminated"));
    assert_eq!(rig.sent_to(AGENT, Method::Bye).len(), 1);
    assert!(outcomes(&rig).is_empty(), "the caller is not dropped");
    assert_eq!(rig.sb.engine().waiting(), 1, "the caller waits for the next agent, first in line");
}

#[test]
fn refers_that_cannot_be_carried_out_are_refused_clearly() {
    let (mut rig, tag, invite) = bridged();
    rig.take_sent();
    // An attended transfer (Replaces) naming no consultation of this agent: 403.
    let replaces =
        format!("Refer-To: <sip:113@{TARGET}?Replaces=abc%40x%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n");
    rig.receive(AGENT.parse().unwrap(), &from_agent(&invite, "REFER", 1, &replaces));
    assert_eq!(answer_to_agent(&mut rig, 1), 403);
    // A target by name (no address to reach it at): 404.
    let named = "Refer-To: <sip:113@police.example.vn>\r\n";
    rig.receive(AGENT.parse().unwrap(), &from_agent(&invite, "REFER", 2, named));
    assert_eq!(answer_to_agent(&mut rig, 2), 404);
    // No Refer-To: 400.
    rig.receive(AGENT.parse().unwrap(), &from_agent(&invite, "REFER", 3, ""));
    assert_eq!(answer_to_agent(&mut rig, 3), 400);
    // The caller may not transfer the call: 403.
    let caller_refer = trunk_request("REFER", 2, "ref", Some(&tag), "").replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nRefer-To: <sip:113@{TARGET}>\r\n"),
    );
    rig.send_trunk(caller_refer);
    let finals = rig.finals();
    assert!(finals.iter().any(|r| r.status == 403), "{finals:?}");
    // Nothing changed: op1 still talks with the caller.
    assert!(matches!(rig.state("op1"), Some(AgentState::OnCall { .. })));
    assert!(rig.sent_to(TARGET, Method::Invite).is_empty());
}

#[test]
fn a_directory_code_is_dialled_through_the_trunk_and_refer_sub_false_gets_no_notify() {
    let directory = "\n[[directory]]\nname = \"Công an 113\"\nkind = \"police\"\nnumber = \"113\"\n\
                     code = \"*31\"\n";
    let outbound =
        ("numbers = [\"111\"]\n", "numbers = [\"111\"]\noutbound = \"127.0.0.1:5098\"\n");
    let (mut rig, _tag, invite) = bridged_with(&[outbound], directory);
    rig.take_sent();
    // The softphone dials the short code at our address, escaped as many do, and wants no NOTIFY.
    let extra = "Refer-To: <sip:%2A31@127.0.0.1:5060>\r\nRefer-Sub: false\r\n";
    rig.receive(AGENT.parse().unwrap(), &from_agent(&invite, "REFER", 1, extra));
    let out = rig.sent_to("127.0.0.1:5098", Method::Invite);
    assert_eq!(out.len(), 1, "the directory entry's number goes to the trunk");
    assert_eq!(out[0].uri.as_str(), "sip:113@127.0.0.1:5098");
    assert!(rig.sent_to(AGENT, Method::Notify).is_empty(), "Refer-Sub: false: no NOTIFY");
    let accepted = rig.finals().into_iter().find(|r| r.status == 202).expect("202");
    assert_eq!(header_of(&accepted, "Refer-Sub"), "false");
}

fn header_of(r: &tongdai::sip::message::Response, name: &str) -> String {
    value(&r.headers, name)
}

#[test]
fn the_caller_id_policy_and_the_trunk_channels_apply_to_the_targets_leg() {
    // Policy on: the target sees the caller's number.
    let shown =
        ("show_number_to_transfer_targets = false", "show_number_to_transfer_targets = true");
    let (mut rig, _tag, invite) = bridged_with(&[shown], "");
    let refer = from_agent(&invite, "REFER", 1, &format!("Refer-To: <sip:113@{TARGET}>\r\n"));
    rig.receive(AGENT.parse().unwrap(), &refer);
    let to_target = rig.sent_to(TARGET, Method::Invite).remove(0);
    assert!(header(&to_target, "From").starts_with("\"111\" <sip:+84901234567@"));
    // One channel: the caller's leg takes it, so the target's leg cannot be placed.
    let one = ("numbers = [\"111\"]\n", "numbers = [\"111\"]\nchannels = 1\n");
    let (mut rig, _tag, invite) = bridged_with(&[one], "");
    rig.take_sent();
    let refer = from_agent(&invite, "REFER", 1, &format!("Refer-To: <sip:113@{TARGET}>\r\n"));
    rig.receive(AGENT.parse().unwrap(), &refer);
    assert_eq!(answer_to_agent(&mut rig, 1), 503);
    assert!(matches!(rig.state("op1"), Some(AgentState::OnCall { .. })), "the call goes on");
}
