#![no_main]
//! cargo-fuzz entry for the `grpc_frames` target (its body and properties: targets/grpc_frames.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::grpc_frames::run(data));
