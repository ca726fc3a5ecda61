//! A backend process killed with SIGKILL: no GOAWAY, no grace, the kernel closes its sockets.
//! The backend runs as a child process (this test binary re-run as `backend_process_body`), so
//! the kill is a real one. A call in flight is a 503 with no partial data; a REST stream ends
//! with an error line and a GraphQL subscription with an error while its socket lives on; once
//! the process is back on its port the pool serves from it again.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::subscriptions::{acknowledged, recv, send};
use crate::support::{HANG, Running, TestGateway};

const ADDR_VAR: &str = "SWITCHYARD_TEST_BACKEND_ADDR";
const LATENCY_VAR: &str = "SWITCHYARD_TEST_BACKEND_LATENCY_MS";

/// Not a test of its own: the body of the backend process the tests below kill. It does
/// nothing unless spawned by `backend_process`, which says where to listen and how slow to be.
#[tokio::test]
#[ignore = "the body of a child process, run by backend_process"]
async fn backend_process_body() {
    let Ok(addr) = std::env::var(ADDR_VAR) else { return };
    let backend = switchyard::demo::start_demo_backend(addr.parse().expect("addr")).await.expect("backend");
    let latency: u64 = std::env::var(LATENCY_VAR).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    backend.set_latency(Duration::from_millis(latency));
    println!("backend at {}", backend.url());
    // Killed long before this; the sleep only bounds an orphan's life.
    tokio::time::sleep(HANG * 2).await;
}

/// The demo backend in its own process on `addr`, each call delayed by `latency_ms`.
fn backend_process(addr: &str, latency_ms: u64) -> (Running, String) {
    let mut process = Running::start(
        Command::new(std::env::current_exe().expect("the test binary"))
            .args(["backend_kill::backend_process_body", "--exact", "--ignored", "--nocapture"])
            .env(ADDR_VAR, addr)
            .env(LATENCY_VAR, latency_ms.to_string()),
    );
    let url = process.url_after("backend at");
    (process, url)
}

/// Calls the gateway has sent to an endpoint and not yet seen answered, over all clusters.
async fn outstanding(gateway: &TestGateway) -> u64 {
    let clusters = gateway.admin_json("/admin/clusters").await;
    clusters["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|cluster| cluster["endpoints"].as_array().into_iter().flatten())
        .map(|endpoint| endpoint["outstanding"].as_u64().unwrap_or(0))
        .sum()
}

/// GETs `path` until it is 200 (hang detector only).
async fn until_served(gateway: &TestGateway, path: &str) {
    let started = tokio::time::Instant::now();
    let mut refused = 0;
    loop {
        let (status, _, _) = gateway.call("GET", path, "").await;
        if status == 200 {
            return;
        }
        refused += 1;
        assert!(started.elapsed() < HANG, "never served again ({refused} answers were not 200)");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn killed(process: Running) {
    process.signal("KILL");
    drop(process);
}

#[tokio::test]
async fn a_backend_killed_during_a_call_is_a_503_and_served_again_once_it_restarts() {
    let (process, url) = backend_process("127.0.0.1:0", 2_000);
    let addr = url.trim_start_matches("http://").to_owned();
    let gateway = TestGateway::start(Some(url), None).await;

    let pending = {
        let (client, target) = (gateway.client.clone(), format!("{}/v1/shelves/1/books/1", gateway.base));
        tokio::spawn(async move {
            let answer = client.get(target).send().await.expect("an answer");
            (answer.status().as_u16(), answer.text().await.unwrap_or_default())
        })
    };
    let started = tokio::time::Instant::now();
    while outstanding(&gateway).await == 0 {
        assert!(started.elapsed() < HANG, "the call never reached the pool");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    killed(process);
    let (status, body) = tokio::time::timeout(HANG, pending).await.expect("in time").expect("task");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("unavailable"), "{body}");
    assert!(!body.contains("127.0.0.1") && !body.contains("\"title\""), "no address, no partial book: {body}");

    // Back on the same port: the pool reconnects without a reload.
    let (_process, _) = backend_process(&addr, 0);
    until_served(&gateway, "/v1/shelves/1/books/1").await;
    for _ in 0..10 {
        let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
        assert_eq!(status, 200, "{body}");
    }
    gateway.shutdown().await;
}

const WATCH: &str = r#"subscription Watch($shelf: String) { watchBooks(parent: $shelf) { kind book { title } } }"#;

/// Reads a streamed body to its end (hang detector only) and answers its non-empty lines.
async fn lines_to_end(mut response: reqwest::Response) -> Vec<String> {
    let mut text = Vec::new();
    while let Some(chunk) = tokio::time::timeout(HANG, response.chunk()).await.expect("in time").unwrap_or(None) {
        text.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&text).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[tokio::test]
async fn streams_from_a_killed_backend_end_with_errors_and_the_socket_subscribes_again() {
    let (process, url) = backend_process("127.0.0.1:0", 0);
    let addr = url.trim_start_matches("http://").to_owned();
    let gateway = TestGateway::start(Some(url), None).await;

    let watch = gateway.client.get(format!("{}/v1/shelves/5/books:watch", gateway.base)).send().await.expect("watch");
    assert_eq!(watch.status().as_u16(), 200);
    let mut socket = acknowledged(&gateway, "graphql-transport-ws").await;
    send(
        &mut socket,
        json!({"id": "a", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/5"}}}),
    )
    .await;
    // Both streams are open at the backend once each has carried an event.
    let created = |title: &str| format!(r#"{{"title":"{title}"}}"#);
    let (status, body, _) = gateway.call("POST", "/v1/shelves/5/books", &created("before the kill")).await;
    assert_eq!(status, 200, "{body}");
    let event = recv(&mut socket).await;
    assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], "before the kill", "{event}");

    killed(process);
    let error = recv(&mut socket).await;
    assert_eq!((&error["id"], &error["type"]), (&json!("a"), &json!("error")), "{error}");
    assert_eq!(error["payload"][0]["extensions"]["code"], "UNAVAILABLE", "{error}");
    let lines = lines_to_end(watch).await;
    assert_eq!(lines.len(), 2, "one event, then the error that ends the stream: {lines:?}");
    let last: Value = serde_json::from_str(&lines[1]).expect("json");
    assert!(last["error"]["code"].is_i64() && last["error"]["message"].is_string(), "{last}");
    assert!(!lines[1].contains("127.0.0.1"), "{last}");

    // The socket outlived its subscription's backend: once the process is back, it subscribes
    // again and hears the next event.
    let (_process, _) = backend_process(&addr, 0);
    until_served(&gateway, "/v1/shelves/5/books").await;
    send(
        &mut socket,
        json!({"id": "b", "type": "subscribe", "payload": {"query": WATCH, "variables": {"shelf": "shelves/5"}}}),
    )
    .await;
    // The subscription opens asynchronously: create books until one is heard (bounded).
    let mut heard = None;
    for attempt in 0..50 {
        let (status, body, _) =
            gateway.call("POST", "/v1/shelves/5/books", &created(&format!("after {attempt}"))).await;
        assert_eq!(status, 200, "{body}");
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(200), recv(&mut socket)).await {
            heard = Some(message);
            break;
        }
    }
    let event = heard.expect("an event on the resubscribed socket");
    assert_eq!(event["id"], "b", "{event}");
    assert!(event["payload"]["data"]["watchBooks"]["book"]["title"].as_str().is_some_and(|t| t.starts_with("after")));
    gateway.shutdown().await;
}
