#![no_main]
//! cargo-fuzz entry for the `descriptor_set` target (its body and properties: targets/descriptor_set.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::descriptor_set::run(data));
