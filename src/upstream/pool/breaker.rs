//! A cluster's circuit breaker: calls beyond `max_concurrent` in flight fail fast; when at least
//! `min_requests` calls in a `window` have ended and `failure_rate` percent of them failed (the
//! backend unavailable, timing out, or answering with a server error), the breaker opens and
//! every call fails fast for `open_for`; then `half_open_probes` calls go through, and their
//! success closes it again while a failure reopens it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

use crate::config::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probes: u32 },
}

#[derive(Debug)]
struct Window {
    state: State,
    started: Instant,
    calls: u32,
    failures: u32,
}

/// A cluster's breaker.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    in_flight: AtomicUsize,
    window: Mutex<Window>,
}

/// Why the breaker refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The breaker is open.
    Open,
    /// Too many calls in flight.
    Saturated(usize),
}

/// A call the breaker let through; report how it ended with `finish`.
#[derive(Debug)]
pub struct Admitted {
    breaker: std::sync::Arc<Breaker>,
    finished: bool,
}

impl Admitted {
    /// Records whether the call failed (the backend's fault).
    pub fn finish(mut self, failed: bool) {
        self.finished = true;
        self.breaker.record(failed);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.breaker.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !self.finished {
            // Abandoned (the client went away): not the backend's fault.
            self.breaker.release_probe();
        }
    }
}

impl Breaker {
    /// A closed breaker with `config`'s limits.
    pub fn new(config: BreakerConfig) -> Self {
        let window = Window { state: State::Closed, started: Instant::now(), calls: 0, failures: 0 };
        Breaker { config, in_flight: AtomicUsize::new(0), window: Mutex::new(window) }
    }

    /// Lets a call through, or says why not.
    pub fn admit(self: &std::sync::Arc<Self>) -> Result<Admitted, Refused> {
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel);
        // From here the guard gives the slot back, whichever way this returns.
        let mut admitted = Admitted { breaker: self.clone(), finished: true };
        if in_flight >= self.config.max_concurrent as usize {
            return Err(Refused::Saturated(in_flight));
        }
        let mut window = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match window.state {
            State::Closed => {}
            State::Open { until } if now < until => return Err(Refused::Open),
            State::Open { .. } => window.state = State::HalfOpen { probes: 1 },
            State::HalfOpen { probes } if probes < self.config.half_open_probes => {
                window.state = State::HalfOpen { probes: probes + 1 };
            }
            State::HalfOpen { .. } => return Err(Refused::Open),
        }
        drop(window);
        admitted.finished = false;
        Ok(admitted)
    }

    fn record(&self, failed: bool) {
        let mut window = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match window.state {
            State::HalfOpen { .. } if failed => {
                window.state = State::Open { until: now + self.config.open_for.get() };
            }
            State::HalfOpen { .. } => {
                *window = Window { state: State::Closed, started: now, calls: 0, failures: 0 };
            }
            State::Open { .. } => {}
            State::Closed => {
                if now.duration_since(window.started) > self.config.window.get() {
                    window.started = now;
                    window.calls = 0;
                    window.failures = 0;
                }
                window.calls += 1;
                window.failures += u32::from(failed);
                if window.calls >= self.config.min_requests
                    && window.failures * 100 >= window.calls * self.config.failure_rate
                {
                    window.state = State::Open { until: now + self.config.open_for.get() };
                }
            }
        }
    }

    fn release_probe(&self) {
        let mut window = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let State::HalfOpen { probes } = window.state {
            window.state = State::HalfOpen { probes: probes.saturating_sub(1) };
        }
    }

    /// `closed`, `open` or `half_open`.
    pub fn state(&self) -> &'static str {
        match self.window.lock().map(|w| w.state) {
            Ok(State::Closed) => "closed",
            Ok(State::Open { until }) if Instant::now() < until => "open",
            Ok(State::Open { .. } | State::HalfOpen { .. }) => "half_open",
            Err(_) => "closed",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::ConfigDuration;

    #[tokio::test(start_paused = true)]
    async fn opens_on_failures_fails_fast_and_recovers_through_half_open() {
        let config = BreakerConfig {
            max_concurrent: 2,
            failure_rate: 50,
            min_requests: 4,
            window: ConfigDuration::from_secs(10),
            open_for: ConfigDuration::from_secs(5),
            half_open_probes: 1,
        };
        let breaker = std::sync::Arc::new(Breaker::new(config));
        // Limits: the third call at once is refused.
        let a = breaker.admit().expect("first");
        let b = breaker.admit().expect("second");
        assert_eq!(breaker.admit().err(), Some(Refused::Saturated(2)));
        a.finish(false);
        b.finish(true);
        // 2 of 4 failed: open.
        breaker.admit().expect("third").finish(false);
        breaker.admit().expect("fourth").finish(true);
        assert_eq!(breaker.state(), "open");
        assert_eq!(breaker.admit().err(), Some(Refused::Open));
        // After open_for, one probe; a failed probe reopens.
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = breaker.admit().expect("probe");
        assert_eq!(breaker.admit().err(), Some(Refused::Open), "one probe at a time");
        probe.finish(true);
        assert_eq!(breaker.state(), "open");
        tokio::time::advance(Duration::from_secs(5)).await;
        breaker.admit().expect("probe").finish(false);
        assert_eq!(breaker.state(), "closed");
        breaker.admit().expect("closed again").finish(false);
    }
}
