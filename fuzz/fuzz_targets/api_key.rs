//! libFuzzer entry point of the `api_key` target (see `tokengate_fuzz::api_key`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate_fuzz::api_key(data));
