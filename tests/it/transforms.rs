//! Header transformations on one method, whichever protocol reaches it: what the demo backend
//! was told (its recorded headers) and what the client got back.

use serde_json::json;

use crate::support::{TestGateway, get_with};

const SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

fn bearer() -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 600;
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
    let claims = json!({"sub": "ada", "exp": exp, "tenant": "acme"});
    format!("Bearer {}", jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign"))
}

#[tokio::test]
async fn request_and_response_headers_are_edited_on_every_protocol() {
    let config = format!(
        "[[auth.jwt]]\nname = \"corp\"\nkeys = [{{ algorithm = \"HS256\", secret = \"{SECRET}\" }}]\n\
         [headers]\nforward = [\"x-debug\", \"x-old\"]\n\
         [[transforms]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\n\
         request_headers = {{ remove = [\"x-debug\"], rename = {{ \"x-old\" = \"x-renamed\" }}, set = {{ \"x-tenant\" = \"{{claim.tenant}}\", \"x-who\" = \"{{subject}}\", \"x-static\" = \"v1\" }} }}\n\
         response_headers = {{ remove = [\"grpc-metadata-served-by\"], set = {{ \"x-served\" = \"switchyard\" }} }}\n\
         [backends.catalog]\nendpoints = [\"{{backend}}\"]\nservices = [\"catalog.v1\"]\n"
    );
    let (gateway, _dir) = TestGateway::demo_with_config(&config).await;
    let seen = |name: &str| {
        gateway
            .backend()
            .last_headers("GetBook")
            .and_then(|h| h.get(name).map(|v| v.to_str().expect("ascii").to_owned()))
    };
    let check = |how: &str| {
        assert_eq!(seen("x-tenant").as_deref(), Some("acme"), "{how}");
        assert_eq!(seen("x-who").as_deref(), Some("ada"), "{how}");
        assert_eq!(seen("x-static").as_deref(), Some("v1"), "{how}");
        assert_eq!(seen("x-renamed").as_deref(), Some("kept"), "{how}");
        assert_eq!((seen("x-debug"), seen("x-old")), (None, None), "{how}");
    };
    let headers = vec![("authorization", bearer()), ("x-debug", "1".to_owned()), ("x-old", "kept".to_owned())];

    // REST: the backend's view, and the answer's headers.
    let (status, body, answer) = get_with(&gateway, "/v1/shelves/1/books/1", &headers).await;
    assert_eq!(status, 200, "{body}");
    check("REST");
    assert!(!answer.contains_key("grpc-metadata-served-by"), "{answer:?}");
    assert_eq!(answer.get("x-served").and_then(|v| v.to_str().ok()), Some("switchyard"));

    // GraphQL.
    let mut request = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .body(json!({"query": "{ getBook(name: \"shelves/1/books/1\") { title } }"}).to_string());
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    let answer: serde_json::Value = request.send().await.expect("send").json().await.expect("json");
    assert!(answer.get("errors").is_none(), "{answer}");
    check("GraphQL");

    // gRPC passthrough.
    crate::support::grpc_get_book(&gateway, &headers).await.expect("grpc");
    check("gRPC");

    // Other methods are untouched.
    get_with(&gateway, "/v1/shelves/1/books", &headers).await;
    let list = gateway.backend().last_headers("ListBooks").expect("headers");
    assert_eq!(list.get("x-debug").and_then(|v| v.to_str().ok()), Some("1"));
    gateway.shutdown().await;
}

#[test]
fn bad_transformations_are_refused_naming_the_key() {
    crate::support::assert_config_refused(&[
        (
            "[[transforms]]\nrequest_headers = { set = { \"x-a\" = \"1\" } }\n",
            "transforms[0].methods",
            "applies to nothing",
        ),
        (
            "[[transforms]]\nmethods = [\"*\"]\nrequest_headers = { set = { \"x-a\" = \"{nope}\" } }\n",
            "transforms[0].request_headers.set.x-a",
            "is not {subject}",
        ),
        (
            "[[transforms]]\nmethods = [\"*\"]\nresponse_headers = { remove = [\"bad header\"] }\n",
            "transforms[0].response_headers.remove[0]",
            "not a header name",
        ),
    ]);
}

#[tokio::test]
async fn rest_json_bodies_are_edited_both_ways() {
    let config = "[[transforms]]\nmethods = [\"catalog.v1.Catalog/CreateBook\"]\n\
                  request_body = { drop = [\"internal\"], rename = { \"bookTitle\" = \"title\" } }\n\
                  [[transforms]]\nmethods = [\"catalog.v1.Catalog/GetBook\"]\n\
                  response_body = { drop = [\"isbn\"], rename = { \"name\" = \"id\" }, inject = { \"apiVersion\" = \"2\", \"meta.source\" = \"gateway\" } }\n\
                  [backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(config).await;
    // The client's field names become the backend's; a field the backend does not know is dropped.
    let (status, created, _) =
        gateway.call("POST", "/v1/shelves/1/books", "{\"bookTitle\":\"Renamed on the way\",\"internal\":7}").await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["title"], "Renamed on the way");
    // The answer is reshaped for the client (and its ETag is the reshaped body's).
    let (status, book, headers) = get_with(&gateway, "/v1/shelves/1/books/1", &[]).await;
    assert_eq!(status, 200, "{book}");
    assert_eq!(book["id"], "shelves/1/books/1");
    assert!(book.get("name").is_none() && book.get("isbn").is_none(), "{book}");
    assert_eq!((&book["apiVersion"], &book["meta"]["source"]), (&json!(2), &json!("gateway")));
    assert!(headers.contains_key("etag"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn generated_graphql_fields_can_be_renamed_and_hidden() {
    let config = "[graphql.fields.\"Book.isbn\"]\nname = \"isbn13\"\n[graphql.fields.\"Book.copiesSold\"]\nhidden = true\n\
                  [backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(config).await;
    let query = |text: &str| {
        gateway
            .client
            .post(format!("{}/graphql", gateway.base))
            .header("content-type", "application/json")
            .body(json!({ "query": text }).to_string())
            .send()
    };
    let answer: serde_json::Value = query("{ getBook(name: \"shelves/1/books/1\") { title isbn13 } }")
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["data"]["getBook"]["isbn13"], "9780441478125", "{answer}");
    // Lists go through the same type (and their field masks name the proto field).
    let answer: serde_json::Value = query("{ listBooks(parent: \"shelves/1\") { books { isbn13 } } }")
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["data"]["listBooks"]["books"][0]["isbn13"], "9780441478125", "{answer}");
    for (field, message) in [
        ("isbn", "Cannot query field \"isbn\" on type \"Book\"."),
        ("copiesSold", "Cannot query field \"copiesSold\" on type \"Book\"."),
    ] {
        let answer: serde_json::Value = query(&format!("{{ getBook(name: \"shelves/1/books/1\") {{ {field} }} }}"))
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(answer["errors"][0]["message"], message, "{answer}");
    }
    let answer: serde_json::Value =
        query("{ __type(name: \"Book\") { fields { name } } }").await.expect("send").json().await.expect("json");
    let names: Vec<&str> = answer["data"]["__type"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(names.contains(&"isbn13") && !names.contains(&"isbn") && !names.contains(&"copiesSold"), "{names:?}");
    gateway.shutdown().await;
}

#[test]
fn bad_field_config_is_refused_naming_the_key() {
    crate::support::assert_config_refused(&[
        ("[graphql.fields.\"Book.nope\"]\nhidden = true\n", "graphql.fields.\"Book.nope\"", "Book has no field `nope`"),
        ("[graphql.fields.\"Nope.x\"]\nhidden = true\n", "graphql.fields.\"Nope.x\"", "no object type `Nope`"),
        (
            "[graphql.fields.\"Book.isbn\"]\nname = \"title\"\n",
            "graphql.fields.\"Book.isbn\".name",
            "already has a field `title`",
        ),
        (
            "[graphql.fields.\"Book.isbn\"]\nname = \"1x\"\n",
            "graphql.fields.\"Book.isbn\".name",
            "not a GraphQL field name",
        ),
    ]);
}

#[tokio::test]
async fn a_rest_sources_answers_are_edited_before_their_bindings_read_them() {
    let config = "[[transforms]]\nsources = [\"authors\"]\nresponse_body = { drop = [\"born\"], inject = { \"country\" = \"XX\" } }\n";
    let (gateway, _dir) = TestGateway::stitched_with_config(config).await;
    let answer: serde_json::Value = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .body(json!({"query": "{ author(id: \"1\") { name born country } }"}).to_string())
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        answer["data"]["author"],
        json!({"name": "Ursula K. Le Guin", "born": null, "country": "XX"}),
        "{answer}"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_deprecated_version_says_so_on_rest_and_in_the_graphql_schema() {
    let config = "[deprecations.\"catalog.v1.Catalog\"]\nsince = \"2026-01-01T00:00:00Z\"\nsunset = \"2027-06-30T00:00:00Z\"\nlink = \"https://example.com/catalog/v2\"\n\
                  [backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(config).await;
    let (status, _, headers) = get_with(&gateway, "/v1/shelves/1/books/1", &[]).await;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(status, 200);
    assert_eq!(header("deprecation").as_deref(), Some("@1767225600"));
    assert_eq!(header("sunset").as_deref(), Some("Wed, 30 Jun 2027 00:00:00 GMT"));
    assert_eq!(header("link").as_deref(), Some("<https://example.com/catalog/v2>; rel=\"deprecation\""));
    let answer: serde_json::Value = gateway
        .client
        .post(format!("{}/graphql", gateway.base))
        .header("content-type", "application/json")
        .body(
            json!({"query": "{ __schema { queryType { fields(includeDeprecated: true) { name isDeprecated } } } }"})
                .to_string(),
        )
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let fields = answer["data"]["__schema"]["queryType"]["fields"].as_array().expect("fields");
    let get_book = fields.iter().find(|f| f["name"] == "getBook").expect("getBook");
    assert_eq!(get_book["isDeprecated"], true, "{answer}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn generated_types_can_be_renamed() {
    let config = "[graphql.type_names]\nBook = \"CatalogBook\"\nGenre = \"BookGenre\"\n\
                  [backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(config).await;
    let query = |text: &str| {
        let body = json!({ "query": text }).to_string();
        let request =
            gateway.client.post(format!("{}/graphql", gateway.base)).header("content-type", "application/json");
        async move { request.body(body).send().await.expect("send").json::<serde_json::Value>().await.expect("json") }
    };
    let answer = query("{ getBook(name: \"shelves/1/books/1\") { __typename title genre } listBooks(parent: \"shelves/2\") { books { __typename genre } } }").await;
    assert_eq!(
        answer["data"]["getBook"],
        json!({"__typename": "CatalogBook", "title": "The Left Hand of Darkness", "genre": "FICTION"}),
        "{answer}"
    );
    assert_eq!(answer["data"]["listBooks"]["books"][0]["__typename"], "CatalogBook");
    let answer = query("{ new: __type(name: \"CatalogBook\") { name } old: __type(name: \"Book\") { name } genre: __type(name: \"BookGenre\") { kind } }").await;
    assert_eq!(
        answer["data"],
        json!({"new": {"name": "CatalogBook"}, "old": null, "genre": {"kind": "ENUM"}}),
        "{answer}"
    );
    gateway.shutdown().await;
    crate::support::assert_config_refused(&[
        ("[graphql.type_names]\nNope = \"X\"\n", "graphql.type_names.Nope", "no generated type `Nope`"),
        ("[graphql.type_names]\nBook = \"Genre\"\n", "graphql.type_names.Book", "a type `Genre` exists already"),
        ("[graphql.type_names]\nBook = \"9x\"\n", "graphql.type_names.Book", "not a GraphQL type name"),
    ]);
}

#[tokio::test]
async fn generated_types_can_be_hidden_with_everything_of_their_type() {
    let config = "[graphql]\nhidden_types = [\"Genre\", \"BookLabelsEntry\", \"HttpBody\"]\n\
                  [backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(config).await;
    let answer = gateway
        .graphql(
            "{ genre: __type(name: \"Genre\") { name } book: __type(name: \"Book\") { fields { name } } \
           input: __type(name: \"BookInput\") { inputFields { name } } \
           query: __type(name: \"Query\") { fields { name args { name } } } \
           subscription: __type(name: \"Subscription\") { fields { name } } }",
        )
        .await;
    let names = |value: &serde_json::Value, key: &str| -> Vec<String> {
        value.as_array().into_iter().flatten().filter_map(|f| f[key].as_str().map(str::to_owned)).collect()
    };
    let data = &answer["data"];
    assert_eq!(data["genre"], serde_json::Value::Null, "{answer}");
    let book = names(&data["book"]["fields"], "name");
    assert!(book.contains(&"title".to_owned()) && !book.contains(&"genre".to_owned()), "{book:?}");
    assert!(!book.contains(&"labels".to_owned()), "{book:?}");
    let input = names(&data["input"]["inputFields"], "name");
    assert!(input.contains(&"labels".to_owned()) && !input.contains(&"genre".to_owned()), "{input:?}");
    let roots = names(&data["query"]["fields"], "name");
    assert_eq!(roots, ["getBook", "listBooks"], "getCover answered HttpBody");
    let list_arguments = names(&data["query"]["fields"][1]["args"], "name");
    assert_eq!(list_arguments, ["parent", "pageSize", "pageToken", "author"]);
    assert_eq!(names(&data["subscription"]["fields"], "name"), ["watchBooks"]);
    // The hidden types' data is simply not asked for; the rest is served as before.
    let answer = gateway.graphql("{ getBook(name: \"shelves/1/books/1\") { title } }").await;
    assert_eq!(answer["data"]["getBook"]["title"], "The Left Hand of Darkness", "{answer}");
    gateway.shutdown().await;

    // A type left with no fields leaves too, and says why.
    let config = "[graphql]\nhidden_types = [\"Book\", \"BookEventKind\", \"DateTime\"]\n\
                  [backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(config).await;
    let ready = gateway.admin_json("/readyz").await;
    assert!(ready["warnings"].to_string().contains("`BookEvent` is hidden too"), "{ready}");
    let answer = gateway.graphql("{ __schema { subscriptionType { fields { name } } } }").await;
    assert_eq!(answer["data"]["__schema"]["subscriptionType"]["fields"], json!([{"name": "exportBooks"}]), "{answer}");
    gateway.shutdown().await;
    crate::support::assert_config_refused(&[(
        "[graphql]\nhidden_types = [\"Nope\"]\n",
        "graphql.hidden_types.Nope",
        "no generated type `Nope`",
    )]);
}

#[tokio::test]
async fn a_service_can_be_mounted_under_a_path_prefix() {
    let config = "[rest.mounts]\n\"catalog.v1.Catalog\" = \"/legacy\"\n\
                  [backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(config).await;
    let (status, body, _) = get_with(&gateway, "/legacy/v1/shelves/1/books/1", &[]).await;
    assert_eq!((status, &body["title"]), (200, &json!("The Left Hand of Darkness")), "{body}");
    let (status, _, _) = get_with(&gateway, "/v1/shelves/1/books/1", &[]).await;
    assert_eq!(status, 404, "the annotated path itself is not served any more");
    // The default POST /pkg.Service/Method routes stay where they are.
    let (status, _, _) = gateway.call("POST", "/catalog.v1.Catalog/GetBook", "{\"name\":\"shelves/1/books/1\"}").await;
    assert_eq!(status, 200);
    gateway.shutdown().await;
    crate::support::assert_config_refused(&[(
        "[rest.mounts]\n\"catalog.v1.Catalog\" = \"legacy/\"\n",
        "rest.mounts.\"catalog.v1.Catalog\"",
        "is not a path prefix",
    )]);
}

#[tokio::test]
async fn a_header_or_query_parameter_chooses_the_version_on_one_path() {
    // The demo's one service mounted as version "1" under /legacy, chosen by header or query.
    let config = "[rest.mounts]\n\"catalog.v1.Catalog\" = \"/legacy\"\n\
                  [rest.versions]\nheader = \"api-version\"\nquery = \"api-version\"\nprefixes = { \"1\" = \"/legacy\" }\n\
                  [backends.catalog]\nendpoints = [\"{backend}\"]\nservices = [\"catalog.v1\"]\n";
    let (gateway, _dir) = TestGateway::demo_with_config(config).await;
    let book = "/v1/shelves/1/books/1";
    let (status, body, _) = get_with(&gateway, book, &[("api-version", "1".to_owned())]).await;
    assert_eq!((status, &body["title"]), (200, &json!("The Left Hand of Darkness")), "{body}");
    let (status, body, _) = get_with(&gateway, "/v1/shelves/1/books?api-version=1&pageSize=1", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["books"].as_array().map(Vec::len), Some(1), "the other parameters still bind: {body}");
    let (status, body, _) = get_with(&gateway, book, &[("api-version", "9".to_owned())]).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "version `9` is not served; the versions are 1");
    let (status, _, _) = get_with(&gateway, book, &[]).await;
    assert_eq!(status, 404, "without a version the unmounted path is routed as it is");
    gateway.shutdown().await;
}
