//! Ingress: the gateway listener's protocols. Each parses and validates its protocol and hands
//! the gateway an operation; it knows nothing of backends. Today: the fallback for unknown
//! routes. REST, GraphQL, WebSocket and gRPC ingress arrive with their issues.

pub mod respond;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, Uri};
use axum::response::Response;

use crate::error::ErrorCode;
use crate::gateway::Gateway;

/// The gateway listener's router.
pub fn gateway_router(gateway: Arc<Gateway>) -> Router {
    Router::new().fallback(unknown_route).with_state(gateway)
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    respond::error_response(ErrorCode::UnknownRoute, &format!("no route matches {method} {}", uri.path()))
}
