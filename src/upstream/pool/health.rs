//! Active health checks: each endpoint of a cluster is asked, every `interval`, whether it
//! serves — grpc.health.v1 Check (for the configured service name) on gRPC clusters, a GET on a
//! path expecting 2xx on HTTP ones. `unhealthy_threshold` consecutive failures take it out of
//! the balancer's rotation and `healthy_threshold` consecutive passes bring it back. A checker
//! stops when its cluster's client is dropped (a reload replaced it).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{Balancer, EndpointConnections};
use crate::config::HealthCheckConfig;

/// How one endpoint is checked.
pub enum Probe {
    /// grpc.health.v1 over the endpoint's connections.
    Grpc(Weak<Vec<EndpointConnections>>),
    /// GET `base + path` with this client.
    Http {
        /// The endpoints' base URLs.
        bases: Weak<Vec<String>>,
        /// The cluster's HTTP client.
        client: reqwest::Client,
    },
}

/// Starts checking `balancer`'s members every `config.interval`.
pub fn spawn_checks(cluster: String, config: HealthCheckConfig, balancer: Weak<Balancer>, probe: Probe) {
    tokio::spawn(async move {
        let mut passes: Vec<u32> = Vec::new();
        let mut failures: Vec<u32> = Vec::new();
        let mut interval = tokio::time::interval(config.interval.get());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(balancer) = balancer.upgrade() else { return };
            let n = balancer.members().len();
            passes.resize(n, 0);
            failures.resize(n, 0);
            let checks = (0..n).map(|i| check(&probe, i, &config));
            let results = futures_util::future::join_all(checks).await;
            for (i, passed) in results.into_iter().enumerate() {
                let Some(passed) = passed else { return };
                if passed {
                    passes[i] += 1;
                    failures[i] = 0;
                } else {
                    failures[i] += 1;
                    passes[i] = 0;
                }
                let member = &balancer.members()[i];
                if member.load.is_healthy() && failures[i] >= config.unhealthy_threshold {
                    tracing::warn!(cluster, endpoint = member.id, "endpoint failed its health checks; out of rotation");
                    balancer.set_healthy(i, false);
                } else if !member.load.is_healthy() && passes[i] >= config.healthy_threshold {
                    tracing::info!(cluster, endpoint = member.id, "endpoint passes its health checks again");
                    balancer.set_healthy(i, true);
                }
            }
        }
    });
}

/// One check of endpoint `i`: Some(passed), or None when the cluster is gone.
async fn check(probe: &Probe, i: usize, config: &HealthCheckConfig) -> Option<bool> {
    let timeout: Duration = config.timeout.get();
    match probe {
        Probe::Grpc(endpoints) => {
            let channel = {
                let endpoints: Arc<Vec<EndpointConnections>> = endpoints.upgrade()?;
                endpoints.get(i)?.acquire().0
            };
            let mut client = HealthClient::new(channel);
            let request = HealthCheckRequest { service: config.grpc_service.clone() };
            let answer = tokio::time::timeout(timeout, client.check(request)).await;
            Some(matches!(answer, Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32))
        }
        Probe::Http { bases, client } => {
            let url = format!("{}{}", bases.upgrade()?.get(i)?, config.http_path);
            let answer = client.get(url).timeout(timeout).send().await;
            Some(matches!(answer, Ok(response) if response.status().is_success()))
        }
    }
}
