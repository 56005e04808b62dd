//! `[queue]` and `[queue.feature_codes]`: how calls are handed to agents (strategy, ring and
//! wrap-up times, misses, queue length, announcements), how the trunk leg is answered, the codes
//! agents dial to change their own state, and the prefixes supervisors dial to join a call. Part of the config layer: TOML → [`QueueConfig`], every
//! problem with its position; the engine's `EngineConfig` is built from it.

use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::diag::Diagnostics;
use super::read::{FromToml, Problem, Section, parse_duration};
use crate::acd::Strategy;

/// `[queue]`: the engine's tunables and the trunk leg's answer mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Who gets the next call.
    pub strategy: Strategy,
    /// How long an agent's phone rings before the next agent is tried (a miss).
    pub ring_timeout: Duration,
    /// After-call work after each call; zero makes the agent available at once.
    pub wrap_up: Duration,
    /// Consecutive misses after which an agent is paused (`no_answer`); 0 never pauses.
    pub max_misses: u32,
    /// A `no_answer` pause lifts by itself after this long; `None` waits for the agent.
    pub auto_resume: Option<Duration>,
    /// At most this many callers in the welcome prompt and the queue together (≥ 1).
    pub max_queue: u32,
    /// How often a waiting caller hears their position; `None` never.
    pub announce_interval: Option<Duration>,
    /// The longest welcome phase before a caller is queued anyway.
    pub prompt_timeout: Duration,
    /// After a miss, the agent is not rung again for this long.
    pub retry_delay: Duration,
    /// How the trunk leg is answered.
    pub answer: AnswerMode,
    /// The codes agents dial to change their own state.
    pub feature_codes: FeatureCodes,
}

impl Default for QueueConfig {
    /// The engine's defaults (one place: `EngineConfig::default`), answered at once.
    fn default() -> Self {
        let e = crate::acd::EngineConfig::default();
        QueueConfig {
            strategy: e.strategy,
            ring_timeout: e.ring_timeout,
            wrap_up: e.wrap_up,
            max_misses: e.max_misses,
            auto_resume: e.auto_resume,
            max_queue: u32::try_from(e.max_queue).unwrap_or(u32::MAX),
            announce_interval: e.announce_interval,
            prompt_timeout: e.prompt_timeout,
            retry_delay: e.retry_delay,
            answer: AnswerMode::Answer,
            feature_codes: FeatureCodes::default(),
        }
    }
}

/// How a trunk call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerMode {
    /// 200 at once; the prompts and the queue run in the confirmed dialog (billed from the start).
    #[default]
    Answer,
    /// 183 Session Progress with SDP: the prompts and hold audio play as early media (RFC 3960),
    /// and the 200 goes out when an agent answers.
    EarlyMedia,
}

impl AnswerMode {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerMode::Answer => "answer",
            AnswerMode::EarlyMedia => "early-media",
        }
    }
}

impl FromToml for AnswerMode {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        match String::from_toml(value)?.as_str() {
            "answer" => Ok(AnswerMode::Answer),
            "early-media" => Ok(AnswerMode::EarlyMedia),
            other => Err(Problem::new(format!("unknown answer mode `{other}`")).hint(
                "use \"answer\" (200 at once) or \"early-media\" (183, 200 on agent answer)",
            )),
        }
    }
}

impl FromToml for Strategy {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        let name = String::from_toml(value)?;
        name.parse().map_err(|_| {
            Problem::new(format!("unknown strategy `{name}`")).hint(
                "use longest-idle, round-robin, fewest-calls, least-talk-time, linear or ring-all",
            )
        })
    }
}

/// A duration that may be switched off with `"off"`.
struct Toggle(Option<Duration>);

impl FromToml for Toggle {
    fn from_toml(value: &Spanned<DeValue<'_>>) -> Result<Self, Problem> {
        const HINT: &str = "write \"off\", or a number and a unit: \"30s\", \"10m\"";
        let text = value.get_ref().as_str().ok_or_else(|| {
            Problem::new(format!(
                "expected \"off\" or a duration, found {}",
                value.get_ref().type_str()
            ))
            .hint(HINT)
        })?;
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(Toggle(None));
        }
        match parse_duration(text) {
            Some(d) if d.is_zero() => {
                Err(Problem::new("a zero interval would repeat for ever").hint(HINT))
            }
            Some(d) => Ok(Toggle(Some(d))),
            None => Err(Problem::new(format!("`{text}` is not a duration")).hint(HINT)),
        }
    }
}

/// What an agent's dialled feature code asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureCode {
    /// Stop being offered calls (paused with reason `agent`).
    Pause,
    /// Be offered calls again.
    Resume,
    /// End after-call work now.
    EndWrapUp,
    /// Log out: the registration ends and no call is offered until the next REGISTER.
    LogOut,
    /// Call back the oldest pending abandoned caller (`[records] callbacks`): the agent's own
    /// call is their leg, and tongdai dials the caller through the trunk.
    Callback,
}

impl FeatureCode {
    /// Every code, in configuration order.
    pub const ALL: [FeatureCode; 5] = [
        FeatureCode::Pause,
        FeatureCode::Resume,
        FeatureCode::EndWrapUp,
        FeatureCode::LogOut,
        FeatureCode::Callback,
    ];

    /// The configuration key (`[queue.feature_codes]`) and bounded metric/log label.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureCode::Pause => "pause",
            FeatureCode::Resume => "resume",
            FeatureCode::EndWrapUp => "end_wrap_up",
            FeatureCode::LogOut => "log_out",
            FeatureCode::Callback => "callback",
        }
    }
}

/// How a supervisor joins an operator's call (`[queue.feature_codes]` `listen`, `whisper`,
/// `barge`, or the admin API's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SupervisionMode {
    /// The supervisor hears caller and operator; nobody hears the supervisor.
    Listen,
    /// As listen, and the operator hears the supervisor; the caller never does.
    Whisper,
    /// Three-way: everyone hears everyone else.
    Barge,
}

impl SupervisionMode {
    /// Every mode, in configuration order.
    pub const ALL: [SupervisionMode; 3] =
        [SupervisionMode::Listen, SupervisionMode::Whisper, SupervisionMode::Barge];

    /// The configuration key, API spelling and bounded metric/log label.
    pub fn as_str(self) -> &'static str {
        match self {
            SupervisionMode::Listen => "listen",
            SupervisionMode::Whisper => "whisper",
            SupervisionMode::Barge => "barge",
        }
    }

    /// The mode spelled `text` (`listen`, `whisper`, `barge`).
    pub fn parse(text: &str) -> Option<SupervisionMode> {
        SupervisionMode::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// `[queue.feature_codes]`: the number an agent dials for each [`FeatureCode`], and the prefixes a
/// supervisor dials before an operator's user or id for each [`SupervisionMode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    /// Default `*21`.
    pub pause: String,
    /// Default `*22`.
    pub resume: String,
    /// Default `*23`.
    pub end_wrap_up: String,
    /// Default `*24`.
    pub log_out: String,
    /// Default `*51` (`*51op1`: listen to op1's call).
    pub listen: String,
    /// Default `*52`.
    pub whisper: String,
    /// Default `*53`.
    pub barge: String,
    /// Default `*25`.
    pub callback: String,
}

impl Default for FeatureCodes {
    fn default() -> Self {
        FeatureCodes {
            pause: "*21".into(),
            resume: "*22".into(),
            end_wrap_up: "*23".into(),
            log_out: "*24".into(),
            listen: "*51".into(),
            whisper: "*52".into(),
            barge: "*53".into(),
            callback: "*25".into(),
        }
    }
}

impl FeatureCodes {
    /// The number dialled for `code`.
    pub fn number(&self, code: FeatureCode) -> &str {
        match code {
            FeatureCode::Pause => &self.pause,
            FeatureCode::Resume => &self.resume,
            FeatureCode::EndWrapUp => &self.end_wrap_up,
            FeatureCode::LogOut => &self.log_out,
            FeatureCode::Callback => &self.callback,
        }
    }

    /// The code `dialled` stands for (the Request-URI's user part; `%2A` is read as `*`).
    pub fn lookup(&self, dialled: &str) -> Option<FeatureCode> {
        let dialled = dialled.replace("%2A", "*").replace("%2a", "*").replace("%23", "#");
        FeatureCode::ALL.into_iter().find(|c| self.number(*c) == dialled)
    }

    /// The prefix a supervisor dials for `mode`.
    pub fn supervision_prefix(&self, mode: SupervisionMode) -> &str {
        match mode {
            SupervisionMode::Listen => &self.listen,
            SupervisionMode::Whisper => &self.whisper,
            SupervisionMode::Barge => &self.barge,
        }
    }

    /// The supervision `dialled` asks for and whom: a mode's prefix followed by an operator's
    /// user or id (`*51op1` → listen to `op1`); `None` for anything else, a bare prefix included.
    pub fn supervision(&self, dialled: &str) -> Option<(SupervisionMode, String)> {
        let dialled = dialled.replace("%2A", "*").replace("%2a", "*").replace("%23", "#");
        SupervisionMode::ALL.into_iter().find_map(|mode| {
            let target = dialled.strip_prefix(self.supervision_prefix(mode))?;
            (!target.is_empty()).then(|| (mode, target.to_string()))
        })
    }

    /// True when `user` (a Request-URI user part) looks like a feature code: it starts with `*`
    /// (or its escape), so it can be nothing else.
    pub fn looks_like_code(user: &str) -> bool {
        user.starts_with('*') || user.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%2A"))
    }
}

/// Reads `[queue]` (and its `[queue.feature_codes]`).
pub(super) fn read_queue(cx: &mut Diagnostics<'_>, mut s: Section<'_, '_>) -> Option<QueueConfig> {
    let d = QueueConfig::default();
    let strategy = s.or(cx, "strategy", d.strategy);
    let ring_timeout = s.or(cx, "ring_timeout", d.ring_timeout);
    let wrap_up = s.or(cx, "wrap_up", d.wrap_up);
    let max_misses = s.or(cx, "max_misses", d.max_misses);
    let auto_resume = s.or(cx, "auto_resume", Toggle(d.auto_resume)).0;
    let max_queue = s.or(cx, "max_queue", d.max_queue);
    let announce_interval = s.or(cx, "announce_interval", Toggle(d.announce_interval)).0;
    let prompt_timeout = s.or(cx, "prompt_timeout", d.prompt_timeout);
    let retry_delay = s.or(cx, "retry_delay", d.retry_delay);
    let answer = s.or(cx, "answer", d.answer);
    for (key, value) in [("ring_timeout", ring_timeout), ("prompt_timeout", prompt_timeout)] {
        if value.is_zero() {
            cx.error(
                s.span_of(key),
                &s.key_path(key),
                "must be above zero",
                Some(format!("e.g. {key} = \"15s\"")),
            );
        }
    }
    if max_queue == 0 {
        cx.error(
            s.span_of("max_queue"),
            &s.key_path("max_queue"),
            "must be at least 1: 0 would refuse every call",
            Some("e.g. max_queue = 20".into()),
        );
    }
    if auto_resume.is_some() && max_misses == 0 {
        cx.warning(
            s.span_of("auto_resume"),
            &s.key_path("auto_resume"),
            "has no effect while max_misses = 0 (agents are never paused for misses)",
            None,
        );
    }
    let section = s.table(cx, "feature_codes");
    let feature_codes = read_feature_codes(cx, section);
    s.finish(cx);
    Some(QueueConfig {
        strategy,
        ring_timeout,
        wrap_up,
        max_misses,
        auto_resume,
        max_queue,
        announce_interval,
        prompt_timeout,
        retry_delay,
        answer,
        feature_codes: feature_codes?,
    })
}

fn read_feature_codes(cx: &mut Diagnostics<'_>, mut s: Section<'_, '_>) -> Option<FeatureCodes> {
    let d = FeatureCodes::default();
    let mut seen: Vec<(String, &'static str)> = Vec::new();
    let mut ok = true;
    let mut read =
        |cx: &mut Diagnostics<'_>, s: &mut Section<'_, '_>, key: &'static str, def: &str| {
            let value: Spanned<String> = s.or(cx, key, Spanned::new(0..0, def.to_string()));
            let code = value.get_ref();
            let valid = code.len() >= 2
                && code.starts_with('*')
                && code[1..].bytes().all(|b| b.is_ascii_digit() || b == b'#' || b == b'*');
            if !valid {
                ok = false;
                cx.error(
                    s.span_of(key),
                    &s.key_path(key),
                    format!("`{code}` is not a feature code"),
                    Some("write `*` and digits, e.g. \"*21\"".into()),
                );
            } else if let Some((_, other)) = seen.iter().find(|(c, _)| c == code) {
                ok = false;
                cx.error(
                    s.span_of(key),
                    &s.key_path(key),
                    format!("`{code}` is also the code for `{other}`"),
                    Some("give each feature its own code".into()),
                );
            }
            seen.push((code.clone(), key));
            value.into_inner()
        };
    let pause = read(cx, &mut s, "pause", &d.pause);
    let resume = read(cx, &mut s, "resume", &d.resume);
    let end_wrap_up = read(cx, &mut s, "end_wrap_up", &d.end_wrap_up);
    let log_out = read(cx, &mut s, "log_out", &d.log_out);
    let listen = read(cx, &mut s, "listen", &d.listen);
    let whisper = read(cx, &mut s, "whisper", &d.whisper);
    let barge = read(cx, &mut s, "barge", &d.barge);
    let callback = read(cx, &mut s, "callback", &d.callback);
    // A supervision prefix is followed by the operator's name: no other code may start with it
    // (nor it with another), or `*51` + `1op1` and `*511` + `op1` would be the same number.
    for key in ["listen", "whisper", "barge"] {
        let Some((code, _)) = seen.iter().find(|(_, k)| *k == key) else { continue };
        let clash = seen.iter().find(|(other, k)| {
            *k != key
                && other != code
                && (other.starts_with(code.as_str()) || code.starts_with(other.as_str()))
        });
        if let Some((other, other_key)) = clash {
            ok = false;
            cx.error(
                s.span_of(key),
                &s.key_path(key),
                format!("`{code}` and `{other}` (`{other_key}`) start alike"),
                Some("a supervision code is followed by the operator's name: no other code may begin with it, e.g. listen = \"*51\"".into()),
            );
        }
    }
    s.finish(cx);
    ok.then_some(FeatureCodes {
        pause,
        resume,
        end_wrap_up,
        log_out,
        listen,
        whisper,
        barge,
        callback,
    })
}
