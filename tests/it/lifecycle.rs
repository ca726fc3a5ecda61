//! Process lifecycle through the binary: the demo starts and answers health, SIGTERM exits 0
//! promptly, a taken port exits 3.

use crate::support::{Running, run, text};

fn get(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let response = reqwest::get(url).await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    })
}

#[test]
fn the_demo_starts_answers_health_and_stops_on_sigint() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut demo = Running::spawn(&["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], work.path());
    let admin = demo.url_after("admin ");
    let gateway = demo.url_after("gateway ");
    let backend = demo.url_after("demo backend ");

    assert_eq!(get(&format!("{admin}/healthz")), (200, "ok\n".to_owned()));
    let (status, ready) = get(&format!("{admin}/readyz"));
    assert_eq!(status, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("json");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["services"]["catalog.v1.Catalog"], "catalog.v1", "the gateway is wired to the demo backend");

    // The printed token works: its calls are rate limited (anonymous ones are not), and it may
    // see the field the demo's rule guards.
    let token = demo.text_after("TOKEN=");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (limited, anonymous, rating) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let book = format!("{gateway}/v1/shelves/1/books/1");
        let limited = client.get(&book).bearer_auth(&token).send().await.expect("send");
        let anonymous = client.get(&book).send().await.expect("send");
        let query = serde_json::json!({"query": "{ getBook(name: \"shelves/1/books/1\") { rating } }"});
        let graphql = client.post(format!("{gateway}/graphql")).bearer_auth(&token).json(&query).send().await;
        let body: serde_json::Value = graphql.expect("send").json().await.expect("json");
        (limited.headers().get("ratelimit-policy").cloned(), anonymous.headers().get("ratelimit-policy").cloned(), body)
    });
    assert_eq!(limited.expect("a limit applies to the token").to_str().expect("ascii"), "\"demo\";q=60;w=60");
    assert_eq!(anonymous, None, "anonymous clients are not limited");
    assert_eq!(rating["data"]["getBook"]["rating"], 46, "{rating}");

    // Federation: the critics subgraph's reviews, with their books' titles from the gRPC catalog.
    let federated = runtime.block_on(async {
        let query = serde_json::json!({"query": "{ latestReviews { stars book { title } } }"});
        let answer = reqwest::Client::new().post(format!("{gateway}/graphql")).json(&query).send().await;
        answer.expect("send").json::<serde_json::Value>().await.expect("json")
    });
    assert_eq!(
        federated["data"]["latestReviews"][0],
        serde_json::json!({"stars": 5, "book": {"title": "The Left Hand of Darkness"}}),
        "{federated}"
    );

    // The runtime's idle client connections close with it, before the demo drains.
    drop(runtime);
    let (status, body) = get(&format!("{gateway}/no/such/route"));
    assert_eq!(status, 404);
    assert!(body.contains("no route matches GET /no/such/route"), "{body}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let serving = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(backend).expect("url").connect().await.expect("connect");
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest { service: "catalog.v1.Catalog".into() };
        health.check(request).await.expect("health check").into_inner().status
    });
    assert_eq!(serving, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    demo.signal("INT");
    assert_eq!(demo.wait(), Some(0));
}

#[test]
fn sigterm_with_no_traffic_exits_0() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut serve = Running::spawn(&["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], work.path());
    let admin = serve.url_after("(admin ");
    assert_eq!(get(&format!("{admin}/readyz")).0, 200);
    serve.signal("TERM");
    assert_eq!(serve.wait(), Some(0));
}

#[test]
fn a_taken_port_is_a_runtime_failure() {
    let work = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run(&["serve", "--listen", &addr, "--admin", "127.0.0.1:0"], work.path());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("cannot listen on {addr}")), "{}", text(&out.stderr));
}

#[test]
fn an_invalid_config_refuses_to_serve() {
    let work = tempfile::tempdir().expect("tempdir");
    crate::support::write_files(work.path(), &[("bad.toml", "[listener]\nmax_connections = \"many\"\n")]);
    let out = run(&["serve", "--config", "bad.toml"], work.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("bad.toml:2: listener.max_connections: expected an integer"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_embedded_demo_protos_match_the_files() {
    let root = crate::support::demo_proto_root();
    let mut on_disk = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let name = path.strip_prefix(&root).expect("under root").to_string_lossy().replace('\\', "/");
                on_disk.push((name, std::fs::read_to_string(&path).expect("read")));
            }
        }
    }
    on_disk.sort();
    let mut embedded: Vec<(String, String)> =
        switchyard::demo::DEMO_SOURCES.iter().map(|(n, s)| ((*n).to_owned(), (*s).to_owned())).collect();
    embedded.sort();
    assert_eq!(embedded, on_disk, "descriptors/demo/ and the embedded copy differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_while_rest_requests_run_fails_none_of_them() {
    let gateway = crate::support::TestGateway::demo().await;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = gateway.client.clone();
            let url = format!("{}/v1/shelves/1/books/1", gateway.base);
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..50 {
                    statuses.push(client.get(&url).send().await.map(|r| r.status().as_u16()).unwrap_or(0));
                }
                statuses
            })
        })
        .collect();
    for _ in 0..20 {
        let reload = gateway.client.post(format!("{}/admin/reload", gateway.admin)).send().await.expect("reload");
        assert_eq!(reload.status().as_u16(), 200);
    }
    for worker in workers {
        let statuses = worker.await.expect("join");
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    let ready: serde_json::Value = gateway
        .client
        .get(format!("{}/readyz", gateway.admin))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["generation"], 21);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_then_exits_0() {
    let work = tempfile::tempdir().expect("tempdir");
    let (backend, watch) = crate::support::watched_backend(std::time::Duration::from_millis(1500), None).await;
    let (mut serve, gateway) = crate::support::serve_demo_binary(work.path(), &backend, &[]).await;
    let request = tokio::spawn(async move { reqwest::get(format!("{gateway}/v1/shelves/1/books/1")).await });
    let arrived = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while watch.calls() == 0 {
        assert!(tokio::time::Instant::now() < arrived, "hang detector: the request never reached the backend");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    serve.signal("TERM");
    let response = request.await.expect("join").expect("the in-flight request completes");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(tokio::task::block_in_place(|| serve.wait()), Some(0));
}

/// The serving generation.
pub(crate) async fn generation(gateway: &crate::support::TestGateway) -> u64 {
    gateway.admin_json("/readyz").await["generation"].as_u64().expect("generation")
}

/// Waits (hang detector only) until the generation is at least `want`: a busy machine may
/// deliver one change's file events in two batches, and so reload twice.
pub(crate) async fn until_generation(gateway: &crate::support::TestGateway, want: u64) {
    let started = tokio::time::Instant::now();
    while generation(gateway).await < want {
        let now = generation(gateway).await;
        assert!(started.elapsed() < crate::support::HANG, "never reached generation {want} (at {now})");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_directory_mounted_as_a_configmap_follows_its_symlink_swaps() {
    // descriptors/ as Kubernetes mounts a ConfigMap with binaryData: each key a symlink into
    // ..data, ..data a symlink to the current ..TIMESTAMP directory, swapped in one rename.
    let work = tempfile::tempdir().expect("tempdir");
    let mount = work.path().join("descriptors");
    std::fs::create_dir_all(mount.join("..v1")).expect("mkdir");
    std::os::unix::fs::symlink("..v1", mount.join("..data")).expect("symlink");
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let conf = work.path().join("switchyard.toml");
    let config = format!(
        "[sources]\nsettle = \"200ms\"\n[backends.catalog]\nendpoints = [\"{}\"]\nservices = [\"catalog.v1\"]\n",
        backend.url()
    );
    std::fs::write(&conf, config).expect("write");
    let sources = switchyard::snapshot::SnapshotSources {
        config_file: Some(conf),
        descriptors: Some(mount.clone()),
        schemas: Some(work.path().join("schemas")),
        ..Default::default()
    };
    let gateway = crate::support::TestGateway::from_sources(sources, Some(backend)).await;
    let _watching = switchyard::admin::watch_sources(gateway.gateway().clone()).expect("watch").expect("on");
    let status = |gateway: &crate::support::TestGateway| {
        let url = format!("{}/v1/shelves/1/books/1", gateway.base);
        let client = gateway.client.clone();
        async move { client.get(url).send().await.expect("send").status().as_u16() }
    };
    assert_eq!(status(&gateway).await, 404, "nothing registered yet");
    // An update adding a key: the new directory, the ..data swap, then the key's symlink.
    let swap = |version: &str, files: &[(&str, Vec<u8>)]| {
        let dir = mount.join(format!("..{version}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).expect("write");
        }
        std::os::unix::fs::symlink(format!("..{version}"), mount.join("..data_tmp")).expect("symlink");
        std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).expect("swap");
        for (name, _) in files {
            let link = mount.join(name);
            if link.symlink_metadata().is_err() {
                std::os::unix::fs::symlink(format!("..data/{name}"), link).expect("symlink");
            }
        }
    };
    let encoded = switchyard::demo::demo_registration().expect("demo").encode();
    swap("v2", &[("catalog.v1.binpb", encoded)]);
    until_generation(&gateway, 2).await;
    assert_eq!(status(&gateway).await, 200, "the registration from the new version serves");
    // A broken version is refused whole; the running registry keeps serving.
    swap("v3", &[("catalog.v1.binpb", b"not a descriptor set".to_vec())]);
    let started = tokio::time::Instant::now();
    while !metrics_text(&gateway).await.contains("switchyard_snapshot_reloads_total{result=\"refused\"} 1") {
        assert!(started.elapsed() < crate::support::HANG, "the broken version was never tried");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(generation(&gateway).await, 2);
    assert_eq!(status(&gateway).await, 200);
    gateway.shutdown().await;
}

async fn metrics_text(gateway: &crate::support::TestGateway) -> String {
    let url = format!("{}/metrics", gateway.admin);
    gateway.client.get(url).send().await.expect("metrics").text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_reload_once_settled_and_a_broken_one_keeps_the_old_config() {
    let work = tempfile::tempdir().expect("tempdir");
    let descriptors = work.path().join("descriptors");
    switchyard::registry::RegistryDir::new(&descriptors)
        .add(&switchyard::demo::demo_registration().expect("demo"), false)
        .expect("add");
    // The config as Kubernetes mounts a ConfigMap: conf/switchyard.toml -> ..data/switchyard.toml,
    // ..data -> ..v1; an update swaps the ..data symlink atomically.
    let conf = work.path().join("conf");
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let base = format!(
        "[sources]\nsettle = \"400ms\"\n[backends.catalog]\nendpoints = [\"{}\"]\nservices = [\"catalog.v1\"]\n",
        backend.url()
    );
    let deprecated = format!("{base}[deprecations.\"catalog.v1.Catalog\"]\nsince = \"2026-01-01T00:00:00Z\"\n");
    std::fs::create_dir_all(conf.join("..v1")).expect("mkdir");
    std::fs::write(conf.join("..v1/switchyard.toml"), &base).expect("write");
    std::os::unix::fs::symlink("..v1", conf.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/switchyard.toml", conf.join("switchyard.toml")).expect("symlink");
    let sources = switchyard::snapshot::SnapshotSources {
        config_file: Some(conf.join("switchyard.toml")),
        descriptors: Some(descriptors.clone()),
        schemas: Some(work.path().join("schemas")),
        ..Default::default()
    };
    let gateway = crate::support::TestGateway::from_sources(sources, Some(backend)).await;
    let _watching = switchyard::admin::watch_sources(gateway.gateway().clone()).expect("watch").expect("on");
    let deprecation = |gateway: &crate::support::TestGateway| {
        let url = format!("{}/v1/shelves/1/books/1", gateway.base);
        let client = gateway.client.clone();
        async move { client.get(url).send().await.expect("send").headers().contains_key("deprecation") }
    };
    assert!(!deprecation(&gateway).await);

    // A ConfigMap update: a new directory, then the ..data symlink swapped in one rename.
    std::fs::create_dir_all(conf.join("..v2")).expect("mkdir");
    std::fs::write(conf.join("..v2/switchyard.toml"), &deprecated).expect("write");
    std::os::unix::fs::symlink("..v2", conf.join("..data_tmp")).expect("symlink");
    std::fs::rename(conf.join("..data_tmp"), conf.join("..data")).expect("swap");
    until_generation(&gateway, 2).await;
    assert!(deprecation(&gateway).await, "the new config serves");

    // A file written in pieces is applied once, whole: never its first half.
    let target = conf.join("..v2/switchyard.toml");
    let (first, second) = base.split_at(base.len() / 2);
    std::fs::write(&target, first).expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let mut file = std::fs::OpenOptions::new().append(true).open(&target).expect("open");
    std::io::Write::write_all(&mut file, second.as_bytes()).expect("append");
    drop(file);
    until_generation(&gateway, 3).await;
    assert!(!deprecation(&gateway).await, "the whole file serves");

    // A broken config is refused; the running one keeps serving; fixing it applies.
    std::fs::write(&target, "[listener\nbroken").expect("write");
    let metrics = |gateway: &crate::support::TestGateway| {
        let url = format!("{}/metrics", gateway.admin);
        let client = gateway.client.clone();
        async move { client.get(url).send().await.expect("send").text().await.expect("text") }
    };
    let started = tokio::time::Instant::now();
    while !metrics(&gateway).await.contains("switchyard_snapshot_reloads_total{result=\"refused\"} 1") {
        assert!(started.elapsed() < crate::support::HANG, "the broken config was never tried");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(generation(&gateway).await, 3, "a broken config is not applied");
    assert_eq!(gateway.call("GET", "/v1/shelves/1/books/1", "").await.0, 200, "the old config keeps serving");
    std::fs::write(&target, &deprecated).expect("write");
    until_generation(&gateway, 4).await;
    assert!(deprecation(&gateway).await);
    // A new registration in the descriptor directory is served too.
    switchyard::registry::RegistryDir::new(&descriptors)
        .add(&switchyard::demo::demo_v2_registration().expect("v2"), false)
        .expect("add");
    until_generation(&gateway, 5).await;
    let ready = gateway.admin_json("/readyz").await;
    assert_eq!(ready["registrations"].as_array().map(Vec::len), Some(2), "{ready}");
    let refused = metrics(&gateway).await;
    assert!(
        refused.contains("switchyard_snapshot_reloads_total{result=\"refused\"} 1"),
        "the half-written file was never tried:\n{refused}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_closes_subscriptions_with_1001() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let work = tempfile::tempdir().expect("tempdir");
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let (mut serve, gateway) = crate::support::serve_demo_binary(work.path(), &backend.url(), &[]).await;

    // An open subscription…
    let mut request = format!("{}/graphql", gateway.replace("http://", "ws://")).into_client_request().expect("url");
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    let send = |value: serde_json::Value| Message::Text(value.to_string().into());
    socket.send(send(serde_json::json!({"type": "connection_init"}))).await.expect("init");
    let ack = tokio::time::timeout(crate::support::HANG, socket.next()).await.expect("ack in time");
    assert!(matches!(ack, Some(Ok(Message::Text(ref t))) if t.contains("connection_ack")), "{ack:?}");
    let subscribe = serde_json::json!({"id": "w", "type": "subscribe", "payload": {"query": "subscription { watchBooks(parent: \"shelves/1\") { kind } }"}});
    socket.send(send(subscribe)).await.expect("subscribe");
    let started = tokio::time::Instant::now();
    while backend.watchers() == 0 {
        assert!(started.elapsed() < crate::support::HANG, "hang detector: the subscription never opened");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // …and a slow request in flight.
    backend.set_latency(std::time::Duration::from_millis(1500));
    let slow = tokio::spawn(reqwest::get(format!("{gateway}/v1/shelves/1/books/1")));
    while backend.calls("GetBook") == 0 {
        assert!(started.elapsed() < crate::support::HANG, "hang detector: the request never reached the backend");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    serve.signal("TERM");
    let closed = loop {
        match tokio::time::timeout(crate::support::HANG, socket.next()).await.expect("a frame in time") {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(Message::Text(text))) => assert!(!text.contains("\"complete\""), "no complete before 1001: {text}"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed, Some(1001), "going away, so clients resubscribe elsewhere");
    let response = slow.await.expect("join").expect("the in-flight request completes");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(tokio::task::block_in_place(|| serve.wait()), Some(0));
    backend.shutdown().await;
}

/// HTTP/2 on SIGTERM: a GOAWAY with NO_ERROR first, so the client opens no new streams here,
/// then the stream already in flight answered in full, then the connection closed and exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_http2_clients_goaway_then_finishes_their_streams() {
    use crate::http2_abuse::{DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, RawH2, frame, request_block};
    let work = tempfile::tempdir().expect("tempdir");
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let (mut serve, gateway) = crate::support::serve_demo_binary(work.path(), &backend.url(), &[]).await;
    backend.set_latency(std::time::Duration::from_millis(1500));
    let mut raw = RawH2::connect(&gateway).await;
    assert!(
        raw.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &request_block("GET", "/v1/shelves/1/books/1"))).await
    );
    let started = tokio::time::Instant::now();
    while backend.calls("GetBook") == 0 {
        assert!(started.elapsed() < crate::support::HANG, "hang detector: the request never reached the backend");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    serve.signal("TERM");
    let seen = raw.seen_when(|seen| seen.closed, "the connection never closed").await;
    let position = |kind: u8, stream: u32| seen.frames.iter().position(|&f| f == (kind, stream));
    let goaway = position(GOAWAY, 0).expect("a GOAWAY");
    assert_eq!(seen.goaway, Some(0), "NO_ERROR: a graceful shutdown, not a fault");
    let answered = position(HEADERS, 1).expect("the in-flight stream is answered");
    assert!(goaway < answered, "GOAWAY comes first, while the stream is still in flight: {:?}", seen.frames);
    assert!(position(DATA, 1).is_some(), "with its body: {:?}", seen.frames);
    assert_eq!(tokio::task::block_in_place(|| serve.wait()), Some(0));
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_delay_keeps_serving_while_not_ready_until_it_ends_or_a_second_signal() {
    let work = tempfile::tempdir().expect("tempdir");
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    // Longer than this test could take: the second signal ends it.
    std::fs::write(work.path().join("switchyard.toml"), "[listener]\nshutdown_delay = \"10m\"\n").expect("write");
    let (mut serve, gateway) =
        crate::support::serve_demo_binary(work.path(), &backend.url(), &["--config", "switchyard.toml"]).await;
    let admin = tokio::task::block_in_place(|| serve.url_after("(admin "));
    let readyz = || async { reqwest::get(format!("{admin}/readyz")).await.expect("readyz").status().as_u16() };
    assert_eq!(readyz().await, 200);
    serve.signal("TERM");
    let started = tokio::time::Instant::now();
    while readyz().await != 503 {
        assert!(started.elapsed() < crate::support::HANG, "never reported not ready");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Not ready, and still serving: new connections and requests are answered, each HTTP/1
    // answer closing its connection so pooled ones are not cut when the listener shuts.
    let answer = reqwest::Client::new().get(format!("{gateway}/v1/shelves/1/books/1")).send().await.expect("send");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
    serve.signal("TERM");
    assert_eq!(tokio::task::block_in_place(|| serve.wait()), Some(0));
    backend.shutdown().await;
}
