//! Counters in Redis, shared by every gateway instance: one Lua script applies a request's
//! charges atomically — the same arithmetic as `algorithm`, all-or-nothing — with the Redis
//! server's clock, so instances whose clocks differ still agree. Connections come from the one
//! `[redis]` block: multiplexed connection managers (`pool_size`) to the first URL, and the next
//! URL when it fails.

use super::Charge;
use super::algorithm::{Outcome, Spec, State};
use crate::config::RedisConfig;
use crate::redis_pool::RedisPool;

/// The script: KEYS are the counters; ARGV holds four values per key (kind, two parameters,
/// amount). It answers `{allowed, now, remaining, reset, retry_after, ...}` (one triple per key;
/// times in ms, rounded up).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = true
local out = {}
local writes = {}
for i = 1, #KEYS do
  local b = (i - 1) * 4
  local kind, p1, p2, amount = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local stored = redis.call('GET', KEYS[i])
  local allowed, nextv, remaining, reset, retry, expires
  if kind == 1 then
    local tat = now
    if stored then tat = math.max(tonumber(stored), now) end
    local capacity = p1 * p2
    local nxt = tat + p1 * amount
    if nxt - now <= capacity + 0.000001 then
      allowed, nextv = true, nxt
      remaining = math.floor((capacity - (nxt - now)) / p1 + 0.000000001)
      reset, retry, expires = nxt - now, 0, nxt
    else
      allowed, nextv = false, tat
      remaining = math.max(0, math.floor((capacity - (tat - now)) / p1 + 0.000000001))
      reset, retry, expires = tat - now, nxt - now - capacity, tat
    end
  elseif kind == 2 then
    local capacity = p2
    local tokens = capacity
    if stored then
      local sep = string.find(stored, ':', 1, true)
      local left, at = tonumber(string.sub(stored, 1, sep - 1)), tonumber(string.sub(stored, sep + 1))
      tokens = math.min(capacity, left + math.max(0, now - at) / p1)
    end
    if tokens + 0.000000001 >= amount then
      local left = tokens - amount
      allowed, nextv = true, string.format('%.17g:%d', left, now)
      remaining = math.floor(left + 0.000000001)
      reset, retry = (capacity - left) * p1, 0
    else
      allowed, nextv = false, string.format('%.17g:%d', tokens, now)
      remaining = math.floor(tokens + 0.000000001)
      reset, retry = (capacity - tokens) * p1, (amount - tokens) * p1
    end
    expires = now + reset
  else
    local used = 0
    if stored then used = tonumber(stored) end
    reset = math.max(0, p2 - now)
    if used + amount <= p1 then
      allowed, nextv, remaining, retry = true, used + amount, p1 - used - amount, 0
    else
      allowed, nextv, remaining, retry = false, used, math.max(0, p1 - used), reset
    end
    expires = p2 + 60000
  end
  if not allowed then all = false end
  writes[i] = {nextv, math.max(1, math.ceil(expires - now))}
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(reset)
  out[#out + 1] = math.ceil(retry)
end
if all then
  for i = 1, #KEYS do
    if type(writes[i][1]) == 'number' then
      redis.call('SET', KEYS[i], string.format('%.17g', writes[i][1]), 'PX', writes[i][2])
    else
      redis.call('SET', KEYS[i], writes[i][1], 'PX', writes[i][2])
    end
  end
end
local answer = {all and 1 or 0, now}
for _, v in ipairs(out) do answer[#answer + 1] = v end
return answer
";

/// Why the store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the rate-limit store (redis) is unreachable: {0}")]
pub struct StoreError(pub String);

/// Counters in Redis.
pub struct RedisStore {
    pool: RedisPool,
    script: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The store `config` describes (no connection is made yet); an error names the key.
    pub fn build(config: &RedisConfig) -> Result<Self, (String, String)> {
        Ok(RedisStore { pool: RedisPool::build(config)?, script: redis::Script::new(SCRIPT) })
    }

    /// Applies `charges` atomically: the outcomes and the server's time (ms).
    pub async fn apply(&self, charges: &[Charge]) -> Result<(Vec<Outcome>, f64), StoreError> {
        let keys: Vec<String> = charges.iter().map(|charge| self.pool.key(&charge.key)).collect();
        let answer = self
            .pool
            .run(|mut connection| {
                let mut invocation = self.script.prepare_invoke();
                for (charge, key) in charges.iter().zip(&keys) {
                    invocation.key(key);
                    let (kind, p1, p2) = match charge.spec {
                        Spec::Gcra { interval, burst } => (1, interval, burst as f64),
                        Spec::Bucket { interval, burst } => (2, interval, burst as f64),
                        Spec::Quota { limit, period_end } => (3, limit as f64, period_end),
                    };
                    invocation.arg(kind).arg(p1).arg(p2).arg(charge.amount);
                }
                async move { invocation.invoke_async::<Vec<i64>>(&mut connection).await }
            })
            .await
            .map_err(|e| StoreError(e.0))?;
        if answer.len() != 2 + 3 * charges.len() {
            return Err(StoreError(format!("the script answered {} values", answer.len())));
        }
        let allowed = answer[0] == 1;
        let now = answer[1] as f64;
        let outcomes = answer[2..]
            .chunks(3)
            .map(|v| Outcome {
                allowed: allowed || v[2] <= 0,
                next: State::Used(0),
                remaining: u64::try_from(v[0]).unwrap_or(0),
                reset: v[1] as f64,
                retry_after: v[2].max(0) as f64,
                expires: 0.0,
            })
            .collect();
        Ok((outcomes, now))
    }

    /// Every counter under the key prefix (at most 10 000), without the prefix, with its value.
    pub async fn scan(&self) -> Result<Vec<(String, String)>, StoreError> {
        const MOST: usize = 10_000;
        let prefix = self.pool.key("");
        let found = self
            .pool
            .run(|mut connection| {
                let prefix = prefix.clone();
                async move {
                    let mut keys: Vec<String> = Vec::new();
                    let mut cursor: u64 = 0;
                    loop {
                        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(format!("{prefix}*"))
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut connection)
                            .await?;
                        keys.extend(batch);
                        cursor = next;
                        if cursor == 0 || keys.len() >= MOST {
                            break;
                        }
                    }
                    keys.truncate(MOST);
                    if keys.is_empty() {
                        return Ok(Vec::new());
                    }
                    let values: Vec<Option<String>> =
                        redis::cmd("MGET").arg(&keys).query_async(&mut connection).await?;
                    Ok(keys.into_iter().zip(values).collect::<Vec<_>>())
                }
            })
            .await
            .map_err(|e| StoreError(e.0))?;
        let mut found: Vec<(String, String)> = found
            .into_iter()
            .filter_map(|(key, value)| Some((key.strip_prefix(&prefix)?.to_owned(), value?)))
            .collect();
        found.sort();
        Ok(found)
    }
}
