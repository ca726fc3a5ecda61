//! Federation on the request path: building one `_entities` batch (representations with a
//! compound key and required fields, equal ones sent once) for 100 parents; and planning the
//! public gateways benchmark's heavy query across its four subgraphs (the document parsed once
//! and cached, as served: validation, normalisation and the federation planner each time);
//! parsing a subgraph's answer into the compact tree; and projecting merged answers (100
//! products with reviews and authors; 100 interface values of two object types) onto the
//! client's selection as JSON text.
//! Run: `cargo bench --bench federation` (the supergraph is composed with tests/npm's tool).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use switchyard::plan::entities::EntityBatch;
use switchyard::schema::FieldSet;
use switchyard::tree::Value;

/// The benchmark's heavy nested query (graphql-gateways-benchmark, federation scenario).
const HEAVY_QUERY: &str = include_str!("../tests/fixtures/federation/heavy-query.graphql");

/// The fixture subgraphs `names` composed by the npm composition tool.
fn supergraph(names: &[&str]) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = names
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
        .expect("node runs ((cd tests/npm && npm ci))");
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
    let snapshot = snapshot_of(dir.path(), &["accounts", "inventory", "products", "reviews"]);
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

/// A snapshot serving the fixture subgraphs `names` (composed into `dir`).
fn snapshot_of(dir: &std::path::Path, names: &[&str]) -> switchyard::snapshot::Snapshot {
    let file = dir.join(format!("{}.graphql", names.join("-")));
    std::fs::write(&file, supergraph(names)).expect("write");
    let sources = switchyard::snapshot::SnapshotSources {
        supergraph: Some(file),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        ..Default::default()
    };
    switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot")
}

/// The selection and type of `query`'s one root field, as planned against `snapshot`.
fn root_selection(
    snapshot: &switchyard::snapshot::Snapshot,
    query: &str,
) -> (switchyard::operation::SelectionSet, switchyard::schema::TypeRef) {
    let caches = switchyard::ingress::GraphqlCaches::default();
    let plan = switchyard::ingress::plan_query(snapshot, &caches, query, None, &serde_json::Map::new()).expect("plans");
    let fetch = plan.fetches.into_iter().next().expect("one root fetch");
    let switchyard::operation::Selection::Graphql { fields, .. } = fetch.selection else { panic!("a GraphQL fetch") };
    (std::sync::Arc::unwrap_or_clone(fields), fetch.output.expect("a root field's type"))
}

fn projection(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Concrete types: products with their reviews and authors, merged from three subgraphs
    // (with the planner's aliased key copies beside the client's fields).
    let snapshot = snapshot_of(dir.path(), &["accounts", "inventory", "products", "reviews"]);
    let query = "{ topProducts { upc name price weight inStock shippingEstimate reviews { id body author { id name username } } } }";
    let (selection, ty) = root_selection(&snapshot, query);
    let products: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let review = |n: usize| json!({"id": format!("r{i}-{n}"), "body": "Love it! Would buy again.", "author": {"_sy___typename": "User", "_sy_id": format!("{n}"), "id": format!("{n}"), "name": "Ada Lovelace", "username": "@ada"}});
            json!({"_sy___typename": "Product", "_sy_upc": i.to_string(), "upc": i.to_string(), "name": format!("Product number {i}"), "price": 899 + i, "weight": 100, "_sy_price": 899 + i, "_sy_weight": 100, "inStock": i % 3 != 0, "shippingEstimate": 50, "reviews": [review(1), review(2)]})
        })
        .collect();
    let answer = Value::from_json(serde_json::Value::Array(products));
    let (text, errors, complete) = switchyard::execute::project_answer(&answer, &ty, &selection, &snapshot.graphql);
    assert!(errors.is_empty() && complete, "{errors:?}");
    assert!(String::from_utf8_lossy(&text).starts_with(r#"[{"upc":"0","name":"Product number 0","price":899"#));
    c.bench_function("federation/project_100_products", |b| {
        b.iter(|| switchyard::execute::project_answer(black_box(&answer), &ty, &selection, &snapshot.graphql))
    });
    // Abstract types: an interface list whose values are of two object types, each with its
    // own fields.
    let media = snapshot_of(dir.path(), &["library", "ratings", "shops"]);
    let (selection, ty) =
        root_selection(&media, "{ media { __typename id title ... on Book { pages } ... on Film { minutes } } }");
    let values: Vec<serde_json::Value> = (0..100)
        .map(|i| match i % 2 {
            0 => json!({"_sy___typename": "Book", "__typename": "Book", "id": i.to_string(), "title": "A Wizard of Earthsea", "pages": 183}),
            _ => json!({"_sy___typename": "Film", "__typename": "Film", "id": i.to_string(), "title": "Tales from Earthsea", "minutes": 115}),
        })
        .collect();
    let answer = Value::from_json(serde_json::Value::Array(values));
    let (text, errors, complete) = switchyard::execute::project_answer(&answer, &ty, &selection, &media.graphql);
    assert!(errors.is_empty() && complete, "{errors:?}");
    let expected = r#"[{"__typename":"Book","id":"0","title":"A Wizard of Earthsea","pages":183},{"__typename":"Film""#;
    assert!(String::from_utf8_lossy(&text).starts_with(expected), "{}", String::from_utf8_lossy(&text));
    c.bench_function("federation/project_100_interface_values", |b| {
        b.iter(|| switchyard::execute::project_answer(black_box(&answer), &ty, &selection, &media.graphql))
    });
}

criterion_group!(benches, federation, projection);
criterion_main!(benches);
