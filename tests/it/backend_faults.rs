//! Backend faults against a scripted gRPC backend (a real HTTP/2 server whose answer to each
//! call the test picks): a frame claiming 4 GiB, resets after the headers, in the middle of a
//! frame and after the data, an answer without trailers, an HTML 502 from a proxy in between,
//! a dribbling backend, an answer proto3 JSON cannot write. None may become a 200 with partial data: a broken answer is a 502
//! saying what was broken, a reset is the backend going away (503, as Envoy answers it), an
//! answer that is not gRPC gets the status the gRPC spec maps its HTTP status to; none names an
//! address; and the same connection keeps serving good calls afterwards.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body::Frame;
use prost::Message;

use crate::support::TestGateway;

/// One scripted answer.
#[derive(Debug, Clone)]
enum Step {
    /// Body bytes.
    Data(Vec<u8>),
    /// A pause.
    Sleep(u64),
    /// The stream fails here (hyper resets it).
    Reset,
    /// gRPC trailers with this status.
    Trailers(u32),
}

#[derive(Debug, Clone)]
struct Script {
    status: u16,
    content_type: &'static str,
    steps: Vec<Step>,
    /// `grpc-encoding` of the answer.
    encoding: Option<&'static str>,
}

/// A gRPC length-prefixed frame.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn book() -> Vec<u8> {
    let registration = switchyard::demo::demo_registration().expect("demo");
    let pool = switchyard::registry::merge_registrations(vec![registration]).expect("merges").pool;
    let mut message = prost_reflect::DynamicMessage::new(pool.get_message_by_name("catalog.v1.Book").expect("Book"));
    message.set_field_by_name("name", prost_reflect::Value::String("shelves/1/books/1".into()));
    message.set_field_by_name("title", prost_reflect::Value::String("Scripted".into()));
    message.encode_to_vec()
}

/// A Book published in year 33658: it decodes, but proto3 JSON has no form for it.
fn book_from_the_far_future() -> Vec<u8> {
    let mut bytes = book();
    let when = prost_types::Timestamp { seconds: 1_000_000_000_000, nanos: 0 }.encode_to_vec();
    let registration = switchyard::demo::demo_registration().expect("demo");
    let pool = switchyard::registry::merge_registrations(vec![registration]).expect("merges").pool;
    let field =
        pool.get_message_by_name("catalog.v1.Book").expect("Book").get_field_by_name("publish_time").expect("field");
    prost::encoding::bytes::encode(field.number(), &when, &mut bytes);
    bytes
}

fn good() -> Script {
    Script {
        status: 200,
        content_type: "application/grpc",
        steps: vec![Step::Data(frame(&book())), Step::Trailers(0)],
        encoding: None,
    }
}

/// The scripted backend's service: every call answered with the current script.
fn scripted_router(script: Arc<Mutex<Script>>, calls: Arc<std::sync::atomic::AtomicUsize>) -> axum::Router {
    let service = tower::service_fn(move |_request: http::Request<axum::body::Body>| {
        let script = script.lock().expect("script").clone();
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let steps = futures_util::stream::unfold(script.steps.into_iter(), |mut steps| async move {
                loop {
                    match steps.next()? {
                        Step::Data(bytes) => return Some((Ok(Frame::data(Bytes::from(bytes))), steps)),
                        Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                        Step::Reset => return Some((Err(std::io::Error::other("scripted reset")), steps)),
                        Step::Trailers(code) => {
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", code.to_string().parse().expect("status"));
                            return Some((Ok(Frame::trailers(trailers)), steps));
                        }
                    }
                }
            });
            let body = axum::body::Body::new(http_body_util::StreamBody::new(steps));
            let mut response = http::Response::builder()
                .status(script.status)
                .header("content-type", script.content_type)
                .body(body)
                .expect("response");
            if let Some(encoding) = script.encoding {
                response.headers_mut().insert("grpc-encoding", encoding.parse().expect("encoding"));
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    axum::Router::new().fallback_service(service)
}

/// Serves every call with the current script, over h2c.
async fn scripted_backend(script: Arc<Mutex<Script>>, calls: Arc<std::sync::atomic::AtomicUsize>) -> String {
    let router = scripted_router(script, calls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn backend_faults_are_502s_never_partial_200s_and_the_connection_keeps_serving() {
    let script = Arc::new(Mutex::new(good()));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = scripted_backend(script.clone(), calls.clone()).await;
    let gateway = TestGateway::start(Some(url.clone()), None).await;
    let whole = frame(&book());
    let half = whole[..whole.len() / 2].to_vec();
    let mut four_gib = vec![0, 0xff, 0xff, 0xff, 0xff];
    four_gib.extend_from_slice(&[0u8; 64]);
    let html = "<html><body><h1>502 Bad Gateway</h1></body></html>".as_bytes().to_vec();
    // (what, script, status, a phrase the answer holds)
    let table: Vec<(&str, Script, u16, &str)> = vec![
        ("a good answer", good(), 200, "Scripted"),
        (
            "a frame claiming 4 GiB",
            Script { steps: vec![Step::Data(four_gib), Step::Trailers(0)], ..good() },
            502,
            "malformed answer: a message of 4294967295 bytes, over the 4194304-byte limit",
        ),
        // A reset is the backend going away (Envoy answers these 503 too); retried elsewhere.
        ("a reset after the headers", Script { steps: vec![Step::Reset], ..good() }, 503, "unavailable"),
        (
            "a reset inside a frame",
            Script { steps: vec![Step::Data(half.clone()), Step::Reset], ..good() },
            503,
            "unavailable",
        ),
        (
            "a reset after the data",
            Script { steps: vec![Step::Data(whole.clone()), Step::Reset], ..good() },
            503,
            "unavailable",
        ),
        (
            "an answer without trailers",
            Script { steps: vec![Step::Data(whole.clone())], ..good() },
            502,
            "malformed answer: no grpc-status trailer",
        ),
        (
            "a frame cut short at the end",
            Script { steps: vec![Step::Data(half), Step::Trailers(0)], ..good() },
            502,
            "malformed answer",
        ),
        // Not gRPC at all: the gRPC spec's HTTP-to-status mapping (502 is UNAVAILABLE).
        (
            "an HTML 502 from a proxy",
            Script { status: 502, content_type: "text/html", steps: vec![Step::Data(html.clone())], encoding: None },
            503,
            "the backend answered HTTP 502 (text/html), not gRPC",
        ),
        (
            "a web server's 404",
            Script { status: 404, content_type: "text/html", steps: vec![Step::Data(html)], encoding: None },
            501,
            "the backend answered HTTP 404 (text/html), not gRPC",
        ),
        (
            "a dribbling backend",
            Script {
                steps: whole
                    .iter()
                    .flat_map(|b| [Step::Data(vec![*b]), Step::Sleep(2)])
                    .chain([Step::Trailers(0)])
                    .collect(),
                ..good()
            },
            200,
            "Scripted",
        ),
        // Decodes, but JSON cannot say it: an error naming the rule, not a dropped connection.
        (
            "a timestamp past year 9999",
            Script { steps: vec![Step::Data(frame(&book_from_the_far_future())), Step::Trailers(0)], ..good() },
            502,
            "catalog.v1.Book has no proto3 JSON form: timestamp out of range",
        ),
        ("good again on the same connection", good(), 200, "Scripted"),
    ];
    let mut failures = Vec::new();
    for (what, answer, status, phrase) in table {
        *script.lock().expect("script") = answer;
        let (got, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
        let text = body.to_string();
        if got != status || !text.contains(phrase) || text.contains("127.0.0.1") {
            failures.push(format!("{what}: {got} {text} (want {status} with {phrase:?}, no address)"));
        }
        if status != 200 && text.contains("Scripted") {
            failures.push(format!("{what}: partial data reached the client: {text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    gateway.shutdown().await;
}

/// A compressed answer that inflates past the message limit (64 MiB of zeros in 64 KiB of
/// gzip) is refused as malformed, with the gateway asking for compressed answers or not.
#[tokio::test]
async fn a_compressed_answer_that_inflates_past_the_limit_is_a_502() {
    let zipped = crate::support::gzipped_zeros(64).await;
    let mut bomb = vec![1];
    bomb.extend_from_slice(&u32::try_from(zipped.len()).expect("small").to_be_bytes());
    bomb.extend_from_slice(&zipped);
    let script = Arc::new(Mutex::new(Script {
        steps: vec![Step::Data(bomb), Step::Trailers(0)],
        encoding: Some("gzip"),
        ..good()
    }));
    let url = scripted_backend(script.clone(), Arc::default()).await;
    for compression in ["none", "gzip"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("switchyard.toml");
        let config = format!(
            "[backends.catalog]\nendpoints = [\"{url}\"]\nservices = [\"catalog.v1\"]\ngrpc_compression = \"{compression}\"\n"
        );
        std::fs::write(&file, config).expect("config");
        let gateway = TestGateway::start_with_config(None, file).await;
        let (status, body, _) = gateway.call("GET", "/v1/shelves/1/books/1", "").await;
        assert_eq!(status, 502, "{compression}: {body}");
        assert!(body["message"].as_str().unwrap_or_default().contains("malformed answer"), "{compression}: {body}");
        gateway.shutdown().await;
    }
}

/// A backend that allows one stream per connection and sends GOAWAY when each connection is
/// 150 ms old (tonic's `max_connection_age`, as grpc-go's MaxConnectionAge and Envoy's drain
/// do): calls queue for the one stream and move to a fresh connection after each GOAWAY, and
/// no client sees an error, idempotent or not, unary or streamed. The answer is an empty
/// message, which reads as a Book and as a BookEvent alike.
#[tokio::test]
async fn goaway_and_a_one_stream_limit_cost_no_call() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let script = Arc::new(Mutex::new(Script {
        steps: vec![Step::Sleep(5), Step::Data(frame(&[])), Step::Trailers(0)],
        ..good()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let incoming = {
        let connections = connections.clone();
        tokio_stream::wrappers::TcpListenerStream::new(listener).inspect(move |_| {
            connections.fetch_add(1, Ordering::SeqCst);
        })
    };
    let routes = tonic::service::Routes::from(scripted_router(script, Arc::default()));
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(1)
        // No `max_connection_age_grace`: with one set, tonic 0.14 skips the graceful GOAWAY and
        // closes the connection outright when age and grace have passed.
        .max_connection_age(Duration::from_millis(150))
        .add_routes(routes)
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    let gateway = TestGateway::start(Some(url), None).await;

    let mut answers = Vec::new();
    let started = tokio::time::Instant::now();
    // Rounds of 12 concurrent calls (reads, writes and server streams) until the backend has
    // closed at least three connections by GOAWAY, bounded in count and time.
    for _ in 0..100 {
        let round = futures_util::future::join_all((0..12).map(|i| {
            let gateway = &gateway;
            async move {
                match i % 3 {
                    0 => gateway.call("GET", "/v1/shelves/1/books/1", "").await,
                    1 => gateway.call("POST", "/v1/shelves/1/books", r#"{"title":"Scripted"}"#).await,
                    // One event, then the end: an error line would make the body not one JSON.
                    _ => gateway.call("GET", "/v1/shelves/1/books:watch", "").await,
                }
            }
        }))
        .await;
        answers.extend(round.into_iter().map(|(status, body, _)| (status, body)));
        if connections.load(Ordering::SeqCst) >= 4 || started.elapsed() > crate::support::HANG {
            break;
        }
    }
    assert!(connections.load(Ordering::SeqCst) >= 4, "the backend sent GOAWAY on at least three connections");
    let failed: Vec<_> = answers.iter().filter(|(status, body)| *status != 200 || !body.is_object()).collect();
    assert!(failed.is_empty(), "{} of {} calls failed: {failed:?}", failed.len(), answers.len());
    gateway.shutdown().await;
}
