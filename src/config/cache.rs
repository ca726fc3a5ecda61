//! The `[cache]` block: which backend fetches are cached, for how long and for whom, and how
//! much memory the cache may use.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigDuration;

/// Fetch caching: a cached fetch (a read: a NO_SIDE_EFFECTS or GET-bound method, a REST
/// source's GET) is answered from memory until its TTL passes. Nothing is cached unless a rule
/// gives it a TTL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Most bytes of cached answers (keys included); the least used entries are evicted.
    pub max_bytes: u64,
    /// Request headers whose values are part of every key (`accept-language`).
    pub vary: Vec<String>,
    /// TTLs and scopes.
    pub rules: Vec<CacheRule>,
    /// What writes make stale.
    pub invalidations: Vec<CacheInvalidation>,
    /// Keep fetched answers in Redis too (the `[redis]` block), as a second level every gateway
    /// instance shares.
    pub redis: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 64 * 1024 * 1024,
            vary: Vec::new(),
            rules: Vec::new(),
            invalidations: Vec::new(),
            redis: false,
        }
    }
}

/// When a call of one of `methods` succeeds (however reached), the cached answers of
/// `drop_methods` and of fetches for `drop_types` become stale at once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheInvalidation {
    /// The writes (`pkg.Service/Method`, `pkg.Service/*`).
    pub methods: Vec<String>,
    /// Methods whose cached answers they make stale.
    #[serde(default)]
    pub drop_methods: Vec<String>,
    /// GraphQL types whose fetches' cached answers they make stale.
    #[serde(default)]
    pub drop_types: Vec<String>,
}

/// One rule: what it caches, how long, and whether the answer is the same for everyone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// gRPC methods (`pkg.Service/Method`, `pkg.Service/*`, `*`), however reached.
    #[serde(default)]
    pub methods: Vec<String>,
    /// GraphQL fields whose fetch it caches (`Query.getBook`, `Book.writer`, `Type.*`).
    #[serde(default)]
    pub fields: Vec<String>,
    /// GraphQL types: every field of this type.
    #[serde(default)]
    pub types: Vec<String>,
    /// REST routes, as `switchyard routes` prints them (`GET /v1/{name=shelves/*/books/*}`), or a
    /// template for every verb. A route's answers follow this rule and its method's, the
    /// stricter of the two.
    #[serde(default)]
    pub routes: Vec<String>,
    /// How long an answer is served from the cache.
    pub ttl: ConfigDuration,
    /// After the TTL, how long the old answer is still served while one background fetch
    /// refreshes it (stale-while-revalidate; gRPC, REST-source and GraphQL-source fetches).
    #[serde(default)]
    pub stale_while_revalidate: Option<ConfigDuration>,
    /// `private` (default): kept per identity, never served to another; `public`: shared.
    #[serde(default)]
    pub scope: CacheScope,
}

/// Who may be served a cached answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheScope {
    /// Only the identity it was fetched for (anonymous clients share one).
    #[default]
    Private,
    /// Everyone.
    Public,
}
