//! Message-layer throughput: parse plus the typed access a UAS does on every request, for a trunk
//! INVITE with SDP, an agent REGISTER with digest credentials, and the whole torture corpus
//! (parse, check, classify); printing (the INVITE back to bytes, its 100 Trying built and
//! printed); and the transaction layer's lookup of a retransmitted INVITE among 1,000 live server
//! transactions (match, absorb, resend the 100). Criterion reports elements per second, which is
//! messages per second on one core (the benchmark is single-threaded).
//!
//! `cargo bench --bench sip_parse`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tongdai::sip::check::{Capabilities, check_request, check_response, refuse_unparsable};
use tongdai::sip::message::{Message, Response, parse_datagram};
use tongdai::sip::transaction::timer::TimerValues;
use tongdai::sip::transaction::{Received, Transactions};
use tongdai::sip::transport::{Flow, Transport};

const TRUNK_INVITE: &[u8] = include_bytes!("../tests/data/captures/trunk-invite.sip");
const AGENT_REGISTER: &[u8] = include_bytes!("../tests/data/captures/baresip-register-auth.sip");

/// The typed reads a UAS makes before a request reaches the transaction user.
fn typed_access(m: &Message) -> usize {
    let h = m.headers();
    let mut n = 0;
    n += h.top_via().map(|v| v.branch().map_or(0, str::len)).unwrap_or(0);
    n += h.from().map(|f| f.tag().map_or(0, str::len)).unwrap_or(0);
    n += h.to().map(|t| t.uri.as_str().len()).unwrap_or(0);
    n += h.call_id().map(str::len).unwrap_or(0);
    n += h.cseq().map(|c| c.seq as usize).unwrap_or(0);
    n += h.max_forwards().ok().flatten().map_or(0, usize::from);
    n += h.content_type().ok().flatten().map_or(0, |c| c.subtype.len());
    n += h.contacts().map(|_| 1).unwrap_or(0);
    n
}

fn corpus() -> Vec<Bytes> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for sub in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("corpus directory") {
            out.push(Bytes::from(std::fs::read(e.expect("entry").path()).expect("file")));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip_parse");
    g.throughput(Throughput::Elements(1));
    let invite = Bytes::from_static(TRUNK_INVITE);
    g.bench_function("trunk_invite", |b| {
        b.iter(|| {
            let m = parse_datagram(black_box(invite.clone())).expect("parses");
            typed_access(&m)
        })
    });
    g.bench_function("trunk_invite_parse_only", |b| {
        b.iter(|| parse_datagram(black_box(invite.clone())).expect("parses"))
    });
    let register = Bytes::from_static(AGENT_REGISTER);
    g.bench_function("agent_register", |b| {
        b.iter(|| {
            let m = parse_datagram(black_box(register.clone())).expect("parses");
            let creds = m.headers().authorization().expect("credentials");
            typed_access(&m) + creds[0].uri().map_or(0, str::len)
        })
    });
    let files = corpus();
    let caps = Capabilities::tongdai();
    g.throughput(Throughput::Elements(files.len() as u64));
    g.bench_function("torture_corpus", |b| {
        b.iter(|| {
            let mut accepted = 0;
            for f in &files {
                match parse_datagram(black_box(f.clone())) {
                    Ok(Message::Request(r)) => accepted += check_request(&r, &caps).is_ok() as u32,
                    Ok(Message::Response(r)) => accepted += check_response(&r).is_ok() as u32,
                    Err(e) => {
                        black_box(refuse_unparsable(&e));
                    }
                }
            }
            accepted
        })
    });
    g.finish();
}

fn print(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip_print");
    g.throughput(Throughput::Elements(1));
    let Ok(Message::Request(invite)) = parse_datagram(Bytes::from_static(TRUNK_INVITE)) else {
        panic!("the capture is an INVITE");
    };
    g.bench_function("trunk_invite_to_bytes", |b| b.iter(|| black_box(&invite).to_bytes()));
    g.bench_function("trying_for_invite", |b| {
        b.iter(|| Response::for_request(black_box(&invite), 100, None).to_bytes())
    });
    g.finish();
}

/// The trunk INVITE with its top Via's branch replaced by `branch`.
fn invite_with_branch(branch: &str) -> Bytes {
    let text = String::from_utf8_lossy(TRUNK_INVITE);
    let start = text.find(";branch=").expect("the capture has a branch") + ";branch=".len();
    let end = start + text[start..].find([';', '\r']).expect("ends");
    Bytes::from(format!("{}{branch}{}", &text[..start], &text[end..]))
}

fn transaction_lookup(c: &mut Criterion) {
    let flow = Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse().expect("address"),
        remote: "127.0.0.1:5080".parse().expect("address"),
    };
    let mut txns = Transactions::new(TimerValues::default(), 7);
    let t0 = std::time::Instant::now();
    let request = |i: usize| match parse_datagram(invite_with_branch(&format!("z9hG4bKbench{i}"))) {
        Ok(Message::Request(r)) => r,
        _ => panic!("the INVITE parses"),
    };
    for i in 0..1000 {
        assert!(matches!(txns.recv_request(t0, flow, request(i)), Received::New { .. }));
        while txns.poll_transmit().is_some() {}
    }
    let again = request(500);
    let mut g = c.benchmark_group("transaction");
    g.throughput(Throughput::Elements(1));
    g.bench_function("retransmitted_invite_among_1000", |b| {
        b.iter(|| {
            let r = txns.recv_request(t0, flow, black_box(again.clone()));
            while let Some(t) = txns.poll_transmit() {
                black_box(t);
            }
            r
        })
    });
    g.finish();
}

criterion_group!(benches, bench, print, transaction_lookup);
criterion_main!(benches);
