//! A cluster's current endpoints. `Pool` holds the members a call may be sent to — what the
//! balancer sees of each (`Member`) beside how calls reach it (a `Handle`: HTTP/2 connections
//! for gRPC, a base URL and client for REST) — and swaps in a new set atomically when DNS
//! re-resolution finds other addresses. A call keeps the set it picked from until it ends, so a
//! change never drops calls in flight; an endpoint in both sets keeps its connections, load,
//! health and ejection state.

use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;

use super::{Balancer, Member};
use crate::config::{Balancing, HealthCheckConfig, OutlierConfig};
use crate::upstream::UpstreamError;

/// How calls reach one endpoint, and how it is health-checked.
pub trait Handle: Send + Sync + 'static {
    /// One active health check: whether the endpoint serves.
    fn check<'a>(&'a self, config: &'a HealthCheckConfig) -> BoxFuture<'a, bool>;
}

/// One endpoint to reach: the URI to connect to (an address, once resolved), the DNS name it
/// was resolved from (for TLS and the Host header), its weight and priority group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where calls go.
    pub uri: http::Uri,
    /// The configured URL's host, when `uri` is one of its resolved addresses.
    pub resolved_from: Option<String>,
    /// Its weight.
    pub weight: u32,
    /// Its priority group.
    pub priority: u32,
}

impl Target {
    /// The balancer's name for it (consistent hashing places it by this).
    pub fn id(&self) -> String {
        self.uri.to_string().trim_end_matches('/').to_owned()
    }
}

/// One set of members: the balancer over them and their handles, index for index.
pub struct Endpoints<E> {
    /// The balancer.
    pub balancer: Arc<Balancer>,
    /// How to reach each member.
    pub handles: Vec<Arc<E>>,
    /// What each member was made from.
    pub targets: Vec<Target>,
}

/// Makes the handle for a target.
pub type Connect<E> = Arc<dyn Fn(&Target) -> Result<E, UpstreamError> + Send + Sync>;

/// What every member set of a cluster is built with.
#[derive(Clone)]
pub struct Spec<E> {
    /// The cluster's name, for logs.
    pub cluster: String,
    /// The balancing algorithm.
    pub algorithm: Balancing,
    /// Active health checks.
    pub health: Option<HealthCheckConfig>,
    /// Passive outlier detection.
    pub outlier: Option<OutlierConfig>,
    /// Makes the handle for a new target.
    pub connect: Connect<E>,
}

/// A cluster's members, replaceable while calls are in flight.
pub struct Pool<E> {
    current: ArcSwap<Endpoints<E>>,
    spec: Spec<E>,
}

impl<E> std::fmt::Debug for Pool<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.current.load().targets.iter().map(Target::id).collect();
        f.debug_struct("Pool").field("cluster", &self.spec.cluster).field("members", &ids).finish()
    }
}

impl<E: Handle> Pool<E> {
    /// A pool over `targets`, its health checks started.
    pub fn new(spec: Spec<E>, targets: Vec<Target>) -> Result<Arc<Self>, UpstreamError> {
        if targets.is_empty() {
            return Err(UpstreamError::Internal(format!("cluster {} has no endpoints", spec.cluster)));
        }
        let endpoints = build(&spec, targets, None)?;
        let pool = Arc::new(Pool { current: ArcSwap::from(endpoints), spec });
        pool.start_checks();
        Ok(pool)
    }

    /// The members now; a call holds this set until it ends.
    pub fn load(&self) -> Arc<Endpoints<E>> {
        self.current.load_full()
    }

    /// Replaces the members with `targets` (when they differ), keeping the handles and state of
    /// those already present. Returns whether anything changed.
    pub fn update(&self, targets: Vec<Target>) -> Result<bool, UpstreamError> {
        let current = self.load();
        if targets.is_empty() || current.targets == targets {
            return Ok(false);
        }
        let next = build(&self.spec, targets, Some(&current))?;
        self.current.store(next);
        self.start_checks();
        Ok(true)
    }

    fn start_checks(&self) {
        if let Some(config) = &self.spec.health {
            super::health::spawn_checks(self.spec.cluster.clone(), config.clone(), Arc::downgrade(&self.load()));
        }
    }
}

/// A set of members for `targets`, reusing `previous`'s handle and load for a target it has.
fn build<E>(
    spec: &Spec<E>,
    targets: Vec<Target>,
    previous: Option<&Endpoints<E>>,
) -> Result<Arc<Endpoints<E>>, UpstreamError> {
    let mut members = Vec::with_capacity(targets.len());
    let mut handles = Vec::with_capacity(targets.len());
    for target in &targets {
        let id = target.id();
        let kept = previous.and_then(|p| {
            let i = p.targets.iter().position(|t| t.id() == id)?;
            Some((p.handles[i].clone(), p.balancer.members()[i].load.clone()))
        });
        let (handle, load) = match kept {
            Some(kept) => kept,
            None => (Arc::new((spec.connect)(target)?), Arc::default()),
        };
        members.push(Member { id, weight: target.weight.max(1), priority: target.priority, load });
        handles.push(handle);
    }
    let panic = spec.health.as_ref().map_or(50, |h| h.panic_threshold);
    let balancer =
        Balancer::new(spec.algorithm, members).with_panic_threshold(panic).with_outlier_detection(spec.outlier.clone());
    Ok(Arc::new(Endpoints { balancer: Arc::new(balancer), handles, targets }))
}

/// A weak hold on a set of members, for tasks that must stop when it is replaced and dropped.
pub type WeakEndpoints<E> = Weak<Endpoints<E>>;
