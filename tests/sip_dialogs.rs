//! Dialogs on the sans-IO endpoint, with literal SIP messages and virtual time: late offer (offer in
//! our 200, answer in the ACK), re-INVITE and UPDATE (answers, glare: 500 + Retry-After and 491),
//! INFO with DTMF, session timers (RFC 4028: 422, refresh, expiry, our own refreshes), and the
//! RFC 5407 races: BYE crossing BYE, CANCEL crossing our 2xx. No sockets, no sleeping.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::ua::{Ua, flow, trunk_request as req};
use tongdai::sip::endpoint::{EndCause, UaEvent};
use tongdai::sip::message::{Request, Response};
use tongdai::sip::transaction::TxnId;

const OFFER: &str = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                     a=rtpmap:101 telephone-event/8000\r\n";
const HOLD: &str = "v=0\r\no=trunk 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                    m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n";
const OUR_SDP: &str = "v=0\r\no=tongdai 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                       t=0 0\r\nm=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n";

/// The dialog tests' ways into the endpoint.
trait DialogUa {
    fn new() -> Self;
    fn invite(&mut self, extra: &str, body: &str) -> TxnId;
    fn established(&mut self, extra: &str) -> Response;
}

impl DialogUa for Ua {
    fn new() -> Ua {
        Ua::with_salt(42)
    }

    /// Sends an INVITE (`extra` headers, `body`) and returns its transaction.
    fn invite(&mut self, extra: &str, body: &str) -> TxnId {
        self.send(req("INVITE", 1, "inv1", None, extra, body));
        match self.take_events().as_slice() {
            [UaEvent::IncomingCall { txn, .. }] => *txn,
            other => panic!("expected one IncomingCall, got {other:?}"),
        }
    }

    /// An INVITE with SDP answered 200 and ACKed; returns the 200.
    fn established(&mut self, extra: &str) -> Response {
        let txn = self.invite(extra, OFFER);
        self.ep.answer(self.now, txn, Bytes::from_static(OUR_SDP.as_bytes())).unwrap();
        let ok = final_response(&mut self.responses(), 200);
        let tag = to_tag(&ok);
        self.send(req("ACK", 1, "ack1", Some(&tag), "", ""));
        assert!(matches!(self.take_events().as_slice(), [UaEvent::Confirmed { .. }]));
        self.take_sent();
        ok
    }
}

fn final_response(responses: &mut Vec<Response>, status: u16) -> Response {
    let i = responses
        .iter()
        .position(|r| r.status == status)
        .unwrap_or_else(|| panic!("no {status} in {responses:?}"));
    responses.remove(i)
}

fn to_tag(r: &Response) -> String {
    r.headers.to().unwrap().tag().unwrap().to_string()
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn in_dialog(ua: &mut Ua) -> (TxnId, Request) {
    match ua.take_events().as_slice() {
        [UaEvent::InDialog { txn, request, .. }] => (*txn, request.clone()),
        other => panic!("expected one InDialog, got {other:?}"),
    }
}

// ---- late offer ------------------------------------------------------------------------------

#[test]
fn late_offer_puts_our_offer_in_the_200_and_takes_the_answer_from_the_ack() {
    let mut ua = Ua::new();
    let txn = ua.invite("", "");
    let dialog = ua.ep.answer(ua.now, txn, Bytes::from_static(OUR_SDP.as_bytes())).unwrap();
    let ok = final_response(&mut ua.responses(), 200);
    assert_eq!(&ok.body[..], OUR_SDP.as_bytes());
    assert_eq!(header(&ok, "Content-Type").as_deref(), Some("application/sdp"));
    // The 200 is retransmitted until the ACK comes.
    ua.run_until(Duration::from_millis(600));
    assert!(ua.responses().iter().any(|r| r.status == 200));
    ua.send(req("ACK", 1, "ack1", Some(&to_tag(&ok)), "", OFFER));
    assert_eq!(
        ua.take_events(),
        vec![UaEvent::Confirmed {
            dialog: dialog.clone(),
            body: Bytes::from_static(OFFER.as_bytes())
        }]
    );
    ua.run_until(Duration::from_secs(40));
    assert!(ua.responses().is_empty(), "no retransmission after the ACK");
    assert_eq!(ua.ep.dialog_count(), 1);
}

#[test]
fn ack_without_the_answer_to_our_offer_ends_the_call_with_bye() {
    let mut ua = Ua::new();
    let txn = ua.invite("", "");
    let dialog = ua.ep.answer(ua.now, txn, Bytes::from_static(OUR_SDP.as_bytes())).unwrap();
    let ok = final_response(&mut ua.responses(), 200);
    ua.send(req("ACK", 1, "ack1", Some(&to_tag(&ok)), "", ""));
    assert_eq!(ua.take_events(), vec![UaEvent::Ended { dialog, cause: EndCause::NoAnswerInAck }]);
    let byes = ua.requests();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].method.as_str(), "BYE");
    assert_eq!(ua.ep.dialog_count(), 0);
}

#[test]
fn a_repeated_ack_confirms_the_dialog_once() {
    let mut ua = Ua::new();
    let ok = ua.established("");
    let tag = to_tag(&ok);
    ua.send(req("ACK", 1, "ack1", Some(&tag), "", ""));
    ua.send(req("ACK", 1, "ack2", Some(&tag), "", ""));
    assert!(ua.take_events().is_empty(), "a repeated ACK is absorbed");
    assert_eq!(ua.ep.dialog_count(), 1);
}

#[test]
fn an_ack_without_body_is_fine_when_the_invite_had_the_offer() {
    let mut ua = Ua::new();
    ua.established("");
    assert_eq!(ua.ep.dialog_count(), 1);
    assert!(ua.requests().is_empty());
}

// ---- re-INVITE, UPDATE, INFO -------------------------------------------------------------

#[test]
fn reinvite_goes_up_and_its_200_carries_contact_and_is_retransmitted_until_the_ack() {
    let mut ua = Ua::new();
    let ok = ua.established("");
    let tag = to_tag(&ok);
    ua.send(req("INVITE", 2, "reinv", Some(&tag), "", HOLD));
    let (txn, request) = in_dialog(&mut ua);
    assert_eq!(&request.body[..], HOLD.as_bytes());
    assert!(ua.ep.accept_in_dialog(ua.now, txn, Some(Bytes::from_static(OUR_SDP.as_bytes()))));
    assert!(!ua.ep.accept_in_dialog(ua.now, txn, None), "answered once");
    let ok2 = final_response(&mut ua.responses(), 200);
    assert!(header(&ok2, "Contact").is_some());
    assert_eq!(to_tag(&ok2), tag);
    assert_eq!(&ok2.body[..], OUR_SDP.as_bytes());
    ua.run_until(Duration::from_millis(1600));
    assert!(ua.responses().iter().any(|r| r.status == 200), "retransmitted");
    ua.send(req("ACK", 2, "ack2", Some(&tag), "", ""));
    assert!(matches!(ua.take_events().as_slice(), [UaEvent::Confirmed { .. }]));
    ua.run_until(Duration::from_secs(40));
    assert!(ua.responses().is_empty());
    assert!(ua.take_events().is_empty(), "no AckTimeout");
    assert_eq!(ua.ep.dialog_count(), 1);
}

#[test]
fn reinvite_refused_with_488_keeps_the_dialog() {
    let mut ua = Ua::new();
    let tag = to_tag(&ua.established(""));
    ua.send(req("INVITE", 2, "reinv", Some(&tag), "", HOLD));
    let (txn, request) = in_dialog(&mut ua);
    ua.ep.respond(ua.now, txn, Response::for_request(&request, 488, None));
    assert_eq!(final_response(&mut ua.responses(), 488).status, 488);
    // The next re-INVITE is not taken for an overlapping one.
    ua.send(req("INVITE", 3, "reinv2", Some(&tag), "", OFFER));
    in_dialog(&mut ua);
    assert_eq!(ua.ep.dialog_count(), 1);
}

#[test]
fn second_reinvite_while_the_first_is_unanswered_gets_500_with_retry_after() {
    let mut ua = Ua::new();
    let tag = to_tag(&ua.established(""));
    ua.send(req("INVITE", 2, "reinv", Some(&tag), "", HOLD));
    let (first, _) = in_dialog(&mut ua);
    ua.send(req("INVITE", 3, "reinv2", Some(&tag), "", OFFER));
    assert!(ua.take_events().is_empty());
    let r = final_response(&mut ua.responses(), 500);
    let wait: u32 = header(&r, "Retry-After").unwrap().parse().unwrap();
    assert!(wait <= 10, "RFC 3261 §14.2: 0 to 10 seconds, got {wait}");
    // An UPDATE with an offer meanwhile: 500 too (RFC 3311 §5.2).
    ua.send(req("UPDATE", 4, "upd", Some(&tag), "", OFFER));
    final_response(&mut ua.responses(), 500);
    // The first is still answerable.
    assert!(ua.ep.accept_in_dialog(ua.now, first, Some(Bytes::from_static(OUR_SDP.as_bytes()))));
    final_response(&mut ua.responses(), 200);
}

#[test]
fn reinvite_while_our_offer_awaits_its_answer_gets_491() {
    let mut ua = Ua::new();
    let txn = ua.invite("", "");
    ua.ep.answer(ua.now, txn, Bytes::from_static(OUR_SDP.as_bytes())).unwrap();
    let tag = to_tag(&final_response(&mut ua.responses(), 200));
    // The ACK with the answer was lost; the caller re-offers.
    ua.send(req("INVITE", 2, "reinv", Some(&tag), "", OFFER));
    assert!(ua.take_events().is_empty());
    final_response(&mut ua.responses(), 491);
    // The (retransmitted) ACK with the answer still confirms the call.
    ua.send(req("ACK", 1, "ack1", Some(&tag), "", OFFER));
    assert!(matches!(ua.take_events().as_slice(), [UaEvent::Confirmed { .. }]));
}

#[test]
fn reinvite_without_offer_gets_our_offer_and_an_ack_without_answer_ends_the_call() {
    let mut ua = Ua::new();
    let tag = to_tag(&ua.established(""));
    ua.send(req("INVITE", 2, "reinv", Some(&tag), "", ""));
    let (txn, _) = in_dialog(&mut ua);
    ua.ep.accept_in_dialog(ua.now, txn, Some(Bytes::from_static(OUR_SDP.as_bytes())));
    let ok = final_response(&mut ua.responses(), 200);
    assert_eq!(&ok.body[..], OUR_SDP.as_bytes());
    ua.send(req("ACK", 2, "ack2", Some(&tag), "", ""));
    assert!(matches!(
        ua.take_events().as_slice(),
        [UaEvent::Ended { cause: EndCause::NoAnswerInAck, .. }]
    ));
    assert_eq!(ua.requests()[0].method.as_str(), "BYE");
}

#[test]
fn update_without_body_is_answered_200_here_and_with_sdp_goes_up() {
    let mut ua = Ua::new();
    let tag = to_tag(&ua.established(""));
    ua.send(req("UPDATE", 2, "upd1", Some(&tag), "", ""));
    assert!(ua.take_events().is_empty());
    let ok = final_response(&mut ua.responses(), 200);
    assert!(header(&ok, "Contact").is_some(), "UPDATE is a target refresh");
    ua.send(req("UPDATE", 3, "upd2", Some(&tag), "", HOLD));
    let (txn, request) = in_dialog(&mut ua);
    assert_eq!(request.method.as_str(), "UPDATE");
    ua.ep.accept_in_dialog(ua.now, txn, Some(Bytes::from_static(OUR_SDP.as_bytes())));
    let ok = final_response(&mut ua.responses(), 200);
    assert_eq!(&ok.body[..], OUR_SDP.as_bytes());
    // No ACK for UPDATE: nothing retransmitted, nothing times out.
    ua.run_until(Duration::from_secs(40));
    assert!(ua.responses().is_empty());
    assert!(ua.take_events().is_empty());
}

#[test]
fn info_gets_200_and_dtmf_relay_is_reported() {
    let mut ua = Ua::new();
    let tag = to_tag(&ua.established(""));
    let dtmf = "Content-Type: application/dtmf-relay\r\n";
    ua.send(req("INFO", 2, "info1", Some(&tag), dtmf, "Signal=5\r\nDuration=160\r\n"));
    final_response(&mut ua.responses(), 200);
    assert!(matches!(
        ua.take_events().as_slice(),
        [UaEvent::Dtmf { signal: '5', duration_ms: Some(160), .. }]
    ));
    ua.send(req("INFO", 3, "info2", Some(&tag), dtmf, "Signal=#\r\n"));
    assert!(matches!(
        ua.take_events().as_slice(),
        [UaEvent::Dtmf { signal: '#', duration_ms: None, .. }]
    ));
    ua.take_sent();
    // An empty INFO (a keep-alive some SBCs send) and a bad signal: 200, no digit.
    ua.send(req("INFO", 4, "info3", Some(&tag), "", ""));
    ua.send(req("INFO", 5, "info4", Some(&tag), dtmf, "Signal=xyz\r\n"));
    assert_eq!(ua.responses().iter().filter(|r| r.status == 200).count(), 2);
    assert!(ua.take_events().is_empty());
}

#[test]
fn in_dialog_requests_for_unknown_dialogs_get_481() {
    let mut ua = Ua::new();
    for method in ["INVITE", "UPDATE", "INFO", "BYE"] {
        ua.send(req(method, 2, &format!("x{method}"), Some("nosuchtag"), "", ""));
        let r = ua.responses();
        assert_eq!(r.last().map(|r| r.status), Some(481), "{method}");
    }
    assert!(ua.take_events().is_empty());
}

// ---- session timers (RFC 4028) -------------------------------------------------------------

const TIMER: &str = "Supported: timer\r\n";
const ALLOW: &str = "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE\r\n";

#[test]
fn session_interval_below_our_min_se_gets_422_with_min_se() {
    let mut ua = Ua::new();
    ua.send(req("INVITE", 1, "inv1", None, &format!("{TIMER}Session-Expires: 60\r\n"), OFFER));
    assert!(ua.take_events().is_empty());
    let r = final_response(&mut ua.responses(), 422);
    assert_eq!(header(&r, "Min-SE").as_deref(), Some("90"));
    // The retry with our Min-SE is taken.
    ua.send(req("INVITE", 2, "inv2", None, &format!("{TIMER}Session-Expires: 90\r\n"), OFFER));
    assert!(matches!(ua.take_events().as_slice(), [UaEvent::IncomingCall { .. }]));
}

#[test]
fn session_timer_answered_refresher_uac_and_refreshes_keep_the_call() {
    let mut ua = Ua::new();
    let ok = ua.established(&format!("{TIMER}Session-Expires: 1800\r\nMin-SE: 90\r\n"));
    assert_eq!(header(&ok, "Session-Expires").as_deref(), Some("1800;refresher=uac"));
    assert_eq!(header(&ok, "Require").as_deref(), Some("timer"));
    let tag = to_tag(&ok);
    // The caller refreshes with a re-INVITE at half time, then with an UPDATE.
    ua.run_until(Duration::from_secs(900));
    ua.send(req(
        "INVITE",
        2,
        "r1",
        Some(&tag),
        &format!("{TIMER}Session-Expires: 1800\r\n"),
        OFFER,
    ));
    let (txn, _) = in_dialog(&mut ua);
    ua.ep.accept_in_dialog(ua.now, txn, Some(Bytes::from_static(OUR_SDP.as_bytes())));
    let ok = final_response(&mut ua.responses(), 200);
    assert_eq!(header(&ok, "Session-Expires").as_deref(), Some("1800;refresher=uac"));
    ua.send(req("ACK", 2, "a2", Some(&tag), "", ""));
    ua.take_events();
    ua.run_until(Duration::from_secs(1800));
    ua.send(req("UPDATE", 3, "r2", Some(&tag), &format!("{TIMER}Session-Expires: 1800\r\n"), ""));
    final_response(&mut ua.responses(), 200);
    // 1800 + 1800 - 32: still alive one second before the BYE is due.
    ua.run_until(Duration::from_secs(1800 + 1800 - 33));
    assert!(ua.requests().is_empty());
    assert_eq!(ua.ep.dialog_count(), 1);
    // No refresh: BYE at expiry minus min(32 s, SE/3), and the dialog is reported ended.
    ua.run_until(Duration::from_secs(1800 + 1800 - 32));
    let byes = ua.requests();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].method.as_str(), "BYE");
    assert!(matches!(
        ua.take_events().as_slice(),
        [UaEvent::Ended { cause: EndCause::SessionExpired, .. }]
    ));
    assert_eq!(ua.ep.dialog_count(), 0);
}

#[test]
fn short_session_interval_expires_at_two_thirds() {
    let mut ua = Ua::new();
    ua.established(&format!("{TIMER}Session-Expires: 90\r\n"));
    ua.run_until(Duration::from_secs(59));
    assert!(ua.requests().is_empty());
    ua.run_until(Duration::from_secs(60));
    assert_eq!(ua.requests().len(), 1, "BYE at 90 - 90/3");
}

#[test]
fn no_timer_without_session_expires() {
    for extra in [TIMER, ""] {
        let mut ua = Ua::new();
        let ok = ua.established(extra);
        assert_eq!(header(&ok, "Session-Expires"), None, "{extra:?}");
        assert_eq!(header(&ok, "Require"), None, "{extra:?}");
        ua.run_until(Duration::from_secs(7200));
        assert!(ua.requests().is_empty(), "{extra:?}");
        assert_eq!(ua.ep.dialog_count(), 1);
    }
}

#[test]
fn refresher_uas_makes_us_refresh_with_update() {
    let mut ua = Ua::new();
    let ok = ua.established(&format!("{TIMER}{ALLOW}Session-Expires: 120;refresher=uas\r\n"));
    assert_eq!(header(&ok, "Session-Expires").as_deref(), Some("120;refresher=uas"));
    ua.run_until(Duration::from_secs(59));
    assert!(ua.requests().is_empty());
    ua.run_until(Duration::from_secs(60));
    let updates = ua.requests();
    assert_eq!(updates.len(), 1);
    let update = &updates[0];
    assert_eq!(update.method.as_str(), "UPDATE");
    assert_eq!(update.uri.as_str(), "sip:trunk@127.0.0.1:5070", "sent to the remote target");
    let se = update.headers.session_expires().unwrap().unwrap();
    assert_eq!((se.delta, se.refresher.as_deref()), (120, Some("uac")));
    let mut r = Response::for_request(update, 200, None);
    r.headers.push("Session-Expires", "120;refresher=uac");
    ua.ep.handle_datagram(ua.now, flow(), r.to_bytes());
    ua.drain();
    assert!(ua.take_events().is_empty(), "our refresh is not the call logic's business");
    // Refreshed at 60 s: the next refresh at 120 s, and no BYE at 60 + 80.
    ua.run_until(Duration::from_secs(119));
    assert!(ua.requests().is_empty());
    ua.run_until(Duration::from_secs(120));
    let next = ua.requests();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].method.as_str(), "UPDATE");
    // This one gets 481: the peer lost the dialog, so it ends.
    let r = Response::for_request(&next[0], 481, None);
    ua.ep.handle_datagram(ua.now, flow(), r.to_bytes());
    ua.drain();
    assert!(matches!(
        ua.take_events().as_slice(),
        [UaEvent::Ended { cause: EndCause::RefreshFailed, .. }]
    ));
    assert_eq!(ua.ep.dialog_count(), 0);
}

#[test]
fn unanswered_refresh_ends_the_session_in_time() {
    let mut ua = Ua::new();
    ua.established(&format!("{TIMER}{ALLOW}Session-Expires: 120;refresher=uas\r\n"));
    ua.run_until(Duration::from_secs(60));
    assert_eq!(ua.requests().len(), 1);
    // No answer at all: the session ends at 120 - 32 s, before the UPDATE's Timer F (32 s).
    ua.run_until(Duration::from_secs(88));
    assert!(ua.requests().iter().any(|r| r.method.as_str() == "BYE"));
    assert!(matches!(
        ua.take_events().as_slice(),
        [UaEvent::Ended { cause: EndCause::SessionExpired, .. }]
    ));
    ua.run_until(Duration::from_secs(200));
    let later = ua.take_events();
    assert!(later.iter().all(|e| !matches!(e, UaEvent::Ended { .. })), "one end only: {later:?}");
}

#[test]
fn proxy_added_session_expires_makes_us_refresh_with_reinvite_when_update_is_not_allowed() {
    let mut ua = Ua::new();
    // No Supported: timer (a proxy added the header), 60 s: raised to our Min-SE, no 422.
    let ok = ua.established("Session-Expires: 60\r\n");
    assert_eq!(header(&ok, "Session-Expires").as_deref(), Some("90;refresher=uas"));
    assert_eq!(header(&ok, "Require"), None, "the UAC does not support timer");
    ua.run_until(Duration::from_secs(44));
    assert!(ua.requests().is_empty());
    ua.run_until(Duration::from_secs(45));
    let sent = ua.requests();
    assert_eq!(sent.len(), 1);
    let reinvite = &sent[0];
    assert_eq!(reinvite.method.as_str(), "INVITE");
    assert_eq!(&reinvite.body[..], OUR_SDP.as_bytes(), "our description again, unchanged");
    assert_eq!(reinvite.headers.cseq().unwrap().seq, 1, "our first request in the dialog");
    // The caller answers 200: we ACK it, and the session runs on.
    let mut r = Response::for_request(reinvite, 200, None);
    r.headers.push("Contact", "<sip:trunk@127.0.0.1:5070>");
    r.headers.push("Content-Type", "application/sdp");
    r.body = Bytes::from_static(OFFER.as_bytes());
    ua.ep.handle_datagram(ua.now, flow(), r.to_bytes());
    let acks = ua.requests();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method.as_str(), "ACK");
    assert_eq!(acks[0].headers.cseq().unwrap().seq, 1);
    assert!(ua.take_events().is_empty());
    // Its retransmission (our ACK was lost) is ACKed again, still without events.
    ua.run_until(Duration::from_millis(45_500));
    ua.ep.handle_datagram(ua.now, flow(), r.to_bytes());
    let acks = ua.requests();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method.as_str(), "ACK");
    assert!(ua.take_events().is_empty());
    // Their re-INVITE once ours is answered is fine (no 491).
    ua.send(req("INVITE", 2, "theirs", Some(&to_tag(&ok)), "", HOLD));
    in_dialog(&mut ua);
    // Refreshed at 45 s: the next refresh at 90 s, no BYE at 60 s.
    ua.run_until(Duration::from_secs(89));
    assert!(ua.requests().is_empty());
    assert_eq!(ua.ep.dialog_count(), 1);
}

#[test]
fn reinvite_glare_with_our_refresh_gets_491_both_ways_and_we_retry() {
    let mut ua = Ua::new();
    let tag = to_tag(&ua.established(&format!("{TIMER}Session-Expires: 90;refresher=uas\r\n")));
    ua.run_until(Duration::from_secs(45));
    let ours = ua.requests().remove(0);
    assert_eq!(ours.method.as_str(), "INVITE");
    // Their re-INVITE crosses ours: 491 (§14.2).
    ua.send(req("INVITE", 2, "theirs", Some(&tag), "", HOLD));
    assert!(ua.take_events().is_empty());
    final_response(&mut ua.responses(), 491);
    // Ours gets 491 too: we retry within 2 s (we did not make the Call-ID, §14.1).
    let r = Response::for_request(&ours, 491, None);
    ua.ep.handle_datagram(ua.now, flow(), r.to_bytes());
    ua.drain();
    assert!(ua.take_events().is_empty());
    ua.run_until(Duration::from_secs(47));
    let mut retry: Vec<Request> =
        ua.requests().into_iter().filter(|r| r.method.as_str() == "INVITE").collect();
    // (Retransmissions of it over UDP share its CSeq.)
    retry.dedup_by_key(|r| r.headers.cseq().unwrap().seq);
    assert_eq!(retry.len(), 1, "one retry");
    assert!(retry[0].headers.cseq().unwrap().seq > ours.headers.cseq().unwrap().seq);
    assert_eq!(ua.ep.dialog_count(), 1);
}

// ---- RFC 5407 races ----------------------------------------------------------------------

#[test]
fn bye_crossing_our_bye_gets_200_and_nothing_breaks() {
    let mut ua = Ua::new();
    let ok = ua.established("");
    let tag = to_tag(&ok);
    let dialog = match ua.ep.dialog_count() {
        1 => tongdai::sip::dialog::DialogId {
            call_id: "call-1@trunk".to_owned(),
            local_tag: tag.clone(),
            remote_tag: "trunk1".to_owned(),
        },
        n => panic!("{n} dialogs"),
    };
    let our_bye = ua.ep.bye(ua.now, &dialog).unwrap();
    let bye = ua.requests().remove(0);
    assert_eq!(bye.method.as_str(), "BYE");
    // Theirs crosses ours.
    ua.send(req("BYE", 2, "theirbye", Some(&tag), "", ""));
    assert_eq!(final_response(&mut ua.responses(), 200).status, 200);
    assert!(ua.take_events().is_empty(), "the dialog was already ended by us");
    // Their answer to ours (481: they had ended it) is only informative.
    let r = Response::for_request(&bye, 481, None);
    ua.ep.handle_datagram(ua.now, flow(), r.to_bytes());
    ua.drain();
    assert!(
        matches!(ua.take_events().as_slice(), [UaEvent::Response { txn, .. }] if *txn == our_bye)
    );
    // Once our BYE is over, a late BYE is 481 like any unknown dialog.
    ua.run_until(Duration::from_secs(40));
    ua.send(req("BYE", 3, "latebye", Some(&tag), "", ""));
    assert_eq!(ua.responses().last().map(|r| r.status), Some(481));
    assert_eq!(ua.ep.dialog_count(), 0);
}

#[test]
fn our_bye_after_theirs_is_not_sent_and_theirs_is_answered_once() {
    let mut ua = Ua::new();
    let tag = to_tag(&ua.established(""));
    ua.send(req("BYE", 2, "theirbye", Some(&tag), "", ""));
    final_response(&mut ua.responses(), 200);
    let dialog = match ua.take_events().as_slice() {
        [UaEvent::Bye { dialog }] => dialog.clone(),
        other => panic!("{other:?}"),
    };
    // The call logic hangs up too (it had not seen the BYE yet): nothing to send.
    assert_eq!(ua.ep.bye(ua.now, &dialog), None);
    assert!(ua.requests().is_empty());
    // Their retransmitted BYE is absorbed by its transaction (the 200 again, no new event).
    ua.send(req("BYE", 2, "theirbye", Some(&tag), "", ""));
    assert!(ua.responses().iter().all(|r| r.status == 200));
    assert!(ua.take_events().is_empty());
}

#[test]
fn cancel_crossing_our_200_gets_200_and_the_call_goes_on() {
    let mut ua = Ua::new();
    let txn = ua.invite("", OFFER);
    ua.ep.answer(ua.now, txn, Bytes::from_static(OUR_SDP.as_bytes())).unwrap();
    let tag = to_tag(&final_response(&mut ua.responses(), 200));
    // The CANCEL was sent before our 200 arrived: same branch as the INVITE, no To tag.
    ua.send(req("CANCEL", 1, "inv1", None, "", ""));
    let responses = ua.responses();
    assert_eq!(responses.iter().map(|r| r.status).collect::<Vec<_>>(), vec![200]);
    assert_eq!(responses[0].headers.cseq().unwrap().method.as_str(), "CANCEL");
    assert!(ua.take_events().is_empty(), "no CallCancelled");
    ua.send(req("ACK", 1, "ack1", Some(&tag), "", ""));
    assert!(matches!(ua.take_events().as_slice(), [UaEvent::Confirmed { .. }]));
    assert_eq!(ua.ep.dialog_count(), 1);
}

#[test]
fn cancel_before_the_answer_still_cancels() {
    let mut ua = Ua::new();
    let txn = ua.invite("", OFFER);
    ua.send(req("CANCEL", 1, "inv1", None, "", ""));
    let statuses: Vec<u16> = ua.responses().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&200) && statuses.contains(&487), "{statuses:?}");
    assert_eq!(ua.take_events(), vec![UaEvent::CallCancelled { txn }]);
    assert_eq!(ua.ep.answer(ua.now, txn, Bytes::from_static(OUR_SDP.as_bytes())), None);
}

#[test]
fn bye_while_a_reinvite_is_unanswered_gets_it_487() {
    let mut ua = Ua::new();
    let tag = to_tag(&ua.established(""));
    ua.send(req("INVITE", 2, "reinv", Some(&tag), "", HOLD));
    let (txn, _) = in_dialog(&mut ua);
    ua.send(req("BYE", 3, "bye", Some(&tag), "", ""));
    let mut statuses: Vec<(u16, String)> = ua
        .responses()
        .iter()
        .map(|r| (r.status, r.headers.cseq().unwrap().method.as_str().to_owned()))
        .filter(|(s, _)| *s >= 200)
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec![(200, "BYE".to_owned()), (487, "INVITE".to_owned())]);
    assert!(matches!(ua.take_events().as_slice(), [UaEvent::Bye { .. }]));
    assert!(!ua.ep.accept_in_dialog(ua.now, txn, None), "nothing left to answer");
}

#[test]
fn a_2xx_to_our_invite_is_acked_every_time_but_reported_once_per_dialog() {
    let mut ua = Ua::new();
    let target = tongdai::sip::message::Uri::parse("sip:op1@127.0.0.1:5070").unwrap();
    let from = "\"111\" <sip:111@127.0.0.1:5060>";
    let body = Bytes::from_static(OUR_SDP.as_bytes());
    let txn = ua.ep.invite(ua.now, flow(), target, from, body, &[]).unwrap();
    let invite = ua.requests().remove(0);
    let ok = |tag: &str| {
        let mut r = Response::for_request(&invite, 200, Some(tag));
        r.headers.push("Contact", "<sip:op1@127.0.0.1:5070>");
        r.headers.push("Content-Type", "application/sdp");
        r.body = Bytes::from_static(OFFER.as_bytes());
        r.to_bytes()
    };
    // The answer, a network duplicate, and a retransmission after T1 (our ACK was lost).
    for at in [0, 0, 500] {
        ua.run_until(Duration::from_millis(at));
        ua.ep.handle_datagram(ua.now, flow(), ok("agent1"));
    }
    let acks = ua.requests();
    assert_eq!(acks.iter().filter(|r| r.method.as_str() == "ACK").count(), 3);
    let answers = ua.take_events();
    assert!(
        matches!(answers.as_slice(), [UaEvent::Response { txn: t, dialog: Some(_), .. }] if *t == txn),
        "{answers:?}"
    );
    // A 2xx from another fork is another dialog: ACKed and reported (the call logic BYEs it).
    ua.ep.handle_datagram(ua.now, flow(), ok("agent2"));
    assert_eq!(ua.requests().len(), 1);
    assert_eq!(ua.take_events().len(), 1);
    assert_eq!(ua.ep.dialog_count(), 2);
}
