#![no_main]
//! cargo-fuzz entry for the `http_template` target (its body and properties: targets/http_template.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::http_template::run(data));
