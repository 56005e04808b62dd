//! Overflow to the national centre through the switchboard, sans-IO: the endpoint and switchboard
//! on virtual time, fed literal SIP from a trunk and two national-centre targets. The transfer
//! prompt before the INVITE, the loop header and Max-Forwards on it, failover to the next target,
//! every target failing (the caller back in the queue, retried later), a 407 answered once with
//! the target's credentials, OPTIONS probing marking targets down and up, the trunk channel
//! limit, a looped call never sent back, the 302 of the redirect method, and a drain.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::rig::{Rig, trunk_offer, trunk_request};
use tongdai::acd::b2bua::Report;
use tongdai::acd::{CallId, Outcome, Output, OverflowReason};
use tongdai::sip::auth::{ClientAnswer, authorization, preferred_challenge};
use tongdai::sip::message::{Message, Method, Request};

const A: &str = "127.0.0.1:5090";
const B: &str = "127.0.0.1:5091";
const S: Duration = Duration::from_secs(1);

/// Two targets; `b` challenges with realm `national`. No agent registers: nobody is on duty.
const TARGETS: &str = r#"
[overflow]
retry_interval = "30s"

[[overflow.targets]]
name = "national-a"
uri = "sip:111@127.0.0.1:5090"

[[overflow.targets]]
name = "national-b"
uri = "sip:111@127.0.0.1:5091"
username = "region-south"
realm = "national"
password = "overflow-test-password"
"#;

/// A rig with the two targets, a 2 s transfer prompt and `edits`/`extra`.
fn rig(edits: &[(&str, &str)], extra: &str) -> Rig {
    let prompts = [("transfer-national", 16_000), ("outside-hours", 16_000)];
    let mut r = Rig::build(edits, &format!("{TARGETS}{extra}"), support::rig::NoMedia, &prompts);
    r.pump();
    r
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn header(r: &Request, name: &str) -> Option<String> {
    r.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn target_sdp() -> String {
    trunk_offer(1, "sendrecv").replace("o=trunk", "o=national")
}

/// Every finished call's outcome reported so far.
fn outcomes(rig: &Rig) -> Vec<Outcome> {
    let each = rig.reports.iter().filter_map(|r| match r {
        Report::Engine(Output::CallFinished { outcome, .. }) => Some(outcome.clone()),
        _ => None,
    });
    each.collect()
}

fn attempts(rig: &Rig) -> Vec<(String, &'static str)> {
    let each = rig.reports.iter().filter_map(|r| match r {
        Report::OverflowAttempt { target, result } => Some((target.clone(), *result)),
        _ => None,
    });
    each.collect()
}

/// Answers every OPTIONS probe sent so far with 200 (targets stay up).
fn answer_probes(rig: &mut Rig) {
    // The probes leave the sent list; everything else stays for the test to look at.
    let (probes, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut rig.sent)
        .into_iter()
        .partition(|(_, m)| matches!(m, Message::Request(r) if r.method == Method::Options));
    rig.sent = rest;
    let probes = probes.into_iter().filter_map(|(f, m)| match m {
        Message::Request(r) => Some((f.remote, r)),
        Message::Response(_) => None,
    });
    for (from, r) in probes {
        rig.receive(from, &support::rig::reply(&from.to_string(), &r, 200, "", ""));
    }
}

#[test]
fn nobody_on_duty_the_caller_hears_the_prompt_then_the_centre_answers_and_bye_crosses() {
    let mut rig = rig(&[], "");
    answer_probes(&mut rig);
    let tag = rig.call_trunk();
    // The "outside hours" prompt plays for 2 s before any INVITE goes out.
    rig.advance(S);
    assert!(rig.sent_to(A, Method::Invite).is_empty(), "INVITE before the prompt ended");
    rig.advance(2 * S);
    let invites = rig.sent_to(A, Method::Invite);
    assert_eq!(invites.len(), 1);
    let invite = &invites[0];
    assert_eq!(invite.uri.as_str(), "sip:111@127.0.0.1:5090");
    assert_eq!(header(invite, "X-Tongdai-Overflow").as_deref(), Some("no_agents"));
    assert_eq!(header(invite, "Max-Forwards").as_deref(), Some("69"));
    assert!(header(invite, "From").unwrap().contains("+84901234567"), "the centre sees the number");
    rig.receive(addr(A), &support::rig::reply(A, invite, 180, "", ""));
    rig.receive(addr(A), &support::rig::reply(A, invite, 200, "", &target_sdp()));
    assert_eq!(rig.sent_to(A, Method::Ack).len(), 1);
    assert!(matches!(
        outcomes(&rig)[..],
        [Outcome::Overflowed { reason: OverflowReason::NoAgents, .. }]
    ));
    assert_eq!(rig.sb.calls(), 1, "the bridged overflow is still a call (drains wait for it)");
    // The caller hangs up: the centre's leg gets a BYE and the call is gone.
    rig.send_trunk(trunk_request("BYE", 2, "bye", Some(&tag), ""));
    assert_eq!(rig.sent_to(A, Method::Bye).len(), 1);
    assert_eq!(rig.sb.calls(), 0);
}

#[test]
fn a_failing_target_hands_over_to_the_next_which_challenges_once() {
    let mut rig = rig(&[], "");
    answer_probes(&mut rig);
    rig.call_trunk();
    rig.advance(3 * S);
    let first = rig.sent_to(A, Method::Invite).remove(0);
    rig.receive(addr(A), &support::rig::reply(A, &first, 503, "", ""));
    let to_b = rig.sent_to(B, Method::Invite).remove(0);
    let challenge = "Proxy-Authenticate: Digest realm=\"national\", nonce=\"n0nce\", qop=\"auth\", \
                     algorithm=MD5\r\n";
    rig.receive(addr(B), &support::rig::reply(B, &to_b, 407, challenge, ""));
    let again = rig.sent_to(B, Method::Invite);
    assert_eq!(again.len(), 1, "one retry with credentials");
    let again = &again[0];
    assert_eq!(again.headers.call_id().unwrap(), to_b.headers.call_id().unwrap());
    assert_eq!(again.headers.cseq().unwrap().seq, 2);
    let auth = header(again, "Proxy-Authorization").expect("credentials");
    // The digest is right for the configured password.
    assert!(auth.contains("username=\"region-south\"") && auth.contains("realm=\"national\""));
    let expected = {
        let text = support::rig::reply(B, &to_b, 407, challenge, "");
        let resp = tongdai::sip::message::parse_datagram(bytes::Bytes::from(text)).unwrap();
        let Message::Response(resp) = resp else { unreachable!() };
        let challenges = resp.headers.proxy_authenticate().unwrap();
        let chosen = preferred_challenge(&challenges).unwrap().clone();
        let cnonce = auth.split("cnonce=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let a = ClientAnswer {
            user: "region-south",
            password: "overflow-test-password",
            method: &Method::Invite,
            uri: "sip:111@127.0.0.1:5091",
            cnonce: &cnonce,
            nc: 1,
        };
        authorization(&chosen, &a).unwrap()
    };
    let response_of = |s: &str| s.split("response=\"").nth(1).unwrap()[..32].to_string();
    assert_eq!(response_of(&auth), response_of(&expected));
    // A second challenge for the same attempt is a failure, not a loop.
    rig.receive(addr(B), &support::rig::reply(B, again, 407, challenge, ""));
    assert!(rig.sent_to(B, Method::Invite).is_empty());
    let results: Vec<&str> = attempts(&rig).iter().map(|a| a.1).collect();
    assert_eq!(results, ["failed", "challenged", "failed"]);
    assert!(outcomes(&rig).is_empty(), "the caller is back in the queue, not dropped");
    assert_eq!(rig.sb.engine().waiting(), 1);
}

#[test]
fn a_target_that_rings_too_long_is_cancelled_and_the_next_one_tried() {
    let mut rig = rig(&[], "");
    answer_probes(&mut rig);
    rig.call_trunk();
    rig.advance(3 * S);
    let first = rig.sent_to(A, Method::Invite).remove(0);
    rig.receive(addr(A), &support::rig::reply(A, &first, 180, "", ""));
    // answer_timeout (30 s after the INVITE, which left when the 2 s prompt ended): the ringing
    // target gets CANCEL, the next one the INVITE.
    rig.advance(28 * S);
    answer_probes(&mut rig);
    assert!(rig.sent_to(B, Method::Invite).is_empty(), "{:?}", attempts(&rig));
    rig.advance(3 * S);
    answer_probes(&mut rig);
    let cancels = rig.sent_to(A, Method::Cancel);
    assert_eq!(cancels.len(), 1, "the ringing target is cancelled");
    assert_eq!(cancels[0].headers.call_id().unwrap(), first.headers.call_id().unwrap());
    assert_eq!(rig.sent_to(B, Method::Invite).len(), 1, "the next target is tried");
    assert_eq!(attempts(&rig).first(), Some(&("national-a".to_string(), "timeout")));
}

#[test]
fn all_targets_failing_return_the_caller_to_the_queue_and_it_is_retried_later() {
    let mut rig = rig(&[], "");
    answer_probes(&mut rig);
    rig.call_trunk();
    rig.advance(3 * S);
    let a = rig.sent_to(A, Method::Invite).remove(0);
    rig.receive(addr(A), &support::rig::reply(A, &a, 486, "", ""));
    let b = rig.sent_to(B, Method::Invite).remove(0);
    rig.receive(addr(B), &support::rig::reply(B, &b, 480, "", ""));
    assert_eq!(rig.sb.engine().waiting(), 1);
    assert!(outcomes(&rig).is_empty());
    // Probes keep both targets up; the next attempt starts after retry_interval (30 s).
    rig.advance(25 * S);
    answer_probes(&mut rig);
    assert!(rig.sent_to(A, Method::Invite).is_empty());
    rig.advance(10 * S);
    answer_probes(&mut rig);
    let retry = rig.sent_to(A, Method::Invite);
    assert_eq!(retry.len(), 1, "tried again after the retry interval");
    rig.receive(addr(A), &support::rig::reply(A, &retry[0], 200, "", &target_sdp()));
    assert!(matches!(outcomes(&rig)[..], [Outcome::Overflowed { .. }]));
}

#[test]
fn unanswered_probes_mark_targets_down_and_callers_stay_queued_until_one_is_up() {
    let mut rig = rig(&[], "");
    // Nobody answers OPTIONS: three failed probes in a row (default) mark each target down.
    rig.advance(200 * S);
    let down: Vec<(String, bool)> = rig
        .reports
        .iter()
        .filter_map(|r| match r {
            Report::OverflowTarget { target, up } => Some((target.clone(), *up)),
            _ => None,
        })
        .collect();
    assert!(down.contains(&("national-a".to_string(), false)), "{down:?}");
    assert!(down.contains(&("national-b".to_string(), false)), "{down:?}");
    assert!(!rig.sb.overflow_available());
    rig.take_sent();
    rig.call_trunk();
    rig.advance(20 * S);
    assert!(rig.sent_to(A, Method::Invite).is_empty());
    assert_eq!(rig.sb.engine().waiting(), 1, "the caller waits in the regional queue");
    // Target a answers two probes (up_after = 2): the waiting caller is handed over.
    for _ in 0..2 {
        rig.advance(30 * S);
        answer_probes(&mut rig);
    }
    assert!(rig.sb.overflow_available());
    rig.advance(3 * S);
    assert_eq!(rig.sent_to(A, Method::Invite).len(), 1);
}

#[test]
fn a_call_that_arrives_overflowed_is_never_sent_back() {
    let mut rig = rig(&[], "");
    answer_probes(&mut rig);
    let invite = trunk_request("INVITE", 1, "inv", None, &trunk_offer(1, "sendrecv"))
        .replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nX-Tongdai-Overflow: max_wait\r\n");
    rig.send_trunk(invite);
    let ok = rig.final_response(200);
    let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
    rig.send_trunk(trunk_request("ACK", 1, "ack", Some(&tag), ""));
    rig.advance(120 * S);
    answer_probes(&mut rig);
    assert!(rig.sent_to(A, Method::Invite).is_empty());
    assert_eq!(rig.sb.engine().waiting(), 1);
}

#[test]
fn the_trunk_channel_limit_counts_the_overflow_leg_and_prefers_a_redirect() {
    // Two channels: the first caller and its overflow leg fill them.
    let mut rig = rig(&[("numbers = [\"111\"]", "numbers = [\"111\"]\nchannels = 2")], "");
    answer_probes(&mut rig);
    rig.call_trunk();
    rig.advance(3 * S);
    let invite = rig.sent_to(A, Method::Invite).remove(0);
    rig.receive(addr(A), &support::rig::reply(A, &invite, 200, "", &target_sdp()));
    let call = |n: u32| {
        trunk_request("INVITE", 1, &format!("inv{n}"), None, &trunk_offer(1, "sendrecv"))
            .replace("sb-1@trunk", &format!("sb-{n}@trunk"))
    };
    // Nobody on duty: the next caller would be overflowed; a 302 takes no channel.
    rig.send_trunk(call(2));
    rig.final_response(302);
    // With an agent on duty the next caller would queue, which needs a channel: 486.
    rig.register("op1", "op1-test-password", addr("127.0.0.1:5080"), "127.0.0.1:5080");
    rig.send_trunk(call(3));
    rig.final_response(486);
    assert!(rig.reports.contains(&Report::Refused { reason: "trunk_channels" }));
}

#[test]
fn redirect_sends_302_with_the_targets_while_the_trunk_leg_is_unanswered() {
    let mut rig = Rig::build(
        &[],
        &TARGETS.replace("[overflow]\n", "[overflow]\nmethod = \"redirect\"\n"),
        support::rig::NoMedia,
        &[],
    );
    rig.pump();
    answer_probes(&mut rig);
    rig.send_trunk(trunk_request("INVITE", 1, "inv", None, &trunk_offer(1, "sendrecv")));
    let moved = rig.final_response(302);
    let contacts: Vec<String> = moved
        .headers
        .iter()
        .filter(|h| h.name.is("Contact"))
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        .collect();
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert!(contacts[0].starts_with("<sip:111@127.0.0.1:5090>"));
    assert!(contacts[1].starts_with("<sip:111@127.0.0.1:5091>"));
    assert!(matches!(
        outcomes(&rig)[..],
        [Outcome::Overflowed { reason: OverflowReason::NoAgents, .. }]
    ));
    assert_eq!(rig.sb.calls(), 0);
}

#[test]
fn a_drain_overflows_the_waiting_caller() {
    // An agent is on duty (registered), busy elsewhere is not needed: the caller simply waits.
    let mut rig = rig(&[], "");
    answer_probes(&mut rig);
    rig.register("op1", "op1-test-password", addr("127.0.0.1:5080"), "127.0.0.1:5080");
    rig.call_trunk();
    rig.advance(3 * S);
    // op1 is rung; the drain hands the caller over anyway (their ring is cancelled).
    rig.sb.drain(rig.now, &mut rig.ep, &mut rig.media);
    rig.pump();
    rig.advance(3 * S);
    let invite = rig.sent_to(A, Method::Invite);
    assert_eq!(invite.len(), 1);
    assert_eq!(header(&invite[0], "X-Tongdai-Overflow").as_deref(), Some("draining"));
}

/// Issue 12 §3: the national centre goes down in the middle of a hand-over — each target takes
/// the INVITE (100/180) and then falls silent, answering neither the INVITE nor the OPTIONS
/// probes. The caller is never left alone: each ringing target is cancelled at `answer_timeout`,
/// the caller goes back to the regional queue (hearing hold audio, still connected, no BYE), and
/// the first agent to log in is rung and takes the call.
#[test]
fn the_national_centre_going_down_mid_transfer_leaves_the_caller_queued_for_the_next_agent() {
    let mut rig = rig(&[], "");
    answer_probes(&mut rig);
    let tag = rig.call_trunk();
    rig.advance(3 * S);
    let a = rig.sent_to(A, Method::Invite).remove(0);
    rig.receive(addr(A), &support::rig::reply(A, &a, 180, "", ""));
    // From here the centre is down: no final answer, no probe answered.
    rig.advance(31 * S);
    let b = rig.sent_to(B, Method::Invite);
    assert_eq!(b.len(), 1, "the second target is tried: {:?}", attempts(&rig));
    rig.receive(addr(B), &support::rig::reply(B, &b[0], 180, "", ""));
    rig.advance(31 * S);
    assert_eq!(rig.sent_to(A, Method::Cancel).len(), 1);
    assert_eq!(rig.sent_to(B, Method::Cancel).len(), 1);
    let results: Vec<&str> = attempts(&rig).iter().map(|a| a.1).collect();
    assert_eq!(results, ["timeout", "timeout"]);
    assert!(outcomes(&rig).is_empty(), "not finished: the caller is still on the line");
    assert_eq!(rig.sb.engine().waiting(), 1, "back in the regional queue");
    assert!(rig.sent_to(support::rig::TRUNK, Method::Bye).is_empty(), "the caller is not hung up");

    // An operator logs in: the waiting caller is rung to them and answered.
    let agent = "127.0.0.1:5080";
    assert_eq!(rig.register("op1", "op1-test-password", addr(agent), agent), 200);
    rig.advance(S);
    let ring = rig.sent_to(agent, Method::Invite);
    assert_eq!(ring.len(), 1, "the caller is offered to the agent");
    rig.receive(addr(agent), &support::rig::reply(agent, &ring[0], 200, "", &target_sdp()));
    assert_eq!(rig.state("op1"), Some(tongdai::acd::AgentState::OnCall { call: CallId(1) }));
    rig.send_trunk(trunk_request("BYE", 2, "bye", Some(&tag), ""));
    assert!(matches!(outcomes(&rig)[..], [Outcome::Answered { .. }]), "{:?}", outcomes(&rig));
}

/// Issue 12 §3, the centre dying after it answered: its leg's media stops (no BYE ever comes).
/// The dead-leg timer ends the bridged call on both sides — the caller gets a BYE rather than
/// an open line with nobody on it — and the call is gone.
#[test]
fn the_national_centre_dying_after_it_answered_hangs_up_the_caller_rather_than_leave_silence() {
    use tongdai::acd::b2bua::{MediaEvent, MediaLeg};
    let mut rig = rig(&[], "");
    answer_probes(&mut rig);
    rig.call_trunk();
    rig.advance(3 * S);
    let invite = rig.sent_to(A, Method::Invite).remove(0);
    rig.receive(addr(A), &support::rig::reply(A, &invite, 200, "", &target_sdp()));
    assert_eq!(rig.sb.calls(), 1);
    let now = rig.now;
    let dead = MediaEvent::LegDead { call: CallId(1), leg: MediaLeg::Agent };
    rig.sb.media_event(now, dead, &mut rig.ep, &mut rig.media);
    rig.pump();
    assert_eq!(rig.sent_to(support::rig::TRUNK, Method::Bye).len(), 1, "the caller is hung up");
    assert_eq!(rig.sent_to(A, Method::Bye).len(), 1, "the centre's leg too");
    assert_eq!(rig.sb.calls(), 0);
    assert!(rig.reports.contains(&Report::LegDead { leg: MediaLeg::Agent }));
}
