//! Stitching gRPC and REST in one GraphQL operation, against the real demo catalog (tonic) and
//! the real demo authors service (axum): three levels deep, batched REST calls (one per level),
//! deduplicated gRPC calls (one per distinct key), parent keys fetched and hidden, a backend
//! down, non-null propagation, declared root fields and their arguments, and the plan.

use serde_json::{Value, json};

use crate::support::TestGateway;

async fn graphql(gateway: &TestGateway, query: &str, variables: Value) -> Value {
    let body = json!({"query": query, "variables": variables});
    let response = gateway.client.post(format!("{}/graphql", gateway.base)).json(&body).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn three_levels_across_grpc_and_rest_with_one_rest_call_per_level() {
    let gateway = TestGateway::stitched().await;
    let (rest_before, grpc_before) = (gateway.authors().requests(), gateway.backend().calls("ListBooks"));
    let query =
        r#"{ listBooks(parent: "shelves/-") { books { title writer { name born books { title writer { id } } } } } }"#;
    let answer = graphql(&gateway, query, json!({})).await;
    let le_guin_books = json!([
        {"title": "The Left Hand of Darkness", "writer": {"id": "1"}},
        {"title": "A Wizard of Earthsea", "writer": {"id": "1"}}
    ]);
    assert_eq!(
        answer,
        json!({"data": {"listBooks": {"books": [
            {"title": "The Left Hand of Darkness", "writer": {"name": "Ursula K. Le Guin", "born": 1929, "books": le_guin_books}},
            {"title": "A Wizard of Earthsea", "writer": {"name": "Ursula K. Le Guin", "born": 1929, "books": le_guin_books}},
            {"title": "The Selfish Gene", "writer": {"name": "Richard Dawkins", "born": 1941, "books": [
                {"title": "The Selfish Gene", "writer": {"id": "2"}}
            ]}}
        ]}}})
    );
    // Level 1 (3 books) and level 3 (3 books) each made one batched authors call.
    assert_eq!(gateway.authors().requests() - rest_before, 2);
    // The root ListBooks, then one ListBooks per distinct author (2), not one per book (3).
    assert_eq!(gateway.backend().calls("ListBooks") - grpc_before, 3);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_hundred_parents_make_one_batched_rest_call() {
    let gateway = TestGateway::stitched().await;
    for i in 0..100 {
        // Every fifth book is by a known author; the rest have authors the service does not know.
        let author = if i % 5 == 0 { "Frank Herbert".to_owned() } else { format!("Writer {i}") };
        let body = json!({"title": format!("Book {i}"), "author": author}).to_string();
        let (status, created, _) = gateway.call("POST", "/v1/shelves/77/books", &body).await;
        assert_eq!(status, 200, "{created}");
    }

    let before = gateway.authors().requests();
    let query = r#"{ listBooks(parent: "shelves/77", pageSize: 100) { books { title writer { name country } } } }"#;
    let answer = graphql(&gateway, query, json!({})).await;
    assert_eq!(gateway.authors().requests() - before, 1, "one batched call for 100 parents (81 distinct keys)");
    let books = answer["data"]["listBooks"]["books"].as_array().expect("books");
    assert_eq!(books.len(), 100);
    let known = books.iter().filter(|b| b["writer"] == json!({"name": "Frank Herbert", "country": "US"})).count();
    let unknown = books.iter().filter(|b| b["writer"].is_null()).count();
    assert_eq!((known, unknown), (20, 80));
    assert!(answer.get("errors").is_none(), "an unmatched key is a null, not an error: {answer}");

    // 20 writers share one key: their gRPC books field is one ListBooks call, not 20.
    let (rest_before, grpc_before) = (gateway.authors().requests(), gateway.backend().calls("ListBooks"));
    let query = r#"{ listBooks(parent: "shelves/77", pageSize: 100) { books { writer { books { title } } } } }"#;
    let answer = graphql(&gateway, query, json!({})).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(gateway.authors().requests() - rest_before, 1);
    assert_eq!(gateway.backend().calls("ListBooks") - grpc_before, 2, "the root call and one per distinct author");
    let books = answer["data"]["listBooks"]["books"].as_array().expect("books");
    let herbert = books.iter().find(|b| !b["writer"].is_null()).expect("a known writer");
    assert_eq!(herbert["writer"]["books"].as_array().map(Vec::len), Some(20), "{herbert}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn parent_keys_are_fetched_when_unselected_and_never_shown() {
    let gateway = TestGateway::stitched().await;
    let query = r#"{ getBook(name: "shelves/2/books/1") { title writer { country } } }"#;
    let answer = graphql(&gateway, query, json!({})).await;
    assert_eq!(answer, json!({"data": {"getBook": {"title": "The Selfish Gene", "writer": {"country": "GB"}}}}));
    let keys: Vec<&String> = answer["data"]["getBook"].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["title", "writer"]);

    // Selected under an alias, the key is still fetched once and the alias kept.
    let query = r#"{ getBook(name: "shelves/2/books/1") { by: author writer { name } } }"#;
    let answer = graphql(&gateway, query, json!({})).await;
    assert_eq!(answer, json!({"data": {"getBook": {"by": "Richard Dawkins", "writer": {"name": "Richard Dawkins"}}}}));
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_rest_backend_down_nulls_its_fields_with_errors_at_their_paths() {
    let mut gateway = TestGateway::stitched().await;
    gateway.stop_authors().await;
    let query = r#"{ listBooks(parent: "shelves/1") { books { title writer { name } } } }"#;
    let answer = graphql(&gateway, query, json!({})).await;
    assert_eq!(
        answer["data"],
        json!({"listBooks": {"books": [
            {"title": "The Left Hand of Darkness", "writer": null},
            {"title": "A Wizard of Earthsea", "writer": null}
        ]}})
    );
    let errors = answer["errors"].as_array().expect("errors");
    let paths: Vec<&Value> = errors.iter().map(|e| &e["path"]).collect();
    assert_eq!(paths, [&json!(["listBooks", "books", 0, "writer"]), &json!(["listBooks", "books", 1, "writer"])]);
    for error in errors {
        assert_eq!(error["extensions"]["code"], "UNAVAILABLE", "{error}");
        assert_eq!(error["message"], "backend authors is unavailable", "no address leaks: {error}");
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_failed_non_null_field_nulls_the_nearest_nullable_parent() {
    let mut gateway = TestGateway::stitched().await;
    gateway.stop_backend().await;
    // Author.books is [Book!]!; with the catalog down each author cannot be completed, the
    // list [Author!]! cannot hold a null, and `authors` is non-null: `data` becomes null.
    let answer = graphql(&gateway, r#"{ authors(country: "GB") { name books { title } } }"#, json!({})).await;
    assert_eq!(answer["data"], Value::Null, "{answer}");
    assert_eq!(answer["errors"][0]["path"], json!(["authors", 0, "books"]));
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAVAILABLE");
    assert_eq!(answer["errors"].as_array().expect("errors").len(), 1, "one error, not one per level");

    // `author` is nullable: only it becomes null, and the rest of `data` stays.
    let answer = graphql(&gateway, r#"{ author(id: "2") { name books { title } } authors { name } }"#, json!({})).await;
    assert_eq!(answer["data"]["author"], Value::Null, "{answer}");
    assert_eq!(answer["data"]["authors"].as_array().map(Vec::len), Some(4));
    assert_eq!(answer["errors"][0]["path"], json!(["author", "books"]));
    gateway.shutdown().await;
}

#[tokio::test]
async fn declared_root_fields_take_arguments_and_map_rest_errors() {
    let gateway = TestGateway::stitched().await;
    let query = r#"query($country: String) { authors(country: $country) { id name } one: author(id: 3) { name born } none: author(id: "99") { name } }"#;
    let answer = graphql(&gateway, query, json!({"country": "US"})).await;
    assert_eq!(
        answer["data"],
        json!({
            "authors": [{"id": "1", "name": "Ursula K. Le Guin"}, {"id": "3", "name": "Frank Herbert"}, {"id": "4", "name": "Octavia E. Butler"}],
            "one": {"name": "Frank Herbert", "born": 1920},
            "none": null
        })
    );
    assert_eq!(answer["errors"][0]["path"], json!(["none"]));
    assert_eq!(answer["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(answer["errors"][0]["message"], "author `99` does not exist");

    let table = [
        (
            r#"{ author { name } }"#,
            r#"Field "author" argument "id" of type "ID!" is required, but it was not provided."#,
        ),
        (r#"{ author(id: "1", x: 1) { name } }"#, r#"Unknown argument "x" on field "author"."#),
        (r#"{ author(id: "1") { name nickname } }"#, r#"Cannot query field "nickname" on type "Author"."#),
        (
            r#"{ getBook(name: "x") { writer } }"#,
            r#"Field "writer" of type "Author" must have a selection of subfields."#,
        ),
    ];
    for (query, message) in table {
        let answer = graphql(&gateway, query, json!({})).await;
        assert_eq!(answer["errors"][0]["message"], message, "{query}: {answer}");
        assert_eq!(answer["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{query}");
    }
    let answer = graphql(&gateway, r#"{ author(id: true) { name } }"#, json!({})).await;
    assert_eq!(answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{answer}");
    assert!(answer["errors"][0]["message"].as_str().unwrap_or("").contains("argument \"id\""), "{answer}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_plan_shows_stitched_fetches_under_their_parents() {
    let sources = switchyard::demo::offline_sources().expect("demo");
    let snapshot = switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot");
    let caches = switchyard::ingress::GraphqlCaches::default();
    let query = r#"{ listBooks(parent: "shelves/-") { books { title writer { name books { title } } } } }"#;
    let plan =
        switchyard::ingress::plan_query(&snapshot, &caches, query, None, &serde_json::Map::new()).expect("plans");
    let text = plan.to_string();
    assert!(
        text.contains(
            "then Book.writer at books.writer ← GET authors:/authors batched by {parent.author} (≤100) via authors"
        ),
        "{text}"
    );
    assert!(
        text.contains("then Author.books at books.writer.books ← catalog.v1.Catalog.ListBooks via catalog.v1"),
        "{text}"
    );
    assert!(text.contains("@author"), "the hidden key field is in the plan: {text}");
}

#[tokio::test]
async fn declared_descriptions_reach_introspection() {
    let gateway = TestGateway::stitched().await;
    let query = r#"{ __type(name: "Author") { description fields { name description args { name } } } }"#;
    let answer = graphql(&gateway, query, json!({})).await;
    let ty = &answer["data"]["__type"];
    assert_eq!(ty["description"], "A writer, from the authors REST service.");
    let books = ty["fields"].as_array().expect("fields").iter().find(|f| f["name"] == "books").expect("books");
    assert_eq!(books["description"], "Books by this author, from the gRPC catalog (one call per distinct author).");
    let query = r#"{ __schema { queryType { fields { name description } } } }"#;
    let answer = graphql(&gateway, query, json!({})).await;
    let fields = answer["data"]["__schema"]["queryType"]["fields"].as_array().expect("fields");
    let author = fields.iter().find(|f| f["name"] == "author").expect("author");
    assert_eq!(author["description"], "One author by id.");
    gateway.shutdown().await;
}

/// An argument interpolated into a REST source's path stays inside its segment: slashes are
/// encoded, and a value the URL parser would resolve as a dot segment (`..`, `.`) is refused
/// before any call, so no argument can reach another path of the source.
#[tokio::test]
async fn arguments_in_rest_paths_cannot_leave_their_segment() {
    let gateway = TestGateway::stitched().await;
    let query = "query($id: ID!) { author(id: $id) { name } }";
    // (id, a phrase of the error, or None when the source is asked and has no such author)
    let table: &[(&str, Option<&str>)] = &[
        ("..", Some("a path placeholder's value cannot be `..`")),
        (".", Some("a path placeholder's value cannot be `.`")),
        ("../authors", None),
        ("%2e%2e", None),
        ("a/../../admin", None),
    ];
    for (id, refused) in table {
        let before = gateway.authors().requests();
        let answer = graphql(&gateway, query, json!({ "id": id })).await;
        let asked = gateway.authors().requests() - before;
        match refused {
            Some(phrase) => {
                assert_eq!(asked, 0, "{id}: nothing reaches the source");
                let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
                assert!(message.contains(phrase), "{id}: {answer}");
                assert_eq!(answer["errors"][0]["path"], json!(["author"]), "{id}: {answer}");
            }
            None => {
                assert_eq!(asked, 1, "{id}: one call, inside /authors/");
                assert_eq!(answer["data"]["author"], Value::Null, "{id}: no such author: {answer}");
            }
        }
    }
    gateway.shutdown().await;
}
