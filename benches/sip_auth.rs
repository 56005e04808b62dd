//! Digest verification throughput: parsing the Authorization value, checking the nonce's seal, the
//! response and the replay table, one fresh nonce per request as a REGISTER storm has it.
//! `cargo bench --bench sip_auth`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tongdai::config::{Credential, Secret};
use tongdai::sip::auth::{
    Algorithm, ClientAnswer, DigestServer, DigestServerConfig, authorization,
};
use tongdai::sip::message::{Challenge, Credentials, Method};

fn lookup(user: &str) -> Option<&'static Credential> {
    static SECRET: std::sync::OnceLock<Credential> = std::sync::OnceLock::new();
    (user == "1001")
        .then(|| SECRET.get_or_init(|| Credential::Password(Secret::new("secret".into()))))
}

fn verify(c: &mut Criterion) {
    let t0 = Instant::now();
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        // One server for setup (challenges) and measurement (verify): a RefCell lends it to both.
        let server = std::cell::RefCell::new(DigestServer::new(
            DigestServerConfig::new("tongdai"),
            [7; 32],
            t0,
        ));
        c.bench_function(&format!("digest verify {}", algorithm.name()), |b| {
            b.iter_batched(
                || {
                    let ch = Challenge::parse(
                        &server.borrow_mut().challenge(t0, &[algorithm], false)[0],
                    )
                    .unwrap();
                    let answer = ClientAnswer {
                        user: "1001",
                        password: "secret",
                        method: &Method::Register,
                        uri: "sip:127.0.0.1:5060;transport=udp",
                        cnonce: "030e4ed69e16de99",
                        nc: 1,
                    };
                    Credentials::parse(&authorization(&ch, &answer).unwrap()).unwrap()
                },
                |creds| {
                    let ok =
                        server.borrow_mut().verify(t0, &Method::Register, &creds, lookup).is_ok();
                    black_box(ok)
                },
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);
