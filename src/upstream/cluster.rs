//! `Cluster`: a named group of backend endpoints and what it serves, as the snapshot defines it.

use crate::config::{BackendProtocol, GrpcCompression};

/// A backend cluster as served.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Its name (a config key, or the NAME of a `--backend` flag).
    pub name: String,
    /// The protocol it speaks.
    pub protocol: BackendProtocol,
    /// Its endpoints.
    pub endpoints: Vec<http::Uri>,
    /// Their weights, in the same order.
    pub weights: Vec<u32>,
    /// Their priority groups (0 primary, higher: backups), in the same order.
    pub priorities: Vec<u32>,
    /// How calls choose an endpoint.
    pub balancer: crate::config::Balancing,
    /// What consistent hashing keys a call by.
    pub hash_on: Option<crate::config::HashOn>,
    /// Active health checks, if configured.
    pub health_check: Option<crate::config::HealthCheckConfig>,
    /// Retries of idempotent calls.
    pub retries: crate::config::RetryConfig,
    /// The circuit breaker.
    pub circuit_breaker: crate::config::BreakerConfig,
    /// Passive outlier detection, if configured.
    pub outlier_detection: Option<crate::config::OutlierConfig>,
    /// The names it claims (services or package prefixes).
    pub serves: Vec<String>,
    /// Compression of the gRPC messages the gateway sends.
    pub grpc_compression: GrpcCompression,
    /// The longest a unary call may take, whatever the client asked.
    pub timeout: Option<std::time::Duration>,
    /// Per gRPC method (full name, dotted), overriding `timeout`.
    pub method_timeouts: std::collections::BTreeMap<String, std::time::Duration>,
    /// Connection settings (connect timeout, keepalive, HTTP version).
    pub connection: crate::config::ConnectionConfig,
    /// TLS material for `https://` endpoints, loaded from the files the config names.
    pub tls: Option<super::tls::TlsMaterial>,
    /// DNS re-resolution of endpoint names, if configured.
    pub dns: Option<crate::config::DnsConfig>,
    /// Identical reads in flight share one call.
    pub coalesce: bool,
}

impl Cluster {
    /// Whether `other` is this cluster with other endpoints (URLs, weights or priorities) and
    /// nothing else changed.
    pub fn differs_only_in_endpoints(&self, other: &Cluster) -> bool {
        let same_endpoints =
            |c: &Cluster| Cluster { endpoints: Vec::new(), weights: Vec::new(), priorities: Vec::new(), ..c.clone() };
        self != other && same_endpoints(self) == same_endpoints(other)
    }

    /// Each endpoint as configured: its URL, weight and priority group.
    pub fn targets(&self) -> Vec<crate::upstream::pool::Target> {
        self.endpoints
            .iter()
            .enumerate()
            .map(|(i, uri)| crate::upstream::pool::Target {
                uri: uri.clone(),
                resolved_from: None,
                weight: self.weights.get(i).copied().unwrap_or(1),
                priority: self.priorities.get(i).copied().unwrap_or(0),
            })
            .collect()
    }
}
