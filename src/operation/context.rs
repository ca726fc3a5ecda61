//! `RequestContext`: typed facts about the request that every stage may read: forwarded
//! metadata, the deadline, the correlation id and the client address.

use std::net::SocketAddr;
use std::time::Duration;

/// Headers that differ on every request and say nothing of its meaning (correlation and trace
/// context): left out wherever identical requests are recognised as one (coalescing, shared
/// subscriptions).
pub const CORRELATION_HEADERS: [&str; 3] = ["x-request-id", "traceparent", "tracestate"];

/// Metadata to forward to backends: lower-case ASCII names; `-bin` values are raw bytes. It
/// also carries, unforwarded, what a consistent-hashing balancer may key the call by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, Vec<u8>)>,
    hash: Option<std::sync::Arc<HashInputs>>,
}

impl Metadata {
    /// Adds an entry (the name is lower-cased).
    pub fn push(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.entries.push((name.to_ascii_lowercase(), value.into()));
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Removes every entry named `name` (lower case).
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| n != name);
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Attaches what balancers may key the call by (never forwarded).
    pub fn with_hash_inputs(mut self, inputs: HashInputs) -> Self {
        self.hash = Some(std::sync::Arc::new(inputs));
        self
    }

    /// What balancers may key the call by.
    pub fn hash_inputs(&self) -> Option<&HashInputs> {
        self.hash.as_deref()
    }
}

impl RequestContext {
    /// The deadline is the shorter of the client's and `default`.
    pub fn bound_timeout(&mut self, default: Duration) {
        self.timeout = Some(self.timeout.map_or(default, |asked| asked.min(default)));
    }
}

/// What is known about the request apart from its content.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Headers to forward to backends, already filtered by the forwarding rules.
    pub metadata: Metadata,
    /// Time left for the whole operation, if bounded.
    pub timeout: Option<Duration>,
    /// The correlation id (the client's `x-request-id`, or one the gateway made).
    pub request_id: Option<String>,
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// What consistent hashing may read: the client's IP address and the request headers the
    /// clusters hash on (a cookie's is `cookie`), whether or not they are forwarded.
    pub hash: HashInputs,
    /// Who the verified credentials say the client is (None: anonymous).
    pub identity: Option<std::sync::Arc<Identity>>,
    /// The values of the request headers cache keys vary on (`cache.vary`).
    pub vary: Vec<(String, Vec<u8>)>,
    /// The REST route the request matched (its index in the snapshot's route table), for
    /// rules that target routes.
    pub route: Option<usize>,
}

/// A verified client: from a JWT or an API key.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The JWT provider's name, or `api_key`.
    pub provider: String,
    /// The subject (`sub`, or the API key's identity).
    pub subject: String,
    /// Scopes (`scope` space-separated or `scp`, or the API key's).
    pub scopes: Vec<String>,
    /// Every claim of the token (empty for API keys).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// When the credential stops being valid (Unix seconds), if it does.
    pub expires_at: Option<u64>,
}

impl Identity {
    /// `provider/subject`: who this is, as counter and cache keys name a consumer.
    pub fn key(&self) -> String {
        let mut key = String::with_capacity(self.provider.len() + 1 + self.subject.len());
        self.push_key(&mut key);
        key
    }

    /// Appends `provider/subject` to `out`.
    pub fn push_key(&self, out: &mut String) {
        out.extend([self.provider.as_str(), "/", self.subject.as_str()]);
    }

    /// The claim at `path` (dotted for nested objects). `sub` and `scope` fall back to the
    /// subject and the space-joined scopes, so API-key identities answer them too.
    pub fn claim(&self, path: &str) -> Option<std::borrow::Cow<'_, serde_json::Value>> {
        use std::borrow::Cow;
        let mut parts = path.split('.');
        let mut value = self.claims.get(parts.next()?);
        for part in parts {
            value = value.and_then(|v| v.get(part));
        }
        match (value, path) {
            (Some(value), _) => Some(Cow::Borrowed(value)),
            (None, "sub") if !self.subject.is_empty() => {
                Some(Cow::Owned(serde_json::Value::String(self.subject.clone())))
            }
            (None, "scope") if !self.scopes.is_empty() => {
                Some(Cow::Owned(serde_json::Value::String(self.scopes.join(" "))))
            }
            _ => None,
        }
    }
}

/// The identity claims clusters hash on, carried as a request extension on passed-through gRPC
/// calls (which have no operation context).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashClaims(pub Vec<(String, String)>);

/// What a consistent-hashing balancer may take a call's key from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashInputs {
    /// The client's IP address.
    pub client_ip: Option<std::net::IpAddr>,
    /// Request headers a cluster hashes on.
    pub headers: Metadata,
    /// Claims of the verified identity a cluster hashes on: (claim, its text).
    pub claims: Vec<(String, String)>,
}
