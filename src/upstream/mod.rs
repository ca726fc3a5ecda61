//! Upstream: every connection to a served backend. `Upstreams` holds one client per cluster and
//! survives snapshot swaps for clusters whose definition did not change; `grpc` makes unary and
//! streaming calls and splices passthrough requests; `grpc_codec` frames messages. Upstream
//! never sees an Operation or a Plan, only calls with encoded requests. The pools issue adds
//! balancing, health, outlier ejection and breakers.

mod cluster;
pub mod grpc;
pub mod graphql_ws;
pub mod grpc_codec;
pub mod deadline;
pub mod grpc_only;
pub mod grpc_unary;
pub mod http;
pub mod pool;
pub mod tls;
pub mod unsent;

use std::collections::HashMap;

use crate::error::{ErrorCode, grpc_code};

pub use cluster::Cluster;
pub use grpc::{GrpcClient, StreamReply, UnaryReply};
pub use http::{HttpClient, HttpRequest};

/// A backend call that did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The backend answered with a non-OK gRPC status.
    #[error("{message}")]
    Status {
        /// The gRPC status code.
        code: i32,
        /// The backend's message.
        message: String,
        /// `grpc-status-details-bin`: an encoded google.rpc.Status, if sent.
        details: bytes::Bytes,
    },
    /// A REST backend answered with a non-2xx status.
    #[error("{message}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// What it said (4xx) or which backend failed (5xx).
        message: String,
    },
    /// The cluster's circuit breaker refused the call.
    #[error("{0}")]
    Refused(String),
    /// The backend could not be reached.
    #[error("backend {cluster} is unavailable")]
    Unavailable {
        /// The cluster.
        cluster: String,
    },
    /// The backend never processed the call (a refused stream, a stream a GOAWAY turned away,
    /// a request whose connection closed before it was written): safe to send again, whatever
    /// the method, and no sign of the endpoint's health.
    #[error("backend {cluster} is unavailable")]
    Unsent {
        /// The cluster.
        cluster: String,
    },
    /// The deadline passed before the answer.
    #[error("the backend did not answer before the deadline")]
    DeadlineExceeded,
    /// The backend's answer is not a valid answer.
    #[error("{0}")]
    BadAnswer(String),
    /// A gateway fault.
    #[error("{0}")]
    Internal(String),
}

impl UpstreamError {
    /// The edge error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            UpstreamError::Status { code, .. } => ErrorCode::from_grpc_code(*code),
            UpstreamError::Http { status, .. } => ErrorCode::from_backend_http_status(*status),
            UpstreamError::Unavailable { .. } | UpstreamError::Unsent { .. } | UpstreamError::Refused(_) => {
                ErrorCode::Unavailable
            }
            UpstreamError::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            UpstreamError::BadAnswer(_) => ErrorCode::UpstreamError,
            UpstreamError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether the error is the backend's fault, for the circuit breaker: unreachable, too slow,
    /// a broken answer, or a server error.
    pub fn is_backend_failure(&self) -> bool {
        match self {
            UpstreamError::Unavailable { .. } | UpstreamError::DeadlineExceeded | UpstreamError::BadAnswer(_) => true,
            UpstreamError::Status { code, .. } => matches!(
                *code,
                grpc_code::UNAVAILABLE | grpc_code::INTERNAL | grpc_code::UNKNOWN | grpc_code::DEADLINE_EXCEEDED
            ),
            UpstreamError::Http { status, .. } => *status >= 500,
            UpstreamError::Unsent { .. } | UpstreamError::Refused(_) | UpstreamError::Internal(_) => false,
        }
    }

    /// The error for a call the breaker of `cluster` refused.
    pub(crate) fn refused(cluster: &str, why: &pool::Refused) -> Self {
        UpstreamError::Refused(match why {
            pool::Refused::Open => format!("the circuit breaker for backend {cluster} is open"),
            pool::Refused::Saturated(n) => {
                format!("backend {cluster} already has {n} calls in flight (circuit_breaker.max_concurrent)")
            }
            pool::Refused::Pending(n) => {
                format!("backend {cluster} already has {n} calls waiting for a slot (circuit_breaker.max_pending)")
            }
        })
    }

    /// A backend that could not be reached, for `error`'s reason (logged, never shown).
    pub(crate) fn unreachable(cluster: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::debug!(cluster, %error, "backend unavailable");
        UpstreamError::Unavailable { cluster: cluster.to_owned() }
    }

    /// A transport failure: `Unsent` when it shows the backend never processed the call,
    /// `Unavailable` otherwise. Its words (which may name addresses) stay in the log.
    pub(crate) fn unavailable(cluster: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        if unsent::never_processed(error) {
            tracing::debug!(cluster, %error, "backend did not process the call");
            return UpstreamError::Unsent { cluster: cluster.to_owned() };
        }
        UpstreamError::unreachable(cluster, error)
    }

    /// Classifies a tonic status: transport failures (which carry a source error and may name
    /// addresses) become `Unavailable`; the backend's own statuses pass through.
    pub(crate) fn from_status(cluster: &str, status: tonic::Status) -> Self {
        let timed_out = std::error::Error::source(&status).is_some_and(|e| e.is::<tonic::TimeoutExpired>());
        if timed_out || (status.code() == tonic::Code::Cancelled && status.message() == "Timeout expired") {
            // tonic's channel enforces the grpc-timeout we set and reports it as CANCELLED.
            return UpstreamError::DeadlineExceeded;
        }
        // A status with a source error was made by the transport (a refused connection, a
        // connection lost mid-stream), not sent by the backend: the backend is unavailable, and
        // the transport's words (which may name addresses) stay in the log.
        if std::error::Error::source(&status).is_some()
            && matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Internal | tonic::Code::Unknown
            )
        {
            return UpstreamError::unavailable(cluster, &status);
        }
        let code = status.code() as i32;
        if code == grpc_code::DEADLINE_EXCEEDED {
            return UpstreamError::DeadlineExceeded;
        }
        if is_malformed_answer(&status) {
            return UpstreamError::BadAnswer(format!(
                "backend {cluster} sent a malformed answer: {}",
                status.message()
            ));
        }
        UpstreamError::Status { code, message: status.message().to_owned(), details: status.details().to_vec().into() }
    }
}

/// True for the statuses tonic makes up while reading an answer that breaks the gRPC framing
/// (a frame past the size limit, an unknown compression flag, an encoding it was not offered, a
/// frame cut short, no trailers):
/// the backend sent no such status, its answer was broken, which is a 502, not the client's
/// fault (tonic's OUT_OF_RANGE would read as a 400).
fn is_malformed_answer(status: &tonic::Status) -> bool {
    const TONIC_DECODE_ERRORS: &[&str] = &[
        "decoded message length too large",
        "Message length too large",
        "invalid compression flag",
        "missing grpc-status trailer",
        "Missing response message",
        "Unexpected EOF",
        // Compressed although the gateway did not offer that encoding.
        "which isn't supported",
        // Inflating past the message limit (tonic says RESOURCE_EXHAUSTED, which reads as a 429).
        "Error decompressing",
    ];
    matches!(
        status.code(),
        tonic::Code::OutOfRange
            | tonic::Code::Internal
            | tonic::Code::Unknown
            | tonic::Code::Unimplemented
            | tonic::Code::ResourceExhausted
    ) && TONIC_DECODE_ERRORS.iter().any(|known| status.message().contains(known))
}

/// A cluster's client, by the protocol it speaks.
#[derive(Debug, Clone)]
enum Client {
    Grpc(GrpcClient),
    Http(HttpClient),
}

impl Client {
    /// The pool state both kinds keep: the balancer, the breaker and the retry budget.
    fn state(&self) -> (std::sync::Arc<pool::balancer::Balancer>, &pool::breaker::Breaker, &pool::retry::RetryBudget) {
        match self {
            Client::Grpc(client) => (client.balancer(), client.breaker(), client.retries()),
            Client::Http(client) => (client.balancer(), client.breaker(), client.retries()),
        }
    }
}

/// One client per cluster.
#[derive(Debug, Default)]
pub struct Upstreams {
    clients: HashMap<String, (Cluster, Client)>,
}

impl Upstreams {
    /// Clients for `clusters`, reusing `previous`'s where the cluster is unchanged.
    pub fn build<'a>(clusters: impl IntoIterator<Item = &'a Cluster>, previous: Option<&Upstreams>) -> Self {
        let mut clients = HashMap::new();
        for cluster in clusters {
            if let Some((old, client)) = previous.and_then(|p| p.clients.get(&cluster.name)) {
                if old == cluster {
                    clients.insert(cluster.name.clone(), (old.clone(), client.clone()));
                    continue;
                }
                // Only the endpoints changed: the pool takes the new set, keeping the
                // connections and state of endpoints in both (calls in flight finish anyway).
                if old.differs_only_in_endpoints(cluster) && cluster.dns.is_none() {
                    let updated = match client {
                        Client::Grpc(client) => client.retarget(cluster.targets()),
                        Client::Http(client) => client.retarget(cluster.targets()),
                    };
                    match updated {
                        Ok(_) => {
                            clients.insert(cluster.name.clone(), (cluster.clone(), client.clone()));
                            continue;
                        }
                        Err(error) => tracing::warn!(cluster = cluster.name, %error, "cannot update the endpoints"),
                    }
                }
            }
            let client = match cluster.protocol {
                crate::config::BackendProtocol::Http | crate::config::BackendProtocol::Graphql => {
                    HttpClient::new(cluster).map(Client::Http)
                }
                crate::config::BackendProtocol::Grpc => GrpcClient::new(cluster).map(Client::Grpc),
            };
            match client {
                Ok(client) => {
                    clients.insert(cluster.name.clone(), (cluster.clone(), client));
                }
                Err(error) => tracing::warn!(cluster = cluster.name, %error, "cannot create a client"),
            }
        }
        Upstreams { clients }
    }

    /// Every cluster's and endpoint's counters, for metrics.
    pub fn samples(
        &self,
    ) -> (Vec<crate::telemetry::metrics::EndpointSample>, Vec<crate::telemetry::metrics::ClusterSample>) {
        use crate::telemetry::metrics::{ClusterSample, EndpointSample};
        let mut endpoints = Vec::new();
        let mut clusters = Vec::new();
        for (name, (_, client)) in &self.clients {
            let (balancer, breaker, retries) = client.state();
            for member in balancer.members() {
                endpoints.push(EndpointSample {
                    cluster: name.clone(),
                    endpoint: member.id.to_string(),
                    calls: member.load.calls(),
                    failures: member.load.failures(),
                    in_flight: member.load.outstanding(),
                    healthy: member.load.is_healthy(),
                    ejected: member.load.is_ejected(),
                    latency: member.load.latency().snapshot(),
                });
            }
            let (made, refused) = retries.counts();
            clusters.push(ClusterSample {
                cluster: name.clone(),
                breaker: breaker.state().to_owned(),
                retries: made,
                retries_refused: refused,
            });
        }
        (endpoints, clusters)
    }

    /// Every cluster with its balancer and each endpoint's state, for `GET /admin/clusters`.
    pub fn describe(&self) -> serde_json::Value {
        let mut names: Vec<&String> = self.clients.keys().collect();
        names.sort();
        let clusters: Vec<serde_json::Value> = names
            .into_iter()
            .map(|name| {
                let (cluster, client) = &self.clients[name];
                let (balancer, breaker, retries) = client.state();
                let endpoints: Vec<serde_json::Value> = balancer
                    .members()
                    .iter()
                    .map(|member| {
                        serde_json::json!({
                            "url": member.id,
                            "weight": member.weight,
                            "healthy": member.load.is_healthy(),
                            "ejected_for_ms": member.load.ejected_for().map(|d| d.as_millis() as u64),
                            "outstanding": member.load.outstanding(),
                            "calls": member.load.calls(),
                            "latency_ewma_ms": member.load.ewma().as_secs_f64() * 1000.0,
                        })
                    })
                    .collect();
                let (made, refused) = retries.counts();
                let retries = serde_json::json!({"made": made, "refused_by_budget": refused});
                let breaker = serde_json::json!({
                    "state": breaker.state(),
                    "in_flight": breaker.in_flight(),
                    "pending": breaker.pending(),
                });
                serde_json::json!({
                    "name": name,
                    "protocol": cluster.protocol,
                    "breaker": breaker,
                    "balancer": balancer.algorithm(),
                    "endpoints": endpoints,
                    "retries": retries,
                })
            })
            .collect();
        serde_json::json!({ "clusters": clusters })
    }

    /// Clusters with health checks whose every endpoint fails them: the gateway is not ready.
    pub fn unhealthy_clusters(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, (cluster, client))| cluster.health_check.is_some() && !client.state().0.any_usable())
            .map(|(name, _)| name.clone())
            .collect();
        out.sort();
        out
    }

    /// The gRPC client of `cluster`.
    pub fn grpc(&self, cluster: &str) -> Result<&GrpcClient, UpstreamError> {
        match self.clients.get(cluster) {
            Some((_, Client::Grpc(client))) => Ok(client),
            Some(_) => Err(UpstreamError::Internal(format!("cluster {cluster} does not speak gRPC"))),
            None => Err(UpstreamError::Unavailable { cluster: cluster.to_owned() }),
        }
    }

    /// The HTTP client of `cluster`.
    pub fn http(&self, cluster: &str) -> Result<&HttpClient, UpstreamError> {
        match self.clients.get(cluster) {
            Some((_, Client::Http(client))) => Ok(client),
            Some(_) => Err(UpstreamError::Internal(format!("cluster {cluster} does not speak HTTP"))),
            None => Err(UpstreamError::Unavailable { cluster: cluster.to_owned() }),
        }
    }
}

/// The span of one backend call (a child of the request's trace, whichever task runs it) and
/// the `traceparent` the call carries, naming that span.
pub(crate) fn fetch_trace(
    cluster: &str,
    endpoint: &str,
    target: &str,
    metadata: &crate::operation::Metadata,
) -> (tracing::Span, String) {
    use crate::telemetry::trace_context::{TRACEPARENT, TraceParent, of_span};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!(
        "fetch",
        cluster,
        endpoint,
        target,
        status = tracing::field::Empty,
        bytes = tracing::field::Empty
    );
    let parent = metadata.get(TRACEPARENT).and_then(TraceParent::parse).unwrap_or_else(TraceParent::root);
    let _ = span.set_parent(parent.otel_context());
    let header = of_span(&span, parent).header();
    (span, header)
}
