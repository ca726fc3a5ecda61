//! The two GraphQL-over-WebSocket dialects, as messages: graphql-transport-ws (the graphql-ws
//! library's PROTOCOL.md) and the legacy subscriptions-transport-ws (subprotocol `graphql-ws`).
//! Parsing is strict: a message that is not one of the dialect's is an error naming why.

use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

/// Which protocol a socket speaks, chosen by Sec-WebSocket-Protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `graphql-transport-ws`.
    TransportWs,
    /// `graphql-ws` (subscriptions-transport-ws).
    Legacy,
}

impl Dialect {
    /// The subprotocol name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::TransportWs => "graphql-transport-ws",
            Dialect::Legacy => "graphql-ws",
        }
    }

    /// The dialect the client offers first among those we speak.
    pub(crate) fn choose(offered: &str) -> Option<Dialect> {
        offered.split(',').map(str::trim).find_map(|p| match p {
            "graphql-transport-ws" => Some(Dialect::TransportWs),
            "graphql-ws" => Some(Dialect::Legacy),
            _ => None,
        })
    }
}

/// An operation request: `subscribe` (transport-ws) or `start` (legacy).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OperationPayload {
    pub(crate) query: String,
    pub(crate) operation_name: Option<String>,
    pub(crate) variables: Map<String, Json>,
    pub(crate) extensions: Map<String, Json>,
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientMessage {
    /// `connection_init`, with its payload (an object, or none).
    Init(Map<String, Json>),
    /// `ping` (transport-ws), with its payload echoed in the pong.
    Ping(Option<Json>),
    /// `pong` (transport-ws).
    Pong,
    /// `subscribe` / `start`.
    Subscribe { id: String, payload: OperationPayload },
    /// `complete` (transport-ws) / `stop` (legacy).
    Complete { id: String },
    /// `connection_terminate` (legacy).
    Terminate,
}

/// What the gateway sends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ServerMessage {
    /// `connection_ack`.
    Ack,
    /// `pong` (transport-ws), echoing the ping's payload (boxed: queued messages stay small).
    Pong(Option<Box<Json>>),
    /// `ka` (legacy keep-alive).
    KeepAlive,
    /// `next` / `data`: one execution result, already serialised (shared by every subscriber
    /// of a fanned-out subscription, so it is serialised once).
    /// The id is shared by every message of its operation.
    Next { id: Arc<str>, payload: Arc<str> },
    /// `error`: the operation failed before or while running; it is over.
    Error { id: Arc<str>, errors: Vec<Json> },
    /// `complete`.
    Complete { id: Arc<str> },
    /// `connection_error` (legacy): a refused init or an unreadable message.
    ConnectionError(String),
}

/// Parses one text message in `dialect`.
pub(crate) fn parse(dialect: Dialect, text: &str) -> Result<ClientMessage, String> {
    let Ok(Json::Object(mut message)) = serde_json::from_str::<Json>(text) else {
        return Err("the message is not a JSON object".into());
    };
    let kind = match message.remove("type") {
        Some(Json::String(kind)) => kind,
        _ => return Err("the message has no `type`".into()),
    };
    let id = |message: &mut Map<String, Json>| match message.remove("id") {
        Some(Json::String(id)) if !id.is_empty() => Ok(id),
        _ => Err(format!("`{kind}` needs a non-empty string `id`")),
    };
    match (dialect, kind.as_str()) {
        (_, "connection_init") => match message.remove("payload") {
            None | Some(Json::Null) => Ok(ClientMessage::Init(Map::new())),
            Some(Json::Object(payload)) => Ok(ClientMessage::Init(payload)),
            Some(_) => Err("the `connection_init` payload must be an object".into()),
        },
        (Dialect::TransportWs, "ping") => Ok(ClientMessage::Ping(message.remove("payload"))),
        (Dialect::TransportWs, "pong") => Ok(ClientMessage::Pong),
        (Dialect::TransportWs, "subscribe") | (Dialect::Legacy, "start") => {
            let id = id(&mut message)?;
            let payload = operation_payload(message.remove("payload"), &kind)?;
            Ok(ClientMessage::Subscribe { id, payload })
        }
        (Dialect::TransportWs, "complete") | (Dialect::Legacy, "stop") => {
            Ok(ClientMessage::Complete { id: id(&mut message)? })
        }
        (Dialect::Legacy, "connection_terminate") => Ok(ClientMessage::Terminate),
        (dialect, other) => Err(format!("`{other}` is not a {} message", dialect.name())),
    }
}

fn operation_payload(payload: Option<Json>, kind: &str) -> Result<OperationPayload, String> {
    let Some(Json::Object(mut payload)) = payload else {
        return Err(format!("`{kind}` needs a payload object with a `query`"));
    };
    let query = match payload.remove("query") {
        Some(Json::String(query)) => query,
        None | Some(Json::Null) => String::new(),
        Some(_) => return Err("`query` must be a string".into()),
    };
    let operation_name = match payload.remove("operationName") {
        Some(Json::String(name)) => Some(name),
        None | Some(Json::Null) => None,
        Some(_) => return Err("`operationName` must be a string".into()),
    };
    let object = |value: Option<Json>, name: &str| match value {
        Some(Json::Object(object)) => Ok(object),
        None | Some(Json::Null) => Ok(Map::new()),
        Some(_) => Err(format!("`{name}` must be an object")),
    };
    let variables = object(payload.remove("variables"), "variables")?;
    let extensions = object(payload.remove("extensions"), "extensions")?;
    Ok(OperationPayload { query, operation_name, variables, extensions })
}

/// `message` as text in `dialect`.
pub(crate) fn encode(dialect: Dialect, message: &ServerMessage) -> String {
    let json = match (dialect, message) {
        (_, ServerMessage::Ack) => json!({"type": "connection_ack"}),
        (_, ServerMessage::Pong(None)) => json!({"type": "pong"}),
        (_, ServerMessage::Pong(Some(payload))) => json!({"type": "pong", "payload": payload}),
        (_, ServerMessage::KeepAlive) => json!({"type": "ka"}),
        (dialect, ServerMessage::Next { id, payload }) => {
            // Written once per subscriber per event: straight into one buffer of the right size.
            let kind = if dialect == Dialect::TransportWs { "next" } else { "data" };
            let mut text = Vec::with_capacity(id.len() + payload.len() + 36);
            text.extend_from_slice(b"{\"id\":");
            serde_json::to_writer(&mut text, &**id).expect("a string serialises");
            text.extend_from_slice(b",\"type\":\"");
            text.extend_from_slice(kind.as_bytes());
            text.extend_from_slice(b"\",\"payload\":");
            text.extend_from_slice(payload.as_bytes());
            text.push(b'}');
            return String::from_utf8(text).expect("JSON text is UTF-8");
        }
        (Dialect::TransportWs, ServerMessage::Error { id, errors }) => {
            json!({"id": &**id, "type": "error", "payload": errors})
        }
        // The legacy protocol's error payload is one error object.
        (Dialect::Legacy, ServerMessage::Error { id, errors }) => {
            json!({"id": &**id, "type": "error", "payload": errors.first().cloned().unwrap_or(json!({"message": "error"}))})
        }
        (_, ServerMessage::Complete { id }) => json!({"id": &**id, "type": "complete"}),
        (_, ServerMessage::ConnectionError(message)) => {
            json!({"type": "connection_error", "payload": {"message": message}})
        }
    };
    json.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_per_dialect() {
        use ClientMessage::*;
        use Dialect::*;
        let payload = OperationPayload {
            query: "{ a }".into(),
            operation_name: Some("A".into()),
            variables: Map::from_iter([("x".to_owned(), json!(1))]),
            extensions: Map::new(),
        };
        let table: Vec<(Dialect, &str, Result<ClientMessage, &str>)> = vec![
            (TransportWs, r#"{"type":"connection_init"}"#, Ok(Init(Map::new()))),
            (
                Legacy,
                r#"{"type":"connection_init","payload":{"a":1}}"#,
                Ok(Init(Map::from_iter([("a".to_owned(), json!(1))]))),
            ),
            (
                TransportWs,
                r#"{"type":"connection_init","payload":3}"#,
                Err("the `connection_init` payload must be an object"),
            ),
            (TransportWs, r#"{"type":"ping","payload":{"t":1}}"#, Ok(Ping(Some(json!({"t": 1}))))),
            (TransportWs, r#"{"type":"pong"}"#, Ok(Pong)),
            (
                TransportWs,
                r#"{"id":"1","type":"subscribe","payload":{"query":"{ a }","operationName":"A","variables":{"x":1}}}"#,
                Ok(Subscribe { id: "1".into(), payload: payload.clone() }),
            ),
            (
                Legacy,
                r#"{"id":"1","type":"start","payload":{"query":"{ a }","operationName":"A","variables":{"x":1}}}"#,
                Ok(Subscribe { id: "1".into(), payload }),
            ),
            (TransportWs, r#"{"id":"1","type":"complete"}"#, Ok(Complete { id: "1".into() })),
            (Legacy, r#"{"id":"1","type":"stop"}"#, Ok(Complete { id: "1".into() })),
            (Legacy, r#"{"type":"connection_terminate"}"#, Ok(Terminate)),
            (TransportWs, r#"{"type":"start","id":"1"}"#, Err("`start` is not a graphql-transport-ws message")),
            (Legacy, r#"{"type":"subscribe","id":"1"}"#, Err("`subscribe` is not a graphql-ws message")),
            (
                TransportWs,
                r#"{"type":"subscribe","payload":{"query":"{a}"}}"#,
                Err("`subscribe` needs a non-empty string `id`"),
            ),
            (TransportWs, r#"{"type":"subscribe","id":"1"}"#, Err("`subscribe` needs a payload object with a `query`")),
            (TransportWs, r#"{"type":"subscribe","id":"1","payload":{"query":1}}"#, Err("`query` must be a string")),
            (TransportWs, r#"[1]"#, Err("the message is not a JSON object")),
            (TransportWs, r#"{"id":"1"}"#, Err("the message has no `type`")),
        ];
        for (dialect, text, want) in table {
            let got = parse(dialect, text);
            assert_eq!(got, want.map_err(str::to_owned), "{dialect:?} {text}");
        }
    }

    #[test]
    fn server_messages_encode_per_dialect() {
        use Dialect::*;
        let next = ServerMessage::Next { id: "7".into(), payload: json!({"data": {"a": 1}}).to_string().into() };
        let error = ServerMessage::Error { id: "7".into(), errors: vec![json!({"message": "no"})] };
        let table = [
            (TransportWs, next.clone(), json!({"id": "7", "type": "next", "payload": {"data": {"a": 1}}})),
            (Legacy, next, json!({"id": "7", "type": "data", "payload": {"data": {"a": 1}}})),
            (TransportWs, error.clone(), json!({"id": "7", "type": "error", "payload": [{"message": "no"}]})),
            (Legacy, error, json!({"id": "7", "type": "error", "payload": {"message": "no"}})),
            // Ids are any string a client chose: quotes, backslashes, controls and non-ASCII.
            (
                TransportWs,
                ServerMessage::Next { id: "a\"b\\c\u{1}é".into(), payload: "{\"data\":null}".into() },
                json!({"id": "a\"b\\c\u{1}é", "type": "next", "payload": {"data": null}}),
            ),
            (TransportWs, ServerMessage::Complete { id: "7".into() }, json!({"id": "7", "type": "complete"})),
            (Legacy, ServerMessage::KeepAlive, json!({"type": "ka"})),
            (TransportWs, ServerMessage::Pong(Some(Box::new(json!(1)))), json!({"type": "pong", "payload": 1})),
            (
                Legacy,
                ServerMessage::ConnectionError("bad".into()),
                json!({"type": "connection_error", "payload": {"message": "bad"}}),
            ),
        ];
        for (dialect, message, want) in table {
            let text = encode(dialect, &message);
            assert_eq!(serde_json::from_str::<Json>(&text).expect("json"), want, "{dialect:?} {message:?}");
        }
        assert_eq!(Dialect::choose("foo, graphql-ws, graphql-transport-ws"), Some(Dialect::Legacy));
        assert_eq!(Dialect::choose("graphql-transport-ws"), Some(Dialect::TransportWs));
        assert_eq!(Dialect::choose("mqtt"), None);
    }
}
