#![no_main]
//! cargo-fuzz entry for the `json_message` target (its body and properties: targets/json_message.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::json_message::run(data));
