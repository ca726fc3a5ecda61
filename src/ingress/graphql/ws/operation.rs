//! One operation of a WebSocket session as a stream of the messages it sends: it starts
//! (authentication, parsing, planning, opening the backend stream), then gives its result, or
//! its events until the stream ends, then `complete` (or `error`, which ends it too). The
//! session polls its operations' streams itself, so an event goes from the backend's stream to
//! the socket in one task; dropping an operation cancels its backend stream.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, Stream, StreamExt};
use http::HeaderMap;
use serde_json::{Map, Value as Json};
use tokio::sync::Notify;

use super::protocol::{OperationPayload, ServerMessage};
use crate::gateway::Gateway;
use crate::ingress::graphql::run::{Outcome, Started, Written, start_operation};
use crate::ingress::graphql::{Caches, GraphqlRequest, PersistedQueries, admit};

/// What an operation starts from: the client's payload and the session's context.
pub(super) struct Launch {
    pub(super) payload: OperationPayload,
    pub(super) gateway: Arc<Gateway>,
    pub(super) persisted: PersistedQueries,
    pub(super) caches: Caches,
    pub(super) headers: super::header_block::HeaderBlock,
    pub(super) client: Option<std::net::SocketAddr>,
    pub(super) init: Map<String, Json>,
}

/// Counts an operation on the gateway while it runs.
pub(super) struct Counted(pub(super) Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Tells the session an operation is over (it ended, or was dropped), and gives back its
/// places on the gateway and its consumer.
pub(super) struct OnDone {
    pub(super) done: Arc<AtomicBool>,
    pub(super) finished: Arc<Notify>,
    pub(super) _counted: Counted,
    pub(super) _consumer: super::consumers::ConsumerSlot,
}

impl Drop for OnDone {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        self.finished.notify_one();
    }
}

/// A running operation's messages.
pub(super) struct Operation {
    id: Arc<str>,
    phase: Phase,
    _done: OnDone,
}

enum Phase {
    /// Being started (boxed: the start is a large future, freed once it is done, so a
    /// long-lived subscription keeps only its stream).
    Starting(BoxFuture<'static, Started>),
    /// A subscription's events.
    Events(BoxStream<'static, Result<Arc<str>, Vec<Json>>>),
    /// A query's deferred payloads.
    Incremental(BoxStream<'static, Json>),
    /// Messages left to send, then the end.
    Last(Option<ServerMessage>, Option<ServerMessage>),
}

impl Operation {
    /// The operation `id`, started from `launch`; `done` is dropped with it.
    pub(super) fn new(id: Arc<str>, launch: Launch, done: OnDone) -> Operation {
        Operation { id, phase: Phase::Starting(Box::pin(start(launch))), _done: done }
    }

    /// What a started operation sends first, and from then on.
    fn started(&self, started: Started) -> Phase {
        let id = &self.id;
        let result = |payload: Arc<str>| {
            Phase::Last(
                Some(ServerMessage::Next { id: id.clone(), payload }),
                Some(ServerMessage::Complete { id: id.clone() }),
            )
        };
        let failed = |errors: Vec<Json>| Phase::Last(Some(ServerMessage::Error { id: id.clone(), errors }), None);
        match started {
            Started::Result(Outcome::Ran(body)) => result(body.to_string().into()),
            Started::Result(Outcome::Written(Written { body, .. }) | Outcome::Cached(body, _)) => {
                result(String::from_utf8_lossy(&body).into())
            }
            Started::Result(Outcome::Refused(body)) => failed(match body.get("errors") {
                Some(Json::Array(errors)) => errors.clone(),
                _ => vec![body],
            }),
            Started::Result(Outcome::Http(refusal)) => failed(refusal.errors()),
            Started::Failed(errors) => failed(errors),
            Started::Incremental(payloads) => Phase::Incremental(payloads),
            Started::Events(events) => Phase::Events(events),
        }
    }
}

impl Stream for Operation {
    type Item = ServerMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ServerMessage>> {
        let this = &mut *self;
        loop {
            let ended = match &mut this.phase {
                Phase::Starting(starting) => {
                    let started = std::task::ready!(starting.poll_unpin(cx));
                    this.phase = this.started(started);
                    continue;
                }
                Phase::Events(events) => match std::task::ready!(events.poll_next_unpin(cx)) {
                    Some(Ok(payload)) => {
                        return Poll::Ready(Some(ServerMessage::Next { id: this.id.clone(), payload }));
                    }
                    Some(Err(errors)) => Some(ServerMessage::Error { id: this.id.clone(), errors }),
                    None => Some(ServerMessage::Complete { id: this.id.clone() }),
                },
                Phase::Incremental(payloads) => match std::task::ready!(payloads.poll_next_unpin(cx)) {
                    Some(payload) => {
                        let payload = payload.to_string().into();
                        return Poll::Ready(Some(ServerMessage::Next { id: this.id.clone(), payload }));
                    }
                    None => Some(ServerMessage::Complete { id: this.id.clone() }),
                },
                Phase::Last(first, second) => return Poll::Ready(first.take().or_else(|| second.take())),
            };
            // The stream ended (or failed): its last message, then nothing.
            this.phase = Phase::Last(ended, None);
        }
    }
}

/// Starts the operation on the state the gateway serves now (and every one installed after it).
async fn start(launch: Launch) -> Started {
    let Launch { payload, gateway, persisted, caches, headers, client, init } = launch;
    let mut headers = headers.to_map();
    init_headers(&init, &mut headers);
    let installs = gateway.installs();
    let served = installs.borrow().clone();
    let mut request = GraphqlRequest {
        query: payload.query,
        document_id: None,
        operation_name: payload.operation_name,
        variables: payload.variables,
        extensions: payload.extensions,
    };
    match admit(&served.snapshot, &persisted, &mut request) {
        Some(refused) => Started::Result(refused),
        None => {
            // WebSockets are guarded by the Origin allowlist instead of the CSRF rule.
            let arrival = crate::ingress::graphql::run::Arrival { headers: &headers, client, query: None, csrf: None };
            start_operation(served, installs, &caches, &request, arrival, false, true).await
        }
    }
}

/// Request headers from the connection_init payload, which browsers use because they cannot
/// set headers on a WebSocket: string members of its `headers` object, and an `authorization`
/// (or `Authorization`) member. The upgrade request's own headers are kept unless replaced.
pub(super) fn init_headers(init: &Map<String, Json>, headers: &mut HeaderMap) {
    let mut set = |name: &str, value: &Json| {
        if let (Ok(name), Some(Ok(value))) = (
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            value.as_str().map(http::HeaderValue::from_str),
        ) {
            headers.insert(name, value);
        }
    };
    if let Some(Json::Object(extra)) = init.get("headers") {
        for (name, value) in extra {
            set(name, value);
        }
    }
    for key in ["authorization", "Authorization"] {
        if let Some(value) = init.get(key) {
            set(key, value);
        }
    }
}

/// A session's running operations by id, each with the flag its `OnDone` sets when it is
/// over; removing one aborts its stream, which the session's poll then drops.
#[derive(Default)]
pub(super) struct Running(HashMap<String, (futures_util::stream::AbortHandle, Arc<AtomicBool>)>);

impl Running {
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether an operation `id` is running (not over).
    pub(super) fn is_running(&self, id: &str) -> bool {
        self.0.get(id).is_some_and(|(_, done)| !done.load(Ordering::Acquire))
    }

    pub(super) fn insert(&mut self, id: String, abort: futures_util::stream::AbortHandle, done: Arc<AtomicBool>) {
        if let Some((previous, _)) = self.0.insert(id, (abort, done)) {
            previous.abort();
        }
    }

    /// Stops operation `id`; true if it was there.
    pub(super) fn remove(&mut self, id: &str) -> bool {
        self.0.remove(id).map(|(abort, _)| abort.abort()).is_some()
    }

    /// Forgets the operations that are over.
    pub(super) fn forget_finished(&mut self) {
        // Flags, not ids: a legacy `start` may reuse the id of an operation that ended.
        self.0.retain(|_, (_, done)| !done.load(Ordering::Acquire));
    }

    /// Stops every operation, yielding their ids.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = String> + '_ {
        self.0.drain().map(|(id, (abort, _))| {
            abort.abort();
            id
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_payload_headers_join_the_request_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", http::HeaderValue::from_static("r1"));
        let init = serde_json::json!({"headers": {"X-Tenant": "t1", "bad header": "x", "n": 1}, "Authorization": "Bearer abc"});
        let Json::Object(init) = init else { unreachable!() };
        init_headers(&init, &mut headers);
        assert_eq!(headers["x-tenant"], "t1");
        assert_eq!(headers["authorization"], "Bearer abc");
        assert_eq!(headers["x-request-id"], "r1");
        assert!(!headers.contains_key("n"));
    }
}
