#![no_main]
//! cargo-fuzz entry for the `jwt_token` target (its body and properties: targets/jwt_token.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::jwt_token::run(data));
