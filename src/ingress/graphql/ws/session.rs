//! One GraphQL WebSocket session: the protocol state machine, owned here rather than borrowed
//! from a library so every close code is the protocol's. The init timeout (4408), one init only
//! (4429), operations only after the ack (4401), unique ids among running operations (4409),
//! invalid messages (4400), messages too big (1009), a slow client (its bounded queue full:
//! 1013) and gateway shutdown (1001, without completes, so clients resubscribe elsewhere).
//! Each operation runs in its own task; completing it (or closing the socket) drops the task,
//! which cancels its backend stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::StreamExt;
use http::HeaderMap;
use serde_json::{Map, Value as Json, json};
use tokio::sync::{Notify, mpsc};

use super::protocol::{ClientMessage, Dialect, OperationPayload, ServerMessage, encode, parse};
use crate::config::SubscriptionConfig;
use crate::gateway::Gateway;
use crate::ingress::graphql::run::{Outcome, Started, Written, start_operation};
use crate::ingress::graphql::{Caches, GraphqlRequest, PersistedQueries, admit};

/// What a session needs from the listener.
pub(crate) struct SessionContext {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) persisted: PersistedQueries,
    pub(crate) caches: Caches,
    /// The upgrade request's headers (forwarded to backends like an HTTP request's).
    pub(crate) headers: super::header_block::HeaderBlock,
    /// The client's address.
    pub(crate) client: Option<std::net::SocketAddr>,
    /// Operations running on the whole gateway.
    pub(crate) running: Arc<AtomicUsize>,
}

/// A running operation; dropping it cancels the task (and so the backend stream).
struct Running(tokio::task::AbortHandle);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts an operation on the gateway while it runs.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why the gateway closes a socket.
struct Close(u16, String);

/// The outgoing queue: bounded; a full queue means the client does not keep up.
#[derive(Clone)]
struct Outbox {
    queue: mpsc::Sender<ServerMessage>,
    overflow: Arc<Notify>,
}

impl Outbox {
    /// Queues `message`; false when the session is over or the client is too slow (the session
    /// then closes with 1013).
    fn send(&self, message: ServerMessage) -> bool {
        match self.queue.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Runs the session on `socket` until either side closes it. The session's state is built
/// here and handed to the loop as its arguments, so the long-lived future holds each piece once
/// (an async fn keeps its parameters apart from the locals they are moved into).
pub(crate) fn run_session(
    socket: WebSocket,
    dialect: Option<Dialect>,
    context: SessionContext,
) -> impl std::future::Future<Output = ()> + Send {
    use futures_util::future::Either;
    let Some(dialect) = dialect else {
        return Either::Left(refuse(socket));
    };
    let config = context.gateway.snapshot().config.graphql.subscriptions.clone();
    let (queue, outgoing) = mpsc::channel(config.buffer as usize);
    let state = State {
        dialect,
        context,
        config,
        outbox: Outbox { queue, overflow: Arc::new(Notify::new()) },
        finished: Arc::new(Notify::new()),
        operations: HashMap::new(),
        init: None,
        verifying: None,
        expires_at: None,
        consumer: String::new(),
    };
    Either::Right(serve(socket, state, outgoing))
}

/// A socket that offered neither subprotocol.
async fn refuse(mut socket: WebSocket) {
    close(&mut socket, 4406, "Subprotocol not acceptable").await;
}

/// The session's loop.
async fn serve(mut socket: WebSocket, mut state: State, mut outgoing: mpsc::Receiver<ServerMessage>) {
    let dialect = state.dialect;
    let finished = state.finished.clone();
    // Credentials being verified, and the session token's expiry.
    let mut verification: Option<futures_util::future::BoxFuture<'static, VerifyResult>> = None;
    let expiry = tokio::time::sleep(NEVER);
    tokio::pin!(expiry);
    let init_deadline = tokio::time::sleep(state.config.init_timeout.get());
    tokio::pin!(init_deadline);
    let mut keepalive = tokio::time::interval(state.config.keepalive.get());
    keepalive.reset();
    let mut shutdown = state.context.gateway.shutting_down();
    let overflow = state.outbox.overflow.clone();
    let ended = loop {
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break Some(Close(1001, "the gateway is shutting down".into()));
                }
            }
            () = overflow.notified() => {
                let reason = format!("slow consumer: {} messages waiting (graphql.subscriptions.buffer)", state.config.buffer);
                break Some(Close(1013, reason));
            }
            () = &mut init_deadline, if state.init.is_none() => {
                if dialect == Dialect::Legacy {
                    // The legacy protocol reports it with its own message before the close.
                    let message = ServerMessage::ConnectionError("Connection initialisation timeout".into());
                    let _ = socket.send(Message::Text(encode(dialect, &message).into())).await;
                }
                break Some(Close(4408, "Connection initialisation timeout".into()));
            }
            Some(message) = outgoing.recv() => {
                if socket.send(Message::Text(encode(dialect, &message).into())).await.is_err() {
                    break None;
                }
            }
            () = finished.notified() => {
                // Flags, not ids: a legacy `start` may reuse the id of an operation that ended.
                state.operations.retain(|_, (_, done)| !done.load(Ordering::Acquire));
            }
            _ = keepalive.tick() => {
                let sent = match dialect {
                    Dialect::TransportWs => socket.send(Message::Ping(bytes::Bytes::new())).await,
                    Dialect::Legacy if state.init.is_some() => {
                        socket.send(Message::Text(encode(dialect, &ServerMessage::KeepAlive).into())).await
                    }
                    Dialect::Legacy => Ok(()),
                };
                if sent.is_err() {
                    break None;
                }
            }
            verified = async { verification.as_mut().expect("armed").await }, if verification.is_some() => {
                verification = None;
                match state.verified(verified) {
                    Ok(Some(at)) => expiry.as_mut().reset(tokio::time::Instant::now() + until_unix(at)),
                    Ok(None) => {}
                    Err(close) => {
                        // What is queued (a legacy connection_error) goes out before the close.
                        while let Ok(message) = outgoing.try_recv() {
                            let _ = socket.send(Message::Text(encode(dialect, &message).into())).await;
                        }
                        break Some(close);
                    }
                }
            }
            () = &mut expiry, if state.expires_at.is_some() => {
                state.expire();
                expiry.as_mut().reset(tokio::time::Instant::now() + NEVER);
            }
            incoming = socket.recv() => match incoming {
                None | Some(Ok(Message::Close(_))) => break None,
                Some(Err(error)) => {
                    let text = error.to_string();
                    let too_big = text.contains("too long") || text.contains("Space limit") || text.contains("capacity");
                    break too_big.then(|| Close(1009, format!("the message is larger than {} bytes", state.config.max_message_bytes)));
                }
                Some(Ok(Message::Text(text))) => {
                    if text.len() > state.config.max_message_bytes as usize {
                        break Some(Close(1009, format!("the message is larger than {} bytes", state.config.max_message_bytes)));
                    }
                    if let Some(close) = state.handle(&text) {
                        break Some(close);
                    }
                    if let Some(verify) = state.verifying.take() {
                        verification = Some(state.verification(verify));
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let message = "binary messages are not part of the protocol; send JSON text";
                    if dialect == Dialect::TransportWs {
                        break Some(Close(4400, message.into()));
                    }
                    state.outbox.send(ServerMessage::ConnectionError(message.into()));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            }
        }
    };
    // Cancel every running operation before saying goodbye.
    state.operations.clear();
    if let Some(Close(code, reason)) = ended {
        close(&mut socket, code, &reason).await;
    }
}

struct State {
    dialect: Dialect,
    context: SessionContext,
    config: SubscriptionConfig,
    outbox: Outbox,
    /// Notified when an operation's task ends (its flag is then set).
    finished: Arc<Notify>,
    /// Running operations by id, with a flag their task sets when it has finished.
    operations: HashMap<String, (Running, Arc<std::sync::atomic::AtomicBool>)>,
    /// The connection_init payload, once received.
    init: Option<Map<String, Json>>,
    /// Credentials waiting to be verified: connection_init's payload (then the ack), or a
    /// ping's fresh token (`Refresh`).
    verifying: Option<Verify>,
    /// When the session's token expires (Unix seconds), if it does.
    expires_at: Option<u64>,
    /// Whose operations these are (graphql.subscriptions.max_per_consumer): the verified
    /// identity, else the client's address.
    consumer: String,
}

/// Credentials the session must verify before it goes on.
enum Verify {
    /// connection_init's payload: acknowledged once its credentials verify.
    Init(Map<String, Json>),
    /// A ping carrying a fresh token (`{"type":"ping","payload":{"authorization":"Bearer …"}}`).
    Refresh(Map<String, Json>),
}

impl Verify {
    fn payload(&self) -> &Map<String, Json> {
        match self {
            Verify::Init(payload) | Verify::Refresh(payload) => payload,
        }
    }
}

/// A timer that is not armed waits this long.
const NEVER: std::time::Duration = std::time::Duration::from_secs(86_400 * 365 * 30);

/// How long from now until Unix time `at` (zero when past).
fn until_unix(at: u64) -> std::time::Duration {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    std::time::Duration::from_secs(at).saturating_sub(now)
}

impl State {
    /// Handles one client message; Some when the socket must close.
    fn handle(&mut self, text: &str) -> Option<Close> {
        let message = match parse(self.dialect, text) {
            Ok(message) => message,
            Err(why) if self.dialect == Dialect::TransportWs => return Some(Close(4400, why)),
            Err(why) => {
                self.outbox.send(ServerMessage::ConnectionError(why));
                return None;
            }
        };
        match message {
            ClientMessage::Init(payload) => {
                if self.init.is_some() {
                    return match self.dialect {
                        Dialect::TransportWs => Some(Close(4429, "Too many initialisation requests".into())),
                        Dialect::Legacy => {
                            self.outbox
                                .send(ServerMessage::ConnectionError("the connection is already initialised".into()));
                            None
                        }
                    };
                }
                if self.verifying.is_some() {
                    return Some(Close(4429, "Too many initialisation requests".into()));
                }
                // Acknowledged once its credentials verify.
                self.verifying = Some(Verify::Init(payload));
            }
            ClientMessage::Ping(payload) => {
                // A ping may carry a fresh token for a session whose token will expire.
                if let Some(Json::Object(fresh)) = &payload
                    && self.init.is_some()
                    && (fresh.contains_key("authorization") || fresh.contains_key("Authorization"))
                {
                    self.verifying = Some(Verify::Refresh(fresh.clone()));
                }
                self.outbox.send(ServerMessage::Pong(payload.map(Box::new)));
            }
            ClientMessage::Pong => {}
            ClientMessage::Subscribe { id, payload } => return self.subscribe(id, payload),
            ClientMessage::Complete { id } => {
                if self.operations.remove(&id).is_some() && self.dialect == Dialect::Legacy {
                    self.outbox.send(ServerMessage::Complete { id: id.into() });
                }
            }
            ClientMessage::Terminate => return Some(Close(1000, "terminated by the client".into())),
        }
        None
    }

    /// Verifies `verify`'s credentials (with the upgrade request's headers).
    fn verification(&self, verify: Verify) -> futures_util::future::BoxFuture<'static, VerifyResult> {
        let auth = self.context.gateway.snapshot().auth.clone();
        let mut headers = self.context.headers.to_map();
        init_headers(verify.payload(), &mut headers);
        Box::pin(async move {
            let verified = auth.authenticate(crate::policy::Credentials { headers: &headers, query: None }).await;
            (verify, verified)
        })
    }

    /// Goes on after a verification: the ack for connection_init, the new expiry for a
    /// refresh; 4403 (legacy: connection_error, then the close) when the credentials fail.
    /// Returns the expiry to arm, if any.
    fn verified(&mut self, (verify, verified): VerifyResult) -> Result<Option<u64>, Close> {
        let identity = match verified {
            Ok(identity) => identity,
            Err(error) => {
                if self.dialect == Dialect::Legacy {
                    self.outbox.send(ServerMessage::ConnectionError(error.message.clone()));
                }
                return Err(Close(4403, format!("Forbidden: {}", error.message)));
            }
        };
        match verify {
            Verify::Init(payload) => {
                self.init = Some(payload);
                self.outbox.send(ServerMessage::Ack);
                if self.dialect == Dialect::Legacy {
                    self.outbox.send(ServerMessage::KeepAlive);
                }
            }
            Verify::Refresh(fresh) => {
                // Operations started from now on carry the fresh token.
                if let Some(init) = &mut self.init {
                    for (key, value) in fresh {
                        init.insert(key, value);
                    }
                }
            }
        }
        self.consumer = match &identity {
            Some(identity) => identity.key(),
            None => self.context.client.map(|c| c.ip().to_string()).unwrap_or_else(|| "anonymous".into()),
        };
        self.expires_at = identity.and_then(|i| i.expires_at);
        Ok(self.expires_at)
    }

    /// The session's token expired: every running operation ends with UNAUTHENTICATED; new
    /// ones are refused until a fresh token arrives.
    fn expire(&mut self) {
        self.expires_at = None;
        let error = json!({"message": "the token has expired", "extensions": {"code": "UNAUTHENTICATED"}});
        for (id, _) in self.operations.drain() {
            self.outbox.send(ServerMessage::Error { id: id.into(), errors: vec![error.clone()] });
        }
    }

    fn subscribe(&mut self, id: String, payload: OperationPayload) -> Option<Close> {
        if self.init.is_none() {
            if self.dialect == Dialect::TransportWs {
                return Some(Close(4401, "Unauthorized".into()));
            }
            let error =
                json!({"message": "send connection_init before operations", "extensions": {"code": "BAD_REQUEST"}});
            self.outbox.send(ServerMessage::Error { id: id.into(), errors: vec![error] });
            return None;
        }
        if self.operations.get(&id).is_some_and(|(_, done)| !done.load(Ordering::Acquire)) {
            if self.dialect == Dialect::TransportWs {
                return Some(Close(4409, format!("Subscriber for {id} already exists")));
            }
            // The legacy protocol restarts an operation whose id is reused.
            self.operations.remove(&id);
        }
        let refuse = |message: String| json!({"message": message, "extensions": {"code": crate::error::ErrorCode::RateLimited.graphql_code()}});
        if self.operations.len() >= self.config.max_per_connection as usize {
            let message = format!(
                "this socket already runs {} operations (graphql.subscriptions.max_per_connection)",
                self.operations.len()
            );
            self.outbox.send(ServerMessage::Error { id: id.into(), errors: vec![refuse(message)] });
            return None;
        }
        let limit = self.config.max_per_consumer as usize;
        let consumer_slot = match self.context.caches.per_consumer.enter(&self.consumer, limit) {
            Ok(slot) => slot,
            Err(running) => {
                let message = format!(
                    "this client already runs {running} operations over its sockets (graphql.subscriptions.max_per_consumer)"
                );
                self.outbox.send(ServerMessage::Error { id: id.into(), errors: vec![refuse(message)] });
                return None;
            }
        };
        let running = self.context.running.fetch_add(1, Ordering::AcqRel);
        let counted = Counted(self.context.running.clone());
        if running >= self.config.max_total as usize {
            drop(counted);
            let message = format!("the gateway already runs {running} operations (graphql.subscriptions.max_total)");
            self.outbox.send(ServerMessage::Error { id: id.into(), errors: vec![refuse(message)] });
            return None;
        }
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let launch = Launch {
            payload,
            gateway: self.context.gateway.clone(),
            persisted: self.context.persisted.clone(),
            caches: self.context.caches.clone(),
            headers: self.context.headers.clone(),
            client: self.context.client,
            init: self.init.clone().unwrap_or_default(),
        };
        let task = tokio::spawn(run_operation(
            Arc::from(id.as_str()),
            Box::pin(start(launch)),
            self.outbox.clone(),
            OnDone { done: done.clone(), finished: self.finished.clone(), _counted: counted, _consumer: consumer_slot },
        ));
        self.operations.insert(id, (Running(task.abort_handle()), done));
        None
    }
}

/// Credentials and what verifying them found.
type VerifyResult = (Verify, Result<Option<Arc<crate::operation::Identity>>, crate::policy::AuthError>);

/// Tells the session an operation finished (also when its task is cancelled).
struct OnDone {
    done: Arc<std::sync::atomic::AtomicBool>,
    finished: Arc<Notify>,
    _counted: Counted,
    _consumer: super::consumers::ConsumerSlot,
}

impl Drop for OnDone {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        self.finished.notify_one();
    }
}

/// What an operation starts from: the client's payload and the session's context.
struct Launch {
    payload: OperationPayload,
    gateway: Arc<Gateway>,
    persisted: PersistedQueries,
    caches: Caches,
    headers: super::header_block::HeaderBlock,
    client: Option<std::net::SocketAddr>,
    init: Map<String, Json>,
}

/// Runs one operation: starts it, then sends what it gives. The start (authentication,
/// parsing, planning, opening the backend stream) is a large future, boxed, so it is freed once
/// started and a long-lived subscription's task keeps only its stream and outbox.
async fn run_operation(
    id: Arc<str>,
    starting: futures_util::future::BoxFuture<'static, Started>,
    outbox: Outbox,
    done: OnDone,
) {
    let started = starting.await;
    deliver(id, started, outbox, done).await;
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

/// Sends what a started operation gives: its result, or its events until the stream ends.
async fn deliver(id: Arc<str>, started: Started, outbox: Outbox, _done: OnDone) {
    match started {
        Started::Result(Outcome::Ran(body)) => {
            if outbox.send(ServerMessage::Next { id: id.clone(), payload: body.to_string().into() }) {
                outbox.send(ServerMessage::Complete { id });
            }
        }
        Started::Result(Outcome::Written(Written { body, .. }) | Outcome::Cached(body, _)) => {
            if outbox.send(ServerMessage::Next { id: id.clone(), payload: String::from_utf8_lossy(&body).into() }) {
                outbox.send(ServerMessage::Complete { id });
            }
        }
        Started::Result(Outcome::Refused(body)) => {
            let errors = match body.get("errors") {
                Some(Json::Array(errors)) => errors.clone(),
                _ => vec![body],
            };
            outbox.send(ServerMessage::Error { id, errors });
        }
        Started::Result(Outcome::Http(refusal)) => {
            outbox.send(ServerMessage::Error { id, errors: refusal.errors() });
        }
        Started::Failed(errors) => {
            outbox.send(ServerMessage::Error { id, errors });
        }
        Started::Incremental(mut payloads) => {
            while let Some(payload) = payloads.next().await {
                if !outbox.send(ServerMessage::Next { id: id.clone(), payload: payload.to_string().into() }) {
                    return;
                }
            }
            outbox.send(ServerMessage::Complete { id });
        }
        Started::Events(mut events) => {
            while let Some(event) = events.next().await {
                match event {
                    Ok(payload) => {
                        if !outbox.send(ServerMessage::Next { id: id.clone(), payload }) {
                            return;
                        }
                    }
                    Err(errors) => {
                        outbox.send(ServerMessage::Error { id, errors });
                        return;
                    }
                }
            }
            outbox.send(ServerMessage::Complete { id });
        }
    }
}

/// Request headers from the connection_init payload, which browsers use because they cannot
/// set headers on a WebSocket: string members of its `headers` object, and an `authorization`
/// (or `Authorization`) member. The upgrade request's own headers are kept unless replaced.
fn init_headers(init: &Map<String, Json>, headers: &mut HeaderMap) {
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

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame { code, reason: Utf8Bytes::from(reason[..end].to_owned()) };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_payload_headers_join_the_request_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", http::HeaderValue::from_static("r1"));
        let init = json!({"headers": {"X-Tenant": "t1", "bad header": "x", "n": 1}, "Authorization": "Bearer abc"});
        let Json::Object(init) = init else { unreachable!() };
        init_headers(&init, &mut headers);
        assert_eq!(headers["x-tenant"], "t1");
        assert_eq!(headers["authorization"], "Bearer abc");
        assert_eq!(headers["x-request-id"], "r1");
        assert!(!headers.contains_key("n"));
    }
}
