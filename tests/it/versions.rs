//! Two versions of one service served at once: catalog.v1 and catalog.v2 of the demo, both
//! answered by one demo backend over the same books, reached by path prefix, by a header or
//! query parameter on one path, through GraphQL (with per-version prefixes, or one version
//! chosen) and as native gRPC; the deprecated version says so on every protocol.

use serde_json::{Value, json};

use crate::support::{TestGateway, get_with};

/// One cluster claims both packages, and v1 is deprecated.
const BOTH: &str = "[backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog\"]\n\
                    [deprecations.\"catalog.v1.Catalog\"]\nsince = \"2026-01-01T00:00:00Z\"\n\
                    sunset = \"2027-06-30T00:00:00Z\"\nlink = \"https://example.com/catalog/v2\"\n";

/// Calls `service`/`method` with a JSON-described request through the gateway's gRPC ingress;
/// answers the response as JSON and its headers.
async fn grpc_call(
    gateway: &TestGateway,
    service: &str,
    method: &str,
    request: Value,
) -> Result<(Value, tonic::metadata::MetadataMap), tonic::Status> {
    let pool = switchyard::registry::merge_registrations(vec![
        switchyard::demo::demo_registration().expect("demo"),
        switchyard::demo::demo_v2_registration().expect("demo v2"),
    ])
    .expect("merges")
    .pool;
    let descriptor = pool
        .get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == method))
        .expect("method exists");
    let channel =
        tonic::transport::Endpoint::from_shared(gateway.base.clone()).expect("url").connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let message = prost_reflect::DynamicMessage::deserialize(descriptor.input(), request).expect("request");
    let codec = switchyard::upstream::grpc_codec::DynamicCodec::new(descriptor.output());
    let path = format!("/{service}/{method}").parse().expect("path");
    let response = grpc.unary(tonic::Request::new(message), path, codec).await?;
    let (metadata, message, _) = response.into_parts();
    Ok((serde_json::to_value(&message).expect("json"), metadata))
}

#[tokio::test]
async fn two_versions_are_served_side_by_side_over_the_same_books() {
    let (gateway, _dir) = TestGateway::two_versions_with_config(BOTH).await;

    // REST, routed by each version's own path prefix.
    let (status, v1, headers) = get_with(&gateway, "/v1/shelves/1/books/1", &[]).await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(
        (&v1["author"], &v1["isbn"], &v1["rating"]),
        (&json!("Ursula K. Le Guin"), &json!("9780441478125"), &json!(46)),
        "{v1}"
    );
    assert_eq!(headers.get("deprecation").map(|v| v.as_bytes()), Some(&b"@1767225600"[..]));
    let (status, v2, headers) = get_with(&gateway, "/v2/shelves/1/books/1", &[]).await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(
        (&v2["authors"], &v2["isbn"], &v2["rating"]),
        (&json!(["Ursula K. Le Guin"]), &json!("9780441478125"), &json!(4.6)),
        "{v2}"
    );
    assert!(headers.get("deprecation").is_none() && headers.get("sunset").is_none(), "v2 is current");
    let (status, page, _) = get_with(&gateway, "/v2/shelves/1/books?pageSize=1", &[]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["books"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["nextPageToken"], "1", "{page}");
    assert!(page.get("totalSize").is_none(), "v2 pages do not count every match: {page}");

    // A book written through v2 is read through v1: one store, two shapes.
    let created = json!({"title": "Good Omens", "authors": ["Terry Pratchett", "Neil Gaiman"], "isbn": "9780060853983", "rating": 4.5});
    let (status, body, _) = gateway.call("POST", "/v2/shelves/2/books?bookId=omens", &created.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let (status, v1, _) = get_with(&gateway, "/v1/shelves/2/books/omens", &[]).await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(
        (&v1["author"], &v1["isbn"], &v1["rating"]),
        (&json!("Terry Pratchett & Neil Gaiman"), &json!("9780060853983"), &json!(45)),
        "{v1}"
    );
    // v2's rules on its own fields, named by the field.
    let bad = json!({"title": "X", "isbn": "97800"});
    let (status, body, _) = gateway.call("POST", "/v2/shelves/2/books", &bad.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "book.isbn: `97800` is not an ISBN-13", "{body}");
    assert_eq!(gateway.backend().calls("catalog.v2.Catalog/CreateBook"), 2);
    assert_eq!(gateway.backend().calls("GetBook"), 2, "v1 calls are counted apart");

    // GraphQL: both versions in one schema, v2 under its proto's prefix; v1 deprecated.
    let answer = gateway
        .graphql(
            "{ old: getBook(name: \"shelves/1/books/1\") { __typename author isbn } \
           new: v2GetBook(name: \"shelves/1/books/1\") { __typename authors isbn genre } }",
        )
        .await;
    assert_eq!(
        answer,
        json!({"data": {
            "old": {"__typename": "Book", "author": "Ursula K. Le Guin", "isbn": "9780441478125"},
            "new": {"__typename": "V2Book", "authors": ["Ursula K. Le Guin"], "isbn": "9780441478125", "genre": "FICTION"}
        }})
    );
    let answer =
        gateway.graphql("{ __schema { queryType { fields(includeDeprecated: true) { name isDeprecated } } } }").await;
    let fields = answer["data"]["__schema"]["queryType"]["fields"].as_array().expect("fields").clone();
    let deprecated = |name: &str| fields.iter().find(|f| f["name"] == name).map(|f| f["isDeprecated"].clone());
    assert_eq!(
        (deprecated("getBook"), deprecated("v2GetBook"), deprecated("v2ListBooks")),
        (Some(json!(true)), Some(json!(false)), Some(json!(false))),
        "{answer}"
    );

    // Native gRPC: each version by its own service name; the deprecated one says so.
    let (book, metadata) =
        grpc_call(&gateway, "catalog.v2.Catalog", "GetBook", json!({"name": "shelves/2/books/1"})).await.expect("v2");
    assert_eq!(book["authors"], json!(["Richard Dawkins"]), "{book}");
    assert!(metadata.get("deprecation").is_none());
    let (book, metadata) =
        grpc_call(&gateway, "catalog.v1.Catalog", "GetBook", json!({"name": "shelves/2/books/1"})).await.expect("v1");
    assert_eq!(book["author"], "Richard Dawkins", "{book}");
    assert_eq!(metadata.get("deprecation").and_then(|v| v.to_str().ok()), Some("@1767225600"));
    assert_eq!(metadata.get("sunset").and_then(|v| v.to_str().ok()), Some("Wed, 30 Jun 2027 00:00:00 GMT"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_header_or_query_parameter_chooses_v1_or_v2_on_one_path() {
    let config = format!(
        "{BOTH}[rest.versions]\nheader = \"api-version\"\nquery = \"api-version\"\n\
         prefixes = {{ \"1\" = \"/v1\", \"2\" = \"/v2\" }}\n"
    );
    let (gateway, _dir) = TestGateway::two_versions_with_config(&config).await;
    let book = "/shelves/1/books/1";
    // (path, the api-version header, the field only the chosen version has)
    let cases = [
        (book, Some("1"), "author"),
        (book, Some("2"), "authors"),
        ("/shelves/1/books/1?api-version=2", None, "authors"),
        ("/shelves/1/books/1?api-version=1", None, "author"),
        // The header wins over the query parameter.
        ("/shelves/1/books/1?api-version=1", Some("2"), "authors"),
        // The versioned paths themselves are still served as they are.
        ("/v2/shelves/1/books/1", None, "authors"),
    ];
    for (path, version, field) in cases {
        let headers: Vec<(&str, String)> = version.map(|v| ("api-version", v.to_owned())).into_iter().collect();
        let (status, body, response_headers) = get_with(&gateway, path, &headers).await;
        assert_eq!(status, 200, "{path} {version:?}: {body}");
        assert!(body.get(field).is_some(), "{path} {version:?} should reach the version with `{field}`: {body}");
        let deprecated = response_headers.contains_key("deprecation");
        assert_eq!(deprecated, field == "author", "{path} {version:?}: only v1 is deprecated");
    }
    let (status, body, _) = get_with(&gateway, book, &[("api-version", "3".to_owned())]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "version `3` is not served; the versions are 1, 2");
    gateway.shutdown().await;
}

#[tokio::test]
async fn graphql_can_serve_one_chosen_version_without_prefixes() {
    // The operator's choice: v2 only, under the unprefixed names clients already use.
    let config = "[backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog\"]\n\
                  [graphql.services.\"catalog.v1.Catalog\"]\nhidden = true\n\
                  [graphql.services.\"catalog.v2.Catalog\"]\nprefix = \"\"\n";
    let (gateway, _dir) = TestGateway::two_versions_with_config(config).await;
    let answer = gateway
        .graphql(
            "{ getBook(name: \"shelves/1/books/1\") { __typename authors rating } \
           listBooks(parent: \"shelves/1\") { books { title } } }",
        )
        .await;
    assert_eq!(
        answer["data"]["getBook"],
        json!({"__typename": "Book", "authors": ["Ursula K. Le Guin"], "rating": 4.6})
    );
    assert_eq!(answer["data"]["listBooks"]["books"].as_array().map(Vec::len), Some(2), "{answer}");
    let answer = gateway.graphql("{ v2GetBook(name: \"shelves/1/books/1\") { title } }").await;
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("v2GetBook"), "the prefixed name is gone: {answer}");
    assert_eq!(gateway.backend().calls("GetBook"), 0, "v1 is not reachable through GraphQL");
    // REST still serves both.
    let (status, _, _) = get_with(&gateway, "/v1/shelves/1/books/1", &[]).await;
    assert_eq!(status, 200);
    gateway.shutdown().await;
}

#[test]
fn bad_version_selectors_are_refused_naming_the_key() {
    crate::support::assert_config_refused(&[
        ("[rest.versions]\nprefixes = { \"2\" = \"/v2\" }\n", "rest.versions", "set `header` or `query`"),
        (
            "[rest.versions]\nheader = \"api version\"\nprefixes = { \"2\" = \"/v2\" }\n",
            "rest.versions.header",
            "not a header name",
        ),
        ("[rest.versions]\nheader = \"v\"\n", "rest.versions.prefixes", "list the versions served"),
        (
            "[rest.versions]\nheader = \"v\"\nprefixes = { \"2\" = \"v2/\" }\n",
            "rest.versions.prefixes.\"2\"",
            "`v2/` is not a path prefix",
        ),
    ]);
}
