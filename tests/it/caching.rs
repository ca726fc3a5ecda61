//! The fetch cache against the demo: REST GETs and GraphQL fields answered from memory (x-cache
//! HIT/MISS, the backend not called again), private answers kept per identity, expiry, a
//! stitched field cached while its parent stays fresh, writes never cached, ETag / 304, and
//! invalidation through the admin API.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{TestGateway, get_with};

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";
const BACKEND: &str = "[backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";

fn bearer(sub: &str) -> Vec<(&'static str, String)> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 600;
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
    let token =
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &json!({"sub": sub, "exp": exp}), &key).expect("sign");
    vec![("authorization", format!("Bearer {token}"))]
}

fn x_cache(headers: &http::HeaderMap) -> &str {
    headers.get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("(none)")
}

#[tokio::test]
async fn rest_gets_hit_the_cache_carry_etags_and_are_invalidated_by_the_admin_api() {
    let config = format!(
        "[[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\", \"catalog.v1.Catalog/CreateBook\"]\nttl = \"1h\"\nscope = \"public\"\n\
         [[cache.rules]]\nmethods = [\"catalog.v1.Catalog/ListBooks\"]\nttl = \"300ms\"\nscope = \"public\"\n{BACKEND}"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let book = "/v1/shelves/1/books/1";
    let (status, first, headers) = get_with(&gateway, book, &[]).await;
    assert_eq!((status, x_cache(&headers)), (200, "MISS"));
    let etag = headers.get("etag").and_then(|v| v.to_str().ok()).expect("an ETag").to_owned();
    let (status, second, headers) = get_with(&gateway, book, &[]).await;
    assert_eq!((status, x_cache(&headers)), (200, "HIT"));
    assert_eq!(first, second);
    assert_eq!(gateway.backend().calls("GetBook"), 1);

    // ETag / If-None-Match: 304 without a body; another tag gets the answer.
    let response = gateway
        .client
        .get(format!("{}{book}", gateway.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers().get("etag").and_then(|v| v.to_str().ok()), Some(etag.as_str()));
    assert!(response.bytes().await.expect("body").is_empty());
    let (status, _, _) = get_with(&gateway, book, &[("if-none-match", "W/\"other\"".to_owned())]).await;
    assert_eq!(status, 200);

    // The admin API drops a method's answers.
    let invalidate = |body: Value| {
        gateway.client.post(format!("{}/admin/cache/invalidate", gateway.admin)).body(body.to_string()).send()
    };
    let answer: Value =
        invalidate(json!({"methods": ["catalog.v1.Catalog/GetBook"]})).await.expect("send").json().await.expect("json");
    assert_eq!(answer["invalidated"], 1, "{answer}");
    let (_, _, headers) = get_with(&gateway, book, &[]).await;
    assert_eq!(x_cache(&headers), "MISS");
    assert_eq!(gateway.backend().calls("GetBook"), 2);
    let refused = invalidate(json!({"nothing": true})).await.expect("send");
    assert_eq!(refused.status(), 400);

    // Expiry: a 300 ms answer is fetched again once it is older.
    get_with(&gateway, "/v1/shelves/1/books", &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_, _, headers) = get_with(&gateway, "/v1/shelves/1/books", &[]).await;
    assert_eq!(x_cache(&headers), "MISS");
    assert_eq!(gateway.backend().calls("ListBooks"), 2);

    // Writes are never cached, whatever the rules say.
    for _ in 0..2 {
        let (status, body, headers) = gateway.call("POST", "/v1/shelves/1/books", "{\"title\":\"Fresh\"}").await;
        assert_eq!((status, x_cache(&headers)), (200, "(none)"), "{body}");
    }
    assert_eq!(gateway.backend().calls("CreateBook"), 2);
    gateway.shutdown().await;
}

#[tokio::test]
async fn private_answers_are_never_served_to_another_identity() {
    let config = format!(
        "[[auth.jwt]]\nname = \"corp\"\nkeys = [{{ algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n\
         [[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nttl = \"1h\"\n{BACKEND}"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let book = "/v1/shelves/1/books/1";
    // (who, expected x-cache, backend calls after)
    let table: &[(Option<&str>, &str, usize)] = &[
        (Some("ada"), "MISS", 1),
        (Some("ada"), "HIT", 1),
        (Some("bob"), "MISS", 2),
        (None, "MISS", 3),
        (None, "HIT", 3),
        (Some("bob"), "HIT", 3),
    ];
    for (who, expected, calls) in table {
        let headers = who.map(bearer).unwrap_or_default();
        let (status, _, answer) = get_with(&gateway, book, &headers).await;
        assert_eq!((status, x_cache(&answer)), (200, *expected), "{who:?}");
        assert_eq!(gateway.backend().calls("GetBook"), *calls, "{who:?}");
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_stitched_field_is_cached_while_its_parent_stays_fresh() {
    let config = "[[cache.rules]]\nfields = [\"Book.writer\", \"Query.getBook\"]\nttl = \"1h\"\nscope = \"public\"\n";
    let (gateway, _dir) = TestGateway::stitched_with_config(config).await;
    let query = "{ listBooks(parent: \"shelves/1\") { books { title writer { name } } } }";
    for _ in 0..3 {
        let answer = gateway.graphql(query).await;
        assert_eq!(answer["data"]["listBooks"]["books"][0]["writer"]["name"], "Ursula K. Le Guin", "{answer}");
    }
    assert_eq!(gateway.backend().calls("ListBooks"), 3, "the parent is fetched every time");
    assert_eq!(gateway.authors().requests(), 1, "the stitched field came from the cache");
    for _ in 0..3 {
        gateway.graphql("{ getBook(name: \"shelves/1/books/1\") { title } }").await;
    }
    assert_eq!(gateway.backend().calls("GetBook"), 1, "a cached root field");
    // Invalidating the Author type drops the stitched answers.
    let answer: Value = gateway
        .client
        .post(format!("{}/admin/cache/invalidate", gateway.admin))
        .body(json!({"types": ["Author"]}).to_string())
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["invalidated"], 1, "{answer}");
    gateway.graphql(query).await;
    assert_eq!(gateway.authors().requests(), 2);
    gateway.shutdown().await;
}

#[tokio::test]
async fn rules_on_rest_routes_cache_those_routes_and_are_invalidated_by_route() {
    let config = format!(
        "[[auth.jwt]]\nname = \"t\"\nkeys = [{{ algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n\
         [[cache.rules]]\nroutes = [\"GET /v1/{{parent=shelves/*}}/books\"]\nttl = \"1h\"\nscope = \"public\"\n\
         [[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nttl = \"1h\"\nscope = \"public\"\n\
         [[cache.rules]]\nroutes = [\"/v1/{{name=shelves/*/books/*}}\"]\nttl = \"1h\"\nscope = \"private\"\n{BACKEND}"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let list = "/v1/shelves/1/books";
    assert_eq!(x_cache(&get_with(&gateway, list, &[]).await.2), "MISS");
    assert_eq!(x_cache(&get_with(&gateway, list, &bearer("ada")).await.2), "HIT", "public: shared");
    // GraphQL reaches ListBooks by no route: the route's rule does not apply there.
    gateway.graphql("{ listBooks(parent: \"shelves/1\") { totalSize } }").await;
    assert_eq!(gateway.backend().calls("ListBooks"), 2);
    // The book route's private rule and the method's public one combine to private.
    let book = "/v1/shelves/1/books/1";
    let table = [("ada", "MISS", 1), ("ada", "HIT", 1), ("bob", "MISS", 2)];
    for (who, expected, calls) in table {
        let (status, _, headers) = get_with(&gateway, book, &bearer(who)).await;
        assert_eq!((status, x_cache(&headers), gateway.backend().calls("GetBook")), (200, expected, calls), "{who}");
    }
    let invalidate = |body: Value| {
        let request = gateway.client.post(format!("{}/admin/cache/invalidate", gateway.admin)).body(body.to_string());
        async move {
            let response = request.send().await.expect("send");
            (response.status().as_u16(), response.json::<Value>().await.expect("json"))
        }
    };
    let (status, answer) = invalidate(json!({"routes": ["GET /v1/{parent=shelves/*}/books"]})).await;
    assert_eq!((status, &answer["invalidated"]), (200, &json!(1)), "{answer}");
    assert_eq!(x_cache(&get_with(&gateway, list, &[]).await.2), "MISS");
    assert_eq!(x_cache(&get_with(&gateway, book, &bearer("ada")).await.2), "HIT", "other routes keep theirs");
    let (status, answer) = invalidate(json!({"routes": ["GET /v9/nothing"]})).await;
    assert_eq!(status, 400);
    assert_eq!(answer["message"], "routes[0]: no REST route is `GET /v9/nothing` (`switchyard routes` lists them)");
    gateway.shutdown().await;
}

#[test]
fn bad_cache_rules_are_refused_naming_the_key() {
    crate::support::assert_config_refused(&[
        ("[[cache.rules]]\nmethods = [\"*\"]\nttl = \"0s\"\n", "cache.rules[0].ttl", "longer than zero"),
        ("[[cache.rules]]\nttl = \"1m\"\n", "cache.rules[0].methods", "caches nothing"),
        ("[[cache.rules]]\nfields = [\"nodot\"]\nttl = \"1m\"\n", "cache.rules[0].fields[0]", "is not `Type.field`"),
    ]);
}

#[tokio::test]
async fn writes_make_what_they_are_configured_to_invalidate_stale() {
    let config = format!(
        "[[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nttl = \"1h\"\nscope = \"public\"\n\
         [[cache.invalidations]]\nmethods = [\"catalog.v1.Catalog/UpdateBook\"]\ndrop_methods = [\"catalog.v1.Catalog/GetBook\"]\n\
         [[cache.invalidations]]\nmethods = [\"catalog.v1.Catalog/DeleteBook\"]\ndrop_types = [\"Book\"]\n{BACKEND}"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let book = "/v1/shelves/1/books/1";
    let read = || async { x_cache(&get_with(&gateway, book, &[]).await.2).to_owned() };
    assert_eq!((read().await, read().await), ("MISS".to_owned(), "HIT".to_owned()));
    // A REST write: the next read is fetched, and shows the change.
    let (status, body, _) = gateway.call("PATCH", book, "{\"title\":\"Renamed\"}").await;
    assert_eq!(status, 200, "{body}");
    let (_, answer, headers) = get_with(&gateway, book, &[]).await;
    assert_eq!((x_cache(&headers), &answer["title"]), ("MISS", &json!("Renamed")));
    assert_eq!(read().await, "HIT");
    // A GraphQL mutation of another method, invalidating by type.
    let answer = gateway.graphql("mutation { deleteBook(name: \"shelves/1/books/2\") }").await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(read().await, "MISS");
    assert_eq!(gateway.backend().calls("GetBook"), 3);
    gateway.shutdown().await;
}

#[tokio::test]
async fn whole_graphql_responses_are_cached_when_every_part_is() {
    let config = "[[cache.rules]]\nfields = [\"Query.listBooks\", \"Book.writer\"]\nttl = \"1h\"\nscope = \"public\"\n\
                  [[cache.invalidations]]\nmethods = [\"catalog.v1.Catalog/CreateBook\"]\ndrop_types = [\"Book\"]\n";
    let (gateway, _dir) = TestGateway::stitched_with_config(config).await;
    let post = |query: &str| {
        gateway
            .client
            .post(format!("{}/graphql", gateway.base))
            .header("content-type", "application/json")
            .body(json!({ "query": query }).to_string())
            .send()
    };
    let query = "{ listBooks(parent: \"shelves/1\") { books { title writer { name } } } }";
    let mut answers = Vec::new();
    for expected in ["MISS", "HIT", "HIT"] {
        let response = post(query).await.expect("send");
        assert_eq!(x_cache(response.headers()), expected);
        answers.push(response.json::<Value>().await.expect("json"));
    }
    assert_eq!(answers[0], answers[2]);
    assert_eq!((gateway.backend().calls("ListBooks"), gateway.authors().requests()), (1, 1));
    // Other variables are another entry.
    let other = "{ listBooks(parent: \"shelves/2\") { books { title writer { name } } } }";
    assert_eq!(x_cache(post(other).await.expect("send").headers()), "MISS");
    // A part without a rule (Author.books) makes the whole uncacheable; its parts still are.
    let partly = "{ listBooks(parent: \"shelves/1\") { books { writer { name books { title } } } } }";
    let response = post(partly).await.expect("send");
    assert_eq!(x_cache(response.headers()), "(none)");
    let answer: Value = response.json().await.expect("json");
    assert!(answer.get("errors").is_none(), "{answer}");
    // A write of a Book drops the cached responses that hold books.
    let (status, _, _) = gateway.call("POST", "/v1/shelves/1/books", "{\"title\":\"New\"}").await;
    assert_eq!(status, 200);
    let response = post(query).await.expect("send");
    assert_eq!(x_cache(response.headers()), "MISS");
    let answer: Value = response.json().await.expect("json");
    let titles: Vec<&str> = answer["data"]["listBooks"]["books"]
        .as_array()
        .expect("books")
        .iter()
        .filter_map(|b| b["title"].as_str())
        .collect();
    assert!(titles.contains(&"New"), "the fresh answer has the new book: {titles:?}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_backends_cache_control_is_honoured() {
    // The authors service marks one author's record `private, max-age=300`.
    for (scope, expected_requests) in [("public", 2), ("private", 1)] {
        let config = format!("[[cache.rules]]\nfields = [\"Query.author\"]\nttl = \"1h\"\nscope = \"{scope}\"\n");
        let (gateway, _dir) = TestGateway::stitched_with_config(&config).await;
        for _ in 0..2 {
            let answer = gateway.graphql("{ author(id: \"1\") { name } }").await;
            assert_eq!(answer["data"]["author"]["name"], "Ursula K. Le Guin", "{answer}");
        }
        assert_eq!(
            gateway.authors().requests(),
            expected_requests,
            "{scope} rule: a private answer is never stored under a shared key"
        );
        gateway.shutdown().await;
    }
}

#[tokio::test]
async fn a_stale_answer_is_served_while_one_background_fetch_refreshes_it() {
    let config = format!(
        "[[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nttl = \"300ms\"\nstale_while_revalidate = \"1h\"\nscope = \"public\"\n{BACKEND}"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let book = "/v1/shelves/1/books/1";
    assert_eq!(x_cache(&get_with(&gateway, book, &[]).await.2), "MISS");
    // Past the TTL: the old answer at once, and one refresh behind it (not one per request;
    // the backend is made slow so the refresh is still running for the next requests).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    gateway.backend().set_latency(std::time::Duration::from_secs(2));
    for _ in 0..3 {
        let (status, body, headers) = get_with(&gateway, book, &[]).await;
        assert_eq!((status, x_cache(&headers)), (200, "STALE"), "{body}");
        assert_eq!(body["title"], "The Left Hand of Darkness");
    }
    let started = tokio::time::Instant::now();
    loop {
        let (_, _, headers) = get_with(&gateway, book, &[]).await;
        if x_cache(&headers) == "HIT" {
            break;
        }
        assert!(started.elapsed() < crate::support::HANG, "the refresh never landed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.backend().calls("GetBook"), 2, "one fetch, one background refresh");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_stale_rest_source_answer_is_served_while_it_is_refreshed() {
    let config = "[[cache.rules]]\nfields = [\"Book.writer\"]\nttl = \"300ms\"\nstale_while_revalidate = \"1h\"\nscope = \"public\"\n";
    let (gateway, _dir) = TestGateway::stitched_with_config(config).await;
    let query = "{ getBook(name: \"shelves/1/books/1\") { writer { name } } }";
    assert_eq!(gateway.graphql(query).await["data"]["getBook"]["writer"]["name"], "Ursula K. Le Guin");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // Past the TTL, with a slow source: every query is answered from the stale entry, and one
    // refresh runs behind them (without the stale window, each would call the source).
    gateway.authors().set_latency(std::time::Duration::from_secs(1));
    for _ in 0..3 {
        let answer = gateway.graphql(query).await;
        assert_eq!(answer["data"]["getBook"]["writer"]["name"], "Ursula K. Le Guin", "{answer}");
    }
    let started = tokio::time::Instant::now();
    while gateway.authors().requests() < 2 {
        assert!(started.elapsed() < crate::support::HANG, "the refresh never reached the source");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.authors().requests(), 2, "one fetch, one background refresh");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_redis_second_level_is_shared_by_gateway_instances() {
    let redis = crate::support::RedisServer::start().await;
    let config = format!(
        "[cache]\nredis = true\n[redis]\nurls = [\"{}\"]\nkey_prefix = \"shared\"\n\
         [[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nttl = \"1h\"\nscope = \"public\"\n\
         [[cache.invalidations]]\nmethods = [\"catalog.v1.Catalog/UpdateBook\"]\ndrop_methods = [\"catalog.v1.Catalog/GetBook\"]\n{BACKEND}",
        redis.url
    );
    let written = |pattern: &'static str| {
        let url = redis.url.clone();
        async move {
            let started = tokio::time::Instant::now();
            loop {
                let keys = crate::support::redis_command(&url, &["KEYS", pattern]).await;
                if !keys.starts_with("*0") {
                    return;
                }
                assert!(started.elapsed() < crate::support::HANG, "nothing written under {pattern}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    let book = "/v1/shelves/1/books/1";
    let (a, _a) = TestGateway::demo_with_config(&config).await;
    assert_eq!(x_cache(&get_with(&a, book, &[]).await.2), "MISS");
    written("shared:cache:*").await;
    // Another instance finds it in Redis: its backend is never called.
    let (b, _b) = TestGateway::demo_with_config(&config).await;
    let (status, body, headers) = get_with(&b, book, &[]).await;
    assert_eq!((status, x_cache(&headers)), (200, "HIT"), "{body}");
    assert_eq!(body["title"], "The Left Hand of Darkness");
    assert_eq!((a.backend().calls("GetBook"), b.backend().calls("GetBook")), (1, 0));
    // A write on one instance makes the shared answer stale for every instance's Redis reads.
    let (status, _, _) = a.call("PATCH", book, "{\"title\":\"Renamed\"}").await;
    assert_eq!(status, 200);
    written("shared:cache-tag:*").await;
    let (c, _c) = TestGateway::demo_with_config(&config).await;
    assert_eq!(x_cache(&get_with(&c, book, &[]).await.2), "MISS");
    assert_eq!(c.backend().calls("GetBook"), 1);
    for gateway in [a, b, c] {
        gateway.shutdown().await;
    }
}

#[tokio::test]
async fn cache_control_in_schema_files_caches_a_field() {
    // The demo's schema, with `@cacheControl` on the stitched writer.
    let mut schemas = switchyard::demo::demo_schemas();
    schemas[0].text = schemas[0].text.replace(
        "batch: {key: \"{parent.author}\", match: \"name\"})",
        "batch: {key: \"{parent.author}\", match: \"name\"}) @cacheControl(maxAge: 300, scope: PUBLIC)",
    );
    assert!(schemas[0].text.contains("@cacheControl"), "the demo schema changed: update this test");
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let authors = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let sources = switchyard::snapshot::SnapshotSources {
        embedded: vec![switchyard::demo::demo_registration().expect("demo")],
        embedded_schemas: schemas,
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        backends: vec![
            switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] },
            switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec![authors.url()] },
        ],
        ..Default::default()
    };
    let gateway = TestGateway::from_sources(sources, Some(backend)).await;
    let query = "{ listBooks(parent: \"shelves/1\") { books { title writer { name } } } }";
    for _ in 0..3 {
        let answer = gateway.graphql(query).await;
        assert_eq!(answer["data"]["listBooks"]["books"][0]["writer"]["name"], "Ursula K. Le Guin", "{answer}");
    }
    assert_eq!(authors.requests(), 1, "the writer came from the cache after the first query");
    gateway.shutdown().await;
    authors.shutdown().await;
}

/// A tonic backend whose GetBook answers a Book titled with the values of the `x-forwarded-host`
/// and `accept-language` metadata it was sent: an answer that depends on request headers, as a
/// multi-tenant or localised backend's does. Counts its calls.
async fn header_echo_backend() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use switchyard::upstream::grpc_codec::DynamicCodec;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pool = switchyard::registry::merge_registrations(vec![switchyard::demo::demo_registration().expect("demo")])
        .expect("merges")
        .pool;
    let method = pool
        .get_service_by_name("catalog.v1.Catalog")
        .and_then(|s| s.methods().find(|m| m.name() == "GetBook"))
        .expect("GetBook");
    let counted = calls.clone();
    let service = tower::service_fn(move |request: http::Request<axum::body::Body>| {
        let method = method.clone();
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            let output = method.output();
            let handler = tower::service_fn(move |request: tonic::Request<prost_reflect::DynamicMessage>| {
                let value =
                    |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                let title = format!("{} {}", value("x-forwarded-host"), value("accept-language"));
                let mut book = prost_reflect::DynamicMessage::new(output.clone());
                book.set_field_by_name("title", prost_reflect::Value::String(title));
                std::future::ready(Ok::<_, tonic::Status>(tonic::Response::new(book)))
            });
            Ok::<_, std::convert::Infallible>(grpc.unary(handler, request.map(tonic::body::Body::new)).await)
        }
    });
    let router = axum::Router::new().route_service("/catalog.v1.Catalog/GetBook", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), calls)
}

#[tokio::test]
async fn headers_the_backend_is_sent_cannot_poison_a_shared_entry() {
    let (url, calls) = header_echo_backend().await;
    // A public rule, `accept-language` forwarded but not in `cache.vary`: the operator forgot it.
    let config = format!(
        "[headers]\nforward = [\"accept-language\"]\n\
         [[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nttl = \"1h\"\nscope = \"public\"\n\
         [backends.catalog]\nendpoints = [\"{url}\"]\nservices = [\"catalog.v1\"]\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    // Another book over GraphQL: REST's answers, cached under the same call, would be hits.
    let graphql = json!({"query": r#"{ getBook(name: "shelves/1/books/2") { title } }"#}).to_string();
    for via_graphql in [false, true] {
        let before = calls.load(std::sync::atomic::Ordering::SeqCst);
        // (headers sent, the title the backend makes of them, a new backend call)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);
        let table: &[Case] = &[
            (&[("grpc-metadata-x-forwarded-host", "evil.example")], "evil.example -", true),
            // The next client sent nothing: it must not get the attacker's answer.
            (&[], "- -", true),
            (&[("grpc-metadata-x-forwarded-host", "evil.example")], "evil.example -", false),
            (&[("accept-language", "fr")], "- fr", true),
            (&[("accept-language", "en")], "- en", true),
            (&[("accept-language", "fr")], "- fr", false),
            // Headers the backend is not sent do not split the key...
            (&[("x-forwarded-host", "evil.example")], "- -", false),
            // ...and neither do the per-request ids it is sent.
            (
                &[("x-request-id", "one"), ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
                "- -",
                false,
            ),
            // The same two values in the other order are the same key.
            (&[("accept-language", "fr"), ("grpc-metadata-x-forwarded-host", "a")], "a fr", true),
            (&[("grpc-metadata-x-forwarded-host", "a"), ("accept-language", "fr")], "a fr", false),
        ];
        let mut expected_calls = before;
        for (headers, title, fetched) in table {
            let mut request = if via_graphql {
                gateway
                    .client
                    .post(format!("{}/graphql", gateway.base))
                    .header("content-type", "application/json")
                    .body(graphql.clone())
            } else {
                gateway.client.get(format!("{}/v1/shelves/1/books/1", gateway.base))
            };
            for (name, value) in *headers {
                request = request.header(*name, *value);
            }
            let answer: Value = request.send().await.expect("send").json().await.expect("json");
            let got = if via_graphql { &answer["data"]["getBook"]["title"] } else { &answer["title"] };
            assert_eq!(got, *title, "graphql={via_graphql} {headers:?}: {answer}");
            expected_calls += usize::from(*fetched);
            assert_eq!(
                calls.load(std::sync::atomic::Ordering::SeqCst),
                expected_calls,
                "graphql={via_graphql} {headers:?}"
            );
        }
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn errors_are_never_cached() {
    let config = format!(
        "[[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nttl = \"1h\"\nscope = \"public\"\n{BACKEND}"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    // A NOT_FOUND, asked twice, reaches the backend twice and is never a HIT.
    for round in 1..=2 {
        let (status, body, headers) = get_with(&gateway, "/v1/shelves/9/books/9", &[]).await;
        assert_eq!(status, 404, "{body}");
        assert_ne!(x_cache(&headers), "HIT", "round {round}");
        assert_eq!(gateway.backend().calls("GetBook"), round);
    }
    // In GraphQL the failed field is fetched again while its healthy sibling is a hit, and the
    // whole answer, having errors, is never stored.
    let query =
        r#"{ ok: getBook(name: "shelves/1/books/1") { title } missing: getBook(name: "shelves/9/books/9") { title } }"#;
    for (round, calls) in [(1, 4), (2, 5)] {
        let answer = gateway.graphql(query).await;
        assert_eq!(answer["errors"][0]["path"], json!(["missing"]), "round {round}: {answer}");
        assert!(answer["data"]["ok"]["title"].is_string(), "{answer}");
        assert_eq!(gateway.backend().calls("GetBook"), calls, "round {round}");
    }
    gateway.shutdown().await;
}
