//! The policy stage on the request path: authorization of a GraphQL operation with 50 fields
//! (rules on fields, a type and the method, against the demo schema), and a rate-limit check in
//! memory (one hot key, and keys spread over 10,000 consumers). Run: `cargo bench --bench policy`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use switchyard::operation::{FieldSelection, Identity, SelectionSet};
use switchyard::policy::limits::Caller;
use switchyard::snapshot::{BackendFlag, SnapshotSources, build_snapshot};

const RULES: &str = r#"
[[authorization.rules]]
fields = ["Book.rating", "Book.isbn", "Book.copiesSold"]
scopes_any = ["staff"]
[[authorization.rules]]
types = ["Author"]
authenticated = true
[[authorization.rules]]
methods = ["catalog.v1.Catalog/ListBooks"]
claims = [{ claim = "tenant", equals = "acme" }]
[[rate_limits.rules]]
name = "per-user"
limit = 1000000000
window = "1s"
"#;

fn identity(subject: &str, scopes: &[&str]) -> Identity {
    Identity {
        provider: "corp".into(),
        subject: subject.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        claims: serde_json::json!({"tenant": "acme"}).as_object().cloned().unwrap_or_default(),
        expires_at: None,
    }
}

/// 50 fields of `Book` (aliased, cycling through its fields), as `listBooks { books { ... } }`.
fn fifty_book_fields() -> SelectionSet {
    let names = ["name", "title", "author", "isbn", "rating", "genre", "inStock", "tags", "copiesSold", "publishTime"];
    let leaf = |key: String, name: &str| FieldSelection {
        response_key: key,
        field_name: name.into(),
        children: SelectionSet::default(),
        arguments: Vec::new(),
        defer: None,
        forbidden: None,
    };
    let fields = (0..50).map(|i| leaf(format!("f{i}"), names[i % names.len()])).collect();
    let books = FieldSelection { children: SelectionSet::new(fields), ..leaf("books".into(), "books") };
    SelectionSet::new(vec![books])
}

fn policy(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, RULES).expect("write");
    let sources = SnapshotSources {
        embedded: vec![switchyard::demo::demo_registration().expect("demo compiles")],
        no_descriptor_dir: true,
        config_file: Some(file),
        backends: vec![BackendFlag { name: "catalog.v1".into(), urls: vec!["http://127.0.0.1:1".into()] }],
        ..SnapshotSources::default()
    };
    let snapshot = build_snapshot(&sources, 1).expect("snapshot");
    let selection = fifty_book_fields();
    let staff = identity("ada", &["staff"]);
    let reader = identity("bob", &[]);
    for (case, who) in [("allowed", &staff), ("three_fields_denied", &reader)] {
        c.bench_function(&format!("policy/authorize_50_fields_{case}"), |b| {
            b.iter_batched(
                || selection.clone(),
                |mut selection| {
                    snapshot.policies.check_field("Query", "listBooks", Some(who)).expect("allowed");
                    let marked = snapshot.policies.mark_forbidden(
                        &snapshot.graphql,
                        "ListBooksResponse",
                        &mut selection,
                        Some(who),
                    );
                    black_box(marked)
                },
                BatchSize::SmallInput,
            )
        });
    }

    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let method = snapshot
        .registry
        .pool
        .get_service_by_name("catalog.v1.Catalog")
        .and_then(|s| s.methods().find(|m| m.name() == "GetBook"))
        .expect("GetBook");
    let limiter = &snapshot.limiter;
    let usage = limiter.usage_of_call(&method, None);
    let headers = http::HeaderMap::new();
    c.bench_function("policy/rate_limit_memory_one_key", |b| {
        let caller = Caller { identity: Some(&staff), headers: &headers, client_ip: None };
        b.iter(|| runtime.block_on(limiter.admit(black_box(&caller), &usage)).expect("admitted").headers.len())
    });
    let consumers: Vec<Identity> = (0..10_000).map(|i| identity(&format!("user-{i}"), &[])).collect();
    let mut next = 0;
    c.bench_function("policy/rate_limit_memory_10k_keys", |b| {
        b.iter(|| {
            next = (next + 1) % consumers.len();
            let caller = Caller { identity: Some(&consumers[next]), headers: &headers, client_ip: None };
            runtime.block_on(limiter.admit(black_box(&caller), &usage)).expect("admitted").headers.len()
        })
    });
}

criterion_group!(benches, policy);
criterion_main!(benches);
