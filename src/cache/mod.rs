//! The fetch cache: answers of backend reads kept in memory (moka, bounded in bytes, each entry
//! with its own TTL) under a key made of the call (target and encoded request), the configured
//! vary headers' values and — for private answers — the identity, so one user's answer is
//! never served to another. Rules resolved per snapshot say which fetches are cached; entries
//! are tagged (method, GraphQL type) for invalidation through the admin API. The store lives
//! across reloads that keep its size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

mod second_level;

pub use second_level::SecondLevel;

/// How a fetch is cached: its TTL and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// How long an answer is served.
    pub ttl: Duration,
    /// Kept per identity.
    pub private: bool,
    /// How long after the TTL a stale answer is served while it is refreshed.
    pub stale: Duration,
}

impl Rule {
    /// The stricter of two rules: the shorter TTL and stale window; private if either is.
    pub fn and(&self, other: &Rule) -> Rule {
        Rule {
            ttl: self.ttl.min(other.ttl),
            private: self.private || other.private,
            stale: self.stale.min(other.stale),
        }
    }
}

/// What a fetch's cache lookup needs: the store, the rule, and the request's vary values and
/// identity. Built by the planner; used by the executor.
#[derive(Debug, Clone)]
pub struct FetchCache {
    /// The store.
    pub store: Arc<Cache>,
    /// The rule that applies.
    pub rule: Rule,
    /// The configured vary headers' values in this request.
    pub vary: Arc<[(String, Vec<u8>)]>,
    /// The identity (provider/subject), when the rule is private and the client has one.
    pub identity: Option<Arc<str>>,
    /// Tags for invalidation (the method's full name, the GraphQL type).
    pub tags: Arc<[String]>,
}

/// Whether an answer came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From the cache.
    Hit,
    /// From the cache after its TTL, while a background fetch refreshes it.
    Stale,
    /// Fetched (and now cached).
    Miss,
}

impl CacheStatus {
    /// `HIT` or `MISS`, for the `x-cache` header.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Stale => "STALE",
            CacheStatus::Miss => "MISS",
        }
    }
}

/// A cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// `grpc /pkg.Service/Method` or `http CLUSTER GET /path?query`.
    pub target: String,
    /// The encoded request (and rendered headers and body for HTTP).
    pub request: Bytes,
    /// The vary headers' values.
    pub vary: Arc<[(String, Vec<u8>)]>,
    /// The identity, for private entries.
    pub identity: Option<Arc<str>>,
}

impl Key {
    /// The key of a whole GraphQL response: the document, the operation name and the variables,
    /// with the vary values and the identity (for private responses).
    pub fn graphql(
        query: &str,
        operation_name: Option<&str>,
        variables: &serde_json::Map<String, serde_json::Value>,
        vary: Arc<[(String, Vec<u8>)]>,
        identity: Option<Arc<str>>,
    ) -> Key {
        // Length-prefixed parts, so no two requests share a key: the document is copied, not
        // escaped as a JSON string (the key's largest part, on every request).
        let mut request = Vec::with_capacity(query.len() + operation_name.map_or(0, str::len) + 24);
        for part in [Some(query), operation_name] {
            match part {
                Some(text) => {
                    request.push(1);
                    request.extend_from_slice(&(text.len() as u64).to_le_bytes());
                    request.extend_from_slice(text.as_bytes());
                }
                None => request.push(0),
            }
        }
        if !variables.is_empty() {
            // serde_json writes a map's members in its order, which it keeps as given.
            let _ = serde_json::to_writer(&mut request, variables);
        }
        Key { target: "graphql".into(), request: Bytes::from(request), vary, identity }
    }
}

/// A cached answer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The encoded answer.
    pub body: Bytes,
    /// The backend's response headers worth keeping.
    pub metadata: http::HeaderMap,
    /// Its TTL.
    pub ttl: Duration,
    /// How long after the TTL it is still served while refreshed.
    pub stale: Duration,
    /// When it was stored.
    pub stored: Instant,
    /// Its invalidation tags.
    pub tags: Arc<[String]>,
    /// Each tag's version when it was stored; a tag invalidated since makes it stale.
    pub versions: Vec<u64>,
}

/// The store.
pub struct Cache {
    /// Entries behind an Arc: moka hands out a clone of the value on every read, and a read
    /// that sends the body on needs no more than a count bumped. Keys are hashed with foldhash:
    /// a GraphQL key holds the whole document.
    entries: moka::sync::Cache<Key, Arc<Entry>, foldhash::fast::RandomState>,
    max_bytes: u64,
    /// Tag → version, bumped by every invalidation of the tag.
    versions: std::sync::RwLock<std::collections::HashMap<String, u64, foldhash::fast::RandomState>>,
    /// Keys being refreshed in the background (one refresh per key at a time).
    refreshing: std::sync::Mutex<std::collections::HashSet<Key>>,
    /// Redis, shared by every instance, when configured.
    second: Option<SecondLevel>,
    /// Lookups answered fresh, answered stale, and missed (for metrics).
    lookups: [std::sync::atomic::AtomicU64; 3],
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.entry_count())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// Each entry lives for its own TTL.
struct PerEntry;

impl moka::Expiry<Key, Arc<Entry>> for PerEntry {
    fn expire_after_create(&self, _: &Key, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(entry.ttl + entry.stale)
    }
}

impl Cache {
    /// An empty store of at most `max_bytes`, with `second` behind it when given.
    pub fn with_second_level(max_bytes: u64, second: Option<SecondLevel>) -> Self {
        Cache { second, ..Cache::new(max_bytes) }
    }

    /// Whether a Redis second level is behind it.
    pub fn has_second_level(&self) -> bool {
        self.second.is_some()
    }

    /// The entry under `key` from either level (a second-level hit fills the first), and
    /// whether it is stale.
    pub async fn lookup_shared(&self, key: &Key, tags: &Arc<[String]>) -> Option<(Entry, bool)> {
        let found = match self.lookup(key) {
            Some(found) => Some(found),
            None => self.lookup_second(key, tags).await,
        };
        self.count(found.as_ref().map(|(_, stale)| *stale));
        found
    }

    async fn lookup_second(&self, key: &Key, tags: &Arc<[String]>) -> Option<(Entry, bool)> {
        let mut entry = self.second.as_ref()?.get(key, tags).await?;
        entry.versions = self.versions_of(tags);
        entry.tags = tags.clone();
        self.insert(key.clone(), entry.clone());
        Some((entry, false))
    }

    /// Counts a lookup: found fresh (`Some(false)`), found stale, or missed.
    fn count(&self, found: Option<bool>) {
        let slot = match found {
            Some(false) => 0,
            Some(true) => 1,
            None => 2,
        };
        self.lookups[slot].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Lookups so far: (fresh hits, stale hits, misses).
    pub fn lookups(&self) -> (u64, u64, u64) {
        let [hits, stale, misses] = &self.lookups;
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        (load(hits), load(stale), load(misses))
    }

    /// The tags' versions in the second level, to take before a fetch (None without one).
    pub async fn shared_versions(&self, tags: &[String]) -> Option<Vec<u64>> {
        Some(self.second.as_ref()?.versions(tags).await)
    }

    /// Stores `entry` under `key` in the first level, and in the background in the second
    /// (with the tags' `shared` versions taken before the fetch).
    pub fn insert_shared(store: &Arc<Cache>, key: Key, entry: Entry, shared: Option<Vec<u64>>) {
        if let (Some(versions), true) = (shared, store.second.is_some() && !entry.ttl.is_zero()) {
            let (store, key, entry) = (store.clone(), key.clone(), entry.clone());
            tokio::spawn(async move {
                if let Some(second) = &store.second {
                    second.put(&key, &entry, &versions).await;
                }
            });
        }
        store.insert(key, entry);
    }

    /// An empty store of at most `max_bytes`.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Key, entry: &Arc<Entry>| {
                let bytes = key.target.len() + key.request.len() + entry.body.len() + 64;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntry)
            .support_invalidation_closures()
            .build_with_hasher(foldhash::fast::RandomState::default());
        Cache {
            entries,
            max_bytes,
            versions: std::sync::RwLock::default(),
            refreshing: std::sync::Mutex::default(),
            second: None,
            lookups: Default::default(),
        }
    }

    /// The current versions of `tags`: take them before fetching, store them with the answer,
    /// so a write that ends while the read is in flight makes the answer stale at once.
    pub fn versions_of(&self, tags: &[String]) -> Vec<u64> {
        let versions = self.versions.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        tags.iter().map(|tag| versions.get(tag).copied().unwrap_or(0)).collect()
    }

    /// Its size limit.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The live entry under `key`: not expired, and none of its tags invalidated since.
    pub fn get(&self, key: &Key) -> Option<Entry> {
        let found = self.lookup(key).filter(|(_, stale)| !stale).map(|(entry, _)| entry);
        self.count(found.as_ref().map(|_| false));
        found
    }

    /// The live entry's body under `key` (counted like `get`): `get` for a caller that sends the
    /// stored bytes as they are.
    pub fn get_body(&self, key: &Key) -> Option<Bytes> {
        let found =
            self.entries.get(key).filter(|entry| self.live(key, entry) == Some(false)).map(|entry| entry.body.clone());
        self.count(found.as_ref().map(|_| false));
        found
    }

    /// The entry under `key` and whether it is past its TTL (but within its stale window);
    /// None when absent, expired, or invalidated.
    pub fn lookup(&self, key: &Key) -> Option<(Entry, bool)> {
        let entry = self.entries.get(key)?;
        let stale = self.live(key, &entry)?;
        Some((Entry::clone(&entry), stale))
    }

    /// Whether `entry` (stored under `key`) is past its TTL; None when it is expired or one of
    /// its tags was invalidated since it was stored (it is then dropped).
    fn live(&self, key: &Key, entry: &Entry) -> Option<bool> {
        let age = entry.stored.elapsed();
        if age >= entry.ttl + entry.stale {
            return None;
        }
        let current = {
            let versions = self.versions.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            entry.tags.iter().map(|tag| versions.get(tag).copied().unwrap_or(0)).eq(entry.versions.iter().copied())
        };
        if !current {
            self.entries.invalidate(key);
            return None;
        }
        Some(age >= entry.ttl)
    }

    /// Claims the background refresh of `key`; false when one is already running.
    pub fn begin_refresh(&self, key: &Key) -> bool {
        self.refreshing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.clone())
    }

    /// Ends the background refresh of `key`.
    pub fn end_refresh(&self, key: &Key) {
        self.refreshing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }

    /// Stores `entry` under `key`.
    pub fn insert(&self, key: Key, entry: Entry) {
        if !entry.ttl.is_zero() {
            self.entries.insert(key, Arc::new(entry));
        }
    }

    /// Makes every entry tagged with one of `tags` stale at once (a write's invalidation): one
    /// version bump per tag, whatever the number of entries.
    pub fn bump(store: &Arc<Cache>, tags: &[String]) {
        {
            let mut versions = store.versions.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for tag in tags {
                *versions.entry(tag.clone()).or_default() += 1;
            }
        }
        if store.second.is_some() {
            let (store, tags) = (store.clone(), tags.to_vec());
            tokio::spawn(async move {
                if let Some(second) = &store.second {
                    second.bump(&tags).await;
                }
            });
        }
    }

    /// Drops every entry tagged with one of `tags` or whose target starts with `prefix`; the
    /// number of entries there were (dropping happens in the background, but no dropped entry
    /// is served again).
    pub fn invalidate(&self, tags: &[String], prefix: Option<&str>) -> usize {
        let tags: Arc<[String]> = tags.into();
        let prefix = prefix.map(str::to_owned);
        let matches = move |key: &Key, entry: &Arc<Entry>| {
            entry.tags.iter().any(|tag| tags.contains(tag))
                || prefix.as_deref().is_some_and(|p| key.target.starts_with(p))
        };
        let count = self.entries.iter().filter(|(key, entry)| matches(key, entry)).count();
        // Registered predicates apply to reads at once and are swept in the background.
        let _ = self.entries.invalidate_entries_if(matches);
        count
    }

    /// Entries and weighted size, for the admin API.
    pub fn stats(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

tokio::task_local! {
    /// Set when an answer of the task's operation was not stored because its backend said so.
    static NOT_STORED: std::cell::Cell<bool>;
}

/// Notes that a backend's answer was not stored (its `Cache-Control` forbade it), so a whole
/// response holding it must not be stored either.
pub fn note_not_stored() {
    let _ = NOT_STORED.try_with(|flag| flag.set(true));
}

/// Runs `operation`, telling whether one of its answers was not stored by its backend's word.
pub async fn watching_vetoes<F: std::future::Future>(operation: F) -> (F::Output, bool) {
    NOT_STORED
        .scope(std::cell::Cell::new(false), async {
            let output = operation.await;
            (output, NOT_STORED.with(std::cell::Cell::get))
        })
        .await
}

/// The `Cache-Control` directives of a backend's answer that the fetch cache honours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store` or `no-cache`: do not keep it.
    pub no_store: bool,
    /// `private`: only for the user it was fetched for.
    pub private: bool,
    /// `s-maxage`, else `max-age`.
    pub max_age: Option<Duration>,
}

impl CacheControl {
    /// The directives of every `cache-control` value in `headers`.
    pub fn of(headers: &http::HeaderMap) -> Self {
        let mut found = CacheControl::default();
        let mut shared_age = None;
        for value in headers.get_all(http::header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()) {
            for directive in value.split(',').map(|d| d.trim().to_ascii_lowercase()) {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => {
                        (name.trim().to_owned(), Some(argument.trim().trim_matches('"').to_owned()))
                    }
                    None => (directive.clone(), None),
                };
                let seconds = argument.and_then(|a| a.parse::<u64>().ok()).map(Duration::from_secs);
                match name.as_str() {
                    "no-store" | "no-cache" => found.no_store = true,
                    "private" => found.private = true,
                    "max-age" => found.max_age = seconds.or(found.max_age),
                    "s-maxage" => shared_age = seconds,
                    _ => {}
                }
            }
        }
        if shared_age.is_some() {
            found.max_age = shared_age;
        }
        found
    }
}

/// The snapshot's cache rules, resolved per fetch target.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    /// Method full name → rule (REST calls and GraphQL root fields of the method).
    pub methods: std::collections::HashMap<String, Rule>,
    /// GraphQL (type, field) → rule (root fields and stitched fields).
    pub fields: FieldRules,
    /// REST route index → rule (its route rules and its method's, combined).
    pub routes: std::collections::HashMap<usize, Rule>,
    /// The vary headers (lower case).
    pub vary: Vec<String>,
    /// Write method full name → the tags its success makes stale.
    pub invalidations: std::collections::HashMap<String, Arc<[String]>>,
}

/// Rules by GraphQL type, then field: looked up by borrowed names on every cacheable query
/// (a map keyed by an owned pair would have each lookup build two Strings).
#[derive(Debug, Clone, Default)]
pub struct FieldRules {
    by_type: std::collections::HashMap<String, std::collections::HashMap<String, Rule, FastHash>, FastHash>,
}

type FastHash = foldhash::fast::RandomState;

impl FieldRules {
    /// The rule of `type_name.field`.
    pub fn get(&self, type_name: &str, field: &str) -> Option<&Rule> {
        self.by_type.get(type_name)?.get(field)
    }

    /// Sets the rule of `type_name.field`, or combines `rule` with the one there (`Rule::and`).
    pub fn combine(&mut self, type_name: &str, field: &str, rule: Rule) {
        let fields = self.by_type.entry(type_name.to_owned()).or_default();
        match fields.get_mut(field) {
            Some(existing) => *existing = existing.and(&rule),
            None => {
                fields.insert(field.to_owned(), rule);
            }
        }
    }

    /// True when no field has a rule.
    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }
}

impl Rules {
    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.fields.is_empty() && self.routes.is_empty()
    }
}

/// What a write makes stale when it succeeds.
#[derive(Debug, Clone)]
pub struct Invalidation {
    /// The store.
    pub store: Arc<Cache>,
    /// The tags to bump.
    pub tags: Arc<[String]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Different documents, operation names or variables never share a GraphQL key; the same
    /// ones always do.
    #[test]
    fn graphql_keys_tell_requests_apart() {
        let variables = |json: serde_json::Value| match json {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        // (query, operation name, variables)
        let requests = [
            ("{ a }", None, variables(serde_json::json!({}))),
            ("{ a }", Some(""), variables(serde_json::json!({}))),
            ("{ a }", Some("A"), variables(serde_json::json!({}))),
            ("{ a }A", None, variables(serde_json::json!({}))),
            ("{ a", Some("}A"), variables(serde_json::json!({}))),
            ("{ a }", None, variables(serde_json::json!({"x": 1}))),
            ("{ a }", None, variables(serde_json::json!({"x": "1"}))),
            ("{ a }", Some("A"), variables(serde_json::json!({"x": 1}))),
            ("", None, variables(serde_json::json!({}))),
            ("\0", None, variables(serde_json::json!({}))),
        ];
        let keys: Vec<Key> =
            requests.iter().map(|(query, name, vars)| Key::graphql(query, *name, vars, Arc::from([]), None)).collect();
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(a == b, i == j, "{:?} and {:?}", requests[i], requests[j]);
            }
        }
        let (query, name, vars) = &requests[7];
        assert!(keys[7] == Key::graphql(query, *name, vars, Arc::from([]), None), "the same request, the same key");
    }

    fn key(target: &str, identity: Option<&str>) -> Key {
        Key {
            target: target.into(),
            request: Bytes::from_static(b"r"),
            vary: Arc::from([]),
            identity: identity.map(Arc::from),
        }
    }

    fn entry(ttl: Duration, tag: &str) -> Entry {
        fresh(&Cache::new(1), ttl, tag)
    }

    fn fresh(cache: &Cache, ttl: Duration, tag: &str) -> Entry {
        Entry {
            body: Bytes::from_static(b"answer"),
            metadata: http::HeaderMap::new(),
            ttl,
            stale: Duration::ZERO,
            stored: Instant::now(),
            tags: Arc::from([tag.to_owned()]),
            versions: cache.versions_of(&[tag.to_owned()]),
        }
    }

    #[test]
    fn entries_are_kept_per_key_dropped_by_tag_or_prefix_and_never_with_zero_ttl() {
        let cache = Arc::new(Cache::new(1 << 20));
        cache.insert(key("grpc /a.S/Get", Some("ada")), entry(Duration::from_secs(60), "a.S.Get"));
        cache.insert(key("grpc /a.S/List", None), entry(Duration::from_secs(60), "a.S.List"));
        cache.insert(key("grpc /a.S/Zero", None), entry(Duration::ZERO, "a.S.Zero"));
        assert!(cache.get(&key("grpc /a.S/Get", Some("ada"))).is_some());
        assert!(cache.get(&key("grpc /a.S/Get", Some("bob"))).is_none(), "another identity's key");
        assert!(cache.get(&key("grpc /a.S/Zero", None)).is_none());
        assert_eq!(cache.invalidate(&["a.S.Get".to_owned()], None), 1);
        assert!(cache.get(&key("grpc /a.S/Get", Some("ada"))).is_none());
        assert_eq!(cache.invalidate(&[], Some("grpc /a.S/")), 1);
        assert!(cache.get(&key("grpc /a.S/List", None)).is_none());
        // A write's invalidation: a tag's version moves on, its entries are stale at once.
        cache.insert(key("grpc /a.S/Get", None), fresh(&cache, Duration::from_secs(60), "Book"));
        assert!(cache.get(&key("grpc /a.S/Get", None)).is_some());
        let before_the_write = fresh(&cache, Duration::from_secs(60), "Book");
        Cache::bump(&cache, &["Book".to_owned()]);
        assert!(cache.get(&key("grpc /a.S/Get", None)).is_none());
        // A read that began before the write and ends after it stores a stale answer.
        cache.insert(key("grpc /a.S/Get", None), before_the_write);
        assert!(cache.get(&key("grpc /a.S/Get", None)).is_none(), "fetched across a write: stale");
        cache.insert(key("grpc /a.S/Get", None), fresh(&cache, Duration::from_secs(60), "Book"));
        assert!(cache.get(&key("grpc /a.S/Get", None)).is_some(), "fetched after the write: fresh");
    }

    #[test]
    fn a_body_is_served_under_the_same_rules_as_its_entry_and_counted() {
        let cache = Arc::new(Cache::new(1 << 20));
        let live = key("graphql", None);
        cache.insert(live.clone(), fresh(&cache, Duration::from_secs(60), "Book"));
        cache.insert(key("graphql zero", None), entry(Duration::ZERO, "Book"));
        assert_eq!(cache.get_body(&live).as_deref(), Some(&b"answer"[..]));
        assert_eq!(cache.get_body(&key("graphql zero", None)), None, "expired");
        assert_eq!(cache.get_body(&key("graphql other", None)), None, "absent");
        Cache::bump(&cache, &["Book".to_owned()]);
        assert_eq!(cache.get_body(&live), None, "a tag of it was written since");
        assert!(cache.lookup(&live).is_none(), "and the entry is dropped");
        assert_eq!(cache.lookups(), (1, 0, 3));
    }

    #[test]
    fn the_size_limit_evicts() {
        let cache = Cache::new(10_000);
        for i in 0..1000 {
            cache.insert(key(&format!("grpc /a.S/Get{i}"), None), entry(Duration::from_secs(60), "t"));
        }
        let (_, weighted) = cache.stats();
        assert!(weighted <= 10_000, "{weighted}");
    }

    /// (Cache-Control values, no_store, private, max_age seconds)
    #[test]
    fn backend_cache_control_directives_are_read() {
        let cases: &[(&[&str], bool, bool, Option<u64>)] = &[
            (&[], false, false, None),
            (&["max-age=60"], false, false, Some(60)),
            (&["public, max-age=60, s-maxage=10"], false, false, Some(10)),
            (&["private, max-age=5"], false, true, Some(5)),
            (&["no-store"], true, false, None),
            (&["No-Cache"], true, false, None),
            (&["max-age=\"30\""], false, false, Some(30)),
            (&["max-age=soon"], false, false, None),
            (&["max-age=60", "private"], false, true, Some(60)),
        ];
        for (values, no_store, private, max_age) in cases {
            let mut headers = http::HeaderMap::new();
            for value in *values {
                headers.append(http::header::CACHE_CONTROL, value.parse().expect("value"));
            }
            let found = CacheControl::of(&headers);
            assert_eq!(
                (found.no_store, found.private, found.max_age.map(|d| d.as_secs())),
                (*no_store, *private, *max_age),
                "{values:?}"
            );
        }
    }

    #[test]
    fn rules_combine_to_the_stricter() {
        let public = Rule { ttl: Duration::from_secs(60), private: false, stale: Duration::from_secs(5) };
        let private = Rule { ttl: Duration::from_secs(10), private: true, stale: Duration::from_secs(30) };
        let stricter = Rule { ttl: Duration::from_secs(10), private: true, stale: Duration::from_secs(5) };
        assert_eq!(public.and(&private), stricter);
    }
}
