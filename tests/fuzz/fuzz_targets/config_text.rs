#![no_main]
//! cargo-fuzz entry for the `config_text` target (its body and properties: targets/config_text.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::config_text::run(data));
