//! Heap allocations per proxied gRPC unary call (issue 12's allocation target): the gateway's
//! passthrough against a bare hyper proxy forwarding the same request over one HTTP/2
//! connection (what a hand-written proxy costs), both in this process with a counting global
//! allocator. The same call sent straight to the backend is counted too and subtracted from
//! both, which leaves each proxy's own allocations (the client's and the backend's are the
//! same in all three). Calls run one at a time after a warm-up, so the counts repeat from run
//! to run; nothing here depends on time.
//!
//! Run: `cargo bench --bench allocations` (`ALLOC_CALLS`, default 5,000; `ALLOC_ONLY` runs one
//! path, for a heap profiler: benches/README.md's allocations section). Under `cargo test
//! --all-targets` it runs 50 calls per target as a check that it works.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[path = "support/demo_gateway.rs"]
mod demo_gateway;
use demo_gateway::start_demo_gateway;

/// Counts every allocation (stats_alloc: the workspace forbids unsafe code, so the counting
/// allocator is a crate's).
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Allocations (reallocations included) and bytes allocated so far.
fn counts() -> (u64, u64) {
    let stats = GLOBAL.stats();
    ((stats.allocations + stats.reallocations) as u64, stats.bytes_allocated as u64)
}

/// `catalog.v1.GetBookRequest { name: "shelves/1/books/1" }` in a gRPC frame (about 25 bytes,
/// the answer about 100).
fn get_book_frame() -> Bytes {
    let name = b"shelves/1/books/1";
    let mut message = vec![0x0a, u8::try_from(name.len()).expect("short")];
    message.extend_from_slice(name);
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

type Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> Sender {
    let stream = tokio::net::TcpStream::connect(authority).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    sender
}

/// One unary call; panics unless it ends with `grpc-status: 0`.
async fn call(sender: &mut Sender, authority: &str, frame: &Bytes) {
    let request = http::Request::post(format!("http://{authority}/catalog.v1.Catalog/GetBook"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(frame.clone()))
        .expect("request");
    sender.ready().await.expect("ready");
    let response = sender.send_request(request).await.expect("response");
    let collected = response.into_body().collect().await.expect("body");
    let status = collected.trailers().and_then(|t| t.get("grpc-status")).map(|v| v.as_bytes().to_vec());
    assert_eq!(status.as_deref(), Some(&b"0"[..]), "the call failed");
}

/// A bare HTTP/2 proxy: each request goes to the backend over one shared connection with only
/// its URI rewritten; the answer comes back as it is.
async fn bare_proxy(backend: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stream = tokio::net::TcpStream::connect(&backend).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (upstream, connection) =
        hyper::client::conn::http2::handshake::<_, _, Incoming>(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            stream.set_nodelay(true).expect("nodelay");
            let (upstream, backend) = (upstream.clone(), backend.clone());
            let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                let mut upstream = upstream.clone();
                let path = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
                *request.uri_mut() = format!("http://{backend}{path}").parse().expect("uri");
                async move {
                    upstream.ready().await.expect("upstream ready");
                    let response = upstream.send_request(request).await.expect("upstream answer");
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

/// Allocations and bytes per call to `authority`, after a warm-up.
async fn per_call(authority: &str, calls: u64) -> (f64, f64) {
    let frame = get_book_frame();
    let mut sender = connect(authority).await;
    for _ in 0..200 {
        call(&mut sender, authority, &frame).await;
    }
    let (allocations, bytes) = counts();
    for _ in 0..calls {
        call(&mut sender, authority, &frame).await;
    }
    let (after, after_bytes) = counts();
    ((after - allocations) as f64 / calls as f64, (after_bytes - bytes) as f64 / calls as f64)
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let calls: u64 =
        if benchmarking { std::env::var("ALLOC_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000) } else { 50 };
    // One worker: every task of the client, the proxies and the backend runs on this thread,
    // one call at a time.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let backend =
            switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
        let backend_authority = backend.url().trim_start_matches("http://").to_owned();
        let server = start_demo_gateway(backend.url()).await;
        let gateway = server.gateway_addr.to_string();
        let bare = bare_proxy(backend_authority.clone()).await;

        // Under a heap profiler, one path at a time (`ALLOC_ONLY=direct|bare|gateway`): the
        // sites of one run minus those of the `direct` run are that proxy's own.
        if let Ok(only) = std::env::var("ALLOC_ONLY") {
            let authority = match only.as_str() {
                "direct" => &backend_authority,
                "bare" => &bare,
                "gateway" => &gateway,
                other => panic!("ALLOC_ONLY={other}: direct, bare or gateway"),
            };
            let (allocations, bytes) = per_call(authority, calls).await;
            println!("{only}: {allocations:.1} allocations, {bytes:.0} bytes per call (client and backend included)");
            return;
        }
        let direct = per_call(&backend_authority, calls).await;
        let through_bare = per_call(&bare, calls).await;
        let through_gateway = per_call(&gateway, calls).await;
        let bare_own = (through_bare.0 - direct.0, through_bare.1 - direct.1);
        let gateway_own = (through_gateway.0 - direct.0, through_gateway.1 - direct.1);
        println!("allocations per gRPC unary call ({calls} calls after 200 warm-up, one at a time):");
        println!("  direct to the backend (client + backend)   {:>8.1} allocations {:>9.0} bytes", direct.0, direct.1);
        println!(
            "  bare hyper proxy's own                      {:>8.1} allocations {:>9.0} bytes",
            bare_own.0, bare_own.1
        );
        println!(
            "  switchyard passthrough's own                {:>8.1} allocations {:>9.0} bytes",
            gateway_own.0, gateway_own.1
        );
        println!("  ratio (target <= 1.5)                       {:>8.2}", gateway_own.0 / bare_own.0);
        assert!(bare_own.0 > 0.0 && gateway_own.0 > 0.0, "the proxies allocated nothing: the counts are wrong");
        drop(server);
    });
}
