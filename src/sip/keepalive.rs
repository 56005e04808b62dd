//! OPTIONS keep-alives to registered contacts (protocol layer, sans-IO): a softphone that died
//! without de-registering (crashed, unplugged, its NAT mapping gone) must leave the queue long
//! before its registration would lapse, or calls ring into nothing.
//!
//! Each binding is probed every `interval` with an out-of-dialog OPTIONS sent on the flow its
//! REGISTER came on. Any final response, whatever its code (404, 405 and 481 included), proves the
//! softphone is there; only a transaction timeout (RFC 3261 Timer F) counts as a miss. After
//! `max_failures` misses in a row the probe reports the flow dead, and the caller removes its
//! bindings. The next probe is scheduled an interval after the previous one ended, so at most one
//! OPTIONS per binding is ever in flight.
//!
//! The module keeps no clock: [`Keepalives::poll_timeout`] says when to call [`Keepalives::due`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::message::{Method, Request, Uri, name};
use super::registrar::Binding;
use super::transaction::TxnId;
use super::transport::Flow;

/// Keep-alive settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Time between the end of one probe and the next.
    pub interval: Duration,
    /// Unanswered probes in a row after which the flow is dead (at least 1).
    pub max_failures: u32,
}

/// One contact to probe: the binding's contact on its flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The agent it belongs to (for logs).
    pub agent: String,
    /// Where the OPTIONS goes.
    pub flow: Flow,
    /// Its Request-URI.
    pub contact: Uri,
}

impl Target {
    /// The OPTIONS probing this contact, without Via (the endpoint adds it): From us at `local`
    /// with `tag`, To the contact, `call_id`, CSeq 1.
    pub fn options(&self, local_host: &str, tag: &str, call_id: &str) -> Request {
        options_request(&self.contact, local_host, tag, call_id)
    }
}

/// An out-of-dialog OPTIONS probe to `target` (keep-alives, overflow target health), without its
/// Via (the endpoint adds it).
pub fn options_request(target: &Uri, local_host: &str, tag: &str, call_id: &str) -> Request {
    let mut r = Request::new(Method::Options, target.clone());
    let h = &mut r.headers;
    h.push(name::FROM, format!("<sip:tongdai@{local_host}>;tag={tag}"));
    h.push(name::TO, format!("<{}>", target.as_str()));
    h.push(name::CALL_ID, call_id.to_owned());
    h.push(name::CSEQ, "1 OPTIONS");
    h.push(name::MAX_FORWARDS, "70");
    r
}

/// What became of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The transaction was not a keep-alive.
    NotOurs,
    /// Answered, or missed fewer than `max_failures` times in a row.
    Alive,
    /// Missed `max_failures` times in a row: remove the bindings on this flow.
    Dead(Box<Target>),
}

#[derive(Debug, Clone)]
struct Probe {
    target: Target,
    /// When the next OPTIONS goes; `None` while one is in flight.
    next: Option<Instant>,
    missed: u32,
}

/// Probes keyed by (flow, contact text).
type Key = (Flow, String);

/// The keep-alive schedule of every binding (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Keepalives {
    config: Option<KeepaliveConfig>,
    probes: HashMap<Key, Probe>,
    in_flight: HashMap<TxnId, Key>,
}

impl Keepalives {
    /// A schedule with `config` (`None`: no keep-alives).
    pub fn new(config: Option<KeepaliveConfig>) -> Keepalives {
        Keepalives { config, ..Keepalives::default() }
    }

    /// New settings (config reload); switching off forgets every probe.
    pub fn set_config(&mut self, config: Option<KeepaliveConfig>) {
        if config.is_none() {
            self.probes.clear();
        }
        self.config = config;
    }

    /// Follows the current bindings: a new one is first probed one interval from `now`; probes of
    /// bindings that went are forgotten (an OPTIONS in flight for one is then ignored).
    pub fn sync<'a>(&mut self, now: Instant, bindings: impl Iterator<Item = &'a Binding>) {
        let Some(config) = self.config else { return };
        let mut live: HashMap<Key, &Binding> = HashMap::new();
        for b in bindings {
            live.insert((b.flow, b.contact.as_str().to_owned()), b);
        }
        self.probes.retain(|k, _| live.contains_key(k));
        for (key, b) in live {
            self.probes.entry(key).or_insert_with(|| Probe {
                target: Target { agent: b.agent.clone(), flow: b.flow, contact: b.contact.clone() },
                next: Some(now + config.interval),
                missed: 0,
            });
        }
    }

    /// When the next probe is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.probes.values().filter_map(|p| p.next).min()
    }

    /// The probes due at `now`; send each and report its transaction with [`Keepalives::sent`].
    pub fn due(&mut self, now: Instant) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        for p in self.probes.values_mut() {
            if p.next.is_some_and(|t| t <= now) {
                p.next = None;
                out.push(p.target.clone());
            }
        }
        // HashMap order is arbitrary; a stable order keeps tests and logs deterministic.
        out.sort_by(|a, b| (&a.agent, a.contact.as_str()).cmp(&(&b.agent, b.contact.as_str())));
        out
    }

    /// The OPTIONS for `target` went out as `txn` (`None`: it could not be sent, which counts as
    /// unanswered at once).
    pub fn sent(&mut self, now: Instant, target: &Target, txn: Option<TxnId>) -> ProbeOutcome {
        let key = (target.flow, target.contact.as_str().to_owned());
        match txn {
            Some(txn) => {
                self.in_flight.insert(txn, key);
                ProbeOutcome::Alive
            }
            None => self.missed(now, key),
        }
    }

    /// True when `txn` is a probe in flight (its provisional responses need no one).
    pub fn owns(&self, txn: TxnId) -> bool {
        self.in_flight.contains_key(&txn)
    }

    /// A final response to `txn` arrived: if it was a probe, its contact is alive.
    pub fn on_response(&mut self, now: Instant, txn: TxnId) -> ProbeOutcome {
        let Some(key) = self.in_flight.remove(&txn) else { return ProbeOutcome::NotOurs };
        if let (Some(p), Some(config)) = (self.probes.get_mut(&key), self.config) {
            p.missed = 0;
            p.next = Some(now + config.interval);
        }
        ProbeOutcome::Alive
    }

    /// `txn` got no final response: if it was a probe, a miss.
    pub fn on_timeout(&mut self, now: Instant, txn: TxnId) -> ProbeOutcome {
        match self.in_flight.remove(&txn) {
            Some(key) => self.missed(now, key),
            None => ProbeOutcome::NotOurs,
        }
    }

    fn missed(&mut self, now: Instant, key: Key) -> ProbeOutcome {
        let (Some(p), Some(config)) = (self.probes.get_mut(&key), self.config) else {
            return ProbeOutcome::Alive;
        };
        p.missed += 1;
        if p.missed >= config.max_failures.max(1) {
            let target = Box::new(p.target.clone());
            self.probes.remove(&key);
            return ProbeOutcome::Dead(target);
        }
        p.next = Some(now + config.interval);
        ProbeOutcome::Alive
    }

    /// How many contacts are followed.
    pub fn len(&self) -> usize {
        self.probes.len()
    }

    /// True when no contact is followed.
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }
}
