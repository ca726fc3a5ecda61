//! Cross-site request forgery prevention for `/graphql`, as Apollo Router does it: a request
//! that a browser could send from another site without a preflight — a GET, or a POST whose
//! content type is text/plain, a form or multipart (or missing) — and that carries ambient
//! credentials the browser adds by itself (cookies; Basic, Digest or Negotiate authorization)
//! is refused unless it has a header that forces a preflight. A Bearer token or an API key
//! header already forces one, and requests without ambient credentials are never affected, so
//! API clients and the GraphQL-over-HTTP audits work unchanged.

use http::{HeaderMap, Method, StatusCode, header};

use super::Refusal;
use crate::config::CsrfConfig;
use crate::error::ErrorCode;

/// Headers that force a preflight whatever the config adds.
const PREFLIGHT_HEADERS: [&str; 2] = ["apollo-require-preflight", "x-apollo-operation-name"];

/// The 400 refusal for a request that could be forged cross-site, or None.
pub(super) fn check(config: &CsrfConfig, method: &Method, headers: &HeaderMap) -> Option<Refusal> {
    if !config.enabled || !simple_request(method, headers) || !ambient_credentials(headers) {
        return None;
    }
    let forces_preflight = |name: &str| headers.get(name).is_some_and(|v| !v.is_empty());
    if PREFLIGHT_HEADERS.iter().any(|name| forces_preflight(name))
        || config.preflight_headers.iter().any(|name| forces_preflight(&name.to_ascii_lowercase()))
    {
        return None;
    }
    let message = "this request carries cookies or browser credentials and could have been sent by another site \
                   (cross-site request forgery): send it as a POST with `content-type: application/json`, or add \
                   the header `apollo-require-preflight: true`";
    Some(Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message))
}

/// A request a browser sends cross-site without asking first (the Fetch standard's CORS-safelisted
/// methods and content types).
fn simple_request(method: &Method, headers: &HeaderMap) -> bool {
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    if method != Method::POST {
        return false;
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else { return true };
    let essence = crate::ingress::request_head::media_type(Some(content_type));
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
        .iter()
        .any(|simple| essence.eq_ignore_ascii_case(simple))
}

/// Credentials a browser attaches by itself.
fn ambient_credentials(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::COOKIE) {
        return true;
    }
    headers.get_all(header::AUTHORIZATION).iter().any(|value| {
        let scheme = value.to_str().unwrap_or("").split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        matches!(scheme.as_str(), "basic" | "digest" | "negotiate" | "ntlm")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (method, headers, refused)
    #[test]
    fn only_simple_requests_with_ambient_credentials_and_no_preflight_header_are_refused() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            ("GET", &[], false),
            ("GET", &[("cookie", "session=1")], true),
            ("GET", &[("cookie", "session=1"), ("apollo-require-preflight", "true")], false),
            ("GET", &[("cookie", "session=1"), ("x-apollo-operation-name", "Q")], false),
            ("GET", &[("cookie", "session=1"), ("x-my-preflight", "1")], false),
            ("GET", &[("cookie", "session=1"), ("apollo-require-preflight", "")], true),
            ("GET", &[("authorization", "Basic YTpi")], true),
            ("GET", &[("authorization", "Bearer t")], false),
            ("POST", &[("cookie", "s=1"), ("content-type", "application/json")], false),
            ("POST", &[("cookie", "s=1"), ("content-type", "text/plain;charset=utf-8")], true),
            ("POST", &[("cookie", "s=1"), ("content-type", "application/x-www-form-urlencoded")], true),
            ("POST", &[("cookie", "s=1"), ("content-type", "multipart/form-data; boundary=x")], true),
            ("POST", &[("cookie", "s=1")], true),
            ("POST", &[("content-type", "text/plain")], false),
            ("PUT", &[("cookie", "s=1"), ("content-type", "text/plain")], false),
        ];
        let config = CsrfConfig { enabled: true, preflight_headers: vec!["X-My-Preflight".into()] };
        for (method, pairs, refused) in cases {
            let mut headers = HeaderMap::new();
            for (name, value) in *pairs {
                headers.append(
                    http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    value.parse().expect("value"),
                );
            }
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            assert_eq!(check(&config, &method, &headers).is_some(), *refused, "{method} {pairs:?}");
        }
        let off = CsrfConfig { enabled: false, preflight_headers: Vec::new() };
        let mut cookie = HeaderMap::new();
        cookie.insert(header::COOKIE, "s=1".parse().expect("value"));
        assert!(check(&off, &Method::GET, &cookie).is_none());
    }
}
