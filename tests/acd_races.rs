//! Every race of the ACD issue, on virtual time through the real switchboard and SIP endpoint:
//! scripted trunk callers and operators' softphones exchange literal SIP with it over the
//! simulator's links, and after every step the board checks the engine's invariants, that each
//! call ends exactly once, that at most `lines` agent legs are up, and that no agent is ringing or
//! on a call without a live leg (nor a leg alive without its agent).

mod support;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use support::sim::board::{Board, Shared, caller_sdp, config, secs};
use support::sim::operator::{Operator, PhoneEvent, Plan};
use support::sim::peers::TrunkCaller;
use support::sim::{Link, Sim};
use tongdai::acd::{AbandonPhase, AgentId, AgentState, Outcome};
use tongdai::config::Config;
use tongdai::sip::endpoint::UaEvent;

const US: &str = "127.0.0.1:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A simulation around a fresh switchboard for `config`.
fn switchboard(config: &Config) -> (Sim, Shared) {
    let start = std::time::Instant::now();
    let (board, endpoint) = Board::new(config, start);
    let world = board.world.clone();
    let mut sim = Sim::starting(endpoint, addr(US), 1, start);
    sim.set_app(board);
    (sim, world)
}

/// Operator `n` (`opN`) with `plan` for every INVITE; returns its peer index.
fn operator(sim: &mut Sim, n: u16, plan: Plan) -> usize {
    let mut op = Operator::new(
        addr(&format!("127.0.0.2:{}", 6000 + n)),
        addr(US),
        &format!("op{n}"),
        &format!("op{n}-test-password"),
    );
    op.planner = Box::new(move |_| plan);
    sim.add_peer(op, Link::perfect(), Link::perfect())
}

/// A caller number `k` (RTP port 30000 + 2k) dialling at `at`; it hangs up `talk` after an
/// agent answers, or at the absolute time `give_up` if none has. Returns its peer index.
fn caller(
    sim: &mut Sim,
    world: &Shared,
    k: u16,
    at: Duration,
    talk: Duration,
    give_up: Rc<Cell<Duration>>,
) -> usize {
    let port = 30_000 + 2 * k;
    let mut c =
        TrunkCaller::new(addr(&format!("127.0.0.3:{}", 7000 + k)), addr(US), &format!("c{k}"))
            .with_offer(&caller_sdp(port))
            .starting_at(at);
    let w = world.clone();
    c.bye_when = Some(Box::new(move || {
        let w = w.borrow();
        let call = w.call_of(port)?;
        match w.bridged_at.get(&call) {
            Some(t) => Some(*t + talk),
            None => Some(give_up.get()),
        }
    }));
    sim.add_peer(c, Link::perfect(), Link::perfect())
}

fn never() -> Rc<Cell<Duration>> {
    Rc::new(Cell::new(Duration::from_secs(1_000_000)))
}

fn op(sim: &Sim, i: usize) -> &Operator {
    sim.peer::<Operator>(i)
}

fn outcome(world: &Shared, k: u16) -> Outcome {
    let w = world.borrow();
    let call = w.call_of(30_000 + 2 * k).expect("the caller was offered");
    w.outcome(call).cloned().unwrap_or_else(|| panic!("{call} has no outcome"))
}

fn state(sim: &Sim, agent: &str) -> AgentState {
    sim.app::<Board>().sb.engine().agent_state(&AgentId::new(agent)).unwrap()
}

/// Runs until `pick` is in the operator's log; returns when it happened.
fn run_until_phone(sim: &mut Sim, i: usize, pick: impl Fn(&PhoneEvent) -> bool) -> Duration {
    for _ in 0..100_000 {
        if let Some((t, _)) = op(sim, i).log.iter().find(|(_, e)| pick(e)) {
            return *t;
        }
        let next = sim.now() + Duration::from_millis(1);
        sim.run_until(next);
    }
    panic!("the phone never saw it:\n{}", sim.dump());
}

/// Everything is over: no call left anywhere, every agent free.
fn assert_quiet(sim: &Sim) {
    let board: &Board = sim.app();
    assert_eq!(board.sb.calls(), 0, "{}", board.log.join("\n"));
    assert_eq!(board.sb.engine().calls_in_progress(), 0);
    for (agent, state) in board.sb.engine().agents() {
        assert!(
            !matches!(state, AgentState::Ringing { .. } | AgentState::OnCall { .. }),
            "{agent} is {state:?}"
        );
    }
    assert_eq!(sim.endpoint.dialog_count(), 0, "{}", sim.dump());
}

fn ring_all() -> Config {
    config(3, |t| t.replace("strategy = \"longest-idle\"", "strategy = \"ring-all\""))
}

#[test]
fn ring_all_two_answers_within_a_millisecond_bridge_exactly_one() {
    let (mut sim, world) = switchboard(&ring_all());
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: None });
    let b = operator(&mut sim, 2, Plan::Answer { after: secs(2.001), talk: None });
    caller(&mut sim, &world, 1, secs(1.0), secs(60.0), never());
    sim.run_until(secs(120.0));
    assert_eq!(world.borrow().bridges, 1, "{}", sim.dump());
    assert!(
        matches!(outcome(&world, 1), Outcome::Answered { ref agent, .. } if agent.as_str() == "op1")
    );
    // The winner talked until the caller's BYE; the loser's 200 crossed our CANCEL: ACK + BYE.
    let (winner, loser) = (op(&sim, a), op(&sim, b));
    assert_eq!(winner.received("BYE").len(), 1);
    assert!(winner.received("BYE")[0] > secs(60.0), "{}", sim.dump());
    assert!(loser.log.iter().any(|(_, e)| matches!(e, PhoneEvent::Answered(_))));
    assert_eq!(loser.received("ACK").len(), 1, "{}", sim.dump());
    assert_eq!(loser.received("BYE").len(), 1, "{}", sim.dump());
    assert!(loser.received("BYE")[0] < secs(10.0), "the loser is hung up at once");
    assert_eq!(loser.calls_up(), 0);
    assert_quiet(&sim);
}

#[test]
fn a_ring_all_loser_whose_2xx_crossed_is_not_rung_again_before_that_leg_is_torn_down() {
    let (mut sim, world) = switchboard(&ring_all());
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: None });
    let b = operator(&mut sim, 2, Plan::Answer { after: secs(2.001), talk: None });
    // A second caller waits behind the first while both phones ring for the first.
    caller(&mut sim, &world, 1, secs(1.0), secs(60.0), never());
    caller(&mut sim, &world, 2, secs(1.5), secs(60.0), never());
    sim.run_until(secs(150.0));
    let loser = op(&sim, b);
    assert!(
        !loser.log.iter().any(|(_, e)| matches!(e, PhoneEvent::BusyHere(_))),
        "op2 was rung for the second caller while its answer to the first was in flight:\n{}",
        sim.dump()
    );
    // op2 takes the second caller once its first leg is over.
    assert!(
        matches!(outcome(&world, 2), Outcome::Answered { ref agent, .. } if agent.as_str() == "op2")
    );
    assert_eq!(op(&sim, a).received("INVITE").len(), 1);
    assert_eq!(world.borrow().bridges, 2);
    assert_quiet(&sim);
}

#[test]
fn ring_all_the_losers_are_cancelled_when_their_answer_comes_later() {
    let (mut sim, world) = switchboard(&ring_all());
    operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: None });
    let b = operator(&mut sim, 2, Plan::Answer { after: secs(4.0), talk: None });
    let c = operator(&mut sim, 3, Plan::Ignore);
    caller(&mut sim, &world, 1, secs(1.0), secs(30.0), never());
    sim.run_until(secs(90.0));
    assert_eq!(world.borrow().bridges, 1);
    for i in [b, c] {
        let o = op(&sim, i);
        assert_eq!(o.received("CANCEL").len(), 1, "{}", sim.dump());
        assert!(o.log.iter().any(|(_, e)| matches!(e, PhoneEvent::Cancelled(_))));
        assert!(o.received("BYE").is_empty());
    }
    assert_quiet(&sim);
}

#[test]
fn cancel_crossing_the_agents_2xx_gets_ack_and_bye() {
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(3.0), talk: None });
    let give_up = never();
    caller(&mut sim, &world, 1, secs(1.0), secs(60.0), give_up.clone());
    let invite = run_until_phone(&mut sim, a, |e| matches!(e, PhoneEvent::Invite(_)));
    // The operator's 200 leaves at invite + 3 s and lands 10 ms later; the caller's BYE lands
    // at invite + 3.005 s, so our CANCEL meets the 200 on the wire.
    give_up.set(invite + secs(2.995));
    sim.run_until(secs(60.0));
    assert!(
        matches!(outcome(&world, 1), Outcome::Abandoned { phase: AbandonPhase::Ringing, .. }),
        "{:?}\n{}",
        outcome(&world, 1),
        sim.dump()
    );
    let o = op(&sim, a);
    assert_eq!(o.received("CANCEL").len(), 1, "{}", sim.dump());
    assert_eq!(o.received("ACK").len(), 1, "{}", sim.dump());
    assert_eq!(o.received("BYE").len(), 1, "{}", sim.dump());
    assert_eq!(o.calls_up(), 0);
    assert_eq!(world.borrow().bridges, 0);
    assert_eq!(state(&sim, "op1"), AgentState::Available, "a lost race is no miss");
    assert_quiet(&sim);
}

#[test]
fn the_caller_hangs_up_in_each_phase() {
    // Prompt: 1 s after the answer (the welcome prompt and menu take 4 s and more).
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: None });
    caller(&mut sim, &world, 1, secs(1.0), secs(60.0), Rc::new(Cell::new(secs(2.0))));
    sim.run_until(secs(30.0));
    assert!(matches!(outcome(&world, 1), Outcome::Abandoned { phase: AbandonPhase::Prompt, .. }));
    assert!(op(&sim, a).received("INVITE").is_empty());
    assert_quiet(&sim);

    // Queue: nobody logged in.
    let (mut sim, world) = switchboard(&config(3, |t| t));
    caller(&mut sim, &world, 1, secs(1.0), secs(60.0), Rc::new(Cell::new(secs(40.0))));
    sim.run_until(secs(60.0));
    match outcome(&world, 1) {
        Outcome::Abandoned { phase: AbandonPhase::Queue, wait } => {
            assert!(wait > secs(30.0) && wait < secs(40.0), "{wait:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_quiet(&sim);

    // Ringing: the operator never answers; the caller leaves 5 s into the ring.
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Ignore);
    let give_up = never();
    caller(&mut sim, &world, 1, secs(1.0), secs(60.0), give_up.clone());
    let invite = run_until_phone(&mut sim, a, |e| matches!(e, PhoneEvent::Invite(_)));
    give_up.set(invite + secs(5.0));
    sim.run_until(secs(60.0));
    assert!(matches!(outcome(&world, 1), Outcome::Abandoned { phase: AbandonPhase::Ringing, .. }));
    assert_eq!(op(&sim, a).received("CANCEL").len(), 1);
    assert!(op(&sim, a).log.iter().any(|(_, e)| matches!(e, PhoneEvent::Cancelled(_))));
    assert_quiet(&sim);

    // Bridged: the caller's BYE is passed on to the operator.
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: None });
    caller(&mut sim, &world, 1, secs(1.0), secs(20.0), never());
    sim.run_until(secs(60.0));
    match outcome(&world, 1) {
        Outcome::Answered { agent, talk, .. } => {
            assert_eq!(agent.as_str(), "op1");
            assert!(talk >= secs(20.0) && talk < secs(20.1), "{talk:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(op(&sim, a).received("BYE").len(), 1);
    assert_eq!(state(&sim, "op1"), AgentState::Available, "wrap-up over");
    assert_quiet(&sim);
}

#[test]
fn the_agent_hanging_up_first_hangs_up_the_caller() {
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: Some(secs(15.0)) });
    let c = caller(&mut sim, &world, 1, secs(1.0), secs(600.0), never());
    sim.run_until(secs(60.0));
    assert!(matches!(outcome(&world, 1), Outcome::Answered { .. }));
    assert!(op(&sim, a).log.iter().any(|(_, e)| matches!(e, PhoneEvent::ByeSent(_))));
    assert_eq!(op(&sim, a).received("BYE").len(), 0);
    let trunk: &TrunkCaller = sim.peer(c);
    assert!(trunk.bye.is_none(), "the caller did not hang up");
    assert_eq!(trunk.byes_received.len(), 1, "{}", sim.dump());
    assert_eq!(sim.sent_by_endpoint("BYE sip:trunk").len(), 1, "{}", sim.dump());
    assert_quiet(&sim);
}

#[test]
fn bye_crossing_bye_ends_the_call_once() {
    let mut crossed = 0;
    for skew_ms in [0u64, 5, 10, 15, 20] {
        let (mut sim, world) = switchboard(&config(3, |t| t));
        let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: Some(secs(15.0)) });
        // The operator's BYE leaves at ACK + 15 s, the ACK 10 ms after the bridge: the caller's
        // BYE leaves within 20 ms of it, so the two meet on the wire.
        let talk = secs(15.0) + Duration::from_millis(skew_ms);
        let c = caller(&mut sim, &world, 1, secs(1.0), talk, never());
        sim.run_until(secs(60.0));
        assert!(matches!(outcome(&world, 1), Outcome::Answered { .. }), "skew {skew_ms}");
        assert_eq!(world.borrow().outcomes.len(), 1);
        assert_eq!(op(&sim, a).calls_up(), 0);
        // Both sides sent a BYE: the caller's crossed ours (or op1's crossed our BYE to it).
        let trunk: &TrunkCaller = sim.peer(c);
        if trunk.bye.is_some() && !trunk.byes_received.is_empty()
            || trunk.bye.is_some() && !op(&sim, a).received("BYE").is_empty()
        {
            crossed += 1;
        }
        assert_quiet(&sim);
    }
    assert!(crossed >= 2, "only {crossed} runs made the BYEs cross");
}

#[test]
fn an_agent_whose_registration_expires_mid_ring_is_cancelled_and_the_next_agent_rung() {
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Ignore);
    let b = operator(&mut sim, 2, Plan::Answer { after: secs(2.0), talk: None });
    // op1 registers once at 0 s for 600 s and never refreshes; op2 logs in a second later (so
    // op1, idle longest, is rung first) and keeps refreshing.
    sim.peer_mut::<Operator>(a).refresh = Duration::from_secs(100_000);
    sim.peer_mut::<Operator>(b).shifts = vec![(secs(1.0), secs(100_000.0))];
    caller(&mut sim, &world, 1, secs(589.0), secs(30.0), never());
    sim.run_until(secs(590.0));
    let invite = run_until_phone(&mut sim, a, |e| matches!(e, PhoneEvent::Invite(_)));
    assert!(invite < secs(600.0), "rung at {invite:?}, before the binding lapses");
    sim.run_until(secs(700.0));
    assert_eq!(op(&sim, a).received("CANCEL").len(), 1, "{}", sim.dump());
    let cancel = op(&sim, a).received("CANCEL")[0];
    assert!(cancel >= secs(600.0) && cancel < secs(601.0), "{cancel:?}");
    assert!(
        matches!(outcome(&world, 1), Outcome::Answered { ref agent, .. } if agent.as_str() == "op2")
    );
    assert_eq!(state(&sim, "op1"), AgentState::LoggedOut);
    assert_quiet(&sim);
}

#[test]
fn a_bye_the_switchboard_never_saw_is_repaired_by_the_audit_and_the_caller_requeued() {
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: Some(secs(10.0)) });
    let b = operator(&mut sim, 2, Plan::Answer { after: secs(2.0), talk: None });
    sim.peer_mut::<Operator>(b).shifts = vec![(secs(1.0), secs(100_000.0))];
    caller(&mut sim, &world, 1, secs(1.0), secs(30.0), never());
    // The endpoint answers op1's BYE, but the event never reaches the switchboard.
    {
        let board = sim.app_mut::<Board>();
        board.strict = false;
        board.lose_event = Some(Box::new(|e| matches!(e, UaEvent::Bye { .. })));
    }
    let bye = run_until_phone(&mut sim, a, |e| matches!(e, PhoneEvent::ByeSent(_)));
    sim.run_until(bye + secs(1.0));
    // Stuck for now: on a call with no dialog left.
    assert!(matches!(state(&sim, "op1"), AgentState::OnCall { .. }));
    {
        let board = sim.app_mut::<Board>();
        board.lose_event = None;
    }
    // The next audit (every 30 s) frees op1 and gives the caller back to the queue's front: op2.
    sim.run_until(bye + secs(31.0));
    assert!(sim.app::<Board>().sb.engine().audit_repairs() >= 1);
    assert!(matches!(state(&sim, "op1"), AgentState::WrapUp { .. } | AgentState::Available));
    assert!(matches!(state(&sim, "op2"), AgentState::OnCall { .. }), "{}", sim.dump());
    sim.app_mut::<Board>().strict = true;
    sim.run_until(secs(200.0));
    assert_eq!(world.borrow().bridges, 2);
    assert!(
        matches!(outcome(&world, 1), Outcome::Answered { ref agent, .. } if agent.as_str() == "op2")
    );
    assert_eq!(op(&sim, b).received("BYE").len(), 1);
    assert_quiet(&sim);
}

#[test]
fn an_agent_bye_lost_on_the_wire_is_caught_by_the_rtp_timeout_and_the_caller_requeued() {
    use tongdai::acd::b2bua::{MediaEvent, MediaLeg};
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: Some(secs(10.0)) });
    let b = operator(&mut sim, 2, Plan::Answer { after: secs(2.0), talk: None });
    sim.peer_mut::<Operator>(b).shifts = vec![(secs(1.0), secs(100_000.0))];
    // Every copy of op1's BYE is lost: its phone is done, we still hold the dialog.
    sim.set_links(a, Link::perfect().blocking(|b| b.starts_with(b"BYE ")), Link::perfect());
    caller(&mut sim, &world, 1, secs(1.0), secs(400.0), never());
    let bye = run_until_phone(&mut sim, a, |e| matches!(e, PhoneEvent::ByeSent(_)));
    // The audit cannot see it (the dialog is alive on our side); the RTP timeout does.
    sim.run_until(bye + secs(60.0));
    assert!(matches!(state(&sim, "op1"), AgentState::OnCall { .. }));
    let call = world.borrow().call_of(30_002).unwrap();
    sim.with_app::<Board, _>(|board, ep, now| {
        let event = MediaEvent::LegDead { call, leg: MediaLeg::Agent };
        board.sb.media_event(now, event, ep, &mut board.media);
    });
    sim.run_until(bye + secs(120.0));
    assert!(matches!(state(&sim, "op2"), AgentState::OnCall { .. }), "{}", sim.dump());
    assert!(!op(&sim, a).received("BYE").is_empty(), "our BYE reaches op1's phone");
    sim.run_until(secs(600.0));
    assert_eq!(world.borrow().bridges, 2);
    assert!(
        matches!(outcome(&world, 1), Outcome::Answered { ref agent, .. } if agent.as_str() == "op2")
    );
    assert_quiet(&sim);
}

/// A caller with session timers (we refresh every 45 s) and a hold re-INVITE at `reinvite_at`.
fn glare_call(reinvite_at: Option<Duration>) -> (Sim, Shared, usize, usize) {
    let (mut sim, world) = switchboard(&config(3, |t| t));
    let a = operator(&mut sim, 1, Plan::Answer { after: secs(2.0), talk: None });
    let c = caller(&mut sim, &world, 1, secs(1.0), secs(200.0), never());
    let trunk = sim.peer_mut::<TrunkCaller>(c);
    let with_timer = std::mem::replace(trunk, TrunkCaller::new(addr(US), addr(US), "x"));
    let mut with_timer = with_timer.with_session_timer(90);
    with_timer.reinvite_at = reinvite_at;
    *trunk = with_timer;
    (sim, world, a, c)
}

#[test]
fn reinvite_glare_gets_491_both_ways_and_both_retries_succeed() {
    // Where our session refresh (a re-INVITE: the trunk does not allow UPDATE) goes out.
    let (mut sim, _, _, _) = glare_call(None);
    sim.run_until(secs(150.0));
    let ours = sim.sent_by_endpoint("INVITE sip:trunk");
    assert!(!ours.is_empty(), "no session refresh\n{}", sim.dump());
    let refresh = ours[0].at;
    // The caller puts the call on hold 5 ms later: each re-INVITE meets the other's.
    let (mut sim, world, a, c) = glare_call(Some(refresh + Duration::from_millis(5)));
    sim.run_until(secs(400.0));
    let trunk: &TrunkCaller = sim.peer(c);
    let dump = sim.dump();
    assert_eq!(trunk.reinvites_received.first().map(|r| r.1), Some(491), "{dump}");
    assert!(trunk.reinvites_received.iter().any(|r| r.1 == 200), "our retry went through\n{dump}");
    assert_eq!(trunk.reinvite_finals.first().map(|r| r.0), Some(491), "{dump}");
    assert_eq!(trunk.reinvite_finals.last().map(|r| r.0), Some(200), "{dump}");
    // The call went on to the caller's BYE, with one bridge and the agent leg untouched.
    match outcome(&world, 1) {
        Outcome::Answered { talk, .. } => assert!(talk >= secs(200.0), "{talk:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(world.borrow().bridges, 1);
    let o = op(&sim, a);
    assert_eq!(o.received("INVITE").len(), 1, "{dump}");
    assert_eq!(o.received("BYE").len(), 1);
    assert!(o.received("BYE")[0] > secs(200.0));
    assert_quiet(&sim);
}
