#![no_main]
//! Fuzz target: see `gatehouse_tests::fuzz::markdown_render`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzz::markdown_render(data));
