//! The demo's GraphQL subgraph: critics, an Apollo Federation v2 subgraph (async-graphql's
//! federation support: `_service`, `_entities`) on a loopback port. It reviews the gRPC
//! catalog's books, which it knows only by name (`Book @key(fields: "name")`), and adds their
//! reviews to them; the gateway serves it through the demo supergraph, where the catalog's
//! `Book` message and the subgraph's `Book` are one entity. It counts the requests it serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::{ComplexObject, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backend::DemoError;
use crate::server::serve_listener;

/// The critiques: id, book, text, stars out of 5.
const CRITIQUES: &[(&str, &str, &str, i32)] = &[
    ("c1", "shelves/1/books/1", "A landmark of the genre.", 5),
    ("c2", "shelves/1/books/2", "Quietly wise.", 4),
    ("c3", "shelves/1/books/1", "Slow going, then unforgettable.", 4),
    ("c4", "shelves/2/books/1", "Changed how I see evolution.", 5),
];

/// A critique of a book.
#[derive(SimpleObject, Clone)]
struct Review {
    id: ID,
    body: String,
    stars: i32,
    book: Book,
}

/// A book of the catalog, known here by its resource name.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
struct Book {
    name: ID,
}

#[ComplexObject]
impl Book {
    /// Its critiques.
    async fn reviews(&self) -> Vec<Review> {
        critiques().filter(|r| r.book.name == self.name).collect()
    }

    /// Its average rating, when it has critiques.
    async fn average_stars(&self) -> Option<f64> {
        let stars: Vec<i32> = critiques().filter(|r| r.book.name == self.name).map(|r| r.stars).collect();
        (!stars.is_empty()).then(|| f64::from(stars.iter().sum::<i32>()) / stars.len() as f64)
    }
}

fn critiques() -> impl Iterator<Item = Review> {
    CRITIQUES.iter().map(|(id, book, body, stars)| Review {
        id: ID::from(*id),
        body: (*body).to_owned(),
        stars: *stars,
        book: Book { name: ID::from(*book) },
    })
}

struct Query;

#[Object]
impl Query {
    /// The latest critiques.
    async fn latest_reviews(&self) -> Vec<Review> {
        critiques().collect()
    }

    #[graphql(entity)]
    async fn find_book_by_name(&self, name: ID) -> Book {
        Book { name }
    }

    #[graphql(entity)]
    async fn find_review_by_id(&self, id: ID) -> Option<Review> {
        critiques().find(|r| r.id == id)
    }
}

type CriticsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

fn schema() -> CriticsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription).enable_federation().finish()
}

/// The subgraph's schema as its federation SDL (what a composition tool composes).
pub fn critics_sdl() -> String {
    schema().sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

/// A running critics subgraph.
pub struct DemoCritics {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DemoCritics {
    /// Its GraphQL endpoint, for `--backend critics=URL`.
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the critics subgraph on `addr` (port 0 for any free port).
pub async fn start_demo_critics(addr: SocketAddr) -> Result<DemoCritics, DemoError> {
    let listener = TcpListener::bind(addr).await.map_err(|e| DemoError::Bind(addr, e))?;
    let addr = listener.local_addr().map_err(|e| DemoError::Bind(addr, e))?;
    let requests = Arc::new(AtomicUsize::new(0));
    let router =
        axum::Router::new().route("/graphql", post(execute)).with_state((Arc::new(schema()), requests.clone()));
    let settings = super::backend::demo_listener_settings();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve_listener(listener, router, settings, stopped).await;
    });
    Ok(DemoCritics { addr, requests, stop, task })
}

async fn execute(
    State((schema, requests)): State<(Arc<CriticsSchema>, Arc<AtomicUsize>)>,
    Json(request): Json<async_graphql::Request>,
) -> Json<async_graphql::Response> {
    requests.fetch_add(1, Ordering::Relaxed);
    Json(schema.execute(request).await)
}
