//! Fuzz target: one datagram through the parser, typed accessors, checks and printer
//! (see `tongdai_fuzz::datagram`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tongdai_fuzz::datagram(data));
