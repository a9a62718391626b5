#![no_main]
//! Fuzz target: see `gatehouse_tests::fuzz::front_matter`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzz::front_matter(data));
