//! CORS (the Fetch standard's CORS protocol) for every endpoint of the gateway listener, from
//! `[cors]` in the current snapshot — so a reload changes the policy, which tower-http's
//! `CorsLayer`, fixed when the router is built, cannot do. Preflights (`OPTIONS` with
//! `Access-Control-Request-Method`, gRPC-Web's included) are answered here with 204, or 403
//! naming the origin, method or header that is not allowed; other requests from an allowed
//! origin get `Access-Control-Allow-Origin` and the exposed headers on their answer.

use axum::extract::Request;
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::IngressState;
use super::respond::error_response;
use crate::config::CorsConfig;
use crate::error::ErrorCode;

/// Applies the policy around `inner`, the rest of the way.
pub(super) async fn cors_with<F, Fut>(state: &IngressState, request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let snapshot = state.gateway.snapshot();
    let config = &snapshot.config.cors;
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(origin), false) = (origin, config.allow_origins.is_empty()) else {
        drop(snapshot);
        return inner(request).await;
    };
    let is_preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        return preflight(config, &origin, request.headers());
    }
    let mut response = inner(request).await;
    if origin_allowed(config, &origin) {
        let headers = response.headers_mut();
        allow_origin(config, &origin, headers);
        if let Ok(exposed) = HeaderValue::from_str(&config.expose_headers.join(", ")) {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed);
        }
    }
    response
}

/// Answers a preflight: 204 with what is allowed, or 403 naming what is not.
fn preflight(config: &CorsConfig, origin: &str, request: &HeaderMap) -> Response {
    let refuse = |message: String| {
        let mut response = error_response(ErrorCode::Forbidden, &message);
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("origin"));
        response
    };
    if !origin_allowed(config, origin) {
        return refuse(format!("origin `{origin}` is not allowed (cors.allow_origins)"));
    }
    let method = request.get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !config.allow_methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
        return refuse(format!("method `{method}` is not allowed (cors.allow_methods)"));
    }
    let asked = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok()).unwrap_or("");
    for name in asked.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !config.allow_headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return refuse(format!("request header `{name}` is not allowed (cors.allow_headers)"));
        }
    }
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    allow_origin(config, origin, headers);
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(header::ACCESS_CONTROL_ALLOW_METHODS, config.allow_methods.join(", "));
    set(header::ACCESS_CONTROL_ALLOW_HEADERS, config.allow_headers.join(", "));
    set(header::ACCESS_CONTROL_MAX_AGE, config.max_age.get().as_secs().to_string());
    headers.append(
        header::VARY,
        HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers"),
    );
    response
}

/// `Access-Control-Allow-Origin` (and `-Credentials`) for an allowed `origin`.
fn allow_origin(config: &CorsConfig, origin: &str, headers: &mut HeaderMap) {
    let any = config.allow_origins.iter().any(|o| o == "*");
    if any && !config.allow_credentials {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    if config.allow_credentials {
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
}

/// Whether `origin` matches one of `allowed` (exact, `*`, or `scheme://*.domain`).
pub(crate) fn origin_matches(allowed: &[String], origin: &str) -> bool {
    allowed.iter().any(|pattern| {
        if pattern == "*" || pattern.eq_ignore_ascii_case(origin) {
            return true;
        }
        let Some((scheme, domain)) = pattern.split_once("://*.") else { return false };
        let Some(host) = origin.strip_prefix(scheme).and_then(|rest| rest.strip_prefix("://")) else { return false };
        host.len() > domain.len() + 1
            && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
    })
}

/// Why a WebSocket upgrade's `Origin` is refused by `listener.websocket_origins`, if it is.
pub(crate) fn websocket_origin_refused(allowed: &[String], headers: &HeaderMap) -> Option<String> {
    if allowed.is_empty() {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("(not text)");
    (!origin_matches(allowed, origin))
        .then(|| format!("WebSocket connections from origin `{origin}` are not allowed (listener.websocket_origins)"))
}

fn origin_allowed(config: &CorsConfig, origin: &str) -> bool {
    origin_matches(&config.allow_origins, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_by_wildcard_subdomain_or_any() {
        let allowed = vec!["https://app.example.com".to_owned(), "https://*.example.org".to_owned()];
        let table = [
            ("https://app.example.com", true),
            ("HTTPS://APP.EXAMPLE.COM", true),
            ("http://app.example.com", false),
            ("https://app.example.com.evil.test", false),
            ("https://a.example.org", true),
            ("https://a.b.example.org", true),
            ("https://example.org", false),
            ("https://evilexample.org", false),
            ("http://a.example.org", false),
            ("null", false),
        ];
        for (origin, want) in table {
            assert_eq!(origin_matches(&allowed, origin), want, "{origin}");
        }
        assert!(origin_matches(&["*".to_owned()], "https://anything.test"));
    }
}
