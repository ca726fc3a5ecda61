//! Rebuild-validate-swap: builds a new snapshot from the gateway's sources off the async
//! runtime, and swaps it in only if the whole build is valid. A refused build leaves the
//! serving snapshot untouched and returns every problem.

use std::sync::Arc;

use crate::config::Problem;
use crate::gateway::Gateway;
use crate::registry::{Changed, Pending, RegistryDir};
use crate::snapshot::{Snapshot, build_snapshot};

/// Rebuilds the snapshot from disk and swaps it in, or explains why not.
pub async fn reload_snapshot(gateway: &Gateway) -> Result<Arc<Snapshot>, Vec<Problem>> {
    let result = rebuild(gateway).await;
    gateway.telemetry().metrics.reloaded(result.is_ok());
    if let Err(problems) = &result {
        let first = problems.first().map(ToString::to_string).unwrap_or_default();
        tracing::warn!(problems = problems.len(), %first, "reload refused; the current snapshot keeps serving");
    }
    result
}

async fn rebuild(gateway: &Gateway) -> Result<Arc<Snapshot>, Vec<Problem>> {
    let _serialised = gateway.lock_reloads().await;
    let snapshot = build_next(gateway, gateway.sources().clone()).await?;
    Ok(gateway.swap(snapshot))
}

/// Applies a prepared registry change to a running gateway: the snapshot is built with the
/// change in place of what the directory holds; only if it is valid is the change written
/// through to the directory and the snapshot swapped in. A refused change writes nothing.
pub(super) async fn apply_registry_change(
    gateway: &Gateway,
    dir: RegistryDir,
    pending: Pending,
) -> Result<(Changed, Arc<Snapshot>), Vec<Problem>> {
    let _serialised = gateway.lock_reloads().await;
    if pending.is_noop() {
        let changed = commit(dir, pending).await?;
        return Ok((changed, gateway.snapshot()));
    }
    let mut sources = gateway.sources().clone();
    sources.registry_change = Some((pending.name().to_owned(), pending.after().cloned()));
    let built = build_next(gateway, sources).await;
    gateway.telemetry().metrics.reloaded(built.is_ok());
    let snapshot = built?;
    let changed = commit(dir, pending).await?;
    Ok((changed, gateway.swap(snapshot)))
}

async fn commit(dir: RegistryDir, pending: Pending) -> Result<Changed, Vec<Problem>> {
    tokio::task::spawn_blocking(move || dir.commit(pending))
        .await
        .map_err(|e| vec![Problem::error("descriptors", format!("the write task failed: {e}"))])?
        .map_err(|e| vec![Problem::error("descriptors", e.to_string())])
}

/// Builds the next snapshot from `sources` off the async runtime, noting listener changes that
/// take effect only at restart.
async fn build_next(gateway: &Gateway, sources: crate::snapshot::SnapshotSources) -> Result<Snapshot, Vec<Problem>> {
    let current = gateway.snapshot();
    let generation = current.generation + 1;
    let built = tokio::task::spawn_blocking(move || build_snapshot(&sources, generation))
        .await
        .map_err(|e| vec![Problem::error("reload", format!("the build task failed: {e}"))])?;
    let mut snapshot = built?;
    for (key, old, new) in [
        ("listener.listen", current.config.listener.listen, snapshot.config.listener.listen),
        ("admin.listen", current.config.admin.listen, snapshot.config.admin.listen),
    ] {
        if old != new {
            snapshot
                .warnings
                .push(Problem::warning(key, format!("changed from {old} to {new}; takes effect at restart")));
        }
    }
    if current.config.tracing != snapshot.config.tracing {
        snapshot.warnings.push(Problem::warning("tracing", "changed; span export follows it at restart"));
    }
    tracing::info!(generation, warnings = snapshot.warnings.len(), "snapshot built");
    Ok(snapshot)
}
