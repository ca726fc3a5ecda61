//! The executor: runs a Plan's fetches through upstream clients (concurrently when there are
//! several, in order for mutations) and decodes each answer. REST operations get response
//! messages; GraphQL operations get shaped values (`graphql`, `shape`) with their stitched
//! fields fetched after their parents, batched or deduplicated (`stitch`). Streaming calls are
//! in `stream`.

mod coalesce;
pub mod fanout;
mod federation;
mod graphql;
pub mod incremental;
mod shape;
mod stitch;
mod project;
mod walk;
mod stream;
mod subscription;

use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::join_all;
use prost_reflect::{DynamicMessage, MethodDescriptor};

use crate::cache::{CacheStatus, FetchCache};
use crate::error::ErrorCode;
use crate::operation::{Metadata, Selection};
use crate::plan::{Fetch, FetchCall, Plan};
use crate::registry::MethodTraits;
use crate::upstream::{UpstreamError, Upstreams};
use crate::wire_message::WireMessage;

pub use graphql::{FieldError, GraphqlOutput, OutputValue, execute_graphql_plan};
pub use shape::shape_introspection;

/// Projects a merged supergraph answer (`value`, of type `ty`) onto `selection`, as the
/// executor does for a supergraph root field: the JSON text, the errors found, and false when
/// the value is null in a non-null position. (Public for the benches.)
pub fn project_answer(
    value: &crate::tree::Value,
    ty: &crate::schema::TypeRef,
    selection: &crate::operation::SelectionSet,
    schema: &crate::schema::GraphqlSchema,
) -> (Vec<u8>, Vec<FieldError>, bool) {
    let mut errors = Vec::new();
    let (text, complete) = project::project(value, ty, selection, schema, &mut errors);
    (text, errors, complete)
}
pub use stream::{OutputStream, execute_streaming_fetch};
pub use subscription::SubscriptionEvents;

/// One fetch's answer.
#[derive(Debug)]
pub struct FetchOutput {
    /// The response message's wire bytes, as the backend sent them (or the cache kept them):
    /// REST writes them as JSON directly, without decoding them first.
    pub body: Bytes,
    /// The response message type.
    pub output: prost_reflect::MessageDescriptor,
    /// What the operation selected from it.
    pub selection: Selection,
    /// The backend's response headers and trailers.
    pub metadata: http::HeaderMap,
    /// Whether it came from the cache (None: not cacheable).
    pub cache: Option<CacheStatus>,
}

/// The direct writer's refusals are the executor's: an undecodable answer, or one with no
/// proto3 JSON form.
impl From<crate::transcode::json_wire::WireToJsonError> for ExecuteError {
    fn from(error: crate::transcode::json_wire::WireToJsonError) -> ExecuteError {
        use crate::transcode::json_wire::WireToJsonError;
        match error {
            WireToJsonError::Undecodable { type_name } => ExecuteError::Undecodable { type_name },
            WireToJsonError::NoJsonForm(error) => ExecuteError::NoJsonForm(error),
        }
    }
}

impl FetchOutput {
    /// The response message, decoded.
    pub fn message(&self) -> Result<DynamicMessage, ExecuteError> {
        decode_answer(&self.output, self.body.clone())
    }
}

/// An answer's bytes as a message of type `output`.
fn decode_answer(output: &prost_reflect::MessageDescriptor, body: Bytes) -> Result<DynamicMessage, ExecuteError> {
    DynamicMessage::decode(output.clone(), body)
        .map_err(|_| ExecuteError::Undecodable { type_name: output.full_name().to_owned() })
}

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecuteError {
    /// The backend call failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The client sent a request message that cannot be read.
    #[error("{0}")]
    Input(crate::operation::InputError),
    /// A unary fetch was given a stream of requests, or the reverse.
    #[error("{0}")]
    Shape(String),
    /// No backend serves the call.
    #[error("no backend serves {name}")]
    NoBackend {
        /// The service or source.
        name: String,
    },
    /// A declared field's call cannot be made from these values.
    #[error("{0}")]
    Render(String),
    /// A GraphQL source answered the field with an error.
    #[error("{message}")]
    Remote {
        /// Its message.
        message: String,
        /// Its code, where the source's is a known one.
        code: ErrorCode,
    },
    /// A REST backend's answer is not JSON.
    #[error("backend {cluster} answered with something that is not JSON")]
    NotJson {
        /// The cluster.
        cluster: String,
    },
    /// The backend's answer decodes but has no proto3 JSON form (a timestamp past year 9999).
    #[error("the backend's answer: {0}")]
    NoJsonForm(#[from] crate::transcode::json::NoJsonForm),
    /// The backend's answer could not be decoded as the method's response type.
    #[error("the backend answered with an undecodable {type_name}")]
    Undecodable {
        /// The expected message type.
        type_name: String,
    },
}

impl ExecuteError {
    /// The edge error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ExecuteError::Upstream(e) => e.code(),
            ExecuteError::Input(e) => e.code,
            ExecuteError::Shape(_) => ErrorCode::Internal,
            ExecuteError::Undecodable { .. } | ExecuteError::NotJson { .. } | ExecuteError::NoJsonForm(_) => {
                ErrorCode::UpstreamError
            }
            ExecuteError::NoBackend { .. } => ErrorCode::Unavailable,
            ExecuteError::Render(_) => ErrorCode::InvalidArgument,
            ExecuteError::Remote { code, .. } => *code,
        }
    }
}

/// Runs every fetch of `plan`; results are in the plan's order.
pub async fn execute_plan(plan: Plan, upstreams: &Upstreams) -> Vec<Result<FetchOutput, ExecuteError>> {
    if plan.fetches.len() == 1 {
        let fetch = plan.fetches.into_iter().next().expect("one fetch");
        return vec![run_fetch(fetch, upstreams).await];
    }
    if plan.serial {
        let mut results = Vec::with_capacity(plan.fetches.len());
        for fetch in plan.fetches {
            results.push(run_fetch(fetch, upstreams).await);
        }
        return results;
    }
    join_all(plan.fetches.into_iter().map(|fetch| run_fetch(fetch, upstreams))).await
}

async fn run_fetch(fetch: Fetch, upstreams: &Upstreams) -> Result<FetchOutput, ExecuteError> {
    let cluster = fetch.cluster.as_deref().ok_or_else(|| ExecuteError::NoBackend { name: fetch.describe() })?;
    let FetchCall::Grpc { method, input, traits } = fetch.call else {
        return Err(ExecuteError::Shape("a REST route calls a gRPC method".into()));
    };
    let Some(request) = input.into_encoded() else {
        return Err(ExecuteError::Shape(format!("{} takes one request message", method.full_name())));
    };
    let (body, metadata, cache) = unary_answer(
        upstreams,
        cluster,
        (&method, traits),
        request,
        &fetch.metadata,
        fetch.timeout,
        fetch.cache.as_ref(),
    )
    .await?;
    if let Some(invalidation) = &fetch.invalidates {
        crate::cache::Cache::bump(&invalidation.store, &invalidation.tags);
    }
    Ok(FetchOutput { body, output: method.output(), selection: fetch.selection, metadata, cache })
}

/// One unary gRPC call's answer bytes, from the cache or the backend. Only answers that
/// decode are cached, so a cached answer is not decoded again here.
async fn unary_answer(
    upstreams: &Upstreams,
    cluster: &str,
    (method, traits): (&MethodDescriptor, MethodTraits),
    request: WireMessage,
    metadata: &Metadata,
    timeout: Option<Duration>,
    cache: Option<&FetchCache>,
) -> Result<(Bytes, http::HeaderMap, Option<CacheStatus>), ExecuteError> {
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let output = method.output();
    let Some(cache) = cache else {
        let (body, headers) = grpc_answer(upstreams, cluster, traits, &path, request, metadata, timeout).await?;
        return Ok((body, headers, None));
    };
    let key = cache_key(cache, format!("grpc {path}"), request.to_bytes());
    match cache.store.lookup_shared(&key, &cache.tags).await {
        Some((entry, false)) => return Ok((entry.body, entry.metadata, Some(CacheStatus::Hit))),
        Some((entry, true)) => {
            if cache.store.begin_refresh(&key) {
                let client = upstreams.grpc(cluster)?.clone();
                let (cache, key, metadata) = (cache.clone(), key.clone(), metadata.clone());
                let (path, idempotent, output) = (path.clone(), traits.idempotent, method.output());
                tokio::spawn(async move {
                    let versions = cache.store.versions_of(&cache.tags);
                    let shared = cache.store.shared_versions(&cache.tags).await;
                    let answer = client.unary(&path, request, &metadata, timeout, idempotent).await;
                    // Only an answer that decodes replaces the stale one.
                    if let Some(reply) = answer.ok().filter(|r| DynamicMessage::decode(output, r.body.clone()).is_ok())
                    {
                        let headers = reply.metadata.into_headers();
                        store_answer(&cache, key.clone(), reply.body, headers.clone(), &headers, versions, shared);
                    }
                    cache.store.end_refresh(&key);
                });
            }
            return Ok((entry.body, entry.metadata, Some(CacheStatus::Stale)));
        }
        None => {}
    }
    let versions = cache.store.versions_of(&cache.tags);
    let shared = cache.store.shared_versions(&cache.tags).await;
    let (body, headers) = grpc_answer(upstreams, cluster, traits, &path, request, metadata, timeout).await?;
    decode_answer(&output, body.clone())?;
    store_answer(cache, key, body.clone(), headers.clone(), &headers, versions, shared);
    Ok((body, headers, Some(CacheStatus::Miss)))
}

/// Stores an answer under its rule, unless the backend's `Cache-Control` (in `backend`:
/// response headers, or gRPC metadata) forbids it: `no-store`, `no-cache`, or `private` for a
/// public rule (its key holds no identity). `max-age` / `s-maxage` shorten the TTL.
fn store_answer(
    cache: &FetchCache,
    key: crate::cache::Key,
    body: Bytes,
    metadata: http::HeaderMap,
    backend: &http::HeaderMap,
    versions: Vec<u64>,
    shared: Option<Vec<u64>>,
) {
    let mut entry = cache_entry(cache, body, metadata, versions);
    let directives = crate::cache::CacheControl::of(backend);
    if directives.no_store || (directives.private && !cache.rule.private) {
        crate::cache::note_not_stored();
        return;
    }
    if let Some(max_age) = directives.max_age {
        entry.ttl = entry.ttl.min(max_age);
    }
    crate::cache::Cache::insert_shared(&cache.store, key, entry, shared);
}

/// The cache key of a fetch: its target and request, the vary values and, for private rules,
/// the identity.
fn cache_key(cache: &FetchCache, target: String, request: Bytes) -> crate::cache::Key {
    crate::cache::Key { target, request, vary: cache.vary.clone(), identity: cache.identity.clone() }
}

fn cache_entry(cache: &FetchCache, body: Bytes, metadata: http::HeaderMap, versions: Vec<u64>) -> crate::cache::Entry {
    crate::cache::Entry {
        body,
        metadata,
        ttl: cache.rule.ttl,
        stale: cache.rule.stale,
        stored: std::time::Instant::now(),
        tags: cache.tags.clone(),
        versions,
    }
}

/// One unary gRPC call's encoded answer and metadata, shared with identical reads in flight.
async fn grpc_answer(
    upstreams: &Upstreams,
    cluster: &str,
    traits: MethodTraits,
    path: &str,
    request: WireMessage,
    metadata: &Metadata,
    timeout: Option<Duration>,
) -> Result<(Bytes, http::HeaderMap), ExecuteError> {
    let client = upstreams.grpc(cluster)?;
    if !client.coalesces() || !traits.reads {
        let reply = client.unary(path, request, metadata, timeout, traits.idempotent).await?;
        return Ok((reply.body, reply.metadata.into_headers()));
    }
    // Identical reads are told apart by their bytes.
    let request = request.to_bytes();
    let call = || {
        let (client, path, request, metadata) = (client.clone(), path.to_owned(), request.clone(), metadata.clone());
        async move {
            let reply = client.unary(&path, request, &metadata, timeout, true).await?;
            Ok(std::sync::Arc::new((reply.body, reply.metadata.into_headers())))
        }
        .boxed()
    };
    let shared = coalesce::coalesced(client.identity(), path, &request, metadata, timeout, call).await?;
    Ok((shared.0.clone(), shared.1.clone()))
}
