//! The arithmetic of limits, pure and clocked from outside: GCRA (one "theoretical arrival
//! time" per key), token buckets (tokens and their refill time) and fixed calendar quotas. The
//! memory store runs these functions; the Redis store runs the same arithmetic in its script.
//! Times are milliseconds since the Unix epoch, as f64 (Lua's numbers are doubles too).

/// A limit's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Spec {
    /// GCRA: one unit every `interval` ms, up to `burst` units at once.
    Gcra {
        /// Milliseconds per unit (window / limit).
        interval: f64,
        /// Units allowed at once.
        burst: u64,
    },
    /// Token bucket: `burst` tokens, one more every `interval` ms.
    Bucket {
        /// Milliseconds per token.
        interval: f64,
        /// Capacity.
        burst: u64,
    },
    /// `limit` units until `period_end` (ms); the key names the period.
    Quota {
        /// Units per period.
        limit: u64,
        /// When the period ends.
        period_end: f64,
    },
}

/// A key's stored state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    /// GCRA's theoretical arrival time.
    Tat(f64),
    /// A bucket's tokens at a time.
    Tokens {
        /// Tokens left.
        tokens: f64,
        /// When they were counted.
        at: f64,
    },
    /// Units used this period.
    Used(u64),
}

/// What a charge would do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Whether it fits.
    pub allowed: bool,
    /// The state to store if every charge of the request fits.
    pub next: State,
    /// Units left after it (when allowed) or now (when not).
    pub remaining: u64,
    /// Milliseconds until the limit is whole again (the period's end, for quotas).
    pub reset: f64,
    /// Milliseconds until this charge would fit (0 when allowed).
    pub retry_after: f64,
    /// When the stored state may be forgotten (ms since the epoch).
    pub expires: f64,
}

/// Charges `amount` units against `spec` at `now`, from `state` (None: a fresh key).
pub fn charge(spec: Spec, state: Option<State>, amount: u64, now: f64) -> Outcome {
    let amount_f = amount as f64;
    match spec {
        Spec::Gcra { interval, burst } => {
            let tat = match state {
                Some(State::Tat(tat)) => tat.max(now),
                _ => now,
            };
            let capacity = interval * burst as f64;
            let next = tat + interval * amount_f;
            if next - now <= capacity + 1e-6 {
                let remaining = ((capacity - (next - now)) / interval + 1e-9).floor().max(0.0) as u64;
                Outcome {
                    allowed: true,
                    next: State::Tat(next),
                    remaining,
                    reset: next - now,
                    retry_after: 0.0,
                    expires: next,
                }
            } else {
                let remaining = ((capacity - (tat - now)) / interval + 1e-9).floor().max(0.0) as u64;
                Outcome {
                    allowed: false,
                    next: State::Tat(tat),
                    remaining,
                    reset: tat - now,
                    retry_after: next - now - capacity,
                    expires: tat,
                }
            }
        }
        Spec::Bucket { interval, burst } => {
            let capacity = burst as f64;
            let tokens = match state {
                Some(State::Tokens { tokens, at }) => (tokens + (now - at).max(0.0) / interval).min(capacity),
                _ => capacity,
            };
            let full_in = |left: f64| (capacity - left) * interval;
            if tokens + 1e-9 >= amount_f {
                let left = tokens - amount_f;
                Outcome {
                    allowed: true,
                    next: State::Tokens { tokens: left, at: now },
                    remaining: (left + 1e-9).floor() as u64,
                    reset: full_in(left),
                    retry_after: 0.0,
                    expires: now + full_in(left),
                }
            } else {
                Outcome {
                    allowed: false,
                    next: State::Tokens { tokens, at: now },
                    remaining: (tokens + 1e-9).floor() as u64,
                    reset: full_in(tokens),
                    retry_after: (amount_f - tokens) * interval,
                    expires: now + full_in(tokens),
                }
            }
        }
        Spec::Quota { limit, period_end } => {
            let used = match state {
                Some(State::Used(used)) => used,
                _ => 0,
            };
            let reset = (period_end - now).max(0.0);
            if used.saturating_add(amount) <= limit {
                let used = used + amount;
                Outcome {
                    allowed: true,
                    next: State::Used(used),
                    remaining: limit - used,
                    reset,
                    retry_after: 0.0,
                    expires: period_end,
                }
            } else {
                Outcome {
                    allowed: false,
                    next: State::Used(used),
                    remaining: limit.saturating_sub(used),
                    reset,
                    retry_after: reset,
                    expires: period_end,
                }
            }
        }
    }
}

/// A quota period's label (part of its counter's key) and its end, for `now` (ms, UTC).
pub fn period(month: bool, now: f64) -> (String, f64) {
    let days = (now / 86_400_000.0).floor() as i64;
    let (year, month_number, day) = crate::civil_time::civil_from_days(days);
    if !month {
        return (format!("{year:04}-{month_number:02}-{day:02}"), (days + 1) as f64 * 86_400_000.0);
    }
    let (next_year, next_month) = if month_number == 12 { (year + 1, 1) } else { (year, month_number + 1) };
    let end = crate::civil_time::days_from_civil(next_year, next_month, 1) as f64 * 86_400_000.0;
    (format!("{year:04}-{month_number:02}"), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `requests` charges of one unit at the given times; how many were allowed.
    fn allowed(spec: Spec, times: impl IntoIterator<Item = f64>) -> usize {
        let mut state = None;
        let mut count = 0;
        for now in times {
            let outcome = charge(spec, state, 1, now);
            state = Some(outcome.next);
            count += usize::from(outcome.allowed);
        }
        count
    }

    /// N per window, all at once: exactly N pass and the N+1th is refused, for both algorithms
    /// and several sizes; a steady stream over ten windows gets N per window within 1%.
    #[test]
    fn n_per_window_are_allowed_and_the_next_is_refused() {
        for limit in [1u64, 7, 100, 1000] {
            let window = 60_000.0;
            let interval = window / limit as f64;
            for spec in [Spec::Gcra { interval, burst: limit }, Spec::Bucket { interval, burst: limit }] {
                let now = 1_700_000_000_000.0;
                assert_eq!(allowed(spec, std::iter::repeat_n(now, limit as usize + 1)), limit as usize, "{spec:?}");
                // 20 requests per expected slot, spread over ten windows.
                let per_window = limit as usize * 20;
                let times = (0..per_window * 10).map(|i| now + i as f64 * window / per_window as f64);
                let got = allowed(spec, times) as f64;
                let expected = (limit * 11) as f64; // the burst, then N per window for ten windows
                assert!((got - expected).abs() <= (expected * 0.01).max(1.0), "{spec:?}: {got} vs {expected}");
            }
        }
    }

    #[test]
    fn refusals_say_when_to_retry_and_headers_count_down() {
        let spec = Spec::Gcra { interval: 1000.0, burst: 3 };
        let now = 1_000_000.0;
        let first = charge(spec, None, 1, now);
        assert_eq!((first.allowed, first.remaining, first.reset), (true, 2, 1000.0));
        let second = charge(spec, Some(first.next), 2, now);
        assert_eq!((second.allowed, second.remaining), (true, 0));
        let refused = charge(spec, Some(second.next), 1, now);
        assert_eq!((refused.allowed, refused.retry_after, refused.remaining), (false, 1000.0, 0));
        let later = charge(spec, Some(second.next), 1, now + 1000.0);
        assert!(later.allowed);
        // A charge larger than the burst never fits; it is refused without changing the state.
        let huge = charge(spec, None, 4, now);
        assert_eq!((huge.allowed, huge.next), (false, State::Tat(now)));

        let bucket = Spec::Bucket { interval: 500.0, burst: 2 };
        let a = charge(bucket, None, 2, now);
        assert_eq!((a.allowed, a.remaining, a.reset), (true, 0, 1000.0));
        let b = charge(bucket, Some(a.next), 1, now + 250.0);
        assert_eq!((b.allowed, b.retry_after), (false, 250.0));
    }

    #[test]
    fn quotas_count_to_the_period_end() {
        let (label, end) = period(false, 1_764_504_000_000.0); // 2025-11-30T12:00:00Z
        assert_eq!((label.as_str(), end), ("2025-11-30", 1_764_547_200_000.0));
        let (label, end) = period(true, 1_764_504_000_000.0);
        assert_eq!((label.as_str(), end), ("2025-11", 1_764_547_200_000.0)); // 2025-12-01
        let (label, end) = period(true, 1_767_225_599_000.0); // 2025-12-31T23:59:59Z
        assert_eq!((label.as_str(), end), ("2025-12", 1_767_225_600_000.0));
        assert_eq!(period(true, 951_782_400_000.0).0, "2000-02"); // 2000-02-29, a leap day
        let spec = Spec::Quota { limit: 3, period_end: end };
        let now = end - 10_000.0;
        let used = charge(spec, Some(State::Used(2)), 1, now);
        assert_eq!((used.allowed, used.remaining), (true, 0));
        let over = charge(spec, Some(used.next), 1, now);
        assert_eq!((over.allowed, over.retry_after), (false, 10_000.0));
    }
}
