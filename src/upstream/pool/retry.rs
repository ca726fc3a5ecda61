//! Retries of idempotent unary calls: only when the caller says the call is idempotent (the
//! backend operation decides, never the client's protocol) or the config names its method,
//! only on the failures `retry_on` lists (by default UNAVAILABLE: the call did not reach a
//! backend that answered), on another endpoint, within the call's deadline, after a jittered
//! exponential backoff, and only while the cluster's retry budget allows: retries in flight at
//! most `budget_percent` of calls in flight (or `min_concurrency`), so a cluster whose every
//! endpoint fails does not multiply its load. `attempts` runs that loop for gRPC and HTTP alike.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::{RetryConfig, RetryOn};
use crate::error::grpc_code;
use crate::upstream::UpstreamError;

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

    /// Whether the config names gRPC `path` (`/package.Service/Method`) as retryable.
    pub fn configured(&self, path: &str) -> bool {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.rsplit_once('/')) else { return false };
        self.config.methods.iter().any(|m| m.strip_prefix(service).and_then(|r| r.strip_prefix('.')) == Some(method))
    }

    /// Whether `error` is a failure `retry_on` lists.
    pub fn retryable(&self, error: &UpstreamError) -> bool {
        self.config.retry_on.iter().any(|on| match (on, error) {
            (RetryOn::Unavailable, UpstreamError::Unavailable { .. } | UpstreamError::Unsent { .. }) => true,
            (RetryOn::Unavailable, UpstreamError::Status { code, .. }) => *code == grpc_code::UNAVAILABLE,
            (RetryOn::Unavailable, UpstreamError::Http { status, .. }) => *status == 503,
            (RetryOn::ResourceExhausted, UpstreamError::Status { code, .. }) => *code == grpc_code::RESOURCE_EXHAUSTED,
            (RetryOn::ResourceExhausted, UpstreamError::Http { status, .. }) => *status == 429,
            (RetryOn::Internal, UpstreamError::Status { code, .. }) => *code == grpc_code::INTERNAL,
            (RetryOn::Internal, UpstreamError::Http { status, .. }) => *status == 500,
            (RetryOn::GatewayError, UpstreamError::Http { status, .. }) => matches!(*status, 502 | 504),
            _ => false,
        })
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

/// Times one call is sent again at once, outside the budget and whatever its method, when the
/// backend turned it away unprocessed (`UpstreamError::Unsent`: a refused stream, a GOAWAY, a
/// connection closed before the request was written), as gRPC clients do (gRFC A6). One call
/// can meet several in a row: queued on a connection its GOAWAY closes, then refused on the
/// fresh one because it went out before the backend's SETTINGS said how many streams it takes.
/// Bounded, so a backend that refuses everything still fails fast.
const TRANSPARENT_RETRIES: u32 = 4;

/// Runs `attempt` (given the time left and the endpoint to avoid; returning its result and the
/// endpoint it went to) until it succeeds, fails in a way that is not retried, or the retries,
/// the budget or the deadline run out. Only `idempotent` calls are retried, and only on
/// clusters of more than one endpoint; a call the backend never processed is first sent again
/// transparently.
pub async fn attempts<T, F, Fut>(
    budget: &RetryBudget,
    endpoints: usize,
    timeout: Option<Duration>,
    idempotent: bool,
    mut attempt: F,
) -> Result<T, UpstreamError>
where
    F: FnMut(Option<Duration>, Option<usize>) -> Fut,
    Fut: std::future::Future<Output = (Result<T, UpstreamError>, Option<usize>)>,
{
    let _counted = budget.call();
    let started = tokio::time::Instant::now();
    let mut avoid = None;
    let mut tries = 0;
    let mut transparent = 0;
    let mut _retrying = None;
    loop {
        let remaining = match timeout {
            Some(timeout) => match timeout.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(UpstreamError::DeadlineExceeded),
            },
            None => None,
        };
        let (result, index) = attempt(remaining, avoid).await;
        if matches!(result, Err(UpstreamError::Unsent { .. })) && transparent < TRANSPARENT_RETRIES {
            transparent += 1;
            continue;
        }
        let retryable = match &result {
            Err(error) => idempotent && tries < budget.max_retries() && endpoints > 1 && budget.retryable(error),
            Ok(_) => false,
        };
        if !retryable {
            return result;
        }
        let Some(retry) = budget.try_retry() else { return result };
        _retrying = Some(retry);
        tries += 1;
        avoid = index;
        let wait = budget.backoff(tries);
        // The time left now, after the attempt: a backoff that would end past the deadline
        // means the failure is the answer, at once.
        let left = timeout.map(|timeout| timeout.saturating_sub(started.elapsed()));
        if left.is_some_and(|left| left <= wait) {
            return result;
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_names_the_failures_retried_for_grpc_and_http_alike() {
        let status = |code| UpstreamError::Status { code, message: String::new(), details: Default::default() };
        let http = |status| UpstreamError::Http { status, message: String::new() };
        let unreachable = UpstreamError::Unavailable { cluster: "c".into() };
        // (retry_on, error, retried)
        let table = [
            (vec![RetryOn::Unavailable], unreachable.clone(), true),
            (vec![RetryOn::Unavailable], UpstreamError::Unsent { cluster: "c".into() }, true),
            (vec![RetryOn::Unavailable], status(grpc_code::UNAVAILABLE), true),
            (vec![RetryOn::Unavailable], http(503), true),
            (vec![RetryOn::Unavailable], status(grpc_code::INTERNAL), false),
            (vec![RetryOn::Unavailable], http(502), false),
            (vec![RetryOn::Unavailable], UpstreamError::DeadlineExceeded, false),
            (vec![RetryOn::ResourceExhausted], status(grpc_code::RESOURCE_EXHAUSTED), true),
            (vec![RetryOn::ResourceExhausted], http(429), true),
            (vec![RetryOn::Internal], status(grpc_code::INTERNAL), true),
            (vec![RetryOn::Internal], http(500), true),
            (vec![RetryOn::GatewayError], http(502), true),
            (vec![RetryOn::GatewayError], http(504), true),
            (vec![RetryOn::GatewayError], unreachable.clone(), false),
            (vec![], unreachable, false),
        ];
        for (retry_on, error, want) in table {
            let budget = RetryBudget::new(RetryConfig { retry_on: retry_on.clone(), ..RetryConfig::default() });
            assert_eq!(budget.retryable(&error), want, "{retry_on:?} {error:?}");
        }
        let budget =
            RetryBudget::new(RetryConfig { methods: vec!["c.v1.Catalog.CreateBook".into()], ..Default::default() });
        assert!(budget.configured("/c.v1.Catalog/CreateBook"));
        assert!(!budget.configured("/c.v1.Catalog/DeleteBook"));
        assert!(!budget.configured("/c.v1.Catalo/CreateBook"));
    }

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

    #[tokio::test]
    async fn a_call_the_backend_never_processed_is_sent_again_outside_the_budget() {
        // (calls turned away unprocessed before one is served, the answer)
        let table: [(u32, Result<u32, &str>); 4] =
            [(0, Ok(1)), (1, Ok(2)), (TRANSPARENT_RETRIES, Ok(TRANSPARENT_RETRIES + 1)), (9, Err("unsent"))];
        for (refused, want) in table {
            let budget = RetryBudget::new(RetryConfig::default());
            let mut sent = 0;
            // Not idempotent and one endpoint: no ordinary retry may happen.
            let answer = attempts(&budget, 1, None, false, |_, _| {
                sent += 1;
                let result = if sent > refused { Ok(sent) } else { Err(UpstreamError::Unsent { cluster: "c".into() }) };
                async move { (result, Some(0)) }
            })
            .await;
            let got = answer.map_err(|e| if matches!(e, UpstreamError::Unsent { .. }) { "unsent" } else { "other" });
            assert_eq!(got, want, "{refused} refusals");
            assert_eq!(budget.counts(), (0, 0), "the budget is untouched");
        }
    }
}
