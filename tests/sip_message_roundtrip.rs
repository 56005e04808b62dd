//! Property: the printer is canonical and the parser reads it back unchanged,
//! `parse(print(m)) == m`, and printing is stable, `print(parse(print(m))) == print(m)`.

use bytes::Bytes;
use proptest::prelude::*;
use tongdai::sip::message::{
    HeaderName, Headers, Message, Method, Request, Response, Uri, parse_datagram,
};

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        proptest::sample::select(Method::KNOWN.to_vec()),
        "[A-Z][A-Za-z0-9!%*_+`'~.-]{0,12}".prop_map(|s| Method::from_token(&s)),
    ]
}

fn uri() -> impl Strategy<Value = Uri> {
    let sip = (
        proptest::option::of("[a-z0-9._+-]{1,12}"),
        prop_oneof![
            "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}".boxed(),
            any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])).boxed(),
            any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))).boxed(),
        ],
        proptest::option::of(1u16..),
        proptest::collection::vec("[a-z]{1,6}(=[a-z0-9]{1,6})?", 0..3),
        any::<bool>(),
    )
        .prop_map(|(user, host, port, params, sips)| {
            let mut s = String::from(if sips { "sips:" } else { "sip:" });
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for p in params {
                s.push(';');
                s.push_str(&p);
            }
            s
        });
    prop_oneof![
        4 => sip,
        1 => "\\+?[0-9]{1,15}(;phone-context=[a-z.]{1,10})?".prop_map(|n| format!("tel:{n}")),
        1 => "[a-z][a-z0-9+.-]{0,6}:[a-zA-Z0-9/._-]{1,20}",
    ]
    .prop_map(|s| Uri::parse(&s).unwrap())
}

/// A raw header value as the parser leaves it: no line ends, no white space at either end; any
/// other octet, UTF-8 or not.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let inner = prop_oneof![
        8 => 0x21u8..=0x7e,
        1 => Just(b' '),
        1 => Just(b'\t'),
        1 => 0x80u8..=0xff,
    ];
    (0x21u8..=0x7e, proptest::collection::vec(inner, 0..40), 0x21u8..=0x7e).prop_map(
        |(first, mut mid, last)| {
            mid.insert(0, first);
            if !mid.is_empty() {
                mid.push(last);
            }
            mid
        },
    )
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        // Known names in any case, compact forms included: they come back canonical.
        proptest::sample::select(vec![
            "via",
            "V",
            "From",
            "t",
            "CALL-ID",
            "i",
            "CSeq",
            "Max-Forwards",
            "m",
            "Route",
            "Record-Route",
            "k",
            "Allow",
            "Accept",
            "User-Agent",
            "Expires",
        ])
        .prop_map(str::to_owned),
        "X-[A-Za-z0-9-]{1,12}",
    ]
}

fn headers() -> impl Strategy<Value = Headers> {
    proptest::collection::vec((header_name(), value()), 0..12).prop_map(|list| {
        let mut h = Headers::new();
        for (n, v) in list {
            h.push(HeaderName::new(&n), v);
        }
        h
    })
}

fn body() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from)
}

/// The printer always writes Content-Length; a message that already carries the right one is a
/// fixed point.
fn with_length(mut headers: Headers, body: &Bytes) -> Headers {
    headers.set("Content-Length", body.len().to_string());
    headers
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (method(), uri(), headers(), body()).prop_map(|(method, uri, headers, body)| {
            Message::Request(Request { method, uri, headers: with_length(headers, &body), body })
        }),
        (100u16..=699, "[ -~]{0,20}", headers(), body()).prop_map(
            |(status, reason, headers, body)| {
                Message::Response(Response {
                    status,
                    reason: reason.trim_matches([' ', '\t']).to_owned(),
                    headers: with_length(headers, &body),
                    body,
                })
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn print_then_parse_is_identity(m in message()) {
        let printed = m.to_bytes();
        let parsed = parse_datagram(printed.clone()).unwrap();
        prop_assert_eq!(&parsed, &m);
        prop_assert_eq!(parsed.to_bytes(), printed);
    }

    #[test]
    fn stream_framer_agrees_with_datagrams(ms in proptest::collection::vec(message(), 1..4),
                                           chunk in 1usize..64) {
        let mut wire = Vec::new();
        for m in &ms {
            wire.extend_from_slice(&m.to_bytes());
        }
        let mut framer = tongdai::sip::message::StreamFramer::new();
        let mut out = Vec::new();
        for c in wire.chunks(chunk) {
            framer.push(c);
            while let Some(f) = framer.pop().unwrap() {
                out.push(f);
            }
        }
        let expected: Vec<_> =
            ms.into_iter().map(tongdai::sip::message::Frame::Message).collect();
        prop_assert_eq!(out, expected);
    }
}

#[test]
fn canonical_printing() {
    let mut r = Request::new(Method::Options, Uri::parse("sip:111@192.0.2.1").unwrap());
    r.headers.push(HeaderName::new("v"), "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1");
    r.headers.push(HeaderName::new("l"), "99");
    r.body = Bytes::from_static(b"x");
    assert_eq!(
        r.to_bytes(),
        "OPTIONS sip:111@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
         Content-Length: 1\r\n\r\nx"
    );
}
