//! The schedule reaching the engine: at each shift boundary the agents going off duty and those
//! coming on are told to the engine, which never cuts a running call or its wrap-up. Domain layer,
//! sans-IO: wall-clock time (UTC) comes in as a value beside the monotonic `now`.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::*;
use crate::acd::schedule::Schedule;

/// The schedule and what the engine was last told about each agent.
#[derive(Debug)]
pub(super) struct Rota {
    schedule: Schedule,
    /// Agent id → on shift, as last told to the engine; an agent missing here is told next time.
    told: BTreeMap<String, bool>,
}

impl Rota {
    pub(super) fn new(config: &Config) -> Rota {
        Rota { schedule: schedule_of(config), told: BTreeMap::new() }
    }

    /// A new schedule; agents no longer configured are forgotten.
    pub(super) fn reload(&mut self, config: &Config) {
        self.schedule = schedule_of(config);
        self.told.retain(|id, _| config.agents.iter().any(|a| &a.id == id));
    }
}

fn schedule_of(config: &Config) -> Schedule {
    Schedule::new(config.schedule.zone.clone(), &config.shifts, &config.holidays)
}

impl Switchboard {
    /// Tells the engine who is on shift at wall-clock `wall`, observed at `now`. The runtime calls
    /// this at start, after a reload, at every [`Switchboard::next_shift_change`] and now and then
    /// in case the wall clock jumped; only changes reach the engine.
    pub fn apply_schedule(
        &mut self,
        now: Instant,
        wall: Timestamp,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let on_duty = self.rota.schedule.on_duty(wall);
        let operators = self.agents.iter().filter(|a| a.is_operator());
        let ids: Vec<String> = operators.map(|a| a.id.clone()).collect();
        for id in ids {
            let on_shift = on_duty.contains(&id);
            if self.rota.told.insert(id.clone(), on_shift) != Some(on_shift) {
                let _ = self
                    .engine
                    .handle(now, Input::AgentOnShift { agent: AgentId::new(&id), on_shift });
            }
        }
        self.drive(now, sip, media);
    }

    /// The next wall-clock instant after `wall` at which someone goes on or off shift.
    pub fn next_shift_change(&self, wall: Timestamp) -> Option<Timestamp> {
        self.rota.schedule.next_change(wall)
    }

    /// The agents on shift at `wall`, for the admin API and tests.
    pub fn on_duty(&self, wall: Timestamp) -> std::collections::BTreeSet<String> {
        self.rota.schedule.on_duty(wall)
    }
}
