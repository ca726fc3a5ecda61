//! The demo's security: a JWT provider with a secret made at start-up, one API key, a rule on
//! one GraphQL field and a rate limit for authenticated clients — one of each, so the demo shows
//! them — with an example token and key to print. Anonymous clients are never limited, so tools
//! such as the GraphQL-over-HTTP audits run against the demo unchanged.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The demo's issuer and audience.
const ISSUER: &str = "switchyard-demo";
/// How long the printed token lasts.
const TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// The demo's security config, with the credentials a user can try it with.
pub struct DemoSecurity {
    /// Config text (`[auth]`, `[[authorization.rules]]`, `[[rate_limits.rules]]`).
    pub config: String,
    /// An HS256 token for `demo-user` with the scopes `books:read staff`.
    pub token: String,
    /// An API key for `demo-ci` with the scope `books:read`.
    pub api_key: String,
}

/// Fresh credentials: a random secret and API key, and a token signed with the secret.
pub fn demo_security() -> Result<DemoSecurity, String> {
    let mut random = [0u8; 48];
    getrandom::fill(&mut random).map_err(|e| format!("no randomness for the demo's keys: {e}"))?;
    let secret = hex::encode(&random[..32]);
    let api_key = format!("sy-demo-{}", hex::encode(&random[32..]));
    let key_hash = hex::encode(Sha256::digest(api_key.as_bytes()));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": ISSUER, "sub": "demo-user", "scope": "books:read staff",
        "iat": now, "exp": now + TOKEN_LIFETIME_SECS,
    });
    let signing = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())
        .map_err(|e| format!("cannot make the demo's signing key: {e}"))?;
    let token = jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &signing)
        .map_err(|e| format!("cannot sign the demo token: {e}"))?;
    let config = format!(
        r#"[[auth.jwt]]
name = "demo"
issuer = "{ISSUER}"
audiences = ["{ISSUER}"]
keys = [{{ algorithm = "HS256", secret = "{secret}" }}]

[auth.api_keys]
keys = [{{ sha256 = "{key_hash}", identity = "demo-ci", scopes = ["books:read"] }}]

[auth]
forward = [{{ claim = "sub", header = "x-user-id" }}]

[[authorization.rules]]
fields = ["Book.rating", "V2Book.rating"]
scopes_any = ["staff"]

[[rate_limits.rules]]
name = "demo"
clients = "authenticated"
limit = 60
window = "1m"
"#
    );
    Ok(DemoSecurity { config, token, api_key })
}
