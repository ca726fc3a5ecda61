//! The `Gateway`: holds what is served — the current `Snapshot` and the upstream clients built
//! for it — behind one atomic pointer, plus readiness. `execute` is the stage order for one
//! operation (plan → execute; policy joins with its issue). A request takes the served state
//! once at its start and uses it to the end. Only `server` and `admin` swap it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::error::ErrorCode;
use crate::execute::{
    ExecuteError, FetchOutput, GraphqlOutput, OutputStream, SubscriptionEvents, execute_graphql_plan, execute_plan,
    execute_streaming_fetch,
};
use crate::operation::Operation;
use crate::plan::{PlanError, ServiceDirectory, plan_operation};
use crate::snapshot::{Snapshot, SnapshotSources};
use crate::upstream::Upstreams;

/// A snapshot with the upstream clients for its clusters.
#[derive(Debug)]
pub struct Served {
    /// Everything served.
    pub snapshot: Arc<Snapshot>,
    /// One client per cluster.
    pub upstreams: Upstreams,
    /// The gateway's telemetry (the same for every installed state).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
}

/// Why an operation failed before or during its fetches.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// It could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A fetch failed.
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

impl GatewayError {
    /// The backend's `grpc-status-details-bin` (an encoded google.rpc.Status), if it sent one.
    pub fn status_details(&self) -> Option<&bytes::Bytes> {
        match self {
            GatewayError::Execute(ExecuteError::Upstream(crate::upstream::UpstreamError::Status {
                details, ..
            })) if !details.is_empty() => Some(details),
            _ => None,
        }
    }

    /// The edge error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::Plan(e) => e.code(),
            GatewayError::Execute(e) => e.code(),
        }
    }
}

/// The running gateway's shared state.
pub struct Gateway {
    served: ArcSwap<Served>,
    sources: SnapshotSources,
    ready: AtomicBool,
    reload_lock: tokio::sync::Mutex<()>,
    /// True once the gateway is shutting down: long-lived sessions close (WebSockets with 1001).
    shutdown: tokio::sync::watch::Sender<bool>,
    /// True while it drains before shutting down: not ready, still serving, closing HTTP/1
    /// connections after each answer.
    draining: AtomicBool,
    /// Upgraded connections (WebSocket sessions), which the listeners' drain does not see.
    sessions: tokio_util::task::TaskTracker,
    /// Each newly installed state, for long-lived operations that check what a reload removed.
    installed: tokio::sync::watch::Sender<Arc<Served>>,
    /// Metrics and the access log, kept across snapshot swaps.
    telemetry: Arc<crate::telemetry::Telemetry>,
    /// The registry in Redis, when registrations are shared (`[sources] registry = "redis"`).
    shared_registry: std::sync::OnceLock<Arc<crate::admin::SharedRegistryFollow>>,
}

impl Gateway {
    /// A gateway serving `snapshot`, rebuilt from `sources` on reload. Not ready until the
    /// server says so. Must be called within a tokio runtime (clients are created here).
    pub fn new(snapshot: Snapshot, sources: SnapshotSources) -> Arc<Self> {
        let upstreams = Upstreams::build(snapshot.clusters.values(), None);
        let telemetry: Arc<crate::telemetry::Telemetry> = Arc::default();
        let served = Arc::new(Served { snapshot: Arc::new(snapshot), upstreams, telemetry: telemetry.clone() });
        Arc::new(Gateway {
            installed: tokio::sync::watch::channel(served.clone()).0,
            served: ArcSwap::new(served),
            sources,
            ready: AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
            shutdown: tokio::sync::watch::channel(false).0,
            draining: AtomicBool::new(false),
            sessions: tokio_util::task::TaskTracker::new(),
            telemetry,
            shared_registry: std::sync::OnceLock::new(),
        })
    }

    /// The shared registry this gateway follows, if registrations are shared.
    pub fn shared_registry(&self) -> Option<&Arc<crate::admin::SharedRegistryFollow>> {
        self.shared_registry.get()
    }

    /// Makes the gateway follow `shared` (once, before it serves).
    pub fn set_shared_registry(&self, shared: Arc<crate::admin::SharedRegistryFollow>) {
        let _ = self.shared_registry.set(shared);
    }

    /// Metrics and the access log.
    pub fn telemetry(&self) -> &Arc<crate::telemetry::Telemetry> {
        &self.telemetry
    }

    /// What is served now; hold it for the whole request.
    pub fn served(&self) -> Arc<Served> {
        self.served.load_full()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.served.load().snapshot.clone()
    }

    /// Where snapshots are rebuilt from.
    pub fn sources(&self) -> &SnapshotSources {
        &self.sources
    }

    /// Whether the gateway should receive traffic.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Turns readiness on (serving) or off (starting, draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Starts draining: not ready, and HTTP/1 connections close after their next answer.
    pub fn begin_drain(&self) {
        self.set_ready(false);
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the gateway is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Changes to true when the gateway starts shutting down.
    pub fn shutting_down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells long-lived sessions to close, and stops tracking new ones.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        self.sessions.close();
    }

    /// Upgraded connections, tracked so a shutdown can wait for them.
    pub(crate) fn sessions(&self) -> &tokio_util::task::TaskTracker {
        &self.sessions
    }

    /// Serialises rebuilds so generations stay in order.
    pub(crate) async fn lock_reloads(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reload_lock.lock().await
    }

    /// Installs a new, fully validated snapshot, keeping clients of unchanged clusters.
    pub(crate) fn swap(&self, mut snapshot: Snapshot) -> Arc<Snapshot> {
        let previous = self.served.load();
        // Unchanged auth keeps its verified-token cache and fetched JWKS keys.
        if previous.snapshot.auth.config() == snapshot.auth.config() {
            snapshot.auth = previous.snapshot.auth.clone();
        }
        // Counters survive a reload that keeps their store; cached answers one that keeps the
        // cache's size (rules are looked up per fetch, so changed TTLs apply to new entries).
        snapshot.limiter.adopt_store(&previous.snapshot.limiter);
        let same_store = |a: &Snapshot, b: &Snapshot| {
            a.cache.max_bytes() == b.cache.max_bytes()
                && a.config.cache.redis == b.config.cache.redis
                && (!a.config.cache.redis || a.config.redis == b.config.redis)
        };
        if same_store(&previous.snapshot, &snapshot) {
            snapshot.cache = previous.snapshot.cache.clone();
        }
        let upstreams = Upstreams::build(snapshot.clusters.values(), Some(&previous.upstreams));
        let snapshot = Arc::new(snapshot);
        let served = Arc::new(Served { snapshot: snapshot.clone(), upstreams, telemetry: self.telemetry.clone() });
        self.served.store(served.clone());
        self.installed.send_replace(served);
        snapshot
    }

    /// Changes whenever a new state is installed.
    pub fn installs(&self) -> tokio::sync::watch::Receiver<Arc<Served>> {
        self.installed.subscribe()
    }
}

impl ServiceDirectory for Snapshot {
    fn method_traits(&self, method: &prost_reflect::MethodDescriptor) -> crate::registry::MethodTraits {
        self.method_traits.get(method)
    }

    fn cluster_for(&self, full_name: &str) -> Option<&str> {
        self.services.get(full_name)?.as_deref()
    }

    fn has_cluster(&self, name: &str) -> bool {
        self.clusters.contains_key(name)
    }

    fn graphql(&self) -> &crate::schema::GraphqlSchema {
        &self.graphql
    }

    fn cache_for_method(&self, full_name: &str) -> Option<crate::cache::Rule> {
        self.cache_rules.methods.get(full_name).cloned()
    }

    fn cache_for_route(&self, index: usize) -> Option<crate::cache::Rule> {
        self.cache_rules.routes.get(&index).cloned()
    }

    fn cache_for_field(&self, type_name: &str, field: &str) -> Option<crate::cache::Rule> {
        if self.cache_rules.fields.is_empty() {
            return None;
        }
        self.cache_rules.fields.get(type_name, field).cloned()
    }

    fn cache_store(&self) -> Option<std::sync::Arc<crate::cache::Cache>> {
        (!self.cache_rules.is_empty()).then(|| self.cache.clone())
    }

    fn transform_for_method(&self, full_name: &str) -> Option<std::sync::Arc<crate::transform::Transform>> {
        self.transforms.methods.get(full_name).cloned()
    }

    fn transform_for_source(&self, name: &str) -> Option<std::sync::Arc<crate::transform::Transform>> {
        self.transforms.sources.get(name).cloned()
    }

    fn supergraph(&self) -> Option<&crate::schema::Supergraph> {
        self.supergraph.as_deref()
    }

    fn federation_plans(&self) -> Option<&crate::plan::federation::PlanCache> {
        Some(&self.federation_plans)
    }

    fn cache_invalidation(&self, full_name: &str) -> Option<crate::cache::Invalidation> {
        let tags = self.cache_rules.invalidations.get(full_name)?;
        Some(crate::cache::Invalidation { store: self.cache.clone(), tags: tags.clone() })
    }
}

/// Plans `operation` without running it (`switchyard plan`, benches): the same planning stage
/// the request path uses.
pub fn plan_only(snapshot: &Snapshot, operation: Operation) -> Result<crate::plan::Plan, PlanError> {
    plan_operation(operation, snapshot)
}

/// Runs one operation through the stages, in order.
pub async fn execute_operation(served: &Served, operation: Operation) -> Result<Vec<FetchOutput>, GatewayError> {
    let span = tracing::info_span!("operation", kind = ?operation.kind, calls = operation.calls.len());
    let plan = span.in_scope(|| plan_traced(operation, served))?;
    let mut outputs = Vec::with_capacity(plan.fetches.len());
    for result in tracing::Instrument::instrument(execute_plan(plan, &served.upstreams), span).await {
        outputs.push(result?);
    }
    Ok(outputs)
}

/// Plans `operation` in a `plan` span that records how many fetches it made.
fn plan_traced(operation: Operation, served: &Served) -> Result<crate::plan::Plan, PlanError> {
    let span = tracing::debug_span!("plan", fetches = tracing::field::Empty);
    let _entered = span.enter();
    let plan = plan_operation(operation, served.snapshot.as_ref())?;
    span.record("fetches", plan.fetches.len());
    Ok(plan)
}

/// Runs a GraphQL operation, whose root calls fail independently: one shaped value (with its
/// stitched fields) per call, in order; a plan that cannot be made fails every call with the
/// same error.
pub async fn execute_graphql_operation(
    served: &Served,
    operation: Operation,
) -> Vec<Result<GraphqlOutput, GatewayError>> {
    let calls = operation.calls.len();
    let span = tracing::info_span!("operation", kind = ?operation.kind, calls = operation.calls.len());
    match span.in_scope(|| plan_traced(operation, served)) {
        Ok(plan) => tracing::Instrument::instrument(
            execute_graphql_plan(plan, &served.upstreams, &served.snapshot.graphql),
            span,
        )
        .await
        .into_iter()
        .map(|r| r.map_err(GatewayError::from))
        .collect(),
        Err(error) => (0..calls).map(|_| Err(GatewayError::Plan(error.clone()))).collect(),
    }
}

/// Runs a query with `@defer`red fragments incrementally (see `execute::incremental`): the
/// parts arrive on the returned channel, the initial result first. `root_defers[i]` is the
/// fragment root call `i` was selected in.
pub fn execute_graphql_incremental(
    served: Arc<Served>,
    operation: Operation,
    root_defers: Vec<Option<usize>>,
    fragments: usize,
) -> Result<tokio::sync::mpsc::Receiver<crate::execute::incremental::IncrementalPart>, GatewayError> {
    let plan = plan_operation(operation, served.snapshot.as_ref())?;
    let (parts, received) = tokio::sync::mpsc::channel(fragments + 1);
    tokio::spawn(async move {
        crate::execute::incremental::execute_incremental(
            plan,
            root_defers,
            fragments,
            &served.upstreams,
            &served.snapshot.graphql,
            parts,
        )
        .await;
    });
    Ok(received)
}

/// A subscription's events, each a shaped value with its errors; an error ends the stream.
pub type GraphqlEvents = futures_util::stream::BoxStream<'static, Result<GraphqlOutput, GatewayError>>;

/// Opens a GraphQL subscription (one server-streaming root call); resolves once the backend has
/// answered with headers. The stream holds `served`, so the subscription keeps the snapshot that
/// admitted it across reloads; `installs` tells it of each reload, and one that removes its
/// field or its backend ends it with an error event saying so. Stitched calls get
/// `stitch_timeout` each.
pub async fn execute_graphql_subscription(
    served: Arc<Served>,
    installs: tokio::sync::watch::Receiver<Arc<Served>>,
    operation: Operation,
    stitch_timeout: Option<std::time::Duration>,
) -> Result<GraphqlEvents, GatewayError> {
    use futures_util::StreamExt;
    let plan = plan_operation(operation, served.snapshot.as_ref())?;
    let fetch = plan.fetches.into_iter().next().ok_or_else(|| {
        GatewayError::Execute(ExecuteError::Shape("a subscription has exactly one root field".into()))
    })?;
    let target = SubscribedTo::of(&fetch);
    let events = SubscriptionEvents::open(fetch, &served.upstreams, &served.snapshot.graphql, stitch_timeout).await?;
    let state = Some((events, served, installs));
    let stream = futures_util::stream::unfold(state, move |state| {
        let target = target.clone();
        async move {
            let (mut events, served, mut installs) = state?;
            loop {
                tokio::select! {
                    burst = events.next_burst(&served.upstreams, &served.snapshot.graphql) => {
                        let burst = burst?;
                        let burst: Vec<_> = burst.into_iter().map(|e| e.map_err(GatewayError::from)).collect();
                        return Some((futures_util::stream::iter(burst), Some((events, served, installs))));
                    }
                    changed = installs.changed() => {
                        if changed.is_err() {
                            continue;
                        }
                        let installed = installs.borrow_and_update().clone();
                        if let Err(why) = target.still_served(&installed) {
                            let removed = GraphqlOutput {
                                value: crate::execute::OutputValue::Json(serde_json::Value::Null),
                                errors: vec![crate::execute::FieldError { path: Vec::new(), message: why, code: ErrorCode::Unavailable }],
                                complete: true,
                            };
                            return Some((futures_util::stream::iter(vec![Ok(removed)]), None));
                        }
                    }
                }
            }
        }
    })
    .flatten();
    Ok(Box::pin(stream))
}

/// What a subscription reads from, to check after a reload that it is still served.
#[derive(Clone)]
enum SubscribedTo {
    /// A server-streaming method.
    Method(prost_reflect::MethodDescriptor),
    /// A GraphQL source's Subscription field.
    Source { source: String, field: String },
    /// Nothing a reload can remove.
    Other,
}

impl SubscribedTo {
    fn of(fetch: &crate::plan::Fetch) -> Self {
        match &fetch.call {
            crate::plan::FetchCall::Grpc { method, .. } => SubscribedTo::Method(method.clone()),
            crate::plan::FetchCall::Bound { binding, .. } => match &binding.call {
                crate::schema::BoundCall::Graphql(call) => {
                    SubscribedTo::Source { source: call.source.clone(), field: call.field.clone() }
                }
                _ => SubscribedTo::Other,
            },
            crate::plan::FetchCall::Subgraph(_) => SubscribedTo::Other,
        }
    }

    /// Whether `served` still has a Subscription field reading this and a backend serving it.
    fn still_served(&self, served: &Served) -> Result<(), String> {
        use crate::schema::{BoundCall, Resolver, RootKind};
        let snapshot = &served.snapshot;
        let fields = snapshot.graphql.roots.get(&RootKind::Subscription).map(Vec::as_slice).unwrap_or_default();
        match self {
            SubscribedTo::Method(method) => {
                let present = fields
                    .iter()
                    .any(|f| matches!(&f.resolver, Resolver::Method(m) if m.full_name() == method.full_name()));
                if !present {
                    return Err(format!(
                        "a reload removed the subscription field for {}; the subscription has ended",
                        method.full_name()
                    ));
                }
                let service = method.parent_service().full_name();
                match snapshot.cluster_for_service(service) {
                    Some(_) => Ok(()),
                    None => Err(format!("a reload left no backend serving {service}; the subscription has ended")),
                }
            }
            SubscribedTo::Source { source, field } => {
                let present = fields.iter().any(|f| {
                    matches!(&f.resolver, Resolver::Bound(b) if matches!(&b.call, BoundCall::Graphql(c) if &c.source == source && &c.field == field))
                });
                if !present {
                    return Err(format!(
                        "a reload removed the subscription field {field} of the {source} source; the subscription has ended"
                    ));
                }
                match snapshot.clusters.get(source) {
                    Some(_) => Ok(()),
                    None => {
                        Err(format!("a reload left no backend serving the {source} source; the subscription has ended"))
                    }
                }
            }
            SubscribedTo::Other => Ok(()),
        }
    }
}

/// Runs a one-call streaming operation (server-, client- or bidi-streaming); resolves when the
/// backend has answered with headers.
pub async fn execute_streaming_operation(
    served: &Served,
    operation: Operation,
) -> Result<(http::HeaderMap, OutputStream), GatewayError> {
    let plan = plan_operation(operation, served.snapshot.as_ref())?;
    let fetch = plan.fetches.into_iter().next().ok_or_else(|| {
        GatewayError::Execute(ExecuteError::Shape("a streaming operation has exactly one call".into()))
    })?;
    Ok(execute_streaming_fetch(fetch, &served.upstreams).await?)
}
