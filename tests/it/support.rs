//! Shared test helpers: the built binary, child processes with parsed addresses, temp dirs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Generous hang detector for waits on child processes (never a performance assertion).
pub(crate) const HANG: Duration = Duration::from_secs(60);

pub(crate) fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command.env("RUST_LOG", "warn");
    command
}

/// Runs the binary to completion.
pub(crate) fn run(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).stdin(Stdio::null()).output().expect("the binary runs")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A child process whose stdout lines are collected in the background.
pub(crate) struct Running {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    pub(crate) seen: Vec<String>,
}

impl Running {
    pub(crate) fn spawn(args: &[&str], cwd: &Path) -> Running {
        Running::start(bin().args(args).current_dir(cwd))
    }

    /// Starts `command` with its stdout collected line by line.
    pub(crate) fn start(command: &mut Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the process starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines, seen: Vec::new() }
    }

    /// Waits for a stdout line containing `marker` and returns the first `http://...` URL after it.
    pub(crate) fn url_after(&mut self, marker: &str) -> String {
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(marker)) {
                let tail = &line[line.find(marker).expect("marker") + marker.len()..];
                let start = tail.find("http://").expect("a URL on the line");
                return tail[start..].split([' ', ')']).next().expect("url").to_owned();
            }
            match self.lines.recv_timeout(HANG) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {marker:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// Waits for a stdout line containing `marker` and returns the rest of it, trimmed.
    pub(crate) fn text_after(&mut self, marker: &str) -> String {
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(marker)) {
                return line[line.find(marker).expect("marker") + marker.len()..].trim().to_owned();
            }
            match self.lines.recv_timeout(HANG) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {marker:?}; saw {:#?}", self.seen),
            }
        }
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.expect("kill runs").success());
    }

    /// Waits for exit (hang detector only) and returns the exit code.
    pub(crate) fn wait(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + HANG;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `switchyard serve` of the demo registration (written into `work/descriptors`) with
/// `catalog.v1` at `backend`, on free loopback ports, plus `extra` flags; the running process
/// and its gateway URL. Spawned off the test's runtime, which serves the backend.
pub(crate) async fn serve_demo_binary(work: &Path, backend: &str, extra: &[&str]) -> (Running, String) {
    let registration = switchyard::demo::demo_registration().expect("demo");
    switchyard::registry::RegistryDir::new(work.join("descriptors")).add(&registration, false).expect("add");
    let mut args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--backend"]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    args.push(format!("catalog.v1={backend}"));
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let path = work.to_owned();
    let mut serve = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Running::spawn(&args, &path)
    })
    .await
    .expect("join");
    let gateway = tokio::task::block_in_place(|| serve.url_after("serving on "));
    (serve, gateway)
}

/// Registers the demo protos in `work`'s default registry (`descriptors/`) through the CLI.
pub(crate) fn register_demo_protos(work: &Path) {
    let proto = demo_proto_root().join("catalog/v1/catalog.proto");
    let root = demo_proto_root();
    let added = run(&["descriptors", "add", proto.to_str().expect("utf8"), "-I", root.to_str().expect("utf8")], work);
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
}

/// The demo proto's directory in the source tree.
pub(crate) fn demo_proto_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("descriptors/demo")
}

/// Writes `files` (relative path → contents) under `dir`.
pub(crate) fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write");
    }
}

/// A snapshot of a directory's files and contents, for "nothing changed" assertions.
pub(crate) fn dir_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut state: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read")))
                .collect()
        })
        .unwrap_or_default();
    state.sort();
    state
}

/// The demo backend and a gateway wired to it, in-process on ephemeral loopback ports.
pub(crate) struct TestGateway {
    pub(crate) base: String,
    pub(crate) admin: String,
    pub(crate) client: reqwest::Client,
    server: switchyard::server::RunningServer,
    backend: Option<switchyard::demo::DemoBackend>,
    authors: Option<switchyard::demo::DemoAuthors>,
}

impl TestGateway {
    /// The demo registration served with the demo backend.
    pub(crate) async fn demo() -> TestGateway {
        let backend =
            switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
        let url = backend.url();
        TestGateway::start(Some(url), Some(backend)).await
    }

    /// The whole demo: the catalog backend, the authors REST service and the demo's schema
    /// file stitching them, as `switchyard demo` serves them.
    pub(crate) async fn stitched() -> TestGateway {
        TestGateway::stitched_with_config("").await.0
    }

    /// `stitched`, with a config file of `toml`. A `{backend}` in the text is replaced by the
    /// catalog backend's URL, and then the config (not a flag) wires the catalog.
    pub(crate) async fn stitched_with_config(toml: &str) -> (TestGateway, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("switchyard.toml");
        let backend =
            switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
        std::fs::write(&file, toml.replace("{backend}", &backend.url())).expect("write config");
        let mut flags = Vec::new();
        if !toml.contains("{backend}") {
            flags.push(switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] });
        }
        let authors =
            switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
        let sources = switchyard::snapshot::SnapshotSources {
            embedded: vec![switchyard::demo::demo_registration().expect("demo")],
            embedded_schemas: switchyard::demo::demo_schemas(),
            no_descriptor_dir: true,
            schemas: Some(PathBuf::from("/nonexistent")),
            backends: {
                flags.push(switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec![authors.url()] });
                flags
            },
            config_file: Some(file),
            ..Default::default()
        };
        let mut gateway = TestGateway::from_sources(sources, Some(backend)).await;
        gateway.authors = Some(authors);
        (gateway, dir)
    }

    /// The gateway itself.
    pub(crate) fn gateway(&self) -> &std::sync::Arc<switchyard::gateway::Gateway> {
        self.server.gateway()
    }

    /// The demo backend, if this gateway started one.
    pub(crate) fn backend(&self) -> &switchyard::demo::DemoBackend {
        self.backend.as_ref().expect("a demo backend")
    }

    /// Stops `authors` with this gateway.
    pub(crate) fn adopt_authors(&mut self, authors: switchyard::demo::DemoAuthors) {
        self.authors = Some(authors);
    }

    /// The authors service, for gateways made by `stitched`.
    pub(crate) fn authors(&self) -> &switchyard::demo::DemoAuthors {
        self.authors.as_ref().expect("the authors service")
    }

    /// The demo backend, with a config file of `toml`. A `{backend}` in the text is replaced by
    /// the backend's URL, and then the config (not a flag) wires the backend.
    pub(crate) async fn demo_with_config(toml: &str) -> (TestGateway, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("switchyard.toml");
        let backend =
            switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
        let url = backend.url();
        std::fs::write(&file, toml.replace("{backend}", &url)).expect("write config");
        let flag = (!toml.contains("{backend}")).then_some(url);
        (TestGateway::start_with(flag, Some(backend), Some(file)).await, dir)
    }

    /// Both versions of the demo catalog (catalog.v1 and catalog.v2, served by one demo backend)
    /// with a config file of `toml`, in which `{backend}` is replaced by the backend's URL.
    pub(crate) async fn two_versions_with_config(toml: &str) -> (TestGateway, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("switchyard.toml");
        let backend =
            switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
        std::fs::write(&file, toml.replace("{backend}", &backend.url())).expect("write config");
        let sources = switchyard::snapshot::SnapshotSources {
            config_file: Some(file),
            embedded: vec![
                switchyard::demo::demo_registration().expect("demo"),
                switchyard::demo::demo_v2_registration().expect("demo v2"),
            ],
            no_descriptor_dir: true,
            schemas: Some(PathBuf::from("/nonexistent")),
            ..Default::default()
        };
        (TestGateway::from_sources(sources, Some(backend)).await, dir)
    }

    /// The demo registration with `backend_url` as its backend (or none).
    pub(crate) async fn start(
        backend_url: Option<String>,
        backend: Option<switchyard::demo::DemoBackend>,
    ) -> TestGateway {
        TestGateway::start_with(backend_url, backend, None).await
    }

    /// The demo registration served by `backend_url`, with the config file at `config`.
    pub(crate) async fn start_with_config(backend_url: Option<String>, config: PathBuf) -> TestGateway {
        TestGateway::start_with(backend_url, None, Some(config)).await
    }

    async fn start_with(
        backend_url: Option<String>,
        backend: Option<switchyard::demo::DemoBackend>,
        config_file: Option<PathBuf>,
    ) -> TestGateway {
        let sources = switchyard::snapshot::SnapshotSources {
            config_file,
            embedded: vec![switchyard::demo::demo_registration().expect("demo")],
            no_descriptor_dir: true,
            schemas: Some(PathBuf::from("/nonexistent")),
            backends: backend_url
                .map(|url| vec![switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![url] }])
                .unwrap_or_default(),
            ..Default::default()
        };
        TestGateway::from_sources(sources, backend).await
    }

    /// A gateway serving `sources` on ephemeral loopback ports; `backend` is stopped with it.
    pub(crate) async fn from_sources(
        mut sources: switchyard::snapshot::SnapshotSources,
        backend: Option<switchyard::demo::DemoBackend>,
    ) -> TestGateway {
        sources.listen = Some("127.0.0.1:0".parse().expect("addr"));
        sources.admin = Some("127.0.0.1:0".parse().expect("addr"));
        // Off the test's runtime thread, as the gateway does: building may call other servers
        // running on this runtime (GraphQL sources are introspected).
        let building = sources.clone();
        let snapshot = tokio::task::spawn_blocking(move || switchyard::snapshot::build_snapshot(&building, 1))
            .await
            .expect("build task")
            .expect("snapshot");
        let gateway = switchyard::gateway::Gateway::new(snapshot, sources);
        let server = switchyard::server::start_server(gateway).await.expect("server");
        TestGateway {
            base: format!("http://{}", server.gateway_addr),
            admin: format!("http://{}", server.admin_addr),
            // Raw responses: the tests check the gateway's own compression.
            client: reqwest::Client::builder().no_gzip().build().expect("client"),
            server,
            backend,
            authors: None,
        }
    }

    /// Sends a request; a non-empty `body` goes with `content-type: application/json`.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if !body.is_empty() {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, json, headers)
    }

    /// POSTs a GraphQL query (no variables, no credentials) and answers the response body.
    pub(crate) async fn graphql(&self, query: &str) -> serde_json::Value {
        let body = serde_json::json!({ "query": query }).to_string();
        let (_, answer, _) = self.call("POST", "/graphql", &body).await;
        answer
    }

    /// GETs `path` from the admin listener, as JSON.
    pub(crate) async fn admin_json(&self, path: &str) -> serde_json::Value {
        let response = self.client.get(format!("{}{path}", self.admin)).send().await.expect("admin request");
        response.json().await.expect("admin answers JSON")
    }

    pub(crate) async fn shutdown(mut self) {
        self.server.shutdown().await;
        if let Some(backend) = self.backend.take() {
            backend.shutdown().await;
        }
        if let Some(authors) = self.authors.take() {
            authors.shutdown().await;
        }
    }

    /// Stops the authors service, leaving the rest running.
    pub(crate) async fn stop_authors(&mut self) {
        if let Some(authors) = self.authors.take() {
            authors.shutdown().await;
        }
    }

    /// Stops the backend, leaving the gateway running.
    pub(crate) async fn stop_backend(&mut self) {
        if let Some(backend) = self.backend.take() {
            backend.shutdown().await;
        }
    }
}

/// When a call reached a `watched_backend`, and the grpc-timeout it carried.
pub(crate) type Arrival = (tokio::time::Instant, Option<String>);

/// What a `watched_backend` saw: when each call arrived and with which grpc-timeout, how many
/// calls arrived and how many were abandoned (their handler dropped) before the answer.
#[derive(Clone, Default)]
pub(crate) struct BackendWatch {
    pub(crate) arrivals: std::sync::Arc<std::sync::Mutex<Vec<Arrival>>>,
    pub(crate) calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) cancelled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl BackendWatch {
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn cancelled(&self) -> usize {
        self.cancelled.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The grpc-timeout the last call arrived with, in milliseconds (None: it had none).
    pub(crate) fn last_timeout_millis(&self) -> Option<u128> {
        let seen = self.arrivals.lock().expect("lock");
        seen.last().and_then(|(_, timeout)| timeout.as_deref().map(grpc_timeout_millis))
    }

    /// Waits (a wall-clock hang detector bounds it) until `n` calls were abandoned. The waits
    /// are real ones on the blocking pool, which holds a paused clock still meanwhile: a cancel
    /// travels over real sockets, and a paused clock left to advance on its own could run
    /// through any virtual bound before the frames arrive.
    pub(crate) async fn until_cancelled(&self, n: usize) {
        let hang = std::time::Instant::now() + HANG;
        while self.cancelled() < n {
            assert!(std::time::Instant::now() < hang, "hang detector: the backend never saw the cancel");
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(2))).await.expect("sleep");
        }
    }
}

/// A grpc-timeout value (`150m`, `2S`, ...) in milliseconds.
pub(crate) fn grpc_timeout_millis(text: &str) -> u128 {
    let (digits, unit) = text.split_at(text.len() - 1);
    let value: u128 = digits.parse().expect("digits");
    match unit {
        "H" => value * 3_600_000,
        "M" => value * 60_000,
        "S" => value * 1000,
        "m" => value,
        "u" => value / 1000,
        "n" => value / 1_000_000,
        other => panic!("unexpected grpc-timeout unit {other}"),
    }
}

/// Sets its counter when dropped before `disarm`: a handler future dropped mid-call means the
/// backend saw the call cancelled.
struct CancelGuard(Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>);

impl CancelGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(counter) = self.0.take() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A real tonic backend whose GetBook answers after `delay`: an empty Book, or `failure` when
/// given. Its watch records what each call arrived with and whether it was abandoned.
pub(crate) async fn watched_backend(delay: Duration, failure: Option<tonic::Code>) -> (String, BackendWatch) {
    use switchyard::upstream::grpc_codec::DynamicCodec;
    let watch = BackendWatch::default();
    let pool = switchyard::registry::merge_registrations(vec![switchyard::demo::demo_registration().expect("demo")])
        .expect("merges")
        .pool;
    let method = pool
        .get_service_by_name("catalog.v1.Catalog")
        .expect("service")
        .methods()
        .find(|m| m.name() == "GetBook")
        .expect("GetBook");
    let seen = watch.clone();
    let service = tower::service_fn(move |request: http::Request<axum::body::Body>| {
        let method = method.clone();
        let watch = seen.clone();
        async move {
            let timeout = request.headers().get("grpc-timeout").and_then(|v| v.to_str().ok()).map(str::to_owned);
            watch.arrivals.lock().expect("lock").push((tokio::time::Instant::now(), timeout));
            watch.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            let output = method.output();
            let handler = tower::service_fn(move |_request: tonic::Request<prost_reflect::DynamicMessage>| {
                let output = output.clone();
                let mut guard = CancelGuard(Some(watch.cancelled.clone()));
                async move {
                    tokio::time::sleep(delay).await;
                    guard.disarm();
                    match failure {
                        Some(code) => Err(tonic::Status::new(code, "the backend failed on purpose")),
                        None => Ok(tonic::Response::new(prost_reflect::DynamicMessage::new(output))),
                    }
                }
            });
            Ok::<_, std::convert::Infallible>(grpc.unary(handler, request.map(tonic::body::Body::new)).await)
        }
    });
    let router = axum::Router::new().route_service("/catalog.v1.Catalog/GetBook", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), watch)
}

/// GetBook over native gRPC with `metadata`.
pub(crate) async fn grpc_get_book(
    gateway: &TestGateway,
    metadata: &[(&'static str, String)],
) -> Result<(), tonic::Status> {
    let channel =
        tonic::transport::Endpoint::from_shared(gateway.base.clone()).expect("url").connect().await.expect("connect");
    let pool = switchyard::registry::merge_registrations(vec![switchyard::demo::demo_registration().expect("demo")])
        .expect("merges")
        .pool;
    let get = pool
        .get_service_by_name("catalog.v1.Catalog")
        .and_then(|s| s.methods().find(|m| m.name() == "GetBook"))
        .expect("GetBook");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(
        prost_reflect::DynamicMessage::deserialize(get.input(), serde_json::json!({"name": "shelves/1/books/1"}))
            .expect("message"),
    );
    for (name, value) in metadata {
        request.metadata_mut().insert(*name, value.parse().expect("metadata"));
    }
    let codec = switchyard::upstream::grpc_codec::DynamicCodec::new(get.output());
    grpc.unary(request, "/catalog.v1.Catalog/GetBook".parse().expect("path"), codec).await.map(|_| ())
}

/// A real redis-server on a free loopback port, stopped when dropped.
pub(crate) struct RedisServer {
    /// `redis://127.0.0.1:PORT`.
    pub(crate) url: String,
    child: std::process::Child,
}

impl RedisServer {
    /// Starts one (redis-server must be installed: `.ci/run` installs it) and waits for PING.
    pub(crate) async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        let server = RedisServer { url: format!("redis://127.0.0.1:{port}"), child };
        server.wait_for_ping(port).await;
        server
    }

    /// Starts one that speaks only TLS (the PEM files in `dir`: `ca.pem`, `server.pem`,
    /// `server.key`) and requires `password`; waits until its port accepts connections.
    pub(crate) async fn start_tls(dir: &Path, password: &str) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let file = |name: &str| dir.join(name).display().to_string();
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--tls-cert-file", &file("server.pem"), "--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.pem"), "--tls-auth-clients", "no", "--requirepass", password])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        let server = RedisServer { url: format!("rediss://127.0.0.1:{port}"), child };
        let started = tokio::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed() < HANG, "redis-server (TLS) did not open its port");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        server
    }

    async fn wait_for_ping(&self, port: u16) {
        let started = tokio::time::Instant::now();
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut answer = [0u8; 7];
                if stream.write_all(b"PING\r\n").await.is_ok()
                    && stream.read_exact(&mut answer).await.is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(started.elapsed() < HANG, "redis-server did not answer PING");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Starts it again on its port, empty (a restart without persistence), after `stop`.
    pub(crate) async fn restart(&mut self) {
        let port: u16 = self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a plain redis:// URL");
        self.child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts again");
        self.wait_for_ping(port).await;
    }

    /// Stops it (a store outage).
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// GET `path` on `gateway` with `headers`: status, JSON body and response headers.
pub(crate) async fn get_with(
    gateway: &TestGateway,
    path: &str,
    headers: &[(&str, String)],
) -> (u16, serde_json::Value, http::HeaderMap) {
    let mut request = gateway.client.get(format!("{}{path}", gateway.base));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.expect("json"), headers)
}

/// Builds a snapshot of the demo registration with the config `text` (written into `dir`).
pub(crate) fn demo_snapshot(
    dir: &std::path::Path,
    text: &str,
) -> Result<switchyard::snapshot::Snapshot, Vec<switchyard::config::Problem>> {
    let file = dir.join("switchyard.toml");
    std::fs::write(&file, text).expect("write config");
    let sources = switchyard::snapshot::SnapshotSources {
        config_file: Some(file),
        embedded: vec![switchyard::demo::demo_registration().expect("demo")],
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        ..Default::default()
    };
    switchyard::snapshot::build_snapshot(&sources, 1)
}

/// Sends one command to the Redis at `url` (`redis://127.0.0.1:PORT`) and returns its raw RESP
/// answer, for tests that look at what the gateway wrote.
pub(crate) async fn redis_command(url: &str, args: &[&str]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("redis://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to redis");
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(command.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 65536];
    let read = tokio::time::timeout(HANG, stream.read(&mut answer)).await.expect("an answer").expect("read");
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

/// Asserts that each config text of `table` refuses to build a demo snapshot, with a problem at
/// its key path whose message contains its text: (config, key, message).
pub(crate) fn assert_config_refused(table: &[(&str, &str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (text, key, message) in table {
        let problems = demo_snapshot(dir.path(), text).expect_err(text);
        let found = problems.iter().find(|p| p.path == *key).unwrap_or_else(|| panic!("{text}: {problems:?}"));
        assert!(found.message.contains(message), "{text}: {found:?}");
    }
}

/// `megabytes` MiB of zeros, gzipped (about 1 KiB per MiB): a decompression bomb.
pub(crate) async fn gzipped_zeros(megabytes: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut zipped = Vec::new();
    let zeros = std::io::Cursor::new(vec![0u8; megabytes * 1024 * 1024]);
    async_compression::tokio::bufread::GzipEncoder::new(tokio::io::BufReader::new(zeros))
        .read_to_end(&mut zipped)
        .await
        .expect("gzip");
    zipped
}

/// A raw HTTP/2 gRPC answer's `grpc-status` and `grpc-message`, from its headers (a
/// trailers-only answer) or else its trailers, the body read and released on the way.
pub(crate) async fn grpc_outcome(response: http::Response<h2::RecvStream>) -> (Option<String>, Option<String>) {
    let text = |map: &http::HeaderMap, name: &str| map.get(name).map(|v| v.to_str().expect("ascii").to_owned());
    if let Some(status) = text(response.headers(), "grpc-status") {
        return (Some(status), text(response.headers(), "grpc-message"));
    }
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        let data = data.expect("data");
        let _ = body.flow_control().release_capacity(data.len());
    }
    match body.trailers().await.expect("trailers") {
        Some(trailers) => (text(&trailers, "grpc-status"), text(&trailers, "grpc-message")),
        None => (None, None),
    }
}
