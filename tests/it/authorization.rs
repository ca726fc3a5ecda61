//! Authorization against the demo: rules on methods, REST routes, GraphQL fields and types,
//! with scopes and claims; denied calls never reach a backend, whichever protocol they came
//! by, and verified claims reach backends as headers that clients cannot forge.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{TestGateway, demo_snapshot, get_with};

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

fn token(claims: Value) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 600;
    let mut all = json!({"sub": "ada", "aud": "switchyard", "iss": "https://issuer.test", "exp": exp});
    for (key, value) in claims.as_object().expect("object") {
        all[key] = value.clone();
    }
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &all, &key).expect("sign")
}

fn provider() -> String {
    format!(
        "[[auth.jwt]]\nname = \"corp\"\nissuer = \"https://issuer.test\"\naudiences = [\"switchyard\"]\n\
         keys = [{{ algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n"
    )
}

async fn graphql(gateway: &TestGateway, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .body(json!({ "query": query }).to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

#[tokio::test]
async fn one_rule_on_a_method_holds_through_rest_graphql_and_grpc() {
    let config = format!(
        "{}[[authorization.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nscopes_any = [\"books:read\", \"admin\"]\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n",
        provider()
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let reader = token(json!({"scope": "books:read"}));
    let stranger = token(json!({"scope": "profile"}));
    let required = "catalog.v1.Catalog/GetBook requires authentication";
    let scoped = "catalog.v1.Catalog/GetBook requires one of the scopes `books:read`, `admin`";

    // REST: 401 with a challenge for anonymous clients, 403 for the wrong scope.
    let (status, body, headers) = get_with(&gateway, "/v1/shelves/1/books/1", &[]).await;
    assert_eq!((status, body["message"].as_str()), (401, Some(required)), "{body}");
    assert!(headers["www-authenticate"].to_str().expect("ascii").starts_with("Bearer"));
    let (status, body, _) = get_with(&gateway, "/v1/shelves/1/books/1", &bearer(&stranger)).await;
    assert_eq!((status, body["message"].as_str(), body["code"].as_i64()), (403, Some(scoped), Some(7)), "{body}");
    let (status, body, _) = get_with(&gateway, "/v1/shelves/1/books/1", &bearer(&reader)).await;
    assert_eq!(status, 200, "{body}");
    // Another method has no rule.
    let (status, _, _) = get_with(&gateway, "/v1/shelves/1/books", &[]).await;
    assert_eq!(status, 200);

    // GraphQL: the root field is null with a FORBIDDEN error at its path.
    let query =
        "{ getBook(name: \"shelves/1/books/1\") { title } listBooks(parent: \"shelves/2\") { books { title } } }";
    // Messages name what the client asked for: the field.
    let field_required = "Query.getBook requires authentication";
    let field_scoped = "Query.getBook requires one of the scopes `books:read`, `admin`";
    for (who, token, message) in
        [("anonymous", None, field_required), ("stranger", Some(stranger.as_str()), field_scoped)]
    {
        let (status, body) = graphql(&gateway, query, token).await;
        assert_eq!(status, 200, "{who}: {body}");
        assert_eq!(body["data"]["getBook"], Value::Null, "{who}: {body}");
        assert_eq!(body["data"]["listBooks"]["books"][0]["title"], "The Selfish Gene", "{who}: the rest runs");
        assert_eq!(body["errors"][0]["message"], message, "{who}");
        assert_eq!(body["errors"][0]["path"], json!(["getBook"]), "{who}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{who}");
    }
    let (_, body) = graphql(&gateway, query, Some(&reader)).await;
    assert_eq!(body["data"]["getBook"]["title"], "The Left Hand of Darkness", "{body}");

    // gRPC: UNAUTHENTICATED, then PERMISSION_DENIED, then through.
    let refused = crate::support::grpc_get_book(&gateway, &[]).await.expect_err("anonymous");
    assert_eq!((refused.code(), refused.message()), (tonic::Code::Unauthenticated, required));
    let refused = crate::support::grpc_get_book(&gateway, &bearer(&stranger)).await.expect_err("stranger");
    assert_eq!((refused.code(), refused.message()), (tonic::Code::PermissionDenied, scoped));
    crate::support::grpc_get_book(&gateway, &bearer(&reader)).await.expect("reader");

    assert_eq!(gateway.backend().calls("GetBook"), 3, "only the three allowed calls reached the backend");
    gateway.shutdown().await;
}

#[tokio::test]
async fn denied_fields_are_null_with_errors_and_nothing_is_fetched_for_them() {
    let config = format!(
        "{}[[authorization.rules]]\nfields = [\"Book.rating\"]\nscopes_all = [\"staff\"]\n\
         [[authorization.rules]]\ntypes = [\"Author\"]\nclaims = [{{ claim = \"org.teams\", contains = \"editorial\" }}]\n",
        provider()
    );
    let (gateway, _dir) = TestGateway::stitched_with_config(&config).await;
    let authors = || gateway.authors().requests();
    let query = "{ listBooks(parent: \"shelves/1\") { books { title rating writer { name } } } }";

    let (status, body) = graphql(&gateway, query, Some(&token(json!({"scope": "books:read"})))).await;
    assert_eq!(status, 200, "{body}");
    let books = body["data"]["listBooks"]["books"].as_array().expect("books");
    assert_eq!(books.len(), 2, "{body}");
    for (i, book) in books.iter().enumerate() {
        assert!(book["title"].is_string(), "{body}");
        assert_eq!((&book["rating"], &book["writer"]), (&Value::Null, &Value::Null), "{body}");
        let at = |field: &str| {
            body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .find(|e| e["path"] == json!(["listBooks", "books", i, field]))
                .cloned()
        };
        let rating = at("rating").unwrap_or_else(|| panic!("no rating error for book {i}: {body}"));
        assert_eq!(rating["message"], "Book.rating requires the scope `staff`");
        assert_eq!(rating["extensions"]["code"], "FORBIDDEN");
        let writer = at("writer").unwrap_or_else(|| panic!("no writer error for book {i}: {body}"));
        assert_eq!(writer["message"], "Book.writer requires the claim `org.teams` to contain `editorial`");
    }
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(4), "{body}");
    assert_eq!(authors(), 0, "the authors backend was never called for a denied field");

    // The same client with the scope and the claim sees everything; one batched authors call.
    let insider = token(json!({"scope": "staff", "org": {"teams": ["editorial", "web"]}}));
    let (_, body) = graphql(&gateway, query, Some(&insider)).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["listBooks"]["books"][0]["rating"], 46);
    assert_eq!(body["data"]["listBooks"]["books"][0]["writer"]["name"], "Ursula K. Le Guin", "{body}");
    assert_eq!(authors(), 1);

    // A root field of the denied type: null, and no call.
    let (_, body) = graphql(&gateway, "{ author(id: \"le-guin\") { name } }", None).await;
    assert_eq!(body["data"]["author"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["message"], "Query.author requires authentication");
    assert_eq!(authors(), 1);
    gateway.shutdown().await;
}

#[tokio::test]
async fn reject_mode_refuses_the_whole_operation_and_routes_have_their_own_rules() {
    let config = format!(
        "{}[authorization]\ngraphql_denied = \"reject\"\n\
         [[authorization.rules]]\nfields = [\"Book.isbn\", \"Mutation.*\"]\nclaims = [{{ claim = \"role\", equals = \"admin\" }}]\n\
         [[authorization.rules]]\nroutes = [\"GET /v1/{{parent=shelves/*}}/books\"]\nclaims = [{{ claim = \"email\", matches = \".*@example\\\\.com\" }}]\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n",
        provider()
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let user = token(json!({"role": "user", "email": "ada@example.com"}));
    let query = "{ listBooks(parent: \"shelves/1\") { books { title isbn } } }";
    let (status, body) = graphql(&gateway, query, Some(&user)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["listBooks", "books", "isbn"]), "{body}");
    assert_eq!(body["errors"][0]["message"], "Book.isbn requires the claim `role` to equal `admin`");
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let mutation = "mutation { deleteBook(name: \"shelves/1/books/2\") }";
    let (status, body) = graphql(&gateway, mutation, Some(&user)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["message"], "Mutation.deleteBook requires the claim `role` to equal `admin`");
    assert_eq!(gateway.backend().calls("ListBooks") + gateway.backend().calls("DeleteBook"), 0);
    let (_, body) = graphql(&gateway, query, Some(&token(json!({"role": "admin"})))).await;
    assert!(body["data"]["listBooks"]["books"][0]["isbn"].is_string(), "{body}");

    // The route rule guards the REST route only; GraphQL's listBooks call of the same method passed.
    let (status, body, _) =
        get_with(&gateway, "/v1/shelves/1/books", &bearer(&token(json!({"email": "x@evil.test"})))).await;
    assert_eq!(status, 403, "{body}");
    let pattern = "GET /v1/{parent=shelves/*}/books requires the claim `email` to match `.*@example\\.com`";
    assert_eq!(body["message"], pattern);
    let (status, _, _) = get_with(&gateway, "/v1/shelves/1/books", &bearer(&user)).await;
    assert_eq!(status, 200);
    gateway.shutdown().await;
}

#[tokio::test]
async fn verified_claims_reach_backends_as_headers_clients_cannot_forge() {
    let config = format!(
        "[auth]\nforward = [{{ claim = \"sub\", header = \"x-user-id\" }}, {{ claim = \"groups\", header = \"x-groups\" }}]\n\
         {}[backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n\
         [headers]\nforward = [\"x-user-id\"]\n",
        provider()
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let ada = token(json!({"groups": ["eng", "ops"]}));
    let seen = |header: &str| {
        gateway
            .backend()
            .last_headers("GetBook")
            .and_then(|h| h.get(header).map(|v| v.to_str().expect("ascii").to_owned()))
    };
    let forged = |extra: Vec<(&'static str, String)>| {
        let mut headers = vec![("x-user-id", "mallory".to_owned()), ("grpc-metadata-x-user-id", "mallory".to_owned())];
        headers.extend(extra);
        headers
    };

    // REST, with forged copies in a plain header and in grpc-metadata-*.
    let (status, body, _) = get_with(&gateway, "/v1/shelves/1/books/1", &forged(bearer(&ada))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen("x-user-id").as_deref(), Some("ada"));
    assert_eq!(seen("x-groups").as_deref(), Some("eng,ops"));
    let all = gateway.backend().last_headers("GetBook").expect("headers");
    assert_eq!(all.get_all("x-user-id").iter().count(), 1, "one value, the gateway's");
    // Anonymous: the forged copies are removed and nothing is set.
    get_with(&gateway, "/v1/shelves/1/books/1", &forged(Vec::new())).await;
    assert_eq!(seen("x-user-id"), None);

    // GraphQL.
    let (_, body) = graphql(&gateway, "{ getBook(name: \"shelves/1/books/1\") { title } }", Some(&ada)).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(seen("x-user-id").as_deref(), Some("ada"));

    // gRPC passthrough forwards all metadata, except the copies of these headers.
    crate::support::grpc_get_book(
        &gateway,
        &[("x-user-id", "mallory".into()), ("authorization", format!("Bearer {ada}"))],
    )
    .await
    .expect("call");
    assert_eq!(seen("x-user-id").as_deref(), Some("ada"));
    crate::support::grpc_get_book(&gateway, &[("x-user-id", "mallory".into())]).await.expect("anonymous call");
    assert_eq!(seen("x-user-id"), None);
    gateway.shutdown().await;
}

#[test]
fn bad_authorization_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = [
        ("[[authorization.rules]]\nmethods = [\"*\"]\n", "authorization.rules[0].authenticated", "requires nothing"),
        ("[[authorization.rules]]\nauthenticated = true\n", "authorization.rules[0].methods", "guards nothing"),
        (
            "[[authorization.rules]]\nfields = [\"price\"]\nauthenticated = true\n",
            "authorization.rules[0].fields[0]",
            "is not `Type.field`",
        ),
        (
            "[[authorization.rules]]\nmethods = [\"*\"]\nclaims = [{ claim = \"a\", equals = \"b\", matches = \"c\" }]\n",
            "authorization.rules[0].claims[0]",
            "exactly one of",
        ),
        (
            "[[authorization.rules]]\nmethods = [\"*\"]\nclaims = [{ claim = \"a\", matches = \"(\" }]\n",
            "authorization.rules[0].claims[0]",
            "not a regular expression",
        ),
        ("[auth]\nforward = [{ claim = \"sub\", header = \"grpc-status\" }]\n", "auth.forward[0].header", "owns"),
        (
            "[auth]\nforward = [{ claim = \"sub\", header = \"bad header\" }]\n",
            "auth.forward[0].header",
            "not a header",
        ),
    ];
    let build = |text: &str| demo_snapshot(dir.path(), text);
    for (text, key, message) in table {
        let problems = build(text).expect_err(text);
        let found = problems.iter().find(|p| p.path == key).unwrap_or_else(|| panic!("{text}: {problems:?}"));
        assert!(found.message.contains(message), "{text}: {found:?}");
    }
    // A pattern that matches nothing is a warning: the snapshot is served.
    let snapshot =
        build("[[authorization.rules]]\nmethods = [\"gone.v1.Gone/*\"]\nauthenticated = true\n").expect("served");
    let warning = snapshot.warnings.iter().find(|p| p.path == "authorization.rules[0].methods[0]").expect("warned");
    assert_eq!(warning.message, "no registered method matches `gone.v1.Gone/*`");
}

#[tokio::test]
async fn subscriptions_over_websocket_are_authorized_per_operation() {
    use crate::subscriptions::{connect, recv, send};
    let config = format!(
        "{}[[authorization.rules]]\nmethods = [\"catalog.v1.Catalog/WatchBooks\"]\nscopes_all = [\"books:watch\"]\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n",
        provider()
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let subscribe = |id: &str| {
        let query = "subscription { watchBooks(parent: \"shelves/1\") { kind book { title } } }";
        json!({"id": id, "type": "subscribe", "payload": {"query": query}})
    };
    for (scope, allowed) in [("books:read", false), ("books:read books:watch", true)] {
        let mut socket = connect(&gateway, Some("graphql-transport-ws")).await;
        let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", token(json!({"scope": scope})))}});
        send(&mut socket, init).await;
        assert_eq!(recv(&mut socket).await, json!({"type": "connection_ack"}));
        send(&mut socket, subscribe("w")).await;
        if allowed {
            // Subscribed: once the backend stream is open, a created book arrives as an event.
            let opened = tokio::time::Instant::now();
            while gateway.backend().watchers() == 0 {
                assert!(opened.elapsed() < crate::support::HANG, "the backend stream never opened");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            let (status, _, _) = gateway.call("POST", "/v1/shelves/1/books", "{\"title\":\"Watched\"}").await;
            assert_eq!(status, 200);
            let event = recv(&mut socket).await;
            assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], "Watched", "{event}");
        } else {
            let refused = recv(&mut socket).await;
            assert_eq!(refused["type"], "error", "{refused}");
            assert_eq!(refused["payload"][0]["message"], "Subscription.watchBooks requires the scope `books:watch`");
            assert_eq!(refused["payload"][0]["extensions"]["code"], "FORBIDDEN");
            assert_eq!(gateway.backend().watchers(), 0, "no stream was opened");
        }
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn consistent_hashing_on_a_claim_keeps_a_user_on_one_endpoint() {
    let replicas = switchyard::demo::start_demo_backend_replicas(3).await.expect("replicas");
    let endpoints: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.url())).collect();
    let config = format!(
        "{}[backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\nbalancer = \"maglev\"\nhash_on = {{ claim = \"sub\" }}\n",
        provider(),
        endpoints.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    let calls = || replicas.iter().map(|r| r.calls("GetBook")).collect::<Vec<_>>();
    // One user, from REST, GraphQL and gRPC alike: every call on one endpoint.
    let ada = token(json!({"sub": "ada"}));
    for _ in 0..10 {
        assert_eq!(get_with(&gateway, "/v1/shelves/1/books/1", &bearer(&ada)).await.0, 200);
        let (_, body) = graphql(&gateway, "{ getBook(name: \"shelves/1/books/1\") { title } }", Some(&ada)).await;
        assert!(body.get("errors").is_none(), "{body}");
        crate::support::grpc_get_book(&gateway, &bearer(&ada)).await.expect("grpc");
    }
    let counts = calls();
    assert_eq!(counts.iter().filter(|c| **c == 30).count(), 1, "one endpoint took all of ada's calls: {counts:?}");
    // Many users spread over the endpoints.
    for user in 0..90 {
        let token = token(json!({"sub": format!("user-{user}")}));
        assert_eq!(get_with(&gateway, "/v1/shelves/1/books/1", &bearer(&token)).await.0, 200);
    }
    let spread: Vec<usize> = calls().iter().zip(&counts).map(|(now, before)| now - before).collect();
    assert!(spread.iter().all(|c| *c >= 10), "90 users spread over three endpoints: {spread:?}");
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

/// A field rule holds however the field is reached: an alias, a named fragment (nested two
/// deep), an inline fragment, the same field twice under different aliases, a batch, and a
/// persisted query sent by its hash alone. Each time the field is null with FORBIDDEN at its
/// own response path, and the rest of the answer is there.
#[tokio::test]
async fn a_field_rule_cannot_be_bypassed_through_aliases_fragments_batches_or_persisted_queries() {
    let config =
        format!("{}[[authorization.rules]]\nfields = [\"Book.rating\"]\nscopes_all = [\"staff\"]\n", provider());
    let (gateway, _dir) = TestGateway::stitched_with_config(&config).await;
    let reader = token(json!({"scope": "books:read"}));
    let book = "getBook(name: \"shelves/1/books/1\")";
    // (query, the path of each denied field)
    let table: Vec<(String, Vec<Value>)> = vec![
        (format!("{{ b: {book} {{ title r: rating }} }}"), vec![json!(["b", "r"])]),
        (
            format!(
                "{{ {book} {{ ...Outer }} }} fragment Outer on Book {{ title ...Inner }} fragment Inner on Book {{ rating }}"
            ),
            vec![json!(["getBook", "rating"])],
        ),
        (format!("{{ {book} {{ ... on Book {{ title rating }} }} }}"), vec![json!(["getBook", "rating"])]),
        (
            format!("{{ {book} {{ a: rating b: rating title }} }}"),
            vec![json!(["getBook", "a"]), json!(["getBook", "b"])],
        ),
        (
            format!("{{ x: {book} {{ title }} y: {book} {{ ... @include(if: true) {{ rating }} }} }}"),
            vec![json!(["y", "rating"])],
        ),
    ];
    for (query, denied) in &table {
        let (status, body) = graphql(&gateway, query, Some(&reader)).await;
        assert_eq!(status, 200, "{query}: {body}");
        let errors = body["errors"].as_array().cloned().unwrap_or_default();
        let paths: Vec<Value> = errors.iter().map(|e| e["path"].clone()).collect();
        assert_eq!(&paths, denied, "{query}: {body}");
        assert!(errors.iter().all(|e| e["extensions"]["code"] == "FORBIDDEN"), "{query}: {body}");
        assert!(body.to_string().contains("The Left Hand of Darkness"), "the rest is answered: {body}");
        assert!(!body.to_string().contains("46"), "{query}: the rating leaked: {body}");
    }
    // A batch: each operation is authorized on its own.
    let batch = json!([{ "query": table[0].0 }, { "query": table[2].0 }]);
    let response = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {reader}"))
        .body(batch.to_string())
        .send()
        .await
        .expect("send");
    let answers: Value = response.json().await.expect("json");
    assert_eq!(answers.as_array().map(Vec::len), Some(2), "{answers}");
    assert!(!answers.to_string().contains("46"), "the rating leaked in a batch: {answers}");
    // A persisted query: registered by a client allowed to see the field, then sent by its hash
    // alone by one that is not.
    let query = format!("{{ {book} {{ title rating }} }}");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(query.as_bytes()));
    let persisted = |with_query: bool, bearer: String| {
        let mut body = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
        if with_query {
            body["query"] = json!(query);
        }
        gateway
            .client
            .post(format!("{}/graphql", gateway.base))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {bearer}"))
            .body(body.to_string())
            .send()
    };
    let staff: Value =
        persisted(true, token(json!({"scope": "staff"}))).await.expect("send").json().await.expect("json");
    assert_eq!(staff["data"]["getBook"]["rating"], 46, "{staff}");
    let by_hash: Value = persisted(false, reader.clone()).await.expect("send").json().await.expect("json");
    assert_eq!(by_hash["data"]["getBook"]["rating"], Value::Null, "{by_hash}");
    assert_eq!(by_hash["errors"][0]["extensions"]["code"], "FORBIDDEN", "{by_hash}");
    gateway.shutdown().await;
}
