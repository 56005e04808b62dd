//! Real and reconstructed peer messages (`tests/data/captures/README.md` says which is which):
//! they parse, their typed values are right, the real baresip digest verifies over the literal
//! `uri=`, and canonical captures re-print byte for byte.

use std::path::Path;

use md5::{Digest, Md5};
use tongdai::sip::check::{Capabilities, check_request};
use tongdai::sip::message::{
    Contacts, Host, Message, Method, Request, Response, Scheme, parse_datagram,
};

fn read(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/captures").join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(file: &str) -> Request {
    match parse_datagram(read(file)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{file} is a response"),
    }
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sipp_uac_invite() {
    let r = request("sipp-uac-invite.sip");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.user(), Some("service"));
    let h = &r.headers;
    let via = h.top_via().unwrap();
    assert_eq!((via.transport.as_str(), via.port), ("UDP", Some(5060)));
    assert!(via.has_rfc3261_branch());
    let from = h.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("sipp"));
    assert!(from.tag().unwrap().ends_with("SIPpTag001"));
    assert_eq!(h.to().unwrap().tag(), None);
    assert_eq!(h.cseq().unwrap().seq, 1);
    assert_eq!(h.max_forwards().unwrap(), Some(70));
    let Contacts::List(c) = h.contacts().unwrap() else { panic!() };
    assert_eq!(c[0].addr.uri.host(), Some(&Host::Ipv4("127.0.0.1".parse().unwrap())));
    assert_eq!(h.content_length().unwrap(), Some(129));
    assert_eq!(r.body.len(), 129);
    assert!(r.body.ends_with(b"a=rtpmap:0 PCMU/8000\r\n"));
    assert_eq!(check_request(&r, &Capabilities::tongdai()), Ok(()));
    // Not canonical on the wire (`Content-Length:   129`), so only the meaning round-trips.
    assert_eq!(parse_datagram(r.to_bytes()).unwrap(), Message::Request(r));
}

#[test]
fn baresip_register_with_instance() {
    let r = request("baresip-register.sip");
    assert_eq!(r.method, Method::Register);
    assert_eq!(r.uri.as_str(), r.uri.to_string());
    assert_eq!(r.uri.param("transport"), Some(Some("udp")));
    let h = &r.headers;
    let Contacts::List(c) = h.contacts().unwrap() else { panic!() };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].expires, Some(600));
    assert_eq!(
        c[0].sip_instance().as_deref(),
        Some("<urn:uuid:cccc6028-38e2-9c30-deb6-2f5f625f9bbc>")
    );
    assert_eq!(c[0].reg_id(), Some(1));
    assert_eq!(h.top_via().unwrap().rport(), Some(None));
    assert_eq!(h.supported().unwrap(), ["gruu", "outbound", "path"]);
    assert_eq!(h.allow().unwrap().len(), 10);
    assert_eq!(h.route().unwrap()[0].uri.param("lr"), Some(None));
    assert_eq!(h.user_agent().as_deref(), Some("baresip v1.0.0 (x86_64/linux)"));
    assert_eq!(check_request(&r, &Capabilities::tongdai()), Ok(()));
}

#[test]
fn baresip_digest_verifies_over_the_literal_uri() {
    let r = request("baresip-register-auth.sip");
    let creds = r.headers.authorization().unwrap();
    assert_eq!(creds.len(), 1);
    let c = &creds[0];
    assert!(c.0.is_digest());
    assert_eq!(c.username(), Some("1001"));
    assert_eq!(c.realm(), Some("tongdai"));
    assert_eq!(c.nc(), Some(1));
    assert_eq!(c.qop(), Some("auth"));
    let uri = c.uri().unwrap();
    assert!(uri.ends_with(";transport=udp"));
    let ha1 = md5_hex("1001:tongdai:secret");
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let expected = md5_hex(&format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        c.nonce().unwrap(),
        c.0.param("nc").unwrap(),
        c.cnonce().unwrap()
    ));
    assert_eq!(c.response(), Some(expected.as_str()));
}

#[test]
fn baresip_captures_reprint_byte_identically() {
    for f in ["baresip-register.sip", "baresip-register-auth.sip"] {
        let raw = read(f);
        assert_eq!(parse_datagram(raw.clone()).unwrap().to_bytes(), raw, "{f}");
    }
}

#[test]
fn linphone_register_compact_headers() {
    let r = request("linphone-register.sip");
    let h = &r.headers;
    assert_eq!(h.call_id().unwrap(), "6F~cLhQkCs");
    assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK.dG1pU8~Qa"));
    assert_eq!(h.from().unwrap().tag(), Some("g4eB8T2xk"));
    assert_eq!(h.to().unwrap().uri.scheme(), &Scheme::Sip);
    assert_eq!(h.supported().unwrap(), ["replaces", "outbound", "gruu", "path"]);
    assert_eq!(h.accept().unwrap().unwrap().len(), 3);
    assert_eq!(h.expires().unwrap(), Some(3600));
    let Contacts::List(c) = h.contacts().unwrap() else { panic!() };
    assert_eq!(
        c[0].sip_instance().as_deref(),
        Some("<urn:uuid:5e9a0a3c-0f4b-4c39-b3a7-8c6f3e1d2b10>")
    );
    assert_eq!(c[0].reg_id(), Some(1));
    assert_eq!(c[0].expires, Some(3600));
    assert_eq!(c[0].addr.param("+org.linphone.specs"), Some(Some("\"lime,groupchat/1.1\"")));
    assert_eq!(h.content_length().unwrap(), Some(0));
    assert_eq!(check_request(&r, &Capabilities::tongdai()), Ok(()));
    // Printing uses the long names.
    let printed = String::from_utf8(r.to_bytes().to_vec()).unwrap();
    assert!(printed.contains("\r\nVia: SIP/2.0/UDP 10.0.0.23:38213;"));
    assert!(printed.contains("\r\nCall-ID: 6F~cLhQkCs\r\n"));
    assert!(printed.ends_with("\r\nContent-Length: 0\r\n\r\n"));
}

#[test]
fn trunk_invite() {
    let r = request("trunk-invite.sip");
    let h = &r.headers;
    assert_eq!(r.uri.user(), Some("111"));
    assert_eq!(h.max_forwards().unwrap(), Some(69));
    let pai = h.p_asserted_identity().unwrap();
    assert_eq!(pai.len(), 2);
    assert_eq!(pai[0].uri.param("user"), Some(Some("phone")));
    assert_eq!(pai[1].uri.tel_number(), Some("+84912345678"));
    assert_eq!(h.privacy().unwrap(), ["none"]);
    let se = h.session_expires().unwrap().unwrap();
    assert_eq!((se.delta, se.refresher.as_deref()), (1800, Some("uac")));
    assert_eq!(h.min_se().unwrap(), Some(90));
    assert_eq!(h.record_route().unwrap()[0].uri.param("ftag"), Some(Some("as5f3c9a21")));
    assert_eq!(h.supported().unwrap(), ["100rel", "timer", "replaces"]);
    assert!(h.allow().unwrap().contains(&Method::Prack));
    assert_eq!(check_request(&r, &Capabilities::tongdai()), Ok(()));
    assert_eq!(
        parse_datagram(read("trunk-invite.sip")).unwrap().to_bytes(),
        read("trunk-invite.sip")
    );

    // The 180 a UAS builds from it copies the §8.2.6 headers and tags the To.
    let ringing = Response::for_request(&r, 180, Some("td1"));
    assert_eq!(ringing.reason, "Ringing");
    assert_eq!(ringing.headers.to().unwrap().tag(), Some("td1"));
    assert_eq!(ringing.headers.call_id().unwrap(), h.call_id().unwrap());
    assert_eq!(ringing.headers.via().unwrap(), h.via().unwrap());
    assert_eq!(ringing.headers.cseq().unwrap(), h.cseq().unwrap());
    assert_eq!(ringing.headers.len(), 5);
}
