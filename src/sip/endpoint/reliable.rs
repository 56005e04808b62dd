//! Reliable provisional responses (RFC 3262) to our INVITEs (protocol layer, sans-IO): each
//! `Require: 100rel` provisional creates or continues its early dialog and is PRACKed once, in
//! RSeq order; retransmissions and gaps are discarded.

use super::*;

/// An early dialog (§12.1.2) that a reliable provisional to our INVITE created, with the RSeq
/// of the last reliable provisional we PRACKed in it (RFC 3262 §4). It lives with its INVITE:
/// the 2xx confirms a dialog that keeps its local CSeq (PRACKs advanced it), a failure ends it.
#[derive(Debug)]
pub(super) struct EarlyDialog {
    pub(super) dialog: Dialog,
    pub(super) last_rseq: u32,
    /// The SDP answer the first reliable provisional with a body brought (RFC 3262 §5): a 2xx
    /// without a body then stands on it.
    pub(super) answer: Option<Bytes>,
}

/// What to do with a provisional to our INVITE (RFC 3262 §4).
#[derive(Debug)]
pub(super) enum Provisional {
    /// Not reliable (no `Require: 100rel`, no RSeq, or no To tag to make a dialog of): report.
    Plain,
    /// The next reliable provisional of its early dialog: send this PRACK, then report.
    Reliable(Box<Request>),
    /// A retransmission of one already PRACKed, one out of order, or one for a dialog a 2xx
    /// already confirmed: discard.
    Discard,
}

impl SentInvite {
    /// Takes a provisional with RSeq `rseq` and `Require: 100rel` (RFC 3262 §4): the first in a
    /// dialog creates the early dialog; each next one must carry the RSeq one more than the
    /// last. The PRACK is built in the early dialog (its next CSeq) with `RAck: rseq cseq INVITE`.
    pub(super) fn reliable(
        &mut self,
        response: &Response,
        rseq: u32,
        via: &str,
        branch: &str,
    ) -> Provisional {
        let Some(tag) = response.headers.to().ok().and_then(|t| t.tag().map(str::to_owned)) else {
            return Provisional::Plain;
        };
        let Ok(invite_cseq) = self.request.headers.cseq().map(|c| c.seq) else {
            return Provisional::Plain;
        };
        if self.answered.contains(&tag) {
            return Provisional::Discard;
        }
        let early = match self.early.iter().position(|e| e.dialog.id.remote_tag == tag) {
            Some(i) => {
                let e = &mut self.early[i];
                // §4: a retransmission (RSeq already seen) or a gap is discarded; the peer
                // retransmits until our PRACK, which its own transaction retransmits.
                if Some(rseq) != e.last_rseq.checked_add(1) {
                    return Provisional::Discard;
                }
                e.dialog.update_from_response(response);
                e
            }
            None => {
                let Some(dialog) = Dialog::uac(&self.request, response, self.flow) else {
                    return Provisional::Plain;
                };
                self.early.push(EarlyDialog { dialog, last_rseq: rseq, answer: None });
                let last = self.early.len() - 1;
                &mut self.early[last]
            }
        };
        early.last_rseq = rseq;
        let is_sdp = response
            .headers
            .content_type()
            .ok()
            .flatten()
            .is_none_or(|t| t.essence().eq_ignore_ascii_case("application/sdp"));
        if early.answer.is_none() && !response.body.is_empty() && is_sdp {
            early.answer = Some(response.body.clone());
        }
        let mut prack = early.dialog.request(Method::Prack, via, branch);
        prack.headers.push(name::RACK, format!("{rseq} {invite_cseq} INVITE"));
        Provisional::Reliable(Box::new(prack))
    }

    /// The early dialog with the peer's tag `tag`, if a reliable provisional made one.
    pub(super) fn early(&self, tag: &str) -> Option<&EarlyDialog> {
        self.early.iter().find(|e| e.dialog.id.remote_tag == tag)
    }
}

/// The RSeq of a reliable provisional (RFC 3262 §7.1: a 101–199 with `Require: 100rel`).
pub(super) fn reliable_rseq(response: &Response) -> Option<u32> {
    let requires_100rel = response
        .headers
        .require()
        .is_ok_and(|tags| tags.iter().any(|t| t.eq_ignore_ascii_case("100rel")));
    if !(101..200).contains(&response.status) || !requires_100rel {
        return None;
    }
    response.headers.rseq().ok().flatten()
}
