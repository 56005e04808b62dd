//! Blind transfer by REFER (RFC 3515), the switchboard's side. Domain layer, sans-IO.
//!
//! An agent bridged to a caller sends REFER in their dialog. tongdai answers 202, tells the
//! agent the progress in NOTIFYs (`message/sipfrag`), and puts the caller on hold audio; the
//! agent goes to wrap-up ([`Input::TransferStarted`]). tongdai then INVITEs the target itself,
//! from the hotline's number `111` (the target never sees the caller's number), and:
//! - if the target answers, the caller is bridged to it through us (the outside leg, as after an
//!   overflow), the last NOTIFY says `200 OK`, and the agent's leg is hung up;
//! - if it fails (a final error, no answer in time), the last NOTIFY says why and the caller goes
//!   to the next free agent, first in line ([`Input::TransferFailed`]): never left alone.
//!
//! Only a target the Refer-To names by IP address is reached for now; a number or a short code
//! (dialled through the trunk, the transfer directory) and attended transfer (Replaces) are
//! answered with clear refusals until they are built.

use super::*;
use crate::sip::endpoint::OutgoingIds;
use crate::sip::message::{Host, Scheme, Uri, name};

/// How long a transfer target may ring.
const TRANSFER_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One transfer in progress: the target's INVITE.
#[derive(Debug)]
pub(super) struct TransferAttempt {
    /// The agent's dialog, where the NOTIFYs go.
    agent_dialog: DialogId,
    txn: TxnId,
    sdp: LegSdp,
    deadline: Instant,
}

/// Transfers in progress, by call and by the target INVITE's transaction.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    by_call: HashMap<CallId, TransferAttempt>,
    by_txn: HashMap<TxnId, CallId>,
}

impl Transfers {
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.by_call.values().map(|t| t.deadline).min()
    }
}

/// Where a transfer to `uri` goes: a `sip:` URI with an IP address that is not ours.
fn target_address(uri: &Uri, ours: &[SocketAddr]) -> Option<SocketAddr> {
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
        let refer_to = match request.headers.refer_to() {
            Ok(Some(to)) => to,
            _ => return respond(sip, 400),
        };
        // Attended transfer (Refer-To with Replaces, RFC 3891) is not built yet.
        if refer_to.uri.headers().iter().any(|(n, _)| n.eq_ignore_ascii_case("Replaces")) {
            return respond(sip, 501);
        }
        let Some(address) = target_address(&refer_to.uri, &self.access.local_udp) else {
            return respond(sip, 404);
        };
        let Some(local) = self.local_for(address) else { return respond(sip, 503) };
        if self.engine.handle(now, Input::TransferStarted { call, agent }).is_err() {
            return respond(sip, 403);
        }
        respond(sip, 202);
        self.notify_refer(now, dialog, "100 Trying", false, sip);
        // The agent's media gives way to the target's; the caller hears hold audio meanwhile.
        media.drop_agent(call);
        let max_forwards = self.calls.get(&call).map_or(69, |c| c.max_forwards);
        let caller_codec = self.calls.get(&call).map_or(Codec::Pcmu, |c| c.caller_format.codec);
        let started = media.open_agent(call).and_then(|port| {
            let other = match caller_codec {
                Codec::Pcmu => Codec::Pcma,
                Codec::Pcma => Codec::Pcmu,
            };
            let offer =
                sdp::offer(media.address(), port, &[caller_codec, other], Direction::SendRecv);
            self.next_leg += 1;
            let sdp = LegSdp::first(session_id(b"transfer", self.next_leg), offer, port);
            let flow =
                Flow { transport: crate::sip::transport::Transport::Udp, local, remote: address };
            let from = format!("\"111\" <sip:111@{}>", via_host(local));
            let extra = [(name::MAX_FORWARDS, max_forwards.to_string())];
            let ids: OutgoingIds = sip.new_outgoing_ids();
            let body = Bytes::from(sdp.last.to_string());
            let uri = refer_to.uri.clone();
            sip.invite_with(now, flow, uri, &from, body, &extra, &ids).map(|txn| (txn, sdp))
        });
        match started {
            Some((txn, sdp)) => {
                let deadline = now + TRANSFER_ANSWER_TIMEOUT;
                let attempt = TransferAttempt { agent_dialog: dialog.clone(), txn, sdp, deadline };
                self.transfers.by_txn.insert(txn, call);
                self.transfers.by_call.insert(call, attempt);
            }
            None => {
                media.drop_agent(call);
                self.notify_refer(now, dialog, "503 Service Unavailable", true, sip);
                self.end_transferring_agent(now, call, dialog, sip);
                let _ = self.engine.handle(now, Input::TransferFailed { call });
            }
        }
    }

    /// A NOTIFY in the REFER's implicit subscription (RFC 3515 §2.4.4) carrying `status` as a
    /// `message/sipfrag` status line; `last` ends the subscription.
    fn notify_refer(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        status: &str,
        last: bool,
        sip: &mut Endpoint,
    ) {
        let state = if last { "terminated;reason=noresource" } else { "active;expires=60" };
        let extra = [
            (name::EVENT, "refer".to_string()),
            ("Subscription-State", state.to_string()),
            (name::CONTENT_TYPE, "message/sipfrag;version=2.0".to_string()),
        ];
        let body = Bytes::from(format!("SIP/2.0 {status}\r\n"));
        sip.request_in_dialog(now, dialog, Method::Notify, &extra, body);
    }

    /// Hangs up the transferring agent's leg (their part of the call is over).
    fn end_transferring_agent(
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
                    self.transfer_failed(now, call, "408 Request Timeout", sip, media);
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
            let status = format!("{} {}", response.status, response.reason);
            return self.transfer_failed(now, call, &status, sip, media);
        }
        let audio = std::str::from_utf8(&response.body)
            .ok()
            .and_then(|b| SessionDescription::parse(b).ok())
            .and_then(|a| sdp::negotiate_answer(&a).ok());
        let Some(dialog) = dialog else {
            return self.transfer_failed(now, call, "488 Not Acceptable Here", sip, media);
        };
        let Some(audio) = audio else {
            // An answer we cannot use: the target's leg is hung up, the transfer failed.
            sip.bye(now, &dialog);
            return self.transfer_failed(now, call, "488 Not Acceptable Here", sip, media);
        };
        let Some(attempt) = self.transfers.by_call.remove(&call) else {
            sip.bye(now, &dialog);
            return;
        };
        let format = audio.leg_format();
        media.agent_answered(call, audio.remote, format);
        media.bridge(call);
        self.by_dialog.insert(dialog.clone(), call);
        if let Some(c) = self.calls.get_mut(&call) {
            c.outside = Some(overflow::OutsideLeg { dialog, sdp: attempt.sdp, format });
        }
        self.notify_refer(now, &attempt.agent_dialog, "200 OK", true, sip);
        self.end_transferring_agent(now, call, &attempt.agent_dialog, sip);
        let _ = self.engine.handle(now, Input::TransferAnswered { call });
    }

    /// The target failed with `status`: the agent hears why, the caller goes to the next agent.
    fn transfer_failed(
        &mut self,
        now: Instant,
        call: CallId,
        status: &str,
        sip: &mut Endpoint,
        media: &mut dyn MediaControl,
    ) {
        let Some(attempt) = self.transfers.by_call.remove(&call) else { return };
        self.transfers.by_txn.remove(&attempt.txn);
        media.drop_agent(call);
        self.notify_refer(now, &attempt.agent_dialog, status, true, sip);
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
            self.transfer_failed(now, call, "408 Request Timeout", sip, media);
        }
    }

    /// The call finished during its transfer (the caller left): the target's INVITE is cancelled.
    pub(super) fn transfer_abort(&mut self, now: Instant, call: CallId, sip: &mut Endpoint) {
        if let Some(t) = self.transfers.by_call.remove(&call) {
            self.transfers.by_txn.remove(&t.txn);
            sip.cancel(now, t.txn);
            self.notify_refer(now, &t.agent_dialog, "487 Request Terminated", true, sip);
        }
    }
}
