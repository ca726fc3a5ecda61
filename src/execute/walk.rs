//! Finding an entity fetch's parents inside a supergraph answer (a `tree::Value`): the
//! objects at a path of response keys, lists walked, in one fixed order that every walker
//! here follows, so a parent's position in one walk is its position in the others. A `@Type`
//! step (see `plan::federation::TYPE_STEP`) keeps only the objects the plan fetched as that
//! type.

use serde_json::Value as Json;

use crate::tree::{Object, Value};

/// Whether `step` is a type step (`@Book`) that `object` does not pass (None: not a type step).
fn filtered_out(step: &str, object: &Object) -> Option<bool> {
    let typename = step.strip_prefix(crate::plan::federation::TYPE_STEP)?;
    let found = object.get(crate::plan::render::TYPENAME_ALIAS).or_else(|| object.get("__typename"));
    Some(found.and_then(Value::as_str) != Some(typename))
}

/// The objects at `keys` inside `value`.
pub(super) fn objects_at<'a>(value: &'a Value, keys: &[String], out: &mut Vec<&'a Object>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| objects_at(item, keys, out)),
        Value::Object(object) => match keys.split_first() {
            None => out.push(object),
            Some((first, rest)) => match filtered_out(first, object) {
                Some(true) => {}
                Some(false) => objects_at(value, rest, out),
                None => {
                    if let Some(child) = object.get(first) {
                        objects_at(child, rest, out);
                    }
                }
            },
        },
        _ => {}
    }
}

/// The objects at `keys` inside `value` with their paths (response keys and list indices).
pub(super) fn collect<'a>(
    value: &'a Value,
    keys: &[String],
    at: &mut Vec<Json>,
    out: &mut Vec<(Vec<Json>, &'a Object)>,
) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Json::from(i));
                collect(item, keys, at, out);
                at.pop();
            }
        }
        Value::Object(object) => match keys.split_first() {
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

/// Calls `visit` on each object at `keys` inside `value`.
pub(super) fn each_object_mut(value: &mut Value, keys: &[String], visit: &mut dyn FnMut(&mut Object)) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| each_object_mut(item, keys, visit)),
        Value::Object(object) => match keys.split_first() {
            None => visit(object),
            Some((first, rest)) => match filtered_out(first, object) {
                Some(true) => {}
                Some(false) => each_object_mut(value, rest, visit),
                None => {
                    if let Some(child) = object.get_mut(first) {
                        each_object_mut(child, rest, visit);
                    }
                }
            },
        },
        _ => {}
    }
}

/// The object at `path` (response keys and list indices, as `collect` gives them).
pub(super) fn object_at_mut<'a>(value: &'a mut Value, path: &[Json]) -> Option<&'a mut Object> {
    let mut target = value;
    for step in path {
        target = match (target, step) {
            (Value::Object(object), Json::String(key)) => object.get_mut(key)?,
            (Value::Array(items), Json::Number(i)) => items.get_mut(usize::try_from(i.as_u64()?).ok()?)?,
            _ => return None,
        };
    }
    match target {
        Value::Object(object) => Some(object),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_walk_finds_the_same_parents_in_the_same_order() {
        let value = Value::from_json(json!([
            {"media": [{"_sy___typename": "Book", "id": "1"}, {"_sy___typename": "Film", "id": "2"}]},
            {"media": {"__typename": "Book", "id": "3"}},
            {"media": null},
        ]));
        // (path, ids found)
        let table: [(&[&str], &[&str]); 3] =
            [(&["media"], &["1", "2", "3"]), (&["media", "@Book"], &["1", "3"]), (&["media", "@Film"], &["2"])];
        for (path, ids) in table {
            let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            let mut found = Vec::new();
            objects_at(&value, &path, &mut found);
            let found: Vec<&str> = found.iter().filter_map(|o| o.get("id")?.as_str()).collect();
            assert_eq!(found, ids, "{path:?}");
            let mut with_paths = Vec::new();
            collect(&value, &path, &mut Vec::new(), &mut with_paths);
            let mut copy = value.clone();
            let mut visited = Vec::new();
            each_object_mut(&mut copy, &path, &mut |o| visited.push(o.get("id").cloned()));
            assert_eq!(with_paths.len(), ids.len());
            assert_eq!(visited.len(), ids.len());
            for (at, object) in with_paths {
                let mut copy = value.clone();
                assert_eq!(object_at_mut(&mut copy, &at).map(|o| o.clone()), Some(object.clone()), "{at:?}");
            }
        }
    }
}
