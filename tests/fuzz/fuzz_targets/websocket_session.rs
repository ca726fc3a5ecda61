#![no_main]
//! cargo-fuzz entry for the `websocket_session` target (its body and properties: targets/websocket_session.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::websocket_session::run(data));
