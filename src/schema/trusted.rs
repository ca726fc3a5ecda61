//! Trusted documents: the operations a gateway is willing to run, by id and by text.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A safelist of GraphQL documents.
#[derive(Debug, Clone, Default)]
pub struct TrustedDocuments {
    by_id: HashMap<String, Arc<str>>,
    texts: HashSet<Arc<str>>,
    /// Refuse documents that are not listed.
    pub enforce: bool,
}

impl TrustedDocuments {
    /// Reads the manifest: a JSON object of id → document text.
    pub fn from_json(text: &str, enforce: bool) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let serde_json::Value::Object(entries) = value else {
            return Err("the manifest must be a JSON object of id → document".into());
        };
        let mut documents = TrustedDocuments { enforce, ..TrustedDocuments::default() };
        for (id, document) in entries {
            let serde_json::Value::String(document) = document else {
                return Err(format!("`{id}`: the document must be a string"));
            };
            let document: Arc<str> = Arc::from(document.as_str());
            documents.texts.insert(document.clone());
            documents.by_id.insert(id.to_ascii_lowercase(), document);
        }
        Ok(documents)
    }

    /// The document with `id` (ids compare case-insensitively, as hex hashes do).
    pub fn get(&self, id: &str) -> Option<&Arc<str>> {
        self.by_id.get(&id.to_ascii_lowercase())
    }

    /// True if `text` is one of the listed documents.
    pub fn contains_text(&self, text: &str) -> bool {
        self.texts.contains(text)
    }

    /// Number of listed documents.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
