//! Parser and framer edge cases beyond the torture corpus: limits, line ends, Content-Length rules
//! on UDP and TCP, keep-alives, builders, and the typed values the issue lists.

use bytes::Bytes;
use tongdai::sip::check::{Capabilities, Refusal, check_request, refuse_unparsable};
use tongdai::sip::message::{
    Contacts, Frame, HeaderError, HeaderName, Host, MAX_HEADERS, MAX_MESSAGE_SIZE, Message, Method,
    ParseErrorKind, Request, Response, StreamFramer, Uri, is_keep_alive, name, parse_datagram,
};

const BASE: &str = "OPTIONS sip:111@192.0.2.1 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKabc;rport\r\n\
    From: <sip:a@192.0.2.9>;tag=1\r\n\
    To: <sip:111@192.0.2.1>\r\n\
    Call-ID: c1@192.0.2.9\r\n\
    CSeq: 7 OPTIONS\r\n";

fn req(extra: &str, body: &str) -> Result<Message, tongdai::sip::message::ParseError> {
    parse_datagram(format!("{BASE}{extra}\r\n{body}").into_bytes())
}

fn request(extra: &str) -> Request {
    match req(extra, "").unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

#[test]
fn udp_content_length_rules() {
    // Missing: the rest of the datagram.
    assert_eq!(req("", "hello").unwrap().body().as_ref(), b"hello");
    // Present: trims trailing octets.
    assert_eq!(req("Content-Length: 2\r\n", "hello").unwrap().body().as_ref(), b"he");
    // Too large for the datagram, negative, non-numeric, duplicate.
    let kind = |extra| req(extra, "hello").unwrap_err().kind;
    assert_eq!(kind("Content-Length: 6\r\n"), ParseErrorKind::BodyTruncated);
    assert_eq!(kind("Content-Length: -1\r\n"), ParseErrorKind::BadContentLength);
    assert_eq!(kind("l: 1x\r\n"), ParseErrorKind::BadContentLength);
    assert_eq!(kind("l: 1\r\nContent-Length: 1\r\n"), ParseErrorKind::DuplicateContentLength);
    // Each of those still routes a 400.
    let e = req("Content-Length: -1\r\n", "").unwrap_err();
    let Refusal::Respond(rej) = refuse_unparsable(&e) else { panic!() };
    assert_eq!(rej.status, 400);
    let resp = rej.response_to(&e.request_head.unwrap().headers, Some("x"));
    assert_eq!(resp.headers.to().unwrap().tag(), Some("x"));
}

#[test]
fn limits() {
    let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(req(&many, "").unwrap_err().kind, ParseErrorKind::TooManyHeaders);
    let big = vec![b'a'; MAX_MESSAGE_SIZE + 1];
    assert_eq!(parse_datagram(big).unwrap_err().kind, ParseErrorKind::TooLarge);
    let mut f = StreamFramer::new();
    f.push(format!("{BASE}Content-Length: {}\r\n\r\n", MAX_MESSAGE_SIZE).as_bytes());
    assert_eq!(f.pop().unwrap_err().kind, ParseErrorKind::TooLarge);
    let mut f = StreamFramer::new();
    f.push(&vec![b'a'; MAX_MESSAGE_SIZE + 1]);
    assert_eq!(f.pop().unwrap_err().kind, ParseErrorKind::TooLarge);
}

#[test]
fn tcp_requires_content_length() {
    let mut f = StreamFramer::new();
    f.push(format!("{BASE}\r\n").as_bytes());
    assert_eq!(f.pop().unwrap_err().kind, ParseErrorKind::MissingContentLength);
}

#[test]
fn tcp_bad_request_uri_keeps_the_stream() {
    let mut f = StreamFramer::new();
    let bad = BASE.replace("sip:111@192.0.2.1", "sip:111@[::1");
    f.push(format!("{bad}Content-Length: 0\r\n\r\n{BASE}Content-Length: 0\r\n\r\n").as_bytes());
    assert!(matches!(f.pop().unwrap(), Some(Frame::Invalid(_))));
    assert!(matches!(f.pop().unwrap(), Some(Frame::Message(_))));
}

#[test]
fn keep_alives() {
    assert!(is_keep_alive(b"\r\n\r\n"));
    assert!(!is_keep_alive(b""));
    assert_eq!(parse_datagram(&b"\r\n\r\n"[..]).unwrap_err().kind, ParseErrorKind::Empty);
    let mut f = StreamFramer::new();
    f.push(b"\r");
    assert_eq!(f.pop().unwrap(), None);
    f.push(b"\n\r");
    assert_eq!(f.pop().unwrap(), None);
    f.push(b"\n");
    assert_eq!(f.pop().unwrap(), Some(Frame::Ping));
}

#[test]
fn bare_lf_and_folding() {
    let lf = BASE.replace("\r\n", "\n") + "Subject: a\n  b\n\t c\n\nbody";
    let Message::Request(r) = parse_datagram(lf.into_bytes()).unwrap() else { panic!() };
    assert_eq!(r.headers.get("s").unwrap(), "a b c");
    assert_eq!(r.body.as_ref(), b"body");
    assert_eq!(r.headers.cseq().unwrap().seq, 7);
}

#[test]
fn non_utf8_values_do_not_reject() {
    let mut raw = format!("{BASE}User-Agent: caf").into_bytes();
    raw.extend_from_slice(b"\xe9 1.0\r\nX-Bin: \xff\xfe\r\n\r\n");
    let Message::Request(r) = parse_datagram(raw).unwrap() else { panic!() };
    assert_eq!(r.headers.user_agent().unwrap(), "caf\u{fffd} 1.0");
    assert_eq!(r.headers.get("x-bin").unwrap().as_ref(), b"\xff\xfe");
    assert_eq!(check_request(&r, &Capabilities::tongdai()), Ok(()));
}

#[test]
fn methods_are_case_sensitive() {
    let m = |s: &str| parse_datagram(BASE.replace("OPTIONS sip", &format!("{s} sip")) + "\r\n");
    let Message::Request(r) = m("INVITEX").unwrap() else { panic!() };
    assert_eq!(r.method, Method::Other("INVITEX".into()));
    let Message::Request(r) = m("options").unwrap() else { panic!() };
    assert_eq!(r.method, Method::Other("options".into()));
}

#[test]
fn bad_list_element_is_an_error_not_a_shorter_list() {
    let r = request("Contact: <sip:a@b>, <sip:c@d;x=\"\r\n");
    assert!(r.headers.contacts().is_err());
    let r = request("Route: <sip:a@b;lr>,,<sip:c@d>\r\n");
    assert_eq!(r.headers.route(), Err(HeaderError::EmptyListElement));
    let r = request("Supported: timer, bad tag\r\n");
    assert!(r.headers.supported().is_err());
    let r = request("Contact: <sip:a@b>;q=1.5\r\n");
    assert_eq!(r.headers.contacts(), Err(HeaderError::BadNumber));
}

#[test]
fn typed_values() {
    let r = request(
        "Contact: *\r\nExpires: 0\r\nRequire: 100rel\r\nProxy-Require: foo\r\nRSeq: 5\r\n\
         RAck: 5 7 INVITE\r\nRetry-After: 120 (draining);duration=60\r\n\
         Refer-To: <sip:113@192.0.2.1?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n\
         Replaces: abc@h;to-tag=1;from-tag=2;early-only\r\nPrivacy: id; header\r\n\
         Proxy-Authorization: Digest username=\"u\", nc=00000010, qop=auth\r\n\
         WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth,auth-int\", stale=true\r\n\
         Session-Expires: 90\r\nMin-SE: 90;x=1\r\nAllow: INVITE, INVITEX\r\nAccept:\r\n",
    );
    let h = &r.headers;
    assert_eq!(h.contacts().unwrap(), Contacts::Wildcard);
    assert_eq!(h.expires().unwrap(), Some(0));
    assert_eq!(h.require().unwrap(), ["100rel"]);
    assert_eq!(h.proxy_require().unwrap(), ["foo"]);
    assert_eq!(h.rseq().unwrap(), Some(5));
    let rack = h.rack().unwrap().unwrap();
    assert_eq!((rack.rseq, rack.cseq, rack.method), (5, 7, Method::Invite));
    let ra = h.retry_after().unwrap().unwrap();
    assert_eq!((ra.seconds, ra.comment.as_deref(), ra.duration), (120, Some("draining"), Some(60)));
    let refer = h.refer_to().unwrap().unwrap();
    assert_eq!(refer.uri.headers()[0].0, "Replaces");
    let rep = h.replaces().unwrap().unwrap();
    assert_eq!((rep.call_id.as_str(), rep.to_tag.as_str(), rep.early_only), ("abc@h", "1", true));
    assert_eq!(h.privacy().unwrap(), ["id", "header"]);
    assert_eq!(h.proxy_authorization().unwrap()[0].nc(), Some(16));
    let ch = &h.www_authenticate().unwrap()[0];
    assert_eq!((ch.qop_options(), ch.stale()), (vec!["auth", "auth-int"], true));
    assert_eq!(h.session_expires().unwrap().unwrap().refresher, None);
    assert_eq!(h.min_se().unwrap(), Some(90));
    assert_eq!(h.allow().unwrap(), [Method::Invite, Method::Other("INVITEX".into())]);
    assert_eq!(h.accept().unwrap(), Some(vec![]));
    let via = h.top_via().unwrap();
    assert_eq!((via.rport(), via.port), (Some(None), Some(5060)));
    assert_eq!(h.from().unwrap().uri.host(), Some(&Host::Ipv4("192.0.2.9".parse().unwrap())));
    // Wildcard Contact must stand alone.
    let r = request("Contact: *\r\nContact: <sip:a@b>\r\n");
    assert!(r.headers.contacts().is_err());
}

#[test]
fn builders() {
    let mut r = Request::new(Method::Invite, Uri::parse("sip:111@192.0.2.1").unwrap());
    r.headers.push(name::VIA, "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1");
    r.headers.push(name::VIA, "SIP/2.0/UDP 192.0.2.8;branch=z9hG4bK0");
    r.headers.push(name::FROM, "<sip:a@b>;tag=f");
    r.headers.push(name::TO, "<sip:111@192.0.2.1>;tag=already");
    r.headers.push(name::CALL_ID, "x");
    r.headers.push(name::CSEQ, "1 INVITE");
    r.headers.push(HeaderName::new("Subject"), "not copied");
    r.body = Bytes::from_static(b"v=0\r\n");
    let resp = Response::for_request(&r, 486, Some("new"));
    assert_eq!(resp.reason, "Busy Here");
    assert_eq!(resp.headers.to().unwrap().tag(), Some("already"));
    assert_eq!(resp.headers.count("Via"), 2);
    assert_eq!(resp.headers.get("Subject"), None);
    let printed = resp.to_bytes();
    assert!(printed.starts_with(b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 192.0.2.9;"));
    assert!(printed.ends_with(b"Content-Length: 0\r\n\r\n"));
    let Message::Request(back) = parse_datagram(r.to_bytes()).unwrap() else { panic!() };
    assert_eq!(back.body, r.body);
    assert_eq!(back.headers.content_length().unwrap(), Some(5));
}

#[test]
fn ack_is_checked_but_never_answered() {
    let ack = |extra: &str| {
        let raw = BASE.replace("OPTIONS sip", "ACK sip").replace("7 OPTIONS", "7 ACK");
        match parse_datagram(format!("{raw}{extra}\r\n").into_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    };
    let caps = Capabilities::tongdai();
    assert_eq!(check_request(&ack(""), &caps), Ok(()));
    // An ACK cannot be refused for a Require tag (RFC 3261 §8.2.2.3).
    assert_eq!(check_request(&ack("Require: foo\r\n"), &caps), Ok(()));
    assert_eq!(
        check_request(&ack("Max-Forwards: x\r\n"), &caps),
        Err(Refusal::Drop(tongdai::sip::check::DropReason::BadAck))
    );
}
