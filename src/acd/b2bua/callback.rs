//! Call-backs (issue 11): an operator calls back a caller who abandoned, kept in the opt-in
//! `callbacks` table (`[records] callbacks`). Domain layer, sans-IO: the numbers come from the
//! runtime, which reads the records, as [`CallbackTarget`]s (a [`CallerNumber`] never prints
//! itself), and go nowhere but the Request-URI of the INVITE to the trunk.
//!
//! Two ways in, one flow:
//! - the admin API ([`Switchboard::start_callback`]): tongdai INVITEs the operator first, at their
//!   registered binding as when ringing them for a caller, showing who will be called (the
//!   `[privacy] agent_display` of the caller: province and pseudonym; the number only where
//!   `show_number_to_agents` allows it); no answer within `[queue] ring_timeout` (or a refusal)
//!   ends it as `operator_no_answer`;
//! - the feature code (`[queue.feature_codes] callback`, `*25`): the operator's own INVITE,
//!   authenticated as every feature code (feature.rs), is their leg. The switchboard asks the
//!   runtime for the oldest pending call-backs ([`Switchboard::take_callback_lookups`], answered
//!   with [`Switchboard::callback_candidates`]), takes the first not already in progress and
//!   answers the operator's INVITE (404 when nobody is waiting).
//!
//! Once the operator's leg is up they hear ringback while tongdai INVITEs the caller's number
//! through the trunk (`sip:<E.164>@[trunk] outbound`) from `111`. The caller's answer bridges
//! the two (media: the operator's leg is the call's caller leg, the called party sits where an
//! agent would); either side's BYE ends both. A re-INVITE on either leg (hold, resume) is answered
//! as on a queue call's legs; a REFER is refused (501). The outcome of each attempt is reported once
//! ([`Report::Callback`]: `answered`, `busy`, `no_answer` after [`CALLBACK_ANSWER_TIMEOUT`] and a
//! CANCEL, `failed`, `operator_no_answer`, or `cancelled` when the operator hung up first), for
//! the records (the row's outcome, attempts and last attempt time) and
//! `tongdai_callbacks_total{outcome}`.
//!
//! Resources: the operator holds one of the centre's lines from the start
//! ([`Input::OutboundStarted`]; the queue does not ring them meanwhile, and they go to wrap-up
//! afterwards if they talked), and a call-back takes one `[trunk] channels` channel from the
//! start, so that the caller's INVITE always finds one.

use super::*;
use crate::acd::identity::{CallerIdentity, CallerNumber};
use crate::config::FeatureCode;
use crate::media::prompt::Prompt;
use crate::sip::message::{Uri, name};

/// How long the called-back caller's phone may ring before the INVITE is cancelled.
pub const CALLBACK_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The prompt the operator hears while the caller's phone rings; when the prompt folder has no
/// `ringback.wav`, a 425 Hz tone (1 s on, 4 s off: Vietnam's ringing tone) is made at start.
pub const PROMPT_RINGBACK: &str = "ringback";

/// A pending call-back: its row in `callbacks` and the number to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTarget {
    /// The `callbacks` row id.
    pub id: i64,
    /// The caller's number (its `Debug` is redacted).
    pub number: CallerNumber,
}

/// How one call-back attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackOutcome {
    /// The caller answered and was bridged to the operator.
    Answered,
    /// The caller's phone refused (486, 600, 603).
    Busy,
    /// The caller did not answer in time (cancelled), or their network said so (408, 480, 487).
    NoAnswer,
    /// Any other failure (another final error, an unusable answer, no RTP port).
    Failed,
    /// The operator's phone did not answer (API start) or could not be reached.
    OperatorNoAnswer,
    /// The operator hung up before the caller answered.
    Cancelled,
}

impl CallbackOutcome {
    /// Every outcome, for the metric's labels.
    pub const ALL: [CallbackOutcome; 6] = [
        CallbackOutcome::Answered,
        CallbackOutcome::Busy,
        CallbackOutcome::NoAnswer,
        CallbackOutcome::Failed,
        CallbackOutcome::OperatorNoAnswer,
        CallbackOutcome::Cancelled,
    ];

    /// The record and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackOutcome::Answered => "answered",
            CallbackOutcome::Busy => "busy",
            CallbackOutcome::NoAnswer => "no_answer",
            CallbackOutcome::Failed => "failed",
            CallbackOutcome::OperatorNoAnswer => "operator_no_answer",
            CallbackOutcome::Cancelled => "cancelled",
        }
    }

    /// The outcome of a final error `status` to the caller's INVITE.
    fn of_status(status: u16) -> CallbackOutcome {
        match status {
            486 | 600 | 603 => CallbackOutcome::Busy,
            408 | 480 | 487 => CallbackOutcome::NoAnswer,
            _ => CallbackOutcome::Failed,
        }
    }
}

/// Why a call-back could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    /// `[records] callbacks` is off (or no records are kept).
    #[error("call-backs are off: set [records] callbacks = true")]
    Disabled,
    /// No `[trunk] outbound` to dial through.
    #[error("no [trunk] outbound to dial the caller through")]
    NoTrunk,
    /// No agent has this id.
    #[error("no such agent")]
    UnknownAgent,
    /// The agent has no live registration (or is off shift).
    #[error("the agent is not logged in")]
    NotRegistered,
    /// The agent is ringing or on a call.
    #[error("the agent is ringing or on a call")]
    AgentBusy,
    /// Every line (`[centre] lines`) is in use.
    #[error("every line is in use")]
    NoLine,
    /// Every trunk channel (`[trunk] channels`) is in use.
    #[error("every trunk channel is in use")]
    NoChannel,
    /// This call-back is being made already.
    #[error("this call-back is in progress")]
    InProgress,
    /// No RTP port is free.
    #[error("no RTP port free")]
    NoMedia,
}

/// The runtime is asked for the oldest pending call-backs, for an operator's feature code; it
/// answers with [`Switchboard::callback_candidates`] (an empty list when none, or on error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackLookup {
    /// The request's number, to give back.
    pub lookup: u64,
    /// The operator who dialled the code.
    pub agent: AgentId,
}

/// An operator's feature-code call waiting for the runtime's candidates.
#[derive(Debug)]
struct Lookup {
    agent: AgentId,
    /// The id its media will run under (the engine's outbound call).
    media: CallId,
    /// The operator's INVITE, still unanswered.
    txn: TxnId,
    request: Request,
}

/// One call-back in progress, under the id its media runs under.
#[derive(Debug)]
struct Callback {
    id: i64,
    agent: AgentId,
    number: CallerNumber,
    /// Our INVITE to the operator (API start), until answered.
    operator_txn: Option<TxnId>,
    /// The operator's dialog: the media's caller leg.
    operator: Option<DialogId>,
    /// The operator's answer is still to come in the ACK (their INVITE had no offer).
    awaiting_answer: bool,
    /// Our INVITE to the caller through the trunk, until answered.
    caller_txn: Option<TxnId>,
    /// The caller's dialog: the media's agent leg.
    caller: Option<DialogId>,
    /// When the leg that rings now is given up.
    deadline: Option<Instant>,
    /// The caller answered (the outcome `answered` is reported).
    answered: bool,
    /// Our side of the operator's leg's offer/answer, and the codec it speaks.
    operator_sdp: (LegSdp, Codec),
    /// Our side of the caller's leg's, once dialled.
    caller_sdp: Option<(LegSdp, Codec)>,
}

/// Call-backs in progress, feature codes waiting for a number, and what they need of the config.
#[derive(Debug)]
pub(super) struct Callbacks {
    calls: HashMap<CallId, Callback>,
    by_txn: HashMap<TxnId, CallId>,
    by_dialog: HashMap<DialogId, CallId>,
    lookups: HashMap<u64, Lookup>,
    wanted: Vec<CallbackLookup>,
    next_lookup: u64,
    /// `[records] callbacks` with records kept.
    enabled: bool,
    /// `[trunk] outbound`.
    outbound: Option<SocketAddr>,
    /// What the operator hears while the caller's phone rings.
    ringback: Prompt,
}

impl Callbacks {
    pub(super) fn new(config: &Config) -> Callbacks {
        let mut callbacks = Callbacks {
            calls: HashMap::new(),
            by_txn: HashMap::new(),
            by_dialog: HashMap::new(),
            lookups: HashMap::new(),
            wanted: Vec::new(),
            next_lookup: 0,
            enabled: false,
            outbound: None,
            ringback: ringback_tone(),
        };
        callbacks.configure(config);
        callbacks
    }

    /// At start and on reload; call-backs in progress go on.
    pub(super) fn configure(&mut self, config: &Config) {
        self.enabled = config.records.callbacks && config.records.path.is_some();
        self.outbound = config.trunk.outbound;
    }

    /// Trunk channels held: one per call-back in progress, from its start (and per feature code
    /// waiting for its number).
    pub(super) fn channels(&self) -> usize {
        self.calls.len() + self.lookups.len()
    }

    /// Call-backs in progress (and feature codes waiting for a number).
    pub(super) fn len(&self) -> usize {
        self.calls.len() + self.lookups.len()
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.calls.values().filter_map(|c| c.deadline).min()
    }

    /// True when `call` is a call-back's media id.
    pub(super) fn owns(&self, call: CallId) -> bool {
        self.calls.contains_key(&call)
    }

    /// (media id, operator) of every call-back and waiting feature code, for the audit.
    pub(super) fn legs(&self) -> impl Iterator<Item = (CallId, AgentId)> + '_ {
        let calls = self.calls.iter().map(|(c, cb)| (*c, cb.agent.clone()));
        calls.chain(self.lookups.values().map(|l| (l.media, l.agent.clone())))
    }
}

/// 5 s of Vietnam's ringing tone: 425 Hz for 1 s, then 4 s of silence.
fn ringback_tone() -> Prompt {
    let mut samples = vec![0i16; 5 * 8000];
    for (n, s) in samples.iter_mut().take(8000).enumerate() {
        let phase = 2.0 * std::f64::consts::PI * 425.0 * n as f64 / 8000.0;
        *s = (phase.sin() * 6000.0) as i16;
    }
    Prompt::from_samples(PROMPT_RINGBACK, &samples)
}

/// Our offer for a leg opened on `port`: PCMU and PCMA.
fn offer_at(address: IpAddr, port: u16) -> SessionDescription {
    sdp::offer(address, port, &[Codec::Pcmu, Codec::Pcma], Direction::SendRecv)
}

impl Switchboard {
    /// The feature-code calls waiting for the oldest pending call-backs (for the runtime).
    pub fn take_callback_lookups(&mut self) -> Vec<CallbackLookup> {
        std::mem::take(&mut self.callbacks.wanted)
    }

    /// True when `id` is being called back now.
    pub fn callback_in_progress(&self, id: i64) -> bool {
        self.callbacks.calls.values().any(|c| c.id == id)
    }

    /// The checks every start makes: the service is on, a trunk to dial through and a channel.
    fn callback_ready(&self, id: Option<i64>) -> Result<(), CallbackRefusal> {
        if !self.callbacks.enabled {
            return Err(CallbackRefusal::Disabled);
        }
        if self.callbacks.outbound.is_none() {
            return Err(CallbackRefusal::NoTrunk);
        }
        if id.is_some_and(|id| self.callback_in_progress(id)) {
            return Err(CallbackRefusal::InProgress);
        }
        if !self.channels_free(1) {
            return Err(CallbackRefusal::NoChannel);
        }
        Ok(())
    }

    /// Takes a line for `agent` in the engine under a new media id.
    fn callback_line(&mut self, now: Instant, agent: &AgentId) -> Result<CallId, CallbackRefusal> {
        self.next_call += 1;
        let call = CallId(self.next_call);
        match self.engine.handle(now, Input::OutboundStarted { call, agent: agent.clone() }) {
            Ok(()) => Ok(call),
            Err(crate::acd::InputError::NoFreeLine) => Err(CallbackRefusal::NoLine),
            Err(crate::acd::InputError::UnknownAgent(_)) => Err(CallbackRefusal::UnknownAgent),
            Err(_) if self.registrar.lookup(agent.as_str()).is_empty() => {
                Err(CallbackRefusal::NotRegistered)
            }
            Err(_) => Err(CallbackRefusal::AgentBusy),
        }
    }

    /// The admin API's start: INVITEs `agent` at their registered binding, then (on answer) the
    /// caller of `target`. The outcome comes later as [`Report::Callback`].
    pub fn start_callback(
        &mut self,
        now: Instant,
        agent: &str,
        target: CallbackTarget,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Result<(), CallbackRefusal> {
        self.callback_ready(Some(target.id))?;
        let Some(agent) = self.agents.iter().find(|a| a.id == agent).map(|a| AgentId::new(&a.id))
        else {
            return Err(CallbackRefusal::UnknownAgent);
        };
        let Some((contact, flow)) =
            self.registrar.lookup(agent.as_str()).first().map(|b| (b.contact.clone(), b.flow))
        else {
            return Err(CallbackRefusal::NotRegistered);
        };
        let call = self.callback_line(now, &agent)?;
        let format = LegFormat {
            codec: Codec::Pcmu,
            payload_type: Codec::Pcmu.static_payload_type(),
            telephone_event: Some(sdp::OFFER_TELEPHONE_EVENT_PT),
        };
        let Some(port) = media.open_caller(call, None, format) else {
            let ended = Input::OutboundEnded { call, agent, talked: false };
            let _ = self.engine.handle(now, ended);
            self.drive(now, sip, media);
            return Err(CallbackRefusal::NoMedia);
        };
        // The operator sees who they will call: the caller's display, as for a queue call.
        let host = via_host(flow.local);
        let identity = CallerIdentity::Known {
            pseudonym: self.policy.key.pseudonym(&target.number),
            number: target.number.clone(),
        };
        let from = self.policy.agent_from(&identity, target.number.province(), &host);
        self.next_leg += 1;
        let leg = LegSdp::first(
            session_id(b"callback-operator", self.next_leg),
            offer_at(media.address(), port),
            port,
        );
        let body = Bytes::from(leg.last.to_string());
        let extra = [(name::MAX_FORWARDS, "70".to_string())];
        let txn = sip.invite(now, flow, contact, &from, body, &extra);
        let operator_sdp = (leg, Codec::Pcmu);
        let deadline = now + self.engine.config().ring_timeout;
        self.callbacks.calls.insert(
            call,
            Callback {
                id: target.id,
                agent,
                number: target.number,
                operator_txn: txn,
                operator: None,
                awaiting_answer: false,
                caller_txn: None,
                caller: None,
                deadline: Some(deadline),
                answered: false,
                operator_sdp,
                caller_sdp: None,
            },
        );
        match txn {
            Some(txn) => {
                self.callbacks.by_txn.insert(txn, call);
            }
            None => {
                self.callback_end(now, call, Some(CallbackOutcome::OperatorNoAnswer), sip, media)
            }
        }
        self.drive(now, sip, media);
        Ok(())
    }

    /// An operator dialled the call-back code (authenticated as `agent`): a line and a channel
    /// are taken and the runtime asked for the oldest pending call-backs; the INVITE is answered
    /// when they come ([`Switchboard::callback_candidates`]).
    pub(super) fn callback_code(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        agent: AgentId,
        sip: &mut Endpoint,
    ) {
        let refused = match self.callback_ready(None) {
            Err(CallbackRefusal::Disabled) => Some(404),
            Err(CallbackRefusal::NoTrunk) => Some(503),
            Err(_) => Some(486),
            Ok(()) => None,
        };
        if let Some(status) = refused {
            return sip.reject(now, txn, status, &[]);
        }
        let media = match self.callback_line(now, &agent) {
            Ok(call) => call,
            Err(_) => return sip.reject(now, txn, 486, &[]),
        };
        self.callbacks.next_lookup += 1;
        let lookup = self.callbacks.next_lookup;
        let waiting = Lookup { agent: agent.clone(), media, txn, request: request.clone() };
        self.callbacks.lookups.insert(lookup, waiting);
        self.callbacks.wanted.push(CallbackLookup { lookup, agent: agent.clone() });
        self.reports.push(Report::FeatureCode { agent, code: FeatureCode::Callback.as_str() });
    }

    /// The runtime's answer to [`CallbackLookup`] `lookup`: the oldest pending call-backs, oldest
    /// first. The first not in progress is called; with none, the operator's INVITE gets 404.
    pub fn callback_candidates(
        &mut self,
        now: Instant,
        lookup: u64,
        candidates: Vec<CallbackTarget>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        // Gone: the operator cancelled meanwhile.
        let Some(l) = self.callbacks.lookups.remove(&lookup) else { return };
        let target = candidates.into_iter().find(|t| !self.callback_in_progress(t.id));
        let Some(target) = target else {
            sip.reject(now, l.txn, 404, &[]);
            let ended = Input::OutboundEnded { call: l.media, agent: l.agent, talked: false };
            let _ = self.engine.handle(now, ended);
            return self.drive(now, sip, media);
        };
        let Some((dialog, remote, operator_sdp)) =
            self.answer_own_call(now, l.txn, &l.request, l.media, sip, media)
        else {
            let ended = Input::OutboundEnded { call: l.media, agent: l.agent, talked: false };
            let _ = self.engine.handle(now, ended);
            return self.drive(now, sip, media);
        };
        self.callbacks.by_dialog.insert(dialog.clone(), l.media);
        self.callbacks.calls.insert(
            l.media,
            Callback {
                id: target.id,
                agent: l.agent,
                number: target.number,
                operator_txn: None,
                operator: Some(dialog),
                awaiting_answer: remote.is_none(),
                caller_txn: None,
                caller: None,
                deadline: None,
                answered: false,
                operator_sdp,
                caller_sdp: None,
            },
        );
        self.callback_dial(now, l.media, sip, media);
        self.drive(now, sip, media);
    }

    /// The operator's leg is up: they hear ringback while the caller is INVITEd through the
    /// trunk from 111.
    fn callback_dial(
        &mut self,
        now: Instant,
        call: CallId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let ringback = self.prompts.get(PROMPT_RINGBACK).cloned();
        let ringback = ringback.unwrap_or_else(|| self.callbacks.ringback.clone());
        media.play(call, Playlist::new().looped(ringback));
        let Some(outbound) = self.callbacks.outbound else {
            return self.callback_end(now, call, Some(CallbackOutcome::Failed), sip, media);
        };
        let Some(c) = self.callbacks.calls.get(&call) else { return };
        // The number goes on the wire here and nowhere else.
        let uri = Uri::parse(&format!("sip:{}@{outbound}", c.number.expose())).ok();
        let (Some(uri), Some(local)) = (uri, self.local_for(outbound)) else {
            return self.callback_end(now, call, Some(CallbackOutcome::Failed), sip, media);
        };
        let Some(port) = media.open_agent(call) else {
            return self.callback_end(now, call, Some(CallbackOutcome::Failed), sip, media);
        };
        let flow =
            Flow { transport: crate::sip::transport::Transport::Udp, local, remote: outbound };
        let from = format!("\"111\" <sip:111@{}>", via_host(local));
        self.next_leg += 1;
        let leg = LegSdp::first(
            session_id(b"callback-caller", self.next_leg),
            offer_at(media.address(), port),
            port,
        );
        let body = Bytes::from(leg.last.to_string());
        let extra = [(name::MAX_FORWARDS, "70".to_string())];
        let Some(txn) = sip.invite(now, flow, uri, &from, body, &extra) else {
            return self.callback_end(now, call, Some(CallbackOutcome::Failed), sip, media);
        };
        self.callbacks.by_txn.insert(txn, call);
        if let Some(c) = self.callbacks.calls.get_mut(&call) {
            c.caller_txn = Some(txn);
            c.deadline = Some(now + CALLBACK_ANSWER_TIMEOUT);
            c.caller_sdp = Some((leg, Codec::Pcmu));
        }
    }

    /// Takes the endpoint events of call-backs' legs; returns every other event.
    pub(super) fn callback_event(
        &mut self,
        now: Instant,
        event: UaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Option<UaEvent> {
        let cb = &self.callbacks;
        match &event {
            UaEvent::Response { txn, response, dialog } if cb.by_txn.contains_key(txn) => {
                self.callback_response(now, *txn, response, dialog.clone(), sip, media);
            }
            UaEvent::Timeout { txn } if cb.by_txn.contains_key(txn) => {
                if let Some(call) = self.callbacks.by_txn.remove(txn) {
                    let operator = self.callbacks.calls.get(&call).and_then(|c| c.operator_txn);
                    let outcome = match operator == Some(*txn) {
                        true => CallbackOutcome::OperatorNoAnswer,
                        false => CallbackOutcome::NoAnswer,
                    };
                    self.callback_end(now, call, Some(outcome), sip, media);
                }
            }
            UaEvent::CallCancelled { txn } if cb.lookups.values().any(|l| l.txn == *txn) => {
                let lookup = cb.lookups.iter().find(|(_, l)| l.txn == *txn).map(|(n, _)| *n);
                if let Some(l) = lookup.and_then(|n| self.callbacks.lookups.remove(&n)) {
                    let ended =
                        Input::OutboundEnded { call: l.media, agent: l.agent, talked: false };
                    let _ = self.engine.handle(now, ended);
                }
            }
            UaEvent::Confirmed { dialog, body } if cb.by_dialog.contains_key(dialog) => {
                let call = cb.by_dialog.get(dialog).copied();
                let c =
                    call.and_then(|call| self.callbacks.calls.get_mut(&call).map(|c| (call, c)));
                if let Some((call, c)) = c.filter(|(_, c)| c.awaiting_answer) {
                    // The operator's answer to our offer (their INVITE had none).
                    c.awaiting_answer = false;
                    if let Some(a) = answer_in(body) {
                        c.operator_sdp.1 = a.leg_format().codec;
                        media.caller_answered(call, a.remote, a.leg_format());
                    }
                }
            }
            UaEvent::InDialog { dialog, txn, request } if cb.by_dialog.contains_key(dialog) => {
                self.callback_in_dialog(now, dialog, *txn, request, sip, media);
            }
            UaEvent::Bye { dialog }
            | UaEvent::Ended { dialog, .. }
            | UaEvent::AckTimeout { dialog }
                if cb.by_dialog.contains_key(dialog) =>
            {
                if let Some(call) = self.callbacks.by_dialog.remove(dialog) {
                    self.callback_leg_ended(now, call, dialog, sip, media);
                }
            }
            _ => return Some(event),
        }
        None
    }

    fn callback_response(
        &mut self,
        now: Instant,
        txn: TxnId,
        response: &Response,
        dialog: Option<DialogId>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        if response.status < 200 {
            return;
        }
        let Some(call) = self.callbacks.by_txn.remove(&txn) else { return };
        let Some(c) = self.callbacks.calls.get_mut(&call) else { return };
        let operator = c.operator_txn == Some(txn);
        if operator {
            c.operator_txn = None;
        } else {
            c.caller_txn = None;
        }
        let audio = answer_in(&response.body);
        match (response.status, dialog, audio) {
            (200..=299, Some(dialog), Some(audio)) => {
                self.callbacks.by_dialog.insert(dialog.clone(), call);
                let Some(c) = self.callbacks.calls.get_mut(&call) else { return };
                c.deadline = None;
                if operator {
                    c.operator = Some(dialog);
                    c.operator_sdp.1 = audio.leg_format().codec;
                    media.caller_answered(call, audio.remote, audio.leg_format());
                    self.callback_dial(now, call, sip, media);
                } else {
                    c.caller = Some(dialog);
                    c.answered = true;
                    if let Some((_, codec)) = c.caller_sdp.as_mut() {
                        *codec = audio.leg_format().codec;
                    }
                    media.agent_answered(call, audio.remote, audio.leg_format());
                    media.bridge(call);
                    let (id, agent) = (c.id, c.agent.clone());
                    let outcome = CallbackOutcome::Answered;
                    self.reports.push(Report::Callback { id, agent, outcome });
                }
            }
            (200..=299, dialog, _) => {
                // An answer we cannot use: that leg is hung up, the attempt failed.
                if let Some(d) = dialog {
                    sip.bye(now, &d);
                }
                let outcome = match operator {
                    true => CallbackOutcome::OperatorNoAnswer,
                    false => CallbackOutcome::Failed,
                };
                self.callback_end(now, call, Some(outcome), sip, media);
            }
            (status, _, _) => {
                let outcome = match operator {
                    true => CallbackOutcome::OperatorNoAnswer,
                    false => CallbackOutcome::of_status(status),
                };
                self.callback_end(now, call, Some(outcome), sip, media);
            }
        }
    }

    /// A re-INVITE or UPDATE on a call-back's leg (hold, resume, a new address, a session
    /// refresh): answered as on a queue call's legs (reinvite.rs), the leg's codec kept and a hold
    /// mirrored; the media follows. Other in-dialog requests (a REFER) are refused with 501.
    fn callback_in_dialog(
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
        let address = media.address();
        let Some(call) = self.callbacks.by_dialog.get(dialog).copied() else {
            return refuse(sip, 481);
        };
        let Some(c) = self.callbacks.calls.get_mut(&call) else { return refuse(sip, 481) };
        let (leg, which) = if c.operator.as_ref() == Some(dialog) {
            (&mut c.operator_sdp, MediaLeg::Caller)
        } else if let (true, Some(leg)) = (c.caller.as_ref() == Some(dialog), c.caller_sdp.as_mut())
        {
            (leg, MediaLeg::Agent)
        } else {
            return refuse(sip, 481);
        };
        let codec = leg.1;
        let leg = &mut leg.0;
        let reoffer = super::reinvite::answer_reoffer(now, txn, request, leg, codec, address, sip);
        if let Some((remote, on_hold)) = reoffer {
            media.update_leg(call, which, remote, on_hold);
        }
    }

    /// One leg of call-back `call` hung up (`gone`): before the caller answered, the operator
    /// gave up; after, the conversation is over.
    fn callback_leg_ended(
        &mut self,
        now: Instant,
        call: CallId,
        gone: &DialogId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(c) = self.callbacks.calls.get_mut(&call) else { return };
        if c.operator.as_ref() == Some(gone) {
            c.operator = None;
        }
        if c.caller.as_ref() == Some(gone) {
            c.caller = None;
        }
        let outcome = (!c.answered).then_some(CallbackOutcome::Cancelled);
        self.callback_end(now, call, outcome, sip, media);
    }

    /// Ends call-back `call`: every leg still up gets its BYE (or CANCEL), the media closes, the
    /// operator's line is freed and `outcome` (when not reported yet) is reported.
    fn callback_end(
        &mut self,
        now: Instant,
        call: CallId,
        outcome: Option<CallbackOutcome>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(c) = self.callbacks.calls.remove(&call) else { return };
        for txn in [c.operator_txn, c.caller_txn].into_iter().flatten() {
            self.callbacks.by_txn.remove(&txn);
            sip.cancel(now, txn);
        }
        for dialog in [c.operator, c.caller].into_iter().flatten() {
            self.callbacks.by_dialog.remove(&dialog);
            sip.bye(now, &dialog);
        }
        media.close(call);
        let talked = outcome.is_none();
        let _ =
            self.engine.handle(now, Input::OutboundEnded { call, agent: c.agent.clone(), talked });
        if let Some(outcome) = outcome {
            self.reports.push(Report::Callback { id: c.id, agent: c.agent, outcome });
        }
    }

    /// Call-backs whose ringing leg rang too long at `now`: the operator's is
    /// `operator_no_answer`, the caller's `no_answer` (each INVITE is cancelled).
    pub(super) fn callback_due(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let late: Vec<(CallId, bool)> = self
            .callbacks
            .calls
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(call, c)| (*call, c.operator_txn.is_some()))
            .collect();
        for (call, operator) in late {
            let outcome = match operator {
                true => CallbackOutcome::OperatorNoAnswer,
                false => CallbackOutcome::NoAnswer,
            };
            self.callback_end(now, call, Some(outcome), sip, media);
        }
    }

    /// A call-back's media noticed a dead leg: the call-back ends (a failure if the caller had
    /// not answered yet).
    pub(super) fn callback_media_event(
        &mut self,
        now: Instant,
        event: MediaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        if let MediaEvent::LegDead { call, leg } = event {
            self.reports.push(Report::LegDead { leg });
            let answered = self.callbacks.calls.get(&call).is_some_and(|c| c.answered);
            let outcome = (!answered).then_some(CallbackOutcome::Failed);
            self.callback_end(now, call, outcome, sip, media);
        }
    }

    /// Shutdown: every call-back's legs are hung up (or cancelled), waiting feature codes get
    /// 503. The engine is not told, as for queue calls.
    pub(super) fn callback_hang_up_all(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        for (_, l) in self.callbacks.lookups.drain() {
            sip.reject(now, l.txn, 503, &[]);
        }
        for (call, c) in self.callbacks.calls.drain() {
            for txn in [c.operator_txn, c.caller_txn].into_iter().flatten() {
                sip.cancel(now, txn);
            }
            for dialog in [c.operator, c.caller].into_iter().flatten() {
                sip.bye(now, &dialog);
            }
            media.close(call);
        }
        self.callbacks.by_txn.clear();
        self.callbacks.by_dialog.clear();
    }
}
