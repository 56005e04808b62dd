//! Supervisor modes: a supervisor account (`[[agents]] role = "supervisor"`) listens to, whispers
//! to or barges in on an operator's bridged call. Domain layer, sans-IO.
//!
//! Two ways in:
//! - the supervisor's softphone dials a mode's prefix and the operator's user or id (`*51op1`
//!   listen, `*52op1` whisper, `*53op1` barge; `[queue.feature_codes]`), authenticated exactly
//!   like the agents' feature codes (feature.rs: 407 and Proxy-Authorization, the same bans), and
//!   the call is answered with our SDP;
//! - the admin API asks ([`Switchboard::admin_supervise`]), and tongdai INVITEs the supervisor's
//!   registered phone as it rings an agent (30 s at most), from `111`, the display naming the
//!   mode and the operator.
//!
//! Either way the supervisor's leg becomes the call's third media leg
//! ([`MediaControl::open_third`]) and the call is mixed ([`MediaControl::set_mix`]): **listen**,
//! the supervisor hears caller and operator and nobody hears the supervisor; **whisper**, the
//! operator hears the supervisor too, the caller never does; **barge**, a three-way call. In the
//! call the supervisor switches modes with SIP INFO keys `1` (listen), `2` (whisper), `3` (barge).
//!
//! Refusals (a SIP status to the softphone, [`SuperviseError`] to the API): 403 for an account
//! that is not a supervisor, 404 when the operator is unknown or in no bridged call, 486 when the
//! call is already supervised or the supervisor already supervises one, 488 for an offer without
//! a codec we speak, 480 when no RTP port is free.
//!
//! Ends: the supervisor's BYE drops the third leg, and caller and operator are bridged again as
//! before. The call ending, or the operator's leg going (blind transfer, hang-up, dead leg), or a
//! consultation starting, or the operator holding the caller (reinvite.rs, consult.rs: the call's
//! media changes, and the third leg is a conference's), hangs the supervisor up (BYE, or CANCEL
//! while it rings); a held caller hears hold audio again. A call on hold, in a conference or in
//! a consultation cannot be supervised (404). A supervisor's leg is never offered to the queue
//! and holds neither an operator line nor a trunk channel; supervisors are not in the engine at
//! all, so the queue never rings them. The supervisor sees `111` and the operator's name, never the
//! caller's number.

use super::*;
use crate::acd::AgentState;
use crate::config::SupervisionMode;

/// How long the supervisor's phone may ring for an admin API supervision.
const SUPERVISOR_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a supervision cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuperviseError {
    /// No account has that id.
    #[error("no such supervisor")]
    UnknownSupervisor,
    /// The account is an operator, not a supervisor.
    #[error("the account is not a supervisor")]
    NotSupervisor,
    /// No operator has that id or user.
    #[error("no such operator")]
    UnknownOperator,
    /// The operator is in no bridged call.
    #[error("the operator is in no bridged call")]
    NotInCall,
    /// Someone already supervises that call.
    #[error("the call is already supervised")]
    AlreadySupervised,
    /// The supervisor already supervises a call.
    #[error("the supervisor is already supervising a call")]
    SupervisorBusy,
    /// The supervisor's phone is not registered.
    #[error("the supervisor's phone is not registered")]
    NotRegistered,
    /// No RTP port is free (or the call has no media).
    #[error("no media port free")]
    NoMedia,
}

impl SuperviseError {
    /// The SIP status refusing a supervisor's INVITE for this reason.
    fn sip_status(self) -> u16 {
        match self {
            SuperviseError::UnknownSupervisor | SuperviseError::NotSupervisor => 403,
            SuperviseError::UnknownOperator | SuperviseError::NotInCall => 404,
            SuperviseError::AlreadySupervised | SuperviseError::SupervisorBusy => 486,
            SuperviseError::NotRegistered | SuperviseError::NoMedia => 480,
        }
    }
}

/// The mixer's mode for a supervision mode.
fn mix(mode: SupervisionMode) -> MixMode {
    match mode {
        SupervisionMode::Listen => MixMode::Listen,
        SupervisionMode::Whisper => MixMode::Whisper,
        SupervisionMode::Barge => MixMode::Conference,
    }
}

/// The supervisor's leg.
#[derive(Debug)]
enum SupervisorLeg {
    /// Our INVITE to the supervisor's phone rings (admin API).
    Ringing { txn: TxnId, deadline: Instant },
    /// Our 200 carried the offer (the supervisor's INVITE had none): the answer comes in the ACK.
    AwaitingAck { dialog: DialogId },
    /// In the call.
    Up { dialog: DialogId },
}

impl SupervisorLeg {
    fn dialog(&self) -> Option<&DialogId> {
        match self {
            SupervisorLeg::Ringing { .. } => None,
            SupervisorLeg::AwaitingAck { dialog } | SupervisorLeg::Up { dialog } => Some(dialog),
        }
    }
}

/// One supervised call.
#[derive(Debug)]
struct Supervision {
    supervisor: AgentId,
    operator: AgentId,
    mode: SupervisionMode,
    leg: SupervisorLeg,
    /// Our description on the supervisor's leg.
    sdp: LegSdp,
    /// The codec the supervisor's answer agreed on, once joined.
    codec: Option<Codec>,
}

/// Supervisions in progress, by call (a call has at most one).
#[derive(Debug, Default)]
pub(super) struct Supervisions {
    by_call: HashMap<CallId, Supervision>,
}

impl Supervisions {
    fn by_dialog(&self, dialog: &DialogId) -> Option<CallId> {
        self.by_call.iter().find(|(_, s)| s.leg.dialog() == Some(dialog)).map(|(c, _)| *c)
    }

    fn by_txn(&self, txn: TxnId) -> Option<CallId> {
        let ringing =
            |s: &Supervision| matches!(s.leg, SupervisorLeg::Ringing { txn: t, .. } if t == txn);
        self.by_call.iter().find(|(_, s)| ringing(s)).map(|(c, _)| *c)
    }

    /// When the next ringing supervisor's phone is to be cancelled.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let deadline = |s: &Supervision| match s.leg {
            SupervisorLeg::Ringing { deadline, .. } => Some(deadline),
            _ => None,
        };
        self.by_call.values().filter_map(deadline).min()
    }
}

impl Switchboard {
    /// Operators being supervised now: (operator, supervisor, mode), for the admin API.
    pub fn supervisions(&self) -> Vec<(AgentId, AgentId, SupervisionMode)> {
        let joined = self
            .supervisions
            .by_call
            .values()
            .filter(|s| matches!(s.leg, SupervisorLeg::Up { .. }));
        joined.map(|s| (s.operator.clone(), s.supervisor.clone(), s.mode)).collect()
    }

    /// The bridged call of `operator`: on call in the engine, its leg answered and not holding
    /// the caller, not handed to an outside party or in a conference, and no consultation in
    /// progress (the call's media changes then: a supervisor leaves).
    fn bridged_call(&self, operator: &AgentId) -> Option<CallId> {
        let Some(AgentState::OnCall { call }) = self.engine.agent_state(operator) else {
            return None;
        };
        let c = self.calls.get(&call)?;
        let answered = |l: &AgentLeg| &l.agent == operator && l.dialog.is_some() && !l.held;
        let alone = c.outside.is_none() && self.consults.of_call(call).is_none();
        (alone && c.agents.iter().any(answered)).then_some(call)
    }

    /// The call `supervisor` may join to supervise the operator named `operator` (id or user).
    fn supervisable(
        &self,
        supervisor: &AgentId,
        operator: &str,
    ) -> Result<(CallId, AgentId), SuperviseError> {
        let named = |a: &&AgentConfig| {
            a.is_operator()
                && (a.id.eq_ignore_ascii_case(operator) || a.user.eq_ignore_ascii_case(operator))
        };
        let operator = self.agents.iter().find(named).ok_or(SuperviseError::UnknownOperator)?;
        let operator = AgentId::new(&operator.id);
        let call = self.bridged_call(&operator).ok_or(SuperviseError::NotInCall)?;
        if self.supervisions.by_call.contains_key(&call) {
            return Err(SuperviseError::AlreadySupervised);
        }
        if self.supervisions.by_call.values().any(|s| &s.supervisor == supervisor) {
            return Err(SuperviseError::SupervisorBusy);
        }
        Ok((call, operator))
    }

    /// The supervisor account with id or user `name`.
    fn supervisor_account(&self, name: &str) -> Result<&AgentConfig, SuperviseError> {
        let account = self
            .agents
            .iter()
            .find(|a| a.id == name || a.user.eq_ignore_ascii_case(name))
            .ok_or(SuperviseError::UnknownSupervisor)?;
        if account.is_operator() {
            return Err(SuperviseError::NotSupervisor);
        }
        Ok(account)
    }

    /// An authenticated INVITE from `account` dialling a supervision prefix (`mode`) and
    /// `operator` (feature.rs has checked the credentials).
    // The parts of the INVITE and of its dialled code, as feature.rs has them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn supervise_code(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        account: &AgentId,
        mode: SupervisionMode,
        operator: &str,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let reject = |sip: &mut Endpoint, status: u16| sip.reject(now, txn, status, &[]);
        let found = self.supervisor_account(account.as_str()).map(|a| AgentId::new(&a.id));
        let started = found.and_then(|supervisor| {
            self.supervisable(&supervisor, operator)
                .map(|(call, operator)| (supervisor, call, operator))
        });
        let (supervisor, call, operator) = match started {
            Ok(s) => s,
            Err(e) => return reject(sip, e.sip_status()),
        };
        let call_id = request.headers.call_id().unwrap_or_default();
        self.next_leg += 1;
        let session = session_id(call_id.as_bytes(), self.next_leg);
        let codecs = [Codec::Pcmu, Codec::Pcma];
        if request.body.is_empty() {
            // No offer: ours goes in the 200, the answer comes in the ACK (`Confirmed`).
            let Some(port) = media.open_third(call) else { return reject(sip, 480) };
            let offer = sdp::offer(media.address(), port, &codecs, Direction::SendRecv);
            let sdp = LegSdp::first(session, offer, port);
            let Some(dialog) = sip.answer(now, txn, Bytes::from(sdp.last.to_string())) else {
                return media.drop_third(call);
            };
            let leg = SupervisorLeg::AwaitingAck { dialog };
            let s = Supervision { supervisor, operator, mode, leg, sdp, codec: None };
            self.supervisions.by_call.insert(call, s);
            return;
        }
        let offer =
            std::str::from_utf8(&request.body).ok().and_then(|t| SessionDescription::parse(t).ok());
        let probe = offer.as_ref().and_then(|o| sdp::answer(o, &codecs, media.address(), 0).ok());
        let (Some(offer), Some(probe)) = (offer, probe) else { return reject(sip, 488) };
        let Some(port) = media.open_third(call) else { return reject(sip, 480) };
        let format = probe.audio.leg_format();
        let Ok(answer) = sdp::answer(&offer, &[format.codec], media.address(), port) else {
            media.drop_third(call);
            return reject(sip, 488);
        };
        let sdp = LegSdp::first(session, answer.sdp, port);
        let Some(dialog) = sip.answer(now, txn, Bytes::from(sdp.last.to_string())) else {
            return media.drop_third(call);
        };
        let leg = SupervisorLeg::Up { dialog };
        let s = Supervision { supervisor, operator, mode, leg, sdp, codec: None };
        self.supervisions.by_call.insert(call, s);
        self.supervisor_joined(call, &answer.audio, media);
    }

    /// Starts a supervision for the admin API: `supervisor` (an account id) is called on its
    /// registered phone and joins the bridged call of `operator` (id or user) in `mode` when it
    /// answers.
    pub fn admin_supervise(
        &mut self,
        now: Instant,
        operator: &str,
        supervisor: &str,
        mode: SupervisionMode,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Result<(), SuperviseError> {
        let account = self.supervisor_account(supervisor)?;
        let supervisor = AgentId::new(&account.id);
        let (call, operator) = self.supervisable(&supervisor, operator)?;
        let operator_name = self
            .agents
            .iter()
            .find(|a| a.id == operator.as_str())
            .map_or_else(|| operator.as_str().to_string(), |a| a.name.clone());
        let binding =
            self.registrar.lookup(supervisor.as_str()).first().map(|b| (b.contact.clone(), b.flow));
        let (contact, flow) = binding.ok_or(SuperviseError::NotRegistered)?;
        let port = media.open_third(call).ok_or(SuperviseError::NoMedia)?;
        let offer =
            sdp::offer(media.address(), port, &[Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
        self.next_leg += 1;
        let sdp =
            LegSdp::first(session_id(supervisor.as_str().as_bytes(), self.next_leg), offer, port);
        // The supervisor sees what it joins: the mode and the operator, from the hotline's 111.
        let display = format!("111 · {} · {operator_name}", mode.as_str());
        let display = display.replace('\\', "\\\\").replace('"', "\\\"");
        let from = format!("\"{display}\" <sip:111@{}>", via_host(flow.local));
        let body = Bytes::from(sdp.last.to_string());
        let Some(txn) = sip.invite(now, flow, contact, &from, body, &[]) else {
            media.drop_third(call);
            return Err(SuperviseError::NoMedia);
        };
        let leg = SupervisorLeg::Ringing { txn, deadline: now + SUPERVISOR_ANSWER_TIMEOUT };
        let s = Supervision { supervisor, operator, mode, leg, sdp, codec: None };
        self.supervisions.by_call.insert(call, s);
        Ok(())
    }

    /// The supervisor's leg of `call` answered with `audio`: the mixer takes it in.
    fn supervisor_joined(
        &mut self,
        call: CallId,
        audio: &sdp::NegotiatedAudio,
        media: &mut dyn MediaControl,
    ) {
        let Some(s) = self.supervisions.by_call.get_mut(&call) else { return };
        s.codec = Some(audio.leg_format().codec);
        media.third_answered(call, audio.remote, audio.leg_format());
        media.set_mix(call, mix(s.mode));
        self.reports.push(Report::Supervision {
            supervisor: s.supervisor.clone(),
            operator: s.operator.clone(),
            mode: s.mode,
            event: "started",
        });
    }

    /// Ends the supervision of `call`, if any: the supervisor is hung up (CANCEL while it rings)
    /// and caller and operator hear each other as before.
    pub(super) fn supervise_end(
        &mut self,
        now: Instant,
        call: CallId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(s) = self.supervisions.by_call.remove(&call) else { return };
        match &s.leg {
            SupervisorLeg::Ringing { txn, .. } => sip.cancel(now, *txn),
            SupervisorLeg::AwaitingAck { dialog } | SupervisorLeg::Up { dialog } => {
                sip.bye(now, dialog);
            }
        }
        self.supervisor_left(call, s, media);
    }

    /// The supervisor's leg of `call` is gone (already hung up): the third leg is dropped.
    fn supervisor_left(&mut self, call: CallId, s: Supervision, media: &mut dyn MediaControl) {
        media.drop_third(call);
        // Dropping the third leg bridges caller and operator again: a caller the operator holds
        // hears hold audio instead (reinvite.rs), as without a supervisor.
        let held = self.calls.get(&call).is_some_and(|c| c.agents.iter().any(|l| l.held));
        if held {
            self.hold_audio(call, None, media);
        }
        if let SupervisorLeg::Up { .. } = s.leg {
            self.reports.push(Report::Supervision {
                supervisor: s.supervisor,
                operator: s.operator,
                mode: s.mode,
                event: "ended",
            });
        }
    }

    /// Ends the supervisions whose operator is no longer bridged to the call (the call ended,
    /// the operator hung up, transferred, or the leg died). Run before and after the engine's
    /// outputs are carried out, so that the third leg is gone before the caller's media changes.
    pub(super) fn supervise_sweep(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        if self.supervisions.by_call.is_empty() {
            return;
        }
        let over: Vec<CallId> = self
            .supervisions
            .by_call
            .iter()
            .filter(|(call, s)| self.bridged_call(&s.operator) != Some(**call))
            .map(|(call, _)| *call)
            .collect();
        for call in over {
            self.supervise_end(now, call, sip, media);
        }
    }

    /// Supervisors' phones that rang too long are cancelled.
    pub(super) fn supervise_due(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let late: Vec<CallId> = self
            .supervisions
            .by_call
            .iter()
            .filter(|(_, s)| matches!(s.leg, SupervisorLeg::Ringing { deadline, .. } if deadline <= now))
            .map(|(call, _)| *call)
            .collect();
        for call in late {
            self.supervise_end(now, call, sip, media);
        }
    }

    /// Takes the endpoint events of supervisors' legs; returns every other event.
    pub(super) fn supervise_event(
        &mut self,
        now: Instant,
        event: UaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Option<UaEvent> {
        // Whose event it is: a supervisor's INVITE transaction or dialog, else not ours.
        let ours = match &event {
            UaEvent::Response { txn, .. } | UaEvent::Timeout { txn } => {
                self.supervisions.by_txn(*txn)
            }
            UaEvent::Confirmed { dialog, .. }
            | UaEvent::AckTimeout { dialog }
            | UaEvent::Bye { dialog }
            | UaEvent::Ended { dialog, .. }
            | UaEvent::Dtmf { dialog, .. }
            | UaEvent::InDialog { dialog, .. } => self.supervisions.by_dialog(dialog),
            _ => None,
        };
        let Some(call) = ours else { return Some(event) };
        match event {
            UaEvent::Response { response, dialog, .. } => {
                if response.status >= 200 {
                    self.supervisor_answered(now, call, &response, dialog, sip, media);
                }
            }
            UaEvent::Confirmed { dialog, body } => {
                let s = self.supervisions.by_call.get_mut(&call)?;
                if !matches!(s.leg, SupervisorLeg::AwaitingAck { .. }) {
                    // The ACK of a re-INVITE's 2xx, or a retransmitted ACK.
                    return None;
                }
                match answer_in(&body) {
                    Some(audio) => {
                        s.leg = SupervisorLeg::Up { dialog };
                        self.supervisor_joined(call, &audio, media);
                    }
                    // No usable answer: the session never came up.
                    None => self.supervise_end(now, call, sip, media),
                }
            }
            UaEvent::AckTimeout { .. } => self.supervise_end(now, call, sip, media),
            UaEvent::Dtmf { signal, .. } => self.supervisor_key(call, signal, media),
            UaEvent::InDialog { txn, request, .. } => {
                self.supervisor_request(now, call, txn, &request, media.address(), sip)
            }
            // Gone already: the supervisor hung up, or its INVITE timed out.
            _ => {
                if let Some(s) = self.supervisions.by_call.remove(&call) {
                    self.supervisor_left(call, s, media);
                }
            }
        }
        None
    }

    /// The final response of the supervisor's phone to our INVITE (admin API).
    fn supervisor_answered(
        &mut self,
        now: Instant,
        call: CallId,
        response: &Response,
        dialog: Option<DialogId>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let audio = answer_in(&response.body);
        let ok = (200..300).contains(&response.status);
        match (ok, dialog, audio) {
            (true, Some(dialog), Some(audio)) => {
                if let Some(s) = self.supervisions.by_call.get_mut(&call) {
                    s.leg = SupervisorLeg::Up { dialog };
                }
                self.supervisor_joined(call, &audio, media);
            }
            (true, Some(dialog), None) => {
                // An answer we cannot use: hang it up.
                sip.bye(now, &dialog);
                if let Some(s) = self.supervisions.by_call.remove(&call) {
                    self.supervisor_left(call, s, media);
                }
            }
            _ => {
                if let Some(s) = self.supervisions.by_call.remove(&call) {
                    self.supervisor_left(call, s, media);
                }
            }
        }
    }

    /// A SIP INFO key from the supervisor: `1` listen, `2` whisper, `3` barge.
    fn supervisor_key(&mut self, call: CallId, key: char, media: &mut dyn MediaControl) {
        let mode = match key {
            '1' => SupervisionMode::Listen,
            '2' => SupervisionMode::Whisper,
            '3' => SupervisionMode::Barge,
            _ => return,
        };
        let Some(s) = self.supervisions.by_call.get_mut(&call) else { return };
        if s.mode == mode || !matches!(s.leg, SupervisorLeg::Up { .. }) {
            return;
        }
        s.mode = mode;
        media.set_mix(call, mix(mode));
        let (supervisor, operator) = (s.supervisor.clone(), s.operator.clone());
        self.reports.push(Report::Supervision { supervisor, operator, mode, event: "switched" });
    }

    /// A request in the supervisor's dialog: a re-INVITE or UPDATE is answered with our current
    /// description (hold mirrored; the mix goes on); anything else is refused.
    fn supervisor_request(
        &mut self,
        now: Instant,
        call: CallId,
        txn: TxnId,
        request: &Request,
        address: IpAddr,
        sip: &mut Endpoint,
    ) {
        let refuse = |sip: &mut Endpoint, status: u16| {
            sip.respond(now, txn, Response::for_request(request, status, None));
        };
        if !matches!(request.method, Method::Invite | Method::Update) {
            return refuse(sip, 501);
        }
        let Some(s) = self.supervisions.by_call.get_mut(&call) else { return refuse(sip, 481) };
        if request.body.is_empty() {
            let body = s.sdp.next(s.sdp.last.clone());
            sip.accept_in_dialog(now, txn, Some(body));
            return;
        }
        let offer =
            std::str::from_utf8(&request.body).ok().and_then(|t| SessionDescription::parse(t).ok());
        let Some(offer) = offer else { return refuse(sip, 400) };
        // Keep the codec in use so the mixer's leg need not change.
        let codecs = s.codec.map_or(vec![Codec::Pcmu, Codec::Pcma], |c| vec![c]);
        match sdp::answer(&offer, &codecs, address, s.sdp.port) {
            Ok(answer) => {
                let body = s.sdp.next(answer.sdp);
                sip.accept_in_dialog(now, txn, Some(body));
            }
            Err(_) => refuse(sip, 488),
        }
    }
}
