//! Fuzz target: a chunked byte stream through the stream framer (see `tongdai_fuzz::stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tongdai_fuzz::stream(data));
