//! Rebuild-validate-swap: builds a new snapshot from the gateway's sources off the async
//! runtime, and swaps it in only if the whole build is valid. A refused build leaves the
//! serving snapshot untouched and returns every problem.

use std::sync::Arc;

use crate::config::Problem;
use crate::gateway::Gateway;
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
    let current = gateway.snapshot();
    let sources = gateway.sources().clone();
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
    tracing::info!(generation, warnings = snapshot.warnings.len(), "snapshot reloaded");
    Ok(gateway.swap(snapshot))
}
