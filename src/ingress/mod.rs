//! Ingress: the gateway listener's protocols. Each parses and validates its protocol and hands
//! the gateway an operation (or, for native gRPC, a request to splice); it knows nothing of
//! backends. `rest` (JSON REST transcoding, with `rest_stream`), `grpc` (native gRPC and, through
//! tonic-web, gRPC-Web; `grpc_local` answers health and reflection), `forward` (header and
//! deadline rules) and `respond` (every response shape). GraphQL and WebSocket arrive with their
//! issues.

mod compress;
mod cors;
mod encoding;
mod etag;
pub(crate) mod forward;
mod graphql;
pub use graphql::{Caches as GraphqlCaches, plan_query};
mod grpc;
pub use grpc::is_native_grpc;
mod grpc_local;
mod observe;
pub use observe::Observed;
mod admission;
mod overload;
pub mod request_head;
pub mod respond;
mod rest;
mod rest_answer_pieces;
mod rest_output;
mod rest_stream;
mod rest_ws;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{any, get};
use bytes::Bytes;
use tower::{Layer, ServiceExt};

use crate::gateway::Gateway;
use grpc_local::LocalGrpcCache;

/// What the gateway listener's handlers share.
struct IngressState {
    gateway: Arc<Gateway>,
    local_grpc: LocalGrpcCache,
    openapi: ArcSwapOption<(u64, Bytes)>,
    persisted: graphql::PersistedQueries,
    graphql_caches: graphql::Caches,
    in_flight: overload::InFlight,
}

/// The gateway listener's ways, each a chain of function calls (an axum layer would clone a
/// boxed service and box its future on every request). Every request is observed (outermost)
/// and admitted. The main way then compresses answers, applies CORS and routes: the fixed
/// endpoints, then protocol dispatch. Native gRPC requests take a shorter way with no route
/// table, CORS or compression (browsers speak gRPC-Web, which takes the main way).
pub fn gateway_router(gateway: Arc<Gateway>) -> crate::server::Routes<Observed> {
    let buffer = gateway.snapshot().config.graphql.subscriptions.buffer as usize;
    let state = Arc::new(IngressState {
        gateway,
        local_grpc: LocalGrpcCache::default(),
        openapi: ArcSwapOption::empty(),
        persisted: graphql::PersistedQueries::default(),
        graphql_caches: graphql::Caches::with_subscription_buffer(buffer),
        in_flight: overload::InFlight::default(),
    });
    let grpc_state = state.clone();
    let grpc: crate::server::Way<Observed> = Arc::new(move |request: Request, peer| {
        let state = grpc_state.clone();
        Box::pin(async move {
            observe::observe_with(&state, request, Some(peer), |request| {
                admission::admit_with(&state, request, |request| native_grpc(&state, request, peer))
            })
            .await
        })
    });
    let router = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/graphql", any(graphql_endpoint))
        .fallback(dispatch)
        .with_state(state.clone());
    let main: crate::server::Way<Observed> = Arc::new(move |mut request: Request, peer| {
        // The main way's handlers find the client's address among the request's extensions.
        request.extensions_mut().insert(crate::server::ClientAddr(peer));
        let (state, router) = (state.clone(), router.clone());
        Box::pin(async move {
            let http1 = request.version() <= http::Version::HTTP_11;
            let mut response =
                observe::observe_with(&state, request, Some(peer), |request| main_way(&state, router, request)).await;
            close_when_draining(&state, http1, &mut response);
            response
        })
    });
    crate::server::Routes { main, grpc: Some(grpc) }
}

/// The main way inside observation: the answer compressed by the client's `Accept-Encoding`,
/// CORS, admission, then the route table.
async fn main_way(state: &IngressState, mut router: Router, request: Request) -> Response {
    let coding = compress::negotiate(request.headers());
    let answer = cors::cors_with(state, request, |request| {
        admission::admit_with(state, request, |request| {
            // A Router is always ready (its poll_ready does nothing), so it is called directly.
            let routed = tower::Service::call(&mut router, request);
            async move { routed.await.unwrap_or_else(|never| match never {}) }
        })
    })
    .await;
    compress::compress(answer, coding)
}

/// Native gRPC (the listener sends only `application/grpc` requests this way).
async fn native_grpc(state: &IngressState, request: Request, peer: std::net::SocketAddr) -> Response {
    grpc::handle_grpc(state.gateway.served(), &state.local_grpc, request, Some(peer)).await
}

/// While the gateway drains (`listener.shutdown_delay`), HTTP/1 answers carry `Connection:
/// close`: a load balancer's pooled connections end after their next answer instead of being
/// closed under a request it is sending when the listener shuts.
fn close_when_draining<B>(state: &IngressState, http1: bool, response: &mut http::Response<B>) {
    if http1 && state.gateway.is_draining() {
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
}

/// `/graphql`: GraphQL over HTTP.
async fn graphql_endpoint(State(state): State<Arc<IngressState>>, request: Request) -> Response {
    graphql::handle_graphql(state.gateway.clone(), &state.persisted, &state.graphql_caches, request).await
}

/// `/openapi.json`, built once per snapshot generation.
async fn openapi(State(state): State<Arc<IngressState>>) -> Response {
    let snapshot = state.gateway.snapshot();
    let cached = state.openapi.load_full().filter(|c| c.0 == snapshot.generation);
    let body = match cached {
        Some(cached) => cached.1.clone(),
        None => {
            let body = Bytes::from(serde_json::to_vec_pretty(&snapshot.openapi()).unwrap_or_default());
            state.openapi.store(Some(Arc::new((snapshot.generation, body.clone()))));
            body
        }
    };
    respond::json_response(http::StatusCode::OK, body.to_vec())
}

/// Picks the protocol by content type: gRPC-Web, native gRPC, else REST.
async fn dispatch(State(state): State<Arc<IngressState>>, request: Request) -> Response {
    match grpc::grpc_wire(request.headers()) {
        Some(grpc::GrpcWire::Web) => grpc_web(state, request).await,
        Some(grpc::GrpcWire::Native) => {
            let peer = client_addr(&request);
            grpc::handle_grpc(state.gateway.served(), &state.local_grpc, request, peer).await
        }
        None => rest::handle_rest(state.gateway.clone(), request).await,
    }
}

/// The client's address, which the listener sets on every request of the main way.
fn client_addr<B>(request: &http::Request<B>) -> Option<std::net::SocketAddr> {
    request.extensions().get::<crate::server::ClientAddr>().map(|c| c.0)
}

/// gRPC-Web: tonic-web translates the request to gRPC and the answer back (trailers become a
/// body frame; `-text` is base64).
async fn grpc_web(state: Arc<IngressState>, request: Request) -> Response {
    let inner = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let state = state.clone();
        async move {
            // tonic-web passes on the size hint of the text it decoded, which no longer matches the
            // bytes; an unsized body keeps the backend's HTTP/2 length check honest.
            let request =
                request.map(|body| axum::body::Body::from_stream(axum::body::Body::new(body).into_data_stream()));
            let peer = client_addr(&request);
            let response = grpc::handle_grpc(state.gateway.served(), &state.local_grpc, request, peer).await;
            Ok::<_, std::convert::Infallible>(response.map(tonic::body::Body::new))
        }
    });
    let service = tonic_web::GrpcWebLayer::new().layer(inner);
    match service.oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}
