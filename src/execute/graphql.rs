//! Running a GraphQL plan: each root fetch's answer (a gRPC message or a REST JSON body) is
//! shaped to its selection, its stitched fetches run level by level below it, and the result is
//! completed (non-null rules, hidden key fields removed). A root fetch's failure is its own;
//! the others still answer.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Map, Value as Json};

use super::shape::{complete, shape_value};
use super::stitch::run_stitches;
use futures_util::FutureExt;

use super::{ExecuteError, unary_answer};
use crate::error::ErrorCode;
use crate::operation::{Metadata, Selection, SelectionSet};
use crate::plan::render::{Scope, graphql_request, grpc_request, http_request};
use crate::plan::{Fetch, FetchCall, Plan};
use crate::schema::{Binding, BoundCall, GraphqlSchema, TypeRef};
use crate::transcode::json::{JsonOptions, message_to_json};
use crate::upstream::{HttpRequest, Upstreams};

/// A root field's value, with the errors found below it.
#[derive(Debug)]
pub struct GraphqlOutput {
    /// The shaped value (null when it could not be completed).
    pub value: OutputValue,
    /// Field errors, with paths relative to the root field.
    pub errors: Vec<FieldError>,
    /// False when the value is null in a non-null root position (the error propagates to `data`).
    pub complete: bool,
}

/// A root field's shaped value: serde_json's, or a supergraph answer projected straight into
/// JSON text (copied into the response as it is; read back only where something must change
/// it).
#[derive(Debug, Clone, PartialEq)]
pub enum OutputValue {
    /// A value shaped as serde_json's.
    Json(Json),
    /// A projected supergraph answer, as JSON text.
    Written(Vec<u8>),
}

impl OutputValue {
    /// The value as serde_json's.
    pub fn into_json(self) -> Json {
        match self {
            OutputValue::Json(json) => json,
            OutputValue::Written(text) => serde_json::from_slice(&text).unwrap_or(Json::Null),
        }
    }
}

/// An error at a path.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Response keys and list indices from the root field's value.
    pub path: Vec<Json>,
    /// What went wrong.
    pub message: String,
    /// Its code.
    pub code: ErrorCode,
}

/// What every call of one operation shares.
pub(super) struct Context<'a> {
    pub(super) upstreams: &'a Upstreams,
    pub(super) schema: &'a GraphqlSchema,
    pub(super) metadata: &'a Metadata,
    pub(super) timeout: Option<Duration>,
}

/// Runs a GraphQL plan; one result per root fetch, in order.
pub async fn execute_graphql_plan(
    plan: Plan,
    upstreams: &Upstreams,
    schema: &GraphqlSchema,
) -> Vec<Result<GraphqlOutput, ExecuteError>> {
    if plan.serial {
        let mut results = Vec::with_capacity(plan.fetches.len());
        for fetch in plan.fetches {
            results.push(run_root(fetch, upstreams, schema, None).await);
        }
        return results;
    }
    // Supergraph root fields run together: their entity fetches share each level's requests.
    let federated = plan.fetches.iter().filter(|f| matches!(f.call, FetchCall::Subgraph(_)) && f.cluster.is_some());
    if federated.count() < 2 {
        return join_all(plan.fetches.into_iter().map(|fetch| run_root(fetch, upstreams, schema, None))).await;
    }
    let (joint, others): (Vec<_>, Vec<_>) = plan
        .fetches
        .into_iter()
        .enumerate()
        .partition(|(_, f)| matches!(f.call, FetchCall::Subgraph(_)) && f.cluster.is_some());
    let together = async {
        let roots: Option<Vec<_>> = joint.iter().map(|(_, fetch)| subgraph_root(fetch, upstreams, schema)).collect();
        let answers: Vec<Option<Prefetched>> = match roots {
            Some(roots) => super::federation::run_subgraph_fetches(roots).await.into_iter().map(Some).collect(),
            None => joint.iter().map(|_| None).collect(),
        };
        join_all(
            joint
                .into_iter()
                .zip(answers)
                .map(|((i, fetch), answer)| run_root(fetch, upstreams, schema, answer).map(move |r| (i, r))),
        )
        .await
    };
    let apart =
        join_all(others.into_iter().map(|(i, fetch)| run_root(fetch, upstreams, schema, None).map(move |r| (i, r))));
    let (mut results, rest) = futures_util::future::join(together, apart).await;
    results.extend(rest);
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, result)| result).collect()
}

/// What `run_subgraph_fetches` needs of a supergraph root fetch (None for any other fetch).
fn subgraph_root<'a>(
    fetch: &'a Fetch,
    upstreams: &'a Upstreams,
    schema: &'a GraphqlSchema,
) -> Option<super::federation::RootRequest<'a>> {
    let FetchCall::Subgraph(subgraph) = &fetch.call else { return None };
    Some(super::federation::RootRequest {
        fetch: subgraph,
        cluster: fetch.cluster.as_deref()?,
        context: Context { upstreams, schema, metadata: &fetch.metadata, timeout: fetch.timeout },
        cache: fetch.cache.as_ref(),
        transform: fetch.transform.as_deref(),
    })
}

/// A supergraph root field's merged answer, fetched ahead (with other root fields').
pub(super) type Prefetched = Result<(crate::tree::Value, Vec<FieldError>), ExecuteError>;

async fn run_root(
    mut fetch: Fetch,
    upstreams: &Upstreams,
    schema: &GraphqlSchema,
    prefetched: Option<Prefetched>,
) -> Result<GraphqlOutput, ExecuteError> {
    if matches!(fetch.call, FetchCall::Subgraph(_)) && fetch.stitches.is_empty() {
        return project_subgraph_root(&mut fetch, upstreams, schema, prefetched).await;
    }
    let Some(fetched) = fetch_root(&mut fetch, upstreams, schema, prefetched).await? else {
        let empty = OutputValue::Json(Json::Object(Map::new()));
        return Ok(GraphqlOutput { value: empty, errors: Vec::new(), complete: true });
    };
    let Fetched { mut value, ty, mut errors } = fetched;
    let Selection::Graphql { fields, .. } = &fetch.selection else { return Err(not_graphql()) };
    let context = Context { upstreams, schema, metadata: &fetch.metadata, timeout: fetch.timeout };
    let needs_completion = !fetch.stitches.is_empty()
        || !fetch.entities.is_empty()
        || matches!(fetch.call, FetchCall::Bound { .. } | FetchCall::Subgraph(_));
    if !fetch.stitches.is_empty() {
        run_stitches(&mut value, &fetch.stitches, &context, &mut errors).await;
    }
    let complete = !needs_completion || complete(&mut value, &ty, fields, schema, &mut Vec::new(), &mut errors);
    Ok(GraphqlOutput { value: OutputValue::Json(value), errors, complete })
}

/// A supergraph root field with no stitched fetch below it: its subgraph fetches' merged
/// answer, projected onto the selection in one pass.
/// (`&mut`: see `fetch_root`.)
async fn project_subgraph_root(
    fetch: &mut Fetch,
    upstreams: &Upstreams,
    schema: &GraphqlSchema,
    prefetched: Option<Prefetched>,
) -> Result<GraphqlOutput, ExecuteError> {
    let Selection::Graphql { type_name, fields, .. } = &fetch.selection else { return Err(not_graphql()) };
    let (answer, mut errors) = match prefetched {
        Some(answer) => answer?,
        None => {
            let FetchCall::Subgraph(subgraph) = &fetch.call else { return Err(not_graphql()) };
            let Some(cluster) = fetch.cluster.as_deref() else {
                return Err(ExecuteError::NoBackend { name: fetch.describe() });
            };
            let context = Context { upstreams, schema, metadata: &fetch.metadata, timeout: fetch.timeout };
            let (cache, transform) = (fetch.cache.as_ref(), fetch.transform.as_deref());
            super::federation::run_subgraph_fetch(subgraph, cluster, &context, cache, transform).await?
        }
    };
    let ty = fetch.output.clone().unwrap_or(TypeRef {
        name: type_name.clone(),
        list: false,
        non_null: false,
        item_non_null: false,
    });
    let (text, complete) = super::project::project(&answer, &ty, fields, schema, &mut errors);
    Ok(GraphqlOutput { value: OutputValue::Written(text), errors, complete })
}

fn not_graphql() -> ExecuteError {
    ExecuteError::Shape("a GraphQL fetch has a GraphQL selection".into())
}

/// A root fetch's answer shaped to its selection, before its stitched fetches.
pub(super) struct Fetched {
    pub(super) value: Json,
    pub(super) ty: TypeRef,
    pub(super) errors: Vec<FieldError>,
}

/// Makes a root fetch and shapes its answer; None for an empty message with nothing selected.
/// (`&mut`: a fetch may hold a client's request stream, which is Send but not Sync.)
pub(super) async fn fetch_root(
    fetch: &mut Fetch,
    upstreams: &Upstreams,
    schema: &GraphqlSchema,
    prefetched: Option<Prefetched>,
) -> Result<Option<Fetched>, ExecuteError> {
    let Selection::Graphql { type_name, fields, .. } = &fetch.selection else { return Err(not_graphql()) };
    let context = Context { upstreams, schema, metadata: &fetch.metadata, timeout: fetch.timeout };
    let cluster = fetch.cluster.as_deref().ok_or_else(|| ExecuteError::NoBackend { name: fetch.describe() })?;
    let mut remote = Vec::new();
    let (answer, ty) = match &fetch.call {
        FetchCall::Grpc { method, input, traits } => {
            let Some(request) = input.encoded() else {
                return Err(ExecuteError::Shape(format!("{} takes one request message", method.full_name())));
            };
            let (body, _, _) = unary_answer(
                upstreams,
                cluster,
                (method, *traits),
                request.into(),
                &fetch.metadata,
                fetch.timeout,
                fetch.cache.as_ref(),
            )
            .await?;
            if let Some(invalidation) = &fetch.invalidates {
                crate::cache::Cache::bump(&invalidation.store, &invalidation.tags);
            }
            if method.output().fields().len() == 0 && fields.fields.is_empty() {
                return Ok(None);
            }
            let mut answer = answer_json(schema, &method.output(), &body)?;
            if !fetch.entities.is_empty() {
                // Fields a supergraph adds to the message's type, merged in before shaping.
                super::federation::run_entities(&mut answer, &fetch.entities, &context, &mut remote).await;
            }
            (answer, TypeRef { name: type_name.clone(), list: false, non_null: false, item_non_null: false })
        }
        FetchCall::Bound { binding, arguments } => {
            let scope = Scope { args: arguments, parent: None, keys: None };
            let call = render_call(binding, &scope, fields, type_name, schema)?;
            let ty = fetch.output.clone().unwrap_or(TypeRef {
                name: type_name.clone(),
                list: false,
                non_null: false,
                item_non_null: false,
            });
            let (mut answer, remote_errors) = read_answer(
                binding,
                send_call(&call, cluster, &context, fetch.cache.as_ref(), fetch.transform.as_deref()).await?,
            )?;
            remote.extend(remote_errors);
            if !fetch.entities.is_empty() {
                // Fields a supergraph adds to the answer's type, merged in before shaping.
                super::federation::run_entities(&mut answer, &fetch.entities, &context, &mut remote).await;
            }
            (answer, ty)
        }
        FetchCall::Subgraph(subgraph) => {
            let ty = fetch.output.clone().unwrap_or(TypeRef {
                name: type_name.clone(),
                list: false,
                non_null: false,
                item_non_null: false,
            });
            let (answer, remote_errors) = match prefetched {
                Some(answer) => answer?,
                None => {
                    super::federation::run_subgraph_fetch(
                        subgraph,
                        cluster,
                        &context,
                        fetch.cache.as_ref(),
                        fetch.transform.as_deref(),
                    )
                    .await?
                }
            };
            remote.extend(remote_errors);
            (answer.into_json(), ty)
        }
    };
    let mut errors = remote;
    let value = shape_value(answer, &ty, fields, schema, &mut Vec::new(), &mut errors);
    Ok(Some(Fetched { value, ty, errors }))
}

/// An answer's bytes as proto3 JSON with defaults, written directly from the bytes (json_wire;
/// DynamicMessage where the writer steps aside).
fn answer_json(
    schema: &crate::schema::GraphqlSchema,
    output: &prost_reflect::MessageDescriptor,
    body: &[u8],
) -> Result<Json, ExecuteError> {
    let options = JsonOptions { emit_defaults: true, ..JsonOptions::default() };
    let json = schema.json_codec(output).to_json(body, &options)?;
    Ok(serde_json::from_slice(&json).unwrap_or(Json::Null))
}

/// A message as proto3 JSON with defaults, the form proto-sourced fields are read from.
pub(super) fn message_json(message: &prost_reflect::DynamicMessage) -> Result<Json, ExecuteError> {
    let options = JsonOptions { emit_defaults: true, ..JsonOptions::default() };
    Ok(serde_json::from_slice(&message_to_json(message, &options)?).unwrap_or(Json::Null))
}

/// A binding's call, rendered: equal calls are the same call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RenderedCall {
    Http(HttpRequest),
    Grpc { method: prost_reflect::MethodDescriptor, request: bytes::Bytes },
}

impl std::hash::Hash for RenderedCall {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            RenderedCall::Http(request) => request.hash(state),
            RenderedCall::Grpc { method, request } => {
                method.full_name().hash(state);
                request.hash(state);
            }
        }
    }
}

/// Renders `binding`'s call in `scope`; a GraphQL sub-operation selects `selection` on the
/// source's `type_name`.
pub(super) fn render_call(
    binding: &Binding,
    scope: &Scope<'_>,
    selection: &SelectionSet,
    type_name: &str,
    schema: &GraphqlSchema,
) -> Result<RenderedCall, ExecuteError> {
    let fail =
        |e: crate::plan::render::RenderError| ExecuteError::Render(format!("{e} (binding at {})", binding.declared_at));
    match &binding.call {
        BoundCall::Rest(rest) => Ok(RenderedCall::Http(http_request(rest, scope).map_err(fail)?)),
        BoundCall::Graphql(call) => Ok(RenderedCall::Http(
            graphql_request(call, &binding.select, scope, selection, type_name, schema).map_err(fail)?,
        )),
        BoundCall::Grpc { method, request } => {
            let message = grpc_request(method, request, scope).map_err(fail)?;
            Ok(RenderedCall::Grpc { method: method.clone(), request: prost::Message::encode_to_vec(&message).into() })
        }
    }
}

/// Sends a rendered call to `cluster`; the answer as JSON.
pub(super) async fn send_call(
    call: &RenderedCall,
    cluster: &str,
    context: &Context<'_>,
    cache: Option<&crate::cache::FetchCache>,
    transform: Option<&crate::transform::Transform>,
) -> Result<Json, ExecuteError> {
    match call {
        RenderedCall::Http(request) => {
            let body = send_http_call(request, cluster, context, cache, transform).await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Json::Null);
            }
            serde_json::from_slice(&body).map_err(|_| ExecuteError::NotJson { cluster: cluster.to_owned() })
        }
        RenderedCall::Grpc { method, request } => {
            // Rendered by json_to_message and encoded: already a valid request.
            let traits = crate::registry::MethodTraits::of(method);
            let (body, _, _) = unary_answer(
                context.upstreams,
                cluster,
                (method, traits),
                request.clone().into(),
                context.metadata,
                context.timeout,
                cache,
            )
            .await?;
            answer_json(context.schema, &method.output(), &body)
        }
    }
}

/// Sends a rendered HTTP request to `cluster`, with a transformation's body edits: the
/// request's, and the answer's before anything reads it. The answer's body.
pub(super) async fn send_http_call(
    request: &HttpRequest,
    cluster: &str,
    context: &Context<'_>,
    cache: Option<&crate::cache::FetchCache>,
    transform: Option<&crate::transform::Transform>,
) -> Result<bytes::Bytes, ExecuteError> {
    let edited = transform.filter(|t| !t.request_body.is_empty()).and_then(|t| {
        let body = t.request_body.apply_bytes(request.body.as_deref()?)?;
        Some(crate::upstream::HttpRequest { body: Some(bytes::Bytes::from(body)), ..request.clone() })
    });
    let request = edited.as_ref().unwrap_or(request);
    let mut body = send_http(context, cluster, request, cache).await?;
    if let Some(edits) = transform.map(|t| &t.response_body).filter(|e| !e.is_empty())
        && let Some(edited) = edits.apply_bytes(&body)
    {
        body = bytes::Bytes::from(edited);
    }
    Ok(body)
}

/// Sends a REST or GraphQL-source request; a read (GET, or a GraphQL query) shares the call
/// with identical ones in flight unless the cluster opts out.
async fn send_http(
    context: &Context<'_>,
    cluster: &str,
    request: &crate::upstream::HttpRequest,
    cache: Option<&crate::cache::FetchCache>,
) -> Result<bytes::Bytes, ExecuteError> {
    let client = context.upstreams.http(cluster)?;
    // POST is never idempotent by its verb: an idempotent POST is a GraphQL source's query.
    let read = request.method == http::Method::GET || (request.method == http::Method::POST && request.idempotent);
    let mut identity = Vec::new();
    for (name, value) in &request.headers {
        identity.extend_from_slice(name.as_str().as_bytes());
        identity.push(b':');
        identity.extend_from_slice(value.as_bytes());
        identity.push(b'\n');
    }
    identity.extend_from_slice(request.body.as_deref().unwrap_or_default());
    let target = format!("{} {}", request.method, request.path_and_query);
    let identity = bytes::Bytes::from(identity);
    let cached = match cache.filter(|_| read) {
        Some(cache) => {
            let key = super::cache_key(cache, format!("http {cluster} {target}"), identity.clone());
            match cache.store.lookup_shared(&key, &cache.tags).await {
                Some((entry, false)) => return Ok(entry.body),
                Some((entry, true)) => {
                    // Stale but within its window: answered now, refreshed once in the background.
                    if cache.store.begin_refresh(&key) {
                        refresh_http(client.clone(), request.clone(), context, cache.clone(), key);
                    }
                    return Ok(entry.body);
                }
                None => {}
            }
            let shared = cache.store.shared_versions(&cache.tags).await;
            Some((cache, key, cache.store.versions_of(&cache.tags), shared))
        }
        None => None,
    };
    let (body, headers) = send_http_shared(context, client, request, read, &target, identity).await?;
    if let Some((cache, key, versions, shared)) = cached {
        super::store_answer(cache, key, body.clone(), http::HeaderMap::new(), &headers, versions, shared);
    }
    Ok(body)
}

/// Refetches a stale cached answer in the background; only a successful answer replaces it.
fn refresh_http(
    client: crate::upstream::HttpClient,
    request: crate::upstream::HttpRequest,
    context: &Context<'_>,
    cache: crate::cache::FetchCache,
    key: crate::cache::Key,
) {
    let (metadata, timeout) = (context.metadata.clone(), context.timeout);
    tokio::spawn(async move {
        let versions = cache.store.versions_of(&cache.tags);
        let shared = cache.store.shared_versions(&cache.tags).await;
        if let Ok((body, headers)) = client.send(&request, &metadata, timeout).await {
            super::store_answer(&cache, key.clone(), body, http::HeaderMap::new(), &headers, versions, shared);
        }
        cache.store.end_refresh(&key);
    });
}

/// Sends a REST or GraphQL-source request, sharing a read with identical ones in flight.
async fn send_http_shared(
    context: &Context<'_>,
    client: &crate::upstream::HttpClient,
    request: &crate::upstream::HttpRequest,
    read: bool,
    target: &str,
    identity: bytes::Bytes,
) -> Result<(bytes::Bytes, http::HeaderMap), ExecuteError> {
    if !client.coalesces() || !read {
        return Ok(client.send(request, context.metadata, context.timeout).await?);
    }
    let (metadata, timeout) = (context.metadata.clone(), context.timeout);
    let call = || {
        let (client, request) = (client.clone(), request.clone());
        async move { Ok(std::sync::Arc::new(client.send(&request, &metadata, timeout).await?)) }.boxed()
    };
    let shared =
        super::coalesce::coalesced(client.identity(), target, &identity, context.metadata, timeout, call).await?;
    Ok((shared.0.clone(), shared.1.clone()))
}

/// An answer as its binding reads it: the selected value and, from a GraphQL source, the
/// errors it reported beside its data (paths relative to the field). A GraphQL source's error
/// with no data for the field fails the call.
pub(super) fn read_answer(binding: &Binding, answer: Json) -> Result<(Json, Vec<FieldError>), ExecuteError> {
    let BoundCall::Graphql(call) = &binding.call else { return Ok((select(answer, &binding.select), Vec::new())) };
    let (value, errors) = read_graphql_field(answer, &call.field, &format!("the {} source", call.source))?;
    Ok((select(value, &binding.select), errors))
}

/// Root field `field`'s value in a GraphQL response from `who` (a GraphQL source, a subgraph),
/// and its errors with their paths made relative to that value. An error with no data fails the
/// field.
pub(super) fn read_graphql_field(
    answer: Json,
    field: &str,
    who: &str,
) -> Result<(Json, Vec<FieldError>), ExecuteError> {
    let Json::Object(mut envelope) = answer else {
        return Err(ExecuteError::Remote {
            message: format!("{who}'s answer is not a GraphQL response"),
            code: ErrorCode::UpstreamError,
        });
    };
    let value = match envelope.remove("data") {
        Some(Json::Object(mut data)) => data.remove(field).unwrap_or(Json::Null),
        _ => Json::Null,
    };
    let errors = match envelope.remove("errors") {
        Some(Json::Array(reported)) => reported_errors(reported, field, who),
        _ => Vec::new(),
    };
    if value.is_null()
        && let Some(first) = errors.first()
    {
        return Err(ExecuteError::Remote { message: first.message.clone(), code: first.code });
    }
    Ok((value, errors))
}

/// The errors a GraphQL response reported, with their paths made relative to root field
/// `field`'s value.
pub(super) fn reported_errors(reported: Vec<Json>, field: &str, who: &str) -> Vec<FieldError> {
    let mut errors = Vec::with_capacity(reported.len());
    for error in reported {
        let message = error
            .get("message")
            .and_then(Json::as_str)
            .map_or_else(|| format!("{who} reported an error"), str::to_owned);
        let code =
            error.pointer("/extensions/code").and_then(Json::as_str).map_or(ErrorCode::UpstreamError, remote_code);
        let path = match error.get("path").and_then(Json::as_array) {
            Some(path) if path.first().and_then(Json::as_str) == Some(field) => path[1..].to_vec(),
            _ => Vec::new(),
        };
        errors.push(FieldError { path, message, code });
    }
    errors
}

/// A GraphQL source's `extensions.code` as ours, where it is one of the well-known ones.
pub(super) fn remote_code(code: &str) -> ErrorCode {
    match code {
        "BAD_USER_INPUT" => ErrorCode::InvalidArgument,
        "UNAUTHENTICATED" => ErrorCode::Unauthenticated,
        "FORBIDDEN" => ErrorCode::Forbidden,
        "NOT_FOUND" => ErrorCode::NotFound,
        "RATE_LIMITED" => ErrorCode::RateLimited,
        "UNAVAILABLE" => ErrorCode::Unavailable,
        "TIMEOUT" => ErrorCode::DeadlineExceeded,
        _ => ErrorCode::UpstreamError,
    }
}

/// The value at `path` inside `answer` (null when absent).
pub(super) fn select(answer: Json, path: &[String]) -> Json {
    let mut value = answer;
    for key in path {
        value = match value {
            Json::Object(mut object) => object.remove(key).unwrap_or(Json::Null),
            _ => return Json::Null,
        };
    }
    value
}
