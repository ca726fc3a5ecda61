//! JSON REST calls to a cluster through reqwest (its connection pool, HTTP/1.1 or HTTP/2 by
//! what the backend speaks): the request is built by the planner, the answer comes back as
//! bytes, and a non-2xx status becomes an `UpstreamError::Http` that maps by DESIGN.md's table.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::UpstreamError;
use super::pool::{Balancer, Breaker, InFlight, Pool, RetryBudget, Spec, Target};
use crate::operation::Metadata;

/// Longest backend error message passed on to clients.
const MAX_MESSAGE: usize = 200;

/// One REST request, rendered: method, path and query under the source's base URL, headers
/// and an optional JSON body. Equal requests are the same call (the executor deduplicates).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpRequest {
    /// The method.
    pub method: http::Method,
    /// Path and query, percent-encoded, starting with `/`.
    pub path_and_query: String,
    /// Headers the binding declares.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A JSON body.
    pub body: Option<Bytes>,
    /// Whether the request may be sent again when it fails (an idempotent verb, a GraphQL
    /// query).
    pub idempotent: bool,
}

/// A pooled HTTP client for one cluster: reqwest's connection pool, and the cluster's balancer
/// choosing an endpoint per call.
#[derive(Debug, Clone)]
pub struct HttpClient {
    cluster: String,
    pool: std::sync::Arc<Pool<HttpEndpoint>>,
    hash_on: Option<crate::config::HashOn>,
    breaker: std::sync::Arc<Breaker>,
    retry: std::sync::Arc<RetryBudget>,
    /// The cluster's `timeout`.
    limit: Option<Duration>,
    /// TLS for WebSocket connections to `wss://` endpoints, with the cluster's material.
    websocket_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    coalesce: bool,
}

/// How calls reach one REST endpoint: its base URL and the reqwest pool to send with.
#[derive(Debug)]
pub struct HttpEndpoint {
    /// `scheme://authority` and the endpoint's path prefix, without a trailing `/`.
    base: String,
    client: reqwest::Client,
}

impl super::pool::Handle for HttpEndpoint {
    /// GET the configured path: a 2xx answer passes.
    fn check<'a>(&'a self, config: &'a crate::config::HealthCheckConfig) -> futures_util::future::BoxFuture<'a, bool> {
        Box::pin(async move {
            let answer = self.client.get(format!("{}{}", self.base, config.http_path)).send().await;
            matches!(answer, Ok(response) if response.status().is_success())
        })
    }
}

/// reqwest's pool settings for a cluster's connection settings and TLS material.
fn builder_for(
    settings: &crate::config::ConnectionConfig,
    tls: Option<&super::tls::TlsMaterial>,
) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout.get())
        .tcp_nodelay(true)
        .pool_idle_timeout(settings.idle_timeout.get())
        .no_proxy()
        .http2_keep_alive_timeout(settings.keepalive_timeout.get())
        .http2_keep_alive_while_idle(settings.keepalive_while_idle);
    if !settings.keepalive_interval.get().is_zero() {
        builder = builder.http2_keep_alive_interval(settings.keepalive_interval.get());
    }
    builder = match settings.http_version {
        crate::config::HttpVersion::Auto => builder,
        crate::config::HttpVersion::Http1 => builder.http1_only(),
        crate::config::HttpVersion::Http2 => builder.http2_prior_knowledge(),
    };
    if let Some(tls) = tls {
        builder = tls.http(builder);
    }
    builder
}

/// The endpoint for `target`: written endpoints share the cluster's `shared` pool; an address a
/// name resolved to gets its own, which connects to that address while the URL (so the Host
/// header and TLS name) keeps the name.
fn http_endpoint(
    cluster: &super::Cluster,
    shared: &reqwest::Client,
    target: &Target,
) -> Result<HttpEndpoint, UpstreamError> {
    let refused =
        |e: reqwest::Error| UpstreamError::Internal(format!("cannot create an HTTP client for {}: {e}", cluster.name));
    let Some(name) = &target.resolved_from else {
        let base = target.uri.to_string().trim_end_matches('/').to_owned();
        return Ok(HttpEndpoint { base, client: shared.clone() });
    };
    let uri = &target.uri;
    let ip: std::net::IpAddr = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .parse()
        .map_err(|_| UpstreamError::Internal(format!("{uri} is not an address")))?;
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let client = builder_for(&cluster.connection, cluster.tls.as_ref())
        .resolve(name, std::net::SocketAddr::new(ip, port))
        .build()
        .map_err(refused)?;
    let explicit_port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let path = uri.path().trim_end_matches('/');
    let base = format!("{}://{name}{explicit_port}{path}", uri.scheme_str().unwrap_or("http"));
    Ok(HttpEndpoint { base, client })
}

impl HttpClient {
    /// A client for `cluster`'s endpoints (an endpoint's path, if any, prefixes every
    /// request's), choosing one per call by its balancer, with its health checks and breaker.
    pub fn new(cluster: &super::Cluster) -> Result<Self, UpstreamError> {
        let shared = builder_for(&cluster.connection, cluster.tls.as_ref())
            .build()
            .map_err(|e| UpstreamError::Internal(format!("cannot create an HTTP client for {}: {e}", cluster.name)))?;
        let settings = cluster.clone();
        let spec = Spec {
            cluster: cluster.name.clone(),
            algorithm: cluster.balancer,
            health: cluster.health_check.clone(),
            outlier: cluster.outlier_detection.clone(),
            connect: std::sync::Arc::new(move |target: &Target| http_endpoint(&settings, &shared, target)),
        };
        let pool = Pool::new(spec, cluster.targets())?;
        super::pool::dns::spawn_refresh(cluster, &pool);
        let websocket_tls = match &cluster.tls {
            Some(tls) => Some(std::sync::Arc::new(tls.rustls_client().map_err(|e| {
                UpstreamError::Internal(format!("cluster {}: TLS settings refused: {e}", cluster.name))
            })?)),
            None => None,
        };
        Ok(HttpClient {
            cluster: cluster.name.clone(),
            pool,
            hash_on: cluster.hash_on.clone(),
            breaker: std::sync::Arc::new(Breaker::new(cluster.circuit_breaker.clone())),
            retry: std::sync::Arc::new(RetryBudget::new(cluster.retries.clone())),
            limit: cluster.timeout,
            websocket_tls,
            coalesce: cluster.coalesce,
        })
    }

    /// Whether identical reads in flight may share one call to this cluster.
    pub fn coalesces(&self) -> bool {
        self.coalesce
    }

    /// A number that tells this client (its pool) apart from every other one alive.
    pub fn identity(&self) -> usize {
        std::sync::Arc::as_ptr(&self.pool) as usize
    }

    /// Serves `targets` from now on (a reload changed the endpoints): calls in flight finish
    /// where they are; endpoints in both sets keep their connections and state.
    pub fn retarget(&self, targets: Vec<Target>) -> Result<bool, UpstreamError> {
        self.pool.update(targets)
    }

    /// The balancer over the current members, for their state.
    pub fn balancer(&self) -> std::sync::Arc<Balancer> {
        self.pool.load().balancer.clone()
    }

    /// The circuit breaker, for its state.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The retry budget, for its counts.
    pub fn retries(&self) -> &RetryBudget {
        &self.retry
    }

    /// The endpoint for the next call (avoiding `avoid`, a retry's failed endpoint, when
    /// another is there), the call's in-flight guard, and where to report its outcome.
    fn pick(
        &self,
        metadata: &Metadata,
        avoid: Option<usize>,
    ) -> Result<(std::sync::Arc<HttpEndpoint>, InFlight, usize, std::sync::Arc<Balancer>), UpstreamError> {
        let key = super::pool::hash_key(self.hash_on.as_ref(), metadata);
        let members = self.pool.load();
        let index = members
            .balancer
            .pick_avoiding(key.as_deref(), avoid)
            .ok_or_else(|| UpstreamError::Unavailable { cluster: self.cluster.clone() })?;
        let in_flight = members.balancer.members()[index].load.start();
        crate::telemetry::record::note_backend_call();
        Ok((members.handles[index].clone(), in_flight, index, members.balancer.clone()))
    }

    /// Sends `request` with the forwarded `metadata` through the circuit breaker; the 2xx
    /// answer's body and headers. An idempotent request that fails as `retries.retry_on` lists is sent
    /// again to another endpoint, within the deadline and the cluster's retry budget.
    pub async fn send(
        &self,
        request: &HttpRequest,
        metadata: &Metadata,
        timeout: Option<Duration>,
    ) -> Result<(Bytes, http::HeaderMap), UpstreamError> {
        let timeout = match (timeout, self.limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let queued = tokio::time::Instant::now();
        let admitted =
            self.breaker.admit_waiting(timeout).await.map_err(|why| UpstreamError::refused(&self.cluster, &why))?;
        let timeout = timeout.map(|t| t.saturating_sub(queued.elapsed()));
        let endpoints = self.pool.load().handles.len();
        let result =
            super::pool::retry::attempts(&self.retry, endpoints, timeout, request.idempotent, |left, avoid| {
                self.send_once(request, metadata, left, avoid)
            })
            .await;
        admitted.finish(result.as_ref().err().is_some_and(UpstreamError::is_backend_failure));
        result
    }

    async fn send_once(
        &self,
        request: &HttpRequest,
        metadata: &Metadata,
        timeout: Option<Duration>,
        avoid: Option<usize>,
    ) -> (Result<(Bytes, http::HeaderMap), UpstreamError>, Option<usize>) {
        let (endpoint, _in_flight, index, balancer) = match self.pick(metadata, avoid) {
            Ok(picked) => picked,
            Err(error) => return (Err(error), None),
        };
        let result = self.send_to(&endpoint, request, metadata, timeout).await;
        balancer.report(index, result.as_ref().err().is_some_and(UpstreamError::is_backend_failure));
        (result, Some(index))
    }

    async fn send_to(
        &self,
        endpoint: &HttpEndpoint,
        request: &HttpRequest,
        metadata: &Metadata,
        timeout: Option<Duration>,
    ) -> Result<(Bytes, http::HeaderMap), UpstreamError> {
        let url = format!("{}{}", endpoint.base, request.path_and_query);
        let mut builder =
            endpoint.client.request(request.method.clone(), &url).header(http::header::ACCEPT, "application/json");
        let target = format!("{} {}", request.method, request.path_and_query);
        let (span, traceparent) = super::fetch_trace(&self.cluster, &endpoint.base, &target, metadata);
        builder = builder.header(crate::telemetry::trace_context::TRACEPARENT, traceparent);
        let traceparent = crate::telemetry::trace_context::TRACEPARENT;
        for (name, value) in metadata.iter().filter(|(name, _)| !name.ends_with("-bin") && *name != traceparent) {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
                builder = builder.header(name, value);
            }
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        if let Some(body) = &request.body {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json").body(body.clone());
        }
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        let exchange = async {
            let response = builder.send().await.map_err(|e| self.failure(&e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|e| self.failure(&e))?;
            Ok::<_, UpstreamError>((status, headers, body))
        };
        let (status, headers, body) = tracing::Instrument::instrument(exchange, span.clone()).await?;
        span.record("status", status.as_u16());
        span.record("bytes", body.len());
        if status.is_success() {
            return Ok((body, headers));
        }
        Err(UpstreamError::Http { status: status.as_u16(), message: error_message(&self.cluster, status, &body) })
    }

    /// TLS for WebSocket connections to this cluster (None: the system's roots).
    pub fn websocket_tls(&self) -> Option<std::sync::Arc<rustls::ClientConfig>> {
        self.websocket_tls.clone()
    }

    /// The WebSocket URL of an endpoint chosen by the balancer (`ws://` for `http://`, `wss://`
    /// for `https://`).
    pub fn websocket_url(&self) -> String {
        let members = self.pool.load();
        let index = members.balancer.pick(None).unwrap_or(0);
        let base = &members.handles[index].base;
        match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", base.trim_start_matches("http://")),
        }
    }

    fn failure(&self, error: &reqwest::Error) -> UpstreamError {
        if error.is_timeout() {
            UpstreamError::DeadlineExceeded
        } else if error.is_decode() || error.is_body() {
            UpstreamError::BadAnswer(format!("backend {} sent an unreadable answer", self.cluster))
        } else {
            UpstreamError::unavailable(&self.cluster, error)
        }
    }
}

/// The message for a refused call: the backend's own `message` (or `error`) for 4xx answers,
/// which are about the request; only the status for 5xx, whose bodies may hold internals.
fn error_message(cluster: &str, status: http::StatusCode, body: &[u8]) -> String {
    if status.is_client_error()
        && let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(serde_json::Value::String(message)) = object.get("message").or_else(|| object.get("error"))
    {
        let mut message = message.clone();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        return message;
    }
    format!("backend {cluster} answered HTTP {}", status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_the_backends_message_and_server_errors_do_not() {
        let table: &[(u16, &str, &str)] = &[
            (404, r#"{"message":"author 9 not found"}"#, "author 9 not found"),
            (400, r#"{"error":"bad id"}"#, "bad id"),
            (400, "not json", "backend authors answered HTTP 400"),
            (500, r#"{"message":"db at 10.0.0.3 down"}"#, "backend authors answered HTTP 500"),
        ];
        for (status, body, want) in table {
            let status = http::StatusCode::from_u16(*status).expect("valid status");
            assert_eq!(error_message("authors", status, body.as_bytes()), *want, "{status} {body}");
        }
    }
}
