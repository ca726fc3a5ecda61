//! Policy: what the gateway decides about a request before any backend call. This slice is
//! authentication — every credential a request presents (JWTs from the configured sources, an
//! API key) is verified, and a request presenting a bad one is refused with 401 and
//! `WWW-Authenticate`, whatever protocol it came by; a request presenting none is anonymous.
//! Verified tokens are cached by their SHA-256 until they expire (and dropped when their key
//! leaves a JWKS), so the steady-state cost of an RS256 or ES256 token is a cache hit.
//! Policy reads the request's headers; it makes no backend call.

mod api_keys;
mod authorize;
pub mod client_cert;
pub mod jwt;
pub mod keys;
pub mod limits;
mod rules;
pub(crate) mod targets;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use crate::config::{AuthConfig, TokenSource};
use crate::operation::Identity;

pub use api_keys::ApiKeys;
pub use authorize::PolicySet;
pub use jwt::Provider;
pub use rules::{Denial, Requirement};
pub use targets::{Served, method_path, root_name};

/// Longest a verified token stays cached (it is also dropped at its `exp`).
const CACHE_TTL_CAP: Duration = Duration::from_secs(3600);
/// Verified tokens expected to be kept.
const CACHE_ENTRIES: usize = 100_000;
/// Most bytes the verified tokens kept may weigh (their text, and a share for the identity).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// What a cached identity is counted as weighing, besides its token.
const IDENTITY_WEIGHT: u64 = 512;

/// Verified tokens by their exact text. A hit is a hash of the token and one comparison
/// (about 0.1 µs where a SHA-256 digest and a moka lookup took 0.7), and only a token equal
/// byte for byte can find an identity.
type VerifiedCache = quick_cache::sync::Cache<Box<str>, Verified, ByTokenSize, foldhash::quality::RandomState>;

/// Weighs a cached verification by its token's length.
#[derive(Clone)]
struct ByTokenSize;

impl quick_cache::Weighter<Box<str>, Verified> for ByTokenSize {
    fn weight(&self, token: &Box<str>, _: &Verified) -> u64 {
        token.len() as u64 + IDENTITY_WEIGHT
    }
}

/// Why a request's credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// What was wrong, for the client.
    pub message: String,
}

impl AuthError {
    /// A refused credential.
    pub fn invalid(message: impl Into<String>) -> Self {
        AuthError { message: message.into() }
    }

    /// The `WWW-Authenticate` challenge for it (RFC 6750).
    pub fn challenge(&self) -> String {
        let description = self.message.replace(['"', '\\'], "'");
        format!("Bearer realm=\"switchyard\", error=\"invalid_token\", error_description=\"{description}\"")
    }
}

/// What a request offers as credentials.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// Its query string.
    pub query: Option<&'a str>,
}

/// Verifies credentials for the whole gateway; built from `[auth]`, kept across reloads that do
/// not change it (with its caches and fetched keys).
pub struct Authenticator {
    config: AuthConfig,
    providers: Vec<Arc<Provider>>,
    api_keys: Option<ApiKeys>,
    verified: VerifiedCache,
}

/// A cached verification: the identity, the provider's key-set generation it was made in, and
/// the Unix second it stops being used (the token's `exp`, or an hour after it was verified).
#[derive(Clone)]
struct Verified {
    identity: Arc<Identity>,
    provider: usize,
    generation: u64,
    until: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("providers", &self.providers).finish_non_exhaustive()
    }
}

/// The values of `claims` in `identity`, for consistent hashing.
pub fn hash_claim_values(identity: Option<&Identity>, claims: &[String]) -> Vec<(String, String)> {
    let Some(identity) = identity else { return Vec::new() };
    claims
        .iter()
        .filter_map(|claim| {
            let value = identity.claim(claim)?;
            Some((claim.clone(), value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
        })
        .collect()
}

/// The identity of a verified TLS client certificate, as the listener describes it.
fn client_certificate_identity(headers: &HeaderMap) -> Option<Arc<Identity>> {
    let value = headers.get(client_cert::CLIENT_CERT_HEADER)?.to_str().ok()?;
    let (subject, dn, hash) = client_cert::client_cert_subject(value)?;
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), serde_json::Value::String(subject.clone()));
    claims.insert("dn".into(), serde_json::Value::String(dn));
    claims.insert("x5t#S256".into(), serde_json::Value::String(hash));
    Some(Arc::new(Identity { provider: "mtls".into(), subject, scopes: Vec::new(), claims, expires_at: None }))
}

/// A claim's header value: strings as they are, lists joined with commas, other values as
/// JSON; None when absent or not printable ASCII (gRPC metadata allows nothing else).
fn forwarded_value(identity: &Identity, claim: &str) -> Option<String> {
    let value = identity.claim(claim)?;
    let text = match value.as_ref() {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        serde_json::Value::Null => return None,
        other => other.to_string(),
    };
    text.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b)).then_some(text)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// The authenticator `config` describes; its key files are read now. Each error is a key
    /// path under `auth` and what is wrong there.
    pub fn build(config: &AuthConfig) -> Result<Self, Vec<(String, String)>> {
        let mut problems = Vec::new();
        if !config.jwt.is_empty()
            && let Err(why) = keys::self_check()
        {
            problems.push(("jwt".to_owned(), why));
        }
        let mut providers = Vec::new();
        for (i, provider) in config.jwt.iter().enumerate() {
            if config.jwt[..i].iter().any(|p| p.name == provider.name) {
                problems.push((format!("jwt[{i}].name"), format!("`{}` names two providers", provider.name)));
            }
            match Provider::build(provider) {
                Ok(built) => providers.push(Arc::new(built)),
                Err((key, why)) => problems.push((format!("jwt[{i}].{key}"), why)),
            }
        }
        for (i, forward) in config.forward.iter().enumerate() {
            let lower = forward.header.to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                problems.push((format!("forward[{i}].header"), format!("`{}` is not a header name", forward.header)));
            } else if matches!(lower.as_str(), "authorization" | "content-type" | "te" | "host" | "cookie")
                || lower.starts_with("grpc-")
                || lower.starts_with(':')
            {
                problems.push((
                    format!("forward[{i}].header"),
                    format!("`{}` is a header the protocol or the gateway owns; choose another name", forward.header),
                ));
            }
            if forward.claim.is_empty() || forward.claim.split('.').any(str::is_empty) {
                problems.push((
                    format!("forward[{i}].claim"),
                    format!("`{}` is not a claim name or dotted path", forward.claim),
                ));
            }
        }
        let api_keys = match &config.api_keys {
            Some(keys) => match ApiKeys::build(keys) {
                Ok(keys) => Some(keys),
                Err((key, why)) => {
                    problems.push((format!("api_keys.{key}"), why));
                    None
                }
            },
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let verified = VerifiedCache::with(
            CACHE_ENTRIES,
            CACHE_BYTES,
            ByTokenSize,
            foldhash::quality::RandomState::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
        Ok(Authenticator { config: config.clone(), providers, api_keys, verified })
    }

    /// The config it was built from.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The query parameter API keys may be sent in, if configured (it is no request field).
    pub fn api_key_query_parameter(&self) -> Option<&str> {
        self.config.api_keys.as_ref()?.query.as_deref()
    }

    /// Whether any credential is configured (else every request is anonymous).
    pub fn is_enabled(&self) -> bool {
        !self.providers.is_empty() || self.api_keys.is_some() || self.config.client_certificates
    }

    /// The identity the request's credentials prove: None when it presents none, an error when
    /// one it presents does not verify.
    pub async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Option<Arc<Identity>>, AuthError> {
        if !self.is_enabled() {
            return Ok(None);
        }
        self.refresh_due_keys();
        let mut identity = None;
        if let Some(token) = self.token(credentials.headers) {
            identity = Some(self.verify_token(token).await?);
        }
        if let Some(keys) = &self.api_keys
            && let Some(found) = keys.identify(credentials.headers, credentials.query)?
        {
            identity = identity.or(Some(found));
        }
        if identity.is_none() && self.config.client_certificates {
            identity = client_certificate_identity(credentials.headers);
        }
        if let Some(identity) = &identity {
            crate::telemetry::record::note_identity(identity.key());
        }
        Ok(identity)
    }

    /// Verifies a bearer token (from a WebSocket's connection_init, or a header): cached, else
    /// by the providers that read tokens from the Authorization header.
    pub async fn verify_token(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        if let Some(identity) = self.verified_before(token) {
            return Ok(identity);
        }
        let mut first_error = None;
        for (index, provider) in self.providers.iter().enumerate() {
            let generation = provider.generation();
            match provider.verify(token).await {
                Ok(identity) => {
                    let identity = Arc::new(identity);
                    let cap = now().saturating_add(CACHE_TTL_CAP.as_secs());
                    let until = identity.expires_at.map_or(cap, |exp| exp.min(cap));
                    let cached = Verified { identity: identity.clone(), provider: index, generation, until };
                    self.verified.insert(token.into(), cached);
                    return Ok(identity);
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| AuthError::invalid("no JWT provider is configured")))
    }

    /// The identity `token` was verified to prove, if it was (byte for byte), has not lapsed,
    /// and was verified with its provider's current keys.
    pub fn verified_before(&self, token: &str) -> Option<Arc<Identity>> {
        let cached = self.verified.get(token)?;
        (cached.until > now() && self.providers[cached.provider].generation() == cached.generation)
            .then_some(cached.identity)
    }

    /// The first token the providers' sources find in `headers`.
    fn token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        self.providers.iter().flat_map(|p| p.sources.iter()).find_map(|source| match source {
            TokenSource::Authorization => {
                let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            }
            TokenSource::Header(name) => {
                let value = headers.get(name.as_str())?.to_str().ok()?.trim();
                Some(value.strip_prefix("Bearer ").unwrap_or(value))
            }
            TokenSource::Cookie(name) => headers.get_all(http::header::COOKIE).iter().find_map(|value| {
                value.to_str().ok()?.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    (key == name).then_some(value)
                })
            }),
        })
    }

    /// Puts `identity` on `context` and sets the `[[auth.forward]]` headers from it, after
    /// removing any copies the client sent (whether or not there is an identity); the claims in
    /// `hash_claims` become hash inputs for clusters that keep a user on one endpoint.
    pub fn admit(
        &self,
        context: &mut crate::operation::RequestContext,
        identity: Option<Arc<Identity>>,
        hash_claims: &[String],
    ) {
        context.hash.claims = hash_claim_values(identity.as_deref(), hash_claims);
        for forward in &self.config.forward {
            context.metadata.remove(&forward.header.to_ascii_lowercase());
            if let Some(value) = identity.as_deref().and_then(|identity| forwarded_value(identity, &forward.claim)) {
                context.metadata.push(&forward.header, value);
            }
        }
        context.identity = identity;
    }

    /// `admit` for a passed-through gRPC call: the same headers, set on the request itself.
    pub fn admit_headers(&self, headers: &mut HeaderMap, identity: Option<&Identity>) {
        for forward in &self.config.forward {
            let Ok(name) = http::HeaderName::from_bytes(forward.header.as_bytes()) else { continue };
            headers.remove(&name);
            if let Some(value) = identity.and_then(|identity| forwarded_value(identity, &forward.claim))
                && let Ok(value) = http::HeaderValue::from_str(&value)
            {
                headers.insert(name, value);
            }
        }
    }

    /// Starts background fetches of JWKS URLs whose refresh interval has passed.
    fn refresh_due_keys(&self) {
        for provider in self.providers.iter().filter(|p| p.fetch_due()) {
            let provider = provider.clone();
            tokio::spawn(async move { provider.fetch(true).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JwtAlgorithm, JwtKeyConfig, JwtProviderConfig, TokenSource};

    const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

    fn authenticator() -> Authenticator {
        let provider = JwtProviderConfig {
            name: "test".into(),
            issuer: None,
            audiences: Vec::new(),
            leeway: crate::config::ConfigDuration::from_secs(0),
            require_exp: true,
            keys: vec![JwtKeyConfig {
                kid: None,
                algorithm: JwtAlgorithm::HS256,
                secret: Some(SECRET.into()),
                pem_file: None,
            }],
            jwks: None,
            from: vec![TokenSource::Authorization],
        };
        Authenticator::build(&AuthConfig { jwt: vec![provider], ..AuthConfig::default() }).expect("authenticator")
    }

    fn token(secret: &str, subject: &str) -> String {
        let claims = serde_json::json!({"sub": subject, "exp": now() + 600});
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("key");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
    }

    #[tokio::test]
    async fn a_cached_verification_is_found_by_the_exact_token_until_it_lapses() {
        let auth = authenticator();
        let good = token(SECRET, "ada");
        assert_eq!(auth.verify_token(&good).await.expect("verifies").subject, "ada");
        let cached = auth.verified.get(good.as_str()).expect("cached by its text");
        assert!(cached.until <= now() + 600 && cached.until > now(), "until the token's exp");

        // A forged token is never found through another's entry: one byte changed is a miss
        // (and fails its signature check).
        let mut forged = good.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert!(auth.verify_token(&forged).await.is_err());

        // An entry is used only until its `until`: a lapsed one sends the token back through
        // verification, where a token signed with another secret fails.
        let foreign = token("another-secret-that-is-at-least-32-bytes-long", "mallory");
        let identity = Arc::new(Identity {
            provider: "test".into(),
            subject: "mallory".into(),
            scopes: Vec::new(),
            claims: serde_json::Map::new(),
            expires_at: None,
        });
        let entry = |until| Verified { identity: identity.clone(), provider: 0, generation: cached.generation, until };
        auth.verified.insert(foreign.clone().into(), entry(now() + 60));
        assert_eq!(auth.verify_token(&foreign).await.expect("a live entry is used").subject, "mallory");
        auth.verified.insert(foreign.clone().into(), entry(now().saturating_sub(1)));
        assert!(auth.verify_token(&foreign).await.is_err(), "a lapsed entry is not");
    }
}
