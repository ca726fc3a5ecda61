//! The hand-written baselines the e2e harness sets beside (c) and (e): what a service coded for
//! the catalog alone would do, with generated types (prost's derive, as prost-build writes
//! them) and no gateway. Both call the same backends round robin through one tonic channel.
//!
//! - REST: axum serving `GET /v1/shelves/{shelf}/books/{book}` → `GetBook` → the Book as proto3
//!   JSON, written by a hand-made `Serialize` (camelCase names, defaults left out, 64-bit
//!   integers as strings, enums by name, RFC 3339 timestamps, base64 bytes).
//! - GraphQL: async-graphql with `Query.getBook(name)` resolving through the same call, and
//!   (f)'s stitched schema: `Query.authors(country)` from the authors REST service (reqwest),
//!   `Author.books` from the catalog's ListBooks, `Book.writer` from the authors service again,
//!   batched per level with async-graphql's DataLoader (as the demo's schema batches it).
//!
//! Included with `#[path]` by benches/e2e.rs, which runs it as its own process.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::ser::{SerializeMap, Serializer};

/// `catalog.v1.GetBookRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetBookRequest {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
}

/// `catalog.v1.Book`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Book {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    #[prost(string, tag = "2")]
    pub(crate) title: String,
    #[prost(string, tag = "3")]
    pub(crate) author: String,
    #[prost(int64, tag = "4")]
    pub(crate) isbn: i64,
    #[prost(message, optional, tag = "5")]
    pub(crate) publish_time: Option<prost_types::Timestamp>,
    /// `google.protobuf.Int32Value`.
    #[prost(message, optional, tag = "6")]
    pub(crate) rating: Option<i32>,
    #[prost(int32, tag = "7")]
    pub(crate) genre: i32,
    #[prost(map = "string, string", tag = "8")]
    pub(crate) labels: HashMap<String, String>,
    #[prost(oneof = "Availability", tags = "9, 10")]
    pub(crate) availability: Option<Availability>,
    #[prost(bytes = "vec", tag = "11")]
    pub(crate) cover_thumbnail: Vec<u8>,
    #[prost(string, repeated, tag = "12")]
    pub(crate) tags: Vec<String>,
    #[prost(uint64, tag = "13")]
    pub(crate) copies_sold: u64,
    #[prost(string, tag = "14")]
    pub(crate) cover_content_type: String,
}

/// `catalog.v1.ListBooksRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListBooksRequest {
    #[prost(string, tag = "1")]
    pub(crate) parent: String,
    #[prost(int32, tag = "2")]
    pub(crate) page_size: i32,
    #[prost(string, tag = "3")]
    pub(crate) page_token: String,
    #[prost(int32, tag = "4")]
    pub(crate) genre: i32,
    #[prost(string, tag = "5")]
    pub(crate) author: String,
}

/// `catalog.v1.ListBooksResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListBooksResponse {
    #[prost(message, repeated, tag = "1")]
    pub(crate) books: Vec<Book>,
    #[prost(string, tag = "2")]
    pub(crate) next_page_token: String,
    #[prost(int64, tag = "3")]
    pub(crate) total_size: i64,
}

/// `Book.availability`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Availability {
    #[prost(bool, tag = "9")]
    InStock(bool),
    #[prost(message, tag = "10")]
    RestockTime(prost_types::Timestamp),
}

/// `catalog.v1.Genre`'s names.
fn genre_name(number: i32) -> Option<&'static str> {
    ["GENRE_UNSPECIFIED", "FICTION", "NON_FICTION", "POETRY", "SCIENCE"].get(usize::try_from(number).ok()?).copied()
}

/// A Book as proto3 JSON.
struct BookJson<'a>(&'a Book);

impl serde::Serialize for BookJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        let book = self.0;
        let mut map = serializer.serialize_map(None)?;
        for (key, text) in [("name", &book.name), ("title", &book.title), ("author", &book.author)] {
            if !text.is_empty() {
                map.serialize_entry(key, text)?;
            }
        }
        if book.isbn != 0 {
            map.serialize_entry("isbn", &book.isbn.to_string())?;
        }
        if let Some(time) = &book.publish_time {
            map.serialize_entry("publishTime", &time.to_string())?;
        }
        if let Some(rating) = book.rating {
            map.serialize_entry("rating", &rating)?;
        }
        if book.genre != 0 {
            match genre_name(book.genre) {
                Some(name) => map.serialize_entry("genre", name)?,
                None => map.serialize_entry("genre", &book.genre)?,
            }
        }
        if !book.labels.is_empty() {
            map.serialize_entry("labels", &book.labels)?;
        }
        match &book.availability {
            Some(Availability::InStock(in_stock)) => map.serialize_entry("inStock", in_stock)?,
            Some(Availability::RestockTime(time)) => map.serialize_entry("restockTime", &time.to_string())?,
            None => {}
        }
        if !book.cover_thumbnail.is_empty() {
            let text = base64::engine::general_purpose::STANDARD.encode(&book.cover_thumbnail);
            map.serialize_entry("coverThumbnail", &text)?;
        }
        if !book.tags.is_empty() {
            map.serialize_entry("tags", &book.tags)?;
        }
        if book.copies_sold != 0 {
            map.serialize_entry("copiesSold", &book.copies_sold.to_string())?;
        }
        if !book.cover_content_type.is_empty() {
            map.serialize_entry("coverContentType", &book.cover_content_type)?;
        }
        map.end()
    }
}

/// The catalog client: one tonic channel balanced over the backends.
#[derive(Clone)]
pub(crate) struct Catalog(tonic::client::Grpc<tonic::transport::Channel>);

impl Catalog {
    pub(crate) fn connect(backends: &[String]) -> Catalog {
        let endpoints = backends.iter().map(|url| tonic::transport::Endpoint::from_shared(url.clone()).expect("a URL"));
        Catalog(tonic::client::Grpc::new(tonic::transport::Channel::balance_list(endpoints)))
    }

    pub(crate) async fn list_books(&self, request: ListBooksRequest) -> Result<ListBooksResponse, tonic::Status> {
        let mut grpc = self.0.clone();
        grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static("/catalog.v1.Catalog/ListBooks");
        let codec = tonic_prost::ProstCodec::<ListBooksRequest, ListBooksResponse>::default();
        Ok(grpc.unary(tonic::Request::new(request), path, codec).await?.into_inner())
    }

    pub(crate) async fn get_book(&self, name: String) -> Result<Book, tonic::Status> {
        let mut grpc = self.0.clone();
        grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static("/catalog.v1.Catalog/GetBook");
        let codec = tonic_prost::ProstCodec::<GetBookRequest, Book>::default();
        Ok(grpc.unary(tonic::Request::new(GetBookRequest { name }), path, codec).await?.into_inner())
    }
}

/// grpc-gateway's status mapping, for the codes a GetBook gives.
fn http_status(status: &tonic::Status) -> http::StatusCode {
    match status.code() {
        tonic::Code::NotFound => http::StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => http::StatusCode::BAD_REQUEST,
        tonic::Code::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
        _ => http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn get_book(
    State(catalog): State<Catalog>,
    Path((shelf, book)): Path<(String, String)>,
) -> axum::response::Response {
    match catalog.get_book(format!("shelves/{shelf}/books/{book}")).await {
        Ok(book) => {
            let body = serde_json::to_vec(&BookJson(&book)).expect("JSON");
            ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(status) => {
            let body = serde_json::json!({"code": status.code() as i32, "message": status.message()});
            (http_status(&status), axum::Json(body)).into_response()
        }
    }
}

/// The GraphQL schema's Book: what (e) and (f) select.
struct BookObject(Book);

#[async_graphql::Object(name = "Book")]
impl BookObject {
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn author(&self) -> &str {
        &self.0.author
    }
    /// The book's author, from the authors service: one call per level for every book's author.
    async fn writer(&self, context: &async_graphql::Context<'_>) -> async_graphql::Result<Option<AuthorObject>> {
        let authors = context.data::<async_graphql::dataloader::DataLoader<AuthorsByName>>()?;
        Ok(authors.load_one(self.0.author.clone()).await?.map(AuthorObject))
    }
}

/// One author as the authors service writes it.
#[derive(Clone, serde::Deserialize)]
pub(crate) struct AuthorRecord {
    id: String,
    name: String,
    born: Option<i64>,
    country: Option<String>,
}

#[derive(serde::Deserialize)]
struct AuthorList {
    authors: Vec<AuthorRecord>,
}

/// The authors service.
#[derive(Clone)]
pub(crate) struct Authors {
    client: reqwest::Client,
    base: String,
}

impl Authors {
    /// `GET /authors` with the query pairs given.
    async fn list(&self, query: &[(&str, &str)]) -> Result<Vec<AuthorRecord>, String> {
        let response =
            self.client.get(format!("{}/authors", self.base)).query(query).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the authors service answered {}", response.status()));
        }
        Ok(response.json::<AuthorList>().await.map_err(|e| e.to_string())?.authors)
    }
}

/// Batches `Book.writer`: every name asked for in one level, in one `GET /authors?name=…`.
pub(crate) struct AuthorsByName(Authors);

impl async_graphql::dataloader::Loader<String> for AuthorsByName {
    type Value = AuthorRecord;
    type Error = String;

    async fn load(&self, names: &[String]) -> Result<HashMap<String, AuthorRecord>, String> {
        let query: Vec<(&str, &str)> = names.iter().map(|name| ("name", name.as_str())).collect();
        Ok(self.0.list(&query).await?.into_iter().map(|author| (author.name.clone(), author)).collect())
    }
}

/// The stitched schema's Author.
struct AuthorObject(AuthorRecord);

#[async_graphql::Object(name = "Author")]
impl AuthorObject {
    async fn id(&self) -> async_graphql::ID {
        async_graphql::ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn born(&self) -> Option<i64> {
        self.0.born
    }
    async fn country(&self) -> Option<&str> {
        self.0.country.as_deref()
    }
    /// The author's books, from the catalog (one ListBooks per author).
    async fn books(&self, context: &async_graphql::Context<'_>) -> async_graphql::Result<Vec<BookObject>> {
        let catalog = context.data::<Catalog>()?;
        let request = ListBooksRequest {
            parent: "shelves/-".into(),
            author: self.0.name.clone(),
            page_size: 100,
            ..ListBooksRequest::default()
        };
        let books = catalog.list_books(request).await.map_err(|status| status.message().to_owned())?.books;
        Ok(books.into_iter().map(BookObject).collect())
    }
}

struct Query;

#[async_graphql::Object]
impl Query {
    #[graphql(name = "getBook")]
    async fn get_book(&self, context: &async_graphql::Context<'_>, name: String) -> async_graphql::Result<BookObject> {
        let catalog = context.data::<Catalog>()?;
        Ok(BookObject(catalog.get_book(name).await.map_err(|status| status.message().to_owned())?))
    }

    /// Every author, or those of one country.
    async fn authors(
        &self,
        context: &async_graphql::Context<'_>,
        country: Option<String>,
    ) -> async_graphql::Result<Vec<AuthorObject>> {
        let authors = context.data::<Authors>()?;
        let query: Vec<(&str, &str)> = country.iter().map(|country| ("country", country.as_str())).collect();
        Ok(authors.list(&query).await?.into_iter().map(AuthorObject).collect())
    }
}

type Schema = async_graphql::Schema<Query, async_graphql::EmptyMutation, async_graphql::EmptySubscription>;

/// The authors client the schema was built with.
fn schema_authors(schema: &Schema) -> Authors {
    schema.data::<Authors>().expect("the schema holds the authors client").clone()
}

async fn graphql(State(schema): State<Schema>, body: axum::body::Bytes) -> axum::response::Response {
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return (http::StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    let authors = schema_authors(&schema);
    let loader = async_graphql::dataloader::DataLoader::new(AuthorsByName(authors), tokio::spawn);
    let response = schema.execute(request.data(loader)).await;
    let body = serde_json::to_vec(&response).expect("JSON");
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Both baselines on one loopback port: its address, and the future that serves them.
pub(crate) async fn serve(
    backends: &[String],
    authors: &str,
) -> (std::net::SocketAddr, impl std::future::Future<Output = ()>) {
    let catalog = Catalog::connect(backends);
    let authors = Authors { client: reqwest::Client::new(), base: authors.to_owned() };
    // Every request gets its own loader, as DataLoader's cache is per request.
    let schema = Schema::build(Query, async_graphql::EmptyMutation, async_graphql::EmptySubscription)
        .data(catalog.clone())
        .data(authors)
        .finish();
    let app = axum::Router::new()
        .route("/v1/shelves/{shelf}/books/{book}", axum::routing::get(get_book).with_state(catalog))
        .route("/graphql", axum::routing::post(graphql).with_state(schema));
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    // As the gateway does: no Nagle delay on answers.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    (address, async move { axum::serve(listener, app).await.expect("serve") })
}
