//! libFuzzer entry point of the `extraction` target (see `tokengate_fuzz::extraction`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate_fuzz::extraction(data));
