//! Fuzz target: one datagram on a media port (see `fuzz/src/media.rs`, shared with the corpus
//! replay in `tests/media_rtp_fuzz.rs`).
#![no_main]

#[path = "../src/media.rs"]
mod media;

libfuzzer_sys::fuzz_target!(|data: &[u8]| media::rtp(data));
