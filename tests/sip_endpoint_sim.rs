//! The SIP endpoint (UA core) in the network simulator: a trunk calling through lossy, duplicating,
//! reordering UDP links; our 2xx retransmitted until the ACK or 64·T1; BYE and OPTIONS
//! retransmissions answered from their transactions; our INVITEs to an agent, the CANCEL rules of
//! RFC 3261 §9.1 and a 2xx crossing a CANCEL (RFC 5407). Virtual time, seeded faults: every run is
//! the same, and lossy scenarios are checked over many seeds.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use support::sim::peers::{Agent, Pinger, TrunkCaller};
use support::sim::{Link, Sim, T1, T2};
use tongdai::sip::endpoint::{Endpoint, EndpointConfig, UaEvent};
use tongdai::sip::message::Uri;
use tongdai::sip::transaction::timer::TimerValues;

const US: &str = "127.0.0.1:5060";
const TRUNK: &str = "127.0.0.1:5070";
const AGENT: &str = "127.0.0.2:5062";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn endpoint() -> Endpoint {
    let config = EndpointConfig {
        timers: TimerValues::default(),
        trunk_allow: vec!["127.0.0.1/32".parse().unwrap()],
        numbers: vec!["111".to_string()],
        user_agent: "tongdai-test".to_string(),
        retry_after: Duration::from_secs(30),
        force_rport: true,
    };
    Endpoint::new(config, 42)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// 20 % loss, 10 % duplicates, up to 300 ms of jitter (enough to reorder retransmissions).
fn bad_link() -> Link {
    Link::lossy(0.2, 0.1, Duration::from_millis(300))
}

fn is_ack(bytes: &[u8]) -> bool {
    bytes.starts_with(b"ACK ")
}

/// The RFC 3261 retransmission schedule from `start`: T1, 2·T1, … capped at T2, before `end`.
fn schedule(start: Duration, end: Duration) -> Vec<Duration> {
    let (mut at, mut interval, mut out) = (start, T1, vec![]);
    while at < end {
        out.push(at);
        at += interval;
        interval = (interval * 2).min(T2);
    }
    out
}

/// A sim with a trunk caller whose call the call logic answers at once.
fn trunk_call(seed: u64, up: Link, down: Link, bye_after: Option<Duration>) -> (Sim, usize) {
    let mut sim = Sim::new(endpoint(), addr(US), seed);
    let mut caller = TrunkCaller::new(addr(TRUNK), addr(US), &format!("call{seed}"));
    caller.bye_after = bye_after;
    let i = sim.add_peer(caller, up, down);
    sim.on_event(|ep, now, e| {
        if let UaEvent::IncomingCall { txn, .. } = e {
            ep.answer(now, *txn, Bytes::new()).unwrap();
        }
    });
    (sim, i)
}

fn count(sim: &Sim, pick: impl Fn(&UaEvent) -> bool) -> usize {
    sim.events_where(pick).len()
}

#[test]
fn trunk_call_over_a_lossy_link_makes_one_call_and_one_dialog() {
    let mut interesting = 0;
    for seed in 0..300 {
        let (mut sim, i) = trunk_call(seed, bad_link(), bad_link(), None);
        sim.run_until(secs(40.0));
        let caller: &TrunkCaller = sim.peer(i);
        let trace = sim.dump();
        let invites_in =
            sim.sent_to_endpoint("INVITE").iter().filter(|s| !s.arrivals.is_empty()).count();
        if invites_in == 0 {
            // Every copy lost (possible at 20 %): nothing may have happened.
            assert!(sim.events.is_empty(), "seed {seed}\n{trace}");
            continue;
        }
        // Timer A: the INVITE went out at 0, T1, 3·T1 … until the first response arrived.
        let first_response = caller.responses.first().map(|r| r.2).unwrap_or(secs(32.0));
        let expected: Vec<Duration> = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
            .into_iter()
            .map(secs)
            .filter(|t| *t <= first_response)
            .collect();
        assert_eq!(caller.invites_sent, expected, "seed {seed}\n{trace}");
        if caller.invites_sent.len() > 1 {
            interesting += 1;
        }

        // One call, one dialog, however many copies of the INVITE arrived.
        assert_eq!(
            count(&sim, |e| matches!(e, UaEvent::IncomingCall { .. })),
            1,
            "seed {seed}\n{trace}"
        );
        let answered_at = sim.events[0].0;
        assert_eq!(sim.endpoint.dialog_count(), 1, "seed {seed}\n{trace}");

        // Every copy of the INVITE that reached us was answered (100, then the 200).
        let invite_arrivals =
            sim.sent_to_endpoint("INVITE").iter().map(|s| s.arrivals.len()).sum::<usize>();
        let invite_answers = sim
            .trace
            .iter()
            .filter(|s| s.from == addr(US) && s.cseq_method == "INVITE")
            .filter(|s| s.line.starts_with("SIP/2.0 100") || s.line.starts_with("SIP/2.0 200"))
            .count();
        assert!(invite_answers >= invite_arrivals, "seed {seed}\n{trace}");

        // Our 2xx: retransmitted T1, 2·T1 … T2 after the answer, until the first ACK arrived (or
        // 64·T1). Extra copies answer INVITE retransmissions.
        let first_ack = sim.sent_to_endpoint("ACK").iter().flat_map(|s| s.arrivals.clone()).min();
        let end = first_ack.unwrap_or(answered_at + T1 * 64);
        let timer_sends: Vec<Duration> = sim
            .sent_by_endpoint("SIP/2.0 200")
            .iter()
            .filter(|s| s.cseq_method == "INVITE")
            .map(|s| s.at)
            .filter(|at| *at == answered_at || !invite_arrival_at(&sim, *at))
            .collect();
        assert_eq!(timer_sends, schedule(answered_at, end), "seed {seed}\n{trace}");

        // The trunk ACKed every 2xx it got; the call is confirmed once, or timed out if no ACK
        // ever arrived.
        assert_eq!(
            caller.acks_sent.len(),
            caller.statuses("INVITE").iter().filter(|s| **s == 200).count()
        );
        let timeouts = sim.events_where(|e| matches!(e, UaEvent::AckTimeout { .. }));
        match first_ack {
            Some(_) => assert!(timeouts.is_empty(), "seed {seed}\n{trace}"),
            None => {
                assert_eq!(timeouts.len(), 1, "seed {seed}\n{trace}");
                assert_eq!(timeouts[0].0, answered_at + T1 * 64, "seed {seed}\n{trace}");
            }
        }
    }
    // The seeds must exercise retransmission, or the test proves little.
    assert!(interesting > 50, "only {interesting} seeds lost an INVITE");
}

fn invite_arrival_at(sim: &Sim, at: Duration) -> bool {
    sim.sent_to_endpoint("INVITE").iter().any(|s| s.arrivals.contains(&at))
}

#[test]
fn answered_call_whose_acks_are_all_lost_times_out_after_64_t1() {
    let (mut sim, i) = trunk_call(1, Link::perfect().blocking(is_ack), Link::perfect(), None);
    let mut bye = None;
    sim.run_until(secs(1.0));
    assert_eq!(sim.endpoint.dialog_count(), 1);
    sim.run_until(secs(40.0));
    let answered_at = secs(0.010);
    let sends: Vec<Duration> = sim.sent_by_endpoint("SIP/2.0 200").iter().map(|s| s.at).collect();
    let expected = schedule(answered_at, answered_at + T1 * 64);
    assert_eq!(sends, expected, "{}", sim.dump());
    assert_eq!(sends.len(), 11);
    let caller: &TrunkCaller = sim.peer(i);
    assert_eq!(caller.acks_sent.len(), 11, "one ACK per 2xx received");
    let timeouts = sim.events_where(|e| matches!(e, UaEvent::AckTimeout { .. }));
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].0, answered_at + T1 * 64);
    if let (_, UaEvent::AckTimeout { dialog }) = &timeouts[0] {
        bye = Some(dialog.clone());
    }
    assert!(count(&sim, |e| matches!(e, UaEvent::Confirmed { .. })) == 0);
    // The call logic hangs up the dead dialog.
    let now = sim.instant();
    assert!(sim.endpoint.bye(now, &bye.unwrap()).is_some());
    sim.pump();
    assert_eq!(sim.endpoint.dialog_count(), 0);
    assert_eq!(sim.sent_by_endpoint("BYE ").len(), 1);
}

#[test]
fn bye_over_a_lossy_link_is_answered_by_its_transaction_and_reported_once() {
    let mut retransmitted = 0;
    for seed in 0..300 {
        let (mut sim, i) = trunk_call(seed, Link::perfect(), Link::perfect(), Some(secs(1.0)));
        sim.run_until(secs(0.9));
        assert_eq!(sim.endpoint.dialog_count(), 1);
        // From now on the link is bad both ways (the set-up ran on a clean one).
        sim.set_links(i, bad_link(), bad_link());
        sim.run_until(secs(45.0));
        let trace = sim.dump();
        let caller: &TrunkCaller = sim.peer(i);
        let bye = caller.bye.as_ref().expect("BYE sent");
        let byes_in: usize = sim.sent_to_endpoint("BYE").iter().map(|s| s.arrivals.len()).sum();
        let oks: Vec<_> = sim
            .sent_by_endpoint("SIP/2.0 200")
            .into_iter()
            .filter(|s| s.cseq_method == "BYE")
            .collect();
        // Each copy that arrived got the same 200, from the transaction.
        assert_eq!(oks.len(), byes_in, "seed {seed}\n{trace}");
        assert!(oks.windows(2).all(|w| w[0].bytes == w[1].bytes), "seed {seed}\n{trace}");
        assert!(sim.sent_by_endpoint("SIP/2.0 481").is_empty(), "seed {seed}\n{trace}");
        if byes_in == 0 {
            assert_eq!(count(&sim, |e| matches!(e, UaEvent::Bye { .. })), 0);
            assert_eq!(sim.endpoint.dialog_count(), 1);
            continue;
        }
        assert_eq!(count(&sim, |e| matches!(e, UaEvent::Bye { .. })), 1, "seed {seed}\n{trace}");
        assert_eq!(sim.endpoint.dialog_count(), 0, "seed {seed}\n{trace}");
        // The caller retransmitted per Timer E until its first 200 arrived.
        let done = bye.finals.first().map(|f| f.1).unwrap_or(secs(1.01) + T1 * 64);
        let expected: Vec<Duration> =
            schedule(bye.sent[0], done).into_iter().filter(|t| *t <= done).collect();
        assert_eq!(bye.sent, expected, "seed {seed}\n{trace}");
        if bye.sent.len() > 1 {
            retransmitted += 1;
        }
    }
    assert!(retransmitted > 50, "only {retransmitted} seeds retransmitted the BYE");
}

#[test]
fn options_retransmissions_are_answered_from_the_transaction() {
    let mut retransmitted = 0;
    for seed in 0..200 {
        let mut sim = Sim::new(endpoint(), addr(US), seed);
        let i = sim.add_peer(Pinger::new(addr(TRUNK), addr(US)), bad_link(), bad_link());
        sim.run_until(secs(40.0));
        let trace = sim.dump();
        let stats = sim.endpoint.take_stats();
        let pinger: &Pinger = sim.peer(i);
        let txn = pinger.txn.as_ref().unwrap();
        let arrivals: usize =
            sim.sent_to_endpoint("OPTIONS").iter().map(|s| s.arrivals.len()).sum();
        let oks = sim.sent_by_endpoint("SIP/2.0 200");
        assert_eq!(oks.len(), arrivals, "seed {seed}\n{trace}");
        assert!(oks.windows(2).all(|w| w[0].bytes == w[1].bytes), "seed {seed}\n{trace}");
        assert!(sim.events.is_empty());
        assert_eq!(stats.requests_in as usize, arrivals);
        assert_eq!(stats.responses_out as usize, arrivals);
        let done = txn.finals.first().map(|f| f.1).unwrap_or(T1 * 64);
        assert_eq!(txn.sent, schedule(Duration::ZERO, done), "seed {seed}\n{trace}");
        if txn.sent.len() > 1 {
            retransmitted += 1;
        }
    }
    assert!(retransmitted > 50);
}

// ---- our INVITEs (UAC) --------------------------------------------------------------------------

fn agent_uri() -> Uri {
    Uri::parse(&format!("sip:agent@{AGENT}")).unwrap()
}

/// A sim with an agent; the endpoint INVITEs it at time 0. Returns the sim, the agent's index and
/// the INVITE's transaction.
fn call_agent(
    seed: u64,
    agent: Agent,
    up: Link,
    down: Link,
) -> (Sim, usize, tongdai::sip::transaction::TxnId) {
    let mut sim = Sim::new(endpoint(), addr(US), seed);
    let i = sim.add_peer(agent, up, down);
    let flow = sim.flow(addr(AGENT));
    let now = sim.instant();
    let txn = sim
        .endpoint
        .invite(now, flow, agent_uri(), "<sip:111@127.0.0.1>", Bytes::from_static(b"v=0\r\n"), &[])
        .unwrap();
    sim.pump();
    (sim, i, txn)
}

#[test]
fn our_invite_over_a_lossy_link_acks_every_2xx() {
    let mut retransmitted_2xx = 0;
    for seed in 0..300 {
        let agent = Agent::new(addr(AGENT), Some(secs(2.0)));
        let (mut sim, i, txn) = call_agent(seed, agent, bad_link(), bad_link());
        sim.run_until(secs(60.0));
        let trace = sim.dump();
        let agent: &Agent = sim.peer(i);
        let invites = sim.sent_by_endpoint("INVITE");
        if agent.received("INVITE").is_empty() {
            // Timer A ran to Timer B: INVITE at 0, 0.5, 1.5 … 31.5, then Timeout.
            assert_eq!(
                invites.iter().map(|s| s.at).collect::<Vec<_>>(),
                [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5].map(secs).to_vec(),
                "seed {seed}\n{trace}"
            );
            assert_eq!(count(&sim, |e| matches!(e, UaEvent::Timeout { .. })), 1);
            continue;
        }
        // Every 2xx that reached us was ACKed, one ACK each (§13.2.2.4).
        let oks_in: usize =
            sim.sent_to_endpoint("SIP/2.0 200").iter().map(|s| s.arrivals.len()).sum();
        let acks = sim.sent_by_endpoint("ACK ");
        assert_eq!(acks.len(), oks_in, "seed {seed}\n{trace}");
        if oks_in == 0 {
            continue;
        }
        if oks_in > 1 {
            retransmitted_2xx += 1;
        }
        // The ACKs all name the agent's Contact and one CSeq.
        assert!(acks.iter().all(|a| a.line == "ACK sip:agent@127.0.0.2:5062 SIP/2.0"), "{trace}");
        // The call logic learns of the dialog.
        let answers = sim.events_where(|e| {
            matches!(e, UaEvent::Response { txn: t, response, dialog: Some(_) }
                if *t == txn && response.status == 200)
        });
        assert_eq!(answers.len(), 1, "seed {seed}: one answer, however many copies\n{trace}");
        assert_eq!(sim.endpoint.dialog_count(), 1, "seed {seed}\n{trace}");
        // The agent stopped retransmitting once an ACK arrived.
        let first_ack = acks.iter().flat_map(|a| a.arrivals.clone()).min();
        if let Some(first_ack) = first_ack {
            assert!(
                sim.sent_to_endpoint("SIP/2.0 200").iter().all(|s| s.at <= first_ack),
                "seed {seed}\n{trace}"
            );
        }
    }
    assert!(retransmitted_2xx > 50, "only {retransmitted_2xx} seeds saw a 2xx twice");
}

/// Every copy of the agent's 2xx (a network duplicate, or a retransmission before our ACK arrives)
/// is ACKed, but the call logic hears of the answer once: the switchboard took a second report for
/// "a 2xx for a leg nobody wants any more" and BYEd the agent of a live call (fixed in 6c9e4de).
#[test]
fn one_response_event_per_2xx_of_our_invite() {
    let agent = Agent::new(addr(AGENT), Some(secs(1.0)));
    let (mut sim, _, txn) =
        call_agent(3, agent, Link::lossy(0.0, 1.0, Duration::ZERO), Link::perfect());
    sim.run_until(secs(40.0));
    let oks_in: usize = sim.sent_to_endpoint("SIP/2.0 200").iter().map(|s| s.arrivals.len()).sum();
    assert_eq!(oks_in, 2);
    assert_eq!(sim.sent_by_endpoint("ACK ").len(), 2, "each copy of the 2xx is ACKed");
    let answers = sim.events_where(|e| {
        matches!(e, UaEvent::Response { txn: t, response, .. } if *t == txn && response.status == 200)
    });
    assert_eq!(answers.len(), 1, "one answer reported more than once\n{}", sim.dump());
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut agent = Agent::new(addr(AGENT), None);
    agent.ring_after = Some(secs(2.0));
    let (mut sim, i, txn) = call_agent(1, agent, Link::perfect(), Link::perfect());
    sim.run_until(secs(0.1));
    let now = sim.instant();
    sim.endpoint.cancel(now, txn);
    sim.pump();
    // §9.1: no provisional yet, so no CANCEL yet.
    sim.run_until(secs(2.0));
    assert!(sim.sent_by_endpoint("CANCEL").is_empty(), "{}", sim.dump());
    sim.run_until(secs(40.0));
    let trace = sim.dump();
    // The INVITE reached the agent at 0.01; its 180 left at 2.01 and arrived at 2.02: the CANCEL
    // went at once, once.
    let cancels = sim.sent_by_endpoint("CANCEL");
    assert_eq!(cancels.iter().map(|s| s.at).collect::<Vec<_>>(), vec![secs(2.02)], "{trace}");
    let agent: &Agent = sim.peer(i);
    assert_eq!(agent.received("CANCEL").len(), 1);
    // The agent's 487 was ACKed by the INVITE transaction, and reported.
    assert_eq!(sim.sent_by_endpoint("ACK ").len(), 1, "{trace}");
    let finals = sim.events_where(
        |e| matches!(e, UaEvent::Response { response, .. } if response.status >= 200),
    );
    assert_eq!(finals.len(), 2, "200 to the CANCEL and 487 to the INVITE\n{trace}");
    assert!(sim.events_where(|e| matches!(e, UaEvent::Response { txn: t, response, .. } if *t == txn && response.status == 487)).len() == 1);
    // The INVITE retransmissions stopped with the 180 (§17.1.1.2): 0, 0.5, 1.5.
    assert_eq!(
        sim.sent_by_endpoint("INVITE").iter().map(|s| s.at).collect::<Vec<_>>(),
        [0.0, 0.5, 1.5].map(secs).to_vec()
    );
    assert_eq!(sim.endpoint.dialog_count(), 0);
}

#[test]
fn cancel_with_no_provisional_ever_sends_no_cancel_and_times_out() {
    let mut agent = Agent::new(addr(AGENT), None);
    agent.ring_after = None;
    let (mut sim, _, txn) = call_agent(1, agent, Link::perfect(), Link::perfect());
    sim.run_until(secs(0.1));
    let now = sim.instant();
    sim.endpoint.cancel(now, txn);
    sim.pump();
    sim.run_until(secs(40.0));
    assert!(sim.sent_by_endpoint("CANCEL").is_empty(), "{}", sim.dump());
    let timeouts = sim.events_where(|e| matches!(e, UaEvent::Timeout { txn: t } if *t == txn));
    assert_eq!(timeouts.iter().map(|t| t.0).collect::<Vec<_>>(), vec![T1 * 64], "Timer B");
}

#[test]
fn a_2xx_crossing_our_cancel_is_acked_and_reported_so_the_call_can_be_hung_up() {
    let agent = Agent::new(addr(AGENT), Some(secs(1.0)));
    let (mut sim, i, txn) = call_agent(1, agent, Link::perfect(), Link::perfect());
    // The agent sends 200 at 1.0; it arrives at 1.01. We cancel at 1.005: the two cross.
    sim.run_until(secs(1.005));
    let now = sim.instant();
    sim.endpoint.cancel(now, txn);
    sim.pump();
    assert_eq!(sim.sent_by_endpoint("CANCEL").len(), 1);
    sim.run_until(secs(1.02));
    let trace = sim.dump();
    let answers = sim.events_where(|e| {
        matches!(e, UaEvent::Response { txn: t, response, dialog: Some(_) }
            if *t == txn && response.status == 200)
    });
    assert_eq!(answers.len(), 1, "{trace}");
    assert_eq!(sim.sent_by_endpoint("ACK ").len(), 1, "{trace}");
    let UaEvent::Response { dialog: Some(dialog), .. } = &answers[0].1 else { unreachable!() };
    // The call logic hangs up what it no longer wants.
    let now = sim.instant();
    sim.endpoint.bye(now, dialog).unwrap();
    sim.pump();
    sim.run_until(secs(40.0));
    let trace = sim.dump();
    let agent: &Agent = sim.peer(i);
    assert_eq!(agent.received("CANCEL").len(), 1);
    assert_eq!(agent.received("BYE").len(), 1);
    assert_eq!(agent.received("ACK").len(), 1);
    // The agent answered the CANCEL with 200 and never sent 487; its 200 was never retransmitted.
    assert!(!agent.responses.iter().any(|r| r.0 == 487), "{trace}");
    assert_eq!(
        sim.sent_to_endpoint("SIP/2.0 200").iter().filter(|s| s.cseq_method == "INVITE").count(),
        1
    );
    assert_eq!(sim.endpoint.dialog_count(), 0);
    assert!(sim.events.iter().all(|(_, e)| !matches!(e, UaEvent::Timeout { .. })), "{trace}");
}

// ---- more timer paths and races -----------------------------------------------------------------

#[test]
fn trunk_cancel_over_a_lossy_link_is_answered_and_the_487_retransmitted_until_acked() {
    let mut interesting = 0;
    for seed in 0..300 {
        let mut sim = Sim::new(endpoint(), addr(US), seed);
        let mut caller = TrunkCaller::new(addr(TRUNK), addr(US), &format!("cancel{seed}"));
        caller.cancel_at = Some(secs(2.0));
        let i = sim.add_peer(caller, bad_link(), bad_link());
        // The call logic only rings (the caller hangs up before an agent answers).
        sim.on_event(|ep, now, e| {
            if let UaEvent::IncomingCall { txn, .. } = e {
                ep.provisional(now, *txn, 180, None);
            }
        });
        sim.run_until(secs(60.0));
        let trace = sim.dump();
        let caller: &TrunkCaller = sim.peer(i);
        let Some(cancel) = caller.cancel.as_ref() else {
            // No provisional ever reached the caller: it may not CANCEL (§9.1).
            assert!(sim.sent_to_endpoint("CANCEL").is_empty());
            continue;
        };
        let cancel_arrivals: Vec<Duration> =
            sim.sent_to_endpoint("CANCEL").iter().flat_map(|s| s.arrivals.clone()).collect();
        let oks: Vec<_> = sim
            .sent_by_endpoint("SIP/2.0 200")
            .into_iter()
            .filter(|s| s.cseq_method == "CANCEL")
            .collect();
        // Each CANCEL copy got the same 200, from the CANCEL's transaction.
        assert_eq!(oks.len(), cancel_arrivals.len(), "seed {seed}\n{trace}");
        assert!(oks.windows(2).all(|w| w[0].bytes == w[1].bytes), "seed {seed}\n{trace}");
        assert!(sim.sent_by_endpoint("SIP/2.0 481").is_empty(), "seed {seed}\n{trace}");
        // The caller stopped retransmitting at the first 200.
        let done = cancel.finals.first().map(|f| f.1).unwrap_or(cancel.sent[0] + T1 * 64);
        assert_eq!(cancel.sent, schedule(cancel.sent[0], done), "seed {seed}\n{trace}");
        if cancel_arrivals.is_empty() {
            continue;
        }
        assert_eq!(
            count(&sim, |e| matches!(e, UaEvent::CallCancelled { .. })),
            1,
            "seed {seed}\n{trace}"
        );
        // 487 at the first CANCEL, then Timer G until the ACK arrived (or Timer H).
        let first_cancel = cancel_arrivals.iter().min().copied().unwrap();
        let first_ack = sim.sent_to_endpoint("ACK").iter().flat_map(|s| s.arrivals.clone()).min();
        let end = first_ack.unwrap_or(first_cancel + T1 * 64);
        let invite_arrivals: Vec<Duration> =
            sim.sent_to_endpoint("INVITE").iter().flat_map(|s| s.arrivals.clone()).collect();
        let timer_487s: Vec<Duration> = sim
            .sent_by_endpoint("SIP/2.0 487")
            .iter()
            .map(|s| s.at)
            .filter(|at| *at == first_cancel || !invite_arrivals.contains(at))
            .collect();
        assert_eq!(timer_487s, schedule(first_cancel, end), "seed {seed}\n{trace}");
        if timer_487s.len() > 1 {
            interesting += 1;
        }
        // The caller ACKed each 487 it got; no dialog was made.
        let got_487 = caller.statuses("INVITE").iter().filter(|s| **s == 487).count();
        assert_eq!(caller.acks_sent.len(), got_487, "seed {seed}\n{trace}");
        assert_eq!(sim.endpoint.dialog_count(), 0);
    }
    assert!(interesting > 30, "only {interesting} seeds retransmitted the 487");
}

#[test]
fn a_cancel_crossing_our_2xx_gets_200_and_the_call_goes_on() {
    let mut sim = Sim::new(endpoint(), addr(US), 1);
    let mut caller = TrunkCaller::new(addr(TRUNK), addr(US), "cross");
    // Our 200 leaves at 1.0 and arrives at 1.01; the caller's CANCEL leaves at 1.005.
    caller.cancel_at = Some(secs(1.005));
    let i = sim.add_peer(caller, Link::perfect(), Link::perfect());
    sim.on_event(|ep, now, e| {
        if let UaEvent::IncomingCall { txn, .. } = e {
            ep.provisional(now, *txn, 180, None);
        }
    });
    sim.run_until(secs(1.0));
    let txn = match &sim.events[0].1 {
        UaEvent::IncomingCall { txn, .. } => *txn,
        other => panic!("{other:?}"),
    };
    let now = sim.instant();
    sim.endpoint.answer(now, txn, Bytes::new()).unwrap();
    sim.pump();
    sim.run_until(secs(40.0));
    let trace = sim.dump();
    let caller: &TrunkCaller = sim.peer(i);
    assert_eq!(caller.cancel.as_ref().unwrap().finals, vec![(200, secs(1.025))], "{trace}");
    assert!(sim.sent_by_endpoint("SIP/2.0 487").is_empty(), "{trace}");
    assert_eq!(count(&sim, |e| matches!(e, UaEvent::CallCancelled { .. })), 0, "{trace}");
    assert!(count(&sim, |e| matches!(e, UaEvent::Confirmed { .. })) >= 1, "{trace}");
    assert_eq!(count(&sim, |e| matches!(e, UaEvent::AckTimeout { .. })), 0, "{trace}");
    assert_eq!(sim.endpoint.dialog_count(), 1, "the call goes on; the caller will BYE");
}

#[test]
fn a_bye_before_the_ack_stops_our_2xx_and_no_ack_timeout_follows() {
    // Every ACK is lost; the caller hangs up 2 s after it got our 200.
    let (mut sim, _) =
        trunk_call(1, Link::perfect().blocking(is_ack), Link::perfect(), Some(secs(2.0)));
    sim.run_until(secs(60.0));
    let trace = sim.dump();
    let bye_at = sim.sent_to_endpoint("BYE")[0].arrivals[0];
    assert_eq!(bye_at, secs(2.03), "{trace}");
    let late_2xx = sim
        .sent_by_endpoint("SIP/2.0 200")
        .iter()
        .filter(|s| s.cseq_method == "INVITE" && s.at > bye_at)
        .count();
    assert_eq!(late_2xx, 0, "2xx retransmitted after the dialog ended\n{trace}");
    assert_eq!(count(&sim, |e| matches!(e, UaEvent::Bye { .. })), 1, "{trace}");
    assert_eq!(count(&sim, |e| matches!(e, UaEvent::AckTimeout { .. })), 0, "{trace}");
    assert_eq!(sim.endpoint.dialog_count(), 0);
}

#[test]
fn every_2xx_retransmission_of_the_agent_is_acked_even_after_our_transaction_ended() {
    // Our ACKs never reach the agent, so it retransmits its 200 for 64·T1; our INVITE transaction
    // ends meanwhile (Timer M), and the later copies are matched through the dialog.
    let agent = Agent::new(addr(AGENT), Some(secs(1.0)));
    let (mut sim, i, _) = call_agent(1, agent, Link::perfect(), Link::perfect().blocking(is_ack));
    sim.run_until(secs(60.0));
    let trace = sim.dump();
    let oks: Vec<Duration> =
        sim.sent_to_endpoint("SIP/2.0 200").iter().flat_map(|s| s.arrivals.clone()).collect();
    let answer = secs(1.01);
    let expected: Vec<Duration> =
        schedule(answer, answer + T1 * 64).into_iter().map(|t| t + secs(0.01)).collect();
    assert_eq!(oks, expected, "{trace}");
    let acks: Vec<Duration> = sim.sent_by_endpoint("ACK ").iter().map(|s| s.at).collect();
    assert_eq!(acks, oks, "one ACK per 2xx, at once\n{trace}");
    let agent: &Agent = sim.peer(i);
    assert!(agent.received("ACK").is_empty());
    assert_eq!(sim.endpoint.dialog_count(), 1);
}

#[test]
fn our_bye_over_a_lossy_link_follows_timer_e_and_reports_one_final() {
    let mut retransmitted = 0;
    for seed in 0..300 {
        let agent = Agent::new(addr(AGENT), Some(secs(1.0)));
        let (mut sim, i, txn) = call_agent(seed, agent, Link::perfect(), Link::perfect());
        sim.run_until(secs(2.0));
        let dialog = sim
            .events
            .iter()
            .find_map(|(_, e)| match e {
                UaEvent::Response { txn: t, dialog: Some(d), .. } if *t == txn => Some(d.clone()),
                _ => None,
            })
            .expect("answered");
        sim.set_links(i, bad_link(), bad_link());
        let now = sim.instant();
        let bye = sim.endpoint.bye(now, &dialog).unwrap();
        sim.pump();
        assert_eq!(sim.endpoint.dialog_count(), 0);
        sim.run_until(secs(60.0));
        let trace = sim.dump();
        let first_ok = sim
            .sent_to_endpoint("SIP/2.0 200")
            .iter()
            .filter(|s| s.cseq_method == "BYE")
            .flat_map(|s| s.arrivals.clone())
            .min();
        let sends: Vec<Duration> = sim.sent_by_endpoint("BYE ").iter().map(|s| s.at).collect();
        let end = first_ok.unwrap_or(secs(2.0) + T1 * 64);
        assert_eq!(sends, schedule(secs(2.0), end), "seed {seed}\n{trace}");
        if sends.len() > 1 {
            retransmitted += 1;
        }
        let finals = sim.events_where(
            |e| matches!(e, UaEvent::Response { txn: t, response, .. } if *t == bye && response.status >= 200),
        );
        let timeouts = sim.events_where(|e| matches!(e, UaEvent::Timeout { txn: t } if *t == bye));
        match first_ok {
            Some(at) => {
                assert_eq!(finals.len(), 1, "seed {seed}\n{trace}");
                assert_eq!(finals[0].0, at, "seed {seed}\n{trace}");
                assert!(timeouts.is_empty(), "seed {seed}\n{trace}");
            }
            None => {
                assert!(finals.is_empty(), "seed {seed}\n{trace}");
                assert_eq!(timeouts.len(), 1, "seed {seed}\n{trace}");
                assert_eq!(timeouts[0].0, secs(2.0) + T1 * 64, "Timer F\n{trace}");
            }
        }
    }
    assert!(retransmitted > 50, "only {retransmitted} seeds retransmitted our BYE");
}

// ---- the real switchboard as the call logic -----------------------------------------------------

mod board {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Instant;

    use tongdai::acd::CallId;
    use tongdai::acd::b2bua::{MediaControl, PROMPT_HOLD, PROMPT_WELCOME, Switchboard};
    use tongdai::config::{Config, DEFAULT_TOML, Source};
    use tongdai::media::pacing::Playlist;
    use tongdai::media::prompt::{Prompt, PromptSet};
    use tongdai::media::relay::LegFormat;
    use tongdai::sip::endpoint::{Endpoint, UaEvent};

    /// Media that only counts what it was asked.
    #[derive(Default)]
    pub struct NoMedia {
        pub bridged: usize,
        pub agent_dropped: usize,
    }

    impl MediaControl for NoMedia {
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
        fn play(&mut self, _: CallId, _: Playlist) {}
        fn bridge(&mut self, _: CallId) {
            self.bridged += 1;
        }
        fn drop_agent(&mut self, _: CallId) {
            self.agent_dropped += 1;
        }
        fn close(&mut self, _: CallId) {}
    }

    /// The switchboard with the default configuration (op1..op3 on duty all day).
    pub struct Board {
        pub sb: Switchboard,
        pub media: NoMedia,
        /// What the switchboard reported, for failure messages.
        pub reports: Vec<String>,
    }

    impl Board {
        pub fn new(now: Instant) -> (Board, Endpoint) {
            let source = Source::new("test.toml", DEFAULT_TOML.to_owned());
            let (config, _) = Config::from_source(&source, "config".as_ref()).unwrap();
            let mut prompts = PromptSet::new();
            prompts.insert(Prompt::from_samples(PROMPT_WELCOME, &[0; 800]));
            prompts.insert(Prompt::from_samples(PROMPT_HOLD, &[0; 800]));
            let endpoint = Endpoint::new(tongdai::runtime::driver::endpoint_config(&config), 11);
            let sb = Switchboard::new(&config, prompts, [7; 32], now);
            (Board { sb, media: NoMedia::default(), reports: Vec::new() }, endpoint)
        }
    }

    impl super::support::sim::App for Board {
        fn event(&mut self, endpoint: &mut Endpoint, now: Instant, event: &UaEvent) {
            self.sb.handle_ua_event(now, event.clone(), endpoint, &mut self.media);
            self.reports.extend(self.sb.take_reports().iter().map(|r| format!("{r:?}")));
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.sb.poll_timeout()
        }
        fn handle_timeout(&mut self, endpoint: &mut Endpoint, now: Instant) {
            self.sb.handle_timeout(now, endpoint, &mut self.media);
            self.reports.extend(self.sb.take_reports().iter().map(|r| format!("{r:?}")));
        }
    }
}

const CALLER_SDP: &str = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                          t=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                          a=rtpmap:101 telephone-event/8000\r\n";
const AGENT_SDP: &str = "v=0\r\no=agent 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\n\
                         t=0 0\r\nm=audio 42000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// A trunk call through the real switchboard to a registered agent (op1), over the given links
/// from and to the agent; the trunk's links are perfect and the caller hangs up after 30 s.
fn call_through_switchboard(agent_link: Link, to_agent: Link) -> Sim {
    let start = std::time::Instant::now();
    let (board, endpoint) = board::Board::new(start);
    let mut sim = Sim::new(endpoint, addr(US), 5);
    let mut agent = Agent::new(addr(AGENT), Some(secs(2.0)));
    agent.credentials = Some(("op1".into(), "op1-test-password".into()));
    agent.registrar = Some(addr(US));
    agent.sdp = Some(AGENT_SDP.into());
    sim.add_peer(agent, agent_link, to_agent);
    let mut caller = TrunkCaller::new(addr(TRUNK), addr(US), "sb").with_offer(CALLER_SDP);
    caller.bye_after = Some(secs(30.0));
    sim.add_peer(caller, Link::perfect(), Link::perfect());
    sim.set_app(board);
    sim
}

#[test]
fn switchboard_call_reaches_the_registered_agent_and_ends_with_the_callers_bye() {
    let mut sim = call_through_switchboard(Link::perfect(), Link::perfect());
    sim.run_until(secs(60.0));
    let mut trace = sim.dump();
    let board: &board::Board = sim.app();
    for (id, state) in board.sb.engine().agents() {
        trace.push_str(&format!("agent {id:?}: {state:?}\n"));
    }
    trace.push_str(&format!("bindings {}\n", board.sb.registrar().binding_count()));
    trace.push_str(&board.reports.join("\n"));
    let agent: &Agent = sim.peer(0);
    assert!(agent.registered, "{trace}");
    assert_eq!(agent.received("INVITE").len(), 1, "{trace}");
    assert_eq!(agent.received("ACK").len(), 1, "{trace}");
    // The caller's BYE at ~30 s is passed on to the agent, once.
    assert_eq!(agent.received("BYE").len(), 1, "{trace}");
    assert!(agent.received("BYE")[0] > secs(30.0), "{trace}");
    let board: &board::Board = sim.app();
    assert_eq!(board.media.bridged, 1, "{trace}");
}

/// The agent stays on the call until the caller hangs up (at ~30 s): one INVITE, one bridge, one
/// BYE, after the caller's.
fn assert_agent_kept_until_the_callers_bye(sim: &Sim) {
    let agent: &Agent = sim.peer(0);
    assert!(agent.registered);
    assert_eq!(agent.received("INVITE").len(), 1, "{}", sim.dump());
    let byes = agent.received("BYE");
    assert!(
        byes.len() == 1 && byes[0] > secs(30.0),
        "the answered agent got a BYE at {byes:?}\n{}",
        sim.dump()
    );
    let board: &board::Board = sim.app();
    assert_eq!(board.media.bridged, 1, "{}", sim.dump());
}

/// The agent's 200 arrives twice (a network duplicate): the switchboard must not take the second
/// for "a 2xx for a leg nobody wants any more" and BYE the agent who just answered (the bug fixed
/// in 6c9e4de).
#[test]
fn a_duplicated_agent_2xx_does_not_hang_up_the_agent() {
    let mut sim = call_through_switchboard(Link::lossy(0.0, 1.0, Duration::ZERO), Link::perfect());
    sim.run_until(secs(40.0));
    assert_agent_kept_until_the_callers_bye(&sim);
}

/// The common case of the one above: our first ACK to the agent is lost, so the agent retransmits
/// its 200 after T1 (RFC 3261 §13.3.1.4); the retransmission is ACKed, not taken for a new answer.
#[test]
fn a_lost_ack_to_the_agent_does_not_hang_up_the_agent() {
    fn first_ack(bytes: &[u8]) -> bool {
        use std::sync::atomic::{AtomicBool, Ordering};
        static SEEN: AtomicBool = AtomicBool::new(false);
        is_ack(bytes) && !SEEN.swap(true, Ordering::Relaxed)
    }
    let mut sim = call_through_switchboard(Link::perfect(), Link::perfect().blocking(first_ack));
    sim.run_until(secs(40.0));
    let agent: &Agent = sim.peer(0);
    // The first ACK was lost, the second (for the retransmitted 200) arrived.
    assert_eq!(agent.received("ACK").len(), 1, "{}", sim.dump());
    assert_eq!(sim.sent_by_endpoint("ACK ").len(), 2, "{}", sim.dump());
    assert_agent_kept_until_the_callers_bye(&sim);
}

/// One refusal scenario: the status the endpoint must answer with, the caller's address, the
/// number dialled, and whether the endpoint drains.
fn refused_call(seed: u64, status: u16, from: &str, number: &str, draining: bool) {
    let mut sim = Sim::new(endpoint(), addr(US), seed);
    sim.endpoint.set_draining(draining);
    let caller = TrunkCaller::new(addr(from), addr(US), &format!("refuse{seed}")).dialling(number);
    let i = sim.add_peer(caller, bad_link(), bad_link());
    sim.on_event(|_, _, e| panic!("no event expected for a refused call: {e:?}"));
    sim.run_until(secs(60.0));
    let trace = sim.dump();
    let arrivals: Vec<Duration> =
        sim.sent_to_endpoint("INVITE").iter().flat_map(|s| s.arrivals.clone()).collect();
    let Some(first) = arrivals.iter().min().copied() else { return };
    let finals: Vec<Duration> = sim
        .trace
        .iter()
        .filter(|s| s.from == addr(US) && s.cseq_method == "INVITE" && !s.line.contains(" 100 "))
        .map(|s| {
            assert!(s.line.starts_with(&format!("SIP/2.0 {status} ")), "seed {seed}\n{trace}");
            s.at
        })
        .collect();
    // The refusal is sent at the first INVITE, again for each later copy of it, and by Timer G
    // until the ACK arrives (or Timer H).
    let first_ack = sim.sent_to_endpoint("ACK").iter().flat_map(|s| s.arrivals.clone()).min();
    let end = first_ack.unwrap_or(first + T1 * 64);
    let timer: Vec<Duration> =
        finals.iter().copied().filter(|at| *at == first || !arrivals.contains(at)).collect();
    assert_eq!(timer, schedule(first, end), "seed {seed}\n{trace}");
    let repeats = arrivals.iter().filter(|at| **at > first && **at < end).count();
    assert_eq!(finals.len(), timer.len() + repeats, "seed {seed}\n{trace}");
    // The caller ACKed each one it got (same transaction), and no dialog was made.
    let caller: &TrunkCaller = sim.peer(i);
    let got = caller.statuses("INVITE").iter().filter(|s| **s == status).count();
    assert_eq!(caller.acks_sent.len(), got, "seed {seed}\n{trace}");
    if status == 503 {
        let text =
            String::from_utf8_lossy(&sim.sent_by_endpoint("SIP/2.0 503")[0].bytes).into_owned();
        assert!(text.contains("Retry-After: 30\r\n"), "{text}");
    }
    assert_eq!(sim.endpoint.dialog_count(), 0);
}

#[test]
fn refusals_are_transactional_over_a_lossy_link() {
    for seed in 0..100 {
        refused_call(seed, 404, TRUNK, "112", false);
        refused_call(seed, 403, "127.0.0.9:5070", "111", false);
        refused_call(seed, 503, TRUNK, "111", true);
    }
}

#[test]
fn switchboard_calls_over_a_lossy_agent_link_never_drop_the_agent_early() {
    let mut bridged = 0;
    for seed in 0..50 {
        let mut sim = call_through_switchboard(bad_link(), bad_link());
        sim.reseed(seed);
        sim.run_until(secs(45.0));
        let trace = sim.dump();
        let caller_bye = sim.sent_to_endpoint("BYE").iter().flat_map(|s| s.arrivals.clone()).min();
        let agent: &Agent = sim.peer(0);
        let board: &board::Board = sim.app();
        assert!(board.media.bridged <= 1, "seed {seed}\n{trace}");
        if board.media.bridged == 1 {
            bridged += 1;
            let first_bye = agent.received("BYE").first().copied();
            let caller_bye = caller_bye.expect("the trunk link is clean");
            // Our BYE to the agent may be lost, but never sent before the caller hung up.
            let byes_sent: Vec<Duration> = sim
                .sent_by_endpoint("BYE ")
                .iter()
                .filter(|s| s.to == addr(AGENT))
                .map(|s| s.at)
                .collect();
            assert!(
                byes_sent.iter().all(|at| *at >= caller_bye),
                "seed {seed}: agent BYEd at {byes_sent:?} ({first_bye:?}), caller at {caller_bye:?}\n{trace}"
            );
            assert!(!byes_sent.is_empty(), "seed {seed}: the hang-up was not passed on\n{trace}");
        }
    }
    assert!(bridged > 25, "only {bridged} seeds bridged a call");
}

// ---- TCP: nothing is retransmitted but our 2xx ----------------------------------------------------

#[test]
fn trunk_call_over_tcp_sends_each_message_once() {
    let mut sim = Sim::new(endpoint(), addr(US), 1);
    let mut caller = TrunkCaller::new(addr(TRUNK), addr(US), "tcp1").over_tcp();
    caller.bye_after = Some(secs(5.0));
    let i = sim.add_peer(caller, Link::perfect(), Link::perfect());
    sim.on_event(|ep, now, e| {
        if let UaEvent::IncomingCall { txn, flow, .. } = e {
            assert_eq!(flow.transport, tongdai::sip::transport::Transport::Tcp);
            ep.answer(now, *txn, Bytes::new()).unwrap();
        }
    });
    sim.run_until(secs(60.0));
    let trace = sim.dump();
    let lines: Vec<(f64, &str)> =
        sim.trace.iter().map(|s| (s.at.as_secs_f64(), s.line.as_str())).collect();
    assert_eq!(
        lines,
        vec![
            (0.0, "INVITE sip:111@127.0.0.1:5060 SIP/2.0"),
            (0.01, "SIP/2.0 100 Trying"),
            (0.01, "SIP/2.0 200 OK"),
            (0.02, "ACK sip:111@127.0.0.1:5060 SIP/2.0"),
            (5.02, "BYE sip:tongdai@127.0.0.1:5060 SIP/2.0"),
            (5.03, "SIP/2.0 200 OK"),
        ],
        "{trace}"
    );
    let caller: &TrunkCaller = sim.peer(i);
    assert_eq!(caller.bye.as_ref().unwrap().finals, vec![(200, secs(5.04))]);
    assert_eq!(count(&sim, |e| matches!(e, UaEvent::Confirmed { .. })), 1);
    assert_eq!(count(&sim, |e| matches!(e, UaEvent::Bye { .. })), 1);
    assert_eq!(sim.endpoint.dialog_count(), 0);
}

#[test]
fn our_2xx_is_retransmitted_over_tcp_too_until_the_ack() {
    // RFC 3261 §13.3.1.4 retransmits the 2xx on any transport: the ACK is end to end and may
    // cross unreliable hops. Here the trunk's ACK is lost beyond its TCP hop.
    let mut sim = Sim::new(endpoint(), addr(US), 1);
    let caller = TrunkCaller::new(addr(TRUNK), addr(US), "tcp2").over_tcp();
    sim.add_peer(caller, Link::perfect().blocking(is_ack), Link::perfect());
    sim.on_event(|ep, now, e| {
        if let UaEvent::IncomingCall { txn, .. } = e {
            ep.answer(now, *txn, Bytes::new()).unwrap();
        }
    });
    sim.run_until(secs(40.0));
    let answered = secs(0.01);
    let oks: Vec<Duration> = sim.sent_by_endpoint("SIP/2.0 200").iter().map(|s| s.at).collect();
    assert_eq!(oks, schedule(answered, answered + T1 * 64), "{}", sim.dump());
    assert_eq!(sim.sent_by_endpoint("SIP/2.0 100").len(), 1);
    let timeouts = sim.events_where(|e| matches!(e, UaEvent::AckTimeout { .. }));
    assert_eq!(timeouts.iter().map(|t| t.0).collect::<Vec<_>>(), vec![answered + T1 * 64]);
}

#[test]
fn our_invite_over_tcp_is_sent_once_and_times_out_by_timer_b() {
    struct Silent;
    impl support::sim::Peer for Silent {
        fn addr(&self) -> SocketAddr {
            addr(AGENT)
        }
        fn on_receive(&mut self, _: Duration, _: &[u8], _: &mut Vec<Bytes>) {}
        fn on_wake(&mut self, _: Duration, _: &mut Vec<Bytes>) {}
        fn next_wake(&self) -> Option<Duration> {
            None
        }
        fn transport(&self) -> tongdai::sip::transport::Transport {
            tongdai::sip::transport::Transport::Tcp
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }
    let mut sim = Sim::new(endpoint(), addr(US), 1);
    sim.add_peer(Silent, Link::perfect(), Link::perfect());
    let flow = sim.flow(addr(AGENT));
    assert_eq!(flow.transport, tongdai::sip::transport::Transport::Tcp);
    let now = sim.instant();
    let txn = sim
        .endpoint
        .invite(now, flow, agent_uri(), "<sip:111@127.0.0.1>", Bytes::from_static(b"v=0\r\n"), &[])
        .unwrap();
    sim.pump();
    sim.run_until(secs(60.0));
    let invites = sim.sent_by_endpoint("INVITE");
    assert_eq!(invites.len(), 1, "Timer A is not armed over TCP\n{}", sim.dump());
    let text = String::from_utf8_lossy(&invites[0].bytes).into_owned();
    assert!(text.contains("Via: SIP/2.0/TCP "), "{text}");
    let timeouts = sim.events_where(|e| matches!(e, UaEvent::Timeout { txn: t } if *t == txn));
    assert_eq!(timeouts.iter().map(|t| t.0).collect::<Vec<_>>(), vec![T1 * 64], "Timer B");
}
