//! Verification keys: from config (an HS secret or a PEM file) and from JSON Web Key Sets. Each
//! key accepts exactly one algorithm — the key's, never the token's — so `alg: none` and
//! HS/RS confusion cannot verify. A JWK without `alg` takes its type's usual one (RSA: RS256,
//! EC P-256: ES256, P-384: ES384, OKP Ed25519: EdDSA); an `oct` JWK must say its `alg`.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::config::{JwtAlgorithm, JwtKeyConfig};

/// One key a token may be verified with.
#[derive(Clone)]
pub struct VerifyKey {
    /// The `kid` it answers to.
    pub kid: Option<String>,
    /// The one algorithm it accepts.
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish()
    }
}

/// jsonwebtoken's algorithm for ours.
pub fn algorithm(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// The key `config` describes (its PEM file read now). The error says what is wrong.
pub fn config_key(config: &JwtKeyConfig) -> Result<VerifyKey, String> {
    let algorithm = algorithm(config.algorithm);
    let key = match (algorithm, &config.secret, &config.pem_file) {
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, Some(secret), None) => {
            if secret.len() < 32 {
                return Err(format!(
                    "the {algorithm:?} secret is {} bytes; use at least 32 random bytes",
                    secret.len()
                ));
            }
            DecodingKey::from_secret(secret.as_bytes()).map_err(|e| format!("the {algorithm:?} secret: {e}"))?
        }
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, _, _) => {
            return Err(format!("an {algorithm:?} key needs `secret` (and no `pem_file`)"));
        }
        (_, None, Some(path)) => {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let parsed = match algorithm {
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => DecodingKey::from_rsa_pem(&pem),
            };
            parsed.map_err(|e| format!("{} is not a PEM {algorithm:?} public key: {e}", path.display()))?
        }
        (_, _, _) => return Err(format!("an {algorithm:?} key needs `pem_file` (and no `secret`)")),
    };
    Ok(VerifyKey { kid: config.kid.clone(), algorithm, key })
}

/// The keys of a JWKS document; a key that cannot be used is skipped with the reason.
pub fn jwks_keys(text: &str) -> Result<(Vec<VerifyKey>, Vec<String>), String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        match jwk_key(jwk) {
            Ok(key) => keys.push(key),
            Err(why) => skipped.push(format!("keys[{i}]: {why}")),
        }
    }
    Ok((keys, skipped))
}

fn jwk_key(jwk: &Jwk) -> Result<VerifyKey, String> {
    let algorithm = match jwk.common.key_algorithm {
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256) => {
            return Err("an encryption key, not a signing key".into());
        }
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return Err("an unsupported alg".into()),
        Some(alg) => format!("{alg:?}").parse::<Algorithm>().map_err(|_| format!("an unsupported alg {alg:?}"))?,
        None => match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err("an unsupported curve".into()),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
            _ => return Err("no alg, and none follows from its type".into()),
        },
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    Ok(VerifyKey { kid: jwk.common.key_id.clone(), algorithm, key })
}

/// Signs and verifies with every key family once, so a build without a crypto backend (or
/// with a broken one) is found at start, not at the first request.
pub fn self_check() -> Result<(), String> {
    let secret = b"switchyard-self-check-secret-0123456789";
    let claims = serde_json::json!({ "sub": "self-check", "exp": u32::MAX });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret).map_err(|e| format!("the JWT crypto backend: {e}"))?,
    )
    .map_err(|e| format!("the JWT crypto backend cannot sign: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    let key = DecodingKey::from_secret(secret).map_err(|e| format!("the JWT crypto backend: {e}"))?;
    jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
        .map_err(|e| format!("the JWT crypto backend cannot verify: {e}"))?;
    Ok(())
}
