#![no_main]
//! cargo-fuzz entry for the `graphql_document` target (its body and properties: targets/graphql_document.rs).

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::graphql_document::run(data));
