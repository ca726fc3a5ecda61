//! Memory per in-flight REST request (issue 12's target (d): at most twice the body). One
//! `PATCH /v1/shelves/2/books/1` with a JSON body of 64 KiB or 1 MiB goes through the gateway to a
//! bare gRPC backend that answers every call with the same book (a 1 MiB title in, a 1 MiB
//! title out), everything in this process on one thread, one request at a time. The peak of
//! live heap bytes above what was live before the request (peakmem-alloc: a global allocator
//! that tracks it) is read per request. The client's body and the backend's answer are built
//! before and shared, and both ends drop what they read as it arrives, so the ends hold next to
//! nothing; the same call sent straight to the backend as gRPC is measured too and subtracted,
//! which leaves the gateway's own.
//!
//! Run: `cargo bench --bench request_memory`. Under `cargo test --benches` each size runs once
//! as a check that it works. Nothing here depends on time.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};

/// Tracks the peak of live heap bytes since the last reset (unsafe code is forbidden here, so
/// the tracking allocator is a crate's).
#[global_allocator]
static GLOBAL: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// A length-delimited protobuf field.
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut length = bytes.len();
    while length >= 0x80 {
        out.push(u8::try_from(length & 0x7f).expect("7 bits") | 0x80);
        length >>= 7;
    }
    out.push(u8::try_from(length).expect("7 bits"));
    out.extend_from_slice(bytes);
    out
}

/// A message in an uncompressed gRPC frame.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(message);
    Bytes::from(frame)
}

/// `catalog.v1.Book { name, title }`.
fn book(title: &str) -> Vec<u8> {
    [field(1, b"shelves/2/books/1"), field(2, title.as_bytes())].concat()
}

/// A bare gRPC backend: drains each request's body as it arrives and answers with `answer`
/// (shared, so answering allocates next to nothing) and `grpc-status: 0`.
async fn backend(answer: Bytes) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let answer = answer.clone();
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let answer = answer.clone();
                async move {
                    let mut body = request.into_body();
                    while let Some(frame) = body.frame().await {
                        drop(frame.expect("the request body"));
                    }
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    let frames = futures_util::stream::iter([
                        Ok::<_, Infallible>(Frame::data(answer)),
                        Ok(Frame::trailers(trailers)),
                    ]);
                    let response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(StreamBody::new(frames))
                        .expect("response");
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr.to_string()
}

/// Reads an answer to its end, dropping each frame; the bytes it carried.
async fn drain(response: http::Response<Incoming>) -> usize {
    assert!(response.status().is_success(), "status {}", response.status());
    let mut body = response.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the answer").into_data() {
            bytes += data.len();
        }
    }
    bytes
}

/// The peak of live heap bytes above the level before, while `request` runs; and what it returns.
async fn peak_of<F: std::future::Future<Output = usize>>(request: F) -> (usize, usize) {
    GLOBAL.reset_peak_memory();
    let answered = request.await;
    (GLOBAL.get_peak_memory(), answered)
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let runs = if benchmarking { 5 } else { 1 };
    // One thread: the client, the gateway and the backend take turns, one request at a time.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        println!("peak heap per in-flight REST PATCH (a JSON title in, the same title out), worst of {runs}:");
        println!("  {:>9} {:>14} {:>14} {:>14} {:>8}", "body", "direct gRPC", "gateway", "gateway's own", "x body");
        for size in [64 * 1024, 1024 * 1024] {
            let title = "t".repeat(size);
            let json = Bytes::from(serde_json::to_vec(&serde_json::json!({ "title": title })).expect("json"));
            let answer = grpc_frame(&book(&title));
            let update = grpc_frame(&[field(1, &book(&title)), field(2, &field(1, b"title"))].concat());
            let backend = backend(answer).await;
            let sources = switchyard::snapshot::SnapshotSources {
                embedded: vec![switchyard::demo::demo_registration().expect("demo")],
                no_descriptor_dir: true,
                schemas: Some("/nonexistent".into()),
                backends: vec![switchyard::snapshot::BackendFlag {
                    name: "catalog.v1".into(),
                    urls: vec![format!("http://{backend}")],
                }],
                listen: Some("127.0.0.1:0".parse().expect("addr")),
                admin: Some("127.0.0.1:0".parse().expect("addr")),
                ..Default::default()
            };
            let snapshot = switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot");
            let server = switchyard::server::start_server(switchyard::gateway::Gateway::new(snapshot, sources))
                .await
                .expect("gateway");
            let gateway = server.gateway_addr.to_string();

            let stream = tokio::net::TcpStream::connect(&backend).await.expect("connect");
            let (mut direct, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let stream = tokio::net::TcpStream::connect(&gateway).await.expect("connect");
            let (mut rest, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(connection);

            let mut call_direct = || {
                let request = http::Request::post(format!("http://{backend}/catalog.v1.Catalog/UpdateBook"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(Full::new(update.clone()))
                    .expect("request");
                let sent = direct.send_request(request);
                async move { drain(sent.await.expect("answer")).await }
            };
            let mut call_rest = || {
                let request = http::Request::patch("/v1/shelves/2/books/1?updateMask=title")
                    .header("host", &gateway)
                    .header("content-type", "application/json")
                    .body(Full::new(json.clone()))
                    .expect("request");
                let sent = rest.send_request(request);
                async move { drain(sent.await.expect("answer")).await }
            };
            // Warm-up: connections, pools, caches and buffers settle.
            for _ in 0..3 {
                call_direct().await;
                call_rest().await;
            }
            let (mut direct_peak, mut gateway_peak) = (0, 0);
            for _ in 0..runs {
                let (peak, answered) = peak_of(call_direct()).await;
                assert!(answered > size, "the direct answer carried {answered} bytes");
                direct_peak = direct_peak.max(peak);
                let (peak, answered) = peak_of(call_rest()).await;
                assert!(answered > size, "the gateway's answer carried {answered} bytes");
                gateway_peak = gateway_peak.max(peak);
            }
            let own = gateway_peak.saturating_sub(direct_peak);
            println!(
                "  {:>6} KiB {:>10} KiB {:>10} KiB {:>10} KiB {:>8.2}",
                size / 1024,
                direct_peak / 1024,
                gateway_peak / 1024,
                own / 1024,
                own as f64 / json.len() as f64
            );
            assert!(gateway_peak > 0, "nothing was allocated: the tracking is wrong");
            drop(server);
        }
        println!("  target (d): the gateway's own at most 2x the body");
    });
}
