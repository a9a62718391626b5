#![no_main]
//! Fuzz target: see `gatehouse_tests::fuzz::posts`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzz::posts(data));
