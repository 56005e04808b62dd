//! Who is on duty when: weekly shift rules and a holiday calendar, evaluated in the centre's time
//! zone. Domain layer, sans-IO: every question takes a UTC instant ([`Timestamp`]) as a value.
//!
//! A shift occurrence belongs to the local date it starts on. On an ordinary date the weekly rules
//! whose `days` include that weekday start; on a holiday (say the days of Tết) only the shifts the
//! holiday names start, so a holiday replaces the weekly rule for the occurrences that begin on it.
//! An overnight shift (end at or before start, e.g. 22:00–06:00) runs into the next date whatever
//! that date is. `24:00` is the next midnight, so 00:00–24:00 is a whole day.
//!
//! Local times become instants through the zone's rules (jiff, with the zone data embedded): a
//! local time that a clock change skips or repeats takes the compatible reading (RFC 5545), which
//! for the default `Asia/Ho_Chi_Minh` (UTC+7, no daylight saving since 1975) never arises.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::config::{HolidayConfig, ShiftConfig};

/// One run of a shift: from `start` to `end` (UTC instants), the shift at `shift` in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// The shift's index in [`Schedule::shifts`].
    pub shift: usize,
    /// When it starts.
    pub start: Timestamp,
    /// When it ends (after `start`).
    pub end: Timestamp,
}

/// A stretch of time in which the same agents are on duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// The agents on duty, sorted; empty is a gap in the service.
    pub agents: Vec<String>,
    /// The shifts running, by name, in configuration order.
    pub shifts: Vec<String>,
}

/// The same agent in two shifts at once: a rule written twice or a mistyped hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The agent.
    pub agent: String,
    /// The first shift (configuration order).
    pub first: usize,
    /// The second shift.
    pub second: usize,
    /// When both run.
    pub at: Timestamp,
}

/// The evaluated schedule. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct Schedule {
    zone: TimeZone,
    shifts: Vec<ShiftConfig>,
    /// Holiday date → (holiday name, indexes of the shifts starting that day).
    holidays: BTreeMap<Date, (String, Vec<usize>)>,
}

/// How far [`Schedule::next_change`] looks: the weekly rule repeats after 7 days, so a schedule
/// with no change in 8 days never changes (holidays are checked date by date within that reach).
const LOOKAHEAD_DAYS: i64 = 8;

impl Schedule {
    /// A schedule of `shifts` and `holidays` in `zone`. Holiday shift names that match no shift
    /// are ignored here (the configuration reader rejects them).
    pub fn new(zone: TimeZone, shifts: &[ShiftConfig], holidays: &[HolidayConfig]) -> Schedule {
        let mut map = BTreeMap::new();
        for h in holidays {
            let idx: Vec<usize> = h
                .shifts
                .iter()
                .filter_map(|name| shifts.iter().position(|s| &s.name == name))
                .collect();
            for d in &h.dates {
                map.insert(*d, (h.name.clone(), idx.clone()));
            }
        }
        Schedule { zone, shifts: shifts.to_vec(), holidays: map }
    }

    /// The zone local times are read in.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The shift rules.
    pub fn shifts(&self) -> &[ShiftConfig] {
        &self.shifts
    }

    /// The holiday's name when `date` is one.
    pub fn holiday(&self, date: Date) -> Option<&str> {
        self.holidays.get(&date).map(|(name, _)| name.as_str())
    }

    /// The local date of `at`.
    pub fn local_date(&self, at: Timestamp) -> Date {
        self.zone.to_datetime(at).date()
    }

    /// The instant of local `time` on `date` (compatible reading of skipped/repeated times).
    fn instant(&self, date: Date, minutes: u16) -> Option<Timestamp> {
        let (date, minutes) =
            if minutes >= 1440 { (date.tomorrow().ok()?, 0) } else { (date, minutes) };
        let time = Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).ok()?;
        self.zone.to_timestamp(DateTime::from_parts(date, time)).ok()
    }

    /// The shift occurrences that start on local `date`.
    pub fn starting_on(&self, date: Date) -> Vec<Occurrence> {
        let indexes: Vec<usize> = match self.holidays.get(&date) {
            Some((_, idx)) => idx.clone(),
            None => {
                let bit = 1u8 << date.weekday().to_monday_zero_offset();
                (0..self.shifts.len()).filter(|&i| self.shifts[i].days & bit != 0).collect()
            }
        };
        indexes
            .into_iter()
            .filter_map(|i| {
                let s = &self.shifts[i];
                let start = self.instant(date, s.start)?;
                let end_date = if s.end <= s.start { date.tomorrow().ok()? } else { date };
                let end = self.instant(end_date, s.end)?;
                (end > start).then_some(Occurrence { shift: i, start, end })
            })
            .collect()
    }

    /// Occurrences that may touch `[from, until)`: those starting from the day before `from`'s
    /// local date through `until`'s.
    fn occurrences(&self, from: Timestamp, until: Timestamp) -> Vec<Occurrence> {
        let mut out = Vec::new();
        let Ok(mut date) = self.local_date(from).yesterday() else { return out };
        let last = self.local_date(until);
        while date <= last {
            out.extend(
                self.starting_on(date).into_iter().filter(|o| o.end > from && o.start < until),
            );
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        out
    }

    /// The agents on duty at `at`.
    pub fn on_duty(&self, at: Timestamp) -> BTreeSet<String> {
        let mut agents = BTreeSet::new();
        for o in self.occurrences(at, at + SignedDuration::from_nanos(1)) {
            agents.extend(self.shifts[o.shift].agents.iter().cloned());
        }
        agents
    }

    /// The first instant after `after` at which the set of agents on duty may change; `None` when
    /// the schedule never changes (e.g. one always-on shift).
    pub fn next_change(&self, after: Timestamp) -> Option<Timestamp> {
        let until = after + SignedDuration::from_hours(24 * LOOKAHEAD_DAYS);
        let now = self.on_duty(after);
        let mut edges: Vec<Timestamp> = self
            .occurrences(after, until)
            .into_iter()
            .flat_map(|o| [o.start, o.end])
            .filter(|&t| t > after && t <= until)
            .collect();
        edges.sort();
        edges.dedup();
        // An edge where one shift hands over to another with the same agents changes nothing.
        edges.into_iter().find(|&t| self.on_duty(t) != now)
    }

    /// The periods of `[from, until)`, consecutive and covering it, each with who is on duty.
    pub fn timeline(&self, from: Timestamp, until: Timestamp) -> Vec<Period> {
        let occurrences = self.occurrences(from, until);
        let mut edges: Vec<Timestamp> = occurrences
            .iter()
            .flat_map(|o| [o.start, o.end])
            .filter(|&t| t > from && t < until)
            .collect();
        edges.push(from);
        edges.push(until);
        edges.sort();
        edges.dedup();
        let mut periods: Vec<Period> = Vec::new();
        for pair in edges.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            let running: Vec<&Occurrence> =
                occurrences.iter().filter(|o| o.start <= start && o.end > start).collect();
            let mut shifts: Vec<usize> = running.iter().map(|o| o.shift).collect();
            shifts.sort_unstable();
            shifts.dedup();
            let agents: BTreeSet<String> =
                shifts.iter().flat_map(|&i| self.shifts[i].agents.iter().cloned()).collect();
            let agents: Vec<String> = agents.into_iter().collect();
            let shifts: Vec<String> = shifts.iter().map(|&i| self.shifts[i].name.clone()).collect();
            match periods.last_mut() {
                Some(last) if last.agents == agents && last.shifts == shifts => last.end = end,
                _ => periods.push(Period { start, end, agents, shifts }),
            }
        }
        periods
    }

    /// Stretches of `[from, until)` with nobody on duty.
    pub fn gaps(&self, from: Timestamp, until: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        self.timeline(from, until)
            .into_iter()
            .filter(|p| p.agents.is_empty())
            .map(|p| (p.start, p.end))
            .collect()
    }

    /// Agents in two shifts at the same time within `[from, until)`, each pair of shifts once.
    pub fn overlaps(&self, from: Timestamp, until: Timestamp) -> Vec<Overlap> {
        let occurrences = self.occurrences(from, until);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, a) in occurrences.iter().enumerate() {
            for b in &occurrences[i + 1..] {
                if a.shift == b.shift || a.start >= b.end || b.start >= a.end {
                    continue;
                }
                let (first, second) = (a.shift.min(b.shift), a.shift.max(b.shift));
                for agent in &self.shifts[first].agents {
                    if self.shifts[second].agents.contains(agent)
                        && seen.insert((first, second, agent.clone()))
                    {
                        out.push(Overlap {
                            agent: agent.clone(),
                            first,
                            second,
                            at: a.start.max(b.start),
                        });
                    }
                }
            }
        }
        out
    }

    /// The instants worth checking a schedule over: two weeks from `from`, plus each holiday and
    /// the days around it.
    pub fn check_windows(&self, from: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let mut windows = vec![(from, from + SignedDuration::from_hours(24 * 14))];
        for date in self.holidays.keys() {
            let (Ok(before), Ok(after)) = (date.yesterday(), date.tomorrow()) else { continue };
            let (Some(start), Some(end)) = (self.instant(before, 0), self.instant(after, 1440))
            else {
                continue;
            };
            windows.push((start, end));
        }
        windows
    }
}

/// The week as `tongdai schedule` prints it: `days` local days from `first`, each with its
/// holiday name, who is on duty in which stretch, and `!!` on stretches with nobody.
pub fn render(schedule: &Schedule, first: Date, days: u32) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut gaps = 0;
    let mut date = first;
    for _ in 0..days {
        let Ok(next) = date.tomorrow() else { break };
        let (Some(start), Some(end)) = (schedule.instant(date, 0), schedule.instant(next, 0))
        else {
            break;
        };
        let _ = write!(out, "{} {}", date.strftime("%a"), date);
        if let Some(h) = schedule.holiday(date) {
            let _ = write!(out, "  (holiday: {h})");
        }
        out.push('\n');
        for p in schedule.timeline(start, end) {
            let from = schedule.zone.to_datetime(p.start).time().strftime("%H:%M").to_string();
            let to = if p.end == end {
                "24:00".to_string()
            } else {
                schedule.zone.to_datetime(p.end).time().strftime("%H:%M").to_string()
            };
            if p.agents.is_empty() {
                gaps += 1;
                let _ = writeln!(out, "  {from}–{to}  !! nobody on duty (calls overflow)");
            } else {
                let _ = writeln!(
                    out,
                    "  {from}–{to}  {}: {}",
                    p.shifts.join(" + "),
                    p.agents.join(", ")
                );
            }
        }
        date = next;
    }
    let zone = schedule.zone.iana_name().unwrap_or("the configured zone");
    let _ = writeln!(out, "times in {zone}; {gaps} stretch(es) with nobody on duty");
    out
}

/// The centre's default zone.
pub const DEFAULT_ZONE: &str = "Asia/Ho_Chi_Minh";

/// The zone named `name` from the embedded zone data.
pub fn zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shift(name: &str, days: u8, start: u16, end: u16, agents: &[&str]) -> ShiftConfig {
        ShiftConfig {
            name: name.into(),
            days,
            start,
            end,
            agents: agents.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn vn() -> TimeZone {
        zone(DEFAULT_ZONE).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    const EVERY_DAY: u8 = 0x7f;

    fn three_shifts() -> Vec<ShiftConfig> {
        vec![
            shift("morning", EVERY_DAY, 6 * 60, 14 * 60, &["a"]),
            shift("afternoon", EVERY_DAY, 14 * 60, 22 * 60, &["b"]),
            shift("night", EVERY_DAY, 22 * 60, 6 * 60, &["c"]),
        ]
    }

    #[test]
    fn local_rules_are_read_in_the_zone() {
        let s = Schedule::new(vn(), &three_shifts(), &[]);
        // 23:30 UTC is 06:30 in Ho Chi Minh City the next day: the morning shift.
        assert_eq!(s.on_duty(at("2026-11-30T23:30:00Z")), ["a".to_string()].into());
        // 05:59 local (22:59 UTC the day before) is still the night shift that began at 22:00.
        assert_eq!(s.on_duty(at("2026-11-30T22:59:00Z")), ["c".to_string()].into());
        // 14:00 local exactly: the afternoon shift, the morning one has ended.
        assert_eq!(s.on_duty(at("2026-12-01T07:00:00Z")), ["b".to_string()].into());
    }

    #[test]
    fn next_change_finds_the_boundaries_across_midnight() {
        let s = Schedule::new(vn(), &three_shifts(), &[]);
        // From 21:00 local: next change 22:00 local (15:00 UTC), then 06:00 local next day.
        assert_eq!(s.next_change(at("2026-12-01T14:00:00Z")), Some(at("2026-12-01T15:00:00Z")));
        assert_eq!(s.next_change(at("2026-12-01T15:00:00Z")), Some(at("2026-12-01T23:00:00Z")));
        let always = [shift("all", EVERY_DAY, 0, 1440, &["a"])];
        assert_eq!(Schedule::new(vn(), &always, &[]).next_change(at("2026-12-01T00:00:00Z")), None);
    }

    #[test]
    fn weekdays_and_gaps() {
        // Monday to Friday 08:00–17:00 only.
        let office = [shift("office", 0x1f, 8 * 60, 17 * 60, &["a"])];
        let s = Schedule::new(vn(), &office, &[]);
        // 2026-12-05 is a Saturday.
        assert!(s.on_duty(at("2026-12-05T03:00:00Z")).is_empty());
        assert_eq!(s.on_duty(at("2026-12-04T03:00:00Z")), ["a".to_string()].into());
        // Friday 2026-12-04, local midnight to midnight: before 08:00 and after 17:00.
        let gaps = s.gaps(at("2026-12-03T17:00:00Z"), at("2026-12-04T17:00:00Z"));
        assert_eq!(
            gaps,
            vec![
                (at("2026-12-03T17:00:00Z"), at("2026-12-04T01:00:00Z")),
                (at("2026-12-04T10:00:00Z"), at("2026-12-04T17:00:00Z")),
            ]
        );
    }

    #[test]
    fn a_holiday_replaces_the_weekly_rule() {
        let mut shifts = three_shifts();
        shifts.push(shift("tet", 0, 0, 1440, &["d"]));
        let tet = HolidayConfig {
            name: "Tết".into(),
            dates: vec!["2027-02-06".parse().unwrap()],
            shifts: vec!["tet".into()],
        };
        let s = Schedule::new(vn(), &shifts, &[tet]);
        let noon_tet = at("2027-02-06T05:00:00Z");
        assert_eq!(s.on_duty(noon_tet), ["d".to_string()].into());
        // The night shift that began on the eve still runs until 06:00 on the holiday.
        let early = at("2027-02-05T22:00:00Z"); // 05:00 local on the 6th
        assert_eq!(s.on_duty(early), ["c".to_string(), "d".to_string()].into());
        // The day after, the weekly rule is back.
        assert_eq!(s.on_duty(at("2027-02-07T05:00:00Z")), ["a".to_string()].into());
        assert_eq!(s.holiday("2027-02-06".parse().unwrap()), Some("Tết"));
    }

    #[test]
    fn overlaps_name_the_agent_and_both_shifts() {
        let shifts = [
            shift("day", EVERY_DAY, 6 * 60, 18 * 60, &["a", "b"]),
            shift("late", EVERY_DAY, 17 * 60, 23 * 60, &["b"]),
        ];
        let s = Schedule::new(vn(), &shifts, &[]);
        let from = at("2026-12-01T00:00:00Z");
        let o = s.overlaps(from, from + SignedDuration::from_hours(48));
        assert_eq!(o.len(), 1);
        assert_eq!((o[0].agent.as_str(), o[0].first, o[0].second), ("b", 0, 1));
        assert!(
            s.overlaps(from, from + SignedDuration::from_hours(48)).iter().all(|o| o.agent != "a")
        );
        assert!(
            Schedule::new(vn(), &three_shifts(), &[])
                .overlaps(from, from + SignedDuration::from_hours(48))
                .is_empty()
        );
    }

    #[test]
    fn render_flags_gaps_and_holidays() {
        let office = [shift("office", 0x1f, 8 * 60, 17 * 60, &["a", "b"])];
        let tet = HolidayConfig {
            name: "Tết".into(),
            dates: vec!["2026-12-01".parse().unwrap()],
            shifts: vec![],
        };
        let s = Schedule::new(vn(), &office, &[tet]);
        let text = render(&s, "2026-11-30".parse().unwrap(), 2);
        assert!(text.contains("Mon 2026-11-30\n  00:00–08:00  !! nobody on duty"), "{text}");
        assert!(text.contains("  08:00–17:00  office: a, b\n  17:00–24:00  !! nobody"), "{text}");
        assert!(
            text.contains("Tue 2026-12-01  (holiday: Tết)\n  00:00–24:00  !! nobody"),
            "{text}"
        );
        assert!(text.ends_with("times in Asia/Ho_Chi_Minh; 3 stretch(es) with nobody on duty\n"));
    }

    #[test]
    fn timeline_merges_handovers_with_the_same_agents() {
        let shifts = [
            shift("first", EVERY_DAY, 0, 12 * 60, &["a"]),
            shift("second", EVERY_DAY, 12 * 60, 1440, &["a"]),
        ];
        let s = Schedule::new(vn(), &shifts, &[]);
        let from = at("2026-12-01T00:00:00Z");
        let periods = s.timeline(from, from + SignedDuration::from_hours(24));
        assert!(periods.iter().all(|p| p.agents == ["a".to_string()]));
        assert_eq!(s.next_change(from), None);
    }
}
