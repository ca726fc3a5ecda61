//! The registry in Redis, shared by every gateway instance of a deployment (`[sources]
//! registry = "redis"`). Under the `[redis]` key prefix:
//!
//! - `registry:generation` — a counter, incremented by every change;
//! - `registry:current` — a hash, registration name → digest of the version serving now;
//! - `registry:blob:DIGEST` — a registration's encoded descriptor set, written once and never
//!   deleted (versions share them);
//! - `registry:versions:NAME` — a list of `NUMBER DIGEST UNIX_SECONDS`, every version NAME has
//!   had, oldest first (a rollback appends the version it restores, as the directory does);
//! - channel `registry:changes` — the new generation, published by every change.
//!
//! A change is checked against the registrations at one generation and written by a script
//! only if the generation is still that one (compare-and-set), so two instances changing the
//! registry at once never lose or half-apply a change: the later one is checked again.

use std::time::{Duration, SystemTime};

use super::store::{Change, Guard, check_add, check_remove, check_rollback};
use super::{Changed, Pending, Registration, RegistryError, Version};
use crate::redis_pool::{RedisError, RedisPool};

/// Writes a checked change if the generation is still the one it was checked at.
/// KEYS: generation, current, versions:NAME, blob:DIGEST (or "" for a removal).
/// ARGV: expected generation, name, "write" | "remove", digest, blob, channel.
/// Returns {0, new generation} or {-1, generation found}.
const COMMIT: &str = r"
local found = tonumber(redis.call('GET', KEYS[1]) or '0')
if found ~= tonumber(ARGV[1]) then return {-1, found} end
if ARGV[3] == 'remove' then
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('SET', KEYS[4], ARGV[5])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  local now = redis.call('TIME')
  local number = redis.call('LLEN', KEYS[3]) + 1
  redis.call('RPUSH', KEYS[3], number .. ' ' .. ARGV[4] .. ' ' .. now[1])
end
local generation = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[6], generation)
return {0, generation}
";

/// Writes a whole registry back into an empty one (Redis lost its data), if it is still
/// empty. KEYS: generation, current, then per registration blob:DIGEST and versions:NAME.
/// ARGV: generation to set, channel, then per registration name and digest.
/// Returns 1 when written, 0 when the registry was not empty any more.
const RESTORE: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= 0 or redis.call('HLEN', KEYS[2]) ~= 0 then return 0 end
local now = redis.call('TIME')
local count = (#ARGV - 2) / 3
for i = 1, count do
  local name, digest, blob = ARGV[3 * i], ARGV[3 * i + 1], ARGV[3 * i + 2]
  redis.call('SET', KEYS[2 * i + 1], blob)
  redis.call('HSET', KEYS[2], name, digest)
  local number = redis.call('LLEN', KEYS[2 * i + 2]) + 1
  redis.call('RPUSH', KEYS[2 * i + 2], number .. ' ' .. digest .. ' ' .. now[1])
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
";

/// The shared registry at one generation.
#[derive(Debug, Clone, Default)]
pub struct SharedState {
    /// The generation (0: nothing was ever registered).
    pub generation: u64,
    /// Its registrations, by name.
    pub registrations: Vec<Registration>,
}

/// The registry in Redis.
pub struct SharedRegistry {
    pool: RedisPool,
    commit: redis::Script,
    restore: redis::Script,
}

impl std::fmt::Debug for SharedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegistry").field("pool", &self.pool).finish_non_exhaustive()
    }
}

fn unreachable(error: RedisError) -> RegistryError {
    RegistryError::Shared(format!("the shared registry (Redis) did not answer: {error}"))
}

impl SharedRegistry {
    /// The shared registry on `pool`.
    pub fn new(pool: RedisPool) -> Self {
        SharedRegistry { pool, commit: redis::Script::new(COMMIT), restore: redis::Script::new(RESTORE) }
    }

    /// The connections it uses.
    pub fn pool(&self) -> &RedisPool {
        &self.pool
    }

    fn key(&self, key: &str) -> String {
        self.pool.key(&format!("registry:{key}"))
    }

    /// The channel every change is published on.
    pub fn channel(&self) -> String {
        self.key("changes")
    }

    /// The generation now.
    pub async fn generation(&self) -> Result<u64, RegistryError> {
        let key = self.key("generation");
        self.pool
            .run(|mut connection| {
                let key = key.clone();
                async move { redis::cmd("GET").arg(&key).query_async::<Option<u64>>(&mut connection).await }
            })
            .await
            .map(Option::unwrap_or_default)
            .map_err(unreachable)
    }

    /// The registrations now, with their generation (read together, in one transaction).
    pub async fn load(&self) -> Result<SharedState, RegistryError> {
        let (generation_key, current_key) = (self.key("generation"), self.key("current"));
        let (generation, current): (Option<u64>, Vec<(String, String)>) = self
            .pool
            .run(|mut connection| {
                let mut pipe = redis::pipe();
                pipe.atomic().cmd("GET").arg(&generation_key).cmd("HGETALL").arg(&current_key);
                async move { pipe.query_async(&mut connection).await }
            })
            .await
            .map_err(unreachable)?;
        // Blobs are never rewritten or deleted, so reading them apart is safe.
        let blobs = self.blobs(current.iter().map(|(_, digest)| digest.as_str())).await?;
        let mut registrations = Vec::with_capacity(current.len());
        for ((name, digest), blob) in current.iter().zip(blobs) {
            registrations.push(decode(name, digest, blob)?);
        }
        registrations.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(SharedState { generation: generation.unwrap_or_default(), registrations })
    }

    async fn blobs<'a>(&self, digests: impl Iterator<Item = &'a str>) -> Result<Vec<Option<Vec<u8>>>, RegistryError> {
        let keys: Vec<String> = digests.map(|d| self.key(&format!("blob:{d}"))).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.pool
            .run(|mut connection| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(&keys).query_async::<Vec<Option<Vec<u8>>>>(&mut connection).await }
            })
            .await
            .map_err(unreachable)
    }

    /// The versions of `name`, oldest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<Version>, RegistryError> {
        let (versions_key, current_key) = (self.key(&format!("versions:{name}")), self.key("current"));
        let (listed, current): (Vec<String>, Option<String>) = self
            .pool
            .run(|mut connection| {
                let mut pipe = redis::pipe();
                pipe.atomic().cmd("LRANGE").arg(&versions_key).arg(0).arg(-1).cmd("HGET").arg(&current_key).arg(name);
                async move { pipe.query_async(&mut connection).await }
            })
            .await
            .map_err(unreachable)?;
        let mut versions: Vec<Version> = listed.iter().filter_map(|entry| parse_version(entry)).collect();
        if let Some(last) = versions.last_mut().filter(|v| Some(&v.digest) == current.as_ref()) {
            last.current = true;
        }
        Ok(versions)
    }

    /// Checks adding `registration` against the registry now (see `RegistryDir::prepare_add`).
    pub async fn prepare_add(
        &self,
        registration: &Registration,
        allow_breaking: bool,
    ) -> Result<Pending, RegistryError> {
        let state = self.load().await?;
        let change = check_add(state.registrations.clone(), registration, allow_breaking)?;
        Ok(Pending::new(guard(state), &registration.name, change))
    }

    /// Checks removing `name` against the registry now.
    pub async fn prepare_remove(&self, name: &str) -> Result<Pending, RegistryError> {
        super::normalize::check_name(name)?;
        let state = self.load().await?;
        let change = check_remove(state.registrations.clone(), name)?;
        Ok(Pending::new(guard(state), name, change))
    }

    /// Checks rolling `name` back against the registry now.
    pub async fn prepare_rollback(&self, name: &str) -> Result<Pending, RegistryError> {
        super::normalize::check_name(name)?;
        let state = self.load().await?;
        let current = state.registrations.iter().find(|r| r.name == name).cloned();
        // The version to restore is the newest that is not the current one: only its set is read.
        let versions = self.versions(name).await?;
        let target = versions.iter().rev().find(|v| current.as_ref().is_none_or(|c| c.digest != v.digest));
        let older = match target {
            Some(version) => {
                let blob = self.blobs(std::iter::once(version.digest.as_str())).await?.pop().flatten();
                vec![decode(name, &version.digest, blob)]
            }
            None => Vec::new(),
        };
        let change = check_rollback(state.registrations.clone(), name, current, older.into_iter())?;
        Ok(Pending::new(guard(state), name, change))
    }

    /// Writes `state` back into the registry if it is empty (Redis restarted without its data):
    /// true when written, false when another instance wrote first or it was not empty.
    pub async fn restore(&self, state: &SharedState) -> Result<bool, RegistryError> {
        let mut keys = vec![self.key("generation"), self.key("current")];
        let mut args: Vec<Vec<u8>> = vec![state.generation.to_string().into_bytes(), self.channel().into_bytes()];
        for registration in &state.registrations {
            keys.push(self.key(&format!("blob:{}", registration.digest)));
            keys.push(self.key(&format!("versions:{}", registration.name)));
            args.push(registration.name.clone().into_bytes());
            args.push(registration.digest.clone().into_bytes());
            args.push(registration.encode());
        }
        let written: i64 = self
            .pool
            .run(|mut connection| {
                let mut invocation = self.restore.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                for arg in &args {
                    invocation.arg(arg);
                }
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await
            .map_err(unreachable)?;
        Ok(written == 1)
    }

    /// Writes a change checked by one of the `prepare_*` above, if the registry is still at
    /// the generation it was checked at: what it did and the new generation. When another
    /// change came first, `RegistryError::Stale`: check it again.
    pub async fn commit(&self, pending: Pending) -> Result<(Changed, u64), RegistryError> {
        let name = pending.name().to_owned();
        let Pending { guard: Guard::Generation { base, .. }, change, .. } = pending else {
            return Err(RegistryError::Shared(
                "a change checked against a directory cannot be written to Redis".into(),
            ));
        };
        let (verb, registration) = match &change {
            Change::Nothing => return Ok((Changed::Unchanged, base)),
            Change::Write { registration, .. } => ("write", Some(registration)),
            Change::Remove(_) => ("remove", None),
        };
        let digest = registration.map(|r| r.digest.clone()).unwrap_or_default();
        let blob = registration.map(Registration::encode).unwrap_or_default();
        let keys = [
            self.key("generation"),
            self.key("current"),
            self.key(&format!("versions:{name}")),
            registration.map(|r| self.key(&format!("blob:{}", r.digest))).unwrap_or_default(),
        ];
        let channel = self.channel();
        let (status, generation): (i64, u64) = self
            .pool
            .run(|mut connection| {
                let mut invocation = self.commit.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(base).arg(&name).arg(verb).arg(&digest).arg(&blob).arg(&channel);
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await
            .map_err(unreachable)?;
        if status != 0 {
            return Err(RegistryError::Stale { checked: base, found: generation });
        }
        let changed = match change {
            Change::Nothing => Changed::Unchanged,
            Change::Write { registration, report, rollback: true, .. } => {
                Changed::RolledBack(registration, report.unwrap_or_default())
            }
            Change::Write { report, .. } => Changed::Added(report),
            Change::Remove(removed) => Changed::Removed(removed),
        };
        Ok((changed, generation))
    }
}

fn guard(state: SharedState) -> Guard {
    Guard::Generation { base: state.generation, registrations: state.registrations }
}

fn decode(name: &str, digest: &str, blob: Option<Vec<u8>>) -> Result<Registration, RegistryError> {
    let what = || format!("the shared registry's `{name}` ({digest})");
    let blob = blob.ok_or_else(|| RegistryError::InvalidDescriptors {
        what: what(),
        message: "its descriptor set is missing from Redis".into(),
    })?;
    Registration::decode(name, &blob)
        .map_err(|e| RegistryError::InvalidDescriptors { what: what(), message: e.to_string() })
}

/// `NUMBER DIGEST UNIX_SECONDS` as a version (not current).
fn parse_version(entry: &str) -> Option<Version> {
    let mut parts = entry.split(' ');
    let number = parts.next()?.parse().ok()?;
    let digest = parts.next()?.to_owned();
    let seconds: u64 = parts.next()?.parse().ok()?;
    Some(Version { number, digest, written: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds), current: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_entries_parse_and_bad_ones_are_skipped() {
        let table = [
            ("3 abc 1700000000", Some((3, "abc", 1_700_000_000))),
            ("1 d 0", Some((1, "d", 0))),
            ("x abc 1", None),
            ("1 abc", None),
            ("1 abc soon", None),
            ("", None),
        ];
        for (entry, expected) in table {
            let parsed = parse_version(entry).map(|v| {
                let seconds = v.written.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(u64::MAX);
                (v.number, v.digest, seconds)
            });
            assert_eq!(parsed, expected.map(|(n, d, s)| (n, d.to_owned(), s)), "{entry:?}");
        }
    }
}
