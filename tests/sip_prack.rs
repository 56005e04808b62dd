//! Reliable provisional responses (RFC 3262) on the sans-IO endpoint, with literal SIP and virtual
//! time. As UAC (our INVITEs to agents): `Supported: 100rel`, one PRACK per reliable provisional
//! in its early dialog, retransmissions and gaps discarded, the PRACK's answer absorbed, and the
//! ACK of the 2xx on the INVITE's CSeq while later requests go on from the PRACKs' CSeq, and an
//! SDP answer in a reliable provisional reported with a 2xx that carries none. As UAS:
//! we never send a provisional reliably, and every PRACK gets 481 without breaking the call.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::ua::{Ua, flow, trunk_request};
use tongdai::sip::endpoint::UaEvent;
use tongdai::sip::message::{Request, Response, Uri};
use tongdai::sip::transaction::TxnId;

const OFFER: &str = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const OUR_SDP: &str = "v=0\r\no=tongdai 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                       t=0 0\r\nm=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// The reliable-provisional tests' ways into the endpoint.
trait PrackUa {
    fn new() -> Self;
    fn invite_agent(&mut self) -> (TxnId, Request);
    fn incoming(&mut self, extra: &str) -> TxnId;
}

impl PrackUa for Ua {
    fn new() -> Ua {
        Ua::with_salt(7)
    }

    /// Sends our INVITE to an agent; returns its transaction and the INVITE as sent.
    fn invite_agent(&mut self) -> (TxnId, Request) {
        let target = Uri::parse("sip:op1@127.0.0.1:5070").unwrap();
        let from = "\"111\" <sip:111@127.0.0.1:5060>";
        let body = Bytes::from_static(OUR_SDP.as_bytes());
        let txn = self.ep.invite(self.now, flow(), target, from, body, &[]).unwrap();
        let mut sent = self.requests();
        assert_eq!(sent.len(), 1);
        (txn, sent.remove(0))
    }

    /// Receives an INVITE from the trunk with `extra` header lines; returns its transaction.
    fn incoming(&mut self, extra: &str) -> TxnId {
        self.send(trunk_request("INVITE", 1, "inv1", None, extra, OFFER));
        match self.take_events().as_slice() {
            [UaEvent::IncomingCall { txn, .. }] => *txn,
            other => panic!("expected one IncomingCall, got {other:?}"),
        }
    }
}

/// A provisional `status` from the agent with To tag `tag`; reliable when `rseq` is given.
fn provisional(invite: &Request, status: u16, tag: &str, rseq: Option<u32>) -> Bytes {
    let mut r = Response::for_request(invite, status, Some(tag));
    r.headers.push("Contact", "<sip:op1@127.0.0.1:5071>");
    if let Some(rseq) = rseq {
        r.headers.push("Require", "100rel");
        r.headers.push("RSeq", rseq.to_string());
    }
    r.to_bytes()
}

/// The agent's 200 with SDP, To tag `tag`.
fn ok_2xx(invite: &Request, tag: &str) -> Bytes {
    let mut r = Response::for_request(invite, 200, Some(tag));
    r.headers.push("Contact", "<sip:op1@127.0.0.1:5071>");
    r.headers.push("Content-Type", "application/sdp");
    r.body = Bytes::from_static(OFFER.as_bytes());
    r.to_bytes()
}

/// A request from the trunk (see tests/sip_dialogs.rs).
fn header(headers: &tongdai::sip::message::Headers, name: &str) -> Option<String> {
    headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn cseq(r: &Request) -> (u32, String) {
    let c = r.headers.cseq().unwrap();
    (c.seq, c.method.as_str().to_owned())
}

fn to_tag_of(r: &Request) -> String {
    r.headers.to().unwrap().tag().unwrap().to_owned()
}

/// The statuses of the `Response` events, in order.
fn reported(events: &[UaEvent]) -> Vec<u16> {
    events
        .iter()
        .map(|e| match e {
            UaEvent::Response { response, .. } => response.status,
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

// ---- UAC: our INVITEs to agents ---------------------------------------------------------------

#[test]
fn our_invite_supports_100rel() {
    let mut ua = Ua::new();
    let (_, invite) = ua.invite_agent();
    let supported = invite.headers.supported().unwrap();
    assert!(supported.iter().any(|t| t == "100rel"), "{supported:?}");
    assert!(invite.headers.require().unwrap_or_default().is_empty());
}

#[test]
fn a_reliable_provisional_is_pracked_once_in_its_early_dialog_and_reported_once() {
    let mut ua = Ua::new();
    let (txn, invite) = ua.invite_agent();
    ua.send(provisional(&invite, 180, "a1", Some(7)));
    let pracks = ua.requests();
    assert_eq!(pracks.len(), 1, "{pracks:?}");
    let prack = &pracks[0];
    assert_eq!(prack.method.as_str(), "PRACK");
    // In the early dialog: the 180's Contact as target, its To tag, the INVITE's Call-ID and From.
    assert_eq!(prack.uri.as_str(), "sip:op1@127.0.0.1:5071");
    assert_eq!(to_tag_of(prack), "a1");
    assert_eq!(prack.headers.call_id().unwrap(), invite.headers.call_id().unwrap());
    assert_eq!(header(&prack.headers, "From"), header(&invite.headers, "From"));
    assert_eq!(cseq(prack), (2, "PRACK".to_owned()));
    assert_eq!(header(&prack.headers, "RAck").as_deref(), Some("7 1 INVITE"));
    // A new transaction: its own branch.
    let branch = |r: &Request| r.headers.top_via().unwrap().branch().map(str::to_owned);
    assert_ne!(branch(prack), branch(&invite));
    let events = ua.take_events();
    assert!(
        matches!(events.as_slice(), [UaEvent::Response { txn: t, response, .. }]
            if *t == txn && response.status == 180),
        "{events:?}"
    );
    // The agent retransmits the 180 (our PRACK crossed it): no second PRACK, no second report.
    ua.send(provisional(&invite, 180, "a1", Some(7)));
    ua.send(provisional(&invite, 180, "a1", Some(7)));
    assert!(ua.requests().is_empty());
    assert!(ua.take_events().is_empty());
}

#[test]
fn the_next_rseq_is_pracked_and_a_gap_is_discarded() {
    let mut ua = Ua::new();
    let (_, invite) = ua.invite_agent();
    ua.send(provisional(&invite, 180, "a1", Some(1)));
    ua.requests();
    // RSeq 3 skips 2: discarded (RFC 3262 §4), neither PRACKed nor reported.
    ua.send(provisional(&invite, 183, "a1", Some(3)));
    assert!(ua.requests().is_empty());
    assert_eq!(reported(&ua.take_events()), vec![180]);
    // RSeq 2 is the next one: PRACKed with the dialog's next CSeq.
    ua.send(provisional(&invite, 183, "a1", Some(2)));
    let pracks = ua.requests();
    assert_eq!(pracks.len(), 1);
    assert_eq!(cseq(&pracks[0]), (3, "PRACK".to_owned()));
    assert_eq!(header(&pracks[0].headers, "RAck").as_deref(), Some("2 1 INVITE"));
    assert_eq!(reported(&ua.take_events()), vec![183]);
    // An older one arriving late is a retransmission: discarded.
    ua.send(provisional(&invite, 180, "a1", Some(1)));
    assert!(ua.requests().is_empty());
    assert!(ua.take_events().is_empty());
}

#[test]
fn the_prack_answer_is_absorbed_and_the_ack_keeps_the_invite_cseq() {
    let mut ua = Ua::new();
    let (txn, invite) = ua.invite_agent();
    ua.send(provisional(&invite, 180, "a1", Some(1)));
    let prack = ua.requests().remove(0);
    ua.take_events();
    // 200 to the PRACK: nobody needs to hear of it.
    let prack_ok = Response::for_request(&prack, 200, None);
    ua.send(prack_ok.to_bytes());
    assert!(ua.take_events().is_empty());
    assert!(ua.requests().is_empty());
    // The 2xx to the INVITE: ACK on CSeq 1 (the INVITE's), although the PRACK took CSeq 2.
    ua.send(ok_2xx(&invite, "a1"));
    let acks = ua.requests();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method.as_str(), "ACK");
    assert_eq!(cseq(&acks[0]), (1, "ACK".to_owned()));
    let events = ua.take_events();
    let dialog = match events.as_slice() {
        [UaEvent::Response { txn: t, response, dialog: Some(d) }]
            if *t == txn && response.status == 200 =>
        {
            d.clone()
        }
        other => panic!("expected the 200 with its dialog, got {other:?}"),
    };
    // The confirmed dialog goes on from the PRACK's CSeq: our BYE takes 3.
    assert_eq!(ua.ep.dialog_count(), 1);
    ua.ep.bye(ua.now, &dialog).unwrap();
    let bye = ua.requests().remove(0);
    assert_eq!(cseq(&bye), (3, "BYE".to_owned()));
    assert_eq!(to_tag_of(&bye), "a1");
}

#[test]
fn a_prack_without_answer_reports_no_timeout_and_the_call_still_connects() {
    let mut ua = Ua::new();
    let (txn, invite) = ua.invite_agent();
    ua.send(provisional(&invite, 180, "a1", Some(1)));
    ua.requests();
    ua.take_events();
    // The agent never answers the PRACK: it is retransmitted, then gives up after 64·T1
    // silently (the INVITE keeps waiting for its own final response, here an answer at 20 s).
    ua.run_until(Duration::from_secs(20));
    let retransmitted = ua.requests();
    assert!(retransmitted.iter().all(|r| r.method.as_str() == "PRACK"));
    assert!(retransmitted.len() >= 2, "{retransmitted:?}");
    ua.send(ok_2xx(&invite, "a1"));
    let acks = ua.requests();
    assert_eq!(acks.iter().filter(|r| r.method.as_str() == "ACK").count(), 1);
    assert_eq!(reported(&ua.take_events()), vec![200]);
    ua.run_until(Duration::from_secs(40));
    let events = ua.take_events();
    assert!(!events.iter().any(|e| matches!(e, UaEvent::Timeout { .. })), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, UaEvent::Response { txn: t, .. } if *t != txn)));
}

#[test]
fn the_answer_in_a_reliable_183_is_reported_with_a_2xx_that_has_no_body() {
    let mut ua = Ua::new();
    let (_, invite) = ua.invite_agent();
    let mut early = Response::for_request(&invite, 183, Some("a1"));
    early.headers.push("Contact", "<sip:op1@127.0.0.1:5071>");
    early.headers.push("Require", "100rel");
    early.headers.push("RSeq", "1");
    early.headers.push("Content-Type", "application/sdp");
    early.body = Bytes::from_static(OFFER.as_bytes());
    ua.send(early.to_bytes());
    assert_eq!(ua.requests().len(), 1);
    ua.take_events();
    // The 200 repeats no SDP (RFC 3264: the answer was given): the call logic still gets it.
    let mut ok = Response::for_request(&invite, 200, Some("a1"));
    ok.headers.push("Contact", "<sip:op1@127.0.0.1:5071>");
    ua.send(ok.to_bytes());
    let events = ua.take_events();
    match events.as_slice() {
        [UaEvent::Response { response, dialog: Some(_), .. }] => {
            assert_eq!(response.status, 200);
            assert_eq!(response.body, Bytes::from_static(OFFER.as_bytes()));
            assert_eq!(
                header(&response.headers, "Content-Type").as_deref(),
                Some("application/sdp")
            );
        }
        other => panic!("expected the 200 with its dialog, got {other:?}"),
    }
}

#[test]
fn a_2xx_with_its_own_body_keeps_it() {
    let mut ua = Ua::new();
    let (_, invite) = ua.invite_agent();
    let mut early = Response::for_request(&invite, 183, Some("a1"));
    early.headers.push("Require", "100rel");
    early.headers.push("RSeq", "1");
    early.headers.push("Content-Type", "application/sdp");
    early.body = Bytes::from_static(OUR_SDP.as_bytes());
    ua.send(early.to_bytes());
    ua.take_events();
    ua.send(ok_2xx(&invite, "a1"));
    match ua.take_events().as_slice() {
        [UaEvent::Response { response, .. }] => {
            assert_eq!(response.body, Bytes::from_static(OFFER.as_bytes()));
        }
        other => panic!("expected the 200, got {other:?}"),
    }
}

#[test]
fn plain_provisionals_get_no_prack() {
    let mut ua = Ua::new();
    let (_, invite) = ua.invite_agent();
    ua.send(provisional(&invite, 180, "a1", None));
    // RSeq without Require: 100rel is not reliable either.
    let mut r = Response::for_request(&invite, 183, Some("a1"));
    r.headers.push("RSeq", "5");
    ua.send(r.to_bytes());
    assert!(ua.requests().is_empty());
    assert_eq!(reported(&ua.take_events()), vec![180, 183]);
}

#[test]
fn forked_reliable_provisionals_each_get_a_prack_in_their_own_dialog() {
    let mut ua = Ua::new();
    let (_, invite) = ua.invite_agent();
    ua.send(provisional(&invite, 180, "a1", Some(1)));
    ua.send(provisional(&invite, 180, "a2", Some(1)));
    let pracks = ua.requests();
    assert_eq!(pracks.len(), 2);
    assert_eq!(to_tag_of(&pracks[0]), "a1");
    assert_eq!(to_tag_of(&pracks[1]), "a2");
    // Each early dialog has its own CSeq space, both from the INVITE's.
    assert!(pracks.iter().all(|p| cseq(p) == (2, "PRACK".to_owned())));
    assert_eq!(reported(&ua.take_events()), vec![180, 180]);
}

#[test]
fn a_reliable_provisional_after_the_2xx_of_its_dialog_is_discarded() {
    let mut ua = Ua::new();
    let (_, invite) = ua.invite_agent();
    ua.send(ok_2xx(&invite, "a1"));
    ua.requests();
    ua.take_events();
    ua.send(provisional(&invite, 180, "a1", Some(1)));
    assert!(ua.requests().is_empty());
    assert!(ua.take_events().is_empty());
}

#[test]
fn a_failed_invite_leaves_no_early_dialog() {
    let mut ua = Ua::new();
    let (txn, invite) = ua.invite_agent();
    ua.send(provisional(&invite, 180, "a1", Some(1)));
    ua.requests();
    ua.take_events();
    let busy = Response::for_request(&invite, 486, Some("a1"));
    ua.send(busy.to_bytes());
    let events = ua.take_events();
    assert!(
        matches!(events.as_slice(), [UaEvent::Response { txn: t, response, dialog: None }]
            if *t == txn && response.status == 486),
        "{events:?}"
    );
    assert_eq!(ua.ep.dialog_count(), 0);
}

// ---- UAS: INVITEs from the trunk ----------------------------------------------------------------

#[test]
fn with_supported_100rel_our_180_is_plain() {
    let mut ua = Ua::new();
    let txn = ua.incoming("Supported: 100rel\r\n");
    ua.responses();
    ua.ep.provisional(ua.now, txn, 180, None);
    let sent = ua.responses();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, 180);
    assert!(sent[0].headers.get("RSeq").is_none());
    assert!(sent[0].headers.require().unwrap_or_default().is_empty());
}

#[test]
fn with_require_100rel_we_send_no_18x_and_answer_200() {
    let mut ua = Ua::new();
    let txn = ua.incoming("Supported: 100rel\r\nRequire: 100rel\r\n");
    let trying = ua.responses();
    assert_eq!(trying.iter().map(|r| r.status).collect::<Vec<_>>(), vec![100]);
    // §3 forbids an unreliable 18x here, and we send none reliably: nothing goes out.
    ua.ep.provisional(ua.now, txn, 180, None);
    ua.ep.provisional(ua.now, txn, 183, Some(Bytes::from_static(OUR_SDP.as_bytes())));
    assert!(ua.responses().is_empty());
    ua.ep.answer(ua.now, txn, Bytes::from_static(OUR_SDP.as_bytes())).unwrap();
    let ok = ua.responses();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].status, 200);
}

#[test]
fn a_prack_outside_any_dialog_gets_481() {
    let mut ua = Ua::new();
    ua.send(trunk_request("PRACK", 2, "pr1", Some("nosuch"), "RAck: 1 1 INVITE\r\n", ""));
    let sent = ua.responses();
    assert_eq!(sent.iter().map(|r| r.status).collect::<Vec<_>>(), vec![481]);
    assert!(ua.take_events().is_empty());
}

#[test]
fn a_prack_on_our_early_and_confirmed_dialog_gets_481_and_the_call_goes_on() {
    let mut ua = Ua::new();
    let txn = ua.incoming("Supported: 100rel\r\n");
    ua.responses();
    ua.ep.provisional(ua.now, txn, 180, None);
    let ringing = ua.responses().remove(0);
    let tag = ringing.headers.to().unwrap().tag().unwrap().to_owned();
    // A PRACK for our (unreliable) 180: it matches nothing we sent reliably.
    ua.send(trunk_request("PRACK", 2, "pr1", Some(&tag), "RAck: 1 1 INVITE\r\n", ""));
    assert_eq!(ua.responses().iter().map(|r| r.status).collect::<Vec<_>>(), vec![481]);
    assert!(ua.take_events().is_empty());
    // The INVITE is still ours to answer.
    let dialog = ua.ep.answer(ua.now, txn, Bytes::from_static(OUR_SDP.as_bytes())).unwrap();
    assert_eq!(ua.responses().iter().map(|r| r.status).collect::<Vec<_>>(), vec![200]);
    ua.send(trunk_request("ACK", 1, "ack1", Some(&tag), "", ""));
    assert!(matches!(ua.take_events().as_slice(), [UaEvent::Confirmed { .. }]));
    // A PRACK in the confirmed dialog: 481, and the dialog stays.
    ua.send(trunk_request("PRACK", 3, "pr2", Some(&tag), "RAck: 1 1 INVITE\r\n", ""));
    assert_eq!(ua.responses().iter().map(|r| r.status).collect::<Vec<_>>(), vec![481]);
    assert!(ua.take_events().is_empty());
    assert_eq!(ua.ep.dialog_count(), 1);
    // The caller hangs up normally.
    ua.send(trunk_request("BYE", 4, "bye1", Some(&tag), "", ""));
    assert_eq!(ua.responses().iter().map(|r| r.status).collect::<Vec<_>>(), vec![200]);
    let events = ua.take_events();
    assert!(
        matches!(events.as_slice(), [UaEvent::Bye { dialog: d }] if *d == dialog),
        "{events:?}"
    );
}
