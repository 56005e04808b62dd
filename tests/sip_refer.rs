//! REFER (RFC 3515) and Replaces (RFC 3891) on literal messages: Refer-To as softphones write it
//! (Linphone/belle-sip, Zoiper, MicroSIP/PJSIP, baresip old and new, Sipdroid, an SBC's lower-case
//! escapes), the RFC examples, an INVITE's Replaces, `Refer-Sub: false` (RFC 4488), the NOTIFY
//! progress requests built in a dialog, and arbitrary input that must never panic.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use tongdai::sip::dialog::Dialog;
use tongdai::sip::message::{Message, Method, Request, Uri, parse_datagram};
use tongdai::sip::refer::{
    Refer, ReferError, ReferNotify, ReferProgress, ReferTo, SIPFRAG, invite_replaces,
};
use tongdai::sip::transport::{Flow, Transport};

/// A REFER in the agent's dialog with `extra` header lines.
fn refer(extra: &str) -> Request {
    let text = format!(
        "REFER sip:tongdai@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKrefer1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:op1@127.0.0.1>;tag=agent-tag\r\n\
         To: <sip:111@127.0.0.1>;tag=our-tag\r\n\
         Call-ID: agent-leg-1@127.0.0.1\r\n\
         CSeq: 3 REFER\r\n\
         Contact: <sip:op1@127.0.0.1:5072>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(text.into_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("test REFER does not parse: {other:?}"),
    }
}

fn parsed(extra: &str) -> Refer {
    Refer::parse(&refer(extra)).unwrap_or_else(|e| panic!("{e}: {extra}"))
}

#[test]
fn blind_transfer_forms_from_softphones() {
    // Linphone (belle-sip): name-addr with a display name and Referred-By.
    let r = parsed(
        "Refer-To: \"Công an 113\" <sip:113@192.0.2.30>\r\n\
         Referred-By: <sip:op1@127.0.0.1>\r\n",
    );
    assert_eq!(r.refer_to.display_name.as_deref(), Some("Công an 113"));
    assert_eq!(r.refer_to.target.as_str(), "sip:113@192.0.2.30");
    assert_eq!(r.refer_to.target.user(), Some("113"));
    assert_eq!(r.refer_to.replaces, None);
    assert_eq!(r.referred_by.unwrap().uri.as_str(), "sip:op1@127.0.0.1");
    assert!(r.subscribe);
    assert_eq!(r.cseq, 3);

    // Zoiper: the compact name `r`, a short code the agent dialled, a transport parameter.
    let r = parsed("r: <sip:*31@127.0.0.1;transport=UDP>\r\n");
    assert_eq!(r.refer_to.target.user(), Some("*31"));
    assert_eq!(r.refer_to.target.param("transport"), Some(Some("UDP")));
    assert_eq!(r.referred_by, None);

    // Older baresip: a bare addr-spec, `Referred-by` in another case.
    let r = parsed("Refer-To: sip:7528@172.21.26.15\r\nReferred-by: <sip:4017@172.21.26.15>\r\n");
    assert_eq!(r.refer_to.target.as_str(), "sip:7528@172.21.26.15");
    assert!(r.referred_by.is_some());

    // Sipdroid 1.4 wrote no domain at all (`<sip:2002>`: 2002 is not a host name): refused with
    // 400, not guessed. A tel: URI from a PBX softphone; Janus' Referred-By with `cid`.
    let sipdroid = Refer::parse(&refer("Refer-To: <sip:2002>\r\n")).unwrap_err();
    assert!(matches!(sipdroid, ReferError::ReferTo(_)), "{sipdroid:?}");
    assert_eq!(sipdroid.status(), 400);
    let tel = parsed("Refer-To: <tel:+84-251-3822-111>\r\n");
    assert_eq!(tel.refer_to.target.tel_number(), Some("+84-251-3822-111"));
    let r = parsed(
        "Refer-To: <sip:8557@10.4.20.72:5060>\r\n\
         Referred-By: <sip:8556@10.4.3.113:6016>;cid=\"LkqbpRisoYluZlAJuzXx8ZJ\"\r\n",
    );
    assert_eq!(r.referred_by.unwrap().param("cid"), Some(Some("\"LkqbpRisoYluZlAJuzXx8ZJ\"")));
}

#[test]
fn attended_transfer_embeds_replaces_escaped() {
    // baresip ≥ 3.22 / MicroSIP (PJSIP): upper-case escapes, Call-ID with `@` escaped or not.
    let r = parsed(
        "Refer-To: <sip:1006@sbc01-eu.test;transport=tls?Replaces=be283d03c65b8639%3Bto-tag%3D\
         694f433e9754a5b4%3Bfrom-tag%3Dedc2a0bb064179d5>\r\n\
         Referred-By: <sip:op1@127.0.0.1>\r\n",
    );
    assert_eq!(r.refer_to.target.as_str(), "sip:1006@sbc01-eu.test;transport=tls");
    let rep = r.refer_to.replaces.unwrap();
    assert_eq!(rep.call_id, "be283d03c65b8639");
    assert_eq!(rep.to_tag, "694f433e9754a5b4");
    assert_eq!(rep.from_tag, "edc2a0bb064179d5");
    assert!(!rep.early_only);

    // An SBC's lower-case escapes, `from-tag` before `to-tag`, `@` escaped (RFC 3891 §7.1 style).
    let r = parsed(
        "Refer-To: <sips:a8342043f@atlanta.example.com?Replaces=12345601%40atlanta.example.com\
         %3bfrom-tag%3d314159%3bto-tag%3d1234567>\r\n",
    );
    let rep = r.refer_to.replaces.unwrap();
    assert_eq!(rep.call_id, "12345601@atlanta.example.com");
    assert_eq!((rep.to_tag.as_str(), rep.from_tag.as_str()), ("1234567", "314159"));
    assert_eq!(r.refer_to.target.as_str(), "sips:a8342043f@atlanta.example.com");

    // Linphone writes the escapes for `;` and `=` but not `@`, and may add early-only; other URI
    // headers are kept for the referred INVITE.
    let r = parsed(
        "Refer-To: <sip:bob@192.0.2.4?Replaces=abc@192.0.2.1%3Bto-tag%3Dx%3Bfrom-tag%3Dy\
         %3Bearly-only&Accept-Contact=%2A%3Bvideo>\r\n",
    );
    let rep = r.refer_to.replaces.clone().unwrap();
    assert_eq!(rep.call_id, "abc@192.0.2.1");
    assert!(rep.early_only);
    assert_eq!(r.refer_to.headers, vec![("Accept-Contact".to_string(), "*;video".to_string())]);

    // Lenient: the brackets left out of an addr-spec carrying headers.
    let r = parsed("Refer-To: sip:b@h?Replaces=c%3Bto-tag%3D1%3Bfrom-tag%3D2\r\n");
    assert_eq!(r.refer_to.replaces.unwrap().from_tag, "2");
}

#[test]
fn rfc_3515_and_3891_examples() {
    // RFC 3515 §2.1.
    for value in [
        "sip:alice@atlanta.example.com",
        "<sip:bob@biloxi.example.net?Accept-Contact=sip:bobsdesk.biloxi.example.net&Call-ID=55432%40alicepc.atlanta.example.com>",
        "<sip:dave@denver.example.org?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>",
    ] {
        ReferTo::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
    }
    // The RFC prints that second example with its last `=` escaped (`Call-ID%3D…`), which leaves a
    // URI header without a value: the URI parser refuses it, so the REFER gets 400.
    let erratum = "<sip:bob@biloxi.example.net?Accept-Contact=sip:bobsdesk.biloxi.example.net\
                   &Call-ID%3D55432%40alicepc.atlanta.example.com>";
    assert!(matches!(ReferTo::parse(erratum), Err(ReferError::ReferTo(_))));
    let bob = ReferTo::parse(
        "<sip:bob@biloxi.example.net?Accept-Contact=sip:bobsdesk.biloxi.example.net&Call-ID=55432%40alicepc.atlanta.example.com>",
    )
    .unwrap();
    assert_eq!(bob.target.as_str(), "sip:bob@biloxi.example.net");
    assert_eq!(
        bob.headers[1],
        ("Call-ID".to_string(), "55432@alicepc.atlanta.example.com".to_string())
    );
    let dave = ReferTo::parse(
        "<sip:dave@denver.example.org?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>",
    )
    .unwrap();
    let rep = dave.replaces.unwrap();
    assert_eq!(rep.call_id, "12345@192.168.118.3");
    assert_eq!(rep.from_tag, "5FFE-3994");
    // A scheme we cannot call (RFC 3515 §2.1's own example) is refused with 416.
    let e = ReferTo::parse("<http://www.ietf.org>").unwrap_err();
    assert_eq!(e, ReferError::UnsupportedScheme);
    assert_eq!(e.status(), 416);

    // RFC 3891 §6.1 on an INVITE.
    let mut invite = refer("");
    invite.method = Method::Invite;
    invite
        .headers
        .push("Replaces", "98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only");
    let rep = invite_replaces(&invite).unwrap().unwrap();
    assert_eq!(rep.call_id, "98732@sip.example.com");
    assert_eq!((rep.to_tag.as_str(), rep.from_tag.as_str()), ("ff87ff", "r33th4x0r"));
    assert!(rep.early_only);
    // No Replaces; two Replaces (§3: 400); a tag missing.
    let mut plain = refer("");
    plain.method = Method::Invite;
    assert_eq!(invite_replaces(&plain), Ok(None));
    invite.headers.push("Replaces", "x;to-tag=1;from-tag=2");
    assert_eq!(invite_replaces(&invite), Err(ReferError::Duplicate("Replaces")));
    let mut bad = plain.clone();
    bad.headers.push("Replaces", "98732@sip.example.com;to-tag=ff87ff");
    assert!(matches!(invite_replaces(&bad), Err(ReferError::Replaces(_))));
}

#[test]
fn refer_sub_false_is_honoured_in_the_202() {
    let request = refer("Refer-To: <sip:115@127.0.0.1>\r\nRefer-Sub: false\r\n");
    let r = Refer::parse(&request).unwrap();
    assert!(!r.subscribe);
    let ok = r.accepted(&request, None);
    assert_eq!(ok.status, 202);
    assert_eq!(ok.reason, "Accepted");
    assert_eq!(ok.headers.get("refer-sub").map(|v| &v[..]), Some(&b"false"[..]));
    assert_eq!(ok.headers.call_id().unwrap(), "agent-leg-1@127.0.0.1");

    let request = refer("Refer-To: <sip:115@127.0.0.1>\r\nRefer-Sub: TRUE;x=1\r\n");
    let r = Refer::parse(&request).unwrap();
    assert!(r.subscribe);
    assert_eq!(r.accepted(&request, None).headers.get("Refer-Sub"), None);
}

/// Whether an error is the expected one.
type Is = fn(&ReferError) -> bool;

#[test]
fn malformed_refers_are_typed_errors() {
    let cases: [(&str, Is); 9] = [
        ("", |e| *e == ReferError::MissingReferTo),
        ("Refer-To: <sip:a@b>\r\nRefer-To: <sip:c@d>\r\n", |e| {
            *e == ReferError::Duplicate("Refer-To")
        }),
        ("Refer-To: <sip:a@b\r\n", |e| matches!(e, ReferError::ReferTo(_))),
        ("Refer-To: \"x <sip:a@b>\r\n", |e| matches!(e, ReferError::ReferTo(_))),
        ("Refer-To: not a uri\r\n", |e| matches!(e, ReferError::ReferTo(_))),
        ("Refer-To: <sip:b@h?Replaces=%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n", |e| {
            matches!(e, ReferError::Replaces(_))
        }),
        ("Refer-To: <sip:b@h?Replaces=c%FF%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n", |e| {
            matches!(e, ReferError::Replaces(_))
        }),
        ("Refer-To: <sip:a@b>\r\nReferred-By: <sip:x\r\n", |e| {
            matches!(e, ReferError::ReferredBy(_))
        }),
        ("Refer-To: <sip:a@b>\r\nRefer-Sub: maybe\r\n", |e| *e == ReferError::ReferSub),
    ];
    for (extra, is) in cases {
        let e = Refer::parse(&refer(extra)).expect_err(extra);
        assert!(is(&e), "{extra:?} gave {e:?}");
        assert_eq!(e.status(), 400, "{extra:?}");
    }
    let mut not_refer = refer("Refer-To: <sip:a@b>\r\n");
    not_refer.method = Method::Info;
    assert_eq!(Refer::parse(&not_refer), Err(ReferError::NotRefer));
}

fn agent_dialog() -> Dialog {
    let invite = refer("");
    let flow = Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse::<SocketAddr>().unwrap(),
        remote: "127.0.0.1:5072".parse::<SocketAddr>().unwrap(),
    };
    Dialog::uas(&invite, "our-tag", flow).unwrap()
}

#[test]
fn notify_progress_in_the_dialog_the_refer_came_in() {
    let mut dialog = agent_dialog();
    let contact = Uri::parse("sip:tongdai@127.0.0.1:5060").unwrap();
    let mut seqs = Vec::new();
    let steps = [
        (ReferProgress::TRYING, "SIP/2.0 100 Trying", "active;expires=60"),
        (ReferProgress::RINGING, "SIP/2.0 180 Ringing", "active;expires=60"),
        (ReferProgress::OK, "SIP/2.0 200 OK", "terminated;reason=noresource"),
    ];
    for (progress, body, state) in steps {
        let n = ReferNotify::new(progress, Some(3), Duration::from_secs(60)).request(
            &mut dialog,
            "127.0.0.1:5060",
            "z9hG4bKnotify",
            &contact,
        );
        assert_eq!(n.method, Method::Notify);
        assert_eq!(n.uri.as_str(), "sip:op1@127.0.0.1:5072", "to the agent's Contact");
        let h = &n.headers;
        assert_eq!(h.get("o").map(|v| &v[..]), Some(&b"refer;id=3"[..]));
        assert_eq!(h.get("subscription-state").map(|v| &v[..]), Some(state.as_bytes()));
        assert_eq!(h.content_type().unwrap().unwrap().essence(), "message/sipfrag");
        assert_eq!(h.get("Content-Type").map(|v| &v[..]), Some(SIPFRAG.as_bytes()));
        assert_eq!(&n.body[..], body.as_bytes());
        assert_eq!(h.from().unwrap().tag(), Some("our-tag"));
        assert_eq!(h.to().unwrap().tag(), Some("agent-tag"));
        assert_eq!(h.call_id().unwrap(), "agent-leg-1@127.0.0.1");
        assert!(h.contacts().is_ok());
        seqs.push(h.cseq().unwrap().seq);
        // What we send parses back (the printer writes the Content-Length).
        let again = parse_datagram(n.to_bytes().to_vec()).unwrap();
        assert_eq!(again.body(), &n.body);
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "CSeq grows: {seqs:?}");

    // The failure NOTIFY, without an id (first REFER of the dialog).
    let failed = ReferNotify::new(ReferProgress::FAILED, None, Duration::from_secs(60));
    assert_eq!(
        failed.headers(),
        [
            ("Event", "refer".to_string()),
            ("Subscription-State", "terminated;reason=noresource".to_string()),
            ("Content-Type", "message/sipfrag;version=2.0".to_string()),
        ]
    );
    assert_eq!(failed.event, "refer");
    assert_eq!(failed.subscription_state, "terminated;reason=noresource");
    assert_eq!(&failed.body[..], b"SIP/2.0 503 Service Unavailable");
    let busy = ReferProgress::status(486).unwrap();
    assert_eq!(busy.sipfrag(), "SIP/2.0 486 Busy Here");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_refer_to_never_panics(value in "\\PC{0,80}") {
        let _ = ReferTo::parse(&value);
    }

    #[test]
    fn arbitrary_replaces_in_refer_to_never_panics(
        user in "[a-z0-9*]{1,8}",
        call_id in "[ -~]{0,30}",
        tail in "(%[0-9A-Fa-f]{0,2}|[;=a-z0-9@-]){0,20}",
    ) {
        let escaped: String = call_id
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let value = format!("<sip:{user}@127.0.0.1?Replaces={escaped}{tail}>");
        if let Ok(r) = ReferTo::parse(&value) {
            prop_assert_eq!(r.target.as_str(), format!("sip:{user}@127.0.0.1"));
        }
    }

    #[test]
    fn arbitrary_bytes_as_a_refer_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut text = b"REFER sip:a@b SIP/2.0\r\nCSeq: 1 REFER\r\nRefer-To: ".to_vec();
        text.extend_from_slice(&bytes);
        text.extend_from_slice(b"\r\nReplaces: ");
        text.extend_from_slice(&bytes);
        text.extend_from_slice(b"\r\n\r\n");
        if let Ok(Message::Request(r)) = parse_datagram(text) {
            let _ = Refer::parse(&r);
            let _ = invite_replaces(&r);
        }
    }
}
