//! The properties the fuzz targets check, as plain functions, so that `cargo test` in the root
//! package can replay the committed corpus through the same code (`tests/sip_message_fuzz.rs`
//! includes this file) without a fuzzer.

use tongdai::sip::check::{Capabilities, check_request, check_response, refuse_unparsable};
use tongdai::sip::message::{
    Frame, Headers, MAX_MESSAGE_SIZE, Message, StreamFramer, parse_datagram,
};

/// Calls every typed accessor; none may panic.
pub fn touch(h: &Headers) {
    let _ = h.via();
    let _ = h.top_via();
    let _ = h.from();
    let _ = h.to();
    let _ = h.call_id();
    let _ = h.cseq();
    let _ = h.max_forwards();
    let _ = h.content_length();
    let _ = h.content_type();
    let _ = h.contacts();
    let _ = h.expires();
    let _ = h.route();
    let _ = h.record_route();
    let _ = h.require();
    let _ = h.proxy_require();
    let _ = h.supported();
    let _ = h.allow();
    let _ = h.accept();
    let _ = h.rseq();
    let _ = h.rack();
    let _ = h.session_expires();
    let _ = h.min_se();
    let _ = h.p_asserted_identity();
    let _ = h.privacy();
    let _ = h.authorization().map(|c| c.iter().filter_map(|c| c.nc()).count());
    let _ = h.proxy_authorization();
    let _ = h.www_authenticate().map(|c| c.iter().map(|c| c.qop_options().len()).sum::<usize>());
    let _ = h.proxy_authenticate();
    let _ = h.user_agent();
    let _ = h.retry_after();
    let _ = h.refer_to();
    let _ = h.replaces();
}

/// One datagram through the parser, every typed accessor and the RFC 3261 §8.2 checks; a message
/// that parses must print and parse back to itself (with its Content-Length made exact).
pub fn datagram(data: &[u8]) {
    match parse_datagram(data.to_vec()) {
        Ok(m) => {
            touch(m.headers());
            match &m {
                Message::Request(r) => {
                    let _ = check_request(r, &Capabilities::tongdai());
                    let _ = tongdai::sip::refer::Refer::parse(r);
                    let _ = tongdai::sip::refer::invite_replaces(r);
                }
                Message::Response(r) => {
                    let _ = check_response(r);
                }
            }
            let printed = m.to_bytes();
            if printed.len() > MAX_MESSAGE_SIZE {
                return; // Content-Length added to a maximal datagram: too large to read back.
            }
            let again = parse_datagram(printed.clone()).expect("printed message must parse");
            // The printer always writes the true Content-Length; apart from that, nothing changes.
            let mut expected = m.clone();
            let len = expected.body().len().to_string();
            expected.headers_mut().set("Content-Length", len);
            assert_eq!(again, expected, "parse(print(m)) != m");
            assert_eq!(again.to_bytes(), printed, "printing is not stable");
        }
        Err(e) => {
            let _ = refuse_unparsable(&e);
            if let Some(head) = &e.request_head {
                touch(&head.headers);
            }
        }
    }
}

/// A byte stream cut into chunks (size from the first byte) through the stream framer: no panic,
/// a failed stream stays failed, the buffer stays bounded, and every framed message frames again
/// unchanged after printing.
pub fn stream(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut framer = StreamFramer::new();
    let mut frames = Vec::new();
    'outer: for piece in stream.chunks(chunk) {
        framer.push(piece);
        loop {
            match framer.pop() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(_) => {
                    assert!(framer.pop().is_err(), "a failed stream must stay failed");
                    break 'outer;
                }
            }
        }
        assert!(framer.buffered() <= MAX_MESSAGE_SIZE + chunk, "framer buffer unbounded");
    }
    for f in frames {
        if let Frame::Message(mut m) = f {
            let mut again = StreamFramer::new();
            again.push(&m.to_bytes());
            // Content-Length is the one header the printer rewrites (e.g. `007` becomes `7`).
            let len = m.body().len().to_string();
            m.headers_mut().set("Content-Length", len);
            assert_eq!(again.pop().ok().flatten(), Some(Frame::Message(m)));
        }
    }
}

/// An SDP body (RFC 4566) through the parser, the offer/answer code (RFC 3264) and the printer: no
/// panic; a description that parses prints to text that parses to the same description, and an
/// answer to it is itself a description we read back as an answer.
pub fn sdp(data: &[u8]) {
    use tongdai::media::g711::Codec;
    use tongdai::sip::sdp::{SessionDescription, answer, negotiate_answer};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(offer) = SessionDescription::parse(text) else { return };
    let _ = offer.is_hold();
    let printed = offer.to_string();
    let again = SessionDescription::parse(&printed).expect("printed SDP must parse");
    assert_eq!(again, offer, "parse(print(sdp)) != sdp");
    let addr = std::net::IpAddr::from([127, 0, 0, 1]);
    if let Ok(ours) = answer(&offer, &[Codec::Pcmu, Codec::Pcma], addr, 40_000) {
        let text = ours.sdp.to_string();
        let back = SessionDescription::parse(&text).expect("our answer must parse");
        let heard = negotiate_answer(&back).expect("our answer must be usable");
        assert_eq!(heard.codec, ours.audio.codec, "our answer names another codec");
    }
    let _ = negotiate_answer(&offer);
}

/// Digest credentials (RFC 7616) built from fuzzed fields around a real nonce of ours, through the
/// server's verification: no panic, and a forged answer is never accepted. The input's bytes are
/// split on 0xff into uri, response, nc, cnonce, qop, algorithm and username.
pub fn digest(data: &[u8]) {
    use std::time::Instant;
    use tongdai::config::{Credential, Secret};
    use tongdai::sip::auth::{Algorithm, DigestServer, DigestServerConfig};
    use tongdai::sip::message::{Credentials, Method};

    let mut parts = data.split(|b| *b == 0xff).map(|p| String::from_utf8_lossy(p).into_owned());
    let mut field = || parts.next().unwrap_or_default().replace(['"', '\\'], "");
    let (uri, response, nc, cnonce, qop, algorithm, user) =
        (field(), field(), field(), field(), field(), field(), field());
    let now = Instant::now();
    let mut server = DigestServer::new(DigestServerConfig::new("tongdai"), [7; 32], now);
    let challenge = server.challenge(now, &[Algorithm::Md5], false).remove(0);
    let nonce = challenge.split("nonce=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
    let user = if user.is_empty() { "op1".to_string() } else { user };
    let text = format!(
        "Digest username=\"{user}\", realm=\"tongdai\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", nc={nc}, cnonce=\"{cnonce}\", qop={qop}, algorithm={algorithm}"
    );
    let Ok(credentials) = Credentials::parse(&text) else { return };
    let password = Credential::Password(Secret::new("op1-test-password".to_string()));
    let verdict = server.verify(now, &Method::Register, &credentials, |_| Some(&password));
    if verdict.is_ok() {
        // Only the true digest for this password, nonce, uri and qop may pass.
        let algorithm = Algorithm::from_name(&algorithm).unwrap_or(Algorithm::Md5);
        let ha1 = algorithm.ha1(&user, "tongdai", "op1-test-password");
        let qop =
            (qop == "auth").then_some(tongdai::sip::auth::QopAuth { nc: &nc, cnonce: &cnonce });
        let expected =
            tongdai::sip::auth::digest_response(algorithm, &ha1, nonce, qop, "REGISTER", &uri);
        assert!(response.eq_ignore_ascii_case(&expected), "a forged digest was accepted");
    }
}
