//! Executing stitched GraphQL queries end to end against the in-process demo: the gateway on a
//! loopback port, the tonic catalog and the axum authors service behind it. Each iteration is
//! one HTTP POST /graphql whose answer stitches REST authors into gRPC books (batched), and
//! gRPC books into REST authors (one call per distinct author).
//! Run: `cargo bench --bench graphql_execute`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard::snapshot::{BackendFlag, SnapshotSources, build_snapshot};

const TWO_LEVELS: &str = r#"{ listBooks(parent: "shelves/-") { books { title writer { name born } } } }"#;
const THREE_LEVELS: &str =
    r#"{ listBooks(parent: "shelves/-") { books { title writer { name books { title writer { id } } } } } }"#;

fn graphql_execute(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (base, client, _server) = runtime.block_on(async {
        let loopback = "127.0.0.1:0".parse().expect("addr");
        let backend = switchyard::demo::start_demo_backend(loopback).await.expect("catalog");
        let authors = switchyard::demo::start_demo_authors(loopback).await.expect("authors");
        let sources = SnapshotSources {
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
        // The backends live as long as the runtime; leaking them keeps this bench short.
        std::mem::forget(backend);
        std::mem::forget(authors);
        (format!("http://{}/graphql", server.gateway_addr), reqwest::Client::new(), server)
    });
    for (name, query) in
        [("graphql_execute/stitched_two_levels", TWO_LEVELS), ("graphql_execute/stitched_three_levels", THREE_LEVELS)]
    {
        let body = serde_json::json!({ "query": query }).to_string();
        c.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let response = client
                        .post(&base)
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
}

criterion_group!(benches, graphql_execute);
criterion_main!(benches);
