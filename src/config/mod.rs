//! Typed configuration: the TOML file's shape (this file), loading with `${VAR}` expansion and
//! schema-driven checking that reports every problem with its key path and line (`load`,
//! `schema_check`, `env`), and the semantic checks that span keys (`validate`). Config is a
//! public API: every key is documented in README's config reference, unknown keys are refused,
//! durations are strings like `"250ms"`. This module does no network I/O and knows nothing of
//! descriptors or requests.

mod duration;
mod env;
mod graphql;
mod load;
mod problem;
mod rest;
mod schema_check;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use duration::ConfigDuration;
pub use graphql::{
    GraphqlConfig, GraphqlKind, GraphqlLimits, GraphqlMethodConfig, GraphqlServiceConfig, SubscriptionConfig,
    TrustedDocumentsConfig,
};
pub use load::{LoadedConfig, load_config_file, parse_config};
pub use problem::{Problem, Severity};
pub use rest::{JsonChoices, JsonProfile, ResolvedJson, RestConfig, StreamFormat};
pub use validate::check_endpoint_url;

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
    /// Largest total size of a request's headers, in bytes (HTTP/1.1 and HTTP/2); larger is 431.
    #[schemars(range(min = 1024))]
    pub max_header_bytes: u32,
    /// Longest request URI (path and query), in bytes; longer is 414.
    #[schemars(range(min = 256))]
    pub max_uri_bytes: u32,
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
            max_header_bytes: 64 * 1024,
            max_uri_bytes: 8 * 1024,
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
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig { descriptors: PathBuf::from("descriptors"), schemas: PathBuf::from("schemas") }
    }
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

/// The protocol a backend cluster speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendProtocol {
    /// gRPC over HTTP/2 (`http://` plaintext, `https://` TLS).
    #[default]
    Grpc,
    /// A REST (JSON over HTTP) backend.
    Http,
    /// A GraphQL backend.
    Graphql,
}

/// One named backend cluster.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// The protocol the cluster speaks.
    #[serde(default)]
    pub protocol: BackendProtocol,
    /// Endpoints: URLs (`http://host:port` or `https://host:port`), or `{ url, weight }`.
    pub endpoints: Vec<EndpointConfig>,
    /// How calls choose an endpoint.
    #[serde(default)]
    pub balancer: Balancing,
    /// What a call's key is for `ring_hash` and `maglev` (session persistence): a request
    /// header, a cookie, or the client's IP address. Without one, they go round robin.
    #[serde(default)]
    pub hash_on: Option<HashOn>,
    /// Active health checks; an endpoint that fails them leaves the rotation until it passes.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    /// Retries of idempotent calls that found no endpoint answering (UNAVAILABLE).
    #[serde(default)]
    pub retries: RetryConfig,
    /// The cluster's circuit breaker.
    #[serde(default)]
    pub circuit_breaker: BreakerConfig,
    /// Passive outlier detection: endpoints whose calls keep failing are ejected for a while.
    #[serde(default)]
    pub outlier_detection: Option<OutlierConfig>,
    /// For gRPC: the services (`catalog.v1.Catalog`) or package prefixes (`catalog.v1`,
    /// `catalog`) this cluster serves; the longest match wins.
    #[serde(default)]
    pub services: Vec<String>,
    /// For gRPC: compress the messages the gateway builds and sends (`grpc-encoding`);
    /// compressed answers are always accepted.
    #[serde(default)]
    pub grpc_compression: GrpcCompression,
}

/// How a backend cluster's calls choose an endpoint (`upstream::pool` implements each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balancing {
    /// Each endpoint in turn (weights ignored).
    #[default]
    RoundRobin,
    /// Each endpoint in proportion to its weight, interleaved smoothly (nginx).
    WeightedRoundRobin,
    /// The endpoint with the fewest calls in flight (ties in turn).
    LeastOutstanding,
    /// The fewest calls in flight per unit of weight.
    WeightedLeastOutstanding,
    /// Of two random endpoints, the one with the lower peak-EWMA latency × (calls in flight + 1).
    PeakEwma,
    /// Uniformly at random.
    Random,
    /// Consistent hashing on a ring of virtual nodes (weighted): a key keeps its endpoint.
    RingHash,
    /// Consistent hashing with a Maglev lookup table (weighted): even spread, minimal movement.
    Maglev,
}

impl Balancing {
    /// True for the consistent-hashing algorithms (they need a key per call).
    pub fn hashes(self) -> bool {
        matches!(self, Balancing::RingHash | Balancing::Maglev)
    }
}

/// Passive outlier detection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierConfig {
    /// Consecutive failed calls (unreachable, timed out, server errors) that eject an endpoint.
    #[schemars(range(min = 1))]
    pub consecutive_failures: u32,
    /// The first ejection's length; the n-th lasts n times as long...
    pub base_ejection: ConfigDuration,
    /// ...up to this.
    pub max_ejection: ConfigDuration,
    /// At most this percent of endpoints ejected at once (always at least one).
    #[schemars(range(max = 100))]
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection: ConfigDuration::from_secs(30),
            max_ejection: ConfigDuration::from_secs(300),
            max_ejection_percent: 10,
        }
    }
}

/// A cluster's circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Calls in flight beyond this fail fast.
    #[schemars(range(min = 1))]
    pub max_concurrent: u32,
    /// Open when at least this percent of a window's calls failed...
    #[schemars(range(min = 1, max = 100))]
    pub failure_rate: u32,
    /// ...and at least this many ended in it.
    #[schemars(range(min = 1))]
    pub min_requests: u32,
    /// The counting window.
    pub window: ConfigDuration,
    /// How long an open breaker fails calls fast before it lets probes through.
    pub open_for: ConfigDuration,
    /// Calls let through at once while half open.
    #[schemars(range(min = 1))]
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            max_concurrent: 10_000,
            failure_rate: 50,
            min_requests: 20,
            window: ConfigDuration::from_secs(10),
            open_for: ConfigDuration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

/// Retries of idempotent unary calls, on another endpoint, within a budget.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Most retries of one call (0: none).
    #[schemars(range(max = 10))]
    pub max_retries: u32,
    /// Retries in flight may be at most this percent of calls in flight...
    #[schemars(range(max = 100))]
    pub budget_percent: u32,
    /// ...or this many, whichever is more.
    pub min_concurrency: u32,
    /// The first backoff's ceiling; each retry doubles it (full jitter).
    pub base_backoff: ConfigDuration,
    /// The largest backoff ceiling.
    pub max_backoff: ConfigDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 2,
            budget_percent: 20,
            min_concurrency: 3,
            base_backoff: ConfigDuration(std::time::Duration::from_millis(25)),
            max_backoff: ConfigDuration(std::time::Duration::from_millis(250)),
        }
    }
}

/// Active health checks of a cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Time between checks of each endpoint.
    pub interval: ConfigDuration,
    /// A check not answered in this time fails.
    pub timeout: ConfigDuration,
    /// Consecutive passes that bring an unhealthy endpoint back.
    #[schemars(range(min = 1))]
    pub healthy_threshold: u32,
    /// Consecutive failures that take a healthy endpoint out.
    #[schemars(range(min = 1))]
    pub unhealthy_threshold: u32,
    /// gRPC clusters: the service name asked of grpc.health.v1 (empty: the server as a whole).
    pub grpc_service: String,
    /// HTTP clusters: the path to GET; a 2xx answer passes.
    pub http_path: String,
    /// Below this share of healthy endpoints (percent), health is ignored and every endpoint
    /// is used (the panic threshold).
    #[schemars(range(max = 100))]
    pub panic_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            interval: ConfigDuration::from_secs(5),
            timeout: ConfigDuration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 2,
            grpc_service: String::new(),
            http_path: "/healthz".into(),
            panic_threshold: 50,
        }
    }
}

/// The key consistent hashing places a call by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashOn {
    /// `{ header = "x-user-id" }`: a request header's value.
    Header(String),
    /// `{ cookie = "session" }`: a cookie's value.
    Cookie(String),
    /// `"client_ip"`: the client's IP address.
    ClientIp,
}

/// One endpoint of a backend: its URL, or its URL and weight.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum EndpointConfig {
    /// `"http://host:port"` (weight 1).
    Url(String),
    /// `{ url = "http://host:port", weight = 3, priority = 1 }`.
    Weighted(WeightedEndpoint),
}

/// An endpoint with a weight.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedEndpoint {
    /// The URL.
    pub url: String,
    /// Its share relative to the others (weighted algorithms and consistent hashing).
    #[serde(default = "weight_one")]
    #[schemars(range(min = 1, max = 1000))]
    pub weight: u32,
    /// Its priority group: 0 (the default) is the primary; a higher group takes calls only
    /// when every lower one has no healthy endpoint (backups).
    #[serde(default)]
    #[schemars(range(max = 10))]
    pub priority: u32,
}

fn weight_one() -> u32 {
    1
}

impl EndpointConfig {
    /// The URL.
    pub fn url(&self) -> &str {
        match self {
            EndpointConfig::Url(url) => url,
            EndpointConfig::Weighted(endpoint) => &endpoint.url,
        }
    }

    /// The weight (1 unless given).
    pub fn weight(&self) -> u32 {
        match self {
            EndpointConfig::Url(_) => 1,
            EndpointConfig::Weighted(endpoint) => endpoint.weight.max(1),
        }
    }

    /// The priority group (0 unless given).
    pub fn priority(&self) -> u32 {
        match self {
            EndpointConfig::Url(_) => 0,
            EndpointConfig::Weighted(endpoint) => endpoint.priority,
        }
    }
}

/// Message compression on gRPC calls the gateway builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrpcCompression {
    /// Send messages uncompressed.
    #[default]
    None,
    /// Send messages gzip-compressed.
    Gzip,
}

/// Returns the config's JSON Schema, as the checker and `switchyard config schema` use it.
pub fn config_json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Config);
    serde_json::to_value(schema).expect("a generated schema is valid JSON")
}
