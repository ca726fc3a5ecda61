//! `@defer` over multipart (Apollo's deferSpec=20220824), SSE and graphql-transport-ws against
//! the stitched demo: the initial payload without the deferred fragments, then each fragment's
//! data at its paths, its stitched fetches made after the initial part; without an incremental
//! transport, the whole answer at once.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{HANG, TestGateway};

const MULTIPART: &str = "multipart/mixed;deferSpec=20220824, application/json";
const NESTED: &str =
    r#"{ listBooks(parent: "shelves/1") { books { title ... @defer(label: "author") { writer { name } } } } }"#;

async fn post(gateway: &TestGateway, accept: &str, query: &str) -> reqwest::Response {
    gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("accept", accept)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("post")
}

/// The JSON parts of a multipart body, and whether it ended with the closing boundary.
async fn multipart_parts(response: reqwest::Response) -> (Vec<Value>, bool) {
    let text = tokio::time::timeout(HANG, response.text()).await.expect("in time").expect("body");
    let closed = text.ends_with("\r\n--graphql--\r\n");
    let parts = text
        .trim_end_matches("\r\n--graphql--\r\n")
        .split("\r\n--graphql\r\n")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let json = p.split_once("\r\n\r\n").expect("headers then body").1;
            serde_json::from_str(json).expect("json")
        })
        .collect();
    (parts, closed)
}

fn nested_parts() -> Vec<Value> {
    vec![
        json!({"data": {"listBooks": {"books": [{"title": "The Left Hand of Darkness"}, {"title": "A Wizard of Earthsea"}]}}, "hasNext": true}),
        json!({"incremental": [
            {"data": {"writer": {"name": "Ursula K. Le Guin"}}, "path": ["listBooks", "books", 0], "label": "author"},
            {"data": {"writer": {"name": "Ursula K. Le Guin"}}, "path": ["listBooks", "books", 1], "label": "author"}
        ], "hasNext": false}),
    ]
}

#[tokio::test]
async fn deferred_fragments_arrive_after_the_initial_payload_over_multipart() {
    let gateway = TestGateway::stitched().await;
    let before = gateway.authors().requests();
    let response = post(&gateway, MULTIPART, NESTED).await;
    assert_eq!(response.headers()["content-type"], "multipart/mixed;boundary=\"graphql\";deferSpec=20220824");
    let (parts, closed) = multipart_parts(response).await;
    assert_eq!(parts, nested_parts());
    assert!(closed);
    assert_eq!(gateway.authors().requests() - before, 1, "the deferred stitched fetch is one batched call");

    // A root field in a deferred fragment is fetched alongside and delivered in its part.
    let query = r#"{ a: author(id: "1") { name } ... @defer(label: "later") { b: author(id: "2") { name } } }"#;
    let (parts, _) = multipart_parts(post(&gateway, MULTIPART, query).await).await;
    assert_eq!(
        parts,
        vec![
            json!({"data": {"a": {"name": "Ursula K. Le Guin"}}, "hasNext": true}),
            json!({"incremental": [{"data": {"b": {"name": "Richard Dawkins"}}, "path": [], "label": "later"}], "hasNext": false}),
        ]
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn without_an_incremental_transport_the_answer_comes_whole() {
    let gateway = TestGateway::stitched().await;
    let response = post(&gateway, "application/json", NESTED).await;
    let answer: Value = response.json().await.expect("json");
    assert_eq!(
        answer,
        json!({"data": {"listBooks": {"books": [
            {"title": "The Left Hand of Darkness", "writer": {"name": "Ursula K. Le Guin"}},
            {"title": "A Wizard of Earthsea", "writer": {"name": "Ursula K. Le Guin"}}
        ]}}})
    );
    // `if: false` defers nothing; a multipart client then gets plain JSON.
    let query = r#"{ author(id: "3") { ... @defer(if: false) { name } } }"#;
    let response = post(&gateway, MULTIPART, query).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.json::<Value>().await.expect("json"), json!({"data": {"author": {"name": "Frank Herbert"}}}));
    // Where @defer may not go.
    for (query, message) in [
        (r#"{ author(id: "1") { name @defer } }"#, "Directive \"@defer\" may not be used on FIELD."),
        (
            r#"mutation { ... @defer { deleteBook(name: "shelves/1/books/9") } }"#,
            "@defer is supported in queries only.",
        ),
    ] {
        let answer: Value = post(&gateway, "application/json", query).await.json().await.expect("json");
        assert_eq!(answer["errors"][0]["message"], message, "{query}");
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn deferred_fragments_over_sse_and_websocket() {
    let gateway = TestGateway::stitched().await;
    let text = tokio::time::timeout(HANG, post(&gateway, "text/event-stream", NESTED).await.text())
        .await
        .expect("in time")
        .expect("body");
    let expected: String = nested_parts().iter().map(|p| format!("event: next\ndata: {p}\n\n")).collect::<String>()
        + "event: complete\ndata:\n\n";
    assert_eq!(text, expected);

    let url = format!("{}/graphql", gateway.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    socket.send(Message::Text(json!({"type": "connection_init"}).to_string().into())).await.expect("init");
    let ack = recv(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack");
    socket
        .send(Message::Text(json!({"id": "d", "type": "subscribe", "payload": {"query": NESTED}}).to_string().into()))
        .await
        .expect("subscribe");
    for part in nested_parts() {
        assert_eq!(recv(&mut socket).await, json!({"id": "d", "type": "next", "payload": part}));
    }
    assert_eq!(recv(&mut socket).await, json!({"id": "d", "type": "complete"}));
    gateway.shutdown().await;
}

async fn recv(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        match tokio::time::timeout(HANG, socket.next()).await.expect("in time") {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("json"),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}
