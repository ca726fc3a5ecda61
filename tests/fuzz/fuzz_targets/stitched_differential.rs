#![no_main]
//! cargo-fuzz entry for the `stitched_differential` target (its body and properties: targets/stitched_differential.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::stitched_differential::run(data));
