//! The gRPC services the gateway answers itself, built once per snapshot generation:
//! grpc.health.v1 (overall SERVING; a registered service is SERVING when a backend serves it,
//! NOT_SERVING otherwise) and server reflection v1 and v1alpha over every registered file.

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::extract::Request;
use tower::util::BoxCloneSyncService;

use crate::snapshot::Snapshot;

/// A locally answered gRPC service.
pub(crate) type LocalService = BoxCloneSyncService<Request, http::Response<tonic::body::Body>, Infallible>;

/// Health and reflection for one snapshot.
pub(crate) struct LocalGrpc {
    generation: u64,
    pub(crate) health: LocalService,
    pub(crate) reflection_v1: LocalService,
    pub(crate) reflection_v1alpha: LocalService,
}

/// The services for the newest snapshot seen, rebuilt when the generation changes.
#[derive(Default)]
pub(crate) struct LocalGrpcCache {
    current: ArcSwapOption<LocalGrpc>,
}

impl LocalGrpcCache {
    /// The services for `snapshot`.
    pub(crate) async fn for_snapshot(&self, snapshot: &Snapshot) -> Arc<LocalGrpc> {
        if let Some(current) = self.current.load_full()
            && current.generation == snapshot.generation
        {
            return current;
        }
        let built = Arc::new(build(snapshot).await);
        self.current.store(Some(built.clone()));
        built
    }
}

async fn build(snapshot: &Snapshot) -> LocalGrpc {
    let (reporter, health) = tonic_health::server::health_reporter();
    for (service, cluster) in &snapshot.services {
        let status = if cluster.is_some() {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        reporter.set_service_status(service, status).await;
    }
    let encoded = snapshot.registry.pool.encode_to_vec();
    let builder = || tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(&encoded);
    // A pool that decoded from these bytes once decodes again; failing that, reflection answers
    // UNIMPLEMENTED rather than taking the gateway down.
    let reflection_v1 = match builder().build_v1() {
        Ok(service) => BoxCloneSyncService::new(service),
        Err(error) => unavailable(format!("reflection is unavailable: {error}")),
    };
    let reflection_v1alpha = match builder().build_v1alpha() {
        Ok(service) => BoxCloneSyncService::new(service),
        Err(error) => unavailable(format!("reflection is unavailable: {error}")),
    };
    LocalGrpc {
        generation: snapshot.generation,
        health: BoxCloneSyncService::new(health),
        reflection_v1,
        reflection_v1alpha,
    }
}

fn unavailable(message: String) -> LocalService {
    BoxCloneSyncService::new(tower::service_fn(move |_request: Request| {
        let message = message.clone();
        async move { Ok(tonic::Status::unimplemented(message).into_http()) }
    }))
}
