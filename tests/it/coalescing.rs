//! Request coalescing against the demo backend made slow (2 s per call, so concurrent requests
//! certainly overlap): identical reads share one backend call — answers and errors alike —
//! while different identities, writes and clusters that opt out each get their own.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::TestGateway;

const SLOW: Duration = Duration::from_secs(2);

async fn gateway(extra: &str) -> (TestGateway, tempfile::TempDir) {
    let config = format!("[backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n{extra}");
    let (gateway, dir) = TestGateway::demo_with_config(&config).await;
    gateway.backend().set_latency(SLOW);
    (gateway, dir)
}

async fn graphql(gateway: &TestGateway, query: &str, authorization: Option<&str>) -> Value {
    let mut request = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .body(json!({ "query": query }).to_string());
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.expect("send").json().await.expect("json")
}

#[tokio::test]
async fn two_hundred_identical_queries_make_one_backend_call_answers_and_errors_alike() {
    let (gateway, _dir) = gateway("").await;
    let query = "{ getBook(name: \"shelves/1/books/1\") { title } }";
    let answers = join_all((0..200).map(|_| graphql(&gateway, query, None))).await;
    for answer in &answers {
        assert_eq!(answer["data"]["getBook"]["title"], "The Left Hand of Darkness", "{answer}");
    }
    assert_eq!(gateway.backend().calls("GetBook"), 1, "200 concurrent identical queries, one call");

    // The backend fails: the one failure is shared, and not kept.
    let missing = "{ getBook(name: \"shelves/1/books/404\") { title } }";
    let answers = join_all((0..200).map(|_| graphql(&gateway, missing, None))).await;
    for answer in &answers {
        assert_eq!(answer["errors"][0]["extensions"]["code"], "NOT_FOUND", "{answer}");
    }
    assert_eq!(gateway.backend().calls("GetBook"), 2);
    graphql(&gateway, missing, None).await;
    assert_eq!(gateway.backend().calls("GetBook"), 3, "an error is not cached");

    // REST GETs of the same book share too.
    let url = format!("{}/v1/shelves/1/books/2", gateway.base);
    let statuses =
        join_all((0..50).map(|_| async { gateway.client.get(&url).send().await.expect("send").status().as_u16() }))
            .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(gateway.backend().calls("GetBook"), 4);
    gateway.shutdown().await;
}

#[tokio::test]
async fn identities_writes_and_opted_out_clusters_are_not_shared() {
    let (gateway, _dir) = gateway("").await;
    let query = "{ getBook(name: \"shelves/1/books/1\") { title } }";
    let who = ["Bearer ada", "Bearer bob"];
    join_all((0..20).map(|i| graphql(&gateway, query, Some(who[i % 2])))).await;
    assert_eq!(gateway.backend().calls("GetBook"), 2, "one call per identity");

    // Writes are never shared: five identical creates create five books.
    let url = format!("{}/v1/shelves/1/books", gateway.base);
    let body = json!({"title": "Twice Told Tales"}).to_string();
    let created = join_all((0..5).map(|_| async {
        let response = gateway
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("send");
        response.json::<Value>().await.expect("json")["name"].as_str().map(str::to_owned)
    }))
    .await;
    let mut names: Vec<String> = created.into_iter().map(|n| n.expect("a created book")).collect();
    names.sort();
    names.dedup();
    assert_eq!((names.len(), gateway.backend().calls("CreateBook")), (5, 5));
    gateway.shutdown().await;

    let (gateway, _dir) = gateway_opted_out().await;
    join_all((0..10).map(|_| graphql(&gateway, query, None))).await;
    assert_eq!(gateway.backend().calls("GetBook"), 10, "coalesce = false: every read reaches the backend");
    gateway.shutdown().await;
}

async fn gateway_opted_out() -> (TestGateway, tempfile::TempDir) {
    let config = "[backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\ncoalesce = false\n";
    let (gateway, dir) = TestGateway::demo_with_config(config).await;
    gateway.backend().set_latency(SLOW);
    (gateway, dir)
}

#[tokio::test]
async fn identical_rest_source_reads_share_one_call() {
    let (gateway, _dir) = TestGateway::stitched_with_config("").await;
    gateway.authors().set_latency(SLOW);
    let query = "{ author(id: \"1\") { name } }";
    let answers = join_all((0..50).map(|_| graphql(&gateway, query, None))).await;
    for answer in &answers {
        assert_eq!(answer["data"]["author"]["name"], "Ursula K. Le Guin", "{answer}");
    }
    assert_eq!(gateway.authors().requests(), 1, "50 concurrent identical REST reads, one request");
    // A 404 is shared as well.
    let answers = join_all((0..20).map(|_| graphql(&gateway, "{ author(id: \"99\") { name } }", None))).await;
    assert!(answers.iter().all(|a| a["errors"][0]["extensions"]["code"] == "NOT_FOUND"), "{:?}", answers[0]);
    assert_eq!(gateway.authors().requests(), 2);
    gateway.shutdown().await;
}
