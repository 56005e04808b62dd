//! The caller's trunk leg: who is calling (RFC 3325/3323, [`crate::acd::identity`]), answering
//! the INVITE (200 at once, or 183 early media with the 200 when an agent answers; with or without
//! an offer), the welcome prompt, in-dialog requests and the caller leaving. Domain layer, sans-IO.

use ipnet::IpNet;

use super::*;
use crate::acd::identity::{CallerIdentity, Pseudonym, PseudonymKey};
use crate::config::{AnswerMode, FeatureCodes, PrivacyConfig};

/// What the switchboard takes from `[queue]`, `[privacy]` and `[trunk]` to answer calls and show
/// them to agents.
#[derive(Debug, Clone)]
pub(super) struct CallPolicy {
    pub(super) feature_codes: FeatureCodes,
    pub(super) answer: AnswerMode,
    pub(super) privacy: PrivacyConfig,
    /// The trunk's addresses: our RFC 3325 trust domain (empty: nobody is trusted).
    pub(super) trunk_allow: Vec<IpNet>,
    pub(super) key: PseudonymKey,
    pub(super) provinces: crate::acd::province::ProvinceMap,
}

impl CallPolicy {
    /// The policy of `config`, with `key` until the runtime sets the one from the key file.
    pub(super) fn new(config: &Config, key: PseudonymKey) -> CallPolicy {
        CallPolicy {
            feature_codes: config.queue.feature_codes.clone(),
            answer: config.queue.answer,
            privacy: config.privacy.clone(),
            trunk_allow: config.trunk.allow.clone(),
            key,
            provinces: config.provinces.clone(),
        }
    }

    /// A reload: everything but the key (read once at start).
    pub(super) fn reload(&mut self, config: &Config) {
        *self = CallPolicy::new(config, self.key.clone());
    }

    /// The identity of a trunk INVITE's caller; P-Asserted-Identity counts only from the trunk.
    fn identify(&self, request: &Request, flow: Flow) -> CallerIdentity {
        let from_trunk = self.trunk_allow.iter().any(|net| net.contains(&flow.remote.ip()));
        let trusted = from_trunk && self.privacy.trust_asserted_identity;
        CallerIdentity::of_invite(request, trusted, &self.key)
    }

    /// The province of a trunk INVITE ([`crate::acd::province`]); a carrier header counts only
    /// from the trunk.
    fn province(&self, request: &Request, flow: Flow, id: &CallerIdentity) -> Option<&'static str> {
        let from_trunk = self.trunk_allow.iter().any(|net| net.contains(&flow.remote.ip()));
        self.provinces.of_invite(request, from_trunk, id.number()).map(|p| p.as_str())
    }

    /// The From of an INVITE to an agent: the configured display and, when policy allows, the
    /// caller's number as the user part (else the hotline's `111`).
    /// `province` is the call's, as attributed on arrival (the same the records keep).
    pub(super) fn agent_from(
        &self,
        identity: &CallerIdentity,
        province: Option<&str>,
        host: &str,
    ) -> String {
        let p = &self.privacy;
        let display =
            identity.agent_display(&p.agent_display, province, &p.region, &p.anonymous_label);
        // RFC 3261 §25.1 quoted-string: `"` and `\` are escaped.
        let display = display.replace('\\', "\\\\").replace('"', "\\\"");
        let user = match identity.number() {
            Some(n) if p.show_number_to_agents => n.expose().to_string(),
            _ => "111".to_string(),
        };
        format!("\"{display}\" <sip:{user}@{host}>")
    }
}

impl Switchboard {
    /// The pseudonym key from `[privacy] key_file` (the runtime reads or creates it); until it is
    /// set, pseudonyms use a key random to this process.
    pub fn set_pseudonym_key(&mut self, key: [u8; 32]) {
        self.policy.key = PseudonymKey::new(key);
    }

    /// The pseudonym of `call`'s caller, for call records; `None` when the caller withheld their
    /// number (or there is no such call). The number itself never leaves the switchboard.
    pub fn caller_pseudonym(&self, call: CallId) -> Option<Pseudonym> {
        self.calls.get(&call)?.identity.pseudonym()
    }

    /// The number of `call`'s caller, for the opt-in call-back list (`[records] callbacks`) alone;
    /// `None` when withheld. Never log it.
    pub fn caller_number(&self, call: CallId) -> Option<&crate::acd::identity::CallerNumber> {
        self.calls.get(&call)?.identity.number()
    }

    pub(super) fn incoming_call(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        flow: Flow,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        if feature::is_feature_invite(request) {
            return self.feature_invite(now, txn, request, flow, sip, media);
        }
        let identity = self.policy.identify(request, flow);
        let province = self.policy.province(request, flow, &identity);
        let identity = (identity, province);
        // A call another centre overflowed to us is never overflowed back (overflow.rs).
        let may_overflow = !self.looped(request);
        let overflows = self.engine.overflows_on_arrival(may_overflow);
        // Refused before answering: 486 for this one call (RFC 3261 §21.4.24), never 503, which
        // would make the trunk skip this destination for every call.
        if self.calls.len() >= self.max_calls {
            self.reports.push(Report::Refused { reason: "max_calls" });
            return sip.reject(now, txn, 486, &[]);
        }
        if !self.engine.has_room() && !overflows {
            self.reports.push(Report::Refused { reason: "queue_full" });
            return sip.reject(now, txn, 486, &[]);
        }
        // A redirect takes no channel; anything else needs one for the caller's leg.
        let redirect = self.redirect_on_arrival(may_overflow);
        if !redirect && !self.channels_free(1) {
            self.reports.push(Report::Refused { reason: "trunk_channels" });
            return sip.reject(now, txn, 486, &[]);
        }
        if request.body.is_empty() {
            return self.incoming_late_offer(now, txn, request, identity, may_overflow, sip, media);
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
        let body = Bytes::from(leg.last.to_string());
        let answered = if redirect {
            // Handed over at once by a 302 (overflow.rs): the INVITE stays unanswered till then.
            Answered::Early(body)
        } else if self.policy.answer == AnswerMode::EarlyMedia {
            // RFC 3960: the prompts and hold audio play as early media; 200 on an agent's answer.
            sip.provisional(now, txn, 183, Some(body.clone()));
            Answered::Early(body)
        } else {
            let Some(dialog) = sip.answer(now, txn, body) else {
                media.close(call);
                return;
            };
            Answered::Now(dialog)
        };
        self.add_call(now, call, txn, answered, format, leg, false, identity, may_overflow);
        self.set_max_forwards(call, request);
        self.start_prompts(now, call, media);
    }

    /// The trunk leg of an early-media call is answered now that an agent answered.
    pub(super) fn answer_early(&mut self, now: Instant, call: CallId, sip: &mut Endpoint) {
        let Some(c) = self.calls.get_mut(&call) else { return };
        let Some(body) = c.early_answer.take() else { return };
        if let Some(dialog) = sip.answer(now, c.trunk_txn, body) {
            c.trunk_dialog = Some(dialog.clone());
            self.by_dialog.insert(dialog, call);
        }
    }

    /// A trunk INVITE without SDP (RFC 3261 §13.2.1): our offer goes in the 200 and the answer
    /// comes in the ACK ([`Switchboard::confirmed`]). The caller leg is opened for our offer's
    /// port; it learns where to send (and what) from the answer, so the prompts start then.
    // The same parts as `add_call`, which it passes on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn incoming_late_offer(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        identity: (CallerIdentity, Option<&'static str>),
        may_overflow: bool,
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
        // An offer cannot go in an unreliable 183 (RFC 3261 §13.2.1): late offers are answered.
        let answered = Answered::Now(dialog);
        self.add_call(now, call, txn, answered, format, leg, true, identity, may_overflow);
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
        answered: Answered,
        format: LegFormat,
        caller_sdp: LegSdp,
        awaiting_answer: bool,
        (identity, province): (CallerIdentity, Option<&'static str>),
        may_overflow: bool,
    ) {
        self.by_trunk_txn.insert(txn, call);
        let (trunk_dialog, early_answer) = match answered {
            Answered::Now(dialog) => {
                self.by_dialog.insert(dialog.clone(), call);
                (Some(dialog), None)
            }
            Answered::Early(body) => (None, Some(body)),
        };
        let pseudonym = identity.pseudonym().map(|p| p.to_hex());
        let started = Report::CallStarted { call, pseudonym, province, lane: Lane::Normal };
        let province = province.map(str::to_string);
        self.calls.insert(
            call,
            Call {
                trunk_txn: txn,
                trunk_dialog,
                early_answer,
                identity,
                caller_format: format,
                caller_sdp,
                awaiting_answer,
                agents: Vec::new(),
                offered: true,
                max_forwards: 69,
                outside: None,
                conference: false,
            },
        );
        self.reports.push(Report::Offered);
        self.reports.push(started);
        let _ = self
            .engine
            .handle(now, Input::CallOffered { call, lane: Lane::Normal, province, may_overflow });
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
        let audio = answer_in(body);
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
        if self.feature_ended(now, dialog) {
            return;
        }
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

/// How a trunk call was answered.
pub(super) enum Answered {
    /// 200 sent: the dialog.
    Now(DialogId),
    /// 183 with this SDP sent; the same SDP goes in the 200 when an agent answers.
    Early(Bytes),
}
