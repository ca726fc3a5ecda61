//! GraphQL over HTTP (`/graphql`): GET for queries and POST with a JSON body, per the
//! GraphQL-over-HTTP spec's media types. A document is parsed, validated and normalised against
//! the generated schema (`document`), its root fields become one Operation with a call each
//! (arguments as JSON by `input`), the gateway plans and runs them (queries concurrently,
//! mutations in order), and each answer is shaped to its selection (`shape`); a failed call is
//! a null with an error at its path, the others still answer.

mod authorize;
mod csrf;
mod document;
mod documents;
mod fragment_cycles;
mod input;
mod limits;
mod persisted;
mod response_cache;
pub(crate) mod run;
mod shapes;
mod streaming;
mod ws;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use crate::error::ErrorCode;
use crate::gateway::Gateway;
use documents::DocumentCache;
use persisted::PersistedError;
pub(crate) use persisted::PersistedQueries;
use run::Outcome;
pub use run::plan_query;
use shapes::ShapeCache;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// An HTTP-level refusal; keeps its status whatever the client accepts.
#[derive(Clone)]
struct Refusal {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    allow: Option<&'static str>,
    /// `WWW-Authenticate` for a refused credential.
    challenge: Option<String>,
    /// The body's errors, when there is more than one thing to say (else one from `message`).
    errors: Option<Vec<Json>>,
    /// Further response headers (`Retry-After`, `RateLimit`).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Refusal {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            allow: None,
            challenge: None,
            errors: None,
            headers: Vec::new(),
        }
    }

    /// 401 for a credential that did not verify.
    fn unauthenticated(error: &crate::policy::AuthError) -> Self {
        Refusal {
            challenge: Some(error.challenge()),
            ..Refusal::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, error.message.clone())
        }
    }

    /// The `errors` of its body.
    pub(super) fn errors(&self) -> Vec<Json> {
        self.errors
            .clone()
            .unwrap_or_else(|| vec![json!({"message": self.message, "extensions": {"code": self.code.graphql_code()}})])
    }

    fn into_response(self) -> Response {
        let mut response = respond(self.status, &json!({ "errors": self.errors() }), false);
        if let Some(allow) = self.allow {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response.headers_mut().extend(self.headers);
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// A refusal before the GraphQL endpoint read the request (a bad head, a long URI), in its
/// `errors` shape.
pub(crate) fn refusal_response(code: ErrorCode, message: &str) -> Response {
    Refusal::new(code.http_status(), code, message).into_response()
}

/// Parsed documents and validated shapes, kept across requests, and the count of operations
/// running over WebSockets.
#[derive(Clone)]
pub struct Caches {
    /// Parsed documents by text.
    pub(crate) documents: DocumentCache,
    /// Validated, normalised operations.
    pub(crate) shapes: ShapeCache,
    /// Operations running over WebSockets, gateway-wide (graphql.subscriptions.max_total).
    pub(crate) running: Arc<std::sync::atomic::AtomicUsize>,
    /// Running subscriptions, shared by identical subscribers.
    pub(crate) subscriptions: Arc<SharedSubscriptions>,
    /// Operations running over WebSockets per consumer (graphql.subscriptions.max_per_consumer).
    pub(crate) per_consumer: Arc<ws::ConsumerCounts>,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            documents: DocumentCache::default(),
            shapes: ShapeCache::default(),
            running: Arc::default(),
            subscriptions: Arc::new(SharedSubscriptions::new(1024)),
            per_consumer: Arc::default(),
        }
    }
}

/// Subscription payloads by operation, fanned out to every subscriber of the same one.
pub(crate) type SharedSubscriptions = crate::execute::fanout::Fanout<Result<Arc<str>, Vec<Json>>, Vec<Json>>;

impl Caches {
    /// Caches whose shared subscriptions let each subscriber fall `buffer` events behind.
    pub fn with_subscription_buffer(buffer: usize) -> Self {
        Caches { subscriptions: Arc::new(SharedSubscriptions::new(buffer)), ..Caches::default() }
    }
}

/// A GraphQL request's parts, from either method.
struct GraphqlRequest {
    query: String,
    /// A trusted document's id (`documentId`), instead of the text.
    document_id: Option<String>,
    operation_name: Option<String>,
    variables: Map<String, Json>,
    extensions: Map<String, Json>,
}

/// Most operations in one batched POST.
const MAX_BATCH: usize = 20;

/// One request, or a batch (a JSON array of them).
enum Requests {
    Single(GraphqlRequest),
    Batch(Vec<GraphqlRequest>),
}

/// Serves `/graphql`.
pub(crate) async fn handle_graphql(
    gateway: Arc<Gateway>,
    persisted: &PersistedQueries,
    caches: &Caches,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if ws::is_upgrade(&parts) {
        // Boxed, as the streaming start below: the common way (one answer) stays a small future.
        return Box::pin(ws::upgrade(gateway, persisted, caches, parts)).await;
    }
    let served = gateway.served();
    let snapshot = &served.snapshot;
    let modern = accepts_graphql_response(parts.headers.get(header::ACCEPT));
    let is_get = parts.method == Method::GET;
    if is_get && snapshot.config.graphql.graphiql && wants_html(&parts) {
        let mut response = Response::new(Body::from(GRAPHIQL));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        return response;
    }
    let csrf = csrf::check(&snapshot.config.graphql.csrf, &parts.method, &parts.headers);
    if let (Some(refusal), false) = (&csrf, is_get) {
        return refusal.clone().into_response();
    }
    let parsed = match parts.method {
        Method::GET => from_query(parts.uri.query().unwrap_or("")).map(Requests::Single),
        Method::POST => {
            let limit = usize::try_from(snapshot.config.rest.max_body_bytes).unwrap_or(usize::MAX);
            let read_timeout = snapshot.config.listener.body_read_timeout.get();
            // A compressed body is decoded as REST's are: the limit holds before and after.
            match crate::ingress::encoding::decode_request_body(
                body,
                parts.headers.get(header::CONTENT_ENCODING),
                limit,
            ) {
                Ok(body) => from_body(parts.headers.get(header::CONTENT_TYPE), body, limit, read_timeout).await,
                Err(unsupported) => Err(Refusal::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ErrorCode::UnsupportedMediaType,
                    unsupported.to_string(),
                )),
            }
        }
        _ => Err(Refusal {
            allow: Some("GET, POST"),
            ..Refusal::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, "use GET or POST on /graphql")
        }),
    };
    let requests = match parsed {
        Ok(requests) => requests,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(transport) = streaming::Transport::from_accept(parts.headers.get(header::ACCEPT)) {
        let Requests::Single(mut request) = requests else {
            let message = "a batch is answered as one JSON array; send `Accept: application/json`";
            return Refusal::new(StatusCode::NOT_ACCEPTABLE, ErrorCode::NotAcceptable, message).into_response();
        };
        let installs = gateway.installs();
        let served = installs.borrow().clone();
        let started = match admit(&served.snapshot, persisted, &mut request) {
            Some(refused) => run::Started::Result(refused),
            None => {
                let incremental = transport != streaming::Transport::Multipart;
                let client = parts.extensions.get::<crate::server::ClientAddr>().map(|c| c.0);
                let arrival =
                    run::Arrival { headers: &parts.headers, client, query: parts.uri.query(), csrf: csrf.as_ref() };
                Box::pin(run::start_operation(served.clone(), installs, caches, &request, arrival, is_get, incremental))
                    .await
            }
        };
        // Queries and mutations without deferred fragments under Apollo's multipart Accept
        // (which also accepts JSON) are answered as plain JSON.
        if matches!(transport, streaming::Transport::Multipart | streaming::Transport::MultipartDefer)
            && let run::Started::Result(outcome) = started
        {
            return match outcome {
                Outcome::Ran(body) => respond(StatusCode::OK, &body, modern),
                Outcome::Written(written) => respond_written(written, modern),
                Outcome::Cached(body, status) => cached(body, status, modern),
                Outcome::Refused(body) => document_failure(body, modern),
                Outcome::Http(refusal) => refusal.into_response(),
            };
        }
        let heartbeat = served.snapshot.config.graphql.subscriptions.keepalive.get();
        return streaming::respond(transport, started, heartbeat, gateway.shutting_down());
    }
    let client = parts.extensions.get::<crate::server::ClientAddr>().map(|c| c.0);
    let query = parts.uri.query();
    let csrf = csrf.as_ref();
    let run_one = |mut request: GraphqlRequest| {
        let served = served.clone();
        let headers = &parts.headers;
        async move {
            if let Some(refused) = admit(&served.snapshot, persisted, &mut request) {
                return refused;
            }
            let arrival = run::Arrival { headers, client, query, csrf };
            run::run_operation(&served, caches, &request, arrival, is_get).await
        }
    };
    match requests {
        Requests::Single(request) => match run_one(request).await {
            Outcome::Ran(body) => respond(StatusCode::OK, &body, modern),
            Outcome::Written(written) => respond_written(written, modern),
            Outcome::Cached(body, status) => cached(body, status, modern),
            Outcome::Refused(body) => document_failure(body, modern),
            Outcome::Http(refusal) => refusal.into_response(),
        },
        Requests::Batch(requests) => {
            let outcomes = futures_util::future::join_all(requests.into_iter().map(run_one)).await;
            let bodies: Vec<Json> = outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    Outcome::Ran(body) | Outcome::Refused(body) => body,
                    Outcome::Written(run::Written { body, .. }) | Outcome::Cached(body, _) => {
                        serde_json::from_slice(&body).unwrap_or(Json::Null)
                    }
                    Outcome::Http(refusal) => json!({ "errors": refusal.errors() }),
                })
                .collect();
            respond(StatusCode::OK, &Json::Array(bodies), modern)
        }
    }
}

/// What every request goes through before it is run: a trusted document's id becomes its
/// text, a persisted query's hash its document, and an enforced safelist refuses the rest.
/// Some(outcome) when the request is answered here.
fn admit(
    snapshot: &crate::snapshot::Snapshot,
    persisted: &PersistedQueries,
    request: &mut GraphqlRequest,
) -> Option<Outcome> {
    if let Err(refusal) = trusted_document(snapshot, request) {
        return Some(Outcome::Http(refusal));
    }
    match persisted.resolve(&mut request.query, &request.extensions) {
        Ok(()) if request.query.is_empty() => {
            let message = "`query` is required (or a persistedQuery hash the gateway knows)";
            return Some(Outcome::Http(Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message)));
        }
        Ok(()) => {}
        Err(PersistedError::NotFound) => {
            let code = ErrorCode::PersistedQueryNotFound.graphql_code();
            return Some(Outcome::Ran(
                json!({"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": code}}]}),
            ));
        }
        Err(PersistedError::Invalid(message)) => {
            return Some(Outcome::Http(Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message)));
        }
    }
    if let Some(trusted) = snapshot.trusted_documents.as_ref().filter(|t| t.enforce)
        && !trusted.contains_text(&request.query)
    {
        let message = "this gateway runs only trusted documents (graphql.trusted_documents); send a listed documentId";
        return Some(Outcome::Http(Refusal::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)));
    }
    None
}

/// Replaces a `documentId` with its trusted document's text.
fn trusted_document(snapshot: &crate::snapshot::Snapshot, request: &mut GraphqlRequest) -> Result<(), Refusal> {
    let Some(id) = request.document_id.take() else { return Ok(()) };
    let bad = |message: String| Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message);
    let Some(trusted) = &snapshot.trusted_documents else {
        return Err(bad("`documentId` needs trusted documents (graphql.trusted_documents)".into()));
    };
    if !request.query.is_empty() {
        return Err(bad("send either `query` or `documentId`, not both".into()));
    }
    let document = trusted.get(&id).ok_or_else(|| bad(format!("`documentId` {id} is not a trusted document")))?;
    request.query = document.to_string();
    Ok(())
}

/// A document that cannot run: 400 for `application/graphql-response+json` clients, 200 for
/// legacy `application/json` ones (GraphQL-over-HTTP).
fn document_failure(body: Json, modern: bool) -> Response {
    respond(if modern { StatusCode::BAD_REQUEST } else { StatusCode::OK }, &body, modern)
}

/// A 200 answer from the response cache (or just stored there), with its `x-cache` status.
fn cached(body: bytes::Bytes, status: crate::cache::CacheStatus, modern: bool) -> Response {
    let mut response = written_body(body, modern);
    response.headers_mut().insert(crate::ingress::observe::X_CACHE, HeaderValue::from_static(status.as_str()));
    response
}

fn respond(status: StatusCode, body: &Json, modern: bool) -> Response {
    note_errors(body);
    let mut response = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = status;
    let media = if modern { GRAPHQL_RESPONSE } else { "application/json" };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    response
}

/// A 200 answer whose body was written already.
fn respond_written(written: run::Written, modern: bool) -> Response {
    note_codes(&written.codes);
    written_body(written.body, modern)
}

/// A 200 answer of JSON text written already.
fn written_body(body: bytes::Bytes, modern: bool) -> Response {
    let mut response = Response::new(Body::from(body));
    let media = if modern { GRAPHQL_RESPONSE } else { "application/json" };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    response
}

/// Counts errors by their codes, for telemetry.
fn note_codes(codes: &[String]) {
    for code in codes {
        crate::telemetry::record::note_error(code);
    }
}

/// Notes each error's `extensions.code` (of every response of a batch) for telemetry.
fn note_errors(body: &Json) {
    let bodies = match body {
        Json::Array(bodies) => bodies.as_slice(),
        one => std::slice::from_ref(one),
    };
    for errors in bodies.iter().filter_map(|b| b.get("errors")?.as_array()) {
        for error in errors {
            let code = error.pointer("/extensions/code").and_then(Json::as_str).unwrap_or("INTERNAL_SERVER_ERROR");
            crate::telemetry::record::note_error(code);
        }
    }
}

/// A browser navigating to /graphql: it accepts HTML and sends no query.
fn wants_html(parts: &axum::http::request::Parts) -> bool {
    let accepts_html =
        parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    accepts_html && !parts.uri.query().unwrap_or("").split('&').any(|p| p.starts_with("query="))
}

/// GraphiQL, loaded from a public CDN by the browser, pointed at this endpoint.
const GRAPHIQL: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Switchyard GraphiQL</title>
<link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
</head>
<body style="margin:0">
<div id="graphiql" style="height:100vh"></div>
<script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
<script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
<script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
<script>
  const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(GraphiQL, { fetcher }));
</script>
</body>
</html>
"#;

fn accepts_graphql_response(accept: Option<&HeaderValue>) -> bool {
    accept
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.split(';').next().unwrap_or("").trim() == GRAPHQL_RESPONSE))
}

fn from_query(query: &str) -> Result<GraphqlRequest, Refusal> {
    let bad = |message: String| Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message);
    let mut request = GraphqlRequest {
        query: String::new(),
        document_id: None,
        operation_name: None,
        variables: Map::new(),
        extensions: Map::new(),
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = crate::transcode::percent::percent_decode(value, crate::transcode::percent::Keep::Nothing, true)
            .map_err(|e| bad(format!("query parameter `{name}`: {e}")))?
            .into_owned();
        match name {
            "query" => request.query = value,
            "operationName" => request.operation_name = Some(value).filter(|v| !v.is_empty()),
            "documentId" => request.document_id = Some(value).filter(|v| !v.is_empty()),
            "variables" if !value.is_empty() => match serde_json::from_str(&value) {
                Ok(Json::Object(variables)) => request.variables = variables,
                _ => return Err(bad("query parameter `variables` must be a JSON object".into())),
            },
            "extensions" if !value.is_empty() => match serde_json::from_str(&value) {
                Ok(Json::Object(extensions)) => request.extensions = extensions,
                _ => return Err(bad("query parameter `extensions` must be a JSON object".into())),
            },
            _ => {}
        }
    }
    if request.query.is_empty() && request.extensions.is_empty() && request.document_id.is_none() {
        return Err(bad("query parameter `query` is required".into()));
    }
    Ok(request)
}

async fn from_body(
    content_type: Option<&HeaderValue>,
    body: Body,
    limit: usize,
    read_timeout: std::time::Duration,
) -> Result<Requests, Refusal> {
    let essence = crate::ingress::request_head::media_type(content_type);
    if !essence.eq_ignore_ascii_case("application/json") {
        let essence = essence.to_ascii_lowercase();
        let message = format!("Content-Type `{essence}` is not supported; send application/json");
        return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::UnsupportedMediaType, message));
    }
    let Ok(read) = tokio::time::timeout(read_timeout, crate::ingress::encoding::read_body(body, limit)).await else {
        let message = format!(
            "the request body did not arrive within {} (listener.body_read_timeout)",
            humantime::format_duration(read_timeout)
        );
        return Err(Refusal::new(StatusCode::REQUEST_TIMEOUT, ErrorCode::RequestTimeout, message));
    };
    let bytes = read.map_err(|error| {
        if let Some(message) = crate::ingress::encoding::too_large_message(&error, limit) {
            Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, message)
        } else {
            let message = format!("cannot read the request body: {error}");
            Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message)
        }
    })?;
    let bad = |message: String| Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message);
    if let Some(request) = single_request(&bytes) {
        return Ok(Requests::Single(request));
    }
    match serde_json::from_slice::<Json>(&bytes) {
        Ok(Json::Object(object)) => request_from_object(object).map(Requests::Single).map_err(bad),
        Ok(Json::Array(items)) if items.is_empty() => Err(bad("a batch holds at least one operation".into())),
        Ok(Json::Array(items)) if items.len() > MAX_BATCH => {
            Err(bad(format!("a batch holds at most {MAX_BATCH} operations; this one has {}", items.len())))
        }
        Ok(Json::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Json::Object(object) => request_from_object(object).map_err(|m| bad(format!("batch[{i}]: {m}"))),
                _ => Err(bad(format!("batch[{i}]: each operation is a JSON object"))),
            })
            .collect::<Result<_, _>>()
            .map(Requests::Batch),
        _ => Err(bad("the body must be a JSON object with a `query` (or an array of them)".into())),
    }
}

/// A single request's members read straight into their fields, for the common body: a JSON
/// object whose members have the types they should, each once. None for anything else (a
/// batch, a wrong type, a repeated member, bad JSON), which [`request_from_object`] reads,
/// naming what is wrong. The top-level object is never built as a map (hashing every key).
fn single_request(bytes: &[u8]) -> Option<GraphqlRequest> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Members {
        #[serde(default)]
        query: Option<String>,
        #[serde(default)]
        operation_name: Option<String>,
        #[serde(default)]
        document_id: Option<String>,
        #[serde(default)]
        variables: Option<Map<String, Json>>,
        #[serde(default)]
        extensions: Option<Map<String, Json>>,
    }
    // A derived struct also reads a JSON array by position: only objects come this way.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let members: Members = serde_json::from_slice(bytes).ok()?;
    Some(GraphqlRequest {
        query: members.query.unwrap_or_default(),
        document_id: members.document_id,
        operation_name: members.operation_name,
        variables: members.variables.unwrap_or_default(),
        extensions: members.extensions.unwrap_or_default(),
    })
}

fn request_from_object(mut object: Map<String, Json>) -> Result<GraphqlRequest, String> {
    let query = match object.remove("query") {
        Some(Json::String(query)) => query,
        None | Some(Json::Null) => String::new(),
        Some(_) => return Err("`query` must be a string".into()),
    };
    let operation_name = match object.remove("operationName") {
        Some(Json::String(name)) => Some(name),
        None | Some(Json::Null) => None,
        Some(_) => return Err("`operationName` must be a string".into()),
    };
    let document_id = match object.remove("documentId") {
        Some(Json::String(id)) => Some(id),
        None | Some(Json::Null) => None,
        Some(_) => return Err("`documentId` must be a string".into()),
    };
    let variables = match object.remove("variables") {
        Some(Json::Object(variables)) => variables,
        None | Some(Json::Null) => Map::new(),
        Some(_) => return Err("`variables` must be an object".into()),
    };
    let extensions = match object.remove("extensions") {
        Some(Json::Object(extensions)) => extensions,
        None | Some(Json::Null) => Map::new(),
        Some(_) => return Err("`extensions` must be an object".into()),
    };
    Ok(GraphqlRequest { query, document_id, operation_name, variables, extensions })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's fields, comparable.
    fn fields(request: &GraphqlRequest) -> (String, Option<String>, Option<String>, Json, Json) {
        (
            request.query.clone(),
            request.document_id.clone(),
            request.operation_name.clone(),
            Json::Object(request.variables.clone()),
            Json::Object(request.extensions.clone()),
        )
    }

    /// The direct reading of a single request reads what the map reading reads, and leaves
    /// to it every body it would refuse or read otherwise (so its errors keep their words).
    #[test]
    fn single_requests_read_directly_as_the_map_reading_reads_them() {
        // (body, read directly)
        let table: &[(&str, bool)] = &[
            (r#"{"query":"{ a }"}"#, true),
            (r#"  {"query":"{ a }","operationName":"A","variables":{"x":[1,{"y":null}]},"extensions":{"e":1}}"#, true),
            (r#"{"query":null,"operationName":null,"variables":null,"extensions":null}"#, true),
            (r#"{"documentId":"sha256:ab","unknown":[1,2,{"deep":true}]}"#, true),
            (r#"{"query":"{ \"escaped\\n\" \u00e9 }"}"#, true),
            (r#"{}"#, true),
            // Left to the map reading:
            (r#"{"query":1}"#, false),
            (r#"{"operationName":["A"]}"#, false),
            (r#"{"variables":[]}"#, false),
            (r#"{"extensions":"x"}"#, false),
            (r#"{"query":"{ a }","query":"{ b }"}"#, false),
            (r#"["{ a }"]"#, false),
            (r#"[{"query":"{ a }"}]"#, false),
            (r#"{"query":"{ a }""#, false),
            (r#""{ a }""#, false),
            (r#"{"query":"{ a }"} trailing"#, false),
        ];
        for (body, direct) in table {
            let read = single_request(body.as_bytes());
            assert_eq!(read.is_some(), *direct, "{body}");
            let mapped = match serde_json::from_slice::<Json>(body.as_bytes()) {
                Ok(Json::Object(object)) => request_from_object(object).ok(),
                _ => None,
            };
            if let Some(read) = read {
                let mapped = mapped.unwrap_or_else(|| panic!("{body}: the map reading refuses it"));
                assert_eq!(fields(&read), fields(&mapped), "{body}");
            }
        }
    }
}
