//! The admin listener: liveness, readiness, metrics, snapshot reload, the registry, clusters,
//! the cache and usage. Admin routes need the bearer token when one is configured; the probes
//! never do.
//! Admin may swap the snapshot; it never serves gateway traffic.

mod descriptors;
mod reload;
mod shared_registry;
mod watch;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::error::ErrorCode;
use crate::gateway::Gateway;
use crate::ingress::respond::error_response;

pub use reload::reload_snapshot;
pub use shared_registry::{
    SharedRegistryFollow, SharedRegistrySync, Status as SharedRegistryStatus, follow_shared_registry,
};
pub use watch::{SourceWatch, watch_sources};

/// The admin listener's router.
pub fn admin_router(gateway: Arc<Gateway>) -> Router {
    let protected = Router::new()
        .route("/admin/reload", post(reload_handler))
        .route("/admin/clusters", get(clusters))
        .route("/admin/usage", get(usage))
        .route("/admin/cache", get(cache_stats))
        .route("/admin/cache/invalidate", post(invalidate_cache))
        .route("/metrics", get(metrics))
        .route("/admin/config", get(config))
        .route("/admin/analytics", get(analytics))
        .route(
            "/admin/descriptors",
            get(descriptors::list)
                .post(descriptors::add)
                .layer(axum::extract::DefaultBodyLimit::max(descriptors::MAX_SET_BYTES)),
        )
        .route("/admin/descriptors/{name}", axum::routing::delete(descriptors::remove))
        .route("/admin/descriptors/{name}/rollback", post(descriptors::rollback))
        .route_layer(middleware::from_fn_with_state(gateway.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(|| async { error_response(ErrorCode::UnknownRoute, "no such admin route") })
        .with_state(gateway)
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    let served = gateway.served();
    let snapshot = served.snapshot.clone();
    // A cluster whose every endpoint fails its health checks makes the gateway unready.
    let unhealthy = served.upstreams.unhealthy_clusters();
    // A shared registry never read leaves the instance without its services: not ready. One
    // that became unreachable leaves it serving its last snapshot: ready, and said below.
    let shared = gateway.shared_registry().map(|shared| (shared.status(), shared.generation()));
    let ready = gateway.is_ready() && unhealthy.is_empty() && shared.as_ref().is_none_or(|(s, _)| s.loaded);
    let registry = match &shared {
        None => json!({"store": if gateway.sources().no_descriptor_dir { "none" } else { "directory" }}),
        Some((status, generation)) => json!({
            "store": "redis",
            "loaded": status.loaded,
            "connected": status.connected,
            "since": humantime::format_rfc3339_seconds(status.since).to_string(),
            "error": status.error,
            "generation": generation,
            "applied": status.applied,
            "refused": status.refused.as_ref().map(|(generation, why)| json!({"generation": generation, "problems": why})),
        }),
    };
    let services: serde_json::Map<String, serde_json::Value> = snapshot
        .services
        .iter()
        .map(|(service, cluster)| (service.clone(), cluster.as_deref().map_or(json!(null), |c| json!(c))))
        .collect();
    let body = json!({
        "ready": ready,
        "generation": snapshot.generation,
        "registrations": snapshot.registry.registrations.iter().map(|r| json!({"name": r.name, "digest": r.digest})).collect::<Vec<_>>(),
        "services": services,
        "unhealthy_clusters": unhealthy,
        "registry": registry,
        "warnings": snapshot.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Every backend cluster, its balancer and each endpoint's state.
async fn clusters(State(gateway): State<Arc<Gateway>>) -> Response {
    Json(gateway.served().upstreams.describe()).into_response()
}

/// `GET /metrics`: Prometheus text, or OpenMetrics when the scraper's `Accept` asks for it.
async fn metrics(State(gateway): State<Arc<Gateway>>, headers: http::HeaderMap) -> Response {
    let served = gateway.served();
    let snapshot = &served.snapshot;
    let (endpoints, clusters) = served.upstreams.samples();
    let (entries, bytes) = snapshot.cache.stats();
    let (hits, stale, misses) = snapshot.cache.lookups();
    let scrape = crate::telemetry::metrics::Scrape {
        generation: snapshot.generation,
        runtime_tasks: tokio::runtime::Handle::try_current().ok().map(|h| h.metrics().num_alive_tasks()),
        shared_registry: gateway.shared_registry().map(|shared| {
            let status = shared.status();
            crate::telemetry::metrics::SharedRegistrySample { connected: status.connected, generation: status.applied }
        }),
        endpoints,
        clusters,
        cache: crate::telemetry::metrics::CacheSample {
            hits,
            misses,
            stale,
            entries,
            bytes,
            max_bytes: snapshot.cache.max_bytes(),
        },
    };
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
    let text = gateway.telemetry().metrics.render(scrape, openmetrics);
    let content_type = if openmetrics {
        crate::telemetry::metrics::OPENMETRICS_TEXT
    } else {
        crate::telemetry::metrics::PROMETHEUS_TEXT
    };
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// `GET /admin/analytics?window=1h[&consumer=corp/ada]`: requests, errors and latency per
/// consumer and operation over the window (`1m`..`60m`, `1h`..`24h`, `all`; default `1h`).
async fn analytics(
    State(gateway): State<Arc<Gateway>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    use crate::telemetry::usage::{Window, current_minute};
    let text = query.get("window").map_or("1h", String::as_str);
    let window = match Window::parse(text) {
        Ok(window) => window,
        Err(message) => return error_response(ErrorCode::InvalidArgument, &format!("window: {message}")),
    };
    let rows = gateway.telemetry().usage.report(window, current_minute(), query.get("consumer").map(String::as_str));
    let mut consumers: Vec<serde_json::Value> = Vec::new();
    for row in rows {
        let figures = row.figures;
        let operation = json!({
            "protocol": row.protocol,
            "operation": row.operation,
            "requests": figures.requests,
            "errors": figures.errors,
            "latency_ms": {
                "mean": (figures.latency_micros as f64 / figures.requests.max(1) as f64).round() / 1000.0,
                "max": figures.max_micros as f64 / 1000.0,
            },
        });
        match consumers.last_mut().filter(|c| c["consumer"] == row.consumer.as_str()) {
            Some(consumer) => {
                consumer["requests"] = json!(consumer["requests"].as_u64().unwrap_or(0) + figures.requests);
                consumer["errors"] = json!(consumer["errors"].as_u64().unwrap_or(0) + figures.errors);
                if let Some(operations) = consumer["operations"].as_array_mut() {
                    operations.push(operation);
                }
            }
            None => consumers.push(json!({
                "consumer": row.consumer,
                "requests": figures.requests,
                "errors": figures.errors,
                "operations": [operation],
            })),
        }
    }
    Json(json!({"window": text, "consumers": consumers})).into_response()
}

/// `GET /admin/config`: the config serving now, credentials redacted.
async fn config(State(gateway): State<Arc<Gateway>>) -> Response {
    let snapshot = gateway.snapshot();
    Json(json!({"generation": snapshot.generation, "config": snapshot.config.redacted()})).into_response()
}

/// The fetch cache's entries and size.
async fn cache_stats(State(gateway): State<Arc<Gateway>>) -> Response {
    let snapshot = gateway.snapshot();
    let (entries, bytes) = snapshot.cache.stats();
    Json(json!({"entries": entries, "bytes": bytes, "max_bytes": snapshot.cache.max_bytes()})).into_response()
}

/// `{"methods": ["pkg.Service/Method"], "routes": ["GET /v1/{name=shelves/*}"], "types": ["Book"],
/// "prefix": "grpc /pkg.Service/"}`: drops the cached answers of those methods and of the
/// routes' methods, of fetches for fields of those GraphQL types (or returning them), and whose
/// key starts with the prefix. A route that is not served is a 400 naming it.
async fn invalidate_cache(State(gateway): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Invalidate {
        #[serde(default)]
        methods: Vec<String>,
        #[serde(default)]
        routes: Vec<String>,
        #[serde(default)]
        types: Vec<String>,
        #[serde(default)]
        prefix: Option<String>,
    }
    let request: Invalidate = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let body = json!({"code": ErrorCode::InvalidArgument.grpc_code(), "message": format!("the body is not an invalidation: {error}")});
            return (http::StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let bad_request = |message: String| {
        let body = json!({"code": ErrorCode::InvalidArgument.grpc_code(), "message": message});
        (http::StatusCode::BAD_REQUEST, Json(body)).into_response()
    };
    if request.methods.is_empty() && request.routes.is_empty() && request.types.is_empty() && request.prefix.is_none() {
        return bad_request("name methods, routes, types or a prefix to invalidate".into());
    }
    let snapshot = gateway.snapshot();
    let mut tags: Vec<String> = request.methods.iter().map(|m| m.replace('/', ".")).collect();
    for (i, pattern) in request.routes.iter().enumerate() {
        let before = tags.len();
        for entry in snapshot.routes.routes() {
            if crate::policy::targets::route_matches(pattern, entry.method.as_str(), &entry.template.to_string()) {
                tags.push(entry.value.method.full_name().to_owned());
            }
        }
        if tags.len() == before {
            return bad_request(format!("routes[{i}]: no REST route is `{pattern}` (`switchyard routes` lists them)"));
        }
    }
    tags.extend(request.types);
    let invalidated = snapshot.cache.invalidate(&tags, request.prefix.as_deref());
    Json(json!({ "invalidated": invalidated })).into_response()
}

/// Rate-limit and quota counters per consumer.
async fn usage(State(gateway): State<Arc<Gateway>>) -> Response {
    Json(gateway.snapshot().limiter.usage_report().await).into_response()
}

async fn reload_handler(State(gateway): State<Arc<Gateway>>) -> Response {
    match reload_snapshot(&gateway).await {
        Ok(snapshot) => Json(json!({
            "generation": snapshot.generation,
            "warnings": snapshot.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(problems) => {
            let current = gateway.snapshot().generation;
            let body = json!({
                "code": ErrorCode::InvalidArgument.grpc_code(),
                "message": format!("reload refused; generation {current} keeps serving"),
                "generation": current,
                "problems": problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

async fn require_token(State(gateway): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let expected = gateway.snapshot().config.admin.token.clone().filter(|t| !t.is_empty());
    if let Some(expected) = expected {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes())) {
            return error_response(
                ErrorCode::Unauthenticated,
                "the admin API needs `Authorization: Bearer <admin.token>`",
            );
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
