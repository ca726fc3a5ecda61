//! The cache on the request path: a whole GraphQL response answered from the cache end to end
//! (HTTP POST /graphql to the in-process gateway over loopback, the backends never called after
//! the first), against the same query executed against the backends; and the key of a large
//! query (a 200-line document with variables) hashed and looked up in the store.
//! Run: `cargo bench --bench cache`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::snapshot::{BackendFlag, SnapshotSources, build_snapshot};

const QUERY: &str = r#"{ listBooks(parent: "shelves/-") { books { title writer { name born } } } }"#;
const RULES: &str =
    "[[cache.rules]]\nfields = [\"Query.listBooks\", \"Book.writer\"]\nttl = \"1h\"\nscope = \"public\"\n";

fn cache(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (bases, client, _servers) = runtime.block_on(async {
        let loopback = "127.0.0.1:0".parse().expect("addr");
        let backend = switchyard::demo::start_demo_backend(loopback).await.expect("catalog");
        let authors = switchyard::demo::start_demo_authors(loopback).await.expect("authors");
        let mut bases = Vec::new();
        let mut servers = Vec::new();
        for (name, config) in [("cached", RULES), ("uncached", "")] {
            let file = dir.path().join(format!("{name}.toml"));
            std::fs::write(&file, config).expect("write config");
            let sources = SnapshotSources {
                config_file: Some(file),
                embedded: vec![switchyard::demo::demo_registration().expect("demo")],
                embedded_schemas: switchyard::demo::demo_schemas(),
                no_descriptor_dir: true,
                schemas: Some("/nonexistent".into()),
                backends: vec![
                    BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] },
                    BackendFlag { name: "authors".into(), urls: vec![authors.url()] },
                ],
                listen: Some(loopback),
                admin: Some(loopback),
                ..SnapshotSources::default()
            };
            let snapshot = build_snapshot(&sources, 1).expect("snapshot");
            let gateway = switchyard::gateway::Gateway::new(snapshot, sources);
            let server = switchyard::server::start_server(gateway).await.expect("server");
            bases.push((name, format!("http://{}/graphql", server.gateway_addr)));
            servers.push(server);
        }
        // The backends live as long as the runtime; leaking them keeps this bench short.
        std::mem::forget(backend);
        std::mem::forget(authors);
        (bases, reqwest::Client::new(), servers)
    });
    let body = serde_json::json!({ "query": QUERY }).to_string();
    for (name, base) in &bases {
        c.bench_function(&format!("cache/graphql_response_{name}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let response = client
                        .post(base)
                        .header("content-type", "application/json")
                        .body(black_box(body.clone()))
                        .send()
                        .await
                        .expect("request");
                    let bytes = response.bytes().await.expect("body");
                    assert!(!bytes.windows(8).any(|w| w == b"\"errors\""), "{}", String::from_utf8_lossy(&bytes));
                    bytes.len()
                })
            })
        });
    }

    // The key of a 200-line query with variables, and a lookup under it.
    let mut large = String::from("query Shelf($shelf: String!, $size: Int) {\n");
    for i in 0..24 {
        large.push_str(&format!(
            "  b{i}: getBook(name: \"shelves/1/books/{i}\") {{\n    name\n    title\n    isbn\n    publishTime\n    labels {{\n      key\n    }}\n  }}\n"
        ));
    }
    large.push_str("  listBooks(parent: $shelf, pageSize: $size) {\n    books { title }\n  }\n}\n");
    let variables = serde_json::json!({"shelf": "shelves/1", "size": 10}).as_object().cloned().unwrap_or_default();
    let store = switchyard::cache::Cache::new(64 << 20);
    let vary: Arc<[(String, Vec<u8>)]> = Arc::from(vec![("accept-language".to_owned(), b"en".to_vec())]);
    c.bench_function("cache/key_and_lookup_200_line_query", |b| {
        b.iter(|| {
            let key = switchyard::cache::Key::graphql(black_box(&large), Some("Shelf"), &variables, vary.clone(), None);
            store.get(&key).is_some()
        })
    });
}

criterion_group!(benches, cache);
criterion_main!(benches);
