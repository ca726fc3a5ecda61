//! Running a supergraph root field's fetches: the root field's GraphQL request to its
//! subgraph, then its entity fetches level by level — at each level, one request per subgraph
//! carrying every entity fetch of that level for it (`e0: _entities(...) e1: ...`), each with
//! the deduplicated representations of all its parent objects — and each answer merged into
//! its parents. Subgraph errors keep their paths: an entity's error lands at its parents' paths
//! (plus the path below the entity); a failed request, at every parent it concerned. The value
//! stays unshaped (planner aliases included) until the caller shapes it to the client's
//! selection.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use serde_json::Value as Json;

use super::ExecuteError;
use super::graphql::{Context, FieldError, RenderedCall, read_graphql_field, remote_code, send_call};
use super::stitch::{Parent, collect, object_at_mut, resolve};
use crate::error::ErrorCode;
use crate::operation::{FieldSelection, SelectionSet, hidden_key};
use crate::plan::Stitch;
use crate::plan::entities::{EntitiesPart, EntityBatch, entities_request, entity_errors, merge_object};
use crate::plan::federation::{EntityFetch, EntitySource, SubgraphEntities, SubgraphFetch};
use crate::schema::TypeRef;
use crate::upstream::HttpRequest;

/// Fetches `fetch`'s root field from `cluster` and its entities from their subgraphs; the raw
/// merged value and the errors found (paths relative to the root field's value).
pub(super) async fn run_subgraph_fetch(
    fetch: &SubgraphFetch,
    cluster: &str,
    context: &Context<'_>,
    cache: Option<&crate::cache::FetchCache>,
    transform: Option<&crate::transform::Transform>,
) -> Result<(Json, Vec<FieldError>), ExecuteError> {
    let query = fetch.document.starts_with("query");
    let request = graphql_post(&serde_json::json!({"query": fetch.document, "variables": fetch.variables}), query);
    let answer = send_call(&RenderedCall::Http(request), cluster, context, cache, transform).await?;
    let (mut value, mut errors) =
        read_graphql_field(answer, &fetch.response_key, &format!("subgraph {}", fetch.graph))?;
    run_entities(&mut value, &fetch.entities, context, &mut errors).await;
    Ok((value, errors))
}

/// A GraphQL POST to a subgraph; a query may be retried and shared with identical ones in
/// flight (GraphQL spec §6.2.1: queries have no side effects).
fn graphql_post(body: &Json, query: bool) -> HttpRequest {
    HttpRequest {
        method: http::Method::POST,
        path_and_query: String::new(),
        headers: Vec::new(),
        body: Some(bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default())),
        idempotent: query,
    }
}

/// One subgraph entity fetch at its level: its parents' paths and their batch.
struct Job<'a> {
    fetch: &'a EntityFetch,
    entities: &'a SubgraphEntities,
    paths: Vec<Vec<Json>>,
    batch: EntityBatch,
}

/// Runs `entities` and theirs, level by level, merging answers into `value`.
pub(super) async fn run_entities(
    value: &mut Json,
    entities: &[EntityFetch],
    context: &Context<'_>,
    errors: &mut Vec<FieldError>,
) {
    let mut level: Vec<&EntityFetch> = entities.iter().collect();
    while !level.is_empty() {
        let mut jobs: Vec<Job<'_>> = Vec::new();
        let mut calls: Vec<(Stitch, Vec<Parent>)> = Vec::new();
        for fetch in &level {
            let mut found = Vec::new();
            collect(value, &fetch.path, &mut Vec::new(), &mut found);
            match &fetch.source {
                EntitySource::Subgraph(entities) => {
                    let batch = EntityBatch::new(
                        found.iter().map(|(_, object)| *object),
                        &fetch.type_name,
                        &entities.key,
                        entities.requires.as_ref(),
                        fetch.key_prefix,
                    );
                    let paths = found.into_iter().map(|(path, _)| path).collect();
                    jobs.push(Job { fetch, entities, paths, batch });
                }
                EntitySource::Call { binding, cluster } => {
                    let parents = found
                        .into_iter()
                        .map(|(path, object)| {
                            let keys = binding
                                .parent_fields
                                .iter()
                                .filter_map(|name| {
                                    let value = object.get(&format!("{}{name}", fetch.key_prefix))?;
                                    Some((hidden_key(name), value.clone()))
                                })
                                .collect();
                            Parent { path, keys }
                        })
                        .collect();
                    calls.push((call_stitch(fetch, binding, cluster.clone()), parents));
                }
            }
        }
        // One request per subgraph for every fetch of this level that has parents.
        let mut by_graph: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, job) in jobs.iter().enumerate().filter(|(_, job)| !job.batch.representations.is_empty()) {
            by_graph.entry(job.entities.graph.as_str()).or_default().push(i);
        }
        let requests = by_graph.iter().map(|(graph, parts)| {
            let body = entities_request(
                &parts
                    .iter()
                    .map(|&i| EntitiesPart {
                        batch: &jobs[i].batch,
                        typename: &jobs[i].fetch.type_name,
                        selection: &jobs[i].entities.selection,
                        variables: &jobs[i].entities.variables,
                    })
                    .collect::<Vec<_>>(),
            );
            async move {
                let request = RenderedCall::Http(graphql_post(&body, true));
                send_call(&request, graph, context, None, None).await
            }
        });
        let resolving = calls.iter().map(|(stitch, parents)| resolve(stitch, parents, context));
        let (answers, resolved) = futures_util::future::join(join_all(requests), join_all(resolving)).await;
        for ((graph, parts), answer) in by_graph.iter().zip(answers) {
            match answer {
                Ok(answer) => merge_answer(value, &jobs, parts, answer, graph, errors),
                Err(error) => {
                    for &i in parts {
                        if let Some(path) = jobs[i].paths.first() {
                            errors.push(FieldError {
                                path: path.clone(),
                                message: error.to_string(),
                                code: error.code(),
                            });
                        }
                    }
                }
            }
        }
        for ((_, parents), answers) in calls.iter().zip(resolved) {
            for (parent, answer) in parents.iter().zip(answers) {
                match answer {
                    Ok((answer, remote)) => {
                        for mut error in remote {
                            let mut path = parent.path.clone();
                            path.append(&mut error.path);
                            errors.push(FieldError { path, ..error });
                        }
                        if let (Some(object), Json::Object(answer)) = (object_at_mut(value, &parent.path), answer) {
                            merge_object(object, answer);
                        }
                    }
                    Err(error) => errors.push(FieldError {
                        path: parent.path.clone(),
                        message: error.to_string(),
                        code: error.code(),
                    }),
                }
            }
        }
        level = level.iter().flat_map(|fetch| fetch.then.iter()).collect();
    }
}

/// A declared entity call as the stitch runner takes it: one object of the type per parent.
fn call_stitch(
    fetch: &EntityFetch,
    binding: &std::sync::Arc<crate::schema::Binding>,
    cluster: Option<String>,
) -> Stitch {
    Stitch {
        path: Vec::new(),
        parent_type: fetch.type_name.clone(),
        field: FieldSelection {
            response_key: fetch.type_name.clone(),
            field_name: fetch.type_name.clone(),
            children: SelectionSet::default(),
            arguments: Vec::new(),
            defer: None,
            forbidden: None,
        },
        ty: TypeRef { name: fetch.type_name.clone(), list: false, non_null: false, item_non_null: false },
        binding: binding.clone(),
        cluster,
        stitches: Vec::new(),
        cache: None,
        metadata: None,
        transform: None,
    }
}

/// Merges a subgraph's entities answer into the parents of its `parts` and places its errors.
fn merge_answer(
    value: &mut Json,
    jobs: &[Job<'_>],
    parts: &[usize],
    mut answer: Json,
    graph: &str,
    errors: &mut Vec<FieldError>,
) {
    let placed = entity_errors(&answer);
    let reported = answer.get("errors").and_then(Json::as_array).is_some_and(|e| !e.is_empty());
    for (n, &i) in parts.iter().enumerate() {
        let job = &jobs[i];
        let entities = answer.pointer_mut(&format!("/data/e{n}")).and_then(Json::as_array_mut);
        // An answer that does not hold one entity per representation is the subgraph's fault:
        // said once, at the first parent (unless the subgraph said why itself).
        let wrong = match entities.as_deref().map(Vec::len) {
            Some(len) if len == job.batch.representations.len() => None,
            Some(len) => Some(format!(
                "subgraph {graph} answered {len} entities for {} representations",
                job.batch.representations.len()
            )),
            None if reported => None,
            None => Some(format!("subgraph {graph}'s answer has no list of {} entities", job.fetch.type_name)),
        };
        if let (Some(message), Some(path)) = (wrong, job.paths.first()) {
            errors.push(FieldError { path: path.clone(), message, code: ErrorCode::UpstreamError });
        }
        let Some(entities) = entities else { continue };
        if let (Some(bad), Some(path)) = (entities.iter().find(|e| !e.is_object() && !e.is_null()), job.paths.first()) {
            let message =
                format!("subgraph {graph} answered {bad} where a {} entity (or null) belongs", job.fetch.type_name);
            errors.push(FieldError { path: path.clone(), message, code: ErrorCode::UpstreamError });
        }
        // Each entity is moved into the last parent that uses it and copied into the others.
        let mut uses = vec![0usize; entities.len()];
        for r in job.batch.of_parent.iter().flatten() {
            if let Some(count) = uses.get_mut(*r) {
                *count += 1;
            }
        }
        for (path, representation) in job.paths.iter().zip(&job.batch.of_parent) {
            let Some(r) = *representation else { continue };
            let Some(Json::Object(entity)) = entities.get_mut(r) else { continue };
            uses[r] -= 1;
            let entity = if uses[r] == 0 { std::mem::take(entity) } else { entity.clone() };
            if let Some(parent) = object_at_mut(value, path) {
                merge_object(parent, entity);
            }
        }
    }
    for error in placed {
        let (message, code) =
            (error.message.clone(), error.code.as_deref().map_or(ErrorCode::UpstreamError, remote_code));
        let concerned: Vec<usize> = match error.part {
            Some(n) => parts.get(n).copied().into_iter().collect(),
            None => parts.to_vec(),
        };
        for i in concerned {
            let job = &jobs[i];
            match error.representation {
                Some(r) => {
                    for (path, _) in job.paths.iter().zip(&job.batch.of_parent).filter(|(_, of)| **of == Some(r)) {
                        let mut full = path.clone();
                        full.extend(error.below.iter().cloned());
                        errors.push(FieldError { path: full, message: message.clone(), code });
                    }
                }
                // Not tied to one entity: reported once, at the first parent's path.
                None => {
                    let path = job.paths.first().cloned().unwrap_or_default();
                    errors.push(FieldError { path, message: message.clone(), code });
                }
            }
        }
    }
}
