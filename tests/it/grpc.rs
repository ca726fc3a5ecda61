//! Native gRPC through the gateway with a real tonic client: all four call kinds spliced to the
//! demo backend with statuses intact, health and reflection answered by the gateway, and a
//! gRPC-Web request framed as a browser client frames it.

use futures_util::StreamExt;
use prost::Message;
use prost_reflect::{DynamicMessage, MethodDescriptor, Value};
use switchyard::upstream::grpc_codec::DynamicCodec;
use tonic::client::Grpc;
use tonic::transport::Channel;

use crate::support::{TestGateway, run, text};

fn method(name: &str) -> MethodDescriptor {
    let pool = switchyard::registry::merge_registrations(vec![switchyard::demo::demo_registration().expect("demo")])
        .expect("merges")
        .pool;
    let service = pool.get_service_by_name("catalog.v1.Catalog").expect("service");
    service.methods().find(|m| m.name() == name).expect("method")
}

fn message(method: &MethodDescriptor, json: serde_json::Value) -> DynamicMessage {
    DynamicMessage::deserialize(method.input(), json).expect("valid request")
}

fn path(method: &MethodDescriptor) -> http::uri::PathAndQuery {
    format!("/catalog.v1.Catalog/{}", method.name()).parse().expect("path")
}

async fn client(gateway: &TestGateway) -> Grpc<Channel> {
    let channel =
        tonic::transport::Endpoint::from_shared(gateway.base.clone()).expect("url").connect().await.expect("connect");
    Grpc::new(channel)
}

fn field(message: &DynamicMessage, name: &str) -> Value {
    message.get_field_by_name(name).expect("field").into_owned()
}

#[tokio::test]
async fn all_four_call_kinds_pass_through_with_statuses_intact() {
    let gateway = TestGateway::demo().await;
    let mut grpc = client(&gateway).await;

    let get = method("GetBook");
    grpc.ready().await.expect("ready");
    let book = grpc
        .unary(
            tonic::Request::new(message(&get, serde_json::json!({"name": "shelves/1/books/1"}))),
            path(&get),
            DynamicCodec::new(get.output()),
        )
        .await
        .expect("GetBook")
        .into_inner();
    assert_eq!(field(&book, "title"), Value::String("The Left Hand of Darkness".into()));

    grpc.ready().await.expect("ready");
    let missing = grpc
        .unary(
            tonic::Request::new(message(&get, serde_json::json!({"name": "shelves/9/books/9"}))),
            path(&get),
            DynamicCodec::new(get.output()),
        )
        .await
        .expect_err("not found");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(missing.message(), "book `shelves/9/books/9` does not exist");

    let list = method("ListBooks");
    grpc.ready().await.expect("ready");
    let bad = grpc
        .unary(
            tonic::Request::new(message(&list, serde_json::json!({"parent": "shelves/1", "pageToken": "zz"}))),
            path(&list),
            DynamicCodec::new(list.output()),
        )
        .await
        .expect_err("bad token");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(!bad.details().is_empty(), "grpc-status-details-bin passes through");

    let watch = method("WatchBooks");
    grpc.ready().await.expect("ready");
    let mut events = grpc
        .server_streaming(
            tonic::Request::new(message(&watch, serde_json::json!({"parent": "shelves/11"}))),
            path(&watch),
            DynamicCodec::new(watch.output()),
        )
        .await
        .expect("WatchBooks")
        .into_inner();
    let create = method("CreateBook");
    grpc.ready().await.expect("ready");
    grpc.unary(
        tonic::Request::new(message(
            &create,
            serde_json::json!({"parent": "shelves/11", "book": {"title": "streamed"}}),
        )),
        path(&create),
        DynamicCodec::new(create.output()),
    )
    .await
    .expect("CreateBook");
    let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.message())
        .await
        .expect("hang detector")
        .expect("ok")
        .expect("an event");
    let Value::Message(book) = field(&event, "book") else { panic!("book") };
    assert_eq!(field(&book, "title"), Value::String("streamed".into()));
    drop(events);

    let import = method("ImportBooks");
    let requests = futures_util::stream::iter(vec![
        message(&import, serde_json::json!({"parent": "shelves/12", "book": {"title": "a"}})),
        message(&import, serde_json::json!({"parent": "shelves/12", "book": {"title": "b"}})),
    ]);
    grpc.ready().await.expect("ready");
    let imported = grpc
        .client_streaming(tonic::Request::new(requests), path(&import), DynamicCodec::new(import.output()))
        .await
        .expect("ImportBooks")
        .into_inner();
    assert_eq!(field(&imported, "imported"), Value::I32(2));

    let discuss = method("DiscussBook");
    let chat = futures_util::stream::iter(vec![
        message(&discuss, serde_json::json!({"book": "shelves/1/books/1", "text": "hello"})),
        message(&discuss, serde_json::json!({"book": "shelves/1/books/1", "text": "again"})),
    ]);
    grpc.ready().await.expect("ready");
    let replies: Vec<DynamicMessage> = grpc
        .streaming(tonic::Request::new(chat), path(&discuss), DynamicCodec::new(discuss.output()))
        .await
        .expect("DiscussBook")
        .into_inner()
        .map(|r| r.expect("reply"))
        .collect()
        .await;
    let texts: Vec<Value> = replies.iter().map(|r| field(r, "text")).collect();
    assert_eq!(texts, [Value::String("re: hello".into()), Value::String("re: again".into())]);
    gateway.shutdown().await;
}

#[tokio::test]
async fn unknown_and_unserved_calls_get_grpc_statuses() {
    let gateway = TestGateway::demo().await;
    let mut grpc = client(&gateway).await;
    let get = method("GetBook");
    for (target, code, text) in [
        ("/nope.v1.Nope/Get", tonic::Code::Unimplemented, "unknown service nope.v1.Nope"),
        ("/catalog.v1.Catalog/Burn", tonic::Code::Unimplemented, "unknown method Burn for service catalog.v1.Catalog"),
    ] {
        grpc.ready().await.expect("ready");
        let status = grpc
            .unary(
                tonic::Request::new(message(&get, serde_json::json!({}))),
                target.parse().expect("path"),
                DynamicCodec::new(get.output()),
            )
            .await
            .expect_err("refused");
        assert_eq!((status.code(), status.message()), (code, text));
    }
    gateway.shutdown().await;

    let unserved = TestGateway::start(None, None).await;
    let mut grpc = client(&unserved).await;
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary(tonic::Request::new(message(&get, serde_json::json!({}))), path(&get), DynamicCodec::new(get.output()))
        .await
        .expect_err("no backend");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "no backend serves catalog.v1.Catalog");
    unserved.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_health_and_reflection_for_what_is_registered() {
    let gateway = TestGateway::demo().await;
    let channel =
        tonic::transport::Endpoint::from_shared(gateway.base.clone()).expect("url").connect().await.expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "catalog.v1.Catalog"] {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(
            answer.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let unknown = health.check(tonic_health::pb::HealthCheckRequest { service: "nope.Nope".into() }).await;
    assert_eq!(unknown.expect_err("unknown").code(), tonic::Code::NotFound);

    let work = tempfile::tempdir().expect("tempdir");
    let url = gateway.base.clone();
    let path = work.path().to_owned();
    let pulled = tokio::task::spawn_blocking(move || run(&["descriptors", "pull", &url, "--dir", "reg"], &path))
        .await
        .expect("join");
    assert_eq!(pulled.status.code(), Some(0), "{}", text(&pulled.stderr));
    let expected = switchyard::demo::demo_registration().expect("demo").digest;
    assert!(
        text(&pulled.stdout).contains(&expected),
        "reflection serves the registered files: {}",
        text(&pulled.stdout)
    );
    gateway.shutdown().await;
}

/// One gRPC(-Web) frame: flag, big-endian length, payload.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a gRPC-Web response body into (flag, payload) frames.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push((body[0], body[5..5 + length].to_vec()));
        body = &body[5 + length..];
    }
    out
}

#[tokio::test]
async fn grpc_web_requests_framed_like_a_browser_are_translated() {
    use base64::Engine;
    let gateway = TestGateway::demo().await;
    let get = method("GetBook");
    let request = message(&get, serde_json::json!({"name": "shelves/2/books/1"})).encode_to_vec();

    let response = gateway
        .client
        .post(format!("{}/catalog.v1.Catalog/GetBook", gateway.base))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("accept", "application/grpc-web+proto")
        .body(frame(0, &request))
        .send()
        .await
        .expect("grpc-web");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc-web+proto");
    let body = response.bytes().await.expect("body");
    let parts = frames(&body);
    assert_eq!(parts.len(), 2, "a message frame and a trailer frame");
    let book = DynamicMessage::decode(get.output(), parts[0].1.as_slice()).expect("a Book");
    assert_eq!(field(&book, "title"), Value::String("The Selfish Gene".into()));
    assert_eq!(parts[1].0, 0x80);
    assert!(
        String::from_utf8_lossy(&parts[1].1).contains("grpc-status:0"),
        "{:?}",
        String::from_utf8_lossy(&parts[1].1)
    );

    let engine = base64::engine::general_purpose::STANDARD;
    let response = gateway
        .client
        .post(format!("{}/catalog.v1.Catalog/GetBook", gateway.base))
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .body(engine.encode(frame(0, &message(&get, serde_json::json!({"name": "shelves/9/books/9"})).encode_to_vec())))
        .send()
        .await
        .expect("grpc-web-text");
    assert_eq!(response.status().as_u16(), 200);
    // A trailers-only answer may carry its status in the headers (gRPC-Web allows it) or in a
    // trailer frame; either way it must be NOT_FOUND.
    let in_headers = response.headers().get("grpc-status").map(|v| v.to_str().unwrap_or("").to_owned());
    let body = response.text().await.expect("body");
    let decoded = engine.decode(body.trim()).expect("base64 body");
    let trailers = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
    assert!(
        in_headers.as_deref() == Some("5") || trailers.contains("grpc-status:5"),
        "NOT_FOUND: headers {in_headers:?}, trailers {trailers:?}"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn passthrough_calls_feed_outlier_detection_and_the_breaker() {
    let replicas = switchyard::demo::start_demo_backend_replicas(1).await.expect("replicas");
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let config = format!(
        "[backends.catalog]\nendpoints = [\"{}\", \"{dead}\"]\nservices = [\"catalog.v1\"]\n\
         outlier_detection = {{ consecutive_failures = 1, max_ejection_percent = 50 }}\n",
        replicas[0].url()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, config).expect("write config");
    let gateway = TestGateway::start_with_config(None, file).await;
    let mut grpc = client(&gateway).await;
    let get = method("GetBook");
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        grpc.ready().await.expect("ready");
        let request = tonic::Request::new(message(&get, serde_json::json!({"name": "shelves/1/books/1"})));
        outcomes.push(
            grpc.unary(request, path(&get), DynamicCodec::new(get.output())).await.map(|_| ()).map_err(|s| s.code()),
        );
    }
    // Passthrough is not retried (its body streams through): the one call that met the dead
    // endpoint failed UNAVAILABLE, and ejected it, so every later call succeeded.
    let failed: Vec<usize> = outcomes.iter().enumerate().filter(|(_, o)| o.is_err()).map(|(i, _)| i).collect();
    assert_eq!(failed.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[failed[0]], Err(tonic::Code::Unavailable));
    assert!(failed[0] < 2, "the dead endpoint was met within its first turn: {outcomes:?}");
    let admin: serde_json::Value = gateway
        .client
        .get(format!("{}/admin/clusters", gateway.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let ejected = admin["clusters"][0]["endpoints"][1]["ejected_for_ms"].as_u64();
    assert!(ejected.is_some(), "{admin}");
    assert_eq!(admin["clusters"][0]["breaker"]["in_flight"], 0, "{admin}");
    gateway.shutdown().await;
    for replica in replicas {
        replica.shutdown().await;
    }
}

/// A client's compressed message that inflates past the message limit (64 MiB of zeros in
/// 64 KiB of gzip) passes through as it came (the gateway splices passthrough frames, it does
/// not decode them) and is refused by the backend's limit with RESOURCE_EXHAUSTED, never OK.
/// The other direction, a backend's answer, is `backend_faults.rs`'s.
#[tokio::test]
async fn a_compressed_request_that_inflates_past_the_limit_is_refused() {
    use bytes::Bytes;
    let gateway = TestGateway::demo().await;
    let zipped = crate::support::gzipped_zeros(64).await;
    let stream = tokio::net::TcpStream::connect(gateway.base.trim_start_matches("http://")).await.expect("connect");
    let (client, connection) = h2::client::handshake(stream).await.expect("handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post(format!("{}/catalog.v1.Catalog/GetBook", gateway.base))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-encoding", "gzip")
        .body(())
        .expect("request");
    let (response, mut body) = client.send_request(request, false).expect("send");
    body.send_data(Bytes::from(frame(1, &zipped)), true).expect("data");
    let response = tokio::time::timeout(crate::support::HANG, response).await.expect("in time").expect("an answer");
    assert_eq!(response.status().as_u16(), 200, "gRPC statuses ride in grpc-status");
    let (status, message) = crate::support::grpc_outcome(response).await;
    assert_eq!(status.as_deref(), Some("8"), "RESOURCE_EXHAUSTED: {message:?}");
    gateway.shutdown().await;
}
