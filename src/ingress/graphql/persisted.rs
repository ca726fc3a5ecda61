//! Automatic persisted queries (Apollo's `persistedQuery` extension, version 1): a request may
//! send only the sha256 of a document the gateway has seen; an unknown hash answers
//! PERSISTED_QUERY_NOT_FOUND (HTTP 200) so the client resends the document with its hash,
//! which is checked and remembered in a bounded cache.

use std::sync::Arc;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// Documents by sha256 (lowercase hex), bounded by their total size.
#[derive(Clone)]
pub(crate) struct PersistedQueries {
    cache: moka::sync::Cache<String, Arc<str>>,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        // Bounded by document bytes, not entries: clients choose what they register.
        let cache = moka::sync::Cache::builder()
            .weigher(|_: &String, document: &Arc<str>| u32::try_from(document.len()).unwrap_or(u32::MAX))
            .max_capacity(16 * 1024 * 1024)
            .build();
        PersistedQueries { cache }
    }
}

/// Why a persisted query cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PersistedError {
    /// The hash is unknown: send the document with it.
    NotFound,
    /// The extension is malformed, or the hash does not match the document.
    Invalid(String),
}

impl PersistedQueries {
    /// Resolves `query` against the request's `persistedQuery` extension: fills an absent
    /// query from the cache, checks and stores a present one. Without the extension, nothing.
    pub(crate) fn resolve(
        &self,
        query: &mut String,
        extensions: &serde_json::Map<String, Json>,
    ) -> Result<(), PersistedError> {
        let Some(persisted) = extensions.get("persistedQuery") else { return Ok(()) };
        if persisted.get("version").and_then(Json::as_i64) != Some(1) {
            return Err(PersistedError::Invalid("persistedQuery: only version 1 is supported".into()));
        }
        let Some(hash) = persisted.get("sha256Hash").and_then(Json::as_str).map(str::to_ascii_lowercase) else {
            return Err(PersistedError::Invalid("persistedQuery: `sha256Hash` is required".into()));
        };
        if query.is_empty() {
            let known = self.cache.get(&hash).ok_or(PersistedError::NotFound)?;
            query.push_str(&known);
            return Ok(());
        }
        let actual = hex::encode(Sha256::digest(query.as_bytes()));
        if actual != hash {
            return Err(PersistedError::Invalid("persistedQuery: `sha256Hash` does not match the query".into()));
        }
        self.cache.insert(hash, Arc::from(query.as_str()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extensions(hash: &str) -> serde_json::Map<String, Json> {
        let value = serde_json::json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
        value.as_object().expect("object").clone()
    }

    #[test]
    fn register_then_use_by_hash() {
        let store = PersistedQueries::default();
        let document = "{ __typename }";
        let hash = hex::encode(Sha256::digest(document.as_bytes()));
        let mut empty = String::new();
        assert_eq!(store.resolve(&mut empty, &extensions(&hash)), Err(PersistedError::NotFound));
        let mut wrong = "{ other }".to_owned();
        assert!(matches!(store.resolve(&mut wrong, &extensions(&hash)), Err(PersistedError::Invalid(_))));
        let mut full = document.to_owned();
        assert_eq!(store.resolve(&mut full, &extensions(&hash)), Ok(()));
        let mut by_hash = String::new();
        assert_eq!(store.resolve(&mut by_hash, &extensions(&hash.to_uppercase())), Ok(()));
        assert_eq!(by_hash, document);
    }
}
