//! Subscriptions at scale, against `switchyard demo` running as its own process: 1,000
//! graphql-transport-ws subscribers of one shelf's book events (one shared backend stream).
//! Measures the fan-out latency — from the call that creates a book to the last of the 1,000
//! clients holding its event frame — and prints the gateway process's memory per open idle
//! subscription (VmRSS before and after they open). Run: `cargo bench --bench subscription_fanout`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SUBSCRIBERS: usize = 1000;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The demo as a child process, and its gateway's address.
struct Demo {
    child: Child,
    gateway: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let (found, address) = std::sync::mpsc::channel();
    // Keep reading the demo's output to its end, so its writes never meet a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.trim_start().strip_prefix("gateway") {
                let _ = found.send(rest.trim().trim_start_matches("http://").to_owned());
            }
        }
    });
    let gateway = address.recv_timeout(Duration::from_secs(60)).expect("the banner names the gateway");
    Demo { child, gateway }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn subscriber(gateway: &str, shelf: &str) -> Socket {
    let mut request = format!("ws://{gateway}/graphql").into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    let upgrade = tokio::time::timeout(Duration::from_secs(60), tokio_tungstenite::connect_async(request));
    let (mut socket, _) = upgrade.await.expect("upgraded in time").expect("upgrade");
    socket.send(Message::Text(json!({"type": "connection_init"}).to_string().into())).await.expect("init");
    next_json(&mut socket).await;
    let query = "subscription($shelf: String) { watchBooks(parent: $shelf) { kind book { title } } }";
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": {"shelf": shelf}}});
    socket.send(Message::Text(subscribe.to_string().into())).await.expect("subscribe");
    socket
}

async fn next_json(socket: &mut Socket) -> Value {
    next_json_by(socket, tokio::time::Instant::now() + Duration::from_secs(60)).await.expect("a frame in time")
}

/// The next text frame as JSON, or None at `deadline` (keep-alive pings do not extend it).
async fn next_json_by(socket: &mut Socket, deadline: tokio::time::Instant) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next()).await.ok()?;
        match frame {
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).expect("json")),
            Some(Ok(_)) => continue,
            other => panic!("the socket ended: {other:?}"),
        }
    }
}

/// The title of the book in a watchBooks event.
fn event_title(event: &Value) -> Option<&str> {
    event["payload"]["data"]["watchBooks"]["book"]["title"].as_str()
}

/// Makes sure every subscriber is live: books are created until each has had an event (a
/// subscribe message returns before the gateway has opened the backend stream, so the first
/// book may come too early for some).
async fn warm_up(client: &reqwest::Client, gateway: &str, sockets: &mut [Socket]) {
    let mut pending: Vec<usize> = (0..sockets.len()).collect();
    for round in 0..12 {
        create_book(client, gateway, "shelves/500", &format!("warm-up {round}")).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let waiting = sockets
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| pending.contains(i))
            .map(|(i, socket)| async move { (i, next_json_by(socket, deadline).await.is_some()) });
        let received: Vec<(usize, bool)> = futures_util::future::join_all(waiting).await;
        pending.retain(|i| !received.iter().any(|(j, got)| j == i && *got));
        if pending.is_empty() {
            return;
        }
    }
    panic!("{} subscribers never received an event", pending.len());
}

async fn create_book(client: &reqwest::Client, gateway: &str, shelf: &str, title: &str) {
    let response = client
        .post(format!("http://{gateway}/v1/{shelf}/books"))
        .header("content-type", "application/json")
        .body(json!({"title": title}).to_string())
        .send()
        .await
        .expect("create");
    assert!(response.status().is_success());
}

/// Creates a book and waits until every subscriber has its event.
async fn fan_out(client: &reqwest::Client, gateway: &str, sockets: &mut [Socket], title: &str) -> Duration {
    let started = Instant::now();
    create_book(client, gateway, "shelves/500", title).await;
    let receiving = sockets.iter_mut().map(|socket| async move {
        // Events of later warm-up books may still be on their way: skip them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let event = next_json_by(socket, deadline).await.expect("the event in time");
            match event_title(&event) {
                Some(got) if got == title => break,
                Some(got) if got.starts_with("warm-up") => continue,
                other => panic!("unexpected event {other:?}: {event}"),
            }
        }
    });
    futures_util::future::join_all(receiving).await;
    started.elapsed()
}

fn subscription_fanout(c: &mut Criterion) {
    rlimit::increase_nofile_limit(4096).expect("raise the open-file limit");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let demo = start_demo();
    let gateway = demo.gateway.clone();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let before = rss_kib(demo.child.id());
    let mut sockets = runtime.block_on(async {
        let mut sockets = Vec::with_capacity(SUBSCRIBERS);
        for _ in 0..SUBSCRIBERS / 50 {
            let batch = (0..50).map(|_| subscriber(&gateway, "shelves/500"));
            sockets.extend(futures_util::future::join_all(batch).await);
        }
        warm_up(&client, &gateway, &mut sockets).await;
        sockets
    });
    let after = rss_kib(demo.child.id());
    println!(
        "subscription_fanout: gateway process VmRSS {before} KiB idle, {after} KiB with {SUBSCRIBERS} open subscriptions: \
         {:.1} KiB per subscription",
        (after.saturating_sub(before)) as f64 / SUBSCRIBERS as f64
    );
    let mut n = 0u64;
    c.bench_function("subscription_fanout/event_to_1000_subscribers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                total += runtime.block_on(fan_out(&client, &gateway, &mut sockets, &format!("book {n}")));
            }
            total
        })
    });
    drop(sockets);
    drop(demo);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = subscription_fanout
}
criterion_main!(benches);
