//! Differential: the same query against two gateways that must answer alike.
//!
//! - the monolith: one gateway with the catalog over gRPC and the authors over REST, stitched
//!   by the demo's schema file;
//! - the stitched: a gateway that has no descriptors at all, reaching the catalog as a GraphQL
//!   source (a third gateway serving the catalog over GraphQL) and the same authors over REST,
//!   stitched both ways by its own schema file.
//!
//! The bytes pick the query: roots (`getBook`, `listBooks`), aliases, fields, and how deep the
//! Book → writer → books → writer links go. `data` must be equal, and so must the paths of the
//! errors (their wording may name different hops). `DIFFERENTIAL_SHOW=1` prints each query and
//! answer.

use std::sync::OnceLock;

const STITCH: &str = r#"
extend schema @source(name: "catalog", kind: GRAPHQL, schema: "catalog.sdl.graphql")
extend schema @source(name: "authors", kind: REST)

type Author {
  id: ID!
  name: String!
  born: Int
  books: [Book!]!
    @graphql(source: "catalog", field: "listBooks", arguments: {parent: "shelves/-", author: "{parent.name}", pageSize: 100}, select: "books")
}

extend type Book {
  writer: Author
    @rest(source: "authors", path: "/authors", query: {name: "{keys}"}, select: "authors", batch: {key: "{parent.author}", match: "name"})
}
"#;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    monolith: String,
    stitched: String,
}

async fn serve(sources: switchyard::snapshot::SnapshotSources) -> String {
    let mut sources = sources;
    sources.listen = Some("127.0.0.1:0".parse().expect("addr"));
    sources.admin = Some("127.0.0.1:0".parse().expect("addr"));
    let building = sources.clone();
    let snapshot = tokio::task::spawn_blocking(move || switchyard::snapshot::build_snapshot(&building, 1))
        .await
        .expect("build")
        .expect("snapshot");
    let server =
        switchyard::server::start_server(switchyard::gateway::Gateway::new(snapshot, sources)).await.expect("server");
    let url = format!("http://{}/graphql", server.gateway_addr);
    std::mem::forget(server);
    url
}

fn flag(name: &str, url: String) -> switchyard::snapshot::BackendFlag {
    switchyard::snapshot::BackendFlag { name: name.into(), urls: vec![url] }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        super::watch_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let (monolith, stitched) = runtime.block_on(async {
            let demo = || switchyard::demo::demo_registration().expect("demo");
            let authors =
                switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
            let catalog =
                switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("catalog");
            let remote_catalog =
                switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("catalog");
            let authors_schema =
                switchyard::demo::demo_schemas().into_iter().filter(|s| s.path.ends_with("authors.graphql")).collect();
            let monolith = serve(switchyard::snapshot::SnapshotSources {
                embedded: vec![demo()],
                embedded_schemas: authors_schema,
                no_descriptor_dir: true,
                schemas: Some("/nonexistent".into()),
                backends: vec![flag("catalog.v1", catalog.url()), flag("authors", authors.url())],
                ..Default::default()
            })
            .await;
            let remote = serve(switchyard::snapshot::SnapshotSources {
                embedded: vec![demo()],
                no_descriptor_dir: true,
                schemas: Some("/nonexistent".into()),
                backends: vec![flag("catalog.v1", remote_catalog.url())],
                ..Default::default()
            })
            .await;
            let registry = switchyard::registry::merge_registrations(vec![demo()]).expect("merges");
            let (schema, _) = switchyard::schema::generate_schema(
                &registry.pool,
                &["catalog.v1.Catalog".to_owned()],
                &switchyard::config::GraphqlConfig::default(),
            );
            let dir = std::env::temp_dir().join(format!("switchyard-differential-{}", std::process::id()));
            std::fs::create_dir_all(dir.join("schemas")).expect("mkdir");
            std::fs::write(dir.join("schemas/stitch.graphql"), STITCH).expect("write");
            std::fs::write(dir.join("schemas/catalog.sdl.graphql"), schema.to_sdl()).expect("write");
            let stitched = serve(switchyard::snapshot::SnapshotSources {
                no_descriptor_dir: true,
                schemas: Some(dir.join("schemas")),
                backends: vec![flag("catalog", remote), flag("authors", authors.url())],
                ..Default::default()
            })
            .await;
            std::mem::forget((authors, catalog, remote_catalog));
            (monolith, stitched)
        });
        Fixture { runtime, client: reqwest::Client::new(), monolith, stitched }
    })
}

/// Reads choices from the input, then zeros.
struct Choices<'a>(std::slice::Iter<'a, u8>);

impl Choices<'_> {
    fn pick(&mut self, n: usize) -> usize {
        usize::from(self.0.next().copied().unwrap_or(0)) % n
    }
}

const BOOK_FIELDS: &[&str] = &["name", "title", "author", "isbn", "genre", "rating", "publishTime", "inStock", "tags"];
const AUTHOR_FIELDS: &[&str] = &["id", "name", "born"];
const BOOKS: &[&str] = &["shelves/1/books/1", "shelves/1/books/2", "shelves/2/books/1", "shelves/9/books/9", "nope"];
const SHELVES: &[&str] = &["shelves/1", "shelves/2", "shelves/-", "shelves/9", "bad"];

fn fields(choices: &mut Choices<'_>, menu: &[&str], out: &mut String) {
    let count = 1 + choices.pick(4);
    for _ in 0..count {
        let field = menu[choices.pick(menu.len())];
        if choices.pick(4) == 0 {
            out.push_str(&format!("a{}: ", choices.pick(3)));
        }
        out.push_str(field);
        out.push(' ');
    }
}

fn book(choices: &mut Choices<'_>, depth: usize, out: &mut String) {
    out.push_str("{ ");
    fields(choices, BOOK_FIELDS, out);
    if depth < 3 && choices.pick(2) == 0 {
        out.push_str("writer ");
        author(choices, depth + 1, out);
    }
    out.push_str("} ");
}

fn author(choices: &mut Choices<'_>, depth: usize, out: &mut String) {
    out.push_str("{ ");
    fields(choices, AUTHOR_FIELDS, out);
    if depth < 3 && choices.pick(2) == 0 {
        out.push_str("books ");
        book(choices, depth + 1, out);
    }
    out.push_str("} ");
}

/// The query the bytes describe.
fn query(data: &[u8]) -> String {
    let mut choices = Choices(data.iter());
    let mut out = String::from("{ ");
    for root in 0..=choices.pick(3) {
        if choices.pick(2) == 0 {
            out.push_str(&format!("r{root}: getBook(name: \"{}\") ", BOOKS[choices.pick(BOOKS.len())]));
            book(&mut choices, 0, &mut out);
        } else {
            out.push_str(&format!(
                "r{root}: listBooks(parent: \"{}\") {{ totalSize books ",
                SHELVES[choices.pick(SHELVES.len())]
            ));
            book(&mut choices, 0, &mut out);
            out.push_str("} ");
        }
    }
    out.push('}');
    out
}

fn error_paths(answer: &serde_json::Value) -> Vec<String> {
    let mut paths: Vec<String> = answer["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["path"].to_string()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
}

pub(crate) fn run(data: &[u8]) {
    let fixture = fixture();
    let query = query(data);
    let body = serde_json::json!({ "query": query }).to_string();
    let (monolith, stitched) = fixture.runtime.block_on(async {
        let ask =
            |url: &str| fixture.client.post(url).header("content-type", "application/json").body(body.clone()).send();
        let (a, b) = tokio::join!(ask(&fixture.monolith), ask(&fixture.stitched));
        let a: serde_json::Value = a.expect("monolith").json().await.expect("json");
        let b: serde_json::Value = b.expect("stitched").json().await.expect("json");
        (a, b)
    });
    assert_eq!(monolith["data"], stitched["data"], "{query}\nmonolith: {monolith}\nstitched: {stitched}");
    assert_eq!(error_paths(&monolith), error_paths(&stitched), "{query}\nmonolith: {monolith}\nstitched: {stitched}");
    if std::env::var("DIFFERENTIAL_SHOW").is_ok() {
        eprintln!("{query}\n=> {monolith}");
    }
    super::assert_no_panic("the differential");
}
