//! A cache of parsed GraphQL documents by their text. Parsing is most of the cost of preparing
//! an operation (async-graphql-parser's grammar: ~460 µs of ~620 µs for a 200-line query in
//! `cargo bench --bench graphql_plan`), and clients send the same documents again and again.
//! Limits and validation still run on every request, so config and schema changes apply at once.

use std::sync::Arc;

use async_graphql_parser::types::ExecutableDocument;

/// Parsed documents by text, bounded by total text size (a parsed document takes a small
/// multiple of its text).
#[derive(Clone)]
pub(crate) struct DocumentCache {
    cache: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
}

impl Default for DocumentCache {
    fn default() -> Self {
        let cache = moka::sync::Cache::builder()
            .weigher(|query: &Arc<str>, _: &Arc<ExecutableDocument>| u32::try_from(query.len()).unwrap_or(u32::MAX))
            .max_capacity(16 * 1024 * 1024)
            .build();
        DocumentCache { cache }
    }
}

impl DocumentCache {
    /// The parsed `query`, from the cache or parsed now (and remembered when it parses).
    pub(crate) fn parse(&self, query: &str) -> Result<Arc<ExecutableDocument>, async_graphql_parser::Error> {
        if let Some(document) = self.cache.get(query) {
            return Ok(document);
        }
        let document = Arc::new(async_graphql_parser::parse_query(query)?);
        self.cache.insert(Arc::from(query), document.clone());
        Ok(document)
    }
}
