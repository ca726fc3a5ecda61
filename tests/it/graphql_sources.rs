//! A GraphQL backend as a source: a second, real gateway serving the demo catalog over GraphQL
//! is the remote service; the gateway under test merges its root fields from its SDL file,
//! sends it one sub-operation per fetch with only the selected fields (arguments as typed
//! variables, aliases kept, parent keys under hidden aliases), stitches REST authors into its
//! types and its fields into ours, and passes its errors on at their paths.

use serde_json::{Value, json};

use crate::support::{TestGateway, write_files};

const STITCH: &str = r#"
extend schema @source(name: "catalog", kind: GRAPHQL, schema: "catalog.sdl.graphql")
extend schema @source(name: "authors", kind: REST)

type Author {
  id: ID!
  name: String!
  born: Int
  books: [Book!]!
    @graphql(source: "catalog", field: "listBooks", arguments: {parent: "shelves/-", author: "{parent.name}"}, select: "books")
}

extend type Book {
  writer: Author
    @rest(source: "authors", path: "/authors", query: {name: "{keys}"}, select: "authors", batch: {key: "{parent.author}", match: "name"})
}
"#;

/// The remote (a demo gateway), the authors service, and a gateway whose only schema is
/// `schemas/` (no descriptors): the remote's SDL and STITCH.
async fn front() -> (TestGateway, TestGateway, tempfile::TempDir) {
    let remote = TestGateway::demo().await;
    let url = format!("{}/graphql", remote.base);
    let (front, dir) = front_at(url).await;
    (front, remote, dir)
}

/// The gateway under test with its catalog source at `catalog_url`.
async fn front_at(catalog_url: String) -> (TestGateway, tempfile::TempDir) {
    front_with(catalog_url, STITCH).await
}

/// The gateway under test with `stitch` as its schema file.
async fn front_with(catalog_url: String, stitch: &str) -> (TestGateway, tempfile::TempDir) {
    let registry =
        switchyard::registry::merge_registrations(vec![switchyard::demo::demo_registration().expect("demo")])
            .expect("merges");
    let (schema, _) = switchyard::schema::generate_schema(
        &registry.pool,
        &["catalog.v1.Catalog".to_owned()],
        &switchyard::config::GraphqlConfig::default(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("schemas/stitch.graphql", stitch)]);
    if stitch.contains("catalog.sdl.graphql") {
        write_files(dir.path(), &[("schemas/catalog.sdl.graphql", &schema.to_sdl())]);
    }
    let authors = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let sources = switchyard::snapshot::SnapshotSources {
        no_descriptor_dir: true,
        schemas: Some(dir.path().join("schemas")),
        backends: vec![
            switchyard::snapshot::BackendFlag { name: "catalog".into(), urls: vec![catalog_url] },
            switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec![authors.url()] },
        ],
        ..Default::default()
    };
    let mut front = TestGateway::from_sources(sources, None).await;
    front.adopt_authors(authors);
    (front, dir)
}

async fn graphql(gateway: &TestGateway, query: &str, variables: Value) -> Value {
    let body = json!({"query": query, "variables": variables});
    let response = gateway.client.post(format!("{}/graphql", gateway.base)).json(&body).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_graphql_source_is_merged_and_stitched_both_ways() {
    let (front, remote, _dir) = front().await;
    let before = remote.backend().calls("ListBooks");
    let query = r#"{ listBooks(parent: "shelves/-") { books { t: title writer { name books { title } } } } }"#;
    let answer = graphql(&front, query, json!({})).await;
    let le_guin = json!({"name": "Ursula K. Le Guin", "books": [{"title": "The Left Hand of Darkness"}, {"title": "A Wizard of Earthsea"}]});
    assert_eq!(
        answer,
        json!({"data": {"listBooks": {"books": [
            {"t": "The Left Hand of Darkness", "writer": le_guin},
            {"t": "A Wizard of Earthsea", "writer": le_guin},
            {"t": "The Selfish Gene", "writer": {"name": "Richard Dawkins", "books": [{"title": "The Selfish Gene"}]}}
        ]}}})
    );
    // One sub-operation for the root, then one per distinct author.
    assert_eq!(remote.backend().calls("ListBooks") - before, 3);
    front.shutdown().await;
    remote.shutdown().await;
}

#[tokio::test]
async fn arguments_travel_as_typed_variables_and_errors_keep_their_paths() {
    let (front, remote, _dir) = front().await;
    let query = r#"query($genre: Genre) {
        fiction: listBooks(parent: "shelves/1", genre: $genre) { totalSize }
        missing: getBook(name: "shelves/9/books/9") { title }
    }"#;
    let answer = graphql(&front, query, json!({"genre": "FICTION"})).await;
    assert_eq!(answer["data"], json!({"fiction": {"totalSize": "2"}, "missing": null}), "{answer}");
    assert_eq!(answer["errors"][0]["path"], json!(["missing"]));
    assert_eq!(answer["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(answer["errors"][0]["message"], "book `shelves/9/books/9` does not exist");

    let mutation = r#"mutation { createBook(parent: "shelves/5", book: {title: "Kindred", author: "Octavia E. Butler", genre: FICTION}) { title genre writer { born } } }"#;
    let answer = graphql(&front, mutation, json!({})).await;
    assert_eq!(
        answer,
        json!({"data": {"createBook": {"title": "Kindred", "genre": "FICTION", "writer": {"born": 1947}}}})
    );
    front.shutdown().await;
    remote.shutdown().await;
}

#[tokio::test]
async fn a_graphql_source_down_is_unavailable_at_its_fields() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/graphql", closed.local_addr().expect("addr"));
    drop(closed);
    let (front, _dir) = front_at(url).await;
    let answer = graphql(&front, r#"{ getBook(name: "shelves/1/books/1") { title } }"#, json!({})).await;
    assert_eq!(answer["data"], json!({"getBook": null}));
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{answer}");
    assert_eq!(answer["errors"][0]["message"], "backend catalog is unavailable", "{answer}");
    front.shutdown().await;
}

#[tokio::test]
async fn a_graphql_source_without_a_schema_file_is_introspected() {
    let remote = TestGateway::demo().await;
    let introspecting = STITCH.replace(", schema: \"catalog.sdl.graphql\"", "");
    assert_ne!(introspecting, STITCH);
    let (front, _dir) = front_with(format!("{}/graphql", remote.base), &introspecting).await;
    let query = r#"{ getBook(name: "shelves/2/books/1") { title genre writer { name } } }"#;
    let answer = graphql(&front, query, json!({})).await;
    assert_eq!(
        answer,
        json!({"data": {"getBook": {"title": "The Selfish Gene", "genre": "SCIENCE", "writer": {"name": "Richard Dawkins"}}}})
    );
    front.shutdown().await;
    remote.shutdown().await;

    // Nothing to introspect: the snapshot is refused, naming the source and why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/graphql", closed.local_addr().expect("addr"));
    drop(closed);
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("schemas/stitch.graphql", &introspecting)]);
    let sources = switchyard::snapshot::SnapshotSources {
        no_descriptor_dir: true,
        schemas: Some(dir.path().join("schemas")),
        backends: vec![
            switchyard::snapshot::BackendFlag { name: "catalog".into(), urls: vec![url] },
            switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec!["http://127.0.0.1:1".into()] },
        ],
        ..Default::default()
    };
    let problems = tokio::task::spawn_blocking(move || switchyard::snapshot::build_snapshot(&sources, 1))
        .await
        .expect("task")
        .expect_err("refused");
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(
            |p| p.contains("@source catalog: no `schema` file, and introspecting its backend failed: cannot reach")
        ),
        "{shown:#?}"
    );
}
