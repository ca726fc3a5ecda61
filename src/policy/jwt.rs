//! One JWT provider: its keys (config, PEM files, a JWKS file, a JWKS URL kept fresh) and the
//! checks a token must pass. The key is chosen by the token's `kid` and must accept the token's
//! `alg` exactly; then jsonwebtoken verifies the signature and the claims with every setting
//! made explicit here (issuer, audiences, leeway, `exp` required, `nbf` checked). An unknown
//! `kid` makes the provider fetch its JWKS URL again, at most once per `min_refresh_interval`;
//! a failed fetch keeps the last good set.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use tokio::time::Instant;

use super::AuthError;
use super::keys::{VerifyKey, config_key, jwks_keys};
use crate::config::{JwtProviderConfig, TokenSource};
use crate::operation::Identity;

/// A JWT provider, ready to verify.
pub struct Provider {
    /// Its name.
    pub name: String,
    /// Where its tokens are read from.
    pub sources: Vec<TokenSource>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: Duration,
    require_exp: bool,
    keys: Vec<VerifyKey>,
    remote: Option<RemoteKeys>,
    /// Moves on whenever a key leaves the JWKS.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.name).field("keys", &self.keys).finish_non_exhaustive()
    }
}

/// A JWKS URL's keys, kept fresh.
struct RemoteKeys {
    url: String,
    refresh: Duration,
    min_interval: Duration,
    client: reqwest::Client,
    keys: ArcSwap<Vec<VerifyKey>>,
    /// When the last fetch started (None: never).
    last_fetch: Mutex<Option<Instant>>,
    /// When a fetch last succeeded (None: never); its keys are trusted for `max_stale` after.
    fetched_ok: Mutex<Option<Instant>>,
    max_stale: Duration,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

/// The largest JWKS document read; a larger one is a failed fetch (the last good keys stay).
const MAX_JWKS_BYTES: usize = 1024 * 1024;

impl RemoteKeys {
    /// True when the last good key set is older than `max_stale` (or there never was one).
    fn is_stale(&self) -> bool {
        let ok = *self.fetched_ok.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ok.is_none_or(|at| at.elapsed() > self.max_stale)
    }
}

/// A response body as text, refused past `limit` bytes without reading the rest.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<String, String> {
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(format!("the JWKS is larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the JWKS is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "the JWKS is not UTF-8".to_owned())
}

/// A token's header, read before anything is trusted.
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

impl Provider {
    /// The provider `config` describes, its key files read now. Errors name the key path under
    /// the provider (`keys[1].pem_file`, `jwks.file`).
    pub fn build(config: &JwtProviderConfig) -> Result<Self, (String, String)> {
        let mut keys = Vec::new();
        for (i, key) in config.keys.iter().enumerate() {
            keys.push(config_key(key).map_err(|e| (format!("keys[{i}]"), e))?);
        }
        let mut remote = None;
        if let Some(jwks) = &config.jwks {
            match (&jwks.file, &jwks.url) {
                (Some(file), None) => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| ("jwks.file".to_owned(), format!("cannot read {}: {e}", file.display())))?;
                    let (found, skipped) =
                        jwks_keys(&text).map_err(|e| ("jwks.file".to_owned(), format!("{}: {e}", file.display())))?;
                    for why in skipped {
                        tracing::warn!(provider = config.name, file = %file.display(), why, "JWKS key skipped");
                    }
                    keys.extend(found);
                }
                (None, Some(url)) => {
                    let client = reqwest::Client::builder()
                        .timeout(jwks.timeout.get())
                        .build()
                        .map_err(|e| ("jwks.url".to_owned(), e.to_string()))?;
                    remote = Some(RemoteKeys {
                        url: url.clone(),
                        refresh: jwks.refresh.get(),
                        min_interval: jwks.min_refresh_interval.get(),
                        client,
                        keys: ArcSwap::from_pointee(Vec::new()),
                        last_fetch: Mutex::new(None),
                        fetched_ok: Mutex::new(None),
                        max_stale: jwks.max_stale.get(),
                        fetching: tokio::sync::Mutex::new(()),
                    });
                }
                _ => return Err(("jwks".into(), "set exactly one of `file` and `url`".into())),
            }
        }
        if keys.is_empty() && remote.is_none() {
            return Err(("keys".into(), "a provider needs `keys` or `jwks`".into()));
        }
        Ok(Provider {
            name: config.name.clone(),
            sources: config.from.clone(),
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            leeway: config.leeway.get(),
            require_exp: config.require_exp,
            keys,
            remote,
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The key-set generation (it moves on when a key leaves the JWKS).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Verifies `token`; the identity it proves.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = read_header(token)?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::invalid("the token's algorithm `none` is not accepted"));
        }
        let mut candidates = self.candidates(header.kid.as_deref());
        if candidates.is_empty() && self.remote.is_some() {
            // A key rotated in since the last fetch: fetch now (rate-limited).
            self.fetch(false).await;
            candidates = self.candidates(header.kid.as_deref());
        }
        if candidates.is_empty()
            && let Some(remote) = &self.remote
            && remote.is_stale()
        {
            return Err(AuthError::invalid(format!(
                "the keys of provider `{}` are stale: its JWKS has not been fetched for over {} (jwks.max_stale)",
                self.name,
                humantime::format_duration(remote.max_stale)
            )));
        }
        if candidates.is_empty() {
            return Err(AuthError::invalid(match &header.kid {
                Some(kid) => format!("no key of provider `{}` has kid `{kid}`", self.name),
                None => format!("the token has no kid and provider `{}` has no key without one", self.name),
            }));
        }
        let matching: Vec<&VerifyKey> =
            candidates.iter().filter(|k| format!("{:?}", k.algorithm) == header.alg).collect();
        if matching.is_empty() {
            let key = &candidates[0];
            return Err(AuthError::invalid(format!(
                "the token says alg `{}` but key `{}` is {:?}",
                header.alg,
                key.kid.as_deref().unwrap_or("(no kid)"),
                key.algorithm
            )));
        }
        let mut last = None;
        for key in matching {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &self.validation(key.algorithm),
            ) {
                Ok(data) => return Ok(identity(&self.name, data.claims)),
                Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => last = Some(error),
                Err(error) => return Err(self.refusal(error.kind())),
            }
        }
        Err(self.refusal(last.as_ref().map_or(&ErrorKind::InvalidSignature, |e| e.kind())))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        if self.require_exp {
            validation.required_spec_claims.insert("exp".into());
        }
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                validation.required_spec_claims.insert("iss".into());
            }
            None => validation.iss = None,
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            validation.required_spec_claims.insert("aud".into());
        }
        validation
    }

    fn refusal(&self, kind: &ErrorKind) -> AuthError {
        AuthError::invalid(match kind {
            ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
            ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
            ErrorKind::InvalidIssuer => {
                format!("the token's issuer is not `{}`", self.issuer.as_deref().unwrap_or_default())
            }
            ErrorKind::InvalidAudience => {
                format!("the token's audience is not one of `{}`", self.audiences.join("`, `"))
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
            ErrorKind::InvalidClaimFormat(claim) => format!("the token's `{claim}` claim has the wrong type"),
            ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".to_owned(),
            _ => "the token is not a valid JWT".to_owned(),
        })
    }

    /// The keys that answer to `kid` (every key when the token has none).
    fn candidates(&self, kid: Option<&str>) -> Vec<VerifyKey> {
        let remote = self.remote.as_ref().filter(|r| !r.is_stale()).map(|r| r.keys.load_full()).unwrap_or_default();
        self.keys.iter().chain(remote.iter()).filter(|k| kid.is_none() || k.kid.as_deref() == kid).cloned().collect()
    }

    /// Whether a JWKS fetch is due (the last is older than `refresh`).
    pub fn fetch_due(&self) -> bool {
        self.remote.as_ref().is_some_and(|remote| {
            remote.last_fetch.lock().map(|last| last.is_none_or(|at| at.elapsed() >= remote.refresh)).unwrap_or(false)
        })
    }

    /// Fetches the JWKS URL unless the last fetch started less than `min_age` ago (the refresh
    /// interval for periodic fetches, `min_refresh_interval` for a fetch an unknown `kid`
    /// asks for). When the new set lacks a key the old one had, the provider's generation
    /// moves on, so verifications cached under the old set are not used again.
    pub async fn fetch(&self, periodic: bool) {
        let Some(remote) = &self.remote else { return };
        let min_age = if periodic { remote.refresh } else { remote.min_interval };
        let _one = remote.fetching.lock().await;
        {
            let mut last = remote.last_fetch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(at) = *last
                && at.elapsed() < min_age
            {
                return;
            }
            *last = Some(Instant::now());
        }
        let fetched = async {
            let response = remote.client.get(&remote.url).send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status().as_u16()));
            }
            let text = read_limited(response, MAX_JWKS_BYTES).await?;
            jwks_keys(&text)
        };
        match fetched.await {
            Ok((keys, skipped)) => {
                for why in skipped {
                    tracing::warn!(provider = self.name, url = remote.url, why, "JWKS key skipped");
                }
                let old = remote.keys.load_full();
                let lost = old.iter().any(|o| !keys.iter().any(|k| k.kid == o.kid && k.algorithm == o.algorithm));
                remote.keys.store(Arc::new(keys));
                *remote.fetched_ok.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                if lost {
                    self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                }
            }
            Err(error) => {
                tracing::warn!(
                    provider = self.name,
                    url = remote.url,
                    error,
                    "JWKS fetch failed; keeping the last keys"
                );
            }
        }
    }
}

/// The token's header (`alg`, `kid`), or why it is not a JWT.
fn read_header(token: &str) -> Result<TokenHeader, AuthError> {
    let malformed = || AuthError::invalid("the token is not a JWT (three base64url parts separated by dots)");
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    let alg = json["alg"].as_str().ok_or_else(malformed)?.to_owned();
    let kid = json["kid"].as_str().map(str::to_owned);
    Ok(TokenHeader { alg, kid })
}

/// The identity verified claims prove.
fn identity(provider: &str, claims: serde_json::Map<String, serde_json::Value>) -> Identity {
    let subject = claims.get("sub").and_then(|s| s.as_str()).unwrap_or_default().to_owned();
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(serde_json::Value::String(scope)), _) => scope.split_whitespace().map(str::to_owned).collect(),
        (_, Some(serde_json::Value::Array(scp))) => scp.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
        (_, Some(serde_json::Value::String(scp))) => scp.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let expires_at = claims.get("exp").and_then(serde_json::Value::as_u64);
    Identity { provider: provider.to_owned(), subject, scopes, claims, expires_at }
}
