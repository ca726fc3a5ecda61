//! Request coalescing: identical reads in flight at the same moment share one backend call.
//! Identical means the same client (cluster pool), method, encoded request and forwarded
//! metadata — so the same identity and headers; correlation headers (`x-request-id`,
//! `traceparent`, `tracestate`) are left out, as they differ on every request. The first caller
//! makes the call; the others wait for its answer, errors included (nothing is cached: the entry
//! leaves the table when the call ends). Each waiter keeps its own deadline.
//!
//! The table is process-wide because calls in flight are: two gateways in one process (tests)
//! never share an entry, since their clients differ. It holds only weak references: when every
//! waiter has gone (clients that gave up), the call is dropped, which cancels it at the backend.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, WeakShared};

use super::ExecuteError;
use crate::operation::Metadata;
use crate::upstream::UpstreamError;

/// An answer as waiters share it: the encoded response and its metadata.
pub(super) type Answer = Result<Arc<(Bytes, http::HeaderMap)>, ExecuteError>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    client: usize,
    path: String,
    request: Bytes,
    metadata: Vec<(String, Vec<u8>)>,
}

/// Hashed with foldhash, seeded per process (as hashbrown's default): a key holds the whole
/// request and its metadata (a bearer token among them), which SipHash took ~1,300
/// instructions to hash three times per call. Each key is shared with the call that removes it
/// when it ends (a copy would duplicate the request and every metadata entry).
type InFlight = HashMap<Arc<Key>, WeakShared<BoxFuture<'static, Answer>>, foldhash::fast::RandomState>;

/// Past this many entries, entries whose waiters have all gone are swept before a lookup.
const SWEEP_ABOVE: usize = 1024;

static IN_FLIGHT: LazyLock<Mutex<InFlight>> = LazyLock::new(Mutex::default);

/// Answers the call `call` would make, sharing it with identical calls in flight.
pub(super) async fn coalesced(
    client: usize,
    path: &str,
    request: &Bytes,
    metadata: &Metadata,
    timeout: Option<Duration>,
    call: impl FnOnce() -> BoxFuture<'static, Answer>,
) -> Answer {
    let key = Key {
        client,
        path: path.to_owned(),
        request: request.clone(),
        metadata: metadata
            .iter()
            .filter(|(name, _)| !crate::operation::CORRELATION_HEADERS.contains(name))
            .map(|(name, value)| (name.to_owned(), value.to_vec()))
            .collect(),
    };
    let shared = {
        let mut table = IN_FLIGHT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if table.len() > SWEEP_ABOVE {
            table.retain(|_, weak| weak.upgrade().is_some());
        }
        // One lookup finds a call in flight or the place for a new one.
        let entry = table.entry(Arc::new(key));
        if let std::collections::hash_map::Entry::Occupied(found) = &entry
            && let Some(shared) = found.get().upgrade()
        {
            shared
        } else {
            let leaving = entry.key().clone();
            let inner = call();
            let shared = async move {
                let answer = inner.await;
                IN_FLIGHT.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&leaving);
                answer
            }
            .boxed()
            .shared();
            if let Some(weak) = shared.downgrade() {
                entry.insert_entry(weak);
            }
            shared
        }
    };
    match timeout {
        // A waiter whose deadline is shorter than the shared call's stops waiting at its own.
        Some(timeout) => tokio::time::timeout(timeout, shared)
            .await
            .unwrap_or_else(|_| Err(ExecuteError::Upstream(UpstreamError::DeadlineExceeded))),
        None => shared.await,
    }
}
