//! Counters in this process: a map from key to state, split into shards so that unrelated keys
//! do not contend. A request's charges are all-or-nothing: the shards they touch are locked in
//! order, every charge is computed, and the new states are stored only if all of them fit.
//! Expired states are swept from a shard as it grows, and a shard is never larger than its share
//! of `rate_limits.max_keys`: when a new key finds it full of live states, the eighth closest to
//! expiring (the counters nearest to being forgotten anyway) are dropped, so a flood of distinct
//! keys costs bounded memory and amortised constant time.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Charge;
use super::algorithm::{Outcome, State, charge};

const SHARDS: usize = 32;
/// A shard is swept of expired states each time it grows by this many keys.
const SWEEP_EVERY: usize = 4096;

/// The default of `rate_limits.max_keys`.
const DEFAULT_MAX_KEYS: usize = 100_000;

/// In-memory counters.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    /// Most keys a shard holds.
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    /// Keys carry client-chosen text (a header's value, a claim), so the hasher is seeded.
    states: HashMap<String, (State, f64), foldhash::quality::RandomState>,
    swept_at: usize,
}

impl Shard {
    /// The live state under `key`.
    fn live(&self, key: &str, now: f64) -> Option<State> {
        self.states.get(key).filter(|(_, expires)| *expires > now).map(|(state, _)| *state)
    }

    /// Stores an allowed charge's new state, making room below `limit` keys for a new one and
    /// sweeping expired states as the shard grows.
    fn store(&mut self, key: &str, outcome: &Outcome, limit: usize, now: f64) {
        if let Some(held) = self.states.get_mut(key) {
            *held = (outcome.next, outcome.expires);
            return;
        }
        if self.states.len() >= limit {
            self.make_room(limit, now);
        }
        self.states.insert(key.to_owned(), (outcome.next, outcome.expires));
        if self.states.len() >= self.swept_at + SWEEP_EVERY {
            self.states.retain(|_, (_, expires)| *expires > now);
            self.swept_at = self.states.len();
        }
    }

    /// Frees room below `limit`: expired states first, then the eighth of the live ones that
    /// expire soonest.
    fn make_room(&mut self, limit: usize, now: f64) {
        self.states.retain(|_, (_, expires)| *expires > now);
        if self.states.len() >= limit {
            let mut expiries: Vec<f64> = self.states.values().map(|(_, expires)| *expires).collect();
            let drop = (expiries.len() / 8).max(1);
            let (_, cut, _) = expiries.select_nth_unstable_by(drop - 1, f64::total_cmp);
            let cut = *cut;
            let mut dropped = 0;
            self.states.retain(|_, (_, expires)| {
                let keep = *expires > cut || dropped >= drop;
                if !keep {
                    dropped += 1;
                }
                keep
            });
        }
        self.swept_at = self.states.len();
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_max_keys(DEFAULT_MAX_KEYS)
    }
}

fn shard_of(key: &str) -> usize {
    use std::hash::BuildHasher;
    (rustc_hash::FxBuildHasher.hash_one(key) as usize) % SHARDS
}

impl MemoryStore {
    /// A store holding at most about `max_keys` counters (rounded up to a multiple of its shards).
    pub fn with_max_keys(max_keys: usize) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// Counters held, live or not yet swept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).states.len()).sum()
    }

    /// True when no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `charges` at `now` (ms): every outcome, stored only if all are allowed.
    pub fn apply(&self, charges: &[Charge], now: f64) -> Vec<Outcome> {
        // One charge (the usual case): one shard, no ordering.
        if let [only] = charges {
            let mut shard = self.lock(shard_of(&only.key));
            let outcome = charge(only.spec, shard.live(&only.key, now), only.amount, now);
            if outcome.allowed {
                shard.store(&only.key, &outcome, self.per_shard, now);
            }
            return vec![outcome];
        }
        let mut order: Vec<usize> = charges.iter().map(|c| shard_of(&c.key)).collect();
        let of_charge = order.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, std::sync::MutexGuard<'_, Shard>)> =
            order.iter().map(|&i| (i, self.lock(i))).collect();
        let mut outcomes = Vec::with_capacity(charges.len());
        for (charge_index, item) in charges.iter().enumerate() {
            let shard = &guards.iter().find(|(i, _)| *i == of_charge[charge_index]).expect("locked").1;
            outcomes.push(charge(item.spec, shard.live(&item.key, now), item.amount, now));
        }
        if outcomes.iter().all(|o| o.allowed) {
            for (charge_index, item) in charges.iter().enumerate() {
                let shard = &mut guards.iter_mut().find(|(i, _)| *i == of_charge[charge_index]).expect("locked").1;
                shard.store(&item.key, &outcomes[charge_index], self.per_shard, now);
            }
        }
        outcomes
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every live key's state, for the admin API.
    pub fn snapshot(&self, now: f64) -> Vec<(String, State)> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            all.extend(
                shard
                    .states
                    .iter()
                    .filter(|(_, (_, expires))| *expires > now)
                    .map(|(key, (state, _))| (key.clone(), *state)),
            );
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
