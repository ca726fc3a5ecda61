//! The plan cache: validated, normalised operations (`Shape`s) by snapshot generation, document
//! text, operation name and the values `@skip`/`@include` read. A hit skips validation and
//! normalisation; variable values are bound per request.

use std::sync::Arc;

use async_graphql_parser::types::ExecutableDocument;

use super::document::{DocumentError, Shape, directive_values, shape};
use crate::snapshot::Snapshot;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    generation: u64,
    query: Arc<str>,
    operation: Option<String>,
    directives: String,
}

/// Shapes by what determines them, bounded by the total size of their keys' documents. Only
/// the newest snapshot generation's shapes are kept: a shape holds parts of its snapshot (its
/// schema's types and methods), so an older generation's entries would keep whole snapshots
/// alive that their weight does not count.
#[derive(Clone)]
pub(crate) struct ShapeCache {
    cache: moka::sync::Cache<Key, Arc<Shape>, foldhash::fast::RandomState>,
    /// The newest generation seen.
    newest: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for ShapeCache {
    fn default() -> Self {
        let cache = moka::sync::Cache::builder()
            .weigher(|key: &Key, _: &Arc<Shape>| {
                u32::try_from(key.query.len() + key.directives.len()).unwrap_or(u32::MAX)
            })
            .max_capacity(16 * 1024 * 1024)
            // Keyed by document text on every request: foldhash (hashbrown's default, seeded per
            // cache) instead of SipHash.
            .build_with_hasher(foldhash::fast::RandomState::default());
        ShapeCache { cache, newest: Arc::default() }
    }
}

impl ShapeCache {
    /// The shape of `operation` in `document` (whose text is `query`) for `snapshot`, cached.
    /// Invalid documents are not cached.
    pub(crate) fn shape(
        &self,
        snapshot: &Snapshot,
        query: &str,
        document: &ExecutableDocument,
        operation: Option<&str>,
        variables: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Arc<Shape>, Vec<DocumentError>> {
        use std::sync::atomic::Ordering;
        let newest = self.newest.fetch_max(snapshot.generation, Ordering::AcqRel);
        if snapshot.generation > newest {
            // A reload: the older generations' shapes are never asked for again.
            self.cache.invalidate_all();
        }
        let directives = serde_json::to_string(&directive_values(document, operation, variables)).unwrap_or_default();
        let key = Key {
            generation: snapshot.generation,
            query: Arc::from(query),
            operation: operation.map(str::to_owned),
            directives,
        };
        if let Some(found) = self.cache.get(&key) {
            return Ok(found);
        }
        let mut shaped =
            shape(&snapshot.graphql, document, operation, variables, snapshot.config.graphql.introspection)?;
        let limits = &snapshot.config.graphql.limits;
        let cost = shaped.estimated_cost(&snapshot.graphql, u64::from(limits.list_size));
        if cost > u64::from(limits.max_cost) {
            let message = format!(
                "the operation's estimated cost is {cost}; the limit is {} (graphql.limits.max_cost)",
                limits.max_cost
            );
            return Err(vec![DocumentError { message, locations: Vec::new() }]);
        }
        shaped.cost = cost;
        let shaped = Arc::new(shaped);
        // A request still on an older snapshot does not put its shape back after a reload.
        if snapshot.generation >= self.newest.load(Ordering::Acquire) {
            self.cache.insert(key, shaped.clone());
        }
        Ok(shaped)
    }
}
