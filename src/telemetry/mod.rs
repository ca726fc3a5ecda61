//! Telemetry: what the gateway tells operators about itself — request ids, the per-request
//! record the stages add to, metrics families and their Prometheus rendering, access-log lines
//! and their writer. It owns names, formats and sinks; it decides nothing about requests and
//! reads no snapshot (callers pass what it needs). Everything here outlives snapshot swaps.

pub mod access_log;
pub mod histogram;
pub mod metrics;
pub mod otel;
pub mod record;
pub mod request_id;
pub mod trace_context;
pub mod usage;

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::config::AccessLogConfig;
use access_log::AccessLogSink;

/// The gateway's telemetry: metric families and the access log's current sink.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// The metric families.
    pub metrics: metrics::Metrics,
    /// Usage per consumer and operation.
    pub usage: usage::Usage,
    access_log: ArcSwapOption<(AccessLogConfig, Arc<AccessLogSink>)>,
}

impl Telemetry {
    /// The sink for `config` when access logging is on: the current one while the destination
    /// is unchanged, else a new one (the old writer finishes what it queued).
    pub fn access_log(&self, config: &AccessLogConfig) -> Option<Arc<AccessLogSink>> {
        if !config.enabled {
            return None;
        }
        if let Some(current) = self.access_log.load().as_ref().filter(|c| c.0.path == config.path) {
            return Some(current.1.clone());
        }
        match AccessLogSink::open(config) {
            Ok(sink) => {
                self.access_log.store(Some(Arc::new((config.clone(), sink.clone()))));
                Some(sink)
            }
            Err(error) => {
                tracing::warn!(%error, path = ?config.path, "the access log cannot be opened");
                None
            }
        }
    }
}
