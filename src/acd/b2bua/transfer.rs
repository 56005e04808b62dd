//! Blind transfer by REFER (RFC 3515), the switchboard's side. Domain layer, sans-IO.
//!
//! An agent bridged to a caller sends REFER in their dialog. tongdai answers 202, tells the
//! agent the progress in NOTIFYs (`message/sipfrag`), and puts the caller on hold audio; the
//! agent goes to wrap-up ([`Input::TransferStarted`]). tongdai then INVITEs the target itself,
//! from the hotline's number `111` (the caller's number only where `[privacy]
//! show_number_to_transfer_targets` allows it), and:
//! - if the target answers, the caller is bridged to it through us (the outside leg, as after an
//!   overflow), the last NOTIFY says `200 OK`, and the agent's leg is hung up;
//! - if it fails (a final error, no answer in time), the last NOTIFY says why and the caller goes
//!   to the next free agent, first in line ([`Input::TransferFailed`]): never left alone.
//!
//! The Refer-To names the target: a transfer directory short code (`*31`, `[[directory]]`), a
//! number (dialled through the trunk, `[trunk] outbound`), or a `sip:` URI with an IP address.
//! A Refer-To with Replaces is an attended transfer: consult.rs completes it.

use super::*;
use crate::acd::directory::{Destination, Directory};
use crate::sip::endpoint::OutgoingIds;
use crate::sip::message::{Host, Scheme, Uri, name};
use crate::sip::refer::{Refer, ReferNotify, ReferProgress};

/// How long a transfer target may ring.
const TRANSFER_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One transfer in progress: the target's INVITE.
#[derive(Debug)]
pub(super) struct TransferAttempt {
    /// The agent's dialog, where the NOTIFYs go.
    agent_dialog: DialogId,
    /// The REFER's CSeq (the subscription's `id`); `None`: the agent asked for no NOTIFYs.
    subscription: Option<u32>,
    txn: TxnId,
    sdp: LegSdp,
    deadline: Instant,
}

/// Transfers in progress, by call and by the target INVITE's transaction, and where targets are.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    pub(super) by_call: HashMap<CallId, TransferAttempt>,
    by_txn: HashMap<TxnId, CallId>,
    /// `[[directory]]`: short codes → targets.
    directory: Directory,
    /// `[trunk] outbound`: where numbers are dialled.
    outbound: Option<SocketAddr>,
}

impl Transfers {
    /// Targets being rung (each an outbound leg through the trunk).
    pub(super) fn ringing(&self) -> usize {
        self.by_call.len()
    }

    /// The directory and trunk of `config` (at start and on reload).
    pub(super) fn configure(&mut self, config: &Config) {
        self.directory = config.directory.clone();
        self.outbound = config.trunk.outbound;
    }

    /// Where a transfer to `uri` goes: a directory code or a number at any host (ours, as
    /// softphones write it), else a `sip:` URI with an IP address that is not one of `ours`.
    pub(super) fn resolve(&self, uri: &Uri, ours: &[SocketAddr]) -> Option<(Uri, SocketAddr)> {
        let user = uri.user().unwrap_or("");
        let number = |n: &str, outbound: SocketAddr| {
            let text = format!("sip:{n}@{outbound}");
            Uri::parse(&text).ok().map(|u| (u, outbound))
        };
        if let Some(entry) = self.directory.by_code(user) {
            return match &entry.destination {
                Destination::Sip { uri, address } => Some((uri.clone(), *address)),
                Destination::Number(n) => number(n, self.outbound?),
            };
        }
        let digits = user.strip_prefix('+').unwrap_or(user);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            if let Some(address) = direct_address(uri, ours) {
                return Some((uri.clone(), address));
            }
            return number(user, self.outbound?);
        }
        direct_address(uri, ours).map(|a| (uri.clone(), a))
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.by_call.values().map(|t| t.deadline).min()
    }

    /// True when `user` is a `[[directory]]` short code.
    pub(super) fn is_directory_code(&self, user: &str) -> bool {
        self.directory.by_code(user).is_some()
    }
}

/// The address of a `sip:` URI with an IP host that is not one of `ours`.
fn direct_address(uri: &Uri, ours: &[SocketAddr]) -> Option<SocketAddr> {
    if *uri.scheme() != Scheme::Sip {
        return None;
    }
    let ip = match uri.host()? {
        Host::Ipv4(ip) => IpAddr::V4(*ip),
        Host::Ipv6(ip) => IpAddr::V6(*ip),
        Host::Domain(_) => return None,
    };
    let address = SocketAddr::new(ip, uri.port().unwrap_or(5060));
    (!ours.contains(&address)).then_some(address)
}

impl Switchboard {
    /// A REFER in `dialog`: a blind transfer when it comes from the agent of a bridged call.
    pub(super) fn refer(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        txn: TxnId,
        request: &Request,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let respond = |sip: &mut Endpoint, status: u16| {
            sip.respond(now, txn, Response::for_request(request, status, None));
        };
        let Some(call) = self.by_dialog.get(dialog).copied() else { return respond(sip, 481) };
        let Some(c) = self.calls.get(&call) else { return respond(sip, 481) };
        // Only the agent may transfer the caller (a caller's REFER is refused).
        let Some(agent) =
            c.agents.iter().find(|l| l.dialog.as_ref() == Some(dialog)).map(|l| l.agent.clone())
        else {
            return respond(sip, 403);
        };
        if self.transfers.by_call.contains_key(&call) {
            return respond(sip, 491);
        }
        let refer = match Refer::parse(request) {
            Ok(refer) => refer,
            Err(e) => return respond(sip, e.status()),
        };
        // Attended transfer (Refer-To with Replaces, RFC 3891): completes a consultation.
        if let Some(replaces) = &refer.refer_to.replaces {
            let done = self.attended_transfer(
                now, call, agent, dialog, txn, request, &refer, replaces, sip, media,
            );
            if let Err(status) = done {
                respond(sip, status);
            }
            return;
        }
        let Some((target, address)) =
            self.transfers.resolve(&refer.refer_to.target, &self.access.local_udp)
        else {
            return respond(sip, 404);
        };
        let Some(local) = self.local_for(address) else { return respond(sip, 503) };
        // The target's leg needs a trunk channel (`[trunk] channels`).
        if !self.channels_free(1) {
            return respond(sip, 503);
        }
        if self.engine.handle(now, Input::TransferStarted { call, agent }).is_err() {
            return respond(sip, 403);
        }
        sip.respond(now, txn, refer.accepted(request, None));
        // A supervisor of this call leaves before the operator's media does (supervise.rs).
        self.supervise_end(now, call, sip, media);
        let subscription = refer.subscribe.then_some(refer.cseq);
        self.notify_refer(now, dialog, subscription, ReferProgress::TRYING, sip);
        // The agent's media gives way to the target's; the caller hears hold audio meanwhile.
        media.drop_agent(call);
        let caller_codec = self.calls.get(&call).map_or(Codec::Pcmu, |c| c.caller_format.codec);
        let started = self.invite_transfer_target(
            now,
            call,
            call,
            caller_codec,
            target,
            address,
            local,
            sip,
            media,
        );
        match started {
            Some((txn, sdp)) => {
                let deadline = now + TRANSFER_ANSWER_TIMEOUT;
                let agent_dialog = dialog.clone();
                let attempt = TransferAttempt { agent_dialog, subscription, txn, sdp, deadline };
                self.transfers.by_txn.insert(txn, call);
                self.transfers.by_call.insert(call, attempt);
            }
            None => {
                media.drop_agent(call);
                self.notify_refer(now, dialog, subscription, ReferProgress::FAILED, sip);
                self.end_transferring_agent(now, call, dialog, sip);
                let _ = self.engine.handle(now, Input::TransferFailed { call });
            }
        }
    }

    /// INVITEs a transfer target at `address` for `call` (the target sees [`Self::transfer_from`]),
    /// offering `codec` first on a new agent-side leg of media call `media_call` (the call itself
    /// for a blind transfer, the consultation for an attended one). `None` when no port is free.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn invite_transfer_target(
        &mut self,
        now: Instant,
        call: CallId,
        media_call: CallId,
        codec: Codec,
        target: Uri,
        address: SocketAddr,
        local: SocketAddr,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Option<(TxnId, LegSdp)> {
        let max_forwards = self.calls.get(&call).map_or(69, |c| c.max_forwards);
        let port = media.open_agent(media_call)?;
        let other = match codec {
            Codec::Pcmu => Codec::Pcma,
            Codec::Pcma => Codec::Pcmu,
        };
        let offer = sdp::offer(media.address(), port, &[codec, other], Direction::SendRecv);
        self.next_leg += 1;
        let sdp = LegSdp::first(session_id(b"transfer", self.next_leg), offer, port);
        let flow =
            Flow { transport: crate::sip::transport::Transport::Udp, local, remote: address };
        let from = self.transfer_from(call, &via_host(local));
        let extra = [(name::MAX_FORWARDS, max_forwards.to_string())];
        let ids: OutgoingIds = sip.new_outgoing_ids();
        let body = Bytes::from(sdp.last.to_string());
        sip.invite_with(now, flow, target, &from, body, &extra, &ids).map(|txn| (txn, sdp))
    }

    /// Who the transfer target sees calling (`[privacy] show_number_to_transfer_targets`): the
    /// hotline's 111, or the caller's number when allowed and not withheld.
    fn transfer_from(&self, call: CallId, host: &str) -> String {
        let number = self.calls.get(&call).and_then(|c| c.identity.number());
        match number {
            Some(n) if self.policy.privacy.show_number_to_transfer_targets => {
                format!("\"111\" <sip:{}@{host}>", n.expose())
            }
            _ => format!("\"111\" <sip:111@{host}>"),
        }
    }

    /// A NOTIFY in the REFER's implicit subscription `subscription` (RFC 3515 §2.4.4) with
    /// `progress` as its `message/sipfrag`; a final status ends the subscription. Nothing when the
    /// agent asked for no subscription (`Refer-Sub: false`, RFC 4488).
    pub(super) fn notify_refer(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        subscription: Option<u32>,
        progress: ReferProgress,
        sip: &mut Endpoint,
    ) {
        let Some(id) = subscription else { return };
        let notify = ReferNotify::new(progress, Some(id), Duration::from_secs(60));
        let extra = notify.headers();
        let extra: Vec<(&str, String)> = extra.iter().map(|(n, v)| (*n, v.clone())).collect();
        sip.request_in_dialog(now, dialog, Method::Notify, &extra, notify.body);
    }

    /// Hangs up the transferring agent's leg (their part of the call is over).
    pub(super) fn end_transferring_agent(
        &mut self,
        now: Instant,
        call: CallId,
        dialog: &DialogId,
        sip: &mut Endpoint,
    ) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.agents.retain(|l| l.dialog.as_ref() != Some(dialog));
        }
        self.by_dialog.remove(dialog);
        sip.bye(now, dialog);
    }

    /// Takes the endpoint events of transfer targets' INVITEs; returns every other event.
    pub(super) fn transfer_event(
        &mut self,
        now: Instant,
        event: UaEvent,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) -> Option<UaEvent> {
        match &event {
            UaEvent::Response { txn, response, dialog }
                if self.transfers.by_txn.contains_key(txn) =>
            {
                if response.status >= 200 {
                    self.transfer_answered(now, *txn, response, dialog.clone(), sip, media);
                }
                None
            }
            UaEvent::Timeout { txn } if self.transfers.by_txn.contains_key(txn) => {
                if let Some(call) = self.transfers.by_txn.remove(txn) {
                    self.transfer_failed(now, call, 408, sip, media);
                }
                None
            }
            _ => Some(event),
        }
    }

    fn transfer_answered(
        &mut self,
        now: Instant,
        txn: TxnId,
        response: &Response,
        dialog: Option<DialogId>,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(call) = self.transfers.by_txn.remove(&txn) else { return };
        if !(200..300).contains(&response.status) {
            return self.transfer_failed(now, call, response.status, sip, media);
        }
        let audio = answer_in(&response.body);
        let Some(dialog) = dialog else {
            return self.transfer_failed(now, call, 488, sip, media);
        };
        let Some(audio) = audio else {
            // An answer we cannot use: the target's leg is hung up, the transfer failed.
            sip.bye(now, &dialog);
            return self.transfer_failed(now, call, 488, sip, media);
        };
        let Some(attempt) = self.transfers.by_call.remove(&call) else {
            sip.bye(now, &dialog);
            return;
        };
        self.bridge_outside(now, call, dialog, attempt.sdp, &audio, sip, media);
        let (dialog, subscription) = (attempt.agent_dialog.clone(), attempt.subscription);
        self.notify_refer(now, &dialog, subscription, ReferProgress::OK, sip);
        self.end_transferring_agent(now, call, &attempt.agent_dialog, sip);
        let _ = self.engine.handle(now, Input::TransferAnswered { call });
    }

    /// The target failed with `status`: the agent hears why, the caller goes to the next agent.
    fn transfer_failed(
        &mut self,
        now: Instant,
        call: CallId,
        status: u16,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(attempt) = self.transfers.by_call.remove(&call) else { return };
        self.transfers.by_txn.remove(&attempt.txn);
        media.drop_agent(call);
        let progress = ReferProgress::status(status).unwrap_or(ReferProgress::FAILED);
        self.notify_refer(now, &attempt.agent_dialog, attempt.subscription, progress, sip);
        self.end_transferring_agent(now, call, &attempt.agent_dialog, sip);
        let _ = self.engine.handle(now, Input::TransferFailed { call });
    }

    /// Targets that rang too long are cancelled (their 487 then fails the transfer).
    pub(super) fn transfer_due(
        &mut self,
        now: Instant,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let late: Vec<CallId> = self
            .transfers
            .by_call
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(c, _)| *c)
            .collect();
        for call in late {
            if let Some(t) = self.transfers.by_call.get(&call) {
                sip.cancel(now, t.txn);
            }
            self.transfer_failed(now, call, 408, sip, media);
        }
    }

    /// The call finished during its transfer (the caller left): the target's INVITE is cancelled.
    pub(super) fn transfer_abort(&mut self, now: Instant, call: CallId, sip: &mut Endpoint) {
        if let Some(t) = self.transfers.by_call.remove(&call) {
            self.transfers.by_txn.remove(&t.txn);
            sip.cancel(now, t.txn);
            let progress = ReferProgress::status(487).unwrap_or(ReferProgress::FAILED);
            self.notify_refer(now, &t.agent_dialog, t.subscription, progress, sip);
        }
    }
}
