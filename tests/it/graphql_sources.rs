//! A GraphQL backend as a source: a second, real gateway serving the demo catalog over GraphQL
//! is the remote service; the gateway under test merges its root fields from its SDL file,
//! sends it one sub-operation per fetch with only the selected fields (arguments as typed
//! variables, aliases kept, parent keys under hidden aliases), stitches REST authors into its
//! types and its fields into ours, and passes its errors on at their paths.

use serde_json::{Value, json};

use crate::support::{TestGateway, write_files};

const STITCH: &str = r#"
extend schema @source(name: "catalog", kind: GRAPHQL, schema: "catalog.sdl.graphql")
extend schema @source(name: "authors", kind: REST)

type Author {
  id: ID!
  name: String!
  born: Int
  books: [Book!]!
    @graphql(source: "catalog", field: "listBooks", arguments: {parent: "shelves/-", author: "{parent.name}"}, select: "books")
}

extend type Book {
  writer: Author
    @rest(source: "authors", path: "/authors", query: {name: "{keys}"}, select: "authors", batch: {key: "{parent.author}", match: "name"})
}
"#;

/// The remote (a demo gateway), the authors service, and a gateway whose only schema is
/// `schemas/` (no descriptors): the remote's SDL and STITCH.
async fn front() -> (TestGateway, TestGateway, tempfile::TempDir) {
    let remote = TestGateway::demo().await;
    let url = format!("{}/graphql", remote.base);
    let (front, dir) = front_at(url).await;
    (front, remote, dir)
}

/// The gateway under test with its catalog source at `catalog_url`.
async fn front_at(catalog_url: String) -> (TestGateway, tempfile::TempDir) {
    front_with(catalog_url, STITCH).await
}

/// The gateway under test with `stitch` as its schema file.
async fn front_with(catalog_url: String, stitch: &str) -> (TestGateway, tempfile::TempDir) {
    let registry =
        switchyard::registry::merge_registrations(vec![switchyard::demo::demo_registration().expect("demo")])
            .expect("merges");
    let (schema, _) = switchyard::schema::generate_schema(
        &registry.pool,
        &["catalog.v1.Catalog".to_owned()],
        &switchyard::config::GraphqlConfig::default(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("schemas/stitch.graphql", stitch)]);
    if stitch.contains("catalog.sdl.graphql") {
        write_files(dir.path(), &[("schemas/catalog.sdl.graphql", &schema.to_sdl())]);
    }
    let authors = switchyard::demo::start_demo_authors("127.0.0.1:0".parse().expect("addr")).await.expect("authors");
    let sources = switchyard::snapshot::SnapshotSources {
        no_descriptor_dir: true,
        schemas: Some(dir.path().join("schemas")),
        backends: vec![
            switchyard::snapshot::BackendFlag { name: "catalog".into(), urls: vec![catalog_url] },
            switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec![authors.url()] },
        ],
        ..Default::default()
    };
    let mut front = TestGateway::from_sources(sources, None).await;
    front.adopt_authors(authors);
    (front, dir)
}

async fn graphql(gateway: &TestGateway, query: &str, variables: Value) -> Value {
    let body = json!({"query": query, "variables": variables});
    let response = gateway.client.post(format!("{}/graphql", gateway.base)).json(&body).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_graphql_source_is_merged_and_stitched_both_ways() {
    let (front, remote, _dir) = front().await;
    let before = remote.backend().calls("ListBooks");
    let query = r#"{ listBooks(parent: "shelves/-") { books { t: title writer { name books { title } } } } }"#;
    let answer = graphql(&front, query, json!({})).await;
    let le_guin = json!({"name": "Ursula K. Le Guin", "books": [{"title": "The Left Hand of Darkness"}, {"title": "A Wizard of Earthsea"}]});
    assert_eq!(
        answer,
        json!({"data": {"listBooks": {"books": [
            {"t": "The Left Hand of Darkness", "writer": le_guin},
            {"t": "A Wizard of Earthsea", "writer": le_guin},
            {"t": "The Selfish Gene", "writer": {"name": "Richard Dawkins", "books": [{"title": "The Selfish Gene"}]}}
        ]}}})
    );
    // One sub-operation for the root, then one per distinct author.
    assert_eq!(remote.backend().calls("ListBooks") - before, 3);
    front.shutdown().await;
    remote.shutdown().await;
}

#[tokio::test]
async fn arguments_travel_as_typed_variables_and_errors_keep_their_paths() {
    let (front, remote, _dir) = front().await;
    let query = r#"query($genre: Genre) {
        fiction: listBooks(parent: "shelves/1", genre: $genre) { totalSize }
        missing: getBook(name: "shelves/9/books/9") { title }
    }"#;
    let answer = graphql(&front, query, json!({"genre": "FICTION"})).await;
    assert_eq!(answer["data"], json!({"fiction": {"totalSize": "2"}, "missing": null}), "{answer}");
    assert_eq!(answer["errors"][0]["path"], json!(["missing"]));
    assert_eq!(answer["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(answer["errors"][0]["message"], "book `shelves/9/books/9` does not exist");

    let mutation = r#"mutation { createBook(parent: "shelves/5", book: {title: "Kindred", author: "Octavia E. Butler", genre: FICTION}) { title genre writer { born } } }"#;
    let answer = graphql(&front, mutation, json!({})).await;
    assert_eq!(
        answer,
        json!({"data": {"createBook": {"title": "Kindred", "genre": "FICTION", "writer": {"born": 1947}}}})
    );
    front.shutdown().await;
    remote.shutdown().await;
}

#[tokio::test]
async fn a_graphql_source_down_is_unavailable_at_its_fields() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/graphql", closed.local_addr().expect("addr"));
    drop(closed);
    let (front, _dir) = front_at(url).await;
    let answer = graphql(&front, r#"{ getBook(name: "shelves/1/books/1") { title } }"#, json!({})).await;
    assert_eq!(answer["data"], json!({"getBook": null}));
    assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{answer}");
    assert_eq!(answer["errors"][0]["message"], "backend catalog is unavailable", "{answer}");
    front.shutdown().await;
}

#[tokio::test]
async fn a_graphql_source_without_a_schema_file_is_introspected() {
    let remote = TestGateway::demo().await;
    let introspecting = STITCH.replace(", schema: \"catalog.sdl.graphql\"", "");
    assert_ne!(introspecting, STITCH);
    let (front, _dir) = front_with(format!("{}/graphql", remote.base), &introspecting).await;
    let query = r#"{ getBook(name: "shelves/2/books/1") { title genre writer { name } } }"#;
    let answer = graphql(&front, query, json!({})).await;
    assert_eq!(
        answer,
        json!({"data": {"getBook": {"title": "The Selfish Gene", "genre": "SCIENCE", "writer": {"name": "Richard Dawkins"}}}})
    );
    front.shutdown().await;
    remote.shutdown().await;

    // Nothing to introspect: the snapshot is refused, naming the source and why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/graphql", closed.local_addr().expect("addr"));
    drop(closed);
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("schemas/stitch.graphql", &introspecting)]);
    let sources = switchyard::snapshot::SnapshotSources {
        no_descriptor_dir: true,
        schemas: Some(dir.path().join("schemas")),
        backends: vec![
            switchyard::snapshot::BackendFlag { name: "catalog".into(), urls: vec![url] },
            switchyard::snapshot::BackendFlag { name: "authors".into(), urls: vec!["http://127.0.0.1:1".into()] },
        ],
        ..Default::default()
    };
    let problems = tokio::task::spawn_blocking(move || switchyard::snapshot::build_snapshot(&sources, 1))
        .await
        .expect("task")
        .expect_err("refused");
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(
            |p| p.contains("@source catalog: no `schema` file, and introspecting its backend failed: cannot reach")
        ),
        "{shown:#?}"
    );
}

mod subscriptions {
    //! A GraphQL source's subscriptions: the gateway is a graphql-transport-ws client of the
    //! source, shares one upstream subscription among identical subscribers, stitches each
    //! event, and reconnects when the source drops it.

    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::extract::ws::{Message as AxumMessage, WebSocket, WebSocketUpgrade};
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio::sync::broadcast;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    use crate::support::{HANG, TestGateway, write_files};

    /// The source's subscription side: events the test publishes go to every subscriber.
    struct ReviewSource {
        addr: SocketAddr,
        subscribes: Arc<AtomicUsize>,
        open: Arc<AtomicUsize>,
        queries: Arc<Mutex<Vec<String>>>,
        events: broadcast::Sender<Value>,
        drop_all: broadcast::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    impl ReviewSource {
        async fn start() -> ReviewSource {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let source = ReviewSource {
                addr,
                subscribes: Arc::default(),
                open: Arc::default(),
                queries: Arc::default(),
                events: broadcast::channel(16).0,
                drop_all: broadcast::channel(4).0,
                task: tokio::spawn(async {}),
            };
            let state = (
                source.subscribes.clone(),
                source.open.clone(),
                source.queries.clone(),
                source.events.clone(),
                source.drop_all.clone(),
            );
            let router = axum::Router::new().route(
                "/graphql",
                axum::routing::get(move |upgrade: WebSocketUpgrade| {
                    let state = state.clone();
                    async move {
                        upgrade.protocols(["graphql-transport-ws"]).on_upgrade(move |socket| session(socket, state))
                    }
                }),
            );
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            ReviewSource { task, ..source }
        }

        fn url(&self) -> String {
            format!("http://{}/graphql", self.addr)
        }
    }

    type State =
        (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>, broadcast::Sender<Value>, broadcast::Sender<()>);

    async fn session(mut socket: WebSocket, (subscribes, open, queries, events, drop_all): State) {
        let mut events = events.subscribe();
        let mut dropped = drop_all.subscribe();
        let mut id = None;
        open.fetch_add(1, Ordering::SeqCst);
        loop {
            tokio::select! {
                _ = dropped.recv() => break,
                event = events.recv(), if id.is_some() => {
                    let Ok(event) = event else { break };
                    let next = json!({"id": id, "type": "next", "payload": {"data": event}});
                    if socket.send(AxumMessage::Text(next.to_string().into())).await.is_err() { break }
                }
                message = socket.recv() => {
                    let Some(Ok(AxumMessage::Text(text))) = message else { break };
                    let message: Value = serde_json::from_str(&text).expect("json");
                    match message["type"].as_str() {
                        Some("connection_init") => {
                            let ack = json!({"type": "connection_ack"}).to_string();
                            if socket.send(AxumMessage::Text(ack.into())).await.is_err() { break }
                        }
                        Some("subscribe") => {
                            subscribes.fetch_add(1, Ordering::SeqCst);
                            queries.lock().expect("lock").push(message["payload"]["query"].as_str().unwrap_or("").to_owned());
                            id = Some(message["id"].clone());
                        }
                        Some("complete") => break,
                        _ => {}
                    }
                }
            }
        }
        open.fetch_sub(1, Ordering::SeqCst);
    }

    const SDL: &str = "type Query { review(id: ID!): Review }\n\
        type Subscription { reviewAdded(book: String): Review }\n\
        type Review { id: ID! body: String! stars: Int bookName: String! }\n";

    const STITCH: &str = r#"
    extend schema @source(name: "reviews", kind: GRAPHQL, schema: "reviews.sdl.graphql")
    extend type Review { book: Book @grpc(method: "catalog.v1.Catalog/GetBook", request: {name: "{parent.bookName}"}) }
    "#;

    async fn front(source: &ReviewSource) -> (TestGateway, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        write_files(dir.path(), &[("schemas/reviews.sdl.graphql", SDL), ("schemas/stitch.graphql", STITCH)]);
        let backend =
            switchyard::demo::start_demo_backend("127.0.0.1:0".parse().expect("addr")).await.expect("backend");
        let sources = switchyard::snapshot::SnapshotSources {
            embedded: vec![switchyard::demo::demo_registration().expect("demo")],
            no_descriptor_dir: true,
            schemas: Some(dir.path().join("schemas")),
            backends: vec![
                switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] },
                switchyard::snapshot::BackendFlag { name: "reviews".into(), urls: vec![source.url()] },
            ],
            ..Default::default()
        };
        (TestGateway::from_sources(sources, Some(backend)).await, dir)
    }

    type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    async fn subscriber(gateway: &TestGateway, query: &str) -> Socket {
        let url = format!("{}/graphql", gateway.base.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().expect("header"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
        socket.send(Message::Text(json!({"type": "connection_init"}).to_string().into())).await.expect("init");
        assert_eq!(next(&mut socket).await["type"], "connection_ack");
        let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query}});
        socket.send(Message::Text(subscribe.to_string().into())).await.expect("subscribe");
        socket
    }

    async fn next(socket: &mut Socket) -> Value {
        loop {
            match tokio::time::timeout(HANG, socket.next()).await.expect("a frame in time") {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("json"),
                Some(Ok(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    async fn eventually(mut check: impl FnMut() -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + HANG;
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    const QUERY: &str = r#"subscription { reviewAdded(book: "shelves/1/books/1") { body book { title } } }"#;

    #[tokio::test]
    async fn identical_subscribers_share_one_upstream_subscription_with_stitched_events() {
        let source = ReviewSource::start().await;
        let (gateway, _dir) = front(&source).await;
        let mut first = subscriber(&gateway, QUERY).await;
        let mut second = subscriber(&gateway, QUERY).await;
        eventually(|| source.subscribes.load(Ordering::SeqCst) == 1, "one upstream subscription").await;
        let sent = source.queries.lock().expect("lock")[0].clone();
        assert_eq!(
            sent, "subscription Switchyard($a0: String) { reviewAdded(book: $a0) { body _sy_bookName: bookName } }",
            "only the selected fields and the stitching key"
        );
        // The second subscriber may join a moment later: publish the same event until both have it.
        let events = source.events.clone();
        let publisher = tokio::spawn(async move {
            loop {
                // What a GraphQL server answers for that sub-operation: the selected fields, by alias.
                let _ = events.send(json!({"reviewAdded": {"body": "great", "_sy_bookName": "shelves/1/books/1"}}));
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        let expected =
            json!({"data": {"reviewAdded": {"body": "great", "book": {"title": "The Left Hand of Darkness"}}}});
        assert_eq!(next(&mut first).await, json!({"id": "1", "type": "next", "payload": expected}));
        assert_eq!(next(&mut second).await, json!({"id": "1", "type": "next", "payload": expected}));
        publisher.abort();
        assert_eq!(source.subscribes.load(Ordering::SeqCst), 1, "still one upstream subscription");
        drop(first);
        drop(second);
        eventually(
            || source.open.load(Ordering::SeqCst) == 0,
            "the upstream subscription closes with its last subscriber",
        )
        .await;
        gateway.shutdown().await;
        source.task.abort();
    }

    #[tokio::test]
    async fn a_dropped_upstream_is_resubscribed_and_one_that_stays_down_ends_with_an_error() {
        let source = ReviewSource::start().await;
        let (gateway, _dir) = front(&source).await;
        let mut client = subscriber(&gateway, QUERY).await;
        eventually(|| source.subscribes.load(Ordering::SeqCst) == 1, "subscribed").await;
        source.drop_all.send(()).expect("drop");
        eventually(|| source.subscribes.load(Ordering::SeqCst) == 2, "resubscribed after the drop").await;
        source
            .events
            .send(json!({"reviewAdded": {"body": "still here", "_sy_bookName": "shelves/2/books/1"}}))
            .expect("publish");
        let event = next(&mut client).await;
        assert_eq!(
            event["payload"]["data"]["reviewAdded"],
            json!({"body": "still here", "book": {"title": "The Selfish Gene"}})
        );
        // Now the source goes away for good: after its reconnection attempts, an error.
        source.task.abort();
        source.drop_all.send(()).expect("drop");
        let error = next(&mut client).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["payload"][0]["extensions"]["code"], "UNAVAILABLE", "{error}");
        assert_eq!(error["payload"][0]["message"], "backend reviews is unavailable");
        gateway.shutdown().await;
    }
}
