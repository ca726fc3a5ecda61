//! Which request headers become backend metadata (DESIGN.md: `authorization`,
//! `grpc-metadata-*` with the prefix removed, `x-request-id`, `traceparent`, `tracestate`), and
//! the request context built from them.

use http::HeaderMap;

use crate::operation::{Metadata, RequestContext};

const FORWARDED: &[&str] = &["authorization", "x-request-id", "traceparent", "tracestate"];
const METADATA_PREFIX: &str = "grpc-metadata-";

/// The request context for a gateway-built call: forwarded metadata and the correlation id.
pub(crate) fn request_context(headers: &HeaderMap) -> RequestContext {
    let mut metadata = Metadata::default();
    for (name, value) in headers {
        let name = name.as_str();
        if FORWARDED.contains(&name) {
            metadata.push(name, value.as_bytes());
        } else if let Some(stripped) = name.strip_prefix(METADATA_PREFIX)
            && !stripped.is_empty()
            && !stripped.starts_with("grpc-")
        {
            metadata.push(stripped, value.as_bytes());
        }
    }
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    RequestContext { metadata, request_id, ..RequestContext::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_rules() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer t"),
            ("x-request-id", "r1"),
            ("traceparent", "00-abc-def-01"),
            ("grpc-metadata-tenant", "acme"),
            ("grpc-metadata-grpc-timeout", "1S"),
            ("cookie", "secret=1"),
            ("x-forwarded-host", "evil"),
        ] {
            headers.append(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
        }
        let context = request_context(&headers);
        let got: Vec<(String, String)> =
            context.metadata.iter().map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned())).collect();
        let want = [
            ("authorization", "Bearer t"),
            ("x-request-id", "r1"),
            ("traceparent", "00-abc-def-01"),
            ("tenant", "acme"),
        ];
        assert_eq!(got, want.map(|(n, v)| (n.to_owned(), v.to_owned())));
        assert_eq!(context.request_id.as_deref(), Some("r1"));
    }
}
