//! The demo's gRPC backend: a real tonic server on a loopback port serving catalog.v1.Catalog
//! and catalog.v2.Catalog (over the same books) through the dynamic codec, plus grpc.health.v1
//! and server reflection (v1 and v1alpha).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::BroadcastStream;
use tonic::codec::CompressionEncoding;
use tonic::server::Grpc;
use tonic::{Request, Response, Status, Streaming};

use super::catalog::{Catalog, event_matches};
use super::{DEMO_SERVICE, DEMO_V2_SERVICE, demo_registration, demo_v2_registration};
use crate::registry::{Registry, RegistryError, merge_registrations};
use crate::server::{ListenerSettings, serve_listener};
use crate::upstream::grpc_codec::DynamicCodec;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

type MessageStream = Pin<Box<dyn Stream<Item = Result<DynamicMessage, Status>> + Send>>;
type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A running demo backend; `shutdown` stops it (in-flight calls get a short grace).
pub struct DemoBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    calls: CallCounts,
    seen: SeenHeaders,
    latency: Latency,
    catalog: Arc<Catalog>,
    health: tonic_health::server::HealthReporter,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Calls received, by method name (`GetBook` for catalog.v1, `catalog.v2.Catalog/GetBook` for
/// the other service).
type CallCounts = Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// The request headers of the latest call of each method (what the backend was told).
type SeenHeaders = Arc<std::sync::Mutex<std::collections::HashMap<String, http::HeaderMap>>>;

/// Time added before each call is answered, in microseconds (a slow replica).
type Latency = Arc<std::sync::atomic::AtomicU64>;

impl DemoBackend {
    /// The backend URL for `--backend catalog.v1=URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many calls of `method` the backend has received: `ListBooks` of catalog.v1, or
    /// `catalog.v2.Catalog/ListBooks`.
    pub fn calls(&self, method: &str) -> usize {
        self.calls.lock().map(|c| c.get(method).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// The request headers (gRPC metadata) of the latest call of `method`, if there was one.
    pub fn last_headers(&self, method: &str) -> Option<http::HeaderMap> {
        self.seen.lock().ok()?.get(method).cloned()
    }

    /// Makes every call wait `latency` before it is answered, as an overloaded replica would
    /// (zero: answer at once).
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.store(micros, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reports the catalog service SERVING or NOT_SERVING on grpc.health.v1.
    pub async fn set_serving(&self, serving: bool) {
        let status =
            if serving { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
        self.health.set_service_status(DEMO_SERVICE, status).await;
        self.health.set_service_status(DEMO_V2_SERVICE, status).await;
        self.health.set_service_status("", status).await;
    }

    /// How many WatchBooks streams are open now (a cancelled one is gone once the backend has
    /// seen the cancel).
    pub fn watchers(&self) -> usize {
        self.catalog.watchers()
    }

    /// Stops serving: open calls get a short grace period, then connections are closed, so a
    /// client that holds a connection open cannot hold up the demo's exit.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the demo backend on `addr` (use port 0 for any free port).
pub async fn start_demo_backend(addr: SocketAddr) -> Result<DemoBackend, DemoError> {
    start_replica(addr, None).await
}

/// Starts `count` replicas of the demo backend on loopback ports, sharing one catalog (as
/// replicas of a service share their database), each counting its own calls.
pub async fn start_demo_backend_replicas(count: usize) -> Result<Vec<DemoBackend>, DemoError> {
    let mut replicas: Vec<DemoBackend> = Vec::with_capacity(count);
    for _ in 0..count {
        let shared = replicas.first().map(|first| first.catalog.clone());
        replicas.push(start_replica(SocketAddr::from(([127, 0, 0, 1], 0)), shared).await?);
    }
    Ok(replicas)
}

/// Another replica of `of`'s catalog (sharing its books and events) on `addr`, as a replica
/// restarted on its port would be.
pub async fn start_demo_backend_replica(addr: SocketAddr, of: &DemoBackend) -> Result<DemoBackend, DemoError> {
    start_replica(addr, Some(of.catalog.clone())).await
}

async fn start_replica(addr: SocketAddr, shared: Option<Arc<Catalog>>) -> Result<DemoBackend, DemoError> {
    let registry: Registry = merge_registrations(vec![demo_registration()?, demo_v2_registration()?])?;
    // Reflection answers with every file, built-ins included, so clients can resolve imports.
    let encoded = registry.pool.encode_to_vec();
    let mut catalog = CatalogService::new(registry.pool.clone());
    if let Some(shared) = shared {
        catalog.catalog = shared;
    }
    let calls = catalog.calls.clone();
    let seen = catalog.seen.clone();
    let latency = catalog.latency.clone();
    let catalog_state = catalog.catalog.clone();

    let listener = TcpListener::bind(addr).await.map_err(|e| DemoError::Bind(addr, e))?;
    let addr = listener.local_addr().map_err(|e| DemoError::Bind(addr, e))?;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status(DEMO_SERVICE, tonic_health::ServingStatus::Serving).await;
    reporter.set_service_status(DEMO_V2_SERVICE, tonic_health::ServingStatus::Serving).await;
    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let reflection_v1 = reflection_builder(&encoded).build_v1().map_err(|e| DemoError::Reflection(e.to_string()))?;
    let reflection_v1alpha =
        reflection_builder(&encoded).build_v1alpha().map_err(|e| DemoError::Reflection(e.to_string()))?;

    let router = tonic::service::Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        .route_service(&format!("/{DEMO_SERVICE}/{{method}}"), catalog.clone())
        .route_service(&format!("/{DEMO_V2_SERVICE}/{{method}}"), catalog);

    // Served by the gateway's own accept loop: unlike tonic's server, it closes connections
    // that are still busy when the shutdown grace ends, as a dying backend would.
    let settings = demo_listener_settings();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve_listener(listener, router, settings, stopped).await;
    });
    Ok(DemoBackend { addr, calls, seen, latency, catalog: catalog_state, health: reporter, stop, task })
}

/// How the demo's backends listen: like a real service, with a short shutdown grace.
pub(super) fn demo_listener_settings() -> ListenerSettings {
    ListenerSettings {
        max_connections: 1024,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(300),
        keepalive_interval: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(20),
        shutdown_timeout: SHUTDOWN_GRACE,
        max_header_bytes: 64 * 1024,
        max_headers: 100,
    }
}

fn reflection_builder(full_set: &[u8]) -> tonic_reflection::server::Builder<'_> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(full_set)
        .with_service_name(DEMO_SERVICE)
        .with_service_name(DEMO_V2_SERVICE)
        .include_reflection_service(true)
}

/// Why the demo backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded protos did not compile or merge.
    #[error("demo descriptors: {0}")]
    Registry(#[from] RegistryError),
    /// The port could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The reflection service could not be built.
    #[error("demo reflection service: {0}")]
    Reflection(String),
}

/// catalog.v1.Catalog and catalog.v2.Catalog served from dynamic messages.
#[derive(Clone)]
struct CatalogService {
    catalog: Arc<Catalog>,
    pool: DescriptorPool,
    calls: CallCounts,
    seen: SeenHeaders,
    latency: Latency,
}

impl CatalogService {
    fn new(pool: DescriptorPool) -> Self {
        let catalog = Arc::new(Catalog::new(pool.clone()));
        CatalogService {
            catalog,
            pool,
            calls: CallCounts::default(),
            seen: SeenHeaders::default(),
            latency: Latency::default(),
        }
    }
}

impl tower::Service<http::Request<axum::body::Body>> for CatalogService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let request = request.map(tonic::body::Body::new);
        let (service_name, method_name) = {
            let mut segments = request.uri().path().trim_start_matches('/').splitn(2, '/');
            (segments.next().unwrap_or_default().to_owned(), segments.next().unwrap_or_default().to_owned())
        };
        let method =
            self.pool.get_service_by_name(&service_name).and_then(|s| s.methods().find(|m| m.name() == method_name));
        let Some(method) = method else {
            let status = Status::unimplemented(format!("{service_name}/{method_name} is not a method"));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let key = if service_name == DEMO_SERVICE { method_name } else { format!("{service_name}/{method_name}") };
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(key.clone(), request.headers().clone());
        }
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(key).or_default() += 1;
        }
        let catalog = self.catalog.clone();
        let latency = Duration::from_micros(self.latency.load(std::sync::atomic::Ordering::Relaxed));
        Box::pin(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            Ok(dispatch(catalog, method, request).await)
        })
    }
}

async fn dispatch(
    catalog: Arc<Catalog>,
    method: MethodDescriptor,
    request: http::Request<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let mut grpc = Grpc::new(DynamicCodec::new(method.input()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    match method.name() {
        "WatchBooks" => {
            let svc = tower::service_fn(move |req: Request<DynamicMessage>| {
                let catalog = catalog.clone();
                async move {
                    let (prefix, events) = catalog.watch(req.get_ref())?;
                    let stream = BroadcastStream::new(events).filter_map(move |event| {
                        let item = match event {
                            Ok(event) if event_matches(&event, &prefix) => Some(Ok(event)),
                            Ok(_) => None,
                            Err(_) => Some(Err(Status::data_loss("the watcher fell behind; events were dropped"))),
                        };
                        std::future::ready(item)
                    });
                    Ok::<_, Status>(Response::new(Box::pin(stream) as MessageStream))
                }
            });
            grpc.server_streaming(svc, request).await
        }
        "ExportBooks" => {
            let svc = tower::service_fn(move |req: Request<DynamicMessage>| {
                let catalog = catalog.clone();
                async move {
                    let chunks = catalog.export(req.get_ref())?;
                    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok));
                    Ok::<_, Status>(Response::new(Box::pin(stream) as MessageStream))
                }
            });
            grpc.server_streaming(svc, request).await
        }
        "ImportBooks" => {
            let svc = tower::service_fn(move |req: Request<Streaming<DynamicMessage>>| {
                let catalog = catalog.clone();
                async move {
                    let mut stream = req.into_inner();
                    let mut names = Vec::new();
                    while let Some(item) = stream.message().await? {
                        let book = catalog.create_book(&item)?;
                        names.push(super::fields::string(&book, "name"));
                    }
                    Ok::<_, Status>(Response::new(catalog.import_response(names)))
                }
            });
            grpc.client_streaming(svc, request).await
        }
        "DiscussBook" => {
            let svc = tower::service_fn(move |req: Request<Streaming<DynamicMessage>>| {
                let catalog = catalog.clone();
                async move {
                    let replies = req.into_inner().map(move |item| item.and_then(|m| catalog.answer_chat(&m)));
                    Ok::<_, Status>(Response::new(Box::pin(replies) as MessageStream))
                }
            });
            grpc.streaming(svc, request).await
        }
        _ => {
            let svc = tower::service_fn(move |req: Request<DynamicMessage>| {
                let catalog = catalog.clone();
                let method = method.clone();
                async move {
                    let body = req.get_ref();
                    let v2 = method.parent_service().full_name() == DEMO_V2_SERVICE;
                    let answer = match method.name() {
                        name if v2 => super::catalog_v2::answer(&catalog, name, body),
                        "GetBook" => catalog.get_book(body),
                        "ListBooks" => catalog.list_books(body),
                        "CreateBook" => catalog.create_book(body),
                        "UpdateBook" => catalog.update_book(body),
                        "DeleteBook" => catalog.delete_book(body),
                        "UploadCover" => catalog.upload_cover(body),
                        "GetCover" => catalog.get_cover(body),
                        other => Err(Status::unimplemented(format!("{other} is not implemented by the demo"))),
                    };
                    let echo = req.metadata().get("x-request-id").cloned();
                    let encoding = req.metadata().get("grpc-encoding").cloned();
                    let accepted = req.metadata().get("grpc-accept-encoding").cloned();
                    answer.map(|message| {
                        let mut response = Response::new(message);
                        response
                            .metadata_mut()
                            .insert("served-by", tonic::metadata::MetadataValue::from_static("catalog-demo"));
                        if let Some(id) = echo {
                            response.metadata_mut().insert("x-request-id", id);
                        }
                        if let Some(encoding) = encoding {
                            response.metadata_mut().insert("request-encoding", encoding);
                        }
                        if let Some(accepted) = accepted {
                            response.metadata_mut().insert("request-accept-encoding", accepted);
                        }
                        response
                    })
                }
            });
            grpc.unary(svc, request).await
        }
    }
}
