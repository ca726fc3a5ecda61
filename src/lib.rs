//! Switchyard: one gateway that lets clients reach gRPC and REST backends as stitched GraphQL,
//! JSON REST transcoded to gRPC, WebSocket subscriptions, and plain load-balanced gRPC.
//!
//! The modules follow the data flow in DESIGN.md: ingress → operation → policy → plan →
//! execute → upstream, with everything served held in one immutable `Snapshot`.

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod execute;
pub mod gateway;
pub mod ingress;
pub mod operation;
pub mod plan;
pub mod registry;
pub mod server;
pub mod snapshot;
pub mod transcode;
pub mod upstream;
