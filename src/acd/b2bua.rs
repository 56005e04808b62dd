//! The switchboard: the back-to-back user agent that turns SIP dialogs into engine inputs and carries
//! out the engine's outputs. Domain layer, sans-IO.
//!
//! A call is two or more SIP legs: the caller's trunk leg, answered at once, and an agent leg per ring
//! attempt. The [`Engine`] decides who rings and when; this module owns the mapping between the
//! engine's `CallId`s and the endpoint's transactions and dialogs, answers and authenticates
//! REGISTERs for the [`Registrar`], and drives each call's media through the [`MediaControl`] trait,
//! which the runtime implements with real sockets and tests with a fake. Time comes in as a value;
//! the one timer of its own is the end of each caller's welcome prompt.

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
use crate::sip::message::{Request, Response};
use crate::sip::registrar::{Presence, Registrar, RegistrarConfig};
use crate::sip::sdp::{self, Direction, SessionDescription};
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
    /// The caller hears `playlist`.
    fn play(&mut self, call: CallId, playlist: Playlist);
    /// Connects caller and agent.
    fn bridge(&mut self, call: CallId);
    /// Closes the agent leg; the caller leg stays.
    fn drop_agent(&mut self, call: CallId);
    /// Closes every leg of `call`.
    fn close(&mut self, call: CallId);
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
    agents: Vec<AgentLeg>,
    offered: bool,
}

#[derive(Debug)]
struct AgentLeg {
    agent: AgentId,
    txn: TxnId,
    dialog: Option<DialogId>,
}

/// The B2BUA and registrar service.
pub struct Switchboard {
    engine: Engine,
    registrar: Registrar,
    digest: DigestServer,
    agents: Vec<AgentConfig>,
    prompts: PromptSet,
    calls: HashMap<CallId, Call>,
    by_trunk_txn: HashMap<TxnId, CallId>,
    by_agent_txn: HashMap<TxnId, CallId>,
    by_dialog: HashMap<DialogId, CallId>,
    prompt_ends: BTreeSet<(Instant, CallId)>,
    reports: Vec<Report>,
    next_call: u64,
}

impl Switchboard {
    /// A switchboard for `config`; `key` (32 random bytes) seals digest nonces; `epoch` is now.
    pub fn new(config: &Config, prompts: PromptSet, key: [u8; 32], epoch: Instant) -> Switchboard {
        let mut digest_config = DigestServerConfig::new(config.sip.realm.clone());
        digest_config.allow_rfc2069 = false;
        digest_config.algorithms = config.sip.digest_algorithms.clone();
        digest_config.md5_only_user_agents = config.sip.md5_only_user_agents.clone();
        Switchboard {
            engine: Engine::from_config(config),
            registrar: Registrar::new(RegistrarConfig::default(), &config.agents),
            digest: DigestServer::new(digest_config, key, epoch),
            agents: config.agents.clone(),
            prompts,
            calls: HashMap::new(),
            by_trunk_txn: HashMap::new(),
            by_agent_txn: HashMap::new(),
            by_dialog: HashMap::new(),
            prompt_ends: BTreeSet::new(),
            reports: Vec::new(),
            next_call: 0,
        }
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
            UaEvent::Confirmed { .. } => {}
            UaEvent::AckTimeout { dialog } => {
                sip.bye(now, &dialog);
                self.dialog_ended(now, &dialog);
            }
            UaEvent::Bye { dialog } => self.dialog_ended(now, &dialog),
            UaEvent::Register { txn, request, flow } => {
                self.register(now, txn, &request, flow, sip)
            }
            UaEvent::InDialog { txn, request, .. } => {
                // Re-INVITE/UPDATE/INFO handling (hold, codec change, DTMF) lands with the media
                // issue; until then the session is kept as it is.
                let r = Response::for_request(&request, 488, None);
                sip.respond(now, txn, r);
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
        let offer =
            std::str::from_utf8(&request.body).ok().and_then(|t| SessionDescription::parse(t).ok());
        let Some(offer) = offer else {
            // An INVITE without an offer (late offer) is answered once offer-in-2xx lands.
            self.reports.push(Report::Refused { reason: "no_sdp_offer" });
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
        let Some(dialog) = sip.answer(now, txn, Bytes::from(answer.sdp.to_string())) else {
            media.close(call);
            return;
        };
        self.by_trunk_txn.insert(txn, call);
        self.by_dialog.insert(dialog.clone(), call);
        self.calls.insert(
            call,
            Call {
                trunk_txn: txn,
                trunk_dialog: Some(dialog),
                caller_format: format,
                agents: Vec::new(),
                offered: true,
            },
        );
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
        let _ = self
            .engine
            .handle(now, Input::CallOffered { call, lane: Lane::Normal, province: None });
        self.prompt_ends.insert((now + Duration::from_millis(welcome_ms), call));
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
        match sip.invite(now, flow, contact, &from, Bytes::from(offer.to_string()), &[]) {
            Some(txn) => {
                self.by_agent_txn.insert(txn, call);
                if let Some(c) = self.calls.get_mut(&call) {
                    c.agents.push(AgentLeg { agent: agent.clone(), txn, dialog: None });
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
