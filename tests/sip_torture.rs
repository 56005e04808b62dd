//! RFC 4475 and RFC 5118 torture messages: every file is classified exactly as the disposition
//! table in `tests/data/TORTURE.md` says. The classification is what the message layer and
//! `sip::check` decide before policy (allow-list, hotline number, digest) is applied; the
//! transaction layer turns it into the response named in the table.

use std::path::Path;

use tongdai::sip::check::{
    Capabilities, DropReason, Refusal, check_request, check_response, refuse_unparsable,
};
use tongdai::sip::message::{
    Contacts, Host, Message, Method, ParseErrorKind, Scheme, name, parse_datagram,
};

/// What the UAS does with one datagram.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A valid request, handed on to the transaction user.
    Accept,
    /// A request answered with this status.
    Respond(u16),
    /// Dropped silently, with the reason counted.
    Drop(DropReason),
    /// A well-formed response: handed to transaction matching, which finds no transaction here,
    /// so it is dropped and counted there.
    StrayResponse,
}

fn read(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn refusal(r: Refusal) -> Outcome {
    match r {
        Refusal::Respond(rej) => Outcome::Respond(rej.status),
        Refusal::Drop(d) => Outcome::Drop(d),
    }
}

fn classify_bytes(bytes: Vec<u8>) -> Outcome {
    match parse_datagram(bytes) {
        Ok(Message::Request(req)) => match check_request(&req, &Capabilities::tongdai()) {
            Ok(()) => Outcome::Accept,
            Err(r) => refusal(r),
        },
        Ok(Message::Response(resp)) => match check_response(&resp) {
            Ok(()) => Outcome::StrayResponse,
            Err(d) => Outcome::Drop(d),
        },
        Err(e) => refusal(refuse_unparsable(&e)),
    }
}

fn classify(file: &str) -> Outcome {
    classify_bytes(read(file))
}

fn request(file: &str) -> tongdai::sip::message::Request {
    match parse_datagram(read(file)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{file} is a response"),
    }
}

fn rejection(file: &str) -> tongdai::sip::check::Rejection {
    let req = request(file);
    match check_request(&req, &Capabilities::tongdai()) {
        Err(Refusal::Respond(r)) => r,
        other => panic!("{file}: {other:?}"),
    }
}

/// The metric label of the refusal, to show a 400 is given for the reason the RFC names.
fn cause(file: &str) -> &'static str {
    let r = match parse_datagram(read(file)) {
        Ok(Message::Request(req)) => check_request(&req, &Capabilities::tongdai()).unwrap_err(),
        Err(e) => refuse_unparsable(&e),
        Ok(Message::Response(_)) => panic!("{file} is a response"),
    };
    match r {
        Refusal::Respond(rej) => rej.cause,
        Refusal::Drop(d) => d.label(),
    }
}

fn t(f: &str) -> String {
    format!("rfc4475/{f}.dat")
}

use Outcome::*;

// --- RFC 4475 §3.1.1: valid messages -------------------------------------------------------------

#[test]
fn wsinv_parses_with_all_its_whitespace() {
    assert_eq!(classify(&t("wsinv")), Accept);
    let r = request(&t("wsinv"));
    let h = &r.headers;
    assert_eq!(r.method, Method::Invite);
    assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
    let from = h.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(h.max_forwards().unwrap(), Some(68));
    assert_eq!(h.cseq().unwrap().seq, 9);
    let vias = h.via().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].host, Host::Domain("spindle.example.com".into()));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    let Contacts::List(c) = h.contacts().unwrap() else { panic!() };
    assert_eq!(c[0].q, Some(330));
    assert_eq!(c[0].addr.display_name.as_deref(), Some("Quoted string \"\""));
    assert_eq!(c[0].addr.param("newparam"), Some(Some("newvalue")));
    assert_eq!(r.body.len(), 150);
    assert_eq!(h.get("NewFangledHeader").unwrap(), "newfangled value continued newfangled value");
    assert_eq!(h.route().unwrap()[0].uri.param("unknown-no-value"), Some(None));
}

#[test]
fn esc01_keeps_escapes() {
    assert_eq!(classify(&t("esc01")), Accept);
    let r = request(&t("esc01"));
    assert_eq!(r.uri.user(), Some("sips%3Auser%40example.com"));
    assert_eq!(r.uri.host(), Some(&Host::Domain("example.net".into())));
    assert_eq!(r.headers.to().unwrap().uri.user(), Some("%75se%72"));
    assert_eq!(r.headers.content_type().unwrap().unwrap().essence(), "application/sdp");
}

#[test]
fn escnull_does_not_truncate_the_aor() {
    assert_eq!(classify(&t("escnull")), Accept);
    let r = request(&t("escnull"));
    let to = r.headers.to().unwrap();
    assert_eq!(to.uri.user(), Some("null-%00-null"));
    assert_eq!(tongdai::sip::message::unescape("null-%00-null"), b"null-\0-null");
    let Contacts::List(c) = r.headers.contacts().unwrap() else { panic!() };
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].addr.uri.user(), Some("%00%00"));
}

#[test]
fn lwsdisp_longreq_semiuri_transports_are_valid() {
    assert_eq!(classify(&t("lwsdisp")), Accept);
    assert_eq!(
        request(&t("lwsdisp")).headers.from().unwrap().display_name.as_deref(),
        Some("caller")
    );

    assert_eq!(classify(&t("longreq")), Accept);
    let long = request(&t("longreq"));
    assert_eq!(long.headers.via().unwrap().len(), 34);
    assert!(long.headers.to().unwrap().display_name.unwrap().contains("extremeextreme"));

    assert_eq!(classify(&t("semiuri")), Accept);
    let semi = request(&t("semiuri"));
    assert_eq!(semi.uri.user(), Some("user;par=u%40example.net"));
    assert_eq!(semi.uri.host(), Some(&Host::Domain("example.com".into())));
    assert_eq!(semi.headers.accept().unwrap().unwrap().len(), 6);

    assert_eq!(classify(&t("transports")), Accept);
    let tr: Vec<String> =
        request(&t("transports")).headers.via().unwrap().into_iter().map(|v| v.transport).collect();
    assert_eq!(tr, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn intmeth_and_esc02_are_unknown_methods() {
    assert_eq!(classify(&t("intmeth")), Respond(501));
    let r = request(&t("intmeth"));
    assert_eq!(r.method, Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into()));
    assert_eq!(r.headers.cseq().unwrap().method, r.method);
    assert_eq!(r.uri.password(), Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"));
    assert_eq!(r.headers.call_id().unwrap(), "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    assert_eq!(
        r.headers.from().unwrap().display_name.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    let allow = rejection(&t("intmeth")).headers;
    assert_eq!(allow[0].0, name::ALLOW);
    assert!(allow[0].1.contains("INVITE"));

    assert_eq!(classify(&t("esc02")), Respond(501));
    let e = request(&t("esc02"));
    assert_eq!(e.method, Method::Other("RE%47IST%45R".into()));
    // `C%6Fntact` is an extension header, not a Contact.
    assert_eq!(e.headers.count("Contact"), 2);
}

#[test]
fn mpart01_message_is_not_served() {
    // MESSAGE is a method we know but do not serve: 405 with Allow (RFC 3261 §8.2.1).
    assert_eq!(classify(&t("mpart01")), Respond(405));
    let r = request(&t("mpart01"));
    assert_eq!(r.body.len(), 553);
    assert!(r.body.contains(&0));
    assert_eq!(r.headers.content_type().unwrap().unwrap().essence(), "multipart/mixed");
    assert_eq!(rejection(&t("mpart01")).headers[0].0, name::ALLOW);
}

#[test]
fn unreason_and_noreason_are_stray_responses() {
    assert_eq!(classify(&t("unreason")), StrayResponse);
    assert_eq!(classify(&t("noreason")), StrayResponse);
    let Message::Response(r) = parse_datagram(read(&t("noreason"))).unwrap() else { panic!() };
    assert_eq!((r.status, r.reason.as_str()), (100, ""));
    let Message::Response(r) = parse_datagram(read(&t("unreason"))).unwrap() else { panic!() };
    assert_eq!(r.status, 200);
    assert!(r.reason.starts_with("= 2**3 * 5**2"));
}

#[test]
fn dblreq_ignores_the_trailing_octets() {
    assert_eq!(classify(&t("dblreq")), Accept);
    let r = request(&t("dblreq"));
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
}

// --- RFC 4475 §3.1.2: invalid messages ---------------------------------------------------------

#[test]
fn badinv01_has_no_usable_via() {
    // `Via: SIP/2.0/UDP 192.0.2.15;;,;,,`: the top Via is malformed, so a 400 could not be routed.
    assert_eq!(classify(&t("badinv01")), Drop(DropReason::UnusableVia));
}

#[test]
fn syntax_errors_get_400() {
    for (f, why) in [
        ("clerr", "content_length"),
        ("scalar02", "cseq"),
        ("quotbal", "from_to"),
        ("lwsruri", "request_uri"),
        ("mismatch01", "cseq_method"),
        ("escruri", "request_uri_headers"),
        ("badaspec", "from_to"),
    ] {
        assert_eq!(classify(&t(f)), Respond(400), "{f}");
        assert_eq!(cause(&t(f)), why, "{f}");
    }
    let e = parse_datagram(read(&t("clerr"))).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::BodyTruncated);
    let e = parse_datagram(read(&t("lwsruri"))).unwrap_err();
    assert!(matches!(e.kind, ParseErrorKind::BadRequestUri(_)));
}

#[test]
fn lenient_choices() {
    // lwsstart: extra spaces in the request line; the three parts are still unambiguous. Accept.
    assert_eq!(classify(&t("lwsstart")), Accept);
    assert_eq!(request(&t("lwsstart")).uri.as_str(), "sip:user@example.com");
    // trws: trailing spaces after SIP/2.0; nothing is ambiguous. Accept.
    assert_eq!(classify(&t("trws")), Accept);
    // baddn: unquoted display names with a comma. From and To are not list headers, so the comma
    // cannot split anything: the display name is all text before `<`. Accept.
    assert_eq!(classify(&t("baddn")), Accept);
    let r = request(&t("baddn"));
    assert_eq!(r.headers.from().unwrap().display_name.as_deref(), Some("Bell, Alexander"));
    // regbadct: an unbracketed Contact with `?headers`: is the header part of the URI or not? The
    // meaning is ambiguous, so 400.
    assert_eq!(classify(&t("regbadct")), Respond(400));
    assert_eq!(cause(&t("regbadct")), "register");
}

#[test]
fn baddate_is_accepted() {
    assert_eq!(classify(&t("baddate")), Accept);
}

#[test]
fn ltgtruri_is_400() {
    assert_eq!(classify(&t("ltgtruri")), Respond(400));
    assert_eq!(cause(&t("ltgtruri")), "request_uri");
}

#[test]
fn ncl_is_400_and_never_a_length() {
    assert_eq!(classify(&t("ncl")), Respond(400));
    let e = parse_datagram(read(&t("ncl"))).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::BadContentLength);
    // Over TCP the stream is unusable: the framer fails for good.
    let mut f = tongdai::sip::message::StreamFramer::new();
    f.push(&read(&t("ncl")));
    assert_eq!(f.pop().unwrap_err().kind, ParseErrorKind::BadContentLength);
    assert!(f.pop().is_err());
}

#[test]
fn scalarlg_and_bigcode_are_dropped() {
    assert_eq!(classify(&t("scalarlg")), Drop(DropReason::MalformedResponse));
    assert_eq!(classify(&t("bigcode")), Drop(DropReason::Unparsable));
    assert_eq!(
        parse_datagram(read(&t("bigcode"))).unwrap_err().kind,
        ParseErrorKind::BadStatusCode
    );
}

#[test]
fn badvers_is_505() {
    assert_eq!(classify(&t("badvers")), Respond(505));
}

#[test]
fn mismatch02_is_501() {
    assert_eq!(classify(&t("mismatch02")), Respond(501));
}

// --- RFC 4475 §3.2 – §3.4 ----------------------------------------------------------------------

#[test]
fn badbranch_falls_back_to_rfc2543_matching() {
    assert_eq!(classify(&t("badbranch")), Accept);
    let via = request(&t("badbranch")).headers.top_via().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK"));
    assert!(!via.has_rfc3261_branch());
}

#[test]
fn insuf_is_400() {
    assert_eq!(classify(&t("insuf")), Respond(400));
    assert_eq!(cause(&t("insuf")), "from_to");
}

#[test]
fn unknown_schemes_get_416() {
    assert_eq!(classify(&t("unkscm")), Respond(416));
    assert_eq!(classify(&t("novelsc")), Respond(416));
    assert_eq!(request(&t("novelsc")).uri.scheme(), &Scheme::Other("soap.beep".into()));
}

#[test]
fn unksm2_register_to_must_be_sip() {
    assert_eq!(classify(&t("unksm2")), Respond(400));
    assert_eq!(cause(&t("unksm2")), "register");
    let r = request(&t("unksm2"));
    assert_eq!(r.headers.to().unwrap().uri.scheme(), &Scheme::Other("isbn".into()));
    assert_eq!(r.headers.from().unwrap().uri.scheme(), &Scheme::Other("http".into()));
}

#[test]
fn bext01_lists_only_require_tags() {
    assert_eq!(classify(&t("bext01")), Respond(420));
    let rej = rejection(&t("bext01"));
    assert_eq!(
        rej.headers,
        vec![(name::UNSUPPORTED, "nothingSupportsThis, nothingSupportsThisEither".to_owned())]
    );
}

#[test]
fn invut_is_415_with_accept() {
    assert_eq!(classify(&t("invut")), Respond(415));
    assert_eq!(rejection(&t("invut")).headers, vec![(name::ACCEPT, "application/sdp".into())]);
}

#[test]
fn regaut01_goes_on_to_be_challenged() {
    // The message layer passes it; the registrar sees no Digest credentials and answers 401.
    assert_eq!(classify(&t("regaut01")), Accept);
    let creds = request(&t("regaut01")).headers.authorization().unwrap();
    assert_eq!(creds.len(), 1);
    assert!(!creds[0].0.is_digest());
}

#[test]
fn multi01_and_mcl01_are_400() {
    assert_eq!(classify(&t("multi01")), Respond(400));
    assert_eq!(cause(&t("multi01")), "from_to");
    assert_eq!(classify(&t("mcl01")), Respond(400));
    assert_eq!(
        parse_datagram(read(&t("mcl01"))).unwrap_err().kind,
        ParseErrorKind::DuplicateContentLength
    );
    let mut f = tongdai::sip::message::StreamFramer::new();
    f.push(&read(&t("mcl01")));
    assert!(f.pop().is_err());
}

#[test]
fn bcast_is_a_stray_response() {
    assert_eq!(classify(&t("bcast")), StrayResponse);
}

#[test]
fn zeromf_is_processed() {
    assert_eq!(classify(&t("zeromf")), Accept);
    assert_eq!(request(&t("zeromf")).headers.max_forwards().unwrap(), Some(0));
}

#[test]
fn contact_parameters() {
    assert_eq!(classify(&t("cparam01")), Accept);
    let Contacts::List(c) = request(&t("cparam01")).headers.contacts().unwrap() else { panic!() };
    // Without brackets, `;unknownparam` belongs to the Contact header, not the URI.
    assert_eq!(c[0].addr.param("unknownparam"), Some(None));
    assert!(c[0].addr.uri.params().is_empty());

    assert_eq!(classify(&t("cparam02")), Accept);
    let Contacts::List(c) = request(&t("cparam02")).headers.contacts().unwrap() else { panic!() };
    assert_eq!(c[0].addr.uri.param("unknownparam"), Some(None));
    assert!(c[0].addr.params.is_empty());

    assert_eq!(classify(&t("regescrt")), Accept);
    let Contacts::List(c) = request(&t("regescrt")).headers.contacts().unwrap() else { panic!() };
    assert_eq!(c[0].addr.uri.headers(), &[("Route".into(), "%3Csip:sip.example.com%3E".into())]);
}

#[test]
fn sdp01_is_406_with_warning() {
    // Chosen: 406 with Warning 399 (RFC 4475 §3.3.15 allows 400 too) — see `check_request`.
    assert_eq!(classify(&t("sdp01")), Respond(406));
    let rej = rejection(&t("sdp01"));
    assert_eq!(rej.headers[0].0, name::WARNING);
    assert!(rej.headers[0].1.starts_with("399 "));
}

#[test]
fn inv2543_is_handled() {
    assert_eq!(classify(&t("inv2543")), Accept);
    let r = request(&t("inv2543"));
    assert_eq!(r.headers.max_forwards().unwrap(), None);
    assert!(!r.headers.top_via().unwrap().has_rfc3261_branch());
    assert!(r.body.starts_with(b"v=0"));
}

// --- RFC 5118 ------------------------------------------------------------------------------------

#[test]
fn rfc5118_valid_ipv6() {
    for f in [
        "ipv6-good",
        "port-ambiguous",
        "port-unambiguous",
        "via-received-param-no-delim",
        "via-received-param-with-delim",
        "ipv6-in-sdp",
        "mult-ip-in-header",
        "mult-ip-in-sdp",
        "ipv4-mapped-ipv6",
        "ipv6-correct-abnf-2-colons",
    ] {
        assert_eq!(classify(&format!("rfc5118/{f}")), Accept, "{f}");
    }
    let v6 = |s: &str| Host::Ipv6(s.parse().unwrap());
    let r = request("rfc5118/port-ambiguous");
    assert_eq!((r.uri.host(), r.uri.port()), (Some(&v6("2001:db8::10:5070")), None));
    let r = request("rfc5118/port-unambiguous");
    assert_eq!((r.uri.host(), r.uri.port()), (Some(&v6("2001:db8::10")), Some(5070)));
    for f in ["via-received-param-no-delim", "via-received-param-with-delim"] {
        let via = request(&format!("rfc5118/{f}")).headers.top_via().unwrap();
        assert_eq!(via.received_ip(), Some("2001:db8::9:255".parse().unwrap()), "{f}");
    }
    let vias = request("rfc5118/mult-ip-in-header").headers.via().unwrap();
    assert_eq!(vias[0].port, Some(6050));
    assert_eq!(vias[1].host, Host::Ipv4("192.0.2.1".parse().unwrap()));
    let r = request("rfc5118/ipv4-mapped-ipv6");
    assert_eq!(r.headers.top_via().unwrap().host, v6("::ffff:192.0.2.10"));
}

#[test]
fn rfc5118_invalid_ipv6() {
    assert_eq!(classify("rfc5118/ipv6-bad"), Respond(400));
    assert_eq!(classify("rfc5118/ipv6-bug-abnf-3-colons"), Respond(400));
}

/// Every file in the corpus is covered above, and none panics when cut short or re-framed.
#[test]
fn whole_corpus_is_covered_and_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut n = 0;
    for sub in ["rfc4475", "rfc5118"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            n += 1;
            for cut in (0..bytes.len()).step_by(7) {
                let _ = classify_bytes(bytes[..cut].to_vec());
                let mut f = tongdai::sip::message::StreamFramer::new();
                f.push(&bytes[..cut]);
                while let Ok(Some(_)) = f.pop() {}
            }
        }
    }
    assert_eq!(n, 49 + 12);
}
