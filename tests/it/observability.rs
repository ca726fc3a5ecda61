//! What operators see: `x-request-id` on every request (taken, made, forwarded, echoed),
//! metrics on the admin listener read by the Prometheus project's own parsers (from
//! tests/python, installed by `bash .ci/run`), and access-log lines parsed as JSON with no
//! credential in them.

use serde_json::{Value, json};

use crate::support::{TestGateway, get_with};

/// One parsed sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

/// Parses `text` with prometheus_client's parser for `format` (`prometheus` or `openmetrics`);
/// panics with the parser's reason when the text is not valid.
fn parse_metrics(text: &str, format: &str) -> Vec<Sample> {
    use std::io::Write;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "the Python test tools are not installed: run `bash .ci/run` (it makes tests/python/.venv)"
    );
    let mut child = std::process::Command::new(python)
        .arg(dir.join("parse_metrics.py"))
        .arg(format)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "the {format} parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("json line");
            Sample {
                name: v["name"].as_str().expect("name").to_owned(),
                labels: v["labels"].as_object().cloned().unwrap_or_default(),
                value: v["value"].as_f64().expect("value"),
            }
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).and_then(Value::as_str) == Some(*v)))
        .map(|s| s.value)
}

async fn scrape(gateway: &TestGateway, openmetrics: bool) -> (String, String) {
    let mut request = gateway.client.get(format!("{}/metrics", gateway.admin));
    if openmetrics {
        request = request.header("accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
    }
    let response = request.send().await.expect("scrape");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("content type").to_owned();
    (content_type, response.text().await.expect("text"))
}

#[tokio::test]
async fn metrics_are_read_by_the_prometheus_parsers() {
    let gateway = TestGateway::demo().await;
    let book = "/v1/shelves/1/books/1";
    for _ in 0..2 {
        assert_eq!(get_with(&gateway, book, &[]).await.0, 200);
    }
    assert_eq!(get_with(&gateway, "/v1/shelves/1/books/404", &[]).await.0, 404);
    let answer = gateway.graphql("query Named { getBook(name: \"shelves/1/books/1\") { title } }").await;
    assert_eq!(answer["data"]["getBook"]["title"], "The Left Hand of Darkness");
    gateway.graphql("{ nope }").await;
    crate::support::grpc_get_book(&gateway, &[]).await.expect("gRPC call");
    let reload = gateway.client.post(format!("{}/admin/reload", gateway.admin)).send().await.expect("reload");
    assert_eq!(reload.status().as_u16(), 200);

    let (content_type, text) = scrape(&gateway, false).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let samples = parse_metrics(&text, "prometheus");
    let route = "GET /v1/{name=shelves/*/books/*}";
    let requests = "switchyard_requests_total";
    assert_eq!(value(&samples, requests, &[("protocol", "rest"), ("operation", route), ("status", "200")]), Some(2.0));
    assert_eq!(value(&samples, requests, &[("protocol", "rest"), ("operation", route), ("status", "404")]), Some(1.0));
    assert_eq!(
        value(&samples, requests, &[("protocol", "graphql"), ("operation", "Named"), ("status", "200")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            requests,
            &[("protocol", "grpc"), ("operation", "/catalog.v1.Catalog/GetBook"), ("status", "OK")]
        ),
        Some(1.0)
    );
    let errors = "switchyard_errors_total";
    assert_eq!(value(&samples, errors, &[("protocol", "rest"), ("code", "NOT_FOUND")]), Some(1.0));
    assert_eq!(value(&samples, errors, &[("protocol", "graphql"), ("code", "GRAPHQL_VALIDATION_FAILED")]), Some(1.0));
    // Histograms: every request observed, buckets cumulative up to +Inf.
    let duration = "switchyard_request_duration_seconds";
    let rest_ok = [("protocol", "rest"), ("operation", route), ("status", "200")];
    assert_eq!(value(&samples, &format!("{duration}_count"), &rest_ok), Some(2.0));
    let inf = [rest_ok.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(value(&samples, &format!("{duration}_bucket"), &inf), Some(2.0));
    // Backends: four calls reached the demo backend (REST 3, GraphQL 1) plus the passed-through
    // gRPC call, all on its one endpoint.
    let url = gateway.backend().url();
    let endpoint = [("cluster", "catalog.v1"), ("endpoint", url.as_str())];
    let calls = value(&samples, "switchyard_backend_requests_total", &endpoint[..1]).expect("backend calls");
    assert_eq!(calls, 5.0, "{text}");
    assert_eq!(value(&samples, "switchyard_backend_request_duration_seconds_count", &endpoint[..1]), Some(calls));
    assert_eq!(
        value(&samples, "switchyard_breaker_state", &[("cluster", "catalog.v1"), ("state", "closed")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, "switchyard_endpoint_healthy", &endpoint[..1]), Some(1.0));
    assert_eq!(value(&samples, "switchyard_snapshot_reloads_total", &[("result", "applied")]), Some(1.0));
    assert_eq!(value(&samples, "switchyard_snapshot_generation", &[]), Some(2.0));
    assert!(value(&samples, "switchyard_cache_lookups_total", &[("result", "miss")]).is_some(), "{text}");

    // The same state as OpenMetrics, for scrapers that ask for it.
    let (content_type, text) = scrape(&gateway, true).await;
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let samples = parse_metrics(&text, "openmetrics");
    assert_eq!(value(&samples, requests, &[("protocol", "rest"), ("operation", route), ("status", "200")]), Some(2.0));
    gateway.shutdown().await;
}

#[tokio::test]
async fn every_request_has_an_id_that_is_forwarded_and_echoed() {
    let gateway = TestGateway::demo().await;
    let book = "/v1/shelves/1/books/1";
    let echoed = |headers: &http::HeaderMap| headers["x-request-id"].to_str().expect("id").to_owned();
    let (status, _, headers) = get_with(&gateway, book, &[("x-request-id", "client-id-1".into())]).await;
    assert_eq!((status, echoed(&headers)), (200, "client-id-1".to_owned()));
    let seen = gateway.backend().last_headers("GetBook").expect("the backend was called");
    assert_eq!(seen["x-request-id"], "client-id-1", "forwarded to the backend");
    // A malformed id is replaced, and the replacement is what the backend sees.
    let (_, _, headers) = get_with(&gateway, book, &[("x-request-id", "bad id\twith spaces".into())]).await;
    let made = echoed(&headers);
    assert_eq!(made.len(), 36, "a UUID: {made}");
    assert_eq!(gateway.backend().last_headers("GetBook").expect("called")["x-request-id"], made.as_str());
    // None sent: one is made; GraphQL, errors and gRPC answers carry it too.
    let (status, _, headers) = get_with(&gateway, "/v1/nowhere", &[]).await;
    assert_eq!(status, 404);
    assert_eq!(echoed(&headers).len(), 36);
    let response = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .header("x-request-id", "gql-7")
        .body(json!({"query": "{ getBook(name: \"shelves/1/books/1\") { title } }"}).to_string())
        .send()
        .await
        .expect("graphql");
    assert_eq!(response.headers()["x-request-id"], "gql-7");
    assert_eq!(gateway.backend().last_headers("GetBook").expect("called")["x-request-id"], "gql-7");
    gateway.shutdown().await;
}

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";
const API_KEY: &str = "sy-test-key-0123456789";

#[tokio::test]
async fn access_log_lines_are_json_and_hold_no_credentials() {
    use sha2::Digest;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let key_hash = hex::encode(sha2::Sha256::digest(API_KEY.as_bytes()));
    let config = format!(
        "[access_log]\nenabled = true\npath = \"{}\"\nheaders = [\"user-agent\"]\n\
         [[auth.jwt]]\nname = \"corp\"\nkeys = [{{ algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n\
         [auth.api_keys]\nquery = \"key\"\nkeys = [{{ sha256 = \"{key_hash}\", identity = \"ci\" }}]\n\
         [[cache.rules]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\nttl = \"1h\"\nscope = \"public\"\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n",
        log.display()
    );
    let (gateway, _config_dir) = TestGateway::demo_with_config(&config).await;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "ada", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
    )
    .expect("sign");
    let bearer = format!("Bearer {token}");
    let book = "/v1/shelves/1/books/1";
    let headers = [
        ("authorization", bearer.clone()),
        ("cookie", "session=cookie-secret".to_owned()),
        ("user-agent", "switchyard-tests/1".to_owned()),
        ("x-request-id", "log-1".to_owned()),
    ];
    assert_eq!(get_with(&gateway, book, &headers).await.0, 200);
    assert_eq!(get_with(&gateway, &format!("{book}?key={API_KEY}"), &[("x-request-id", "log-2".into())]).await.0, 200);
    let (status, _, _) = gateway.call("POST", "/v1/shelves/1/books", "{\"title\":\"\"}").await;
    assert_eq!(status, 400);

    let started = tokio::time::Instant::now();
    let lines: Vec<Value> = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 3 {
            for secret in [token.as_str(), API_KEY, "cookie-secret", SECRET] {
                assert!(!text.contains(secret), "a credential was written: {text}");
            }
            break text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        }
        assert!(started.elapsed() < crate::support::HANG, "the access log never got its lines: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let first = &lines[0];
    let keys: Vec<&str> = first.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "time",
            "request_id",
            "client",
            "identity",
            "protocol",
            "method",
            "path",
            "query",
            "operation",
            "status",
            "grpc_status",
            "duration_ms",
            "bytes_received",
            "bytes_sent",
            "backend_calls",
            "cache",
            "errors",
            "rejected_by",
            "headers"
        ]
    );
    assert_eq!(
        (&first["request_id"], &first["identity"], &first["protocol"], &first["operation"], &first["status"]),
        (&json!("log-1"), &json!("corp/ada"), &json!("rest"), &json!("GET /v1/{name=shelves/*/books/*}"), &json!(200))
    );
    assert_eq!(
        (&first["backend_calls"], &first["cache"], &first["client"]),
        (&json!(1), &json!("MISS"), &json!("127.0.0.1"))
    );
    assert!(first["bytes_sent"].as_u64().is_some_and(|n| n > 100), "{first}");
    assert_eq!(first["headers"], json!({"user-agent": "switchyard-tests/1"}));
    let second = &lines[1];
    assert_eq!((&second["query"], &second["identity"]), (&json!("key=REDACTED"), &json!("api_key/ci")));
    assert_eq!((&second["backend_calls"], &second["cache"]), (&json!(0), &json!("HIT")));
    let third = &lines[2];
    assert_eq!(
        (&third["status"], &third["errors"], &third["method"]),
        (&json!(400), &json!(["INVALID_ARGUMENT"]), &json!("POST"))
    );
    assert_eq!(third["bytes_received"], 12);
    gateway.shutdown().await;

    crate::support::assert_config_refused(&[
        ("[access_log]\nheaders = [\"Authorization\"]\n", "access_log.headers[0]", "carries credentials"),
        ("[access_log]\nheaders = [\"cookie\"]\n", "access_log.headers[0]", "carries credentials"),
        (
            "[auth.api_keys]\nheader = \"x-key\"\nkeys = []\n[access_log]\nheaders = [\"x-key\"]\n",
            "access_log.headers[0]",
            "carries credentials",
        ),
        ("[access_log]\nheaders = [\"bad header\"]\n", "access_log.headers[0]", "not a header name"),
    ]);
}

#[tokio::test]
async fn the_admin_config_route_redacts_credentials() {
    let config = format!(
        "[admin]\ntoken = \"admin-secret-token\"\n\
         [[auth.jwt]]\nname = \"corp\"\nkeys = [{{ algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n\
         [auth.api_keys]\nkeys = [{{ sha256 = \"{}\", identity = \"ci\" }}]\n\
         [[transforms]]\nmethods = [\"catalog.v1.Catalog/*\"]\nrequest_headers = {{ set = {{ \"authorization\" = \"Bearer backend-secret\", \"x-tenant\" = \"acme\" }} }}\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n",
        "ab".repeat(32)
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let url = format!("{}/admin/config", gateway.admin);
    assert_eq!(gateway.client.get(&url).send().await.expect("send").status().as_u16(), 401, "the token is required");
    let answer: Value = gateway
        .client
        .get(&url)
        .bearer_auth("admin-secret-token")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let text = answer.to_string();
    for secret in ["admin-secret-token", SECRET, &"ab".repeat(32), "backend-secret"] {
        assert!(!text.contains(secret), "{secret} was shown: {text}");
    }
    let config = &answer["config"];
    assert_eq!(config["auth"]["jwt"][0]["keys"][0]["secret"], "REDACTED");
    assert_eq!(config["admin"]["token"], "REDACTED");
    assert_eq!(config["transforms"][0]["request_headers"]["set"]["x-tenant"], "acme", "other values are shown");
    assert_eq!(config["backends"]["catalog"]["services"], json!(["catalog.v1"]));
    gateway.shutdown().await;
}

#[tokio::test]
async fn usage_is_reported_per_consumer_and_operation() {
    use sha2::Digest;
    let key_hash = hex::encode(sha2::Sha256::digest(API_KEY.as_bytes()));
    let config = format!(
        "[[auth.jwt]]\nname = \"corp\"\nkeys = [{{ algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n\
         [auth.api_keys]\nkeys = [{{ sha256 = \"{key_hash}\", identity = \"ci\" }}]\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "ada", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
    )
    .expect("sign");
    let ada = [("authorization", format!("Bearer {token}"))];
    for path in ["/v1/shelves/1/books/1", "/v1/shelves/1/books/1", "/v1/shelves/1/books/404"] {
        get_with(&gateway, path, &ada).await;
    }
    get_with(&gateway, "/v1/shelves/1/books", &[("x-api-key", API_KEY.to_owned())]).await;
    get_with(&gateway, "/v1/shelves/1/books/1", &[]).await;
    let report = gateway.admin_json("/admin/analytics?window=5m").await;
    let consumers = report["consumers"].as_array().expect("consumers");
    let names: Vec<&str> = consumers.iter().filter_map(|c| c["consumer"].as_str()).collect();
    assert_eq!(names, ["api_key/ci", "corp/ada"], "anonymous requests are not attributed: {report}");
    let ada = &consumers[1];
    assert_eq!((&ada["requests"], &ada["errors"]), (&json!(3), &json!(1)), "{report}");
    let operation = &ada["operations"][0];
    assert_eq!(
        (&operation["protocol"], &operation["operation"], &operation["requests"], &operation["errors"]),
        (&json!("rest"), &json!("GET /v1/{name=shelves/*/books/*}"), &json!(3), &json!(1))
    );
    assert!(operation["latency_ms"]["max"].as_f64().is_some_and(|m| m > 0.0), "{operation}");
    let one = gateway.admin_json("/admin/analytics?window=all&consumer=api_key/ci").await;
    assert_eq!(one["consumers"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["consumers"][0]["operations"][0]["operation"], "GET /v1/{parent=shelves/*}/books");
    let bad = gateway.client.get(format!("{}/admin/analytics?window=3d", gateway.admin)).send().await.expect("send");
    assert_eq!(bad.status().as_u16(), 400);
    gateway.shutdown().await;
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn trace_context_reaches_every_backend_call() {
    let gateway = crate::support::TestGateway::stitched().await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let headers = [("traceparent", traceparent.clone()), ("tracestate", "vendor=opaque".to_owned())];
    assert_eq!(get_with(&gateway, "/v1/shelves/1/books/1", &headers).await.0, 200);
    let seen = gateway.backend().last_headers("GetBook").expect("called");
    let parsed =
        switchyard::telemetry::trace_context::TraceParent::parse(seen["traceparent"].as_bytes()).expect("valid");
    assert_eq!(hex::encode(parsed.trace_id), CLIENT_TRACE, "the client's trace continues");
    assert_ne!(hex::encode(parsed.span_id), CLIENT_SPAN, "the backend's parent is the gateway's span");
    assert!(parsed.sampled);
    assert_eq!(seen["tracestate"], "vendor=opaque");
    // One GraphQL request: its gRPC and REST-source calls share the trace, each with its own span.
    let response = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .header("traceparent", &traceparent)
        .body(json!({"query": "{ getBook(name: \"shelves/1/books/1\") { writer { name } } listBooks(parent: \"shelves/1\") { totalSize } }"}).to_string())
        .send()
        .await
        .expect("graphql");
    assert_eq!(response.status().as_u16(), 200);
    let parse = |headers: http::HeaderMap| {
        switchyard::telemetry::trace_context::TraceParent::parse(headers["traceparent"].as_bytes()).expect("valid")
    };
    let get = parse(gateway.backend().last_headers("GetBook").expect("called"));
    let list = parse(gateway.backend().last_headers("ListBooks").expect("called"));
    let author = gateway.authors().last_headers().expect("the authors source was called");
    let author =
        switchyard::telemetry::trace_context::TraceParent::parse(author["traceparent"].as_bytes()).expect("valid");
    for call in [get, list, author] {
        assert_eq!(hex::encode(call.trace_id), CLIENT_TRACE);
    }
    assert!(get.span_id != list.span_id && list.span_id != author.span_id, "each call has its own span");
    // No traceparent, or a malformed one: a trace is started.
    for sent in [None, Some("00-zz-00f067aa0ba902b7-01")] {
        let headers: Vec<(&str, String)> = sent.map(|t| ("traceparent", t.to_owned())).into_iter().collect();
        assert_eq!(get_with(&gateway, "/v1/shelves/1/books/1", &headers).await.0, 200);
        let seen = parse(gateway.backend().last_headers("GetBook").expect("called"));
        assert_ne!(hex::encode(seen.trace_id), CLIENT_TRACE);
    }
    gateway.shutdown().await;
}

/// (span name, trace id, span id, parent span id, attributes as strings).
type ExportedSpan = (String, String, String, String, std::collections::BTreeMap<String, String>);

/// A real OTLP collector: the spans it received, over gRPC or HTTP/protobuf.
#[derive(Clone, Default)]
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>>>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        self.0.lock().expect("lock").extend(request.into_inner().resource_spans);
        Ok(tonic::Response::new(Default::default()))
    }
}

impl Collector {
    /// Serves the collector on a loopback port over `protocol`; its base URL.
    async fn start(&self, protocol: &str) -> String {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        if protocol == "grpc" {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let server = tonic::transport::Server::builder().add_service(TraceServiceServer::new(self.clone()));
            tokio::spawn(server.serve_with_incoming(incoming));
        } else {
            let collector = self.clone();
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: axum::body::Bytes| async move {
                    use prost::Message;
                    let request =
                        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body)
                            .expect("an OTLP/HTTP protobuf body");
                    collector.0.lock().expect("lock").extend(request.resource_spans);
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        format!("http://{addr}")
    }

    /// Every span received.
    fn spans(&self) -> Vec<ExportedSpan> {
        let received = self.0.lock().expect("lock");
        let mut spans = Vec::new();
        for resource in received.iter() {
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), format!("{:?}", kv.value.as_ref().and_then(|v| v.value.as_ref()))))
                        .collect();
                    spans.push((
                        span.name.clone(),
                        hex::encode(&span.trace_id),
                        hex::encode(&span.span_id),
                        hex::encode(&span.parent_span_id),
                        attributes,
                    ));
                }
            }
        }
        spans
    }

    fn service_names(&self) -> Vec<String> {
        let received = self.0.lock().expect("lock");
        received
            .iter()
            .filter_map(|r| r.resource.as_ref())
            .flat_map(|r| r.attributes.iter())
            .filter(|kv| kv.key == "service.name")
            .map(|kv| format!("{:?}", kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_and_flushed_at_shutdown() {
    for protocol in ["http", "grpc"] {
        let collector = Collector::default();
        let endpoint = collector.start(protocol).await;
        let backend =
            switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("demo backend");
        let work = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "[tracing]\notlp_endpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\nservice_name = \"gw-{protocol}\"\n"
        );
        std::fs::write(work.path().join("switchyard.toml"), config).expect("config");
        let (mut serve, gateway) =
            crate::support::serve_demo_binary(work.path(), &backend.url(), &["--config", "switchyard.toml"]).await;
        let response = reqwest::Client::new()
            .get(format!("{gateway}/v1/shelves/1/books/1"))
            .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{protocol}");
        let seen = backend.last_headers("GetBook").expect("called");
        let parsed =
            switchyard::telemetry::trace_context::TraceParent::parse(seen["traceparent"].as_bytes()).expect("valid");
        // Shutting down flushes the batch of spans.
        serve.signal("TERM");
        assert_eq!(tokio::task::block_in_place(|| serve.wait()), Some(0), "{protocol}");
        let spans = collector.spans();
        let named = |name: &str| {
            spans.iter().find(|s| s.0 == name).unwrap_or_else(|| panic!("{protocol}: no {name} span in {spans:#?}"))
        };
        let request = named("request");
        assert_eq!(
            (request.1.as_str(), request.3.as_str()),
            (CLIENT_TRACE, CLIENT_SPAN),
            "{protocol}: continues the client's trace"
        );
        let fetch = named("fetch");
        assert_eq!(fetch.1, CLIENT_TRACE);
        assert_eq!(fetch.2, hex::encode(parsed.span_id), "{protocol}: the backend's parent is the exported fetch span");
        assert_eq!(fetch.3, request.2, "{protocol}: the fetch is a child of the request");
        assert!(
            fetch.4["cluster"].contains("catalog.v1") && fetch.4["status"].contains("OK"),
            "{protocol}: {:?}",
            fetch.4
        );
        assert!(fetch.4["target"].contains("/catalog.v1.Catalog/GetBook"), "{:?}", fetch.4);
        let operation = named("operation");
        assert_eq!(operation.1, CLIENT_TRACE);
        assert!(collector.service_names().iter().any(|n| n.contains(&format!("gw-{protocol}"))), "{protocol}");
        backend.shutdown().await;
    }
}

#[test]
fn bad_observability_config_is_refused_naming_the_key() {
    crate::support::assert_config_refused(&[
        ("[tracing]\nsampling_ratio = 1.5\n", "tracing.sampling_ratio", "between 0.0 and 1.0"),
        ("[tracing]\notlp_endpoint = \"collector:4317\"\n", "tracing.otlp_endpoint", "has no scheme"),
        ("[tracing]\nprotocol = \"udp\"\n", "tracing.protocol", "is not one of: grpc, http"),
        ("[access_log]\nfields = [\"time\", \"password\"]\n", "access_log.fields[1]", "\"password\" is not one of"),
        ("[sources]\nsettle = \"soon\"\n", "sources.settle", "not a duration"),
    ]);
}
