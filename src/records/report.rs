//! `tongdai report`: daily figures from the call records, overall, by province and by agent.
//! Storage layer (reads the records database; prints no caller, only counts).
//!
//! The service level is judged by `[service_level]` ([`ServiceLevelConfig`], which holds the
//! formula for the report, the wallboard and the live gauge alike): calls answered within
//! `answer_within` of queueing ÷ (calls answered + calls abandoned after more than
//! `short_abandon` in the queue). Waits are queue waits of answered calls; talk is the time
//! bridged to agents.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::{Connection, params};

use crate::config::{ServiceLevelConfig, Tally};
use crate::store::StoreError;

/// One call as the report needs it.
#[derive(Debug, Clone)]
struct Row {
    offered_ms: i64,
    outcome: Option<String>,
    agent: Option<String>,
    province: String,
    wait_ms: Option<i64>,
    talk_ms: Option<i64>,
}

/// The figures of one group of calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Calls offered.
    pub offered: u64,
    /// Answered by an agent.
    pub answered: u64,
    /// The caller hung up before an answer.
    pub abandoned: u64,
    /// Handed to the national centre.
    pub overflowed: u64,
    /// What the service level is made of.
    pub judged: Tally,
    waits: Vec<i64>,
    talks: Vec<i64>,
}

impl Figures {
    fn add(&mut self, sl: &ServiceLevelConfig, row: &Row) {
        self.offered += 1;
        let wait = row.wait_ms.unwrap_or(0);
        let wait_d = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
        match row.outcome.as_deref() {
            // A transferred call was answered by an agent first.
            Some("answered" | "transferred") => {
                self.answered += 1;
                sl.answered(&mut self.judged, wait_d);
                self.waits.push(wait);
                self.talks.push(row.talk_ms.unwrap_or(0));
            }
            Some("abandoned") => {
                self.abandoned += 1;
                sl.abandoned(&mut self.judged, wait_d);
            }
            Some("overflowed") => self.overflowed += 1,
            _ => {}
        }
    }

    /// The service level in percent, `None` with no call to judge.
    pub fn service_level(&self) -> Option<f64> {
        self.judged.ratio().map(|r| 100.0 * r)
    }

    /// Mean queue wait of answered calls, seconds.
    pub fn average_wait(&self) -> Option<f64> {
        mean(&self.waits)
    }

    /// 90th percentile (nearest rank) of the queue wait of answered calls, seconds.
    pub fn p90_wait(&self) -> Option<f64> {
        let mut w = self.waits.clone();
        w.sort_unstable();
        let rank = (w.len() * 9).div_ceil(10);
        rank.checked_sub(1).and_then(|i| w.get(i)).map(|ms| *ms as f64 / 1000.0)
    }

    /// Mean talk time of answered calls, seconds.
    pub fn average_talk(&self) -> Option<f64> {
        mean(&self.talks)
    }
}

fn mean(ms: &[i64]) -> Option<f64> {
    (!ms.is_empty()).then(|| ms.iter().sum::<i64>() as f64 / ms.len() as f64 / 1000.0)
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
}

/// Figures per day (in `zone`) for days `from..=to`: the whole centre (`all`), each province
/// and each agent.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// (day, dimension, key) → figures; dimension `all`, `province`, `agent`.
    pub groups: BTreeMap<(Date, &'static str, String), Figures>,
}

/// Reads the calls offered on days `from..=to` (local to `zone`) and sums them up, judging the
/// service level by `sl`.
pub fn build(
    conn: &Connection,
    zone: &TimeZone,
    from: Date,
    to: Date,
    sl: &ServiceLevelConfig,
) -> Result<Report, StoreError> {
    let start = day_start_ms(zone, from);
    let end = to.tomorrow().map(|d| day_start_ms(zone, d)).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(
        "SELECT offered_ms, outcome, agent, province, wait_ms, talk_ms FROM calls
         WHERE offered_ms >= ?1 AND offered_ms < ?2 ORDER BY offered_ms",
    )?;
    let rows = stmt.query_map(params![start, end], |r| {
        Ok(Row {
            offered_ms: r.get(0)?,
            outcome: r.get(1)?,
            agent: r.get(2)?,
            province: r.get(3)?,
            wait_ms: r.get(4)?,
            talk_ms: r.get(5)?,
        })
    })?;
    let mut report = Report::default();
    for row in rows {
        let row = row?;
        let day = jiff::Timestamp::from_millisecond(row.offered_ms)
            .map(|t| zone.to_datetime(t).date())
            .unwrap_or(from);
        report.groups.entry((day, "all", "all".into())).or_default().add(sl, &row);
        report.groups.entry((day, "province", row.province.clone())).or_default().add(sl, &row);
        if let Some(agent) = &row.agent {
            report.groups.entry((day, "agent", agent.clone())).or_default().add(sl, &row);
        }
    }
    Ok(report)
}

fn day_start_ms(zone: &TimeZone, day: Date) -> i64 {
    zone.to_ambiguous_timestamp(day.to_datetime(jiff::civil::Time::midnight()))
        .compatible()
        .map(|t| t.as_millisecond())
        .unwrap_or(0)
}

const HEADER: [&str; 11] = [
    "day",
    "by",
    "key",
    "offered",
    "answered",
    "abandoned",
    "overflowed",
    "service_level_pct",
    "avg_wait_s",
    "p90_wait_s",
    "avg_talk_s",
];

impl Report {
    /// The report as text in `format`.
    pub fn render(&self, format: Format) -> String {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        let mut lines: Vec<Vec<String>> = vec![HEADER.iter().map(|h| h.to_string()).collect()];
        for ((day, by, key), f) in &self.groups {
            lines.push(vec![
                day.to_string(),
                by.to_string(),
                key.clone(),
                f.offered.to_string(),
                f.answered.to_string(),
                f.abandoned.to_string(),
                f.overflowed.to_string(),
                opt(f.service_level()),
                opt(f.average_wait()),
                opt(f.p90_wait()),
                opt(f.average_talk()),
            ]);
        }
        let mut out = String::new();
        match format {
            Format::Csv => {
                for line in lines {
                    let cells: Vec<String> = line.iter().map(|c| csv_cell(c)).collect();
                    let _ = writeln!(out, "{}", cells.join(","));
                }
            }
            Format::Table => {
                let mut widths = vec![0; HEADER.len()];
                for line in &lines {
                    for (w, c) in widths.iter_mut().zip(line) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                for line in lines {
                    let mut text = String::new();
                    for (i, (c, w)) in line.iter().zip(&widths).enumerate() {
                        let pad = w - c.chars().count();
                        if i < 3 {
                            let _ = write!(text, "{c}{}  ", " ".repeat(pad));
                        } else {
                            let _ = write!(text, "{}{c}  ", " ".repeat(pad));
                        }
                    }
                    let _ = writeln!(out, "{}", text.trim_end());
                }
            }
        }
        out
    }
}

fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_owned()
    }
}
