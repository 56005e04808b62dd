//! Fuzz target: digest credentials around a real nonce through the server's verification (see
//! `tongdai_fuzz::digest`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tongdai_fuzz::digest(data));
