//! Backend pools against several real demo backends behind one cluster: each balancing
//! algorithm's spread of real calls, counted by the backends themselves.

use futures_util::future::join_all;

use crate::support::TestGateway;

/// Starts `weights.len()` demo backends behind one cluster balanced by `algorithm`, makes
/// `calls` GetBook calls through the gateway (50 at a time), and returns each backend's count.
async fn spread(algorithm: &str, weights: &[u32], calls: usize) -> Vec<usize> {
    let mut backends = Vec::new();
    for _ in weights {
        backends
            .push(switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend"));
    }
    let endpoints: Vec<String> =
        backends.iter().zip(weights).map(|(b, w)| format!("{{ url = \"{}\", weight = {w} }}", b.url())).collect();
    let config = format!(
        "[backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\ncoalesce = false\nbalancer = \"{algorithm}\"\n",
        endpoints.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    for chunk in (0..calls).collect::<Vec<_>>().chunks(50) {
        let sent = chunk.iter().map(|_| gateway.call("GET", "/v1/shelves/1/books/1", ""));
        for (status, body, _) in join_all(sent).await {
            assert_eq!(status, 200, "{body}");
        }
    }
    let counts: Vec<usize> = backends.iter().map(|b| b.calls("GetBook")).collect();
    // The admin API shows the same spread.
    let admin: serde_json::Value = gateway
        .client
        .get(format!("{}/admin/clusters", gateway.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let cluster =
        admin["clusters"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "catalog")).expect("catalog");
    assert_eq!(cluster["balancer"], algorithm);
    let seen: Vec<usize> = cluster["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["calls"].as_u64().unwrap_or(0) as usize)
        .collect();
    assert_eq!(seen, counts, "{admin}");
    assert!(cluster["endpoints"].as_array().expect("endpoints").iter().all(|e| e["outstanding"] == 0));
    gateway.shutdown().await;
    for backend in backends {
        backend.shutdown().await;
    }
    counts
}

#[tokio::test]
async fn each_algorithm_spreads_real_calls_as_configured() {
    // (algorithm, weights, expected shares, tolerance)
    let table: &[(&str, &[u32], &[f64], f64)] = &[
        ("round_robin", &[1, 1, 1], &[1.0 / 3.0; 3], 0.01),
        ("weighted_round_robin", &[3, 1], &[0.75, 0.25], 0.05),
        ("random", &[1, 1, 1], &[1.0 / 3.0; 3], 0.05),
        ("least_outstanding", &[1, 1, 1], &[1.0 / 3.0; 3], 0.15),
        ("peak_ewma", &[1, 1, 1], &[1.0 / 3.0; 3], 0.15),
    ];
    for (algorithm, weights, shares, tolerance) in table {
        let calls = 4000;
        let counts = spread(algorithm, weights, calls).await;
        assert_eq!(counts.iter().sum::<usize>(), calls, "{algorithm}: every call reached a backend");
        for (count, share) in counts.iter().zip(*shares) {
            let got = *count as f64 / calls as f64;
            assert!((got - share).abs() <= *tolerance, "{algorithm} {weights:?}: {counts:?}");
        }
    }
}

#[tokio::test]
async fn rest_source_calls_are_balanced_too() {
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let first = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let second = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    let config = format!(
        "[backends.authors]\nprotocol = \"http\"\nendpoints = [\"{}\", \"{}\"]\nbalancer = \"round_robin\"\n",
        first.url(),
        second.url()
    );
    std::fs::write(&file, config).expect("write config");
    let sources = switchyard::snapshot::SnapshotSources {
        config_file: Some(file),
        embedded: vec![switchyard::demo::demo_registration().expect("demo")],
        embedded_schemas: switchyard::demo::demo_schemas(),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        backends: vec![switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] }],
        ..Default::default()
    };
    let gateway = TestGateway::from_sources(sources, Some(backend)).await;
    for i in 0..10 {
        let body = serde_json::json!({"query": format!("{{ author(id: \"{}\") {{ name }} }}", i % 4 + 1)}).to_string();
        let (status, answer, _) = gateway.call("POST", "/graphql", &body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.get("errors").is_none(), "{answer}");
    }
    assert_eq!((first.requests(), second.requests()), (5, 5));
    gateway.shutdown().await;
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn consistent_hashing_keeps_a_client_on_one_endpoint() {
    for (hash_on, header) in
        [("{ header = \"x-user\" }", Some("x-user")), ("{ cookie = \"session\" }", None), ("\"client_ip\"", None)]
    {
        let mut backends = Vec::new();
        for _ in 0..3 {
            backends.push(
                switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend"),
            );
        }
        let urls: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.url())).collect();
        let config = format!(
            "[backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\ncoalesce = false\nbalancer = \"maglev\"\nhash_on = {hash_on}\n",
            urls.join(", ")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("switchyard.toml");
        std::fs::write(&file, config).expect("write config");
        let gateway = TestGateway::start_with_config(None, file).await;
        let get = |user: String| {
            let mut request = gateway.client.get(format!("{}/v1/shelves/1/books/1", gateway.base));
            request = match header {
                Some(header) => request.header(header, user),
                None => request.header("cookie", format!("theme=dark; session={user}")),
            };
            async move { request.send().await.expect("call").status().as_u16() }
        };
        for _ in 0..30 {
            assert_eq!(get("alice".into()).await, 200);
        }
        let counts: Vec<usize> = backends.iter().map(|b| b.calls("GetBook")).collect();
        assert_eq!(
            counts.iter().filter(|c| **c == 30).count(),
            1,
            "{hash_on}: one endpoint took every call: {counts:?}"
        );
        if hash_on != "\"client_ip\"" {
            // Other keys spread over the endpoints.
            for user in 0..300 {
                assert_eq!(get(format!("user-{user}")).await, 200);
            }
            let counts: Vec<usize> = backends.iter().map(|b| b.calls("GetBook")).collect();
            assert!(counts.iter().all(|c| *c >= 50), "{hash_on}: 300 keys spread: {counts:?}");
        }
        gateway.shutdown().await;
        for backend in backends {
            backend.shutdown().await;
        }
    }
}

#[tokio::test]
async fn passed_through_grpc_hashes_on_the_client_address_a_trusted_proxy_names() {
    let mut backends = Vec::new();
    for _ in 0..3 {
        backends
            .push(switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend"));
    }
    let urls: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.url())).collect();
    let config = format!(
        "[listener]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\
         [backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\ncoalesce = false\n\
         balancer = \"maglev\"\nhash_on = \"client_ip\"\n",
        urls.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    let counts = || backends.iter().map(|b| b.calls("GetBook")).collect::<Vec<usize>>();
    // One client behind the proxy: every call on one endpoint.
    for _ in 0..20 {
        crate::support::grpc_get_book(&gateway, &[("x-forwarded-for", "203.0.113.7".into())]).await.expect("call");
    }
    assert_eq!(counts().iter().filter(|c| **c == 20).count(), 1, "one endpoint took every call: {:?}", counts());
    // Many clients behind the same proxy (one peer address): spread by the address it names.
    for client in 0..150 {
        let forwarded = format!("198.51.100.{client}");
        crate::support::grpc_get_book(&gateway, &[("x-forwarded-for", forwarded)]).await.expect("call");
    }
    assert!(counts().iter().all(|c| *c >= 20), "150 client addresses spread: {:?}", counts());
    gateway.shutdown().await;
    for backend in backends {
        backend.shutdown().await;
    }
}

#[tokio::test]
async fn an_endpoint_that_fails_health_checks_leaves_the_rotation_and_returns() {
    let replicas = switchyard::demo::start_demo_backend_replicas(3).await.expect("replicas");
    let urls: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.url())).collect();
    let config = format!(
        "[backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\ncoalesce = false\n\
         [backends.catalog.health_check]\ninterval = \"20ms\"\ngrpc_service = \"catalog.v1.Catalog\"\n",
        urls.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    let healthy = |gateway: &TestGateway| {
        let url = format!("{}/admin/clusters", gateway.admin);
        let client = gateway.client.clone();
        async move {
            let admin: serde_json::Value = client.get(url).send().await.expect("admin").json().await.expect("json");
            let cluster = admin["clusters"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "catalog")).cloned();
            cluster.expect("catalog")["endpoints"]
                .as_array()
                .expect("endpoints")
                .iter()
                .map(|e| e["healthy"] == true)
                .collect::<Vec<_>>()
        }
    };
    replicas[1].set_serving(false).await;
    let deadline = tokio::time::Instant::now() + crate::support::HANG;
    while healthy(&gateway).await != [true, false, true] {
        assert!(tokio::time::Instant::now() < deadline, "the failing endpoint never left the rotation");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before: Vec<usize> = replicas.iter().map(|r| r.calls("GetBook")).collect();
    for _ in 0..30 {
        let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
        assert_eq!(status, 200, "{body}");
    }
    let after: Vec<usize> = replicas.iter().map(|r| r.calls("GetBook")).collect();
    assert_eq!(after[1], before[1], "no call went to the NOT_SERVING endpoint");
    assert_eq!(after[0] - before[0] + after[2] - before[2], 30);

    // Every endpoint failing: the gateway is not ready.
    replicas[0].set_serving(false).await;
    replicas[2].set_serving(false).await;
    let deadline = tokio::time::Instant::now() + crate::support::HANG;
    loop {
        let response = gateway.client.get(format!("{}/readyz", gateway.admin)).send().await.expect("readyz");
        if response.status().as_u16() == 503 {
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["unhealthy_clusters"], serde_json::json!(["catalog"]));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never unready");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // They return.
    for replica in &replicas {
        replica.set_serving(true).await;
    }
    let deadline = tokio::time::Instant::now() + crate::support::HANG;
    while healthy(&gateway).await != [true, true, true] {
        assert!(tokio::time::Instant::now() < deadline, "the endpoints never came back");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

#[tokio::test]
async fn idempotent_calls_are_retried_on_another_endpoint_within_the_budget() {
    let mut replicas = switchyard::demo::start_demo_backend_replicas(3).await.expect("replicas");
    let urls: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.url())).collect();
    let config = format!(
        "[backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\ncoalesce = false\n",
        urls.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    // One endpoint dies: every GetBook (GET-bound, so idempotent) still succeeds.
    replicas.remove(1).shutdown().await;
    for chunk in 0..6 {
        let calls = (0..10).map(|_| gateway.call("GET", "/v1/shelves/1/books/1", ""));
        for (status, body, _) in join_all(calls).await {
            assert_eq!(status, 200, "chunk {chunk}: {body}");
        }
    }
    // CreateBook (POST) is not idempotent: a call that met the dead endpoint fails.
    let mut failed = 0;
    for i in 0..12 {
        let (status, body, _) = gateway.call("POST", "/v1/shelves/1/books", &format!("{{\"title\":\"t{i}\"}}")).await;
        match status {
            200 => {}
            503 => failed += 1,
            other => panic!("{other}: {body}"),
        }
    }
    assert!(failed > 0, "some creates met the dead endpoint and were not retried");
    // Every endpoint down: the budget caps the retries.
    for replica in replicas.drain(..) {
        replica.shutdown().await;
    }
    let calls = (0..40).map(|_| gateway.call("GET", "/v1/shelves/1/books/1", ""));
    for (status, _, _) in join_all(calls).await {
        assert_eq!(status, 503);
    }
    let admin: serde_json::Value = gateway
        .client
        .get(format!("{}/admin/clusters", gateway.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let cluster =
        admin["clusters"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "catalog")).expect("catalog");
    let made = cluster["retries"]["made"].as_u64().unwrap_or(0);
    let refused = cluster["retries"]["refused_by_budget"].as_u64().unwrap_or(0);
    assert!(refused > 0, "the budget refused retries when everything failed: {cluster}");
    assert!(made < 40 * 2, "fewer retries than 2 per call: {made}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_recovers() {
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let addr = backend.addr;
    let config = format!(
        "[backends.catalog]\nendpoints = [\"{}\"]\nservices = [\"catalog.v1\"]\ncoalesce = false\nretries = {{ max_retries = 0 }}\n\
         [backends.catalog.circuit_breaker]\nmin_requests = 4\nfailure_rate = 50\nopen_for = \"200ms\"\n",
        backend.url()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    let (status, _, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
    assert_eq!(status, 200);
    backend.shutdown().await;
    for _ in 0..4 {
        let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
        assert_eq!(status, 503, "{body}");
    }
    let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
    assert_eq!(status, 503);
    assert_eq!(body["message"], "the circuit breaker for backend catalog is open", "{body}");
    // The backend returns on the same address; after open_for a probe closes the breaker.
    let backend = switchyard::demo::start_demo_backend(addr).await.expect("backend again");
    let deadline = tokio::time::Instant::now() + crate::support::HANG;
    loop {
        let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "the breaker never closed: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let admin: serde_json::Value = gateway
        .client
        .get(format!("{}/admin/clusters", gateway.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let cluster =
        admin["clusters"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "catalog")).expect("catalog");
    assert_eq!(cluster["breaker"]["state"], "closed");
    gateway.shutdown().await;
    backend.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_whose_calls_keep_failing_is_ejected() {
    let mut replicas = switchyard::demo::start_demo_backend_replicas(3).await.expect("replicas");
    let urls: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.url())).collect();
    let config = format!(
        "[backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\ncoalesce = false\n\
         [backends.catalog.outlier_detection]\nconsecutive_failures = 2\nbase_ejection = \"60s\"\n",
        urls.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    replicas.remove(1).shutdown().await;
    // Retries hide the failures from clients; the dead endpoint fails twice and is ejected.
    for _ in 0..30 {
        let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
        assert_eq!(status, 200, "{body}");
    }
    let admin: serde_json::Value = gateway
        .client
        .get(format!("{}/admin/clusters", gateway.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let cluster =
        admin["clusters"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "catalog")).expect("catalog");
    let endpoints = cluster["endpoints"].as_array().expect("endpoints");
    assert!(endpoints[1]["ejected_for_ms"].as_u64().is_some_and(|ms| ms > 50_000), "{cluster}");
    assert!(endpoints[0]["ejected_for_ms"].is_null() && endpoints[2]["ejected_for_ms"].is_null(), "{cluster}");
    let made = cluster["retries"]["made"].as_u64().unwrap_or(0);
    assert!(made <= 2, "after ejection no call went to the dead endpoint: {made} retries");
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

#[tokio::test]
async fn a_backup_group_takes_over_while_the_primary_is_unhealthy() {
    let replicas = switchyard::demo::start_demo_backend_replicas(2).await.expect("replicas");
    let config = format!(
        "[backends.catalog]\nendpoints = [\"{}\", {{ url = \"{}\", priority = 1 }}]\nservices = [\"catalog.v1\"]\ncoalesce = false\n\
         [backends.catalog.health_check]\ninterval = \"20ms\"\nunhealthy_threshold = 1\n",
        replicas[0].url(),
        replicas[1].url()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    ten_calls(&gateway).await;
    assert_eq!((replicas[0].calls("GetBook"), replicas[1].calls("GetBook")), (10, 0), "the backup waits");
    replicas[0].set_serving(false).await;
    let deadline = tokio::time::Instant::now() + crate::support::HANG;
    loop {
        let before = replicas[1].calls("GetBook");
        ten_calls(&gateway).await;
        if replicas[1].calls("GetBook") - before == 10 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the backup never took over");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    replicas[0].set_serving(true).await;
    let deadline = tokio::time::Instant::now() + crate::support::HANG;
    loop {
        let before = replicas[0].calls("GetBook");
        ten_calls(&gateway).await;
        if replicas[0].calls("GetBook") - before == 10 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the primary never came back");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

async fn ten_calls(gateway: &TestGateway) {
    let requests = (0..10).map(|_| gateway.call("GET", "/v1/shelves/1/books/1", ""));
    for (status, body, _) in join_all(requests).await {
        assert_eq!(status, 200, "{body}");
    }
}

/// A gateway whose `catalog` cluster is `replicas` with the cluster settings `settings` (TOML
/// lines under `[backends.catalog]`).
async fn gateway_over(replicas: &[switchyard::demo::DemoBackend], settings: &str) -> (TestGateway, tempfile::TempDir) {
    let endpoints: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.url())).collect();
    let config = format!(
        "[backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\ncoalesce = false\n{settings}\n",
        endpoints.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    (TestGateway::start_with_config(None, file).await, dir)
}

#[tokio::test]
async fn a_slow_endpoint_receives_markedly_less_traffic_under_least_response_time() {
    let replicas = switchyard::demo::start_demo_backend_replicas(3).await.expect("replicas");
    // Slow enough to stand out from the noise of a loaded CI machine (40 ms did not, once).
    replicas[2].set_latency(std::time::Duration::from_millis(150));
    let (gateway, _dir) = gateway_over(&replicas, "balancer = \"peak_ewma\"").await;
    for _ in 0..40 {
        ten_calls(&gateway).await;
    }
    let counts: Vec<usize> = replicas.iter().map(|r| r.calls("GetBook")).collect();
    assert_eq!(counts.iter().sum::<usize>(), 400);
    // Round robin would give it a third (133); peak EWMA sends it only what probes it.
    assert!(counts[2] < 40, "the slow replica got {} of 400: {counts:?}", counts[2]);
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

#[tokio::test]
async fn a_cluster_bounds_each_call_by_its_timeout_and_method_timeouts() {
    let replicas = switchyard::demo::start_demo_backend_replicas(1).await.expect("replicas");
    replicas[0].set_latency(std::time::Duration::from_millis(400));
    let settings = "timeout = \"30s\"\nmethod_timeouts = { \"catalog.v1.Catalog.GetBook\" = \"40ms\" }\n\
                    retries = { max_retries = 0 }";
    let (gateway, _dir) = gateway_over(&replicas, settings).await;
    // (path, client's own deadline header, expected status)
    let table: &[(&str, Option<&str>, u16)] = &[
        ("/v1/shelves/1/books/1", None, 504),
        // A client asking for longer does not lift the cluster's limit.
        ("/v1/shelves/1/books/1", Some("10"), 504),
        // ListBooks has only the cluster's 30 s.
        ("/v1/shelves/1/books", None, 200),
    ];
    for (path, deadline, want) in table {
        let mut request = gateway.client.get(format!("{}{path}", gateway.base));
        if let Some(seconds) = deadline {
            request = request.header("x-request-timeout", *seconds);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(status, *want, "{path} {deadline:?}: {body}");
        if *want == 504 {
            assert_eq!(body["code"], 4, "{body}");
        }
    }
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

/// A loopback address nothing listens on (a port that was just freed).
/// A URL nothing answers at: a socket bound to the port but not listening, so connections are
/// refused, and kept while the guard lives (without SO_REUSEADDR), so the port is not handed to
/// another test's server meanwhile (a freed port was, once: a gateway answered 404 there).
struct DeadAddress {
    url: String,
    _held: tokio::net::TcpSocket,
}

impl std::fmt::Display for DeadAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

async fn dead_address() -> DeadAddress {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = socket.local_addr().expect("addr");
    DeadAddress { url: format!("http://{addr}"), _held: socket }
}

#[tokio::test]
async fn rest_source_reads_are_retried_on_another_endpoint() {
    let backend = switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
    let authors = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    let dead = dead_address().await;
    let config = format!("[backends.authors]\nprotocol = \"http\"\nendpoints = [\"{}\", \"{dead}\"]\n", authors.url(),);
    std::fs::write(&file, config).expect("write config");
    let sources = switchyard::snapshot::SnapshotSources {
        config_file: Some(file),
        embedded: vec![switchyard::demo::demo_registration().expect("demo")],
        embedded_schemas: switchyard::demo::demo_schemas(),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        backends: vec![switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] }],
        ..Default::default()
    };
    let mut gateway = TestGateway::from_sources(sources, Some(backend)).await;
    // Author lookups are GETs: every one that met the dead endpoint went to the live one.
    for i in 0..10 {
        let body = serde_json::json!({"query": format!("{{ author(id: \"{}\") {{ name }} }}", i % 4 + 1)}).to_string();
        let (status, answer, _) = gateway.call("POST", "/graphql", &body).await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.get("errors").is_none(), "call {i}: {answer}");
    }
    assert_eq!(authors.requests(), 10);
    let admin: serde_json::Value = gateway
        .client
        .get(format!("{}/admin/clusters", gateway.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let cluster =
        admin["clusters"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "authors")).expect("authors");
    assert!(cluster["retries"]["made"].as_u64().unwrap_or(0) >= 1, "{cluster}");
    gateway.adopt_authors(authors);
    gateway.shutdown().await;
}

#[tokio::test]
async fn methods_named_in_the_retry_config_are_retried_although_not_idempotent() {
    let mut replicas = switchyard::demo::start_demo_backend_replicas(2).await.expect("replicas");
    let dead = dead_address().await;
    let config = format!(
        "[backends.catalog]\nendpoints = [\"{}\", \"{dead}\"]\nservices = [\"catalog.v1\"]\ncoalesce = false\n\
         retries = {{ methods = [\"catalog.v1.Catalog.CreateBook\"] }}\n",
        replicas[0].url()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    for i in 0..10 {
        let (status, body, _) = gateway.call("POST", "/v1/shelves/1/books", &format!("{{\"title\":\"t{i}\"}}")).await;
        assert_eq!(status, 200, "create {i}: {body}");
    }
    assert_eq!(replicas[0].calls("CreateBook"), 10);
    gateway.shutdown().await;
    for replica in replicas.drain(..) {
        replica.shutdown().await;
    }
}

#[tokio::test]
async fn a_reload_that_changes_endpoints_drops_no_call_in_flight_and_keeps_endpoint_state() {
    let replicas = switchyard::demo::start_demo_backend_replicas(3).await.expect("replicas");
    let write = |file: &std::path::Path, members: &[usize]| {
        let urls: Vec<String> = members.iter().map(|i| format!("\"{}\"", replicas[*i].url())).collect();
        let config = format!(
            "[backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\ncoalesce = false\n",
            urls.join(", ")
        );
        std::fs::write(file, config).expect("write config");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    write(&file, &[0, 1]);
    let gateway = TestGateway::start_with_config(None, file.clone()).await;
    ten_calls(&gateway).await;
    assert_eq!((replicas[0].calls("GetBook"), replicas[1].calls("GetBook")), (5, 5));
    // Calls are in flight on replica 0 when a reload takes it out and brings replica 2 in.
    replicas[0].set_latency(std::time::Duration::from_millis(300));
    let slow = join_all((0..4).map(|_| gateway.call("GET", "/v1/shelves/1/books/1", "")));
    let reload = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        write(&file, &[1, 2]);
        let answer = gateway.client.post(format!("{}/admin/reload", gateway.admin)).send().await.expect("reload");
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap_or_default());
    };
    let (answers, ()) = tokio::join!(slow, reload);
    for (status, body, _) in answers {
        assert_eq!(status, 200, "a call in flight across the reload: {body}");
    }
    let before = replicas[0].calls("GetBook");
    ten_calls(&gateway).await;
    assert_eq!(replicas[0].calls("GetBook"), before, "the removed endpoint gets no new calls");
    // Replica 1, in both configs, kept its counters in the pool.
    let admin: serde_json::Value = gateway
        .client
        .get(format!("{}/admin/clusters", gateway.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let cluster =
        admin["clusters"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "catalog")).expect("catalog");
    let calls: Vec<u64> =
        cluster["endpoints"].as_array().expect("endpoints").iter().map(|e| e["calls"].as_u64().unwrap_or(0)).collect();
    assert_eq!(calls, [replicas[1].calls("GetBook") as u64, replicas[2].calls("GetBook") as u64], "{cluster}");
    assert!(calls[0] > calls[1], "replica 1's count spans the reload: {calls:?}");
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

#[tokio::test]
async fn killing_an_endpoint_under_load_loses_no_retryable_call() {
    let mut replicas = switchyard::demo::start_demo_backend_replicas(3).await.expect("replicas");
    // A third of the calls in flight meet the dead endpoint at once: the budget must allow
    // that many retries (the default 20% is sized for a few failing calls, not a third; at
    // 100% a retry storm is still capped at one retry per call in flight), and
    // outlier detection takes the dead endpoint out so later calls need no retry.
    let settings = "retries = { budget_percent = 100 }\noutlier_detection = { consecutive_failures = 2 }";
    let (gateway, _dir) = gateway_over(&replicas, settings).await;
    let dying = replicas.remove(1);
    let mut dying = Some(dying);
    for wave in 0..10 {
        let calls = join_all((0..30).map(|_| gateway.call("GET", "/v1/shelves/1/books/1", "")));
        // The fourth wave is in flight while the endpoint dies.
        let kill = async {
            if wave == 3
                && let Some(backend) = dying.take()
            {
                backend.shutdown().await;
            }
        };
        let (answers, ()) = tokio::join!(calls, kill);
        let failed = answers.iter().filter(|(status, _, _)| *status != 200).count();
        if failed > 0 {
            let admin: serde_json::Value = gateway
                .client
                .get(format!("{}/admin/clusters", gateway.admin))
                .send()
                .await
                .expect("admin")
                .json()
                .await
                .expect("json");
            panic!("wave {wave}: {failed} failed; {admin}");
        }
    }
    assert!(dying.is_none());
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}
