//! Usage analytics per consumer (an API key's identity or a JWT subject): requests, errors and
//! latency per operation, over the last minutes and hours, for operators who bill or report
//! usage. Each (consumer, operation) keeps one bucket per minute for the last hour and one per
//! hour for the last day; a window's figures are the sum of its buckets. Time is passed in (the
//! minute since an epoch), so windows are tested without waiting. Anonymous requests are not
//! attributed. The number of consumers kept is bounded; past it, new consumers are counted
//! under `other`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Most distinct consumers kept.
const MAX_CONSUMERS: usize = 10_000;
/// Minute buckets (the last hour).
const MINUTES: usize = 60;
/// Hour buckets (the last day).
const HOURS: usize = 24;

/// One bucket's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Requests.
    pub requests: u64,
    /// Of those, requests answered with an error.
    pub errors: u64,
    /// Summed latency, in microseconds.
    pub latency_micros: u64,
    /// The slowest request, in microseconds.
    pub max_micros: u64,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency_micros += other.latency_micros;
        self.max_micros = self.max_micros.max(other.max_micros);
    }
}

/// A ring of buckets, each stamped with the period it counts.
#[derive(Debug, Clone)]
struct Ring<const N: usize> {
    stamps: [u64; N],
    figures: [Figures; N],
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Ring { stamps: [u64::MAX; N], figures: [Figures::default(); N] }
    }
}

impl<const N: usize> Ring<N> {
    fn add(&mut self, period: u64, figures: &Figures) {
        let slot = (period % N as u64) as usize;
        if self.stamps[slot] != period {
            self.stamps[slot] = period;
            self.figures[slot] = Figures::default();
        }
        self.figures[slot].add(figures);
    }

    /// The sum over the `count` periods ending with `now`.
    fn sum(&self, now: u64, count: u64) -> Figures {
        let mut total = Figures::default();
        for (stamp, figures) in self.stamps.iter().zip(&self.figures) {
            if *stamp != u64::MAX && *stamp <= now && now - *stamp < count {
                total.add(figures);
            }
        }
        total
    }
}

/// One consumer's use of one operation.
#[derive(Debug, Clone, Default)]
struct Series {
    minutes: Ring<MINUTES>,
    hours: Ring<HOURS>,
    total: Figures,
}

/// A window over which figures are summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last `n` minutes (1 to 60).
    Minutes(u64),
    /// The last `n` hours (1 to 24).
    Hours(u64),
    /// Since the gateway started.
    All,
}

impl Window {
    /// `5m`, `1h`, `24h` or `all`.
    pub fn parse(text: &str) -> Result<Window, String> {
        let bad = || format!("`{text}` is not a window: write 1m to 60m, 1h to 24h, or all");
        if text == "all" {
            return Ok(Window::All);
        }
        let (number, unit) = text.split_at(text.len().saturating_sub(1));
        let n: u64 = number.parse().map_err(|_| bad())?;
        match unit {
            "m" if (1..=MINUTES as u64).contains(&n) => Ok(Window::Minutes(n)),
            "h" if (1..=HOURS as u64).contains(&n) => Ok(Window::Hours(n)),
            _ => Err(bad()),
        }
    }
}

/// One row of a usage report.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// The consumer.
    pub consumer: String,
    /// The protocol and operation.
    pub protocol: String,
    /// The operation.
    pub operation: String,
    /// Its figures over the window.
    pub figures: Figures,
}

/// A map keyed by text. Operation names can be client-chosen (a GraphQL operation's name), so
/// the hasher is seeded.
type ByName<V> = HashMap<String, V, foldhash::quality::RandomState>;

/// One consumer's series, by protocol, then operation (nested so that a request already seen
/// is found by its borrowed names, with nothing allocated).
type ConsumerSeries = ByName<ByName<Series>>;

/// Usage per consumer and operation.
#[derive(Debug, Default)]
pub struct Usage {
    series: Mutex<ByName<ConsumerSeries>>,
}

/// The value under `key`, inserted (default) on first use; only a new key is copied.
fn slot<'m, V: Default>(map: &'m mut ByName<V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl Usage {
    /// Records one request of `consumer` at `minute` (minutes since the Unix epoch).
    pub fn record(
        &self,
        consumer: &str,
        protocol: &str,
        operation: &str,
        failed: bool,
        latency: Duration,
        minute: u64,
    ) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let figures = Figures { requests: 1, errors: u64::from(failed), latency_micros: micros, max_micros: micros };
        let Ok(mut all) = self.series.lock() else { return };
        let consumer = if all.len() >= MAX_CONSUMERS && !all.contains_key(consumer) { "other" } else { consumer };
        let series = slot(slot(slot(&mut all, consumer), protocol), operation);
        series.minutes.add(minute, &figures);
        series.hours.add(minute / 60, &figures);
        series.total.add(&figures);
    }

    /// Every (consumer, operation) with requests in `window` ending at `minute`, optionally for
    /// one consumer; sorted by consumer, then operation.
    pub fn report(&self, window: Window, minute: u64, consumer: Option<&str>) -> Vec<UsageRow> {
        let Ok(all) = self.series.lock() else { return Vec::new() };
        let mut rows = Vec::new();
        for (name, protocols) in all.iter().filter(|(name, _)| consumer.is_none_or(|c| c == name.as_str())) {
            for ((protocol, operation), series) in protocols
                .iter()
                .flat_map(|(protocol, operations)| operations.iter().map(move |(o, s)| ((protocol, o), s)))
            {
                let figures = match window {
                    Window::Minutes(n) => series.minutes.sum(minute, n),
                    Window::Hours(n) => series.hours.sum(minute / 60, n),
                    Window::All => series.total,
                };
                if figures.requests > 0 {
                    rows.push(UsageRow {
                        consumer: name.clone(),
                        protocol: protocol.clone(),
                        operation: operation.clone(),
                        figures,
                    });
                }
            }
        }
        rows.sort_by(|a, b| (&a.consumer, &a.operation, &a.protocol).cmp(&(&b.consumer, &b.operation, &b.protocol)));
        rows
    }
}

/// Minutes since the Unix epoch now.
pub fn current_minute() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_sum_their_buckets_and_forget_older_ones() {
        let usage = Usage::default();
        let ms = Duration::from_millis;
        let start = 29_000_000; // some minute
        usage.record("corp/ada", "rest", "GET /a", false, ms(10), start);
        usage.record("corp/ada", "rest", "GET /a", true, ms(30), start + 3);
        usage.record("corp/ada", "rest", "GET /a", false, ms(20), start + 90);
        usage.record("api_key/ci", "grpc", "/p.S/M", false, ms(5), start + 90);
        let figures = |window: &str, at: u64, who: &str| {
            let rows = usage.report(Window::parse(window).expect("window"), at, Some(who));
            rows.first().map(|r| {
                (r.figures.requests, r.figures.errors, r.figures.latency_micros / 1000, r.figures.max_micros / 1000)
            })
        };
        // (window, now, consumer, requests, errors, summed ms, max ms)
        let table = [
            ("1m", start + 3, "corp/ada", Some((1, 1, 30, 30))),
            ("5m", start + 3, "corp/ada", Some((2, 1, 40, 30))),
            ("60m", start + 90, "corp/ada", Some((1, 0, 20, 20))),
            ("2h", start + 90, "corp/ada", Some((3, 1, 60, 30))),
            ("1m", start + 200, "corp/ada", None),
            ("all", start + 10_000, "corp/ada", Some((3, 1, 60, 30))),
            ("1h", start + 90, "api_key/ci", Some((1, 0, 5, 5))),
        ];
        for (window, at, who, expected) in table {
            assert_eq!(figures(window, at, who), expected, "{window} at +{} for {who}", at - start);
        }
        assert_eq!(usage.report(Window::All, start, None).len(), 2);
        for bad in ["0m", "61m", "25h", "1d", "m", ""] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }
}
