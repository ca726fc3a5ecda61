//! Authentication against the demo: a JWT provider with an HS256 secret, an RS256 PEM key and a
//! JWKS URL (a real axum server whose key set the test changes), and API keys. Every refused
//! credential gets 401 with its reason and a `WWW-Authenticate` challenge, and no backend call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::TestGateway;

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";
const ISSUER: &str = "https://issuer.test";
const RSA_PRIVATE: &str = include_str!("../fixtures/jwt/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../fixtures/jwt/rsa-public.pem");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn claims(changes: Value) -> Value {
    let mut claims =
        json!({"sub": "ada", "iss": ISSUER, "aud": "switchyard", "exp": now() + 600, "scope": "books:read"});
    for (key, value) in changes.as_object().expect("object") {
        claims[key] = value.clone();
    }
    claims
}

fn sign(algorithm: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let header = Header { kid: Some(kid.to_owned()), ..Header::new(algorithm) };
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn hs(claims: &Value) -> String {
    sign(Algorithm::HS256, "hs", &EncodingKey::from_secret(SECRET.as_bytes()).expect("key"), claims)
}

/// An EC P-256 key pair: its signing key and its public JWK with `kid`.
fn ec_key(kid: &str) -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate().expect("P-256 key");
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("EC key");
    let mut jwk = serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk"))
        .expect("json");
    jwk["kid"] = json!(kid);
    (key, jwk)
}

/// Serves `{"keys": [...]}` from `keys` at /jwks.json; counts fetches.
async fn jwks_server(keys: Arc<Mutex<Vec<Value>>>, fetches: Arc<std::sync::atomic::AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let keys = keys.clone();
            fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { axum::Json(json!({"keys": keys.lock().expect("keys").clone()})) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/jwks.json")
}

async fn get_book(gateway: &TestGateway, headers: &[(&str, String)]) -> (u16, Value, http::HeaderMap) {
    crate::support::get_with(gateway, "/v1/shelves/1/books/1", headers).await
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

#[tokio::test]
async fn the_token_matrix_gets_exact_statuses_and_reasons_and_no_backend_call() {
    let jwks: Arc<Mutex<Vec<Value>>> = Arc::default();
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = jwks_server(jwks.clone(), fetches.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let public = dir.path().join("rsa-public.pem");
    std::fs::write(&public, RSA_PUBLIC).expect("write key");
    let config = format!(
        "[[auth.jwt]]\nname = \"corp\"\nissuer = \"{ISSUER}\"\naudiences = [\"switchyard\"]\nleeway = \"0s\"\n\
         keys = [{{ kid = \"hs\", algorithm = \"HS256\", secret = \"{SECRET}\" }}, \
                 {{ kid = \"rs\", algorithm = \"RS256\", pem_file = \"{}\" }}]\n\
         jwks = {{ url = \"{url}\", min_refresh_interval = \"50ms\" }}\n\
         [[backends.catalog]]\n",
        public.display()
    )
    .replace(
        "[[backends.catalog]]\n",
        "[backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n",
    );
    let (gateway, _config_dir) = TestGateway::demo_with_config(&config).await;
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("RSA key");
    let other_secret = EncodingKey::from_secret(b"another-secret-that-is-32-bytes-or-more").expect("key");
    let none_token = {
        let encode = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", encode(&json!({"alg": "none", "kid": "hs"})), encode(&claims(json!({}))))
    };
    // The HS/RS confusion: HMAC keyed with the RSA public key's text, claiming the RSA key's kid.
    let confused = sign(
        Algorithm::HS256,
        "rs",
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()).expect("key"),
        &claims(json!({})),
    );
    let (ec_old, ec_old_jwk) = ec_key("ec-1");
    let ec_old_token = sign(Algorithm::ES256, "ec-1", &ec_old, &claims(json!({})));
    // (case, token, status, message)
    let table: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no token: anonymous", None, 200, ""),
        ("valid HS256", Some(hs(&claims(json!({})))), 200, ""),
        ("valid RS256", Some(sign(Algorithm::RS256, "rs", &rsa, &claims(json!({})))), 200, ""),
        ("expired", Some(hs(&claims(json!({"exp": now() - 5})))), 401, "the token has expired"),
        ("nbf in the future", Some(hs(&claims(json!({"nbf": now() + 3600})))), 401, "the token is not valid yet (nbf)"),
        (
            "wrong aud",
            Some(hs(&claims(json!({"aud": "billing"})))),
            401,
            "the token's audience is not one of `switchyard`",
        ),
        (
            "wrong iss",
            Some(hs(&claims(json!({"iss": "https://evil.test"})))),
            401,
            "the token's issuer is not `https://issuer.test`",
        ),
        (
            "no exp",
            Some(hs(&json!({"sub": "ada", "iss": ISSUER, "aud": "switchyard"}))),
            401,
            "the token has no `exp` claim",
        ),
        (
            "bad signature",
            Some(sign(Algorithm::HS256, "hs", &other_secret, &claims(json!({})))),
            401,
            "the token's signature does not verify",
        ),
        ("alg none", Some(none_token), 401, "the token's algorithm `none` is not accepted"),
        ("HS/RS confusion", Some(confused), 401, "the token says alg `HS256` but key `rs` is RS256"),
        ("unknown kid", Some(ec_old_token.clone()), 401, "no key of provider `corp` has kid `ec-1`"),
        (
            "malformed",
            Some("not.a-token".into()),
            401,
            "the token is not a JWT (three base64url parts separated by dots)",
        ),
    ];
    for (case, token, want, message) in table {
        let before = gateway.backend().calls("GetBook");
        let headers = token.as_deref().map(bearer).unwrap_or_default();
        let (status, body, response_headers) = get_book(&gateway, &headers).await;
        assert_eq!(status, want, "{case}: {body}");
        if want == 401 {
            assert_eq!(body["code"], 16, "{case}: {body}");
            assert_eq!(body["message"], message, "{case}");
            let challenge = response_headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer realm=\"switchyard\", error=\"invalid_token\""),
                "{case}: {challenge}"
            );
            assert!(challenge.contains(&message.replace('"', "'")), "{case}: {challenge}");
            assert_eq!(gateway.backend().calls("GetBook"), before, "{case}: no backend call");
        }
    }

    // The unknown kid appears in the JWKS: the next token with it makes the gateway fetch again.
    jwks.lock().expect("keys").push(ec_old_jwk);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let (status, body, _) = get_book(&gateway, &bearer(&ec_old_token)).await;
    assert_eq!(status, 200, "after the JWKS gained ec-1: {body}");

    // The key rotates: ec-2 replaces ec-1. A token signed with ec-2 makes the gateway fetch the
    // new set, and ec-1's tokens (verified and cached before) are refused from then on.
    let (ec_new, ec_new_jwk) = ec_key("ec-2");
    *jwks.lock().expect("keys") = vec![ec_new_jwk];
    tokio::time::sleep(Duration::from_millis(60)).await;
    let (status, body, _) =
        get_book(&gateway, &bearer(&sign(Algorithm::ES256, "ec-2", &ec_new, &claims(json!({}))))).await;
    assert_eq!(status, 200, "a token of the rotated-in key: {body}");
    let (status, body, _) = get_book(&gateway, &bearer(&ec_old_token)).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("no key of provider `corp` has kid `ec-1`")), "{body}");

    // Unknown kids cannot make the gateway hammer the JWKS URL.
    let before = fetches.load(std::sync::atomic::Ordering::SeqCst);
    for i in 0..20 {
        let (ec, _) = ec_key(&format!("x{i}"));
        let _ = get_book(&gateway, &bearer(&sign(Algorithm::ES256, &format!("x{i}"), &ec, &claims(json!({}))))).await;
    }
    let made = fetches.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(made <= 3, "20 unknown kids in a burst made {made} fetches (at most one per 50 ms)");
    gateway.shutdown().await;
}

#[tokio::test]
async fn every_protocol_refuses_a_bad_token_and_api_keys_identify_clients() {
    let key = "sk-test-0123456789";
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
    let config = format!(
        "[[auth.jwt]]\nname = \"corp\"\nissuer = \"{ISSUER}\"\naudiences = [\"switchyard\"]\n\
         keys = [{{ kid = \"hs\", algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n\
         [auth.api_keys]\nquery = \"api_key\"\nkeys = [{{ sha256 = \"{hash}\", identity = \"ci-bot\", scopes = [\"books:read\"] }}]\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let bad = hs(&claims(json!({"exp": now() - 120})));

    // GraphQL: 401 with a GraphQL error, whatever the client accepts.
    let response = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("authorization", format!("Bearer {bad}"))
        .header("content-type", "application/json")
        .body(json!({"query": "{ getBook(name: \"shelves/1/books/1\") { title } }"}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
    assert_eq!(body["errors"][0]["message"], "the token has expired");

    // gRPC: UNAUTHENTICATED.
    let refused = crate::support::grpc_get_book(&gateway, &[("authorization", format!("Bearer {bad}"))])
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(refused.message(), "the token has expired");
    assert_eq!(gateway.backend().calls("GetBook"), 0, "no protocol reached the backend");

    // API keys: in the header, or the configured query parameter; an unknown one is refused.
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, u16);
    let table: &[Case] = &[
        ("/v1/shelves/1/books/1", Some(("x-api-key", key)), 200),
        ("/v1/shelves/1/books/1?api_key=sk-test-0123456789", None, 200),
        ("/v1/shelves/1/books/1", Some(("x-api-key", "sk-wrong")), 401),
        ("/v1/shelves/1/books/1?api_key=sk-wrong", None, 401),
    ];
    for (path, header, want) in table {
        let mut request = gateway.client.get(format!("{}{path}", gateway.base));
        if let Some((name, value)) = header {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, *want, "{path} {header:?}: {body}");
        if *want == 401 {
            assert_eq!(body["message"], "the API key is not known");
        }
    }
    gateway.shutdown().await;
}

#[test]
fn bad_auth_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").expect("write");
    let table = [
        ("keys = [{ algorithm = \"HS256\", secret = \"short\" }]".to_owned(), "auth.jwt[0].keys[0]", "at least 32"),
        (
            format!("keys = [{{ algorithm = \"RS256\", secret = \"{SECRET}\" }}]"),
            "auth.jwt[0].keys[0]",
            "needs `pem_file`",
        ),
        (
            format!("keys = [{{ algorithm = \"ES256\", pem_file = \"{}\" }}]", garbage.display()),
            "auth.jwt[0].keys[0]",
            "not a PEM ES256",
        ),
        ("keys = []".to_owned(), "auth.jwt[0].keys", "needs `keys` or `jwks`"),
        ("jwks = { file = \"/nonexistent/jwks.json\" }".to_owned(), "auth.jwt[0].jwks.file", "cannot read"),
    ];
    for (provider, key, message) in table {
        let text = format!("[[auth.jwt]]\nname = \"corp\"\nissuer = \"{ISSUER}\"\naudiences = [\"a\"]\n{provider}\n");
        let file = dir.path().join("switchyard.toml");
        std::fs::write(&file, &text).expect("write");
        let sources = switchyard::snapshot::SnapshotSources {
            config_file: Some(file),
            no_descriptor_dir: true,
            schemas: Some("/nonexistent".into()),
            ..Default::default()
        };
        let problems = switchyard::snapshot::build_snapshot(&sources, 1).expect_err(&provider);
        let found = problems.iter().find(|p| p.path == key).unwrap_or_else(|| panic!("{provider}: {problems:?}"));
        assert!(found.message.contains(message), "{provider}: {found:?}");
    }
}

/// Subscribes `socket` (acknowledged) to WatchBooks on shelf 1 as operation `id`.
async fn watch(socket: &mut crate::subscriptions::Socket, id: &str) {
    let query = "subscription { watchBooks(parent: \"shelves/1\") { kind book { title } } }";
    crate::subscriptions::send(socket, json!({"id": id, "type": "subscribe", "payload": {"query": query}})).await;
}

#[tokio::test]
async fn websocket_sessions_authenticate_at_init_and_end_subscriptions_when_the_token_expires() {
    use crate::subscriptions::{connect, recv, recv_close, send};
    let config = format!(
        "[[auth.jwt]]\nname = \"corp\"\nissuer = \"{ISSUER}\"\naudiences = [\"switchyard\"]\nleeway = \"0s\"\n\
         keys = [{{ kid = \"hs\", algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;

    // A bad token in connection_init: 4403 naming the reason, both dialects.
    let expired = hs(&claims(json!({"exp": now() - 120})));
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let mut socket = connect(&gateway, Some(protocol)).await;
        send(
            &mut socket,
            json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {expired}")}}),
        )
        .await;
        let (code, reason, texts) = recv_close(&mut socket).await;
        assert_eq!((code, reason.as_str()), (4403, "Forbidden: the token has expired"), "{protocol}");
        if protocol == "graphql-ws" {
            assert_eq!(texts, [json!({"type": "connection_error", "payload": {"message": "the token has expired"}})]);
        }
    }

    // Two sessions whose tokens expire in two seconds; the second sends a fresh token first.
    let short = hs(&claims(json!({"exp": now() + 2})));
    let fresh = hs(&claims(json!({"exp": now() + 600})));
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut socket = connect(&gateway, Some("graphql-transport-ws")).await;
        send(&mut socket, json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {short}")}}))
            .await;
        assert_eq!(recv(&mut socket).await, json!({"type": "connection_ack"}));
        watch(&mut socket, "w").await;
        sockets.push(socket);
    }
    send(&mut sockets[1], json!({"type": "ping", "payload": {"authorization": format!("Bearer {fresh}")}})).await;
    assert_eq!(recv(&mut sockets[1]).await["type"], "pong");
    // The first ends with UNAUTHENTICATED at its token's expiry (waited for, not timed).
    let ended = recv(&mut sockets[0]).await;
    assert_eq!(
        ended,
        json!({"id": "w", "type": "error", "payload": [{"message": "the token has expired", "extensions": {"code": "UNAUTHENTICATED"}}]})
    );
    // The refreshed one still receives events.
    let (status, body, _) = gateway.call("POST", "/v1/shelves/1/books", "{\"title\":\"Still here\"}").await;
    assert_eq!(status, 200, "{body}");
    let event = recv(&mut sockets[1]).await;
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], "Still here");
    gateway.shutdown().await;
}

/// A JWKS outage: the last good keys keep verifying for `max_stale`, then tokens are refused
/// with a reason; an oversized key set is a failed fetch that is not read whole and keeps the
/// last good keys. The clock is tokio's, paused once the first fetch is in.
#[tokio::test]
async fn a_jwks_outage_keeps_the_last_keys_until_max_stale_and_an_oversized_set_is_refused() {
    use switchyard::config::{ConfigDuration, JwksConfig, JwtProviderConfig, TokenSource};
    let answer: Arc<Mutex<(u16, String)>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    let serving = answer.clone();
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (status, body) = serving.lock().expect("answer").clone();
            async move { (http::StatusCode::from_u16(status).expect("status"), body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let (key, jwk) = ec_key("ec-1");
    *answer.lock().expect("answer") = (200, json!({"keys": [jwk]}).to_string());
    let provider = switchyard::policy::Provider::build(&JwtProviderConfig {
        name: "idp".into(),
        issuer: Some(ISSUER.into()),
        audiences: vec!["switchyard".into()],
        leeway: ConfigDuration::from_secs(30),
        require_exp: true,
        keys: Vec::new(),
        jwks: Some(JwksConfig {
            file: None,
            url: Some(url),
            refresh: ConfigDuration::from_secs(300),
            min_refresh_interval: ConfigDuration(Duration::from_millis(1)),
            timeout: ConfigDuration::from_secs(5),
            max_stale: ConfigDuration::from_secs(3600),
        }),
        from: vec![TokenSource::Authorization],
    })
    .expect("provider");
    provider.fetch(true).await;
    let token = sign(Algorithm::ES256, "ec-1", &key, &claims(json!({})));
    provider.verify(&token).await.expect("verified with the fetched key");

    // Oversized: the fetch fails and the key stays. A token with an unknown kid asks for it.
    let padding = "x".repeat(2 * 1024 * 1024);
    *answer.lock().expect("answer") = (200, json!({"keys": [], "padding": padding}).to_string());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (other, _) = ec_key("ec-2");
    let unknown = sign(Algorithm::ES256, "ec-2", &other, &claims(json!({})));
    let refused = provider.verify(&unknown).await.expect_err("unknown kid");
    assert!(refused.message.contains("no key of provider `idp` has kid `ec-2`"), "{}", refused.message);
    provider.verify(&token).await.expect("the last good key survived the oversized set");

    // Outage: the key keeps verifying until max_stale has passed since the last good fetch.
    *answer.lock().expect("answer") = (503, "down".into());
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(3500)).await;
    provider.verify(&token).await.expect("still within max_stale");
    tokio::time::advance(Duration::from_secs(200)).await;
    let stale = provider.verify(&token).await.expect_err("stale");
    assert!(
        stale.message.contains("the keys of provider `idp` are stale: its JWKS has not been fetched for over 1h"),
        "{}",
        stale.message
    );
    // The provider comes back: the next fetch restores trust.
    *answer.lock().expect("answer") = (200, json!({"keys": [ec_key("ec-1").1]}).to_string());
    tokio::time::resume();
    tokio::time::sleep(Duration::from_millis(5)).await;
    provider.fetch(false).await;
    let refused = provider.verify(&token).await.expect_err("the key was replaced by a new ec-1");
    assert!(!refused.message.contains("stale"), "{}", refused.message);
}
