//! Listeners and lifecycle: our own accept loop on hyper-util (HTTP/1.1 and h2c on one port),
//! with a timer installed so header-read, keep-alive and idle timeouts really fire (axum::serve
//! installs none), a connection cap, and graceful shutdown: readiness off, stop accepting, drain
//! in-flight requests within a deadline, then close what is left. This module owns sockets and
//! the snapshot's first installation; it knows nothing of protocols beyond HTTP (which requests
//! take `Routes::grpc` is ingress's `is_native_grpc`).

pub mod http2_guard;
pub mod tls;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::admin::admin_router;
use crate::config::ListenerConfig;
use crate::gateway::Gateway;
use crate::ingress::gateway_router;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not bind its address.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
}

/// Connection limits and timeouts of one listener.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Most open connections.
    pub max_connections: usize,
    /// Time to receive a request head (and, on HTTP/1.1, to start the next one).
    pub header_read_timeout: Duration,
    /// Close a connection with nothing in flight and no bytes moving for this long.
    pub idle_timeout: Duration,
    /// HTTP/2 PING interval.
    pub keepalive_interval: Duration,
    /// HTTP/2 PING answer deadline.
    pub keepalive_timeout: Duration,
    /// Deadline for in-flight requests at shutdown.
    pub shutdown_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Most header fields in an HTTP/1.1 request.
    pub max_headers: usize,
}

impl From<&ListenerConfig> for ListenerSettings {
    fn from(config: &ListenerConfig) -> Self {
        ListenerSettings {
            max_connections: config.max_connections as usize,
            header_read_timeout: config.header_read_timeout.get(),
            idle_timeout: config.idle_timeout.get(),
            keepalive_interval: config.keepalive_interval.get(),
            keepalive_timeout: config.keepalive_timeout.get(),
            shutdown_timeout: config.shutdown_timeout.get(),
            max_header_bytes: config.max_header_bytes as usize,
            max_headers: config.max_headers as usize,
        }
    }
}

/// What a listener serves: the way every request takes, and optionally a shorter one that
/// native gRPC requests (`application/grpc`, not gRPC-Web) take instead, past routes and layers
/// they never use. `B` is their answers' body, whatever body type the ways make (so it need not
/// be boxed again into axum's).
pub struct Routes<B = Body> {
    /// Every request's way (but native gRPC's, when there is one).
    pub main: Way<B>,
    /// Native gRPC requests' way, when the listener has one (no router: axum's routing inserts
    /// URL parameters and the matched path into every request it routes).
    pub grpc: Option<Way<B>>,
}

/// A way through a listener: a function from request to answer, handed the client's address
/// (a tower service would box again at each layer; a plain router finds the address as a
/// `ClientAddr` extension).
pub type Way<B = Body> = Arc<
    dyn Fn(http::Request<Body>, SocketAddr) -> futures_util::future::BoxFuture<'static, http::Response<B>>
        + Send
        + Sync,
>;

impl<B> Clone for Routes<B> {
    fn clone(&self) -> Self {
        Routes { main: self.main.clone(), grpc: self.grpc.clone() }
    }
}

impl From<Router> for Routes<Body> {
    /// Every request through `router`, the client's address as a `ClientAddr` extension.
    fn from(router: Router) -> Self {
        let main: Way = Arc::new(move |mut request: http::Request<Body>, peer| {
            request.extensions_mut().insert(ClientAddr(peer));
            let answer = router.clone().oneshot(request);
            Box::pin(async move { answer.await.unwrap_or_else(|never| match never {}) })
        });
        Routes { main, grpc: None }
    }
}

impl<B> Routes<B> {
    /// The way `request` takes.
    fn way_for(&self, request: &http::Request<Incoming>) -> &Way<B> {
        match &self.grpc {
            Some(grpc) if crate::ingress::is_native_grpc(request.headers()) => grpc,
            _ => &self.main,
        }
    }
}

/// What a listener's answers' bodies may be.
pub trait AnswerBody: http_body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Send + Unpin + 'static {}

impl<B> AnswerBody for B where B: http_body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Send + Unpin + 'static {}

/// A running gateway: both listeners bound, serving until `shutdown`.
pub struct RunningServer {
    /// The gateway listener's address.
    pub gateway_addr: SocketAddr,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
    gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    listeners: Vec<JoinHandle<DrainReport>>,
}

/// What a drain left behind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections still open at the deadline, closed forcibly.
    pub forced: usize,
}

/// Binds both listeners from the current snapshot's config and starts serving; the gateway is
/// ready when this returns.
pub async fn start_server(gateway: Arc<Gateway>) -> Result<RunningServer, ServerError> {
    let snapshot = gateway.snapshot();
    let config = &snapshot.config;
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, what, source })
    };
    let gateway_listener = bind(config.listener.listen, "gateway listener").await?;
    let admin_listener = bind(config.admin.listen, "admin listener").await?;
    let local = |l: &TcpListener, addr: SocketAddr, what| {
        l.local_addr().map_err(|source| ServerError::Bind { addr, what, source })
    };
    let gateway_addr = local(&gateway_listener, config.listener.listen, "gateway listener")?;
    let admin_addr = local(&admin_listener, config.admin.listen, "admin listener")?;

    let settings = ListenerSettings::from(&config.listener);
    let admin_settings = ListenerSettings { max_connections: 256, ..settings.clone() };
    let (stop, stopped) = watch::channel(false);
    let listeners = vec![
        tokio::spawn(serve_listener_tls(
            gateway_listener,
            gateway_router(gateway.clone()),
            settings,
            stopped.clone(),
            Some(snapshot_tls(gateway.clone())),
        )),
        tokio::spawn(serve_listener(admin_listener, admin_router(gateway.clone()), admin_settings, stopped)),
    ];
    gateway.set_ready(true);
    tracing::info!(%gateway_addr, %admin_addr, generation = snapshot.generation, "serving");
    Ok(RunningServer { gateway_addr, admin_addr, gateway, stop, listeners })
}

impl RunningServer {
    /// The gateway it serves.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }
}

impl RunningServer {
    /// Graceful shutdown: readiness off, stop accepting, drain within the configured deadline.
    pub async fn shutdown(self) -> DrainReport {
        self.gateway.set_ready(false);
        // WebSocket sessions close with 1001 at once, so their clients reconnect elsewhere.
        self.gateway.begin_shutdown();
        let _ = self.stop.send(true);
        let mut report = DrainReport::default();
        for listener in self.listeners {
            if let Ok(drained) = listener.await {
                report.forced += drained.forced;
            }
        }
        let deadline = self.gateway.snapshot().config.listener.shutdown_timeout.get();
        if tokio::time::timeout(deadline, self.gateway.sessions().wait()).await.is_err() {
            report.forced += self.gateway.sessions().len();
        }
        report
    }
}

/// Where a listener finds its TLS settings for each new connection (None: plain).
pub type TlsSource = Arc<dyn Fn() -> Option<tls::ServerTls> + Send + Sync>;

/// The gateway listener's TLS: the current snapshot's, so a reload renews it for new connections.
fn snapshot_tls(gateway: Arc<Gateway>) -> TlsSource {
    Arc::new(move || gateway.snapshot().tls.clone())
}

/// Accepts plain connections until `stop`, then drains them.
pub async fn serve_listener(
    listener: TcpListener,
    router: impl Into<Routes>,
    settings: ListenerSettings,
    stop: watch::Receiver<bool>,
) -> DrainReport {
    serve_listener_tls(listener, router, settings, stop, None).await
}

/// Accepts connections until `stop`, then drains them; with `tls`, each connection's TLS
/// handshake must finish within the header-read timeout.
pub async fn serve_listener_tls<B: AnswerBody>(
    listener: TcpListener,
    router: impl Into<Routes<B>>,
    settings: ListenerSettings,
    mut stop: watch::Receiver<bool>,
    tls: Option<TlsSource>,
) -> DrainReport {
    let router: Routes<B> = router.into();
    let builder = Arc::new(connection_builder(&settings));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Resets and fd exhaustion must not end the accept loop.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, limit = settings.max_connections, "connection refused: at the connection cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server_tls = tls.as_ref().and_then(|source| source());
        let (builder, router, watcher) = (builder.clone(), router.clone(), graceful.watcher());
        let (idle_timeout, handshake_timeout) = (settings.idle_timeout, settings.header_read_timeout);
        connections.spawn(async move {
            let transport = match server_tls {
                None => tls::Transport::Plain(stream),
                Some(config) => {
                    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                    match tokio::time::timeout(handshake_timeout, accept).await {
                        Ok(Ok(stream)) => tls::Transport::Tls(Box::new(stream)),
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return drop(permit);
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not finished in time");
                            return drop(permit);
                        }
                    }
                }
            };
            let activity = Arc::new(Activity::new());
            let service = connection_service(router, activity.clone(), peer, transport.client_cert());
            let io = TokioIo::new(TrackedIo {
                inner: transport,
                activity: activity.clone(),
                frames: http2_guard::FrameGuard::new(),
                peer,
            });
            let connection = watcher.watch(builder.serve_connection_with_upgrades(io, service).into_owned());
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                }
                _ = activity.idle_for(idle_timeout) => tracing::debug!(%peer, "idle connection closed"),
            }
            drop(permit);
        });
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(open, deadline = ?settings.shutdown_timeout, "draining connections");
    }
    match tokio::time::timeout(settings.shutdown_timeout, graceful.shutdown()).await {
        Ok(()) => DrainReport::default(),
        Err(_) => {
            let forced = connections.len();
            tracing::warn!(forced, "shutdown deadline passed; closing the remaining connections");
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            DrainReport { forced }
        }
    }
}

/// The number of request headers hyper's HTTP/1 server takes when not told otherwise.
const HYPER_MAX_HEADERS: usize = 100;

fn connection_builder(settings: &ListenerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(settings.max_header_bytes.max(8192));
    // hyper's own limit is 100 headers, kept in uninitialised stack arrays; a limit set through
    // `max_headers` is honoured with arrays filled element by element on every parse (about
    // 1,700 instructions per request under callgrind), so it is set only when it differs.
    if settings.max_headers != HYPER_MAX_HEADERS {
        builder.http1().max_headers(settings.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// The router as a hyper service that counts requests in flight until their bodies end.
struct ConnectionService<B> {
    router: Routes<B>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    /// `X-Forwarded-Client-Cert` for the connection's verified client certificate.
    client_cert: Option<http::HeaderValue>,
}

fn connection_service<B>(
    router: Routes<B>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    client_cert: Option<http::HeaderValue>,
) -> ConnectionService<B> {
    ConnectionService { router, activity, peer, client_cert }
}

/// The client's address, as a request extension (the operation's `RequestContext::client`).
/// The native gRPC way is handed it as an argument instead: inserting the first extension
/// allocates the map, its table and the boxed value.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl<B: AnswerBody> hyper::service::Service<http::Request<Incoming>> for ConnectionService<B> {
    type Response = http::Response<GuardedBody<B>>;
    type Error = Infallible;
    type Future = Guarded<B>;

    fn call(&self, request: http::Request<Incoming>) -> Guarded<B> {
        let guard = InFlight::begin(self.activity.clone());
        let way = self.router.way_for(&request);
        let mut request = request;
        // Only the listener speaks for a client certificate.
        request.headers_mut().remove(tls::CLIENT_CERT_HEADER);
        if let Some(cert) = &self.client_cert {
            request.headers_mut().insert(tls::CLIENT_CERT_HEADER, cert.clone());
        }
        Guarded { answer: way(request.map(Body::new), self.peer), guard: Some(guard) }
    }
}

/// An answer on its way, its request counted in flight (the count moves into the body).
struct Guarded<B> {
    answer: futures_util::future::BoxFuture<'static, http::Response<B>>,
    guard: Option<InFlight>,
}

impl<B> Future for Guarded<B> {
    type Output = Result<http::Response<GuardedBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let response = std::task::ready!(this.answer.as_mut().poll(cx));
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| GuardedBody { inner, _guard: guard })))
    }
}

/// Per-connection activity: bytes moved (as a time) and requests in flight.
struct Activity {
    base: Instant,
    last_millis: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity { base: Instant::now(), last_millis: AtomicU64::new(0), in_flight: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }

    /// Resolves once nothing is in flight and no byte moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = self.last() + idle;
            tokio::time::sleep_until(deadline).await;
            if self.in_flight.load(Ordering::Acquire) == 0 && self.last() + idle <= Instant::now() {
                return;
            }
            if self.in_flight.load(Ordering::Acquire) > 0 {
                self.touch();
            }
        }
    }
}

/// Counts one request in flight until dropped (with the response body).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A response body that keeps its request counted in flight until it is finished or dropped.
struct GuardedBody<B> {
    inner: B,
    _guard: Option<InFlight>,
}

impl<B: AnswerBody> http_body::Body for GuardedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that records when bytes last moved.
struct TrackedIo {
    inner: tls::Transport,
    activity: Arc<Activity>,
    frames: http2_guard::FrameGuard,
    peer: SocketAddr,
}

impl AsyncRead for TrackedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
            if let Err(abuse) = this.frames.received(&buf.filled()[before..]) {
                tracing::warn!(peer = %this.peer, %abuse, "connection closed");
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, abuse)));
            }
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            this.activity.touch();
            this.frames.sent(&data[..n]);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            this.activity.touch();
            let mut left = n;
            for buf in bufs {
                let take = left.min(buf.len());
                this.frames.sent(&buf[..take]);
                left -= take;
                if left == 0 {
                    break;
                }
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
