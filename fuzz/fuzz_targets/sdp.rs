//! Fuzz target: an SDP body through the parser, offer/answer and printer (see
//! `tongdai_fuzz::sdp`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tongdai_fuzz::sdp(data));
