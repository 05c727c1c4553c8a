//! libFuzzer entry point of the `classification` target (see `tokengate_fuzz::classification`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate_fuzz::classification(data));
