//! Switchyard's integration tests: one test binary, real servers on ephemeral loopback ports.

mod auth;
mod caching;
mod authorization;
mod backend_connections;
mod cli_check;
mod coalescing;
mod defer;
mod dns;
mod graphql;
mod graphql_sources;
mod graphql_schema;
mod hardening;
mod grpc;
mod json_roundtrip;
mod lifecycle;
mod pools;
mod rate_limits;
mod registry;
mod rest;
mod rest_stream;
mod server;
mod stitching;
mod subscriptions;
mod tls_listener;
mod transforms;
mod support;
