//! Following the registry in Redis (`[sources] registry = "redis"`): the registrations last
//! read from it, and a task that applies every change another instance makes. Changes are
//! announced on a pub/sub channel; a generation check every second catches what a dropped
//! subscription missed and notices an unreachable Redis. A new generation is read whole and
//! rebuilt into a snapshot exactly as a local change would be; an instance that cannot reach
//! Redis keeps serving its last snapshot and says so in /readyz and the metrics. A Redis that
//! comes back empty (restarted without persistence) gets the registry written back by the
//! first instance that notices, so a restart loses nothing that an instance still serves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use futures_util::StreamExt;

use crate::config::Problem;
use crate::gateway::Gateway;
use crate::registry::{Registration, RegistryError, SharedRegistry, SharedState};

/// How often the generation is checked besides the announcements.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The shared registry as this instance follows it.
#[derive(Debug)]
pub struct SharedRegistryFollow {
    store: SharedRegistry,
    state: ArcSwap<SharedState>,
    status: Mutex<Status>,
}

/// What /readyz and the metrics say of it.
#[derive(Debug, Clone)]
pub struct Status {
    /// Whether the registry has been read at least once (the instance is not ready before).
    pub loaded: bool,
    /// Whether Redis answered last time it was asked.
    pub connected: bool,
    /// Since when `connected` has had its value.
    pub since: SystemTime,
    /// Why Redis did not answer, when it did not.
    pub error: Option<String>,
    /// The generation the serving snapshot was built from.
    pub applied: u64,
    /// A generation this instance refused to serve, and why (its snapshot would not build).
    pub refused: Option<(u64, String)>,
}

impl SharedRegistryFollow {
    /// Follows `store`; reads it once (within `[redis]`'s timeouts). When that fails the
    /// instance starts with no registrations from it and is not ready until a read succeeds.
    pub async fn start(store: SharedRegistry) -> Arc<Self> {
        let follow = Arc::new(SharedRegistryFollow {
            store,
            state: ArcSwap::from_pointee(SharedState::default()),
            status: Mutex::new(Status {
                loaded: false,
                connected: false,
                since: SystemTime::now(),
                error: None,
                applied: 0,
                refused: None,
            }),
        });
        match follow.store.load().await {
            Ok(state) => {
                follow.connected(true, None);
                let generation = state.generation;
                follow.state.store(Arc::new(state));
                follow.with_status(|status| {
                    status.loaded = true;
                    status.applied = generation;
                });
            }
            Err(error) => {
                tracing::warn!(%error, "the shared registry could not be read; not ready until it can");
                follow.connected(false, Some(error.to_string()));
            }
        }
        follow
    }

    /// The store.
    pub fn store(&self) -> &SharedRegistry {
        &self.store
    }

    /// The registrations last read.
    pub fn registrations(&self) -> Vec<Registration> {
        self.state.load().registrations.clone()
    }

    /// The generation last read.
    pub fn generation(&self) -> u64 {
        self.state.load().generation
    }

    /// What /readyz and the metrics say.
    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn with_status(&self, change: impl FnOnce(&mut Status)) {
        let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut status);
    }

    fn connected(&self, connected: bool, error: Option<String>) {
        self.with_status(|status| {
            if status.connected != connected {
                status.since = SystemTime::now();
                if connected {
                    tracing::info!("the shared registry is reachable again");
                } else {
                    tracing::warn!(
                        error = error.as_deref().unwrap_or_default(),
                        "the shared registry is unreachable; serving the last snapshot"
                    );
                }
            }
            status.connected = connected;
            status.error = error;
        });
    }

    /// Records a change this instance wrote itself and serves now.
    pub(super) fn wrote(&self, state: SharedState) {
        let generation = state.generation;
        self.state.store(Arc::new(state));
        self.with_status(|status| {
            status.loaded = true;
            status.applied = generation;
            status.refused = None;
        });
        self.connected(true, None);
    }

    /// When the registry's generation moved (one GET), reads it whole and rebuilds the
    /// gateway's snapshot.
    async fn sync(&self, gateway: &Gateway) {
        let status = self.status();
        match self.store.generation().await {
            Ok(generation) if status.loaded && generation == self.generation() => {
                return self.connected(true, None);
            }
            Ok(_) => {}
            Err(error) => return self.connected(false, Some(error.to_string())),
        }
        let state = match self.store.load().await {
            Ok(state) => state,
            Err(error) => return self.connected(false, Some(error.to_string())),
        };
        self.connected(true, None);
        if status.loaded && state.generation == self.generation() {
            return;
        }
        let known = self.state.load_full();
        if status.loaded && state.generation == 0 && known.generation > 0 {
            // Redis came back empty (restarted without persistence): what this instance serves
            // is the registry still, so it is written back (by the first instance to notice).
            match self.store.restore(&known).await {
                Ok(true) => {
                    tracing::warn!(
                        generation = known.generation,
                        "the shared registry was empty; restored it from this instance's registrations"
                    );
                    return;
                }
                // Another instance wrote first: the next check reads what it wrote.
                Ok(false) => return,
                Err(error) => return self.connected(false, Some(error.to_string())),
            }
        }
        let generation = state.generation;
        self.state.store(Arc::new(state));
        self.with_status(|status| status.loaded = true);
        match super::reload_snapshot(gateway).await {
            Ok(snapshot) => {
                // The rebuild read the state stored when it took the reload lock: a change this
                // instance wrote itself meanwhile (retried after a stale check) may have moved it
                // past `generation`, and that is what now serves.
                let built = self.generation();
                tracing::info!(
                    generation = built,
                    snapshot = snapshot.generation,
                    "applied the shared registry's change"
                );
                self.with_status(|status| {
                    status.applied = built;
                    status.refused = None;
                });
            }
            Err(problems) => {
                let why =
                    problems.iter().filter(|p| p.is_error()).map(Problem::to_string).collect::<Vec<_>>().join("; ");
                self.with_status(|status| status.refused = Some((generation, why)));
            }
        }
    }
}

/// The running follower; dropping it stops following.
pub struct SharedRegistrySync {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SharedRegistrySync {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows the shared registry for `gateway`, if it has one.
pub fn follow_shared_registry(gateway: Arc<Gateway>) -> Option<SharedRegistrySync> {
    let follow = gateway.shared_registry()?.clone();
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let subscribed = subscribe(&follow).await;
            // Whatever was missed while not subscribed.
            follow.sync(&gateway).await;
            let mut check = tokio::time::interval(CHECK_EVERY);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            match subscribed {
                Ok(mut pubsub) => {
                    backoff = Duration::from_millis(100);
                    let mut announcements = pubsub.on_message();
                    loop {
                        tokio::select! {
                            announced = announcements.next() => match announced {
                                Some(_) => follow.sync(&gateway).await,
                                None => {
                                    follow.connected(false, Some("the change subscription was closed".into()));
                                    break;
                                }
                            },
                            _ = check.tick() => follow.sync(&gateway).await,
                        }
                    }
                }
                Err(error) => follow.connected(false, Some(error.to_string())),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
    Some(SharedRegistrySync { task })
}

/// A subscription to the change announcements.
async fn subscribe(follow: &SharedRegistryFollow) -> Result<redis::aio::PubSub, RegistryError> {
    let mut pubsub = follow
        .store
        .pool()
        .pubsub()
        .await
        .map_err(|e| RegistryError::Shared(format!("no subscription to the shared registry's changes: {e}")))?;
    pubsub
        .subscribe(follow.store.channel())
        .await
        .map_err(|e| RegistryError::Shared(format!("no subscription to the shared registry's changes: {e}")))?;
    Ok(pubsub)
}
