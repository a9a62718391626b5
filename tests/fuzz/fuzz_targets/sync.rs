#![no_main]
//! Fuzz target: see `gatehouse_tests::fuzz::sync_message`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzz::sync_message(data));
