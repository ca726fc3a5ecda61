//! The outermost layer of the gateway listener: every request gets its `x-request-id` (the
//! client's when well-formed, else a new one; set on the request so it is forwarded, and echoed
//! on the response), a tracing span carrying it (so every log line of the request names it)
//! that continues the client's W3C trace (its `traceparent` is rewritten to name the gateway's
//! span), and a telemetry record the stages fill in. When the response's last byte is sent (or the
//! client goes away), the request is counted in the metrics and, when enabled, written to the
//! access log.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use http_body::Frame;
use tokio::time::Instant;
use tracing::Instrument;

use super::IngressState;
use crate::telemetry::access_log::{AccessEntry, AccessLogSink};
use crate::telemetry::record::RequestRecord;
use crate::telemetry::trace_context::{TRACEPARENT_NAME, TraceParent, of_span};
use crate::telemetry::{Telemetry, request_id};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Read off every answer (as names, so no lookup parses them).
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
/// The answer's cache status (`hit`, `miss`, …), set by the REST and GraphQL ways.
pub(crate) const X_CACHE: http::HeaderName = http::HeaderName::from_static("x-cache");

/// Wraps the handling of one request by `inner` (the rest of its way through the listener),
/// `client` being its connection's peer. The answer's body is observed as it is sent.
pub(super) async fn observe_with<F, Fut>(
    state: &IngressState,
    mut request: Request,
    client: Option<std::net::SocketAddr>,
    inner: F,
) -> http::Response<Observed>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let started = Instant::now();
    let arrived = SystemTime::now();
    // The client's id, else a new one; a new one is written with the `traceparent` below into
    // one buffer, the two values' one allocation.
    let id = match request_id::accepted(request.headers()) {
        Some(client) => Id::Client(client),
        None => Id::New(request_id::new_text()),
    };
    let protocol = protocol_of(&request);
    let telemetry = state.gateway.telemetry().clone();
    let snapshot = state.gateway.snapshot();
    let access = telemetry.access_log(&snapshot.config.access_log).map(|sink| {
        let received = Arc::new(AtomicU64::new(0));
        let counted = received.clone();
        let body = std::mem::take(request.body_mut());
        *request.body_mut() =
            Body::new(Counted { inner: body, on_frame: move |n| counted.fetch_add(n, Ordering::Relaxed) });
        let parts = &request;
        let headers = snapshot
            .config
            .access_log
            .headers
            .iter()
            .filter_map(|name| Some((name.clone(), parts.headers().get(name.as_str())?.to_str().ok()?.to_owned())))
            .collect();
        Access {
            sink,
            config: snapshot.config.access_log.clone(),
            time: humantime::format_rfc3339_millis(arrived).to_string(),
            client: super::forward::client_ip(parts.headers(), client, &snapshot.trusted_proxies),
            method: parts.method().to_string(),
            path: parts.uri().path().to_owned(),
            query: parts.uri().query().map(str::to_owned),
            api_key_parameter: snapshot.auth.api_key_query_parameter().map(str::to_owned),
            headers,
            received,
        }
    });
    drop(snapshot);
    // The gateway's span continues the client's trace (or starts one); its backends see it as
    // their parent.
    let client_trace = request.headers().get(TRACEPARENT_NAME).and_then(|v| TraceParent::parse(v.as_bytes()));
    let id_text = match &id {
        Id::Client(value) => value.to_str().unwrap_or("invalid"),
        // Hex digits and dashes.
        Id::New(text) => std::str::from_utf8(text).unwrap_or("invalid"),
    };
    let span = tracing::info_span!("request", request_id = id_text, protocol, trace_id = tracing::field::Empty);
    if let Some(client) = client_trace {
        let _ = span.set_parent(client.otel_context());
    }
    let own = of_span(&span, client_trace.unwrap_or_else(TraceParent::root));
    span.record("trace_id", tracing::field::display(Hex(&own.trace_id)));
    // Both left indexable by HTTP/2's header compression: marked never-indexed (RFC 7541
    // 7.1.3), a value unique to one request would spare the peers' tables, but its name would
    // then go as a literal every time and each decoder allocate it anew (3.6 more allocations
    // per proxied call in `cargo bench --bench allocations`).
    let (id, traceparent) = match id {
        Id::Client(value) => (value, own.header_value()),
        Id::New(text) => id_and_traceparent(text, &own),
    };
    request.headers_mut().insert(request_id::HEADER_NAME, id.clone());
    request.headers_mut().insert(TRACEPARENT_NAME, traceparent);
    let record = Arc::new(RequestRecord::default());
    let mut response = record.clone().scope(inner(request)).instrument(span).await;
    response.headers_mut().insert(request_id::HEADER_NAME, id.clone());
    let grpc_status = response.headers().get(GRPC_STATUS).and_then(|v| v.to_str().ok()?.parse::<i32>().ok());
    let finish = Finish {
        telemetry,
        record,
        started,
        protocol,
        request_id: id,
        status: response.status().as_u16(),
        grpc_status,
        cache: response.headers().get(X_CACHE).and_then(|v| v.to_str().ok()).map(str::to_owned),
        access,
    };
    response.map(|body| Observed { inner: body, sent: 0, finish: Some(finish) })
}

/// The request's id before it becomes a header value: the client's, or a new one's text (made
/// into a value together with the `traceparent`, once that is known).
enum Id {
    Client(HeaderValue),
    New([u8; request_id::TEXT_LEN]),
}

/// A new request id and the request's `traceparent` as header values sharing one buffer (one
/// allocation where each would take its own).
fn id_and_traceparent(id: [u8; request_id::TEXT_LEN], traceparent: &TraceParent) -> (HeaderValue, HeaderValue) {
    let mut text = [0u8; request_id::TEXT_LEN + crate::telemetry::trace_context::TEXT_LEN];
    text[..request_id::TEXT_LEN].copy_from_slice(&id);
    text[request_id::TEXT_LEN..].copy_from_slice(&traceparent.text());
    let shared = Bytes::from_owner(text);
    (
        request_id::header_value(shared.slice(..request_id::TEXT_LEN)),
        request_id::header_value(shared.slice(request_id::TEXT_LEN..)),
    )
}

/// Bytes as lowercase hex when displayed, written straight into the formatter (a trace id is
/// recorded on every request's span).
struct Hex<'a>(&'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The protocol a request speaks, for labels and log lines.
fn protocol_of(request: &Request) -> &'static str {
    let headers = request.headers();
    let upgrade = headers.get(http::header::UPGRADE).map(http::HeaderValue::as_bytes);
    if upgrade.is_some_and(|u| u.eq_ignore_ascii_case(b"websocket")) {
        return "websocket";
    }
    match super::grpc::grpc_wire(headers) {
        Some(super::grpc::GrpcWire::Web) => "grpc-web",
        Some(super::grpc::GrpcWire::Native) => "grpc",
        None if request.uri().path() == "/graphql" => "graphql",
        None => "rest",
    }
}

/// What the access-log line needs from the request itself.
struct Access {
    sink: Arc<AccessLogSink>,
    config: crate::config::AccessLogConfig,
    time: String,
    client: Option<std::net::IpAddr>,
    method: String,
    path: String,
    query: Option<String>,
    api_key_parameter: Option<String>,
    headers: Vec<(String, String)>,
    received: Arc<AtomicU64>,
}

/// Everything needed to account for the request once its response has been sent.
struct Finish {
    telemetry: Arc<Telemetry>,
    record: Arc<RequestRecord>,
    started: Instant,
    protocol: &'static str,
    /// The request's id (ASCII: checked or generated).
    request_id: HeaderValue,
    status: u16,
    /// A trailers-only gRPC answer's status (else read from the trailers).
    grpc_status: Option<i32>,
    cache: Option<String>,
    access: Option<Access>,
}

impl Finish {
    /// Counts the request and writes its line; `complete` is false when the client went away
    /// before the last byte.
    fn finish(self, sent: u64, grpc_status: Option<i32>, complete: bool) {
        let duration = self.started.elapsed();
        let mut recorded = self.record.take();
        let grpc = matches!(self.protocol, "grpc" | "grpc-web");
        let grpc_name = match (grpc, grpc_status.or(self.grpc_status)) {
            (false, _) => None,
            (true, Some(code)) => Some(crate::error::grpc_code::name(code)),
            // No status: the client cancelled, or the connection ended early.
            (true, None) => Some(if complete { "UNKNOWN" } else { "CANCELLED" }),
        };
        if let Some(name) = grpc_name.filter(|n| *n != "OK") {
            recorded.errors.push(name.to_owned());
        }
        let status_label = match grpc_name {
            Some(name) => std::borrow::Cow::Borrowed(name),
            None => std::borrow::Cow::Owned(self.status.to_string()),
        };
        if let Some(consumer) = recorded.identity.as_deref() {
            let operation = recorded.operation.as_deref().unwrap_or_default();
            let failed = !recorded.errors.is_empty() || self.status >= 500;
            let minute = crate::telemetry::usage::current_minute();
            self.telemetry.usage.record(consumer, self.protocol, operation, failed, duration, minute);
        }
        self.telemetry.metrics.finished(&crate::telemetry::metrics::FinishedRequest {
            protocol: self.protocol,
            operation: recorded.operation.as_deref(),
            status: status_label,
            duration,
            errors: &recorded.errors,
            rejected_by: recorded.rejected_by.as_deref(),
        });
        let Some(access) = self.access else { return };
        let entry = AccessEntry {
            time: access.time,
            request_id: self.request_id.to_str().unwrap_or("invalid"),
            client: access.client.map(|ip| ip.to_string()),
            identity: recorded.identity.as_deref(),
            protocol: self.protocol,
            method: &access.method,
            path: &access.path,
            query: access.query.as_deref(),
            api_key_parameter: access.api_key_parameter.as_deref(),
            operation: recorded.operation.as_deref(),
            status: self.status,
            grpc_status: grpc_name,
            duration_ms: duration.as_secs_f64() * 1000.0,
            bytes_received: access.received.load(Ordering::Relaxed),
            bytes_sent: sent,
            backend_calls: recorded.backend_calls,
            cache: self.cache.as_deref(),
            errors: &recorded.errors,
            rejected_by: recorded.rejected_by.as_deref(),
            headers: access.headers.iter().map(|(name, value)| (name.as_str(), value.clone())).collect(),
        };
        if !access.sink.write(crate::telemetry::access_log::line(&access.config, &entry)) {
            self.telemetry.metrics.access_log_dropped();
        }
    }
}

/// The response body, counting bytes and reading gRPC trailers; finishes the request at its end
/// or when dropped (the client went away). The native gRPC way's listener sends it as it is.
pub struct Observed {
    inner: Body,
    sent: u64,
    finish: Option<Finish>,
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                if let Some(trailers) = frame.trailers_ref() {
                    let status = trailers.get("grpc-status").and_then(|v| v.to_str().ok()?.parse::<i32>().ok());
                    if let Some(finish) = self.finish.as_mut() {
                        finish.grpc_status = status.or(finish.grpc_status);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(finish) = self.finish.take() {
                    let status = finish.grpc_status;
                    finish.finish(self.sent, status, true);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(finish) = self.finish.take() {
            let status = finish.grpc_status;
            let complete = http_body::Body::is_end_stream(&self.inner);
            finish.finish(self.sent, status, complete);
        }
    }
}

/// A request body that reports each data frame's size.
struct Counted<F> {
    inner: Body,
    on_frame: F,
}

impl<F: Fn(u64) -> u64 + Unpin + Send + 'static> http_body::Body for Counted<F> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            (self.on_frame)(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_id_and_the_traceparent_share_one_buffer_and_read_as_themselves() {
        let own = TraceParent::root();
        let text = request_id::new_text();
        let (id, traceparent) = id_and_traceparent(text, &own);
        assert_eq!(id.as_bytes(), &text[..]);
        assert!(request_id::is_well_formed(id.as_bytes()), "{id:?}");
        assert_eq!(TraceParent::parse(traceparent.as_bytes()), Some(own));
        assert_eq!(traceparent.as_bytes(), own.header_value().as_bytes());
    }
}
