//! Configuration: TOML text → validated types, one struct per subsystem, all built before any port is
//! bound. `tongdai check-config` and SIGHUP reload run this same code. Part of the config layer.
//!
//! Every key, its meaning and its default is documented in `config/tongdai.toml`, which is also the
//! built-in default (embedded with `include_str!`), so the documentation cannot drift from the code.
//! Later subsystems add their own section: a `read_*` function here and a struct in their own module.

mod diag;
mod directory;
mod limits;
mod overflow;
mod privacy;
mod provinces;
mod queue;
mod read;
mod records;
mod registrar;
mod schedule;
mod secret;
mod service_level;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;
use toml::de::DeTable;

use diag::Diagnostics;
pub use diag::{ConfigError, Diagnostic, Severity, Source};
pub use limits::Caps;
pub use overflow::{OverflowConfig, OverflowMethod, OverflowTarget, TargetCredentials};
pub use privacy::PrivacyConfig;
pub use queue::{AnswerMode, FeatureCode, FeatureCodes, QueueConfig, SupervisionMode};
use read::{FromToml, Problem, Section};
pub use records::RecordsConfig;
pub use registrar::{RegistrarSettings, TrunkRegistrationConfig};
pub use schedule::{HolidayConfig, ScheduleConfig};
pub use service_level::{ServiceLevelConfig, Tally};

/// The built-in default configuration: loopback only, three example agents, an always-on shift.
pub const DEFAULT_TOML: &str = include_str!("../../config/tongdai.toml");

/// The folder the built-in default's relative paths start from (it is `config/tongdai.toml`).
pub const BUILTIN_BASE: &str = "config";

/// Where `tongdai run` looks for a configuration file when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/tongdai/tongdai.toml";

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the configuration came from (a path, or `<built-in default>`).
    pub origin: PathBuf,
    /// The centre this instance serves.
    pub centre: CentreConfig,
    /// SIP listeners and protocol timers.
    pub sip: SipConfig,
    /// The provider's SIP trunk: who may send calls, and which numbers are ours.
    pub trunk: TrunkConfig,
    /// The operators.
    pub agents: Vec<AgentConfig>,
    /// Who is on duty when.
    pub shifts: Vec<ShiftConfig>,
    /// The zone shifts are written in (`[schedule]`).
    pub schedule: ScheduleConfig,
    /// Dates whose own shifts replace the weekly rule (`[[holidays]]`).
    pub holidays: Vec<HolidayConfig>,
    /// RTP.
    pub media: MediaConfig,
    /// The admin/metrics HTTP listener.
    pub http: HttpConfig,
    /// Log level and format.
    pub log: LogConfig,
    /// Start-up and shut-down behaviour.
    pub lifecycle: LifecycleConfig,
    /// Registration limits, persisted bindings, keep-alives, bans (`[registrar]`).
    pub registrar: RegistrarSettings,
    /// tongdai's own registration to the provider, when configured (`[trunk_registration]`).
    pub trunk_registration: Option<TrunkRegistrationConfig>,
    /// How calls are handed to agents, and the agents' feature codes.
    pub queue: QueueConfig,
    /// Caller identity, pseudonyms and what agents see.
    pub privacy: PrivacyConfig,
    /// Call records: file, retention, call-backs (`[records]`).
    pub records: RecordsConfig,
    /// Overflow to the national centre (`[overflow]`; no targets: no overflow).
    pub overflow: OverflowConfig,
    /// The service level's answer target and short-abandon time (`[service_level]`).
    pub service_level: ServiceLevelConfig,
    /// How calls are attributed to provinces (`[provinces]`).
    pub provinces: crate::acd::province::ProvinceMap,
    /// Per-source rate limiting of SIP traffic (`[limits]`).
    pub limits: crate::sip::ratelimit::RateLimitConfig,
    /// Caps on calls, transactions, TCP connections and nonces (`[limits]`).
    pub caps: Caps,
    /// The transfer targets operators hand calls over to (`[[directory]]`).
    pub directory: crate::acd::directory::Directory,
}

/// `[centre]`: the regional centre this instance serves.
#[derive(Debug, Clone, PartialEq)]
pub struct CentreConfig {
    /// Display name, shown in the banner and the wallboard.
    pub name: String,
    /// At most this many simultaneous agent calls, however many agents are registered.
    pub lines: NonZeroU32,
}

/// `[sip]`: listeners, realm and timers.
#[derive(Debug, Clone, PartialEq)]
pub struct SipConfig {
    /// Addresses to listen on (each on every enabled transport).
    pub listen: Vec<SocketAddr>,
    /// Listen on UDP.
    pub udp: bool,
    /// Listen on TCP.
    pub tcp: bool,
    /// The digest realm agents authenticate in.
    pub realm: String,
    /// `User-Agent`/`Server` header value.
    pub user_agent: String,
    /// `Retry-After` seconds sent with 503 while draining.
    pub retry_after: Duration,
    /// Answer UDP requests at their source port even without `rport` (symmetric responses).
    pub force_rport: bool,
    /// Digest algorithms challenged, in order of preference (RFC 8760: SHA-256 first).
    pub digest_algorithms: Vec<crate::sip::auth::Algorithm>,
    /// User-Agent prefixes of softphones that fail on any SHA-256 challenge: offered MD5 alone.
    pub md5_only_user_agents: Vec<String>,
    /// RFC 3261 timer base values.
    pub timers: SipTimers,
}

/// `[sip.timers]`: RFC 3261 §17 base values; every other timer derives from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipTimers {
    /// T1: RTT estimate (default 500 ms).
    pub t1: Duration,
    /// T2: the maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// T4: the maximum duration a message will remain in the network (default 5 s).
    pub t4: Duration,
}

/// `[trunk]`: the provider's SBC.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkConfig {
    /// Source networks allowed to send calls (INVITE) to us.
    pub allow: Vec<IpNet>,
    /// Called numbers we answer (the user part of the Request-URI), e.g. `111`.
    pub numbers: Vec<String>,
    /// The channels the trunk contract allows at once, when bounded: callers' legs plus our
    /// outbound legs through it (a bridged overflow uses two).
    pub channels: Option<u32>,
    /// Where calls to a number go (the provider's SBC), e.g. `[[directory]]` entries with a
    /// `number`; `None`: tongdai dials no numbers.
    pub outbound: Option<SocketAddr>,
}

/// `[[agents]]`: one operator.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Stable id used in metrics, records and the API.
    pub id: String,
    /// Display name.
    pub name: String,
    /// SIP user (the AOR's user part) the softphone registers as.
    pub user: String,
    /// How the agent proves who it is.
    pub credential: Credential,
    /// Operator (rung by the queue) or supervisor (listens, whispers, barges; never rung).
    pub role: AgentRole,
}

/// `[[agents]] role`: what an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentRole {
    /// Takes queue calls and dials the state feature codes (`*21`…).
    #[default]
    Operator,
    /// Supervises operators' calls (listen, whisper, barge); the queue never rings it and it
    /// holds no operator line.
    Supervisor,
}

impl AgentRole {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentRole::Operator => "operator",
            AgentRole::Supervisor => "supervisor",
        }
    }
}

impl FromToml for AgentRole {
    fn from_toml(value: &Spanned<toml::de::DeValue<'_>>) -> Result<Self, Problem> {
        match String::from_toml(value)?.as_str() {
            "operator" => Ok(AgentRole::Operator),
            "supervisor" => Ok(AgentRole::Supervisor),
            other => Err(Problem::new(format!("unknown role `{other}`"))
                .hint("use \"operator\" (takes queue calls) or \"supervisor\" (supervises them)")),
        }
    }
}

impl AgentConfig {
    /// True for an operator: an account the queue rings.
    pub fn is_operator(&self) -> bool {
        self.role == AgentRole::Operator
    }
}

/// A digest credential: the clear password, or pre-computed HA1 values.
#[derive(Clone, PartialEq)]
pub enum Credential {
    /// The password itself (from the config or a secret file).
    Password(Secret),
    /// HA1 = H(user:realm:password), hex, per algorithm; a challenge offers only what is present.
    Ha1 {
        /// MD5 HA1.
        md5: Option<Secret>,
        /// SHA-256 HA1 (RFC 8760).
        sha256: Option<Secret>,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(<secret>)"),
            Credential::Ha1 { md5, sha256 } => {
                write!(f, "Ha1 {{ md5: {}, sha256: {} }}", md5.is_some(), sha256.is_some())
            }
        }
    }
}

/// A secret value: its `Debug` never shows it and it has no `Display`, so it cannot reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret itself, for the one place that needs it (digest computation).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// `[[shifts]]`: a weekly rule naming who is on duty.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftConfig {
    /// The shift's name.
    pub name: String,
    /// Days of the week it starts on (bit 0 = Monday … bit 6 = Sunday).
    pub days: u8,
    /// Start, minutes after local midnight.
    pub start: u16,
    /// End, minutes after local midnight (1440 = midnight); at or before `start` means overnight.
    pub end: u16,
    /// Agent ids on duty.
    pub agents: Vec<String>,
}

/// `[media]`: RTP.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// The address RTP sockets bind to and that SDP advertises.
    pub address: std::net::IpAddr,
    /// First RTP port (even); RTCP uses the next odd port.
    pub rtp_port_min: u16,
    /// Last RTP port.
    pub rtp_port_max: u16,
    /// The folder of prompt WAVs (8 kHz, 16-bit, mono), resolved against the config file's folder.
    pub prompts: PathBuf,
    /// A leg with no RTP or RTCP from its peer for this long (not on hold) is dead. Default 120 s.
    pub rtp_timeout: Duration,
    /// How long a caller has to press 1 after the urgent-lane menu before joining the normal lane.
    /// Default 4 s.
    pub menu_timeout: Duration,
}

/// `[http]`: admin API, metrics, wallboard.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// A file holding the bearer token that admin API changes (pause/resume) require, resolved
    /// against the config file's folder and read at each request (so it can be rotated); `None`:
    /// changes are refused.
    pub token_file: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// A `tracing` filter directive, e.g. `info` or `info,tongdai::sip=debug`; `RUST_LOG` overrides.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line (for journald and log shippers).
    Json,
}

impl FromToml for LogFormat {
    fn from_toml(value: &Spanned<toml::de::DeValue<'_>>) -> Result<Self, Problem> {
        match String::from_toml(value)?.as_str() {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(Problem::new(format!("unknown log format `{other}`"))
                .hint("use \"human\" or \"json\"")),
        }
    }
}

/// `[lifecycle]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// On SIGTERM, how long active calls may continue before the daemon exits anyway.
    pub drain_grace: Duration,
}

impl Config {
    /// The built-in default configuration.
    pub fn builtin() -> Result<Config, ConfigError> {
        // The built-in default is `config/tongdai.toml`: its relative paths (prompts) resolve as
        // they would for that file, from the working directory of a checkout.
        let source = Source::new("<built-in default>", DEFAULT_TOML.to_string());
        Config::from_source(&source, Path::new(BUILTIN_BASE)).map(|(config, _)| config)
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                key: "<file>".to_string(),
                message: format!("cannot read the file: {e}"),
                hint: Some("check the path and that the daemon's user may read it".to_string()),
            }],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_source(&Source::new(path, text), base)
    }

    /// Validates `source`; relative paths in it (secret files) are taken from `base`. Returns the
    /// configuration and its warnings, or every error found.
    pub fn from_source(
        source: &Source,
        base: &Path,
    ) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        let mut cx = Diagnostics::new(source);
        let (doc, syntax) = DeTable::parse_recoverable(source.text());
        for e in &syntax {
            let span = e.span().unwrap_or(0..0);
            cx.error(
                span,
                "<syntax>",
                e.message().trim().to_string(),
                Some("this is not valid TOML".into()),
            );
        }
        let config =
            if syntax.is_empty() { read_config(&mut cx, &doc, source.name(), base) } else { None };
        let failed = cx.has_errors();
        let diagnostics = cx.into_vec();
        match config {
            Some(config) if !failed => Ok((config, diagnostics)),
            _ => Err(ConfigError { diagnostics }),
        }
    }

    /// Which sections differ from `other`, and whether applying them needs a restart.
    pub fn changes_from(&self, old: &Config) -> Vec<Change> {
        let mut out = Vec::new();
        let mut note = |section: &'static str, differs: bool, needs_restart: bool| {
            if differs {
                out.push(Change { section, needs_restart });
            }
        };
        note("centre", self.centre != old.centre, false);
        note(
            "sip",
            self.sip.listen != old.sip.listen
                || self.sip.udp != old.sip.udp
                || self.sip.tcp != old.sip.tcp,
            true,
        );
        note("sip.timers", self.sip.timers != old.sip.timers, false);
        note("trunk", self.trunk != old.trunk, false);
        note("agents", self.agents != old.agents, false);
        note("shifts", self.shifts != old.shifts, false);
        note("schedule", self.schedule != old.schedule, false);
        note("holidays", self.holidays != old.holidays, false);
        note("media", self.media != old.media, true);
        note("http", self.http != old.http, true);
        note("log", self.log != old.log, false);
        note("lifecycle", self.lifecycle != old.lifecycle, false);
        note("registrar", self.registrar != old.registrar, false);
        note("registrar.database", self.registrar.database != old.registrar.database, true);
        note("trunk_registration", self.trunk_registration != old.trunk_registration, true);
        note("queue", self.queue != old.queue, false);
        note(
            "privacy",
            self.privacy.key_file == old.privacy.key_file && self.privacy != old.privacy,
            false,
        );
        // The pseudonym key is read once at start: a new file would change every pseudonym.
        note("privacy.key_file", self.privacy.key_file != old.privacy.key_file, true);
        note("records", self.records != old.records, true);
        note("overflow", self.overflow != old.overflow, false);
        // Today's live service level keeps one pair of thresholds for the whole run.
        note("service_level", self.service_level != old.service_level, true);
        note("provinces", self.provinces != old.provinces, false);
        note("limits", self.limits != old.limits || self.caps != old.caps, false);
        note("directory", self.directory != old.directory, false);
        out
    }
}

/// One section that a reload changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The section's name.
    pub section: &'static str,
    /// True when the running daemon keeps the old value until it is restarted (listeners).
    pub needs_restart: bool,
}

fn read_config(
    cx: &mut Diagnostics<'_>,
    doc: &Spanned<DeTable<'_>>,
    origin: &Path,
    base: &Path,
) -> Option<Config> {
    let mut root = Section::root(doc);
    let section = root.table(cx, "centre");
    let centre = read_centre(cx, section);
    let section = root.table(cx, "sip");
    let sip = read_sip(cx, section);
    let section = root.table(cx, "trunk");
    let trunk = read_trunk(cx, section, sip.as_ref());
    let trunk_allow = trunk.as_ref().map(|t| t.allow.clone()).unwrap_or_default();
    let section = root.table(cx, "registrar");
    let registrar = registrar::read_registrar(cx, section, base, &trunk_allow);
    let present = root.raw("trunk_registration").is_some();
    let section = root.table(cx, "trunk_registration");
    let trunk_registration =
        if present { registrar::read_trunk_registration(cx, section, base) } else { Ok(None) };
    let section = root.tables(cx, "agents");
    let agents = read_agents(cx, section, base);
    let section = root.tables(cx, "shifts");
    let shifts_span = section.first().map(Section::span);
    let shift_spans: Vec<_> = section.iter().map(Section::span).collect();
    let shifts = read_shifts(cx, section, agents.as_deref());
    let section = root.table(cx, "schedule");
    let schedule = schedule::read_schedule(cx, section);
    let section = root.tables(cx, "holidays");
    let holidays = schedule::read_holidays(cx, section, shifts.as_deref());
    if let (Some(sched), Some(shifts), Some(holidays)) = (&schedule, &shifts, &holidays)
        && shifts.len() == shift_spans.len()
    {
        schedule::check(cx, sched, shifts, &shift_spans, holidays);
    }
    if let (Some(agents), Some(shifts), Some(span)) = (&agents, &shifts, shifts_span) {
        let off_shift = |a: &&AgentConfig| !shifts.iter().any(|s| s.agents.contains(&a.id));
        for agent in agents.iter().filter(|a| a.is_operator()).filter(off_shift) {
            cx.warning(
                span.clone(),
                "shifts",
                format!("agent `{}` is on no shift and will never be offered calls", agent.id),
                Some("add its id to a shift's `agents`".into()),
            );
        }
    }
    let section = root.table(cx, "media");
    let media = read_media(cx, section, base);
    let section = root.table(cx, "http");
    let http = read_http(cx, section, base);
    let section = root.table(cx, "log");
    let log = read_log(cx, section);
    let section = root.table(cx, "lifecycle");
    let lifecycle = read_lifecycle(cx, section);
    let section = root.table(cx, "queue");
    let queue = queue::read_queue(cx, section);
    let section = root.table(cx, "privacy");
    let privacy = privacy::read_privacy(cx, section, base);
    let section = root.table(cx, "records");
    let records = records::read_records(cx, section, base);
    let section = root.table(cx, "overflow");
    let overflow = overflow::read_overflow(cx, section, base);
    let section = root.table(cx, "service_level");
    let service_level = service_level::read_service_level(cx, section);
    let section = root.table(cx, "provinces");
    let provinces = provinces::read_provinces(cx, section, trunk.as_ref());
    let section = root.table(cx, "limits");
    let never_limited = registrar.as_ref().map(|r| r.bans.allow.clone()).unwrap_or_default();
    let (limits, caps) = limits::read_limits(cx, section, &never_limited).unzip();
    let section = root.tables(cx, "directory");
    let directory = directory::read_directory(cx, section, trunk.as_ref(), queue.as_ref());
    root.finish(cx);
    Some(Config {
        origin: origin.to_path_buf(),
        centre: centre?,
        sip: sip?,
        trunk: trunk?,
        agents: agents?,
        shifts: shifts?,
        schedule: schedule?,
        holidays: holidays?,
        media: media?,
        http: http?,
        log: log?,
        lifecycle: lifecycle?,
        registrar: registrar?,
        trunk_registration: trunk_registration.ok()?,
        queue: queue?,
        privacy: privacy?,
        records: records?,
        overflow: overflow?,
        service_level: service_level?,
        provinces: provinces?,
        limits: limits?,
        caps: caps?,
        directory: directory?,
    })
}

fn read_centre(cx: &mut Diagnostics<'_>, mut s: Section<'_, '_>) -> Option<CentreConfig> {
    let name = s.or(cx, "name", "tongdai".to_string());
    let lines = s.or(cx, "lines", NonZeroU32::new(3)?);
    s.finish(cx);
    Some(CentreConfig { name, lines })
}

fn read_sip(cx: &mut Diagnostics<'_>, mut s: Section<'_, '_>) -> Option<SipConfig> {
    let default_listen = vec![SocketAddr::from(([127, 0, 0, 1], 5060))];
    let listen: Vec<SocketAddr> = s.or(cx, "listen", default_listen);
    if listen.is_empty() {
        cx.error(
            s.span_of("listen"),
            &s.key_path("listen"),
            "no address to listen on",
            Some("add e.g. \"127.0.0.1:5060\"".into()),
        );
    }
    let udp = s.or(cx, "udp", true);
    let tcp = s.or(cx, "tcp", true);
    if !udp && !tcp {
        cx.error(
            s.span_of("udp"),
            &s.key_path("udp"),
            "both UDP and TCP are off",
            Some("enable at least one transport".into()),
        );
    }
    let realm = s.or(cx, "realm", "tongdai".to_string());
    let user_agent = s.or(cx, "user_agent", format!("tongdai/{}", env!("CARGO_PKG_VERSION")));
    let retry_after = s.or(cx, "retry_after", Duration::from_secs(60));
    let force_rport = s.or(cx, "force_rport", true);
    let algorithm_names: Vec<Spanned<String>> = s.or(
        cx,
        "digest_algorithms",
        vec![Spanned::new(0..0, "SHA-256".into()), Spanned::new(0..0, "MD5".into())],
    );
    let mut digest_algorithms = Vec::new();
    for name in &algorithm_names {
        match crate::sip::auth::Algorithm::from_name(name.get_ref()) {
            Some(a) if !digest_algorithms.contains(&a) => digest_algorithms.push(a),
            Some(_) => {}
            None => cx.error(
                name.span(),
                &s.key_path("digest_algorithms"),
                format!("`{}` is not a digest algorithm", name.get_ref()),
                Some("use \"SHA-256\" and/or \"MD5\"".into()),
            ),
        }
    }
    let md5_only_user_agents: Vec<String> =
        s.or(cx, "md5_only_user_agents", vec!["baresip v1.".to_string(), "SIPp".to_string()]);
    if algorithm_names.is_empty() {
        cx.error(
            s.span_of("digest_algorithms"),
            &s.key_path("digest_algorithms"),
            "no digest algorithm",
            Some("list at least one: [\"SHA-256\", \"MD5\"]".into()),
        );
    }
    let mut t = s.table(cx, "timers");
    let t1 = t.or(cx, "t1", Duration::from_millis(500));
    let t2 = t.or(cx, "t2", Duration::from_secs(4));
    let t4 = t.or(cx, "t4", Duration::from_secs(5));
    if t1.is_zero() || t1 >= t2 {
        cx.error(
            t.span_of("t1"),
            &t.key_path("t1"),
            "T1 must be above zero and below T2",
            Some("RFC 3261 defaults: t1 = \"500ms\", t2 = \"4s\"".into()),
        );
    }
    t.finish(cx);
    s.finish(cx);
    Some(SipConfig {
        listen,
        udp,
        tcp,
        realm,
        user_agent,
        retry_after,
        force_rport,
        digest_algorithms,
        md5_only_user_agents,
        timers: SipTimers { t1, t2, t4 },
    })
}

fn read_trunk(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    sip: Option<&SipConfig>,
) -> Option<TrunkConfig> {
    let allow: Vec<IpNet> = s.or(cx, "allow", Vec::new());
    let numbers: Vec<Spanned<String>> =
        s.or(cx, "numbers", vec![Spanned::new(s.span(), "111".to_string())]);
    for n in &numbers {
        let digits = n.get_ref().strip_prefix('+').unwrap_or(n.get_ref());
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        {
            cx.error(
                n.span(),
                &s.key_path("numbers"),
                format!("`{}` is not a dialled number", n.get_ref()),
                Some("use digits only, e.g. \"111\"".into()),
            );
        }
    }
    if numbers.is_empty() {
        cx.error(
            s.span_of("numbers"),
            &s.key_path("numbers"),
            "no hotline number",
            Some("add the number the trunk routes to us, e.g. [\"111\"]".into()),
        );
    }
    let channels: Option<u32> = s.opt(cx, "channels");
    if channels == Some(0) {
        cx.error(
            s.span_of("channels"),
            &s.key_path("channels"),
            "a trunk with no channel can carry no call",
            Some("leave `channels` out for no limit, or give the contract's number".into()),
        );
    }
    let outbound: Option<SocketAddr> = s.opt(cx, "outbound");
    let exposed = sip.map(|sip| sip.listen.iter().any(|a| !a.ip().is_loopback())).unwrap_or(false);
    if allow.is_empty() && exposed {
        cx.error(
            s.span_of("allow"),
            &s.key_path("allow"),
            "the trunk allow-list is empty while SIP listens on a non-loopback address",
            Some("list the provider SBC's addresses, e.g. allow = [\"203.0.113.10/32\"]: otherwise anyone could place calls".into()),
        );
    }
    s.finish(cx);
    let numbers = numbers.into_iter().map(Spanned::into_inner).collect();
    Some(TrunkConfig { allow, numbers, channels, outbound })
}

fn read_agents(
    cx: &mut Diagnostics<'_>,
    sections: Vec<Section<'_, '_>>,
    base: &Path,
) -> Option<Vec<AgentConfig>> {
    let mut agents = Vec::new();
    let mut ids: HashMap<String, ()> = HashMap::new();
    let mut users: HashMap<String, ()> = HashMap::new();
    let mut ok = true;
    for mut s in sections {
        let id: Option<Spanned<String>> = s.required(cx, "id");
        let name = s.opt::<String>(cx, "name");
        let user: Option<Spanned<String>> = s.opt(cx, "user");
        let role = s.or(cx, "role", AgentRole::Operator);
        let credential = read_credential(cx, &mut s, base);
        let (id_path, user_path) = (s.key_path("id"), s.key_path("user"));
        s.finish(cx);
        let (Some(id), Some(credential)) = (id, credential) else {
            ok = false;
            continue;
        };
        let user = user.unwrap_or_else(|| id.clone());
        if !is_token(id.get_ref()) {
            cx.error(
                id.span(),
                &id_path,
                format!("`{}` is not a valid id", id.get_ref()),
                Some("use letters, digits, `-` and `_`".into()),
            );
        }
        if !is_token(user.get_ref()) {
            cx.error(
                user.span(),
                &user_path,
                format!("`{}` is not a valid SIP user", user.get_ref()),
                Some("use letters, digits, `-`, `_` and `.`".into()),
            );
        }
        if ids.insert(id.get_ref().clone(), ()).is_some() {
            cx.error(
                id.span(),
                &id_path,
                format!("duplicate agent id `{}`", id.get_ref()),
                Some("each agent needs its own id".into()),
            );
        }
        if users.insert(user.get_ref().to_ascii_lowercase(), ()).is_some() {
            cx.error(
                user.span(),
                &user_path,
                format!("duplicate SIP user `{}`", user.get_ref()),
                Some("two agents cannot register as the same user".into()),
            );
        }
        agents.push(AgentConfig {
            name: name.unwrap_or_else(|| id.get_ref().clone()),
            id: id.into_inner(),
            user: user.into_inner(),
            credential,
            role,
        });
    }
    ok.then_some(agents)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn read_credential(
    cx: &mut Diagnostics<'_>,
    s: &mut Section<'_, '_>,
    base: &Path,
) -> Option<Credential> {
    let password: Option<String> = s.opt(cx, "password");
    let password_file: Option<PathBuf> = s.opt(cx, "password_file");
    let md5 = read_hex_secret(cx, s, "ha1_md5", 32);
    let sha256 = read_hex_secret(cx, s, "ha1_sha256", 64);
    let given = [password.is_some(), password_file.is_some(), md5.is_some() || sha256.is_some()];
    match given.iter().filter(|g| **g).count() {
        0 => {
            let absent = ["password", "password_file", "ha1_md5", "ha1_sha256"]
                .iter()
                .all(|k| s.raw(k).is_none());
            if absent {
                cx.error(
                    s.span(),
                    &s.key_path("password"),
                    "no credential",
                    Some("set one of `password`, `password_file`, `ha1_md5`/`ha1_sha256`".into()),
                );
            }
            None
        }
        1 => {
            if let Some(p) = password {
                return Some(Credential::Password(Secret(p)));
            }
            if let Some(path) = password_file {
                let key = s.key_path("password_file");
                let span = s.span_of("password_file");
                return secret::read_secret_file(cx, span, &key, &base.join(&path))
                    .map(Credential::Password);
            }
            Some(Credential::Ha1 { md5, sha256 })
        }
        _ => {
            cx.error(
                s.span(),
                &s.key_path("password"),
                "more than one credential",
                Some("keep one of `password`, `password_file`, `ha1_*`".into()),
            );
            None
        }
    }
}

fn read_hex_secret(
    cx: &mut Diagnostics<'_>,
    s: &mut Section<'_, '_>,
    key: &'static str,
    len: usize,
) -> Option<Secret> {
    let value: String = s.opt(cx, key)?;
    if value.len() != len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        cx.error(
            s.span_of(key),
            &s.key_path(key),
            format!("expected {len} hex digits"),
            Some("HA1 is hex(H(user:realm:password))".into()),
        );
        return None;
    }
    Some(Secret(value.to_ascii_lowercase()))
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn read_shifts(
    cx: &mut Diagnostics<'_>,
    sections: Vec<Section<'_, '_>>,
    agents: Option<&[AgentConfig]>,
) -> Option<Vec<ShiftConfig>> {
    let mut shifts = Vec::new();
    for mut s in sections {
        let name: String = s.required(cx, "name").unwrap_or_default();
        let days_raw: Vec<Spanned<String>> =
            s.or(cx, "days", DAYS.iter().map(|d| Spanned::new(0..0, d.to_string())).collect());
        let mut days = 0u8;
        for d in &days_raw {
            match DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.get_ref())) {
                Some(i) => days |= 1 << i,
                None => cx.error(
                    d.span(),
                    &s.key_path("days"),
                    format!("`{}` is not a day", d.get_ref()),
                    Some("use mon, tue, wed, thu, fri, sat, sun".into()),
                ),
            }
        }
        let start = read_clock(cx, &mut s, "start");
        let end = read_clock(cx, &mut s, "end");
        let members: Vec<Spanned<String>> = s.or(cx, "agents", Vec::new());
        if let Some(agents) = agents {
            for m in &members {
                if !agents.iter().any(|a| &a.id == m.get_ref()) {
                    let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
                    let hint =
                        diag::closest(m.get_ref(), &ids).map(|n| format!("did you mean `{n}`?"));
                    cx.error(
                        m.span(),
                        &s.key_path("agents"),
                        format!("no agent with id `{}`", m.get_ref()),
                        hint,
                    );
                }
            }
        }
        s.finish(cx);
        if let (Some(start), Some(end)) = (start, end) {
            shifts.push(ShiftConfig {
                name,
                days,
                start,
                end,
                agents: members.into_iter().map(Spanned::into_inner).collect(),
            });
        }
    }
    Some(shifts)
}

fn read_clock(cx: &mut Diagnostics<'_>, s: &mut Section<'_, '_>, key: &'static str) -> Option<u16> {
    let text: String = s.required(cx, key)?;
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0)) && text.len() == 5).then_some(h * 60 + m)
    });
    if parsed.is_none() {
        cx.error(
            s.span_of(key),
            &s.key_path(key),
            format!("`{text}` is not a time of day"),
            Some("write HH:MM in 24-hour local time, e.g. \"06:00\" or \"24:00\"".into()),
        );
    }
    parsed
}

fn read_media(
    cx: &mut Diagnostics<'_>,
    mut s: Section<'_, '_>,
    base: &Path,
) -> Option<MediaConfig> {
    let address: Spanned<String> = s.or(cx, "address", Spanned::new(0..0, "127.0.0.1".to_string()));
    let parsed = address.get_ref().parse();
    if parsed.is_err() {
        cx.error(
            address.span(),
            &s.key_path("address"),
            format!("`{}` is not an IP address", address.get_ref()),
            Some("e.g. \"127.0.0.1\" or the host's public address".into()),
        );
    }
    let min: u16 = s.or(cx, "rtp_port_min", 20000);
    let max: u16 = s.or(cx, "rtp_port_max", 20999);
    if !min.is_multiple_of(2) || min < 1024 || max <= min {
        cx.error(
            s.span_of("rtp_port_min"),
            &s.key_path("rtp_port_min"),
            format!("bad RTP port range {min}-{max}"),
            Some("use an even first port ≥ 1024 below the last port, e.g. 20000-20999".into()),
        );
    }
    let prompts = base.join(s.or(cx, "prompts", PathBuf::from("prompts")));
    check_prompts(cx, &s, &prompts);
    let rtp_timeout = s.or(cx, "rtp_timeout", Duration::from_secs(120)).max(Duration::from_secs(1));
    let menu_timeout = s.or(cx, "menu_timeout", Duration::from_secs(4));
    s.finish(cx);
    Some(MediaConfig {
        address: parsed.ok()?,
        rtp_port_min: min,
        rtp_port_max: max,
        prompts,
        rtp_timeout,
        menu_timeout,
    })
}

/// Loads the prompt folder once to prove every file decodes and the required prompts are there: a
/// broken WAV is found by `check-config`, not by the first caller.
fn check_prompts(cx: &mut Diagnostics<'_>, s: &Section<'_, '_>, dir: &Path) {
    let key = s.key_path("prompts");
    match crate::media::prompt::PromptSet::load_dir(dir) {
        Ok(set) => {
            for name in crate::acd::b2bua::REQUIRED_PROMPTS {
                if !set.contains(name) {
                    cx.error(
                        s.span_of("prompts"),
                        &key,
                        format!("prompt `{name}.wav` is missing from `{}`", dir.display()),
                        Some(
                            "run config/prompts/make-prompts.sh, or add a recording of that name"
                                .into(),
                        ),
                    );
                }
            }
        }
        Err(e) => cx.error(
            s.span_of("prompts"),
            &key,
            e.to_string(),
            Some(
                "prompts are 8 kHz, 16-bit, mono PCM WAV files; see config/prompts/README.md"
                    .into(),
            ),
        ),
    }
}

fn read_http(cx: &mut Diagnostics<'_>, mut s: Section<'_, '_>, base: &Path) -> Option<HttpConfig> {
    let listen = s.or(cx, "listen", SocketAddr::from(([127, 0, 0, 1], 9111)));
    let token_file: Option<PathBuf> = s.opt(cx, "token_file");
    if let Some(path) = &token_file {
        let key = s.key_path("token_file");
        secret::warn_if_exposed(cx, s.span_of("token_file"), &key, &base.join(path));
    }
    s.finish(cx);
    Some(HttpConfig { listen, token_file: token_file.map(|p| base.join(p)) })
}

fn read_log(cx: &mut Diagnostics<'_>, mut s: Section<'_, '_>) -> Option<LogConfig> {
    let level: String = s.or(cx, "level", "info".to_string());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        cx.error(s.span_of("level"), &s.key_path("level"), format!("`{level}` is not a log filter"), Some("use error, warn, info, debug or trace, optionally per module: \"info,tongdai::sip=debug\"".into()));
    }
    let format = s.or(cx, "format", LogFormat::Human);
    s.finish(cx);
    Some(LogConfig { level, format })
}

fn read_lifecycle(cx: &mut Diagnostics<'_>, mut s: Section<'_, '_>) -> Option<LifecycleConfig> {
    let drain_grace = s.or(cx, "drain_grace", Duration::from_secs(30));
    s.finish(cx);
    Some(LifecycleConfig { drain_grace })
}
