//! `switchyard demo`: the demo backend in-process on loopback, the gateway wired to it, the
//! URLs and copy-paste commands printed; runs until Ctrl-C and shuts everything down cleanly.

use std::io::Write;
use std::net::SocketAddr;

use clap::Args;

use super::{CommandResult, Failure};
use crate::demo::{
    DEMO_AUTHORS_SOURCE, DEMO_CRITICS_SUBGRAPH, DEMO_SERVICE, DEMO_SUPERGRAPH, DEMO_V2_SERVICE, DemoSecurity,
    demo_registration, demo_schemas, demo_security, demo_v2_registration, start_demo_authors,
    start_demo_backend_replicas, start_demo_critics,
};
use crate::server::start_server;
use crate::snapshot::{BackendFlag, SnapshotSources};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Gateway listener address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Admin listener address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin: SocketAddr,
}

pub(crate) async fn run(args: DemoArgs) -> CommandResult {
    // Three replicas of the catalog behind one pool (they share one catalog, as replicas share
    // a database); GET /admin/clusters shows how the calls spread.
    let replicas = start_demo_backend_replicas(3).await.map_err(Failure::runtime)?;
    let authors = start_demo_authors(SocketAddr::from(([127, 0, 0, 1], 0))).await.map_err(Failure::runtime)?;
    let critics = start_demo_critics(SocketAddr::from(([127, 0, 0, 1], 0))).await.map_err(Failure::runtime)?;
    let security = demo_security().map_err(|why| Failure::runtime(anyhow::anyhow!(why)))?;
    let sources = SnapshotSources {
        embedded_config: Some(security.config.clone()),
        embedded: vec![
            demo_registration().map_err(Failure::runtime)?,
            demo_v2_registration().map_err(Failure::runtime)?,
        ],
        embedded_schemas: demo_schemas(),
        embedded_supergraph: Some(DEMO_SUPERGRAPH.to_owned()),
        no_descriptor_dir: true,
        backends: vec![
            // Both versions are served by the same replicas; each is its own cluster, as two
            // deployments would be.
            BackendFlag { name: "catalog.v1".into(), urls: replicas.iter().map(|r| r.url()).collect() },
            BackendFlag { name: "catalog.v2".into(), urls: replicas.iter().map(|r| r.url()).collect() },
            BackendFlag { name: DEMO_AUTHORS_SOURCE.into(), urls: vec![authors.url()] },
            // The supergraph names the subgraph's URL; the demo's runs on a free port.
            BackendFlag { name: DEMO_CRITICS_SUBGRAPH.into(), urls: vec![critics.url()] },
        ],
        listen: Some(args.listen),
        admin: Some(args.admin),
        graphiql: true,
        ..SnapshotSources::default()
    };
    let (gateway, mut signal) = super::serve::start(sources).await?;
    let server = start_server(gateway).await.map_err(Failure::runtime)?;
    print_banner(server.gateway_addr, server.admin_addr, &replicas[0].url(), &authors.url(), &critics.url(), &security);
    signal.recv().await;
    let _ = writeln!(std::io::stdout(), "shutting down");
    server.shutdown().await;
    tokio::task::spawn_blocking(crate::telemetry::otel::shutdown).await.map_err(Failure::runtime)?;
    for replica in replicas {
        replica.shutdown().await;
    }
    authors.shutdown().await;
    critics.shutdown().await;
    Ok(())
}

fn print_banner(
    gateway: SocketAddr,
    admin: SocketAddr,
    backend: &str,
    authors: &str,
    critics: &str,
    security: &DemoSecurity,
) {
    let (token, api_key) = (&security.token, &security.api_key);
    let backend_addr = backend.trim_start_matches("http://");
    let g = format!("http://{gateway}");
    // A closed stdout (a parent that stopped reading) must not stop the demo.
    let _ = writeln!(
        std::io::stdout().lock(),
        "\
Switchyard demo is running. Ctrl-C stops it.

  gateway         {g}
  admin           http://{admin}
  demo backend    {backend}  (gRPC: {DEMO_SERVICE} and {DEMO_V2_SERVICE}, with health and reflection;
                  3 replicas, round robin)
  authors         {authors}  (JSON REST, stitched into GraphQL by schemas/demo/authors.graphql)
  critics         {critics}  (a Federation v2 GraphQL subgraph; descriptors/demo/supergraph.graphql)

JSON REST, transcoded to gRPC by the protos' google.api.http rules:
  curl -s {g}/v1/shelves/1/books/1
  curl -s '{g}/v1/shelves/1/books?pageSize=1&genre=FICTION'
  curl -s -X POST {g}/v1/shelves/1/books -H 'content-type: application/json' \\
       -d '{{\"title\":\"Dune\",\"isbn\":\"9780441013593\",\"publishTime\":\"1965-08-01T00:00:00Z\"}}'
  curl -s -X PATCH {g}/v1/shelves/1/books/n1 -H 'content-type: application/json' -d '{{\"author\":\"Frank Herbert\"}}'
  curl -s -X DELETE {g}/v1/shelves/1/books/n1
  curl -s -X POST {g}/catalog.v1.Catalog/GetBook -H 'content-type: application/json' -d '{{\"name\":\"shelves/2/books/1\"}}'

Two versions side by side (catalog.v2: a list of authors, text ISBNs, ratings out of 5):
  curl -s {g}/v2/shelves/1/books/1
  curl -s {g}/graphql -H 'content-type: application/json' \\
       -d '{{\"query\":\"{{ v1: getBook(name: \\\"shelves/1/books/1\\\") {{ author isbn }} v2: v2GetBook(name: \\\"shelves/1/books/1\\\") {{ authors isbn }} }}\"}}'

GraphQL over the same backend (GraphiQL in a browser at {g}/graphql):
  curl -s {g}/graphql -H 'content-type: application/json' \\
       -d '{{\"query\":\"{{ getBook(name: \\\"shelves/1/books/1\\\") {{ title isbn genre }} listBooks(parent: \\\"shelves/1\\\") {{ totalSize }} }}\"}}'

GraphQL stitching gRPC books with REST authors (one batched authors call per level):
  curl -s {g}/graphql -H 'content-type: application/json' \\
       -d '{{\"query\":\"{{ listBooks(parent: \\\"shelves/-\\\") {{ books {{ title writer {{ name born books {{ title }} }} }} }} }}\"}}'
  curl -s {g}/graphql -H 'content-type: application/json' -d '{{\"query\":\"{{ authors(country: \\\"US\\\") {{ name books {{ title }} }} }}\"}}'

Federation: the critics subgraph and the gRPC catalog share the entity Book (schemas/demo/critics.graphql):
  curl -s {g}/graphql -H 'content-type: application/json' \\
       -d '{{\"query\":\"{{ latestReviews {{ stars book {{ title author }} }} }}\"}}'     # titles from gRPC
  curl -s {g}/graphql -H 'content-type: application/json' \\
       -d '{{\"query\":\"{{ getBook(name: \\\"shelves/1/books/1\\\") {{ title averageStars reviews {{ body }} }} }}\"}}'   # reviews from the subgraph

GraphQL subscriptions (WebSocket: graphql-transport-ws or graphql-ws; SSE; multipart), each event
with its REST author stitched in; run one, then create a book above on shelves/1:
  (cd tests/npm && npm ci)   # once, in the Switchyard source tree: the stock graphql-ws clients
  node tests/npm/clients.mjs graphql-ws ws://{gateway}/graphql \
       'subscription {{ watchBooks(parent: \"shelves/1\") {{ kind book {{ title writer {{ name }} }} }} }}' '{{}}' 3
  curl -sN {g}/graphql -H 'accept: text/event-stream' -H 'content-type: application/json' \
       -d '{{\"query\":\"subscription {{ watchBooks(parent: \\\"shelves/1\\\") {{ kind book {{ title }} }} }}\"}}'

Raw bodies (google.api.HttpBody):
  curl -s -X PUT {g}/v1/shelves/1/books/1/cover -H 'content-type: image/svg+xml' --data-binary '<svg/>'
  curl -si {g}/v1/shelves/1/books/1/cover
  curl -s {g}/v1/shelves/1/books:export                                  # a CSV stream

Streams (run the watch in one terminal, create books in another):
  curl -sN {g}/v1/shelves/1/books:watch                                  # NDJSON
  curl -sN -H 'accept: text/event-stream' {g}/v1/shelves/1/books:watch   # Server-Sent Events
  printf '{{\"parent\":\"shelves/1\",\"book\":{{\"title\":\"A\"}}}}\\n{{\"parent\":\"shelves/1\",\"book\":{{\"title\":\"B\"}}}}\\n' | \\
    curl -s -X POST {g}/v1/books:import -H 'content-type: application/x-ndjson' --data-binary @-

Bidi streaming over a WebSocket on the method's route (websocat, or any WebSocket client):
  websocat ws://{gateway}/v1/shelves/1/books/1:discuss      # then type {{\"text\":\"hello\"}}

Native gRPC through the gateway (it answers reflection and health itself):
  grpcurl -plaintext {gateway} list
  grpcurl -plaintext -d '{{\"name\":\"shelves/1/books/1\"}}' {gateway} {DEMO_SERVICE}/GetBook
  grpcurl -plaintext -d '{{\"service\":\"{DEMO_SERVICE}\"}}' {gateway} grpc.health.v1.Health/Check

Security: a JWT provider, an API key, a rule on Book.rating (scope staff) and a rate limit
of 60 calls a minute for authenticated clients (anonymous clients are not limited):
  TOKEN={token}
  curl -s {g}/graphql -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\
       -d '{{\"query\":\"{{ getBook(name: \\\"shelves/1/books/1\\\") {{ title rating }} }}\"}}'
  curl -s {g}/graphql -H 'content-type: application/json' \\
       -d '{{\"query\":\"{{ getBook(name: \\\"shelves/1/books/1\\\") {{ title rating }} }}\"}}'   # rating: null, FORBIDDEN
  curl -si {g}/v1/shelves/1/books/1 -H \"authorization: Bearer $TOKEN\"   # RateLimit headers
  curl -s {g}/v1/shelves/1/books/1 -H 'x-api-key: {api_key}'
  curl -s http://{admin}/admin/usage                 # counters per consumer

Errors name what was wrong:
  curl -s -X POST {g}/v1/shelves/1/books -H 'content-type: application/json' -d '{{\"title\":\"x\",\"isbn\":\"abc\"}}'
  curl -si -X PUT {g}/v1/shelves/1/books

Admin:
  curl -s http://{admin}/readyz                 # ready, which services go to which backend
  curl -s http://{admin}/admin/clusters         # each cluster's endpoints: calls made, in flight, latency
  curl -s -X POST http://{admin}/admin/reload   # rebuild and swap the snapshot

Registry (by server reflection from the demo backend):
  switchyard descriptors pull {backend} --dir /tmp/switchyard-demo
  switchyard descriptors list --dir /tmp/switchyard-demo

gRPC straight to the backend, for comparison:
  grpcurl -plaintext {backend_addr} list
"
    );
}
