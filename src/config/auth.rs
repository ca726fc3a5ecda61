//! The `[auth]` block: JWT providers (keys from config, PEM files or a JWKS file or URL; the
//! issuer, audiences and leeway each set explicitly; where tokens are read from) and API keys
//! (stored as SHA-256 hashes, each with an identity and scopes).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigDuration;

/// Authentication: every credential a request presents is verified before any backend call; a
/// request presenting none is anonymous (authorization rules decide what it may do).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT providers, tried in order for each token.
    pub jwt: Vec<JwtProviderConfig>,
    /// API keys.
    pub api_keys: Option<ApiKeysConfig>,
    /// Claims of verified credentials sent to backends as headers (gRPC metadata). Copies of
    /// these headers sent by the client are always removed first, so a backend can trust them.
    pub forward: Vec<ClaimHeader>,
    /// A verified TLS client certificate (`listener.tls.client_auth`) identifies a request that
    /// presents no token or API key: its subject's CN (or whole DN) is the subject.
    pub client_certificates: bool,
}

/// One claim forwarded as a header: `{ claim = "sub", header = "x-user-id" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimHeader {
    /// The claim's name or dotted path (`sub` and `scope` work for API keys too). Strings are
    /// sent as they are, lists joined with commas, other values as JSON.
    pub claim: String,
    /// The header (lower-case on the wire).
    pub header: String,
}

/// One JWT issuer's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtProviderConfig {
    /// Its name (in logs and identities).
    pub name: String,
    /// The `iss` a token must carry; without it `iss` is not checked (`check` warns).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values, one of which a token must carry; empty: `aud` is not checked
    /// (`check` warns).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway: ConfigDuration,
    /// Refuse tokens without `exp`.
    #[serde(default = "yes")]
    pub require_exp: bool,
    /// Keys written in config or PEM files.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// A JSON Web Key Set, from a file or a URL.
    #[serde(default)]
    pub jwks: Option<JwksConfig>,
    /// Where tokens are read from, in order (default: `Authorization: Bearer`).
    #[serde(default = "default_sources")]
    pub from: Vec<TokenSource>,
}

fn default_leeway() -> ConfigDuration {
    ConfigDuration::from_secs(30)
}

fn yes() -> bool {
    true
}

fn default_sources() -> Vec<TokenSource> {
    vec![TokenSource::Authorization]
}

/// A JWT signing algorithm. A key accepts exactly one: the token's `alg` must equal it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[allow(missing_docs)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// One verification key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// The `kid` tokens signed with it carry (optional when a provider has one key).
    #[serde(default)]
    pub kid: Option<String>,
    /// Its algorithm.
    pub algorithm: JwtAlgorithm,
    /// HS*: the shared secret (use `${VAR}`).
    #[serde(default)]
    pub secret: Option<String>,
    /// RS*/PS*/ES*/EdDSA: a PEM file with the public key.
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// A file holding the set (read when the config is loaded).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A URL serving the set (fetched at start, every `refresh`, and when a token names an
    /// unknown `kid` — at most once per `min_refresh_interval`; a failed fetch keeps the last
    /// good set).
    #[serde(default)]
    pub url: Option<String>,
    /// Time between fetches.
    #[serde(default = "default_refresh")]
    pub refresh: ConfigDuration,
    /// The shortest time between two fetches.
    #[serde(default = "default_min_refresh")]
    pub min_refresh_interval: ConfigDuration,
    /// A fetch not answered in this time fails.
    #[serde(default = "default_fetch_timeout")]
    pub timeout: ConfigDuration,
    /// How long the last good key set is trusted while fetches fail (an outage of the
    /// identity provider); past it, tokens this provider's JWKS would verify are refused.
    #[serde(default = "default_max_stale")]
    pub max_stale: ConfigDuration,
}

fn default_max_stale() -> ConfigDuration {
    ConfigDuration::from_secs(24 * 3600)
}

fn default_refresh() -> ConfigDuration {
    ConfigDuration::from_secs(300)
}

fn default_min_refresh() -> ConfigDuration {
    ConfigDuration::from_secs(10)
}

fn default_fetch_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}

/// Where a token is read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenSource {
    /// `"authorization"`: `Authorization: Bearer TOKEN`.
    Authorization,
    /// `{ header = "x-token" }`: a header's whole value (a `Bearer ` prefix is removed).
    Header(String),
    /// `{ cookie = "session" }`: a cookie's value.
    Cookie(String),
}

/// API keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// The header a key is sent in.
    #[serde(default = "default_api_key_header")]
    pub header: String,
    /// A query parameter a key may be sent in instead (off unless set).
    #[serde(default)]
    pub query: Option<String>,
    /// The keys.
    #[serde(default)]
    pub keys: Vec<ApiKeyConfig>,
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

/// One API key, stored as its hash: `printf %s KEY | sha256sum`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The key's SHA-256, 64 hex digits.
    pub sha256: String,
    /// Who uses it (the identity's subject).
    pub identity: String,
    /// What it may do.
    #[serde(default)]
    pub scopes: Vec<String>,
}
