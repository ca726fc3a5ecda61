//! Deadlines, end to end: route timeouts and client deadlines end a call on time in every
//! protocol, the backend is told no more than the time left and sees the cancel, bad timeout
//! headers are refused, nothing is retried past the deadline, and a client that leaves cancels
//! its backend call. The clock is tokio's paused one, so "on time" is measured exactly.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::support::{BackendWatch, TestGateway, watched_backend};

/// How far from its deadline a call may end.
const SLACK: Duration = Duration::from_millis(50);

/// Longer than any deadline below: the backend never answers in time on its own.
const NEVER: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Rest,
    Grpc,
    GraphQl,
}

/// How a call ended, as its client saw it.
#[derive(Debug)]
struct Ended {
    /// HTTP status, then the gRPC status code (REST's `code`, the grpc-status, GraphQL's
    /// `extensions.grpcCode`... whichever the protocol uses).
    http: u16,
    detail: String,
}

/// GetBook over native gRPC with a bare HTTP/2 client: tonic's own client would enforce a
/// grpc-timeout itself and hide whether the gateway did. The request's headers and body are
/// queued before the connection writes either, so they arrive together: with the clock paused,
/// a body sent a moment after its headers could arrive after a timer the clock jumped to.
async fn raw_grpc_get_book(base: &str, headers: &[(&str, &str)]) -> Ended {
    raw_grpc(base, "GetBook", "shelves/1/books/1", headers).await
}

/// Calls catalog.v1.Catalog/`method`, whose request message has only `field_1` (a string).
async fn raw_grpc(base: &str, method: &str, field_1: &str, headers: &[(&str, &str)]) -> Ended {
    let stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.expect("connect");
    let (client, connection) = h2::client::handshake(stream).await.expect("handshake");
    let mut client = client.ready().await.expect("ready");
    let name = field_1.as_bytes();
    // The request message in one uncompressed gRPC frame.
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(name.len() + 2).expect("small").to_be_bytes());
    frame.extend_from_slice(&[0x0a, u8::try_from(name.len()).expect("small")]);
    frame.extend_from_slice(name);
    let mut request = http::Request::post(format!("{base}/catalog.v1.Catalog/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (response, mut body) = client.send_request(request.body(()).expect("request"), false).expect("send");
    body.send_data(Bytes::from(frame), true).expect("data");
    tokio::spawn(connection);
    let response = response.await.expect("an answer");
    let http = response.status().as_u16();
    let (status, _) = crate::support::grpc_outcome(response).await;
    Ended { http, detail: status.unwrap_or_else(|| "no grpc-status".into()) }
}

async fn call(gateway: &TestGateway, protocol: Protocol, headers: &[(&str, &str)]) -> Ended {
    match protocol {
        Protocol::Grpc => raw_grpc_get_book(&gateway.base, headers).await,
        Protocol::Rest | Protocol::GraphQl => {
            let mut request = match protocol {
                Protocol::Rest => gateway.client.get(format!("{}/v1/shelves/1/books/1", gateway.base)),
                _ => gateway
                    .client
                    .post(format!("{}/graphql", gateway.base))
                    .json(&serde_json::json!({"query": r#"{ getBook(name: "shelves/1/books/1") { title } }"#})),
            };
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.expect("an answer");
            let http = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            let detail = match protocol {
                Protocol::Rest => body["code"].to_string(),
                _ => body["errors"][0]["extensions"]["code"].as_str().unwrap_or("no error code").to_owned(),
            };
            Ended { http, detail }
        }
    }
}

/// What a call past its deadline ends with, per protocol.
fn deadline_exceeded(protocol: Protocol, ended: &Ended) -> bool {
    match protocol {
        Protocol::Rest => ended.http == 504 && ended.detail == "4",
        Protocol::Grpc => ended.http == 200 && ended.detail == "4",
        Protocol::GraphQl => ended.http == 200 && ended.detail == "TIMEOUT",
    }
}

/// A gateway over one backend that never answers in time: `config` opens its config file and
/// `cluster` adds to the backend's section.
async fn gateway_with(config: &str, cluster: &str) -> (TestGateway, BackendWatch, tempfile::TempDir) {
    let (url, watch) = watched_backend(NEVER, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    let toml = format!(
        "{config}\n[backends.catalog]\nendpoints = [\"{url}\"]\nservices = [\"catalog.v1\"]\ncoalesce = false\n{cluster}"
    );
    std::fs::write(&file, toml).expect("write config");
    (TestGateway::start_with_config(None, file).await, watch, dir)
}

#[tokio::test(start_paused = true)]
async fn every_protocol_ends_a_call_at_its_deadline_and_the_backend_sees_the_cancel() {
    const GET_BOOK_250: &str = "[rest.method_timeouts]\n\"catalog.v1.Catalog.GetBook\" = \"250ms\"\n";
    const CLUSTER_250: &str = "method_timeouts = { \"catalog.v1.Catalog.GetBook\" = \"250ms\" }\n";
    // (case, top-of-file config, cluster settings, protocol, client headers, deadline in ms)
    type Case<'a> = (&'a str, &'a str, &'a str, Protocol, &'a [(&'a str, &'a str)], u64);
    let table: &[Case] = &[
        ("grpc-timeout", "", "", Protocol::Rest, &[("grpc-timeout", "200m")], 200),
        ("x-request-timeout", "", "", Protocol::Rest, &[("x-request-timeout", "0.3")], 300),
        (
            "the shorter of two client headers",
            "",
            "",
            Protocol::Rest,
            &[("grpc-timeout", "2S"), ("x-request-timeout", "0.15")],
            150,
        ),
        ("rest.timeout", "[rest]\ntimeout = \"300ms\"\n", "", Protocol::Rest, &[], 300),
        ("rest.method_timeouts", GET_BOOK_250, "", Protocol::Rest, &[], 250),
        ("a client asking for longer", GET_BOOK_250, "", Protocol::Rest, &[("grpc-timeout", "10S")], 250),
        ("cluster method_timeouts", "", CLUSTER_250, Protocol::Rest, &[], 250),
        ("cluster timeout", "", "timeout = \"350ms\"\n", Protocol::Rest, &[("grpc-timeout", "1S")], 350),
        ("grpc-timeout", "", "", Protocol::Grpc, &[("grpc-timeout", "200m")], 200),
        ("grpc-timeout in seconds", "", "", Protocol::Grpc, &[("grpc-timeout", "1S")], 1000),
        ("cluster method_timeouts", "", CLUSTER_250, Protocol::Grpc, &[], 250),
        ("cluster method_timeouts, client longer", "", CLUSTER_250, Protocol::Grpc, &[("grpc-timeout", "10S")], 250),
        ("grpc-timeout", "", "", Protocol::GraphQl, &[("grpc-timeout", "200m")], 200),
        ("rest.timeout", "[rest]\ntimeout = \"300ms\"\n", "", Protocol::GraphQl, &[], 300),
        ("cluster method_timeouts", "", CLUSTER_250, Protocol::GraphQl, &[], 250),
    ];
    for (case, config, cluster, protocol, headers, deadline) in table {
        let what = format!("{protocol:?}, {case}");
        let deadline = Duration::from_millis(*deadline);
        let (gateway, watch, _dir) = gateway_with(config, cluster).await;

        let started = tokio::time::Instant::now();
        let ended = call(&gateway, *protocol, headers).await;
        let took = started.elapsed();
        assert!(deadline_exceeded(*protocol, &ended), "{what}: {ended:?}");
        assert!(took + SLACK >= deadline && took <= deadline + SLACK, "{what}: ended after {took:?}, not {deadline:?}");
        let told = watch.last_timeout_millis().unwrap_or_else(|| panic!("{what}: the backend got no grpc-timeout"));
        assert!(told <= deadline.as_millis(), "{what}: the backend was given {told} ms of a {deadline:?} budget");
        assert!(told + SLACK.as_millis() >= deadline.as_millis(), "{what}: the backend was given only {told} ms");
        watch.until_cancelled(1).await;
        assert_eq!(watch.calls(), 1, "{what}: one call, no retry past the deadline");
        gateway.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_ends_with_deadline_exceeded_at_the_clients_deadline() {
    let gateway = TestGateway::demo().await;
    let started = tokio::time::Instant::now();
    let response = gateway
        .client
        .get(format!("{}/v1/shelves/1/books:watch", gateway.base))
        .header("x-request-timeout", "0.2")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("the stream ends at the deadline");
    let took = started.elapsed();
    let last: Value = serde_json::from_str(text.trim().lines().last().expect("a line")).expect("json");
    assert_eq!(last["error"]["code"], 4, "DEADLINE_EXCEEDED: {text}");
    let deadline = Duration::from_millis(200);
    assert!(took + SLACK >= deadline && took <= deadline + SLACK, "ended after {took:?}");
    gateway.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_native_grpc_stream_ends_at_its_deadline_even_after_the_backend_sent_headers() {
    // WatchBooks sends its headers at once, then only events, and there are none: the answer has
    // begun when the deadline passes, so it must end in DEADLINE_EXCEEDED trailers.
    let gateway = TestGateway::demo().await;
    let started = tokio::time::Instant::now();
    let watching = raw_grpc(&gateway.base, "WatchBooks", "shelves/1", &[("grpc-timeout", "200m")]);
    let ended =
        tokio::time::timeout(crate::support::HANG, watching).await.expect("hang detector: the stream never ended");
    let took = started.elapsed();
    assert_eq!((ended.http, ended.detail.as_str()), (200, "4"), "{ended:?}");
    let deadline = Duration::from_millis(200);
    assert!(took + SLACK >= deadline && took <= deadline + SLACK, "ended after {took:?}");
    let hang = std::time::Instant::now() + crate::support::HANG;
    while gateway.backend().watchers() > 0 {
        assert!(std::time::Instant::now() < hang, "hang detector: the backend's stream was never cancelled");
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(2))).await.expect("sleep");
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn malformed_deadline_headers_are_refused_naming_the_header() {
    let gateway = TestGateway::demo().await;
    // (header, value) — grpc-timeout is 1 to 8 digits and one of H M S m u n.
    let table = [
        ("grpc-timeout", "1X"),
        ("grpc-timeout", "123456789S"),
        ("grpc-timeout", "S"),
        ("grpc-timeout", "-1S"),
        ("grpc-timeout", "1.5S"),
        ("x-request-timeout", "soon"),
        ("x-request-timeout", "-1"),
    ];
    for (header, value) in table {
        let response = gateway
            .client
            .get(format!("{}/v1/shelves/1/books/1", gateway.base))
            .header(header, value)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 400, "{header}: {value}");
        let body: Value = response.json().await.expect("json");
        assert!(body["message"].as_str().unwrap_or_default().starts_with(&format!("header `{header}`")), "{body}");
    }
    // Over native gRPC it is INVALID_ARGUMENT, naming the header, and never passed on.
    let ended = raw_grpc_get_book(&gateway.base, &[("grpc-timeout", "1X")]).await;
    assert_eq!(ended.detail, "3", "{ended:?}");
    gateway.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_retry_never_starts_past_the_deadline_and_is_given_only_the_time_left() {
    // Both endpoints fail with UNAVAILABLE after 150 ms; a 200 ms call may be retried once with
    // what is left, or not at all, but it ends at its deadline or at the first failure.
    let (first, first_watch) = watched_backend(Duration::from_millis(150), Some(tonic::Code::Unavailable)).await;
    let (second, second_watch) = watched_backend(Duration::from_millis(150), Some(tonic::Code::Unavailable)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    let config = format!(
        "[backends.catalog]\nendpoints = [\"{first}\", \"{second}\"]\nservices = [\"catalog.v1\"]\ncoalesce = false\n\
         retries = {{ max_retries = 3, base_backoff = \"10s\", max_backoff = \"10s\", min_concurrency = 100 }}\n\
         outlier_detection = {{ consecutive_failures = 1000 }}\n"
    );
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    let deadline = Duration::from_millis(200);
    for round in 0..20 {
        let started = tokio::time::Instant::now();
        let ended = call(&gateway, Protocol::Rest, &[("grpc-timeout", "200m")]).await;
        let took = started.elapsed();
        // A failure that was not retried answers at once (503); a retry ends at the deadline.
        assert!(matches!(ended.http, 503 | 504), "round {round}: {ended:?}");
        assert!(took <= deadline + SLACK, "round {round}: ended after {took:?}");
        for (_, watch) in [(0, &first_watch), (1, &second_watch)] {
            for (arrived, told) in watch.arrivals.lock().expect("lock").iter().filter(|(at, _)| *at >= started) {
                let at = arrived.duration_since(started);
                assert!(at < deadline, "round {round}: an attempt started {at:?} into a {deadline:?} budget");
                let told = crate::support::grpc_timeout_millis(told.as_deref().expect("a grpc-timeout"));
                assert!(told <= (deadline - at).as_millis(), "round {round}: {told} ms given at {at:?}");
            }
        }
    }
    gateway.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_goes_away_cancels_the_backend_call() {
    for protocol in [Protocol::Rest, Protocol::Grpc, Protocol::GraphQl] {
        let (gateway, watch, _dir) = gateway_with("", "").await;
        let gateway = std::sync::Arc::new(gateway);
        let calling = {
            let gateway = gateway.clone();
            tokio::spawn(async move { call(&gateway, protocol, &[]).await })
        };
        let hang = tokio::time::Instant::now() + crate::support::HANG;
        while watch.calls() == 0 {
            assert!(tokio::time::Instant::now() < hang, "hang detector: {protocol:?} never reached the backend");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Dropping the client's task drops its connection.
        calling.abort();
        let _ = calling.await;
        watch.until_cancelled(1).await;
        std::sync::Arc::into_inner(gateway).expect("the only owner").shutdown().await;
    }
}
