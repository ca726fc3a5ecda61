//! GraphQL over HTTP against the demo backend: selections, variables, fragments, directives,
//! partial failures with paths and codes, mutation order, validation errors in the spec's
//! wording with locations, and the GraphQL-over-HTTP media types and methods.

use serde_json::{Value, json};

use crate::support::TestGateway;

async fn post(gateway: &TestGateway, body: Value, accept: Option<&str>) -> (u16, String, Value) {
    let mut request = gateway.client.post(format!("{}/graphql", gateway.base)).json(&body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let media = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, media, response.json().await.expect("json"))
}

#[tokio::test]
async fn queries_select_alias_spread_and_skip() {
    let gateway = TestGateway::demo().await;
    let query = r#"
        query Books($name: String!, $withRating: Boolean!) {
          first: getBook(name: $name) { ...Basics rating @include(if: $withRating) genre }
          second: getBook(name: "shelves/1/books/2") { ... on Book { title } tags __typename }
          listBooks(parent: "shelves/1", pageSize: 1) { books { name labels { key value } } nextPageToken totalSize }
          __typename
        }
        fragment Basics on Book { title isbn publishTime }
    "#;
    let body = json!({"query": query, "variables": {"name": "shelves/1/books/1", "withRating": false}});
    let (status, media, answer) = post(&gateway, body, None).await;
    assert_eq!((status, media.as_str()), (200, "application/json"));
    assert_eq!(
        answer,
        json!({"data": {
            "first": {"title": "The Left Hand of Darkness", "isbn": "9780441478125", "publishTime": "1968-12-31T18:00:00Z", "genre": "FICTION"},
            "second": {"title": "A Wizard of Earthsea", "tags": ["classic"], "__typename": "Book"},
            "listBooks": {"books": [{"name": "shelves/1/books/1", "labels": []}], "nextPageToken": "1", "totalSize": "2"},
            "__typename": "Query"
        }})
    );
    let keys: Vec<&String> = answer["data"]["first"].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["title", "isbn", "publishTime", "genre"], "selection order is kept");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_failing_root_field_is_null_with_an_error_at_its_path() {
    let gateway = TestGateway::demo().await;
    let query = r#"{ ok: getBook(name: "shelves/2/books/1") { title } missing: getBook(name: "shelves/9/books/9") { title }
                    bad: listBooks(parent: "shelves/1", pageToken: "zz") { totalSize } }"#;
    let (status, _, answer) = post(&gateway, json!({"query": query}), None).await;
    assert_eq!(status, 200);
    assert_eq!(answer["data"], json!({"ok": {"title": "The Selfish Gene"}, "missing": null, "bad": null}));
    let errors = answer["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0],
        json!({"message": "book `shelves/9/books/9` does not exist", "locations": [{"line": 1, "column": 52}], "path": ["missing"], "extensions": {"code": "NOT_FOUND"}})
    );
    assert_eq!(errors[1]["path"], json!(["bad"]));
    assert_eq!(errors[1]["extensions"]["code"], "BAD_USER_INPUT");

    let query = r#"{ a: getBook(name: "shelves/1/books/1") { title } b: listBooks(parent: "shelves/1", pageSize: "many") { totalSize } }"#;
    let (_, _, answer) = post(&gateway, json!({"query": query}), None).await;
    assert_eq!(answer["data"]["b"], Value::Null);
    assert_eq!(answer["data"]["a"]["title"], "The Left Hand of Darkness");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{answer}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn mutations_run_in_document_order_with_input_objects() {
    let gateway = TestGateway::demo().await;
    let query = r#"mutation {
        one: createBook(parent: "shelves/50", book: {title: "First", isbn: "9007199254740993", genre: POETRY, labels: [{key: "k", value: "v"}]}) { name isbn genre labels { key value } }
        two: createBook(parent: "shelves/50", book: {title: "Second"}) { name }
    }"#;
    let (status, _, answer) = post(&gateway, json!({"query": query}), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["data"]["one"],
        json!({"name": "shelves/50/books/n1", "isbn": "9007199254740993", "genre": "POETRY", "labels": [{"key": "k", "value": "v"}]})
    );
    assert_eq!(answer["data"]["two"]["name"], "shelves/50/books/n2", "serial: the second runs after the first");
    gateway.shutdown().await;
}

#[tokio::test]
async fn invalid_documents_are_refused_in_the_specs_words() {
    let gateway = TestGateway::demo().await;
    let doubling_cycle = (0..25).fold(String::from("{ ...F0 }\n"), |document, level| {
        document + &format!("fragment F{level} on Query {{ ...F{n} ...F{n} }}\n", n = level + 1)
    }) + "fragment F25 on Query { ...F0 }\n";
    let table: &[(&str, &str)] = &[
        (r#"{ getBook(name: "x") { nope } }"#, "Cannot query field \"nope\" on type \"Book\"."),
        (r#"{ nothing }"#, "Cannot query field \"nothing\" on type \"Query\"."),
        (r#"{ getBook(id: "x") { title } }"#, "Unknown argument \"id\" on field \"getBook\"."),
        (r#"{ getBook(name: "x") }"#, "Field \"getBook\" of type \"Book\" must have a selection of subfields."),
        (
            r#"{ getBook(name: "x") { title { x } } }"#,
            "Field \"title\" must not have a selection since type \"String\" has no subfields.",
        ),
        (r#"{ getBook(name: "x") { ...Missing } }"#, "Unknown fragment \"Missing\"."),
        (
            r#"{ getBook(name: "x") { ...A } } fragment A on Book { ...B } fragment B on Book { ...A }"#,
            "Cannot spread fragment \"A\" within itself via \"B\".",
        ),
        // Fragments that each spread the next twice, closed into a cycle: 2^25 paths to
        // follow, found in one pass over the 26 fragments.
        (&doubling_cycle, "Cannot spread fragment \"F0\" within itself via \"F1\""),
        (
            r#"{ getBook(name: "x") { ...L } } fragment L on ListBooksResponse { totalSize }"#,
            "can never be of type \"ListBooksResponse\"",
        ),
        (r#"{ getBook(name: "x") { title @cached } }"#, "Unknown directive \"@cached\"."),
        (
            r#"query($n: String!) { getBook(name: $n) { title } }"#,
            "Variable \"$n\" of required type \"String!\" was not provided.",
        ),
        (r#"{ getBook(name: $undeclared) { title } }"#, "Variable \"$undeclared\" is not defined."),
        (r#"query A { __typename } query B { __typename }"#, "say which to run with operationName"),
        (r#"{ a: getBook(name: "x") { title } a: listBooks { totalSize } }"#, "Fields \"a\" conflict"),
        (r#"subscription { watchBooks(parent: "shelves/1") { kind } }"#, "subscriptions are served over WebSocket"),
    ];
    for (query, message) in table {
        let (status, media, answer) =
            post(&gateway, json!({"query": query}), Some("application/graphql-response+json")).await;
        assert_eq!((status, media.as_str()), (400, "application/graphql-response+json"), "{query}: {answer}");
        let messages: Vec<&str> =
            answer["errors"].as_array().expect("errors").iter().filter_map(|e| e["message"].as_str()).collect();
        assert!(messages.iter().any(|m| m.contains(message)), "{query}: {messages:?}");
        assert!(answer.get("data").is_none(), "no data for a document that did not run: {answer}");
    }
    let (status, media, answer) = post(&gateway, json!({"query": "{ getBook(name: \"x\") { nope } }"}), None).await;
    assert_eq!((status, media.as_str()), (200, "application/json"), "legacy clients get 200: {answer}");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(answer["errors"][0]["locations"], json!([{"line": 1, "column": 24}]));
    let (status, _, answer) =
        post(&gateway, json!({"query": "{ getBook("}), Some("application/graphql-response+json")).await;
    assert_eq!(status, 400);
    assert_eq!(answer["errors"][0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED");
    gateway.shutdown().await;
}

#[tokio::test]
async fn http_methods_and_media_types() {
    let gateway = TestGateway::demo().await;
    let url = format!("{}/graphql", gateway.base);
    let get = gateway
        .client
        .get(&url)
        .query(&[
            ("query", "query($n: String) { getBook(name: $n) { title } }"),
            ("variables", r#"{"n":"shelves/1/books/2"}"#),
        ])
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 200);
    let answer: Value = get.json().await.expect("json");
    assert_eq!(answer["data"]["getBook"]["title"], "A Wizard of Earthsea");

    let mutation = gateway
        .client
        .get(&url)
        .query(&[("query", "mutation { deleteBook(name: \"shelves/1/books/2\") }")])
        .send()
        .await
        .expect("get");
    assert_eq!(mutation.status().as_u16(), 405, "a mutation over GET");
    assert_eq!(mutation.headers()["allow"], "POST");
    let (status, _, _) =
        post(&gateway, json!({"query": "{ getBook(name: \"shelves/1/books/2\") { title } }"}), None).await;
    assert_eq!(status, 200, "the GET mutation did not run");

    let form = gateway.client.post(&url).header("content-type", "text/plain").body("{}").send().await.expect("post");
    assert_eq!(form.status().as_u16(), 415);
    let put = gateway.client.put(&url).send().await.expect("put");
    assert_eq!(put.status().as_u16(), 405);
    gateway.shutdown().await;

    let unserved = TestGateway::start(None, None).await;
    let (status, _, answer) = post(&unserved, json!({"query": "{ getBook(name: \"x\") { title } }"}), None).await;
    assert_eq!(status, 200);
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAVAILABLE");
    assert_eq!(answer["data"]["getBook"], Value::Null);
    unserved.shutdown().await;
}

#[tokio::test]
async fn a_mutation_without_a_mask_updates_only_the_fields_it_sends() {
    let gateway = TestGateway::demo().await;
    let query =
        r#"mutation { updateBook(book: {name: "shelves/2/books/1", author: "R. Dawkins"}) { title author isbn } }"#;
    let (status, _, answer) = post(&gateway, json!({"query": query}), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["data"]["updateBook"],
        json!({"title": "The Selfish Gene", "author": "R. Dawkins", "isbn": "9780198788607"}),
        "the mask came from the input keys, so the title and isbn were kept: {answer}"
    );
    gateway.shutdown().await;
}

/// The introspection query GraphQL tools send (fragments on __Type, __InputValue and type refs).
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
"#;

#[tokio::test]
async fn introspection_agrees_with_the_generated_sdl() {
    let gateway = TestGateway::demo().await;
    let (status, _, answer) = post(&gateway, json!({"query": INTROSPECTION}), None).await;
    assert_eq!(status, 200);
    assert!(answer.get("errors").is_none(), "{answer}");
    let schema = &answer["data"]["__schema"];
    assert_eq!(schema["queryType"]["name"], "Query");
    assert_eq!(schema["subscriptionType"]["name"], "Subscription");
    let types = schema["types"].as_array().expect("types");

    let sdl = switchyard::schema::generate_schema(
        &switchyard::registry::merge_registrations(vec![switchyard::demo::demo_registration().expect("demo")])
            .expect("merges")
            .pool,
        &["catalog.v1.Catalog".to_owned()],
        &switchyard::config::GraphqlConfig::default(),
    )
    .0
    .to_sdl();
    let document = async_graphql_parser::parse_schema(&sdl).expect("sdl");
    for definition in &document.definitions {
        let async_graphql_parser::types::TypeSystemDefinition::Type(ty) = definition else { continue };
        let name = ty.node.name.node.as_str();
        let found = types.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name} is not introspected"));
        if let async_graphql_parser::types::TypeKind::Object(object) = &ty.node.kind {
            let sdl_fields: Vec<&str> = object.fields.iter().map(|f| f.node.name.node.as_str()).collect();
            let introspected: Vec<&str> =
                found["fields"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
            assert_eq!(sdl_fields, introspected, "{name}");
        }
    }
    let (_, _, answer) = post(
        &gateway,
        json!({"query": "{ __type(name: \"Nope\") { name } b: __type(name: \"Genre\") { kind enumValues { name } } }"}),
        None,
    )
    .await;
    assert_eq!(answer["data"]["__type"], Value::Null);
    assert_eq!(answer["data"]["b"]["kind"], "ENUM");
    assert_eq!(answer["data"]["b"]["enumValues"][1]["name"], "FICTION");
    let (status, _, answer) =
        post(&gateway, json!({"query": "{ __schema { nope } }"}), Some("application/graphql-response+json")).await;
    assert_eq!(status, 400);
    assert_eq!(answer["errors"][0]["message"], "Cannot query field \"nope\" on type \"__Schema\".");
    gateway.shutdown().await;
}

#[tokio::test]
async fn graphiql_is_served_to_browsers_only_when_enabled() {
    let gateway = TestGateway::demo().await;
    let page = gateway
        .client
        .get(format!("{}/graphql", gateway.base))
        .header("accept", "text/html")
        .send()
        .await
        .expect("get");
    assert_eq!(page.status().as_u16(), 400, "off by default: a GET without a query is refused");
    gateway.shutdown().await;

    let (gateway, _dir) = TestGateway::demo_with_config("[graphql]\ngraphiql = true\n").await;
    let page = gateway
        .client
        .get(format!("{}/graphql", gateway.base))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("get");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap_or("").starts_with("text/html"));
    assert!(page.text().await.expect("body").contains("GraphiQL.createFetcher"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn batched_operations_answer_in_order() {
    let gateway = TestGateway::demo().await;
    let batch = json!([
        {"query": "{ getBook(name: \"shelves/1/books/1\") { title } }"},
        {"query": "{ nope }"},
        {"query": "query($n: String) { getBook(name: $n) { title } }", "variables": {"n": "shelves/2/books/1"}},
    ]);
    let (status, _, answer) = post(&gateway, batch, None).await;
    assert_eq!(status, 200);
    let answers = answer.as_array().expect("an array of answers");
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["data"]["getBook"]["title"], "The Left Hand of Darkness");
    assert_eq!(answers[1]["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(answers[2]["data"]["getBook"]["title"], "The Selfish Gene");
    let (status, _, _) = post(&gateway, json!([]), None).await;
    assert_eq!(status, 400);
    let too_many: Vec<Value> = (0..21).map(|_| json!({"query": "{ __typename }"})).collect();
    let (status, _, answer) = post(&gateway, Value::Array(too_many), None).await;
    assert_eq!(status, 400, "{answer}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn automatic_persisted_queries() {
    use sha2::Digest;
    let gateway = TestGateway::demo().await;
    let document = "{ getBook(name: \"shelves/1/books/2\") { title } }";
    let hash = hex::encode(sha2::Sha256::digest(document.as_bytes()));
    let by_hash = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    let (status, _, answer) = post(&gateway, by_hash.clone(), None).await;
    assert_eq!(status, 200, "the APQ protocol answers 200");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(answer["errors"][0]["message"], "PersistedQueryNotFound");

    let wrong =
        json!({"query": "{ __typename }", "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    let (status, _, _) = post(&gateway, wrong, None).await;
    assert_eq!(status, 400, "a hash that does not match its document is refused");

    let register = json!({"query": document, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    let (status, _, answer) = post(&gateway, register, None).await;
    assert_eq!((status, answer["data"]["getBook"]["title"].clone()), (200, json!("A Wizard of Earthsea")));

    let (_, _, answer) = post(&gateway, by_hash, None).await;
    assert_eq!(answer["data"]["getBook"]["title"], "A Wizard of Earthsea", "known by its hash now");
    let extensions =
        serde_json::to_string(&json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})).expect("json");
    let get = gateway
        .client
        .get(format!("{}/graphql", gateway.base))
        .query(&[("extensions", extensions)])
        .send()
        .await
        .expect("get");
    let answer: Value = get.json().await.expect("json");
    assert_eq!(answer["data"]["getBook"]["title"], "A Wizard of Earthsea", "GET with only the hash");
    gateway.shutdown().await;
}

#[tokio::test]
async fn every_limit_refuses_before_any_backend_call() {
    let toml = "[graphql]\nintrospection = false\n[graphql.limits]\nmax_document_bytes = 2000\nmax_tokens = 400\nmax_depth = 3\n\
                max_fields = 40\nmax_aliases = 2\nmax_root_fields = 3\nmax_directives = 1\nmax_cost = 30\n";
    let (gateway, _dir) = TestGateway::demo_with_config(toml).await;
    let bomb = {
        let mut document = String::from("{ ...F0 }\n");
        for level in 0..25 {
            document.push_str(&format!("fragment F{level} on Query {{ ...F{n} ...F{n} }}\n", n = level + 1));
        }
        document + "fragment F25 on Query { __typename }\n"
    };
    let table: Vec<(String, &str)> = vec![
        ("{ __typename ".to_owned() + &" ".repeat(3000) + "}", "max_document_bytes"),
        (format!("{{ {} }}", "a ".repeat(500)), "max_tokens"),
        ("{ listBooks(parent: \"shelves/1\") { books { labels { key } } } }".into(), "max_depth"),
        (bomb, "max_fields"),
        ("{ a: __typename b: __typename c: __typename }".into(), "max_aliases"),
        (
            "{ a: getBook(name: \"x\") { title } getCover(name: \"x\") { data } listBooks { totalSize } __typename }"
                .into(),
            "max_root_fields",
        ),
        ("{ getBook(name: \"x\") @skip(if: false) @include(if: true) { title } }".into(), "max_directives"),
        ("{ __schema { queryType { name } } }".into(), "graphql.introspection"),
        ("{ listBooks(parent: \"shelves/1\") { books { name title author } } }".into(), "estimated cost is 41"),
    ];
    for (query, key) in table {
        let started = std::time::Instant::now();
        let (status, _, answer) =
            post(&gateway, json!({"query": query}), Some("application/graphql-response+json")).await;
        assert_eq!(status, 400, "{key}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(key), "{key}: {message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "hang detector");
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn trusted_documents_run_by_id_and_refuse_the_rest_when_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = "{ getBook(name: \"shelves/1/books/1\") { title } }";
    let manifest = dir.path().join("trusted.json");
    std::fs::write(&manifest, serde_json::to_vec(&json!({"book-one": listed})).expect("json")).expect("write");
    let toml = format!("[graphql.trusted_documents]\nfile = \"{}\"\n", manifest.display());
    let (gateway, _config_dir) = TestGateway::demo_with_config(&toml).await;
    let (status, _, answer) = post(&gateway, json!({"documentId": "book-one"}), None).await;
    assert_eq!((status, answer["data"]["getBook"]["title"].clone()), (200, json!("The Left Hand of Darkness")));
    let (status, _, answer) = post(&gateway, json!({"query": listed}), None).await;
    assert_eq!(status, 200, "the listed text itself is trusted: {answer}");
    let (status, _, answer) = post(&gateway, json!({"query": "{ __typename }"}), None).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let (status, _, _) = post(&gateway, json!({"documentId": "nope"}), None).await;
    assert_eq!(status, 400);
    gateway.shutdown().await;

    let toml = format!("[graphql.trusted_documents]\nfile = \"{}\"\nenforce = false\n", manifest.display());
    let (gateway, _config_dir) = TestGateway::demo_with_config(&toml).await;
    let (status, _, answer) = post(&gateway, json!({"query": "{ __typename }"}), None).await;
    assert_eq!(
        (status, answer["data"]["__typename"].clone()),
        (200, json!("Query")),
        "not enforced: unlisted documents run"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn cached_plans_respect_directive_values_and_bind_other_variables_per_request() {
    let gateway = TestGateway::demo().await;
    let query = "query($n: String, $skip: Boolean!) { getBook(name: $n) { title author @skip(if: $skip) } }";
    let cases = [
        ("shelves/1/books/1", false, json!({"title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin"})),
        ("shelves/1/books/1", true, json!({"title": "The Left Hand of Darkness"})),
        ("shelves/2/books/1", true, json!({"title": "The Selfish Gene"})),
        ("shelves/2/books/1", false, json!({"title": "The Selfish Gene", "author": "Richard Dawkins"})),
    ];
    for _round in 0..2 {
        for (name, skip, want) in &cases {
            let (status, _, answer) =
                post(&gateway, json!({"query": query, "variables": {"n": name, "skip": skip}}), None).await;
            assert_eq!(status, 200);
            assert_eq!(&answer["data"]["getBook"], want, "{name} skip={skip}");
        }
    }
    let (_, _, answer) = post(&gateway, json!({"query": query, "variables": {"n": "x"}}), None).await;
    assert_eq!(
        answer["errors"][0]["message"], "Variable \"$skip\" of required type \"Boolean!\" was not provided.",
        "variables are checked on every request, cached or not"
    );
    let (_, _, answer) = post(&gateway, json!({"query": query, "variables": {"n": "x", "skip": "yes"}}), None).await;
    assert_eq!(
        answer["errors"][0]["message"],
        "Variable \"$skip\" got invalid value \"yes\"; Boolean cannot represent a non boolean value: \"yes\"."
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn one_backend_down_still_answers_the_rest_with_errors_at_their_paths() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("descriptors");
    switchyard::registry::RegistryDir::new(&dir)
        .add(&switchyard::demo::demo_registration().expect("demo"), false)
        .expect("add");
    let inventory = "syntax = \"proto3\";\npackage inventory.v1;\nmessage Stock { string sku = 1; int32 count = 2; }\n\
                     message GetStockRequest { string sku = 1; }\nservice Inventory { rpc GetStock(GetStockRequest) returns (Stock); }\n";
    std::fs::write(work.path().join("inventory.proto"), inventory).expect("write");
    let registration =
        switchyard::registry::compile_sources(&[work.path().join("inventory.proto")], &[work.path().to_owned()], None)
            .expect("compiles");
    switchyard::registry::RegistryDir::new(&dir).add(&registration, false).expect("add");

    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let down = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let sources = switchyard::snapshot::SnapshotSources {
        descriptors: Some(dir),
        schemas: Some(work.path().join("no-schemas")),
        backends: vec![
            switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] },
            switchyard::snapshot::BackendFlag { name: "inventory.v1".into(), urls: vec![down] },
        ],
        ..Default::default()
    };
    let gateway = TestGateway::from_sources(sources, Some(backend)).await;
    let query = "{ getBook(name: \"shelves/1/books/1\") { title } getStock(sku: \"b-1\") { count } }";
    let (status, _, answer) = post(&gateway, json!({"query": query}), None).await;
    assert_eq!(status, 200);
    assert_eq!(answer["data"], json!({"getBook": {"title": "The Left Hand of Darkness"}, "getStock": null}));
    assert_eq!(answer["errors"][0]["path"], json!(["getStock"]));
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAVAILABLE");
    assert_eq!(answer["errors"][0]["message"], "backend inventory.v1 is unavailable", "no address leaks");
    gateway.shutdown().await;
}

#[tokio::test]
async fn variables_are_coerced_to_their_types_and_must_fit_where_they_are_used() {
    let gateway = TestGateway::stitched().await;
    let table: &[(&str, Value, &str)] = &[
        (
            r#"query($g: Genre) { listBooks(parent: "shelves/1", genre: $g) { totalSize } }"#,
            json!({"g": "NOPE"}),
            r#"Variable "$g" got invalid value "NOPE"; Value "NOPE" does not exist in "Genre" enum."#,
        ),
        (
            r#"mutation($b: BookInput) { createBook(parent: "shelves/3", book: $b) { name } }"#,
            json!({"b": {"title": "x", "nope": 1}}),
            r#"Variable "$b" got invalid value {"title":"x","nope":1}; BookInput has no field `nope`."#,
        ),
        (
            r#"query Q($t: [String!]) { listBooks(parent: "shelves/1") { totalSize } }"#,
            json!({"t": ["a"]}),
            r#"Variable "$t" is never used in operation "Q"."#,
        ),
        (
            r#"{ getBook(name: "a") { title } } fragment Unused on Book { title }"#,
            json!({}),
            r#"Fragment "Unused" is never used."#,
        ),
        (
            r#"query($n: Int) { getBook(name: $n) { title } }"#,
            json!({"n": 1}),
            r#"Variable "$n" of type "Int" used in position expecting type "String"."#,
        ),
        (
            r#"query($x: Book) { getBook(name: "a") { title } }"#,
            json!({}),
            r#"Variable "$x" cannot be non-input type "Book"."#,
        ),
        (r#"query($x: Nope) { getBook(name: "a") { title } }"#, json!({}), r#"Unknown type "Nope"."#),
        (r#"{ getBook(name: $undeclared) { title } }"#, json!({}), r#"Variable "$undeclared" is not defined."#),
        (
            r#"query($id: ID) { author(id: $id) { name } }"#,
            json!({"id": "1"}),
            r#"Variable "$id" of type "ID" used in position expecting type "ID!"."#,
        ),
        (r#"query { __type(name: $t) { name } }"#, json!({}), r#"Variable "$t" is not defined."#),
    ];
    for (query, variables, message) in table {
        let (status, _, answer) = post(&gateway, json!({"query": query, "variables": variables}), None).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(answer["errors"][0]["message"], *message, "{query}: {answer}");
        assert_eq!(answer["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{query}");
        assert!(answer.get("data").is_none(), "a refused request has no data: {answer}");
    }
    // An Int where an ID is declared is coerced to its string form.
    let query = r#"query($id: ID!) { author(id: $id) { name } }"#;
    let (_, _, answer) = post(&gateway, json!({"query": query, "variables": {"id": 2}}), None).await;
    assert_eq!(answer, json!({"data": {"author": {"name": "Richard Dawkins"}}}));
    gateway.shutdown().await;
}
