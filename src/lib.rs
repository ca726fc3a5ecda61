//! Switchyard: one gateway that lets clients reach gRPC and REST backends as stitched GraphQL,
//! JSON REST transcoded to gRPC, WebSocket subscriptions, and plain load-balanced gRPC.
//!
//! The modules follow the data flow in DESIGN.md: ingress → operation → policy → plan →
//! execute → upstream, with everything served held in one immutable `Snapshot`. They are
//! listed in dependency order: a module imports only modules listed below it.

pub mod cli;
pub mod demo;
pub mod server;
pub mod admin;
pub mod ingress;
pub mod gateway;
pub mod policy;
pub mod snapshot;
pub mod execute;
pub mod plan;
pub mod cache;
pub mod transform;
pub mod upstream;
pub mod schema;
pub mod transcode;
pub mod registry;
pub mod operation;
pub mod civil_time;
pub mod tree;
pub mod wire_message;
pub mod telemetry;
pub mod config;
pub mod redis_pool;
pub mod error;
