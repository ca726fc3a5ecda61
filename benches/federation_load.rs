//! The Federation load harness: the public gateways benchmark's heavy nested query at 50
//! concurrent clients, against Switchyard (`switchyard serve --supergraph`) and against the
//! reference router Apollo Gateway (node, tests/npm/reference-router.mjs) on the same machine,
//! both in front of the same four subgraphs (tests/npm/subgraphs.mjs). For each router:
//! requests/s, p50 and p95 latency, the router process's CPU seconds per 1,000 requests (from
//! /proc/PID/stat) and its resident memory (VmRSS, and VmHWM, the peak). Every answer is checked
//! against the first one. Bounded: a warm-up and a measured window per router (`LOAD_SECONDS`,
//! default 10), never more than `LOAD_MAX_REQUESTS` (default 200,000) requests.
//!
//! With `HIVE_ROUTER=/path/to/hive_router` (Hive Router's binary, e.g. from `cargo install
//! hive-router`), Hive Router is measured the same way as a third router.
//!
//! Run: `cargo bench --bench federation_load` (needs `(cd tests/npm && npm ci)`). Under `cargo
//! test --all-targets` (no `--bench` argument) it runs once briefly, as a check that it works.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

#[path = "support/proc_stats.rs"]
mod proc_stats;
use proc_stats::{cpu_seconds, memory_mib};

const CLIENTS: usize = 50;

/// The benchmark's heavy nested query (graphql-gateways-benchmark, federation scenario).
const HEAVY_QUERY: &str = include_str!("../tests/fixtures/federation/heavy-query.graphql");

/// A child process, killed when dropped; its first stdout line is kept.
struct Process {
    child: Child,
    first_line: String,
}

impl Process {
    fn start(mut command: Command, what: &str) -> Process {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let first_line =
            receive.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{what} did not start"));
        // Later lines are read and dropped in the background thread.
        Process { child, first_line }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts a server that prints nothing useful, and waits until `url`'s port accepts.
    fn start_listening(mut command: Command, what: &str, url: &str) -> Process {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
        let process = Process { child, first_line: url.to_owned() };
        let started = Instant::now();
        loop {
            let answered =
                std::net::TcpStream::connect(url.trim_start_matches("http://").split('/').next().unwrap_or("")).is_ok();
            if answered {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{what} did not listen at {url}");
            std::thread::sleep(Duration::from_millis(50));
        }
        process
    }
}

/// A free loopback port (bound and released; the router binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Measured {
    router: &'static str,
    requests: usize,
    seconds: f64,
    p50: Duration,
    p95: Duration,
    cpu: f64,
    rss: (f64, f64),
}

/// Sends the heavy query from `CLIENTS` clients for `seconds` (after a warm-up), checking every
/// answer against `expected`.
async fn load(router: &'static str, url: &str, pid: u32, expected: &Json, seconds: f64, cap: usize) -> Measured {
    // Uncompressed answers: Hive Router does not compress, so asking every router for gzip
    // would charge the others for work it skips.
    let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).no_gzip().build().expect("client");
    let body = serde_json::to_vec(&json!({ "query": HEAVY_QUERY })).expect("json");
    let run = |duration: Duration, record: bool| {
        let sent = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (client, body, url, sent, expected) =
                    (client.clone(), body.clone(), url.to_owned(), sent.clone(), expected.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let end = Instant::now() + duration;
                    while Instant::now() < end && sent.fetch_add(1, Ordering::Relaxed) < cap {
                        let started = Instant::now();
                        let answer = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .expect("the router answers");
                        let answer: Json = answer.json().await.expect("json");
                        assert_eq!(answer, expected, "{url} answered differently");
                        if record {
                            latencies.push(started.elapsed());
                        }
                    }
                    latencies
                })
            })
            .collect();
        async move {
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.expect("client task"));
            }
            all
        }
    };
    run(Duration::from_secs_f64((seconds / 5.0).min(2.0)), false).await;
    let (cpu_before, started) = (cpu_seconds(pid), Instant::now());
    let mut latencies = run(Duration::from_secs_f64(seconds), true).await;
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds(pid) - cpu_before);
    latencies.sort();
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    Measured {
        router,
        requests: latencies.len(),
        seconds: elapsed,
        p50: at(0.50).copied().unwrap_or_default(),
        p95: at(0.95).copied().unwrap_or_default(),
        cpu,
        rss: memory_mib(pid),
    }
}

fn npm() -> PathBuf {
    let npm = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    assert!(npm.join("node_modules/@apollo/gateway").exists(), "run `(cd tests/npm && npm ci)` first");
    npm
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names another bench skips this one.
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"federation_load".contains(a.as_str())) {
        return;
    }
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let seconds: f64 = match std::env::var("LOAD_SECONDS").ok().and_then(|s| s.parse().ok()) {
        Some(seconds) => seconds,
        None if benchmarking => 10.0,
        None => 1.0,
    };
    let cap: usize = std::env::var("LOAD_MAX_REQUESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("tests/fixtures/federation");
    let mut subgraphs_command = Command::new("node");
    subgraphs_command.arg(npm().join("subgraphs.mjs")).arg(&fixtures);
    let subgraphs = Process::start(subgraphs_command, "the subgraphs");
    let ports: Json = serde_json::from_str(&subgraphs.first_line).expect("the subgraphs' ports");
    let args: Vec<String> = ["accounts", "inventory", "products", "reviews"]
        .iter()
        .map(|name| {
            format!(
                "{name}=http://127.0.0.1:{}/graphql={}",
                ports[name],
                fixtures.join(format!("{name}.graphql")).display()
            )
        })
        .collect();
    let composed = Command::new("node").arg(npm().join("compose.mjs")).args(&args).output().expect("node runs");
    assert!(composed.status.success(), "composition failed: {}", String::from_utf8_lossy(&composed.stderr));
    let dir = tempfile::tempdir().expect("tempdir");
    let supergraph = dir.path().join("supergraph.graphql");
    std::fs::write(&supergraph, &composed.stdout).expect("write the supergraph");

    let mut ours = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    ours.current_dir(dir.path())
        .args(["serve", "--supergraph", "supergraph.graphql", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    let switchyard = Process::start(ours, "switchyard serve");
    let line = &switchyard.first_line;
    let address = line.split_whitespace().find(|w| w.starts_with("http://")).expect("the gateway's URL").to_owned();
    let mut theirs = Command::new("node");
    theirs.arg(npm().join("reference-router.mjs")).arg(&supergraph).env("NODE_ENV", "production");
    let reference = Process::start(theirs, "Apollo Gateway");
    let hive = std::env::var("HIVE_ROUTER").ok().map(|binary| {
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .env("SUPERGRAPH_FILE_PATH", &supergraph)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("LOG_LEVEL", "error")
            .env("HIVE_USAGE_REPORTING_ENABLED", "false");
        Process::start_listening(command, "Hive Router", &format!("http://127.0.0.1:{port}/graphql"))
    });

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let results = runtime.block_on(async {
        let client = reqwest::Client::new();
        let expected: Json = client
            .post(&reference.first_line)
            .json(&json!({ "query": HEAVY_QUERY }))
            .send()
            .await
            .expect("the reference answers")
            .json()
            .await
            .expect("json");
        assert!(expected.get("errors").is_none(), "{expected}");
        let ours = format!("{address}/graphql");
        let mut results = vec![
            load("switchyard", &ours, switchyard.pid(), &expected, seconds, cap).await,
            load("apollo-gateway", &reference.first_line, reference.pid(), &expected, seconds, cap).await,
        ];
        if let Some(hive) = &hive {
            results.push(load("hive-router", &hive.first_line, hive.pid(), &expected, seconds, cap).await);
        }
        results
    });
    println!("federation heavy query, {CLIENTS} clients, {seconds} s measured per router");
    println!("| router | requests/s | p50 | p95 | CPU ms per request | requests per CPU-second | RSS MiB (peak) |");
    println!("|---|---|---|---|---|---|---|");
    for m in &results {
        let per_cpu = if m.cpu > 0.0 { m.requests as f64 / m.cpu } else { f64::NAN };
        println!(
            "| {} | {:.0} | {:.1} ms | {:.1} ms | {:.2} | {:.0} | {:.0} ({:.0}) |",
            m.router,
            m.requests as f64 / m.seconds,
            m.p50.as_secs_f64() * 1000.0,
            m.p95.as_secs_f64() * 1000.0,
            m.cpu * 1000.0 / m.requests.max(1) as f64,
            per_cpu,
            m.rss.0,
            m.rss.1
        );
    }
}
