//! Ingress: the gateway listener's protocols. Each parses and validates its protocol and hands
//! the gateway an operation; it knows nothing of backends. Today: JSON REST transcoding
//! (`rest`), with the forwarding rules in `forward` and every response shape in `respond`.
//! GraphQL, WebSocket and native gRPC ingress arrive with their issues.

mod forward;
pub mod respond;
mod rest;
mod rest_stream;

use std::sync::Arc;

use crate::gateway::Gateway;
use axum::Router;

/// The gateway listener's router.
pub fn gateway_router(gateway: Arc<Gateway>) -> Router {
    Router::new().fallback(rest::handle_rest).with_state(gateway)
}
