//! A cache of parsed GraphQL documents by their text. Parsing is most of the cost of preparing
//! an operation (async-graphql-parser's grammar: ~460 µs of ~620 µs for a 200-line query in
//! `cargo bench --bench graphql_plan`), and clients send the same documents again and again.
//! Limits and validation still run on every request, so config and schema changes apply at once;
//! a cached document's token count is kept with it, so only the counting is not done again.

use std::sync::Arc;

use async_graphql_parser::types::ExecutableDocument;

use super::limits::{LimitExceeded, check_counted, check_text};
use crate::config::GraphqlLimits;

/// Parsed documents by text, bounded by total text size (a parsed document takes a small
/// multiple of its text).
#[derive(Clone)]
pub(crate) struct DocumentCache {
    cache: moka::sync::Cache<Arc<str>, Parsed, foldhash::fast::RandomState>,
}

/// A parsed document and the number of tokens in its text.
#[derive(Clone)]
struct Parsed {
    document: Arc<ExecutableDocument>,
    tokens: usize,
}

/// Why a document was not parsed.
#[derive(Debug)]
pub(crate) enum Unparsed {
    /// Its text is over the size or token limit.
    OverLimit(LimitExceeded),
    /// It does not parse.
    Invalid(async_graphql_parser::Error),
}

impl Default for DocumentCache {
    fn default() -> Self {
        let cache = moka::sync::Cache::builder()
            .weigher(|query: &Arc<str>, _: &Parsed| u32::try_from(query.len()).unwrap_or(u32::MAX))
            .max_capacity(16 * 1024 * 1024)
            // Keyed by document text on every request: foldhash (hashbrown's default, seeded per
            // cache) instead of SipHash.
            .build_with_hasher(foldhash::fast::RandomState::default());
        DocumentCache { cache }
    }
}

impl DocumentCache {
    /// The parsed `query`, from the cache or parsed now (and remembered when it parses), once
    /// its text is within `limits`' size and token limits.
    pub(crate) fn parse(&self, query: &str, limits: &GraphqlLimits) -> Result<Arc<ExecutableDocument>, Unparsed> {
        if let Some(parsed) = self.cache.get(query) {
            check_counted(query.len(), parsed.tokens, limits).map_err(Unparsed::OverLimit)?;
            return Ok(parsed.document);
        }
        let tokens = check_text(query, limits).map_err(Unparsed::OverLimit)?;
        let document = Arc::new(async_graphql_parser::parse_query(query).map_err(Unparsed::Invalid)?);
        self.cache.insert(Arc::from(query), Parsed { document: document.clone(), tokens });
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached document meets the limits in force at each request, not those it was parsed
    /// under, with the same refusals as a document seen for the first time.
    #[test]
    fn limits_apply_to_cached_documents_as_to_new_ones() {
        let query = "query { book(name: \"shelves/1/books/1\") { title author } }";
        let limits = |max_tokens: u32, max_document_bytes: u32| GraphqlLimits {
            max_tokens,
            max_document_bytes,
            ..GraphqlLimits::default()
        };
        let generous = limits(1_000, 10_000);
        let refusal = |cache: &DocumentCache, limits: &GraphqlLimits| match cache.parse(query, limits) {
            Ok(_) => None,
            Err(Unparsed::OverLimit(exceeded)) => Some(exceeded.0),
            Err(Unparsed::Invalid(error)) => panic!("{error}"),
        };
        let warm = DocumentCache::default();
        assert_eq!(refusal(&warm, &generous), None, "parsed and cached");
        // (limits, refused by a cold cache and a warm one alike)
        for tight in [limits(5, 10_000), limits(1_000, 20), generous.clone()] {
            let cold = DocumentCache::default();
            assert_eq!(refusal(&warm, &tight), refusal(&cold, &tight), "{tight:?}");
        }
        assert!(refusal(&warm, &limits(5, 10_000)).is_some_and(|m| m.contains("max_tokens")));
        assert!(refusal(&warm, &limits(1_000, 20)).is_some_and(|m| m.contains("max_document_bytes")));
        assert!(matches!(warm.parse("query {", &generous), Err(Unparsed::Invalid(_))));
    }
}
