//! Streaming over REST against the demo backend: NDJSON, SSE and JSON-array server streams,
//! NDJSON client streams, errors after the headers, and bidi routes without an upgrade.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::support::TestGateway;

/// Reads body chunks until `count` complete `separator`-terminated frames arrived.
async fn frames(response: reqwest::Response, separator: &str, count: usize) -> Vec<String> {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let hang = tokio::time::Instant::now() + Duration::from_secs(30);
    while text.matches(separator).count() < count {
        let chunk = tokio::time::timeout_at(hang, body.next()).await.expect("hang detector");
        match chunk {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk"))),
            None => break,
        }
    }
    text.split(separator).filter(|f| !f.is_empty()).map(str::to_owned).collect()
}

async fn create(gateway: &TestGateway, shelf: &str, title: &str) {
    let (status, body, _) =
        gateway.call("POST", &format!("/v1/shelves/{shelf}/books"), &format!(r#"{{"title":"{title}"}}"#)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn server_streams_are_ndjson_by_default_and_sse_on_request() {
    let gateway = TestGateway::demo().await;
    let ndjson = gateway.client.get(format!("{}/v1/shelves/7/books:watch", gateway.base)).send().await.expect("watch");
    assert_eq!(ndjson.status().as_u16(), 200);
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let sse = gateway
        .client
        .get(format!("{}/v1/shelves/7/books:watch", gateway.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("watch");
    assert_eq!(sse.headers()["content-type"], "text/event-stream");

    create(&gateway, "8", "elsewhere").await;
    create(&gateway, "7", "first").await;
    create(&gateway, "7", "second").await;

    let lines = frames(ndjson, "\n", 2).await;
    let events: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(events[0]["kind"], "CREATED");
    assert_eq!(events[0]["book"]["title"], "first", "the other shelf's event is not in this stream");
    assert_eq!(events[1]["book"]["title"], "second");

    let events = frames(sse, "\n\n", 2).await;
    assert!(events[0].starts_with("data: {"), "{events:?}");
    let first: Value = serde_json::from_str(events[0].trim_start_matches("data: ")).expect("json");
    assert_eq!(first["book"]["title"], "first");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_fails_after_its_headers_ends_with_an_error_line() {
    let mut gateway = TestGateway::demo().await;
    let watch = gateway.client.get(format!("{}/v1/shelves/5/books:watch", gateway.base)).send().await.expect("watch");
    assert_eq!(watch.status().as_u16(), 200);
    create(&gateway, "5", "before the fault").await;
    gateway.stop_backend().await;
    let lines = frames(watch, "\n", 2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let last: Value = serde_json::from_str(&lines[1]).expect("json");
    assert!(last["error"]["code"].is_i64(), "{last}");
    assert!(last["error"]["message"].is_string(), "{last}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn json_array_streams_when_configured() {
    let (gateway, _dir) = TestGateway::demo_with_config("[rest]\nstream_format = \"json-array\"\n").await;
    let watch = gateway.client.get(format!("{}/v1/shelves/4/books:watch", gateway.base)).send().await.expect("watch");
    assert_eq!(watch.headers()["content-type"], "application/json");
    create(&gateway, "4", "one").await;
    create(&gateway, "4", "two").await;
    let mut body = watch.bytes_stream();
    let mut text = String::new();
    let hang = tokio::time::Instant::now() + Duration::from_secs(30);
    while text.matches("\"kind\"").count() < 2 {
        let chunk = tokio::time::timeout_at(hang, body.next()).await.expect("hang detector").expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    assert!(text.starts_with("[{\"kind\":\"CREATED\""), "{text}");
    assert!(text.contains("},{\"kind\""), "{text}");
    drop(body);
    gateway.shutdown().await;
}

#[tokio::test]
async fn client_streams_read_ndjson_and_refuse_a_bad_line_by_number() {
    let gateway = TestGateway::demo().await;
    let body = "{\"parent\":\"shelves/6\",\"book\":{\"title\":\"a\"}}\n\n{\"parent\":\"shelves/6\",\"book\":{\"title\":\"b\"}}";
    let (status, answer, _) = gateway.call("POST", "/v1/books:import", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["imported"], 2);
    assert_eq!(answer["names"].as_array().map(Vec::len), Some(2));

    let bad =
        "{\"parent\":\"shelves/6\",\"book\":{\"title\":\"c\"}}\n{\"parent\":\"shelves/6\",\"book\":{\"pages\":1}}\n";
    let (status, answer, _) = gateway.call("POST", "/v1/books:import", bad).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["message"], "line 2: request body: field `book.pages`: unknown field");

    let (status, answer, _) =
        gateway.call("POST", "/v1/books:import", "{\"parent\":\"nowhere\",\"book\":{\"title\":\"d\"}}").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("not a shelf name"), "{answer}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_bidi_route_without_an_upgrade_says_how_to_connect() {
    let gateway = TestGateway::demo().await;
    let (status, answer, _) = gateway.call("GET", "/v1/shelves/1/books/1:discuss", "").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("open a WebSocket"), "{answer}");
    gateway.shutdown().await;
}

mod websocket {
    use futures_util::{SinkExt, StreamExt};
    use serde_json::Value;
    use tokio_tungstenite::tungstenite::Message;

    use crate::support::TestGateway;

    async fn connect(
        gateway: &TestGateway,
        path: &str,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
        let url = format!("{}{path}", gateway.base.replacen("http://", "ws://", 1));
        tokio_tungstenite::connect_async(url).await.expect("upgrade").0
    }

    async fn next_text(
        socket: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
    ) -> Message {
        tokio::time::timeout(std::time::Duration::from_secs(30), socket.next())
            .await
            .expect("hang detector")
            .expect("open")
            .expect("frame")
    }

    #[tokio::test]
    async fn a_bidi_route_streams_both_ways_over_a_websocket() {
        let gateway = TestGateway::demo().await;
        let mut socket = connect(&gateway, "/v1/shelves/1/books/1:discuss").await;
        for text in ["hello", "again"] {
            socket.send(Message::Text(format!(r#"{{"text":"{text}"}}"#).into())).await.expect("send");
            let Message::Text(reply) = next_text(&mut socket).await else { panic!("a text frame") };
            let reply: Value = serde_json::from_str(&reply).expect("json");
            assert_eq!(reply["text"], format!("re: {text}"));
            assert_eq!(reply["book"], "shelves/1/books/1", "the path variable binds every message");
            assert_eq!(reply["author"], "librarian");
        }
        socket.close(None).await.expect("close");
        gateway.shutdown().await;
    }

    #[tokio::test]
    async fn a_bad_frame_closes_with_1007_naming_it() {
        let gateway = TestGateway::demo().await;
        let mut socket = connect(&gateway, "/v1/shelves/1/books/1:discuss").await;
        socket.send(Message::Text(r#"{"text":"fine"}"#.into())).await.expect("send");
        let _ = next_text(&mut socket).await;
        socket.send(Message::Text(r#"{"txet":"typo"}"#.into())).await.expect("send");
        let Message::Text(error) = next_text(&mut socket).await else { panic!("an error frame") };
        let error: Value = serde_json::from_str(&error).expect("json");
        assert_eq!(error["error"]["code"], 3, "{error}");
        assert!(error["error"]["message"].as_str().unwrap_or_default().starts_with("frame 2: "), "{error}");
        let Message::Close(Some(close)) = next_text(&mut socket).await else { panic!("a close frame") };
        assert_eq!(u16::from(close.code), 1007);
        assert!(close.reason.len() <= 123);
        gateway.shutdown().await;
    }
}
