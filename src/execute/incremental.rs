//! Incremental delivery (`@defer`): the initial result without the deferred fragments, then one
//! part per deferred fragment, in order. A deferred fragment's stitched fetches are later
//! fetches: they run only after the initial result is sent. Its other fields came with their
//! parent's fetch and are held back; a root field selected only in a deferred fragment is
//! fetched concurrently and delivered in its fragment's part.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use serde_json::{Map, Value as Json};
use tokio::sync::mpsc;

use super::graphql::{Context, FieldError, GraphqlOutput, OutputValue, fetch_root};
use super::shape::complete;
use super::stitch::run_stitches;
use super::{ExecuteError, execute_graphql_plan};
use crate::operation::{FieldSelection, HIDDEN_TYPENAME, Selection, SelectionSet, is_hidden_key};
use crate::plan::{Fetch, Plan, Stitch};
use crate::schema::{GraphqlSchema, TypeDef, TypeRef};
use crate::upstream::Upstreams;

/// What an incremental operation sends, in order.
#[derive(Debug)]
pub enum IncrementalPart {
    /// The initial result: one entry per root field that is not deferred, in order.
    Initial(Vec<(usize, Result<GraphqlOutput, ExecuteError>)>),
    /// A deferred fragment's data: one item per place it applies.
    Deferred {
        /// The fragment's index among the operation's.
        id: usize,
        /// Its data at each place.
        items: Vec<DeferredItem>,
    },
}

/// A deferred fragment's data at one place.
#[derive(Debug)]
pub struct DeferredItem {
    /// Where it goes: response keys and list indices from the response's `data`.
    pub path: Vec<Json>,
    /// The fragment's fields there (an object).
    pub data: Json,
    /// Errors below it, with paths from `data`'s root.
    pub errors: Vec<FieldError>,
}

/// A deferred root field's response key and answer.
type RootOutput = (String, Result<GraphqlOutput, ExecuteError>);

/// A root fetch held for the deferred parts.
struct Held {
    key: String,
    value: Json,
    ty: TypeRef,
    fields: SelectionSet,
    deferred: BTreeMap<usize, Vec<Stitch>>,
    metadata: crate::operation::Metadata,
    timeout: Option<std::time::Duration>,
}

/// Runs `plan` (a query) incrementally; `root_defers[i]` is the deferred fragment root fetch
/// `i` was selected in, if any, and `fragments` how many deferred fragments there are. Parts
/// go to `parts` as they are ready; the function returns when the last is sent (or nobody
/// listens any more).
pub async fn execute_incremental(
    plan: Plan,
    root_defers: Vec<Option<usize>>,
    fragments: usize,
    upstreams: &Upstreams,
    schema: &GraphqlSchema,
    parts: mpsc::Sender<IncrementalPart>,
) {
    let mut immediate = Vec::new();
    let mut later: BTreeMap<usize, Vec<(usize, Fetch)>> = BTreeMap::new();
    for (index, fetch) in plan.fetches.into_iter().enumerate() {
        match root_defers.get(index).copied().flatten() {
            Some(id) => later.entry(id).or_default().push((index, fetch)),
            None => immediate.push((index, fetch)),
        }
    }
    // Deferred root fields start now and are delivered in their fragment's part.
    let deferred_roots = join_all(later.into_iter().map(|(id, fetches)| async move {
        let keys: Vec<String> = fetches.iter().map(|(_, f)| root_key(f)).collect();
        let plan = Plan { fetches: fetches.into_iter().map(|(_, f)| f).collect(), serial: false };
        let outputs = execute_graphql_plan(plan, upstreams, schema).await;
        (id, keys.into_iter().zip(outputs).collect::<Vec<_>>())
    }));
    let immediate_then_deferred = async {
        let held =
            join_all(immediate.into_iter().map(|(index, fetch)| run_immediate(index, fetch, upstreams, schema))).await;
        let (initial, held): (Vec<_>, Vec<_>) = held.into_iter().unzip();
        if parts.send(IncrementalPart::Initial(initial)).await.is_err() {
            return None;
        }
        Some(held.into_iter().flatten().collect::<Vec<Held>>())
    };
    let (roots, held) = tokio::join!(deferred_roots, immediate_then_deferred);
    let Some(mut held) = held else { return };
    let mut roots: BTreeMap<usize, Vec<RootOutput>> = roots.into_iter().collect();
    for id in 0..fragments {
        let mut items = Vec::new();
        for held in &mut held {
            items.extend(deliver(held, id, upstreams, schema).await);
        }
        for (key, output) in roots.remove(&id).unwrap_or_default() {
            let mut data = Map::new();
            let mut errors = Vec::new();
            match output {
                Ok(output) => {
                    for mut error in output.errors {
                        error.path.insert(0, Json::String(key.clone()));
                        errors.push(error);
                    }
                    data.insert(key, output.value.into_json());
                }
                Err(error) => {
                    errors.push(FieldError {
                        path: vec![Json::String(key.clone())],
                        message: error.to_string(),
                        code: error.code(),
                    });
                    data.insert(key, Json::Null);
                }
            }
            items.push(DeferredItem { path: Vec::new(), data: Json::Object(data), errors });
        }
        if items.is_empty() {
            continue;
        }
        if parts.send(IncrementalPart::Deferred { id, items }).await.is_err() {
            return;
        }
    }
}

fn root_key(fetch: &Fetch) -> String {
    match &fetch.selection {
        Selection::Graphql { response_key, .. } => response_key.clone(),
        _ => String::new(),
    }
}

/// A root fetch that is not deferred: fetch, run its stitched fetches outside deferred
/// fragments, and answer without the deferred fields; the rest is held.
async fn run_immediate(
    index: usize,
    mut fetch: Fetch,
    upstreams: &Upstreams,
    schema: &GraphqlSchema,
) -> ((usize, Result<GraphqlOutput, ExecuteError>), Option<Held>) {
    let fetched = match fetch_root(&mut fetch, upstreams, schema, None).await {
        Ok(Some(fetched)) => fetched,
        Ok(None) => {
            let empty = GraphqlOutput {
                value: OutputValue::Json(Json::Object(Map::new())),
                errors: Vec::new(),
                complete: true,
            };
            return ((index, Ok(empty)), None);
        }
        Err(error) => return ((index, Err(error)), None),
    };
    let Selection::Graphql { response_key, fields, .. } = std::mem::replace(&mut fetch.selection, Selection::Whole)
    else {
        return ((index, Err(ExecuteError::Shape("a GraphQL fetch has a GraphQL selection".into()))), None);
    };
    let (now, deferred) = split_stitches(std::mem::take(&mut fetch.stitches));
    let mut value = fetched.value;
    let mut errors = fetched.errors;
    let context = Context { upstreams, schema, metadata: &fetch.metadata, timeout: fetch.timeout };
    run_stitches(&mut value, &now, &context, &mut errors).await;
    let mut initial = value.clone();
    strip(&mut initial, &fields, None);
    let done = complete(&mut initial, &fetched.ty, &fields, schema, &mut Vec::new(), &mut errors);
    let output = GraphqlOutput { value: OutputValue::Json(initial), errors, complete: done };
    let held = Held {
        key: response_key,
        value,
        ty: fetched.ty,
        fields: std::sync::Arc::unwrap_or_clone(fields),
        deferred,
        metadata: fetch.metadata,
        timeout: fetch.timeout,
    };
    ((index, Ok(output)), Some(held))
}

/// Stitches outside deferred fragments, and those inside each fragment.
fn split_stitches(stitches: Vec<Stitch>) -> (Vec<Stitch>, BTreeMap<usize, Vec<Stitch>>) {
    let mut now = Vec::new();
    let mut later: BTreeMap<usize, Vec<Stitch>> = BTreeMap::new();
    for mut stitch in stitches {
        match stitch.field.defer {
            Some(id) => later.entry(id).or_default().push(stitch),
            None => {
                let (inner_now, inner_later) = split_stitches(std::mem::take(&mut stitch.stitches));
                stitch.stitches = inner_now;
                now.push(stitch);
                for (id, mut inner) in inner_later {
                    later.entry(id).or_default().append(&mut inner);
                }
            }
        }
    }
    (now, later)
}

/// Removes from `value` every selected field deferred other than in `keep`, and hidden keys.
fn strip(value: &mut Json, selection: &SelectionSet, keep: Option<usize>) {
    match value {
        Json::Array(items) => items.iter_mut().for_each(|item| strip(item, selection, keep)),
        Json::Object(object) if !selection.by_type.is_empty() => {
            // An interface's or union's value: its object type's selection (the shaper left the
            // type under a hidden key).
            let concrete = object.get(HIDDEN_TYPENAME).and_then(Json::as_str).unwrap_or_default().to_owned();
            if let Some(set) = selection.for_type(&concrete) {
                strip(value, set, keep);
                // Kept for `complete`, which needs the type too (and removes it).
                if let Json::Object(object) = value {
                    object.insert(HIDDEN_TYPENAME.to_owned(), Json::String(concrete));
                }
            }
        }
        Json::Object(object) => {
            for field in &selection.fields {
                if field.defer.is_some() && field.defer != keep {
                    object.remove(&field.response_key);
                } else if let Some(child) = object.get_mut(&field.response_key) {
                    strip(child, &field.children, field.defer.or(keep));
                }
            }
            object.retain(|key, _| !is_hidden_key(key));
        }
        _ => {}
    }
}

/// Runs fragment `id`'s stitched fetches on `held` and takes out the fragment's data at each
/// place it applies.
async fn deliver(held: &mut Held, id: usize, upstreams: &Upstreams, schema: &GraphqlSchema) -> Vec<DeferredItem> {
    let mut errors = Vec::new();
    if let Some(stitches) = held.deferred.remove(&id) {
        let context = Context { upstreams, schema, metadata: &held.metadata, timeout: held.timeout };
        run_stitches(&mut held.value, &stitches, &context, &mut errors).await;
    }
    let mut places = Vec::new();
    boundaries(schema, &held.ty.name, &held.fields, None, id, &mut Vec::new(), &mut places);
    let mut items = Vec::new();
    for (path, type_name, fields) in places {
        let mut found = Vec::new();
        super::stitch::collect(&held.value, &path, &mut Vec::new(), &mut found);
        let parents: Vec<Vec<Json>> = found.into_iter().map(|(at, _)| at).collect();
        for parent in parents {
            let Some(Json::Object(object)) = get(&held.value, &parent) else { continue };
            let mut data = Map::new();
            for field in &fields {
                if let Some(value) = object.get(&field.response_key) {
                    data.insert(field.response_key.clone(), value.clone());
                }
            }
            let selection = SelectionSet::new(fields.clone());
            let mut data = Json::Object(data);
            strip(&mut data, &selection, Some(id));
            let mut own: Vec<FieldError> = Vec::new();
            let mut full = vec![Json::String(held.key.clone())];
            full.extend(parent.iter().cloned());
            for error in errors.iter().filter(|e| e.path.starts_with(&parent)) {
                own.push(FieldError { path: error.path[parent.len()..].to_vec(), ..error.clone() });
            }
            let ty = TypeRef { name: type_name.clone(), list: false, non_null: false, item_non_null: false };
            complete(&mut data, &ty, &selection, schema, &mut Vec::new(), &mut own);
            items.push(DeferredItem { path: full, data, errors: own });
        }
    }
    items
}

/// The selection sets where fragment `id` starts: their path of response keys from the root
/// value, their type, and the fragment's fields there.
fn boundaries(
    schema: &GraphqlSchema,
    type_name: &str,
    selection: &SelectionSet,
    parent_defer: Option<usize>,
    id: usize,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, String, Vec<FieldSelection>)>,
) {
    // Below an interface or union: each object type's selection, for the values of that type.
    for (concrete, set) in &selection.by_type {
        path.push(format!("{}{concrete}", crate::plan::federation::TYPE_STEP));
        boundaries(schema, concrete, set, parent_defer, id, path, out);
        path.pop();
    }
    let here: Vec<FieldSelection> =
        selection.fields.iter().filter(|f| f.defer == Some(id) && parent_defer != Some(id)).cloned().collect();
    if !here.is_empty() {
        out.push((path.clone(), type_name.to_owned(), here));
    }
    let Some(TypeDef::Object { fields, .. }) = schema.types.get(type_name) else { return };
    for field in &selection.fields {
        if field.children.fields.is_empty() {
            continue;
        }
        let Some(definition) = fields.iter().find(|d| d.name == field.field_name) else { continue };
        path.push(field.response_key.clone());
        boundaries(schema, &definition.ty.name, &field.children, field.defer.or(parent_defer), id, path, out);
        path.pop();
    }
}

fn get<'a>(value: &'a Json, path: &[Json]) -> Option<&'a Json> {
    let mut value = value;
    for step in path {
        value = match (value, step) {
            (Json::Object(object), Json::String(key)) => object.get(key)?,
            (Json::Array(items), Json::Number(i)) => items.get(usize::try_from(i.as_u64()?).ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}
