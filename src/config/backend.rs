//! A backend cluster's configuration: its endpoints and protocol, how calls choose an endpoint,
//! health checks, outlier detection, the circuit breaker, retries, timeouts, and the
//! connections (keepalive, TLS) the pool keeps to each endpoint.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigDuration;

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
    /// For gRPC: `gzip` compresses the messages the gateway builds and sends (`grpc-encoding`)
    /// and asks for compressed answers (`grpc-accept-encoding`); `none` (the default) does
    /// neither, which on a LAN costs less CPU on both sides than it saves in bytes.
    #[serde(default)]
    pub grpc_compression: GrpcCompression,
    /// The longest any unary call (or REST request) to this cluster may take, whatever the
    /// client asked: the shorter of this and the client's deadline is sent upstream.
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Per-method overrides of `timeout` for gRPC clusters, by method full name
    /// (`"catalog.v1.Catalog.GetBook" = "500ms"`).
    #[serde(default)]
    pub method_timeouts: BTreeMap<String, ConfigDuration>,
    /// The connections kept to each endpoint.
    #[serde(default)]
    pub connection: ConnectionConfig,
    /// TLS to `https://` endpoints: the CA to trust, the name to verify, a client certificate.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Resolve endpoint host names to their addresses, each address an endpoint, and resolve
    /// them again on an interval (a Kubernetes headless service's pods come and go).
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// Identical reads in flight at the same moment (same method, request, identity and
    /// forwarded headers) share one backend call. Reads are methods marked NO_SIDE_EFFECTS or
    /// bound to GET; turn it off for a backend whose reads must each reach it.
    #[serde(default = "yes")]
    pub coalesce: bool,
}

fn yes() -> bool {
    true
}

/// DNS re-resolution of a cluster's endpoint names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Time between resolutions.
    pub refresh: ConfigDuration,
    /// Name servers to ask (`"10.96.0.10:53"`); empty: the system's (/etc/resolv.conf).
    pub nameservers: Vec<std::net::SocketAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig { refresh: ConfigDuration::from_secs(5), nameservers: Vec::new() }
    }
}

impl BackendConfig {
    /// A cluster of `endpoints` speaking `protocol`, every other setting at its default.
    pub fn new(protocol: BackendProtocol, endpoints: Vec<EndpointConfig>) -> Self {
        BackendConfig {
            protocol,
            endpoints,
            balancer: Balancing::default(),
            hash_on: None,
            health_check: None,
            retries: RetryConfig::default(),
            circuit_breaker: BreakerConfig::default(),
            outlier_detection: None,
            services: Vec::new(),
            grpc_compression: GrpcCompression::default(),
            timeout: None,
            method_timeouts: BTreeMap::new(),
            connection: ConnectionConfig::default(),
            tls: None,
            dns: None,
            coalesce: true,
        }
    }
}

/// The connections a pool keeps to each endpoint of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// A connection not established in this time fails (UNAVAILABLE; retried elsewhere when
    /// the call is idempotent).
    pub connect_timeout: ConfigDuration,
    /// HTTP/2 PING sent on a connection after this much silence ("0s": never)...
    pub keepalive_interval: ConfigDuration,
    /// ...and the connection closed when its answer takes longer than this.
    pub keepalive_timeout: ConfigDuration,
    /// Send keepalive pings on connections with no call in flight too.
    pub keepalive_while_idle: bool,
    /// Idle pooled connections to REST backends are closed after this long.
    pub idle_timeout: ConfigDuration,
    /// REST and GraphQL clusters: `auto` (HTTP/1.1, or HTTP/2 when TLS negotiates it),
    /// `http1`, or `http2` (prior knowledge, also over plaintext). gRPC is always HTTP/2.
    pub http_version: HttpVersion,
    /// gRPC clusters: how many bytes of a call's answer a backend may send ahead of the gateway
    /// reading it (the HTTP/2 stream window the gateway advertises, RFC 9113 §6.9.2). Small keeps
    /// a large answer from waiting whole in the connection's buffers; a far backend's long answers
    /// need about window ÷ round trip to keep their speed.
    #[schemars(range(min = 65535, max = 2147483647))]
    pub stream_window_bytes: u32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            connect_timeout: ConfigDuration::from_secs(5),
            keepalive_interval: ConfigDuration::from_secs(30),
            keepalive_timeout: ConfigDuration::from_secs(10),
            keepalive_while_idle: false,
            idle_timeout: ConfigDuration::from_secs(90),
            http_version: HttpVersion::Auto,
            stream_window_bytes: 256 * 1024,
        }
    }
}

/// The HTTP version a REST pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HttpVersion {
    /// HTTP/1.1, upgraded to HTTP/2 when TLS's ALPN offers it.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only, by prior knowledge (h2c on `http://`).
    Http2,
}

/// TLS to a cluster's `https://` endpoints (rustls). Without a CA file the system's roots are
/// trusted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates that sign the endpoints' certificates.
    pub ca_file: Option<std::path::PathBuf>,
    /// The name the endpoints' certificates must carry (default: each URL's host).
    pub server_name: Option<String>,
    /// PEM file of a client certificate chain, for backends that require mutual TLS...
    pub client_cert_file: Option<std::path::PathBuf>,
    /// ...and its private key (PEM).
    pub client_key_file: Option<std::path::PathBuf>,
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
    /// Also eject an endpoint when at least this percent of its calls in a `window` failed
    /// (0: off)...
    #[schemars(range(max = 100))]
    pub failure_rate: u32,
    /// ...once at least this many ended in it.
    #[schemars(range(min = 1))]
    pub min_requests: u32,
    /// The failure-rate window.
    pub window: ConfigDuration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection: ConfigDuration::from_secs(30),
            max_ejection: ConfigDuration::from_secs(300),
            max_ejection_percent: 10,
            failure_rate: 0,
            min_requests: 20,
            window: ConfigDuration::from_secs(10),
        }
    }
}

/// A cluster's circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Calls in flight at once; more wait (`max_pending`) or fail fast.
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
    /// Calls that may wait for a slot while `max_concurrent` are in flight (each at most until
    /// its deadline); beyond this they fail fast.
    pub max_pending: u32,
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
            max_pending: 1024,
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
    /// The failures a retry is tried on.
    pub retry_on: Vec<RetryOn>,
    /// gRPC methods (full names, `catalog.v1.Catalog.CreateBook`) to treat as idempotent
    /// although their descriptor does not say so.
    pub methods: Vec<String>,
}

/// A kind of failure a call may be retried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// No endpoint answered (connection refused, reset, connect timeout), gRPC UNAVAILABLE, or
    /// HTTP 503.
    Unavailable,
    /// gRPC RESOURCE_EXHAUSTED or HTTP 429.
    ResourceExhausted,
    /// gRPC INTERNAL or HTTP 500.
    Internal,
    /// HTTP 502 or 504 (a proxy in front of the backend failed).
    GatewayError,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 2,
            budget_percent: 20,
            min_concurrency: 3,
            base_backoff: ConfigDuration(std::time::Duration::from_millis(25)),
            max_backoff: ConfigDuration(std::time::Duration::from_millis(250)),
            retry_on: vec![RetryOn::Unavailable],
            methods: Vec::new(),
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
    /// `{ claim = "sub" }`: a claim of the verified identity (dotted path; `sub` works for API
    /// keys and client certificates too), so a user's calls stay on one endpoint whatever
    /// device or address they come from.
    Claim(String),
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
