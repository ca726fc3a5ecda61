//! Active health checks: each endpoint of a cluster is asked, every `interval`, whether it
//! serves — grpc.health.v1 Check (for the configured service name) on gRPC clusters, a GET on a
//! path expecting 2xx on HTTP ones (each `Handle` knows how). `unhealthy_threshold` consecutive
//! failures take it out of the balancer's rotation and `healthy_threshold` consecutive passes
//! bring it back. A checker stops when its member set is dropped (a reload replaced the
//! cluster, or DNS re-resolution replaced the set and its last call ended).

use std::sync::Weak;

use super::members::{Endpoints, Handle};
use crate::config::HealthCheckConfig;

/// Starts checking the members of `endpoints` every `config.interval`.
pub fn spawn_checks<E: Handle>(cluster: String, config: HealthCheckConfig, endpoints: Weak<Endpoints<E>>) {
    tokio::spawn(async move {
        let mut passes: Vec<u32> = Vec::new();
        let mut failures: Vec<u32> = Vec::new();
        let mut interval = tokio::time::interval(config.interval.get());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(endpoints) = endpoints.upgrade() else { return };
            let n = endpoints.handles.len();
            passes.resize(n, 0);
            failures.resize(n, 0);
            let checks = endpoints.handles.iter().map(|handle| {
                let config = &config;
                async move { tokio::time::timeout(config.timeout.get(), handle.check(config)).await.unwrap_or(false) }
            });
            let results = futures_util::future::join_all(checks).await;
            let balancer = &endpoints.balancer;
            for (i, passed) in results.into_iter().enumerate() {
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
