//! Subscription events: a stream opened once — a server-streaming gRPC call, or a GraphQL
//! source's subscription over WebSocket — each event shaped and stitched like a query's answer.
//! Events that arrive together (a burst) are stitched together, so their stitched fields are one
//! batched call rather than one per event.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use serde_json::Value as Json;

use super::graphql::{Context, FieldError, GraphqlOutput, OutputValue, message_json, read_answer};
use super::shape::{complete, shape_value};
use super::stitch::run_stitches;
use super::{ExecuteError, execute_streaming_fetch};
use crate::error::ErrorCode;
use crate::operation::{Metadata, Selection, SelectionSet};
use crate::plan::federation::{EntityFetch, SubgraphFetch};
use crate::plan::render::{Scope, graphql_request};
use crate::plan::{Fetch, FetchCall, Stitch};
use crate::schema::{Binding, BoundCall, GraphqlSchema, RootKind, TypeRef};
use crate::upstream::Upstreams;
use crate::upstream::graphql_ws::{WsEvent, WsSubscription};

/// One event as read from its source: the answer and, from a GraphQL source, the errors it
/// reported beside its data.
type RawEvent = Result<(Json, Vec<FieldError>), ExecuteError>;

/// Most events stitched together.
const MAX_BURST: usize = 64;

/// Where a subscription's events come from.
enum Source {
    /// Response messages of a server-streaming method.
    Grpc(super::OutputStream),
    /// Payloads (`{data, errors}`) of a GraphQL source's subscription, read by its binding.
    Graphql(BoxStream<'static, Result<Json, ExecuteError>>, Arc<Binding>),
    /// Payloads of a supergraph's subscription field from its subgraph, whose entity fetches
    /// run on each burst.
    Subgraph(BoxStream<'static, Result<Json, ExecuteError>>, Arc<SubgraphFetch>),
}

/// An open subscription: the source stream and what each event is shaped to.
pub struct SubscriptionEvents {
    source: Source,
    ty: TypeRef,
    fields: SelectionSet,
    stitches: Vec<Stitch>,
    /// Entity fetches on each event of a server-streaming method (fields a supergraph adds to
    /// its message's types); a subgraph's are its fetch's.
    entities: Vec<EntityFetch>,
    metadata: Metadata,
    stitch_timeout: Option<Duration>,
    ended: bool,
}

impl SubscriptionEvents {
    /// Opens `fetch` (a server-streaming method, or a GraphQL source's Subscription field);
    /// resolves once the source has accepted it. Stitched calls get `stitch_timeout` each; the
    /// stream itself has no deadline.
    pub async fn open(
        mut fetch: Fetch,
        upstreams: &Upstreams,
        schema: &GraphqlSchema,
        stitch_timeout: Option<Duration>,
    ) -> Result<Self, ExecuteError> {
        let Selection::Graphql { type_name, fields, .. } = std::mem::replace(&mut fetch.selection, Selection::Whole)
        else {
            return Err(ExecuteError::Shape("a subscription has a GraphQL selection".into()));
        };
        let ty = fetch.output.clone().unwrap_or(TypeRef {
            name: type_name.clone(),
            list: false,
            non_null: false,
            item_non_null: false,
        });
        let stitches = std::mem::take(&mut fetch.stitches);
        let entities = std::mem::take(&mut fetch.entities);
        let metadata = fetch.metadata.clone();
        fetch.timeout = None;
        let source = match &fetch.call {
            FetchCall::Grpc { .. } => Source::Grpc(execute_streaming_fetch(fetch, upstreams).await?.1),
            FetchCall::Bound { binding, arguments } => {
                let BoundCall::Graphql(call) = &binding.call else {
                    return Err(ExecuteError::Shape("only GraphQL sources have subscriptions".into()));
                };
                if call.operation != RootKind::Subscription {
                    return Err(ExecuteError::Shape(format!("{} is not a subscription", call.field)));
                }
                let cluster =
                    fetch.cluster.as_deref().ok_or_else(|| ExecuteError::NoBackend { name: call.source.clone() })?;
                let scope = Scope { args: arguments, parent: None, keys: None };
                let request = graphql_request(call, &binding.select, &scope, &fields, &type_name, schema)
                    .map_err(|e| ExecuteError::Render(format!("{e} (binding at {})", binding.declared_at)))?;
                let body: Json =
                    serde_json::from_slice(request.body.as_deref().unwrap_or_default()).unwrap_or(Json::Null);
                let query = body["query"].as_str().unwrap_or_default().to_owned();
                let variables = body["variables"].as_object().cloned().unwrap_or_default();
                let events = open_ws(upstreams, cluster, query, variables, &metadata).await?;
                Source::Graphql(events.boxed(), binding.clone())
            }
            FetchCall::Subgraph(subgraph) => {
                let cluster =
                    fetch.cluster.as_deref().ok_or_else(|| ExecuteError::NoBackend { name: subgraph.graph.clone() })?;
                let events =
                    open_ws(upstreams, cluster, subgraph.document.clone(), subgraph.variables.clone(), &metadata)
                        .await?;
                Source::Subgraph(events, subgraph.clone())
            }
        };
        let fields = std::sync::Arc::unwrap_or_clone(fields);
        Ok(SubscriptionEvents { source, ty, fields, stitches, entities, metadata, stitch_timeout, ended: false })
    }

    async fn next_raw(&mut self) -> Option<RawEvent> {
        match &mut self.source {
            Source::Grpc(messages) => Some(messages.next().await?.and_then(|m| Ok((message_json(&m)?, Vec::new())))),
            Source::Graphql(payloads, binding) => {
                let payload = payloads.next().await?;
                Some(payload.and_then(|p| read_answer(binding, p)))
            }
            Source::Subgraph(payloads, fetch) => {
                let payload = payloads.next().await?;
                let who = format!("subgraph {}", fetch.graph);
                Some(payload.and_then(|p| super::graphql::read_graphql_field(p, &fetch.response_key, &who)))
            }
        }
    }

    /// The next event if one is ready now (Some(None) when the source has ended).
    fn next_ready(&mut self) -> Option<Option<RawEvent>> {
        self.next_raw().now_or_never()
    }

    /// The next events: waits for one, takes every other one already arrived (up to a burst),
    /// and shapes and stitches them together. None when the source has ended; an error is the
    /// last item.
    pub async fn next_burst(
        &mut self,
        upstreams: &Upstreams,
        schema: &GraphqlSchema,
    ) -> Option<Vec<Result<GraphqlOutput, ExecuteError>>> {
        if self.ended {
            return None;
        }
        let mut raw = vec![self.next_raw().await?];
        while raw.len() < MAX_BURST && raw.last().is_some_and(Result::is_ok) {
            match self.next_ready() {
                Some(Some(event)) => raw.push(event),
                Some(None) => {
                    self.ended = true;
                    break;
                }
                None => break,
            }
        }
        let failure = match raw.last() {
            Some(Err(_)) => raw.pop().and_then(Result::err),
            _ => None,
        };
        if failure.is_some() {
            self.ended = true;
        }
        let mut errors = Vec::new();
        let mut answers = Vec::with_capacity(raw.len());
        for (i, (answer, remote)) in raw.into_iter().flatten().enumerate() {
            for error in remote {
                let mut path = vec![Json::from(i)];
                path.extend(error.path);
                errors.push(FieldError { path, ..error });
            }
            answers.push(answer);
        }
        let entities = match &self.source {
            Source::Subgraph(_, fetch) => &fetch.entities,
            _ => &self.entities,
        };
        if !entities.is_empty() {
            // The entity fetches of the whole burst together (lists are walked, so each
            // fetch's path reaches into every event).
            let context = Context { upstreams, schema, metadata: &self.metadata, timeout: self.stitch_timeout };
            let mut all = Json::Array(answers);
            super::federation::run_entities(&mut all, entities, &context, &mut errors).await;
            answers = match all {
                Json::Array(answers) => answers,
                _ => Vec::new(),
            };
        }
        let mut values = Vec::with_capacity(answers.len());
        for (i, answer) in answers.into_iter().enumerate() {
            let mut path = vec![Json::from(i)];
            values.push(shape_value(answer, &self.ty, &self.fields, schema, &mut path, &mut errors));
        }
        let count = values.len();
        let mut burst = Json::Array(values);
        if !self.stitches.is_empty() {
            let context = Context { upstreams, schema, metadata: &self.metadata, timeout: self.stitch_timeout };
            run_stitches(&mut burst, &self.stitches, &context, &mut errors).await;
        }
        let Json::Array(values) = burst else { return None };
        let declared = matches!(self.source, Source::Graphql(..) | Source::Subgraph(..));
        let mut out: Vec<Result<GraphqlOutput, ExecuteError>> = Vec::with_capacity(count + 1);
        for (i, mut value) in values.into_iter().enumerate() {
            let mut own: Vec<FieldError> = Vec::new();
            for error in errors.iter().filter(|e| e.path.first() == Some(&Json::from(i))) {
                own.push(FieldError { path: error.path[1..].to_vec(), ..error.clone() });
            }
            let done = (self.stitches.is_empty() && !declared)
                || complete(&mut value, &self.ty, &self.fields, schema, &mut Vec::new(), &mut own);
            out.push(Ok(GraphqlOutput { value: OutputValue::Json(value), errors: own, complete: done }));
        }
        if let Some(failure) = failure {
            out.push(Err(failure));
        }
        Some(out)
    }
}

/// Opens a graphql-transport-ws subscription of `query` on `cluster`: its payloads, ending
/// with an error when the source reports one.
async fn open_ws(
    upstreams: &Upstreams,
    cluster: &str,
    query: String,
    variables: serde_json::Map<String, Json>,
    metadata: &Metadata,
) -> Result<BoxStream<'static, Result<Json, ExecuteError>>, ExecuteError> {
    let client = upstreams.http(cluster)?;
    let subscription = WsSubscription {
        cluster: cluster.to_owned(),
        url: client.websocket_url(),
        tls: client.websocket_tls(),
        query,
        variables,
        init: init_payload(metadata),
    };
    let events = subscription.open().await?.map(|event| match event {
        Ok(WsEvent::Next(payload)) => Ok(payload),
        Ok(WsEvent::Error(errors)) => {
            let message = errors
                .first()
                .and_then(|e| e.get("message"))
                .and_then(Json::as_str)
                .unwrap_or("the source ended the subscription with an error")
                .to_owned();
            Err(ExecuteError::Remote { message, code: ErrorCode::UpstreamError })
        }
        Err(error) => Err(ExecuteError::Upstream(error)),
    });
    Ok(events.boxed())
}

/// connection_init's payload for a GraphQL source: the forwarded headers (as `headers`, and
/// `authorization` on its own, where servers usually look for it).
fn init_payload(metadata: &Metadata) -> serde_json::Map<String, Json> {
    let mut headers = serde_json::Map::new();
    for (name, value) in metadata.iter().filter(|(name, _)| !name.ends_with("-bin")) {
        if let Ok(text) = std::str::from_utf8(value) {
            headers.insert(name.to_owned(), Json::String(text.to_owned()));
        }
    }
    let mut init = serde_json::Map::new();
    if let Some(authorization) = headers.get("authorization").cloned() {
        init.insert("authorization".into(), authorization);
    }
    if !headers.is_empty() {
        init.insert("headers".into(), Json::Object(headers));
    }
    init
}
