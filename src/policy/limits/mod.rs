//! Rate limits and quotas: what an operation uses of each limit (one per call of a targeted
//! method or route, one per use of a targeted GraphQL field, one per operation for a limit
//! without targets — or the operation's estimated cost), counted per consumer in memory or in
//! Redis, all-or-nothing: an operation refused by one limit uses none of the others.

mod algorithm;
mod memory;
mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use prost_reflect::MethodDescriptor;
use sha2::{Digest, Sha256};

pub use algorithm::{Outcome, Spec, State, charge, period};
pub use memory::MemoryStore;
pub use redis::{RedisStore, StoreError};

use super::targets::{Served, TargetIndex, Targets, method_path};
use crate::config::{
    ConfigDuration, LimitAlgorithm, LimitClients, LimitKey, LimitStore, LimitUnit, Problem, QuotaPeriod, QuotaRule,
    RateLimitRule, RateLimitsConfig, RedisConfig, StoreFailure,
};
use crate::error::ErrorCode;
use crate::operation::{Identity, SelectionSet, is_hidden_key};
use crate::schema::GraphqlSchema;

/// One charge against one counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// The counter's key (without the deployment prefix).
    pub key: String,
    /// The limit's parameters.
    pub spec: Spec,
    /// Units to use.
    pub amount: u64,
}

/// Where counters live.
pub enum Store {
    /// In this process.
    Memory(MemoryStore),
    /// In Redis.
    Redis(Box<RedisStore>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Memory(_) => f.write_str("Memory"),
            Store::Redis(store) => store.fmt(f),
        }
    }
}

/// A compiled limit.
#[derive(Debug, Clone)]
struct Limit {
    name: String,
    /// Its `RateLimit-Policy` value, the same on every answer.
    policy: HeaderValue,
    kind: LimitKind,
    key: LimitKey,
    clients: LimitClients,
    unit: LimitUnit,
}

#[derive(Debug, Clone, Copy)]
enum LimitKind {
    Rate { algorithm: LimitAlgorithm, limit: u64, window: ConfigDuration, burst: u64 },
    Quota { limit: u64, period: QuotaPeriod },
}

/// Who is asking, as limits key it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The verified identity, if any.
    pub identity: Option<&'a Identity>,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The client's address (after trusted proxies).
    pub client_ip: Option<IpAddr>,
}

/// What an operation uses: units per limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage(Vec<(usize, u64)>);

impl Usage {
    /// True when it uses no limit.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An admitted operation: the headers that describe its tightest limit.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// `RateLimit-Policy` and `RateLimit`, when a limit applied.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Why an operation may not run now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A limit or quota is used up.
    #[error("{message}")]
    Limited {
        /// Names the limit and when to retry.
        message: String,
        /// Seconds until it would fit.
        retry_after: u64,
        /// RateLimited or QuotaExhausted.
        code: ErrorCode,
        /// `RateLimit-Policy`, `RateLimit` and `Retry-After`.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// The store is unreachable and `on_store_error = "closed"`.
    #[error("{0}")]
    Unavailable(String),
}

impl Refused {
    /// The error code for the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refused::Limited { code, .. } => *code,
            Refused::Unavailable(_) => ErrorCode::Unavailable,
        }
    }

    /// Headers for an HTTP answer.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        match self {
            Refused::Limited { headers, .. } => headers,
            Refused::Unavailable(_) => &[],
        }
    }
}

/// The snapshot's limits, with the store their counters live in.
#[derive(Debug)]
pub struct Limiter {
    limits: Vec<Limit>,
    targets: TargetIndex,
    untargeted: Vec<usize>,
    store: Arc<Store>,
    store_config: (LimitStore, RedisConfig),
    on_error: StoreFailure,
}

impl Limiter {
    /// Compiles and indexes the limits of `config` and of the methods' proto options. Errors
    /// refuse the snapshot; a target that matches nothing is a warning.
    pub fn build(config: &RateLimitsConfig, redis: &RedisConfig, served: &Served<'_>) -> (Option<Self>, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut limits = Vec::new();
        let mut targets = TargetIndex::default();
        let mut untargeted = Vec::new();
        let mut names = std::collections::HashSet::new();
        let mut add = |limit: Result<Limit, (String, String)>,
                       patterns: Targets<'_>,
                       at: &dyn Fn(&str) -> String,
                       problems: &mut Vec<Problem>| {
            let limit = match limit {
                Ok(limit) => limit,
                Err((key, why)) => return problems.push(Problem::error(at(&key), why)),
            };
            if !names.insert(limit.name.clone()) {
                return problems.push(Problem::error(at("name"), format!("`{}` names two limits", limit.name)));
            }
            let index = limits.len();
            if patterns.is_empty() {
                untargeted.push(index);
            } else {
                targets.add(served, index, &patterns, at, problems);
            }
            limits.push(limit);
        };
        for (i, rule) in config.rules.iter().enumerate() {
            let at = |key: &str| format!("rate_limits.rules[{i}].{key}");
            let patterns = Targets { methods: &rule.methods, routes: &rule.routes, fields: &rule.fields, types: &[] };
            add(compile_rate(rule), patterns, &at, &mut problems);
        }
        for (i, quota) in config.quotas.iter().enumerate() {
            let at = |key: &str| format!("rate_limits.quotas[{i}].{key}");
            let patterns =
                Targets { methods: &quota.methods, routes: &quota.routes, fields: &quota.fields, types: &[] };
            add(compile_quota(quota), patterns, &at, &mut problems);
        }
        for method in served.methods() {
            let Some(rule) = option_limit(method) else { continue };
            let path = method_path(method);
            let at = |key: &str| format!("{}: (switchyard.v1.method).rate_limit.{key}", method.full_name());
            let methods = [path];
            let patterns = Targets { methods: &methods, routes: &[], fields: &[], types: &[] };
            add(rule.and_then(|rule| compile_rate(&rule)), patterns, &at, &mut problems);
        }
        targets.fold_methods_into_fields(served.schema());
        let store = match config.store {
            LimitStore::Memory => Store::Memory(MemoryStore::with_max_keys(config.max_keys as usize)),
            LimitStore::Redis => match RedisStore::build(redis) {
                Ok(store) => Store::Redis(Box::new(store)),
                Err((key, why)) => {
                    problems.push(Problem::error(format!("redis.{key}"), why));
                    return (None, problems);
                }
            },
        };
        let limiter = Limiter {
            limits,
            targets,
            untargeted,
            store: Arc::new(store),
            store_config: (config.store, redis.clone()),
            on_error: config.on_store_error,
        };
        (Some(limiter), problems)
    }

    /// Keeps `previous`'s counters when the store is configured the same (a reload).
    pub fn adopt_store(&mut self, previous: &Limiter) {
        if self.store_config == previous.store_config {
            self.store = previous.store.clone();
        }
    }

    /// True when no limit exists.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// What a REST, gRPC or WebSocket call of `method` (by REST route `route`) uses.
    pub fn usage_of_call(&self, method: &MethodDescriptor, route: Option<usize>) -> Usage {
        if self.is_empty() {
            return Usage::default();
        }
        let mut counts = vec![0u64; self.limits.len()];
        for &limit in self.targets.method(method) {
            counts[limit] += 1;
        }
        if let Some(route) = route {
            for &limit in self.targets.route(route) {
                counts[limit] = counts[limit].max(1);
            }
        }
        self.usage(counts, 1)
    }

    /// What a GraphQL operation uses: `roots` are its root fields (root type, field name, the
    /// field's type and its selection) and `cost` its estimated cost.
    pub fn usage_of_graphql(
        &self,
        schema: &GraphqlSchema,
        roots: &[(&str, &str, &str, &SelectionSet)],
        cost: u64,
    ) -> Usage {
        if self.is_empty() {
            return Usage::default();
        }
        let mut counts = vec![0u64; self.limits.len()];
        if self.targets.has_fields() {
            for (root, name, type_name, selection) in roots {
                for &limit in self.targets.field(root, name) {
                    counts[limit] += 1;
                }
                self.count_fields(schema, type_name, selection, &mut counts);
            }
        }
        self.usage(counts, cost.max(1))
    }

    fn count_fields(&self, schema: &GraphqlSchema, type_name: &str, selection: &SelectionSet, counts: &mut [u64]) {
        for (name, set) in &selection.by_type {
            self.count_fields(schema, name, set, counts);
        }
        for field in &selection.fields {
            if field.forbidden.is_some() || is_hidden_key(&field.response_key) || field.field_name.starts_with("__") {
                continue;
            }
            for &limit in self.targets.field(type_name, &field.field_name) {
                counts[limit] += 1;
            }
            if !field.children.fields.is_empty()
                && let Some(definition) = schema.object_field(type_name, &field.field_name)
            {
                self.count_fields(schema, &definition.ty.name, &field.children, counts);
            }
        }
    }

    /// Turns per-limit use counts into charges' amounts: counts for request limits (1 for
    /// untargeted ones), the cost for cost limits that apply.
    fn usage(&self, mut counts: Vec<u64>, cost: u64) -> Usage {
        for &limit in &self.untargeted {
            counts[limit] = 1;
        }
        let used = counts
            .into_iter()
            .enumerate()
            .filter(|(_, count)| *count > 0)
            .map(|(limit, count)| match self.limits[limit].unit {
                LimitUnit::Requests => (limit, count),
                LimitUnit::Cost => (limit, cost),
            })
            .collect();
        Usage(used)
    }

    /// Charges `usage` for `caller`: admitted with the headers of its tightest limit, or
    /// refused (nothing is charged then).
    pub async fn admit(&self, caller: &Caller<'_>, usage: &Usage) -> Result<Admitted, Refused> {
        if usage.is_empty() {
            return Ok(Admitted::default());
        }
        let now = now_ms();
        let mut applied = Vec::with_capacity(usage.0.len());
        let mut charges = Vec::with_capacity(usage.0.len());
        for &(index, amount) in &usage.0 {
            let limit = &self.limits[index];
            let applies = match limit.clients {
                LimitClients::All => true,
                LimitClients::Authenticated => caller.identity.is_some(),
                LimitClients::Anonymous => caller.identity.is_none(),
            };
            if !applies {
                continue;
            }
            // The counter's key: `rl:NAME:CONSUMER`, or `q:NAME:PERIOD:CONSUMER` for a quota.
            let mut key = String::with_capacity(limit.name.len() + 48);
            let spec = match (limit_spec(&limit.kind), limit.kind) {
                (Some(spec), _) => {
                    key.extend(["rl:", &limit.name, ":"]);
                    spec
                }
                (None, LimitKind::Quota { limit: quota, period: which }) => {
                    let (label, period_end) = period(which == QuotaPeriod::Month, now);
                    key.extend(["q:", &limit.name, ":", &label, ":"]);
                    Spec::Quota { limit: quota, period_end }
                }
                (None, LimitKind::Rate { .. }) => continue,
            };
            push_consumer(&mut key, &limit.key, caller);
            applied.push(index);
            charges.push(Charge { key, spec, amount });
        }
        if charges.is_empty() {
            return Ok(Admitted::default());
        }
        let outcomes = match self.store.as_ref() {
            Store::Memory(store) => store.apply(&charges, now),
            Store::Redis(store) => match store.apply(&charges).await {
                Ok((outcomes, _)) => outcomes,
                Err(error) => {
                    return match self.on_error {
                        StoreFailure::Open => {
                            tracing::warn!(%error, "rate limits not counted (on_store_error = open)");
                            Ok(Admitted::default())
                        }
                        StoreFailure::Closed => Err(Refused::Unavailable(error.to_string())),
                    };
                }
            },
        };
        if let Some((position, outcome)) = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.allowed)
            .max_by(|a, b| a.1.retry_after.total_cmp(&b.1.retry_after))
        {
            let limit = &self.limits[applied[position]];
            crate::telemetry::record::note_rejected(&limit.name);
            let retry_after = ((outcome.retry_after / 1000.0).ceil() as u64).max(1);
            let mut headers = limit_headers(limit, outcome);
            headers.push((http::header::RETRY_AFTER, HeaderValue::from(retry_after)));
            let (what, code) = match limit.kind {
                LimitKind::Rate { limit: per_window, window, .. } => (
                    format!(
                        "rate limit `{}` exceeded ({per_window} {} per {window})",
                        limit.name,
                        unit_name(limit.unit)
                    ),
                    ErrorCode::RateLimited,
                ),
                LimitKind::Quota { limit: quota, period: which } => (
                    format!(
                        "quota `{}` exhausted ({quota} {} per {})",
                        limit.name,
                        unit_name(limit.unit),
                        if which == QuotaPeriod::Day { "day" } else { "month" }
                    ),
                    ErrorCode::QuotaExhausted,
                ),
            };
            let message = format!("{what}; retry in {retry_after} s");
            return Err(Refused::Limited { message, retry_after, code, headers });
        }
        let tightest = outcomes.iter().enumerate().min_by_key(|(_, o)| o.remaining);
        let headers =
            tightest.map(|(position, o)| limit_headers(&self.limits[applied[position]], o)).unwrap_or_default();
        Ok(Admitted { headers })
    }

    /// Every live counter, for the admin API: limit, consumer, and what is used or left.
    pub async fn usage_report(&self) -> serde_json::Value {
        let now = now_ms();
        let (store, states) = match self.store.as_ref() {
            Store::Memory(store) => ("memory", store.snapshot(now)),
            Store::Redis(store) => match store.scan().await {
                Ok(raw) => {
                    ("redis", raw.into_iter().filter_map(|(key, value)| self.parse_state(&key, &value)).collect())
                }
                Err(error) => return serde_json::json!({"store": "redis", "error": error.to_string(), "counters": []}),
            },
        };
        let counters: Vec<serde_json::Value> =
            states.into_iter().filter_map(|(key, state)| self.describe_counter(&key, state, now)).collect();
        serde_json::json!({"store": store, "counters": counters})
    }

    /// A Redis counter's value as the state of its limit's kind.
    fn parse_state(&self, key: &str, value: &str) -> Option<(String, State)> {
        let name = key.split(':').nth(1)?;
        let limit = self.limits.iter().find(|l| l.name == name)?;
        let state = match limit.kind {
            LimitKind::Quota { .. } => State::Used(value.parse::<f64>().ok()? as u64),
            LimitKind::Rate { algorithm: LimitAlgorithm::Gcra, .. } => State::Tat(value.parse().ok()?),
            LimitKind::Rate { algorithm: LimitAlgorithm::TokenBucket, .. } => {
                let (tokens, at) = value.split_once(':')?;
                State::Tokens { tokens: tokens.parse().ok()?, at: at.parse().ok()? }
            }
        };
        Some((key.to_owned(), state))
    }

    fn describe_counter(&self, key: &str, state: State, now: f64) -> Option<serde_json::Value> {
        let (kind, rest) = key.split_once(':')?;
        let (name, consumer) = rest.split_once(':')?;
        let limit = self.limits.iter().find(|l| l.name == name)?;
        Some(match (kind, limit.kind, state) {
            ("q", LimitKind::Quota { limit: quota, .. }, State::Used(used)) => {
                let (period, consumer) = consumer.split_once(':')?;
                serde_json::json!({"limit": name, "kind": "quota", "period": period, "consumer": consumer, "used": used, "quota": quota})
            }
            ("rl", LimitKind::Rate { limit: per_window, window, burst, .. }, state) => {
                let remaining =
                    limit_spec(&limit.kind).map_or(burst, |spec| charge(spec, Some(state), 0, now).remaining);
                serde_json::json!({"limit": name, "kind": "rate", "consumer": consumer, "remaining": remaining, "burst": burst, "per_window": per_window, "window": window.to_string()})
            }
            _ => return None,
        })
    }
}

/// A rate limit's parameters (None for quotas, whose period is the time's).
fn limit_spec(kind: &LimitKind) -> Option<Spec> {
    match *kind {
        LimitKind::Rate { algorithm, limit, window, burst } => {
            let interval = window.get().as_secs_f64() * 1000.0 / limit as f64;
            Some(match algorithm {
                LimitAlgorithm::Gcra => Spec::Gcra { interval, burst },
                LimitAlgorithm::TokenBucket => Spec::Bucket { interval, burst },
            })
        }
        LimitKind::Quota { .. } => None,
    }
}

fn unit_name(unit: LimitUnit) -> &'static str {
    match unit {
        LimitUnit::Requests => "requests",
        LimitUnit::Cost => "cost units",
    }
}

/// Constants, so no request parses the names.
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `RateLimit-Policy: "name";q=100;w=60` and `RateLimit: "name";r=42;t=17`.
fn limit_headers(limit: &Limit, outcome: &Outcome) -> Vec<(HeaderName, HeaderValue)> {
    // `"NAME";r=REMAINING;t=SECONDS`, written without the formatting machinery (this runs on
    // every limited request).
    let mut numbers = itoa::Buffer::new();
    let mut state = String::with_capacity(limit.name.len() + 48);
    state.extend(["\"", &limit.name, "\";r=", numbers.format(outcome.remaining), ";t="]);
    state.push_str(numbers.format((outcome.reset / 1000.0).ceil() as u64));
    let mut headers = Vec::with_capacity(3);
    headers.push((RATELIMIT_POLICY, limit.policy.clone()));
    if let Ok(state) = HeaderValue::try_from(state) {
        headers.push((RATELIMIT, state));
    }
    headers
}

/// The `RateLimit-Policy` value of a limit: `"NAME";q=QUOTA;w=WINDOW_SECONDS` (no window for a
/// monthly quota, whose length varies).
fn policy_header(name: &str, kind: LimitKind) -> HeaderValue {
    let policy = match kind {
        LimitKind::Rate { limit: per_window, window, .. } => {
            format!("\"{name}\";q={per_window};w={}", window.get().as_secs().max(1))
        }
        LimitKind::Quota { limit: quota, period: QuotaPeriod::Day } => format!("\"{name}\";q={quota};w=86400"),
        LimitKind::Quota { limit: quota, period: QuotaPeriod::Month } => format!("\"{name}\";q={quota}"),
    };
    // Limit names are checked to be letters, digits, `-`, `_` and `.`.
    HeaderValue::try_from(policy).expect("a limit name is header-safe")
}

/// Appends the consumer part of a counter's key to `key`; a long or non-printable value is
/// replaced by its SHA-256 in hex.
fn push_consumer(key: &mut String, limit_key: &LimitKey, caller: &Caller<'_>) {
    let start = key.len();
    match limit_key {
        LimitKey::Subject => match caller.identity {
            Some(identity) => identity.push_key(key),
            None => key.push_str("anonymous"),
        },
        LimitKey::Claim(path) => match caller.identity.and_then(|i| i.claim(path)) {
            Some(value) => match value.as_str() {
                Some(text) => key.push_str(text),
                None => key.push_str(&value.to_string()),
            },
            None => key.push('-'),
        },
        LimitKey::ClientIp => match caller.client_ip {
            Some(ip) => {
                use std::fmt::Write;
                let _ = write!(key, "{ip}");
            }
            None => key.push_str("unknown"),
        },
        LimitKey::Header(name) => {
            key.push_str(caller.headers.get(name.as_str()).and_then(|v| v.to_str().ok()).unwrap_or("-"))
        }
        LimitKey::Global => key.push('*'),
    }
    let raw = &key[start..];
    if raw.len() > 64 || raw.bytes().any(|b| !b.is_ascii_graphic()) {
        let digest = hex::encode(Sha256::digest(raw.as_bytes()));
        key.truncate(start);
        key.push_str(&digest);
    }
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn check_name(name: &str) -> Result<(), (String, String)> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(("name".into(), format!("`{name}` is not a limit name (letters, digits, `-`, `_`, `.`)")));
    }
    Ok(())
}

fn compile_rate(rule: &RateLimitRule) -> Result<Limit, (String, String)> {
    check_name(&rule.name)?;
    if rule.limit == 0 {
        return Err(("limit".into(), "must be at least 1".into()));
    }
    if rule.window.get().is_zero() {
        return Err(("window".into(), "must be longer than zero".into()));
    }
    let burst = rule.burst.unwrap_or(rule.limit);
    if burst == 0 {
        return Err(("burst".into(), "must be at least 1".into()));
    }
    check_key(&rule.key)?;
    let kind = LimitKind::Rate { algorithm: rule.algorithm, limit: rule.limit, window: rule.window, burst };
    Ok(Limit {
        name: rule.name.clone(),
        policy: policy_header(&rule.name, kind),
        kind,
        key: rule.key.clone(),
        clients: rule.clients,
        unit: rule.unit,
    })
}

fn compile_quota(quota: &QuotaRule) -> Result<Limit, (String, String)> {
    check_name(&quota.name)?;
    if quota.limit == 0 {
        return Err(("limit".into(), "must be at least 1".into()));
    }
    check_key(&quota.key)?;
    let kind = LimitKind::Quota { limit: quota.limit, period: quota.period };
    Ok(Limit {
        name: quota.name.clone(),
        policy: policy_header(&quota.name, kind),
        kind,
        key: quota.key.clone(),
        clients: quota.clients,
        unit: quota.unit,
    })
}

fn check_key(key: &LimitKey) -> Result<(), (String, String)> {
    match key {
        LimitKey::Header(name) if HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() => {
            Err(("key".into(), format!("`{name}` is not a header name")))
        }
        LimitKey::Claim(path) if path.is_empty() || path.split('.').any(str::is_empty) => {
            Err(("key".into(), format!("`{path}` is not a claim name or dotted path")))
        }
        _ => Ok(()),
    }
}

/// The limit `(switchyard.v1.method).rate_limit` declares on `method`, as a config rule.
fn option_limit(method: &MethodDescriptor) -> Option<Result<RateLimitRule, (String, String)>> {
    let limit = super::targets::method_option(method, "rate_limit")?;
    let text =
        |name: &str| limit.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let number = |name: &str| limit.get_field_by_name(name).and_then(|v| v.as_u64()).unwrap_or(0);
    let window = match ConfigDuration::parse(&text("window")) {
        Ok(window) => window,
        Err(why) => return Some(Err(("window".into(), why))),
    };
    let key = match text("key").as_str() {
        "" | "subject" => LimitKey::Subject,
        "client_ip" => LimitKey::ClientIp,
        "global" => LimitKey::Global,
        other => match other.split_once(':') {
            Some(("claim", claim)) => LimitKey::Claim(claim.to_owned()),
            Some(("header", header)) => LimitKey::Header(header.to_owned()),
            _ => {
                let why =
                    format!("`{other}` is not a key: write subject, client_ip, global, claim:NAME or header:NAME");
                return Some(Err(("key".into(), why)));
            }
        },
    };
    let name = match text("name") {
        name if name.is_empty() => method_path(method).replace('/', "."),
        name => name,
    };
    let burst = number("burst");
    Some(Ok(RateLimitRule {
        name,
        methods: Vec::new(),
        routes: Vec::new(),
        fields: Vec::new(),
        key,
        clients: LimitClients::All,
        limit: number("limit"),
        window,
        burst: (burst > 0).then_some(burst),
        algorithm: LimitAlgorithm::Gcra,
        unit: LimitUnit::Requests,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"syntax = "proto3";
package lib.v1;
import "switchyard/options.proto";
message Req { string name = 1; }
service Lib {
  rpc Read(Req) returns (Req) { option (switchyard.v1.method).rate_limit = { limit: 2 window: "1h" key: "claim:tenant" }; }
  rpc Bad(Req) returns (Req) { option (switchyard.v1.method).rate_limit = { limit: 2 window: "soon" }; }
  rpc Open(Req) returns (Req);
}
"#;

    /// A limit declared next to the API in the protos counts calls per its key; a malformed one
    /// refuses the snapshot naming the method and the option field.
    #[tokio::test]
    async fn proto_options_declare_limits_on_methods() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("lib.proto"), PROTO).expect("write");
        let registration =
            crate::registry::compile_sources(&[dir.path().join("lib.proto")], &[dir.path().to_owned()], Some("lib"))
                .expect("compiles");
        let registry = crate::registry::merge_registrations(vec![registration]).expect("merges");
        let routes = crate::transcode::routes::RestRoutes::default();
        let schema = GraphqlSchema::default();
        let served = Served::new(&registry.pool, &["lib.v1.Lib".to_owned()], &routes, &schema);
        let (limiter, problems) = Limiter::build(&RateLimitsConfig::default(), &RedisConfig::default(), &served);
        let limiter = limiter.expect("built");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "lib.v1.Lib.Bad: (switchyard.v1.method).rate_limit.window");
        let method = |name: &str| {
            registry
                .pool
                .get_service_by_name("lib.v1.Lib")
                .and_then(|s| s.methods().find(|m| m.name() == name))
                .expect("method")
        };
        let headers = HeaderMap::new();
        let identity = |tenant: &str| Identity {
            provider: "t".into(),
            subject: "ada".into(),
            scopes: Vec::new(),
            claims: serde_json::json!({"tenant": tenant}).as_object().cloned().unwrap_or_default(),
            expires_at: None,
        };
        let (acme, globex) = (identity("acme"), identity("globex"));
        let caller = |identity| Caller { identity: Some(identity), headers: &headers, client_ip: None };
        let read = limiter.usage_of_call(&method("Read"), None);
        assert!(limiter.usage_of_call(&method("Open"), None).is_empty());
        for _ in 0..2 {
            let admitted = limiter.admit(&caller(&acme), &read).await.expect("within the limit");
            assert_eq!(admitted.headers[0].1, "\"lib.v1.Lib.Read\";q=2;w=3600");
        }
        let refused = limiter.admit(&caller(&acme), &read).await.expect_err("over the limit");
        assert_eq!(refused.code(), ErrorCode::RateLimited);
        limiter.admit(&caller(&globex), &read).await.expect("another tenant has its own counter");
        let report = limiter.usage_report().await;
        assert_eq!(report["counters"].as_array().map(Vec::len), Some(2), "{report}");
        assert_eq!(report["counters"][0]["consumer"], "acme", "{report}");
        assert_eq!(report["counters"][0]["remaining"], 0, "{report}");
    }

    /// The consumer part of a counter's key per `key`, and the hash that replaces a long or
    /// non-printable value.
    #[test]
    fn counter_keys_name_the_consumer_by_the_limit_key() {
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", HeaderValue::from_static("acme"));
        headers.insert("x-long", HeaderValue::from_str(&"a".repeat(65)).expect("value"));
        headers.insert("x-spaced", HeaderValue::from_static("a b"));
        let identity = Identity {
            provider: "corp".into(),
            subject: "ada".into(),
            scopes: Vec::new(),
            claims: serde_json::json!({"org": {"id": 7}, "team": "core"}).as_object().cloned().unwrap_or_default(),
            expires_at: None,
        };
        let ip = Some("192.0.2.7".parse().expect("ip"));
        let known = Caller { identity: Some(&identity), headers: &headers, client_ip: ip };
        let anonymous = Caller { identity: None, headers: &headers, client_ip: None };
        let hashed = |raw: &str| hex::encode(Sha256::digest(raw.as_bytes()));
        // (limit key, caller, consumer part)
        let table = [
            (LimitKey::Subject, known, "corp/ada".to_owned()),
            (LimitKey::Subject, anonymous, "anonymous".to_owned()),
            (LimitKey::Claim("team".into()), known, "core".to_owned()),
            (LimitKey::Claim("org.id".into()), known, "7".to_owned()),
            (LimitKey::Claim("org.none".into()), known, "-".to_owned()),
            (LimitKey::ClientIp, known, "192.0.2.7".to_owned()),
            (LimitKey::ClientIp, anonymous, "unknown".to_owned()),
            (LimitKey::Header("x-tenant".into()), known, "acme".to_owned()),
            (LimitKey::Header("x-absent".into()), known, "-".to_owned()),
            (LimitKey::Header("x-long".into()), known, hashed(&"a".repeat(65))),
            (LimitKey::Header("x-spaced".into()), known, hashed("a b")),
            (LimitKey::Global, known, "*".to_owned()),
        ];
        for (limit_key, caller, consumer) in table {
            let mut key = "rl:name:".to_owned();
            push_consumer(&mut key, &limit_key, &caller);
            assert_eq!(key, format!("rl:name:{consumer}"), "{limit_key:?}");
        }
    }

    /// `RateLimit-Policy` is fixed per limit; `RateLimit` names what is left and when it resets.
    #[test]
    fn limit_headers_describe_the_policy_and_the_state() {
        let rule = |window: &str| RateLimitRule {
            name: "per-user".into(),
            methods: Vec::new(),
            routes: Vec::new(),
            fields: Vec::new(),
            key: LimitKey::Subject,
            clients: LimitClients::All,
            limit: 100,
            window: ConfigDuration::parse(window).expect("window"),
            burst: None,
            algorithm: LimitAlgorithm::Gcra,
            unit: LimitUnit::Requests,
        };
        let quota = |period| QuotaRule {
            name: "daily".into(),
            methods: Vec::new(),
            routes: Vec::new(),
            fields: Vec::new(),
            key: LimitKey::Subject,
            clients: LimitClients::All,
            limit: 5000,
            period,
            unit: LimitUnit::Requests,
        };
        let outcome = |remaining, reset| Outcome {
            allowed: true,
            next: State::Used(0),
            remaining,
            reset,
            retry_after: 0.0,
            expires: 0.0,
        };
        // (limit, outcome, RateLimit-Policy, RateLimit)
        let table = [
            (compile_rate(&rule("1m")), outcome(42, 16_200.0), "\"per-user\";q=100;w=60", "\"per-user\";r=42;t=17"),
            (compile_rate(&rule("500ms")), outcome(0, 0.0), "\"per-user\";q=100;w=1", "\"per-user\";r=0;t=0"),
            (
                compile_quota(&quota(QuotaPeriod::Day)),
                outcome(u64::MAX, 1000.0),
                "\"daily\";q=5000;w=86400",
                "\"daily\";r=18446744073709551615;t=1",
            ),
            (compile_quota(&quota(QuotaPeriod::Month)), outcome(7, 999.0), "\"daily\";q=5000", "\"daily\";r=7;t=1"),
        ];
        for (limit, outcome, policy, state) in table {
            let limit = limit.expect("compiles");
            let headers = limit_headers(&limit, &outcome);
            let text: Vec<(&str, &str)> =
                headers.iter().map(|(name, value)| (name.as_str(), value.to_str().expect("ascii"))).collect();
            assert_eq!(text, [("ratelimit-policy", policy), ("ratelimit", state)]);
        }
    }

    /// A million distinct keys (a key flood) leave at most `max_keys` counters, and a counter in
    /// use is never the one dropped while fresher ones are kept.
    #[test]
    fn a_flood_of_distinct_keys_keeps_the_store_bounded() {
        let store = MemoryStore::with_max_keys(10_000);
        let spec = Spec::Gcra { interval: 1000.0, burst: 5 };
        let charge = |key: String| [Charge { key, spec, amount: 1 }];
        // A client that uses its counter every round keeps it: its state expires last.
        for round in 0..1_000_000u32 {
            let now = 1_000_000.0 + f64::from(round) * 0.001;
            store.apply(&charge(format!("flood-{round}")), now);
            if round % 1000 == 0 {
                store.apply(&charge("steady".into()), now);
            }
        }
        assert!(store.len() <= 10_016, "{} counters", store.len());
        let now = 1_000_000.0 + 1000.0;
        let state = store.snapshot(now).into_iter().find(|(key, _)| key == "steady");
        assert!(state.is_some(), "the steady client's counter was dropped");
    }

    /// The memory store charges all of a request's counters or none.
    #[test]
    fn charges_are_all_or_nothing() {
        let store = MemoryStore::default();
        let now = 1_000_000.0;
        let small = Spec::Gcra { interval: 1000.0, burst: 1 };
        let large = Spec::Gcra { interval: 1000.0, burst: 10 };
        let both =
            [Charge { key: "a".into(), spec: large, amount: 1 }, Charge { key: "b".into(), spec: small, amount: 1 }];
        assert!(store.apply(&both, now).iter().all(|o| o.allowed));
        let outcomes = store.apply(&both, now);
        assert_eq!(outcomes.iter().map(|o| o.allowed).collect::<Vec<_>>(), [true, false]);
        // `a` was not charged by the refused request: 8 more fit, not 7.
        let only_a = [Charge { key: "a".into(), spec: large, amount: 9 }];
        assert!(store.apply(&only_a, now)[0].allowed);
    }
}
