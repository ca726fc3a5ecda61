//! Many instances as one gateway: three `switchyard serve` processes on loopback share their
//! registry, rate limits and cache through a real redis-server. A registration through one is
//! served by all; a limit of N holds across them, counted exactly; a cached answer fetched
//! through one is a hit on another; without Redis each keeps serving by its documented policy
//! and sharing resumes when Redis returns; killing or rolling instances loses no request a
//! client retries elsewhere; subscriptions stay on their instance and a drained one closes
//! them with 1001. Waits on other processes use the hang detector only.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::support::{HANG, RedisServer, Running, redis_command};

/// One `switchyard serve` process.
pub(crate) struct Instance {
    pub(crate) process: Running,
    pub(crate) gateway: String,
    pub(crate) admin: String,
}

/// The three instances' config: the registry, the limits and the cache's second level in one
/// Redis, under a prefix of this test's own.
fn config(redis: &str, backend: &str, prefix: &str) -> String {
    format!(
        r#"[sources]
registry = "redis"
descriptors = "no-descriptors"
schemas = "no-schemas"
watch = false
[redis]
urls = ["{redis}"]
key_prefix = "{prefix}"
connect_timeout = "500ms"
[backends.catalog]
endpoints = ["{backend}"]
services = ["catalog.v1"]
[rate_limits]
store = "redis"
on_store_error = "open"
[[rate_limits.rules]]
name = "listing"
methods = ["catalog.v1.Catalog/ListBooks"]
key = "global"
limit = 12
window = "1h"
[cache]
redis = true
[[cache.rules]]
methods = ["catalog.v1.Catalog/GetBook"]
ttl = "1h"
scope = "public"
"#
    )
}

/// Starts an instance with `config` (written into `dir` as `name.toml`) on free ports.
pub(crate) async fn start(dir: &Path, config: &str, name: &str) -> Instance {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, config).expect("write the config");
    let dir = dir.to_owned();
    let mut process = tokio::task::spawn_blocking(move || {
        let file = file.to_str().expect("utf8 path").to_owned();
        Running::spawn(&["serve", "--config", &file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], &dir)
    })
    .await
    .expect("join");
    let gateway = tokio::task::block_in_place(|| process.url_after("serving on "));
    let admin = tokio::task::block_in_place(|| process.url_after("(admin "));
    Instance { process, gateway, admin }
}

async fn readyz(instance: &Instance) -> (u16, Value) {
    let response = reqwest::get(format!("{}/readyz", instance.admin)).await.expect("readyz");
    (response.status().as_u16(), response.json().await.expect("json"))
}

/// Waits (hang detector only) until `instance`'s /readyz satisfies `test`.
async fn until_ready(instance: &Instance, what: &str, test: impl Fn(u16, &Value) -> bool) -> Value {
    let started = tokio::time::Instant::now();
    loop {
        let (status, body) = readyz(instance).await;
        if test(status, &body) {
            return body;
        }
        assert!(started.elapsed() < HANG, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `instance` serves the shared registry's generation `generation`.
async fn until_generation(instance: &Instance, generation: u64) -> Value {
    until_ready(instance, &format!("generation {generation} applied"), |_, body| {
        body["registry"]["applied"] == generation && body["registry"]["connected"] == true
    })
    .await
}

fn names(readyz: &Value) -> Vec<String> {
    readyz["registrations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Registers the demo's catalog through `instance`'s admin API; the answer.
async fn register(instance: &Instance) -> (u16, Value) {
    let body = switchyard::demo::demo_registration().expect("demo").encode();
    let response = reqwest::Client::new()
        .post(format!("{}/admin/descriptors?name=catalog.v1", instance.admin))
        .body(body)
        .send()
        .await
        .expect("register");
    (response.status().as_u16(), response.json().await.expect("json"))
}

async fn get(instance: &Instance, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::get(format!("{}{path}", instance.gateway)).await.expect("get");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

/// Waits until Redis holds a key matching `pattern`.
async fn written(redis: &str, pattern: &str) {
    let started = tokio::time::Instant::now();
    while redis_command(redis, &["KEYS", pattern]).await.starts_with("*0") {
        assert!(started.elapsed() < HANG, "nothing written under {pattern}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Redis, the demo backend and three instances sharing them (`prefix` keeps this test's keys
/// apart), with the catalog registered through the first when `registered`.
struct Deployment {
    redis: RedisServer,
    backend: switchyard::demo::DemoBackend,
    work: tempfile::TempDir,
    config: String,
    instances: Vec<Instance>,
}

async fn deploy(prefix: &str, registered: bool) -> Deployment {
    let redis = RedisServer::start().await;
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let work = tempfile::tempdir().expect("tempdir");
    let config = config(&redis.url, &backend.url(), &format!("{prefix}-{}", std::process::id()));
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        instances.push(start(work.path(), &config, name).await);
    }
    if registered {
        assert_eq!(register(&instances[0]).await.0, 200);
        for instance in &instances {
            until_generation(instance, 1).await;
        }
    }
    Deployment { redis, backend, work, config, instances }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_registry_limits_and_cache_through_redis() {
    let Deployment { redis, backend, work, config: _, instances } = deploy("share", false).await;
    for instance in &instances {
        let body = until_ready(instance, "ready", |status, _| status == 200).await;
        assert_eq!(body["registry"]["store"], "redis", "{body}");
        assert!(names(&body).is_empty(), "nothing registered yet: {body}");
    }

    // A registration through the first instance is served by all three.
    let (status, added) = register(&instances[0]).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["outcome"], "added", "{added}");
    for instance in &instances {
        let ready = until_generation(instance, 1).await;
        assert_eq!(names(&ready), ["catalog.v1"], "{ready}");
        let (status, _, book) = get(instance, "/v1/shelves/1/books/1").await;
        assert_eq!((status, &book["title"]), (200, &json!("The Left Hand of Darkness")), "{}", instance.gateway);
    }
    // Every instance lists the same version history.
    let listed: Value = reqwest::get(format!("{}/admin/descriptors", instances[2].admin))
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["store"], "redis", "{listed}");
    assert_eq!(listed["registrations"][0]["versions"][0]["number"], 1, "{listed}");
    assert_eq!(listed["registrations"][0]["versions"][0]["current"], true, "{listed}");
    assert_eq!(listed["registrations"][0]["versions"][0]["digest"], added["digest"], "{listed}");

    // A limit of 12 per window holds across the three, counted exactly.
    let mut statuses = Vec::new();
    for i in 0..18 {
        statuses.push(get(&instances[i % 3], "/v1/shelves/1/books").await.0);
    }
    assert_eq!(&statuses[..12], &[200; 12], "{statuses:?}");
    assert_eq!(&statuses[12..], &[429; 6], "{statuses:?}");

    // An answer fetched through one instance is a hit on the others.
    let calls = backend.calls("GetBook");
    let (status, headers, _) = get(&instances[1], "/v1/shelves/1/books/2").await;
    assert_eq!((status, headers.get("x-cache").and_then(|v| v.to_str().ok())), (200, Some("MISS")));
    assert_eq!(backend.calls("GetBook"), calls + 1);
    written(&redis.url, &format!("share-{}:cache:*", std::process::id())).await;
    for other in [&instances[0], &instances[2]] {
        let (status, headers, book) = get(other, "/v1/shelves/1/books/2").await;
        assert_eq!(status, 200, "{book}");
        assert_eq!(headers.get("x-cache").and_then(|v| v.to_str().ok()), Some("HIT"), "{}", other.gateway);
    }
    assert_eq!(backend.calls("GetBook"), calls + 1, "the other instances never called the backend");

    // A compatible new version through the second instance, then a rollback through the
    // third: every instance serves each in turn, and the history is the same everywhere.
    let proto = std::fs::read_to_string(crate::support::demo_proto_root().join("catalog/v1/catalog.proto"))
        .expect("the demo proto");
    crate::support::write_files(
        work.path(),
        &[("v2/catalog/v1/catalog.proto", &format!("{proto}\nmessage ShelfNote {{ string text = 1; }}\n"))],
    );
    let v2 = switchyard::registry::compile_sources(
        &[work.path().join("v2/catalog/v1/catalog.proto")],
        &[work.path().join("v2")],
        Some("catalog.v1"),
    )
    .expect("compile v2");
    let replaced: Value = reqwest::Client::new()
        .post(format!("{}/admin/descriptors?name=catalog.v1", instances[1].admin))
        .body(v2.encode())
        .send()
        .await
        .expect("replace")
        .json()
        .await
        .expect("json");
    assert_eq!(replaced["outcome"], "replaced", "{replaced}");
    for instance in &instances {
        let ready = until_generation(instance, 2).await;
        assert_eq!(ready["registrations"][0]["digest"], json!(v2.digest), "{ready}");
    }
    let rolled: Value = reqwest::Client::new()
        .post(format!("{}/admin/descriptors/catalog.v1/rollback", instances[2].admin))
        .send()
        .await
        .expect("rollback")
        .json()
        .await
        .expect("json");
    assert_eq!(rolled["outcome"], "rolled_back", "{rolled}");
    for instance in &instances {
        let ready = until_generation(instance, 3).await;
        assert_eq!(ready["registrations"][0]["digest"], added["digest"], "{ready}");
    }
    let listed: Value = reqwest::get(format!("{}/admin/descriptors", instances[0].admin))
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let history: Vec<(u64, String, bool)> = listed["registrations"][0]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (v["number"].as_u64().unwrap_or(0), v["digest"].as_str().unwrap_or("").to_owned(), v["current"] == true)
        })
        .collect();
    let first = added["digest"].as_str().expect("digest").to_owned();
    assert_eq!(history, [(1, first.clone(), false), (2, v2.digest.clone(), false), (3, first, true)], "{listed}");

    // A removal through the last instance reaches the others.
    let removed = reqwest::Client::new()
        .delete(format!("{}/admin/descriptors/catalog.v1", instances[2].admin))
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status().as_u16(), 200);
    for instance in &instances {
        let ready = until_generation(instance, 4).await;
        assert!(names(&ready).is_empty(), "{ready}");
        assert_eq!(get(instance, "/v1/shelves/1/books/1").await.0, 404, "{}", instance.gateway);
    }
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_instance_keeps_serving_and_sharing_resumes_when_it_returns() {
    let Deployment { mut redis, backend, work: _work, config: _, instances } = deploy("outage", true).await;

    redis.stop();
    for instance in &instances {
        // The registry: the last snapshot keeps serving, ready, and says Redis is gone.
        let ready = until_ready(instance, "Redis reported unreachable", |status, body| {
            status == 200 && body["registry"]["connected"] == false
        })
        .await;
        assert_eq!(names(&ready), ["catalog.v1"], "{ready}");
        assert!(ready["registry"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{ready}");
        let metrics =
            reqwest::get(format!("{}/metrics", instance.admin)).await.expect("metrics").text().await.expect("text");
        assert!(metrics.contains("switchyard_registry_shared_connected 0"), "{metrics}");
        // Limits: `on_store_error = "open"` lets calls through; the cache falls back to this
        // instance's own level.
        assert_eq!(get(instance, "/v1/shelves/1/books").await.0, 200);
        assert_eq!(get(instance, "/v1/shelves/1/books/1").await.0, 200);
    }
    // A change cannot be shared now: refused, and nothing changes anywhere.
    let refused = reqwest::Client::new()
        .delete(format!("{}/admin/descriptors/catalog.v1", instances[1].admin))
        .send()
        .await
        .expect("remove");
    assert_eq!(refused.status().as_u16(), 503);
    let body: Value = refused.json().await.expect("json");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("shared registry")), "{body}");

    // Redis returns empty (no persistence): the registry the instances serve is written back,
    // and sharing resumes.
    redis.restart().await;
    for instance in &instances {
        let ready =
            until_ready(instance, "Redis reachable again", |_, body| body["registry"]["connected"] == true).await;
        assert_eq!(names(&ready), ["catalog.v1"], "{ready}");
    }
    let stored =
        redis_command(&redis.url, &["HKEYS", &format!("outage-{}:registry:current", std::process::id())]).await;
    assert!(stored.contains("catalog.v1"), "{stored}");
    let removed = reqwest::Client::new()
        .delete(format!("{}/admin/descriptors/catalog.v1", instances[1].admin))
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status().as_u16(), 200);
    for instance in &instances {
        let ready = until_ready(instance, "the removal applied", |_, body| {
            body["registry"]["connected"] == true && body["registrations"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
        assert!(names(&ready).is_empty(), "{ready}");
    }
    backend.shutdown().await;
}

/// The client side of a load balancer: tries the instances in turn from `start`, moving on
/// when one cannot be reached or is draining; the status it ended with.
async fn get_retried(
    client: &reqwest::Client,
    instances: &std::sync::RwLock<Vec<String>>,
    start: usize,
) -> Option<u16> {
    let list = instances.read().expect("lock").clone();
    for attempt in 0..list.len() * 3 {
        let base = &list[(start + attempt) % list.len()];
        match client.get(format!("{base}/v1/shelves/1/books/1")).send().await {
            Ok(response) if response.status().as_u16() != 503 => return Some(response.status().as_u16()),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_and_a_rolling_restart_lose_no_retried_request() {
    let Deployment { redis: _redis, backend, work, config, mut instances } = deploy("roll", true).await;

    // Load: four clients, bounded in count and time, each request retried on another
    // instance as a load balancer does for idempotent calls.
    let pool = Arc::new(std::sync::RwLock::new(instances.iter().map(|i| i.gateway.clone()).collect::<Vec<_>>()));
    let done = Arc::new(AtomicBool::new(false));
    let (succeeded, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|worker| {
            let (pool, done, succeeded, failed) = (pool.clone(), done.clone(), succeeded.clone(), failed.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let started = tokio::time::Instant::now();
                let mut sent = 0;
                while !done.load(Ordering::Relaxed) && sent < 20_000 && started.elapsed() < HANG {
                    match get_retried(&client, &pool, worker + sent).await {
                        Some(200) => succeeded.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    sent += 1;
                }
            })
        })
        .collect();
    let after = |count: usize| {
        let succeeded = succeeded.clone();
        async move {
            let started = tokio::time::Instant::now();
            while succeeded.load(Ordering::Relaxed) < count {
                assert!(started.elapsed() < HANG, "the load stalled");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    // One instance dies without warning; its health check would take it out of the pool.
    after(50).await;
    let killed = instances.remove(1);
    killed.process.signal("KILL");
    after(100).await;
    pool.write().expect("lock").retain(|url| *url != killed.gateway);
    drop(killed);

    // A rolling restart of the other two: a new instance joins (reading the registry from
    // Redis as it starts), then the old one is drained with SIGTERM.
    for round in 0..2 {
        let mark = succeeded.load(Ordering::Relaxed);
        let fresh = start(work.path(), &config, &format!("new{round}")).await;
        let ready = until_ready(&fresh, "the new instance ready", |status, _| status == 200).await;
        assert_eq!(names(&ready), ["catalog.v1"], "it starts with the shared registry: {ready}");
        pool.write().expect("lock").push(fresh.gateway.clone());
        after(mark + 50).await;
        let mut old = instances.remove(0);
        old.process.signal("TERM");
        assert_eq!(tokio::task::block_in_place(|| old.process.wait()), Some(0), "a clean drain");
        pool.write().expect("lock").retain(|url| *url != old.gateway);
        after(succeeded.load(Ordering::Relaxed) + 50).await;
        instances.push(fresh);
    }
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("join");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{} succeeded", succeeded.load(Ordering::Relaxed));
    assert!(succeeded.load(Ordering::Relaxed) >= 250);
    backend.shutdown().await;
}

/// Opens a graphql-transport-ws subscription to the book changes of shelf 1 on `gateway`.
async fn watch_books(
    gateway: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("{}/graphql", gateway.replace("http://", "ws://")).into_client_request().expect("url");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    let send = |value: Value| Message::Text(value.to_string().into());
    socket.send(send(json!({"type": "connection_init"}))).await.expect("init");
    let ack = tokio::time::timeout(HANG, socket.next()).await.expect("ack in time");
    assert!(matches!(ack, Some(Ok(Message::Text(ref t))) if t.contains("connection_ack")), "{ack:?}");
    let query = "subscription { watchBooks(parent: \"shelves/1\") { kind book { title } } }";
    socket.send(send(json!({"id": "w", "type": "subscribe", "payload": {"query": query}}))).await.expect("subscribe");
    socket
}

/// The next text frame's JSON, or the close code.
async fn next_frame(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Result<Value, Option<u16>> {
    loop {
        match tokio::time::timeout(HANG, socket.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).expect("json")),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_stay_on_their_instance_and_a_drained_one_closes_them_with_1001() {
    let Deployment { redis: _redis, backend, work: _work, config: _, mut instances } = deploy("subs", true).await;
    // Two clients, each on its own instance; a change made through the third reaches both.
    let mut on_a = watch_books(&instances[0].gateway).await;
    let mut on_b = watch_books(&instances[1].gateway).await;
    let started = tokio::time::Instant::now();
    while backend.watchers() < 2 {
        assert!(started.elapsed() < HANG, "hang detector: the subscriptions never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let update = |title: &str| {
        let body = json!({"query": format!(
            "mutation {{ updateBook(book: {{name: \"shelves/1/books/2\", title: \"{title}\"}}, updateMask: \"title\") {{ title }} }}"
        )});
        let url = format!("{}/graphql", instances[2].gateway);
        async move {
            let answer: Value =
                reqwest::Client::new().post(url).json(&body).send().await.expect("update").json().await.expect("json");
            assert!(answer.get("errors").is_none(), "{answer}");
        }
    };
    update("Earthsea").await;
    for socket in [&mut on_a, &mut on_b] {
        let event = next_frame(socket).await.expect("an event");
        assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], "Earthsea", "{event}");
    }
    // Draining the second instance closes its socket with 1001, so its client resubscribes
    // elsewhere; the first keeps receiving.
    instances[1].process.signal("TERM");
    assert_eq!(next_frame(&mut on_b).await.err(), Some(Some(1001)));
    update("A Wizard of Earthsea").await;
    let event = next_frame(&mut on_a).await.expect("an event");
    assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], "A Wizard of Earthsea", "{event}");
    // The client reconnects to another instance and gets the next change there.
    let mut again = watch_books(&instances[2].gateway).await;
    let started = tokio::time::Instant::now();
    while backend.watchers() < 2 {
        assert!(started.elapsed() < HANG, "hang detector: the new subscription never opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    update("Earthsea").await;
    let event = next_frame(&mut again).await.expect("an event");
    assert_eq!(event["payload"]["data"]["watchBooks"]["book"]["title"], "Earthsea", "{event}");
    assert_eq!(tokio::task::block_in_place(|| instances[1].process.wait()), Some(0));
    backend.shutdown().await;
}

#[test]
fn a_shared_registry_config_is_checked_naming_the_key() {
    crate::support::assert_config_refused(&[
        ("[sources]\nregistry = \"redis\"\n", "sources.registry", "name its server in [redis] urls"),
        ("[sources]\nregistry = \"etcd\"\n", "sources.registry", "etcd"),
        ("[sources]\nregistry = \"redis\"\n[redis]\nurls = [\"http://x\"]\n", "redis.urls[0]", "not a Redis URL"),
    ]);
}

/// The fenced block of README.md that starts with "```{language}".
fn readme_block(language: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let start = readme.find(&format!("```{language}\n")).unwrap_or_else(|| panic!("README has a ```{language} block"));
    let body = &readme[start + language.len() + 4..];
    body[..body.find("```").expect("the block ends")].to_owned()
}

/// A free loopback port (bound, then released for a process to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Starts an instance on the given ports.
async fn start_at(dir: &Path, config: &str, name: &str, listen: u16, admin: u16) -> Instance {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, config).expect("write the config");
    let dir = dir.to_owned();
    let mut process = tokio::task::spawn_blocking(move || {
        let file = file.to_str().expect("utf8 path").to_owned();
        let (listen, admin) = (format!("127.0.0.1:{listen}"), format!("127.0.0.1:{admin}"));
        Running::spawn(&["serve", "--config", &file, "--listen", &listen, "--admin", &admin], &dir)
    })
    .await
    .expect("join");
    let gateway = tokio::task::block_in_place(|| process.url_after("serving on "));
    let admin = tokio::task::block_in_place(|| process.url_after("(admin "));
    Instance { process, gateway, admin }
}

/// A load balancer process, stopped with SIGTERM when dropped (so nginx's master stops its
/// workers too, even when the test fails).
struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// A load balancer as README.md configures it, in front of three instances that are then
/// restarted one by one under load: no request through it fails.
async fn rolling_restart_through(balancer: &str) {
    let redis = RedisServer::start().await;
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let work = tempfile::tempdir().expect("tempdir");
    let config = config(&redis.url, &backend.url(), &format!("{balancer}-{}", std::process::id()))
        + "[listener]\nshutdown_delay = \"2s\"\n";
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let mut instances = Vec::new();
    for (i, (listen, admin)) in ports.iter().enumerate() {
        instances.push(start_at(work.path(), &config, &format!("i{i}"), *listen, *admin).await);
    }
    assert_eq!(register(&instances[0]).await.0, 200);
    for instance in &instances {
        until_generation(instance, 1).await;
    }

    // README's config with this test's ports.
    let front = free_port();
    let mut text = match balancer {
        "haproxy" => readme_block("haproxy").replace("bind 127.0.0.1:8080", &format!("bind 127.0.0.1:{front}")),
        _ => format!(
            "daemon off;\nworker_processes 1;\npid {pid};\nerror_log stderr;\nevents {{}}\nhttp {{\naccess_log off;\n{block}}}\n",
            pid = work.path().join("nginx.pid").display(),
            block = readme_block("nginx").replace("listen 8080;", &format!("listen 127.0.0.1:{front};"))
        ),
    };
    for (i, (listen, admin)) in ports.iter().enumerate() {
        let (readme_listen, readme_admin) = (8081 + i, 9091 + i);
        assert!(
            text.contains(&format!("127.0.0.1:{readme_listen}")),
            "README's {balancer} block names :{readme_listen}"
        );
        text = text
            .replace(&format!("127.0.0.1:{readme_listen}"), &format!("127.0.0.1:{listen}"))
            .replace(&format!("port {readme_admin}"), &format!("port {admin}"));
    }
    let file = work.path().join(format!("{balancer}.conf"));
    std::fs::write(&file, &text).expect("write");
    let file = file.to_str().expect("utf8").to_owned();
    let prefix = work.path().to_str().expect("utf8").to_owned();
    let args: Vec<&str> = match balancer {
        "haproxy" => vec!["-f", &file, "-db"],
        _ => vec!["-p", &prefix, "-c", &file],
    };
    // Debian puts them in /usr/sbin, which a non-root PATH may lack.
    let program = ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(balancer))
        .find(|path| path.exists())
        .unwrap_or_else(|| balancer.into());
    let proxy = Proxy(
        std::process::Command::new(program)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{balancer} starts (.ci/run installs it): {e}")),
    );
    let url = format!("http://127.0.0.1:{front}/v1/shelves/1/books/1");
    let client = reqwest::Client::new();
    let started = tokio::time::Instant::now();
    while !matches!(client.get(&url).send().await, Ok(r) if r.status() == 200) {
        assert!(started.elapsed() < HANG, "{balancer} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Four clients, no retries of their own, bounded in count and time.
    let done = Arc::new(AtomicBool::new(false));
    let (succeeded, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, done, succeeded, failed, failures) =
                (url.clone(), done.clone(), succeeded.clone(), failed.clone(), failures.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let started = tokio::time::Instant::now();
                let mut sent = 0;
                while !done.load(Ordering::Relaxed) && sent < 50_000 && started.elapsed() < HANG {
                    match client.get(&url).send().await {
                        Ok(response) if response.status() == 200 => succeeded.fetch_add(1, Ordering::Relaxed),
                        other => {
                            failures.lock().expect("lock").push(format!("{other:?}"));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    sent += 1;
                }
            })
        })
        .collect();
    for (i, (listen, admin)) in ports.iter().enumerate() {
        let mark = succeeded.load(Ordering::Relaxed);
        // The old one drains first: it leaves the pool while still serving, then closes.
        instances[i].process.signal("TERM");
        let code = tokio::task::block_in_place(|| instances[i].process.wait());
        assert_eq!(code, Some(0), "a clean drain");
        instances[i] = start_at(work.path(), &config, &format!("i{i}-new"), *listen, *admin).await;
        until_ready(&instances[i], "the restarted instance ready", |status, _| status == 200).await;
        let started = tokio::time::Instant::now();
        while succeeded.load(Ordering::Relaxed) < mark + 100 {
            assert!(started.elapsed() < HANG, "the load stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("join");
    }
    drop(proxy);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{:?}", failures.lock().expect("lock"));
    assert!(succeeded.load(Ordering::Relaxed) >= 300);
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readmes_haproxy_config_rolls_instances_without_failing_a_request() {
    rolling_restart_through("haproxy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readmes_nginx_config_rolls_instances_without_failing_a_request() {
    rolling_restart_through("nginx").await;
}

#[test]
fn readmes_kubernetes_example_is_consistent_and_its_config_passes_check() {
    use std::io::Write;
    // The manifests, loaded by PyYAML (tests/python, installed by .ci/run).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let python = dir.join(".venv/bin/python");
    assert!(python.exists(), "the Python test tools are not installed: run `bash .ci/run`");
    let mut child = std::process::Command::new(python)
        .arg(dir.join("yaml_documents.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().expect("stdin").write_all(readme_block("yaml").as_bytes()).expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "README's manifests do not load: {}", String::from_utf8_lossy(&out.stderr));
    let documents: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    let find = |kind: &str, name: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("README's manifests have a {kind} {name}"))
            .clone()
    };
    let config_map = find("ConfigMap", "switchyard");
    let deployment = find("Deployment", "switchyard");
    let service = find("Service", "switchyard");
    let redis = find("Service", "switchyard-redis");
    find("StatefulSet", "switchyard-redis");

    // The config the ConfigMap carries passes `switchyard check`.
    let toml = config_map["data"]["switchyard.toml"].as_str().expect("switchyard.toml").to_owned();
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(work.path().join("switchyard.toml"), &toml).expect("write");
    let checked = crate::support::bin()
        .args(["check", "--config", "switchyard.toml"])
        .env("SWITCHYARD_ADMIN_TOKEN", "a-token")
        .current_dir(work.path())
        .output()
        .expect("check runs");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let config: toml_like::Config = toml_like::parse(&toml);

    // The pod: probes on the admin listener, the ports the config listens on, resources, a
    // grace period longer than the drain, and the config mounted where the args read it.
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let port = |name: &str| {
        container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .map(|p| p["containerPort"].clone())
    };
    assert_eq!(port("http"), Some(json!(config.listen_port)), "{container}");
    assert_eq!(port("admin"), Some(json!(config.admin_port)), "{container}");
    assert_eq!(container["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "admin"}));
    assert_eq!(container["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "admin"}));
    assert!(
        container["resources"]["requests"]["cpu"].is_string()
            && container["resources"]["requests"]["memory"].is_string()
    );
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("a grace period");
    assert!(grace > config.drain_seconds, "grace {grace}s, drain {}s", config.drain_seconds);
    let args: Vec<&str> = container["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
    let mount = container["volumeMounts"][0]["mountPath"].as_str().expect("a mount");
    assert_eq!(args, ["serve", "--config", &format!("{mount}/switchyard.toml")]);
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    // The Services select the pods, and the config reaches Redis by its Service's name.
    assert_eq!(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]);
    let redis_name = redis["metadata"]["name"].as_str().expect("name");
    assert!(config.redis_url.contains(&format!("//{redis_name}:6379")), "{}", config.redis_url);
}

/// The few values of README's Kubernetes config that the manifests must agree with.
mod toml_like {
    pub(super) struct Config {
        pub(super) listen_port: u64,
        pub(super) admin_port: u64,
        pub(super) drain_seconds: u64,
        pub(super) redis_url: String,
    }

    pub(super) fn parse(text: &str) -> Config {
        let value: toml_edit::DocumentMut = text.parse().expect("the ConfigMap's config is TOML");
        let port = |key: &str| {
            let listen = value[key]["listen"].as_str().expect("listen");
            listen.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port")
        };
        let seconds = |key: &str| {
            let text = value["listener"][key].as_str().expect("a duration");
            humantime::parse_duration(text).expect("a duration").as_secs()
        };
        let urls = value["redis"]["urls"].as_array().expect("Redis URLs");
        Config {
            listen_port: port("listener"),
            admin_port: port("admin"),
            drain_seconds: seconds("shutdown_delay") + seconds("shutdown_timeout"),
            redis_url: urls.get(0).and_then(|url| url.as_str()).expect("a Redis URL").to_owned(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_through_two_instances_are_both_applied() {
    let Deployment { redis: _redis, backend, work, config: _, instances } = deploy("race", false).await;
    crate::support::write_files(
        work.path(),
        &[(
            "notes/notes/v1/notes.proto",
            "syntax = \"proto3\";\npackage notes.v1;\nservice Notes { rpc Get(Note) returns (Note); }\nmessage Note { string text = 1; }\n",
        )],
    );
    let notes = switchyard::registry::compile_sources(
        &[work.path().join("notes/notes/v1/notes.proto")],
        &[work.path().join("notes")],
        Some("notes.v1"),
    )
    .expect("compile");
    let post = |instance: &Instance, name: &str, body: Vec<u8>| {
        let url = format!("{}/admin/descriptors?name={name}", instance.admin);
        async move { reqwest::Client::new().post(url).body(body).send().await.expect("post").status().as_u16() }
    };
    // Both checked against the same generation; the one written second is checked again.
    let catalog = switchyard::demo::demo_registration().expect("demo").encode();
    let (first, second) =
        tokio::join!(post(&instances[0], "catalog.v1", catalog), post(&instances[1], "notes.v1", notes.encode()));
    assert_eq!((first, second), (200, 200));
    for instance in &instances {
        let ready = until_generation(instance, 2).await;
        assert_eq!(names(&ready), ["catalog.v1", "notes.v1"], "{ready}");
    }
    backend.shutdown().await;
}

#[tokio::test]
async fn a_change_checked_before_another_was_written_is_refused_as_stale() {
    let redis = RedisServer::start().await;
    let config = switchyard::config::RedisConfig { urls: vec![redis.url.clone()], ..Default::default() };
    let store =
        switchyard::registry::SharedRegistry::new(switchyard::redis_pool::RedisPool::build(&config).expect("pool"));
    let catalog = switchyard::demo::demo_registration().expect("demo");
    // Two changes checked against generation 0.
    let first = store.prepare_add(&catalog, false).await.expect("check");
    let second = store.prepare_remove("catalog.v1").await;
    assert!(matches!(second, Err(switchyard::registry::RegistryError::NotFound(_))), "nothing to remove yet");
    let again = store.prepare_add(&catalog, false).await.expect("check");
    let (changed, generation) = store.commit(first).await.expect("written");
    assert!(matches!(changed, switchyard::registry::Changed::Added(None)), "{changed:?}");
    assert_eq!(generation, 1);
    // The other was checked at generation 0: refused, nothing written.
    let stale = store.commit(again).await.expect_err("stale");
    assert!(matches!(stale, switchyard::registry::RegistryError::Stale { checked: 0, found: 1 }), "{stale:?}");
    assert_eq!(stale.code(), switchyard::error::ErrorCode::Aborted);
    let state = store.load().await.expect("load");
    assert_eq!(state.generation, 1);
    assert_eq!(store.versions("catalog.v1").await.expect("versions").len(), 1, "written once");
    // Checked again, it is a no-op (the same digest), and a removal goes through.
    let unchanged = store.prepare_add(&catalog, false).await.expect("check");
    assert!(unchanged.is_noop());
    let removal = store.prepare_remove("catalog.v1").await.expect("check");
    let (changed, generation) = store.commit(removal).await.expect("written");
    assert!(matches!(changed, switchyard::registry::Changed::Removed(_)), "{changed:?}");
    assert_eq!(generation, 2);
    assert!(store.load().await.expect("load").registrations.is_empty());
}
