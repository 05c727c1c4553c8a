//! libFuzzer entry point of the `jwt` target (see `tokengate_fuzz::jwt`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate_fuzz::jwt(data));
