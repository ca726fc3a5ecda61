//! Counters in this process: a map from key to state, split into shards so that unrelated keys
//! do not contend. A request's charges are all-or-nothing: the shards they touch are locked in
//! order, every charge is computed, and the new states are stored only if all of them fit.
//! Expired states are swept from a shard as it grows.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Charge;
use super::algorithm::{Outcome, State, charge};

const SHARDS: usize = 32;
/// A shard is swept of expired states each time it grows by this many keys.
const SWEEP_EVERY: usize = 4096;

/// In-memory counters.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    states: HashMap<String, (State, f64)>,
    swept_at: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect() }
    }
}

fn shard_of(key: &str) -> usize {
    use std::hash::BuildHasher;
    (rustc_hash::FxBuildHasher.hash_one(key) as usize) % SHARDS
}

impl MemoryStore {
    /// Applies `charges` at `now` (ms): every outcome, stored only if all are allowed.
    pub fn apply(&self, charges: &[Charge], now: f64) -> Vec<Outcome> {
        let mut order: Vec<usize> = charges.iter().map(|c| shard_of(&c.key)).collect();
        let of_charge = order.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, std::sync::MutexGuard<'_, Shard>)> = order
            .iter()
            .map(|&i| (i, self.shards[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)))
            .collect();
        let mut outcomes = Vec::with_capacity(charges.len());
        for (charge_index, item) in charges.iter().enumerate() {
            let shard = &guards.iter().find(|(i, _)| *i == of_charge[charge_index]).expect("locked").1;
            let state = shard.states.get(&item.key).filter(|(_, expires)| *expires > now).map(|(state, _)| *state);
            outcomes.push(charge(item.spec, state, item.amount, now));
        }
        if outcomes.iter().all(|o| o.allowed) {
            for (charge_index, item) in charges.iter().enumerate() {
                let outcome = &outcomes[charge_index];
                let shard = &mut guards.iter_mut().find(|(i, _)| *i == of_charge[charge_index]).expect("locked").1;
                shard.states.insert(item.key.clone(), (outcome.next, outcome.expires));
                if shard.states.len() >= shard.swept_at + SWEEP_EVERY {
                    shard.states.retain(|_, (_, expires)| *expires > now);
                    shard.swept_at = shard.states.len();
                }
            }
        }
        outcomes
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
