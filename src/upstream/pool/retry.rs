//! Retries of idempotent unary calls: only when the caller says the call is idempotent (the
//! backend operation decides, never the client's protocol), only on UNAVAILABLE (the call did
//! not reach a backend that answered), on another endpoint, within the call's deadline, after a
//! jittered exponential backoff, and only while the cluster's retry budget allows: retries in
//! flight at most `budget_percent` of calls in flight (or `min_concurrency`), so a cluster whose
//! every endpoint fails does not multiply its load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::RetryConfig;

/// A cluster's retry state.
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryConfig,
    calls: AtomicUsize,
    retries: AtomicUsize,
    /// Retries made, ever.
    made: AtomicU64,
    /// Retries the budget refused, ever.
    refused: AtomicU64,
}

/// A call counted as in flight for the budget.
#[derive(Debug)]
pub struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RetryBudget {
    /// A budget with `config`'s limits.
    pub fn new(config: RetryConfig) -> Self {
        RetryBudget {
            config,
            calls: AtomicUsize::new(0),
            retries: AtomicUsize::new(0),
            made: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Most retries of one call.
    pub fn max_retries(&self) -> u32 {
        self.config.max_retries
    }

    /// Counts a call in flight.
    pub fn call(&self) -> Counted<'_> {
        self.calls.fetch_add(1, Ordering::AcqRel);
        Counted(&self.calls)
    }

    /// A retry, if the budget allows one now.
    pub fn try_retry(&self) -> Option<Counted<'_>> {
        let calls = self.calls.load(Ordering::Acquire);
        let allowed = (calls * self.config.budget_percent as usize / 100).max(self.config.min_concurrency as usize);
        let retries = self.retries.fetch_add(1, Ordering::AcqRel);
        if retries >= allowed {
            self.retries.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.made.fetch_add(1, Ordering::Relaxed);
        Some(Counted(&self.retries))
    }

    /// The wait before retry `attempt` (1-based): full jitter over an exponential ceiling.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.base_backoff.get();
        let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(self.config.max_backoff.get());
        ceiling.mul_f64(fastrand::f64())
    }

    /// Retries made and refused so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.made.load(Ordering::Relaxed), self.refused.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_caps_retries_at_a_share_of_calls_in_flight() {
        let config = RetryConfig { budget_percent: 20, min_concurrency: 2, ..RetryConfig::default() };
        let budget = RetryBudget::new(config);
        let calls: Vec<_> = (0..20).map(|_| budget.call()).collect();
        // 20% of 20 calls: 4 retries at once.
        let retries: Vec<_> = (0..10).filter_map(|_| budget.try_retry()).collect();
        assert_eq!(retries.len(), 4);
        drop(retries);
        drop(calls);
        // With nothing in flight, the floor still allows two.
        let floor: Vec<_> = (0..5).filter_map(|_| budget.try_retry()).collect();
        assert_eq!(floor.len(), 2);
        assert_eq!(budget.counts(), (6, 9));
        for attempt in 1..6 {
            assert!(budget.backoff(attempt) <= budget.config.max_backoff.get());
        }
    }
}
