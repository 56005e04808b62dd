//! `[service_level]`: the two thresholds of the service level, and the formula itself, so that the
//! daily report, the wallboard/API and the `tongdai_service_level_ratio` gauge all judge a call
//! the same way. Part of the config layer: TOML → [`ServiceLevelConfig`].
//!
//! Service level = calls answered within `answer_within` of queueing ÷ (calls answered + calls
//! abandoned after more than `short_abandon` in the queue). A caller who hangs up within the
//! short-abandon time (a misdial, a child who got scared) counts on neither side; overflowed and
//! refused calls are not judged either. No judged call: no service level (`None`).

use std::time::Duration;

use super::diag::Diagnostics;
use super::read::Section;

/// `[service_level]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLevelConfig {
    /// A call answered after at most this long in the queue is answered in time (T).
    pub answer_within: Duration,
    /// A caller who abandons after at most this long in the queue is not judged (S).
    pub short_abandon: Duration,
}

impl Default for ServiceLevelConfig {
    /// The hotline's target: 20 s, with 5 s short abandons.
    fn default() -> Self {
        ServiceLevelConfig {
            answer_within: Duration::from_secs(20),
            short_abandon: Duration::from_secs(5),
        }
    }
}

impl ServiceLevelConfig {
    /// Counts an answered call that waited `wait` in the queue.
    pub fn answered(&self, tally: &mut Tally, wait: Duration) {
        tally.answered += 1;
        tally.answered_in_time += u64::from(wait <= self.answer_within);
    }

    /// Counts an abandoned call that waited `wait` in the queue (zero when it left in the prompt).
    pub fn abandoned(&self, tally: &mut Tally, wait: Duration) {
        tally.long_abandoned += u64::from(wait > self.short_abandon);
    }

    /// The `threshold` label of `tongdai_service_level_ratio`: the answer target in seconds.
    pub fn threshold_label(&self) -> String {
        format!("{}", self.answer_within.as_secs_f64())
    }
}

/// The counts the service level is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Calls answered.
    pub answered: u64,
    /// Of those, answered within the target.
    pub answered_in_time: u64,
    /// Calls abandoned after the short-abandon time.
    pub long_abandoned: u64,
}

impl Tally {
    /// Answered in time ÷ (answered + long abandons), between 0 and 1; `None` with no judged call.
    pub fn ratio(&self) -> Option<f64> {
        let judged = self.answered + self.long_abandoned;
        (judged > 0).then(|| self.answered_in_time as f64 / judged as f64)
    }
}

/// Reads `[service_level]`.
pub(super) fn read_service_level(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
) -> Option<ServiceLevelConfig> {
    let d = ServiceLevelConfig::default();
    let answer_within: Duration = s.or(cx, "answer_within", d.answer_within);
    let short_abandon: Duration = s.or(cx, "short_abandon", d.short_abandon);
    let mut ok = true;
    if answer_within < Duration::from_secs(1) {
        ok = false;
        cx.error(
            s.span_of("answer_within"),
            &s.key_path("answer_within"),
            "must be at least one second",
            Some("the hotline's target is answer_within = \"20s\"".into()),
        );
    }
    if ok && short_abandon >= answer_within {
        ok = false;
        cx.error(
            s.span_of("short_abandon"),
            &s.key_path("short_abandon"),
            "must be shorter than `answer_within`",
            Some("a few seconds, e.g. short_abandon = \"5s\"".into()),
        );
    }
    s.finish(cx);
    ok.then_some(ServiceLevelConfig { answer_within, short_abandon })
}
