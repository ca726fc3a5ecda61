//! A cluster's circuit breaker: calls beyond `max_concurrent` in flight wait for a slot (at most
//! `max_pending` of them, each no longer than its deadline) or fail fast; when at least
//! `min_requests` calls in a `window` have ended and `failure_rate` percent of them failed (the
//! backend unavailable, timing out, or answering with a server error), the breaker opens and
//! every call fails fast for `open_for`; then `half_open_probes` calls go through, and their
//! success closes it again while a failure reopens it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    /// One permit per call that may be in flight.
    slots: Arc<Semaphore>,
    /// Calls waiting for a permit.
    pending: AtomicUsize,
    window: Mutex<Window>,
}

/// Why the breaker refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The breaker is open.
    Open,
    /// Too many calls in flight, and no room (or no time) to wait for one to end.
    Saturated(usize),
    /// Too many calls already waiting for a slot.
    Pending(usize),
}

/// A call the breaker let through; report how it ended with `finish`.
#[derive(Debug)]
pub struct Admitted {
    breaker: Arc<Breaker>,
    _slot: OwnedSemaphorePermit,
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
        let slots = Arc::new(Semaphore::new(config.max_concurrent as usize));
        Breaker { config, slots, pending: AtomicUsize::new(0), window: Mutex::new(window) }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        (self.config.max_concurrent as usize).saturating_sub(self.slots.available_permits())
    }

    /// Calls waiting for a slot now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Lets a call through, or says why not, without waiting.
    pub fn admit(self: &Arc<Self>) -> Result<Admitted, Refused> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| Refused::Saturated(self.in_flight()))?;
        self.pass(slot)
    }

    /// Lets a call through; when every slot is taken it waits for one, up to `wait`, as one of
    /// at most `max_pending` waiting calls.
    pub async fn admit_waiting(self: &Arc<Self>, wait: Option<Duration>) -> Result<Admitted, Refused> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return self.pass(slot);
        }
        if self.state() == "open" {
            return Err(Refused::Open);
        }
        let waiting = Waiting::join(&self.pending);
        if waiting.ahead >= self.config.max_pending as usize {
            return Err(Refused::Pending(waiting.ahead));
        }
        let acquire = self.slots.clone().acquire_owned();
        let slot = match wait {
            Some(wait) => tokio::time::timeout(wait, acquire).await.ok(),
            None => Some(acquire.await),
        };
        drop(waiting);
        match slot {
            Some(Ok(slot)) => self.pass(slot),
            _ => Err(Refused::Saturated(self.in_flight())),
        }
    }

    /// Holding a slot, the breaker's state decides.
    fn pass(self: &Arc<Self>, slot: OwnedSemaphorePermit) -> Result<Admitted, Refused> {
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
        Ok(Admitted { breaker: self.clone(), _slot: slot, finished: false })
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

/// A place among the calls waiting for a slot, given back when dropped.
struct Waiting<'a> {
    count: &'a AtomicUsize,
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn join(count: &'a AtomicUsize) -> Self {
        Waiting { ahead: count.fetch_add(1, Ordering::AcqRel), count }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
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
            max_pending: 0,
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

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_limit_wait_for_a_slot_up_to_max_pending_and_their_deadline() {
        let config = BreakerConfig { max_concurrent: 1, max_pending: 1, ..BreakerConfig::default() };
        let breaker = std::sync::Arc::new(Breaker::new(config));
        let first = breaker.admit_waiting(None).await.expect("a free slot");
        // The second waits; a third finds the queue full.
        let waiter = {
            let breaker = breaker.clone();
            tokio::spawn(
                async move { breaker.admit_waiting(Some(Duration::from_secs(1))).await.map(|a| a.finish(false)) },
            )
        };
        tokio::task::yield_now().await;
        assert_eq!(breaker.pending(), 1);
        assert_eq!(breaker.admit_waiting(None).await.err(), Some(Refused::Pending(1)));
        // The first ends: the waiter gets its slot.
        first.finish(false);
        assert_eq!(waiter.await.expect("task"), Ok(()));
        assert_eq!((breaker.in_flight(), breaker.pending()), (0, 0));
        // A waiter whose deadline passes first is refused, and leaves the queue.
        let _held = breaker.admit().expect("free");
        let late = breaker.admit_waiting(Some(Duration::from_millis(50))).await;
        assert_eq!(late.err(), Some(Refused::Saturated(1)));
        assert_eq!(breaker.pending(), 0);
    }
}
