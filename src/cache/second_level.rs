//! The cache's optional second level in Redis, shared by every gateway instance: answers are
//! written there as they are stored (in the background) and read there on a first-level miss.
//! Invalidation tags have version counters in Redis too: a write increments them, an answer
//! carries the versions read when its fetch began, and a read returns it only while they are
//! still current — all in one script, so a write on one instance makes the answer stale for
//! every instance's next second-level read.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Entry, Key};
use crate::redis_pool::RedisPool;

/// Returns the entry (`KEYS[1]`, `VERSIONS|JSON`) only while each tag counter (`KEYS[2..]`)
/// equals the version stored with it.
const READ: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return false end
local sep = string.find(value, '|', 1, true)
if not sep then return false end
local i = 2
for version in string.gmatch(string.sub(value, 1, sep - 1), '[^,]+') do
  local current = redis.call('GET', KEYS[i]) or '0'
  if current ~= version then return false end
  i = i + 1
end
return value
";

/// An entry as stored in Redis.
#[derive(Serialize, Deserialize)]
struct Stored {
    body: String,
    ttl_ms: u64,
    stale_ms: u64,
    headers: Vec<(String, String)>,
}

/// The second level.
pub struct SecondLevel {
    pool: RedisPool,
    read: redis::Script,
}

impl std::fmt::Debug for SecondLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondLevel").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl SecondLevel {
    /// A second level on `pool`.
    pub fn new(pool: RedisPool) -> Self {
        SecondLevel { pool, read: redis::Script::new(READ) }
    }

    fn entry_key(&self, key: &Key) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(key.target.as_bytes());
        hash.update([0]);
        hash.update(&key.request);
        for (name, value) in key.vary.iter() {
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update(value);
        }
        hash.update([0]);
        hash.update(key.identity.as_deref().unwrap_or("").as_bytes());
        self.pool.key(&format!("cache:{}", hex::encode(hash.finalize())))
    }

    fn tag_key(&self, tag: &str) -> String {
        self.pool.key(&format!("cache-tag:{tag}"))
    }

    /// The tags' current versions in Redis (all zero when it cannot be reached).
    pub async fn versions(&self, tags: &[String]) -> Vec<u64> {
        if tags.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = tags.iter().map(|t| self.tag_key(t)).collect();
        let found = self
            .pool
            .run(|mut connection| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<u64>>>(&mut connection).await }
            })
            .await;
        match found {
            Ok(found) => found.into_iter().map(|v| v.unwrap_or(0)).collect(),
            Err(error) => {
                tracing::debug!(%error, "cache second level unreachable");
                vec![0; tags.len()]
            }
        }
    }

    /// The entry under `key`, while none of its tags was invalidated since it was fetched.
    pub async fn get(&self, key: &Key, tags: &[String]) -> Option<Entry> {
        let entry_key = self.entry_key(key);
        let tag_keys: Vec<String> = tags.iter().map(|t| self.tag_key(t)).collect();
        let found = self
            .pool
            .run(|mut connection| {
                let mut invocation = self.read.prepare_invoke();
                invocation.key(&entry_key);
                for tag in &tag_keys {
                    invocation.key(tag);
                }
                async move { invocation.invoke_async::<Option<String>>(&mut connection).await }
            })
            .await;
        let text = match found {
            Ok(found) => found?,
            Err(error) => {
                tracing::debug!(%error, "cache second level unreachable");
                return None;
            }
        };
        let (_, stored) = text.split_once('|')?;
        let stored: Stored = serde_json::from_str(stored).ok()?;
        let body = base64::engine::general_purpose::STANDARD.decode(stored.body).ok()?;
        let mut metadata = http::HeaderMap::new();
        for (name, value) in stored.headers {
            if let (Ok(name), Ok(value)) =
                (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(&value))
            {
                metadata.append(name, value);
            }
        }
        Some(Entry {
            body: Bytes::from(body),
            metadata,
            ttl: Duration::from_millis(stored.ttl_ms),
            stale: Duration::from_millis(stored.stale_ms),
            stored: std::time::Instant::now(),
            tags: Arc::from(tags),
            versions: Vec::new(),
        })
    }

    /// Writes `entry` under `key` with the tags' Redis `versions` read when its fetch began.
    pub async fn put(&self, key: &Key, entry: &Entry, versions: &[u64]) {
        let stored = Stored {
            body: base64::engine::general_purpose::STANDARD.encode(&entry.body),
            ttl_ms: u64::try_from(entry.ttl.as_millis()).unwrap_or(u64::MAX),
            stale_ms: u64::try_from(entry.stale.as_millis()).unwrap_or(u64::MAX),
            headers: entry
                .metadata
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
        };
        let Ok(json) = serde_json::to_string(&stored) else { return };
        let versions: Vec<String> = versions.iter().map(u64::to_string).collect();
        let value = format!("{}|{json}", versions.join(","));
        let entry_key = self.entry_key(key);
        let expires_ms = (entry.ttl + entry.stale).as_millis().max(1);
        let written = self
            .pool
            .run(|mut connection| {
                let (entry_key, value) = (entry_key.clone(), value.clone());
                async move {
                    redis::cmd("SET")
                        .arg(&entry_key)
                        .arg(&value)
                        .arg("PX")
                        .arg(u64::try_from(expires_ms).unwrap_or(u64::MAX))
                        .query_async::<()>(&mut connection)
                        .await
                }
            })
            .await;
        if let Err(error) = written {
            tracing::debug!(%error, "cache second level not written");
        }
    }

    /// Increments the tags' versions: every instance's second-level reads see them stale.
    pub async fn bump(&self, tags: &[String]) {
        let keys: Vec<String> = tags.iter().map(|t| self.tag_key(t)).collect();
        let bumped = self
            .pool
            .run(|mut connection| {
                let keys = keys.clone();
                async move {
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        pipe.cmd("INCR").arg(key).ignore();
                    }
                    pipe.query_async::<()>(&mut connection).await
                }
            })
            .await;
        if let Err(error) = bumped {
            tracing::warn!(%error, "cache invalidation not written to the second level");
        }
    }
}
