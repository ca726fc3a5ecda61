//! A latency histogram of atomic counters with fixed bucket bounds, cheap enough to record on
//! every backend call: one relaxed add to the observation's bucket and one to the sum.
//! Cumulative counts are computed when it is read, at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (the last, +Inf, is implicit).
pub const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counts of observations per bucket, and their sum.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Per bucket (not cumulative), then the +Inf bucket.
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of the observations in nanoseconds.
    sum_nanos: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_nanos: AtomicU64::new(0) }
    }
}

/// A histogram's state at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// How many there were.
    pub count: u64,
    /// (upper bound, cumulative count) for each finite bucket.
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let bucket = BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The cumulative counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(BUCKETS.len());
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            running += count.load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        let count = running + self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        HistogramSnapshot { sum, count, buckets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_overflow_counts() {
        let histogram = LatencyHistogram::default();
        for millis in [0, 1, 3, 3, 40, 20_000] {
            histogram.observe(Duration::from_millis(millis));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 6);
        assert!((snapshot.sum - 20.047).abs() < 1e-9, "{}", snapshot.sum);
        let at = |bound: f64| snapshot.buckets.iter().find(|(b, _)| *b == bound).map(|(_, c)| *c);
        assert_eq!(
            (at(0.0005), at(0.001), at(0.005), at(0.05), at(10.0)),
            (Some(1), Some(2), Some(4), Some(5), Some(5))
        );
    }
}
