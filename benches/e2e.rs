//! The end-to-end harness: real backends (three demo catalog replicas, tonic, each its own
//! process, so one can be killed) and the gateway (`switchyard serve`, its own process, pinned to its own core when the
//! machine has two or more and `taskset` is there; this process and the driver share the
//! other) on loopback, driven by a light closed-loop load driver — this
//! same binary re-run as a separate process (`E2E_ROLE=driver`), pinned to another core —
//! speaking HTTP/1.1 and HTTP/2 with hyper's client connections, gRPC as HTTP/2 with
//! pre-encoded frames (no per-request encoding in the driver). For each
//! scenario: requests/s, p50/p99/p99.9, errors, the gateway's CPU milliseconds per 1,000
//! requests and busy share of its core (from /proc/PID/stat), its peak RSS (VmHWM), and the
//! floor — the same call sent straight to one backend — with the ratio to it.
//!
//! Run: `cargo bench --bench e2e` (`E2E_SECONDS` per scenario, default 5; `E2E_CONCURRENCY`,
//! default 32; a scenario name as the filter runs only that one). Under `cargo test
//! --all-targets` (no `--bench` argument) every scenario runs briefly, as a check that it works.
//! Bounded: a warm-up and a measured window per run, never more than `E2E_MAX_REQUESTS`
//! (default 500,000) requests. `E2E_CALLGRIND=N` counts the gateway's instructions per request
//! instead (support/callgrind.rs; `E2E_CALLGRIND_OUT=DIR` keeps the dumps); `E2E_SWITCHYARD=PATH` runs another build of the gateway.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;

#[path = "support/baseline.rs"]
mod baseline;
#[path = "support/callgrind.rs"]
mod callgrind;
#[path = "support/proc_stats.rs"]
mod proc_stats;
#[path = "support/protobuf.rs"]
mod protobuf;
use proc_stats::{cpu_seconds, memory_mib};
use protobuf::{field, grpc_frame};

/// One kind of request the driver sends.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Job {
    /// `http1` or `h2` (gRPC and HTTP/2 REST).
    transport: String,
    /// host:port.
    authority: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    /// The body, base64 (so gRPC frames travel in JSON).
    body: String,
    /// gRPC: a `grpc-status: 0` trailer is what success means.
    grpc: bool,
    concurrency: usize,
    seconds: f64,
    warmup: f64,
    cap: usize,
    /// gRPC server streaming: the number of messages every answer must carry (0: unary).
    #[serde(default)]
    stream_messages: usize,
    /// `ws` jobs: graphql-transport-ws sockets to open, one subscription each (the query is the
    /// body); the driver then measures every event's age on arrival instead of requests.
    #[serde(default)]
    subscriptions: usize,
}

/// What the driver measured.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Report {
    requests: usize,
    errors: usize,
    first_error: Option<String>,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    /// Seconds from the start of the measured window to the first and last failure.
    first_error_at: Option<f64>,
    last_error_at: Option<f64>,
    /// `ws` jobs: sockets that never received an event in the warm-up.
    #[serde(default)]
    silent: usize,
    /// `ws` jobs: the driver's own busy share of its core over the measured window (when it
    /// nears 1, the driver's queueing is in the latencies).
    #[serde(default)]
    driver_busy: f64,
}

fn main() {
    if std::env::var("E2E_ROLE").as_deref() == Ok("backend") {
        // One demo catalog replica.
        demo_service(async {
            let backend =
                switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
            (backend.url(), backend)
        });
        return;
    }
    if std::env::var("E2E_ROLE").as_deref() == Ok("authors") {
        // The demo's authors REST service, which (f) stitches into GraphQL.
        demo_service(async {
            let authors =
                switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
            (authors.url(), authors)
        });
        return;
    }
    if std::env::var("E2E_ROLE").as_deref() == Ok("baseline") {
        // The hand-written baselines, serving until stdin closes.
        let backends: Vec<String> =
            std::env::var("E2E_BACKENDS").expect("E2E_BACKENDS").split(',').map(str::to_owned).collect();
        let authors = std::env::var("E2E_AUTHORS").expect("E2E_AUTHORS");
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (address, serving) = baseline::serve(&backends, &authors).await;
            println!("{address}");
            let mut line = String::new();
            let stdin = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line));
            tokio::select! {
                () = serving => {}
                _ = stdin => {}
            }
        });
        return;
    }
    if std::env::var("E2E_ROLE").as_deref() == Ok("driver") {
        // The job comes on stdin (a 1 MiB body does not fit in the environment).
        let job: Job = serde_json::from_reader(std::io::stdin().lock()).expect("a job on stdin");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let report = if job.transport == "ws" {
            runtime.block_on(drive_subscriptions(job))
        } else {
            runtime.block_on(drive(job))
        };
        println!("{}", serde_json::to_string(&report).expect("json"));
        return;
    }
    // Keep this process, the backends and the driver (its children) off the gateway's core.
    if let (Err(_), Some((gateway, driver))) = (std::env::var("E2E_PINNED"), pinning()) {
        let status = Command::new("taskset")
            .arg("-c")
            .arg(&driver)
            .arg(std::env::current_exe().expect("this binary"))
            .args(std::env::args().skip(1))
            .env("E2E_PINNED", format!("{gateway},{driver}"))
            .status()
            .expect("taskset runs");
        std::process::exit(status.code().unwrap_or(1));
    }
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let seconds: f64 = match std::env::var("E2E_SECONDS").ok().and_then(|s| s.parse().ok()) {
        Some(seconds) => seconds,
        None if benchmarking => 5.0,
        None => 0.2,
    };
    let concurrency: usize = std::env::var("E2E_CONCURRENCY").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    let cap: usize = std::env::var("E2E_MAX_REQUESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(500_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(orchestrate(filter, seconds, concurrency, cap, benchmarking));
}

/// Runs the demo service `start` gives in this process, its URL on stdout, until this process
/// is killed or its stdin closes.
fn demo_service<S>(start: impl std::future::Future<Output = (String, S)>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (url, _service) = start.await;
        println!("{url}");
        let mut line = String::new();
        let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
    });
}

/// Cores to pin the gateway and the driver to, when there are at least two and taskset exists
/// (decided once, before this process pins itself, and passed on in `E2E_PINNED`).
fn pinning() -> Option<(String, String)> {
    if let Ok(pins) = std::env::var("E2E_PINNED") {
        return pins.split_once(',').map(|(gateway, driver)| (gateway.to_owned(), driver.to_owned()));
    }
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let taskset = Command::new("taskset").arg("--version").output().is_ok_and(|o| o.status.success());
    (cores >= 2 && taskset).then(|| ("1".to_owned(), "0".to_owned()))
}

fn pinned(core: Option<&str>, program: &std::path::Path) -> Command {
    match core {
        Some(core) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(core).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The gateway process, killed when dropped.
struct Gateway {
    child: Child,
    http: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `catalog.v1.UpdateBookRequest { book { name, title }, update_mask { paths: "title" } }`.
fn update_book_request(name: &str, title: &str) -> Vec<u8> {
    let book = [field(1, name.as_bytes()), field(2, title.as_bytes())].concat();
    [field(1, &book), field(2, &field(1, b"title"))].concat()
}

/// `catalog.v1.GetBookRequest { name }`, encoded.
fn get_book_request(name: &str) -> Vec<u8> {
    let mut message = vec![0x0a, u8::try_from(name.len()).expect("short")];
    message.extend_from_slice(name.as_bytes());
    message
}

struct Scenario {
    name: &'static str,
    what: &'static str,
    /// Through the gateway.
    job: Job,
    /// The floor: the same call straight to one backend (or, for (h), without auth).
    floor: Option<Job>,
    /// Sent to the gateway with auth and rate limits on.
    secured: bool,
    /// Kill one backend halfway through the measured window (errors are reported, with how
    /// long after the kill the last one came, instead of failing the run).
    kill_backend: bool,
    /// Connections that trickle a request head at the gateway, a byte a second, while the
    /// driver runs (a slowloris); the floor is then the same job undisturbed.
    trickling: usize,
}

/// HS256 tokens' shared secret (the harness's own; nothing outside it trusts it).
const SECRET: &str = "the-e2e-harness-hs256-secret-of-32-bytes";

/// Starts `switchyard serve --config NAME` in `work`, pinned to the gateway core; it picks its
/// own free ports, read back from its first line.
fn start_gateway(work: &std::path::Path, name: &str, pins: Option<&(String, String)>) -> Gateway {
    let core = pins.map(|(gateway, _)| gateway.as_str());
    // `E2E_SWITCHYARD` runs another build of the gateway under the same harness (an A/B).
    let program = std::env::var_os("E2E_SWITCHYARD")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_switchyard")), std::path::PathBuf::from);
    let mut command = match callgrind::requests() {
        Some(_) => {
            let mut command = pinned(core, std::path::Path::new("valgrind"));
            command.args(callgrind::valgrind_args(work)).arg(&program);
            command
        }
        None => pinned(core, &program),
    };
    command
        .args(["serve", "--config", name, "--log", "warn"])
        .current_dir(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("the gateway starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    // "switchyard serving on http://ADDR (admin http://ADDR)"
    let http = line
        .split("serving on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the gateway did not start (its first line: {line:?})"))
        .to_owned();
    std::thread::spawn(move || lines.for_each(drop));
    Gateway { child, http }
}

/// A bearer token for subject `bench`, valid for an hour.
fn token(algorithm: jsonwebtoken::Algorithm, kid: &str, key: &jsonwebtoken::EncodingKey) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 3600;
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &json!({"sub": "bench", "exp": exp}), key).expect("sign")
}

/// A demo catalog replica in its own process (so killing it cuts its connections as a crash
/// does), killed when dropped.
struct Backend {
    child: Child,
    url: String,
}

impl Backend {
    fn start() -> Backend {
        Backend::spawn("backend", &[], None)
    }

    /// This binary in `role` (`backend`: a catalog replica; `authors`: the authors service;
    /// `baseline`: the hand-written services) with `env`, pinned to `core` if given; its first
    /// line is its URL.
    fn spawn(role: &str, env: &[(&str, String)], core: Option<&str>) -> Backend {
        let mut command = pinned(core, &std::env::current_exe().expect("this binary"));
        command.env("E2E_ROLE", role).envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("the {role} process starts: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let url = BufReader::new(stdout).lines().next().and_then(Result::ok);
        Backend { child, url: url.unwrap_or_else(|| panic!("the {role} process names its address")) }
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    /// SIGKILL: no GOAWAY, calls in flight cut.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hand-written baselines (benches/support/baseline.rs) in their own process, on the
/// gateway's core, calling `backends` round robin; killed when dropped.
fn start_baseline(backends: &[String], authors: &str, core: Option<&str>) -> Backend {
    let env = [("E2E_BACKENDS", backends.join(",")), ("E2E_AUTHORS", authors.to_owned())];
    Backend::spawn("baseline", &env, core)
}

/// The same request to the gateway and to the baseline gives the same JSON: the baseline does
/// the same translation.
async fn same_answers(gateway: &str, baseline: &str, path: &str, body: Option<&str>) {
    let client = reqwest::Client::new();
    let fetch = |authority: &str| {
        let url = format!("http://{authority}{path}");
        let request = match body {
            Some(body) => client.post(url).header("content-type", "application/json").body(body.to_owned()),
            None => client.get(url),
        };
        async move {
            let response = request.send().await.expect("an answer");
            assert!(response.status().is_success(), "{path}: {}", response.status());
            response.json::<serde_json::Value>().await.expect("JSON")
        }
    };
    let (ours, theirs) = (fetch(gateway).await, fetch(baseline).await);
    assert!(ours.get("errors").is_none(), "{path}: the gateway answered with errors: {ours}");
    assert_eq!(ours, theirs, "{path}: the gateway and the hand-written baseline answer differently");
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `full`: under `cargo bench` (else a brief check that every scenario works, with (g) at 50
/// and 100 subscriptions instead of 1,000 and 10,000).
async fn orchestrate(filter: Option<String>, seconds: f64, concurrency: usize, cap: usize, full: bool) {
    // (g) opens 10,000 sockets; the gateway (a child) inherits the raised limit.
    rlimit::increase_nofile_limit(24_000).expect("raise the open-file limit");
    let backends: Vec<Backend> = (0..3).map(|_| Backend::start()).collect();
    seed(&backends.iter().map(Backend::url).collect::<Vec<_>>()).await;
    let authors = Backend::spawn("authors", &[], None);
    let work = tempfile::tempdir().expect("tempdir");
    switchyard::registry::RegistryDir::new(work.path().join("descriptors"))
        .add(&switchyard::demo::demo_registration().expect("demo"), false)
        .expect("register");
    // The demo's stitching schema (gRPC books, REST authors), for (f).
    std::fs::create_dir(work.path().join("schemas")).expect("mkdir");
    let stitching = switchyard::demo::demo_schemas()
        .into_iter()
        .find(|file| file.path.ends_with("authors.graphql"))
        .expect("the demo's authors schema");
    std::fs::write(work.path().join("schemas/authors.graphql"), stitching.text).expect("schema");
    let endpoints: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.url())).collect();
    // Free ports chosen by the gateway itself, read back from its first line.
    let config = format!(
        "[listener]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [sources]\ndescriptors = \"descriptors\"\nschemas = \"schemas\"\nwatch = false\n\
         [backends.catalog]\nendpoints = [{}]\nservices = [\"catalog.v1\"]\nbalancer = \"round_robin\"\n\
         [backends.authors]\nprotocol = \"http\"\nendpoints = [\"{}\"]\n\
         [[cache.rules]]\nfields = [\"Query.listBooks\"]\nttl = \"1h\"\nscope = \"public\"\n",
        endpoints.join(", "),
        authors.url()
    );
    std::fs::write(work.path().join("switchyard.toml"), &config).expect("config");
    // (g)'s gateway: room for 10,000 sockets from one client address.
    let subscriptions = config.replacen("[admin]", "max_connections = 20000\n[admin]", 1)
        + "[graphql.subscriptions]\nmax_total = 20000\nmax_per_consumer = 20000\n";
    std::fs::write(work.path().join("subscriptions.toml"), subscriptions).expect("config");
    // A second gateway with auth and a rate limit on, for (h): HS256 and ES256 keys, and a
    // per-consumer limit high enough never to refuse.
    let es256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("an ES256 key");
    std::fs::write(work.path().join("es256.pem"), es256.public_key_pem()).expect("write");
    let auth = format!(
        "{config}[[auth.jwt]]\nname = \"corp\"\nkeys = [{{ kid = \"hs\", algorithm = \"HS256\", secret = \"{SECRET}\" }}, \
         {{ kid = \"es\", algorithm = \"ES256\", pem_file = \"es256.pem\" }}]\n\
         [[rate_limits.rules]]\nname = \"per-user\"\nlimit = 1000000000\nwindow = \"1h\"\nclients = \"authenticated\"\n"
    );
    std::fs::write(work.path().join("auth.toml"), auth).expect("config");
    let pins = pinning();
    let urls: Vec<String> = backends.iter().map(Backend::url).collect();
    let hand = start_baseline(&urls, &authors.url(), pins.as_ref().map(|(gateway, _)| gateway.as_str()));
    let gateway = start_gateway(work.path(), "switchyard.toml", pins.as_ref());
    let secured = start_gateway(work.path(), "auth.toml", pins.as_ref());
    match &pins {
        Some((gateway, driver)) => {
            println!("gateway pinned to core {gateway}; load driver and backends to core {driver}")
        }
        None => println!("not pinned (fewer than two cores, or no taskset): figures include contention"),
    }

    let backend = backends[0].url().trim_start_matches("http://").to_owned();
    let book = "shelves/1/books/1";
    let grpc = |authority: &str| Job {
        transport: "h2".into(),
        authority: authority.to_owned(),
        method: "POST".into(),
        path: "/catalog.v1.Catalog/GetBook".into(),
        // Uncompressed answers, as the scenarios specify (and as the gateway asks its backends
        // for them: `grpc_compression` is off by default).
        headers: vec![("content-type".into(), "application/grpc".into()), ("te".into(), "trailers".into())],
        body: base64(&grpc_frame(&get_book_request(book))),
        grpc: true,
        concurrency,
        seconds,
        warmup: (seconds / 5.0).min(1.0),
        cap,
        stream_messages: 0,
        subscriptions: 0,
    };
    let http = |path: &str, method: &str, headers: Vec<(String, String)>, body: &[u8]| Job {
        transport: "http1".into(),
        authority: gateway.http.clone(),
        method: method.into(),
        path: path.into(),
        headers,
        body: base64(body),
        grpc: false,
        ..grpc(&gateway.http)
    };
    // The same book updated with a title of `size` bytes: through REST (PATCH, body bound to
    // `book`) and, as the floor, the same gRPC call straight to a backend. Idempotent, so the
    // catalog does not grow under load.
    let patch = |size: usize| {
        let title = "t".repeat(size);
        let body = serde_json::to_vec(&json!({ "title": title })).expect("json");
        let rest = http(
            "/v1/shelves/2/books/1?updateMask=title",
            "PATCH",
            vec![("content-type".into(), "application/json".into())],
            &body,
        );
        let direct = Job {
            path: "/catalog.v1.Catalog/UpdateBook".into(),
            body: base64(&grpc_frame(&update_book_request("shelves/2/books/1", &title))),
            ..grpc(&backend)
        };
        (rest, direct)
    };
    let graphql = |query: &str| {
        let body = serde_json::to_vec(&json!({ "query": query })).expect("json");
        http("/graphql", "POST", vec![("content-type".into(), "application/json".into())], &body)
    };
    let hs256 = token(
        jsonwebtoken::Algorithm::HS256,
        "hs",
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("the HS256 key"),
    );
    let es256_token = token(
        jsonwebtoken::Algorithm::ES256,
        "es",
        &jsonwebtoken::EncodingKey::from_ec_pem(es256.serialize_pem().as_bytes()).expect("the ES256 key"),
    );
    // The same request, to the gateway with auth on and with the token.
    let bearer = |job: Job, token: &str| {
        let mut headers = job.headers.clone();
        headers.push(("authorization".into(), format!("Bearer {token}")));
        Job { authority: secured.http.clone(), headers, ..job }
    };
    let one_field = format!("{{ getBook(name: \"{book}\") {{ title author }} }}");
    // The hand-written baselines beside (c) and (e), checked to answer as the gateway does.
    let one_field_body = serde_json::to_string(&json!({ "query": one_field })).expect("json");
    same_answers(&gateway.http, &hand.url, &format!("/v1/{book}"), None).await;
    same_answers(&gateway.http, &hand.url, "/graphql", Some(&one_field_body)).await;
    // (f): three levels — REST authors, gRPC books per author, REST writers batched per level.
    let stitched = "{ authors(country: \"US\") { name born books { title writer { name country } } } }";
    let stitched_body = serde_json::to_string(&json!({ "query": stitched })).expect("json");
    same_answers(&gateway.http, &hand.url, "/graphql", Some(&stitched_body)).await;
    let baselines = [
        ("c_rest_get", Job { authority: hand.url.clone(), ..http(&format!("/v1/{book}"), "GET", Vec::new(), b"") }),
        ("e_graphql_one_field", Job { authority: hand.url.clone(), ..graphql(&one_field) }),
        ("f_graphql_stitched", Job { authority: hand.url.clone(), ..graphql(stitched) }),
    ];
    let export = Job {
        path: "/catalog.v1.Catalog/ExportBooks".into(),
        body: base64(&grpc_frame(&field(1, EXPORT_SHELF.as_bytes()))),
        stream_messages: 1000,
        ..grpc(&gateway.http)
    };
    let watch = |subscriptions: usize| Job {
        transport: "ws".into(),
        body: base64(b"subscription { watchBooks(parent: \"shelves/9\") { book { title } } }"),
        subscriptions: if full { subscriptions } else { subscriptions / 20 },
        ..grpc(&gateway.http)
    };
    let scenarios = vec![
        Scenario {
            name: "a_grpc_unary",
            what: "(a) gRPC unary passthrough, round robin over 3 backends",
            job: grpc(&gateway.http),
            floor: Some(grpc(&backend)),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "a_grpc_unary_c1",
            what: "(a) the same at concurrency 1 (added latency)",
            job: Job { concurrency: 1, ..grpc(&gateway.http) },
            floor: Some(Job { concurrency: 1, ..grpc(&backend) }),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "b_grpc_server_stream",
            what: "(b) gRPC server stream of 1,000 messages (ExportBooks), round robin over 3 backends",
            job: export.clone(),
            floor: Some(Job { authority: backend.clone(), ..export.clone() }),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "c_rest_get",
            what: "(c) REST GET → gRPC unary (path binding)",
            job: http(&format!("/v1/{book}"), "GET", Vec::new(), b""),
            floor: Some(grpc(&backend)),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "c_rest_get_query",
            what: "(c) REST GET → gRPC unary (path and query binding)",
            job: http("/v1/shelves/1/books?pageSize=1&author=Ursula%20K.%20Le%20Guin", "GET", Vec::new(), b""),
            floor: Some(grpc(&backend)),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "c_rest_patch_1k",
            what: "(c) REST PATCH with a 1 KiB body → gRPC unary (body binding)",
            job: patch(1024).0,
            floor: Some(patch(1024).1),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "d_rest_patch_64k",
            what: "(d) REST PATCH with a 64 KiB body (and answer)",
            job: patch(64 * 1024).0,
            floor: Some(patch(64 * 1024).1),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "d_rest_patch_1m",
            what: "(d) REST PATCH with a 1 MiB body (and answer)",
            job: Job { concurrency: concurrency.min(8), ..patch(1024 * 1024).0 },
            floor: Some(Job { concurrency: concurrency.min(8), ..patch(1024 * 1024).1 }),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "e_graphql_one_field",
            what: "(e) GraphQL, one field → one gRPC call",
            job: graphql(&format!("{{ getBook(name: \"{book}\") {{ title author }} }}")),
            floor: Some(grpc(&backend)),
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "f_graphql_stitched",
            what: "(f) GraphQL stitched over REST + gRPC, 3 levels, writers batched per level",
            job: graphql(stitched),
            floor: None,
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "i_graphql_cache_hit",
            what: "(i) GraphQL answered from the fetch cache",
            job: graphql("{ listBooks(parent: \"shelves/1\") { books { title } } }"),
            floor: None,
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "g_subscriptions_1k",
            what: "(g) 1,000 graphql-transport-ws subscriptions fed by one gRPC stream at 100 events/s",
            job: watch(1000),
            floor: None,
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "g_subscriptions_10k",
            what: "(g) 10,000 graphql-transport-ws subscriptions fed by one gRPC stream at 100 events/s",
            job: watch(10_000),
            floor: None,
            kill_backend: false,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "h_rest_get_hs256",
            what: "(h) (c) with an HS256 token and a rate limit; the floor is (c) without",
            job: bearer(http(&format!("/v1/{book}"), "GET", Vec::new(), b""), &hs256),
            floor: Some(http(&format!("/v1/{book}"), "GET", Vec::new(), b"")),
            kill_backend: false,
            secured: true,
            trickling: 0,
        },
        Scenario {
            name: "h_rest_get_es256",
            what: "(h) (c) with an ES256 token and a rate limit; the floor is (c) without",
            job: bearer(http(&format!("/v1/{book}"), "GET", Vec::new(), b""), &es256_token),
            floor: Some(http(&format!("/v1/{book}"), "GET", Vec::new(), b"")),
            kill_backend: false,
            secured: true,
            trickling: 0,
        },
        Scenario {
            name: "h_graphql_hs256",
            what: "(h) (e) with an HS256 token and a rate limit; the floor is (e) without",
            job: bearer(graphql(&one_field), &hs256),
            floor: Some(graphql(&one_field)),
            kill_backend: false,
            secured: true,
            trickling: 0,
        },
        Scenario {
            name: "h_graphql_es256",
            what: "(h) (e) with an ES256 token and a rate limit; the floor is (e) without",
            job: bearer(graphql(&one_field), &es256_token),
            floor: Some(graphql(&one_field)),
            kill_backend: false,
            secured: true,
            trickling: 0,
        },
        Scenario {
            name: "j_backend_killed",
            what: "(j) REST GET while one of the 3 backends is killed halfway (no GOAWAY, calls cut)",
            job: http(&format!("/v1/{book}"), "GET", Vec::new(), b""),
            floor: None,
            kill_backend: true,
            secured: false,
            trickling: 0,
        },
        Scenario {
            name: "k_rest_get_slowloris",
            what: "(k) (c) while 200 connections trickle request headers a byte a second; the floor is (c) without",
            // At least a second even in the brief check: it runs right after (j), whose killed
            // backend leaves a p99 near 50 ms for a while, and its 200 connections open at its
            // start; on a busy machine a 0.2 s window then saw no answer at all.
            job: Job { seconds: seconds.max(1.0), ..http(&format!("/v1/{book}"), "GET", Vec::new(), b"") },
            floor: Some(Job { seconds: seconds.max(1.0), ..http(&format!("/v1/{book}"), "GET", Vec::new(), b"") }),
            kill_backend: false,
            secured: false,
            trickling: 200,
        },
    ];
    let mut backends = backends;
    match callgrind::requests() {
        Some(requests) => {
            println!("\ninstructions of the gateway per request, {requests} requests per scenario (callgrind)")
        }
        None => print_header(),
    }
    for scenario in scenarios {
        if filter.as_deref().is_some_and(|f| !scenario.name.contains(f)) {
            continue;
        }
        let driver_core = pins.as_ref().map(|(_, driver)| driver.as_str());
        if let Some(requests) = callgrind::requests() {
            // Subscriptions, a killed backend and a slowloris are not per-request costs.
            if scenario.job.transport == "ws" || scenario.kill_backend || scenario.trickling > 0 {
                continue;
            }
            let count = |pid: u32, job: Job| instructions_per_request(driver_core, pid, job, requests, work.path());
            let pid = if scenario.secured { secured.child.id() } else { gateway.child.id() };
            let per_request = count(pid, scenario.job.clone()).await;
            // (h)'s floor is the same request to the gateway without auth, counted the same way.
            let floor = match (&scenario.floor, scenario.secured) {
                (Some(floor), true) => Some(count(gateway.child.id(), floor.clone()).await),
                _ => None,
            };
            match floor {
                Some(floor) => println!(
                    "{:<22} {per_request:>12.0} instructions per request; without auth {floor:.0} ({:.2}x)",
                    scenario.name,
                    floor / per_request
                ),
                None => println!("{:<22} {per_request:>12.0} instructions per request", scenario.name),
            }
            continue;
        }
        if scenario.job.transport == "ws" {
            let urls = backends.iter().map(Backend::url).collect();
            let report = run_subscriptions(&scenario, work.path(), pins.as_ref(), urls).await;
            if let Some(error) = &report.first_error {
                println!("  first error: {error}");
            }
            assert!(report.requests > 0, "{}: no event arrived ({:?})", scenario.name, report.first_error);
            assert_eq!((report.errors, report.silent), (0, 0), "{}: {:?}", scenario.name, report.first_error);
            continue;
        }
        let floor = match &scenario.floor {
            Some(job) => Some(run_driver(driver_core, job).await),
            None => None,
        };
        let pid = if scenario.secured { secured.child.id() } else { gateway.child.id() };
        let before = cpu_seconds(pid);
        let kill_at = scenario.job.seconds / 2.0;
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let limit = Duration::from_secs_f64(scenario.job.seconds + scenario.job.warmup + 30.0);
        let tricklers: Vec<_> = (0..scenario.trickling)
            .map(|_| tokio::spawn(trickle(gateway.http.clone(), stop.clone(), opened.clone(), limit)))
            .collect();
        let report = if scenario.kill_backend && backends.len() > 1 {
            let victim = backends.pop().expect("a backend");
            let driving = run_driver(driver_core, &scenario.job);
            let killing = async {
                tokio::time::sleep(Duration::from_secs_f64(scenario.job.warmup + kill_at)).await;
                victim.kill();
            };
            tokio::join!(driving, killing).0
        } else {
            run_driver(driver_core, &scenario.job).await
        };
        stop.store(true, Ordering::Relaxed);
        for trickler in tricklers {
            let _ = trickler.await;
        }
        // The driver's window includes its warm-up; CPU is charged for all the requests sent.
        let cpu = cpu_seconds(pid) - before;
        let total_seconds = report.seconds + scenario.job.warmup;
        let rps = report.requests as f64 / report.seconds.max(1e-9);
        let sent = rps * total_seconds;
        let cpu_per_1k = cpu * 1e6 / sent.max(1.0);
        let floor_rps = floor.as_ref().map(|f| f.requests as f64 / f.seconds.max(1e-9));
        print_row(scenario.name, rps, &report, cpu_per_1k, cpu / total_seconds, memory_mib(pid).1, floor_rps);
        println!("  {}", scenario.what);
        // At full load the gateway should be the bottleneck; below 90% of its core something
        // else (the driver, the backends, their shared core) limited the run.
        let busy = cpu / total_seconds;
        if scenario.job.concurrency > 1 && !scenario.kill_backend && busy < 0.9 {
            println!("  note: the gateway was {:.0}% busy, so something else limited this run", busy * 100.0);
        }
        if let Some(floor) = &floor {
            let against = if scenario.secured {
                "the same without auth"
            } else if scenario.trickling > 0 {
                "the same without the attack"
            } else {
                "straight to one backend"
            };
            println!("  floor p50 {:.0} µs, p99 {:.0} µs ({against})", floor.p50_us, floor.p99_us);
        }
        if scenario.trickling > 0 {
            let opened = opened.load(Ordering::Relaxed);
            println!(
                "  {} connections trickled; {opened} opened in all (reopened when the gateway closed them)",
                scenario.trickling
            );
        }
        if let Some(error) = &report.first_error {
            println!("  first error: {error}");
        }
        assert!(report.requests > 0, "{}: no request was answered ({:?})", scenario.name, report.first_error);
        if scenario.kill_backend {
            match report.last_error_at {
                Some(last) => println!(
                    "  {} client-visible errors; the last {:.0} ms after the kill",
                    report.errors,
                    (last - kill_at) * 1000.0
                ),
                None => println!("  no client-visible error across the kill"),
            }
        } else {
            assert_eq!(report.errors, 0, "{}: {:?}", scenario.name, report.first_error);
        }
        if let Some((_, job)) = baselines.iter().find(|(name, _)| *name == scenario.name) {
            let before = cpu_seconds(hand.child.id());
            let base = run_driver(driver_core, job).await;
            let cpu = cpu_seconds(hand.child.id()) - before;
            let base_rps = base.requests as f64 / base.seconds.max(1e-9);
            println!(
                "  hand-written baseline (benches/support/baseline.rs, same core): {base_rps:.0} req/s, p50 {:.0} µs, \
                 p99 {:.0} µs, {:.1} CPU ms per 1k, {:.0}% busy; gateway/baseline {:.2} by req/s, baseline/gateway {:.2} by CPU per request (≥ 1: the gateway is cheaper)",
                base.p50_us,
                base.p99_us,
                cpu * 1e6 / (base_rps * (base.seconds + job.warmup)).max(1.0),
                100.0 * cpu / (base.seconds + job.warmup),
                rps / base_rps.max(1e-9),
                (cpu * 1e6 / (base_rps * (base.seconds + job.warmup)).max(1.0)) / (cpu_per_1k.max(1e-9)),
            );
            assert_eq!(base.errors, 0, "the baseline: {:?}", base.first_error);
        }
    }
    drop(gateway);
    drop(secured);
    drop(backends);
    drop(authors);
}

/// One slowloris connection: a request head sent a byte a second and never finished, opened
/// again whenever the gateway closes it, until `stop` (or `limit`, a hang guard) comes.
async fn trickle(authority: String, stop: Arc<AtomicBool>, opened: Arc<AtomicUsize>, limit: Duration) {
    use tokio::io::AsyncWriteExt;
    let started = Instant::now();
    let head = format!("GET /v1/shelves/1/books/1 HTTP/1.1\r\nHost: {authority}\r\nX-Slow: ");
    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
        let Ok(mut stream) = tokio::net::TcpStream::connect(&authority).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let mut bytes = head.bytes();
        while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
            let byte = bytes.next().unwrap_or(b'a');
            if stream.write_all(&[byte]).await.is_err() {
                break;
            }
            // Woken early when the run ends: a byte a second, checked every 100 ms.
            for _ in 0..10 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The results table's header.
fn print_header() {
    println!(
        "\n{:<22} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10} {:>6} {:>8} {:>10} {:>6}",
        "scenario",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "errors",
        "CPU ms/1k",
        "busy",
        "RSS MiB",
        "floor/s",
        "ratio"
    );
}

/// One row of the results table: `busy` is a share of the gateway's core, `peak_mib` its VmHWM.
fn print_row(name: &str, rate: f64, report: &Report, cpu_per_1k: f64, busy: f64, peak_mib: f64, floor: Option<f64>) {
    let dash = || "—".to_owned();
    println!(
        "{:<22} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>10.1} {:>5.0}% {:>8.1} {:>10} {:>6}",
        name,
        rate,
        report.p50_us,
        report.p99_us,
        report.p999_us,
        report.errors,
        cpu_per_1k,
        100.0 * busy,
        peak_mib,
        floor.map_or_else(dash, |f| format!("{f:.0}")),
        floor.map_or_else(dash, |f| format!("{:.2}", rate / f.max(1e-9))),
    );
}

/// The gateway's (process `pid`, under callgrind) instructions per request of `job`: a warm-up
/// of a tenth of `requests`, then exactly `requests` between zeroing and dumping its counters.
async fn instructions_per_request(
    core: Option<&str>,
    pid: u32,
    job: Job,
    requests: usize,
    dir: &std::path::Path,
) -> f64 {
    let counted = |cap: usize| Job { cap, warmup: 0.0, seconds: 3600.0, ..job.clone() };
    let warm = run_driver(core, &counted(requests.div_ceil(10))).await;
    assert_eq!(warm.errors, 0, "the warm-up: {:?}", warm.first_error);
    callgrind::zero(pid);
    let report = run_driver(core, &counted(requests)).await;
    let instructions = callgrind::dump_instructions(pid, dir);
    assert_eq!((report.requests, report.errors), (requests, 0), "{:?}", report.first_error);
    instructions as f64 / requests as f64
}

/// Runs the driver process for `job` and reads its report.
async fn run_driver(core: Option<&str>, job: &Job) -> Report {
    let exe = std::env::current_exe().expect("this binary");
    let mut command = pinned(core, &exe);
    command.env("E2E_ROLE", "driver").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let job = serde_json::to_vec(job).expect("json");
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = command.spawn().expect("the driver runs");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&job).expect("the job");
        drop(stdin);
        child.wait_with_output().expect("the driver's report")
    })
    .await
    .expect("join");
    assert!(out.status.success(), "the driver failed");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).expect("a report")
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A sender of requests on one connection.
enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(job: &Job) -> Sender {
    let stream = tokio::net::TcpStream::connect(&job.authority).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let io = hyper_util::rt::TokioIo::new(stream);
    if job.transport == "h2" {
        let (sender, connection) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(io)
            .await
            .expect("h2 handshake");
        tokio::spawn(connection);
        Sender::Http2(sender)
    } else {
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await.expect("handshake");
        tokio::spawn(connection);
        Sender::Http1(sender)
    }
}

/// The closed loop: `concurrency` clients, each sending its next request when the last is
/// answered; HTTP/1.1 clients on a connection each, HTTP/2 ones up to 8 to a connection.
async fn drive(job: Job) -> Report {
    use base64::Engine;
    let body = Bytes::from(base64::engine::general_purpose::STANDARD.decode(&job.body).expect("base64"));
    // HTTP/2 clients share connections as gRPC channels do: up to 8 streams on each.
    let mut shared = Vec::new();
    if job.transport == "h2" {
        for _ in 0..job.concurrency.div_ceil(8) {
            shared.push(connect(&job).await);
        }
    }
    let sent = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(job.warmup);
    let end = measure_from + Duration::from_secs_f64(job.seconds);
    let mut tasks = Vec::new();
    for client in 0..job.concurrency {
        let mut sender = match shared.get(client % shared.len().max(1)) {
            Some(Sender::Http2(sender)) => Sender::Http2(sender.clone()),
            _ => connect(&job).await,
        };
        let (job, body, sent) = (job.clone(), body.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut first_error) = (0, None);
            let (mut first_at, mut last_at): (Option<f64>, Option<f64>) = (None, None);
            while Instant::now() < end && sent.fetch_add(1, Ordering::Relaxed) < job.cap {
                let mut request = http::Request::builder()
                    .method(job.method.as_str())
                    .uri(format!("http://{}{}", job.authority, job.path))
                    .body(Full::new(body.clone()))
                    .expect("request");
                for (name, value) in &job.headers {
                    request.headers_mut().insert(
                        http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                        http::HeaderValue::from_str(value).expect("value"),
                    );
                }
                if job.transport != "h2" {
                    request
                        .headers_mut()
                        .insert(http::header::HOST, http::HeaderValue::from_str(&job.authority).expect("host"));
                }
                let began = Instant::now();
                let answer = match &mut sender {
                    Sender::Http1(sender) => sender.send_request(request).await,
                    Sender::Http2(sender) => sender.send_request(request).await,
                };
                let outcome = match answer {
                    Ok(response) => {
                        let status = response.status();
                        match response.into_body().collect().await {
                            Ok(collected) => {
                                let grpc_status = collected
                                    .trailers()
                                    .and_then(|t| t.get("grpc-status"))
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned);
                                let messages =
                                    if job.stream_messages > 0 { grpc_messages(&collected.to_bytes()) } else { 0 };
                                if !status.is_success() {
                                    Err(format!("status {status}"))
                                } else if job.grpc && grpc_status.as_deref() != Some("0") {
                                    Err(format!("grpc-status {grpc_status:?}"))
                                } else if messages != job.stream_messages {
                                    Err(format!("{messages} messages in the stream, not {}", job.stream_messages))
                                } else {
                                    Ok(())
                                }
                            }
                            Err(error) => Err(error.to_string()),
                        }
                    }
                    Err(error) => Err(error.to_string()),
                };
                let took = began.elapsed();
                match outcome {
                    Ok(()) if began >= measure_from => latencies.push(took),
                    Ok(()) => {}
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert(error);
                        let at = began
                            .checked_duration_since(measure_from)
                            .map_or_else(|| -(measure_from - began).as_secs_f64(), |after| after.as_secs_f64());
                        first_at.get_or_insert(at);
                        last_at = Some(at);
                        // A broken HTTP/1.1 connection is replaced.
                        if let Sender::Http1(s) = &sender
                            && s.is_closed()
                        {
                            sender = connect(&job).await;
                        }
                    }
                }
            }
            (latencies, errors, first_error, first_at, last_at)
        }));
    }
    let mut latencies = Vec::new();
    let mut report = Report::default();
    for task in tasks {
        let (mine, errors, first_error, first_at, last_at) = task.await.expect("client task");
        latencies.extend(mine);
        report.errors += errors;
        if report.first_error.is_none() {
            report.first_error = first_error;
        }
        report.first_error_at = match (report.first_error_at, first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        report.last_error_at = match (report.last_error_at, last_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    report.seconds = (Instant::now().min(end) - measure_from).as_secs_f64().max(1e-9);
    report.set_latencies(latencies);
    report
}

impl Report {
    /// The count and percentiles of what was measured.
    fn set_latencies(&mut self, mut latencies: Vec<Duration>) {
        latencies.sort();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        self.requests = latencies.len();
        self.p50_us = at(0.50);
        self.p99_us = at(0.99);
        self.p999_us = at(0.999);
    }
}

/// How many length-prefixed gRPC messages `body` holds (a frame cut short counts as none).
fn grpc_messages(body: &[u8]) -> usize {
    let (mut count, mut at) = (0, 0);
    while let Some(prefix) = body.get(at..at + 5) {
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        at += 5 + length;
        if at > body.len() {
            break;
        }
        count += 1;
    }
    count
}

/// Nanoseconds since the Unix epoch: events carry the time they were made in their book's
/// title, and the driver (on the same machine) subtracts it from their arrival.
fn unix_nanos() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    u64::try_from(since.as_nanos()).expect("before 2554")
}

/// The stamp in an event frame: `"title":"NANOS"`.
fn event_stamp(frame: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"title\":\"";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = frame[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&frame[at..at + digits]).ok()?.parse().ok()
}

/// Opens a graphql-transport-ws socket and subscribes with `query` (acknowledged, not yet live:
/// the gateway opens the backend stream after answering).
async fn subscribe(authority: &str, query: &str) -> Result<Frames, String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{authority}/graphql").into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert("sec-websocket-protocol", http::HeaderValue::from_static("graphql-transport-ws"));
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream).await.map_err(|e| e.to_string())?;
    socket
        .send(Message::Text(json!({"type": "connection_init"}).to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => break,
            Some(Ok(Message::Text(text))) => return Err(format!("before the ack: {text}")),
            Some(Ok(_)) => continue,
            other => return Err(format!("the socket ended before the ack: {other:?}")),
        }
    }
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query}});
    socket.send(Message::Text(subscribe.to_string().into())).await.map_err(|e| e.to_string())?;
    // From here on the driver reads frames itself (`Frames`): nothing arrives before the feed
    // starts, so tungstenite holds no unread bytes.
    Ok(Frames { stream: socket.into_inner(), buffer: bytes::BytesMut::with_capacity(4096) })
}

/// A subscriber's side of a socket after the handshake: server frames read straight off the
/// TCP stream. tokio-tungstenite cost the driver ~9 µs a frame, so at 100,000 frames a second
/// it was the bottleneck of the latencies it measured; this reads a frame in a few.
struct Frames {
    stream: tokio::net::TcpStream,
    buffer: bytes::BytesMut,
}

impl Frames {
    /// The next text frame's payload (control frames skipped); Err at a close or the end.
    /// Cancel-safe: bytes read stay in the buffer.
    async fn next_text(&mut self) -> Result<bytes::Bytes, String> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some((opcode, header, length)) = frame_header(&self.buffer)?
                && self.buffer.len() >= header + length
            {
                let mut frame = self.buffer.split_to(header + length);
                match opcode {
                    0x1 => return Ok(frame.split_off(header).freeze()),
                    0x8 => return Err("the gateway closed the socket".into()),
                    _ => continue,
                }
            }
            self.buffer.reserve(4096);
            if self.stream.read_buf(&mut self.buffer).await.map_err(|e| e.to_string())? == 0 {
                return Err("the socket ended".into());
            }
        }
    }
}

/// A server frame's (opcode, header length, payload length) once its header is in `bytes`.
fn frame_header(bytes: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    let [first, second, rest @ ..] = bytes else { return Ok(None) };
    if second & 0x80 != 0 {
        return Err("a server frame is masked".into());
    }
    let (header, length) = match second & 0x7f {
        126 if rest.len() >= 2 => (4, usize::from(u16::from_be_bytes([rest[0], rest[1]]))),
        127 if rest.len() >= 8 => {
            let length = u64::from_be_bytes(rest[..8].try_into().expect("eight bytes"));
            (10, usize::try_from(length).map_err(|_| "a frame too large")?)
        }
        126 | 127 => return Ok(None),
        short => (2, usize::from(short)),
    };
    Ok(Some((first & 0x0f, header, length)))
}

/// The subscription driver: opens `job.subscriptions` sockets (100 at a time), says
/// `subscribed` on stdout (the harness then reads the gateway's memory and starts the events),
/// waits until every socket has had an event (the warm-up: at most 60 s), then records each
/// event's age on arrival for `job.seconds`.
async fn drive_subscriptions(job: Job) -> Report {
    use std::io::Write;
    rlimit::increase_nofile_limit(job.subscriptions as u64 + 256).expect("raise the open-file limit");
    let query = {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(&job.body).expect("base64");
        String::from_utf8(bytes).expect("a query")
    };
    let mut sockets = Vec::with_capacity(job.subscriptions);
    let mut report = Report::default();
    for start in (0..job.subscriptions).step_by(100) {
        let batch = (start..job.subscriptions.min(start + 100)).map(|_| subscribe(&job.authority, &query));
        for opened in futures_util::future::join_all(batch).await {
            match opened {
                Ok(socket) => sockets.push(socket),
                Err(error) => {
                    report.errors += 1;
                    report.first_error.get_or_insert(error);
                }
            }
        }
    }
    println!("subscribed");
    std::io::stdout().flush().expect("stdout");
    let live = Arc::new(AtomicUsize::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let warmed = Instant::now() + Duration::from_secs(60);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let (live, measuring, mut stop) = (live.clone(), measuring.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ages, mut heard, mut failure) = (Vec::new(), false, None);
                loop {
                    let frame = tokio::select! {
                        _ = stop.changed() => break,
                        frame = socket.next_text() => frame,
                    };
                    let frame = match frame {
                        Ok(text) => text,
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    };
                    let Some(stamp) = event_stamp(&frame) else {
                        failure = Some(format!("not an event: {}", String::from_utf8_lossy(&frame)));
                        break;
                    };
                    if !heard {
                        heard = true;
                        live.fetch_add(1, Ordering::Relaxed);
                    }
                    if measuring.load(Ordering::Relaxed) {
                        ages.push(Duration::from_nanos(unix_nanos().saturating_sub(stamp)));
                    }
                }
                (ages, heard, failure)
            })
        })
        .collect();
    let opened = tasks.len();
    while live.load(Ordering::Relaxed) < opened && Instant::now() < warmed {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(job.warmup)).await;
    println!("measuring");
    std::io::stdout().flush().expect("stdout");
    measuring.store(true, Ordering::Relaxed);
    let began = Instant::now();
    let cpu = cpu_seconds(std::process::id());
    tokio::time::sleep(Duration::from_secs_f64(job.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    report.seconds = began.elapsed().as_secs_f64();
    report.driver_busy = (cpu_seconds(std::process::id()) - cpu) / report.seconds;
    stopping.send_replace(true);
    let mut ages = Vec::new();
    for task in tasks {
        let (mine, heard, failure) = task.await.expect("socket task");
        ages.extend(mine);
        report.silent += usize::from(!heard);
        if let Some(failure) = failure {
            report.errors += 1;
            report.first_error.get_or_insert(failure);
        }
    }
    report.set_latencies(ages);
    report
}

/// `catalog.v1.CreateBookRequest { parent, book_id, book { title } }`.
fn create_book_request(parent: &str, id: &str, title: &str) -> Vec<u8> {
    [field(1, parent.as_bytes()), field(2, id.as_bytes()), field(3, &field(2, title.as_bytes()))].concat()
}

/// The harness's own HTTP/2 connection to a backend (for seeding it and feeding it events).
async fn backend_connection(url: &str) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let authority = url.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(authority).await.expect("connect to a backend");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(connection);
    sender
}

/// One unary gRPC call; Err names the status it ended with.
async fn grpc_call(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    path: &str,
    message: &[u8],
) -> Result<(), String> {
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://backend{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(grpc_frame(message))))
        .expect("request");
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let collected = response.into_body().collect().await.map_err(|e| e.to_string())?;
    match collected.trailers().and_then(|t| t.get("grpc-status")).and_then(|v| v.to_str().ok()) {
        Some("0") => Ok(()),
        other => Err(format!("{path}: grpc-status {other:?}")),
    }
}

/// The shelf (b) exports: 999 books, so ExportBooks streams 1,000 messages (a header line and
/// one per book).
const EXPORT_SHELF: &str = "shelves/7";
/// The book whose updates feed (g)'s subscriptions.
const FEED_BOOK: &str = "shelves/9/books/feed";

/// Seeds every backend with the shelf (b) exports and the book (g) watches.
async fn seed(backends: &[String]) {
    for url in backends {
        let mut sender = backend_connection(url).await;
        for i in 0..999 {
            let message = create_book_request(EXPORT_SHELF, &format!("b{i}"), &format!("Exported book {i}"));
            grpc_call(&mut sender, "/catalog.v1.Catalog/CreateBook", &message).await.expect("seed a book");
        }
        let message = create_book_request("shelves/9", "feed", "0");
        grpc_call(&mut sender, "/catalog.v1.Catalog/CreateBook", &message).await.expect("seed the fed book");
    }
}

/// Updates the fed book on every backend `per_second` times a second, its title the time of
/// the update (so every subscription, whichever backend its stream is on, gets the events),
/// until `stop`. Returns how many rounds it sent.
async fn feed(backends: Vec<String>, per_second: u32, mut stop: tokio::sync::watch::Receiver<bool>) -> usize {
    let mut senders = Vec::new();
    for url in &backends {
        senders.push(backend_connection(url).await);
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / per_second);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rounds = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => return rounds,
            _ = ticks.tick() => {}
        }
        let message = update_book_request(FEED_BOOK, &unix_nanos().to_string());
        let calls = senders.iter_mut().map(|sender| grpc_call(sender, "/catalog.v1.Catalog/UpdateBook", &message));
        for result in futures_util::future::join_all(calls).await {
            result.expect("an event fed");
        }
        rounds += 1;
    }
}

/// (g): a fresh gateway, `job.subscriptions` sockets opened by the driver, the gateway's
/// memory read once they are all open and idle, then events fed at `EVENTS_PER_SECOND`
/// while the driver measures their age on arrival.
async fn run_subscriptions(
    scenario: &Scenario,
    work: &std::path::Path,
    pins: Option<&(String, String)>,
    backends: Vec<String>,
) -> Report {
    const EVENTS_PER_SECOND: u32 = 100;
    let gateway = start_gateway(work, "subscriptions.toml", pins);
    let pid = gateway.child.id();
    // Let the fresh process settle before its baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = memory_mib(pid).0;
    let job = Job { authority: gateway.http.clone(), ..scenario.job.clone() };
    let exe = std::env::current_exe().expect("this binary");
    let mut command = pinned(pins.map(|(_, driver)| driver.as_str()), &exe);
    command.env("E2E_ROLE", "driver").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let (lines_out, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let job_text = serde_json::to_vec(&job).expect("json");
    let driver = std::thread::spawn(move || {
        use std::io::Write;
        let mut child = command.spawn().expect("the driver runs");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&job_text).expect("the job");
        drop(stdin);
        for line in BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok) {
            let _ = lines_out.send(line);
        }
        assert!(child.wait().expect("the driver ends").success(), "the driver failed");
    });
    let subscribed = lines.recv().await.expect("the driver says when its sockets are open");
    assert_eq!(subscribed, "subscribed");
    // The sessions are open; give the gateway a moment to open their shared backend stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = memory_mib(pid).0;
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let feeding = tokio::spawn(feed(backends, EVENTS_PER_SECOND, stop));
    let measuring = lines.recv().await.expect("the driver says when it measures");
    assert_eq!(measuring, "measuring");
    let before = cpu_seconds(pid);
    let report_line = lines.recv().await.expect("the driver's report");
    let cpu = cpu_seconds(pid) - before;
    stopping.send_replace(true);
    let rounds = feeding.await.expect("the feed");
    tokio::task::spawn_blocking(move || driver.join()).await.expect("join").expect("the driver thread");
    let report: Report = serde_json::from_str(&report_line).expect("a report");
    let rate = report.requests as f64 / report.seconds.max(1e-9);
    let expected = job.subscriptions as f64 * f64::from(EVENTS_PER_SECOND);
    let cpu_per_1k = cpu * 1e6 / (rate * report.seconds).max(1.0);
    print_row(scenario.name, rate, &report, cpu_per_1k, cpu / report.seconds.max(1e-9), memory_mib(pid).1, None);
    println!("  {}", scenario.what);
    println!(
        "  idle gateway VmRSS {idle:.1} MiB, {open:.1} MiB with {} subscriptions open: {:.1} KiB per idle subscription",
        job.subscriptions,
        (open - idle) * 1024.0 / job.subscriptions.max(1) as f64
    );
    println!(
        "  events delivered {rate:.0}/s of {expected:.0}/s due ({} fed rounds in all); latency is each event's age on arrival",
        rounds
    );
    println!("  the driver (its clients, on the backends' core) was {:.0}% busy", report.driver_busy * 100.0);
    if report.silent > 0 {
        println!("  {} sockets never received an event", report.silent);
    }
    report
}
