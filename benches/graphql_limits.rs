//! What it costs to refuse a hostile GraphQL document: each operation limit, a fragment bomb
//! and fragment cycles, through the whole request-path check (text limits, parse, document
//! limits, validation) against the demo schema with the default limits, with cold caches.
//! Run: `cargo bench --bench graphql_limits`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

#[path = "support/demo_snapshot.rs"]
mod demo_snapshot;

/// `fragment F{n}` spreads `F{n+1}` twice, `levels` deep; the last one ends in `last`.
fn doubling_fragments(levels: usize, last: &str) -> String {
    let mut document = String::from("{ ...F0 }\n");
    for level in 0..levels {
        document.push_str(&format!("fragment F{level} on Query {{ ...F{n} ...F{n} }}\n", n = level + 1));
    }
    document + &format!("fragment F{levels} on Query {{ {last} }}\n")
}

/// Every refusal case: its name, the document, and words its error must contain.
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let words = |count: usize, word: &str| vec![word; count].join(" ");
    vec![
        ("document_bytes", format!("{{ __typename {}}}", " ".repeat(70 * 1024)), "max_document_bytes"),
        ("tokens", format!("{{ {} }}", words(15_000, "a")), "max_tokens"),
        ("fragment_bomb_25_levels", doubling_fragments(25, "__typename"), "max_fields"),
        (
            "fragment_cycle",
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }".into(),
            "within itself",
        ),
        ("fragment_cycle_doubling_25_levels", doubling_fragments(25, "...F0"), "within itself"),
        ("depth_16", format!("{{ {}__typename{} }}", "a { ".repeat(15), " }".repeat(15)), "max_depth"),
        (
            "aliases_101",
            format!(
                "{{ getBook(name: \"x\") {{ {}}} }}",
                (0..101).map(|i| format!("a{i}: title ")).collect::<String>()
            ),
            "max_aliases",
        ),
        ("root_fields_31", format!("{{ {} }}", words(31, "__typename")), "max_root_fields"),
        ("directives_6", format!("{{ __typename {} }}", words(6, "@include(if: true)")), "max_directives"),
        (
            "overlapping_fields_4999",
            format!("{{ getBook(name: \"x\") {{ {} title: author }} }}", words(4_997, "title")),
            "conflict",
        ),
    ]
}

fn graphql_limits(c: &mut Criterion) {
    let snapshot = demo_snapshot::demo_snapshot();
    let variables = serde_json::Map::new();
    for (name, query, expected) in cases() {
        let refuse = || {
            let cold = switchyard::ingress::GraphqlCaches::default();
            switchyard::ingress::plan_query(&snapshot, &cold, black_box(&query), None, &variables)
                .expect_err("a hostile document is refused")
        };
        let errors = refuse();
        assert!(errors.iter().any(|e| e.contains(expected)), "{name}: {errors:?}");
        c.bench_function(&format!("graphql_limits/{name}"), |b| b.iter(|| refuse().len()));
    }
}

criterion_group!(benches, graphql_limits);
criterion_main!(benches);
