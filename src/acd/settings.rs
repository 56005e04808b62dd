//! The engine's tunables ([`EngineConfig`]) with their defaults, in one place. Domain layer, sans-IO.
//!
//! [`EngineConfig::from_config`] builds them from the `[queue]` section and `[centre] lines`; the
//! defaults below are the ones `config/tongdai.toml` documents.

use std::num::NonZeroU32;
use std::time::Duration;

use super::strategy::Strategy;
use crate::config::Config;

/// The shortest timer the engine accepts: a zero interval would make the runtime call
/// `handle_timeout` again at the same instant for ever.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The engine's tunables (the `[queue]` section, plus `[centre] lines`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// At most this many agent calls at once, ringing legs and bridged calls together (each ringing
    /// leg of a ring-all counts). Default 3.
    pub lines: NonZeroU32,
    /// Who gets the next call. Default longest-idle.
    pub strategy: Strategy,
    /// How long an agent's phone rings before it is cancelled and counted as a miss. Default 15 s.
    pub ring_timeout: Duration,
    /// After-call work after each bridged call; zero makes the agent available at once. Default 30 s.
    pub wrap_up: Duration,
    /// Consecutive misses (no answer, or any refusal) after which the agent is paused with reason
    /// `no_answer`; 0 never pauses. Default 2.
    pub max_misses: u32,
    /// A `no_answer` pause lifts by itself after this long; `None` waits for the agent. Default
    /// `None`.
    pub auto_resume: Option<Duration>,
    /// At most this many callers in the prompt phase and the queue together; the next is refused.
    /// Default 20.
    pub max_queue: usize,
    /// How often a waiting caller hears their position (first at queue entry); `None` never.
    /// Default 30 s.
    pub announce_interval: Option<Duration>,
    /// The longest prompt phase: a caller is queued then even without `PromptFinished`. Default 60 s.
    pub prompt_timeout: Duration,
    /// After a miss (no answer or a refusal) the agent is not rung again for this long, so a phone
    /// that refuses at once cannot be rung in a tight loop, and the caller at the head of the queue
    /// keeps their place rather than the next caller taking that agent. Zero retries at once.
    /// Default 5 s.
    pub retry_delay: Duration,
    /// When calls go to the national centre (`[overflow]`); off without targets.
    pub overflow: OverflowRules,
}

/// The overflow rules (ARCHITECTURE.md §8), from `[overflow]`. A rule fires only while at least
/// one target is up ([`super::Input::OverflowAvailable`]); otherwise the caller stays queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverflowRules {
    /// Overflow is configured at all (`[overflow]` has targets).
    pub enabled: bool,
    /// Nobody on shift and logged in: overflow at once, even before the welcome menu.
    pub no_agents: bool,
    /// A caller in the normal lane waits at most this long. Default 60 s.
    pub max_wait: Option<Duration>,
    /// A caller in the urgent lane waits at most this long. Default 30 s.
    pub max_wait_urgent: Option<Duration>,
    /// A queued caller whose estimated wait is over this goes at once; `None` (default) never.
    pub predicted_wait: Option<Duration>,
    /// A full queue sends the next caller to the national centre instead of refusing them.
    pub queue_full: bool,
    /// After a failed hand-over (every target failed) the caller waits in the queue at least this
    /// long before the next attempt. Default 30 s.
    pub retry_interval: Duration,
}

impl Default for OverflowRules {
    fn default() -> Self {
        OverflowRules {
            enabled: false,
            no_agents: true,
            max_wait: Some(Duration::from_secs(60)),
            max_wait_urgent: Some(Duration::from_secs(30)),
            predicted_wait: None,
            queue_full: true,
            retry_interval: Duration::from_secs(30),
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lines: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            strategy: Strategy::LongestIdle,
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(30),
            max_misses: 2,
            auto_resume: None,
            max_queue: 20,
            announce_interval: Some(Duration::from_secs(30)),
            prompt_timeout: Duration::from_secs(60),
            retry_delay: Duration::from_secs(5),
            overflow: OverflowRules::default(),
        }
    }
}

impl EngineConfig {
    /// The tunables of `config`: its `[queue]` section and `[centre] lines`.
    pub fn from_config(config: &Config) -> Self {
        let q = &config.queue;
        EngineConfig {
            lines: config.centre.lines,
            strategy: q.strategy,
            ring_timeout: q.ring_timeout,
            wrap_up: q.wrap_up,
            max_misses: q.max_misses,
            auto_resume: q.auto_resume,
            max_queue: usize::try_from(q.max_queue).unwrap_or(usize::MAX),
            announce_interval: q.announce_interval,
            prompt_timeout: q.prompt_timeout,
            retry_delay: q.retry_delay,
            overflow: config.overflow.rules.clone(),
        }
    }

    /// Clamps the timers to [`MIN_INTERVAL`] so no timer can fire twice at one instant.
    pub(crate) fn normalised(mut self) -> Self {
        self.ring_timeout = self.ring_timeout.max(MIN_INTERVAL);
        self.prompt_timeout = self.prompt_timeout.max(MIN_INTERVAL);
        self.auto_resume = self.auto_resume.map(|d| d.max(MIN_INTERVAL));
        self.announce_interval = self.announce_interval.map(|d| d.max(MIN_INTERVAL));
        self.overflow.retry_interval = self.overflow.retry_interval.max(MIN_INTERVAL);
        self
    }
}
