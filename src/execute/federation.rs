//! Running a supergraph root field's fetches: the root field's GraphQL request to its
//! subgraph, then its entity fetches level by level — at each level, one request per subgraph
//! carrying every entity fetch of that level for it (`e0: _entities(...) e1: ...`), fetches at
//! different paths that ask the same of one type sharing one part, each part with the
//! deduplicated representations of all its parent objects — and each answer merged into its
//! parents. An operation's supergraph root fields run together: their root requests at once,
//! then their entity fetches level by level in shared requests. Subgraph errors keep their
//! paths: an entity's error lands at its parents' paths (plus the path below the entity); a
//! failed request, at every parent it concerned. The value stays unshaped (planner aliases
//! included) until the caller shapes it to the client's selection.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use serde_json::Value as Json;

use super::ExecuteError;
use super::graphql::{Context, FieldError, Prefetched, remote_code, reported_errors, send_http_call};
use super::stitch::{Parent, resolve};
use super::walk::{collect, each_object_mut, object_at_mut, objects_at};
use crate::error::ErrorCode;
use crate::operation::{FieldSelection, SelectionSet, hidden_key};
use crate::plan::Stitch;
use crate::plan::entities::{EntitiesPart, EntityBatch, entities_request, entity_errors};
use crate::plan::federation::{EntityFetch, EntitySource, SubgraphEntities, SubgraphFetch};
use crate::schema::TypeRef;
use crate::tree::{Object, Value};
use crate::upstream::HttpRequest;

/// Fetches `fetch`'s root field from `cluster` and its entities from their subgraphs; the raw
/// merged value and the errors found (paths relative to the root field's value).
pub(super) async fn run_subgraph_fetch(
    fetch: &SubgraphFetch,
    cluster: &str,
    context: &Context<'_>,
    cache: Option<&crate::cache::FetchCache>,
    transform: Option<&crate::transform::Transform>,
) -> Prefetched {
    let (mut value, mut errors) = root_answer(fetch, cluster, context, cache, transform).await?;
    run_entities_of(std::slice::from_mut(&mut value), &[&fetch.entities], context, std::slice::from_mut(&mut errors))
        .await;
    Ok((value, errors))
}

/// The root field's value (and its errors) from its subgraph, before any entity fetch.
async fn root_answer(
    fetch: &SubgraphFetch,
    cluster: &str,
    context: &Context<'_>,
    cache: Option<&crate::cache::FetchCache>,
    transform: Option<&crate::transform::Transform>,
) -> Prefetched {
    let body = serde_json::to_vec(&serde_json::json!({"query": fetch.document, "variables": fetch.variables}));
    let request = graphql_post(body.unwrap_or_default(), fetch.document.starts_with("query"));
    let answer = send_graphql(&request, cluster, context, cache, transform).await?;
    read_subgraph_field(answer, &fetch.response_key, &fetch.graph)
}

/// Sends a GraphQL request to a subgraph; its answer, parsed.
async fn send_graphql(
    request: &HttpRequest,
    cluster: &str,
    context: &Context<'_>,
    cache: Option<&crate::cache::FetchCache>,
    transform: Option<&crate::transform::Transform>,
) -> Result<Value, ExecuteError> {
    let body = send_http_call(request, cluster, context, cache, transform).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    Value::from_slice(&body).map_err(|_| ExecuteError::NotJson { cluster: cluster.to_owned() })
}

/// Root field `field`'s value in a subgraph's GraphQL response, and its errors with their
/// paths made relative to that value. An error with no data fails the field.
fn read_subgraph_field(answer: Value, field: &str, graph: &str) -> Prefetched {
    let who = format!("subgraph {graph}");
    let Value::Object(mut envelope) = answer else {
        let message = format!("{who}'s answer is not a GraphQL response");
        return Err(ExecuteError::Remote { message, code: ErrorCode::UpstreamError });
    };
    let value = match envelope.remove("data") {
        Some(Value::Object(mut data)) => data.remove(field).unwrap_or_default(),
        _ => Value::Null,
    };
    let errors = match envelope.remove("errors") {
        Some(Value::Array(reported)) => {
            reported_errors(reported.into_iter().map(Value::into_json).collect(), field, &who)
        }
        _ => Vec::new(),
    };
    if value.is_null()
        && let Some(first) = errors.first()
    {
        return Err(ExecuteError::Remote { message: first.message.clone(), code: first.code });
    }
    Ok((value, errors))
}

/// A supergraph root fetch as `run_subgraph_fetches` takes it.
pub(super) struct RootRequest<'a> {
    pub(super) fetch: &'a SubgraphFetch,
    pub(super) cluster: &'a str,
    pub(super) context: Context<'a>,
    pub(super) cache: Option<&'a crate::cache::FetchCache>,
    pub(super) transform: Option<&'a crate::transform::Transform>,
}

/// Fetches several root fields from their subgraphs at once, then their entity fetches
/// together (`run_entities_of`): the raw merged value and errors of each, in order.
pub(super) async fn run_subgraph_fetches(roots: Vec<RootRequest<'_>>) -> Vec<Prefetched> {
    let answers = join_all(
        roots.iter().map(|root| root_answer(root.fetch, root.cluster, &root.context, root.cache, root.transform)),
    )
    .await;
    let answered: Vec<usize> = (0..answers.len()).filter(|&i| answers[i].is_ok()).collect();
    let Some(&first) = answered.first() else { return answers };
    let mut values = Vec::with_capacity(answered.len());
    let mut errors = Vec::with_capacity(answered.len());
    let mut results: Vec<Option<Prefetched>> = Vec::with_capacity(answers.len());
    for answer in answers {
        match answer {
            Ok((value, found)) => {
                values.push(value);
                errors.push(found);
                results.push(None);
            }
            Err(error) => results.push(Some(Err(error))),
        }
    }
    let entities: Vec<&[EntityFetch]> = answered.iter().map(|&i| roots[i].fetch.entities.as_slice()).collect();
    run_entities_of(&mut values, &entities, &roots[first].context, &mut errors).await;
    let mut merged = values.into_iter().zip(errors);
    results.into_iter().map(|result| result.unwrap_or_else(|| Ok(merged.next().unwrap_or_default()))).collect()
}

/// A GraphQL POST to a subgraph; a query may be retried and shared with identical ones in
/// flight (GraphQL spec §6.2.1: queries have no side effects).
fn graphql_post(body: Vec<u8>, query: bool) -> HttpRequest {
    HttpRequest {
        method: http::Method::POST,
        path_and_query: String::new(),
        headers: Vec::new(),
        body: Some(bytes::Bytes::from(body)),
        idempotent: query,
    }
}

/// One subgraph entity fetch at its level: its parents are its part's parents from `offset` on
/// (the objects at its path, in `objects_at`'s order; their paths are found again only to
/// place errors).
struct Job<'a> {
    /// The root value its parents are in.
    root: usize,
    fetch: &'a EntityFetch,
    part: usize,
    offset: usize,
}

/// One `_entities` field of a level's request to a subgraph: the entity fetches of that level
/// that ask the same of the same type (at different paths), with the representations of all
/// their parents, each sent once.
struct Part<'a> {
    fetch: &'a EntityFetch,
    entities: &'a SubgraphEntities,
    batch: EntityBatch,
}

impl Part<'_> {
    /// Whether `fetch` asks exactly what this part asks, so it can share its representations.
    fn takes(&self, fetch: &EntityFetch, entities: &SubgraphEntities) -> bool {
        self.fetch.type_name == fetch.type_name
            && self.fetch.key_prefix == fetch.key_prefix
            && self.entities.graph == entities.graph
            && self.entities.selection == entities.selection
            && self.entities.key == entities.key
            && self.entities.requires == entities.requires
            && self.entities.variables == entities.variables
    }
}

/// Runs `entities` and theirs, level by level, merging answers into `value` (a gRPC or REST
/// answer, or a subscription event's).
pub(super) async fn run_entities(
    value: &mut Json,
    entities: &[EntityFetch],
    context: &Context<'_>,
    errors: &mut Vec<FieldError>,
) {
    let mut tree = Value::from_json(std::mem::take(value));
    run_entities_of(std::slice::from_mut(&mut tree), &[entities], context, std::slice::from_mut(errors)).await;
    *value = tree.into_json();
}

/// Runs the entity fetches of several root fields' values together (`entities[i]` below
/// `values[i]`, errors into `errors[i]`): at each level, fetches of any root that ask the same
/// of one type share a part, and each subgraph gets one request for all roots.
pub(super) async fn run_entities_of(
    values: &mut [Value],
    entities: &[&[EntityFetch]],
    context: &Context<'_>,
    errors: &mut [Vec<FieldError>],
) {
    let mut level: Vec<(usize, &EntityFetch)> =
        entities.iter().enumerate().flat_map(|(root, list)| list.iter().map(move |fetch| (root, fetch))).collect();
    while !level.is_empty() {
        let mut jobs: Vec<Job<'_>> = Vec::new();
        let mut parts: Vec<Part<'_>> = Vec::new();
        let mut calls: Vec<(usize, Stitch, Vec<Parent>)> = Vec::new();
        {
            // Each part's parents, over all its fetches, batched once every fetch is seen.
            let mut parents: Vec<Vec<&Object>> = Vec::new();
            for &(root, fetch) in &level {
                match &fetch.source {
                    EntitySource::Subgraph(entities) => {
                        let part = match parts.iter().position(|p| p.takes(fetch, entities)) {
                            Some(part) => part,
                            None => {
                                parts.push(Part { fetch, entities, batch: EntityBatch::default() });
                                parents.push(Vec::new());
                                parts.len() - 1
                            }
                        };
                        let offset = parents[part].len();
                        objects_at(&values[root], &fetch.path, &mut parents[part]);
                        jobs.push(Job { root, fetch, part, offset });
                    }
                    EntitySource::Call { binding, cluster } => {
                        let parents = call_parents(&values[root], fetch, binding);
                        calls.push((root, call_stitch(fetch, binding, cluster.clone()), parents));
                    }
                }
            }
            for (part, parents) in parts.iter_mut().zip(parents) {
                part.batch = EntityBatch::new(
                    parents,
                    &part.fetch.type_name,
                    &part.entities.key,
                    part.entities.requires.as_ref(),
                    part.fetch.key_prefix,
                );
            }
        }
        // One request per subgraph for every part of this level that has representations.
        let mut by_graph: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, part) in parts.iter().enumerate().filter(|(_, part)| !part.batch.representations.is_empty()) {
            by_graph.entry(part.entities.graph.as_str()).or_default().push(i);
        }
        let requests = by_graph.iter().map(|(graph, members)| {
            let body = entities_request(
                &members
                    .iter()
                    .map(|&i| EntitiesPart {
                        batch: &parts[i].batch,
                        typename: &parts[i].fetch.type_name,
                        selection: &parts[i].entities.selection,
                        variables: &parts[i].entities.variables,
                    })
                    .collect::<Vec<_>>(),
            );
            async move { send_graphql(&graphql_post(body, true), graph, context, None, None).await }
        });
        let resolving = calls.iter().map(|(_, stitch, parents)| resolve(stitch, parents, context));
        let (answers, resolved) = futures_util::future::join(join_all(requests), join_all(resolving)).await;
        for ((graph, members), answer) in by_graph.iter().zip(answers) {
            match answer {
                Ok(answer) => merge_answer(values, &parts, &jobs, members, answer, graph, errors),
                Err(error) => {
                    for job in jobs.iter().filter(|job| members.contains(&job.part)) {
                        if let Some(path) = parent_paths(&values[job.root], job.fetch).first() {
                            errors[job.root].push(FieldError {
                                path: path.clone(),
                                message: error.to_string(),
                                code: error.code(),
                            });
                        }
                    }
                }
            }
        }
        for ((root, _, parents), answers) in calls.iter().zip(resolved) {
            let (value, errors) = (&mut values[*root], &mut errors[*root]);
            for (parent, answer) in parents.iter().zip(answers) {
                match answer {
                    Ok((answer, remote)) => {
                        for mut error in remote {
                            let mut path = parent.path.clone();
                            path.append(&mut error.path);
                            errors.push(FieldError { path, ..error });
                        }
                        if let (Some(object), Value::Object(answer)) =
                            (object_at_mut(value, &parent.path), Value::from_json(answer))
                        {
                            object.merge(answer);
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
        level = level.iter().flat_map(|&(root, fetch)| fetch.then.iter().map(move |next| (root, next))).collect();
    }
}

/// The parents of a declared call's entity fetch, with their key fields under hidden keys.
fn call_parents(value: &Value, fetch: &EntityFetch, binding: &crate::schema::Binding) -> Vec<Parent> {
    let mut found = Vec::new();
    collect(value, &fetch.path, &mut Vec::new(), &mut found);
    found
        .into_iter()
        .map(|(path, object)| {
            let keys = binding
                .parent_fields
                .iter()
                .filter_map(|name| {
                    let value =
                        object.get(&format!("{}{name}", fetch.key_prefix)).or_else(|| object.get(name.as_str()))?;
                    Some((hidden_key(name), value.to_json()))
                })
                .collect();
            Parent { path, keys }
        })
        .collect()
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
        entities: Vec::new(),
    }
}

/// The paths of the parents of `fetch` (as `objects_at` finds them), for errors.
fn parent_paths(value: &Value, fetch: &EntityFetch) -> Vec<Vec<Json>> {
    let mut found = Vec::new();
    collect(value, &fetch.path, &mut Vec::new(), &mut found);
    found.into_iter().map(|(path, _)| path).collect()
}

/// Merges a subgraph's entities answer into the parents of the parts it answered (`members`,
/// part `n` of the request at `data.eN`) and places its errors.
fn merge_answer(
    values: &mut [Value],
    parts: &[Part<'_>],
    jobs: &[Job<'_>],
    members: &[usize],
    answer: Value,
    graph: &str,
    errors: &mut [Vec<FieldError>],
) {
    // Anything but an object is an answer without data (and says so below).
    let mut answer = match answer {
        Value::Object(answer) => answer,
        _ => Object::default(),
    };
    let reported: Vec<Json> = match answer.remove("errors") {
        Some(Value::Array(reported)) => reported.into_iter().map(Value::into_json).collect(),
        _ => Vec::new(),
    };
    let placed = entity_errors(&reported);
    let mut data = match answer.remove("data") {
        Some(Value::Object(data)) => data,
        _ => Object::default(),
    };
    let reported = !reported.is_empty();
    // What went wrong with each part (said once, at its first parent), found before merging.
    let mut problems: Vec<Vec<String>> = Vec::with_capacity(members.len());
    for (n, &p) in members.iter().enumerate() {
        let part = &parts[p];
        let entities = match data.get(&format!("e{n}")) {
            Some(Value::Array(entities)) => Some(entities),
            _ => None,
        };
        let mut found = Vec::new();
        // An answer that does not hold one entity per representation is the subgraph's fault
        // (unless the subgraph said why itself).
        match entities.map(Vec::len) {
            Some(len) if len == part.batch.representations.len() => {}
            Some(len) => found.push(format!(
                "subgraph {graph} answered {len} entities for {} representations",
                part.batch.representations.len()
            )),
            None if reported => {}
            None => found.push(format!("subgraph {graph}'s answer has no list of {} entities", part.fetch.type_name)),
        }
        if let Some(bad) = entities.into_iter().flatten().find(|e| !matches!(e, Value::Object(_) | Value::Null)) {
            found.push(format!(
                "subgraph {graph} answered {bad} where a {} entity (or null) belongs",
                part.fetch.type_name
            ));
        }
        problems.push(found);
    }
    // The parents' paths of each fetch errors concern.
    let concerned = |n: usize| !problems[n].is_empty() || placed.iter().any(|e| e.part.is_none_or(|p| p == n));
    let paths: Vec<Vec<Vec<Json>>> = jobs
        .iter()
        .map(|job| match members.iter().position(|&p| p == job.part) {
            Some(n) if concerned(n) => parent_paths(&values[job.root], job.fetch),
            _ => Vec::new(),
        })
        .collect();
    for (n, &p) in members.iter().enumerate() {
        let Some(Value::Array(entities)) = data.get_mut(&format!("e{n}")) else { continue };
        let of_parent = &parts[p].batch.of_parent;
        // Each entity is moved into the last parent that uses it and copied into the others.
        let mut uses = vec![0usize; entities.len()];
        for r in of_parent.iter().flatten() {
            if let Some(count) = uses.get_mut(*r) {
                *count += 1;
            }
        }
        for job in jobs.iter().filter(|job| job.part == p) {
            let mut parent = job.offset;
            each_object_mut(&mut values[job.root], &job.fetch.path, &mut |object| {
                let representation = of_parent.get(parent).copied().flatten();
                parent += 1;
                let Some(r) = representation else { return };
                let Some(Value::Object(entity)) = entities.get_mut(r) else { return };
                uses[r] -= 1;
                let entity = if uses[r] == 0 { std::mem::take(entity) } else { entity.clone() };
                object.merge(entity);
            });
        }
    }
    // Errors: a part's problems at its first parent; the subgraph's own at the parents of the
    // representation they name (below it), or at the first parent when they name none.
    for (n, &p) in members.iter().enumerate() {
        let fetches: Vec<(&Job<'_>, &Vec<Vec<Json>>)> = jobs.iter().zip(&paths).filter(|(j, _)| j.part == p).collect();
        let first = fetches.iter().find_map(|(job, paths)| Some((job.root, paths.first()?)));
        for message in &problems[n] {
            if let Some((root, path)) = first {
                let error = FieldError { path: path.clone(), message: message.clone(), code: ErrorCode::UpstreamError };
                errors[root].push(error);
            }
        }
        for error in placed.iter().filter(|e| e.part.is_none_or(|part| part == n)) {
            let code = error.code.as_deref().map_or(ErrorCode::UpstreamError, remote_code);
            match error.representation {
                Some(r) => {
                    for (job, paths) in &fetches {
                        let of_parent = &parts[p].batch.of_parent[job.offset..];
                        for (path, _) in paths.iter().zip(of_parent).filter(|(_, of)| **of == Some(r)) {
                            let mut full = path.clone();
                            full.extend(error.below.iter().cloned());
                            errors[job.root].push(FieldError { path: full, message: error.message.clone(), code });
                        }
                    }
                }
                // Not tied to one entity: reported once, at the first parent's path.
                None => {
                    if let Some((root, path)) = first {
                        errors[root].push(FieldError { path: path.clone(), message: error.message.clone(), code });
                    }
                }
            }
        }
    }
}
