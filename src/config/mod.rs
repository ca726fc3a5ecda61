//! Typed configuration: the TOML file's shape (this file), loading with `${VAR}` expansion and
//! schema-driven checking that reports every problem with its key path and line (`load`,
//! `schema_check`, `env`), and the semantic checks that span keys (`validate`). Config is a
//! public API: every key is documented in README's config reference, unknown keys are refused,
//! durations are strings like `"250ms"`. This module does no network I/O and knows nothing of
//! descriptors or requests.

mod auth;
mod authorization;
mod backend;
mod cache;
mod duration;
mod env;
mod graphql;
mod load;
mod observability;
mod problem;
mod rate_limits;
mod rest;
mod schema_check;
mod transforms;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use auth::{
    ApiKeyConfig, ApiKeysConfig, AuthConfig, ClaimHeader, JwksConfig, JwtAlgorithm, JwtKeyConfig, JwtProviderConfig,
    TokenSource,
};
pub use authorization::{AuthorizationConfig, ClaimRule, GraphqlDenied, RuleConfig};
pub use backend::{
    BackendConfig, BackendProtocol, Balancing, BreakerConfig, ConnectionConfig, DnsConfig, EndpointConfig,
    GrpcCompression, HashOn, HealthCheckConfig, HttpVersion, OutlierConfig, RetryConfig, RetryOn, TlsConfig,
    WeightedEndpoint,
};
pub use cache::{CacheConfig, CacheInvalidation, CacheRule, CacheScope};
pub use duration::ConfigDuration;
pub use graphql::{
    CsrfConfig, GraphqlConfig, GraphqlFieldConfig, GraphqlKind, GraphqlLimits, GraphqlMethodConfig,
    GraphqlServiceConfig, SubscriptionConfig, TrustedDocumentsConfig,
};
pub use load::{LoadedConfig, load_config_file, parse_config};
pub use observability::{AccessLogConfig, AccessLogField, OtlpProtocol, SECRET_HEADERS, TracingConfig};
pub use problem::{Problem, Severity};
pub use rate_limits::{
    LimitAlgorithm, LimitClients, LimitKey, LimitStore, LimitUnit, QuotaPeriod, QuotaRule, RateLimitRule,
    RateLimitsConfig, RedisConfig, StoreFailure,
};
pub use rest::{JsonChoices, JsonProfile, ResolvedJson, RestConfig, StreamFormat, VersionSelector};
pub use transforms::{BodyEdits, HeaderEdits, TransformConfig};
pub use validate::check_endpoint_url;
pub(crate) use validate::is_path_prefix;

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The gateway listener (REST, GraphQL, WebSocket and gRPC on one port).
    pub listener: ListenerConfig,
    /// The admin listener (health, readiness, reload).
    pub admin: AdminConfig,
    /// Where descriptors and GraphQL schemas are read from.
    pub sources: SourcesConfig,
    /// JSON REST transcoding.
    pub rest: RestConfig,
    /// Which client headers calls built by the gateway forward to backends.
    pub headers: HeadersConfig,
    /// How the generated GraphQL schema names and classifies services and methods.
    pub graphql: GraphqlConfig,
    /// Named backend clusters.
    pub backends: BTreeMap<String, BackendConfig>,
    /// Authentication: JWT providers and API keys.
    pub auth: AuthConfig,
    /// Authorization rules on methods, routes and GraphQL fields.
    pub authorization: AuthorizationConfig,
    /// Rate limits and quotas.
    pub rate_limits: RateLimitsConfig,
    /// The Redis server Redis-backed features share.
    pub redis: RedisConfig,
    /// Cross-origin resource sharing for browsers (off until origins are listed).
    pub cors: CorsConfig,
    /// Caching of backend fetches.
    pub cache: CacheConfig,
    /// Header edits per method or source.
    pub transforms: Vec<TransformConfig>,
    /// Deprecated service versions, by service full name (`catalog.v1.Catalog`).
    pub deprecations: BTreeMap<String, DeprecationConfig>,
    /// One JSON line per request.
    pub access_log: AccessLogConfig,
    /// Span export with OpenTelemetry.
    pub tracing: TracingConfig,
}

/// A deprecated service (an old API version served beside the new one): its REST answers say
/// so in `Deprecation`, `Sunset` and `Link` headers, and its GraphQL root fields are marked
/// deprecated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeprecationConfig {
    /// When it was deprecated (RFC 3339, `2026-01-01T00:00:00Z`).
    pub since: String,
    /// When it stops being served (RFC 3339), if decided.
    #[serde(default)]
    pub sunset: Option<String>,
    /// Where to read about it and the version to move to.
    #[serde(default)]
    pub link: Option<String>,
}

/// CORS: which browser origins may call the gateway, with which methods and headers. Preflights
/// (gRPC-Web's included) are answered by the gateway; a refused one is 403 naming what is not
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins: exact (`https://app.example.com`), a wildcard subdomain
    /// (`https://*.example.com`), or `*` for any. Empty: CORS is off.
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    pub allow_methods: Vec<String>,
    /// Allowed request headers (case-insensitive).
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read.
    pub expose_headers: Vec<String>,
    /// Allow cookies and HTTP authentication (`*` origins are then echoed one by one).
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight's answer.
    pub max_age: ConfigDuration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        CorsConfig {
            allow_origins: Vec::new(),
            allow_methods: strings(&["GET", "POST", "PUT", "PATCH", "DELETE"]),
            allow_headers: strings(&[
                "authorization",
                "content-type",
                "x-api-key",
                "x-request-id",
                "x-grpc-web",
                "x-user-agent",
                "grpc-timeout",
                "apollo-require-preflight",
                "x-apollo-operation-name",
                "traceparent",
            ]),
            expose_headers: strings(&[
                "grpc-status",
                "grpc-message",
                "grpc-status-details-bin",
                "ratelimit",
                "ratelimit-policy",
                "retry-after",
                "x-request-id",
            ]),
            allow_credentials: false,
            max_age: ConfigDuration::from_secs(600),
        }
    }
}

/// The gateway listener: HTTP/1.1 and h2c on one port.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address to listen on.
    #[schemars(extend("format" = "socket-address"))]
    pub listen: SocketAddr,
    /// Most connections open at once; further connections are closed as soon as accepted.
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// Time a client has to send a request's headers; on HTTP/1.1 it also bounds the wait for
    /// the next request on a kept-alive connection.
    pub header_read_timeout: ConfigDuration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    pub idle_timeout: ConfigDuration,
    /// Interval of HTTP/2 keep-alive PINGs.
    pub keepalive_interval: ConfigDuration,
    /// A connection whose keep-alive PING is not answered within this time is closed.
    pub keepalive_timeout: ConfigDuration,
    /// On shutdown, how long in-flight requests get to finish before connections are closed.
    pub shutdown_timeout: ConfigDuration,
    /// On SIGTERM, how long to keep accepting requests while /readyz answers 503, so load
    /// balancers and Kubernetes endpoints stop sending new ones before the listener closes
    /// (a second signal ends it at once). Then in-flight requests get `shutdown_timeout`.
    pub shutdown_delay: ConfigDuration,
    /// Largest total size of a request's headers, in bytes (HTTP/1.1 and HTTP/2); larger is 431.
    #[schemars(range(min = 1024))]
    pub max_header_bytes: u32,
    /// Longest request URI (path and query), in bytes; longer is 414.
    #[schemars(range(min = 256))]
    pub max_uri_bytes: u32,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` / `Forwarded` headers name
    /// the client; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// TLS termination (HTTP/2 and HTTP/1.1 by ALPN); without it the listener speaks plain
    /// HTTP/1.1 and h2c.
    pub tls: Option<ListenerTlsConfig>,
    /// Most header fields in an HTTP/1.1 request; more is 431.
    #[schemars(range(min = 8))]
    pub max_headers: u32,
    /// Time a client has to send a whole request body that is read at once (REST unary calls,
    /// GraphQL POSTs) once its headers are in; a slower body is 408. Streams are not bounded.
    pub body_read_timeout: ConfigDuration,
    /// Origins allowed to open WebSockets (GraphQL subscriptions, bidi REST routes): a browser
    /// sends its page's origin and cookies with the upgrade, so a site that uses cookies should
    /// list its own. Empty: any origin. Requests without `Origin` (non-browser clients) pass.
    pub websocket_origins: Vec<String>,
    /// Header names with underscores: `reject` (400 naming the header), `drop` (removed before
    /// anything reads them) or `allow`. Proxies and CGI-style backends fold `_` and `-`
    /// together, so `X_User_Id` could pass for an identity header the gateway sets.
    pub headers_with_underscores: UnderscoreHeaders,
    /// Most requests handled at once (from their head to their answer's head; streams do not
    /// hold a slot while they flow). One more is answered 503 with `Retry-After: 1` at once
    /// instead of queueing. 0: no limit.
    pub max_in_flight: u32,
}

/// What the listener does with header names that contain underscores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnderscoreHeaders {
    /// The request is refused with 400.
    #[default]
    Reject,
    /// Those headers are removed.
    Drop,
    /// They pass like any other.
    Allow,
}

/// The gateway listener's certificate, and optionally the CAs its clients' certificates must
/// chain to. The files are read when the config is loaded and on every reload; new
/// connections use the newest, open ones keep theirs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CAs that client certificates must chain to (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `none`, `optional` (verified when presented) or `required`.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    None,
    /// A certificate is asked for and verified when presented.
    Optional,
    /// Connections without a valid client certificate are refused.
    Required,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 10_000,
            header_read_timeout: ConfigDuration::from_secs(10),
            idle_timeout: ConfigDuration::from_secs(60),
            keepalive_interval: ConfigDuration::from_secs(30),
            keepalive_timeout: ConfigDuration::from_secs(20),
            shutdown_timeout: ConfigDuration::from_secs(30),
            shutdown_delay: ConfigDuration::from_secs(0),
            max_header_bytes: 64 * 1024,
            max_uri_bytes: 8 * 1024,
            trusted_proxies: Vec::new(),
            tls: None,
            max_headers: 100,
            body_read_timeout: ConfigDuration::from_secs(30),
            websocket_origins: Vec::new(),
            headers_with_underscores: UnderscoreHeaders::Reject,
            max_in_flight: 10_000,
        }
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on.
    #[schemars(extend("format" = "socket-address"))]
    pub listen: SocketAddr,
    /// Bearer token required on admin routes (not on /healthz and /readyz). Required when
    /// `listen` is not a loopback address.
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9090)), token: None }
    }
}

/// Where served definitions come from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// The descriptor registry directory (`*.binpb` registrations). Ignored if absent.
    pub descriptors: PathBuf,
    /// The directory of GraphQL schema files (`*.graphql`). Ignored if absent.
    pub schemas: PathBuf,
    /// An Apollo Federation v2 supergraph SDL file (as composed by Apollo's or The Guild's
    /// composition): its API schema is served and its root fields are planned across its
    /// subgraphs. Each subgraph is served by the backend of its name, or else at the URL the
    /// supergraph gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supergraph: Option<PathBuf>,
    /// Where registrations live: `directory` (`descriptors`, one instance's, or a mounted
    /// ConfigMap) or `redis` (the `[redis]` block's server, shared by every instance: a
    /// registration through any instance's admin API is served by all of them).
    pub registry: RegistryStore,
    /// `serve` reloads when the config file, the descriptors or the schemas change on disk
    /// (Kubernetes ConfigMap updates included).
    pub watch: bool,
    /// How long the files must stay unchanged before a reload (so a half-written file is never
    /// applied).
    pub settle: ConfigDuration,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            descriptors: PathBuf::from("descriptors"),
            schemas: PathBuf::from("schemas"),
            supergraph: None,
            registry: RegistryStore::Directory,
            watch: true,
            settle: ConfigDuration::from_millis(300),
        }
    }
}

/// Where registrations live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistryStore {
    /// The descriptor directory.
    #[default]
    Directory,
    /// Redis (`[redis]`), shared by every gateway instance.
    Redis,
}

/// Header forwarding for calls the gateway builds (REST, GraphQL). `authorization`,
/// `grpc-metadata-*` (prefix removed), `x-request-id`, `traceparent` and `tracestate` are always
/// forwarded; these add more.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HeadersConfig {
    /// Further headers to forward: exact names (`x-tenant`) or prefixes ending in `*` (`x-b3-*`).
    pub forward: Vec<String>,
}

/// Keys whose values are credentials, wherever they appear.
const SECRET_KEYS: &[&str] = &["secret", "password", "token", "sha256"];

impl Config {
    /// The config as JSON with every credential replaced by `REDACTED`: secrets, passwords,
    /// tokens and API-key hashes, credentials in URLs (`redis://user:pass@host`), and values set
    /// for credential headers (a transformation's `authorization`).
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        redact(&mut value);
        value
    }
}

fn redact(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(entries) => {
            for (key, entry) in entries.iter_mut() {
                let key = key.to_ascii_lowercase();
                let secret = SECRET_KEYS.contains(&key.as_str()) || SECRET_HEADERS.contains(&key.as_str());
                if secret && !entry.is_null() {
                    *entry = Value::String("REDACTED".into());
                } else {
                    redact(entry);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            // scheme://user:password@host... → scheme://REDACTED@host...
            if let Some((scheme, rest)) = text.split_once("://")
                && let Some((userinfo, host)) = rest.split_once('@')
                && !userinfo.contains('/')
            {
                *text = format!("{scheme}://REDACTED@{host}");
            }
        }
        _ => {}
    }
}

/// Returns the config's JSON Schema, as the checker and `switchyard config schema` use it.
pub fn config_json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Config);
    serde_json::to_value(schema).expect("a generated schema is valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_wherever_they_sit() {
        let mut config = Config::default();
        config.redis.urls = vec!["redis://user:hunter2@cache.internal:6379/0".into(), "redis://plain:6379".into()];
        config.redis.password = Some("hunter2".into());
        config.admin.token = Some("t0ken".into());
        let redacted = config.redacted();
        let text = redacted.to_string();
        assert!(!text.contains("hunter2") && !text.contains("t0ken"), "{text}");
        assert_eq!(
            redacted["redis"]["urls"],
            serde_json::json!(["redis://REDACTED@cache.internal:6379/0", "redis://plain:6379"])
        );
        assert_eq!(redacted["redis"]["password"], "REDACTED");
        assert_eq!(redacted["redis"]["username"], serde_json::Value::Null, "unset values stay unset");
    }
}
