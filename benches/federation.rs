//! Federation on the request path: building one `_entities` batch (representations with a
//! compound key and required fields, equal ones sent once) for 100 parents; and planning the
//! public gateways benchmark's heavy query across its four subgraphs (the document parsed once
//! and cached, as served: validation, normalisation and the federation planner each time).
//! Run: `cargo bench --bench federation` (the supergraph is composed with tests/npm's tool).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use switchyard::plan::entities::EntityBatch;
use switchyard::schema::FieldSet;
use switchyard::tree::Value;

/// The benchmark's heavy nested query (graphql-gateways-benchmark, federation scenario).
const HEAVY_QUERY: &str = include_str!("../tests/fixtures/federation/heavy-query.graphql");

/// The fixture subgraphs composed by the npm composition tool.
fn supergraph() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = ["accounts", "inventory", "products", "reviews"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let file = root.join(format!("tests/fixtures/federation/{name}.graphql"));
            format!("{name}=http://127.0.0.1:{}/graphql={}", 4001 + i, file.display())
        })
        .collect();
    let out = std::process::Command::new("node")
        .arg(root.join("tests/npm/compose.mjs"))
        .args(&args)
        .output()
        .expect("node runs (npm ci --prefix tests/npm)");
    assert!(out.status.success(), "composition failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

fn federation(c: &mut Criterion) {
    let key = FieldSet::parse("sku variant { id }").expect("key");
    let requires = FieldSet::parse("price weight").expect("requires");
    // 100 parents, 50 distinct products.
    let parents: Vec<Value> = (0..100)
        .map(|i| {
            let n = i % 50;
            Value::from_json(
                json!({"sku": format!("s{n}"), "variant": {"id": format!("v{n}")}, "price": n * 10, "weight": n, "name": "x"}),
            )
        })
        .collect();
    c.bench_function("federation/batch_100_parents", |b| {
        b.iter(|| {
            let objects = black_box(&parents).iter().filter_map(Value::as_object);
            EntityBatch::new(objects, "Product", &key, Some(&requires), "")
        })
    });
    // The common case: a plain key (`upc`) and plain required fields, written as they are.
    let upc = FieldSet::parse("upc").expect("key");
    let plain: Vec<Value> = (0..100)
        .map(|i| {
            let n = i % 50;
            Value::from_json(json!({"_sy_upc": format!("u{n}"), "_sy_price": n * 10, "_sy_weight": n, "name": "x"}))
        })
        .collect();
    c.bench_function("federation/batch_100_parents_plain_key", |b| {
        b.iter(|| {
            let objects = black_box(&plain).iter().filter_map(Value::as_object);
            EntityBatch::new(objects, "Product", &upc, Some(&requires), "_sy_")
        })
    });

    // A subgraph's `_entities` answer for 100 products with their reviews, parsed.
    let answer = entities_answer(100);
    c.bench_function("federation/parse_entities_answer_100", |b| {
        b.iter(|| Value::from_slice(black_box(&answer)).expect("parses"))
    });
    // The same into serde_json's value, as the executor parsed answers before the tree.
    c.bench_function("federation/parse_entities_answer_100_serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&answer)).expect("parses"))
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("supergraph.graphql");
    std::fs::write(&file, supergraph()).expect("write");
    let sources = switchyard::snapshot::SnapshotSources {
        supergraph: Some(file),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        ..Default::default()
    };
    let snapshot = switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot");
    let caches = switchyard::ingress::GraphqlCaches::default();
    let variables = serde_json::Map::new();
    c.bench_function("federation/plan_heavy_query", |b| {
        b.iter(|| {
            let plan = switchyard::ingress::plan_query(&snapshot, &caches, black_box(HEAVY_QUERY), None, &variables)
                .expect("plans");
            plan.fetches.len()
        })
    });
}

/// An `_entities` answer as the products subgraph writes it for `n` representations.
fn entities_answer(n: usize) -> Vec<u8> {
    let entities: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            json!({
                "_sy___typename": "Product",
                "upc": i.to_string(),
                "name": format!("Product number {i}"),
                "price": 899 + i,
                "weight": 100,
                "reviews": [
                    {"id": format!("r{i}"), "body": "Love it! Would buy again, and the description says \"sturdy\".", "author": {"_sy___typename": "User", "id": "1"}},
                    {"id": format!("s{i}"), "body": "Too expensive.", "author": {"_sy___typename": "User", "id": "2"}}
                ]
            })
        })
        .collect();
    serde_json::to_vec(&json!({"data": {"e0": entities}})).expect("writes")
}

criterion_group!(benches, federation);
criterion_main!(benches);
