//! The listener and snapshot lifecycle in-process: reload keeps the old snapshot on failure,
//! header-read and idle timeouts fire (paused clock), the connection cap refuses, draining
//! waits for in-flight requests up to the deadline.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use switchyard::gateway::Gateway;
use switchyard::server::{DrainReport, ListenerSettings, serve_listener, start_server};
use switchyard::snapshot::{SnapshotSources, build_snapshot};

fn settings() -> ListenerSettings {
    ListenerSettings {
        max_connections: 100,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        keepalive_interval: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(20),
        shutdown_timeout: Duration::from_secs(30),
        max_header_bytes: 64 * 1024,
        max_headers: 100,
    }
}

async fn listen(
    router: Router,
    settings: ListenerSettings,
) -> (std::net::SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<DrainReport>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = watch::channel(false);
    (addr, stop, tokio::spawn(serve_listener(listener, router, settings, stopped)))
}

/// Reads until the peer closes; returns what was read.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn reload_with_a_broken_descriptor_keeps_the_old_snapshot() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("descriptors");
    let registration = switchyard::demo::demo_registration().expect("demo");
    switchyard::registry::RegistryDir::new(&dir).add(&registration, false).expect("add");
    let sources = SnapshotSources {
        descriptors: Some(dir.clone()),
        schemas: Some(work.path().join("schemas")),
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        admin: Some("127.0.0.1:0".parse().expect("addr")),
        ..SnapshotSources::default()
    };
    let snapshot = build_snapshot(&sources, 1).expect("builds");
    let gateway = Gateway::new(snapshot, sources);
    let server = start_server(gateway.clone()).await.expect("starts");
    let admin = format!("http://{}", server.admin_addr);
    let client = reqwest::Client::new();

    std::fs::write(dir.join("broken.binpb"), b"\x0a\x05garbage").expect("write");
    let refused = client.post(format!("{admin}/admin/reload")).send().await.expect("reload");
    assert_eq!(refused.status().as_u16(), 400);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["generation"], 1);
    assert!(body["problems"][0].as_str().expect("problem").contains("broken.binpb"), "{body}");
    let ready: serde_json::Value =
        client.get(format!("{admin}/readyz")).send().await.expect("readyz").json().await.expect("json");
    assert_eq!(ready["generation"], 1);
    assert_eq!(ready["services"]["catalog.v1.Catalog"], serde_json::Value::Null, "still served, without a backend");
    assert_eq!(gateway.snapshot().registry.registrations.len(), 1);

    std::fs::remove_file(dir.join("broken.binpb")).expect("rm");
    let accepted = client.post(format!("{admin}/admin/reload")).send().await.expect("reload");
    assert_eq!(accepted.status().as_u16(), 200);
    let body: serde_json::Value = accepted.json().await.expect("json");
    assert_eq!(body["generation"], 2);
    assert_eq!(server.shutdown().await, DrainReport::default());
    assert!(!gateway.is_ready(), "readiness goes off at shutdown");
}

#[tokio::test]
async fn the_admin_token_guards_admin_routes_but_not_probes() {
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        work.path().join("switchyard.toml"),
        "[listener]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret\"\n",
    )
    .expect("write");
    let sources = SnapshotSources {
        config_file: Some(work.path().join("switchyard.toml")),
        descriptors: Some(work.path().join("none")),
        ..SnapshotSources::default()
    };
    let gateway = Gateway::new(build_snapshot(&sources, 1).expect("builds"), sources);
    let server = start_server(gateway).await.expect("starts");
    let admin = format!("http://{}", server.admin_addr);
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{admin}/healthz")).send().await.expect("healthz").status().as_u16(), 200);
    let denied = client.post(format!("{admin}/admin/reload")).send().await.expect("reload");
    assert_eq!(denied.status().as_u16(), 401);
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    let wrong = client.post(format!("{admin}/admin/reload")).bearer_auth("nope").send().await.expect("reload");
    assert_eq!(wrong.status().as_u16(), 401);
    let allowed = client.post(format!("{admin}/admin/reload")).bearer_auth("s3cret").send().await.expect("reload");
    assert_eq!(allowed.status().as_u16(), 200);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let router = Router::new().route("/", get(|| async { "hi" }));
    let (addr, stop, done) =
        listen(router, ListenerSettings { header_read_timeout: Duration::from_secs(5), ..settings() }).await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let started = tokio::time::Instant::now();
    let answer = read_to_close(&mut slow).await;
    assert!(started.elapsed() >= Duration::from_secs(5), "closed before the timeout");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");

    let mut fine = TcpStream::connect(addr).await.expect("connect");
    fine.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    assert!(read_to_close(&mut fine).await.ends_with("hi"));
    stop.send(true).expect("stop");
    assert_eq!(done.await.expect("join"), DrainReport::default());
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let router = Router::new().route("/", get(|| async { "hi" }));
    let custom = ListenerSettings {
        idle_timeout: Duration::from_secs(3),
        header_read_timeout: Duration::from_secs(30),
        ..settings()
    };
    let (addr, stop, done) = listen(router, custom).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 256];
    let n = client.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("hi"));
    let idle_from = tokio::time::Instant::now();
    assert_eq!(client.read(&mut buf).await.expect("eof"), 0, "the kept-alive connection is closed");
    let waited = idle_from.elapsed();
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(30), "{waited:?}");
    stop.send(true).expect("stop");
    done.await.expect("join");
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_while_others_are_served() {
    let router = Router::new().route("/", get(|| async { "hi" }));
    let (addr, stop, done) = listen(router, ListenerSettings { max_connections: 2, ..settings() }).await;
    let held: Vec<TcpStream> =
        vec![TcpStream::connect(addr).await.expect("connect"), TcpStream::connect(addr).await.expect("connect")];
    let mut excess = TcpStream::connect(addr).await.expect("the kernel accepts");
    let mut buf = [0u8; 16];
    let refused = tokio::time::timeout(Duration::from_secs(30), excess.read(&mut buf)).await.expect("hang detector");
    assert!(matches!(refused, Ok(0) | Err(_)), "the excess connection is closed: {refused:?}");
    drop(held);
    // Freed slots serve again (the server notices the closed connections first).
    let mut served = false;
    for _ in 0..200 {
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
        if read_to_close(&mut client).await.ends_with("hi") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served);
    stop.send(true).expect("stop");
    done.await.expect("join");
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_in_flight_requests_and_forces_past_the_deadline() {
    let router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "done"
            }),
        )
        .route(
            "/stuck",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        );
    let (addr, stop, done) =
        listen(router.clone(), ListenerSettings { shutdown_timeout: Duration::from_secs(5), ..settings() }).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(true).expect("stop");
    let answer = read_to_close(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
    assert_eq!(done.await.expect("join"), DrainReport::default());
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");

    let (addr, stop, done) =
        listen(router, ListenerSettings { shutdown_timeout: Duration::from_secs(5), ..settings() }).await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.write_all(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = tokio::time::Instant::now();
    stop.send(true).expect("stop");
    assert_eq!(done.await.expect("join"), DrainReport { forced: 1 });
    assert!(stopped_at.elapsed() >= Duration::from_secs(5));
}
