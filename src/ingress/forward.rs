//! Which request headers become backend metadata, and the request's deadline. Always forwarded
//! (DESIGN.md): `authorization`, `grpc-metadata-*` (prefix removed), `x-request-id`,
//! `traceparent`, `tracestate`; `headers.forward` adds exact names and `prefix*` patterns.
//! `-bin` values arrive base64-coded and are forwarded as their bytes. The client's deadline is
//! `grpc-timeout` or `X-Request-Timeout`; the shorter of it and the route's default applies.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use crate::config::HeadersConfig;
use crate::operation::{Metadata, RequestContext};
use crate::transcode::binding::decode_base64;

const ALWAYS: &[&str] = &["authorization", "x-request-id", "traceparent", "tracestate"];
const METADATA_PREFIX: &str = "grpc-metadata-";

/// A request header the gateway cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header `{header}`: {message}")]
pub(crate) struct HeaderError {
    pub(crate) header: String,
    pub(crate) message: String,
}

/// The request context for a gateway-built call: forwarded metadata, correlation id, and the
/// client's requested timeout (not yet combined with any default).
pub(crate) fn request_context(headers: &HeaderMap, config: &HeadersConfig) -> Result<RequestContext, HeaderError> {
    let mut metadata = Metadata::default();
    for (name, value) in headers {
        let name = name.as_str();
        let target = if ALWAYS.contains(&name) || configured(config, name) {
            Some(name)
        } else {
            name.strip_prefix(METADATA_PREFIX).filter(|s| !s.is_empty() && !s.starts_with("grpc-"))
        };
        let Some(target) = target else { continue };
        if target.ends_with("-bin") {
            let text = value.to_str().unwrap_or("");
            let bytes = decode_base64(text).ok_or_else(|| HeaderError {
                header: name.to_owned(),
                message: "a -bin header's value must be base64".into(),
            })?;
            metadata.push(target, bytes);
        } else {
            metadata.push(target, value.as_bytes());
        }
    }
    let request_id =
        headers.get(crate::telemetry::request_id::HEADER_NAME).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let timeout = client_timeout(headers)?;
    Ok(RequestContext { metadata, request_id, timeout, ..RequestContext::default() })
}

/// What a cached answer's key varies on: the configured `cache.vary` headers, then every
/// client header the backend is sent apart from the per-request trace and correlation ids and
/// `authorization` (which the rule's scope covers), sorted by name. A header that reaches the
/// backend can change its answer; left out of the key, one client's value would be served to
/// everyone (cache poisoning through `grpc-metadata-x-forwarded-host`, or an
/// `accept-language` forwarded by `headers.forward` but not in `cache.vary`).
fn cache_vary(configured: &[String], headers: &HeaderMap, metadata: &Metadata) -> Vec<(String, Vec<u8>)> {
    let mut vary: Vec<(String, Vec<u8>)> = configured
        .iter()
        .filter_map(|name| Some((name.clone(), headers.get(name.as_str())?.as_bytes().to_vec())))
        .collect();
    let from_config = vary.len();
    for (name, value) in metadata.iter() {
        if !ALWAYS.contains(&name) {
            vary.push((format!("{SENT_PREFIX}{name}"), value.to_vec()));
        }
    }
    vary[from_config..].sort();
    vary
}

/// Marks a vary entry that stands for metadata sent to the backend (not a configured header).
const SENT_PREFIX: &str = "sent:";

/// Fills in what consistent hashing may read: the client's address and the request headers
/// named in `names` (the snapshot's `hash_headers`).
pub(crate) fn capture_hash_inputs(
    context: &mut RequestContext,
    headers: &HeaderMap,
    client: Option<std::net::SocketAddr>,
    snapshot: &crate::snapshot::Snapshot,
) {
    context.client = client;
    context.hash.client_ip = client_ip(headers, client, &snapshot.trusted_proxies);
    context.vary = cache_vary(&snapshot.cache_rules.vary, headers, &context.metadata);
    let names = &snapshot.hash_headers;
    for name in names {
        for value in headers.get_all(name.as_str()) {
            context.hash.headers.push(name, value.as_bytes());
        }
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy — then the nearest
/// address in `Forwarded` (`for=`), else `X-Forwarded-For`, that is not a trusted proxy
/// itself, read from the right (the entries a proxy appended last are the ones it vouches for).
pub(crate) fn client_ip(
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    trusted: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let peer = peer?.ip();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut chain: Vec<std::net::IpAddr> = Vec::new();
    let forwarded: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    if forwarded.is_empty() {
        for value in headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()) {
            chain.extend(value.split(',').filter_map(|item| parse_node(item.trim())));
        }
    } else {
        for value in forwarded {
            for element in value.split(',') {
                let node = element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.trim().eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"'))
                });
                if let Some(ip) = node.and_then(parse_node) {
                    chain.push(ip);
                }
            }
        }
    }
    let first = chain.first().copied();
    Some(chain.into_iter().rev().find(|ip| !is_trusted(ip)).or(first).unwrap_or(peer))
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(text: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

fn configured(config: &HeadersConfig, name: &str) -> bool {
    config.forward.iter().any(|rule| match rule.strip_suffix('*') {
        Some(prefix) => name.starts_with(&prefix.to_ascii_lowercase()),
        None => rule.eq_ignore_ascii_case(name),
    })
}

const X_REQUEST_TIMEOUT: HeaderName = HeaderName::from_static("x-request-timeout");
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The shorter of the client's `grpc-timeout` and `X-Request-Timeout`, if either is present.
fn client_timeout(headers: &HeaderMap) -> Result<Option<Duration>, HeaderError> {
    let grpc = grpc_timeout(headers)?;
    let plain = timeout_header(
        headers,
        &X_REQUEST_TIMEOUT,
        parse_request_timeout,
        "must be a duration such as 2.5 (seconds), 250ms or 1m",
    )?;
    Ok(match (grpc, plain) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The client's `grpc-timeout`, if present.
pub(crate) fn grpc_timeout(headers: &HeaderMap) -> Result<Option<Duration>, HeaderError> {
    timeout_header(
        headers,
        &GRPC_TIMEOUT,
        parse_grpc_timeout,
        "must be 1 to 8 digits and a unit (H, M, S, m, u, n), e.g. 500m",
    )
}

/// `name` is a HeaderName, not text: looking a header up by text parses the name each time.
fn timeout_header(
    headers: &HeaderMap,
    name: &HeaderName,
    parse: fn(&str) -> Option<Duration>,
    form: &str,
) -> Result<Option<Duration>, HeaderError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let parsed = value.to_str().ok().and_then(parse);
    parsed.map(Some).ok_or_else(|| HeaderError { header: name.as_str().to_owned(), message: form.to_owned() })
}

/// PROTOCOL-HTTP2.md: `TimeoutValue TimeoutUnit`, at most 8 digits.
pub(crate) fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

fn parse_request_timeout(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds > 0.0 && seconds < 1e9).then(|| Duration::from_secs_f64(seconds));
    }
    humantime::parse_duration(text).ok().filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
        }
        map
    }

    /// The client address through trusted proxies, as a table: (peer, headers, client).
    #[test]
    fn client_addresses_are_read_only_through_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("net"), "::1/128".parse().expect("net")];
        type Case<'a> = (&'a str, &'a [(&'static str, &'static str)], &'a str);
        let cases: &[Case] = &[
            ("203.0.113.9:1", &[("x-forwarded-for", "198.51.100.1")], "203.0.113.9"),
            ("10.0.0.2:1", &[("x-forwarded-for", "198.51.100.1")], "198.51.100.1"),
            ("10.0.0.2:1", &[("x-forwarded-for", "6.6.6.6, 198.51.100.1, 10.0.0.7")], "198.51.100.1"),
            ("10.0.0.2:1", &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.1")], "198.51.100.1"),
            ("10.0.0.2:1", &[("x-forwarded-for", "10.1.1.1, 10.0.0.7")], "10.1.1.1"),
            ("10.0.0.2:1", &[("x-forwarded-for", "not-an-ip")], "10.0.0.2"),
            ("10.0.0.2:1", &[], "10.0.0.2"),
            (
                "10.0.0.2:1",
                &[("forwarded", "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https"), ("x-forwarded-for", "1.1.1.1")],
                "2001:db8::7",
            ),
            ("10.0.0.2:1", &[("forwarded", "for=192.0.2.60:8080;by=10.0.0.2")], "192.0.2.60"),
            ("[::1]:9", &[("x-forwarded-for", "2001:db8::1")], "2001:db8::1"),
        ];
        for (peer, pairs, want) in cases {
            let got = client_ip(&headers(pairs), Some(peer.parse().expect("peer")), &trusted);
            assert_eq!(got, Some(want.parse().expect("ip")), "{peer} {pairs:?}");
        }
    }

    #[test]
    fn forwarding_rules() {
        let config = HeadersConfig { forward: vec!["x-tenant".into(), "x-b3-*".into()] };
        let context = request_context(
            &headers(&[
                ("authorization", "Bearer t"),
                ("x-request-id", "r1"),
                ("traceparent", "00-abc-def-01"),
                ("grpc-metadata-locale", "fr"),
                ("grpc-metadata-grpc-status", "0"),
                ("grpc-metadata-trace-bin", "AAEC"),
                ("x-tenant", "acme"),
                ("x-b3-traceid", "7"),
                ("cookie", "secret=1"),
                ("x-forwarded-host", "evil"),
            ]),
            &config,
        )
        .expect("valid");
        let got: Vec<(&str, Vec<u8>)> = context.metadata.iter().map(|(n, v)| (n, v.to_vec())).collect();
        let want: Vec<(&str, Vec<u8>)> = vec![
            ("authorization", b"Bearer t".to_vec()),
            ("x-request-id", b"r1".to_vec()),
            ("traceparent", b"00-abc-def-01".to_vec()),
            ("locale", b"fr".to_vec()),
            ("trace-bin", vec![0, 1, 2]),
            ("x-tenant", b"acme".to_vec()),
            ("x-b3-traceid", b"7".to_vec()),
        ];
        assert_eq!(got, want);
        assert_eq!(context.request_id.as_deref(), Some("r1"));
        let bad = request_context(&headers(&[("grpc-metadata-trace-bin", "***")]), &config).expect_err("not base64");
        assert_eq!(bad.header, "grpc-metadata-trace-bin");
    }

    #[test]
    fn timeout_headers() {
        type Case = (&'static [(&'static str, &'static str)], Result<Option<u64>, &'static str>);
        let table: [Case; 8] = [
            (&[], Ok(None)),
            (&[("grpc-timeout", "250m")], Ok(Some(250))),
            (&[("grpc-timeout", "2S")], Ok(Some(2000))),
            (&[("x-request-timeout", "1.5")], Ok(Some(1500))),
            (&[("x-request-timeout", "100ms")], Ok(Some(100))),
            (&[("grpc-timeout", "3S"), ("x-request-timeout", "1")], Ok(Some(1000))),
            (&[("grpc-timeout", "123456789S")], Err("grpc-timeout")),
            (&[("x-request-timeout", "soon")], Err("x-request-timeout")),
        ];
        for (pairs, want) in table {
            let got = client_timeout(&headers(pairs)).map(|t| t.map(|d| d.as_millis() as u64)).map_err(|e| e.header);
            assert_eq!(got, want.map_err(str::to_owned), "{pairs:?}");
        }
    }
}
