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
