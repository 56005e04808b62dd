//! Overflow to the national centre, the switchboard's side: OPTIONS probing of the targets, the
//! hand-over the engine asks for ([`Output::Overflow`]) — transfer prompt, then an INVITE to each
//! target that is up in turn (answering a digest challenge once), or a 302 while the trunk leg is
//! unanswered — and the bridged call that follows. Domain layer, sans-IO.
//!
//! A bridged overflow is two legs through us: the caller's trunk leg and the national centre's.
//! The engine's part ends when the centre answers (the call is finished as overflowed); the
//! switchboard keeps relaying until either side hangs up, and the call still counts as active (a
//! drain waits for it). Every target failing returns the caller to the regional queue
//! ([`Input::OverflowFailed`]); nothing is ever dropped silently.

use std::collections::BTreeSet;

use super::*;
use crate::acd::OverflowReason;
use crate::config::{OverflowConfig, OverflowMethod};
use crate::media::prompt::names;
use crate::sip::auth::{ClientAnswer, answer_challenge};
use crate::sip::endpoint::OutgoingIds;
use crate::sip::message::name;

/// An overflow target as the wallboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    /// The configured name (the metric label).
    pub name: String,
    /// The Request-URI.
    pub uri: String,
    /// OPTIONS probes find it up.
    pub up: bool,
}

/// One target's health, from OPTIONS probes.
#[derive(Debug, Clone)]
struct Health {
    up: bool,
    /// Failed probes in a row.
    fails: u32,
    /// Answered probes in a row.
    oks: u32,
    next_probe: Instant,
    probe: Option<TxnId>,
}

/// One INVITE to one target.
#[derive(Debug)]
struct Try {
    target: usize,
    txn: TxnId,
    ids: OutgoingIds,
    /// Credentials were sent already: a second challenge is a failure.
    authed: bool,
    deadline: Instant,
    sdp: LegSdp,
    flow: Flow,
    from: String,
    extra: Vec<(String, String)>,
}

/// A call being handed over.
#[derive(Debug)]
struct Attempt {
    /// The next target index to try.
    next: usize,
    current: Option<Try>,
}

/// The outside party's leg once the call left the queue for good: the national centre after an
/// overflow, or a transfer target (transfer.rs). The caller is bridged to it through us.
#[derive(Debug)]
pub(super) struct OutsideLeg {
    pub(super) dialog: DialogId,
    pub(super) sdp: LegSdp,
    pub(super) format: LegFormat,
}

/// Targets, their health and the hand-overs in progress.
#[derive(Debug)]
pub(super) struct Overflow {
    config: OverflowConfig,
    health: Vec<Health>,
    /// Calls whose transfer prompt plays; the first INVITE goes when it ends.
    starts: BTreeSet<(Instant, CallId)>,
    attempts: HashMap<CallId, Attempt>,
    by_txn: HashMap<TxnId, CallId>,
    probes: HashMap<TxnId, usize>,
    /// What the engine was last told ([`Input::OverflowAvailable`]).
    told_up: Option<bool>,
    cnonce: u64,
}

impl Overflow {
    pub(super) fn new(config: &Config, now: Instant) -> Overflow {
        let config = config.overflow.clone();
        let health = config
            .targets
            .iter()
            .map(|_| Health { up: true, fails: 0, oks: 0, next_probe: now, probe: None })
            .collect();
        Overflow {
            config,
            health,
            starts: BTreeSet::new(),
            attempts: HashMap::new(),
            by_txn: HashMap::new(),
            probes: HashMap::new(),
            told_up: None,
            cnonce: 0x5eed,
        }
    }

    /// A reload: targets keep their health by name; hand-overs in progress go on.
    pub(super) fn reload(&mut self, config: &Config, now: Instant) {
        let old: HashMap<String, Health> =
            self.config.targets.iter().map(|t| t.name.clone()).zip(self.health.drain(..)).collect();
        self.config = config.overflow.clone();
        self.health = self
            .config
            .targets
            .iter()
            .map(|t| {
                old.get(&t.name).cloned().unwrap_or(Health {
                    up: true,
                    fails: 0,
                    oks: 0,
                    next_probe: now,
                    probe: None,
                })
            })
            .collect();
        self.probes.retain(|_, i| *i < self.health.len());
    }

    fn any_up(&self) -> bool {
        self.health.iter().any(|h| h.up)
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let probes = self.health.iter().filter(|h| h.probe.is_none()).map(|h| h.next_probe);
        let tries = self.attempts.values().filter_map(|a| a.current.as_ref().map(|t| t.deadline));
        probes.chain(tries).chain(self.starts.first().map(|s| s.0)).min()
    }

    /// Legs through the trunk used by hand-overs (INVITEs out, bridged centres).
    fn outbound_legs(&self) -> usize {
        self.attempts.values().filter(|a| a.current.is_some()).count()
    }
}

/// The bounded `result` label of a hand-over attempt.
fn attempt_report(config: &OverflowConfig, target: usize, result: &'static str) -> Report {
    let target = config.targets.get(target).map_or_else(String::new, |t| t.name.clone());
    Report::OverflowAttempt { target, result }
}

impl Switchboard {
    /// True while a hand-over could start now: overflow is configured and some target is up.
    pub fn overflow_available(&self) -> bool {
        !self.overflow.config.targets.is_empty() && self.overflow.any_up()
    }

    /// Each target's health, in the order they are tried (wallboard, metrics).
    pub fn overflow_targets(&self) -> Vec<TargetStatus> {
        let targets = self.overflow.config.targets.iter().zip(&self.overflow.health);
        let status = |(t, h): (&crate::config::OverflowTarget, &Health)| TargetStatus {
            name: t.name.clone(),
            uri: t.uri.as_str().to_string(),
            up: h.up,
        };
        targets.map(status).collect()
    }

    /// SIGTERM: callers not yet bridged go to the national centre while a target is up; new calls
    /// too (the runtime lets the endpoint answer 503 only when no target is up).
    pub fn drain(&mut self, now: Instant, sip: &mut Endpoint, media: &mut dyn MediaControl) {
        let _ = self.engine.handle(now, Input::Drain);
        self.drive(now, sip, media);
    }

    /// Tells the engine whether overflow is possible, when that changed.
    pub(super) fn tell_availability(&mut self, now: Instant) {
        if self.overflow.config.targets.is_empty() && self.overflow.told_up.is_none() {
            return;
        }
        let up = self.overflow_available();
        if self.overflow.told_up != Some(up) {
            self.overflow.told_up = Some(up);
            let _ = self.engine.handle(now, Input::OverflowAvailable { up });
        }
    }

    /// Trunk channels in use: callers' legs plus our outbound legs (bridged outside parties,
    /// hand-overs and transfers ringing, call-backs).
    fn channels_in_use(&self) -> usize {
        let bridged = self.calls.values().filter(|c| c.outside.is_some()).count();
        let transfers = self.transfers.ringing() + self.consults.outbound_legs();
        let callbacks = self.callbacks.channels();
        self.calls.len() + bridged + self.overflow.outbound_legs() + transfers + callbacks
    }

    /// True when `[trunk] channels` leaves room for `more` legs.
    pub(super) fn channels_free(&self, more: usize) -> bool {
        self.trunk_channels.is_none_or(|max| self.channels_in_use() + more <= max as usize)
    }

    /// The rule that hands a new call over at once, if any (decided before answering, so that a
    /// redirect can still be sent).
    pub(super) fn redirect_on_arrival(&self, may_overflow: bool) -> bool {
        let redirect = self.overflow.config.method == OverflowMethod::Redirect;
        (redirect || !self.channels_free(2)) && self.engine.overflows_on_arrival(may_overflow)
    }

    /// True when `request` already went through a centre's overflow (our loop header, or a
    /// Max-Forwards nearly spent): it must never be overflowed again.
    pub(super) fn looped(&self, request: &Request) -> bool {
        let marked = request.headers.get(&self.overflow.config.loop_header).is_some();
        let spent = request.headers.max_forwards().ok().flatten().is_some_and(|m| m <= 1);
        marked || spent
    }

    /// Carries out [`Output::Overflow`].
    pub(super) fn overflow_start(
        &mut self,
        now: Instant,
        call: CallId,
        reason: OverflowReason,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        self.prompt_ends.retain(|(_, c)| *c != call);
        let Some(c) = self.calls.get(&call) else { return };
        let unanswered = c.early_answer.is_some();
        let redirect =
            self.overflow.config.method == OverflowMethod::Redirect || !self.channels_free(1);
        if unanswered && redirect {
            return self.redirect(now, call, sip);
        }
        if !self.channels_free(1) {
            self.reports.push(attempt_report(&self.overflow.config, 0, "no_channel"));
            let _ = self.engine.handle(now, Input::OverflowFailed { call });
            return;
        }
        // The caller hears why first: "outside the centre's hours" or "transferring you".
        let prompt = match reason {
            OverflowReason::NoAgents => names::OUTSIDE_HOURS,
            _ => names::TRANSFER_NATIONAL,
        };
        let mut playlist = Playlist::new();
        let mut start = now;
        if let Some(p) = self.prompts.get(prompt).cloned() {
            start += Duration::from_millis(p.duration_ms());
            playlist = playlist.once(p);
        }
        if let Some(hold) = self.prompts.get(PROMPT_HOLD).cloned() {
            playlist = playlist.looped(hold);
        }
        media.play(call, playlist);
        self.overflow.attempts.insert(call, Attempt { next: 0, current: None });
        self.overflow.starts.insert((start, call));
    }

    /// 302 to the trunk with every target that is up, in order (RFC 3261 §21.3.3).
    fn redirect(&mut self, now: Instant, call: CallId, sip: &mut Endpoint) {
        let targets = self.overflow.config.targets.iter().zip(&self.overflow.health);
        let up: Vec<(usize, String)> = targets
            .enumerate()
            .filter(|(_, (_, h))| h.up)
            .map(|(i, (t, _))| (i, t.uri.as_str().to_string()))
            .collect();
        let Some(c) = self.calls.get_mut(&call) else { return };
        if up.is_empty() || c.early_answer.is_none() {
            let _ = self.engine.handle(now, Input::OverflowFailed { call });
            return;
        }
        c.early_answer = None;
        let count = up.len() as f32;
        let contacts: Vec<(&'static str, String)> = up
            .iter()
            .enumerate()
            .map(|(n, (_, uri))| {
                (name::CONTACT, format!("<{uri}>;q={:.1}", 1.0 - n as f32 / count))
            })
            .collect();
        sip.reject(now, c.trunk_txn, 302, &contacts);
        self.reports.push(attempt_report(&self.overflow.config, up[0].0, "redirected"));
        let _ = self.engine.handle(now, Input::OverflowAnswered { call });
    }

    /// Transfer prompts that ended, answer time-outs and probes due at `now`.
    pub(super) fn overflow_due(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        while let Some(&(at, call)) = self.overflow.starts.first() {
            if at > now {
                break;
            }
            self.overflow.starts.pop_first();
            self.try_next(now, call, sip, media);
        }
        let late: Vec<CallId> = self
            .overflow
            .attempts
            .iter()
            .filter(|(_, a)| a.current.as_ref().is_some_and(|t| t.deadline <= now))
            .map(|(c, _)| *c)
            .collect();
        for call in late {
            if let Some(t) = self.overflow.attempts.get_mut(&call).and_then(|a| a.current.take()) {
                self.overflow.by_txn.remove(&t.txn);
                sip.cancel(now, t.txn);
                self.reports.push(attempt_report(&self.overflow.config, t.target, "timeout"));
            }
            media.drop_agent(call);
            self.try_next(now, call, sip, media);
        }
        self.probe_targets(now, sip);
        self.tell_availability(now);
    }

    fn probe_targets(&mut self, now: Instant, sip: &mut Endpoint) {
        for i in 0..self.overflow.health.len() {
            let h = &self.overflow.health[i];
            if h.probe.is_some() || h.next_probe > now {
                continue;
            }
            let Some(target) = self.overflow.config.targets.get(i) else { continue };
            let address = target.address;
            let Some(local) = self.local_for(address) else { continue };
            let flow =
                Flow { transport: crate::sip::transport::Transport::Udp, local, remote: address };
            let (tag, call_id) = (sip.new_from_tag(), sip.new_call_id());
            let host = crate::sip::endpoint::via_host(local);
            let options =
                crate::sip::keepalive::options_request(&target.uri, &host, &tag, &call_id);
            let interval = self.overflow.config.probe_interval;
            let txn = sip.send_request(now, flow, options);
            let h = &mut self.overflow.health[i];
            h.next_probe = now + interval;
            match txn {
                Some(txn) => {
                    h.probe = Some(txn);
                    self.overflow.probes.insert(txn, i);
                }
                None => self.probe_result(i, false),
            }
        }
    }

    /// One probe's result: down after `down_after` failures in a row, up after `up_after`
    /// answers. Any final response below 500 but 408 means the target is alive (a 401, 404 or
    /// 405 to OPTIONS still comes from a working server).
    fn probe_result(&mut self, i: usize, ok: bool) {
        let (down_after, up_after) =
            (self.overflow.config.down_after, self.overflow.config.up_after);
        let Some(h) = self.overflow.health.get_mut(i) else { return };
        h.probe = None;
        let was = h.up;
        if ok {
            h.oks += 1;
            h.fails = 0;
            if !h.up && h.oks >= up_after {
                h.up = true;
            }
        } else {
            h.fails += 1;
            h.oks = 0;
            if h.up && h.fails >= down_after {
                h.up = false;
            }
        }
        if h.up != was {
            let up = h.up;
            let target =
                self.overflow.config.targets.get(i).map_or_else(String::new, |t| t.name.clone());
            self.reports.push(Report::OverflowTarget { target, up });
        }
    }

    /// INVITEs the next target that is up; with none left, the caller returns to the queue.
    fn try_next(
        &mut self,
        now: Instant,
        call: CallId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(next) = self.overflow.attempts.get(&call).map(|a| a.next) else { return };
        let candidates = (next..self.overflow.health.len()).filter(|i| self.overflow.health[*i].up);
        for i in candidates.collect::<Vec<_>>() {
            if let Some(a) = self.overflow.attempts.get_mut(&call) {
                a.next = i + 1;
            }
            if self.invite_target(now, call, i, sip, media) {
                return;
            }
        }
        self.overflow.attempts.remove(&call);
        media.drop_agent(call);
        let _ = self.engine.handle(now, Input::OverflowFailed { call });
    }

    fn invite_target(
        &mut self,
        now: Instant,
        call: CallId,
        i: usize,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> bool {
        let Some(target) = self.overflow.config.targets.get(i).cloned() else { return false };
        let Some(local) = self.local_for(target.address) else { return false };
        let Some(c) = self.calls.get(&call) else { return false };
        let flow = Flow {
            transport: crate::sip::transport::Transport::Udp,
            local,
            remote: target.address,
        };
        let host = via_host(local);
        // The national centre is the same hotline: it sees the caller's number unless the caller
        // withheld it (or the config says no). The number goes on the wire only, never in a log.
        let from = match c.identity.number() {
            Some(n) if self.overflow.config.send_caller_number => {
                format!("<sip:{}@{host}>", n.expose())
            }
            _ => "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_string(),
        };
        let caller_codec = c.caller_format.codec;
        let max_forwards = c.max_forwards;
        let Some(port) = media.open_agent(call) else { return false };
        let other = match caller_codec {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let offer = sdp::offer(media.address(), port, &[caller_codec, other], Direction::SendRecv);
        self.next_leg += 1;
        let sdp = LegSdp::first(session_id(target.name.as_bytes(), self.next_leg), offer, port);
        let reason = self.engine_overflow_reason(call);
        let extra = vec![
            (name::MAX_FORWARDS.to_string(), max_forwards.to_string()),
            (self.overflow.config.loop_header.clone(), reason.to_string()),
        ];
        let ids = sip.new_outgoing_ids();
        let body = Bytes::from(sdp.last.to_string());
        let headers = borrowed(&extra);
        let Some(txn) = sip.invite_with(now, flow, target.uri.clone(), &from, body, &headers, &ids)
        else {
            media.drop_agent(call);
            return false;
        };
        let deadline = now + self.overflow.config.answer_timeout;
        let t = Try { target: i, txn, ids, authed: false, deadline, sdp, flow, from, extra };
        self.overflow.by_txn.insert(txn, call);
        if let Some(a) = self.overflow.attempts.get_mut(&call) {
            a.current = Some(t);
        }
        true
    }

    fn engine_overflow_reason(&self, call: CallId) -> &'static str {
        self.engine.overflow_reason(call).map_or("overflow", OverflowReason::as_str)
    }

    /// Takes the endpoint events of probes and hand-overs; returns every other event.
    pub(super) fn overflow_event(
        &mut self,
        now: Instant,
        event: UaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Option<UaEvent> {
        match &event {
            UaEvent::Response { txn, response, .. } if self.overflow.probes.contains_key(txn) => {
                if response.status >= 200 {
                    let i = self.overflow.probes.remove(txn).unwrap_or(usize::MAX);
                    let ok = response.status < 500 && response.status != 408;
                    self.probe_result(i, ok);
                    self.tell_availability(now);
                }
                None
            }
            UaEvent::Timeout { txn } if self.overflow.probes.contains_key(txn) => {
                let i = self.overflow.probes.remove(txn).unwrap_or(usize::MAX);
                self.probe_result(i, false);
                self.tell_availability(now);
                None
            }
            UaEvent::Response { txn, response, dialog }
                if self.overflow.by_txn.contains_key(txn) =>
            {
                self.target_response(now, *txn, response, dialog.clone(), sip, media);
                None
            }
            UaEvent::Timeout { txn } if self.overflow.by_txn.contains_key(txn) => {
                if let Some(call) = self.overflow.by_txn.remove(txn) {
                    let current =
                        self.overflow.attempts.get_mut(&call).and_then(|a| a.current.take());
                    if let Some(t) = current {
                        self.reports.push(attempt_report(
                            &self.overflow.config,
                            t.target,
                            "timeout",
                        ));
                    }
                    media.drop_agent(call);
                    self.try_next(now, call, sip, media);
                }
                None
            }
            _ => Some(event),
        }
    }

    fn target_response(
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
        let Some(call) = self.overflow.by_txn.remove(&txn) else { return };
        let Some(t) = self.overflow.attempts.get_mut(&call).and_then(|a| a.current.take()) else {
            return;
        };
        match response.status {
            200..=299 => {
                let audio = answer_in(&response.body);
                let (Some(dialog), Some(audio)) = (dialog.clone(), audio) else {
                    // An answer we cannot use: hang it up and try the next target.
                    if let Some(d) = &dialog {
                        sip.bye(now, d);
                    }
                    self.reports.push(attempt_report(&self.overflow.config, t.target, "failed"));
                    media.drop_agent(call);
                    return self.try_next(now, call, sip, media);
                };
                self.overflow.attempts.remove(&call);
                self.reports.push(attempt_report(&self.overflow.config, t.target, "answered"));
                self.bridge_outside(now, call, dialog, t.sdp, &audio, sip, media);
                let _ = self.engine.handle(now, Input::OverflowAnswered { call });
            }
            401 | 407 if !t.authed => {
                let target = self.overflow.config.targets.get(t.target).cloned();
                let Some(creds) = target.and_then(|t| t.credentials) else {
                    self.reports.push(attempt_report(&self.overflow.config, t.target, "failed"));
                    media.drop_agent(call);
                    return self.try_next(now, call, sip, media);
                };
                self.overflow.cnonce = self
                    .overflow
                    .cnonce
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let cnonce = format!("{:016x}", self.overflow.cnonce);
                let uri = self.overflow.config.targets[t.target].uri.clone();
                let answer = ClientAnswer {
                    user: &creds.user,
                    password: creds.password.expose(),
                    method: &Method::Invite,
                    uri: uri.as_str(),
                    cnonce: &cnonce,
                    nc: 1,
                };
                self.reports.push(attempt_report(&self.overflow.config, t.target, "challenged"));
                let Some(auth) = answer_challenge(response, &creds.realm, &answer) else {
                    media.drop_agent(call);
                    return self.try_next(now, call, sip, media);
                };
                let mut headers = borrowed(&t.extra);
                headers.push((auth.0, auth.1));
                let ids = OutgoingIds { cseq: t.ids.cseq + 1, ..t.ids.clone() };
                let body = Bytes::from(t.sdp.last.to_string());
                match sip.invite_with(now, t.flow, uri, &t.from, body, &headers, &ids) {
                    Some(txn) => {
                        self.overflow.by_txn.insert(txn, call);
                        let retry = Try { txn, ids, authed: true, ..t };
                        if let Some(a) = self.overflow.attempts.get_mut(&call) {
                            a.current = Some(retry);
                        }
                    }
                    None => {
                        media.drop_agent(call);
                        self.try_next(now, call, sip, media);
                    }
                }
            }
            _ => {
                self.reports.push(attempt_report(&self.overflow.config, t.target, "failed"));
                media.drop_agent(call);
                self.try_next(now, call, sip, media);
            }
        }
    }

    /// The outside party (national centre or transfer target) answered with `audio` on
    /// `dialog`: the caller (answered now if still in early media) is bridged to it through us.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bridge_outside(
        &mut self,
        now: Instant,
        call: CallId,
        dialog: DialogId,
        sdp: LegSdp,
        audio: &sdp::NegotiatedAudio,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let format = audio.leg_format();
        media.agent_answered(call, audio.remote, format);
        self.answer_early(now, call, sip);
        media.bridge(call);
        self.by_dialog.insert(dialog.clone(), call);
        if let Some(c) = self.calls.get_mut(&call) {
            c.outside = Some(OutsideLeg { dialog, sdp, format });
        }
    }

    /// The caller left (or the call finished) during a hand-over: stop it.
    pub(super) fn overflow_abort(&mut self, now: Instant, call: CallId, sip: &mut Endpoint) {
        self.overflow.starts.retain(|(_, c)| *c != call);
        if let Some(a) = self.overflow.attempts.remove(&call)
            && let Some(t) = a.current
        {
            self.overflow.by_txn.remove(&t.txn);
            sip.cancel(now, t.txn);
        }
    }

    /// Either leg of a bridged overflow ended (`dialog`): the other is hung up and the call is
    /// gone. False when `dialog` is no such leg.
    pub(super) fn overflowed_leg_ended(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> bool {
        let Some(call) = self.by_dialog.get(dialog).copied() else { return false };
        if self.calls.get(&call).is_none_or(|c| c.outside.is_none()) {
            return false;
        }
        self.end_overflowed(now, call, Some(dialog), sip, media);
        true
    }

    /// Ends a bridged overflow: BYE to every leg still up but `gone`, media closed.
    pub(super) fn end_overflowed(
        &mut self,
        now: Instant,
        call: CallId,
        gone: Option<&DialogId>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(c) = self.calls.remove(&call) else { return };
        self.by_trunk_txn.remove(&c.trunk_txn);
        let legs = c.trunk_dialog.into_iter().chain(c.outside.map(|n| n.dialog));
        for d in legs {
            self.by_dialog.remove(&d);
            if Some(&d) != gone {
                sip.bye(now, &d);
            }
        }
        media.close(call);
    }
}

/// Header pairs as the endpoint takes them.
fn borrowed(extra: &[(String, String)]) -> Vec<(&str, String)> {
    extra.iter().map(|(n, v)| (n.as_str(), v.clone())).collect()
}
