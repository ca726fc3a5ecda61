//! API keys: sent in a header (or, when configured, a query parameter), looked up by their
//! SHA-256 — the config holds only hashes, so a leaked config leaks no key — each with the
//! identity and scopes it grants.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::AuthError;
use crate::config::ApiKeysConfig;
use crate::operation::Identity;
use crate::transcode::percent::{Keep, percent_decode};

/// The configured API keys, by hash.
#[derive(Debug)]
pub struct ApiKeys {
    header: http::HeaderName,
    query: Option<String>,
    by_hash: HashMap<[u8; 32], Arc<Identity>>,
}

impl ApiKeys {
    /// The keys `config` lists; an error names the key path and what is wrong.
    pub fn build(config: &ApiKeysConfig) -> Result<Self, (String, String)> {
        let header = http::HeaderName::from_bytes(config.header.as_bytes())
            .map_err(|_| ("header".to_owned(), format!("`{}` is not a header name", config.header)))?;
        let mut by_hash = HashMap::new();
        for (i, key) in config.keys.iter().enumerate() {
            let bytes = hex::decode(&key.sha256).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| {
                (
                    format!("keys[{i}].sha256"),
                    "must be 64 hex digits: the SHA-256 of the key (`printf %s KEY | sha256sum`)".to_owned(),
                )
            })?;
            let identity = Identity {
                provider: "api_key".into(),
                subject: key.identity.clone(),
                scopes: key.scopes.clone(),
                claims: serde_json::Map::new(),
                expires_at: None,
            };
            if by_hash.insert(bytes, Arc::new(identity)).is_some() {
                return Err((format!("keys[{i}].sha256"), "the same key is listed twice".into()));
            }
        }
        Ok(ApiKeys { header, query: config.query.clone(), by_hash })
    }

    /// The identity of the key the request presents: None when it presents none, an error when
    /// it presents one that is not known.
    pub fn identify(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Option<Arc<Identity>>, AuthError> {
        let from_query = || {
            let name = self.query.as_deref()?;
            query?.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                if key != name {
                    return None;
                }
                percent_decode(value, Keep::Nothing, true).ok().map(|v| v.into_owned())
            })
        };
        let presented = match headers.get(&self.header) {
            Some(value) => {
                Some(value.to_str().map_err(|_| AuthError::invalid("the API key is not valid text"))?.to_owned())
            }
            None => from_query(),
        };
        let Some(key) = presented else { return Ok(None) };
        let hash: [u8; 32] = Sha256::digest(key.trim().as_bytes()).into();
        match self.by_hash.get(&hash) {
            Some(identity) => Ok(Some(identity.clone())),
            None => Err(AuthError::invalid("the API key is not known")),
        }
    }
}
