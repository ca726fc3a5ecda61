//! GraphQL over WebSocket with real tokio-tungstenite clients against the whole demo: both
//! protocols' messages, every close code the gateway owns, subscriptions fed by the catalog's
//! WatchBooks stream with REST authors stitched into each event, and cancellation reaching the
//! backend.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{HANG, TestGateway};

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(gateway: &TestGateway, protocol: Option<&str>) -> Socket {
    let url = format!("{}/graphql", gateway.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert("sec-websocket-protocol", protocol.parse().expect("header"));
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    let chosen = response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
    match protocol {
        Some("graphql-transport-ws" | "graphql-ws") => assert_eq!(chosen, protocol),
        _ => assert_eq!(chosen, None),
    }
    socket
}

pub(crate) async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::Text(message.to_string().into())).await.expect("send");
}

/// The next JSON message (pings skipped).
pub(crate) async fn recv(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(HANG, socket.next()).await.expect("a frame in time");
        match frame {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("json"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The close frame's code and reason (text frames before it are returned too).
pub(crate) async fn recv_close(socket: &mut Socket) -> (u16, String, Vec<Value>) {
    let mut texts = Vec::new();
    loop {
        let frame = tokio::time::timeout(HANG, socket.next()).await.expect("a frame in time");
        match frame {
            Some(Ok(Message::Close(Some(frame)))) => return (frame.code.into(), frame.reason.to_string(), texts),
            Some(Ok(Message::Text(text))) => texts.push(serde_json::from_str(&text).expect("json")),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

pub(crate) async fn acknowledged(gateway: &TestGateway, protocol: &str) -> Socket {
    let mut socket = connect(gateway, Some(protocol)).await;
    send(&mut socket, json!({"type": "connection_init", "payload": {}})).await;
    assert_eq!(recv(&mut socket).await, json!({"type": "connection_ack"}));
    if protocol == "graphql-ws" {
        assert_eq!(recv(&mut socket).await, json!({"type": "ka"}));
    }
    socket
}

async fn create(gateway: &TestGateway, shelf: &str, title: &str, author: &str) {
    let body = json!({"title": title, "author": author}).to_string();
    let (status, created, _) = gateway.call("POST", &format!("/v1/shelves/{shelf}/books"), &body).await;
    assert_eq!(status, 200, "{created}");
}

/// Waits (hang detector only) until `check` holds.
async fn eventually(mut check: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + HANG;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const WATCH: &str =
    r#"subscription Watch($shelf: String) { watchBooks(parent: $shelf) { kind book { title writer { name } } } }"#;

#[tokio::test]
async fn a_subscription_streams_stitched_events_until_the_client_completes_it() {
    let gateway = TestGateway::stitched().await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    let watchers = gateway.backend().watchers();
    send(
        &mut socket,
        json!({"id": "w", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/8"}}}),
    )
    .await;
    eventually(|| gateway.backend().watchers() == watchers + 1, "the backend stream opens").await;
    create(&gateway, "8", "Dune", "Frank Herbert").await;
    create(&gateway, "8", "Unknown", "Nobody").await;
    assert_eq!(
        recv(&mut socket).await,
        json!({"id": "w", "type": "next", "payload": {"data": {"watchBooks": {"kind": "CREATED", "book": {"title": "Dune", "writer": {"name": "Frank Herbert"}}}}}})
    );
    assert_eq!(
        recv(&mut socket).await,
        json!({"id": "w", "type": "next", "payload": {"data": {"watchBooks": {"kind": "CREATED", "book": {"title": "Unknown", "writer": null}}}}})
    );
    send(&mut socket, json!({"id": "w", "type": "complete"})).await;
    eventually(|| gateway.backend().watchers() == watchers, "the backend saw the stream cancelled").await;
    // The id is free again, and the socket still serves.
    send(&mut socket, json!({"id": "w", "type": "subscribe", "payload": {"query": "{ getBook(name: \"shelves/2/books/1\") { title } }"}})).await;
    assert_eq!(
        recv(&mut socket).await,
        json!({"id": "w", "type": "next", "payload": {"data": {"getBook": {"title": "The Selfish Gene"}}}})
    );
    assert_eq!(recv(&mut socket).await, json!({"id": "w", "type": "complete"}));
    gateway.shutdown().await;
}

#[tokio::test]
async fn closing_the_socket_cancels_the_backend_stream() {
    let gateway = TestGateway::stitched().await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    let watchers = gateway.backend().watchers();
    for (id, shelf) in [("a", "shelves/9"), ("b", "shelves/10")] {
        send(
            &mut socket,
            json!({"id": id, "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": shelf}}}),
        )
        .await;
    }
    eventually(|| gateway.backend().watchers() == watchers + 2, "two backend streams open").await;
    socket.close(None).await.expect("close");
    drop(socket);
    eventually(|| gateway.backend().watchers() == watchers, "both backend streams cancelled").await;
    gateway.shutdown().await;
}

#[tokio::test]
async fn queries_mutations_and_errors_over_the_socket() {
    let gateway = TestGateway::stitched().await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(&mut socket, json!({"type": "ping", "payload": {"n": 1}})).await;
    assert_eq!(recv(&mut socket).await, json!({"type": "pong", "payload": {"n": 1}}));
    let mutation = r#"mutation { createBook(parent: "shelves/4", book: {title: "Kindred", author: "Octavia E. Butler"}) { title writer { born } } }"#;
    send(&mut socket, json!({"id": "m", "type": "subscribe", "payload": {"query": mutation}})).await;
    assert_eq!(
        recv(&mut socket).await,
        json!({"id": "m", "type": "next", "payload": {"data": {"createBook": {"title": "Kindred", "writer": {"born": 1947}}}}})
    );
    assert_eq!(recv(&mut socket).await, json!({"id": "m", "type": "complete"}));
    // A document that does not validate is an `error` message, and no complete follows.
    send(&mut socket, json!({"id": "v", "type": "subscribe", "payload": {"query": "{ nope }"}})).await;
    let error = recv(&mut socket).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["payload"][0]["message"], "Cannot query field \"nope\" on type \"Query\".");
    // A subscription whose backend refuses to open is an error with the backend's code.
    let bad = r#"subscription { watchBooks(parent: "not-a-shelf") { kind } }"#;
    send(&mut socket, json!({"id": "s", "type": "subscribe", "payload": {"query": bad}})).await;
    let error = recv(&mut socket).await;
    assert_eq!((error["id"].clone(), error["type"].clone()), (json!("s"), json!("error")), "{error}");
    assert_eq!(error["payload"][0]["extensions"]["code"], "BAD_USER_INPUT", "{error}");
    assert_eq!(error["payload"][0]["path"], json!(["watchBooks"]));
    // Two root fields in a subscription are refused.
    let two =
        r#"subscription { a: watchBooks(parent: "shelves/1") { kind } b: watchBooks(parent: "shelves/2") { kind } }"#;
    send(&mut socket, json!({"id": "t", "type": "subscribe", "payload": {"query": two}})).await;
    let error = recv(&mut socket).await;
    assert_eq!(error["payload"][0]["message"], "Anonymous Subscription must select only one top level field.");
    gateway.shutdown().await;
}

#[tokio::test]
async fn subscriptions_over_http_say_where_to_go() {
    let gateway = TestGateway::stitched().await;
    let body = json!({"query": "subscription { watchBooks(parent: \"shelves/1\") { kind } }"});
    let response = gateway.client.post(format!("{}/graphql", gateway.base)).json(&body).send().await.expect("post");
    let answer: Value = response.json().await.expect("json");
    assert!(answer["errors"][0]["message"].as_str().unwrap_or("").contains("WebSocket"), "{answer}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn every_close_code_the_protocol_defines() {
    let gateway = TestGateway::stitched().await;
    let subscribe =
        json!({"id": "1", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/1"}}});

    let mut socket = connect(&gateway, None).await;
    assert_eq!(recv_close(&mut socket).await.0, 4406, "no subprotocol we speak");

    let mut socket = connect(&gateway, Some("graphql-transport-ws")).await;
    send(&mut socket, subscribe.clone()).await;
    assert_eq!(recv_close(&mut socket).await.0, 4401, "subscribe before connection_ack");

    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(&mut socket, json!({"type": "connection_init"})).await;
    assert_eq!(recv_close(&mut socket).await.0, 4429, "a second connection_init");

    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(&mut socket, subscribe.clone()).await;
    send(&mut socket, subscribe.clone()).await;
    let (code, reason, _) = recv_close(&mut socket).await;
    assert_eq!((code, reason.as_str()), (4409, "Subscriber for 1 already exists"));

    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(&mut socket, json!({"type": "subscribe", "payload": {"query": "{ a }"}})).await;
    let (code, reason, _) = recv_close(&mut socket).await;
    assert_eq!((code, reason.as_str()), (4400, "`subscribe` needs a non-empty string `id`"));

    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    socket.send(Message::Text("x".repeat(300 * 1024).into())).await.expect("send");
    assert_eq!(recv_close(&mut socket).await.0, 1009, "bigger than graphql.subscriptions.max_message_bytes");

    // Shutdown: 1001, with no complete for the running subscription.
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(&mut socket, subscribe).await;
    let watchers = gateway.backend().watchers();
    eventually(|| gateway.backend().watchers() >= watchers.max(1), "the stream opens").await;
    let shutdown = tokio::spawn(gateway.shutdown());
    let (code, _, before) = recv_close(&mut socket).await;
    assert_eq!(code, 1001);
    assert!(before.iter().all(|m| m["type"] != "complete"), "{before:?}");
    shutdown.await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_socket_that_never_initialises_is_closed_with_4408() {
    let gateway = TestGateway::stitched().await;
    let mut socket = connect(&gateway, Some("graphql-transport-ws")).await;
    let (code, reason, _) = recv_close(&mut socket).await;
    assert_eq!((code, reason.as_str()), (4408, "Connection initialisation timeout"));
    let mut legacy = connect(&gateway, Some("graphql-ws")).await;
    let (code, _, before) = recv_close(&mut legacy).await;
    assert_eq!(code, 4408);
    assert_eq!(
        before,
        [json!({"type": "connection_error", "payload": {"message": "Connection initialisation timeout"}})]
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_legacy_protocol_speaks_its_own_messages() {
    let gateway = TestGateway::stitched().await;
    let mut socket = acknowledged(&gateway, "graphql-ws").await;
    // An unreadable message is a connection_error, and the socket stays open.
    send(&mut socket, json!({"type": "subscribe", "id": "1"})).await;
    assert_eq!(
        recv(&mut socket).await,
        json!({"type": "connection_error", "payload": {"message": "`subscribe` is not a graphql-ws message"}})
    );
    send(&mut socket, json!({"id": "q", "type": "start", "payload": {"query": "{ author(id: \"4\") { name } }"}}))
        .await;
    assert_eq!(
        recv(&mut socket).await,
        json!({"id": "q", "type": "data", "payload": {"data": {"author": {"name": "Octavia E. Butler"}}}})
    );
    assert_eq!(recv(&mut socket).await, json!({"id": "q", "type": "complete"}));
    let watchers = gateway.backend().watchers();
    send(
        &mut socket,
        json!({"id": "w", "type": "start", "payload": {"query": WATCH, "variables": {"shelf": "shelves/12"}}}),
    )
    .await;
    eventually(|| gateway.backend().watchers() == watchers + 1, "the stream opens").await;
    create(&gateway, "12", "The Dispossessed", "Ursula K. Le Guin").await;
    assert_eq!(
        recv(&mut socket).await,
        json!({"id": "w", "type": "data", "payload": {"data": {"watchBooks": {"kind": "CREATED", "book": {"title": "The Dispossessed", "writer": {"name": "Ursula K. Le Guin"}}}}}})
    );
    send(&mut socket, json!({"id": "w", "type": "stop"})).await;
    assert_eq!(recv(&mut socket).await, json!({"id": "w", "type": "complete"}));
    eventually(|| gateway.backend().watchers() == watchers, "the stream is cancelled").await;
    send(&mut socket, json!({"id": "e", "type": "start", "payload": {"query": "{ nope }"}})).await;
    let error = recv(&mut socket).await;
    assert_eq!(
        (error["type"].clone(), error["payload"]["message"].clone()),
        (json!("error"), json!("Cannot query field \"nope\" on type \"Query\"."))
    );
    send(&mut socket, json!({"type": "connection_terminate"})).await;
    assert_eq!(recv_close(&mut socket).await.0, 1000);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_too_slow_for_its_buffer_is_closed_with_1013() {
    let (gateway, _dir) = TestGateway::stitched_with_config("[graphql.subscriptions]\nbuffer = 2\n").await;
    let long_title = "t".repeat(2000);
    for i in 0..100 {
        create(&gateway, "31", &format!("{i} {long_title}"), "Nobody").await;
    }
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    let query = r#"{ listBooks(parent: "shelves/31", pageSize: 100) { books { title } } }"#;
    // ~200 KB per answer, 60 answers, and the client reads nothing until they are all asked.
    for id in 0..60 {
        send(&mut socket, json!({"id": id.to_string(), "type": "subscribe", "payload": {"query": query}})).await;
    }
    let (code, reason, delivered) = recv_close(&mut socket).await;
    assert_eq!(code, 1013, "{reason}");
    assert_eq!(reason, "slow consumer: 2 messages waiting (graphql.subscriptions.buffer)");
    assert!(delivered.len() < 120, "it closed before every answer was delivered: {}", delivered.len());
    gateway.shutdown().await;
}

#[tokio::test]
async fn operation_limits_per_socket_and_per_gateway() {
    let config = "[graphql.subscriptions]\nmax_per_connection = 2\nmax_total = 3\n";
    let (gateway, _dir) = TestGateway::stitched_with_config(config).await;
    let watch = |id: &str| json!({"id": id, "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/1"}}});
    let mut first = acknowledged(&gateway, "graphql-transport-ws").await;
    send(&mut first, watch("1")).await;
    send(&mut first, watch("2")).await;
    send(&mut first, watch("3")).await;
    let refused = recv(&mut first).await;
    assert_eq!(refused["id"], "3");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(
        refused["payload"][0]["message"],
        "this socket already runs 2 operations (graphql.subscriptions.max_per_connection)"
    );
    let mut second = acknowledged(&gateway, "graphql-transport-ws").await;
    send(&mut second, watch("a")).await;
    send(&mut second, watch("b")).await;
    let refused = recv(&mut second).await;
    assert_eq!(refused["id"], "b");
    assert_eq!(
        refused["payload"][0]["message"],
        "the gateway already runs 3 operations (graphql.subscriptions.max_total)"
    );
    // Completing one frees its place.
    send(&mut first, json!({"id": "1", "type": "complete"})).await;
    let mut freed = false;
    for _ in 0..100 {
        send(&mut second, watch("c")).await;
        let answer = tokio::time::timeout(Duration::from_millis(200), recv(&mut second)).await;
        match answer {
            Err(_) => {
                freed = true;
                break;
            }
            Ok(refused) => assert_eq!(refused["id"], "c"),
        }
    }
    assert!(freed, "a completed subscription gave its place back");
    gateway.shutdown().await;
}

#[tokio::test]
async fn operations_that_end_by_themselves_give_their_place_back() {
    // The session learns an operation ended from its task (not from a client `complete`); with
    // room for two, six queries one after another each run.
    let config = "[graphql.subscriptions]\nmax_per_connection = 2\n";
    let (gateway, _dir) = TestGateway::stitched_with_config(config).await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    for n in 0..6 {
        let id = format!("q{n}");
        let query = "{ getBook(name: \"shelves/2/books/1\") { title } }";
        send(&mut socket, json!({"id": id, "type": "subscribe", "payload": {"query": query}})).await;
        let answer = recv(&mut socket).await;
        assert_eq!(answer["type"], "next", "query {n}: {answer}");
        assert_eq!(answer["payload"]["data"]["getBook"]["title"], "The Selfish Gene");
        assert_eq!(recv(&mut socket).await, json!({"id": id, "type": "complete"}));
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn backend_streams_that_end_complete_and_that_fail_send_an_error() {
    let mut gateway = TestGateway::stitched().await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    let export = r#"subscription { exportBooks(parent: "shelves/2") { contentType } }"#;
    send(&mut socket, json!({"id": "x", "type": "subscribe", "payload": {"query": export}})).await;
    let mut events = Vec::new();
    loop {
        let message = recv(&mut socket).await;
        if message["type"] == "complete" {
            assert_eq!(message["id"], "x");
            break;
        }
        events.push(message);
    }
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["payload"]["data"]["exportBooks"]["contentType"] == "text/csv"), "{events:?}");

    send(
        &mut socket,
        json!({"id": "w", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/1"}}}),
    )
    .await;
    eventually(|| gateway.backend().watchers() == 1, "the stream opens").await;
    gateway.stop_backend().await;
    let error = recv(&mut socket).await;
    assert_eq!((error["id"].clone(), error["type"].clone()), (json!("w"), json!("error")), "{error}");
    assert_eq!(error["payload"][0]["extensions"]["code"], "UNAVAILABLE", "{error}");
    gateway.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idle_sockets_are_kept_alive() {
    let gateway = TestGateway::stitched().await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    let frame = tokio::time::timeout(HANG, socket.next()).await.expect("a frame");
    assert!(matches!(frame, Some(Ok(Message::Ping(_)))), "a WebSocket ping: {frame:?}");
    let mut legacy = acknowledged(&gateway, "graphql-ws").await;
    assert_eq!(recv(&mut legacy).await, json!({"type": "ka"}));
    gateway.shutdown().await;
}

#[tokio::test]
async fn events_that_arrive_together_share_one_batched_call() {
    let gateway = TestGateway::stitched().await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(
        &mut socket,
        json!({"id": "w", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/44"}}}),
    )
    .await;
    eventually(|| gateway.backend().watchers() == 1, "the stream opens").await;
    let before = gateway.authors().requests();
    // ImportBooks creates the books back to back: their events arrive as a burst.
    let lines: String = (0..20)
        .map(|i| {
            format!(
                "{}\n",
                json!({"parent": "shelves/44", "book": {"title": format!("B{i}"), "author": "Frank Herbert"}})
            )
        })
        .collect();
    let response = gateway
        .client
        .post(format!("{}/v1/books:import", gateway.base))
        .header("content-type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 200);
    for i in 0..20 {
        let event = recv(&mut socket).await;
        assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], format!("B{i}"), "in order");
        assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["writer"]["name"], "Frank Herbert");
    }
    let calls = gateway.authors().requests() - before;
    assert!(calls < 20, "20 events made {calls} authors calls: bursts are stitched together");
    gateway.shutdown().await;
}

/// Runs a stock client from tests/npm (installed by `bash .ci/run`) and yields its JSON lines.
struct NodeClient {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl NodeClient {
    fn spawn(kind: &str, gateway: &TestGateway, query: &str, variables: Value, count: usize) -> NodeClient {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
        assert!(
            dir.join("node_modules/graphql-ws").exists(),
            "the stock clients are not installed: run `(cd tests/npm && npm ci)` (bash .ci/run does)"
        );
        let url = format!("{}/graphql", gateway.base.replace("http://", "ws://"));
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("clients.mjs"))
            .args([kind, &url, query, &variables.to_string(), &count.to_string()])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().expect("stdout");
        NodeClient { child, lines: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)) }
    }

    async fn line(&mut self) -> Value {
        let line = tokio::time::timeout(HANG, self.lines.next_line()).await.expect("a line in time").expect("read");
        serde_json::from_str(&line.expect("the client printed a line")).expect("json")
    }
}

#[tokio::test]
async fn stock_graphql_ws_and_legacy_clients_subscribe() {
    let gateway = TestGateway::stitched().await;
    for (kind, shelf) in [("graphql-ws", "61"), ("subscriptions-transport-ws", "62")] {
        let watchers = gateway.backend().watchers();
        let mut client = NodeClient::spawn(kind, &gateway, WATCH, json!({"shelf": format!("shelves/{shelf}")}), 2);
        assert_eq!(client.line().await, json!({"ready": true}), "{kind}");
        eventually(|| gateway.backend().watchers() == watchers + 1, "the client's stream opens").await;
        create(&gateway, shelf, "Dune", "Frank Herbert").await;
        create(&gateway, shelf, "Kindred", "Octavia E. Butler").await;
        let first = client.line().await;
        assert_eq!(
            first,
            json!({"next": {"data": {"watchBooks": {"kind": "CREATED", "book": {"title": "Dune", "writer": {"name": "Frank Herbert"}}}}}}),
            "{kind}"
        );
        let second = client.line().await;
        assert_eq!(second["next"]["data"]["watchBooks"]["book"]["writer"]["name"], "Octavia E. Butler", "{kind}");
        let status = tokio::time::timeout(HANG, client.child.wait()).await.expect("exits").expect("status");
        assert!(status.success(), "{kind}: {status}");
        eventually(|| gateway.backend().watchers() == watchers, "the client's unsubscribe cancels the stream").await;
    }
    gateway.shutdown().await;
}

async fn reload(gateway: &TestGateway) {
    let response = gateway.client.post(format!("{}/admin/reload", gateway.admin)).send().await.expect("reload");
    assert_eq!(response.status().as_u16(), 200, "{}", response.text().await.unwrap_or_default());
}

#[tokio::test]
async fn a_subscription_survives_reloads_until_one_removes_its_field() {
    let (gateway, dir) = TestGateway::stitched_with_config("").await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(
        &mut socket,
        json!({"id": "w", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/71"}}}),
    )
    .await;
    eventually(|| gateway.backend().watchers() == 1, "the stream opens").await;

    // A reload that changes something else leaves it running on the same stream.
    std::fs::write(dir.path().join("switchyard.toml"), "[graphql]\nintrospection = false\n").expect("write");
    reload(&gateway).await;
    create(&gateway, "71", "After a reload", "Frank Herbert").await;
    let event = recv(&mut socket).await;
    assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], "After a reload", "{event}");
    assert_eq!(gateway.backend().watchers(), 1, "the same backend stream");

    // A reload that removes the field ends it: an error event saying so, then complete.
    let hidden = "[graphql.methods.\"catalog.v1.Catalog.WatchBooks\"]\nhidden = true\n";
    std::fs::write(dir.path().join("switchyard.toml"), hidden).expect("write");
    reload(&gateway).await;
    let ended = recv(&mut socket).await;
    assert_eq!(ended["type"], "next", "{ended}");
    assert_eq!(ended["payload"]["data"], json!({"watchBooks": null}));
    assert_eq!(ended["payload"]["errors"][0]["extensions"]["code"], "UNAVAILABLE");
    assert_eq!(
        ended["payload"]["errors"][0]["message"],
        "a reload removed the subscription field for catalog.v1.Catalog.WatchBooks; the subscription has ended"
    );
    assert_eq!(recv(&mut socket).await, json!({"id": "w", "type": "complete"}));
    eventually(|| gateway.backend().watchers() == 0, "its backend stream is cancelled").await;
    // New subscriptions see the new schema.
    send(
        &mut socket,
        json!({"id": "n", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/71"}}}),
    )
    .await;
    assert_eq!(recv(&mut socket).await["type"], "error");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_removes_the_backend_ends_its_subscriptions() {
    let config = "[backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, dir) = TestGateway::stitched_with_config(config).await;
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(
        &mut socket,
        json!({"id": "w", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/72"}}}),
    )
    .await;
    eventually(|| gateway.backend().watchers() == 1, "the stream opens").await;
    std::fs::write(dir.path().join("switchyard.toml"), "").expect("write");
    reload(&gateway).await;
    let ended = recv(&mut socket).await;
    assert_eq!(
        ended["payload"]["errors"][0]["message"],
        "a reload left no backend serving catalog.v1.Catalog; the subscription has ended",
        "{ended}"
    );
    assert_eq!(recv(&mut socket).await, json!({"id": "w", "type": "complete"}));
    gateway.shutdown().await;
}

/// Reads a streaming response until `done` holds for the text so far (hang detector only).
async fn read_until(response: &mut reqwest::Response, mut done: impl FnMut(&str) -> bool) -> String {
    let mut text = String::new();
    while !done(&text) {
        let chunk = tokio::time::timeout(HANG, response.chunk()).await.expect("a chunk in time").expect("read");
        let Some(chunk) = chunk else { panic!("the stream ended; got {text:?}") };
        text.push_str(std::str::from_utf8(&chunk).expect("utf8"));
    }
    text
}

async fn post_streaming(gateway: &TestGateway, accept: &str, query: &str, variables: Value) -> reqwest::Response {
    gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("accept", accept)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("post")
}

#[tokio::test]
async fn server_sent_events_carry_subscriptions_queries_and_errors() {
    let gateway = TestGateway::stitched().await;
    let mut response = post_streaming(&gateway, "text/event-stream", WATCH, json!({"shelf": "shelves/81"})).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    eventually(|| gateway.backend().watchers() == 1, "the stream opens").await;
    create(&gateway, "81", "Dune", "Frank Herbert").await;
    let text = read_until(&mut response, |t| t.contains("\n\n")).await;
    let expected = json!({"data": {"watchBooks": {"kind": "CREATED", "book": {"title": "Dune", "writer": {"name": "Frank Herbert"}}}}});
    assert_eq!(text, format!("event: next\ndata: {expected}\n\n"));
    drop(response);
    eventually(|| gateway.backend().watchers() == 0, "closing the response cancels the backend stream").await;

    let mut response = post_streaming(&gateway, "text/event-stream", "{ author(id: \"3\") { name } }", json!({})).await;
    let text = read_until(&mut response, |t| t.contains("event: complete")).await;
    assert_eq!(
        text,
        "event: next\ndata: {\"data\":{\"author\":{\"name\":\"Frank Herbert\"}}}\n\nevent: complete\ndata:\n\n"
    );

    // Errors that stop an operation before it runs are `next` events (graphql-sse).
    let mut response = post_streaming(&gateway, "text/event-stream", "{ nope }", json!({})).await;
    assert_eq!(response.status().as_u16(), 200);
    let text = read_until(&mut response, |t| t.contains("event: complete")).await;
    assert!(text.starts_with("event: next\ndata: {\"errors\":[{\"message\":\"Cannot query field"), "{text}");

    // EventSource clients use GET.
    let url = format!("{}/graphql?query={}", gateway.base, "%7B%20author(id%3A%20%221%22)%20%7B%20name%20%7D%20%7D");
    let mut response = gateway.client.get(url).header("accept", "text/event-stream").send().await.expect("get");
    let text = read_until(&mut response, |t| t.contains("event: complete")).await;
    assert!(text.contains("Ursula K. Le Guin"), "{text}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn apollo_multipart_subscriptions_with_heartbeats_and_completion() {
    let (gateway, _dir) = TestGateway::stitched_with_config("[graphql.subscriptions]\nkeepalive = \"50ms\"\n").await;
    let accept = "multipart/mixed;subscriptionSpec=\"1.0\", application/json";
    let mut response = post_streaming(&gateway, accept, WATCH, json!({"shelf": "shelves/82"})).await;
    assert_eq!(response.headers()["content-type"], "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"");
    let part = "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n";
    let text = read_until(&mut response, |t| t.contains(&format!("{part}{{}}"))).await;
    assert!(text.starts_with(part), "a heartbeat part: {text:?}");
    eventually(|| gateway.backend().watchers() == 1, "the stream opens").await;
    create(&gateway, "82", "Kindred", "Octavia E. Butler").await;
    let text = read_until(&mut response, |t| t.contains("payload")).await;
    let expected = json!({"payload": {"data": {"watchBooks": {"kind": "CREATED", "book": {"title": "Kindred", "writer": {"name": "Octavia E. Butler"}}}}}});
    assert!(text.contains(&format!("{part}{expected}")), "{text:?}");
    drop(response);
    eventually(|| gateway.backend().watchers() == 0, "the backend stream is cancelled").await;

    // A stream that ends closes the multipart body; a query under this Accept is plain JSON.
    let export = r#"subscription { exportBooks(parent: "shelves/2") { contentType } }"#;
    let mut response = post_streaming(&gateway, accept, export, json!({})).await;
    let text = read_until(&mut response, |t| t.ends_with("\r\n--graphql--\r\n")).await;
    assert!(text.contains("{\"payload\":{\"data\":{\"exportBooks\":{\"contentType\":\"text/csv\"}}}}"), "{text:?}");
    let response = post_streaming(&gateway, accept, "{ author(id: \"2\") { name } }", json!({})).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.json::<Value>().await.expect("json"), json!({"data": {"author": {"name": "Richard Dawkins"}}}));

    // A subscription that cannot start is one part with its errors, then the end.
    let bad = r#"subscription { watchBooks(parent: "nope") { kind } }"#;
    let mut response = post_streaming(&gateway, accept, bad, json!({})).await;
    let text = read_until(&mut response, |t| t.ends_with("\r\n--graphql--\r\n")).await;
    assert!(text.contains("{\"payload\":null,\"errors\":[{"), "{text:?}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn identical_subscriptions_share_one_backend_stream() {
    let gateway = TestGateway::stitched().await;
    let subscribe =
        json!({"id": "s", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/91"}}});
    let mut first = acknowledged(&gateway, "graphql-transport-ws").await;
    let mut second = acknowledged(&gateway, "graphql-ws").await;
    send(&mut first, subscribe.clone()).await;
    send(&mut second, json!({"id": "s", "type": "start", "payload": subscribe["payload"]})).await;
    eventually(|| gateway.backend().watchers() == 1, "one stream opens").await;
    // A different one (other variables) has its own.
    let mut third = acknowledged(&gateway, "graphql-transport-ws").await;
    send(
        &mut third,
        json!({"id": "t", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/92"}}}),
    )
    .await;
    eventually(|| gateway.backend().watchers() == 2, "a second stream opens").await;
    let before = gateway.authors().requests();
    create(&gateway, "91", "Shared", "Frank Herbert").await;
    let expected = json!({"data": {"watchBooks": {"kind": "CREATED", "book": {"title": "Shared", "writer": {"name": "Frank Herbert"}}}}});
    assert_eq!(recv(&mut first).await, json!({"id": "s", "type": "next", "payload": expected}));
    assert_eq!(recv(&mut second).await, json!({"id": "s", "type": "data", "payload": expected}));
    assert_eq!(gateway.authors().requests() - before, 1, "the event was stitched once for both");
    // The stream stays while one subscriber remains, and closes with the last.
    send(&mut first, json!({"id": "s", "type": "complete"})).await;
    create(&gateway, "91", "Still shared", "Frank Herbert").await;
    let event = recv(&mut second).await;
    assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], "Still shared");
    assert_eq!(gateway.backend().watchers(), 2);
    send(&mut second, json!({"id": "s", "type": "stop"})).await;
    assert_eq!(recv(&mut second).await, json!({"id": "s", "type": "complete"}));
    eventually(|| gateway.backend().watchers() == 1, "the last subscriber's leaving cancels it").await;
    drop(third);
    eventually(|| gateway.backend().watchers() == 0, "the other one ends with its socket").await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscriptions_receive_every_event_in_order() {
    // Two sockets per subscriber (client and gateway side) and some to spare.
    let limit = rlimit::increase_nofile_limit(4096).expect("raise the open-file limit");
    assert!(limit >= 2500, "the open-file limit is {limit}");
    let (gateway, _dir) = TestGateway::stitched_with_config("[graphql.subscriptions]\nmax_total = 2000\n").await;
    const SHELVES: usize = 10;
    const PER_SHELF: usize = 100;
    const EVENTS: usize = 10;
    let query = r#"subscription($shelf: String) { watchBooks(parent: $shelf) { kind book { title } } }"#;
    let mut sockets = Vec::with_capacity(SHELVES * PER_SHELF);
    for batch in 0..SHELVES * PER_SHELF / 50 {
        let connecting = (0..50).map(|_| acknowledged(&gateway, "graphql-transport-ws"));
        for (i, mut socket) in futures_util::future::join_all(connecting).await.into_iter().enumerate() {
            let shelf = format!("shelves/20{}", (batch * 50 + i) % SHELVES);
            send(
                &mut socket,
                json!({"id": "w", "type": "subscribe", "payload": {"query": query, "variables": {"shelf": shelf}}}),
            )
            .await;
            sockets.push(socket);
        }
    }
    eventually(|| gateway.backend().watchers() == SHELVES, "one backend stream per shelf").await;
    // The backend's streams open with each shelf's first subscriber; the last batch's subscribe
    // messages may still be on their way, so wait until the gateway runs all of them before the
    // first event (else a late subscriber starts at the second).
    let started = tokio::time::Instant::now();
    loop {
        let text = gateway.client.get(format!("{}/metrics", gateway.admin)).send().await.expect("scrape");
        let text = text.text().await.expect("metrics text");
        let running =
            text.lines().find_map(|l| l.strip_prefix("switchyard_subscriptions ")).map(str::trim).map(str::to_owned);
        if running.as_deref() == Some(&(SHELVES * PER_SHELF).to_string()) {
            break;
        }
        // A hang detector only.
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "subscriptions running: {running:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for event in 0..EVENTS {
        for shelf in 0..SHELVES {
            create(&gateway, &format!("20{shelf}"), &format!("{shelf}-{event}"), "Nobody").await;
        }
    }
    let receiving = sockets.into_iter().enumerate().map(|(i, mut socket)| async move {
        let shelf = i % SHELVES;
        for event in 0..EVENTS {
            let message = recv(&mut socket).await;
            assert_eq!(
                message["payload"]["data"]["watchBooks"]["book"]["title"],
                format!("{shelf}-{event}"),
                "subscriber {i}"
            );
        }
        socket
    });
    let sockets = futures_util::future::join_all(receiving).await;
    assert_eq!(sockets.len(), SHELVES * PER_SHELF);
    drop(sockets);
    eventually(|| gateway.backend().watchers() == 0, "every backend stream is cancelled").await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_distinct_subscriptions_all_open_on_one_backend() {
    // More streams than one HTTP/2 connection may carry (hyper's server allows 200): the
    // gateway opens more connections to the endpoint instead of queueing the rest.
    let gateway = TestGateway::stitched().await;
    let query = r#"subscription($shelf: String) { watchBooks(parent: $shelf) { book { title } } }"#;
    let mut sockets = Vec::new();
    for socket_index in 0..5 {
        let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
        for i in 0..100 {
            let shelf = format!("shelves/9{socket_index}{i:02}");
            send(&mut socket, json!({"id": i.to_string(), "type": "subscribe", "payload": {"query": query, "variables": {"shelf": shelf}}})).await;
        }
        sockets.push(socket);
    }
    eventually(|| gateway.backend().watchers() == 500, "500 distinct backend streams open").await;
    create(&gateway, "9499", "The last shelf", "Nobody").await;
    let event = recv(&mut sockets[4]).await;
    assert_eq!(
        (event["id"].clone(), event["payload"]["data"]["watchBooks"]["book"]["title"].clone()),
        (json!("99"), json!("The last shelf"))
    );
    drop(sockets);
    eventually(|| gateway.backend().watchers() == 0, "all cancelled").await;
    gateway.shutdown().await;
}

/// One client over several sockets is held to `max_per_consumer` (anonymous clients by their
/// address, which here is the same for every socket), below the gateway-wide `max_total`.
#[tokio::test]
async fn one_client_over_many_sockets_is_held_to_its_own_limit() {
    let config = "[graphql.subscriptions]\nmax_per_consumer = 3\nmax_total = 100\n";
    let (gateway, _dir) = TestGateway::stitched_with_config(config).await;
    let watch = |id: &str| json!({"id": id, "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/1"}}});
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
        send(&mut socket, watch("1")).await;
        sockets.push(socket);
    }
    let mut fourth = acknowledged(&gateway, "graphql-transport-ws").await;
    send(&mut fourth, watch("1")).await;
    let refused = recv(&mut fourth).await;
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{refused}");
    assert_eq!(
        refused["payload"][0]["message"],
        "this client already runs 3 operations over its sockets (graphql.subscriptions.max_per_consumer)"
    );
    // Closing one socket gives its operation's place back.
    drop(sockets.pop());
    let mut freed = false;
    for _ in 0..100 {
        send(&mut fourth, watch("2")).await;
        match tokio::time::timeout(Duration::from_millis(200), recv(&mut fourth)).await {
            Err(_) => {
                freed = true;
                break;
            }
            Ok(refused) => assert_eq!(refused["id"], "2", "{refused}"),
        }
    }
    assert!(freed, "a closed socket gave its place back");
    gateway.shutdown().await;
}
