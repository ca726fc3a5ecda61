//! One GraphQL WebSocket session: the protocol state machine, owned here rather than borrowed
//! from a library so every close code is the protocol's. The init timeout (4408), one init only
//! (4429), operations only after the ack (4401), unique ids among running operations (4409),
//! invalid messages (4400), messages too big (1009), a slow client (its bounded queue full:
//! 1013) and gateway shutdown (1001, without completes, so clients resubscribe elsewhere).
//! The session's one task polls its operations' message streams (`operation`) and the socket;
//! completing an operation (or closing the socket) drops its stream, which cancels its backend
//! stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SelectAll;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Map, Value as Json, json};
use tokio::sync::Notify;

use super::operation::{Counted, Launch, OnDone, Operation, Running, init_headers};
use super::protocol::{ClientMessage, Dialect, OperationPayload, ServerMessage, encode, parse};
use crate::config::SubscriptionConfig;
use crate::gateway::Gateway;
use crate::ingress::graphql::{Caches, PersistedQueries};

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

/// Why the gateway closes a socket.
struct Close(u16, String);

/// The outgoing queue: bounded; a full queue means the client does not keep up.
struct Outbox {
    queue: VecDeque<ServerMessage>,
    limit: usize,
    /// Set when a message found the queue full (the session then closes with 1013).
    overflowed: bool,
}

impl Outbox {
    /// Queues `message`; false (and the session is to close) when the client is too slow.
    fn send(&mut self, message: ServerMessage) -> bool {
        if self.queue.len() >= self.limit {
            self.overflowed = true;
            return false;
        }
        self.queue.push_back(message);
        true
    }
}

/// What the socket did.
enum Io {
    /// A message (or the end, or an error) from the client.
    Incoming(Option<Result<Message, axum::Error>>),
    /// Sending failed: the client is gone.
    Broken,
}

/// Writes what is queued (as far as the socket takes it, flushed), then waits for the client's
/// next message.
fn poll_socket(
    socket: &mut WebSocket,
    outbox: &mut Outbox,
    unflushed: &mut bool,
    dialect: Dialect,
    cx: &mut Context<'_>,
) -> Poll<Io> {
    if let Poll::Ready(Err(_)) = poll_write(socket, outbox, unflushed, dialect, cx) {
        return Poll::Ready(Io::Broken);
    }
    socket.poll_next_unpin(cx).map(Io::Incoming)
}

/// Hands the queued messages to the socket and flushes them; ready once all are written.
fn poll_write(
    socket: &mut WebSocket,
    outbox: &mut Outbox,
    unflushed: &mut bool,
    dialect: Dialect,
    cx: &mut Context<'_>,
) -> Poll<Result<(), axum::Error>> {
    while !outbox.queue.is_empty() {
        std::task::ready!(socket.poll_ready_unpin(cx))?;
        let message = outbox.queue.pop_front().expect("not empty");
        socket.start_send_unpin(Message::Text(encode(dialect, &message).into()))?;
        *unflushed = true;
    }
    if *unflushed {
        std::task::ready!(socket.poll_flush_unpin(cx))?;
        *unflushed = false;
    }
    Poll::Ready(Ok(()))
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
    let limit = config.buffer as usize;
    let state = State {
        dialect,
        context,
        config,
        outbox: Outbox { queue: VecDeque::new(), limit, overflowed: false },
        finished: Arc::new(Notify::new()),
        operations: Running::default(),
        streams: SelectAll::new(),
        init: None,
        verifying: None,
        expires_at: None,
        consumer: String::new(),
    };
    Either::Right(serve(socket, state))
}

/// A socket that offered neither subprotocol.
async fn refuse(mut socket: WebSocket) {
    close(&mut socket, 4406, "Subprotocol not acceptable").await;
}

/// The session's loop.
async fn serve(mut socket: WebSocket, mut state: State) {
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
    // The shutdown signal and the operations' end are waited on by futures that live as long
    // as the loop: made anew on every turn, each registered and unregistered itself under its
    // lock on every wake-up, twice per event delivered.
    let shutdown = until_shutdown(state.context.gateway.shutting_down());
    tokio::pin!(shutdown);
    let operation_ended = finished.notified();
    tokio::pin!(operation_ended);
    // A message handed to the socket but not yet flushed.
    let mut unflushed = false;
    let ended = loop {
        if state.outbox.overflowed {
            let reason =
                format!("slow consumer: {} messages waiting (graphql.subscriptions.buffer)", state.config.buffer);
            break Some(Close(1013, reason));
        }
        tokio::select! {
            biased;
            () = &mut shutdown => break Some(Close(1001, "the gateway is shutting down".into())),
            () = &mut init_deadline, if state.init.is_none() => {
                if dialect == Dialect::Legacy {
                    // The legacy protocol reports it with its own message before the close.
                    let message = ServerMessage::ConnectionError("Connection initialisation timeout".into());
                    let _ = socket.send(Message::Text(encode(dialect, &message).into())).await;
                }
                break Some(Close(4408, "Connection initialisation timeout".into()));
            }
            Some(message) = state.streams.next(), if !state.streams.is_empty() => {
                if state.outbox.send(message) {
                    // Written now if the socket takes it; otherwise the socket's arm goes on.
                    let written = std::future::poll_fn(|cx| poll_write(&mut socket, &mut state.outbox, &mut unflushed, dialect, cx));
                    if let Some(Err(_)) = written.now_or_never() {
                        break None;
                    }
                }
            }
            () = &mut operation_ended => {
                state.operations.forget_finished();
                operation_ended.set(finished.notified());
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
                        while let Some(message) = state.outbox.queue.pop_front() {
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
            io = std::future::poll_fn(|cx| poll_socket(&mut socket, &mut state.outbox, &mut unflushed, dialect, cx)) => match io {
                Io::Broken | Io::Incoming(None | Some(Ok(Message::Close(_)))) => break None,
                Io::Incoming(Some(Err(error))) => {
                    let text = error.to_string();
                    let too_big = text.contains("too long") || text.contains("Space limit") || text.contains("capacity");
                    break too_big.then(|| Close(1009, format!("the message is larger than {} bytes", state.config.max_message_bytes)));
                }
                Io::Incoming(Some(Ok(Message::Text(text)))) => {
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
                Io::Incoming(Some(Ok(Message::Binary(_)))) => {
                    let message = "binary messages are not part of the protocol; send JSON text";
                    if dialect == Dialect::TransportWs {
                        break Some(Close(4400, message.into()));
                    }
                    state.outbox.send(ServerMessage::ConnectionError(message.into()));
                }
                Io::Incoming(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            }
        }
    };
    // Cancel every running operation (dropping its stream) before saying goodbye.
    drop(state.streams);
    if let Some(Close(code, reason)) = ended {
        close(&mut socket, code, &reason).await;
    }
}

/// Resolves once the gateway begins to shut down (or is gone).
async fn until_shutdown(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    while shutdown.changed().await.is_ok() {
        if *shutdown.borrow() {
            return;
        }
    }
}

struct State {
    dialect: Dialect,
    context: SessionContext,
    config: SubscriptionConfig,
    outbox: Outbox,
    /// Notified when an operation is over (its flag is then set).
    finished: Arc<Notify>,
    /// Running operations by id.
    operations: Running,
    /// Their message streams, polled by the session.
    streams: SelectAll<futures_util::stream::Abortable<Operation>>,
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
                if self.operations.remove(&id) && self.dialect == Dialect::Legacy {
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
        let ids: Vec<String> = self.operations.drain().collect();
        for id in ids {
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
        if self.operations.is_running(&id) {
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
        let done_flag = done.clone();
        let on_done = OnDone { done, finished: self.finished.clone(), _counted: counted, _consumer: consumer_slot };
        let (operation, abort) =
            futures_util::stream::abortable(Operation::new(Arc::from(id.as_str()), launch, on_done));
        self.streams.push(operation);
        self.operations.insert(id, abort, done_flag);
        None
    }
}

/// Credentials and what verifying them found.
type VerifyResult = (Verify, Result<Option<Arc<crate::operation::Identity>>, crate::policy::AuthError>);

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame { code, reason: Utf8Bytes::from(reason[..end].to_owned()) };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
