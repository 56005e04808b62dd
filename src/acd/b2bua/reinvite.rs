//! In-dialog requests on either leg: re-INVITE and UPDATE (hold, resume, codec change).
//! Domain layer, sans-IO.
//!
//! An accepted re-offer reaches the media: a new address re-points the leg (its source latch
//! learns again), and a hold (`sendonly`, `inactive`, `c=0.0.0.0`) stops the leg's dead-leg timer
//! until the resume, since a phone on hold may rightly send nothing.
//!
//! An operator's phone holding a bridged call (before a consultation, consult.rs) gives the caller
//! hold audio instead of silence; its resume bridges them again.

use super::*;

impl Switchboard {
    /// A re-INVITE or UPDATE with SDP on either leg: answered with the leg's current description,
    /// hold mirrored; the media follows the new address and hold state (the codec stays). Other
    /// in-dialog requests are refused.
    pub(super) fn in_dialog(
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
        if request.method == Method::Refer {
            return self.refer(now, dialog, txn, request, sip, media);
        }
        if !matches!(request.method, Method::Invite | Method::Update) {
            return refuse(sip, 501);
        }
        let Some(call) = self.by_dialog.get(dialog).copied() else { return refuse(sip, 481) };
        let address = media.address();
        let Some(c) = self.calls.get_mut(&call) else { return refuse(sip, 481) };
        let is_hold = request.body.is_empty().then_some(false).or_else(|| {
            let text = std::str::from_utf8(&request.body).ok()?;
            Some(SessionDescription::parse(text).ok()?.is_hold())
        });
        // Did an operator's phone just hold (or resume) a call it talks on alone?
        let mut hold_change = None;
        if !c.conference
            && let Some(l) = c.agents.iter_mut().find(|l| l.dialog.as_ref() == Some(dialog))
            && let Some(hold) = is_hold.filter(|h| *h != l.held)
        {
            l.held = hold;
            hold_change = Some(hold);
        }
        let (leg, codec, which) = if c.trunk_dialog.as_ref() == Some(dialog) {
            (&mut c.caller_sdp, c.caller_format.codec, MediaLeg::Caller)
        } else if let Some(l) = c.agents.iter_mut().find(|l| l.dialog.as_ref() == Some(dialog)) {
            (&mut l.sdp, l.format.map_or(c.caller_format.codec, |f| f.codec), MediaLeg::Agent)
        } else if let Some(n) = c.outside.as_mut().filter(|n| &n.dialog == dialog) {
            // The national centre's leg sits where an agent's would, on the agent side.
            (&mut n.sdp, n.format.codec, MediaLeg::Agent)
        } else {
            return refuse(sip, 481);
        };
        if let Some((remote, on_hold)) = answer_reoffer(now, txn, request, leg, codec, address, sip)
        {
            media.update_leg(call, which, remote, on_hold);
            match hold_change {
                Some(true) => self.hold_audio(call, None, media),
                Some(false) => media.bridge(call),
                None => {}
            }
        }
    }
}

/// Answers a re-INVITE or UPDATE on a leg whose description is `leg` and whose codec is `codec`:
/// without an offer, with the leg's description unchanged (same version); with one, with our
/// answer keeping the codec (the relay need not change), a hold mirrored; 400 for an offer that
/// does not parse, 488 for one we cannot answer (RFC 3264 §8: the session stays as it was).
/// Returns where the media now goes and whether the peer holds, when an offer was accepted.
pub(super) fn answer_reoffer(
    now: Instant,
    txn: TxnId,
    request: &Request,
    leg: &mut LegSdp,
    codec: Codec,
    address: IpAddr,
    sip: &mut Endpoint,
) -> Option<(Option<SocketAddr>, bool)> {
    let refuse = |sip: &mut Endpoint, status: u16| {
        sip.respond(now, txn, Response::for_request(request, status, None));
    };
    if request.body.is_empty() {
        let body = leg.next(leg.last.clone());
        sip.accept_in_dialog(now, txn, Some(body));
        return None;
    }
    let offer =
        std::str::from_utf8(&request.body).ok().and_then(|t| SessionDescription::parse(t).ok());
    let Some(offer) = offer else {
        refuse(sip, 400);
        return None;
    };
    match sdp::answer(&offer, &[codec], address, leg.port) {
        Ok(answer) => {
            let body = leg.next(answer.sdp);
            sip.accept_in_dialog(now, txn, Some(body));
            Some((answer.audio.remote, offer.is_hold()))
        }
        Err(_) => {
            refuse(sip, 488);
            None
        }
    }
}
