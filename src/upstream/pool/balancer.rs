//! Choosing an endpoint for each call: round robin, smooth weighted round robin (nginx's),
//! least outstanding requests and its weighted form, peak EWMA latency with the power of two
//! choices (Finagle's), random, and consistent hashing — a ring (Karger) or a Maglev table —
//! for session persistence. Picks are lock-free except smooth weighted round robin (one short
//! lock) and read the live counters every call keeps in `EndpointLoad`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use crate::config::Balancing as Algorithm;

/// Time constant of the latency EWMA.
const EWMA_TAU: Duration = Duration::from_secs(10);
/// Virtual nodes per unit of weight on the ring.
const RING_REPLICAS: usize = 160;
/// Maglev table size: a prime well above the endpoint count.
const MAGLEV_SIZE: usize = 65_537;

/// What each call reports about one endpoint: calls in flight, and peak-EWMA latency.
#[derive(Debug)]
pub struct EndpointLoad {
    /// False while health checks fail it.
    healthy: std::sync::atomic::AtomicBool,
    /// Failed calls in a row (outlier detection).
    consecutive_failures: std::sync::atomic::AtomicU32,
    /// Times it was ejected.
    ejections: std::sync::atomic::AtomicU32,
    /// Nanoseconds since `epoch` when the failure-rate window began.
    window_start: AtomicU64,
    /// Calls and failed calls that ended in the window.
    window_calls: std::sync::atomic::AtomicU32,
    window_failures: std::sync::atomic::AtomicU32,
    /// Nanoseconds since `epoch` until which it is ejected (0: not ejected).
    ejected_until: AtomicU64,
    outstanding: AtomicU64,
    /// Calls started, ever.
    calls: AtomicU64,
    /// Calls that ended as backend failures, ever.
    failures: AtomicU64,
    /// How long calls took.
    latency: crate::telemetry::histogram::LatencyHistogram,
    /// f64 bits of the EWMA latency in nanoseconds.
    ewma_nanos: AtomicU64,
    /// Nanoseconds since `epoch` of the last EWMA update.
    updated: AtomicU64,
    epoch: tokio::time::Instant,
}

impl Default for EndpointLoad {
    fn default() -> Self {
        EndpointLoad {
            healthy: std::sync::atomic::AtomicBool::new(true),
            consecutive_failures: std::sync::atomic::AtomicU32::new(0),
            ejections: std::sync::atomic::AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            window_calls: std::sync::atomic::AtomicU32::new(0),
            window_failures: std::sync::atomic::AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency: Default::default(),
            ewma_nanos: AtomicU64::new(0f64.to_bits()),
            updated: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }
}

impl EndpointLoad {
    /// Calls in flight.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Whether health checks pass (true until they are configured and fail).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether outlier detection has it ejected now.
    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && (self.epoch.elapsed().as_nanos() as u64) < until
    }

    /// How long it stays ejected.
    pub fn ejected_for(&self) -> Option<Duration> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_nanos() as u64;
        (until != 0 && now < until).then(|| Duration::from_nanos(until - now))
    }

    /// Calls started on it so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls that ended as backend failures so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// How long calls took.
    pub fn latency(&self) -> &crate::telemetry::histogram::LatencyHistogram {
        &self.latency
    }

    /// The latency estimate.
    pub fn ewma(&self) -> Duration {
        Duration::from_nanos(f64::from_bits(self.ewma_nanos.load(Ordering::Relaxed)) as u64)
    }

    /// A call starts; the guard ends it and records its latency.
    pub fn start(self: &std::sync::Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        InFlight { load: self.clone(), started: Instant::now() }
    }

    /// Records one call's latency: a higher one is taken at once (peak), a lower one decays in.
    pub fn observe(&self, latency: Duration) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let last = self.updated.swap(now, Ordering::Relaxed);
        let elapsed = Duration::from_nanos(now.saturating_sub(last));
        let sample = latency.as_nanos() as f64;
        let old = f64::from_bits(self.ewma_nanos.load(Ordering::Relaxed));
        let new = if sample > old {
            sample
        } else {
            let decay = (-elapsed.as_secs_f64() / EWMA_TAU.as_secs_f64()).exp();
            old * decay + sample * (1.0 - decay)
        };
        self.ewma_nanos.store(new.to_bits(), Ordering::Relaxed);
    }

    fn cost(&self) -> f64 {
        let ewma = f64::from_bits(self.ewma_nanos.load(Ordering::Relaxed));
        // An endpoint with no measurement yet is worth trying.
        ewma.max(1.0) * (self.outstanding() + 1) as f64
    }
}

/// A call in flight on an endpoint; dropping it ends the call and records its latency.
#[derive(Debug)]
pub struct InFlight {
    load: std::sync::Arc<EndpointLoad>,
    started: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.outstanding.fetch_sub(1, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        self.load.observe(elapsed);
        self.load.latency.observe(elapsed);
    }
}

/// One endpoint as the balancer sees it.
#[derive(Debug)]
pub struct Member {
    /// Its identity (the URL): consistent hashing places it by this.
    pub id: String,
    /// Its weight (at least 1).
    pub weight: u32,
    /// Its priority group: 0 is the primary; a higher group takes calls only while every lower
    /// one has no healthy endpoint.
    pub priority: u32,
    /// Its live load.
    pub load: std::sync::Arc<EndpointLoad>,
}

/// Picks endpoints for one cluster.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    members: Vec<Member>,
    next: AtomicUsize,
    /// Smooth weighted round robin's current weights.
    current: Mutex<Vec<i64>>,
    /// Ring hash: (point, member) sorted by point.
    ring: Vec<(u64, usize)>,
    /// Maglev: member by slot.
    table: Vec<u32>,
    /// Members health checks have taken out.
    unhealthy: AtomicUsize,
    /// Below this share of healthy members (percent), all are used.
    panic_threshold: u32,
    /// Passive outlier detection.
    outlier: Option<crate::config::OutlierConfig>,
    /// True when members are in more than one priority group.
    prioritised: bool,
    /// Nanoseconds since `epoch` until which some member may be ejected (0: none ever was).
    ejections_end: AtomicU64,
    epoch: tokio::time::Instant,
}

/// Which members may take the next call, read once per pick.
struct Usable {
    /// Some member may be ejected now.
    ejections: bool,
    /// The priority group taking calls, when members are in several.
    group: Option<u32>,
    /// Whether that group has a healthy member (if not, all of it is used).
    group_has_healthy: bool,
    /// Whether health checks decide (some member failing them, and enough passing them to be
    /// above the panic threshold).
    health: bool,
}

impl Usable {
    fn everyone(&self) -> bool {
        !self.ejections && self.group.is_none() && !self.health
    }
}

impl Balancer {
    /// A balancer over `members` (at least one).
    pub fn new(algorithm: Algorithm, members: Vec<Member>) -> Self {
        let ring = if algorithm == Algorithm::RingHash { ring(&members) } else { Vec::new() };
        let table = if algorithm == Algorithm::Maglev { maglev(&members) } else { Vec::new() };
        let current = Mutex::new(vec![0; members.len()]);
        let prioritised = members.iter().any(|m| m.priority != members[0].priority);
        // Members may arrive with state (kept across a change of the member set).
        let unhealthy = AtomicUsize::new(members.iter().filter(|m| !m.load.is_healthy()).count());
        Balancer {
            algorithm,
            members,
            next: AtomicUsize::new(0),
            current,
            ring,
            table,
            unhealthy,
            panic_threshold: 50,
            outlier: None,
            prioritised,
            ejections_end: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// The priority group taking calls: the lowest with a healthy, unejected member (the
    /// lowest of all when none has one).
    fn active_priority(&self, ejections: bool) -> u32 {
        let available = |m: &&Member| m.load.is_healthy() && !(ejections && m.load.is_ejected());
        self.members
            .iter()
            .filter(available)
            .map(|m| m.priority)
            .min()
            .or_else(|| self.members.iter().map(|m| m.priority).min())
            .unwrap_or(0)
    }

    /// The same balancer with passive outlier detection.
    pub fn with_outlier_detection(mut self, outlier: Option<crate::config::OutlierConfig>) -> Self {
        self.outlier = outlier;
        self
    }

    /// Reports how a call to member `index` ended; under outlier detection, enough failures in
    /// a row — or, when `failure_rate` is set, too large a share of a window's calls — eject it
    /// for a time that grows with each ejection, while few enough others are.
    pub fn report(&self, index: usize, failed: bool) {
        if failed && let Some(member) = self.members.get(index) {
            member.load.failures.fetch_add(1, Ordering::Relaxed);
        }
        let (Some(outlier), Some(member)) = (&self.outlier, self.members.get(index)) else { return };
        let load = &member.load;
        let by_rate = outlier.failure_rate > 0 && {
            let now = load.epoch.elapsed().as_nanos() as u64;
            let start = load.window_start.load(Ordering::Relaxed);
            if now.saturating_sub(start) >= outlier.window.get().as_nanos() as u64
                && load.window_start.compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                load.window_calls.store(0, Ordering::Relaxed);
                load.window_failures.store(0, Ordering::Relaxed);
            }
            let calls = load.window_calls.fetch_add(1, Ordering::Relaxed) + 1;
            let failures = load.window_failures.fetch_add(u32::from(failed), Ordering::Relaxed) + u32::from(failed);
            calls >= outlier.min_requests
                && u64::from(failures) * 100 >= u64::from(calls) * u64::from(outlier.failure_rate)
        };
        if !failed {
            load.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = load.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if (failures < outlier.consecutive_failures && !by_rate) || load.is_ejected() {
            return;
        }
        let n = self.members.len();
        let allowed = (n * outlier.max_ejection_percent as usize / 100).max(1);
        let ejected = self.members.iter().filter(|m| m.load.is_ejected()).count();
        if ejected >= allowed {
            return;
        }
        let times = load.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let length = outlier.base_ejection.get().saturating_mul(times).min(outlier.max_ejection.get());
        let until = load.epoch.elapsed() + length;
        load.ejected_until.store(until.as_nanos() as u64, Ordering::Relaxed);
        load.consecutive_failures.store(0, Ordering::Relaxed);
        load.window_calls.store(0, Ordering::Relaxed);
        load.window_failures.store(0, Ordering::Relaxed);
        let end = (self.epoch.elapsed() + length).as_nanos() as u64;
        self.ejections_end.fetch_max(end, Ordering::Relaxed);
        let why = if by_rate { "too many of its calls failed" } else { "its calls failed in a row" };
        tracing::warn!(endpoint = member.id, ?length, why, "endpoint ejected");
    }

    /// The same balancer with another panic threshold (percent of healthy members below which
    /// health is ignored).
    pub fn with_panic_threshold(mut self, percent: u32) -> Self {
        self.panic_threshold = percent.min(100);
        self
    }

    /// Takes member `index` out of the rotation (false) or brings it back (true).
    pub fn set_healthy(&self, index: usize, healthy: bool) {
        let Some(member) = self.members.get(index) else { return };
        let was = member.load.healthy.swap(healthy, Ordering::Relaxed);
        match (was, healthy) {
            (true, false) => {
                self.unhealthy.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                self.unhealthy.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Whether some member is healthy (or health is ignored below the panic threshold).
    pub fn any_usable(&self) -> bool {
        self.unhealthy.load(Ordering::Relaxed) < self.members.len()
    }

    /// Which members may take calls now (see `allows`).
    fn usable_now(&self) -> Usable {
        let ejections = self.outlier.is_some() && {
            let end = self.ejections_end.load(Ordering::Relaxed);
            end != 0 && (self.epoch.elapsed().as_nanos() as u64) < end
        };
        let unhealthy = self.unhealthy.load(Ordering::Relaxed);
        let group = self.prioritised.then(|| self.active_priority(ejections));
        let group_has_healthy = group
            .is_some_and(|g| unhealthy == 0 || self.members.iter().any(|m| m.priority == g && m.load.is_healthy()));
        let n = self.members.len();
        let healthy = n - unhealthy.min(n);
        // Below the panic threshold health is ignored (without groups; a group is chosen for
        // having a healthy member).
        let health = unhealthy > 0 && (group.is_some() || healthy * 100 >= n * self.panic_threshold as usize);
        Usable { ejections, group, group_has_healthy, health }
    }

    /// Whether member `i` may take calls under `usable`: not ejected, in the active priority
    /// group, and healthy unless health is ignored (panic threshold, or a group with no healthy
    /// member).
    fn allows(&self, usable: &Usable, i: usize) -> bool {
        let member = &self.members[i];
        if usable.ejections && member.load.is_ejected() {
            return false;
        }
        if let Some(group) = usable.group {
            if member.priority != group {
                return false;
            }
            return !usable.group_has_healthy || member.load.is_healthy();
        }
        !usable.health || member.load.is_healthy()
    }

    /// The usable members when some are not (None: all are, the common case); never empty.
    fn usable_members(&self, usable: &Usable) -> Option<Vec<usize>> {
        if usable.everyone() {
            return None;
        }
        let members: Vec<usize> = (0..self.members.len()).filter(|i| self.allows(usable, *i)).collect();
        if members.is_empty() || members.len() == self.members.len() { None } else { Some(members) }
    }

    /// The first usable member from `start` on (wrapping), or `start` when none is.
    fn usable_from(&self, usable: &Usable, start: usize) -> usize {
        if usable.everyone() {
            return start;
        }
        let n = self.members.len();
        (0..n).map(|offset| (start + offset) % n).find(|i| self.allows(usable, *i)).unwrap_or(start)
    }

    /// The members, in order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The index of the endpoint for the next call; `key` is the call's hash key (consistent
    /// hashing falls back to round robin without one). None when there are no members.
    pub fn pick(&self, key: Option<&[u8]>) -> Option<usize> {
        let n = self.members.len();
        if n <= 1 {
            return (n == 1).then_some(0);
        }
        let usable = self.usable_now();
        let usable = &usable;
        Some(match self.algorithm {
            Algorithm::RoundRobin => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed);
                match self.usable_members(usable) {
                    None => turn % n,
                    Some(members) => members[turn % members.len()],
                }
            }
            Algorithm::WeightedRoundRobin => self.smooth_weighted(usable),
            Algorithm::LeastOutstanding => self.least(usable, |m| m.load.outstanding() as f64),
            Algorithm::WeightedLeastOutstanding => {
                self.least(usable, |m| (m.load.outstanding() + 1) as f64 / f64::from(m.weight.max(1)))
            }
            Algorithm::PeakEwma => {
                let members = self.usable_members(usable);
                let m = members.as_ref().map_or(n, Vec::len);
                let at = |k: usize| members.as_ref().map_or(k, |members| members[k]);
                if m == 1 {
                    at(0)
                } else {
                    let a = fastrand::usize(..m);
                    let mut b = fastrand::usize(..m - 1);
                    if b >= a {
                        b += 1;
                    }
                    let (a, b) = (at(a), at(b));
                    if self.members[a].load.cost() <= self.members[b].load.cost() { a } else { b }
                }
            }
            Algorithm::Random => match self.usable_members(usable) {
                None => fastrand::usize(..n),
                Some(members) => members[fastrand::usize(..members.len())],
            },
            Algorithm::RingHash => match key {
                Some(key) => {
                    let point = hash(key);
                    let at = self.ring.partition_point(|(p, _)| *p < point);
                    // Past an unusable member, the ring's next one takes its keys.
                    (0..self.ring.len())
                        .map(|offset| self.ring[(at + offset) % self.ring.len()].1)
                        .find(|i| usable.everyone() || self.allows(usable, *i))
                        .unwrap_or(self.ring[at % self.ring.len()].1)
                }
                None => self.usable_from(usable, self.next.fetch_add(1, Ordering::Relaxed) % n),
            },
            Algorithm::Maglev => match key {
                Some(key) => {
                    let slot = (hash(key) % self.table.len() as u64) as usize;
                    (0..self.table.len())
                        .map(|offset| self.table[(slot + offset) % self.table.len()] as usize)
                        .find(|i| usable.everyone() || self.allows(usable, *i))
                        .unwrap_or(self.table[slot] as usize)
                }
                None => self.usable_from(usable, self.next.fetch_add(1, Ordering::Relaxed) % n),
            },
        })
    }

    /// `pick`, for a retry that should avoid endpoint `avoid` (where the last attempt failed)
    /// when another is there: a key's next endpoint, or another pick.
    pub fn pick_avoiding(&self, key: Option<&[u8]>, avoid: Option<usize>) -> Option<usize> {
        let index = self.pick(key)?;
        let n = self.members.len();
        if avoid != Some(index) || n < 2 {
            return Some(index);
        }
        Some(match key {
            Some(_) => self.usable_from(&self.usable_now(), (index + 1) % n),
            None => (0..n).find_map(|_| self.pick(None).filter(|i| Some(*i) != avoid)).unwrap_or((index + 1) % n),
        })
    }

    /// nginx's smooth weighted round robin: add each weight to its current value, take the
    /// largest, subtract the total from it.
    fn smooth_weighted(&self, usable: &Usable) -> usize {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut best = None::<usize>;
        let mut total = 0;
        for (i, member) in self.members.iter().enumerate() {
            if !usable.everyone() && !self.allows(usable, i) {
                continue;
            }
            let weight = i64::from(member.weight.max(1));
            total += weight;
            current[i] += weight;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let best = best.unwrap_or(0);
        current[best] -= total;
        best
    }

    /// The member with the lowest `score`; ties go in turn.
    fn least(&self, usable: &Usable, score: impl Fn(&Member) -> f64) -> usize {
        let n = self.members.len();
        let start = self.usable_from(usable, self.next.fetch_add(1, Ordering::Relaxed) % n);
        let mut best = start;
        let mut best_score = score(&self.members[start]);
        for offset in 1..n {
            let i = (start + offset) % n;
            if !usable.everyone() && !self.allows(usable, i) {
                continue;
            }
            let s = score(&self.members[i]);
            if s < best_score {
                best = i;
                best_score = s;
            }
        }
        best
    }
}

/// A 64-bit hash with good dispersion (FxHash, then the splitmix64 finaliser), stable across
/// runs and builds.
fn hash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(bytes);
    let mut z = hasher.finish().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn ring(members: &[Member]) -> Vec<(u64, usize)> {
    let mut ring = Vec::new();
    for (i, member) in members.iter().enumerate() {
        for replica in 0..RING_REPLICAS * member.weight.max(1) as usize {
            ring.push((hash(format!("{}#{replica}", member.id).as_bytes()), i));
        }
    }
    ring.sort_unstable();
    ring
}

/// The Maglev lookup table (Eisenbud et al., 2016), with weights as extra turns per round.
fn maglev(members: &[Member]) -> Vec<u32> {
    let size = MAGLEV_SIZE as u64;
    let permutations: Vec<(u64, u64)> = members
        .iter()
        .map(|m| {
            let offset = hash(format!("{}/offset", m.id).as_bytes()) % size;
            let skip = hash(format!("{}/skip", m.id).as_bytes()) % (size - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; members.len()];
    let mut table = vec![u32::MAX; MAGLEV_SIZE];
    let mut filled = 0;
    'fill: loop {
        for (i, member) in members.iter().enumerate() {
            for _ in 0..member.weight.max(1) {
                let (offset, skip) = permutations[i];
                let mut slot = ((offset + next[i] * skip) % size) as usize;
                while table[slot] != u32::MAX {
                    next[i] += 1;
                    slot = ((offset + next[i] * skip) % size) as usize;
                }
                table[slot] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == MAGLEV_SIZE {
                    break 'fill;
                }
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn members(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Member {
                id: format!("http://10.0.0.{i}:50051"),
                weight: *w,
                priority: 0,
                load: Arc::default(),
            })
            .collect()
    }

    fn spread(balancer: &Balancer, calls: usize, key: impl Fn(usize) -> Option<Vec<u8>>) -> Vec<usize> {
        let mut counts = vec![0; balancer.members().len()];
        for i in 0..calls {
            counts[balancer.pick(key(i).as_deref()).expect("a member")] += 1;
        }
        counts
    }

    #[test]
    fn each_algorithm_spreads_as_it_should() {
        // (algorithm, weights, expected share per endpoint, tolerance)
        let table: &[(Algorithm, &[u32], &[f64], f64)] = &[
            (Algorithm::RoundRobin, &[1, 1, 1], &[1.0 / 3.0; 3], 0.001),
            (Algorithm::RoundRobin, &[3, 1], &[0.5, 0.5], 0.001),
            (Algorithm::WeightedRoundRobin, &[3, 1], &[0.75, 0.25], 0.001),
            (Algorithm::WeightedRoundRobin, &[5, 1, 1], &[5.0 / 7.0, 1.0 / 7.0, 1.0 / 7.0], 0.001),
            (Algorithm::LeastOutstanding, &[1, 1, 1], &[1.0 / 3.0; 3], 0.001),
            (Algorithm::Random, &[1, 1, 1, 1], &[0.25; 4], 0.03),
            (Algorithm::RingHash, &[1, 1, 1], &[1.0 / 3.0; 3], 0.05),
            (Algorithm::RingHash, &[3, 1], &[0.75, 0.25], 0.05),
            (Algorithm::Maglev, &[1, 1, 1], &[1.0 / 3.0; 3], 0.03),
            (Algorithm::Maglev, &[3, 1], &[0.75, 0.25], 0.03),
        ];
        for (algorithm, weights, shares, tolerance) in table {
            let balancer = Balancer::new(*algorithm, members(weights));
            let calls = 12_000;
            let counts = spread(&balancer, calls, |i| algorithm.hashes().then(|| format!("client-{i}").into_bytes()));
            for (count, share) in counts.iter().zip(*shares) {
                let got = *count as f64 / calls as f64;
                assert!((got - share).abs() <= *tolerance, "{algorithm:?} {weights:?}: {counts:?}");
            }
        }
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves() {
        let balancer = Balancer::new(Algorithm::WeightedRoundRobin, members(&[5, 1, 1]));
        let order: Vec<usize> = (0..7).map(|_| balancer.pick(None).expect("a member")).collect();
        assert_eq!(order, [0, 0, 1, 0, 2, 0, 0], "nginx's sequence for 5:1:1");
    }

    #[test]
    fn least_outstanding_avoids_busy_endpoints_and_weights_scale_it() {
        let balancer = Balancer::new(Algorithm::LeastOutstanding, members(&[1, 1, 1]));
        let _busy = [balancer.members()[0].load.start(), balancer.members()[0].load.start()];
        let _one = balancer.members()[1].load.start();
        assert_eq!(spread(&balancer, 30, |_| None), [0, 0, 30]);
        let weighted = Balancer::new(Algorithm::WeightedLeastOutstanding, members(&[4, 1]));
        let _a = [weighted.members()[0].load.start(), weighted.members()[0].load.start()];
        let _b = weighted.members()[1].load.start();
        // 3/4 per weight against 2/1: the heavier endpoint still wins.
        assert_eq!(spread(&weighted, 10, |_| None), [10, 0]);
    }

    #[test]
    fn peak_ewma_sends_less_to_a_slow_endpoint() {
        let balancer = Balancer::new(Algorithm::PeakEwma, members(&[1, 1, 1]));
        balancer.members()[0].load.observe(Duration::from_millis(200));
        balancer.members()[1].load.observe(Duration::from_millis(2));
        balancer.members()[2].load.observe(Duration::from_millis(2));
        let counts = spread(&balancer, 3_000, |_| None);
        // The slow one wins only when both choices are it, which two distinct choices never are.
        assert_eq!(counts[0], 0, "{counts:?}");
        // A peak is taken at once; a lower sample decays in.
        let load = Arc::new(EndpointLoad::default());
        load.observe(Duration::from_millis(100));
        load.observe(Duration::from_millis(1));
        assert!(load.ewma() > Duration::from_millis(90), "{:?}", load.ewma());
    }

    #[test]
    fn consistent_hashing_keeps_keys_and_moves_about_one_in_n() {
        for algorithm in [Algorithm::RingHash, Algorithm::Maglev] {
            let before = Balancer::new(algorithm, members(&[1, 1, 1, 1]));
            let keys: Vec<Vec<u8>> = (0..10_000).map(|i| format!("user-{i}").into_bytes()).collect();
            let placed: Vec<usize> = keys.iter().map(|k| before.pick(Some(k)).expect("member")).collect();
            let again: Vec<usize> = keys.iter().map(|k| before.pick(Some(k)).expect("member")).collect();
            assert_eq!(placed, again, "{algorithm:?}: the same key, the same endpoint");
            // The last endpoint leaves: only its keys (about 1/4) should move.
            let mut fewer = members(&[1, 1, 1]);
            fewer.truncate(3);
            let after = Balancer::new(algorithm, fewer);
            let moved = keys.iter().zip(&placed).filter(|(k, p)| **p != 3 && after.pick(Some(k)) != Some(**p)).count();
            let left = placed.iter().filter(|p| **p == 3).count();
            assert!((1_500..=3_500).contains(&left), "{algorithm:?}: the leaving endpoint held {left} of 10,000 keys");
            assert!(moved <= 700, "{algorithm:?}: {moved} keys of the staying endpoints moved");
        }
    }

    #[test]
    fn unhealthy_members_leave_every_algorithm_until_too_few_are_healthy() {
        let algorithms = [
            Algorithm::RoundRobin,
            Algorithm::WeightedRoundRobin,
            Algorithm::LeastOutstanding,
            Algorithm::WeightedLeastOutstanding,
            Algorithm::PeakEwma,
            Algorithm::Random,
            Algorithm::RingHash,
            Algorithm::Maglev,
        ];
        for algorithm in algorithms {
            let balancer = Balancer::new(algorithm, members(&[1, 1, 1, 1]));
            balancer.set_healthy(1, false);
            let counts = spread(&balancer, 2_000, |i| algorithm.hashes().then(|| format!("k{i}").into_bytes()));
            assert_eq!(counts[1], 0, "{algorithm:?}: {counts:?}");
            assert!(counts.iter().enumerate().all(|(i, c)| i == 1 || *c > 0), "{algorithm:?}: {counts:?}");
            // Three of four out: below the 50% panic threshold every member is used again.
            balancer.set_healthy(2, false);
            balancer.set_healthy(3, false);
            let counts = spread(&balancer, 2_000, |i| algorithm.hashes().then(|| format!("k{i}").into_bytes()));
            assert!(counts.iter().all(|c| *c > 0), "{algorithm:?} in panic: {counts:?}");
            balancer.set_healthy(1, true);
            balancer.set_healthy(2, true);
            balancer.set_healthy(3, true);
            assert!(balancer.any_usable());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn outliers_are_ejected_for_growing_times_within_the_cap() {
        let outlier = crate::config::OutlierConfig {
            consecutive_failures: 3,
            base_ejection: crate::config::ConfigDuration::from_secs(10),
            max_ejection: crate::config::ConfigDuration::from_secs(15),
            max_ejection_percent: 10,
            ..Default::default()
        };
        let balancer = Balancer::new(Algorithm::RoundRobin, members(&[1, 1, 1])).with_outlier_detection(Some(outlier));
        balancer.report(0, true);
        balancer.report(0, true);
        balancer.report(0, false);
        balancer.report(0, true);
        assert!(!balancer.members()[0].load.is_ejected(), "a success resets the count");
        balancer.report(0, true);
        balancer.report(0, true);
        assert!(balancer.members()[0].load.is_ejected());
        assert_eq!(spread(&balancer, 30, |_| None)[0], 0);
        // At least one may be ejected, but not a second at 10% of three.
        for _ in 0..3 {
            balancer.report(1, true);
        }
        assert!(!balancer.members()[1].load.is_ejected());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!balancer.members()[0].load.is_ejected(), "back after its first ejection");
        for _ in 0..3 {
            balancer.report(0, true);
        }
        // The second ejection would last 20 s; the cap is 15.
        assert_eq!(balancer.members()[0].load.ejected_for(), Some(Duration::from_secs(15)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_rate_over_the_window_ejects_although_failures_are_not_in_a_row() {
        let outlier = crate::config::OutlierConfig {
            consecutive_failures: 100,
            failure_rate: 50,
            min_requests: 10,
            window: crate::config::ConfigDuration::from_secs(10),
            max_ejection_percent: 50,
            ..Default::default()
        };
        let balancer = Balancer::new(Algorithm::RoundRobin, members(&[1, 1, 1])).with_outlier_detection(Some(outlier));
        // Endpoint 0 fails every other call: never twice in a row, but half of them.
        for call in 0..9 {
            balancer.report(0, call % 2 == 0);
            // Endpoint 1 fails one in five: under the rate.
            balancer.report(1, call % 5 == 0);
        }
        assert!(!balancer.members()[0].load.is_ejected(), "fewer than min_requests calls so far");
        balancer.report(0, true);
        assert!(balancer.members()[0].load.is_ejected(), "5 of 10 failed");
        for call in 0..20 {
            balancer.report(1, call % 5 == 0);
        }
        assert!(!balancer.members()[1].load.is_ejected());
        // Calls in an old window do not count in the next one: 9 failures (below
        // min_requests), then the window turns over.
        for _ in 0..9 {
            balancer.report(2, true);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        balancer.report(2, true);
        for _ in 0..9 {
            balancer.report(2, false);
        }
        assert!(!balancer.members()[2].load.is_ejected(), "1 of 10 in the new window (10 of 19 over both)");
    }

    #[test]
    fn backups_take_calls_only_while_the_primary_group_has_no_healthy_member() {
        let mut group = members(&[1, 1, 1]);
        group[2].priority = 1;
        let balancer = Balancer::new(Algorithm::RoundRobin, group);
        assert_eq!(spread(&balancer, 30, |_| None), [15, 15, 0]);
        balancer.set_healthy(0, false);
        assert_eq!(spread(&balancer, 30, |_| None), [0, 30, 0], "one primary left");
        balancer.set_healthy(1, false);
        assert_eq!(spread(&balancer, 30, |_| None), [0, 0, 30], "the backup takes over");
        balancer.set_healthy(0, true);
        assert_eq!(spread(&balancer, 30, |_| None), [30, 0, 0], "the primary group is back");
    }
}
