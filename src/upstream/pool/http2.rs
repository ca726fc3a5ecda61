//! One HTTP/2 client connection to a gRPC endpoint, written to through hyper's connection
//! handle directly. It opens on the first call and again on the first call after it closed;
//! calls that arrive while it opens wait for that one attempt (bounded by the connect
//! timeout), so a dead endpoint costs one connect per round of calls, not one per call.
//!
//! Why not tonic's `Channel`: it puts a `tower::buffer` worker task in front of every
//! connection, so each call is a message to that task and a reply back, plus a boxed service
//! stack (origin, user agent, timeout) around it; the passthrough path made 3.2x the heap
//! allocations of a bare hyper proxy (`cargo bench --bench allocations`). The origin and user
//! agent are set here in place; deadlines are the caller's (`tokio::time::timeout`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::uri::{Authority, PathAndQuery, Scheme};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tonic::body::Body;

/// What `user-agent` says on calls that carry none.
const USER_AGENT: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

type Sender = SendRequest<CallBody>;

/// What a call sends: a unary call's one message (`grpc_unary`), a body tonic encoded (a
/// stream, a health check), or a client's body spliced through as it came (the passthrough
/// way). Each is sent as it is, unboxed again.
pub enum CallBody {
    /// A unary call's framed message.
    Message(MessageBody),
    /// tonic's encoding of the call's messages.
    Encoded(Body),
    /// The client's request body.
    Spliced(axum::body::Body),
}

/// One framed message: its prefix and its bytes, as one buffer, or the prefix and then the
/// message's pieces (a large message is sent after its prefix as it is, never copied or
/// joined). Each frame is let go as it is handed on, so what was sent is not held until the
/// answer. The last non-empty one ends the stream.
pub struct MessageBody {
    head: bytes::Bytes,
    first: bytes::Bytes,
    /// The pieces after the first, for a message in pieces.
    rest: std::collections::VecDeque<bytes::Bytes>,
}

impl MessageBody {
    /// `head` then `message` (either may be empty).
    pub fn new(head: bytes::Bytes, message: impl Into<crate::wire_message::WireMessage>) -> Self {
        use crate::wire_message::WireMessage;
        let (first, rest) = match message.into() {
            WireMessage::One(bytes) => (bytes, std::collections::VecDeque::new()),
            WireMessage::Pieces(pieces, _) => {
                let mut pieces = pieces.iter().cloned();
                (pieces.next().unwrap_or_default(), pieces.collect())
            }
        };
        MessageBody { head, first, rest }
    }

    /// The frames still to send.
    #[cfg(test)]
    pub fn into_frames(mut self) -> Vec<bytes::Bytes> {
        std::iter::from_fn(|| self.take_frame()).collect()
    }

    /// The next non-empty frame, if any is left.
    fn take_frame(&mut self) -> Option<bytes::Bytes> {
        for frame in [&mut self.head, &mut self.first] {
            if !frame.is_empty() {
                return Some(std::mem::take(frame));
            }
        }
        while let Some(piece) = self.rest.pop_front() {
            if !piece.is_empty() {
                return Some(piece);
            }
        }
        None
    }

    fn left(&self) -> usize {
        self.head.len() + self.first.len() + self.rest.iter().map(bytes::Bytes::len).sum::<usize>()
    }
}

impl http_body::Body for MessageBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.get_mut().take_frame().map(|frame| Ok(http_body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.left() == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left() as u64)
    }
}

impl http_body::Body for CallBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.get_mut() {
            CallBody::Message(body) => std::pin::Pin::new(body).poll_frame(cx).map_err(Into::into),
            CallBody::Encoded(body) => std::pin::Pin::new(body).poll_frame(cx).map_err(Into::into),
            CallBody::Spliced(body) => std::pin::Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            CallBody::Message(body) => body.is_end_stream(),
            CallBody::Encoded(body) => body.is_end_stream(),
            CallBody::Spliced(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            CallBody::Message(body) => body.size_hint(),
            CallBody::Encoded(body) => body.size_hint(),
            CallBody::Spliced(body) => body.size_hint(),
        }
    }
}
type Opening = Shared<BoxFuture<'static, Result<Sender, Arc<ConnectError>>>>;

/// Why a connection could not be opened, with the address (its words go to the log).
#[derive(Debug, thiserror::Error)]
#[error("connecting to {address}: {failure}")]
pub struct ConnectError {
    /// `host:port`.
    pub address: String,
    /// What failed.
    #[source]
    pub failure: ConnectFailure,
}

/// The step of opening a connection that failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectFailure {
    /// TCP connect failed (refused, unreachable, no such name).
    #[error("TCP: {0}")]
    Tcp(std::io::Error),
    /// The connect timeout passed first.
    #[error("not open within {0:?}")]
    Timeout(Duration),
    /// The TLS handshake failed (an untrusted certificate, a name it does not carry, a client
    /// certificate the backend wanted).
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// TLS succeeded without the backend agreeing to HTTP/2 (ALPN `h2`), which gRPC needs.
    #[error("TLS: the backend did not agree to HTTP/2 (ALPN h2)")]
    NotHttp2,
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake: {0}")]
    Handshake(hyper::Error),
}

/// A call that failed on its way: the connection could not be opened, or hyper failed the
/// request (the connection broke, the stream was refused or reset).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection.
    #[error(transparent)]
    Connect(Arc<ConnectError>),
    /// The request failed on the connection.
    #[error("the call failed on its connection: {0}")]
    Request(#[source] hyper::Error),
}

/// TLS for an `https://` endpoint: the cluster's client configuration (ALPN `h2` set) and the
/// name the certificate must carry.
#[derive(Clone)]
pub struct Tls {
    /// The rustls client configuration.
    pub config: Arc<rustls::ClientConfig>,
    /// The name to verify.
    pub server_name: rustls_pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

/// How to open the connection: where to, as what origin, with which HTTP/2 settings.
#[derive(Debug)]
pub struct Dialer {
    /// `host:port` to connect to.
    pub address: String,
    /// `:scheme` of every call.
    pub scheme: Scheme,
    /// `:authority` of every call (the name an address was resolved from, when it was).
    pub authority: Authority,
    /// TLS, for `https://`.
    pub tls: Option<Tls>,
    /// The longest TCP connect, TLS and HTTP/2 handshakes may take together.
    pub connect_timeout: Duration,
    /// HTTP/2 PING interval (none: no pings).
    pub keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Whether to ping with no call in flight.
    pub keepalive_while_idle: bool,
    /// The HTTP/2 stream window advertised: how far a backend may send an answer ahead of the
    /// reader. hyper's default (2 MiB) let a backend push a whole large answer into the
    /// connection's buffers before the call had seen its headers and let its request go, so a
    /// 1 MiB REST PATCH held both at once (`cargo bench --bench request_memory`); the
    /// cluster's `connection.stream_window_bytes` (256 KiB by default).
    pub stream_window: u32,
}

/// One HTTP/2 connection (cheap to clone: clones share it).
#[derive(Debug, Clone)]
pub struct Connection {
    shared: Arc<SharedConnection>,
}

#[derive(Debug)]
struct SharedConnection {
    dialer: Arc<Dialer>,
    state: Mutex<State>,
}

enum State {
    Closed,
    Opening(Opening),
    Open(Sender),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Closed => "Closed",
            State::Opening(_) => "Opening",
            State::Open(_) => "Open",
        })
    }
}

impl Connection {
    /// A connection `dialer` opens on first use.
    pub fn lazy(dialer: Arc<Dialer>) -> Self {
        Connection { shared: Arc::new(SharedConnection { dialer, state: Mutex::new(State::Closed) }) }
    }

    /// Sends `request` (its URI's path is kept; scheme and authority become the endpoint's)
    /// and returns the answer's head with its body still streaming.
    pub async fn send(&self, request: http::Request<Body>) -> Result<http::Response<Body>, CallError> {
        Ok(self.send_body(request.map(CallBody::Encoded)).await?.map(Body::new))
    }

    /// `send` for a client's request spliced through, the answer's body left as hyper's own
    /// (the caller wraps it once, for its own client).
    pub async fn splice(
        &self,
        request: http::Request<axum::body::Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, CallError> {
        self.send_body(request.map(CallBody::Spliced)).await
    }

    /// Sends a call's request as it is (scheme and authority become the endpoint's) and returns
    /// the answer's head with its body still streaming.
    pub async fn send_body(
        &self,
        mut request: http::Request<CallBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, CallError> {
        self.address(&mut request);
        let mut sender = self.sender().await?;
        sender.send_request(request).await.map_err(CallError::Request)
    }

    /// Points `request` at this endpoint and names the gateway as its user agent if it has none.
    fn address(&self, request: &mut http::Request<CallBody>) {
        let dialer = &self.shared.dialer;
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(dialer.scheme.clone());
        parts.authority = Some(dialer.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        // Scheme, authority and path are all set: the parts always make a URI.
        *request.uri_mut() = http::Uri::from_parts(parts).unwrap_or_default();
        if !request.headers().contains_key(http::header::USER_AGENT) {
            request.headers_mut().insert(http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT));
        }
    }

    /// A handle on the open connection, opening it (or joining the attempt under way) first.
    async fn sender(&self) -> Result<Sender, CallError> {
        let opening = {
            let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &*state {
                State::Open(sender) if !sender.is_closed() => return Ok(sender.clone()),
                State::Opening(opening) => opening.clone(),
                State::Open(_) | State::Closed => {
                    let opening = dial(self.shared.dialer.clone()).boxed().shared();
                    *state = State::Opening(opening.clone());
                    opening
                }
            }
        };
        let opened = opening.clone().await;
        let mut state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        // The first waiter back records the outcome of its own attempt, never of a later one.
        if let State::Opening(current) = &*state
            && current.ptr_eq(&opening)
        {
            *state = match &opened {
                Ok(sender) => State::Open(sender.clone()),
                Err(_) => State::Closed,
            };
        }
        opened.map_err(CallError::Connect)
    }
}

/// Opens a connection: TCP (no Nagle), TLS when configured, then the HTTP/2 handshake, all
/// within the connect timeout. The connection's own task runs until it closes.
async fn dial(dialer: Arc<Dialer>) -> Result<Sender, Arc<ConnectError>> {
    let timeout = dialer.connect_timeout;
    let opened = match tokio::time::timeout(timeout, open(&dialer)).await {
        Ok(opened) => opened,
        Err(_) => Err(ConnectFailure::Timeout(timeout)),
    };
    opened.map_err(|failure| Arc::new(ConnectError { address: dialer.address.clone(), failure }))
}

async fn open(dialer: &Dialer) -> Result<Sender, ConnectFailure> {
    let tcp = tokio::net::TcpStream::connect(dialer.address.as_str()).await.map_err(ConnectFailure::Tcp)?;
    // Without it a small answer waits for the previous segment's ACK.
    let _ = tcp.set_nodelay(true);
    match &dialer.tls {
        None => handshake(dialer, tcp).await,
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let stream = connector.connect(tls.server_name.clone(), tcp).await.map_err(ConnectFailure::Tls)?;
            if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(ConnectFailure::NotHttp2);
            }
            handshake(dialer, stream).await
        }
    }
}

async fn handshake<T>(dialer: &Dialer, io: T) -> Result<Sender, ConnectFailure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(dialer.stream_window)
        .timer(TokioTimer::new())
        .keep_alive_interval(dialer.keepalive_interval)
        .keep_alive_timeout(dialer.keepalive_timeout)
        .keep_alive_while_idle(dialer.keepalive_while_idle);
    let (sender, connection) = builder.handshake(TokioIo::new(io)).await.map_err(ConnectFailure::Handshake)?;
    let address = dialer.address.clone();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%address, %error, "backend connection closed");
        }
    });
    Ok(sender)
}

impl tower::Service<http::Request<Body>> for Connection {
    type Response = http::Response<Body>;
    type Error = CallError;
    type Future = BoxFuture<'static, Result<http::Response<Body>, CallError>>;

    /// Always ready: the connection is opened (or found closed) by the call itself.
    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), CallError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let connection = self.clone();
        Box::pin(async move { connection.send(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What a test backend saw of each call: `:authority` and `user-agent`.
    type Seen = Arc<Mutex<Vec<(String, String)>>>;
    /// The tasks serving a test backend's connections (aborting one drops its socket).
    type Served = Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>;

    /// An HTTP/2 backend on loopback answering every call with an empty gRPC OK; it counts
    /// the connections it accepted and records what each call carried.
    async fn backend() -> (String, Arc<AtomicUsize>, Seen, Served) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let (accepted, seen, served) = (Arc::new(AtomicUsize::new(0)), Seen::default(), Served::default());
        let (count, record, tasks) = (accepted.clone(), seen.clone(), served.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let record = record.clone();
                let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let authority = request.uri().authority().map(ToString::to_string).unwrap_or_default();
                    let agent = request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
                    record.lock().expect("seen").push((authority, agent.to_owned()));
                    let mut answer = http::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                    answer.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
                    answer.headers_mut().insert("grpc-status", http::HeaderValue::from_static("0"));
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                let serve = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service);
                tasks.lock().expect("served").push(tokio::spawn(async move {
                    let _ = serve.await;
                }));
            }
        });
        (address, accepted, seen, served)
    }

    fn dialer(address: &str, authority: &'static str) -> Arc<Dialer> {
        Arc::new(Dialer {
            address: address.to_owned(),
            scheme: Scheme::HTTP,
            authority: Authority::from_static(authority),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            keepalive_while_idle: false,
            stream_window: 256 * 1024,
        })
    }

    fn call(agent: Option<&'static str>) -> http::Request<Body> {
        let mut request = http::Request::post("/catalog.v1.Catalog/GetBook").body(Body::empty()).expect("request");
        if let Some(agent) = agent {
            request.headers_mut().insert("user-agent", http::HeaderValue::from_static(agent));
        }
        request
    }

    #[tokio::test]
    async fn opens_on_first_use_once_for_concurrent_calls_and_names_the_endpoint() {
        let (address, accepted, seen, _) = backend().await;
        let connection = Connection::lazy(dialer(&address, "catalog.internal:50051"));
        tokio::task::yield_now().await;
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing is opened before a call");
        let calls = (0..8).map(|i| connection.send(call(if i % 2 == 0 { None } else { Some("grpc-go/1.60") })));
        for answer in futures_util::future::join_all(calls).await {
            assert_eq!(answer.expect("answer").headers()["grpc-status"], "0");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "eight concurrent calls share one connect");
        let seen = seen.lock().expect("seen").clone();
        assert_eq!(seen.len(), 8);
        for (authority, agent) in seen {
            assert_eq!(authority, "catalog.internal:50051");
            assert!(agent == USER_AGENT || agent == "grpc-go/1.60", "{agent}: a client's own is kept");
        }
    }

    #[tokio::test]
    async fn a_closed_connection_is_opened_again_by_the_next_call() {
        let (address, accepted, _, served) = backend().await;
        let connection = Connection::lazy(dialer(&address, "catalog"));
        connection.send(call(None)).await.expect("first");
        let sender = match &*connection.shared.state.lock().expect("state") {
            State::Open(sender) => sender.clone(),
            other => panic!("{other:?}"),
        };
        // The backend drops the connection.
        for task in served.lock().expect("served").drain(..) {
            task.abort();
        }
        for _ in 0..500 {
            if sender.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(sender.is_closed(), "the client side saw the connection close");
        connection.send(call(None)).await.expect("after close");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection was opened");
    }

    #[tokio::test]
    async fn an_endpoint_that_refuses_names_its_address_and_is_tried_again_later() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let connection = Connection::lazy(dialer(&address, "catalog"));
        let error = connection.send(call(None)).await.expect_err("refused");
        assert!(matches!(&error, CallError::Connect(e) if matches!(e.failure, ConnectFailure::Tcp(_))), "{error:?}");
        assert!(error.to_string().starts_with(&format!("connecting to {address}: TCP: ")), "{error}");
        assert!(matches!(*connection.shared.state.lock().expect("state"), State::Closed), "a failure is not kept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handshake_that_never_ends_fails_at_the_connect_timeout() {
        // A TCP listener that accepts and never answers: the TLS handshake waits for it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut dialer = Arc::into_inner(dialer(&address, "catalog")).expect("one owner");
        dialer.tls = Some(Tls {
            config: Arc::new(config),
            server_name: rustls_pki_types::ServerName::try_from("catalog").expect("name"),
        });
        dialer.connect_timeout = Duration::from_secs(3);
        let connection = Connection::lazy(Arc::new(dialer));
        let error = connection.send(call(None)).await.expect_err("timed out");
        assert!(
            matches!(&error, CallError::Connect(e) if matches!(e.failure, ConnectFailure::Timeout(t) if t == Duration::from_secs(3))),
            "{error:?}"
        );
        held.abort();
    }
}
