//! gRPC calls to a cluster: HTTP/2 connections per endpoint (`pool::http2`), an endpoint chosen per call by the
//! cluster's balancer (its in-flight count held for the whole call, streams included),
//! requests encoded by the caller, responses returned as raw protobuf bytes with their
//! metadata.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use super::UpstreamError;
use super::deadline::SplicedBody;
use super::grpc_codec::{Outgoing, RawCodec};
use super::grpc_only::GrpcOnly;
use super::pool::http2::{Connection, Dialer, Tls};
use super::pool::{Balancer, Breaker, EndpointConnections, InFlight, Pool, RetryBudget, Spec, StreamSlot, Target};
use crate::error::grpc_code;
use crate::operation::Metadata;
use crate::wire_message::WireMessage;

/// Connections (lazily established, re-established on failure) to one cluster's endpoints.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    cluster: String,
    pool: std::sync::Arc<Pool<EndpointConnections>>,
    hash_on: Option<crate::config::HashOn>,
    retry: std::sync::Arc<RetryBudget>,
    breaker: std::sync::Arc<Breaker>,
    compress: bool,
    timeouts: std::sync::Arc<Timeouts>,
    coalesce: bool,
}

/// A cluster's own limits on unary calls: its `timeout` and per-method overrides.
#[derive(Debug, Default)]
struct Timeouts {
    default: Option<Duration>,
    methods: std::collections::HashMap<String, Duration>,
}

impl Timeouts {
    fn of(cluster: &super::Cluster) -> std::sync::Arc<Self> {
        let methods = cluster.method_timeouts.iter().map(|(m, t)| (format!("/{}", slash_method(m)), *t)).collect();
        std::sync::Arc::new(Timeouts { default: cluster.timeout, methods })
    }

    /// The shorter of the caller's `timeout` and the cluster's limit for `path`.
    fn bound(&self, path: &str, timeout: Option<Duration>) -> Option<Duration> {
        let own = self.methods.get(path).copied().or(self.default);
        match (timeout, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// `package.Service.Method` as `package.Service/Method`.
fn slash_method(full_name: &str) -> String {
    match full_name.rsplit_once('.') {
        Some((service, method)) => format!("{service}/{method}"),
        None => full_name.to_owned(),
    }
}

/// The cluster's TLS client configuration, made once (the system's roots are read then) and
/// shared by its `https://` endpoints.
type SharedTls = std::sync::Arc<std::sync::OnceLock<Result<std::sync::Arc<rustls::ClientConfig>, String>>>;

/// How to open connections to `target` with the cluster's connection settings and, for
/// `https://`, TLS (verifying the name it was resolved from, if it was).
fn dialer(cluster: &super::Cluster, target: &Target, tls: &SharedTls) -> Result<Dialer, UpstreamError> {
    let settings = &cluster.connection;
    let uri = &target.uri;
    let refused = |what: String| UpstreamError::Internal(format!("cluster {}: endpoint {uri}: {what}", cluster.name));
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or_else(|| refused("no host".into()))?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = match &target.resolved_from {
        // An address of a name: `:authority` stays the name, as the backend expects.
        Some(name) => {
            let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{name}{port}").parse().map_err(|e| refused(format!("`{name}` is not an authority: {e}")))?
        }
        None => uri.authority().cloned().ok_or_else(|| refused("no authority".into()))?,
    };
    let tls = if https {
        let material = cluster.tls.clone().unwrap_or_default();
        let config = tls
            .get_or_init(|| {
                let mut config = material.rustls_client()?;
                config.alpn_protocols = vec![b"h2".to_vec()];
                Ok(std::sync::Arc::new(config))
            })
            .clone()
            .map_err(|e| refused(format!("TLS settings refused: {e}")))?;
        let name = target.resolved_from.as_deref().unwrap_or(host);
        let name = material.server_name.as_deref().unwrap_or(name).trim_matches(['[', ']']).to_owned();
        let server_name = rustls_pki_types::ServerName::try_from(name.clone())
            .map_err(|e| refused(format!("`{name}` is not a name TLS can verify: {e}")))?;
        Some(Tls { config, server_name })
    } else {
        None
    };
    let interval = settings.keepalive_interval.get();
    Ok(Dialer {
        address: format!("{host}:{port}"),
        scheme: if https { http::uri::Scheme::HTTPS } else { http::uri::Scheme::HTTP },
        authority,
        tls,
        connect_timeout: settings.connect_timeout.get(),
        keepalive_interval: (!interval.is_zero()).then_some(interval),
        keepalive_timeout: settings.keepalive_timeout.get(),
        keepalive_while_idle: settings.keepalive_while_idle,
        stream_window: settings.stream_window_bytes,
    })
}

/// The endpoint a call goes to: a connection with a free stream slot, the call's guards, and
/// the member set it was picked from (outcomes are reported there).
struct Picked {
    connection: Connection,
    guards: (InFlight, StreamSlot),
    index: usize,
    balancer: std::sync::Arc<Balancer>,
}

/// A unary call's answer.
#[derive(Debug)]
pub struct UnaryReply {
    /// The response message, still encoded.
    pub body: Bytes,
    /// Response headers and trailers.
    pub metadata: MetadataMap,
}

impl GrpcClient {
    /// A client for `cluster`'s endpoints, choosing one per call by its balancer, with its
    /// health checks, retry budget and breaker; connects on first use.
    pub fn new(cluster: &super::Cluster) -> Result<Self, UpstreamError> {
        let compress = cluster.grpc_compression == crate::config::GrpcCompression::Gzip;
        let settings = cluster.clone();
        let tls = SharedTls::default();
        let spec = Spec {
            cluster: cluster.name.clone(),
            algorithm: cluster.balancer,
            health: cluster.health_check.clone(),
            outlier: cluster.outlier_detection.clone(),
            connect: std::sync::Arc::new(move |target: &Target| {
                dialer(&settings, target, &tls).map(EndpointConnections::new)
            }),
        };
        let pool = Pool::new(spec, cluster.targets())?;
        super::pool::dns::spawn_refresh(cluster, &pool);
        Ok(GrpcClient {
            cluster: cluster.name.clone(),
            pool,
            hash_on: cluster.hash_on.clone(),
            retry: std::sync::Arc::new(RetryBudget::new(cluster.retries.clone())),
            breaker: std::sync::Arc::new(Breaker::new(cluster.circuit_breaker.clone())),
            compress,
            timeouts: Timeouts::of(cluster),
            coalesce: cluster.coalesce,
        })
    }

    /// Whether identical reads in flight may share one call to this cluster.
    pub fn coalesces(&self) -> bool {
        self.coalesce
    }

    /// A number that tells this client (its pool) apart from every other one alive.
    pub fn identity(&self) -> usize {
        std::sync::Arc::as_ptr(&self.pool) as usize
    }

    /// Serves `targets` from now on (a reload changed the endpoints): calls in flight finish
    /// where they are; endpoints in both sets keep their connections and state.
    pub fn retarget(&self, targets: Vec<Target>) -> Result<bool, UpstreamError> {
        self.pool.update(targets)
    }

    /// The balancer over the current members, for their state.
    pub fn balancer(&self) -> std::sync::Arc<Balancer> {
        self.pool.load().balancer.clone()
    }

    /// The circuit breaker, for its state.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The retry budget, for its counts.
    pub fn retries(&self) -> &RetryBudget {
        &self.retry
    }

    /// The endpoint for the next call (keyed by `metadata`'s hash inputs under consistent
    /// hashing), avoiding endpoint `avoid` (a retry's failed one) when another is there.
    fn pick(&self, metadata: &Metadata, avoid: Option<usize>) -> Result<Picked, UpstreamError> {
        let key = super::pool::hash_key(self.hash_on.as_ref(), metadata);
        let members = self.pool.load();
        let unavailable = || UpstreamError::Unavailable { cluster: self.cluster.clone() };
        let index = members.balancer.pick_avoiding(key.as_deref(), avoid).ok_or_else(unavailable)?;
        let (connection, slot) = members.handles[index].acquire();
        let guards = (members.balancer.members()[index].load.start(), slot);
        crate::telemetry::record::note_backend_call();
        Ok(Picked { connection, guards, index, balancer: members.balancer.clone() })
    }

    /// Calls `path` (`/package.Service/Method`) with an encoded request. An `idempotent` call
    /// (or one whose method the retry config names) that fails as `retry_on` lists is retried
    /// on another endpoint within the deadline and the cluster's retry budget; each attempt
    /// sends the time left as its deadline.
    pub async fn unary(
        &self,
        path: &str,
        request: impl Into<WireMessage>,
        metadata: &Metadata,
        timeout: Option<Duration>,
        idempotent: bool,
    ) -> Result<UnaryReply, UpstreamError> {
        let path = PathAndQuery::try_from(path)
            .map_err(|_| UpstreamError::Internal(format!("`{path}` is not a valid gRPC path")))?;
        let timeout = self.timeouts.bound(path.path(), timeout);
        let queued = tokio::time::Instant::now();
        let admitted =
            self.breaker.admit_waiting(timeout).await.map_err(|why| UpstreamError::refused(&self.cluster, &why))?;
        // Time spent waiting for a slot counts against the deadline.
        let timeout = timeout.map(|t| t.saturating_sub(queued.elapsed()));
        let result = self.unary_attempts(&path, request.into(), metadata, timeout, idempotent).await;
        admitted.finish(result.as_ref().err().is_some_and(UpstreamError::is_backend_failure));
        result
    }

    async fn unary_attempts(
        &self,
        path: &PathAndQuery,
        request: WireMessage,
        metadata: &Metadata,
        timeout: Option<Duration>,
        idempotent: bool,
    ) -> Result<UnaryReply, UpstreamError> {
        let idempotent = idempotent || self.retry.configured(path.path());
        let endpoints = self.pool.load().handles.len();
        // A call that cannot be retried on failure needs its request only until the backend
        // takes the stream (a refused or unsent one is sent again transparently): it is let go
        // when the answer's headers arrive, so a large request is not held beside its answer.
        let retried_on_failure = idempotent && endpoints > 1 && self.retry.max_retries() > 0;
        let kept = std::sync::Mutex::new(Some(request));
        super::pool::retry::attempts(&self.retry, endpoints, timeout, idempotent, |remaining, avoid| {
            let request = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let release = (!retried_on_failure).then_some(&kept);
            async move {
                let Some(request) = request else {
                    // Let go only once the backend took the stream, after which no attempt follows.
                    return (
                        Err(UpstreamError::Internal("a unary call's request was sent again after its release".into())),
                        None,
                    );
                };
                self.attempt(path, request, metadata, remaining, avoid, release).await
            }
        })
        .await
    }

    /// One attempt of a unary call; the endpoint it went to, when it got one. `release` is
    /// emptied when the answer's headers arrive.
    async fn attempt(
        &self,
        path: &PathAndQuery,
        body: WireMessage,
        metadata: &Metadata,
        timeout: Option<Duration>,
        avoid: Option<usize>,
        release: Option<&std::sync::Mutex<Option<WireMessage>>>,
    ) -> (Result<UnaryReply, UpstreamError>, Option<usize>) {
        let picked = match self.pick(metadata, avoid) {
            Ok(picked) => picked,
            Err(error) => return (Err(error), None),
        };
        let (index, balancer, _guards) = (picked.index, picked.balancer, picked.guards);
        let endpoint = balancer.members().get(index).map(|m| m.id.to_string()).unwrap_or_default();
        let (span, traceparent) = super::fetch_trace(&self.cluster, &endpoint, path.path(), metadata);
        let mut headers = MetadataMap::new();
        copy_metadata(metadata, &mut headers);
        let head = super::grpc_unary::Head {
            path,
            metadata: headers,
            timeout,
            traceparent: &traceparent,
            gzip: self.compress,
        };
        let request = super::grpc_unary::request(head, body);
        let connection = picked.connection;
        let call = async {
            let response =
                connection.send_body(request).await.map_err(|e| UpstreamError::unavailable(&self.cluster, &e))?;
            if let Some(kept) = release {
                kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            }
            super::grpc_unary::answer(&self.cluster, response, self.compress).await
        };
        let call = tracing::Instrument::instrument(call, span.clone());
        let result = match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, call).await {
                Ok(response) => response,
                Err(_) => Err(UpstreamError::DeadlineExceeded),
            },
            None => call.await,
        };
        match &result {
            Ok(reply) => {
                span.record("status", "OK");
                span.record("bytes", reply.body.len());
            }
            Err(error) => {
                span.record("status", tracing::field::display(error));
            }
        }
        balancer.report(index, result.as_ref().err().is_some_and(UpstreamError::is_backend_failure));
        (result, Some(index))
    }
}

/// A streaming call's answer: headers, then messages (still encoded) until the trailers.
pub struct StreamReply {
    /// Response headers.
    pub metadata: MetadataMap,
    /// The messages; ends with the backend's status (an error if not OK).
    pub messages: BoxStream<'static, Result<Bytes, UpstreamError>>,
}

impl GrpcClient {
    /// Opens a server-streaming (`requests` is one message) or bidi/client-streaming call.
    /// `deadline` bounds the whole call, stream included.
    pub async fn streaming(
        &self,
        path: &str,
        requests: BoxStream<'static, Outgoing>,
        metadata: &Metadata,
        deadline: Option<Duration>,
    ) -> Result<StreamReply, UpstreamError> {
        let path = PathAndQuery::try_from(path)
            .map_err(|_| UpstreamError::Internal(format!("`{path}` is not a valid gRPC path")))?;
        let mut request = tonic::Request::new(requests);
        copy_metadata(metadata, request.metadata_mut());
        if let Some(deadline) = deadline {
            request.set_timeout(deadline);
        }
        let admitted =
            self.breaker.admit_waiting(deadline).await.map_err(|why| UpstreamError::refused(&self.cluster, &why))?;
        let picked = self.pick(metadata, None)?;
        let endpoint = picked.balancer.members().get(picked.index).map(|m| m.id.to_string()).unwrap_or_default();
        // The span covers opening the stream; its messages are the subscription's business.
        let (_span, traceparent) = super::fetch_trace(&self.cluster, &endpoint, path.path(), metadata);
        if let Ok(value) = MetadataValue::try_from(traceparent.as_str()) {
            request.metadata_mut().insert(crate::telemetry::trace_context::TRACEPARENT, value);
        }
        let in_flight = picked.guards;
        let mut grpc = self.grpc(picked.connection);
        let cluster = self.cluster.clone();
        let open = async {
            grpc.ready().await.map_err(|e| UpstreamError::unavailable(&self.cluster, &e))?;
            grpc.streaming(request, path, RawCodec)
                .await
                .map_err(|status| UpstreamError::from_status(&self.cluster, status))
        };
        let started = tokio::time::Instant::now();
        let opened = match deadline {
            Some(deadline) => {
                tokio::time::timeout(deadline, open).await.unwrap_or(Err(UpstreamError::DeadlineExceeded))
            }
            None => open.await,
        };
        // The breaker judges a stream by whether it opened.
        admitted.finish(opened.as_ref().err().is_some_and(UpstreamError::is_backend_failure));
        let response = opened?;
        let (metadata, stream, _) = response.into_parts();
        let until = deadline.map(|d| started + d);
        // The stream counts as one call in flight on its endpoint until it ends.
        let messages = futures_util::stream::unfold(Some((stream, in_flight)), move |state| {
            let cluster = cluster.clone();
            async move {
                let (mut stream, in_flight) = state?;
                let next = match until {
                    Some(until) => tokio::select! {
                        item = stream.message() => item,
                        _ = tokio::time::sleep_until(until) => return Some((Err(UpstreamError::DeadlineExceeded), None)),
                    },
                    None => stream.message().await,
                };
                match next {
                    Ok(Some(message)) => Some((Ok(message), Some((stream, in_flight)))),
                    Ok(None) => None,
                    Err(status) => Some((Err(UpstreamError::from_status(&cluster, status)), None)),
                }
            }
        });
        let messages: BoxStream<'static, Result<Bytes, UpstreamError>> = Box::pin(messages);
        Ok(StreamReply { metadata, messages })
    }
}

impl GrpcClient {
    /// Opens a server-streaming call of one `request` message. A stream the backend never
    /// processed (refused, turned away by a GOAWAY) is opened again at once through the same
    /// loop as `unary`, since its one message can be sent again.
    pub async fn server_streaming(
        &self,
        path: &str,
        request: Bytes,
        metadata: &Metadata,
        deadline: Option<Duration>,
    ) -> Result<StreamReply, UpstreamError> {
        // Not idempotent: the shared loop then only resends what the backend never processed.
        super::pool::retry::attempts(&self.retry, 1, deadline, false, |left, _| {
            let message = request.clone();
            let requests: BoxStream<'static, Outgoing> =
                Box::pin(futures_util::stream::once(async move { Outgoing::Message(message) }));
            async move { (self.streaming(path, requests, metadata, left).await, None) }
        })
        .await
    }

    /// Splices a native gRPC request to the cluster: headers, body frames and trailers pass
    /// through undecoded; flow control is HTTP/2's own, end to end. The call is bounded by the
    /// client's `deadline` and, for a `unary` method, the cluster's timeouts: the backend is sent
    /// the time left, the answer's headers must come by then and its body ends there with
    /// DEADLINE_EXCEEDED. It goes through the cluster's breaker (waiting for a slot no longer
    /// than the deadline), and its answer (a transport failure, a 5xx, or a trailers-only
    /// UNAVAILABLE, INTERNAL, UNKNOWN or DEADLINE_EXCEEDED) feeds the breaker and outlier
    /// detection. It is not retried: its body streams through unbuffered. `client_ip` is what a
    /// cluster hashing on the client's address hashes.
    pub async fn forward(
        &self,
        mut request: http::Request<axum::body::Body>,
        deadline: Option<Duration>,
        unary: bool,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<http::Response<SplicedBody<hyper::body::Incoming>>, UpstreamError> {
        // A unary call is bounded by the cluster's timeouts too; a stream only by its client.
        let deadline = if unary { self.timeouts.bound(request.uri().path(), deadline) } else { deadline };
        let queued = tokio::time::Instant::now();
        let admitted =
            self.breaker.admit_waiting(deadline).await.map_err(|why| UpstreamError::refused(&self.cluster, &why))?;
        let until = deadline.map(|d| queued + d);
        if let Some(until) = until {
            // The backend is told the time left after the wait for a slot, never more.
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                admitted.finish(false);
                return Err(UpstreamError::DeadlineExceeded);
            }
            request.headers_mut().insert("grpc-timeout", super::deadline::grpc_timeout_value(left));
        }
        // The headers are copied out only when the cluster hashes on something.
        let inputs =
            if self.hash_on.is_some() { passthrough_hash_inputs(&request, client_ip) } else { Metadata::default() };
        let picked = self.pick(&inputs, None)?;
        let _guards = picked.guards;
        let call = async {
            let connection = picked.connection;
            let answer = connection.splice(request).await;
            answer.map(|response| super::grpc_only::grpc_or_status(response.map(SplicedBody::new)))
        };
        let answer = match until {
            Some(until) => match tokio::time::timeout_at(until, call).await {
                Ok(Err(_)) | Err(_) if tokio::time::Instant::now() >= until => Err(UpstreamError::DeadlineExceeded),
                Ok(answer) => answer.map_err(|e| UpstreamError::unavailable(&self.cluster, &e)),
                Err(_) => Err(UpstreamError::DeadlineExceeded),
            },
            None => call.await.map_err(|e| UpstreamError::unavailable(&self.cluster, &e)),
        };
        let failed = match &answer {
            Err(_) => true,
            Ok(response) => {
                let status = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()?.parse::<i32>().ok());
                response.status().is_server_error()
                    || status.is_some_and(|code| {
                        matches!(
                            code,
                            grpc_code::UNAVAILABLE
                                | grpc_code::INTERNAL
                                | grpc_code::UNKNOWN
                                | grpc_code::DEADLINE_EXCEEDED
                        )
                    })
            }
        };
        picked.balancer.report(picked.index, failed);
        admitted.finish(failed);
        let response = answer?;
        Ok(match until {
            Some(until) => response.map(|body| body.ending_at(until)),
            None => response,
        })
    }
}

impl GrpcClient {
    /// A client for one call. With `grpc_compression = "gzip"` it compresses what it sends and
    /// asks for compressed answers; without, it asks for none. Advertising gzip by default
    /// made backends that compress whenever allowed (tonic's `send_compressed`, the demo's)
    /// deflate every answer for the gateway to inflate: more CPU on both sides than a LAN
    /// saves (`cargo bench --bench e2e`, the 1 KiB PATCH).
    fn grpc(&self, connection: Connection) -> Grpc<GrpcOnly<Connection>> {
        let grpc = Grpc::new(GrpcOnly(connection));
        if self.compress {
            grpc.send_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Gzip)
        } else {
            grpc
        }
    }
}

/// A passthrough call's hash inputs: its client's address and every header (it has no
/// operation context; the header a cluster hashes on is found among them).
fn passthrough_hash_inputs(request: &http::Request<axum::body::Body>, client_ip: Option<std::net::IpAddr>) -> Metadata {
    let mut headers = Metadata::default();
    for (name, value) in request.headers() {
        headers.push(name.as_str(), value.as_bytes());
    }
    let claims = request.extensions().get::<crate::operation::HashClaims>().map(|c| c.0.clone()).unwrap_or_default();
    Metadata::default().with_hash_inputs(crate::operation::HashInputs { client_ip, headers, claims })
}

fn copy_metadata(from: &Metadata, to: &mut MetadataMap) {
    for (name, value) in from.iter() {
        if name.ends_with("-bin") {
            if let Ok(key) = MetadataKey::from_bytes(name.as_bytes()) {
                to.append_bin(key, MetadataValue::from_bytes(value));
            }
        } else if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(name.as_bytes()), MetadataValue::try_from(value))
        {
            to.append(key, value);
        }
    }
}
