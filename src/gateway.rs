//! The `Gateway`: holds the current `Snapshot` behind an atomic pointer, the sources it is
//! rebuilt from, and readiness. A request takes the snapshot once at its start and uses it to
//! the end. The per-operation stage order (ingress → policy → plan → execute) lands here with
//! the transcoding issue. Only `server` and `admin` swap the snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::snapshot::{Snapshot, SnapshotSources};

/// The running gateway's shared state.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    sources: SnapshotSources,
    ready: AtomicBool,
    reload_lock: tokio::sync::Mutex<()>,
}

impl Gateway {
    /// A gateway serving `snapshot`, rebuilt from `sources` on reload. Not ready until the
    /// server says so.
    pub fn new(snapshot: Snapshot, sources: SnapshotSources) -> Arc<Self> {
        Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            sources,
            ready: AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The current snapshot; hold it for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
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

    /// Serialises rebuilds so generations stay in order.
    pub(crate) async fn lock_reloads(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reload_lock.lock().await
    }

    /// Installs a new, fully validated snapshot.
    pub(crate) fn swap(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let snapshot = Arc::new(snapshot);
        self.snapshot.store(snapshot.clone());
        snapshot
    }
}
