//! Running one GraphQL operation: parse, validate and normalise (`document`), build the
//! Operation with a call per root field, execute it through the gateway, and shape the answers;
//! introspection and `__typename` are answered locally.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value as Json, json};

use super::document::{DocumentError, PreparedCall, RootEntry};
use super::documents::Unparsed;
use super::{Caches, GraphqlRequest, Refusal, limits};
use crate::error::ErrorCode;
use crate::execute::{OutputValue, shape_introspection};
use crate::gateway::{Served, execute_graphql_operation, execute_graphql_subscription};
use crate::ingress::forward::request_context;
use crate::operation::{CallInput, CallTarget, Operation, OperationKind, RootCall, Selection};
use crate::schema::Resolver;
use crate::transcode::json::{JsonOptions, json_to_message};

/// What running one request produced.
pub(super) enum Outcome {
    /// It ran (perhaps with field errors): a 200 body.
    Ran(Json),
    /// It ran, and its body was written as it was put together (it holds a projected
    /// supergraph answer): a 200 body.
    Written(Written),
    /// It was answered from the response cache, or ran and was stored there: the body's JSON
    /// text, sent as it is (its errors, if any, already counted).
    Cached(bytes::Bytes, crate::cache::CacheStatus),
    /// The document cannot run (parse or validation): 400 for GraphQL-response clients, else 200.
    Refused(Json),
    /// An HTTP-level refusal, whatever the client accepts.
    Http(Refusal),
}

/// A response body written as it was put together, with its errors' codes (for telemetry).
pub(super) struct Written {
    pub(super) body: bytes::Bytes,
    pub(super) codes: Vec<String>,
}

/// Where a request came from: its headers and the client's address.
#[derive(Clone, Copy)]
pub(super) struct Arrival<'a> {
    pub(super) headers: &'a HeaderMap,
    pub(super) client: Option<std::net::SocketAddr>,
    /// The URL's query string (an API key may be sent there).
    pub(super) query: Option<&'a str>,
    /// The refusal for a request that could be a cross-site request forgery (checked once the
    /// operation is known, after a GET mutation's 405).
    pub(super) csrf: Option<&'a Refusal>,
}

/// The identity the request's credentials prove, or the 401 refusal when one does not verify.
async fn authenticate(
    served: &Served,
    arrival: Arrival<'_>,
) -> Result<Option<Arc<crate::operation::Identity>>, Outcome> {
    let credentials = crate::policy::Credentials { headers: arrival.headers, query: arrival.query };
    served
        .snapshot
        .auth
        .authenticate(credentials)
        .await
        .map_err(|error| Outcome::Http(Refusal::unauthenticated(&error)))
}

/// The policy stage: authorization (denied fields marked, or the operation refused), then the
/// rate limits and quotas that count it.
async fn policy(
    served: &Served,
    prepared: &mut super::document::Prepared,
    context: &crate::operation::RequestContext,
    arrival: Arrival<'_>,
) -> Result<(), Refusal> {
    super::authorize::authorize(&served.snapshot, prepared, context.identity.as_deref())?;
    super::authorize::admit(&served.snapshot, prepared, context, arrival.headers).await
}

/// Runs `request`, which came by GET when `is_get`.
pub(super) async fn run_operation(
    served: &Served,
    caches: &Caches,
    request: &GraphqlRequest,
    arrival: Arrival<'_>,
    is_get: bool,
) -> Outcome {
    let identity = match authenticate(served, arrival).await {
        Ok(identity) => identity,
        Err(outcome) => return outcome,
    };
    let (mut prepared, mut context) = match prepare(served, caches, request, arrival) {
        Ok(prepared) => prepared,
        Err(outcome) => return outcome,
    };
    if prepared.kind == OperationKind::Subscription {
        let message = "subscriptions are served over WebSocket (graphql-transport-ws or graphql-ws) on this path";
        return Outcome::Refused(
            json!({"errors": [{"message": message, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}),
        );
    }
    if is_get && prepared.kind == OperationKind::Mutation {
        return Outcome::Http(Refusal {
            allow: Some("POST"),
            ..Refusal::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, "mutations are sent with POST")
        });
    }
    if let Some(refusal) = arrival.csrf.cloned() {
        return Outcome::Http(refusal);
    }
    served.snapshot.auth.admit(&mut context, identity, &served.snapshot.hash_claims);
    if let Err(refusal) = policy(served, &mut prepared, &context, arrival).await {
        return Outcome::Http(refusal);
    }
    if let Some(cache) = super::response_cache::ResponseCache::of(&served.snapshot, &prepared, request, &context) {
        let missed = match cache.lookup() {
            super::response_cache::Lookup::Hit(body) => return Outcome::Cached(body, crate::cache::CacheStatus::Hit),
            super::response_cache::Lookup::Miss(missed) => missed,
        };
        return match crate::cache::watching_vetoes(execute_prepared(served, prepared, context)).await {
            (Outcome::Written(written), vetoed) => {
                super::note_codes(&written.codes);
                if !vetoed {
                    missed.store(written.body.clone(), !written.codes.is_empty());
                }
                Outcome::Cached(written.body, crate::cache::CacheStatus::Miss)
            }
            (Outcome::Ran(answer), vetoed) => {
                super::note_errors(&answer);
                let body = bytes::Bytes::from(serde_json::to_vec(&answer).unwrap_or_default());
                if !vetoed {
                    missed.store(body.clone(), answer.get("errors").is_some());
                }
                Outcome::Cached(body, crate::cache::CacheStatus::Miss)
            }
            (other, _) => other,
        };
    }
    execute_prepared(served, prepared, context).await
}

/// What an operation over a WebSocket starts.
pub(super) enum Started {
    /// One result: queries, mutations, refusals.
    Result(Outcome),
    /// A subscription: one payload (`{data, errors}`) per event; an `Err` (its errors) ends it.
    Events(BoxStream<'static, Result<Arc<str>, Vec<Json>>>),
    /// A subscription that could not start (its errors).
    Failed(Vec<Json>),
    /// A query with deferred fragments: the initial payload (`{data, errors, hasNext}`), then
    /// one (`{incremental: [...], hasNext}`) per fragment; the last has `hasNext: false`.
    Incremental(BoxStream<'static, Json>),
}

/// Starts `request` over a WebSocket or a streaming HTTP response: queries and mutations run once; a subscription opens
/// its backend stream, pinned to the snapshot in `served`.
pub(super) async fn start_operation(
    served: Arc<Served>,
    installs: tokio::sync::watch::Receiver<Arc<Served>>,
    caches: &Caches,
    request: &GraphqlRequest,
    arrival: Arrival<'_>,
    is_get: bool,
    incremental: bool,
) -> Started {
    let identity = match authenticate(&served, arrival).await {
        Ok(identity) => identity,
        Err(outcome) => return Started::Result(outcome),
    };
    let (mut prepared, mut context) = match prepare(&served, caches, request, arrival) {
        Ok(prepared) => prepared,
        Err(outcome) => return Started::Result(outcome),
    };
    if is_get && prepared.kind == OperationKind::Mutation {
        return Started::Result(Outcome::Http(Refusal {
            allow: Some("POST"),
            ..Refusal::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, "mutations are sent with POST")
        }));
    }
    if let Some(refusal) = arrival.csrf.cloned() {
        return Started::Result(Outcome::Http(refusal));
    }
    served.snapshot.auth.admit(&mut context, identity, &served.snapshot.hash_claims);
    if let Err(refusal) = policy(&served, &mut prepared, &context, arrival).await {
        return Started::Result(Outcome::Http(refusal));
    }
    if incremental && prepared.kind == OperationKind::Query && !prepared.defers.is_empty() {
        return start_incremental(served, prepared, context);
    }
    if prepared.kind != OperationKind::Subscription {
        return Started::Result(execute_prepared(&served, prepared, context).await);
    }
    let Some(RootEntry::Call(call)) = prepared.entries.into_iter().next() else {
        return Started::Failed(vec![json!({"message": "a subscription selects one root field"})]);
    };
    let (response_key, location) = (call.response_key.clone(), call.location);
    if let Some(why) = &call.forbidden {
        return Started::Failed(vec![field_error(&response_key, location, why, ErrorCode::Forbidden)]);
    }
    let root = match root_call(*call) {
        Ok(root) => root,
        Err(message) => {
            return Started::Failed(vec![field_error(&response_key, location, &message, ErrorCode::InvalidArgument)]);
        }
    };
    // The stream has no deadline; each stitched call gets the usual one.
    let stitch_timeout = context.timeout;
    context.timeout = None;
    // Identical subscriptions (same snapshot, document, operation, variables and forwarded
    // headers, so the same identity; correlation headers aside) share one backend stream.
    let key = serde_json::to_string(&json!([
        served.snapshot.generation,
        request.query,
        request.operation_name,
        request.variables,
        context
            .metadata
            .iter()
            .filter(|(name, _)| !crate::operation::CORRELATION_HEADERS.contains(name))
            .map(|(n, v)| (n.to_owned(), hex::encode(v)))
            .collect::<Vec<_>>(),
    ]))
    .unwrap_or_default();
    let operation = Operation { kind: OperationKind::Subscription, calls: vec![root], context };
    let running = served.telemetry.metrics.subscription_started();
    let open = move || async move {
        let events = execute_graphql_subscription(served, installs, operation, stitch_timeout)
            .await
            .map_err(|error| vec![field_error(&response_key, location, &error.to_string(), error.code())])?;
        let payloads = events.map(move |event| match event {
            Ok(output) => Ok(Arc::from(event_payload(&response_key, location, output).to_string())),
            Err(error) => Err(vec![field_error(&response_key, location, &error.to_string(), error.code())]),
        });
        Ok::<_, Vec<Json>>(payloads.boxed())
    };
    match caches.subscriptions.join(key, open).await {
        // The subscription is counted as running while its subscriber holds the stream.
        Ok(shared) => Started::Events(Box::pin(shared.map({
            move |item| {
                let _running = &running;
                item
            }
        }).map(|item| match item {
            Ok(payload) => payload,
            // The oldest events were dropped for this subscriber; it carries on with the newest.
            Err(missed) => Ok(Arc::from(
                json!({"errors": [{
                    "message": format!("{missed} events were dropped: this subscriber fell behind (graphql.subscriptions.buffer)"),
                    "extensions": {"code": ErrorCode::RateLimited.graphql_code()}
                }]})
                .to_string(),
            )),
        }))),
        Err(errors) => Started::Failed(errors),
    }
}

/// One subscription event as a GraphQL response payload, its errors under the root field.
fn event_payload(key: &str, location: (usize, usize), output: crate::execute::GraphqlOutput) -> Json {
    let mut errors = Vec::new();
    for error in output.errors {
        let mut path = vec![Json::String(key.to_owned())];
        path.extend(error.path);
        errors.push(json!({
            "message": error.message,
            "locations": [{"line": location.0, "column": location.1}],
            "path": path,
            "extensions": {"code": error.code.graphql_code()}
        }));
    }
    let mut payload = Map::new();
    if !errors.is_empty() {
        payload.insert("errors".into(), Json::Array(errors));
    }
    let data = if output.complete { json!({ key: output.value.into_json() }) } else { Json::Null };
    payload.insert("data".into(), data);
    Json::Object(payload)
}

/// The common start of every operation: limits, parse, validate (cached), bind the variables,
/// and the request context with its deadline.
fn prepare(
    served: &Served,
    caches: &Caches,
    request: &GraphqlRequest,
    arrival: Arrival<'_>,
) -> Result<(super::document::Prepared, crate::operation::RequestContext), Outcome> {
    let snapshot = &served.snapshot;
    let limits = &snapshot.config.graphql.limits;
    let document = match caches.documents.parse(&request.query, limits) {
        Ok(document) => document,
        Err(Unparsed::OverLimit(exceeded)) => return Err(Outcome::Refused(limit_error(&exceeded))),
        Err(Unparsed::Invalid(error)) => {
            let locations = error.positions().map(|p| json!({"line": p.line, "column": p.column})).collect::<Vec<_>>();
            let body = json!({"errors": [{"message": error.to_string(), "locations": locations, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}]});
            return Err(Outcome::Refused(body));
        }
    };
    if let Err(exceeded) = limits::check_document(&document, limits) {
        return Err(Outcome::Refused(limit_error(&exceeded)));
    }
    note_operation_name(&document, request.operation_name.as_deref());
    let shaped =
        caches.shapes.shape(snapshot, &request.query, &document, request.operation_name.as_deref(), &request.variables);
    let prepared = match shaped.and_then(|shape| shape.bind(&request.variables, &snapshot.graphql)) {
        Ok(prepared) => prepared,
        Err(errors) => return Err(Outcome::Refused(validation_errors(&errors))),
    };
    let mut context = match request_context(arrival.headers, &snapshot.config.headers) {
        Ok(context) => context,
        Err(error) => {
            let refusal = Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, error.to_string());
            return Err(Outcome::Http(refusal));
        }
    };
    context.bound_timeout(snapshot.config.rest.timeout.get());
    crate::ingress::forward::capture_hash_inputs(&mut context, arrival.headers, arrival.client, snapshot);
    Ok((prepared, context))
}

/// Names the request's operation for telemetry: the one asked for, else the document's only
/// named operation (anonymous operations have none).
fn note_operation_name(document: &async_graphql_parser::types::ExecutableDocument, asked: Option<&str>) {
    use async_graphql_parser::types::DocumentOperations;
    let name = match (asked, &document.operations) {
        (Some(asked), _) => Some(asked),
        (None, DocumentOperations::Multiple(operations)) if operations.len() == 1 => {
            operations.keys().next().map(|name| name.as_str())
        }
        _ => None,
    };
    if let Some(name) = name {
        crate::telemetry::record::note_operation(name);
    }
}

/// Runs a prepared query or mutation: introspection and `__typename` locally, every root call
/// through the gateway, and one response body.
/// Runs a prepared operation. Its future (planning, the executor's fan-out, the answer's
/// assembly) is tens of kilobytes: boxed here, the way to it stays small, so what is answered
/// before it (a response-cache hit, a refusal) is not copied through futures that size at
/// every await and box on the way (`perf` put `memmove` at 11% of a cache hit's CPU).
fn execute_prepared<'a>(
    served: &'a Served,
    prepared: super::document::Prepared,
    context: crate::operation::RequestContext,
) -> futures_util::future::BoxFuture<'a, Outcome> {
    Box::pin(execute_prepared_here(served, prepared, context))
}

async fn execute_prepared_here(
    served: &Served,
    prepared: super::document::Prepared,
    context: crate::operation::RequestContext,
) -> Outcome {
    let RootWork { mut data, mut errors, calls, slots, .. } = root_work(prepared.entries, &served.snapshot, false);
    let operation = Operation { kind: prepared.kind, calls, context };
    let mut data_nulled = false;
    let mut projected: Vec<(String, Vec<u8>)> = Vec::new();
    for (result, (key, location)) in execute_graphql_operation(served, operation).await.into_iter().zip(slots) {
        match result {
            Ok(output) => {
                for error in output.errors {
                    let mut path = vec![Json::String(key.clone())];
                    path.extend(error.path);
                    errors.push(json!({
                        "message": error.message,
                        "locations": [{"line": location.0, "column": location.1}],
                        "path": path,
                        "extensions": {"code": error.code.graphql_code()}
                    }));
                }
                data_nulled |= !output.complete;
                match output.value {
                    OutputValue::Json(value) => {
                        data.insert(key, value);
                    }
                    // Written as it is, in its key's place (see `write_body`).
                    OutputValue::Written(text) => {
                        data.insert(key.clone(), Json::Null);
                        projected.push((key, text));
                    }
                }
            }
            Err(error) => errors.push(field_error(&key, location, &error.to_string(), error.code())),
        }
    }
    if !projected.is_empty() {
        return Outcome::Written(write_body(&errors, (!data_nulled).then_some(&data), &projected));
    }
    let mut body = Map::new();
    if !errors.is_empty() {
        body.insert("errors".into(), Json::Array(errors));
    }
    // A non-null root field that could not be completed nulls `data` (spec 6.4.4).
    body.insert("data".into(), if data_nulled { Json::Null } else { Json::Object(data) });
    Outcome::Ran(Json::Object(body))
}

/// A response body written straight from its parts: `errors` (when there are any), then
/// `data` (null when a non-null root field could not be completed) with each root key's value
/// from `projected` where it is there, else from `data`.
fn write_body(errors: &[Json], data: Option<&Map<String, Json>>, projected: &[(String, Vec<u8>)]) -> Written {
    let mut body = Vec::with_capacity(4096);
    body.push(b'{');
    if !errors.is_empty() {
        body.extend_from_slice(b"\"errors\":");
        let _ = serde_json::to_writer(&mut body, errors);
        body.push(b',');
    }
    body.extend_from_slice(b"\"data\":");
    match data {
        None => body.extend_from_slice(b"null"),
        Some(data) => {
            body.push(b'{');
            for (i, (key, value)) in data.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                let _ = serde_json::to_writer(&mut body, key);
                body.push(b':');
                match projected.iter().find(|(k, _)| k == key) {
                    Some((_, text)) => body.extend_from_slice(text),
                    None => {
                        let _ = serde_json::to_writer(&mut body, value);
                    }
                }
            }
            body.push(b'}');
        }
    }
    body.push(b'}');
    let codes = errors
        .iter()
        .map(|e| e.pointer("/extensions/code").and_then(Json::as_str).unwrap_or("INTERNAL_SERVER_ERROR").to_owned())
        .collect();
    Written { body: bytes::Bytes::from(body), codes }
}

/// Starts a query whose deferred fragments are delivered later: root fields and local answers
/// (introspection, `__typename`) in the initial payload, each fragment's data in its own.
fn start_incremental(
    served: Arc<Served>,
    prepared: super::document::Prepared,
    context: crate::operation::RequestContext,
) -> Started {
    let labels = prepared.defers.clone();
    let RootWork { data: initial, errors, calls, slots, defers: root_defers } =
        root_work(prepared.entries, &served.snapshot, true);
    let operation = Operation { kind: OperationKind::Query, calls, context };
    let parts = match crate::gateway::execute_graphql_incremental(served, operation, root_defers, labels.len()) {
        Ok(parts) => parts,
        Err(error) => {
            let body = json!({"errors": [{"message": error.to_string(), "extensions": {"code": error.code().graphql_code()}}], "data": null});
            return Started::Result(Outcome::Ran(body));
        }
    };
    let mut pending = Some((initial, errors));
    let payloads = tokio_stream::wrappers::ReceiverStream::new(parts)
        .map(move |part| part_payload(part, &mut pending, &slots, &labels));
    // Each payload says whether another follows: hold one back to know.
    let state = (payloads.boxed(), None::<Json>);
    Started::Incremental(Box::pin(futures_util::stream::unfold(Some(state), |state| async move {
        let (mut payloads, held) = state?;
        let mut current = match held {
            Some(held) => held,
            None => payloads.next().await?,
        };
        let next = payloads.next().await;
        current["hasNext"] = Json::Bool(next.is_some());
        match next {
            Some(next) => Some((current, Some((payloads, Some(next))))),
            None => Some((current, None)),
        }
    })))
}

/// One incremental part as its payload (without `hasNext`). `pending` holds the initial part's
/// local answers until the initial part comes.
fn part_payload(
    part: crate::execute::incremental::IncrementalPart,
    pending: &mut Option<(Map<String, Json>, Vec<Json>)>,
    slots: &[(String, (usize, usize))],
    labels: &[Option<String>],
) -> Json {
    use crate::execute::incremental::IncrementalPart;
    let error_json = |error: crate::execute::FieldError, prefix: &[Json], location: (usize, usize)| {
        let mut path = prefix.to_vec();
        path.extend(error.path);
        json!({
            "message": error.message,
            "locations": [{"line": location.0, "column": location.1}],
            "path": path,
            "extensions": {"code": error.code.graphql_code()}
        })
    };
    let location_of = |key: &str| slots.iter().find(|(k, _)| k == key).map_or((1, 1), |(_, l)| *l);
    match part {
        IncrementalPart::Initial(outputs) => {
            let (mut data, mut errors) = pending.take().unwrap_or_default();
            let mut data_nulled = false;
            for (index, output) in outputs {
                let Some((key, location)) = slots.get(index) else { continue };
                match output {
                    Ok(output) => {
                        let prefix = [Json::String(key.clone())];
                        errors.extend(output.errors.into_iter().map(|e| error_json(e, &prefix, *location)));
                        data_nulled |= !output.complete;
                        data.insert(key.clone(), output.value.into_json());
                    }
                    Err(error) => errors.push(field_error(key, *location, &error.to_string(), error.code())),
                }
            }
            let mut body = Map::new();
            if !errors.is_empty() {
                body.insert("errors".into(), Json::Array(errors));
            }
            body.insert("data".into(), if data_nulled { Json::Null } else { Json::Object(data) });
            Json::Object(body)
        }
        IncrementalPart::Deferred { id, items } => {
            let incremental: Vec<Json> = items
                .into_iter()
                .map(|item| {
                    let key = match item.path.first().and_then(Json::as_str) {
                        Some(key) => key.to_owned(),
                        None => item.data.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default(),
                    };
                    let location = location_of(&key);
                    let mut entry = Map::new();
                    entry.insert("data".into(), item.data);
                    entry.insert("path".into(), Json::Array(item.path.clone()));
                    if let Some(Some(label)) = labels.get(id) {
                        entry.insert("label".into(), Json::String(label.clone()));
                    }
                    if !item.errors.is_empty() {
                        let errors: Vec<Json> =
                            item.errors.into_iter().map(|e| error_json(e, &item.path, location)).collect();
                        entry.insert("errors".into(), Json::Array(errors));
                    }
                    Json::Object(entry)
                })
                .collect();
            json!({ "incremental": incremental })
        }
    }
}

/// An operation's root entries: those answered here (`__typename`, introspection, arguments
/// that cannot make a request), and the calls to make with their response keys, locations and
/// deferred fragments. `data` holds every root key in document order; with `incremental`,
/// the keys of root fields delivered later are left out.
struct RootWork {
    data: Map<String, Json>,
    errors: Vec<Json>,
    calls: Vec<RootCall>,
    slots: Vec<(String, (usize, usize))>,
    defers: Vec<Option<usize>>,
}

fn root_work(entries: Vec<RootEntry>, snapshot: &crate::snapshot::Snapshot, incremental: bool) -> RootWork {
    let mut work =
        RootWork { data: Map::new(), errors: Vec::new(), calls: Vec::new(), slots: Vec::new(), defers: Vec::new() };
    for entry in entries {
        match entry {
            RootEntry::Typename { response_key, type_name } => {
                work.data.insert(response_key, Json::String(type_name.to_owned()));
            }
            RootEntry::Introspection { response_key, type_name, fields } => {
                work.data.insert(response_key, introspection_answer(&snapshot.graphql, type_name.as_deref(), &fields));
            }
            RootEntry::Call(call) => {
                let (key, location, defer) = (call.response_key.clone(), call.location, call.defer);
                if !incremental || defer.is_none() {
                    work.data.insert(key.clone(), Json::Null);
                }
                if let Some(why) = &call.forbidden {
                    work.errors.push(field_error(&key, location, why, ErrorCode::Forbidden));
                    continue;
                }
                match root_call(*call) {
                    Ok(root) => {
                        work.calls.push(root);
                        work.slots.push((key, location));
                        work.defers.push(defer);
                    }
                    Err(message) => work.errors.push(field_error(&key, location, &message, ErrorCode::InvalidArgument)),
                }
            }
        }
    }
    work
}

/// `__schema` (no type name) or `__type(name:)`, shaped to `fields`.
fn introspection_answer(
    schema: &crate::schema::GraphqlSchema,
    type_name: Option<&str>,
    fields: &crate::operation::SelectionSet,
) -> Json {
    let introspected = schema.introspected();
    match type_name {
        None => shape_introspection(introspected, "__Schema", fields),
        Some(name) => introspected["types"]
            .as_array()
            .and_then(|types| types.iter().find(|t| t["name"] == name))
            .map_or(Json::Null, |t| shape_introspection(t, "__Type", fields)),
    }
}

fn limit_error(exceeded: &limits::LimitExceeded) -> Json {
    json!({"errors": [{"message": exceeded.0, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]})
}

fn field_error(key: &str, location: (usize, usize), message: &str, code: ErrorCode) -> Json {
    json!({
        "message": message,
        "locations": [{"line": location.0, "column": location.1}],
        "path": [key],
        "extensions": {"code": code.graphql_code()}
    })
}

fn validation_errors(errors: &[DocumentError]) -> Json {
    let errors: Vec<Json> = errors
        .iter()
        .map(|e| {
            let locations: Vec<Json> =
                e.locations.iter().map(|(line, column)| json!({"line": line, "column": column})).collect();
            json!({"message": e.message, "locations": locations, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}})
        })
        .collect();
    json!({ "errors": errors })
}

/// Parses, checks limits, validates and plans `query` against `snapshot` without running it
/// (`switchyard plan`, benches). The errors are the messages a client would get.
pub fn plan_query(
    snapshot: &crate::snapshot::Snapshot,
    caches: &Caches,
    query: &str,
    operation_name: Option<&str>,
    variables: &Map<String, Json>,
) -> Result<crate::plan::Plan, Vec<String>> {
    let config = &snapshot.config.graphql;
    let document = caches.documents.parse(query, &config.limits).map_err(|unparsed| match unparsed {
        Unparsed::OverLimit(exceeded) => vec![exceeded.0],
        Unparsed::Invalid(error) => vec![error.to_string()],
    })?;
    limits::check_document(&document, &config.limits).map_err(|e| vec![e.0])?;
    let prepared = caches
        .shapes
        .shape(snapshot, query, &document, operation_name, variables)
        .and_then(|shape| shape.bind(variables, &snapshot.graphql))
        .map_err(|errors| errors.into_iter().map(|e| e.message).collect::<Vec<_>>())?;
    let mut calls = Vec::new();
    for entry in prepared.entries {
        let RootEntry::Call(call) = entry else { continue };
        calls.push(root_call(*call).map_err(|e| vec![e])?);
    }
    let operation = Operation { kind: prepared.kind, calls, context: Default::default() };
    crate::gateway::plan_only(snapshot, operation).map_err(|e| vec![e.to_string()])
}

/// A validated root field as the operation's root call: its request message (or arguments, for
/// declared fields) and selection.
fn root_call(call: PreparedCall) -> Result<RootCall, String> {
    // Shared with the cached shape when constant: read in place, copied only where owned.
    let json = match &*call.request {
        Ok(json) => json,
        Err(message) => return Err(message.clone()),
    };
    let selection =
        Selection::Graphql { response_key: call.response_key, type_name: call.type_name, fields: call.fields };
    match &call.root.resolver {
        Resolver::Method(method) => {
            let bytes = serde_json::to_vec(json).unwrap_or_default();
            let input = json_to_message(method.input(), &bytes, &JsonOptions::default()).map_err(|e| e.to_string())?;
            Ok(RootCall::method(method.clone(), CallInput::Message(input), selection))
        }
        Resolver::Bound(_) => {
            let Json::Object(arguments) = json.clone() else { return Err("arguments must be an object".into()) };
            let root = match call.kind {
                OperationKind::Mutation => "Mutation",
                OperationKind::Subscription => "Subscription",
                OperationKind::Query => "Query",
            };
            let target = CallTarget::Field { root, name: call.root.name.clone() };
            Ok(RootCall { target, input: CallInput::Arguments(arguments), selection })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::document::RootEntry;
    use super::*;

    fn demo_snapshot() -> crate::snapshot::Snapshot {
        crate::snapshot::build_snapshot(&crate::demo::offline_sources().expect("demo"), 1).expect("snapshot")
    }

    /// The root calls' requests of `query` bound with `variables`.
    fn requests(
        snapshot: &crate::snapshot::Snapshot,
        caches: &Caches,
        query: &str,
        variables: Json,
    ) -> Vec<std::sync::Arc<Result<Json, String>>> {
        let Json::Object(variables) = variables else { panic!("variables are an object") };
        let Ok(document) = caches.documents.parse(query, &snapshot.config.graphql.limits) else {
            panic!("{query}: does not parse")
        };
        let prepared = caches
            .shapes
            .shape(snapshot, query, &document, None, &variables)
            .and_then(|shape| shape.bind(&variables, &snapshot.graphql))
            .unwrap_or_else(|errors| panic!("{query}: {:?}", errors.iter().map(|e| &e.message).collect::<Vec<_>>()));
        prepared
            .entries
            .into_iter()
            .filter_map(|entry| match entry {
                RootEntry::Call(call) => Some(call.request),
                _ => None,
            })
            .collect()
    }

    /// Arguments written as literals are bound once, with the shape, and shared by every
    /// request; the request is the one the same values given as variables bind to.
    #[test]
    fn literal_arguments_bind_once_to_what_variables_bind_to() {
        let snapshot = demo_snapshot();
        let caches = Caches::default();
        // (literal query, the same with variables, their values)
        let table = [
            (
                r#"{ getBook(name: "shelves/1/books/2") { title } }"#,
                "query($n: String!) { getBook(name: $n) { title } }",
                serde_json::json!({"n": "shelves/1/books/2"}),
            ),
            (
                r#"{ listBooks(parent: "shelves/1", pageSize: 3) { books { title } } }"#,
                "query($p: String!, $s: Int) { listBooks(parent: $p, pageSize: $s) { books { title } } }",
                serde_json::json!({"p": "shelves/1", "s": 3}),
            ),
            (
                r#"{ authors(country: "US") { name } }"#,
                "query($c: String) { authors(country: $c) { name } }",
                serde_json::json!({"c": "US"}),
            ),
            (
                r#"{ a: getBook(name: "shelves/1/books/1") { title } b: listBooks(parent: "shelves/2") { nextPageToken } }"#,
                "query($n: String!, $p: String!) { a: getBook(name: $n) { title } b: listBooks(parent: $p) { nextPageToken } }",
                serde_json::json!({"n": "shelves/1/books/1", "p": "shelves/2"}),
            ),
        ];
        for (literal, with_variables, values) in table {
            let first = requests(&snapshot, &caches, literal, serde_json::json!({}));
            let again = requests(&snapshot, &caches, literal, serde_json::json!({}));
            let bound = requests(&snapshot, &caches, with_variables, values.clone());
            assert_eq!(first.len(), bound.len(), "{literal}");
            for ((first, again), bound) in first.iter().zip(&again).zip(&bound) {
                assert!(first.is_ok(), "{literal}: {first:?}");
                assert_eq!(first, bound, "{literal}");
                assert!(std::sync::Arc::ptr_eq(first, again), "{literal}: bound once, shared");
            }
            let other = requests(&snapshot, &caches, with_variables, values);
            assert!(!std::sync::Arc::ptr_eq(&bound[0], &other[0]), "{with_variables}: bound per request");
        }
    }
}
