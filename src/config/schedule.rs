//! `[schedule]` (the time zone) and `[[holidays]]` (dates whose own shifts replace the weekly
//! rule), plus the checks that need the whole schedule: shift names unique, holiday shifts known,
//! no agent in two shifts at once (an error), hours with nobody on duty (a warning). Part of the
//! config layer; the rules themselves are evaluated by [`crate::acd::schedule`].

use std::ops::Range;

use jiff::SignedDuration;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use toml::Spanned;

use super::ShiftConfig;
use super::diag::{self, Diagnostics};
use super::read::Section;
use crate::acd::schedule::{DEFAULT_ZONE, Schedule};

/// `[schedule]`.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// The IANA name of the zone shifts and holidays are written in.
    pub timezone: String,
    /// That zone, from the embedded zone data.
    pub zone: TimeZone,
}

impl PartialEq for ScheduleConfig {
    fn eq(&self, other: &Self) -> bool {
        self.timezone == other.timezone
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig { timezone: DEFAULT_ZONE.into(), zone: default_zone() }
    }
}

fn default_zone() -> TimeZone {
    // The embedded data always holds the default zone; a fixed UTC+7 is the same clock.
    crate::acd::schedule::zone(DEFAULT_ZONE).unwrap_or_else(|| {
        TimeZone::fixed(jiff::tz::Offset::from_hours(7).unwrap_or(jiff::tz::Offset::UTC))
    })
}

/// `[[holidays]]`: dates on which only the named shifts start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayConfig {
    /// What it is (shown by `tongdai schedule`).
    pub name: String,
    /// The local dates.
    pub dates: Vec<Date>,
    /// The shifts that start on those dates, by name.
    pub shifts: Vec<String>,
}

/// Reads `[schedule]`.
pub(super) fn read_schedule(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
) -> Option<ScheduleConfig> {
    let name: Spanned<String> = s.or(cx, "timezone", Spanned::new(0..0, DEFAULT_ZONE.to_string()));
    s.finish(cx);
    match crate::acd::schedule::zone(name.get_ref()) {
        Some(zone) => Some(ScheduleConfig { timezone: name.into_inner(), zone }),
        None => {
            cx.error(
                name.span(),
                "schedule.timezone",
                format!("`{}` is not a time zone", name.get_ref()),
                Some(format!("use an IANA name such as `{DEFAULT_ZONE}`")),
            );
            None
        }
    }
}

/// Reads `[[holidays]]`; `dates` holds `YYYY-MM-DD` dates and `FROM..TO` ranges (inclusive).
pub(super) fn read_holidays(
    cx: &mut Diagnostics<'_>,
    sections: Vec<Section<'_, '_>>,
    shifts: Option<&[ShiftConfig]>,
) -> Option<Vec<HolidayConfig>> {
    let mut out = Vec::new();
    for mut s in sections {
        let name: String = s.required(cx, "name").unwrap_or_default();
        let raw: Vec<Spanned<String>> = s.required(cx, "dates").unwrap_or_default();
        let mut dates = Vec::new();
        for d in &raw {
            match parse_dates(d.get_ref()) {
                Some(list) => dates.extend(list),
                None => cx.error(
                    d.span(),
                    &s.key_path("dates"),
                    format!("`{}` is not a date or a date range", d.get_ref()),
                    Some("write `2027-02-06` or `2027-02-05..2027-02-10` (at most a year)".into()),
                ),
            }
        }
        let names: Vec<Spanned<String>> = s.required(cx, "shifts").unwrap_or_default();
        if let Some(shifts) = shifts {
            for n in &names {
                if !shifts.iter().any(|x| &x.name == n.get_ref()) {
                    let known: Vec<&str> = shifts.iter().map(|x| x.name.as_str()).collect();
                    let hint = diag::closest(n.get_ref(), &known)
                        .map(|k| format!("did you mean `{k}`?"))
                        .or_else(|| Some("name a `[[shifts]]` entry".into()));
                    cx.error(
                        n.span(),
                        &s.key_path("shifts"),
                        format!("no shift named `{}`", n.get_ref()),
                        hint,
                    );
                }
            }
        }
        s.finish(cx);
        out.push(HolidayConfig {
            name,
            dates,
            shifts: names.into_iter().map(Spanned::into_inner).collect(),
        });
    }
    Some(out)
}

fn parse_dates(text: &str) -> Option<Vec<Date>> {
    match text.split_once("..") {
        None => Some(vec![text.trim().parse().ok()?]),
        Some((a, b)) => {
            let (mut d, last): (Date, Date) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            if last < d || d.duration_until(last) > SignedDuration::from_hours(24 * 366) {
                return None;
            }
            let mut list = Vec::new();
            while d <= last {
                list.push(d);
                d = d.tomorrow().ok()?;
            }
            Some(list)
        }
    }
}

/// A week with no configured holiday, to check the weekly rule on: 2001-01-01 was a Monday.
const REFERENCE_MONDAY: Date = Date::constant(2001, 1, 1);
/// At most this many gap warnings; the rest are counted in the last one.
const MAX_GAP_WARNINGS: usize = 5;

/// Checks the whole schedule: shift names unique, no agent in two shifts at once (errors at the
/// later shift), hours with nobody on duty in the weekly rule and on each holiday (warnings).
/// `spans[i]` is where `shifts[i]` is written.
pub(super) fn check(
    cx: &mut Diagnostics<'_>,
    schedule: &ScheduleConfig,
    shifts: &[ShiftConfig],
    spans: &[Range<usize>],
    holidays: &[HolidayConfig],
) {
    let span = |i: usize| spans.get(i).cloned().unwrap_or(0..0);
    for (i, s) in shifts.iter().enumerate() {
        if shifts[..i].iter().any(|o| o.name == s.name) {
            cx.error(
                span(i),
                &format!("shifts[{i}].name"),
                format!("a second shift named `{}`", s.name),
                Some("give every shift its own name (holidays refer to shifts by name)".into()),
            );
        }
    }
    let plan = Schedule::new(schedule.zone.clone(), shifts, holidays);
    let mut windows = Vec::new();
    if let Some(start) = local(schedule, REFERENCE_MONDAY) {
        windows.push((start, start + SignedDuration::from_hours(24 * 7), None));
    }
    for h in holidays {
        for d in &h.dates {
            let (Some(start), Ok(next)) = (local(schedule, *d), d.tomorrow()) else { continue };
            let Some(end) = local(schedule, next) else { continue };
            windows.push((start, end, Some(*d)));
        }
    }
    for (i, s) in shifts.iter().enumerate() {
        if s.days == 0 && !holidays.iter().any(|h| h.shifts.contains(&s.name)) {
            cx.warning(
                span(i),
                &format!("shifts[{i}].days"),
                format!("shift `{}` has no days and no holiday names it: it never starts", s.name),
                Some("give it `days`, or name it in a `[[holidays]]` entry's `shifts`".into()),
            );
        }
    }
    let mut reported = std::collections::BTreeSet::new();
    // (hours, days): the weekly rule's gaps grouped by hours ("21:00–22:00 every day").
    let mut gaps: Vec<(String, Vec<String>)> = Vec::new();
    for (from, until, holiday) in &windows {
        for o in plan.overlaps(*from, *until) {
            if reported.insert((o.first, o.second, o.agent.clone())) {
                let (a, b) = (&shifts[o.first].name, &shifts[o.second].name);
                cx.error(
                    span(o.second),
                    &format!("shifts[{}].agents", o.second),
                    format!(
                        "agent `{}` is on shifts `{a}` and `{b}` at once ({})",
                        o.agent,
                        describe(schedule, o.at, *holiday)
                    ),
                    Some(
                        "take the agent off one of them, or make the hours meet end to start"
                            .into(),
                    ),
                );
            }
        }
        for (start, end) in plan.gaps(*from, *until) {
            let (a, b) = (schedule.zone.to_datetime(start), schedule.zone.to_datetime(end));
            let to = if b.date() > a.date() && b.time() == Time::midnight() {
                "24:00".to_string()
            } else {
                b.time().strftime("%H:%M").to_string()
            };
            let hours = format!("{}–{to}", a.time().strftime("%H:%M"));
            let day = match holiday {
                Some(d) => format!("on {d}"),
                None => a.strftime("%a").to_string(),
            };
            let weekly = holiday.is_none();
            let same = |(h, days): &&mut (String, Vec<String>)| {
                weekly && *h == hours && days.iter().all(|d| !d.starts_with("on "))
            };
            match gaps.iter_mut().find(same) {
                Some((_, days)) => days.push(day),
                None => gaps.push((hours, vec![day])),
            }
        }
    }
    let at = spans.first().cloned().unwrap_or(0..0);
    let hint =
        "calls in these hours overflow to the national centre; `tongdai schedule` shows the week";
    for (hours, days) in gaps.iter().take(MAX_GAP_WARNINGS) {
        let when = if days.len() == 7 { "every day".to_string() } else { days.join(", ") };
        let message = format!("nobody on duty {hours} {when}");
        cx.warning(at.clone(), "shifts", message, Some(hint.into()));
    }
    if gaps.len() > MAX_GAP_WARNINGS {
        let more = gaps.len() - MAX_GAP_WARNINGS;
        cx.warning(at, "shifts", format!("… and {more} more stretches with nobody on duty"), None);
    }
}

/// Local midnight starting `date`.
fn local(schedule: &ScheduleConfig, date: Date) -> Option<jiff::Timestamp> {
    schedule.zone.to_timestamp(DateTime::from_parts(date, Time::midnight())).ok()
}

/// "Mon 06:00" for the weekly rule, "2027-02-06 (holiday) 06:00" on a holiday.
fn describe(schedule: &ScheduleConfig, at: jiff::Timestamp, holiday: Option<Date>) -> String {
    let dt = schedule.zone.to_datetime(at);
    match holiday {
        Some(_) => format!("{} {}", dt.date(), dt.time().strftime("%H:%M")),
        None => dt.strftime("%a %H:%M").to_string(),
    }
}
