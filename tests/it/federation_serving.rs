//! Serving a Federation v2 supergraph: the four test subgraphs (Apollo's subgraph library on
//! node, tests/npm/subgraphs.mjs) composed by The Guild's composition, served by Switchyard and,
//! for conformance, by Apollo Gateway (tests/npm/reference-router.mjs); the same queries must get
//! the same answers. The subgraphs log the requests they get, so the tests see how the gateway
//! fetched: one `_entities` request per subgraph per level, deduplicated representations,
//! `@provides` skipping fetches, `@requires` fields sent along.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value as Json, json};

use crate::federation::{SUBGRAPHS, compose_files, compose_with, npm_dir};
use crate::support::{HANG, TestGateway};

/// The benchmark's heavy nested query (graphql-gateways-benchmark, federation scenario).
const HEAVY_QUERY: &str = include_str!("../fixtures/federation/heavy-query.graphql");

/// A node process from tests/npm, ended (its stdin closed, then killed) when dropped.
struct Node {
    child: Child,
    first_line: String,
}

impl Node {
    /// Starts `node SCRIPT ARGS` and waits for its first stdout line.
    fn start(script: &str, args: &[&str]) -> Node {
        let mut child = Command::new("node")
            .arg(npm_dir().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = send.send(line);
        });
        let first_line = receive.recv_timeout(HANG).unwrap_or_else(|_| panic!("{script} did not start"));
        assert!(!first_line.trim().is_empty(), "{script} ended before it listened");
        Node { child, first_line: first_line.trim().to_owned() }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The subgraphs, the supergraph composed over them, and Switchyard serving it.
struct Federated {
    gateway: TestGateway,
    /// The subgraphs composed.
    names: &'static [&'static str],
    ports: BTreeMap<String, u16>,
    supergraph: PathBuf,
    _dir: tempfile::TempDir,
    _subgraphs: Node,
}

impl Federated {
    async fn start() -> Federated {
        Federated::start_with(&[]).await
    }

    /// With the subgraphs in `down` composed at a closed port.
    async fn start_with(down: &[&str]) -> Federated {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let elsewhere: Vec<(&str, String)> =
            down.iter().map(|name| (*name, format!("http://127.0.0.1:{closed}/graphql"))).collect();
        Federated::start_elsewhere(&elsewhere).await
    }

    /// With the subgraphs named in `elsewhere` composed at the URLs given there.
    async fn start_elsewhere(elsewhere: &[(&str, String)]) -> Federated {
        Federated::start_composing(&SUBGRAPHS, elsewhere).await
    }

    /// The subgraphs `names` composed (those named in `elsewhere` at the URLs given there).
    async fn start_composing(names: &'static [&'static str], elsewhere: &[(&str, String)]) -> Federated {
        Federated::start_from("tests/fixtures/federation", names, elsewhere).await
    }

    /// As `start_composing`, with the subgraphs' SDL in `fixtures` (relative to the crate).
    async fn start_from(fixtures: &str, names: &'static [&'static str], elsewhere: &[(&str, String)]) -> Federated {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(fixtures);
        let subgraphs = Node::start("subgraphs.mjs", &[fixtures.to_str().expect("utf8 path")]);
        let ports: BTreeMap<String, u16> = serde_json::from_str(&subgraphs.first_line).expect("the subgraphs' ports");
        let urls: Vec<(&str, String)> = names
            .iter()
            .map(|name| match elsewhere.iter().find(|(n, _)| n == name) {
                Some((_, url)) => (*name, url.clone()),
                None => (*name, format!("http://127.0.0.1:{}/graphql", ports[*name])),
            })
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let supergraph = dir.path().join("supergraph.graphql");
        let files: Vec<(&str, String, PathBuf)> =
            urls.iter().map(|(name, url)| (*name, url.clone(), fixtures.join(format!("{name}.graphql")))).collect();
        std::fs::write(&supergraph, compose_files(&files)).expect("write the supergraph");
        let sources = switchyard::snapshot::SnapshotSources {
            supergraph: Some(supergraph.clone()),
            no_descriptor_dir: true,
            schemas: Some(PathBuf::from("/nonexistent")),
            ..Default::default()
        };
        let gateway = TestGateway::from_sources(sources, None).await;
        Federated { gateway, names, ports, supergraph, _dir: dir, _subgraphs: subgraphs }
    }

    /// The requests subgraph `name` received since the last `clear`.
    async fn log(&self, name: &str) -> Vec<Json> {
        let url = format!("http://127.0.0.1:{}/log", self.ports[name]);
        let log: Json = reqwest::get(url).await.expect("log").json().await.expect("json");
        log.as_array().cloned().unwrap_or_default()
    }

    async fn clear(&self) {
        let client = reqwest::Client::new();
        for port in self.ports.values() {
            client.delete(format!("http://127.0.0.1:{port}/log")).send().await.expect("clear the log");
        }
    }

    /// How many requests each subgraph received for `query`.
    async fn fetches_for(&self, query: &str) -> (Json, BTreeMap<String, usize>) {
        self.clear().await;
        let answer = self.gateway.graphql(query).await;
        let mut counts = BTreeMap::new();
        for name in self.names {
            counts.insert((*name).to_owned(), self.log(name).await.len());
        }
        (answer, counts)
    }
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(name, n)| ((*name).to_owned(), *n)).collect()
}

/// Asks Switchyard and Apollo Gateway (serving the same supergraph) each query: the answers
/// must be equal.
async fn answered_as_the_reference_router_answers(federated: &Federated, queries: &[&str]) {
    let reference = Node::start("reference-router.mjs", &[federated.supergraph.to_str().expect("utf8")]);
    let client = reqwest::Client::new();
    for query in queries {
        let ours = federated.gateway.graphql(query).await;
        let theirs: Json = client
            .post(&reference.first_line)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("the reference router answers")
            .json()
            .await
            .expect("json");
        assert!(theirs.get("errors").is_none(), "the reference router failed {query}: {theirs}");
        assert_eq!(ours, theirs, "{query}");
    }
}

/// The subgraphs with an interface entity (Media: Book, Film), unions, and a subgraph that
/// sees the interface as an object (`@interfaceObject`).
const MEDIA_SUBGRAPHS: [&str; 3] = ["library", "ratings", "shops"];

#[tokio::test]
async fn interfaces_and_unions_across_subgraphs_are_answered_as_the_reference_router_answers_them() {
    let federated = Federated::start_composing(&MEDIA_SUBGRAPHS, &[]).await;
    let queries = [
        "{ media { __typename id title ... on Book { pages price } ... on Film { minutes streams } } }",
        "{ search(text: \"\") { __typename ... on Media { id title stars } ... on Person { name } } }",
        "{ topRated { __typename id title stars ... on Book { pages price } ... on Film { streams } } }",
        "{ bestsellers { __typename ... on Book { title price stars } ... on Gadget { sku price } } }",
        "{ item(id: \"f1\") { title ...Parts } } fragment Parts on Media { stars ... on Film { minutes } }",
        "{ item(id: \"none\") { title } }",
        "{ search(text: \"e\") { ... on Book { t: title } ... on Film { t: title } ... on Person { t: name } } }",
        "{ topRated { id } media { id } }",
    ];
    answered_as_the_reference_router_answers(&federated, &queries).await;
}

#[tokio::test]
async fn a_required_field_that_requires_another_is_fetched_after_it() {
    // cost requires weight, which requires size: each subgraph computes its field from the
    // representation, so a requirement fetched late or not at all would answer null.
    const NAMES: [&str; 4] = ["root", "sizes", "weights", "costs"];
    let federated = Federated::start_from("tests/fixtures/federation/requires", &NAMES, &[]).await;
    let (answer, requests) = federated.fetches_for("{ item { cost } }").await;
    assert_eq!(answer, json!({"data": {"item": {"cost": 60}}}));
    assert_eq!(requests, counts(&[("root", 1), ("sizes", 1), ("weights", 1), ("costs", 1)]));
    assert_eq!(
        federated.log("costs").await[0]["variables"]["r0"],
        json!([{"__typename": "Item", "id": "i1", "weight": 30}])
    );
    answered_as_the_reference_router_answers(&federated, &["{ item { cost } }", "{ item { weight cost } }"]).await;
}

#[tokio::test]
async fn abstract_fields_fetch_each_object_types_fields_only_for_values_of_that_type() {
    let federated = Federated::start_composing(&MEDIA_SUBGRAPHS, &[]).await;
    let fetched = |pairs: &[(&str, usize)]| counts(pairs);
    // Book.price from shops for the two books only, Film.streams for the film only: one
    // request to shops with both parts.
    let (answer, requests) = federated.fetches_for("{ media { ... on Book { price } ... on Film { streams } } }").await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(requests, fetched(&[("library", 1), ("ratings", 0), ("shops", 1)]));
    let shops = &federated.log("shops").await[0];
    assert_eq!(
        shops["variables"]["r0"],
        json!([{"__typename": "Book", "id": "b1"}, {"__typename": "Book", "id": "b2"}])
    );
    assert_eq!(shops["variables"]["r1"], json!([{"__typename": "Film", "id": "f1"}]));
    // A field an @interfaceObject adds: fetched through the interface, for each object type.
    let (answer, requests) = federated.fetches_for("{ search(text: \"Dune\") { ... on Media { stars } } }").await;
    assert_eq!(answer, json!({"data": {"search": [{"stars": 4.5}]}}));
    assert_eq!(requests, fetched(&[("library", 1), ("ratings", 1), ("shops", 0)]));
    let ratings = &federated.log("ratings").await[0];
    assert_eq!(ratings["variables"]["r0"], json!([{"__typename": "Media", "id": "b1"}]), "{ratings}");
    // Values from the @interfaceObject's subgraph: their object types come from the library.
    let (answer, requests) = federated.fetches_for("{ topRated { __typename } }").await;
    assert_eq!(answer, json!({"data": {"topRated": [{"__typename": "Film"}, {"__typename": "Book"}]}}));
    assert_eq!(requests, fetched(&[("library", 1), ("ratings", 1), ("shops", 0)]));
    // Bad selections on abstract types are refused by name, before any fetch.
    let (answer, requests) = federated.fetches_for("{ search(text: \"\") { name } }").await;
    assert_eq!(
        answer["errors"][0]["message"],
        "Cannot query field \"name\" on type \"SearchResult\". Did you mean to use an inline fragment on a member type?"
    );
    assert_eq!(requests, fetched(&[("library", 0), ("ratings", 0), ("shops", 0)]));
}

#[tokio::test]
async fn the_benchmark_query_is_answered_as_the_reference_router_answers_it() {
    let federated = Federated::start().await;
    let queries = [
        HEAVY_QUERY,
        "{ me { id name username birthday } }",
        "{ topProducts(first: 2) { upc name price weight shippingEstimate inStock } }",
        "{ topProducts { reviews { body author { username } } } }",
        "{ users { name reviews { product { name shippingEstimate lastCheckedBy { name username } } } } }",
        "{ me { favoriteProduct { upc name inStock } } }",
        "{ user(id: \"2\") { name reviews { body } } alias: user(id: \"1\") { n: name b: birthday } }",
        "{ topProducts { __typename upc reviews { __typename id } } }",
    ];
    answered_as_the_reference_router_answers(&federated, &queries).await;
}

#[tokio::test]
async fn entity_fetches_are_one_request_per_subgraph_per_level_with_each_representation_once() {
    let federated = Federated::start().await;
    let (answer, fetched) = federated.fetches_for(HEAVY_QUERY).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    // The two root fields' fetches run together: one request per subgraph per level for both
    // (reviews gets User.reviews and Product.reviews at once), and fetches at several paths
    // that ask the same share one part — six requests, as Hive Router makes.
    assert_eq!(fetched, counts(&[("accounts", 1), ("inventory", 2), ("products", 2), ("reviews", 1)]));
    for name in SUBGRAPHS {
        for request in federated.log(name).await {
            // Each (selection, representation) once per request, even for fetches at several
            // paths: parts that ask the same of one type share their representations.
            let query = request["query"].as_str().unwrap_or_default();
            let mut asked = Vec::new();
            let parts: Vec<&str> = query.split(": _entities(representations: $r").skip(1).collect();
            for (i, part) in parts.iter().enumerate() {
                let (number, rest) = part.split_once(')').expect("a part");
                // Up to the next part's alias, or the query's closing brace after the last.
                let selection = match i + 1 == parts.len() {
                    true => rest.trim_end().strip_suffix('}').unwrap_or(rest),
                    false => rest.rsplit_once(" e").map_or(rest, |(selection, _)| selection),
                };
                let representations =
                    request["variables"][format!("r{number}")].as_array().cloned().unwrap_or_default();
                asked.extend(representations.into_iter().map(|r| (selection.trim().to_owned(), r.to_string())));
            }
            let mut distinct = asked.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), asked.len(), "{name} was asked the same twice: {request}");
        }
    }
    // One level: all three products' inventory fields in one request.
    let (_, fetched) = federated.fetches_for("{ topProducts { inStock shippingEstimate } }").await;
    assert_eq!(fetched, counts(&[("accounts", 0), ("inventory", 1), ("products", 1), ("reviews", 0)]));
    let request = &federated.log("inventory").await[0];
    assert_eq!(request["variables"]["r0"].as_array().map(Vec::len), Some(3), "{request}");
}

#[tokio::test]
async fn each_directive_changes_the_fetches_as_federation_defines() {
    let federated = Federated::start().await;
    // @provides: the reviews subgraph returns the author's username itself; accounts is not asked.
    let (answer, fetched) =
        federated.fetches_for("{ topProducts(first: 1) { reviews { author { username } } } }").await;
    assert_eq!(answer["data"]["topProducts"][0]["reviews"][0]["author"]["username"], "@ada");
    assert_eq!(fetched, counts(&[("accounts", 0), ("inventory", 0), ("products", 1), ("reviews", 1)]));
    // … but a field it does not provide is fetched from accounts.
    let (_, fetched) = federated.fetches_for("{ topProducts(first: 1) { reviews { author { username id } } } }").await;
    assert_eq!(fetched["accounts"], 0, "id is the key: reviews returns it");

    // @requires: inventory gets price and weight in the representation, from products.
    let (answer, _) = federated.fetches_for("{ me { reviews { product { shippingEstimate } } } }").await;
    assert_eq!(answer["data"]["me"]["reviews"][1]["product"]["shippingEstimate"], 0, "{answer}");
    let request = &federated.log("inventory").await[0];
    let representation = &request["variables"]["r0"][0];
    assert!(representation.get("price").is_some() && representation.get("weight").is_some(), "{request}");
    assert_eq!(federated.log("products").await.len(), 1, "price and weight are fetched once, first");

    // @override: accounts still defines birthday, but reviews resolves it.
    let (answer, fetched) = federated.fetches_for("{ me { birthday } }").await;
    assert_eq!(answer["data"]["me"]["birthday"], 1815);
    assert_eq!(fetched, counts(&[("accounts", 1), ("inventory", 0), ("products", 0), ("reviews", 1)]));
    assert!(!federated.log("accounts").await[0]["query"].as_str().unwrap_or_default().contains("birthday"));

    // @shareable: accounts resolves name itself; reviews is not asked.
    let (_, fetched) = federated.fetches_for("{ me { name } }").await;
    assert_eq!(fetched, counts(&[("accounts", 1), ("inventory", 0), ("products", 0), ("reviews", 0)]));

    // @external: inventory does not resolve price; products does.
    let (answer, fetched) = federated.fetches_for("{ topProducts(first: 1) { price } }").await;
    assert_eq!(answer["data"]["topProducts"][0]["price"], 899);
    assert_eq!(fetched["inventory"], 0);

    // A reference-only key (resolvable: false): inventory names a user, accounts resolves it.
    let (answer, fetched) = federated.fetches_for("{ topProducts(first: 1) { lastCheckedBy { username } } }").await;
    assert_eq!(answer["data"]["topProducts"][0]["lastCheckedBy"]["username"], "@complete", "{answer}");
    assert_eq!(fetched["accounts"], 1);

    // A compound key: accounts references a product by `sku variant { id }`.
    let (answer, _) = federated.fetches_for("{ me { favoriteProduct { name } } }").await;
    assert_eq!(answer["data"]["me"]["favoriteProduct"]["name"], "Couch", "{answer}");
    let request = &federated.log("products").await[0];
    assert_eq!(request["variables"]["r0"][0], json!({"__typename": "Product", "sku": "CCH", "variant": {"id": "red"}}));

    // @inaccessible: not in the API schema, not selectable.
    let answer = federated.gateway.graphql("{ topProducts { internalCode } }").await;
    assert!(answer["errors"][0]["message"].as_str().unwrap_or_default().contains("internalCode"), "{answer}");
    let introspected = federated.gateway.graphql("{ __type(name: \"Product\") { fields { name } } }").await;
    let names: Vec<&str> = introspected["data"]["__type"]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(names.contains(&"shippingEstimate") && !names.contains(&"internalCode"), "{names:?}");
}

#[tokio::test]
async fn a_subgraph_that_is_down_nulls_only_its_fields_with_errors_at_their_paths() {
    let federated = Federated::start_with(&["inventory"]).await;
    let answer = federated.gateway.graphql("{ topProducts(first: 2) { name inStock } }").await;
    assert_eq!(answer["data"]["topProducts"][0]["name"], "Table", "{answer}");
    assert_eq!(answer["data"]["topProducts"][1]["inStock"], Json::Null);
    let errors = answer["errors"].as_array().expect("errors");
    assert!(!errors.is_empty());
    assert_eq!(errors[0]["path"][0], "topProducts", "{answer}");
    // The root field's own subgraph down: that field is null, with its error.
    let federated = Federated::start_with(&["products"]).await;
    let answer = federated.gateway.graphql("{ topProducts { name } me { name } }").await;
    assert_eq!(answer["data"]["topProducts"], Json::Null, "{answer}");
    assert_eq!(answer["data"]["me"]["name"], "Ada Lovelace");
    assert_eq!(answer["errors"][0]["path"], json!(["topProducts"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_supergraph_file_is_served_once_it_settles() {
    let federated = Federated::start().await;
    let _watching = switchyard::admin::watch_sources(federated.gateway.gateway().clone()).expect("watch").expect("on");
    let urls: Vec<(&str, String)> = SUBGRAPHS
        .iter()
        .filter(|name| **name != "reviews")
        .map(|name| (*name, format!("http://127.0.0.1:{}/graphql", federated.ports[*name])))
        .collect();
    // Written in place, as a deploy tool would: the watcher applies it without a reload call.
    std::fs::write(&federated.supergraph, compose_with(&urls)).expect("write");
    crate::lifecycle::until_generation(&federated.gateway, 2).await;
    let answer = federated.gateway.graphql("{ me { reviews { body } } }").await;
    assert!(answer["errors"][0]["message"].as_str().unwrap_or_default().contains("reviews"), "{answer}");
    assert_eq!(federated.gateway.graphql("{ me { name } }").await["data"]["me"]["name"], "Ada Lovelace");
}

#[tokio::test]
async fn a_new_supergraph_is_served_after_a_reload_and_a_bad_one_is_refused() {
    let federated = Federated::start().await;
    let client = reqwest::Client::new();
    let reload = || client.post(format!("{}/admin/reload", federated.gateway.admin)).send();
    // A bad supergraph: refused, the running one keeps serving.
    let good = std::fs::read_to_string(&federated.supergraph).expect("read");
    std::fs::write(&federated.supergraph, good.replace("https://specs.apollo.dev/join/v0.3", "https://x/join/v9.9"))
        .expect("write");
    let refused = reload().await.expect("reload");
    assert_eq!(refused.status().as_u16(), 400);
    let body = refused.text().await.expect("body");
    assert!(body.contains("supergraph"), "{body}");
    let answer = federated.gateway.graphql("{ me { name } }").await;
    assert_eq!(answer["data"]["me"]["name"], "Ada Lovelace");
    // Without the inventory subgraph, its fields are gone from the schema.
    let urls: Vec<(&str, String)> = SUBGRAPHS
        .iter()
        .filter(|name| **name != "inventory")
        .map(|name| (*name, format!("http://127.0.0.1:{}/graphql", federated.ports[*name])))
        .collect();
    std::fs::write(&federated.supergraph, compose_with(&urls)).expect("write");
    assert_eq!(reload().await.expect("reload").status().as_u16(), 200);
    let answer = federated.gateway.graphql("{ topProducts { inStock } }").await;
    assert!(answer["errors"][0]["message"].as_str().unwrap_or_default().contains("inStock"), "{answer}");
    let answer = federated.gateway.graphql("{ topProducts(first: 1) { name } }").await;
    assert_eq!(answer["data"]["topProducts"][0]["name"], "Table");
}

/// The critics subgraph (reviews of the demo catalog's books by the demo's authors) composed
/// alone, served beside the demo registration and the authors service, with the catalog's Book
/// and the authors' Author declared entities.
async fn critics_gateway() -> (TestGateway, Node, tempfile::TempDir, u16) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/federation");
    let subgraphs = Node::start("subgraphs.mjs", &[fixtures.to_str().expect("utf8 path")]);
    let ports: BTreeMap<String, u16> = serde_json::from_str(&subgraphs.first_line).expect("the subgraphs' ports");
    let dir = tempfile::tempdir().expect("tempdir");
    let supergraph = dir.path().join("supergraph.graphql");
    let critics = format!("http://127.0.0.1:{}/graphql", ports["critics"]);
    std::fs::write(&supergraph, compose_with(&[("critics", critics)])).expect("write the supergraph");
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let authors = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    // The catalog's Book is the supergraph's Book, resolved by GetBook from its name (the
    // demo's schemas/demo/critics.graphql says so); the authors service's Author is the
    // supergraph's Author, resolved in batches by name.
    let entities = switchyard::schema::SchemaFile {
        path: "entities.graphql".into(),
        text: r#"
extend type Author @rest(source: "authors", path: "/authors", query: {name: "{keys}"}, select: "authors", batch: {key: "{parent.name}", match: "name"})
"#
        .into(),
    };
    let mut schemas = switchyard::demo::demo_schemas();
    schemas.push(entities);
    let sources = switchyard::snapshot::SnapshotSources {
        supergraph: Some(supergraph),
        embedded: vec![switchyard::demo::demo_registration().expect("demo")],
        embedded_schemas: schemas,
        backends: vec![
            switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] },
            switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec![authors.url()] },
        ],
        no_descriptor_dir: true,
        schemas: Some(PathBuf::from("/nonexistent")),
        ..Default::default()
    };
    let mut gateway = TestGateway::from_sources(sources, Some(backend)).await;
    gateway.adopt_authors(authors);
    (gateway, subgraphs, dir, ports["critics"])
}

#[tokio::test]
async fn a_grpc_message_and_a_subgraph_share_one_entity_both_ways() {
    let (gateway, subgraphs, _dir, _) = critics_gateway().await;

    // A subgraph's Review.book gets the message's fields from gRPC, one call per distinct book.
    let answer = gateway.graphql("{ latestReviews { stars book { name title author } } }").await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(
        answer["data"]["latestReviews"],
        json!([
            {"stars": 5, "book": {"name": "shelves/1/books/1", "title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin"}},
            {"stars": 4, "book": {"name": "shelves/1/books/2", "title": "A Wizard of Earthsea", "author": "Ursula K. Le Guin"}},
            {"stars": 3, "book": {"name": "shelves/1/books/1", "title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin"}},
        ])
    );
    assert_eq!(gateway.backend().calls("GetBook"), 2, "two distinct books, two calls");

    // A gRPC Book gains the subgraph's fields, fetched by its name.
    let answer =
        gateway.graphql(r#"{ getBook(name: "shelves/1/books/1") { title averageStars reviews { body } } }"#).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(
        answer["data"]["getBook"],
        json!({"title": "The Left Hand of Darkness", "averageStars": 4, "reviews": [{"body": "A landmark."}, {"body": "Slow going."}]})
    );
    // And both ways at once, nested: reviews of the book of each review.
    let answer = gateway.graphql("{ latestReviews { book { title reviews { stars } } } }").await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(
        answer["data"]["latestReviews"][1]["book"],
        json!({"title": "A Wizard of Earthsea", "reviews": [{"stars": 4}]})
    );

    // A REST type as an entity, by its batch form: one call for both critics.
    let before = gateway.authors().requests();
    let answer = gateway.graphql("{ latestReviews { critic { name born country } } }").await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(
        answer["data"]["latestReviews"][0]["critic"],
        json!({"name": "Richard Dawkins", "born": 1941, "country": "GB"})
    );
    assert_eq!(answer["data"]["latestReviews"][1]["critic"]["born"], 1929);
    assert_eq!(gateway.authors().requests() - before, 1, "one batched call for every critic");

    // And from a REST root: the authors service's answer gains the subgraph's fields (keyed by
    // the name in the JSON), whose reviews' books come from gRPC.
    let answer = gateway.graphql(r#"{ authors(country: "GB") { name critiques { stars book { title } } } }"#).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(
        answer["data"]["authors"],
        json!([{"name": "Richard Dawkins", "critiques": [
            {"stars": 5, "book": {"title": "The Left Hand of Darkness"}},
            {"stars": 3, "book": {"title": "The Left Hand of Darkness"}}
        ]}])
    );
    drop(subgraphs);
}

#[tokio::test]
async fn supergraph_fields_below_a_stitched_field_and_a_grpc_stream_are_fetched_as_entities() {
    let (gateway, _subgraphs, _dir, critics) = critics_gateway().await;
    let client = reqwest::Client::new();
    client.delete(format!("http://127.0.0.1:{critics}/log")).send().await.expect("clear");

    // REST root → stitched gRPC ListBooks → the subgraph's fields on each Book: every book of
    // every author in one _entities request, one representation per distinct book.
    let answer = gateway.graphql("{ authors { name books { title averageStars reviews { stars } } } }").await;
    let authors = answer["data"]["authors"].as_array().cloned().unwrap_or_default();
    let by_name = |name: &str| authors.iter().find(|a| a["name"] == name).cloned().unwrap_or(Json::Null);
    assert_eq!(
        by_name("Ursula K. Le Guin")["books"],
        json!([
            {"title": "The Left Hand of Darkness", "averageStars": 4, "reviews": [{"stars": 5}, {"stars": 3}]},
            {"title": "A Wizard of Earthsea", "averageStars": 4, "reviews": [{"stars": 4}]},
        ]),
        "{answer}"
    );
    // The subgraph's error for one book lands at that book's field, below the stitched field.
    let dawkins = authors.iter().position(|a| a["name"] == "Richard Dawkins").expect("Dawkins");
    assert_eq!(authors[dawkins]["books"], json!([{"title": "The Selfish Gene", "averageStars": null, "reviews": []}]));
    let errors = answer["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{answer}");
    assert_eq!(errors[0]["path"], json!(["authors", dawkins, "books", 0, "averageStars"]), "{answer}");
    assert!(errors[0]["message"].as_str().unwrap_or_default().contains("no stars"), "{answer}");
    let log: Json =
        client.get(format!("http://127.0.0.1:{critics}/log")).send().await.expect("log").json().await.expect("json");
    let requests = log.as_array().cloned().unwrap_or_default();
    assert_eq!(requests.len(), 1, "one entities request for every book of the level: {requests:?}");
    let representations = requests[0]["variables"]["r0"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<&str> = representations.iter().filter_map(|r| r["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["shelves/1/books/1", "shelves/1/books/2", "shelves/2/books/1"], "{requests:?}");

    // Nested: subgraph root → gRPC Book → stitched REST writer → stitched gRPC books → the
    // subgraph's fields again.
    let answer = gateway.graphql("{ latestReviews { book { writer { books { title averageStars } } } } }").await;
    assert!(answer.get("errors").is_none(), "{answer}");
    assert_eq!(
        answer["data"]["latestReviews"][1]["book"]["writer"]["books"],
        json!([{"title": "The Left Hand of Darkness", "averageStars": 4}, {"title": "A Wizard of Earthsea", "averageStars": 4}])
    );

    // A server-streaming gRPC subscription: each event's Book gets the subgraph's fields.
    let mut socket = crate::subscriptions::acknowledged(&gateway, "graphql-transport-ws").await;
    let query =
        r#"subscription { watchBooks(parent: "shelves/1") { kind book { title averageStars reviews { stars } } } }"#;
    crate::subscriptions::send(&mut socket, json!({"id": "w", "type": "subscribe", "payload": {"query": query}})).await;
    // The stream is open once its first event can arrive: update until one does.
    let update = r#"mutation { updateBook(book: {name: "shelves/1/books/2", title: "A Wizard of Earthsea"}, updateMask: "title") { title } }"#;
    let event = loop {
        assert_eq!(gateway.graphql(update).await["data"]["updateBook"]["title"], "A Wizard of Earthsea");
        match tokio::time::timeout(std::time::Duration::from_millis(500), crate::subscriptions::recv(&mut socket)).await
        {
            Ok(message) => break message,
            Err(_) => continue,
        }
    };
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(
        event["payload"],
        json!({"data": {"watchBooks": {"kind": "UPDATED", "book": {"title": "A Wizard of Earthsea", "averageStars": 4, "reviews": [{"stars": 4}]}}}})
    );
}

#[tokio::test]
async fn a_subgraph_subscription_streams_events_with_their_entities_resolved() {
    let (gateway, _subgraphs, _dir, _) = critics_gateway().await;
    let mut socket = crate::subscriptions::acknowledged(&gateway, "graphql-transport-ws").await;
    let query = "subscription { reviewAdded { stars book { title } critic { country } } }";
    crate::subscriptions::send(&mut socket, json!({"id": "s", "type": "subscribe", "payload": {"query": query}})).await;
    let mut events = Vec::new();
    loop {
        let message = crate::subscriptions::recv(&mut socket).await;
        if message["type"] == "complete" {
            break;
        }
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        events.push(message["payload"]["data"]["reviewAdded"].clone());
    }
    assert_eq!(
        events,
        [
            json!({"stars": 5, "book": {"title": "The Left Hand of Darkness"}, "critic": {"country": "GB"}}),
            json!({"stars": 4, "book": {"title": "A Wizard of Earthsea"}, "critic": {"country": "US"}}),
            json!({"stars": 3, "book": {"title": "The Left Hand of Darkness"}, "critic": {"country": "GB"}}),
        ]
    );
}

#[tokio::test]
async fn subgraph_fetches_carry_forwarded_headers_and_identical_ones_in_flight_are_shared() {
    let (gateway, _subgraphs, _dir, critics) = critics_gateway().await;
    let client = reqwest::Client::new();
    let log = || async {
        let log: Json = client
            .get(format!("http://127.0.0.1:{critics}/log"))
            .send()
            .await
            .expect("log")
            .json()
            .await
            .expect("json");
        log.as_array().cloned().unwrap_or_default()
    };
    client.delete(format!("http://127.0.0.1:{critics}/log")).send().await.expect("clear");
    // Headers: the client's authorization and request id reach the subgraph's entity fetch
    // (below a gRPC answer) as they reach every backend call.
    let answer = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("authorization", "Bearer critic-token")
        .header("x-request-id", "fed-1")
        .json(&json!({"query": r#"{ getBook(name: "shelves/1/books/2") { reviews { body } } }"#}))
        .send()
        .await
        .expect("query")
        .json::<Json>()
        .await
        .expect("json");
    assert_eq!(answer["data"]["getBook"]["reviews"][0]["body"], "Quietly wise.", "{answer}");
    let requests = log().await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["headers"]["authorization"], "Bearer critic-token");
    assert_eq!(requests[0]["headers"]["x-request-id"], "fed-1");
    // Five identical queries while the subgraph is slow: one fetch.
    client.put(format!("http://127.0.0.1:{critics}/delay?ms=300")).send().await.expect("delay");
    client.delete(format!("http://127.0.0.1:{critics}/log")).send().await.expect("clear");
    let answers = futures_util::future::join_all((0..5).map(|_| gateway.graphql("{ latestReviews { body } }"))).await;
    assert!(answers.iter().all(|a| a["data"]["latestReviews"][0]["body"] == "A landmark."), "{answers:?}");
    assert_eq!(log().await.len(), 1, "identical subgraph fetches in flight are shared");
}

/// A subgraph that answers every request with the status and body set in its cell.
async fn broken_subgraph() -> (String, std::sync::Arc<std::sync::Mutex<(u16, String)>>) {
    let answer = std::sync::Arc::new(std::sync::Mutex::new((200, String::new())));
    let cell = answer.clone();
    let router = axum::Router::new().route(
        "/graphql",
        axum::routing::post(move || {
            let (status, body) = cell.lock().expect("lock").clone();
            async move {
                let status = axum::http::StatusCode::from_u16(status).expect("status");
                (status, [("content-type", "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/graphql", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, answer)
}

#[tokio::test]
async fn a_broken_subgraph_answer_is_an_error_naming_the_subgraph_and_the_rest_is_served() {
    let (url, answer) = broken_subgraph().await;
    let federated = Federated::start_elsewhere(&[("inventory", url)]).await;
    // (status, inventory's answer to the _entities request, what the error says)
    let table = [
        (200, "not json at all", "not JSON"),
        (200, r#"[1, 2]"#, "subgraph inventory's answer has no list of Product entities"),
        (200, r#"{"data": {"e0": "oops"}}"#, "subgraph inventory's answer has no list of Product entities"),
        (
            200,
            r#"{"data": {"e0": [{"inStock": true}]}}"#,
            "subgraph inventory answered 1 entities for 3 representations",
        ),
        (
            200,
            r#"{"data": {"e0": null}, "errors": [{"message": "inventory is sad", "path": ["e0"]}]}"#,
            "inventory is sad",
        ),
        (
            200,
            r#"{"data": {"e0": [null, 7, "x"]}}"#,
            "subgraph inventory answered 7 where a Product entity (or null) belongs",
        ),
        (500, "database at 10.0.0.3 is down", "backend inventory answered HTTP 500"),
        (503, "", "inventory"),
    ];
    for (status, body, says) in table {
        *answer.lock().expect("lock") = (status, body.to_owned());
        let (code, reply, _) = federated
            .gateway
            .call("POST", "/graphql", &json!({"query": "{ topProducts { name inStock } }"}).to_string())
            .await;
        assert_eq!(code, 200, "{body}: {reply}");
        let products = reply["data"]["topProducts"].as_array().cloned().unwrap_or_default();
        assert_eq!(products.len(), 3, "{body}: the products subgraph's part is served: {reply}");
        assert_eq!(products[2], json!({"name": "Chair", "inStock": null}), "{body}: {reply}");
        let errors = reply["errors"].as_array().cloned().unwrap_or_default();
        assert!(errors.iter().any(|e| e["message"].as_str().unwrap_or_default().contains(says)), "{body}: {reply}");
        assert!(!reply.to_string().contains("10.0.0.3"), "internals stay inside: {reply}");
        assert!(errors.iter().all(|e| e["path"][0] == "topProducts"), "{body}: errors at their paths: {reply}");
    }
}

#[tokio::test]
async fn a_graphql_source_with_interfaces_and_unions_answers_as_the_source_itself() {
    // The library subgraph as a plain GraphQL source (introspected, not federated): the
    // gateway's sub-operations must select each object type's fields by fragment.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/federation");
    let subgraphs = Node::start("subgraphs.mjs", &[fixtures.to_str().expect("utf8 path")]);
    let ports: BTreeMap<String, u16> = serde_json::from_str(&subgraphs.first_line).expect("the subgraphs' ports");
    let url = format!("http://127.0.0.1:{}/graphql", ports["library"]);
    let dir = tempfile::tempdir().expect("tempdir");
    // A person (a member of the union) gains a field from the demo's REST authors service.
    let schema = r#"
extend schema @source(name: "library", kind: GRAPHQL)
extend schema @source(name: "authors", kind: REST)
type Author { id: ID! name: String! born: Int }
extend type Person {
  author: Author
    @rest(source: "authors", path: "/authors", query: {name: "{keys}"}, select: "authors", batch: {key: "{parent.name}", match: "name"})
}
"#;
    crate::support::write_files(dir.path(), &[("schemas/library.graphql", schema)]);
    let authors = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let sources = switchyard::snapshot::SnapshotSources {
        no_descriptor_dir: true,
        schemas: Some(dir.path().join("schemas")),
        backends: vec![
            switchyard::snapshot::BackendFlag { name: "library".into(), urls: vec![url.clone()] },
            switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec![authors.url()] },
        ],
        ..Default::default()
    };
    let mut gateway = TestGateway::from_sources(sources, None).await;
    gateway.adopt_authors(authors);
    // The stitched field, on values of its type only, below the union.
    let stitched = gateway
        .graphql(r#"{ search(text: "Le Guin") { __typename ... on Person { name author { born } } ... on Book { pages } } }"#)
        .await;
    assert_eq!(
        stitched,
        json!({"data": {"search": [{"__typename": "Person", "name": "Ursula K. Le Guin", "author": {"born": 1929}}]}})
    );
    let client = reqwest::Client::new();
    let queries = [
        "{ media { __typename id title ... on Book { pages } ... on Film { minutes } } }",
        "{ search(text: \"\") { ... on Film { t: title } ... on Person { t: name } ... on Book { __typename } } }",
        "{ item(id: \"b2\") { ...F } } fragment F on Media { id ... on Book { pages } }",
    ];
    for query in queries {
        let ours = gateway.graphql(query).await;
        let theirs: Json = client
            .post(&url)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        assert!(theirs.get("errors").is_none(), "{query}: {theirs}");
        assert_eq!(ours, theirs, "{query}");
    }
}

#[tokio::test]
async fn a_fragment_deferred_inside_an_interface_arrives_later_for_the_values_of_its_type() {
    let federated = Federated::start_composing(&MEDIA_SUBGRAPHS, &[]).await;
    let query = r#"{ media { id ... on Book @defer(label: "pages") { pages price } } }"#;
    let response = federated
        .gateway
        .client
        .post(format!("{}/graphql", federated.gateway.base))
        .header("accept", "multipart/mixed;deferSpec=20220824")
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("post");
    let text = tokio::time::timeout(HANG, response.text()).await.expect("in time").expect("body");
    let parts: Vec<Json> = text
        .trim_end_matches("\r\n--graphql--\r\n")
        .split("\r\n--graphql\r\n")
        .filter(|p| !p.is_empty())
        .map(|p| serde_json::from_str(p.split_once("\r\n\r\n").expect("headers then body").1).expect("json"))
        .collect();
    assert_eq!(
        parts,
        [
            json!({"data": {"media": [{"id": "b1"}, {"id": "f1"}, {"id": "b2"}]}, "hasNext": true}),
            json!({"incremental": [
                {"data": {"pages": 412, "price": 9.99}, "path": ["media", 0], "label": "pages"},
                {"data": {"pages": 474, "price": 5.5}, "path": ["media", 2], "label": "pages"}
            ], "hasNext": false}),
        ]
    );
}

#[tokio::test]
async fn a_stitched_field_on_a_supergraph_type_reads_its_key_where_the_fetch_has_it() {
    // Person (the library subgraph's) gains an author from the REST authors service, keyed by
    // its name; the client selects name too, so the subgraph fetch carries it once, plainly.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/federation");
    let subgraphs = Node::start("subgraphs.mjs", &[fixtures.to_str().expect("utf8 path")]);
    let ports: BTreeMap<String, u16> = serde_json::from_str(&subgraphs.first_line).expect("the subgraphs' ports");
    let urls: Vec<(&str, String)> =
        MEDIA_SUBGRAPHS.iter().map(|name| (*name, format!("http://127.0.0.1:{}/graphql", ports[*name]))).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let supergraph = dir.path().join("supergraph.graphql");
    std::fs::write(&supergraph, compose_with(&urls)).expect("write the supergraph");
    let schema = r#"
extend schema @source(name: "authors", kind: REST)
type Writer { name: String! born: Int }
extend type Person {
  author: Writer
    @rest(source: "authors", path: "/authors", query: {name: "{keys}"}, select: "authors", batch: {key: "{parent.name}", match: "name"})
}
"#;
    crate::support::write_files(dir.path(), &[("schemas/people.graphql", schema)]);
    let authors = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let sources = switchyard::snapshot::SnapshotSources {
        supergraph: Some(supergraph),
        no_descriptor_dir: true,
        schemas: Some(dir.path().join("schemas")),
        backends: vec![switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec![authors.url()] }],
        ..Default::default()
    };
    let mut gateway = TestGateway::from_sources(sources, None).await;
    gateway.adopt_authors(authors);
    let answer = gateway.graphql(r#"{ search(text: "Le Guin") { ... on Person { name author { born } } } }"#).await;
    assert_eq!(answer, json!({"data": {"search": [{"name": "Ursula K. Le Guin", "author": {"born": 1929}}]}}));
    let fetched = reqwest::get(format!("http://127.0.0.1:{}/log", ports["library"])).await.expect("log");
    let log: Json = fetched.json().await.expect("json");
    let query = log[0]["query"].as_str().unwrap_or_default();
    assert!(query.contains("name") && !query.contains("_sy_name"), "the name is fetched once: {query}");
}

#[tokio::test]
async fn a_projected_supergraph_answer_reads_the_same_over_every_transport() {
    // A supergraph answer is written straight from its compact form: it must read the same as
    // JSON, in a batch, under the multipart Accept without deferred fragments and over a
    // WebSocket, errors (codes counted in metrics) included.
    let (url, answer) = broken_subgraph().await;
    *answer.lock().expect("lock") =
        (200, r#"{"data": {"e0": [{"inStock": true}, {"inStock": "yes"}, {"inStock": false}]}}"#.into());
    let federated = Federated::start_elsewhere(&[("inventory", url)]).await;
    let query = "{ topProducts { upc name inStock } __typename }";
    let expected = json!({
        "errors": [{
            "message": "Boolean cannot represent a string: \"yes\"",
            "locations": [{"line": 1, "column": 3}],
            "path": ["topProducts", 1, "inStock"],
            "extensions": {"code": "UPSTREAM_ERROR"}
        }],
        "data": {"topProducts": [
            {"upc": "1", "name": "Table", "inStock": true},
            {"upc": "2", "name": "Couch", "inStock": null},
            {"upc": "3", "name": "Chair", "inStock": false}
        ], "__typename": "Query"}
    });
    let gateway = &federated.gateway;
    let (status, plain, headers) = gateway.call("POST", "/graphql", &json!({"query": query}).to_string()).await;
    assert_eq!((status, &plain), (200, &expected), "{plain}");
    assert_eq!(headers["content-type"], "application/json");

    let batch = json!([{"query": query}, {"query": "{ topProducts { upc } }"}]).to_string();
    let (status, answers, _) = gateway.call("POST", "/graphql", &batch).await;
    assert_eq!(status, 200);
    assert_eq!(answers[0], expected);
    assert_eq!(answers[1], json!({"data": {"topProducts": [{"upc": "1"}, {"upc": "2"}, {"upc": "3"}]}}));

    let multipart = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("accept", "multipart/mixed;deferSpec=20220824, application/json")
        .json(&json!({"query": query}))
        .send()
        .await
        .expect("request");
    assert_eq!(multipart.status(), 200);
    assert_eq!(multipart.json::<Json>().await.expect("json"), expected);

    let mut socket = crate::subscriptions::acknowledged(gateway, "graphql-transport-ws").await;
    crate::subscriptions::send(&mut socket, json!({"id": "q", "type": "subscribe", "payload": {"query": query}})).await;
    let next = crate::subscriptions::recv(&mut socket).await;
    assert_eq!((&next["type"], &next["payload"]), (&json!("next"), &expected), "{next}");
    assert_eq!(crate::subscriptions::recv(&mut socket).await["type"], "complete");

    // A null where the schema says non-null (`Product.upc: String!`) nulls the nearest
    // nullable parent: what was written of that product is replaced by null, nothing else.
    *answer.lock().expect("lock") =
        (200, r#"{"data": {"e0": [{"inStock": true}, {"upc": null, "inStock": true}, {"inStock": false}]}}"#.into());
    let nulled = gateway.graphql("{ topProducts { name upc inStock } }").await;
    assert_eq!(
        nulled,
        json!({
            "errors": [{
                "message": "Cannot return null for non-nullable field upc.",
                "locations": [{"line": 1, "column": 3}],
                "path": ["topProducts", 1, "upc"],
                "extensions": {"code": "UPSTREAM_ERROR"}
            }],
            "data": {"topProducts": [
                {"name": "Table", "upc": "1", "inStock": true},
                null,
                {"name": "Chair", "upc": "3", "inStock": false}
            ]}
        })
    );
}
