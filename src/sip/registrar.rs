//! The registrar (protocol layer, sans-IO): RFC 3261 §10.3 bindings from an agent's address of
//! record to the contacts its softphones registered, with RFC 5626 instance keys and the flow each
//! REGISTER came on.
//!
//! The caller authenticates the REGISTER first ([`super::auth`]) and hands over the verified user;
//! [`Registrar::handle_register`] then runs the §10.3 steps (To must be a sip/sips AOR owned by that
//! user, Contact `*` rules, expiry limits with 423, Call-ID/CSeq ordering) and applies every
//! change or none: a request that fails on one contact leaves all bindings as they were (step 7's
//! "fails" is the 500 that ends the section). It answers with the 200 listing every binding and
//! its remaining time, and reports the agent's presence changes for the ACD: logged in when its
//! first binding appears, logged out when its last goes. Time is a value: [`Registrar::expire`]
//! runs at [`Registrar::poll_timeout`].
//!
//! NAT: a binding keeps the [`Flow`] its REGISTER arrived on, and requests to the agent go there,
//! whatever private address the Contact holds. Bindings are plain data so the runtime can save
//! them and [`Registrar::restore`] them after a restart.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use super::auth::VerifiedUser;
use super::message::{
    Contact, Contacts, HeaderError, NameAddr, Param, Request, Response, Scheme, Uri, name, unescape,
};
use super::transport::Flow;
use crate::config::AgentConfig;

/// Registrar limits, in seconds as they appear in `Expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest non-zero registration accepted; shorter ones get 423 with `Min-Expires`.
    pub min_expires: u32,
    /// Longest registration granted; longer requests are cut to this.
    pub max_expires: u32,
    /// Used when neither the contact nor the request says (RFC 3261 suggests 3600), then capped.
    pub default_expires: u32,
    /// Most bindings one agent may hold (softphone, desk phone, a spare), to bound memory.
    pub max_bindings: usize,
}

impl Default for RegistrarConfig {
    /// 60 s minimum, 600 s maximum (a dead softphone leaves the queue within ten minutes even when
    /// keep-alives are off), 3600 s default (so capped to 600), 8 bindings per agent.
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 600,
            default_expires: 3600,
            max_bindings: 8,
        }
    }
}

/// One binding of an agent's AOR to a contact. Plain data: the runtime saves and restores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The agent (`[[agents]] id`).
    pub agent: String,
    /// The AOR's user part (`[[agents]] user`).
    pub user: String,
    /// The contact URI, literal text kept.
    pub contact: Uri,
    /// The flow the REGISTER came on: requests to this contact go there (NAT).
    pub flow: Flow,
    /// When the binding lapses.
    pub expires_at: Instant,
    /// When it was last registered or refreshed (the tie-break between equal `q`).
    pub registered_at: Instant,
    /// RFC 5626 `+sip.instance` (e.g. `<urn:uuid:…>`), which identifies the device across
    /// address changes.
    pub instance: Option<String>,
    /// RFC 5626 `reg-id`.
    pub reg_id: Option<u32>,
    /// `q` in thousandths, when given (absent counts as 1.0 when ordering).
    pub q: Option<u16>,
    /// Call-ID of the REGISTER that made or last refreshed it.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
}

/// How bindings are told apart: by device when the contact names its instance (so a device that
/// re-registers from a new address replaces its old contact), else by contact URI.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BindingKey {
    Instance { instance: String, reg_id: Option<u32> },
    Uri(String),
}

impl Binding {
    /// Time left at `now` (zero once lapsed).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    /// The `q` used for ordering, in thousandths.
    pub fn priority(&self) -> u16 {
        self.q.unwrap_or(1000)
    }

    fn key(&self) -> BindingKey {
        key_of(&self.contact, self.instance.as_deref(), self.reg_id)
    }

    /// The Contact value listing this binding in a 200: `<uri>` with instance, reg-id, q and the
    /// remaining seconds (rounded up, so a live binding never shows 0).
    pub fn contact_value(&self, now: Instant) -> String {
        let mut params = Vec::new();
        if let Some(instance) = &self.instance {
            params.push(param("+sip.instance", Some(format!("\"{instance}\""))));
        }
        if let Some(reg_id) = self.reg_id {
            params.push(param("reg-id", Some(reg_id.to_string())));
        }
        if let Some(q) = self.q {
            params.push(param("q", Some(qvalue_text(q))));
        }
        let left = self.remaining(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        params.push(param("expires", Some(secs.to_string())));
        NameAddr { display_name: None, uri: self.contact.clone(), params }.to_string()
    }
}

fn param(name: &str, value: Option<String>) -> Param {
    Param { name: name.to_owned(), value }
}

fn qvalue_text(q: u16) -> String {
    if q >= 1000 {
        return "1".to_owned();
    }
    let frac = format!("{q:03}");
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { "0".to_owned() } else { format!("0.{frac}") }
}

/// The binding key: the instance when present, else the contact URI reduced to what RFC 3261
/// §19.1.4 compares (scheme, unescaped user, host without case, port, and the `user`, `ttl`,
/// `method`, `maddr` and `transport` parameters; other parameters do not make a URI different).
fn key_of(contact: &Uri, instance: Option<&str>, reg_id: Option<u32>) -> BindingKey {
    if let Some(instance) = instance {
        return BindingKey::Instance { instance: instance.to_owned(), reg_id };
    }
    let Some(host) = contact.host() else {
        return BindingKey::Uri(contact.as_str().to_owned());
    };
    let mut key = format!("{}:", contact.scheme().as_str());
    if let Some(user) = contact.user() {
        key.push_str(&String::from_utf8_lossy(&unescape(user)));
        key.push('@');
    }
    key.push_str(&host.to_string().to_ascii_lowercase());
    if let Some(port) = contact.port() {
        key.push_str(&format!(":{port}"));
    }
    for p in ["user", "ttl", "method", "maddr", "transport"] {
        if let Some(v) = contact.param(p) {
            key.push_str(&format!(";{p}={}", v.unwrap_or("").to_ascii_lowercase()));
        }
    }
    BindingKey::Uri(key)
}

/// An agent's presence as the registrar sees it, for the ACD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The agent's first binding appeared: it can be offered calls.
    LoggedIn {
        /// The agent.
        agent: String,
    },
    /// The agent's last binding went.
    LoggedOut {
        /// The agent.
        agent: String,
        /// Why it went.
        reason: LogoutReason,
    },
}

/// Why an agent's last binding went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogoutReason {
    /// It was not refreshed in time.
    Expired,
    /// The softphone removed it (`Expires: 0` or `Contact: *`).
    Unregistered,
    /// Its flow died (TCP closed, keep-alives unanswered).
    Unreachable,
    /// The agent left the configuration.
    Removed,
}

impl LogoutReason {
    /// A bounded label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            LogoutReason::Expired => "expired",
            LogoutReason::Unregistered => "unregistered",
            LogoutReason::Unreachable => "unreachable",
            LogoutReason::Removed => "removed",
        }
    }
}

/// Why a REGISTER is refused. [`RegisterError::status`] is the one mapping to status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// To, Call-ID, CSeq, Contact or Expires does not parse.
    #[error("malformed header: {0}")]
    Header(#[from] HeaderError),
    /// The To URI is not a sip/sips URI with a user part: not an AOR we can hold.
    #[error("To is not a sip/sips address of record")]
    NotSipAor,
    /// The authenticated user may not register this AOR (RFC 3261 §10.3 step 4).
    #[error("authenticated user does not own the AOR")]
    Forbidden,
    /// The AOR's user is no agent (§10.3 step 3).
    #[error("no such address of record")]
    UnknownAor,
    /// `Contact: *` with another contact or with an expiry other than `Expires: 0` (§10.3 step 6).
    #[error("Contact: * needs Expires: 0")]
    BadWildcard,
    /// A non-zero expiry below the minimum (§10.3 step 6): answer 423 with Min-Expires.
    #[error("interval too brief (minimum {min_expires} s)")]
    IntervalTooBrief {
        /// The minimum, for Min-Expires.
        min_expires: u32,
    },
    /// The same Call-ID with a CSeq no higher than the binding's (§10.3 step 7): a stale or
    /// reordered REGISTER, so nothing is changed.
    #[error("REGISTER out of order for its Call-ID")]
    OutOfOrder,
    /// The agent would hold more than `max_bindings` bindings.
    #[error("too many bindings")]
    TooManyBindings,
}

impl RegisterError {
    /// The status code the REGISTER is answered with.
    pub fn status(&self) -> u16 {
        match self {
            RegisterError::Header(_) | RegisterError::NotSipAor | RegisterError::BadWildcard => 400,
            RegisterError::Forbidden | RegisterError::TooManyBindings => 403,
            RegisterError::UnknownAor => 404,
            RegisterError::IntervalTooBrief { .. } => 423,
            RegisterError::OutOfOrder => 500,
        }
    }

    /// A bounded label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            RegisterError::Header(_) => "bad_header",
            RegisterError::NotSipAor => "not_sip_aor",
            RegisterError::Forbidden => "forbidden",
            RegisterError::UnknownAor => "unknown_aor",
            RegisterError::BadWildcard => "bad_wildcard",
            RegisterError::IntervalTooBrief { .. } => "interval_too_brief",
            RegisterError::OutOfOrder => "out_of_order",
            RegisterError::TooManyBindings => "too_many_bindings",
        }
    }
}

/// What [`Registrar::handle_register`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterResult {
    /// The final response to send (200 listing the bindings, or the refusal).
    pub response: Response,
    /// Presence changes for the ACD (at most one: this REGISTER touches one agent).
    pub events: Vec<Presence>,
    /// Why the request was refused, for logs and metrics; `None` on 200.
    pub refused: Option<RegisterError>,
}

/// One configured agent as the registrar knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentEntry {
    id: String,
    /// The user as configured.
    user: String,
    bindings: Vec<Binding>,
}

/// The registrar: every agent's bindings (see the module docs).
#[derive(Debug, Clone)]
pub struct Registrar {
    config: RegistrarConfig,
    /// By SIP user (the AOR's user part), lower-cased: the configuration keeps users unique
    /// without regard to case, and the endpoint finds credentials the same way.
    agents: HashMap<String, AgentEntry>,
    /// Agents (by id) whose bindings changed since [`Registrar::take_changes`]: what the runtime
    /// must save.
    changed: BTreeSet<String>,
    /// Bumped whenever a binding appears or goes (not when one is refreshed): who follows the set
    /// of bindings (the keep-alives) re-reads it only then, not on every REGISTER.
    membership: u64,
}

impl Registrar {
    /// A registrar for `agents`, with no bindings. Limits that contradict each other are made
    /// consistent (max at least min, default within them).
    pub fn new(config: RegistrarConfig, agents: &[AgentConfig]) -> Registrar {
        let mut registrar =
            Registrar { config, agents: HashMap::new(), changed: BTreeSet::new(), membership: 0 };
        registrar.set_config(config);
        registrar.set_agents(agents);
        registrar
    }

    /// The limits in force.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// New limits (config reload), made consistent like [`Registrar::new`]'s; current bindings
    /// keep the expiry they were granted.
    pub fn set_config(&mut self, config: RegistrarConfig) {
        let max_expires = config.max_expires.max(config.min_expires);
        self.config = RegistrarConfig {
            max_expires,
            default_expires: config.default_expires.clamp(config.min_expires, max_expires),
            max_bindings: config.max_bindings.max(1),
            ..config
        };
    }

    /// Replaces the agent list (config reload). Agents that stay keep their bindings; an agent whose
    /// user changed or that left loses them, reported as [`LogoutReason::Removed`].
    pub fn set_agents(&mut self, agents: &[AgentConfig]) -> Vec<Presence> {
        let mut old = std::mem::take(&mut self.agents);
        for a in agents {
            let key = a.user.to_ascii_lowercase();
            let bindings = match old.remove(&key) {
                Some(entry) if entry.id == a.id => entry.bindings,
                Some(entry) => {
                    // Another agent now owns this user: the old one's bindings go with it.
                    old.insert(key.clone(), entry);
                    Vec::new()
                }
                None => Vec::new(),
            };
            let entry = AgentEntry { id: a.id.clone(), user: a.user.clone(), bindings };
            self.agents.insert(key, entry);
        }
        let gone: Vec<AgentEntry> = old.into_values().filter(|e| !e.bindings.is_empty()).collect();
        self.changed.extend(gone.iter().map(|e| e.id.clone()));
        self.membership += 1;
        let mut events: Vec<Presence> = gone
            .into_iter()
            .map(|e| Presence::LoggedOut { agent: e.id, reason: LogoutReason::Removed })
            .collect();
        sort_events(&mut events);
        events
    }

    /// Processes an authenticated REGISTER that arrived on `flow` (RFC 3261 §10.3 steps 4–8).
    pub fn handle_register(
        &mut self,
        now: Instant,
        request: &Request,
        flow: Flow,
        user: &VerifiedUser,
    ) -> RegisterResult {
        let to_tag = to_tag(request);
        match self.apply(now, request, flow, user) {
            Ok((agent_user, events)) => {
                let mut response = Response::for_request(request, 200, Some(&to_tag));
                for b in self.bindings_of(&agent_user) {
                    response.headers.push(name::CONTACT, b.contact_value(now));
                }
                if uses_outbound(request) {
                    response.headers.push(name::REQUIRE, "outbound");
                }
                RegisterResult { response, events, refused: None }
            }
            Err(error) => {
                let mut response = Response::for_request(request, error.status(), Some(&to_tag));
                if let RegisterError::IntervalTooBrief { min_expires } = error {
                    response.headers.push(name::MIN_EXPIRES, min_expires.to_string());
                }
                RegisterResult { response, events: Vec::new(), refused: Some(error) }
            }
        }
    }

    /// The §10.3 steps; on success the AOR user and the presence change.
    fn apply(
        &mut self,
        now: Instant,
        request: &Request,
        flow: Flow,
        user: &VerifiedUser,
    ) -> Result<(String, Vec<Presence>), RegisterError> {
        let headers = &request.headers;
        let to = headers.to()?;
        if !matches!(to.uri.scheme(), Scheme::Sip | Scheme::Sips) {
            return Err(RegisterError::NotSipAor);
        }
        let aor_user = to.uri.user().ok_or(RegisterError::NotSipAor)?;
        let aor_user = String::from_utf8_lossy(&unescape(aor_user)).into_owned();
        if !aor_user.eq_ignore_ascii_case(&user.user) {
            return Err(RegisterError::Forbidden);
        }
        let call_id = headers.call_id()?.to_owned();
        let cseq = headers.cseq()?.seq;
        let contacts = headers.contacts()?;
        let header_expires = headers.expires()?;
        let config = self.config;
        let entry =
            self.agents.get_mut(&aor_user.to_ascii_lowercase()).ok_or(RegisterError::UnknownAor)?;
        let was_logged_in = !entry.bindings.is_empty();
        // Lapsed bindings not yet swept by `expire` do not count as current (§10.3 step 8).
        let mut next: Vec<Binding> =
            entry.bindings.iter().filter(|b| b.expires_at > now).cloned().collect();
        let out_of_order = |b: &Binding| b.call_id == call_id && cseq <= b.cseq;
        let mut removed_some = false;

        match contacts {
            Contacts::Wildcard => {
                if header_expires != Some(0) {
                    return Err(RegisterError::BadWildcard);
                }
                if next.iter().any(out_of_order) {
                    return Err(RegisterError::OutOfOrder);
                }
                removed_some = !next.is_empty();
                next.clear();
            }
            Contacts::List(list) => {
                // Check every contact before changing anything: all or nothing.
                let mut plan: Vec<(&Contact, u32)> = Vec::with_capacity(list.len());
                for c in &list {
                    let asked = c.expires.or(header_expires).unwrap_or(config.default_expires);
                    if asked != 0 && asked < config.min_expires {
                        return Err(RegisterError::IntervalTooBrief {
                            min_expires: config.min_expires,
                        });
                    }
                    plan.push((c, asked.min(config.max_expires)));
                }
                let before = next.clone();
                for (c, expires) in plan {
                    let instance = c.sip_instance();
                    let reg_id = c.reg_id();
                    let key = key_of(&c.addr.uri, instance.as_deref(), reg_id);
                    if before.iter().any(|b| b.key() == key && out_of_order(b)) {
                        return Err(RegisterError::OutOfOrder);
                    }
                    let found = next.iter().position(|b| b.key() == key);
                    if expires == 0 {
                        if let Some(i) = found {
                            next.remove(i);
                            removed_some = true;
                        }
                        continue;
                    }
                    let binding = Binding {
                        agent: entry.id.clone(),
                        user: entry.user.clone(),
                        contact: c.addr.uri.clone(),
                        flow,
                        expires_at: now + Duration::from_secs(u64::from(expires)),
                        registered_at: now,
                        instance,
                        reg_id,
                        q: c.q,
                        call_id: call_id.clone(),
                        cseq,
                    };
                    match found {
                        Some(i) => next[i] = binding,
                        None => next.push(binding),
                    }
                }
                if next.len() > config.max_bindings {
                    return Err(RegisterError::TooManyBindings);
                }
            }
        }

        let keys = |list: &[Binding]| -> Vec<(Flow, String)> {
            list.iter().map(|b| (b.flow, b.contact.as_str().to_owned())).collect()
        };
        if keys(&entry.bindings) != keys(&next) {
            self.membership += 1;
        }
        entry.bindings = next;
        let logged_in = !entry.bindings.is_empty();
        let agent = entry.id.clone();
        self.changed.insert(agent.clone());
        let events = match (was_logged_in, logged_in) {
            (false, true) => vec![Presence::LoggedIn { agent }],
            (true, false) => {
                let reason =
                    if removed_some { LogoutReason::Unregistered } else { LogoutReason::Expired };
                vec![Presence::LoggedOut { agent, reason }]
            }
            _ => Vec::new(),
        };
        Ok((aor_user, events))
    }

    /// Removes every binding lapsed at `now`; an agent left with none is logged out.
    pub fn expire(&mut self, now: Instant) -> Vec<Presence> {
        let mut events = Vec::new();
        for entry in self.agents.values_mut() {
            if entry.bindings.is_empty() {
                continue;
            }
            let before = entry.bindings.len();
            entry.bindings.retain(|b| b.expires_at > now);
            if entry.bindings.len() != before {
                self.membership += 1;
                self.changed.insert(entry.id.clone());
            }
            if entry.bindings.is_empty() {
                events.push(Presence::LoggedOut {
                    agent: entry.id.clone(),
                    reason: LogoutReason::Expired,
                });
            }
        }
        sort_events(&mut events);
        events
    }

    /// When the next binding lapses: call [`Registrar::expire`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.agents.values().flat_map(|e| &e.bindings).map(|b| b.expires_at).min()
    }

    /// A number that changes whenever a binding appears or goes (refreshes leave it alone).
    pub fn membership(&self) -> u64 {
        self.membership
    }

    /// Removes every binding that uses `flow` (its TCP connection closed, or keep-alives went
    /// unanswered); agents left with none are logged out as unreachable.
    pub fn remove_flow(&mut self, flow: Flow) -> Vec<Presence> {
        let mut events = Vec::new();
        for entry in self.agents.values_mut() {
            let before = entry.bindings.len();
            entry.bindings.retain(|b| b.flow != flow);
            if entry.bindings.len() != before {
                self.membership += 1;
                self.changed.insert(entry.id.clone());
            }
            if before > 0 && entry.bindings.is_empty() {
                events.push(Presence::LoggedOut {
                    agent: entry.id.clone(),
                    reason: LogoutReason::Unreachable,
                });
            }
        }
        sort_events(&mut events);
        events
    }

    /// Removes every binding of `agent` (by agent id or else SIP user, any case): the agent logged
    /// out on purpose (the `*24` feature code). Reported as [`LogoutReason::Unregistered`] when it
    /// had bindings; nothing otherwise.
    pub fn unregister_agent(&mut self, agent: &str) -> Vec<Presence> {
        // The agent id first (what the feature code knows), then the SIP user.
        let key = match self.agents.iter().find(|(_, e)| e.id == agent) {
            Some((key, _)) => key.clone(),
            None => agent.to_ascii_lowercase(),
        };
        let Some(entry) = self.agents.get_mut(&key) else { return Vec::new() };
        if entry.bindings.is_empty() {
            return Vec::new();
        }
        entry.bindings.clear();
        self.membership += 1;
        self.changed.insert(entry.id.clone());
        vec![Presence::LoggedOut { agent: entry.id.clone(), reason: LogoutReason::Unregistered }]
    }

    /// The bindings of an agent, by agent id or else SIP user (any case): best `q` first, then the
    /// most recently registered. Lapsed bindings stay until [`Registrar::expire`] runs.
    pub fn lookup(&self, agent_or_user: &str) -> Vec<&Binding> {
        // The agent id first (what the ACD asks with), then the SIP user.
        let entry = self
            .agents
            .values()
            .find(|e| e.id == agent_or_user)
            .or_else(|| self.agents.get(&agent_or_user.to_ascii_lowercase()));
        let mut out: Vec<&Binding> = entry.map(|e| e.bindings.iter().collect()).unwrap_or_default();
        out.sort_by(|a, b| {
            b.priority().cmp(&a.priority()).then(b.registered_at.cmp(&a.registered_at))
        });
        out
    }

    fn bindings_of(&self, user: &str) -> Vec<&Binding> {
        self.lookup(user)
    }

    /// The agent id registering as SIP user `user`, if any.
    pub fn agent_for_user(&self, user: &str) -> Option<&str> {
        self.agents.get(&user.to_ascii_lowercase()).map(|e| e.id.as_str())
    }

    /// True when the agent (id or user) has at least one binding.
    pub fn is_registered(&self, agent_or_user: &str) -> bool {
        !self.lookup(agent_or_user).is_empty()
    }

    /// Every binding, for saving.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.agents.values().flat_map(|e| &e.bindings)
    }

    /// How many bindings there are (`tongdai_registrations`).
    pub fn binding_count(&self) -> usize {
        self.agents.values().map(|e| e.bindings.len()).sum()
    }

    /// The agents whose bindings changed since the last call, each with its bindings now (none:
    /// logged out or removed), in agent order: what the runtime writes to the store. A refresh
    /// counts as a change (the expiry moved).
    pub fn take_changes(&mut self) -> Vec<(String, Vec<Binding>)> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|agent| {
                let bindings = self
                    .agents
                    .values()
                    .find(|e| e.id == agent)
                    .map(|e| e.bindings.clone())
                    .unwrap_or_default();
                (agent, bindings)
            })
            .collect()
    }

    /// Puts saved bindings back after a restart. Bindings lapsed at `now`, of agents no longer
    /// configured (or now configured under another user), or beyond `max_bindings` are dropped;
    /// a binding replaces a current one with the same key. Agents that gain their first binding are
    /// logged in.
    pub fn restore(&mut self, now: Instant, bindings: Vec<Binding>) -> Vec<Presence> {
        let mut events = Vec::new();
        let max = self.config.max_bindings;
        for b in bindings {
            // Whatever happens to it, the agent's saved rows are rewritten: dropped bindings go.
            self.changed.insert(b.agent.clone());
            self.membership += 1;
            let Some(entry) = self.agents.get_mut(&b.user.to_ascii_lowercase()) else {
                continue;
            };
            if entry.id != b.agent || b.expires_at <= now {
                continue;
            }
            let was_empty = entry.bindings.is_empty();
            let key = b.key();
            match entry.bindings.iter().position(|x| x.key() == key) {
                Some(i) => entry.bindings[i] = b,
                None if entry.bindings.len() < max => entry.bindings.push(b),
                None => continue,
            }
            if was_empty {
                events.push(Presence::LoggedIn { agent: entry.id.clone() });
            }
        }
        events
    }
}

fn sort_events(events: &mut [Presence]) {
    // HashMap order is arbitrary; a stable order keeps logs and tests deterministic.
    events.sort_by(|a, b| presence_agent(a).cmp(presence_agent(b)));
}

fn presence_agent(p: &Presence) -> &str {
    match p {
        Presence::LoggedIn { agent } | Presence::LoggedOut { agent, .. } => agent,
    }
}

/// RFC 5626 §6: a REGISTER that reached us directly (one Via: we are its first hop and keep its
/// flow) from a UA that supports outbound, with a contact naming its instance and `reg-id`, gets
/// `Require: outbound` in the 200, telling the UA its flow is kept and keep-alives are answered.
fn uses_outbound(request: &Request) -> bool {
    let headers = &request.headers;
    let supported = headers.supported().unwrap_or_default();
    let first_hop = headers.via().is_ok_and(|v| v.len() == 1);
    let flow_contact = match headers.contacts() {
        Ok(Contacts::List(list)) => {
            list.iter().any(|c| c.sip_instance().is_some() && c.reg_id().is_some())
        }
        _ => false,
    };
    first_hop && flow_contact && supported.iter().any(|t| t.eq_ignore_ascii_case("outbound"))
}

/// The To tag of our answers to one REGISTER (the 200 or refusal here, and the caller's 401):
/// derived from the request, so a retransmission that reaches us gets the same one. REGISTER makes
/// no dialog, so the tag needs no randomness.
pub fn to_tag(request: &Request) -> String {
    let mut h = DefaultHasher::new();
    request.headers.get(name::CALL_ID).hash(&mut h);
    request.headers.get(name::CSEQ).hash(&mut h);
    request.headers.get(name::FROM).hash(&mut h);
    format!("td{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues_print_short() {
        assert_eq!(qvalue_text(1000), "1");
        assert_eq!(qvalue_text(500), "0.5");
        assert_eq!(qvalue_text(75), "0.075");
        assert_eq!(qvalue_text(0), "0");
    }

    #[test]
    fn uri_keys_follow_rfc3261_comparison() {
        let key = |s: &str| key_of(&Uri::parse(s).unwrap(), None, None);
        // Host case and unrelated parameters do not matter; user case, port and transport do.
        assert_eq!(key("sip:1001@PC.example.com;x=1"), key("sip:1001@pc.example.com"));
        assert_eq!(key("sip:%31001@h"), key("sip:1001@h"));
        assert_ne!(key("sip:Alice@h"), key("sip:alice@h"));
        assert_ne!(key("sip:1001@h"), key("sip:1001@h:5060"));
        assert_ne!(key("sip:1001@h;transport=tcp"), key("sip:1001@h"));
        assert_eq!(key("sip:1001@h;transport=TCP"), key("sip:1001@h;transport=tcp"));
        // An instance outranks the URI.
        let a = key_of(&Uri::parse("sip:a@h").unwrap(), Some("<urn:uuid:1>"), Some(1));
        let b = key_of(&Uri::parse("sip:b@k").unwrap(), Some("<urn:uuid:1>"), Some(1));
        assert_eq!(a, b);
    }
}
