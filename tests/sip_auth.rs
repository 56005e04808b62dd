//! Digest authentication: RFC 7616 §3.9.1 vectors, the real baresip REGISTER verified over its
//! literal `uri=`, stale nonces, replayed counts, unknown user vs wrong password, and the bounded
//! replay table. All on virtual time.

use std::path::Path;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tongdai::config::{Credential, Secret};
use tongdai::sip::auth::{
    Algorithm, AuthAnswer, AuthFailure, BadCredentials, ChallengeKind, ClientAnswer, DigestServer,
    DigestServerConfig, QopAuth, authorization, digest_response, preferred_challenge,
};
use tongdai::sip::message::{Challenge, Credentials, Message, Method, Request, parse_datagram};

const KEY: [u8; 32] = [7; 32];

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn password(p: &str) -> Credential {
    Credential::Password(Secret::new(p.to_owned()))
}

fn server(epoch: Instant) -> DigestServer {
    DigestServer::new(DigestServerConfig::new("tongdai"), KEY, epoch)
}

/// The nonce of the challenge for `algorithm`.
fn nonce(server: &mut DigestServer, now: Instant, algorithm: Algorithm) -> String {
    let value = server.challenge(now, &[algorithm], false).remove(0);
    Challenge::parse(&value).unwrap().nonce().unwrap().to_owned()
}

/// baresip's REGISTER (tests/data/captures/baresip-register-auth.sip) with another Authorization.
fn baresip_register(authorization: &str) -> Request {
    let text = format!(
        "REGISTER sip:127.0.0.1:53282;transport=udp SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:38584;branch=z9hG4bK4ed893c3580e58ca;rport\r\n\
         Contact: <sip:1001-0x55cfbdd77410@127.0.0.1:38584>;expires=600;\
         +sip.instance=\"<urn:uuid:cccc6028-38e2-9c30-deb6-2f5f625f9bbc>\";reg-id=1\r\n\
         Max-Forwards: 70\r\n\
         Authorization: {authorization}\r\n\
         To: <sip:1001@127.0.0.1:53282>\r\n\
         From: <sip:1001@127.0.0.1:53282>;tag=80e29135b42f87a1\r\n\
         Call-ID: dc9f808687f87ced\r\n\
         CSeq: 22153 REGISTER\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(text.into_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

/// baresip's answer shape, its response computed here with the md5 crate alone.
fn baresip_authorization(nonce: &str, password: &str, uri: &str, nc: u32) -> String {
    let (user, realm, cnonce) = ("1001", "tongdai", "030e4ed69e16de99");
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"sip:127.0.0.1:53282;transport=udp\", response=\"{response}\", \
         cnonce=\"{cnonce}\", qop=auth, nc={nc:08x}"
    )
}

fn agents(user: &str) -> Option<&'static Credential> {
    static SECRET: std::sync::OnceLock<Credential> = std::sync::OnceLock::new();
    (user == "1001").then(|| SECRET.get_or_init(|| password("secret")))
}

const BARESIP_URI: &str = "sip:127.0.0.1:53282;transport=udp";

#[test]
fn rfc7616_example_responses() {
    let (realm, nonce) = ("http-auth@example.org", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v");
    let qop =
        Some(QopAuth { nc: "00000001", cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ" });
    for (algorithm, expected) in [
        (Algorithm::Sha256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
    ] {
        let ha1 = algorithm.ha1("Mufasa", realm, "Circle of Life");
        let response = digest_response(algorithm, &ha1, nonce, qop, "GET", "/dir/index.html");
        assert_eq!(response, expected, "{}", algorithm.name());
    }
}

#[test]
fn rfc7616_example_through_the_client() {
    let opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    let challenges: Vec<Challenge> = ["MD5", "SHA-256"]
        .iter()
        .map(|a| {
            Challenge::parse(&format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={a}, \
                 nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"{opaque}\""
            ))
            .unwrap()
        })
        .collect();
    // SHA-256 is preferred even when offered second.
    let chosen = preferred_challenge(&challenges).unwrap();
    assert_eq!(chosen.algorithm(), Some("SHA-256"));
    let method = Method::Other("GET".into());
    let answer = ClientAnswer {
        user: "Mufasa",
        password: "Circle of Life",
        method: &method,
        uri: "/dir/index.html",
        cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        nc: 1,
    };
    let value = authorization(chosen, &answer).unwrap();
    let c = Credentials::parse(&value).unwrap();
    assert_eq!(
        c.response(),
        Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    );
    assert_eq!((c.nc(), c.qop(), c.opaque()), (Some(1), Some("auth"), Some(opaque)));
    let md5 = authorization(&challenges[0], &answer).unwrap();
    assert_eq!(
        Credentials::parse(&md5).unwrap().response(),
        Some("8ca523f5e9506fed4657c9700eebdbec")
    );
}

#[test]
fn real_baresip_capture_matches_over_the_literal_uri() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/captures/baresip-register-auth.sip");
    let Message::Request(r) = parse_datagram(std::fs::read(path).unwrap()).unwrap() else {
        panic!("not a request")
    };
    let c = &r.headers.authorization().unwrap()[0];
    let uri = c.uri().unwrap();
    assert_eq!(uri, BARESIP_URI);
    let qop = Some(QopAuth { nc: c.0.param("nc").unwrap(), cnonce: c.cnonce().unwrap() });
    let ha1 = Algorithm::Md5.ha1("1001", "tongdai", "secret");
    let nonce = c.nonce().unwrap();
    assert_eq!(
        digest_response(Algorithm::Md5, &ha1, nonce, qop, "REGISTER", uri),
        "61d00a5e321d07b766566910e9fba799"
    );
    // The same bytes over a re-printed URI would not match.
    let reprinted = "sip:127.0.0.1:53282;transport=UDP";
    assert_ne!(
        digest_response(Algorithm::Md5, &ha1, nonce, qop, "REGISTER", reprinted),
        "61d00a5e321d07b766566910e9fba799"
    );
    // That capture's nonce was not sealed by us: right password, so only stale.
    let t0 = Instant::now();
    let err = server(t0).verify_request(t0, &r, ChallengeKind::Www, agents).unwrap_err();
    assert_eq!(err, AuthFailure::Stale);
    assert_eq!(err.answer(), AuthAnswer::Challenge { stale: true });
}

#[test]
fn baresip_register_verifies_end_to_end() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let n = nonce(&mut s, t0, Algorithm::Md5);
    let r = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 1));
    let user = s.verify_request(t0 + Duration::from_secs(1), &r, ChallengeKind::Www, agents);
    let user = user.unwrap();
    assert_eq!((user.user.as_str(), user.algorithm), ("1001", Algorithm::Md5));

    // A response computed over anything but the literal uri= text fails.
    let n = nonce(&mut s, t0, Algorithm::Md5);
    let wrong = baresip_authorization(&n, "secret", "sip:127.0.0.1:53282", 1);
    let r = baresip_register(&wrong);
    assert_eq!(
        s.verify_request(t0, &r, ChallengeKind::Www, agents),
        Err(AuthFailure::WrongPassword)
    );
}

#[test]
fn no_credentials_and_other_realms_are_missing() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let r = baresip_register(
        "Digest username=\"1001\", realm=\"elsewhere\", nonce=\"x\", uri=\"sip:a\", response=\"0\"",
    );
    let err = s.verify_request(t0, &r, ChallengeKind::Www, agents).unwrap_err();
    assert_eq!(err, AuthFailure::Missing);
    assert_eq!(err.answer(), AuthAnswer::Challenge { stale: false });
    assert!(!err.is_guess());
    // Proxy-Authorization is a different header.
    let n = nonce(&mut s, t0, Algorithm::Md5);
    let r = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 1));
    assert_eq!(s.verify_request(t0, &r, ChallengeKind::Proxy, agents), Err(AuthFailure::Missing));
}

#[test]
fn stale_nonce_with_the_right_password_asks_for_a_retry() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let n = nonce(&mut s, t0, Algorithm::Md5);
    let late = t0 + Duration::from_secs(301);
    let r = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 1));
    let err = s.verify_request(late, &r, ChallengeKind::Www, agents).unwrap_err();
    assert_eq!(err, AuthFailure::Stale);
    assert_eq!(err.answer(), AuthAnswer::Challenge { stale: true });
    assert_eq!(err.reason(), "stale");
    // With the wrong password an old nonce proves nothing: not stale.
    let r = baresip_register(&baresip_authorization(&n, "guess", BARESIP_URI, 1));
    assert_eq!(
        s.verify_request(late, &r, ChallengeKind::Www, agents),
        Err(AuthFailure::WrongPassword)
    );
    // At exactly the lifetime it is still fresh.
    let at_edge = t0 + Duration::from_secs(300);
    let r = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 1));
    assert!(s.verify_request(at_edge, &r, ChallengeKind::Www, agents).is_ok());
}

#[test]
fn tampered_nonce_is_stale() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let n = nonce(&mut s, t0, Algorithm::Md5);
    // Move the issue time forward by editing the nonce: the seal no longer matches.
    let mut forged = n.clone().into_bytes();
    forged[10] = if forged[10] == b'f' { b'e' } else { b'f' };
    let forged = String::from_utf8(forged).unwrap();
    let r = baresip_register(&baresip_authorization(&forged, "secret", BARESIP_URI, 1));
    assert_eq!(s.verify_request(t0, &r, ChallengeKind::Www, agents), Err(AuthFailure::Stale));
    // A nonce sealed under another key (a restart) is stale too.
    let mut other = DigestServer::new(DigestServerConfig::new("tongdai"), [9; 32], t0);
    let theirs = nonce(&mut other, t0, Algorithm::Md5);
    let r = baresip_register(&baresip_authorization(&theirs, "secret", BARESIP_URI, 1));
    assert_eq!(s.verify_request(t0, &r, ChallengeKind::Www, agents), Err(AuthFailure::Stale));
}

#[test]
fn replayed_nonce_count_is_refused() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let n = nonce(&mut s, t0, Algorithm::Md5);
    let first = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 1));
    assert!(s.verify_request(t0, &first, ChallengeKind::Www, agents).is_ok());
    let err = s.verify_request(t0, &first, ChallengeKind::Www, agents).unwrap_err();
    assert_eq!(err, AuthFailure::Replay);
    assert_eq!(err.answer(), AuthAnswer::Challenge { stale: true });
    assert!(!err.is_guess());
    // The count may rise, and may skip.
    let third = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 3));
    assert!(s.verify_request(t0, &third, ChallengeKind::Www, agents).is_ok());
    let second = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 2));
    assert_eq!(s.verify_request(t0, &second, ChallengeKind::Www, agents), Err(AuthFailure::Replay));
    // A wrong password does not move the count.
    let mut t = server(t0);
    let n = nonce(&mut t, t0, Algorithm::Md5);
    let bad = baresip_register(&baresip_authorization(&n, "guess", BARESIP_URI, 5));
    assert!(t.verify_request(t0, &bad, ChallengeKind::Www, agents).is_err());
    assert_eq!(t.nonces_followed(), 0);
    let good = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 1));
    assert!(t.verify_request(t0, &good, ChallengeKind::Www, agents).is_ok());
}

#[test]
fn unknown_user_and_wrong_password_are_answered_alike() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let n = nonce(&mut s, t0, Algorithm::Md5);
    let wrong = baresip_register(&baresip_authorization(&n, "guess", BARESIP_URI, 1));
    let unknown_text =
        baresip_authorization(&n, "guess", BARESIP_URI, 1).replace("\"1001\"", "\"1999\"");
    let unknown = baresip_register(&unknown_text);
    let e1 = s.verify_request(t0, &wrong, ChallengeKind::Www, agents).unwrap_err();
    let e2 = s.verify_request(t0, &unknown, ChallengeKind::Www, agents).unwrap_err();
    assert_eq!((e1.clone(), e2.clone()), (AuthFailure::WrongPassword, AuthFailure::UnknownUser));
    // Same answer, both counted as guesses; only the metric label tells them apart.
    assert_eq!(e1.answer(), e2.answer());
    assert!(e1.is_guess() && e2.is_guess());
    // The replies are byte-for-byte the same shape: a 401 with the same challenges.
    let a = s.challenge_response(
        t0,
        &wrong,
        ChallengeKind::Www,
        &s.algorithms_for(None),
        false,
        Some("t"),
    );
    let b = s.challenge_response(
        t0,
        &unknown,
        ChallengeKind::Www,
        &s.algorithms_for(None),
        false,
        Some("t"),
    );
    assert_eq!((a.status, b.status), (401, 401));
    assert_eq!(a.headers.count("WWW-Authenticate"), b.headers.count("WWW-Authenticate"));
    // No password, not even an empty one, lets an unknown user in.
    let empty = baresip_authorization(&n, "", BARESIP_URI, 1).replace("\"1001\"", "\"1999\"");
    assert_eq!(
        s.verify_request(t0, &baresip_register(&empty), ChallengeKind::Www, agents),
        Err(AuthFailure::UnknownUser)
    );
}

#[test]
fn replay_table_is_bounded_and_evicted_nonces_are_stale() {
    let t0 = Instant::now();
    let mut config = DigestServerConfig::new("tongdai");
    config.nonce_table_size = 2;
    let mut s = DigestServer::new(config, KEY, t0);
    let nonces: Vec<String> = (0..4).map(|_| nonce(&mut s, t0, Algorithm::Md5)).collect();
    let use_nonce = |s: &mut DigestServer, i: usize, nc: u32| {
        let r = baresip_register(&baresip_authorization(&nonces[i], "secret", BARESIP_URI, nc));
        s.verify_request(t0, &r, ChallengeKind::Www, agents)
    };
    assert!(use_nonce(&mut s, 0, 1).is_ok());
    assert!(use_nonce(&mut s, 1, 1).is_ok());
    assert_eq!(s.nonces_followed(), 2);
    assert!(use_nonce(&mut s, 2, 1).is_ok());
    assert_eq!(s.nonces_followed(), 2);
    // Nonce 0 was dropped: its next use (even with a higher count) is stale, never accepted.
    assert_eq!(use_nonce(&mut s, 0, 2), Err(AuthFailure::Stale));
    // The followed ones keep working.
    assert!(use_nonce(&mut s, 1, 2).is_ok());
    assert!(use_nonce(&mut s, 2, 2).is_ok());
    assert!(use_nonce(&mut s, 3, 1).is_ok());
    assert_eq!(s.nonces_followed(), 2);
    assert_eq!(use_nonce(&mut s, 1, 3), Err(AuthFailure::Stale));
}

#[test]
fn expired_nonces_leave_the_table() {
    let t0 = Instant::now();
    let mut s = server(t0);
    for i in 0..10 {
        let n = nonce(&mut s, t0 + Duration::from_secs(i), Algorithm::Md5);
        let r = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 1));
        assert!(
            s.verify_request(t0 + Duration::from_secs(i), &r, ChallengeKind::Www, agents).is_ok()
        );
    }
    assert_eq!(s.nonces_followed(), 10);
    let later = t0 + Duration::from_secs(1000);
    let n = nonce(&mut s, later, Algorithm::Md5);
    let r = baresip_register(&baresip_authorization(&n, "secret", BARESIP_URI, 1));
    assert!(s.verify_request(later, &r, ChallengeKind::Www, agents).is_ok());
    assert_eq!(s.nonces_followed(), 1);
}

#[test]
fn sha256_round_trip_through_our_client() {
    let t0 = Instant::now();
    let mut config = DigestServerConfig::new("tongdai");
    config.opaque = Some("td-opaque".into());
    let mut s = DigestServer::new(config, KEY, t0);
    let challenges: Vec<Challenge> = s
        .challenge(t0, &s.algorithms_for(None), false)
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    // RFC 8760: SHA-256 first, then MD5, qop auth, opaque.
    let algs: Vec<_> = challenges.iter().map(|c| c.algorithm().unwrap()).collect();
    assert_eq!(algs, ["SHA-256", "MD5"]);
    assert!(challenges.iter().all(|c| c.qop_options() == ["auth"] && !c.stale()));
    assert_eq!(challenges[0].opaque(), Some("td-opaque"));
    assert_ne!(challenges[0].nonce(), challenges[1].nonce());
    let answer = ClientAnswer {
        user: "1001",
        password: "secret",
        method: &Method::Register,
        uri: "sip:127.0.0.1:5060",
        cnonce: "abc",
        nc: 1,
    };
    let value = authorization(preferred_challenge(&challenges).unwrap(), &answer).unwrap();
    let c = Credentials::parse(&value).unwrap();
    let user = s.verify(t0, &Method::Register, &c, agents).unwrap();
    assert_eq!(user.algorithm, Algorithm::Sha256);
    // The same credentials on another method fail: the method is in HA2.
    let value = authorization(&challenges[1], &ClientAnswer { nc: 2, ..answer }).unwrap();
    let c = Credentials::parse(&value).unwrap();
    assert_eq!(s.verify(t0, &Method::Invite, &c, agents), Err(AuthFailure::WrongPassword));
    // Without the opaque, the right password is only stale.
    let stripped = value.replace(", opaque=\"td-opaque\"", "");
    let c = Credentials::parse(&stripped).unwrap();
    assert_eq!(s.verify(t0, &Method::Register, &c, agents), Err(AuthFailure::Stale));
}

#[test]
fn stale_challenges_are_marked() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let r = baresip_register("Digest username=\"1001\"");
    let resp = s.challenge_response(t0, &r, ChallengeKind::Proxy, &[Algorithm::Md5], true, None);
    assert_eq!(resp.status, 407);
    let ch = resp.headers.proxy_authenticate().unwrap();
    assert_eq!(ch.len(), 1);
    assert!(ch[0].stale());
    assert_eq!(ch[0].realm(), Some("tongdai"));
}

#[test]
fn ha1_credentials_and_algorithm_choice() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let ha1 = Credential::Ha1 {
        md5: Some(Secret::new(Algorithm::Md5.ha1("1002", "tongdai", "pw"))),
        sha256: None,
    };
    assert_eq!(s.algorithms_for(Some(&ha1)), [Algorithm::Md5]);
    assert_eq!(s.algorithms_for(Some(&password("x"))), [Algorithm::Sha256, Algorithm::Md5]);
    let lookup = |u: &str| (u == "1002").then_some(&ha1);
    let challenges: Vec<Challenge> = s
        .challenge(t0, &[Algorithm::Sha256, Algorithm::Md5], false)
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    let answer = ClientAnswer {
        user: "1002",
        password: "pw",
        method: &Method::Register,
        uri: "sip:tongdai",
        cnonce: "c",
        nc: 1,
    };
    let md5 = Credentials::parse(&authorization(&challenges[1], &answer).unwrap()).unwrap();
    assert!(s.verify(t0, &Method::Register, &md5, lookup).is_ok());
    let sha = Credentials::parse(&authorization(&challenges[0], &answer).unwrap()).unwrap();
    let err = s.verify(t0, &Method::Register, &sha, lookup).unwrap_err();
    assert_eq!(err, AuthFailure::NoCredentialForAlgorithm);
    assert_eq!(err.answer(), AuthAnswer::Challenge { stale: false });
}

#[test]
fn malformed_and_unoffered_credentials() {
    let t0 = Instant::now();
    let mut md5_only = DigestServerConfig::new("tongdai");
    md5_only.algorithms = vec![Algorithm::Md5];
    md5_only.allow_rfc2069 = false;
    let mut s = DigestServer::new(md5_only, KEY, t0);
    let n = nonce(&mut s, t0, Algorithm::Md5);
    let base = baresip_authorization(&n, "secret", BARESIP_URI, 1);
    let cases = [
        (base.replace("qop=auth", "algorithm=SHA-256, qop=auth"), BadCredentials::Algorithm),
        (base.replace("qop=auth", "algorithm=MD5-sess, qop=auth"), BadCredentials::Algorithm),
        (base.replace("qop=auth", "qop=auth-int"), BadCredentials::Qop),
        (base.replace(", qop=auth, nc=00000001", ""), BadCredentials::Qop),
        (base.replace(", cnonce=\"030e4ed69e16de99\"", ""), BadCredentials::MissingParam("cnonce")),
        (base.replace("uri=", "url="), BadCredentials::MissingParam("uri")),
    ];
    for (text, want) in cases {
        let r = baresip_register(&text);
        let err = s.verify_request(t0, &r, ChallengeKind::Www, agents).unwrap_err();
        assert_eq!(err, AuthFailure::BadRequest(want), "{text}");
        assert_eq!(err.answer(), AuthAnswer::BadRequest);
    }
    let r = baresip_register(&base.replace("nc=00000001", "nc=1"));
    assert!(matches!(
        s.verify_request(t0, &r, ChallengeKind::Www, agents),
        Err(AuthFailure::BadRequest(BadCredentials::Syntax(_)))
    ));
}

#[test]
fn rfc2069_answers_are_good_once() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let n = nonce(&mut s, t0, Algorithm::Md5);
    let ha1 = md5_hex("1001:tongdai:secret");
    let response = md5_hex(&format!("{ha1}:{n}:{}", md5_hex(&format!("REGISTER:{BARESIP_URI}"))));
    let text = format!(
        "Digest username=\"1001\", realm=\"tongdai\", nonce=\"{n}\", uri=\"{BARESIP_URI}\", \
         response=\"{}\"",
        response.to_ascii_uppercase()
    );
    let r = baresip_register(&text);
    assert!(s.verify_request(t0, &r, ChallengeKind::Www, agents).is_ok());
    assert_eq!(s.verify_request(t0, &r, ChallengeKind::Www, agents), Err(AuthFailure::Replay));
}

#[test]
fn failure_labels_are_bounded() {
    let all = [
        AuthFailure::Missing,
        AuthFailure::UnknownUser,
        AuthFailure::WrongPassword,
        AuthFailure::NoCredentialForAlgorithm,
        AuthFailure::Stale,
        AuthFailure::Replay,
        AuthFailure::BadRequest(BadCredentials::Qop),
    ];
    let labels: std::collections::BTreeSet<_> = all.iter().map(AuthFailure::reason).collect();
    assert_eq!(labels.len(), all.len());
    assert!(labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

/// SIPp 3.6.1 writes its answer without spaces and with `algorithm=MD5` last; it only speaks MD5,
/// so it answers the MD5 challenge even when SHA-256 comes first.
#[test]
fn sipp_shaped_md5_answer() {
    let t0 = Instant::now();
    let mut s = server(t0);
    let challenges: Vec<Challenge> = s
        .challenge(t0, &s.algorithms_for(None), false)
        .iter()
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    let md5 = challenges.iter().find(|c| c.algorithm() == Some("MD5")).unwrap();
    let n = md5.nonce().unwrap();
    let uri = "sip:127.0.0.1:5060";
    let ha1 = md5_hex("1001:tongdai:secret");
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let response = md5_hex(&format!("{ha1}:{n}:00000001:6b8b4567:auth:{ha2}"));
    let value = format!(
        "Digest username=\"1001\",realm=\"tongdai\",cnonce=\"6b8b4567\",nc=00000001,qop=auth,\
         uri=\"{uri}\",nonce=\"{n}\",response=\"{response}\",algorithm=MD5"
    );
    let c = Credentials::parse(&value).unwrap();
    let user = s.verify(t0, &Method::Register, &c, agents).unwrap();
    assert_eq!(user.algorithm, Algorithm::Md5);
}

#[test]
fn md5_only_user_agents_are_matched_by_prefix() {
    let t0 = Instant::now();
    let config = DigestServerConfig {
        md5_only_user_agents: vec!["BARESIP v1.".into()],
        ..DigestServerConfig::new("tongdai")
    };
    let s = DigestServer::new(config, KEY, t0);
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/captures/baresip-register.sip");
    let Message::Request(baresip) = parse_datagram(std::fs::read(path).unwrap()).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(s.algorithms_for_request(&baresip, None), [Algorithm::Md5]);
    let other = baresip_register("Digest username=\"1001\"");
    assert_eq!(s.algorithms_for_request(&other, None), [Algorithm::Sha256, Algorithm::Md5]);
    // A user with only a SHA-256 HA1 keeps SHA-256: narrowing never leaves nothing to offer.
    let sha_only = Credential::Ha1 { md5: None, sha256: Some(Secret::new("0".repeat(64))) };
    assert_eq!(s.algorithms_for_request(&baresip, Some(&sha_only)), [Algorithm::Sha256]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever a peer writes in Authorization, the server answers with a typed failure (or, by
    /// luck it cannot have, success) and never panics; the replay table stays empty.
    #[test]
    fn arbitrary_credentials_never_panic(
        user in "[0-9a-z]{0,6}",
        nonce in "[0-9a-f]{0,70}",
        uri in "[ -~]{0,40}",
        response in "[0-9a-fA-F]{0,70}",
        algorithm in proptest::option::of("(MD5|SHA-256|md5|SHA-512|MD5-sess)"),
        qop in proptest::option::of("(auth|auth-int|AUTH)"),
        nc in "[0-9a-f]{8}",
    ) {
        let t0 = Instant::now();
        let mut s = server(t0);
        let mut value = format!(
            "Digest username=\"{user}\", realm=\"tongdai\", nonce=\"{nonce}\", \
             uri=\"{}\", response=\"{response}\", cnonce=\"c\", nc={nc}",
            uri.replace(['"', '\\'], "")
        );
        if let Some(a) = algorithm {
            value.push_str(&format!(", algorithm={a}"));
        }
        if let Some(q) = qop {
            value.push_str(&format!(", qop={q}"));
        }
        if let Ok(c) = Credentials::parse(&value) {
            let result = s.verify(t0, &Method::Register, &c, agents);
            proptest::prop_assert!(result.is_err());
            proptest::prop_assert_eq!(s.nonces_followed(), 0);
        }
    }
}
