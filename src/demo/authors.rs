//! The demo's JSON REST backend: an axum authors service on a loopback port, whose authors
//! join the gRPC catalog's books by name (`Book.author`). `schemas/demo/authors.graphql`
//! stitches the two. `GET /authors` (filters `name`, repeatable, and `country`) answers
//! `{"authors": [...]}` (`Cache-Control: public, max-age=300`); `GET /authors/{id}` one author
//! (`private, max-age=300`) or 404. It counts the requests it serves, so tests can see batching.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backend::DemoError;
use crate::server::serve_listener;
use crate::transcode::percent::{Keep, percent_decode};

/// The demo's authors: id, name, year of birth, country.
const AUTHORS: &[(&str, &str, i64, &str)] = &[
    ("1", "Ursula K. Le Guin", 1929, "US"),
    ("2", "Richard Dawkins", 1941, "GB"),
    ("3", "Frank Herbert", 1920, "US"),
    ("4", "Octavia E. Butler", 1947, "US"),
];

/// A running authors service.
pub struct DemoAuthors {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Served>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DemoAuthors {
    /// The base URL for `--backend authors=URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// The headers of the latest request, if there was one.
    pub fn last_headers(&self) -> Option<http::HeaderMap> {
        self.state.latest.lock().ok()?.clone()
    }

    /// Makes every request wait `latency` before it is answered (zero: answer at once).
    pub fn set_latency(&self, latency: Duration) {
        self.state.latency_micros.store(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What the handlers share: the request count, the latest request's headers and the added
/// latency.
#[derive(Default)]
struct Served {
    requests: AtomicUsize,
    latest: std::sync::Mutex<Option<http::HeaderMap>>,
    latency_micros: AtomicU64,
}

impl Served {
    /// Counts a request (keeping its headers) and waits the configured latency.
    async fn serve(&self, headers: &http::HeaderMap) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(headers.clone());
        }
        let latency = Duration::from_micros(self.latency_micros.load(Ordering::Relaxed));
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

/// Starts the authors service on `addr` (port 0 for any free port).
pub async fn start_demo_authors(addr: SocketAddr) -> Result<DemoAuthors, DemoError> {
    let listener = TcpListener::bind(addr).await.map_err(|e| DemoError::Bind(addr, e))?;
    let addr = listener.local_addr().map_err(|e| DemoError::Bind(addr, e))?;
    let state = Arc::new(Served::default());
    let router = axum::Router::new()
        .route("/authors", get(list_authors))
        .route("/authors/{id}", get(get_author))
        .with_state(state.clone());
    let settings = super::backend::demo_listener_settings();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve_listener(listener, router, settings, stopped).await;
    });
    Ok(DemoAuthors { addr, state, stop, task })
}

fn author_json(&(id, name, born, country): &(&str, &str, i64, &str)) -> Value {
    json!({"id": id, "name": name, "born": born, "country": country})
}

async fn list_authors(
    State(state): State<Arc<Served>>,
    headers: http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    state.serve(&headers).await;
    let mut names = Vec::new();
    let mut country = None;
    for pair in query.as_deref().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(value) = percent_decode(value, Keep::Nothing, true) else {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": format!("query parameter `{key}` is not valid")})),
            )
                .into_response();
        };
        match key {
            "name" => names.push(value.into_owned()),
            "country" => country = Some(value.into_owned()),
            _ => {}
        }
    }
    let authors: Vec<Value> = AUTHORS
        .iter()
        .filter(|a| names.is_empty() || names.iter().any(|n| n == a.1))
        .filter(|a| country.as_deref().is_none_or(|c| c == a.3))
        .map(author_json)
        .collect();
    // A list anyone may cache for five minutes; one author's record is per-user (private).
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(json!({ "authors": authors }))).into_response()
}

async fn get_author(State(state): State<Arc<Served>>, headers: http::HeaderMap, Path(id): Path<String>) -> Response {
    state.serve(&headers).await;
    match AUTHORS.iter().find(|a| a.0 == id) {
        Some(author) => ([(header::CACHE_CONTROL, "private, max-age=300")], Json(author_json(author))).into_response(),
        None => {
            (StatusCode::NOT_FOUND, Json(json!({"message": format!("author `{id}` does not exist")}))).into_response()
        }
    }
}
