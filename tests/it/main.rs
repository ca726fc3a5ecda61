//! Switchyard's integration tests: one test binary, real servers on ephemeral loopback ports.

mod cli_check;
mod lifecycle;
mod registry;
mod rest;
mod server;
mod support;
