//! JWT verification against one HS256 key (issuer, audience, exp required, 30 s leeway). The
//! first byte picks the input's form:
//!
//! - even: the rest is the token text, as a client would send it;
//! - odd: the rest is `HEADER-JSON \0 CLAIMS-JSON`, signed with the right key exactly as
//!   written (so `alg: none`, hostile `kid`, `jku`, `crit`, strings for numbers all arrive
//!   validly signed).
//!
//! Nothing panics, and a token accepted in the signed form has `alg` HS256, the issuer, the
//! audience and an `exp` not past the leeway.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use switchyard::config::{AuthConfig, ConfigDuration, JwtAlgorithm, JwtKeyConfig, JwtProviderConfig, TokenSource};
use switchyard::policy::Authenticator;

const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret!";
const ISSUER: &str = "https://issuer.test";

fn fixture() -> &'static (tokio::runtime::Runtime, Authenticator) {
    static FIXTURE: OnceLock<(tokio::runtime::Runtime, Authenticator)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let provider = JwtProviderConfig {
            name: "fuzz".into(),
            issuer: Some(ISSUER.into()),
            audiences: vec!["switchyard".into()],
            leeway: ConfigDuration::from_secs(30),
            require_exp: true,
            keys: vec![JwtKeyConfig {
                kid: Some("k".into()),
                algorithm: JwtAlgorithm::HS256,
                secret: Some(SECRET.into()),
                pem_file: None,
            }],
            jwks: None,
            from: vec![TokenSource::Authorization],
        };
        let auth =
            Authenticator::build(&AuthConfig { jwt: vec![provider], ..AuthConfig::default() }).expect("authenticator");
        (runtime, auth)
    })
}

pub(crate) fn run(data: &[u8]) {
    let Some((&form, rest)) = data.split_first() else { return };
    let (runtime, auth) = fixture();
    if form & 1 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else { return };
        let _ = runtime.block_on(auth.verify_token(token));
        return;
    }
    let parts = super::parts(rest, 0);
    let (header, claims) = (parts[0], parts.get(1).copied().unwrap_or_default());
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("an HMAC key");
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
        .expect("HMAC signs anything");
    let token = format!("{signing_input}.{signature}");
    if runtime.block_on(auth.verify_token(&token)).is_err() {
        return;
    }
    let header: serde_json::Value = serde_json::from_slice(header).expect("an accepted header is JSON");
    let claims: serde_json::Value = serde_json::from_slice(claims).expect("accepted claims are JSON");
    assert_eq!(header["alg"], "HS256", "accepted {header}");
    assert_eq!(claims["iss"], ISSUER, "accepted {claims}");
    let audience_ok =
        claims["aud"] == "switchyard" || claims["aud"].as_array().is_some_and(|a| a.iter().any(|v| v == "switchyard"));
    assert!(audience_ok, "accepted {claims}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let exp = claims["exp"].as_f64().unwrap_or_else(|| panic!("accepted without a numeric exp: {claims}"));
    assert!(exp + 30.0 >= now, "accepted an expired token: {claims}");
}
