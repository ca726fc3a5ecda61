//! Memory per in-flight REST request (issue 12's target (d): at most twice the body). One
//! `PATCH /v1/shelves/2/books/1` with a JSON body of 64 KiB or 1 MiB goes through the gateway to a
//! bare gRPC backend that answers every call with the same book (a 1 MiB title in, a 1 MiB
//! title out), one request at a time. The gateway runs in this process on one thread and
//! nothing else does: the client and the backend run in a child process (this program with
//! `--ends`), which sends a request whenever it is told to. The peak of live heap bytes above
//! what was live before the request (peakmem-alloc: a global allocator that tracks it) is read
//! per request, so it is the gateway's own, with nothing to subtract.
//!
//! Run: `cargo bench --bench request_memory` (`REQUEST_MEMORY_KIB=64` for one size). Under
//! `cargo test --benches` each size runs once as a check that it works. Nothing here depends on time.

use std::convert::Infallible;
use std::io::BufRead;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};

#[path = "support/demo_gateway.rs"]
mod demo_gateway;
#[path = "support/protobuf.rs"]
mod protobuf;
use demo_gateway::start_demo_gateway;
use protobuf::{field, grpc_frame};

/// Tracks the peak of live heap bytes since the last reset (unsafe code is forbidden here, so
/// the tracking allocator is a crate's).
#[global_allocator]
static GLOBAL: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

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

/// The child: starts the backend for a title of `size` bytes and says where (`backend ADDR`),
/// reads the gateway's address, then sends one PATCH per `go` line it reads and answers each
/// with `done BYTES` once the answer is drained.
async fn ends(size: usize) {
    let title = "t".repeat(size);
    let json = Bytes::from(serde_json::to_vec(&serde_json::json!({ "title": title })).expect("json"));
    let backend = backend(Bytes::from(grpc_frame(&book(&title)))).await;
    drop(title);
    println!("backend {backend} {}", json.len());
    let mut lines = std::io::stdin().lock().lines();
    let mut next = move || lines.next().and_then(Result::ok).unwrap_or_default();
    let gateway = next().strip_prefix("gateway ").expect("the gateway's address").to_owned();
    let stream = tokio::net::TcpStream::connect(&gateway).await.expect("connect");
    let (mut rest, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    while next() == "go" {
        let request = http::Request::patch("/v1/shelves/2/books/1?updateMask=title")
            .header("host", &gateway)
            .header("content-type", "application/json")
            .body(Full::new(json.clone()))
            .expect("request");
        let answered = drain(rest.send_request(request).await.expect("answer")).await;
        println!("done {answered}");
    }
}

/// The child process for one size.
struct Ends {
    _child: tokio::process::Child,
    input: tokio::process::ChildStdin,
    output: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Ends {
    /// Starts the child; with its backend's address and the body's length.
    async fn start(size: usize) -> (Ends, String, usize) {
        let exe = std::env::current_exe().expect("this program");
        let mut child = tokio::process::Command::new(exe)
            .args(["--ends", &size.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the client and backend process");
        let input = child.stdin.take().expect("stdin");
        let output = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut ends = Ends { _child: child, input, output: tokio::io::AsyncBufReadExt::lines(output) };
        let line = ends.line().await;
        let mut words = line.strip_prefix("backend ").expect("backend ADDR LEN").split(' ');
        let backend = words.next().expect("address").to_owned();
        let body = words.next().and_then(|n| n.parse().ok()).expect("the body's length");
        (ends, backend, body)
    }

    async fn line(&mut self) -> String {
        self.output.next_line().await.expect("from the child").expect("a line")
    }

    async fn say(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.input.write_all(format!("{line}\n").as_bytes()).await.expect("to the child");
        self.input.flush().await.expect("to the child");
    }

    /// Has the child send one request; the bytes its answer carried.
    async fn request(&mut self) -> usize {
        self.say("go").await;
        let line = self.line().await;
        line.strip_prefix("done ").and_then(|n| n.parse().ok()).expect("done BYTES")
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--ends") {
        let size = args[at + 1].parse().expect("a size");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        return runtime.block_on(ends(size));
    }
    let benchmarking = args.iter().any(|a| a == "--bench");
    let runs = if benchmarking { 5 } else { 1 };
    // One thread for the gateway: its tasks take turns, one request at a time.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        println!(
            "the gateway's peak heap per in-flight REST PATCH (a JSON title in, the same title out), worst of {runs}:"
        );
        println!("  {:>9} {:>14} {:>8}", "body", "gateway", "x body");
        // `REQUEST_MEMORY_KIB=64` runs one size (for a profiler's sake).
        let sizes: Vec<usize> = match std::env::var("REQUEST_MEMORY_KIB") {
            Ok(list) => list.split(',').map(|kib| kib.trim().parse::<usize>().expect("KiB") * 1024).collect(),
            Err(_) => vec![64 * 1024, 1024 * 1024],
        };
        for size in sizes {
            let (mut ends, backend, body) = Ends::start(size).await;
            let server = start_demo_gateway(format!("http://{backend}")).await;
            ends.say(&format!("gateway {}", server.gateway_addr)).await;
            // Warm-up: connections, pools, caches and buffers settle.
            for _ in 0..3 {
                ends.request().await;
            }
            let mut peak = 0;
            for _ in 0..runs {
                GLOBAL.reset_peak_memory();
                let answered = ends.request().await;
                peak = peak.max(GLOBAL.get_peak_memory());
                assert!(answered > size, "the gateway's answer carried {answered} bytes");
            }
            println!("  {:>6} KiB {:>10} KiB {:>8.2}", size / 1024, peak / 1024, peak as f64 / body as f64);
            assert!(peak > 0, "nothing was allocated: the tracking is wrong");
            drop(server);
        }
        println!("  target (d): the gateway's own at most 2x the body");
    });
}
