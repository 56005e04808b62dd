//! Message-layer throughput: parse plus the typed access a UAS does on every request, for a trunk
//! INVITE with SDP, an agent REGISTER with digest credentials, and the whole torture corpus
//! (parse, check, classify). Criterion reports elements per second, which is messages per second
//! on one core (the benchmark is single-threaded).
//!
//! `cargo bench --bench sip_parse`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tongdai::sip::check::{Capabilities, check_request, check_response, refuse_unparsable};
use tongdai::sip::message::{Message, parse_datagram};

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

criterion_group!(benches, bench);
criterion_main!(benches);
