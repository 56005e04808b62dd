//! Replays the committed RTP fuzz corpus (`fuzz/corpus/rtp/`: seeds and every regression the
//! fuzzer found) through the RTP target's property checks, on the stable toolchain.

#[path = "../fuzz/src/media.rs"]
#[allow(dead_code, missing_docs)]
mod checks;

use std::path::Path;

#[test]
fn rtp_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/rtp");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| checks::rtp(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
        n += 1;
    }
    assert!(n >= 8, "{n} seeds");
}
