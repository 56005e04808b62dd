//! Replays the committed fuzz corpus (`fuzz/corpus/`: seeds and every regression the fuzzer
//! found) through the same property checks the fuzz targets run, on the stable toolchain and
//! without libFuzzer, so a fixed crash stays fixed.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code, missing_docs)]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
        n += 1;
    }
    n
}

#[test]
fn sip_parse_corpus() {
    assert!(replay("sip_parse", checks::datagram) >= 66);
}

#[test]
fn sip_framer_corpus() {
    assert!(replay("sip_framer", checks::stream) >= 66);
}

#[test]
fn sdp_corpus() {
    assert!(replay("sdp", checks::sdp) >= 10);
}

#[test]
fn digest_corpus() {
    assert!(replay("digest", checks::digest) >= 3);
}
