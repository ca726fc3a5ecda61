//! `[access_log]`: one JSON line per request, which fields it holds and where it goes.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Request headers that carry credentials; an access log never writes them.
pub const SECRET_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-forwarded-client-cert"];

/// Access logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Write a line per request.
    pub enabled: bool,
    /// The file lines are appended to (created if missing); standard output when unset.
    pub path: Option<PathBuf>,
    /// The fields of each line, in this order (default: all of them).
    pub fields: Vec<AccessLogField>,
    /// Request headers written under `headers` (lower case), as the client sent them (the
    /// request id the gateway used is the line's `request_id`). Credentials (authorization,
    /// cookies, API keys, client certificates) are refused here.
    pub headers: Vec<String>,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig { enabled: false, path: None, fields: AccessLogField::ALL.to_vec(), headers: Vec::new() }
    }
}

/// One field of an access-log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogField {
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    Time,
    /// The `x-request-id`.
    RequestId,
    /// The client's address (through trusted proxies).
    Client,
    /// The verified identity (`provider/subject`), when there is one.
    Identity,
    /// `rest`, `graphql`, `grpc`, `grpc-web` or `websocket`.
    Protocol,
    /// The HTTP method.
    Method,
    /// The request path, without the query.
    Path,
    /// The query string, with credential parameters' values replaced by `REDACTED`.
    Query,
    /// The operation: the REST route, the gRPC method or the GraphQL operation name.
    Operation,
    /// The HTTP status.
    Status,
    /// For gRPC, the status code's name.
    GrpcStatus,
    /// Milliseconds from arrival to the response's last byte.
    DurationMs,
    /// Request body bytes read.
    BytesReceived,
    /// Response body bytes sent.
    BytesSent,
    /// Backend calls made for it.
    BackendCalls,
    /// The `x-cache` status (HIT, MISS, STALE), when cached answers were in play.
    Cache,
    /// The error codes it answered with.
    Errors,
    /// The rate limit or quota that refused it.
    RejectedBy,
}

impl AccessLogField {
    /// Every field, in the default order.
    pub const ALL: [AccessLogField; 18] = [
        AccessLogField::Time,
        AccessLogField::RequestId,
        AccessLogField::Client,
        AccessLogField::Identity,
        AccessLogField::Protocol,
        AccessLogField::Method,
        AccessLogField::Path,
        AccessLogField::Query,
        AccessLogField::Operation,
        AccessLogField::Status,
        AccessLogField::GrpcStatus,
        AccessLogField::DurationMs,
        AccessLogField::BytesReceived,
        AccessLogField::BytesSent,
        AccessLogField::BackendCalls,
        AccessLogField::Cache,
        AccessLogField::Errors,
        AccessLogField::RejectedBy,
    ];

    /// The field's key in a line.
    pub fn key(self) -> &'static str {
        match self {
            AccessLogField::Time => "time",
            AccessLogField::RequestId => "request_id",
            AccessLogField::Client => "client",
            AccessLogField::Identity => "identity",
            AccessLogField::Protocol => "protocol",
            AccessLogField::Method => "method",
            AccessLogField::Path => "path",
            AccessLogField::Query => "query",
            AccessLogField::Operation => "operation",
            AccessLogField::Status => "status",
            AccessLogField::GrpcStatus => "grpc_status",
            AccessLogField::DurationMs => "duration_ms",
            AccessLogField::BytesReceived => "bytes_received",
            AccessLogField::BytesSent => "bytes_sent",
            AccessLogField::BackendCalls => "backend_calls",
            AccessLogField::Cache => "cache",
            AccessLogField::Errors => "errors",
            AccessLogField::RejectedBy => "rejected_by",
        }
    }
}

/// `[tracing]`: spans exported with OpenTelemetry (OTLP). Trace context (W3C `traceparent`) is
/// propagated to backends whether or not spans are exported. Read at start; a reload that
/// changes it takes effect at restart.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// The OTLP collector: `http://127.0.0.1:4317` for gRPC, `http://127.0.0.1:4318` for HTTP
    /// (`/v1/traces` is added). Unset: spans are not exported.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http` (HTTP/protobuf).
    pub protocol: OtlpProtocol,
    /// Share of new traces recorded, 0.0 to 1.0; a client's sampling decision is kept.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: None,
            protocol: OtlpProtocol::Grpc,
            sampling_ratio: 1.0,
            service_name: "switchyard".into(),
        }
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}
