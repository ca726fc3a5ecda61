//! GraphQL on the request path before any backend call: limits, parse, validate, normalise and
//! plan a 200-line query against the demo schema. Run: `cargo bench --bench graphql_plan`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

#[path = "support/demo_snapshot.rs"]
mod demo_snapshot;

/// 25 aliased root fields of 8 lines each, through a named fragment.
fn query_of_200_lines() -> String {
    let mut query = String::from("query Shelf($shelf: String!) {\n");
    for i in 0..24 {
        query.push_str(&format!(
            "  b{i}: getBook(name: \"shelves/1/books/{i}\") {{\n    ...Card\n    isbn\n    publishTime\n    labels {{\n      key\n    }}\n  }}\n"
        ));
    }
    query.push_str("  listBooks(parent: $shelf, pageSize: 10) {\n    books { ...Card }\n    nextPageToken\n    totalSize\n  }\n}\n");
    query.push_str("fragment Card on Book {\n  name\n  title\n  author\n  genre\n  rating\n}\n");
    query
}

fn graphql_plan(c: &mut Criterion) {
    let snapshot = demo_snapshot::demo_snapshot();
    let query = query_of_200_lines();
    assert!(query.lines().count() >= 200, "{} lines", query.lines().count());
    let variables = serde_json::json!({"shelf": "shelves/1"}).as_object().expect("object").clone();
    c.bench_function("graphql_plan/parse_only_200_lines", |b| {
        b.iter(|| async_graphql_parser::parse_query(black_box(&query)).expect("parses").fragments.len())
    });
    c.bench_function("graphql_plan/parse_validate_plan_200_lines", |b| {
        b.iter(|| {
            let cold = switchyard::ingress::GraphqlCaches::default();
            let plan =
                switchyard::ingress::plan_query(&snapshot, &cold, black_box(&query), None, &variables).expect("valid");
            plan.fetches.len()
        })
    });
    let warm = switchyard::ingress::GraphqlCaches::default();
    c.bench_function("graphql_plan/cached_plan_200_lines", |b| {
        b.iter(|| {
            let plan =
                switchyard::ingress::plan_query(&snapshot, &warm, black_box(&query), None, &variables).expect("valid");
            plan.fetches.len()
        })
    });
}

criterion_group!(benches, graphql_plan);
criterion_main!(benches);
