//! JWT verification per algorithm: a cold verification (header, key lookup, signature, claims)
//! through a provider, and the steady state through the authenticator, where a token already
//! verified is a cache hit by its exact text. Keys: the test RSA key in tests/fixtures/jwt, EC and
//! Ed25519 keys made by rcgen. Run: `cargo bench --bench jwt_verify`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use switchyard::config::{AuthConfig, JwtAlgorithm, JwtKeyConfig, JwtProviderConfig};
use switchyard::policy::{Authenticator, Provider};

const RSA_PRIVATE: &str = include_str!("../tests/fixtures/jwt/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../tests/fixtures/jwt/rsa-public.pem");
const SECRET: &str = "a-bench-secret-that-is-at-least-32-bytes-long";

fn jwt_verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write key");
        path
    };
    let ec256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256");
    let ec384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384");
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519");
    let rsa_public = write("rsa.pem", RSA_PUBLIC);
    // (algorithm, config algorithm, signing key, verification key file or secret)
    let cases: Vec<(Algorithm, JwtAlgorithm, EncodingKey, Option<std::path::PathBuf>)> = vec![
        (Algorithm::HS256, JwtAlgorithm::HS256, EncodingKey::from_secret(SECRET.as_bytes()).expect("key"), None),
        (
            Algorithm::RS256,
            JwtAlgorithm::RS256,
            EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("key"),
            Some(rsa_public.clone()),
        ),
        (
            Algorithm::PS256,
            JwtAlgorithm::PS256,
            EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("key"),
            Some(rsa_public),
        ),
        (
            Algorithm::ES256,
            JwtAlgorithm::ES256,
            EncodingKey::from_ec_pem(ec256.serialize_pem().as_bytes()).expect("key"),
            Some(write("ec256.pem", &ec256.public_key_pem())),
        ),
        (
            Algorithm::ES384,
            JwtAlgorithm::ES384,
            EncodingKey::from_ec_pem(ec384.serialize_pem().as_bytes()).expect("key"),
            Some(write("ec384.pem", &ec384.public_key_pem())),
        ),
        (
            Algorithm::EdDSA,
            JwtAlgorithm::EdDSA,
            EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).expect("key"),
            Some(write("ed.pem", &ed.public_key_pem())),
        ),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 3600;
    let claims = serde_json::json!({"sub": "ada", "iss": "https://issuer.test", "aud": "switchyard", "exp": exp, "scope": "books:read"});
    let mut group = c.benchmark_group("jwt_verify");
    for (algorithm, configured, signing, public) in cases {
        let provider = JwtProviderConfig {
            name: "bench".into(),
            issuer: Some("https://issuer.test".into()),
            audiences: vec!["switchyard".into()],
            leeway: switchyard::config::ConfigDuration::from_secs(30),
            require_exp: true,
            keys: vec![JwtKeyConfig {
                kid: Some("k".into()),
                algorithm: configured,
                secret: public.is_none().then(|| SECRET.to_owned()),
                pem_file: public,
            }],
            jwks: None,
            from: vec![switchyard::config::TokenSource::Authorization],
        };
        let header = Header { kid: Some("k".into()), ..Header::new(algorithm) };
        let token = jsonwebtoken::encode(&header, &claims, &signing).expect("sign");
        let cold = Provider::build(&provider).expect("provider");
        group.bench_with_input(BenchmarkId::new("cold", format!("{algorithm:?}")), &token, |b, token| {
            b.iter(|| runtime.block_on(cold.verify(black_box(token))).expect("verifies"))
        });
        let auth =
            Authenticator::build(&AuthConfig { jwt: vec![provider], ..AuthConfig::default() }).expect("authenticator");
        runtime.block_on(auth.verify_token(&token)).expect("verifies");
        group.bench_with_input(BenchmarkId::new("cached", format!("{algorithm:?}")), &token, |b, token| {
            b.iter(|| runtime.block_on(auth.verify_token(black_box(token))).expect("verifies"))
        });
        // The hit itself, without entering the runtime to poll the future around it.
        group.bench_with_input(BenchmarkId::new("cache_hit", format!("{algorithm:?}")), &token, |b, token| {
            b.iter(|| auth.verified_before(black_box(token)).expect("cached"))
        });
    }
    group.finish();
}

criterion_group!(benches, jwt_verify);
criterion_main!(benches);
