//! Subscriptions to a GraphQL source over WebSocket, as a graphql-transport-ws client
//! (tokio-tungstenite): connection_init, the ack, one `subscribe`, then its `next` payloads until
//! `complete`. When the socket drops without a `complete`, the client reconnects with
//! exponential backoff and subscribes again — events sent while it was away are lost — and
//! gives up with UNAVAILABLE after `RECONNECT_ATTEMPTS` failed attempts in a row.

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value as Json, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::UpstreamError;

/// Failed reconnection attempts in a row before the subscription fails.
pub const RECONNECT_ATTEMPTS: u32 = 6;
/// The first backoff; each next one doubles, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the source has to acknowledge connection_init.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// One upstream subscription.
#[derive(Clone)]
pub struct WsSubscription {
    /// The cluster (for errors).
    pub cluster: String,
    /// `ws://host:port/path`.
    pub url: String,
    /// The operation and its variables.
    pub query: String,
    /// Its variables.
    pub variables: Map<String, Json>,
    /// connection_init's payload (forwarded credentials).
    pub init: Map<String, Json>,
    /// TLS for `wss://` (the cluster's CA and client certificate); None: the system's roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for WsSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSubscription").field("cluster", &self.cluster).field("url", &self.url).finish_non_exhaustive()
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the source sent for the subscription.
#[derive(Debug, Clone)]
pub enum WsEvent {
    /// A `next` payload (`{data, errors}`).
    Next(Json),
    /// An `error` payload (the operation failed; it is over).
    Error(Vec<Json>),
}

impl WsSubscription {
    /// Connects and subscribes; resolves once the subscription is sent, so a source that cannot
    /// be reached fails here. The stream ends on `complete` and after an `error` event.
    pub async fn open(self) -> Result<BoxStream<'static, Result<WsEvent, UpstreamError>>, UpstreamError> {
        let socket = self.connect().await?;
        let state = Some((self, socket));
        Ok(futures_util::stream::unfold(state, |state| async move {
            let (subscription, mut socket) = state?;
            loop {
                match next_event(&mut socket).await {
                    Step::Event(WsEvent::Next(payload)) => {
                        return Some((Ok(WsEvent::Next(payload)), Some((subscription, socket))));
                    }
                    Step::Event(WsEvent::Error(errors)) => return Some((Ok(WsEvent::Error(errors)), None)),
                    Step::Complete => return None,
                    Step::Dropped => match subscription.reconnect().await {
                        Ok(fresh) => socket = fresh,
                        Err(error) => return Some((Err(error), None)),
                    },
                }
            }
        })
        .boxed())
    }

    async fn reconnect(&self) -> Result<Socket, UpstreamError> {
        let mut backoff = FIRST_BACKOFF;
        let mut last = None;
        for _ in 0..RECONNECT_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            match self.connect().await {
                Ok(socket) => return Ok(socket),
                Err(error) => last = Some(error),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tracing::debug!(cluster = self.cluster, error = ?last, "upstream subscription gave up reconnecting");
        Err(UpstreamError::Unavailable { cluster: self.cluster.clone() })
    }

    async fn connect(&self) -> Result<Socket, UpstreamError> {
        let unavailable = |error: &dyn std::fmt::Display| UpstreamError::unreachable(&self.cluster, error);
        let mut request = self.url.as_str().into_client_request().map_err(|e| unavailable(&e))?;
        request
            .headers_mut()
            .insert(http::header::SEC_WEBSOCKET_PROTOCOL, http::HeaderValue::from_static("graphql-transport-ws"));
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)
            .await
            .map_err(|e| unavailable(&e))?;
        let init = json!({"type": "connection_init", "payload": self.init});
        socket.send(Message::Text(init.to_string().into())).await.map_err(|e| unavailable(&e))?;
        let acked = tokio::time::timeout(ACK_TIMEOUT, async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let message: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
                        match message["type"].as_str() {
                            Some("connection_ack") => return Ok(()),
                            Some("ping") => {
                                let _ = socket.send(Message::Text(json!({"type": "pong"}).to_string().into())).await;
                            }
                            _ => return Err(format!("the source answered connection_init with {text}")),
                        }
                    }
                    Some(Ok(Message::Close(frame))) => return Err(format!("the source closed the socket: {frame:?}")),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.to_string()),
                    None => return Err("the source closed the socket".into()),
                }
            }
        })
        .await;
        match acked {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(unavailable(&why)),
            Err(_) => return Err(unavailable(&"no connection_ack in time")),
        }
        let subscribe =
            json!({"id": "1", "type": "subscribe", "payload": {"query": self.query, "variables": self.variables}});
        socket.send(Message::Text(subscribe.to_string().into())).await.map_err(|e| unavailable(&e))?;
        Ok(socket)
    }
}

enum Step {
    Event(WsEvent),
    Complete,
    Dropped,
}

async fn next_event(socket: &mut Socket) -> Step {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let Ok(mut message) = serde_json::from_str::<Map<String, Json>>(&text) else { continue };
                match message.get("type").and_then(Json::as_str) {
                    Some("next") => return Step::Event(WsEvent::Next(message.remove("payload").unwrap_or(Json::Null))),
                    Some("error") => {
                        let errors = match message.remove("payload") {
                            Some(Json::Array(errors)) => errors,
                            Some(other) => vec![other],
                            None => vec![json!({"message": "the source reported an error"})],
                        };
                        return Step::Event(WsEvent::Error(errors));
                    }
                    Some("complete") => return Step::Complete,
                    Some("ping") => {
                        let _ = socket.send(Message::Text(json!({"type": "pong"}).to_string().into())).await;
                    }
                    _ => {}
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Step::Dropped,
            Some(Ok(_)) => {}
        }
    }
}
