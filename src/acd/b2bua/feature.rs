//! Feature codes dialled by agents (`*21` pause, `*22` resume, `*23` end wrap-up, `*24` log out):
//! the INVITE is authenticated like a proxy would (407 and Proxy-Authorization, RFC 3261 §22.3),
//! the engine (and, for log-out, the registrar) is told, the agent hears a short confirmation
//! prompt in the answered call, and we hang up. Domain layer, sans-IO.
//!
//! Statuses: 407 without (or with stale) credentials, 403 for wrong ones or a user who is no
//! agent, 404 for a code nobody configured, 488 for an offer without a codec we speak. A feature
//! call is never offered to the queue and holds no operator line. A supervisor's prefix and
//! operator (`*51op1`) is authenticated here too, then handed to supervise.rs.

use super::*;
use crate::acd::PauseReason;
use crate::config::{FeatureCode, FeatureCodes};

/// The confirmation prompt of each code; a missing file is skipped (the call is then hung up
/// after [`SILENT_CONFIRMATION`]).
pub const FEATURE_PROMPTS: [(FeatureCode, &str); 4] = [
    (FeatureCode::Pause, "feature-paused"),
    (FeatureCode::Resume, "feature-resumed"),
    (FeatureCode::EndWrapUp, "feature-wrapup-ended"),
    (FeatureCode::LogOut, "feature-logged-out"),
];

/// How long a feature call stays up without a confirmation prompt: long enough for the softphone
/// to show "connected", so the agent sees that the code was taken.
const SILENT_CONFIRMATION: Duration = Duration::from_millis(800);

/// Time after the prompt's last frame before the BYE, so its tail is not cut by jitter buffers.
const PROMPT_TAIL: Duration = Duration::from_millis(300);

/// An answered feature call, until our BYE.
#[derive(Debug)]
pub(super) struct FeatureCall {
    /// The id its media runs under (never offered to the engine).
    media: CallId,
    /// When we hang up.
    ends: Instant,
}

/// Feature calls in progress, by dialog.
#[derive(Debug, Default)]
pub(super) struct FeatureCalls {
    calls: HashMap<DialogId, FeatureCall>,
}

impl FeatureCalls {
    /// When the next feature call is to be hung up.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.calls.values().map(|c| c.ends).min()
    }
}

/// True when the INVITE dials a feature code rather than the hotline.
pub(super) fn is_feature_invite(request: &Request) -> bool {
    request.uri.user().is_some_and(FeatureCodes::looks_like_code)
}

impl Switchboard {
    /// An INVITE from an agent for a feature code.
    pub(super) fn feature_invite(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        flow: Flow,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let reject = |sip: &mut Endpoint, status: u16| sip.reject(now, txn, status, &[]);
        // Password guessing through feature codes meets the same bans as through REGISTER.
        let source = flow.remote.ip();
        let from_user = request.headers.from().ok().and_then(|f| f.uri.user().map(str::to_string));
        let claimed = self.digest.claimed_user(request, ChallengeKind::Proxy).or(from_user);
        if let Some(user) = &claimed
            && self.access.bans.is_banned(now, source, user)
        {
            self.reports.push(Report::AuthFailure { reason: "banned", source: flow.remote });
            return reject(sip, 403);
        }
        let agents = &self.agents;
        let lookup = |user: &str| -> Option<&Credential> {
            agents.iter().find(|a| a.user.eq_ignore_ascii_case(user)).map(|a| &a.credential)
        };
        let verified = self.digest.verify_request(now, request, ChallengeKind::Proxy, lookup);
        let user = match verified {
            Ok(v) => {
                self.access.bans.record_success(now, source, &v.user);
                v.user
            }
            Err(failure) => {
                if let Some(user) = &claimed {
                    for ban in self.access.bans.record_failure(now, source, user, &failure) {
                        self.reports.push(Report::AuthBan(ban));
                    }
                }
                let fresh_challenge = matches!(failure.answer(), AuthAnswer::Challenge { .. })
                    && matches!(
                        failure,
                        crate::sip::auth::AuthFailure::Missing
                            | crate::sip::auth::AuthFailure::Stale
                    );
                if !matches!(failure, crate::sip::auth::AuthFailure::Missing) {
                    self.reports.push(Report::AuthFailure {
                        reason: failure.reason(),
                        source: flow.remote,
                    });
                }
                return match failure.answer() {
                    AuthAnswer::Challenge { stale } if fresh_challenge => {
                        self.proxy_challenge(now, txn, request, stale, sip)
                    }
                    // Wrong credentials: a clear refusal, not another challenge loop.
                    AuthAnswer::Challenge { .. } => reject(sip, 403),
                    AuthAnswer::BadRequest => reject(sip, 400),
                };
            }
        };
        let Some(agent) = self
            .agents
            .iter()
            .find(|a| a.user.eq_ignore_ascii_case(&user))
            .map(|a| AgentId::new(&a.id))
        else {
            return reject(sip, 403);
        };
        let dialled = request.uri.user().unwrap_or_default();
        // A supervision prefix and an operator (`*51op1`): supervise.rs.
        if let Some((mode, operator)) = self.policy.feature_codes.supervision(dialled) {
            return self.supervise_code(now, txn, request, &agent, mode, &operator, sip, media);
        }
        let Some(code) = self.policy.feature_codes.lookup(dialled) else {
            // A transfer directory code: a consultation (consult.rs).
            if self.transfers.is_directory_code(dialled) {
                return self.consult_invite(now, txn, request, agent, sip, media);
            }
            return reject(sip, 404);
        };
        if code == FeatureCode::Callback {
            return self.callback_code(now, txn, request, agent, sip);
        }
        // Answer first: a refused offer must not have changed the agent's state.
        if self.answer_feature(now, txn, request, code, sip, media) {
            self.apply_feature(now, code, &agent);
            self.reports.push(Report::FeatureCode { agent, code: code.as_str() });
        }
    }

    fn proxy_challenge(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        stale: bool,
        sip: &mut Endpoint,
    ) {
        // The credential decides which algorithms can be offered (an HA1-only agent has one).
        let credential = request
            .headers
            .from()
            .ok()
            .and_then(|from| from.uri.user().map(str::to_string))
            .and_then(|u| {
                self.agents
                    .iter()
                    .find(|a| a.user.eq_ignore_ascii_case(&u))
                    .map(|a| a.credential.clone())
            });
        let algorithms = self.digest.algorithms_for_request(request, credential.as_ref());
        let tag = crate::sip::registrar::to_tag(request);
        let response = self.digest.challenge_response(
            now,
            request,
            ChallengeKind::Proxy,
            &algorithms,
            stale,
            Some(&tag),
        );
        sip.respond(now, txn, response);
    }

    /// Answers the feature call with SDP and starts its confirmation; false when refused.
    fn answer_feature(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        code: FeatureCode,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> bool {
        self.next_call += 1;
        let call = CallId(self.next_call);
        let Some((dialog, remote, _)) = self.answer_own_call(now, txn, request, call, sip, media)
        else {
            return false;
        };
        let prompt = FEATURE_PROMPTS
            .iter()
            .find(|(c, _)| *c == code)
            .and_then(|(_, name)| self.prompts.get(name).cloned())
            .filter(|_| remote.is_some());
        let ends = match prompt {
            Some(p) => {
                let length = Duration::from_millis(p.duration_ms());
                media.play(call, Playlist::new().once(p));
                now + length + PROMPT_TAIL
            }
            None => now + SILENT_CONFIRMATION,
        };
        self.features.calls.insert(dialog, FeatureCall { media: call, ends });
        true
    }

    /// Answers an agent's own INVITE (a feature code, a call-back) with our SDP, its media opened
    /// as `call`'s caller leg: the dialog, the agent's RTP address (`None` when the INVITE had no
    /// offer: ours went in the 200 and the answer comes in the ACK) and our side of the leg's
    /// offer/answer with its codec. Refused (480 no port, 488 no codec we speak): `None`.
    pub(super) fn answer_own_call(
        &mut self,
        now: Instant,
        txn: TxnId,
        request: &Request,
        call: CallId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Option<(DialogId, Option<SocketAddr>, (LegSdp, Codec))> {
        let call_id = request.headers.call_id().unwrap_or_default();
        let (leg, codec, remote) = if request.body.is_empty() {
            // No offer: ours goes in the 200; the confirmation is then shown, not heard.
            let format = LegFormat {
                codec: Codec::Pcmu,
                payload_type: Codec::Pcmu.static_payload_type(),
                telephone_event: Some(sdp::OFFER_TELEPHONE_EVENT_PT),
            };
            let port = media.open_caller(call, None, format);
            let Some(port) = port else {
                sip.reject(now, txn, 480, &[]);
                return None;
            };
            let offer =
                sdp::offer(media.address(), port, &[Codec::Pcmu, Codec::Pcma], Direction::SendRecv);
            let leg = LegSdp::first(session_id(call_id.as_bytes(), call.0), offer, port);
            (leg, Codec::Pcmu, None)
        } else {
            let offer = std::str::from_utf8(&request.body)
                .ok()
                .and_then(|t| SessionDescription::parse(t).ok());
            let probe = offer
                .as_ref()
                .and_then(|o| sdp::answer(o, &[Codec::Pcmu, Codec::Pcma], media.address(), 0).ok());
            let (Some(offer), Some(probe)) = (offer, probe) else {
                sip.reject(now, txn, 488, &[]);
                return None;
            };
            let format = probe.audio.leg_format();
            let Some(port) = media.open_caller(call, probe.audio.remote, format) else {
                sip.reject(now, txn, 480, &[]);
                return None;
            };
            let Ok(answer) = sdp::answer(&offer, &[format.codec], media.address(), port) else {
                media.close(call);
                sip.reject(now, txn, 488, &[]);
                return None;
            };
            let leg = LegSdp::first(session_id(call_id.as_bytes(), call.0), answer.sdp, port);
            (leg, format.codec, probe.audio.remote)
        };
        let Some(dialog) = sip.answer(now, txn, Bytes::from(leg.last.to_string())) else {
            media.close(call);
            return None;
        };
        Some((dialog, remote, (leg, codec)))
    }

    /// Tells the engine (and the registrar) what the code asks for.
    fn apply_feature(&mut self, now: Instant, code: FeatureCode, agent: &AgentId) {
        let input = match code {
            FeatureCode::Pause => {
                Input::AgentPaused { agent: agent.clone(), reason: PauseReason::Agent }
            }
            FeatureCode::Resume => Input::AgentResumed { agent: agent.clone() },
            FeatureCode::EndWrapUp => Input::EndWrapUp { agent: agent.clone() },
            // Carried out by callback.rs, never here.
            FeatureCode::Callback => return,
            FeatureCode::LogOut => {
                for presence in self.registrar.unregister_agent(agent.as_str()) {
                    self.presence(now, presence);
                }
                Input::AgentLoggedOut { agent: agent.clone() }
            }
        };
        // An agent who is not in wrap-up (or already paused) changes nothing: not an error.
        let _ = self.engine.handle(now, input);
    }

    /// Hangs up the feature calls whose confirmation is over.
    pub(super) fn feature_timeouts(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let due: Vec<DialogId> = self
            .features
            .calls
            .iter()
            .filter(|(_, c)| c.ends <= now)
            .map(|(d, _)| d.clone())
            .collect();
        for dialog in due {
            if let Some(c) = self.features.calls.remove(&dialog) {
                sip.bye(now, &dialog);
                media.close(c.media);
            }
        }
    }

    /// The agent hung up (or the dialog ended) before our BYE; true when it was a feature call.
    /// Its media closes at the next timeout (the BYE then finds no dialog and sends nothing).
    pub(super) fn feature_ended(&mut self, now: Instant, dialog: &DialogId) -> bool {
        match self.features.calls.get_mut(dialog) {
            Some(c) => {
                c.ends = now;
                true
            }
            None => false,
        }
    }
}
