//! Access logs: one JSON line per request with the configured fields, written by a background
//! task (to a file or standard output) so the request path never waits on I/O. A line that
//! does not fit the writer's queue is dropped and counted, never blocked on. Credentials never
//! reach a line: secret headers are refused by config, and credential query parameters are
//! written as `REDACTED`.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::config::{AccessLogConfig, AccessLogField};

/// Lines the writer may fall behind by before new ones are dropped.
const QUEUE: usize = 8192;

/// Query parameters whose values are always redacted (besides the configured API-key one).
const SECRET_PARAMETERS: &[&str] = &["access_token", "api_key", "apikey", "token"];

/// Everything a line may hold about one request.
#[derive(Debug, Default)]
pub struct AccessEntry<'a> {
    /// Arrival time, RFC 3339.
    pub time: String,
    /// The request id.
    pub request_id: &'a str,
    /// The client's address.
    pub client: Option<String>,
    /// The identity's key.
    pub identity: Option<&'a str>,
    /// The protocol.
    pub protocol: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The path.
    pub path: &'a str,
    /// The raw query string.
    pub query: Option<&'a str>,
    /// The API-key query parameter, whose value is redacted.
    pub api_key_parameter: Option<&'a str>,
    /// The operation.
    pub operation: Option<&'a str>,
    /// The HTTP status.
    pub status: u16,
    /// The gRPC status name, for gRPC.
    pub grpc_status: Option<&'a str>,
    /// Milliseconds taken.
    pub duration_ms: f64,
    /// Request body bytes.
    pub bytes_received: u64,
    /// Response body bytes.
    pub bytes_sent: u64,
    /// Backend calls.
    pub backend_calls: u32,
    /// The `x-cache` value.
    pub cache: Option<&'a str>,
    /// Error codes.
    pub errors: &'a [String],
    /// The refusing limit.
    pub rejected_by: Option<&'a str>,
    /// The configured headers' values, by name.
    pub headers: Vec<(&'a str, String)>,
}

/// The JSON line for `entry` with `config`'s fields (no trailing newline).
pub fn line(config: &AccessLogConfig, entry: &AccessEntry<'_>) -> String {
    // Written straight into the line (serde_json escapes each string), without building a map.
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, key: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        push_json(out, &key);
        out.push(b':');
    };
    for field in &config.fields {
        key(&mut out, field.key());
        match field {
            AccessLogField::Time => push_json(&mut out, &entry.time),
            AccessLogField::RequestId => push_json(&mut out, &entry.request_id),
            AccessLogField::Client => push_json(&mut out, &entry.client),
            AccessLogField::Identity => push_json(&mut out, &entry.identity),
            AccessLogField::Protocol => push_json(&mut out, &entry.protocol),
            AccessLogField::Method => push_json(&mut out, &entry.method),
            AccessLogField::Path => push_json(&mut out, &entry.path),
            AccessLogField::Query => {
                push_json(&mut out, &entry.query.map(|q| redact_query(q, entry.api_key_parameter)))
            }
            AccessLogField::Operation => push_json(&mut out, &entry.operation),
            AccessLogField::Status => push_json(&mut out, &entry.status),
            AccessLogField::GrpcStatus => push_json(&mut out, &entry.grpc_status),
            AccessLogField::DurationMs => push_json(&mut out, &((entry.duration_ms * 1000.0).round() / 1000.0)),
            AccessLogField::BytesReceived => push_json(&mut out, &entry.bytes_received),
            AccessLogField::BytesSent => push_json(&mut out, &entry.bytes_sent),
            AccessLogField::BackendCalls => push_json(&mut out, &entry.backend_calls),
            AccessLogField::Cache => push_json(&mut out, &entry.cache),
            AccessLogField::Errors => push_json(&mut out, &entry.errors),
            AccessLogField::RejectedBy => push_json(&mut out, &entry.rejected_by),
        }
    }
    if !config.headers.is_empty() {
        key(&mut out, "headers");
        let headers: Map<String, Value> =
            entry.headers.iter().map(|(name, value)| ((*name).to_owned(), Value::String(value.clone()))).collect();
        push_json(&mut out, &headers);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `value` as JSON.
fn push_json(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    let _ = serde_json::to_writer(out, value);
}

/// `query` with the values of credential parameters replaced by `REDACTED`.
pub fn redact_query(query: &str, api_key_parameter: Option<&str>) -> String {
    query
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(key, _)| key);
            let secret = SECRET_PARAMETERS.iter().any(|s| s.eq_ignore_ascii_case(key))
                || api_key_parameter.is_some_and(|p| p == key);
            if secret && pair.contains('=') { format!("{key}=REDACTED") } else { pair.to_owned() }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Where lines go: a queue drained by a writer task.
#[derive(Debug)]
pub struct AccessLogSink {
    queue: mpsc::Sender<String>,
}

impl AccessLogSink {
    /// A sink for `config`'s destination; the writer task ends when the sink is dropped, after
    /// writing what was queued.
    pub fn open(config: &AccessLogConfig) -> std::io::Result<Arc<Self>> {
        let mut out: Box<dyn Write + Send> = match &config.path {
            Some(path) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
            None => Box::new(std::io::stdout()),
        };
        let (queue, mut lines) = mpsc::channel::<String>(QUEUE);
        tokio::task::spawn_blocking(move || {
            let mut buffer = Vec::with_capacity(64 * 1024);
            while let Some(first) = lines.blocking_recv() {
                buffer.clear();
                buffer.extend_from_slice(first.as_bytes());
                buffer.push(b'\n');
                // Whatever else is queued goes in the same write.
                while let Ok(next) = lines.try_recv() {
                    buffer.extend_from_slice(next.as_bytes());
                    buffer.push(b'\n');
                }
                if let Err(error) = out.write_all(&buffer).and_then(|()| out.flush()) {
                    tracing::warn!(%error, "the access log could not be written");
                }
            }
        });
        Ok(Arc::new(AccessLogSink { queue }))
    }

    /// Queues a line; false when the queue is full (the line is dropped).
    pub fn write(&self, line: String) -> bool {
        self.queue.try_send(line).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_parameters_are_redacted() {
        let table = [
            ("a=1&b=2", None, "a=1&b=2"),
            ("key=abc&page=2", Some("key"), "key=REDACTED&page=2"),
            ("access_token=t&x", None, "access_token=REDACTED&x"),
            ("API_KEY=s3cret", None, "API_KEY=REDACTED"),
            ("token", None, "token"),
        ];
        for (query, parameter, expected) in table {
            assert_eq!(redact_query(query, parameter), expected, "{query}");
        }
    }

    #[test]
    fn a_line_holds_the_configured_fields_in_order() {
        let config = AccessLogConfig {
            enabled: true,
            path: None,
            fields: vec![AccessLogField::Status, AccessLogField::RequestId, AccessLogField::Query],
            headers: vec!["user-agent".into()],
        };
        let entry = AccessEntry {
            request_id: "r1",
            status: 404,
            query: Some("api_key=x&a=b"),
            headers: vec![("user-agent", "curl/8".into())],
            ..AccessEntry::default()
        };
        assert_eq!(
            line(&config, &entry),
            r#"{"status":404,"request_id":"r1","query":"api_key=REDACTED&a=b","headers":{"user-agent":"curl/8"}}"#
        );
    }
}
