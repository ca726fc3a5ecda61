//! Rate limits and quotas against the demo: N allowed, the N+1th refused with the protocol's own
//! answer (429 with Retry-After and RateLimit headers, RATE_LIMITED, RESOURCE_EXHAUSTED), per
//! consumer, per field use and per cost; and two gateways sharing one limit through a real
//! redis-server, with the documented behaviour when it goes away. Windows are an hour long, so
//! no test depends on the clock.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{RedisServer, TestGateway, get_with};

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

fn token(sub: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 600;
    let claims = json!({"sub": sub, "exp": exp});
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("sign")
}

fn config(limits: &str) -> String {
    format!(
        "[[auth.jwt]]\nname = \"corp\"\nkeys = [{{ algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n{limits}\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n"
    )
}

async fn graphql(gateway: &TestGateway, query: &str, token: &str) -> (u16, Value, http::HeaderMap) {
    let response = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(json!({ "query": query }).to_string())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.expect("json"), headers)
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn header(headers: &http::HeaderMap, name: &str) -> String {
    headers.get(name).map(|v| v.to_str().expect("ascii").to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn n_calls_pass_and_the_next_is_refused_on_every_protocol_per_consumer() {
    let limits =
        "[[rate_limits.rules]]\nname = \"per-user\"\nlimit = 5\nwindow = \"1h\"\nclients = \"authenticated\"\n";
    let (gateway, _dir) = TestGateway::demo_with_config(&config(limits)).await;

    // REST: five answers counting down, then 429 with Retry-After and the policy.
    let ada = bearer(&token("ada"));
    for left in (0..5).rev() {
        let (status, body, headers) = get_with(&gateway, "/v1/shelves/1/books/1", &ada).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(header(&headers, "ratelimit-policy"), "\"per-user\";q=5;w=3600");
        assert!(header(&headers, "ratelimit").starts_with(&format!("\"per-user\";r={left};t=")), "{headers:?}");
    }
    let (status, body, headers) = get_with(&gateway, "/v1/shelves/1/books/1", &ada).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], 8, "RESOURCE_EXHAUSTED in the google.rpc.Status body");
    let message = body["message"].as_str().expect("message");
    assert!(message.starts_with("rate limit `per-user` exceeded (5 requests per 1h); retry in "), "{message}");
    let retry: u64 = header(&headers, "retry-after").parse().expect("Retry-After seconds");
    assert!((600..=720).contains(&retry), "one unit comes back every 12 minutes: {retry}");
    assert_eq!(header(&headers, "ratelimit-policy"), "\"per-user\";q=5;w=3600");
    assert_eq!(gateway.backend().calls("GetBook"), 5, "the refused call never reached the backend");

    // Anonymous clients are not counted by this rule; another user has their own counter.
    for _ in 0..8 {
        assert_eq!(get_with(&gateway, "/v1/shelves/1/books/1", &[]).await.0, 200);
    }
    let bob = token("bob");
    let query = "{ getBook(name: \"shelves/1/books/1\") { title } }";
    for _ in 0..5 {
        let (status, body, _) = graphql(&gateway, query, &bob).await;
        assert_eq!((status, &body["data"]["getBook"]["title"]), (200, &json!("The Left Hand of Darkness")));
    }
    let (status, body, headers) = graphql(&gateway, query, &bob).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(headers.contains_key("retry-after"));

    // gRPC: RESOURCE_EXHAUSTED.
    let carol = bearer(&token("carol"));
    for _ in 0..5 {
        crate::support::grpc_get_book(&gateway, &carol).await.expect("within the limit");
    }
    let refused = crate::support::grpc_get_book(&gateway, &carol).await.expect_err("over the limit");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(refused.message().starts_with("rate limit `per-user` exceeded"), "{}", refused.message());
    gateway.shutdown().await;
}

#[tokio::test]
async fn field_uses_and_cost_are_counted_and_a_refused_operation_uses_nothing() {
    let limits = "[[rate_limits.rules]]\nname = \"ratings\"\nfields = [\"Book.rating\"]\nkey = \"global\"\nlimit = 3\nwindow = \"1h\"\n\
                  [[rate_limits.rules]]\nname = \"budget\"\nunit = \"cost\"\nlimit = 100\nwindow = \"1h\"\n";
    let (gateway, _dir) = TestGateway::demo_with_config(&config(limits)).await;
    let ada = token("ada");
    // Cost: 1 (listBooks) + 10 expected books × (1 + 1 title + 1 rating [+ 1 again]) = 31 or 41.
    let twice = "{ listBooks(parent: \"shelves/1\") { books { title rating again: rating } } }";
    let once = "{ listBooks(parent: \"shelves/1\") { books { title rating } } }";
    let (status, body, _) = graphql(&gateway, twice, &ada).await;
    assert_eq!(status, 200, "{body}");
    // Two more uses of rating would make four: refused, and neither limit is charged.
    let (status, body, _) = graphql(&gateway, twice, &ada).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["errors"][0]["message"].as_str().expect("message").starts_with("rate limit `ratings` exceeded"));
    // One more use fits (3 of 3); the budget has 100 - 41 - 31 = 28 left.
    let (status, body, _) = graphql(&gateway, once, &ada).await;
    assert_eq!(status, 200, "{body}");
    // A query without rating costs 21: under the budget; the next one is over it.
    let plain = "{ listBooks(parent: \"shelves/1\") { books { title } } }";
    assert_eq!(graphql(&gateway, plain, &ada).await.0, 200);
    let (status, body, _) = graphql(&gateway, plain, &ada).await;
    assert_eq!(status, 429, "{body}");
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(message.starts_with("rate limit `budget` exceeded (100 cost units per 1h)"), "{message}");
    assert_eq!(gateway.backend().calls("ListBooks"), 3);
    gateway.shutdown().await;
}

#[tokio::test]
async fn quotas_and_client_addresses_through_trusted_proxies() {
    let limits = "[[rate_limits.quotas]]\nname = \"daily\"\nkey = { header = \"x-tenant\" }\nlimit = 3\nperiod = \"day\"\n\
                  [[rate_limits.rules]]\nname = \"per-ip\"\nkey = \"client_ip\"\nlimit = 2\nwindow = \"1h\"\nroutes = [\"GET /v1/{parent=shelves/*}/books\"]\n\
                  [listener]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(&config(limits)).await;
    let acme = vec![("x-tenant", "acme".to_owned())];
    for _ in 0..3 {
        assert_eq!(get_with(&gateway, "/v1/shelves/1/books/1", &acme).await.0, 200);
    }
    let (status, body, headers) = get_with(&gateway, "/v1/shelves/1/books/1", &acme).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["message"].as_str().expect("message").starts_with("quota `daily` exhausted (3 requests per day)"));
    assert_eq!(header(&headers, "ratelimit-policy"), "\"daily\";q=3;w=86400");
    assert_eq!(get_with(&gateway, "/v1/shelves/1/books/1", &[("x-tenant", "globex".to_owned())]).await.0, 200);
    let usage: Value = gateway
        .client
        .get(format!("{}/admin/usage", gateway.admin))
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("json");
    let counters = usage["counters"].as_array().expect("counters");
    let acme = counters.iter().find(|c| c["consumer"] == "acme").expect("acme's quota");
    assert_eq!((&acme["kind"], &acme["used"], &acme["quota"]), (&json!("quota"), &json!(3), &json!(3)), "{usage}");

    // The route limit counts the address the trusted proxy (the loopback peer) names.
    let from = |ip: &str| vec![("x-forwarded-for", format!("6.6.6.6, {ip}")), ("x-tenant", ip.to_owned())];
    for _ in 0..2 {
        assert_eq!(get_with(&gateway, "/v1/shelves/1/books", &from("198.51.100.1")).await.0, 200);
    }
    assert_eq!(get_with(&gateway, "/v1/shelves/1/books", &from("198.51.100.1")).await.0, 429);
    assert_eq!(get_with(&gateway, "/v1/shelves/1/books", &from("198.51.100.2")).await.0, 200);
    gateway.shutdown().await;
}

#[tokio::test]
async fn two_gateways_share_one_limit_through_redis_and_fail_as_configured() {
    let mut redis = RedisServer::start().await;
    let shared = |failure: &str| {
        config(&format!(
            "[redis]\nurls = [\"{}\"]\nkey_prefix = \"test-{}\"\n[rate_limits]\nstore = \"redis\"\non_store_error = \"{failure}\"\n\
             [[rate_limits.rules]]\nname = \"shared\"\nkey = \"global\"\nlimit = 10\nwindow = \"1h\"\n",
            redis.url,
            std::process::id()
        ))
    };
    let (open, _a) = TestGateway::demo_with_config(&shared("open")).await;
    let (closed, _b) = TestGateway::demo_with_config(&shared("closed")).await;
    let mut statuses = Vec::new();
    for i in 0..14 {
        let gateway = if i % 2 == 0 { &open } else { &closed };
        statuses.push(get_with(gateway, "/v1/shelves/1/books/1", &[]).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429, 429, 429], "{statuses:?}");
    // Either gateway's admin API reads the shared counter.
    let usage: Value = closed
        .client
        .get(format!("{}/admin/usage", closed.admin))
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("json");
    assert_eq!(usage["store"], "redis", "{usage}");
    assert_eq!(usage["counters"][0]["limit"], "shared", "{usage}");
    assert_eq!(usage["counters"][0]["consumer"], "*", "{usage}");
    assert_eq!(usage["counters"][0]["remaining"], 0, "{usage}");

    // Redis goes away: `open` lets calls through uncounted, `closed` refuses them with 503.
    redis.stop();
    let (status, _, _) = get_with(&open, "/v1/shelves/1/books/1", &[]).await;
    assert_eq!(status, 200);
    let (status, body, _) = get_with(&closed, "/v1/shelves/1/books/1", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["message"].as_str().expect("message").starts_with("the rate-limit store (redis) is unreachable"));
    open.shutdown().await;
    closed.shutdown().await;
}

#[test]
fn bad_limit_config_is_refused_naming_the_key() {
    crate::support::assert_config_refused(&[
        (
            "[[rate_limits.rules]]\nname = \"a b\"\nlimit = 1\nwindow = \"1s\"\n",
            "rate_limits.rules[0].name",
            "not a limit name",
        ),
        (
            "[[rate_limits.rules]]\nname = \"a\"\nlimit = 0\nwindow = \"1s\"\n",
            "rate_limits.rules[0].limit",
            "at least 1",
        ),
        (
            "[[rate_limits.rules]]\nname = \"a\"\nlimit = 1\nwindow = \"0s\"\n",
            "rate_limits.rules[0].window",
            "longer than zero",
        ),
        (
            "[[rate_limits.rules]]\nname = \"a\"\nlimit = 1\nwindow = \"1s\"\n[[rate_limits.quotas]]\nname = \"a\"\nlimit = 1\nperiod = \"day\"\n",
            "rate_limits.quotas[0].name",
            "names two limits",
        ),
        (
            "[[rate_limits.rules]]\nname = \"a\"\nlimit = 1\nwindow = \"1s\"\nkey = { header = \"bad header\" }\n",
            "rate_limits.rules[0].key",
            "not a header name",
        ),
        ("[rate_limits]\nstore = \"redis\"\n", "redis.urls", "at least one URL"),
        ("[rate_limits]\nstore = \"redis\"\n[redis]\nurls = [\"http://x\"]\n", "redis.urls[0]", "not a Redis URL"),
        ("[listener]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "listener.trusted_proxies[0]", "not an IP address"),
    ]);
}

#[tokio::test]
async fn the_redis_store_speaks_tls_with_a_password() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let pki = tempfile::tempdir().expect("tempdir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params").signed_by(&key, &ca).expect("cert");
    std::fs::write(pki.path().join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(pki.path().join("server.pem"), server.pem()).expect("write");
    std::fs::write(pki.path().join("server.key"), key.serialize_pem()).expect("write");
    let redis = RedisServer::start_tls(pki.path(), "s3cret").await;
    let with_password = |password: &str| {
        config(&format!(
            "[redis]\nurls = [\"{}\"]\npassword = \"{password}\"\nca_file = \"{}\"\n\
             [rate_limits]\nstore = \"redis\"\non_store_error = \"closed\"\n\
             [[rate_limits.rules]]\nname = \"tls\"\nkey = \"global\"\nlimit = 2\nwindow = \"1h\"\n",
            redis.url,
            pki.path().join("ca.pem").display()
        ))
    };
    let (gateway, _dir) = TestGateway::demo_with_config(&with_password("s3cret")).await;
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(get_with(&gateway, "/v1/shelves/1/books/1", &[]).await.0);
        }
        statuses
    };
    assert_eq!(statuses, [200, 200, 429], "counted in Redis over TLS");
    gateway.shutdown().await;
    // A wrong password: the store cannot be used, and `closed` refuses.
    let (gateway, _dir) = TestGateway::demo_with_config(&with_password("wrong")).await;
    let (status, body, _) = get_with(&gateway, "/v1/shelves/1/books/1", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["message"].as_str().expect("message").starts_with("the rate-limit store (redis) is unreachable"));
    gateway.shutdown().await;
}

/// Past `listener.max_in_flight`, requests are shed at once with 503 and `Retry-After`, in each
/// protocol's shape, while the ones in flight finish; nothing queues.
#[tokio::test]
async fn overload_is_shed_at_once_with_503_and_retry_after() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (gateway, _dir) = TestGateway::demo_with_config(
        "[listener]\nmax_in_flight = 4\n[backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n",
    )
    .await;
    // Long enough that the shed requests are answered while the slow ones still wait.
    gateway.backend().set_latency(std::time::Duration::from_secs(2));
    let order = Arc::new(AtomicUsize::new(0));
    let mut calls = Vec::new();
    for _ in 0..12 {
        let (client, url, order) =
            (gateway.client.clone(), format!("{}/v1/shelves/1/books/1", gateway.base), order.clone());
        calls.push(tokio::spawn(async move {
            let response = client.get(url).send().await.expect("send");
            let status = response.status().as_u16();
            let retry = response.headers().get("retry-after").map(|v| v.to_str().expect("ascii").to_owned());
            let body = response.text().await.expect("body");
            (order.fetch_add(1, Ordering::SeqCst), status, retry, body)
        }));
        // Let each request reach the gateway before the next, so the first four hold the slots.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("join"));
    }
    let served: Vec<_> = answers.iter().filter(|a| a.1 == 200).collect();
    let shed: Vec<_> = answers.iter().filter(|a| a.1 == 503).collect();
    assert_eq!((served.len(), shed.len()), (4, 8), "{answers:#?}");
    for (seq, _, retry, body) in &shed {
        assert_eq!(retry.as_deref(), Some("1"), "{body}");
        assert!(body.contains("listener.max_in_flight"), "{body}");
        assert!(*seq < 8, "a shed request waited behind a served one: {answers:#?}");
    }
    // The other protocols' shapes, while the slots are full again.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let (client, url) = (gateway.client.clone(), format!("{}/v1/shelves/1/books/1", gateway.base));
        slow.push(tokio::spawn(async move { client.get(url).send().await.expect("send").status().as_u16() }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let graphql = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(graphql.status().as_u16(), 503);
    let body: Value = graphql.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{body}");
    let grpc = crate::support::grpc_get_book(&gateway, &[]).await.expect_err("shed");
    assert_eq!(grpc.code(), tonic::Code::Unavailable, "{grpc:?}");
    for call in slow {
        assert_eq!(call.await.expect("join"), 200);
    }
    gateway.backend().set_latency(std::time::Duration::ZERO);
    assert_eq!(gateway.call("GET", "/v1/shelves/1/books/1", "").await.0, 200, "served again once they finished");
    gateway.shutdown().await;
}

/// One operation is one request whichever way it arrives: a batch of six spends six (the sixth
/// refused in its place, the others answered), and on a WebSocket each subscribe spends one,
/// the one over the limit answered with an error while the socket and its other
/// subscriptions live on.
#[tokio::test]
async fn counts_hold_across_batches_and_websocket_subscribes() {
    use crate::subscriptions::{connect, recv, send};
    let limits =
        "[[rate_limits.rules]]\nname = \"per-user\"\nlimit = 5\nwindow = \"1h\"\nclients = \"authenticated\"\n";
    let (gateway, _dir) = TestGateway::demo_with_config(&config(limits)).await;

    let query = "{ getBook(name: \"shelves/1/books/1\") { title } }";
    // Distinct books, so that no two calls coalesce into one.
    let batch: Vec<Value> = (0..6)
        .map(|i| json!({ "query": format!("{{ getBook(name: \"shelves/1/books/{i}\") {{ title }} }}") }))
        .collect();
    let response = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", token("ada")))
        .body(Value::Array(batch).to_string())
        .send()
        .await
        .expect("send");
    let answers: Value = response.json().await.expect("json");
    let answers = answers.as_array().expect("one answer per operation");
    let refused: Vec<usize> =
        (0..answers.len()).filter(|i| answers[*i]["errors"][0]["extensions"]["code"] == "RATE_LIMITED").collect();
    assert_eq!(refused, [5], "the sixth operation is over the limit: {answers:?}");
    assert_eq!(gateway.backend().calls("GetBook"), 5, "the refused operation never reached the backend");
    // Ada's five are spent, whatever the transport.
    assert_eq!(graphql(&gateway, query, &token("ada")).await.0, 429);

    let mut socket = connect(&gateway, Some("graphql-transport-ws")).await;
    let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", token("bob"))}});
    send(&mut socket, init).await;
    assert_eq!(recv(&mut socket).await, json!({"type": "connection_ack"}));
    let watch = "subscription { watchBooks(parent: \"shelves/1\") { kind } }";
    for id in 1..=6 {
        send(&mut socket, json!({"id": id.to_string(), "type": "subscribe", "payload": {"query": watch}})).await;
    }
    let over = recv(&mut socket).await;
    assert_eq!((&over["id"], &over["type"]), (&json!("6"), &json!("error")), "{over}");
    assert_eq!(over["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{over}");
    // The socket lives on with its five subscriptions: a query on it is over the limit too,
    // and a new book reaches all five.
    send(&mut socket, json!({"id": "q", "type": "subscribe", "payload": {"query": query}})).await;
    let answer = recv(&mut socket).await;
    assert_eq!((&answer["id"], &answer["payload"][0]["extensions"]["code"]), (&json!("q"), &json!("RATE_LIMITED")));
    let created = gateway.call("POST", "/v1/shelves/1/books", r#"{"title":"counted"}"#).await;
    assert_eq!(created.0, 200, "{}", created.1);
    let mut heard: Vec<String> = Vec::new();
    for _ in 0..5 {
        let event = recv(&mut socket).await;
        assert_eq!(event["type"], "next", "{event}");
        heard.push(event["id"].as_str().expect("id").to_owned());
    }
    heard.sort();
    assert_eq!(heard, ["1", "2", "3", "4", "5"]);
    gateway.shutdown().await;
}
