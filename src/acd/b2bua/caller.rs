//! The caller's trunk leg: answering the INVITE (with or without an offer), the welcome prompt,
//! in-dialog requests and the caller leaving. Domain layer, sans-IO.

use super::*;

impl Switchboard {
    pub(super) fn incoming_call(
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
    pub(super) fn incoming_late_offer(
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
    pub(super) fn set_max_forwards(&mut self, call: CallId, request: &Request) {
        let incoming = request.headers.max_forwards().ok().flatten().unwrap_or(70);
        if let Some(c) = self.calls.get_mut(&call) {
            c.max_forwards = incoming.saturating_sub(1);
        }
    }

    // A call's parts arrive together from two answer paths (offer in the INVITE, or late offer).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_call(
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

    /// The ACK for a 2xx of ours. On a late-offer call it carries the answer to our offer.
    pub(super) fn confirmed(
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

    pub(super) fn caller_left(&mut self, now: Instant, call: CallId) {
        if self.calls.get(&call).is_some_and(|c| c.offered) {
            let _ = self.engine.handle(now, Input::CallerHungUp { call });
        }
    }

    pub(super) fn dialog_ended(&mut self, now: Instant, dialog: &DialogId) {
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
}
