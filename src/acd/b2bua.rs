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
use crate::media::pacing::Playlist;
use crate::media::prompt::PromptSet;
use crate::media::relay::LegFormat;
use crate::sip::auth::{AuthAnswer, ChallengeKind, DigestServer, DigestServerConfig};
use crate::sip::dialog::DialogId;
use crate::sip::endpoint::{Endpoint, UaEvent, via_host};
use crate::sip::message::Method;
use crate::sip::message::{Request, Response};
use crate::sip::registrar::{Presence, Registrar, RegistrarConfig};
use crate::sip::sdp::{self, Direction, LocalOrigin, SessionDescription};
use crate::sip::transaction::TxnId;
use crate::sip::transport::Flow;

/// The prompt every caller hears first.
pub const PROMPT_WELCOME: &str = "welcome";
/// The loop callers hear while they wait.
pub const PROMPT_HOLD: &str = "hold-music";
/// Prompts the switchboard cannot work without.
pub const REQUIRED_PROMPTS: &[&str] = &[PROMPT_WELCOME, PROMPT_HOLD];

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
}

/// The digest server's settings from the configuration.
fn digest_config(config: &Config) -> DigestServerConfig {
    let mut digest = DigestServerConfig::new(config.sip.realm.clone());
    // Answers without qop cannot be protected against replay beyond one use; no softphone we serve
    // needs them.
    digest.allow_rfc2069 = false;
    digest.algorithms = config.sip.digest_algorithms.clone();
    digest.md5_only_user_agents = config.sip.md5_only_user_agents.clone();
    digest
}

/// Something the runtime reports (metrics, logs, records) — never a caller number.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A call was answered and offered to the queue.
    Offered,
    /// A call was refused before reaching the engine.
    Refused {
        /// Bounded reason label.
        reason: &'static str,
    },
}

#[derive(Debug)]
struct Call {
    trunk_txn: TxnId,
    trunk_dialog: Option<DialogId>,
    caller_format: LegFormat,
    /// Our description on the trunk leg.
    caller_sdp: LegSdp,
    /// Our 200 carried the offer (the INVITE had none); the answer comes in the ACK.
    awaiting_answer: bool,
    agents: Vec<AgentLeg>,
    offered: bool,
    /// Max-Forwards for the legs this call creates: the trunk INVITE's minus one.
    max_forwards: u8,
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
    agents: Vec<AgentConfig>,
    prompts: PromptSet,
    calls: HashMap<CallId, Call>,
    by_trunk_txn: HashMap<TxnId, CallId>,
    by_agent_txn: HashMap<TxnId, CallId>,
    by_dialog: HashMap<DialogId, CallId>,
    prompt_ends: BTreeSet<(Instant, CallId)>,
    reports: Vec<Report>,
    next_call: u64,
    next_leg: u64,
}

impl Switchboard {
    /// A switchboard for `config`; `key` (32 random bytes) seals digest nonces; `epoch` is now.
    pub fn new(config: &Config, prompts: PromptSet, key: [u8; 32], epoch: Instant) -> Switchboard {
        Switchboard {
            engine: Engine::from_config(config),
            registrar: Registrar::new(RegistrarConfig::default(), &config.agents),
            digest: DigestServer::new(digest_config(config), key, epoch),
            digest_key: key,
            digest_epoch: epoch,
            agents: config.agents.clone(),
            prompts,
            calls: HashMap::new(),
            by_trunk_txn: HashMap::new(),
            by_agent_txn: HashMap::new(),
            by_dialog: HashMap::new(),
            prompt_ends: BTreeSet::new(),
            reports: Vec::new(),
            next_call: 0,
            next_leg: 0,
        }
    }

    /// Applies a reloaded configuration: the agent list reaches the registrar (removed agents are
    /// logged out) and the engine (removed agents ringing are cancelled; calls in progress go on), and
    /// the digest settings are renewed. Nonces stay valid: the key and epoch are kept.
    pub fn reload(
        &mut self,
        now: Instant,
        config: &Config,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        self.agents = config.agents.clone();
        for presence in self.registrar.set_agents(&config.agents) {
            self.presence(now, presence);
        }
        let engine_config =
            super::EngineConfig { lines: config.centre.lines, ..self.engine.config().clone() };
        let agents = config.agents.iter().map(|a| AgentId::new(&a.id)).collect();
        let _ = self.engine.handle(now, Input::ConfigChanged { config: engine_config, agents });
        self.digest = DigestServer::new(digest_config(config), self.digest_key, self.digest_epoch);
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

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.calls.len()
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
            let _ = self.engine.handle(now, Input::PromptFinished { call });
        }
        self.engine.handle_timeout(now);
        self.drive(now, sip, media);
    }

    /// Takes one endpoint event.
    pub fn handle_ua_event(
        &mut self,
        now: Instant,
        event: UaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        match event {
            UaEvent::IncomingCall { txn, request, .. } => {
                self.incoming_call(now, txn, &request, sip, media)
            }
            UaEvent::CallCancelled { txn } => {
                if let Some(call) = self.by_trunk_txn.get(&txn).copied() {
                    self.caller_left(now, call);
                }
            }
            UaEvent::Confirmed { dialog, body } => self.confirmed(now, &dialog, &body, sip, media),
            UaEvent::AckTimeout { dialog } => {
                sip.bye(now, &dialog);
                self.dialog_ended(now, &dialog);
            }
            UaEvent::Bye { dialog } | UaEvent::Ended { dialog, .. } => {
                self.dialog_ended(now, &dialog)
            }
            // In-call DTMF (e.g. "press 1 if a child is in danger now") is for the IVR work.
            UaEvent::Dtmf { .. } => {}
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

    fn incoming_call(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        if !self.engine.has_room() {
            // Refused before answering: 486 for this one call (RFC 3261 §21.4.24), never 503, which
            // would make the trunk skip this destination for every call.
            self.reports.push(Report::Refused { reason: "queue_full" });
            return sip.reject(now, txn, 486, &[]);
        }
        if request.body.is_empty() {
            return self.incoming_late_offer(now, txn, request, sip, media);
        }
        let offer =
            std::str::from_utf8(&request.body).ok().and_then(|t| SessionDescription::parse(t).ok());
        let Some(offer) = offer else {
            self.reports.push(Report::Refused { reason: "bad_sdp_offer" });
            return sip.reject(now, txn, 488, &[]);
        };
        self.next_call += 1;
        let call = CallId(self.next_call);
        let Ok(probe) = sdp::answer(&offer, &[Codec::Pcmu, Codec::Pcma], media.address(), 0) else {
            self.reports.push(Report::Refused { reason: "no_common_codec" });
            return sip.reject(now, txn, 488, &[]);
        };
        let format = probe.audio.leg_format();
        let Some(port) = media.open_caller(call, probe.audio.remote, format) else {
            self.reports.push(Report::Refused { reason: "no_rtp_port" });
            return sip.reject(now, txn, 480, &[]);
        };
        let Ok(answer) = sdp::answer(&offer, &[format.codec], media.address(), port) else {
            media.close(call);
            return sip.reject(now, txn, 488, &[]);
        };
        let call_id = request.headers.call_id().unwrap_or_default();
        let leg = LegSdp::first(session_id(call_id.as_bytes(), self.next_call), answer.sdp, port);
        let Some(dialog) = sip.answer(now, txn, Bytes::from(leg.last.to_string())) else {
            media.close(call);
            return;
        };
        self.add_call(now, call, txn, dialog, format, leg, false);
        self.set_max_forwards(call, request);
        self.start_prompts(now, call, media);
    }

    /// A trunk INVITE without SDP (RFC 3261 §13.2.1): our offer goes in the 200 and the answer
    /// comes in the ACK ([`Switchboard::confirmed`]). The caller leg is opened for our offer's
    /// port; it learns where to send (and what) from the answer, so the prompts start then.
    fn incoming_late_offer(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        self.next_call += 1;
        let call = CallId(self.next_call);
        // Until the answer says otherwise, the leg speaks the first codec we offer.
        let format = LegFormat {
            codec: Codec::Pcmu,
            payload_type: Codec::Pcmu.static_payload_type(),
            telephone_event: Some(sdp::OFFER_TELEPHONE_EVENT_PT),
        };
        let Some(port) = media.open_caller(call, None, format) else {
            self.reports.push(Report::Refused { reason: "no_rtp_port" });
            return sip.reject(now, txn, 480, &[]);
        };
        let offer =
            sdp::offer(media.address(), port, &[Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
        let call_id = request.headers.call_id().unwrap_or_default();
        let leg = LegSdp::first(session_id(call_id.as_bytes(), self.next_call), offer, port);
        let Some(dialog) = sip.answer(now, txn, Bytes::from(leg.last.to_string())) else {
            media.close(call);
            return;
        };
        self.add_call(now, call, txn, dialog, format, leg, true);
        self.set_max_forwards(call, request);
    }

    /// Legs created for `call` carry the trunk INVITE's Max-Forwards minus one (RFC 3261
    /// §16.6 step 3, as a B2BUA that forwards): two centres overflowing to each other cannot loop.
    fn set_max_forwards(&mut self, call: CallId, request: &Request) {
        let incoming = request.headers.max_forwards().ok().flatten().unwrap_or(70);
        if let Some(c) = self.calls.get_mut(&call) {
            c.max_forwards = incoming.saturating_sub(1);
        }
    }

    // A call's parts arrive together from two answer paths (offer in the INVITE, or late offer).
    #[allow(clippy::too_many_arguments)]
    fn add_call(
        &mut self,
        now: Instant,
        call: CallId,
        txn: TxnId,
        dialog: DialogId,
        format: LegFormat,
        caller_sdp: LegSdp,
        awaiting_answer: bool,
    ) {
        self.by_trunk_txn.insert(txn, call);
        self.by_dialog.insert(dialog.clone(), call);
        self.calls.insert(
            call,
            Call {
                trunk_txn: txn,
                trunk_dialog: Some(dialog),
                caller_format: format,
                caller_sdp,
                awaiting_answer,
                agents: Vec::new(),
                offered: true,
                max_forwards: 69,
            },
        );
        self.reports.push(Report::Offered);
        let _ = self
            .engine
            .handle(now, Input::CallOffered { call, lane: Lane::Normal, province: None });
    }

    /// The caller hears the welcome prompt, then hold music.
    fn start_prompts(&mut self, now: Instant, call: CallId, media: &mut dyn MediaControl) {
        let welcome = self.prompts.get(PROMPT_WELCOME).cloned();
        let welcome_ms = welcome.as_ref().map_or(0, |p| p.duration_ms());
        let mut playlist = Playlist::new();
        if let Some(w) = welcome {
            playlist = playlist.once(w);
        }
        if let Some(hold) = self.prompts.get(PROMPT_HOLD).cloned() {
            playlist = playlist.looped(hold);
        }
        media.play(call, playlist);
        self.prompt_ends.insert((now + Duration::from_millis(welcome_ms), call));
    }

    /// The ACK for a 2xx of ours. On a late-offer call it carries the answer to our offer.
    fn confirmed(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        body: &[u8],
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(call) = self.by_dialog.get(dialog).copied() else { return };
        let Some(c) = self.calls.get_mut(&call) else { return };
        if !c.awaiting_answer || c.trunk_dialog.as_ref() != Some(dialog) {
            // The ACK of a re-INVITE's 2xx, or a retransmitted ACK: the session stays.
            return;
        }
        c.awaiting_answer = false;
        let audio = std::str::from_utf8(body)
            .ok()
            .and_then(|t| SessionDescription::parse(t).ok())
            .and_then(|a| sdp::negotiate_answer(&a).ok());
        match audio {
            Some(a) => {
                c.caller_format = a.leg_format();
                media.caller_answered(call, a.remote, a.leg_format());
                self.start_prompts(now, call, media);
            }
            None => {
                // An answer we cannot use (or none): the session never came up; hang up.
                self.reports.push(Report::Refused { reason: "bad_sdp_answer" });
                sip.bye(now, dialog);
                self.dialog_ended(now, dialog);
            }
        }
    }

    /// A re-INVITE or UPDATE with SDP on either leg: answered with the leg's current description,
    /// hold mirrored; the media stays as it is. Other in-dialog requests are refused.
    fn in_dialog(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        txn: TxnId,
        request: &Request,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let refuse = |sip: &mut Endpoint, status: u16| {
            sip.respond(now, txn, Response::for_request(request, status, None));
        };
        if !matches!(request.method, Method::Invite | Method::Update) {
            return refuse(sip, 501);
        }
        let Some(call) = self.by_dialog.get(dialog).copied() else { return refuse(sip, 481) };
        let address = media.address();
        let Some(c) = self.calls.get_mut(&call) else { return refuse(sip, 481) };
        let (leg, codec) = if c.trunk_dialog.as_ref() == Some(dialog) {
            (&mut c.caller_sdp, c.caller_format.codec)
        } else if let Some(l) = c.agents.iter_mut().find(|l| l.dialog.as_ref() == Some(dialog)) {
            (&mut l.sdp, l.format.map_or(c.caller_format.codec, |f| f.codec))
        } else {
            return refuse(sip, 481);
        };
        if request.body.is_empty() {
            // A re-INVITE without an offer: we offer what we have (unchanged, same version).
            let body = leg.next(leg.last.clone());
            sip.accept_in_dialog(now, txn, Some(body));
            return;
        }
        let offer =
            std::str::from_utf8(&request.body).ok().and_then(|t| SessionDescription::parse(t).ok());
        let Some(offer) = offer else { return refuse(sip, 400) };
        // Keep the codec in use so the relay need not change; a hold is mirrored by `answer`.
        match sdp::answer(&offer, &[codec], address, leg.port) {
            Ok(answer) => {
                let body = leg.next(answer.sdp);
                sip.accept_in_dialog(now, txn, Some(body));
            }
            // RFC 3264 §8: a refused re-offer leaves the session as it was.
            Err(_) => refuse(sip, 488),
        }
    }

    fn caller_left(&mut self, now: Instant, call: CallId) {
        if self.calls.get(&call).is_some_and(|c| c.offered) {
            let _ = self.engine.handle(now, Input::CallerHungUp { call });
        }
    }

    fn dialog_ended(&mut self, now: Instant, dialog: &DialogId) {
        let Some(call) = self.by_dialog.remove(dialog) else { return };
        let Some(c) = self.calls.get_mut(&call) else { return };
        if c.trunk_dialog.as_ref() == Some(dialog) {
            c.trunk_dialog = None;
            self.caller_left(now, call);
        } else if let Some(pos) = c.agents.iter().position(|l| l.dialog.as_ref() == Some(dialog)) {
            c.agents.remove(pos);
            let _ = self.engine.handle(now, Input::CallEnded { call, by: EndedBy::Agent });
        }
    }

    fn leg_agent(&self, call: CallId, txn: TxnId) -> Option<AgentId> {
        self.calls.get(&call)?.agents.iter().find(|l| l.txn == txn).map(|l| l.agent.clone())
    }

    fn agent_response(
        &mut self,
        now: Instant,
        txn: TxnId,
        response: &Response,
        dialog: Option<DialogId>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(call) = self.by_agent_txn.get(&txn).copied() else {
            // A 2xx for a leg nobody wants any more (its call ended): hang it up.
            if let Some(d) = dialog
                && (200..300).contains(&response.status)
            {
                sip.bye(now, &d);
            }
            return;
        };
        let Some(agent) = self.leg_agent(call, txn) else { return };
        match response.status {
            180 | 183 => {
                let _ = self.engine.handle(now, Input::AgentRinging { call, agent });
            }
            100..=199 => {}
            200..=299 => {
                self.by_agent_txn.remove(&txn);
                let audio = std::str::from_utf8(&response.body)
                    .ok()
                    .and_then(|t| SessionDescription::parse(t).ok())
                    .and_then(|a| sdp::negotiate_answer(&a).ok());
                if let Some(d) = &dialog {
                    self.by_dialog.insert(d.clone(), call);
                    if let Some(leg) = self
                        .calls
                        .get_mut(&call)
                        .and_then(|c| c.agents.iter_mut().find(|l| l.txn == txn))
                    {
                        leg.dialog = Some(d.clone());
                        leg.format = audio.map(|a| a.leg_format());
                    }
                }
                match audio {
                    Some(a) => {
                        media.agent_answered(call, a.remote, a.leg_format());
                        let _ = self.engine.handle(now, Input::AgentAnswered { call, agent });
                    }
                    None => {
                        // An answer we cannot use is a failed leg: hang it up, try the next agent.
                        if let Some(d) = &dialog {
                            sip.bye(now, d);
                            self.by_dialog.remove(d);
                        }
                        self.remove_leg(call, txn);
                        media.drop_agent(call);
                        let _ = self.engine.handle(
                            now,
                            Input::AgentRejected { call, agent, reason: RejectReason::Error },
                        );
                    }
                }
            }
            status => {
                self.by_agent_txn.remove(&txn);
                self.remove_leg(call, txn);
                media.drop_agent(call);
                let reason = match status {
                    486 | 600 => RejectReason::Busy,
                    603 => RejectReason::Declined,
                    480 | 408 | 487 => RejectReason::Unavailable,
                    404 => RejectReason::NotFound,
                    _ => RejectReason::Error,
                };
                let _ = self.engine.handle(now, Input::AgentRejected { call, agent, reason });
            }
        }
    }

    fn remove_leg(&mut self, call: CallId, txn: TxnId) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.agents.retain(|l| l.txn != txn);
        }
    }

    fn register(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        flow: Flow,
        sip: &mut Endpoint,
    ) {
        let agents = &self.agents;
        let lookup = |user: &str| -> Option<&Credential> {
            agents.iter().find(|a| a.user.eq_ignore_ascii_case(user)).map(|a| &a.credential)
        };
        let verified = self.digest.verify_request(now, request, ChallengeKind::Www, lookup);
        let user = match verified {
            Ok(user) => user,
            Err(failure) => {
                if !matches!(failure, crate::sip::auth::AuthFailure::Missing) {
                    self.reports.push(Report::AuthFailure {
                        reason: failure.reason(),
                        source: flow.remote,
                    });
                }
                let response = match failure.answer() {
                    AuthAnswer::Challenge { stale } => {
                        let credential = request
                            .headers
                            .to()
                            .ok()
                            .and_then(|to| to.uri.user().map(str::to_string))
                            .and_then(|u| {
                                self.agents
                                    .iter()
                                    .find(|a| a.user.eq_ignore_ascii_case(&u))
                                    .map(|a| a.credential.clone())
                            });
                        let algorithms =
                            self.digest.algorithms_for_request(request, credential.as_ref());
                        let tag = crate::sip::registrar::to_tag(request);
                        self.digest.challenge_response(
                            now,
                            request,
                            ChallengeKind::Www,
                            &algorithms,
                            stale,
                            Some(&tag),
                        )
                    }
                    AuthAnswer::BadRequest => {
                        let tag = crate::sip::registrar::to_tag(request);
                        Response::for_request(request, 400, Some(&tag))
                    }
                };
                return sip.respond(now, txn, response);
            }
        };
        let result = self.registrar.handle_register(now, request, flow, &user);
        sip.respond(now, txn, result.response);
        for presence in result.events {
            self.presence(now, presence);
        }
    }

    fn presence(&mut self, now: Instant, presence: Presence) {
        let input = match &presence {
            Presence::LoggedIn { agent } => Input::AgentLoggedIn { agent: AgentId::new(agent) },
            Presence::LoggedOut { agent, .. } => {
                Input::AgentLoggedOut { agent: AgentId::new(agent) }
            }
        };
        let _ = self.engine.handle(now, input);
        self.reports.push(Report::Presence(presence));
    }

    /// Carries out every engine output.
    fn drive(&mut self, now: Instant, sip: &mut Endpoint, media: &mut dyn MediaControl) {
        while let Some(output) = self.engine.poll_output() {
            match &output {
                Output::RingAgent { call, agent } => self.ring(now, *call, agent, sip, media),
                Output::CancelRing { call, agent } | Output::HangUpAgent { call, agent } => {
                    self.end_agent_leg(now, *call, agent, sip, media);
                }
                Output::Bridge { call, .. } => media.bridge(*call),
                Output::StartHold { call } => {
                    if let Some(hold) = self.prompts.get(PROMPT_HOLD).cloned() {
                        media.play(*call, Playlist::new().looped(hold));
                    }
                }
                Output::AnnouncePosition { call, position } => {
                    let mut playlist = Playlist::new();
                    if let Some(p) = self.prompts.get(&format!("position-{position}")).cloned() {
                        playlist = playlist.once(p);
                    }
                    if let Some(hold) = self.prompts.get(PROMPT_HOLD).cloned() {
                        playlist = playlist.looped(hold);
                    }
                    media.play(*call, playlist);
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
                Output::CallFinished { call, .. } => self.finish(now, *call, sip, media),
                Output::AgentState { .. } => {}
            }
            self.reports.push(Report::Engine(output));
        }
    }

    fn ring(
        &mut self,
        now: Instant,
        call: CallId,
        agent: &AgentId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let reject = |engine: &mut Engine| {
            let _ = engine.handle(
                now,
                Input::AgentRejected { call, agent: agent.clone(), reason: RejectReason::NotFound },
            );
        };
        let Some(caller_format) = self.calls.get(&call).map(|c| c.caller_format) else {
            return reject(&mut self.engine);
        };
        let Some(binding) =
            self.registrar.lookup(agent.as_str()).first().map(|b| (b.contact.clone(), b.flow))
        else {
            return reject(&mut self.engine);
        };
        let Some(port) = media.open_agent(call) else {
            let _ = self.engine.handle(
                now,
                Input::AgentRejected { call, agent: agent.clone(), reason: RejectReason::Error },
            );
            return;
        };
        let other = match caller_format.codec {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let offer =
            sdp::offer(media.address(), port, &[caller_format.codec, other], Direction::SendRecv);
        let (contact, flow) = binding;
        let from = format!("\"111\" <sip:111@{}>", via_host(flow.local));
        self.next_leg += 1;
        let leg = LegSdp::first(session_id(agent.as_str().as_bytes(), self.next_leg), offer, port);
        let body = Bytes::from(leg.last.to_string());
        let max_forwards = self.calls.get(&call).map_or(69, |c| c.max_forwards);
        let extra = [(crate::sip::message::name::MAX_FORWARDS, max_forwards.to_string())];
        match sip.invite(now, flow, contact, &from, body, &extra) {
            Some(txn) => {
                self.by_agent_txn.insert(txn, call);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.agents.push(AgentLeg {
                        agent: agent.clone(),
                        txn,
                        dialog: None,
                        sdp: leg,
                        format: None,
                    });
                }
            }
            None => {
                media.drop_agent(call);
                let _ = self.engine.handle(
                    now,
                    Input::AgentRejected {
                        call,
                        agent: agent.clone(),
                        reason: RejectReason::Error,
                    },
                );
            }
        }
    }

    fn end_agent_leg(
        &mut self,
        now: Instant,
        call: CallId,
        agent: &AgentId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        let legs: Vec<AgentLeg> = {
            let (gone, keep): (Vec<_>, Vec<_>) =
                c.agents.drain(..).partition(|l| &l.agent == agent);
            c.agents = keep;
            gone
        };
        for leg in legs {
            match &leg.dialog {
                Some(d) => {
                    self.by_dialog.remove(d);
                    sip.bye(now, d);
                }
                // Not answered yet: CANCEL. A 2xx crossing it arrives for a txn no call owns any
                // more and is hung up in `agent_response` (RFC 5407).
                None => {
                    self.by_agent_txn.remove(&leg.txn);
                    sip.cancel(now, leg.txn);
                }
            }
        }
        media.drop_agent(call);
    }

    fn finish(
        &mut self,
        now: Instant,
        call: CallId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
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
        }
        self.prompt_ends.retain(|(_, c)| *c != call);
        media.close(call);
    }
}
