//! Semantic checks on a typed config: rules that span keys or need more than a type (URLs,
//! loopback-or-token, duplicate service claims). Every problem names its key path.

use std::collections::BTreeMap;

use super::{BackendProtocol, Config, Problem};

/// Returns every semantic problem in `config`.
pub(crate) fn validate_config(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !config.admin.listen.ip().is_loopback() && config.admin.token.as_deref().is_none_or(str::is_empty) {
        problems.push(Problem::error(
            "admin.token",
            format!(
                "the admin listener is bound to {}, which is not a loopback address; set admin.token \
                 (e.g. token = \"${{SWITCHYARD_ADMIN_TOKEN}}\") or bind it to 127.0.0.1",
                config.admin.listen
            ),
        ));
    }
    if config.admin.listen == config.listener.listen && config.admin.listen.port() != 0 {
        problems.push(Problem::error(
            "admin.listen",
            format!("the admin listener and the gateway listener are both {}", config.listener.listen),
        ));
    }
    if config.sources.registry == super::RegistryStore::Redis && config.redis.urls.is_empty() {
        problems.push(Problem::error(
            "sources.registry",
            "the registry is shared through Redis: name its server in [redis] urls (redis://host:port)",
        ));
    }
    let mut claims: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, backend) in &config.backends {
        let path = format!("backends.{name}");
        if backend.endpoints.is_empty() {
            problems.push(Problem::error(format!("{path}.endpoints"), "a backend needs at least one endpoint URL"));
        }
        for (i, endpoint) in backend.endpoints.iter().enumerate() {
            if let Err(message) = check_endpoint_url(endpoint.url()) {
                problems.push(Problem::error(format!("{path}.endpoints[{i}]"), message));
            }
        }
        if backend.tls.as_ref().is_some_and(|tls| tls.server_name.is_some())
            && backend.protocol != BackendProtocol::Grpc
        {
            problems.push(Problem::error(
                format!("{path}.tls.server_name"),
                "only gRPC clusters can verify another name; REST and GraphQL clusters verify each URL's host",
            ));
        }
        if backend.tls.is_some() && !backend.endpoints.iter().any(|e| e.url().starts_with("https://")) {
            problems.push(Problem::warning(
                format!("{path}.tls"),
                "no endpoint is https://, so these TLS settings are not used",
            ));
        }
        if let Some(dns) = &backend.dns {
            let names = backend.endpoints.iter().any(|e| {
                check_endpoint_url(e.url())
                    .ok()
                    .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_err()))
                    .unwrap_or(false)
            });
            if !names {
                problems.push(Problem::warning(
                    format!("{path}.dns"),
                    "every endpoint is an IP address, so there is nothing to resolve",
                ));
            }
            if dns.refresh.get() < std::time::Duration::from_millis(10) {
                problems.push(Problem::error(format!("{path}.dns.refresh"), "must be at least 10ms"));
            }
        }
        for (i, method) in backend.retries.methods.iter().enumerate() {
            if !is_dotted_name(method) || !method.contains('.') {
                problems.push(Problem::error(
                    format!("{path}.retries.methods[{i}]"),
                    format!("`{method}` is not a method full name (`package.Service.Method`)"),
                ));
            }
        }
        for method in backend.method_timeouts.keys() {
            if !is_dotted_name(method) || !method.contains('.') {
                problems.push(Problem::error(
                    format!("{path}.method_timeouts.{method}"),
                    format!("`{method}` is not a method full name (`package.Service.Method`)"),
                ));
            }
        }
        if backend.protocol == BackendProtocol::Grpc && backend.services.is_empty() {
            problems.push(Problem::error(
                format!("{path}.services"),
                "a gRPC backend must list the services or packages it serves (e.g. [\"catalog.v1\"])",
            ));
        }
        for (i, service) in backend.services.iter().enumerate() {
            let item = format!("{path}.services[{i}]");
            if !is_dotted_name(service) {
                problems.push(Problem::error(
                    item,
                    format!("`{service}` is not a proto package or service name (letters, digits, _ and dots)"),
                ));
            } else if let Some(other) = claims.insert(service, name) {
                problems.push(Problem::error(
                    item,
                    format!("`{service}` is already served by backends.{other}; each name may have one backend"),
                ));
            }
        }
    }
    if let Some(versions) = &config.rest.versions {
        check_versions(versions, &mut problems);
    }
    let tracing = &config.tracing;
    if !(0.0..=1.0).contains(&tracing.sampling_ratio) {
        problems.push(Problem::error("tracing.sampling_ratio", "must be between 0.0 and 1.0"));
    }
    if let Some(endpoint) = &tracing.otlp_endpoint
        && let Err(message) = check_endpoint_url(endpoint)
    {
        problems.push(Problem::error("tracing.otlp_endpoint", message));
    }
    for (i, header) in config.access_log.headers.iter().enumerate() {
        let at = format!("access_log.headers[{i}]");
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            problems.push(Problem::error(at, format!("`{header}` is not a header name")));
        } else if super::SECRET_HEADERS.contains(&header.to_ascii_lowercase().as_str())
            || config.auth.api_keys.as_ref().is_some_and(|k| k.header.eq_ignore_ascii_case(header))
        {
            problems.push(Problem::error(at, format!("`{header}` carries credentials; access logs never write it")));
        }
    }
    problems
}

/// True for `/literal/segments` (no trailing slash, no template or query characters): a prefix
/// routes can be mounted under.
pub(crate) fn is_path_prefix(prefix: &str) -> bool {
    prefix.starts_with('/')
        && !prefix.ends_with('/')
        && prefix[1..].split('/').all(|s| !s.is_empty() && !s.contains(['{', '}', '*', ':', '?', '#']))
}

/// `[rest.versions]`: something names the version, every prefix is a path prefix (or empty for
/// the routes as they are), and the header is a header name.
fn check_versions(versions: &super::VersionSelector, problems: &mut Vec<Problem>) {
    if versions.header.is_none() && versions.query.is_none() {
        problems.push(Problem::error("rest.versions", "set `header` or `query` (or both): what names the version"));
    }
    if let Some(header) = &versions.header
        && http::HeaderName::from_bytes(header.as_bytes()).is_err()
    {
        problems.push(Problem::error("rest.versions.header", format!("`{header}` is not a header name")));
    }
    if versions.query.as_deref().is_some_and(|q| q.is_empty() || q.contains(['&', '=', '#'])) {
        problems.push(Problem::error("rest.versions.query", "not a query parameter name"));
    }
    if versions.prefixes.is_empty() {
        problems.push(Problem::error("rest.versions.prefixes", "list the versions served: { \"2\" = \"/v2\" }"));
    }
    for (version, prefix) in &versions.prefixes {
        if !prefix.is_empty() && !is_path_prefix(prefix) {
            problems.push(Problem::error(
                format!("rest.versions.prefixes.\"{version}\""),
                format!("`{prefix}` is not a path prefix (`/literal/segments`, no trailing slash, or \"\")"),
            ));
        }
    }
}

/// Checks a backend endpoint URL: http or https, a host, a port or default, no path.
pub fn check_endpoint_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("`{url}`: scheme `{other}` is not supported; use http:// or https://")),
        None => return Err(format!("`{url}` has no scheme; write http://{url} or https://{url}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(uri)
}

/// True for `a.b.C`-style names: dot-separated identifiers.
pub(crate) fn is_dotted_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !part.starts_with(|c: char| c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_url_rules() {
        let table = [
            ("http://127.0.0.1:50051", true),
            ("https://backend.internal", true),
            ("127.0.0.1:50051", false),
            ("ftp://x", false),
            ("http://", false),
        ];
        for (url, ok) in table {
            assert_eq!(check_endpoint_url(url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn a_public_admin_listener_needs_a_token() {
        let mut config = Config::default();
        config.admin.listen = "0.0.0.0:9090".parse().expect("literal");
        let problems = validate_config(&config);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "admin.token");
        config.admin.token = Some("secret".into());
        assert!(validate_config(&config).is_empty());
    }

    #[test]
    fn a_service_claimed_twice_is_refused_naming_both() {
        let text = "[backends.a]\nendpoints=[\"http://h:1\"]\nservices=[\"catalog.v1\"]\n\
                    [backends.b]\nendpoints=[\"http://h:2\"]\nservices=[\"catalog.v1\", \"9bad\"]\n";
        let config: Config = serde_json::from_value(serde_json::json!({
            "backends": {
                "a": {"endpoints": ["http://h:1"], "services": ["catalog.v1"]},
                "b": {"endpoints": ["http://h:2"], "services": ["catalog.v1", "9bad"]}
            }
        }))
        .expect("valid shape");
        let problems = validate_config(&config);
        assert_eq!(problems.len(), 2, "{problems:?} from {text}");
        assert!(problems[0].message.contains("already served by backends.a"), "{problems:?}");
        assert_eq!(problems[0].path, "backends.b.services[0]");
        assert!(problems[1].message.contains("not a proto package"), "{problems:?}");
    }

    #[test]
    fn backend_tls_and_timeout_rules_name_their_key() {
        // (backend JSON, expected problem path or None, a word of its message)
        let table = [
            (
                serde_json::json!({"protocol": "http", "endpoints": ["https://h:1"], "tls": {"server_name": "x"}}),
                Some("backends.b.tls.server_name"),
                "only gRPC",
            ),
            (
                serde_json::json!({"endpoints": ["http://h:1"], "services": ["s"], "tls": {}}),
                Some("backends.b.tls"),
                "not used",
            ),
            (
                serde_json::json!({"endpoints": ["http://h:1"], "services": ["s"], "method_timeouts": {"GetBook": "1s"}}),
                Some("backends.b.method_timeouts.GetBook"),
                "full name",
            ),
            (
                serde_json::json!({"endpoints": ["https://h:1"], "services": ["s"], "tls": {"server_name": "x"},
                                "method_timeouts": {"s.S.GetBook": "1s"}}),
                None,
                "",
            ),
        ];
        for (backend, path, word) in table {
            let config: Config =
                serde_json::from_value(serde_json::json!({ "backends": { "b": backend } })).expect("valid shape");
            let problems = validate_config(&config);
            match path {
                Some(path) => {
                    assert_eq!(problems.len(), 1, "{problems:?}");
                    assert_eq!(problems[0].path, path);
                    assert!(problems[0].message.contains(word), "{problems:?}");
                }
                None => assert!(problems.is_empty(), "{problems:?}"),
            }
        }
    }
}
