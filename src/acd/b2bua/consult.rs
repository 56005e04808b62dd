//! Consultation, attended transfer (REFER with Replaces, RFC 3891) and the three-way conference
//! made from a consultation. Domain layer, sans-IO.
//!
//! An operator bridged to a caller puts the caller on hold from the softphone (a re-INVITE with
//! `sendonly` or `inactive`: the caller hears hold audio, reinvite.rs) and calls a transfer
//! directory code (`*31`, `[[directory]]`): a *consultation*. tongdai authenticates it like a
//! feature code, INVITEs the target itself (through the trunk or directly, from the hotline's
//! `111`, counted against `[trunk] channels`), passes the target's ringing on, and answers the
//! operator's call only when the target answers; a target that fails gives the operator its
//! error (486 busy, 404, otherwise 480, also after the ring time). The consultation is a media
//! call of its own: operator and target bridged.
//!
//! Then the operator
//! - **completes** the transfer the way softphones do it (Linphone, Zoiper, MicroSIP, Bria): a
//!   REFER in the caller's dialog whose `Refer-To` embeds `Replaces` naming the consultation. The
//!   target's leg moves into the caller's call as it is (same port, same RTP stream, no re-INVITE:
//!   [`Join::Transfer`]), the caller is bridged to it, both operator legs are hung up, and the
//!   agent goes to wrap-up with the call recorded as transferred;
//! - **cancels**: hangs up the consultation (or the target does); the operator resumes the caller
//!   (a re-INVITE with `sendrecv`) and they talk again;
//! - or makes it a **three-way conference**: `*3` pressed in the consultation (RFC 4733 or SIP
//!   INFO; the key of Asterisk's `atxferthreeway`). Both consultation legs move into the caller's
//!   call ([`Join::Conference`]) and are mixed: each party hears the other two. The operator's
//!   held first leg is hung up; the consultation leg is their leg of the call from then on. When
//!   the operator hangs up, caller and target stay together (a warm handover, recorded as
//!   transferred); when the target hangs up, caller and operator go on as before; when the caller
//!   hangs up, everyone is hung up.
//!
//! A REFER with Replaces while the target still rings (a *semi-attended* transfer, as MicroSIP and
//! Zoiper allow) hands the ringing target over: the operator's consultation INVITE gets 487, the
//! caller hears hold audio, and the transfer goes on as a blind one — bridged on the target's
//! answer, back to the queue, first in line, if it fails. A REFER with Replaces that names no
//! consultation of this operator is refused with 403 (the caller stays with the operator).

use super::*;
use crate::acd::AgentId;
use crate::sip::message::Replaces;
use crate::sip::refer::ReferProgress;

/// The key sequence that turns a consultation into a three-way conference.
pub const CONFERENCE_KEYS: [char; 2] = ['*', '3'];

/// How long a consultation's target may ring.
const CONSULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One consultation: the operator's second call and the target's leg.
#[derive(Debug)]
pub(super) struct Consult {
    /// The caller's call the operator consults about.
    call: CallId,
    /// The operator.
    agent: AgentId,
    /// The operator's INVITE (answered once the target answers).
    agent_txn: TxnId,
    /// The operator's consultation dialog, once answered.
    agent_dialog: Option<DialogId>,
    /// Our answer to the operator's offer (sent when the target answers).
    agent_sdp: LegSdp,
    agent_format: LegFormat,
    /// The target's INVITE.
    target_txn: TxnId,
    /// Our offer to the target.
    target_sdp: LegSdp,
    /// The target's dialog and format, once answered.
    target: Option<(DialogId, LegFormat)>,
    /// When the target has rung too long (while unanswered).
    deadline: Option<Instant>,
    /// The conference keys pressed so far, in order.
    keys: usize,
    /// Handed over while the target rang (semi-attended): the operator's dialog with the caller
    /// and the REFER's subscription, for the last NOTIFY.
    handed: Option<(DialogId, Option<u32>)>,
}

/// Consultations in progress, by their media call, and how their transactions and dialogs map.
#[derive(Debug, Default)]
pub(super) struct Consults {
    by_media: HashMap<CallId, Consult>,
    by_txn: HashMap<TxnId, CallId>,
    by_dialog: HashMap<DialogId, CallId>,
}

impl Consults {
    /// Targets' legs up or ringing (each an outbound leg through the trunk).
    pub(super) fn outbound_legs(&self) -> usize {
        self.by_media.len()
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.by_media.values().filter_map(|c| c.deadline).min()
    }

    /// The consultation of the caller's `call`, if any.
    pub(super) fn of_call(&self, call: CallId) -> Option<CallId> {
        self.by_media.iter().find(|(_, c)| c.call == call).map(|(m, _)| *m)
    }

    fn remove(&mut self, media_call: CallId) -> Option<Consult> {
        let c = self.by_media.remove(&media_call)?;
        self.by_txn.remove(&c.agent_txn);
        self.by_txn.remove(&c.target_txn);
        if let Some(d) = &c.agent_dialog {
            self.by_dialog.remove(d);
        }
        if let Some((d, _)) = &c.target {
            self.by_dialog.remove(d);
        }
        Some(c)
    }
}

/// True when `replaces` names `dialog` (tags compared as a pair, in either order: softphones
/// disagree on whose view `to-tag` takes).
fn names_dialog(replaces: &Replaces, dialog: &DialogId) -> bool {
    let tags = [replaces.to_tag.as_str(), replaces.from_tag.as_str()];
    replaces.call_id == dialog.call_id
        && (tags == [dialog.local_tag.as_str(), dialog.remote_tag.as_str()]
            || tags == [dialog.remote_tag.as_str(), dialog.local_tag.as_str()])
}

/// True when `replaces` names the dialog the operator's still unanswered INVITE `txn` would make
/// (its Call-ID and From tag; our To tag is not known to the phone yet unless a 1xx carried it).
fn names_invite(replaces: &Replaces, sip: &Endpoint, txn: TxnId) -> bool {
    let Some(request) = sip.open_invite(txn) else { return false };
    let call_id = request.headers.call_id().unwrap_or_default();
    let from_tag = request.headers.from().ok().and_then(|f| f.tag().map(str::to_owned));
    let from_tag = from_tag.unwrap_or_default();
    call_id == replaces.call_id && (replaces.from_tag == from_tag || replaces.to_tag == from_tag)
}

/// The status the operator's consultation INVITE gets when the target answered `status`.
fn consult_failure(status: u16) -> u16 {
    match status {
        486 | 600 => 486,
        603 => 603,
        404 | 484 | 604 => 404,
        _ => 480,
    }
}

impl Switchboard {
    /// An authenticated agent's INVITE for a transfer directory code: a consultation when the
    /// agent is bridged to a caller.
    pub(super) fn consult_invite(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        agent: AgentId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let reject = |sip: &mut Endpoint, status: u16| sip.reject(now, txn, status, &[]);
        // The agent's bridged call (not one handed over already).
        let call = self.calls.iter().find_map(|(id, c)| {
            let talking = c.agents.iter().any(|l| l.agent == agent && l.dialog.is_some());
            (talking && c.outside.is_none()).then_some(*id)
        });
        let Some(call) = call else { return reject(sip, 403) };
        if self.consults.of_call(call).is_some() || self.transfers.by_call.contains_key(&call) {
            return reject(sip, 486);
        }
        let Some((target, address)) = self.transfers.resolve(&request.uri, &self.access.local_udp)
        else {
            return reject(sip, 404);
        };
        let Some(local) = self.local_for(address) else { return reject(sip, 480) };
        if !self.channels_free(1) {
            self.reports.push(Report::Refused { reason: "trunk_channels" });
            return reject(sip, 480);
        }
        let offer =
            std::str::from_utf8(&request.body).ok().and_then(|t| SessionDescription::parse(t).ok());
        // A consultation without an offer (late offer) is not taken: every softphone offers.
        let Some(offer) = offer else { return reject(sip, 488) };
        let Ok(probe) = sdp::answer(&offer, &[Codec::Pcmu, Codec::Pcma], media.address(), 0) else {
            return reject(sip, 488);
        };
        let format = probe.audio.leg_format();
        self.next_call += 1;
        let media_call = CallId(self.next_call);
        let Some(port) = media.open_caller(media_call, probe.audio.remote, format) else {
            return reject(sip, 480);
        };
        let Ok(answer) = sdp::answer(&offer, &[format.codec], media.address(), port) else {
            media.close(media_call);
            return reject(sip, 488);
        };
        let call_id = request.headers.call_id().unwrap_or_default();
        let agent_sdp =
            LegSdp::first(session_id(call_id.as_bytes(), self.next_call), answer.sdp, port);
        let started = self.invite_transfer_target(
            now,
            call,
            media_call,
            format.codec,
            target,
            address,
            local,
            sip,
            media,
        );
        let Some((target_txn, target_sdp)) = started else {
            media.close(media_call);
            return reject(sip, 480);
        };
        let consult = Consult {
            call,
            agent,
            agent_txn: txn,
            agent_dialog: None,
            agent_sdp,
            agent_format: format,
            target_txn,
            target_sdp,
            target: None,
            deadline: Some(now + CONSULT_ANSWER_TIMEOUT),
            keys: 0,
            handed: None,
        };
        self.consults.by_txn.insert(txn, media_call);
        self.consults.by_txn.insert(target_txn, media_call);
        self.consults.by_media.insert(media_call, consult);
    }

    /// Takes the endpoint events of consultations; returns every other event.
    pub(super) fn consult_event(
        &mut self,
        now: Instant,
        event: UaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Option<UaEvent> {
        let by_txn = |txn: &TxnId| self.consults.by_txn.get(txn).copied();
        let by_dialog = |d: &DialogId| self.consults.by_dialog.get(d).copied();
        match &event {
            UaEvent::Response { txn, response, dialog } if by_txn(txn).is_some() => {
                let media_call = by_txn(txn)?;
                self.consult_response(now, media_call, response, dialog.clone(), sip, media);
                None
            }
            UaEvent::Timeout { txn } if by_txn(txn).is_some() => {
                let media_call = by_txn(txn)?;
                self.consult_end(now, media_call, None, Some(408), sip, media);
                None
            }
            UaEvent::CallCancelled { txn } if by_txn(txn).is_some() => {
                // The operator gave up before the target answered.
                let media_call = by_txn(txn)?;
                self.consult_end(now, media_call, None, None, sip, media);
                None
            }
            UaEvent::Bye { dialog }
            | UaEvent::Ended { dialog, .. }
            | UaEvent::AckTimeout { dialog }
                if by_dialog(dialog).is_some() =>
            {
                let media_call = by_dialog(dialog)?;
                if matches!(event, UaEvent::AckTimeout { .. }) {
                    sip.bye(now, dialog);
                }
                self.consult_end(now, media_call, Some(dialog), None, sip, media);
                None
            }
            UaEvent::Confirmed { dialog, .. } if by_dialog(dialog).is_some() => None,
            UaEvent::Dtmf { dialog, signal, .. } if by_dialog(dialog).is_some() => {
                let media_call = by_dialog(dialog)?;
                let from_agent = self
                    .consults
                    .by_media
                    .get(&media_call)
                    .is_some_and(|c| c.agent_dialog.as_ref() == Some(dialog));
                if from_agent {
                    self.consult_key(now, media_call, *signal, sip, media);
                }
                None
            }
            UaEvent::InDialog { dialog, txn, request } if by_dialog(dialog).is_some() => {
                let media_call = by_dialog(dialog)?;
                self.consult_in_dialog(now, media_call, dialog, *txn, request, sip, media);
                None
            }
            // Either leg of a conference (the caller's call with an operator and a target).
            UaEvent::Bye { dialog }
            | UaEvent::Ended { dialog, .. }
            | UaEvent::AckTimeout { dialog }
                if self.in_conference(dialog) =>
            {
                if matches!(event, UaEvent::AckTimeout { .. }) {
                    sip.bye(now, dialog);
                }
                self.conference_leg_ended(now, dialog, sip, media);
                None
            }
            _ => Some(event),
        }
    }

    /// A key pressed by the operator in a consultation: `*3` makes it a conference.
    pub(super) fn consult_key(
        &mut self,
        now: Instant,
        media_call: CallId,
        digit: char,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(c) = self.consults.by_media.get_mut(&media_call) else { return };
        c.keys = match (CONFERENCE_KEYS.get(c.keys), CONFERENCE_KEYS.first()) {
            (Some(&want), _) if want == digit => c.keys + 1,
            (_, Some(&first)) if first == digit => 1,
            _ => 0,
        };
        if c.keys == CONFERENCE_KEYS.len() {
            c.keys = 0;
            self.conference(now, media_call, sip, media);
        }
    }

    /// True when `media_call` is a consultation (its media events are this module's).
    pub(super) fn is_consult(&self, media_call: CallId) -> bool {
        self.consults.by_media.contains_key(&media_call)
    }

    /// A media event of a consultation: a key from the operator, or a leg gone silent.
    pub(super) fn consult_media_event(
        &mut self,
        now: Instant,
        event: MediaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        match event {
            // The consultation's "caller" leg is the operator's.
            MediaEvent::Dtmf { call, digit } => self.consult_key(now, call, digit, sip, media),
            MediaEvent::LegDead { call, leg } => {
                self.reports.push(Report::LegDead { leg });
                self.consult_end(now, call, None, None, sip, media);
            }
        }
    }

    fn consult_response(
        &mut self,
        now: Instant,
        media_call: CallId,
        response: &Response,
        dialog: Option<DialogId>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(c) = self.consults.by_media.get(&media_call) else { return };
        let agent_txn = c.agent_txn;
        if response.status < 200 {
            if response.status >= 180 {
                sip.provisional(now, agent_txn, 180, None);
            }
            return;
        }
        if response.status >= 300 {
            let status = consult_failure(response.status);
            return self.consult_end(now, media_call, None, Some(status), sip, media);
        }
        let Some(dialog) = dialog else { return };
        if c.handed.is_some() {
            return self.handed_answered(now, media_call, response, dialog, sip, media);
        }
        let Some(audio) = answer_in(&response.body) else {
            sip.bye(now, &dialog);
            return self.consult_end(now, media_call, None, Some(488), sip, media);
        };
        let body = Bytes::from(c.agent_sdp.last.to_string());
        let Some(agent_dialog) = sip.answer(now, agent_txn, body) else {
            // The operator's INVITE is gone (cancelled as the target answered).
            sip.bye(now, &dialog);
            return self.consult_end(now, media_call, None, None, sip, media);
        };
        let format = audio.leg_format();
        media.agent_answered(media_call, audio.remote, format);
        media.bridge(media_call);
        self.consults.by_txn.remove(&agent_txn);
        self.consults.by_dialog.insert(agent_dialog.clone(), media_call);
        self.consults.by_dialog.insert(dialog.clone(), media_call);
        if let Some(c) = self.consults.by_media.get_mut(&media_call) {
            self.consults.by_txn.remove(&c.target_txn);
            c.agent_dialog = Some(agent_dialog);
            c.target = Some((dialog, format));
            c.deadline = None;
        }
    }

    /// Ends a consultation: every leg still up but `gone` is hung up (an unanswered operator
    /// INVITE gets `status`, 480 by default; a ringing target is cancelled); the caller's call
    /// is untouched — the operator resumes it.
    fn consult_end(
        &mut self,
        now: Instant,
        media_call: CallId,
        gone: Option<&DialogId>,
        status: Option<u16>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(c) = self.consults.remove(media_call) else { return };
        if let Some((agent_dialog, subscription)) = &c.handed {
            // A semi-attended transfer failed: the operator hears why, the caller goes back to
            // the queue, first in line.
            let status = status.unwrap_or(487);
            let progress = ReferProgress::status(status).unwrap_or(ReferProgress::FAILED);
            self.notify_refer(now, agent_dialog, *subscription, progress, sip);
            self.end_transferring_agent(now, c.call, agent_dialog, sip);
            if c.target.is_none() {
                sip.cancel(now, c.target_txn);
            }
            media.close(media_call);
            let _ = self.engine.handle(now, Input::TransferFailed { call: c.call });
            return;
        }
        match &c.agent_dialog {
            Some(d) if Some(d) != gone => {
                sip.bye(now, d);
            }
            Some(_) => {}
            None => sip.reject(now, c.agent_txn, status.unwrap_or(480), &[]),
        }
        match &c.target {
            Some((d, _)) if Some(d) != gone => {
                sip.bye(now, d);
            }
            Some(_) => {}
            None => sip.cancel(now, c.target_txn),
        }
        media.close(media_call);
    }

    /// Targets that rang too long are cancelled, and the operator hears 480.
    pub(super) fn consult_due(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let late: Vec<CallId> = self
            .consults
            .by_media
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(m, _)| *m)
            .collect();
        for media_call in late {
            self.consult_end(now, media_call, None, Some(480), sip, media);
        }
    }

    /// The caller's call ended (or the daemon stops): its consultation goes too.
    pub(super) fn consult_abort(
        &mut self,
        now: Instant,
        call: CallId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        if let Some(media_call) = self.consults.of_call(call) {
            self.consult_end(now, media_call, None, Some(487), sip, media);
        }
    }

    /// A re-INVITE or UPDATE on a consultation leg: answered with the leg's description, hold
    /// mirrored, the media told. Anything else: 501.
    #[allow(clippy::too_many_arguments)]
    fn consult_in_dialog(
        &mut self,
        now: Instant,
        media_call: CallId,
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
        let Some(c) = self.consults.by_media.get_mut(&media_call) else { return refuse(sip, 481) };
        let (leg, codec, which) = if c.agent_dialog.as_ref() == Some(dialog) {
            (&mut c.agent_sdp, c.agent_format.codec, MediaLeg::Caller)
        } else if let Some((_, format)) = c.target.as_ref().filter(|(d, _)| d == dialog) {
            (&mut c.target_sdp, format.codec, MediaLeg::Agent)
        } else {
            return refuse(sip, 481);
        };
        let reoffer = super::reinvite::answer_reoffer(now, txn, request, leg, codec, address, sip);
        if let Some((remote, on_hold)) = reoffer {
            media.update_leg(media_call, which, remote, on_hold);
        }
    }

    /// A REFER with Replaces from `agent` in the caller's `call`: completes the consultation it
    /// names. Returns the status to answer when it cannot.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attended_transfer(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
        agent_dialog: &DialogId,
        txn: TxnId,
        request: &Request,
        refer: &crate::sip::refer::Refer,
        replaces: &Replaces,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Result<(), u16> {
        let media_call = self.consults.of_call(call).ok_or(403u16)?;
        let c = self.consults.by_media.get(&media_call).ok_or(403u16)?;
        let names = c.agent_dialog.as_ref().is_some_and(|d| names_dialog(replaces, d))
            || (c.agent_dialog.is_none() && names_invite(replaces, sip, c.agent_txn));
        if !names || c.agent != agent || c.handed.is_some() {
            return Err(403);
        }
        if c.target.is_none() {
            return self.semi_attended(
                now,
                call,
                agent,
                agent_dialog,
                media_call,
                txn,
                request,
                refer,
                sip,
            );
        }
        let c = self.consults.remove(media_call).ok_or(403u16)?;
        let Some((target_dialog, format)) = c.target else { return Err(403) };
        // The target's leg is the call's outside leg from now on: the engine's hold audio for
        // a transfer does not start, and the call's end keeps it up (overflow.rs).
        self.by_dialog.insert(target_dialog.clone(), call);
        if let Some(x) = self.calls.get_mut(&call) {
            let sdp = c.target_sdp;
            x.outside = Some(overflow::OutsideLeg { dialog: target_dialog, sdp, format });
        }
        if self.engine.handle(now, Input::TransferStarted { call, agent }).is_err() {
            return Err(403);
        }
        sip.respond(now, txn, refer.accepted(request, None));
        let subscription = refer.subscribe.then_some(refer.cseq);
        self.notify_refer(now, agent_dialog, subscription, ReferProgress::OK, sip);
        let _ = self.engine.handle(now, Input::TransferAnswered { call });
        self.drive(now, sip, media);
        media.join(media_call, call, Join::Transfer);
        if let Some(d) = &c.agent_dialog {
            sip.bye(now, d);
        }
        self.end_transferring_agent(now, call, agent_dialog, sip);
        Ok(())
    }

    /// A REFER with Replaces while the target rings: the operator's consultation INVITE gets
    /// 487, the caller hears hold audio, and the ringing target is the transfer's.
    #[allow(clippy::too_many_arguments)]
    fn semi_attended(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
        agent_dialog: &DialogId,
        media_call: CallId,
        txn: TxnId,
        request: &Request,
        refer: &crate::sip::refer::Refer,
        sip: &mut Endpoint,
    ) -> Result<(), u16> {
        if self.engine.handle(now, Input::TransferStarted { call, agent }).is_err() {
            return Err(403);
        }
        sip.respond(now, txn, refer.accepted(request, None));
        let subscription = refer.subscribe.then_some(refer.cseq);
        self.notify_refer(now, agent_dialog, subscription, ReferProgress::TRYING, sip);
        let Some(c) = self.consults.by_media.get_mut(&media_call) else { return Ok(()) };
        c.handed = Some((agent_dialog.clone(), subscription));
        let agent_txn = c.agent_txn;
        self.consults.by_txn.remove(&agent_txn);
        sip.reject(now, agent_txn, 487, &[]);
        Ok(())
    }

    /// The target of a semi-attended transfer answered: bridged to the caller as in an attended
    /// one; the operator's leg is hung up.
    fn handed_answered(
        &mut self,
        now: Instant,
        media_call: CallId,
        response: &Response,
        dialog: DialogId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(audio) = answer_in(&response.body) else {
            sip.bye(now, &dialog);
            return self.consult_end(now, media_call, None, Some(488), sip, media);
        };
        let Some(c) = self.consults.remove(media_call) else { return };
        let Some((agent_dialog, subscription)) = c.handed else { return };
        let call = c.call;
        let format = audio.leg_format();
        media.agent_answered(media_call, audio.remote, format);
        self.by_dialog.insert(dialog.clone(), call);
        if let Some(x) = self.calls.get_mut(&call) {
            let sdp = c.target_sdp;
            x.outside = Some(overflow::OutsideLeg { dialog, sdp, format });
        }
        self.notify_refer(now, &agent_dialog, subscription, ReferProgress::OK, sip);
        self.end_transferring_agent(now, call, &agent_dialog, sip);
        let _ = self.engine.handle(now, Input::TransferAnswered { call });
        self.drive(now, sip, media);
        media.join(media_call, call, Join::Transfer);
    }

    /// `*3` in a consultation whose target answered: operator, caller and target in one mixed
    /// call.
    fn conference(
        &mut self,
        now: Instant,
        media_call: CallId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let answered = self.consults.by_media.get(&media_call).is_some_and(|c| c.target.is_some());
        if !answered {
            return;
        }
        let Some(c) = self.consults.remove(media_call) else { return };
        let (Some(agent_dialog), Some((target_dialog, format))) = (c.agent_dialog, c.target) else {
            return;
        };
        let call = c.call;
        let Some(x) = self.calls.get_mut(&call) else {
            sip.bye(now, &agent_dialog);
            sip.bye(now, &target_dialog);
            return media.close(media_call);
        };
        // The consultation leg becomes the operator's leg of the call; the held one goes.
        let Some(leg) = x.agents.iter_mut().find(|l| l.agent == c.agent && l.dialog.is_some())
        else {
            return;
        };
        let held = leg.dialog.replace(agent_dialog.clone());
        leg.sdp = c.agent_sdp;
        leg.format = Some(c.agent_format);
        leg.held = false;
        let sdp = c.target_sdp;
        x.outside = Some(overflow::OutsideLeg { dialog: target_dialog.clone(), sdp, format });
        x.conference = true;
        self.by_dialog.insert(agent_dialog, call);
        self.by_dialog.insert(target_dialog, call);
        if let Some(d) = held {
            self.by_dialog.remove(&d);
            sip.bye(now, &d);
        }
        media.join(media_call, call, Join::Conference);
        self.reports.push(Report::Conference { call });
    }

    /// True when `dialog` is a leg of a conference.
    fn in_conference(&self, dialog: &DialogId) -> bool {
        self.by_dialog
            .get(dialog)
            .and_then(|call| self.calls.get(call))
            .is_some_and(|c| c.conference)
    }

    /// A leg of a conference ended: the caller's ends it all; the operator's leaves caller and
    /// target together (the call counts as transferred); the target's leaves caller and operator.
    fn conference_leg_ended(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(call) = self.by_dialog.get(dialog).copied() else { return };
        let Some(c) = self.calls.get_mut(&call) else { return };
        c.conference = false;
        if c.outside.as_ref().is_some_and(|n| &n.dialog == dialog) {
            // The target left: caller and operator talk on, bridged again.
            c.outside = None;
            self.by_dialog.remove(dialog);
            media.drop_third(call);
            return;
        }
        if c.trunk_dialog.as_ref() == Some(dialog) {
            // The caller left: the target is hung up, the rest as any call's end.
            if let Some(n) = c.outside.take() {
                self.by_dialog.remove(&n.dialog);
                sip.bye(now, &n.dialog);
            }
            media.drop_third(call);
            return self.dialog_ended(now, dialog);
        }
        // The operator left: the caller stays with the target, handed over.
        let Some(agent) =
            c.agents.iter().find(|l| l.dialog.as_ref() == Some(dialog)).map(|l| l.agent.clone())
        else {
            return;
        };
        c.agents.retain(|l| l.dialog.as_ref() != Some(dialog));
        self.by_dialog.remove(dialog);
        media.drop_agent(call);
        if self.engine.handle(now, Input::TransferStarted { call, agent }).is_ok() {
            let _ = self.engine.handle(now, Input::TransferAnswered { call });
        }
    }
}
