//! The switchboard: the back-to-back user agent that turns SIP dialogs into engine inputs and carries
//! out the engine's outputs. Domain layer, sans-IO.
//!
//! A call is two or more SIP legs: the caller's trunk leg, answered at once, and an agent leg per ring
//! attempt. The [`Engine`] decides who rings and when; this module owns the mapping between the
//! engine's `CallId`s and the endpoint's transactions and dialogs, answers and authenticates
//! REGISTERs for the [`Registrar`], and drives each call's media through the [`MediaControl`] trait,
//! which the runtime implements with real sockets and tests with a fake. Time comes in as a value;
//! the one timer of its own is the end of each caller's welcome prompt.
//!
//! Offer/answer: a trunk INVITE with SDP is answered in the 200; one without (late offer) gets our
//! offer in the 200, and the caller's address and codec are known only when the ACK brings the
//! answer — the welcome prompt starts then. A re-INVITE or UPDATE on either leg is answered with
//! the leg's current description (same `o=` version unless it changed, [`LocalOrigin`]), mirroring
//! a hold (`sendonly`/`inactive`/`c=0.0.0.0` → `recvonly`/`inactive`); the media is kept as it is.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{AgentId, CallId, EndedBy, Engine, Input, Lane, Output, RejectReason};
use crate::config::{AgentConfig, Config, Credential};
use crate::media::g711::Codec;
use crate::media::mix::MixMode;
use crate::media::pacing::Playlist;
use crate::media::prompt::PromptSet;
use crate::media::relay::LegFormat;
use crate::sip::auth::{AuthAnswer, Ban, ChallengeKind, DigestServer, DigestServerConfig};
use crate::sip::dialog::DialogId;
use crate::sip::endpoint::{Endpoint, UaEvent, via_host};
use crate::sip::message::Method;
use crate::sip::message::{Request, Response};
use crate::sip::registrar::{Presence, Registrar};
use crate::sip::sdp::{self, Direction, LocalOrigin, SessionDescription};
use crate::sip::transaction::TxnId;
use crate::sip::transport::Flow;

mod admin;
mod agent_leg;
mod audit;
mod callback;
mod caller;
mod consult;
mod feature;
mod ivr;
mod media_events;
mod overflow;
mod register;
mod reinvite;
mod shifts;
mod supervise;
mod transfer;

pub use audit::AUDIT_INTERVAL;
pub use callback::{
    CALLBACK_ANSWER_TIMEOUT, CallbackLookup, CallbackOutcome, CallbackRefusal, CallbackTarget,
    PROMPT_RINGBACK,
};
pub use consult::CONFERENCE_KEYS;
pub use feature::FEATURE_PROMPTS;
pub use media_events::{MediaEvent, MediaLeg, URGENT_KEY};
pub use overflow::TargetStatus;
use register::digest_config;
pub use supervise::SuperviseError;

/// The prompt every caller hears first.
pub const PROMPT_WELCOME: &str = "welcome";
/// The loop callers hear while they wait.
pub const PROMPT_HOLD: &str = "hold-music";
/// Prompts the switchboard cannot work without.
pub const REQUIRED_PROMPTS: &[&str] = &[PROMPT_WELCOME, PROMPT_HOLD];

/// How a consultation's legs (its "caller" leg: the agent's second call; its "agent" leg: the
/// target) join the call it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Attended transfer completed: the target becomes the call's agent leg, bridged to the
    /// caller; the agent's consultation leg is closed.
    Transfer,
    /// Three-way conference: the agent's consultation leg becomes the call's agent leg (its first
    /// leg, on hold, is closed), the target its third leg, all three mixed.
    Conference,
}

/// What the switchboard needs of a call's media; the runtime binds sockets and runs the media task.
pub trait MediaControl {
    /// The address our SDP advertises.
    fn address(&self) -> IpAddr;
    /// Opens the caller leg of `call` and returns its RTP port; `None` when no port is free.
    fn open_caller(
        &mut self,
        call: CallId,
        remote: Option<SocketAddr>,
        format: LegFormat,
    ) -> Option<u16>;
    /// Opens an agent leg for `call` (for our offer) and returns its port.
    fn open_agent(&mut self, call: CallId) -> Option<u16>;
    /// The agent answered with this address and format.
    fn agent_answered(&mut self, call: CallId, remote: Option<SocketAddr>, format: LegFormat);
    /// The caller's answer to our offer (late offer: it came in the ACK) gave this address and
    /// format; the caller leg was opened without them.
    fn caller_answered(&mut self, call: CallId, remote: Option<SocketAddr>, format: LegFormat);
    /// The caller hears `playlist`.
    fn play(&mut self, call: CallId, playlist: Playlist);
    /// Connects caller and agent.
    fn bridge(&mut self, call: CallId);
    /// Closes the agent leg; the caller leg stays.
    fn drop_agent(&mut self, call: CallId);
    /// Closes every leg of `call`.
    fn close(&mut self, call: CallId);
    /// Binds a third leg for `call` (a transfer target in conference, a supervisor) and returns
    /// its RTP port for our offer; `None` when the call has no media or no port is free.
    fn open_third(&mut self, call: CallId) -> Option<u16> {
        let _ = call;
        None
    }
    /// The third leg answered with this address and format.
    fn third_answered(&mut self, call: CallId, remote: Option<SocketAddr>, format: LegFormat) {
        let _ = (call, remote, format);
    }
    /// Caller, agent and third leg of `call` hear each other as `mode` says (conference, listen,
    /// whisper); a later call switches the mode.
    fn set_mix(&mut self, call: CallId, mode: MixMode) {
        let _ = (call, mode);
    }
    /// The third leg of `call` is gone: caller and agent are bridged again.
    fn drop_third(&mut self, call: CallId) {
        let _ = call;
    }
    /// The legs of consultation `from` join call `to` as `join` says; `from` is gone after.
    fn join(&mut self, from: CallId, to: CallId, join: Join) {
        let _ = (from, to, join);
    }
    /// A re-INVITE/UPDATE moved a leg: its peer now sends from (and wants media at) `remote`, and
    /// `on_hold` (`sendonly`/`inactive`/`c=0.0.0.0`) stops its dead-leg timer until it resumes.
    fn update_leg(
        &mut self,
        call: CallId,
        leg: MediaLeg,
        remote: Option<SocketAddr>,
        on_hold: bool,
    ) {
        let _ = (call, leg, remote, on_hold);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Something the runtime reports (metrics, logs, records) — never a caller number.
pub enum Report {
    /// An engine output worth recording (call outcomes, agent states).
    Engine(Output),
    /// An agent logged in or out.
    Presence(Presence),
    /// A REGISTER or agent request failed authentication.
    AuthFailure {
        /// Bounded reason label.
        reason: &'static str,
        /// Where it came from (logged for fail2ban; never a metric label).
        source: SocketAddr,
    },
    /// Repeated authentication failures started a ban (log [`Ban::log_line`] once).
    AuthBan(Ban),
    /// Our registration to the provider succeeded or failed.
    TrunkRegistration(crate::sip::trunk_register::RegistrationEvent),
    /// A call was answered and offered to the queue.
    Offered,
    /// The same moment for the records: which call, and what may be kept about its caller.
    CallStarted {
        /// The call.
        call: CallId,
        /// The caller's pseudonym (HMAC-SHA256 hex); `None` when withheld. Never the number.
        pseudonym: Option<String>,
        /// The province the trunk or number tells.
        province: Option<&'static str>,
        /// The lane it starts in.
        lane: Lane,
    },
    /// An agent's feature code was carried out.
    FeatureCode {
        /// The agent.
        agent: AgentId,
        /// Bounded label: `pause`, `resume`, `end_wrap_up`, `log_out`.
        code: &'static str,
    },
    /// A call was refused before reaching the engine.
    Refused {
        /// Bounded reason label.
        reason: &'static str,
    },
    /// The urgent-lane menu: the caller pressed 1 (`urgent`), or its window closed without it.
    MenuChoice {
        /// The call.
        call: CallId,
        /// Pressed 1.
        urgent: bool,
    },
    /// An overflow target went up or down (OPTIONS probing).
    OverflowTarget {
        /// The configured target name (a bounded label).
        target: String,
        /// Up now.
        up: bool,
    },
    /// One hand-over attempt to a target ended: `answered`, `redirected`, `challenged`,
    /// `failed`, `timeout` or `no_channel`.
    OverflowAttempt {
        /// The configured target name (a bounded label).
        target: String,
        /// What happened.
        result: &'static str,
    },
    /// An operator made a consultation a three-way conference.
    Conference {
        /// The caller's call.
        call: CallId,
    },
    /// A leg was hung up because nothing arrived from it for `rtp_timeout`.
    LegDead {
        /// Which leg.
        leg: MediaLeg,
    },
    /// A supervisor joined an operator's call, switched mode or left (supervise.rs).
    Supervision {
        /// The supervisor account.
        supervisor: AgentId,
        /// The operator supervised.
        operator: AgentId,
        /// The mode (after a switch, the new one).
        mode: crate::config::SupervisionMode,
        /// Bounded label: `started`, `switched` or `ended`.
        event: &'static str,
    },
    /// One call-back attempt (callback.rs) ended, or its caller answered: never the number.
    Callback {
        /// The `callbacks` row id.
        id: i64,
        /// The operator.
        agent: AgentId,
        /// How it went.
        outcome: CallbackOutcome,
    },
}

#[derive(Debug)]
struct Call {
    trunk_txn: TxnId,
    trunk_dialog: Option<DialogId>,
    /// Early media (`answer = "early-media"`): the SDP of our 183, for the 200 when an agent
    /// answers; `None` once answered.
    early_answer: Option<Bytes>,
    /// Who is calling (never printed in clear).
    identity: crate::acd::identity::CallerIdentity,
    caller_format: LegFormat,
    /// Our description on the trunk leg.
    caller_sdp: LegSdp,
    /// Our 200 carried the offer (the INVITE had none); the answer comes in the ACK.
    awaiting_answer: bool,
    agents: Vec<AgentLeg>,
    offered: bool,
    /// Max-Forwards for the legs this call creates: the trunk INVITE's minus one.
    max_forwards: u8,
    /// The outside party's leg once the call is bridged to the national centre (overflow.rs) or
    /// a transfer target (transfer.rs, consult.rs).
    outside: Option<overflow::OutsideLeg>,
    /// Operator, caller and the outside party are mixed in a three-way conference (consult.rs).
    conference: bool,
}

#[derive(Debug)]
struct AgentLeg {
    agent: AgentId,
    txn: TxnId,
    dialog: Option<DialogId>,
    /// Our description on this leg (the offer we sent).
    sdp: LegSdp,
    /// What the agent's answer agreed on.
    format: Option<LegFormat>,
    /// The agent's phone holds the call (its last offer was `sendonly`/`inactive`): the caller
    /// hears hold audio until it resumes.
    held: bool,
}

/// One leg's side of offer/answer: what we last sent, under its `o=` line.
#[derive(Debug, Clone)]
struct LegSdp {
    origin: LocalOrigin,
    last: SessionDescription,
    port: u16,
}

impl LegSdp {
    /// Stamps `sdp` as this leg's first description.
    fn first(session_id: u64, mut sdp: SessionDescription, port: u16) -> LegSdp {
        let mut origin = LocalOrigin::new(session_id);
        origin.stamp(&mut sdp);
        LegSdp { origin, last: sdp, port }
    }

    /// Stamps `sdp` as the leg's next description (same version when nothing changed).
    fn next(&mut self, mut sdp: SessionDescription) -> Bytes {
        self.origin.stamp(&mut sdp);
        let body = Bytes::from(sdp.to_string());
        self.last = sdp;
        body
    }
}

/// The audio an SDP answer in `body` agrees on (a 2xx to our offer, or the ACK of a late offer);
/// `None` when the body is no usable answer.
fn answer_in(body: &[u8]) -> Option<sdp::NegotiatedAudio> {
    let text = std::str::from_utf8(body).ok()?;
    sdp::negotiate_answer(&SessionDescription::parse(text).ok()?).ok()
}

/// An `o=` session id for a leg: stable for the dialog, different between dialogs (RFC 4566 §5.2
/// asks only for uniqueness), kept below 2^53 so every SDP stack reads it as a number.
fn session_id(call_id: &[u8], salt: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    salt.hash(&mut h);
    h.finish() >> 11
}

/// The B2BUA and registrar service.
pub struct Switchboard {
    engine: Engine,
    registrar: Registrar,
    digest: DigestServer,
    digest_key: [u8; 32],
    digest_epoch: Instant,
    /// Bans on password guessing (register.rs).
    access: register::Access,
    agents: Vec<AgentConfig>,
    prompts: PromptSet,
    calls: HashMap<CallId, Call>,
    by_trunk_txn: HashMap<TxnId, CallId>,
    by_agent_txn: HashMap<TxnId, CallId>,
    by_dialog: HashMap<DialogId, CallId>,
    prompt_ends: BTreeSet<(Instant, CallId)>,
    /// Identity, answer mode and feature codes from the config (caller.rs).
    policy: caller::CallPolicy,
    /// Feature calls being confirmed (feature.rs).
    features: feature::FeatureCalls,
    /// How long the urgent-lane menu waits for a key (`[media] menu_timeout`).
    menu_timeout: Duration,
    reports: Vec<Report>,
    next_call: u64,
    next_leg: u64,
    /// When the next periodic audit runs (audit.rs).
    next_audit: Instant,
    /// Who is on shift (shifts.rs).
    rota: shifts::Rota,
    /// Overflow targets, their health and hand-overs in progress (overflow.rs).
    overflow: overflow::Overflow,
    /// `[trunk] channels`: callers' legs plus our outbound legs at most.
    trunk_channels: Option<u32>,
    /// `[limits] max_calls`: calls in progress at most; a new one past it gets 486.
    max_calls: usize,
    /// Blind transfers in progress (transfer.rs).
    transfers: transfer::Transfers,
    /// Consultations in progress (consult.rs).
    consults: consult::Consults,
    /// Supervisors listening, whispering or barging in (supervise.rs).
    supervisions: supervise::Supervisions,
    /// Call-backs in progress (callback.rs).
    callbacks: callback::Callbacks,
}

impl Switchboard {
    /// A switchboard for `config`; `key` (32 random bytes) seals digest nonces; `epoch` is now.
    pub fn new(config: &Config, prompts: PromptSet, key: [u8; 32], epoch: Instant) -> Switchboard {
        let mut switchboard = Switchboard {
            engine: Engine::from_config(config),
            registrar: Registrar::new(config.registrar.limits, &config.agents),
            digest: DigestServer::new(digest_config(config), key, epoch),
            digest_key: key,
            digest_epoch: epoch,
            access: register::Access::new(config),
            agents: config.agents.clone(),
            prompts,
            calls: HashMap::new(),
            by_trunk_txn: HashMap::new(),
            by_agent_txn: HashMap::new(),
            by_dialog: HashMap::new(),
            prompt_ends: BTreeSet::new(),
            // Until the runtime sets the key file's key: one derived from this process's random
            // digest key, so pseudonyms are never computed with a known key.
            policy: caller::CallPolicy::new(config, pseudonym_fallback(&key)),
            features: feature::FeatureCalls::default(),
            menu_timeout: config.media.menu_timeout,
            reports: Vec::new(),
            next_call: 0,
            next_leg: 0,
            next_audit: epoch + audit::AUDIT_INTERVAL,
            rota: shifts::Rota::new(config),
            overflow: overflow::Overflow::new(config, epoch),
            trunk_channels: config.trunk.channels,
            max_calls: config.caps.max_calls,
            transfers: transfer::Transfers::default(),
            consults: consult::Consults::default(),
            supervisions: supervise::Supervisions::default(),
            callbacks: callback::Callbacks::new(config),
        };
        switchboard.transfers.configure(config);
        switchboard.tell_availability(epoch);
        for t in switchboard.overflow_targets() {
            switchboard.reports.push(Report::OverflowTarget { target: t.name, up: t.up });
        }
        switchboard
    }

    /// Applies a reloaded configuration: the agent list reaches the registrar (removed agents are
    /// logged out) and the engine with the new `[queue]` tunables (removed agents ringing are
    /// cancelled; calls in progress go on), and
    /// the digest settings are renewed. Nonces stay valid: the key and epoch are kept.
    pub fn reload(
        &mut self,
        now: Instant,
        config: &Config,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        self.agents = config.agents.clone();
        self.menu_timeout = config.media.menu_timeout;
        for presence in self.registrar.set_agents(&config.agents) {
            self.presence(now, presence);
        }
        self.policy.reload(config);
        let engine_config = super::EngineConfig::from_config(config);
        let operators = config.agents.iter().filter(|a| a.is_operator());
        let agents = operators.map(|a| AgentId::new(&a.id)).collect();
        let _ = self.engine.handle(now, Input::ConfigChanged { config: engine_config, agents });
        self.digest = DigestServer::new(digest_config(config), self.digest_key, self.digest_epoch);
        self.registrar.set_config(config.registrar.limits);
        self.access.reload(config);
        self.rota.reload(config);
        self.overflow.reload(config, now);
        self.trunk_channels = config.trunk.channels;
        self.max_calls = config.caps.max_calls;
        self.transfers.configure(config);
        self.callbacks.configure(config);
        self.tell_availability(now);
        self.drive(now, sip, media);
    }

    /// The engine, for the admin API and tests.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The registrar, for the admin API and tests.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Calls in progress (call-backs included).
    pub fn calls(&self) -> usize {
        self.calls.len() + self.callbacks.len()
    }

    /// Reports since the last call.
    pub fn take_reports(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.reports)
    }

    /// When [`Switchboard::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.engine.poll_timeout(),
            self.registrar.poll_timeout(),
            self.prompt_ends.first().map(|p| p.0),
            self.features.poll_timeout(),
            self.access.poll_timeout(),
            self.overflow.poll_timeout(),
            self.transfers.poll_timeout(),
            self.consults.poll_timeout(),
            self.supervisions.poll_timeout(),
            self.callbacks.poll_timeout(),
            Some(self.next_audit),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs everything due at `now`.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        for presence in self.registrar.expire(now) {
            self.presence(now, presence);
        }
        while let Some(&(at, call)) = self.prompt_ends.first() {
            if at > now {
                break;
            }
            self.prompt_ends.pop_first();
            self.reports.push(Report::MenuChoice { call, urgent: false });
            let _ = self.engine.handle(now, Input::PromptFinished { call });
        }
        self.engine.handle_timeout(now);
        self.feature_timeouts(now, sip, media);
        self.access_due(now, sip);
        self.overflow_due(now, sip, media);
        self.transfer_due(now, sip, media);
        self.consult_due(now, sip, media);
        self.supervise_due(now, sip, media);
        self.callback_due(now, sip, media);
        self.drive(now, sip, media);
        if now >= self.next_audit {
            self.next_audit = now + audit::AUDIT_INTERVAL;
            self.audit(now, sip);
            self.drive(now, sip, media);
        }
    }

    /// Takes one endpoint event.
    pub fn handle_ua_event(
        &mut self,
        now: Instant,
        event: UaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        // Keep-alive and trunk-registration transactions are the registration side's (register.rs).
        let Some(event) = self.access_event(now, event, sip) else {
            return self.drive(now, sip, media);
        };
        // Probes and hand-overs to the national centre are overflow.rs's.
        let Some(event) = self.overflow_event(now, event, sip, media) else {
            return self.drive(now, sip, media);
        };
        // Transfer targets' INVITEs are transfer.rs's.
        let Some(event) = self.transfer_event(now, event, sip, media) else {
            return self.drive(now, sip, media);
        };
        // Consultations and conferences are consult.rs's.
        let Some(event) = self.consult_event(now, event, sip, media) else {
            return self.drive(now, sip, media);
        };
        // Supervisors' legs are supervise.rs's.
        let Some(event) = self.supervise_event(now, event, sip, media) else {
            return self.drive(now, sip, media);
        };
        // Call-backs' legs are callback.rs's.
        let Some(event) = self.callback_event(now, event, sip, media) else {
            return self.drive(now, sip, media);
        };
        match event {
            UaEvent::IncomingCall { txn, request, flow } => {
                self.incoming_call(now, txn, &request, flow, sip, media)
            }
            UaEvent::CallCancelled { txn } => {
                if let Some(call) = self.by_trunk_txn.get(&txn).copied() {
                    self.caller_left(now, call);
                }
            }
            UaEvent::Confirmed { dialog, body } => self.confirmed(now, &dialog, &body, sip, media),
            UaEvent::AckTimeout { dialog } => {
                sip.bye(now, &dialog);
                if !self.overflowed_leg_ended(now, &dialog, sip, media) {
                    self.dialog_ended(now, &dialog);
                }
            }
            UaEvent::Bye { dialog } | UaEvent::Ended { dialog, .. } => {
                if !self.overflowed_leg_ended(now, &dialog, sip, media) {
                    self.dialog_ended(now, &dialog)
                }
            }
            UaEvent::Dtmf { dialog, signal, .. } => self.info_dtmf(now, &dialog, signal),
            UaEvent::Register { txn, request, flow } => {
                self.register(now, txn, &request, flow, sip)
            }
            UaEvent::InDialog { dialog, txn, request } => {
                self.in_dialog(now, &dialog, txn, &request, sip, media)
            }
            UaEvent::Response { txn, response, dialog } => {
                self.agent_response(now, txn, &response, dialog, sip, media)
            }
            UaEvent::Timeout { txn } => {
                if let Some(call) = self.by_agent_txn.remove(&txn)
                    && let Some(agent) = self.leg_agent(call, txn)
                {
                    let _ = self.engine.handle(
                        now,
                        Input::AgentRejected { call, agent, reason: RejectReason::Unavailable },
                    );
                }
            }
        }
        self.drive(now, sip, media);
    }

    fn drive(&mut self, now: Instant, sip: &mut Endpoint, media: &mut dyn MediaControl) {
        // A supervisor leaves before the caller's media changes (hold audio, a new agent).
        self.supervise_sweep(now, sip, media);
        while let Some(output) = self.engine.poll_output() {
            match &output {
                Output::RingAgent { call, agent } => self.ring(now, *call, agent, sip, media),
                Output::CancelRing { call, agent } | Output::HangUpAgent { call, agent } => {
                    self.end_agent_leg(now, *call, agent, sip, media);
                }
                Output::Bridge { call, .. } => {
                    self.answer_early(now, *call, sip);
                    media.bridge(*call)
                }
                // A call already with its outside party (an attended transfer, a conference
                // the operator left) keeps hearing them.
                Output::StartHold { call } => {
                    if self.calls.get(call).is_none_or(|c| c.outside.is_none()) {
                        self.hold_audio(*call, None, media)
                    }
                }
                Output::AnnouncePosition { call, position } => {
                    self.hold_audio(*call, Some(*position), media)
                }
                Output::HangUpCaller { call } => {
                    if let Some(d) = self.calls.get_mut(call).and_then(|c| c.trunk_dialog.take()) {
                        self.by_dialog.remove(&d);
                        sip.bye(now, &d);
                    }
                }
                Output::Refuse { call, .. } => {
                    if let Some(d) = self.calls.get_mut(call).and_then(|c| c.trunk_dialog.take()) {
                        self.by_dialog.remove(&d);
                        sip.bye(now, &d);
                    }
                }
                Output::Overflow { call, reason } => {
                    self.overflow_start(now, *call, *reason, sip, media)
                }
                Output::CallFinished { call, .. } => self.finish(now, *call, sip, media),
                Output::AgentState { .. } => {}
            }
            self.reports.push(Report::Engine(output));
        }
        self.supervise_sweep(now, sip, media);
    }

    /// Shutdown once the drain's grace period is over: every leg still up gets its BYE, every
    /// agent INVITE still ringing its CANCEL and an unanswered trunk INVITE its 503, so that no
    /// phone keeps a dead call. The engine is not told: the records close these calls as
    /// `interrupted` at the next start.
    pub fn hang_up_all(&mut self, now: Instant, sip: &mut Endpoint, media: &mut dyn MediaControl) {
        self.callback_hang_up_all(now, sip, media);
        let calls: Vec<CallId> = self.calls.keys().copied().collect();
        for call in calls {
            self.overflow_abort(now, call, sip);
            self.transfer_abort(now, call, sip);
            self.consult_abort(now, call, sip, media);
            let Some(c) = self.calls.remove(&call) else { continue };
            for leg in c.agents {
                match leg.dialog {
                    Some(d) => {
                        sip.bye(now, &d);
                    }
                    None => sip.cancel(now, leg.txn),
                }
            }
            if let Some(n) = c.outside {
                sip.bye(now, &n.dialog);
            }
            match c.trunk_dialog {
                Some(d) => {
                    sip.bye(now, &d);
                }
                None => sip.reject(now, c.trunk_txn, 503, &[]),
            }
            media.close(call);
        }
        self.by_dialog.clear();
        self.by_trunk_txn.clear();
        self.by_agent_txn.clear();
        self.prompt_ends.clear();
        // Every call is gone: every supervisor is hung up.
        self.supervise_sweep(now, sip, media);
    }

    fn finish(
        &mut self,
        now: Instant,
        call: CallId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        self.overflow_abort(now, call, sip);
        self.transfer_abort(now, call, sip);
        self.consult_abort(now, call, sip, media);
        if let Some(c) = self.calls.get_mut(&call).filter(|c| c.outside.is_some()) {
            // Bridged to the national centre: the engine is done, the legs stay up (overflow.rs).
            c.offered = false;
            return;
        }
        let Some(c) = self.calls.remove(&call) else { return };
        self.by_trunk_txn.remove(&c.trunk_txn);
        for leg in c.agents {
            self.by_agent_txn.remove(&leg.txn);
            match leg.dialog {
                Some(d) => {
                    self.by_dialog.remove(&d);
                    sip.bye(now, &d);
                }
                None => sip.cancel(now, leg.txn),
            }
        }
        if let Some(d) = c.trunk_dialog {
            self.by_dialog.remove(&d);
            sip.bye(now, &d);
        } else if c.early_answer.is_some() {
            // Early media and never answered: the INVITE gets its final response (a no-op when
            // the caller's CANCEL already ended it with 487).
            sip.reject(now, c.trunk_txn, 480, &[]);
        }
        self.prompt_ends.retain(|(_, c)| *c != call);
        media.close(call);
    }
}

/// A pseudonym key derived from the digest key (random per process) for a switchboard whose
/// runtime has not set the key file's key: stable for the process, never a known constant.
fn pseudonym_fallback(digest_key: &[u8; 32]) -> crate::acd::identity::PseudonymKey {
    let mut key = *digest_key;
    for (i, b) in key.iter_mut().enumerate() {
        *b ^= 0x5c ^ (i as u8);
    }
    crate::acd::identity::PseudonymKey::new(key)
}
