//! Stitched fetches: once a fetch has answered, every stitched field below it runs for all of
//! its parent objects at once — one call per batch of distinct keys when the binding has a
//! batch form, else one call per distinct rendered request with bounded concurrency, never one
//! sequential call per parent. Sibling stitches run concurrently; a stitch's own stitches run
//! once its values are in place. A failed call nulls its parents' field with an error at each
//! parent's path.

use std::collections::HashMap;

use futures_util::StreamExt;
use futures_util::future::join_all;
use serde_json::{Map, Value as Json};

use super::ExecuteError;
use super::graphql::{Context, FieldError, RenderedCall, read_answer, render_call, send_call};
use super::shape::shape_value;
use crate::operation::hidden_key;
use crate::plan::Stitch;
use crate::plan::render::{Scope, render_value};
use crate::schema::ValueTemplate;
use crate::tree::Value;

/// Most calls of one stitched field in flight at once.
const MAX_CONCURRENT_CALLS: usize = 8;

/// A parent object: where it is and the key fields its bindings read.
pub(super) struct Parent {
    pub(super) path: Vec<Json>,
    pub(super) keys: Map<String, Json>,
}

/// Runs `stitches` (and theirs, level by level) on `value`, a root field's shaped value.
pub(super) async fn run_stitches(
    value: &mut Json,
    stitches: &[Stitch],
    context: &Context<'_>,
    errors: &mut Vec<FieldError>,
) {
    let mut level: Vec<&Stitch> = stitches.iter().collect();
    while !level.is_empty() {
        let jobs: Vec<(&Stitch, Vec<Parent>)> = level.iter().map(|stitch| (*stitch, parents(value, stitch))).collect();
        let mut answers = join_all(jobs.iter().map(|(stitch, parents)| resolve(stitch, parents, context))).await;
        merge_entities(&jobs, &mut answers, context, errors).await;
        for ((stitch, parents), answers) in jobs.iter().zip(answers) {
            for (parent, answer) in parents.iter().zip(answers) {
                let mut path = parent.path.clone();
                path.push(Json::String(stitch.field.response_key.clone()));
                let shaped = match answer {
                    Ok((answer, remote_errors)) => {
                        for mut error in remote_errors {
                            let mut full = path.clone();
                            full.append(&mut error.path);
                            errors.push(FieldError { path: full, ..error });
                        }
                        shape_value(answer, &stitch.ty, &stitch.field.children, context.schema, &mut path, errors)
                    }
                    Err(error) => {
                        errors.push(FieldError { path: path.clone(), message: error.to_string(), code: error.code() });
                        Json::Null
                    }
                };
                place(value, &parent.path, &stitch.field.response_key, shaped);
            }
        }
        level = level.iter().flat_map(|stitch| stitch.stitches.iter()).collect();
    }
}

/// Runs the entity fetches below this level's stitched answers (fields a supergraph adds to
/// their type), all stitches' together, merging into the answers before they are shaped. An
/// entity error lands at its parent's path below the stitched field.
async fn merge_entities(
    jobs: &[(&Stitch, Vec<Parent>)],
    answers: &mut [Vec<Answer>],
    context: &Context<'_>,
    errors: &mut Vec<FieldError>,
) {
    let mut values = Vec::new();
    let mut entities: Vec<&[crate::plan::federation::EntityFetch]> = Vec::new();
    let mut owners = Vec::new();
    for (i, ((stitch, _), answers)) in jobs.iter().zip(answers.iter_mut()).enumerate() {
        if stitch.entities.is_empty() {
            continue;
        }
        // Each stitch's answers as one list, so a fetch's path reaches into every answer.
        let mut items = Vec::new();
        let mut slots = Vec::new();
        for (slot, answer) in answers.iter_mut().enumerate() {
            if let Ok((value, _)) = answer {
                items.push(Value::from_json(std::mem::take(value)));
                slots.push(slot);
            }
        }
        values.push(Value::Array(items));
        entities.push(&stitch.entities);
        owners.push((i, slots));
    }
    if values.is_empty() {
        return;
    }
    let mut found = vec![Vec::new(); values.len()];
    super::federation::run_entities_of(&mut values, &entities, context, &mut found).await;
    for ((value, found), (i, slots)) in values.into_iter().zip(found).zip(owners) {
        let (stitch, parents) = &jobs[i];
        for error in found {
            let Some(slot) = error.path.first().and_then(Json::as_u64).and_then(|k| slots.get(k as usize)) else {
                continue;
            };
            let mut path = parents[*slot].path.clone();
            path.push(Json::String(stitch.field.response_key.clone()));
            path.extend_from_slice(&error.path[1..]);
            errors.push(FieldError { path, ..error });
        }
        let Value::Array(items) = value else { continue };
        for (item, slot) in items.into_iter().zip(slots) {
            if let Ok((value, _)) = &mut answers[i][slot] {
                *value = item.into_json();
            }
        }
    }
}

/// The parent objects of `stitch` inside `value`, with the key fields its binding reads.
fn parents(value: &Json, stitch: &Stitch) -> Vec<Parent> {
    let mut found = Vec::new();
    collect(value, &stitch.path, &mut Vec::new(), &mut found);
    found
        .into_iter()
        .map(|(path, object)| {
            let keys = stitch
                .binding
                .parent_fields
                .iter()
                .filter_map(|name| {
                    let key = hidden_key(name);
                    object.get(&key).map(|v| (key, v.clone()))
                })
                .collect();
            Parent { path, keys }
        })
        .collect()
}

/// The objects at `keys` inside `value` (lists walked), with their paths. A `@Type` step (see
/// `plan::federation::TYPE_STEP`) keeps only the objects whose `__typename` the plan fetched
/// is that type.
pub(super) fn collect<'a>(
    value: &'a Json,
    keys: &[String],
    at: &mut Vec<Json>,
    out: &mut Vec<(Vec<Json>, &'a Map<String, Json>)>,
) {
    match value {
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Json::from(i));
                collect(item, keys, at, out);
                at.pop();
            }
        }
        Json::Object(object) => match keys.split_first() {
            None => out.push((at.clone(), object)),
            Some((first, rest)) => match filtered_out(first, object) {
                Some(true) => {}
                Some(false) => collect(value, rest, at, out),
                None => {
                    if let Some(child) = object.get(first) {
                        at.push(Json::String(first.clone()));
                        collect(child, rest, at, out);
                        at.pop();
                    }
                }
            },
        },
        _ => {}
    }
}

/// Whether `step` is a type step (`@Book`) that `object` does not pass. The type is where a
/// plan fetched it (`_sy___typename`) or, in a shaped value, where the shaper keeps it.
fn filtered_out(step: &str, object: &Map<String, Json>) -> Option<bool> {
    let typename = step.strip_prefix(crate::plan::federation::TYPE_STEP)?;
    let found =
        object.get(crate::plan::render::TYPENAME_ALIAS).or_else(|| object.get(crate::operation::HIDDEN_TYPENAME));
    Some(found.and_then(Json::as_str) != Some(typename))
}

/// Puts `field`'s value into the object at `path`.
fn place(value: &mut Json, path: &[Json], field: &str, shaped: Json) {
    if let Some(object) = object_at_mut(value, path) {
        object.insert(field.to_owned(), shaped);
    }
}

/// The object at `path` (response keys and list indices) inside `value`.
fn object_at_mut<'a>(value: &'a mut Json, path: &[Json]) -> Option<&'a mut Map<String, Json>> {
    let mut target = value;
    for step in path {
        target = match (target, step) {
            (Json::Object(object), Json::String(key)) => object.get_mut(key)?,
            (Json::Array(items), Json::Number(i)) => items.get_mut(usize::try_from(i.as_u64()?).ok()?)?,
            _ => return None,
        };
    }
    target.as_object_mut()
}

/// A parent's answer: the value and a GraphQL source's errors beside it.
pub(super) type Answer = Result<(Json, Vec<FieldError>), ExecuteError>;

/// Each parent's answer for `stitch`.
pub(super) async fn resolve(stitch: &Stitch, parents: &[Parent], context: &Context<'_>) -> Vec<Answer> {
    if parents.is_empty() {
        return Vec::new();
    }
    let Some(cluster) = stitch.cluster.as_deref() else {
        let name = stitch.binding.source().unwrap_or("its gRPC service").to_owned();
        return parents.iter().map(|_| Err(ExecuteError::NoBackend { name: name.clone() })).collect();
    };
    let arguments: Map<String, Json> = stitch.field.arguments.iter().cloned().collect();
    // A transformation of its source's (or method's) headers gives the stitch its own metadata.
    let own;
    let context = match &stitch.metadata {
        Some(metadata) => {
            own = Context { upstreams: context.upstreams, schema: context.schema, metadata, timeout: context.timeout };
            &own
        }
        None => context,
    };
    match &stitch.binding.batch {
        Some(_) => resolve_batched(stitch, parents, &arguments, cluster, context).await,
        None => resolve_each(stitch, parents, &arguments, cluster, context).await,
    }
}

/// One call per distinct rendered request, at most `MAX_CONCURRENT_CALLS` at a time.
async fn resolve_each(
    stitch: &Stitch,
    parents: &[Parent],
    arguments: &Map<String, Json>,
    cluster: &str,
    context: &Context<'_>,
) -> Vec<Answer> {
    let binding = &stitch.binding;
    let mut distinct: Vec<RenderedCall> = Vec::new();
    let mut index: HashMap<RenderedCall, usize> = HashMap::new();
    let mut slots: Vec<Result<usize, ExecuteError>> = Vec::with_capacity(parents.len());
    for parent in parents {
        let scope = Scope { args: arguments, parent: Some(&parent.keys), keys: None };
        let call = render_call(binding, &scope, &stitch.field.children, &stitch.ty.name, context.schema);
        slots.push(call.map(|call| {
            *index.entry(call.clone()).or_insert_with(|| {
                distinct.push(call);
                distinct.len() - 1
            })
        }));
    }
    let mut answers: Vec<Option<Answer>> = (0..distinct.len()).map(|_| None).collect();
    let pending: Vec<_> =
        distinct.iter().enumerate().map(|(i, call)| send_indexed(i, call, cluster, context, stitch)).collect();
    let mut calls = futures_util::stream::iter(pending).buffer_unordered(MAX_CONCURRENT_CALLS);
    while let Some((i, answer)) = calls.next().await {
        answers[i] = Some(answer.and_then(|a| read_answer(binding, a)));
    }
    slots
        .into_iter()
        .map(|slot| {
            let i = slot?;
            answers[i].clone().unwrap_or_else(|| Err(ExecuteError::Shape("a stitched call did not run".into())))
        })
        .collect()
}

/// One call per `max_size` distinct keys; each parent gets the answer items whose `match`
/// key equals its key (all of them for a list field, else the first).
async fn resolve_batched(
    stitch: &Stitch,
    parents: &[Parent],
    arguments: &Map<String, Json>,
    cluster: &str,
    context: &Context<'_>,
) -> Vec<Answer> {
    let binding = &stitch.binding;
    let Some(batch) = &binding.batch else { return Vec::new() };
    let key_template = ValueTemplate::Text(batch.key.clone());
    let mut keys: Vec<Json> = Vec::new();
    let mut parent_keys: Vec<Option<String>> = Vec::with_capacity(parents.len());
    for parent in parents {
        let scope = Scope { args: arguments, parent: Some(&parent.keys), keys: None };
        let key = render_value(&key_template, &scope).ok().filter(|k| !k.is_null());
        let text = key.as_ref().and_then(key_text);
        if let (Some(key), Some(text)) = (key, &text)
            && !keys.iter().any(|k| key_text(k).as_deref() == Some(text))
        {
            keys.push(key);
        }
        parent_keys.push(text);
    }
    let chunks: Vec<&[Json]> = keys.chunks(batch.max_size).collect();
    let pending: Vec<_> = chunks.iter().map(|chunk| send_batch(stitch, arguments, chunk, cluster, context)).collect();
    let answers = futures_util::stream::iter(pending).buffered(MAX_CONCURRENT_CALLS).collect::<Vec<_>>().await;
    let mut by_key: HashMap<String, Result<Vec<Json>, ExecuteError>> = HashMap::new();
    let mut chunk_errors: HashMap<String, Vec<FieldError>> = HashMap::new();
    for (chunk, answer) in chunks.iter().zip(answers) {
        let answer = match answer {
            Ok((value, remote_errors)) => {
                if !remote_errors.is_empty() {
                    for key in chunk.iter().filter_map(key_text) {
                        chunk_errors.insert(
                            key,
                            remote_errors.iter().map(|e| FieldError { path: Vec::new(), ..e.clone() }).collect(),
                        );
                    }
                }
                Ok(value)
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(Json::Array(items)) => {
                for key in chunk.iter().filter_map(key_text) {
                    by_key.entry(key).or_insert_with(|| Ok(Vec::new()));
                }
                for item in items {
                    let mut matched = Some(&item);
                    for step in &batch.matches {
                        matched = matched.and_then(|m| m.get(step));
                    }
                    if let Some(Ok(list)) = matched.and_then(key_text).and_then(|k| by_key.get_mut(&k)) {
                        list.push(item);
                    }
                }
            }
            Ok(Json::Null) => {
                for key in chunk.iter().filter_map(key_text) {
                    by_key.insert(key, Ok(Vec::new()));
                }
            }
            Ok(other) => {
                let message = format!(
                    "the batched call (binding at {}) answered {} where a list was expected",
                    binding.declared_at,
                    if other.is_object() { "an object" } else { "a scalar" }
                );
                for key in chunk.iter().filter_map(key_text) {
                    by_key.insert(
                        key,
                        Err(ExecuteError::Upstream(crate::upstream::UpstreamError::BadAnswer(message.clone()))),
                    );
                }
            }
            Err(error) => {
                for key in chunk.iter().filter_map(key_text) {
                    by_key.insert(key, Err(error.clone()));
                }
            }
        }
    }
    parent_keys
        .into_iter()
        .map(|key| {
            let Some(key) = key else { return Ok((Json::Null, Vec::new())) };
            let remote = chunk_errors.get(&key).cloned().unwrap_or_default();
            match by_key.get(&key) {
                Some(Ok(items)) if stitch.ty.list => Ok((Json::Array(items.clone()), remote)),
                Some(Ok(items)) => Ok((items.first().cloned().unwrap_or(Json::Null), remote)),
                Some(Err(error)) => Err(error.clone()),
                None => Ok((Json::Null, remote)),
            }
        })
        .collect()
}

async fn send_indexed(
    i: usize,
    call: &RenderedCall,
    cluster: &str,
    context: &Context<'_>,
    stitch: &Stitch,
) -> (usize, Result<Json, ExecuteError>) {
    (i, send_call(call, cluster, context, stitch.cache.as_ref(), stitch.transform.as_deref()).await)
}

async fn send_batch(
    stitch: &Stitch,
    arguments: &Map<String, Json>,
    keys: &[Json],
    cluster: &str,
    context: &Context<'_>,
) -> Answer {
    let scope = Scope { args: arguments, parent: None, keys: Some(keys) };
    let call = render_call(&stitch.binding, &scope, &stitch.field.children, &stitch.ty.name, context.schema)?;
    read_answer(
        &stitch.binding,
        send_call(&call, cluster, context, stitch.cache.as_ref(), stitch.transform.as_deref()).await?,
    )
}

/// A key compared as text (so `7` and `"7"` match, as REST APIs mix them).
fn key_text(value: &Json) -> Option<String> {
    crate::plan::render::scalar_text(value)
}
