//! The schedule reaching the switchboard on virtual time: registered agents go off shift and come
//! on at the local boundaries (06:00, 14:00, 22:00 and across midnight), evaluated from UTC
//! instants; an agent coming on shift while registered is available at once.

mod support;

use jiff::Timestamp;
use support::rig::{Rig, addr};
use tongdai::acd::AgentState;

const SHIFTS: &str = r#"[[shifts]]
name = "all-day"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "00:00"
end = "24:00"
agents = ["op1", "op2", "op3"]
"#;

const ROTA: &str = r#"[[shifts]]
name = "day"
start = "06:00"
end = "14:00"
agents = ["op1"]

[[shifts]]
name = "late"
start = "14:00"
end = "22:00"
agents = ["op2"]

[[shifts]]
name = "night"
start = "22:00"
end = "06:00"
agents = ["op3"]
"#;

fn at(utc: &str) -> Timestamp {
    utc.parse().unwrap()
}

fn rig() -> Rig {
    let mut rig = Rig::new(&[(SHIFTS, ROTA)]);
    for (user, port) in [("op1", 5071), ("op2", 5072), ("op3", 5073)] {
        let from = addr(&format!("127.0.0.1:{port}"));
        let contact = format!("127.0.0.1:{port}");
        assert_eq!(rig.register(user, &format!("{user}-test-password"), from, &contact), 200);
    }
    rig
}

fn apply(rig: &mut Rig, wall: Timestamp) {
    let now = rig.now;
    rig.sb.apply_schedule(now, wall, &mut rig.ep, &mut rig.media);
    rig.pump();
}

fn states(rig: &Rig) -> [Option<AgentState>; 3] {
    [rig.state("op1"), rig.state("op2"), rig.state("op3")]
}

#[test]
fn registered_agents_follow_the_rota_in_local_time() {
    let mut rig = rig();
    let (on, off) = (Some(AgentState::Available), Some(AgentState::LoggedOut));
    // 13:59 local (UTC+7) on Monday: only the day shift.
    apply(&mut rig, at("2026-11-30T06:59:00Z"));
    assert_eq!(states(&rig), [on, off, off]);
    assert_eq!(
        rig.sb.next_shift_change(at("2026-11-30T06:59:00Z")),
        Some(at("2026-11-30T07:00:00Z"))
    );
    // 14:00 local: op1 off, op2 on at once (already registered).
    apply(&mut rig, at("2026-11-30T07:00:00Z"));
    assert_eq!(states(&rig), [off, on, off]);
    // 22:00 local, then local midnight (17:00 UTC) changes nothing, then 06:00 local.
    apply(&mut rig, at("2026-11-30T15:00:00Z"));
    assert_eq!(states(&rig), [off, off, on]);
    assert_eq!(
        rig.sb.next_shift_change(at("2026-11-30T15:00:00Z")),
        Some(at("2026-11-30T23:00:00Z"))
    );
    apply(&mut rig, at("2026-11-30T17:00:00Z"));
    assert_eq!(states(&rig), [off, off, on]);
    apply(&mut rig, at("2026-11-30T23:00:00Z"));
    assert_eq!(states(&rig), [on, off, off]);
}

#[test]
fn an_agent_on_shift_but_not_registered_stays_logged_out_until_it_registers() {
    let mut rig = Rig::new(&[(SHIFTS, ROTA)]);
    apply(&mut rig, at("2026-11-30T01:00:00Z"));
    assert_eq!(rig.state("op1"), Some(AgentState::LoggedOut));
    let from = addr("127.0.0.1:5071");
    assert_eq!(rig.register("op1", "op1-test-password", from, "127.0.0.1:5071"), 200);
    assert_eq!(rig.state("op1"), Some(AgentState::Available));
    // Registering off shift does not make an agent available.
    let from = addr("127.0.0.1:5072");
    assert_eq!(rig.register("op2", "op2-test-password", from, "127.0.0.1:5072"), 200);
    assert_eq!(rig.state("op2"), Some(AgentState::LoggedOut));
}
