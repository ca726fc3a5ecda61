//! GraphQL over WebSocket on `/graphql`: the upgrade (the dialect chosen by
//! Sec-WebSocket-Protocol), the two dialects' messages (`protocol`) and the session state machine
//! (`session`). Queries and mutations run over the socket too; subscriptions stream their
//! backend's events, each shaped and stitched like a query.

mod consumers;
mod header_block;
mod operation;
mod protocol;
mod session;

pub(crate) use consumers::ConsumerCounts;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use http::request::Parts;

use super::{Caches, PersistedQueries, Refusal};
use crate::error::ErrorCode;
use crate::gateway::Gateway;
use protocol::Dialect;
use session::{SessionContext, run_session};

/// True for a WebSocket upgrade request.
pub(super) fn is_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Accepts the upgrade and runs a session. A client offering neither subprotocol is accepted
/// and closed with 4406, as graphql-ws servers do, so it learns why.
pub(super) async fn upgrade(
    gateway: Arc<Gateway>,
    persisted: &PersistedQueries,
    caches: &Caches,
    mut parts: Parts,
) -> Response {
    let allowed = &gateway.snapshot().config.listener.websocket_origins;
    if let Some(message) = crate::ingress::cors::websocket_origin_refused(allowed, &parts.headers) {
        return Refusal::new(http::StatusCode::FORBIDDEN, ErrorCode::Forbidden, message).into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let refusal = Refusal::new(rejection.status(), ErrorCode::InvalidArgument, rejection.body_text());
            return refusal.into_response();
        }
    };
    let offered = parts.headers.get(http::header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).unwrap_or("");
    let dialect = Dialect::choose(offered);
    let limit = gateway.snapshot().config.graphql.subscriptions.max_message_bytes as usize;
    let upgrade = match dialect {
        Some(dialect) => upgrade.protocols([dialect.name()]),
        None => upgrade,
    };
    let context = SessionContext {
        gateway: gateway.clone(),
        persisted: persisted.clone(),
        caches: caches.clone(),
        headers: header_block::HeaderBlock::copy(&parts.headers),
        client: parts.extensions.get::<crate::server::ClientAddr>().map(|c| c.0),
        running: caches.running.clone(),
    };
    let sessions = gateway.sessions().clone();
    // tungstenite reserves 128 KiB for reading and for writing per socket by default; idle
    // subscriptions should cost kilobytes, and every send is flushed anyway. The read buffer is
    // what a socket reads at once, not a limit: tungstenite reserves a larger frame's whole
    // length when its header arrives, and clients' messages are small (a subscribe is a few
    // hundred bytes, a connection_init with a token one or two kilobytes).
    upgrade
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_message_size(limit + 1)
        .max_frame_size(limit + 1)
        .on_upgrade(move |socket| {
            let open = context.gateway.telemetry().metrics.websocket_opened();
            sessions.track_future(async move {
                run_session(socket, dialect, context).await;
                drop(open);
            })
        })
}
