//! Metrics in the Prometheus text format (or OpenMetrics, when the scraper asks for it), with the
//! prometheus-client crate. Request metrics are recorded as requests finish; the state of
//! backends, breakers, the cache and the snapshot is read at scrape time from a `Scrape` the
//! admin listener gathers, so nothing on the request path pays for it. The families live as
//! long as the gateway, across snapshot swaps.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::histogram::{BUCKETS, HistogramSnapshot};

/// Distinct operation label values kept; later ones are counted as `other` (a client choosing
/// GraphQL operation names must not grow the series without bound).
const MAX_OPERATIONS: usize = 500;

/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics text.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    protocol: &'static str,
    /// Shared with the set of known operations: a label made per request costs no copy.
    operation: Arc<String>,
    status: Cow<'static, str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    protocol: &'static str,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The gateway's metric families.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    rejections: Family<LimitLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    websockets: Gauge,
    subscriptions: Gauge,
    access_log_dropped: Counter,
    operations: RwLock<HashMap<String, Arc<String>, foldhash::fast::RandomState>>,
    /// Each request series' counter and histogram, found by a fast hash: the families hash
    /// their labels with SipHash on every `get_or_create` (about 1,000 instructions a request
    /// for the two). The handles share their values with the families' own.
    series: RwLock<HashMap<RequestLabels, Series, foldhash::fast::RandomState>>,
}

/// One request series' metrics.
#[derive(Debug, Clone)]
struct Series {
    requests: Counter,
    durations: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(request_histogram),
            errors: Family::default(),
            rejections: Family::default(),
            reloads: Family::default(),
            websockets: Gauge::default(),
            subscriptions: Gauge::default(),
            access_log_dropped: Counter::default(),
            operations: RwLock::default(),
            series: RwLock::default(),
        }
    }
}

/// One finished request, as metrics see it.
#[derive(Debug)]
pub struct FinishedRequest<'a> {
    /// `rest`, `graphql`, `grpc`, `grpc-web` or `websocket`.
    pub protocol: &'static str,
    /// The operation it named, if any.
    pub operation: Option<&'a str>,
    /// The HTTP status, or for gRPC the status code's name.
    pub status: Cow<'static, str>,
    /// From the request's arrival to its response's last byte.
    pub duration: Duration,
    /// The error codes it answered with.
    pub errors: &'a [String],
    /// The limit that refused it.
    pub rejected_by: Option<&'a str>,
}

impl Metrics {
    /// Counts a finished request.
    pub fn finished(&self, request: &FinishedRequest<'_>) {
        let labels = RequestLabels {
            protocol: request.protocol,
            operation: self.operation_label(request.operation),
            status: request.status.clone(),
        };
        let series = self.series(labels);
        series.requests.inc();
        series.durations.observe(request.duration.as_secs_f64());
        for code in request.errors {
            self.errors.get_or_create(&ErrorLabels { protocol: request.protocol, code: code.clone() }).inc();
        }
        if let Some(limit) = request.rejected_by {
            self.rejections.get_or_create(&LimitLabels { limit: limit.to_owned() }).inc();
        }
    }

    /// The metrics of the series `labels` names (bounded as the labels are: MAX_OPERATIONS).
    fn series(&self, labels: RequestLabels) -> Series {
        if let Some(series) = self.series.read().ok().and_then(|known| known.get(&labels).cloned()) {
            return series;
        }
        let series = Series {
            requests: self.requests.get_or_create(&labels).clone(),
            durations: self.durations.get_or_create(&labels).clone(),
        };
        if let Ok(mut known) = self.series.write() {
            known.insert(labels, series.clone());
        }
        series
    }

    /// The label for `operation`: itself while fewer than MAX_OPERATIONS are known, else `other`.
    fn operation_label(&self, operation: Option<&str>) -> Arc<String> {
        let Some(operation) = operation else { return Arc::default() };
        if let Some(label) = self.operations.read().ok().and_then(|known| known.get(operation).cloned()) {
            return label;
        }
        let Ok(mut known) = self.operations.write() else { return Arc::new("other".into()) };
        if known.len() < MAX_OPERATIONS {
            known.entry(operation.to_owned()).or_insert_with(|| Arc::new(operation.to_owned())).clone()
        } else {
            Arc::new("other".into())
        }
    }

    /// A snapshot reload was applied (`true`) or refused.
    pub fn reloaded(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// A WebSocket connection opened; the guard counts it closed when dropped.
    pub fn websocket_opened(&self) -> GaugeGuard {
        GaugeGuard::new(&self.websockets)
    }

    /// A subscription started; the guard counts it ended when dropped.
    pub fn subscription_started(&self) -> GaugeGuard {
        GaugeGuard::new(&self.subscriptions)
    }

    /// An access-log line was dropped because the writer fell behind.
    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    /// The metrics text: these families and `scrape`'s state, as OpenMetrics when `openmetrics`.
    pub fn render(&self, scrape: Scrape, openmetrics: bool) -> String {
        let mut registry = Registry::with_prefix("switchyard");
        registry.register("requests", "Requests answered, by protocol, operation and status", self.requests.clone());
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its response's last byte",
            Unit::Seconds,
            self.durations.clone(),
        );
        registry.register("errors", "Errors answered, by protocol and gRPC status code name", self.errors.clone());
        registry.register(
            "limit_rejections",
            "Requests refused by a rate limit, quota or cost budget",
            self.rejections.clone(),
        );
        registry.register("snapshot_reloads", "Snapshot reloads, applied or refused", self.reloads.clone());
        registry.register("websocket_connections", "Open WebSocket connections", self.websockets.clone());
        registry.register("subscriptions", "Running subscriptions", self.subscriptions.clone());
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the writer fell behind",
            self.access_log_dropped.clone(),
        );
        registry.register_collector(Box::new(scrape));
        let mut text = String::new();
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        };
        if encoded.is_err() {
            tracing::error!("metrics could not be encoded");
        }
        text
    }
}

/// Counts one open thing on a gauge until dropped.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// State read at scrape time.
#[derive(Debug, Default)]
pub struct Scrape {
    /// The snapshot generation serving.
    pub generation: u64,
    /// Every endpoint of every cluster.
    pub endpoints: Vec<EndpointSample>,
    /// Every cluster.
    pub clusters: Vec<ClusterSample>,
    /// The fetch cache.
    pub cache: CacheSample,
    /// The shared registry, when registrations are shared through Redis.
    pub shared_registry: Option<SharedRegistrySample>,
    /// Tasks alive on the async runtime (connections, streams, background work): a count that
    /// keeps growing under steady traffic is a leak.
    pub runtime_tasks: Option<usize>,
}

/// The shared registry as this instance follows it.
#[derive(Debug, Default)]
pub struct SharedRegistrySample {
    /// Whether Redis answered last time.
    pub connected: bool,
    /// The shared registry's generation the serving snapshot was built from.
    pub generation: u64,
}

/// One backend endpoint.
#[derive(Debug)]
pub struct EndpointSample {
    /// Its cluster.
    pub cluster: String,
    /// Its URL.
    pub endpoint: String,
    /// Calls made to it.
    pub calls: u64,
    /// Of those, calls that failed as backend failures.
    pub failures: u64,
    /// Calls in flight now.
    pub in_flight: u64,
    /// Whether health checks pass.
    pub healthy: bool,
    /// Whether outlier detection has it ejected.
    pub ejected: bool,
    /// Call latencies.
    pub latency: HistogramSnapshot,
}

/// One backend cluster.
#[derive(Debug)]
pub struct ClusterSample {
    /// Its name.
    pub cluster: String,
    /// The breaker's state: `closed`, `open` or `half_open`.
    pub breaker: String,
    /// Retries made.
    pub retries: u64,
    /// Retries the budget refused.
    pub retries_refused: u64,
}

/// The fetch cache.
#[derive(Debug, Default)]
pub struct CacheSample {
    /// Lookups answered fresh.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Lookups answered stale while a refresh ran.
    pub stale: u64,
    /// Entries held.
    pub entries: u64,
    /// Bytes held.
    pub bytes: u64,
    /// The byte limit.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    cluster: String,
    endpoint: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    cluster: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

/// The breaker states, each a series that is 1 for the current state.
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

fn family<'e, L: EncodeLabelSet>(
    encoder: &'e mut DescriptorEncoder<'_>,
    name: &'e str,
    help: &str,
    kind: MetricType,
    unit: Option<&'e Unit>,
    series: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in series {
        let series = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(series)?,
            _ => ConstGauge::new(value).encode(series)?,
        }
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let generation = ConstGauge::new(self.generation as i64);
        generation.encode(encoder.encode_descriptor(
            "snapshot_generation",
            "The generation of the snapshot serving",
            None,
            MetricType::Gauge,
        )?)?;
        if let Some(tasks) = self.runtime_tasks {
            ConstGauge::new(i64::try_from(tasks).unwrap_or(i64::MAX)).encode(encoder.encode_descriptor(
                "runtime_tasks",
                "Tasks alive on the gateway's async runtime",
                None,
                MetricType::Gauge,
            )?)?;
        }
        if let Some(shared) = &self.shared_registry {
            ConstGauge::new(i64::from(shared.connected)).encode(encoder.encode_descriptor(
                "registry_shared_connected",
                "1 while the shared registry (Redis) answers; 0 while this instance serves its last snapshot",
                None,
                MetricType::Gauge,
            )?)?;
            ConstGauge::new(shared.generation as i64).encode(encoder.encode_descriptor(
                "registry_shared_generation",
                "The shared registry's generation the serving snapshot was built from",
                None,
                MetricType::Gauge,
            )?)?;
        }
        let endpoint = |e: &EndpointSample| EndpointLabels { cluster: e.cluster.clone(), endpoint: e.endpoint.clone() };
        let counted = |value: fn(&EndpointSample) -> f64| self.endpoints.iter().map(move |e| (endpoint(e), value(e)));
        family(
            &mut encoder,
            "backend_requests",
            "Backend calls, by cluster and endpoint",
            MetricType::Counter,
            None,
            counted(|e| e.calls as f64),
        )?;
        family(
            &mut encoder,
            "backend_failures",
            "Backend calls that failed (unavailable, timed out, or a server error)",
            MetricType::Counter,
            None,
            counted(|e| e.failures as f64),
        )?;
        family(
            &mut encoder,
            "backend_in_flight",
            "Backend calls in flight",
            MetricType::Gauge,
            None,
            counted(|e| e.in_flight as f64),
        )?;
        family(
            &mut encoder,
            "endpoint_healthy",
            "1 while an endpoint passes its health checks",
            MetricType::Gauge,
            None,
            counted(|e| f64::from(u8::from(e.healthy))),
        )?;
        family(
            &mut encoder,
            "endpoint_ejected",
            "1 while outlier detection has an endpoint ejected",
            MetricType::Gauge,
            None,
            counted(|e| f64::from(u8::from(e.ejected))),
        )?;
        let seconds = Unit::Seconds;
        let mut latency = encoder.encode_descriptor(
            "backend_request_duration",
            "Backend call latency, by cluster and endpoint",
            Some(&seconds),
            MetricType::Histogram,
        )?;
        for sample in &self.endpoints {
            let labels = endpoint(sample);
            let mut previous = 0;
            // The encoders take each bucket's own count; OpenMetrics needs the +Inf one listed.
            let mut buckets: Vec<(f64, u64)> = sample
                .latency
                .buckets
                .iter()
                .map(|(bound, cumulative)| {
                    let own = cumulative - previous;
                    previous = *cumulative;
                    (*bound, own)
                })
                .collect();
            buckets.push((f64::INFINITY, sample.latency.count - previous));
            latency.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                sample.latency.sum,
                sample.latency.count,
                &buckets,
                None,
            )?;
        }
        family(
            &mut encoder,
            "breaker_state",
            "1 for each cluster's circuit breaker state",
            MetricType::Gauge,
            None,
            self.clusters.iter().flat_map(|c| {
                BREAKER_STATES.iter().map(move |state| {
                    (BreakerLabels { cluster: c.cluster.clone(), state }, f64::from(u8::from(c.breaker == *state)))
                })
            }),
        )?;
        family(
            &mut encoder,
            "backend_retries",
            "Retries made, by cluster",
            MetricType::Counter,
            None,
            self.clusters.iter().map(|c| (ClusterLabels { cluster: c.cluster.clone() }, c.retries as f64)),
        )?;
        family(
            &mut encoder,
            "backend_retries_refused",
            "Retries the retry budget refused, by cluster",
            MetricType::Counter,
            None,
            self.clusters.iter().map(|c| (ClusterLabels { cluster: c.cluster.clone() }, c.retries_refused as f64)),
        )?;
        let cache = &self.cache;
        family(
            &mut encoder,
            "cache_lookups",
            "Fetch cache lookups, by result (hit, stale, miss)",
            MetricType::Counter,
            None,
            [("hit", cache.hits), ("stale", cache.stale), ("miss", cache.misses)]
                .map(|(result, n)| (CacheLabels { result }, n as f64)),
        )?;
        let bytes = Unit::Bytes;
        let gauges = [
            ("cache_size", "Bytes held by the fetch cache", Some(&bytes), cache.bytes),
            ("cache_entries", "Entries held by the fetch cache", None, cache.entries),
            ("cache_max_size", "The fetch cache's byte limit", Some(&bytes), cache.max_bytes),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(metrics: &Metrics, operation: Option<&str>, status: &'static str, millis: u64) {
        metrics.finished(&FinishedRequest {
            protocol: "graphql",
            operation,
            status: Cow::Borrowed(status),
            duration: Duration::from_millis(millis),
            errors: &[],
            rejected_by: None,
        });
    }

    #[test]
    fn request_series_found_by_their_handles_count_into_the_families() {
        let metrics = Metrics::default();
        finished(&metrics, Some("Books"), "200", 3);
        finished(&metrics, Some("Books"), "200", 5);
        finished(&metrics, Some("Books"), "400", 1);
        finished(&metrics, None, "200", 2);
        let text = metrics.render(Scrape::default(), false);
        let series = |operation: &str, status: &str| format!("operation=\"{operation}\",status=\"{status}\"");
        let counted = |suffix: &str, operation: &str, status: &str| {
            let labels = series(operation, status);
            text.lines()
                .find(|l| l.contains(suffix) && l.contains(&labels) && !l.contains("le="))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(counted("requests_total", "Books", "200").as_deref(), Some("2"), "{text}");
        assert_eq!(counted("requests_total", "Books", "400").as_deref(), Some("1"), "{text}");
        assert_eq!(counted("requests_total", "", "200").as_deref(), Some("1"), "{text}");
        assert_eq!(counted("request_duration_seconds_count", "Books", "200").as_deref(), Some("2"), "{text}");
        assert_eq!(counted("request_duration_seconds_sum", "Books", "200").as_deref(), Some("0.008"), "{text}");
    }
}
