#![no_main]
//! Fuzz target: see `gatehouse_tests::fuzz::bundle_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzz::bundle_file(data));
