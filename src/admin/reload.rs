//! Rebuild-validate-swap: builds a new snapshot from the gateway's sources off the async
//! runtime, and swaps it in only if the whole build is valid. A refused build leaves the
//! serving snapshot untouched and returns every problem.

use std::sync::Arc;

use crate::config::Problem;
use crate::gateway::Gateway;
use crate::registry::{Changed, Pending, Registration, RegistryDir, RegistryError, SharedState};
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
    let mut sources = gateway.sources().clone();
    if let Some(shared) = gateway.shared_registry() {
        sources.shared_registrations = Some(shared.registrations());
    }
    let snapshot = build_next(gateway, sources).await?;
    Ok(gateway.swap(snapshot))
}

/// Where a gateway's registrations are written.
#[derive(Clone)]
pub(super) enum Store {
    /// Its descriptor directory.
    Directory(RegistryDir),
    /// The registry in Redis, shared by every instance.
    Shared(Arc<super::SharedRegistryFollow>),
}

/// Why a registry change was not applied.
pub(super) enum Refusal {
    /// The gateway would not serve it (every problem of the build).
    Build(Vec<Problem>),
    /// The store refused or failed the write.
    Store(RegistryError),
}

/// Applies a prepared registry change to a running gateway: the snapshot is built with the
/// change in place of what the store holds; only if it is valid is the change written through
/// to the store and the snapshot swapped in. A refused change writes nothing. A change to the
/// shared registry is written only if no other was written since it was checked
/// (`RegistryError::Stale` otherwise, to check it again).
pub(super) async fn apply_registry_change(
    gateway: &Gateway,
    store: Store,
    pending: Pending,
) -> Result<(Changed, Arc<Snapshot>), Refusal> {
    let _serialised = gateway.lock_reloads().await;
    if pending.is_noop() {
        let changed = match store {
            Store::Directory(dir) => commit(dir, pending).await.map_err(Refusal::Store)?,
            Store::Shared(_) => Changed::Unchanged,
        };
        return Ok((changed, gateway.snapshot()));
    }
    let mut sources = gateway.sources().clone();
    let name = pending.name().to_owned();
    let after = pending.after().cloned();
    // The shared registry as the change was checked against it, with the change.
    let base: Option<Vec<Registration>> = pending.checked_against().map(<[Registration]>::to_vec);
    sources.shared_registrations = base.clone();
    sources.registry_change = Some((name.clone(), after.clone()));
    let built = build_next(gateway, sources).await;
    gateway.telemetry().metrics.reloaded(built.is_ok());
    let snapshot = built.map_err(Refusal::Build)?;
    let changed = match &store {
        Store::Directory(dir) => commit(dir.clone(), pending).await.map_err(Refusal::Store)?,
        Store::Shared(shared) => {
            let (changed, generation) = shared.store().commit(pending).await.map_err(Refusal::Store)?;
            let mut registrations = base.unwrap_or_default();
            registrations.retain(|r| r.name != name);
            registrations.extend(after);
            registrations.sort_by(|a, b| a.name.cmp(&b.name));
            shared.wrote(SharedState { generation, registrations });
            changed
        }
    };
    Ok((changed, gateway.swap(snapshot)))
}

async fn commit(dir: RegistryDir, pending: Pending) -> Result<Changed, RegistryError> {
    let path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || dir.commit(pending))
        .await
        .map_err(|e| RegistryError::Write { path, source: std::io::Error::other(e.to_string()) })?
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
