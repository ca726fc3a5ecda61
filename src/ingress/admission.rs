//! Admission: what every request passes before routing, in one step (called as a function on
//! each way through the listener; an axum layer would cost allocations per request): a slot under
//! `listener.max_in_flight` (else 503 and `Retry-After`), a head whose framing and header names
//! are sound (`request_head`), and a URI within `listener.max_uri_bytes` (else 414). Refusals
//! are in the request's protocol.

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, Version, header};

use super::IngressState;
use super::request_head::{check_head, refuse_before_routing};
use crate::error::ErrorCode;

/// Admits `request` to `inner` (the rest of the way), or refuses it.
pub(super) async fn admit_with<F, Fut>(state: &IngressState, mut request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let snapshot = state.gateway.snapshot();
    let listener = &snapshot.config.listener;
    let limit = listener.max_in_flight as usize;
    let Some(_slot) = state.in_flight.enter(limit) else {
        let message = format!("the gateway is handling {limit} requests, its limit (listener.max_in_flight); retry");
        let mut response = refuse_before_routing(&request, ErrorCode::Unavailable, &message);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let version = request.version();
    if let Err(refusal) = check_head(version, request.headers_mut(), listener.headers_with_underscores) {
        let mut response = refuse_before_routing(&request, refusal.code, &refusal.message);
        if refusal.close && version <= Version::HTTP_11 {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return response;
    }
    let uri_limit = listener.max_uri_bytes as usize;
    let length = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if length > uri_limit {
        let message = format!("the request URI is {length} bytes; the limit is {uri_limit} (listener.max_uri_bytes)");
        return refuse_before_routing(&request, ErrorCode::UriTooLong, &message);
    }
    drop(snapshot);
    inner(request).await
}
