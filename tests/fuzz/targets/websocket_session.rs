//! The GraphQL WebSocket session state machine, driven through a real gateway (the demo
//! backend behind it) by a real WebSocket client. The first byte picks the subprotocol
//! (graphql-transport-ws or the legacy graphql-ws) and whether a `connection_init` goes first;
//! the rest, split at each 0 byte, is the client's messages (text when UTF-8, else binary).
//!
//! Every server message must be a JSON object of one of the protocol's types, every close code
//! one the protocol (or RFC 6455) defines with a reason of at most 123 bytes, and no gateway
//! task may panic.

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    url: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        super::watch_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let url = runtime.block_on(async {
            let backend =
                switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
            let sources = switchyard::snapshot::SnapshotSources {
                embedded: vec![switchyard::demo::demo_registration().expect("demo")],
                no_descriptor_dir: true,
                schemas: Some("/nonexistent".into()),
                backends: vec![switchyard::snapshot::BackendFlag {
                    name: "catalog.v1".into(),
                    urls: vec![backend.url()],
                }],
                listen: Some("127.0.0.1:0".parse().expect("addr")),
                admin: Some("127.0.0.1:0".parse().expect("addr")),
                ..Default::default()
            };
            let building = sources.clone();
            let snapshot = tokio::task::spawn_blocking(move || switchyard::snapshot::build_snapshot(&building, 1))
                .await
                .expect("build")
                .expect("snapshot");
            let server = switchyard::server::start_server(switchyard::gateway::Gateway::new(snapshot, sources))
                .await
                .expect("server");
            let url = format!("ws://{}/graphql", server.gateway_addr);
            // Both live as long as the process.
            std::mem::forget(server);
            std::mem::forget(backend);
            url
        });
        Fixture { runtime, url }
    })
}

const TRANSPORT_WS_TYPES: &[&str] = &["connection_ack", "ping", "pong", "next", "error", "complete"];
const LEGACY_TYPES: &[&str] = &["connection_ack", "connection_error", "ka", "data", "error", "complete"];
const CLOSE_CODES: &[u16] =
    &[1000, 1001, 1003, 1007, 1008, 1009, 1011, 1013, 4400, 4401, 4403, 4406, 4408, 4409, 4429, 4500];

pub(crate) fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    let (protocol, types) =
        if mode & 1 == 0 { ("graphql-transport-ws", TRANSPORT_WS_TYPES) } else { ("graphql-ws", LEGACY_TYPES) };
    let mut messages: Vec<Message> = Vec::new();
    if mode & 2 != 0 {
        messages.push(Message::text(r#"{"type":"connection_init"}"#));
    }
    for part in super::parts(rest, 0).into_iter().filter(|p| !p.is_empty()).take(64) {
        messages.push(match std::str::from_utf8(part) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(part.to_vec()),
        });
    }
    fixture.runtime.block_on(async {
        let mut request = fixture.url.as_str().into_client_request().expect("request");
        request.headers_mut().insert("sec-websocket-protocol", protocol.parse().expect("header"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the gateway accepts WebSockets");
        for message in messages {
            if socket.send(message).await.is_err() {
                break;
            }
        }
        loop {
            let next = tokio::time::timeout(Duration::from_millis(100), socket.next()).await;
            let Ok(Some(Ok(frame))) = next else { break };
            match frame {
                Message::Text(text) => {
                    let value: serde_json::Value =
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
                    let kind = value["type"].as_str().unwrap_or_else(|| panic!("no type: {text}"));
                    assert!(types.contains(&kind), "{protocol}: unknown message type {kind}: {text}");
                }
                Message::Close(Some(close)) => {
                    let code = u16::from(close.code);
                    assert!(CLOSE_CODES.contains(&code), "close code {code} ({})", close.reason);
                    assert!(close.reason.len() <= 123, "close reason of {} bytes", close.reason.len());
                    break;
                }
                Message::Close(None) => break,
                Message::Binary(_) => panic!("a binary frame from the server"),
                _ => {}
            }
        }
        let _ = socket.close(None).await;
    });
    super::assert_no_panic("a WebSocket session");
}
