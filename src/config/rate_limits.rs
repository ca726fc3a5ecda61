//! The `[rate_limits]` block: rate limits (GCRA or token bucket, with burst) and quotas (per day
//! or month), each counted per consumer — a JWT subject or API key, a claim, the client's IP
//! address or a header — on the operations they target, in memory or in Redis; and the one
//! `[redis]` block every Redis-backed feature shares.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigDuration;

/// Rate limits and quotas, checked on every operation after authorization and before any
/// backend call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Where counters live: `memory` (this instance) or `redis` (shared by every instance
    /// through `[redis]`).
    pub store: LimitStore,
    /// When the Redis store cannot be reached: `open` lets requests through uncounted,
    /// `closed` refuses them with 503.
    pub on_store_error: StoreFailure,
    /// Rate limits.
    pub rules: Vec<RateLimitRule>,
    /// Quotas per consumer per day or month (UTC).
    pub quotas: Vec<QuotaRule>,
    /// Most counters the memory store holds; past it, the counters closest to expiring are
    /// forgotten, so a flood of distinct keys (client addresses, header values) costs bounded
    /// memory (about 150 bytes each).
    #[schemars(range(min = 1000))]
    pub max_keys: u64,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        RateLimitsConfig {
            store: LimitStore::default(),
            on_store_error: StoreFailure::default(),
            rules: Vec::new(),
            quotas: Vec::new(),
            max_keys: 100_000,
        }
    }
}

/// Where counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitStore {
    /// In this process.
    #[default]
    Memory,
    /// In Redis (`[redis]`), shared by every gateway instance.
    Redis,
}

/// What happens when the store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    /// Requests go through, uncounted (a warning is logged).
    #[default]
    Open,
    /// Requests are refused with 503 / UNAVAILABLE.
    Closed,
}

/// Whose requests a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitClients {
    /// Everyone's (anonymous clients share the key `anonymous` when it is per identity).
    #[default]
    All,
    /// Authenticated clients' only.
    Authenticated,
    /// Anonymous clients' only.
    Anonymous,
}

/// What a limit's counters are kept per.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LimitKey {
    /// `"subject"`: the verified identity (JWT provider and `sub`, or the API key's identity).
    #[default]
    Subject,
    /// `{ claim = "tenant" }`: a claim of the identity (dotted path).
    Claim(String),
    /// `"client_ip"`: the client's address (X-Forwarded-For and Forwarded are read only from
    /// `listener.trusted_proxies`).
    ClientIp,
    /// `{ header = "x-tenant" }`: a request header's value.
    Header(String),
    /// `"global"`: one counter for everyone.
    Global,
}

/// What one operation costs against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitUnit {
    /// One per call of a targeted method or route, and per use of a targeted GraphQL field
    /// (one per operation for a rule without targets).
    #[default]
    Requests,
    /// A GraphQL operation's estimated cost (`graphql.limits`' estimate); REST and gRPC calls
    /// cost 1. A cost budget.
    Cost,
}

/// How a rate limit spends and refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitAlgorithm {
    /// The generic cell rate algorithm: one timestamp per key.
    #[default]
    Gcra,
    /// A token bucket: a token count and its refill time per key.
    TokenBucket,
}

/// A rate limit: `limit` units per `window`, up to `burst` at once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Its name (in `RateLimit-Policy`, error messages, counter keys and the admin API).
    pub name: String,
    /// gRPC methods it counts (`pkg.Service/Method`, `pkg.Service/*`, `*`), however reached.
    #[serde(default)]
    pub methods: Vec<String>,
    /// REST routes it counts, as `switchyard routes` prints them.
    #[serde(default)]
    pub routes: Vec<String>,
    /// GraphQL fields it counts (`Type.field`, `Type.*`), each use once.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Per what the counters are kept.
    #[serde(default)]
    pub key: LimitKey,
    /// Whose requests it counts.
    #[serde(default)]
    pub clients: LimitClients,
    /// Units allowed per window.
    pub limit: u64,
    /// The window.
    pub window: ConfigDuration,
    /// Units allowed at once (default: `limit`).
    #[serde(default)]
    pub burst: Option<u64>,
    /// GCRA or token bucket.
    #[serde(default)]
    pub algorithm: LimitAlgorithm,
    /// Requests or cost.
    #[serde(default)]
    pub unit: LimitUnit,
}

/// A quota: `limit` units per calendar day or month (UTC) per consumer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaRule {
    /// Its name.
    pub name: String,
    /// gRPC methods it counts.
    #[serde(default)]
    pub methods: Vec<String>,
    /// REST routes it counts.
    #[serde(default)]
    pub routes: Vec<String>,
    /// GraphQL fields it counts.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Per what the counters are kept.
    #[serde(default)]
    pub key: LimitKey,
    /// Whose requests it counts.
    #[serde(default)]
    pub clients: LimitClients,
    /// Units allowed per period.
    pub limit: u64,
    /// `day` or `month`.
    pub period: QuotaPeriod,
    /// Requests or cost.
    #[serde(default)]
    pub unit: LimitUnit,
}

/// A quota's period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    /// A calendar day.
    Day,
    /// A calendar month.
    Month,
}

/// The one Redis connection every Redis-backed feature uses (rate limits here; the shared
/// cache later).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://` for TLS. With several, the first that answers is
    /// used and the next ones take over when it fails (a failover pair, not a cluster).
    pub urls: Vec<String>,
    /// ACL user name.
    pub username: Option<String>,
    /// Password (use `${VAR}`).
    pub password: Option<String>,
    /// For `rediss://`: a PEM file of CAs to trust instead of the system's.
    pub ca_file: Option<std::path::PathBuf>,
    /// Prefix of every key, to share one Redis between deployments.
    pub key_prefix: String,
    /// A connection not established in this time fails.
    pub connect_timeout: ConfigDuration,
    /// A command not answered in this time fails.
    pub command_timeout: ConfigDuration,
    /// Multiplexed connections kept open.
    #[schemars(range(min = 1))]
    pub pool_size: u32,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            urls: Vec::new(),
            username: None,
            password: None,
            ca_file: None,
            key_prefix: "switchyard".into(),
            connect_timeout: ConfigDuration::from_secs(1),
            command_timeout: ConfigDuration(std::time::Duration::from_millis(250)),
            pool_size: 2,
        }
    }
}
