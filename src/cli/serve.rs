//! `switchyard serve`: build the snapshot, bind both listeners, serve until SIGINT/SIGTERM,
//! then shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use super::signal::ShutdownSignal;
use super::{CommandResult, Failure, SourceArgs};
use crate::gateway::Gateway;
use crate::server::start_server;
use crate::snapshot::{SnapshotSources, build_snapshot};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    sources: SourceArgs,
    /// Gateway listener address [default: 127.0.0.1:8080, or listener.listen].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Admin listener address [default: 127.0.0.1:9090, or admin.listen].
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
}

impl ServeArgs {
    /// `[tracing]` of the config file, read before anything else so the process's subscriber
    /// can export spans from the start (defaults when there is no file or it does not load;
    /// the build then reports why).
    pub(crate) fn tracing_config(&self) -> crate::config::TracingConfig {
        let loaded = self.sources.config.as_deref().and_then(|path| crate::config::load_config_file(path).ok());
        loaded.map(|l| l.config.tracing).unwrap_or_default()
    }
}

pub(crate) async fn run(args: ServeArgs) -> CommandResult {
    let sources = args.sources.sources(args.listen, args.admin);
    let (gateway, mut signal) = start(sources).await?;
    let server = start_server(gateway.clone()).await.map_err(Failure::runtime)?;
    let _watching = crate::admin::watch_sources(gateway.clone()).map_err(Failure::runtime)?;
    let _following = crate::admin::follow_shared_registry(gateway.clone());
    println!("switchyard serving on http://{} (admin http://{})", server.gateway_addr, server.admin_addr);
    signal.recv().await;
    let delay = gateway.snapshot().config.listener.shutdown_delay.get();
    if !delay.is_zero() {
        // Not ready, still serving: load balancers take the instance out before it closes.
        gateway.begin_drain();
        tracing::info!(?delay, "not ready; still accepting requests until the shutdown delay ends");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = signal.recv() => tracing::info!("a second signal: shutting down now"),
        }
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    // Spans still buffered are exported before the process ends.
    tokio::task::spawn_blocking(crate::telemetry::otel::shutdown).await.map_err(Failure::runtime)?;
    Ok(())
}

/// Builds the first snapshot (printing its warnings) and installs the signal handlers. With
/// a shared registry, its registrations are read first (see `shared_registry`).
pub(crate) async fn start(sources: SnapshotSources) -> Result<(Arc<Gateway>, ShutdownSignal), Failure> {
    let signal = ShutdownSignal::install().map_err(Failure::runtime)?;
    let shared = shared_registry(&sources).await?;
    let mut build_sources = sources.clone();
    build_sources.shared_registrations = shared.as_ref().map(|shared| shared.registrations());
    let built =
        tokio::task::spawn_blocking(move || build_snapshot(&build_sources, 1)).await.map_err(Failure::runtime)?;
    let snapshot = match built {
        Ok(snapshot) => snapshot,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            let errors = problems.iter().filter(|p| p.is_error()).count();
            return Err(Failure::reported(format!("refusing to serve: {errors} problem(s)")));
        }
    };
    for warning in &snapshot.warnings {
        eprintln!("{warning}");
    }
    let gateway = Gateway::new(snapshot, sources);
    if let Some(shared) = shared {
        gateway.set_shared_registry(shared);
    }
    Ok((gateway, signal))
}

/// The shared registry, when the config keeps registrations in Redis: read once now (an
/// instance that cannot reach Redis starts without them, not ready, and reads them when it
/// can). A `[redis]` block that cannot be used is refused like any config problem.
async fn shared_registry(
    sources: &SnapshotSources,
) -> Result<Option<Arc<crate::admin::SharedRegistryFollow>>, Failure> {
    let Some(path) = &sources.config_file else { return Ok(None) };
    // A config that does not load is reported by the build that follows.
    let Ok(loaded) = crate::config::load_config_file(path) else { return Ok(None) };
    if loaded.config.sources.registry != crate::config::RegistryStore::Redis {
        return Ok(None);
    }
    let pool = crate::redis_pool::RedisPool::build(&loaded.config.redis)
        .map_err(|(key, why)| Failure::reported(format!("redis.{key}: {why}")))?;
    let store = crate::registry::SharedRegistry::new(pool);
    Ok(Some(crate::admin::SharedRegistryFollow::start(store).await))
}
