//! GraphQL documents through the gateway's limits, parser, validation and planner against the
//! stitched demo schema: `QUERY \0 VARIABLES-JSON \0 OPERATION-NAME`. Nothing panics; an
//! operation that plans is planned the same way from the cache.

use switchyard::ingress::GraphqlCaches;

pub(crate) fn run(data: &[u8]) {
    let parts = super::parts(data, 0);
    let Ok(query) = std::str::from_utf8(parts[0]) else { return };
    let variables = parts
        .get(1)
        .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let operation = parts.get(2).and_then(|o| std::str::from_utf8(o).ok());
    let snapshot = super::demo_snapshot();
    let caches = GraphqlCaches::default();
    let first = switchyard::ingress::plan_query(snapshot, &caches, query, operation, &variables);
    let second = switchyard::ingress::plan_query(snapshot, &caches, query, operation, &variables);
    match (first, second) {
        (Ok(a), Ok(b)) => assert_eq!(a.fetches.len(), b.fetches.len(), "cached plan differs"),
        (Err(a), Err(b)) => assert_eq!(a, b, "cached refusal differs"),
        (a, b) => panic!("cold and cached answers differ: {:?} vs {:?}", a.is_ok(), b.is_ok()),
    }
}
