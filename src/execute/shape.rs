//! Shaping a backend answer into the GraphQL response: the selected fields under their response
//! keys, in selection order, with `__typename`, maps as `{key, value}` entry lists, and the
//! scalars in their GraphQL forms (which are their proto3 JSON forms).

//! Shaping a backend answer into the GraphQL response: the selected fields under their response
//! keys, in selection order, with `__typename`, maps as `{key, value}` entry lists, scalars in
//! their GraphQL forms (proto fields are read by json_name from the answer's proto3 JSON;
//! fields of declared types by their key path, with result coercion); stitched fields are left
//! null for `stitch` to fill. `complete` then applies non-null rules (a null in a non-null
//! position nulls the nearest nullable parent) and removes hidden key fields.

use serde_json::{Map, Value as Json};

use super::graphql::FieldError;
use crate::error::ErrorCode;
use crate::operation::{HIDDEN_TYPENAME, SelectionSet, is_hidden_key};
use crate::plan::render::{TYPENAME_ALIAS, remote_key};
use crate::schema::{FieldSource, GraphqlSchema, ObjectField, TypeDef, TypeRef};

/// Shapes `json`, of type `ty`, to `selection`; problems become errors at `path`.
pub(super) fn shape_value(
    json: Json,
    ty: &TypeRef,
    selection: &SelectionSet,
    schema: &GraphqlSchema,
    path: &mut Vec<Json>,
    errors: &mut Vec<FieldError>,
) -> Json {
    if !ty.list {
        return shape_named(json, &ty.name, selection, schema, path, errors);
    }
    match json {
        Json::Null => Json::Null,
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(Json::from(i));
                    let shaped = shape_named(item, &ty.name, selection, schema, path, errors);
                    path.pop();
                    shaped
                })
                .collect(),
        ),
        other => {
            errors.push(error(path, format!("expected a list of {}, got {}", ty.name, kind(&other))));
            Json::Null
        }
    }
}

fn shape_named(
    json: Json,
    type_name: &str,
    selection: &SelectionSet,
    schema: &GraphqlSchema,
    path: &mut Vec<Json>,
    errors: &mut Vec<FieldError>,
) -> Json {
    match schema.types.get(type_name) {
        Some(TypeDef::Object { fields, .. }) => match json {
            Json::Null => Json::Null,
            Json::Object(source) => shape_object(source, type_name, fields, selection, schema, path, errors),
            other => {
                errors.push(error(path, format!("expected an object of type {type_name}, got {}", kind(&other))));
                Json::Null
            }
        },
        Some(TypeDef::Interface { .. } | TypeDef::Union { .. }) => match json {
            Json::Null => Json::Null,
            Json::Object(source) => {
                let concrete = concrete_type(&source).map(str::to_owned);
                let found = concrete.as_deref().and_then(|name| match schema.types.get(name) {
                    Some(TypeDef::Object { fields, .. }) => Some((name, fields, selection.for_type(name)?)),
                    _ => None,
                });
                let Some((name, fields, selection)) = found else {
                    let told = concrete.map_or_else(|| "no __typename".to_owned(), |c| format!("__typename {c:?}"));
                    let message = format!("cannot tell which object type of {type_name} the value is ({told})");
                    errors.push(error(path, message));
                    return Json::Null;
                };
                let mut shaped = shape_object(source, name, fields, selection, schema, path, errors);
                if let Json::Object(out) = &mut shaped {
                    // For `complete`, which walks the shaped value; removed there.
                    out.insert(HIDDEN_TYPENAME.to_owned(), Json::String(name.to_owned()));
                }
                shaped
            }
            other => {
                errors.push(error(path, format!("expected an object of type {type_name}, got {}", kind(&other))));
                Json::Null
            }
        },
        Some(TypeDef::Enum { descriptor: None, values }) => match json {
            Json::String(name) if values.iter().any(|v| v.name == name) => Json::String(name),
            Json::Null => Json::Null,
            other => {
                errors.push(error(path, format!("Enum \"{type_name}\" cannot represent value: {other}")));
                Json::Null
            }
        },
        Some(_) => json,
        None => match coerce_builtin(json, type_name) {
            Ok(value) => value,
            Err(message) => {
                errors.push(error(path, message));
                Json::Null
            }
        },
    }
}

fn shape_object(
    mut source: Map<String, Json>,
    type_name: &str,
    definitions: &[ObjectField],
    selection: &SelectionSet,
    schema: &GraphqlSchema,
    path: &mut Vec<Json>,
    errors: &mut Vec<FieldError>,
) -> Json {
    let mut out = Map::with_capacity(selection.fields.len() + 1);
    for (index, selected) in selection.fields.iter().enumerate() {
        if selected.field_name == "__typename" {
            out.insert(selected.response_key.clone(), Json::String(type_name.to_owned()));
            continue;
        }
        if let Some(why) = &selected.forbidden {
            path.push(Json::String(selected.response_key.clone()));
            errors.push(FieldError { path: path.clone(), message: why.to_string(), code: ErrorCode::Forbidden });
            path.pop();
            out.insert(selected.response_key.clone(), Json::Null);
            continue;
        }
        let Some(definition) = definitions.iter().find(|d| d.name == selected.field_name) else { continue };
        // The same field may be selected under two keys: later keys need the value too (the last
        // one takes it).
        let shared = selection.fields[index + 1..].iter().any(|f| f.field_name == selected.field_name);
        let value = match &definition.source {
            FieldSource::Proto(field) => take(&mut source, field.json_name(), shared),
            FieldSource::Json(keys) if keys.len() == 1 => take(&mut source, &keys[0], shared),
            FieldSource::Json(keys) => {
                let mut value = source.get(&keys[0]);
                for key in &keys[1..] {
                    value = value.and_then(|v| v.get(key));
                }
                value.cloned().unwrap_or(Json::Null)
            }
            FieldSource::Remote => match remote_key(&selected.response_key, &selected.field_name) {
                // A hidden key field a fetch had under its own name already (no alias then).
                key if is_hidden_key(&selected.response_key) && !source.contains_key(&key) => {
                    source.get(&selected.field_name).cloned().unwrap_or(Json::Null)
                }
                // A later hidden key field may read it under this name (see above).
                key => take(&mut source, &key, shared),
            },
            FieldSource::Bound(_) => {
                out.insert(selected.response_key.clone(), Json::Null);
                continue;
            }
        };
        path.push(Json::String(selected.response_key.clone()));
        let shaped = shape_field(value, definition, &selected.children, schema, path, errors);
        path.pop();
        out.insert(selected.response_key.clone(), shaped);
    }
    Json::Object(out)
}

/// The object type a backend says an abstract value has: `__typename` under the alias plans
/// fetch it by, or as the client selected it.
fn concrete_type(source: &Map<String, Json>) -> Option<&str> {
    source.get(TYPENAME_ALIAS).or_else(|| source.get("__typename"))?.as_str()
}

fn take(source: &mut Map<String, Json>, key: &str, shared: bool) -> Json {
    // Taking (leaving a null behind) is cheaper than removing from the ordered map.
    if shared { source.get(key).cloned() } else { source.get_mut(key).map(std::mem::take) }.unwrap_or(Json::Null)
}

pub(super) fn shape_field(
    value: Json,
    definition: &ObjectField,
    children: &SelectionSet,
    schema: &GraphqlSchema,
    path: &mut Vec<Json>,
    errors: &mut Vec<FieldError>,
) -> Json {
    let item_type = definition.ty.name.as_str();
    if let FieldSource::Proto(field) = &definition.source
        && field.is_map()
    {
        let Json::Object(entries) = value else { return Json::Array(Vec::new()) };
        let shaped = entries
            .into_iter()
            .map(|(key, value)| {
                let entry =
                    Json::Object(Map::from_iter([("key".to_owned(), Json::String(key)), ("value".to_owned(), value)]));
                shape_map_entry(entry, item_type, children, schema, path, errors)
            })
            .collect();
        return Json::Array(shaped);
    }
    shape_value(value, &definition.ty, children, schema, path, errors)
}

/// A map entry: `key` is written as the key's proto3 JSON form; `value` is shaped as its type.
fn shape_map_entry(
    entry: Json,
    entry_type: &str,
    children: &SelectionSet,
    schema: &GraphqlSchema,
    path: &mut Vec<Json>,
    errors: &mut Vec<FieldError>,
) -> Json {
    let Some(TypeDef::Object { fields, .. }) = schema.types.get(entry_type) else { return entry };
    let Json::Object(mut source) = entry else { return entry };
    let mut out = Map::new();
    for selected in &children.fields {
        if selected.field_name == "__typename" {
            out.insert(selected.response_key.clone(), Json::String(entry_type.to_owned()));
            continue;
        }
        let value = source.get(selected.field_name.as_str()).cloned().unwrap_or(Json::Null);
        path.push(Json::String(selected.response_key.clone()));
        let value = match fields.iter().find(|f| f.name == selected.field_name) {
            Some(definition) if selected.field_name == "value" => {
                shape_named(value, &definition.ty.name, &selected.children, schema, path, errors)
            }
            Some(definition) if selected.field_name == "key" => typed_key(value, &definition.ty.name),
            _ => value,
        };
        path.pop();
        out.insert(selected.response_key.clone(), value);
    }
    let _ = source.remove("key");
    Json::Object(out)
}

/// proto3 JSON writes every map key as a string; GraphQL's `Int`, `UInt32` and `Boolean` keys
/// are numbers and booleans (64-bit keys stay strings, as their scalars are).
fn typed_key(key: Json, type_name: &str) -> Json {
    let Json::String(text) = &key else { return key };
    match type_name {
        "Int" | "UInt32" => text.parse::<i64>().map(Json::from).unwrap_or(key),
        "Boolean" => text.parse::<bool>().map(Json::Bool).unwrap_or(key),
        _ => key,
    }
}

/// Applies the non-null rules below `value` (of type `ty`) and removes hidden key fields.
/// Returns false when `value` is null where `ty` is non-null: the caller's value must become
/// null in turn. A null without an error below it gets one ("Cannot return null …").
pub(super) fn complete(
    value: &mut Json,
    ty: &TypeRef,
    selection: &SelectionSet,
    schema: &GraphqlSchema,
    path: &mut Vec<Json>,
    errors: &mut Vec<FieldError>,
) -> bool {
    if !ty.list {
        return complete_item(value, &ty.name, ty.non_null, selection, schema, path, errors);
    }
    let Json::Array(items) = value else { return null_allowed(value, ty.non_null, path, errors) };
    let mut failed = false;
    for (i, item) in items.iter_mut().enumerate() {
        path.push(Json::from(i));
        failed |= !complete_item(item, &ty.name, ty.item_non_null, selection, schema, path, errors);
        path.pop();
    }
    if failed {
        *value = Json::Null;
        return !ty.non_null;
    }
    true
}

fn complete_item(
    value: &mut Json,
    type_name: &str,
    non_null: bool,
    selection: &SelectionSet,
    schema: &GraphqlSchema,
    path: &mut Vec<Json>,
    errors: &mut Vec<FieldError>,
) -> bool {
    let Json::Object(object) = value else { return null_allowed(value, non_null, path, errors) };
    // An interface's or union's value carries its object type under a hidden key (see
    // `shape_named`).
    let (type_name, selection) = match schema.types.get(type_name) {
        Some(TypeDef::Interface { .. } | TypeDef::Union { .. }) => {
            let concrete = object.get(HIDDEN_TYPENAME).and_then(Json::as_str).unwrap_or_default();
            match schema.possible_types(type_name).iter().find(|t| *t == concrete) {
                Some(name) => (name.as_str(), selection.for_type(name).unwrap_or(selection)),
                None => return true,
            }
        }
        _ => (type_name, selection),
    };
    let Some(TypeDef::Object { fields, .. }) = schema.types.get(type_name) else { return true };
    let mut failed = false;
    for selected in &selection.fields {
        let Some(definition) = fields.iter().find(|d| d.name == selected.field_name) else { continue };
        let Some(child) = object.get_mut(&selected.response_key) else { continue };
        path.push(Json::String(selected.response_key.clone()));
        failed |= !complete(child, &definition.ty, &selected.children, schema, path, errors);
        path.pop();
    }
    object.retain(|key, _| !is_hidden_key(key));
    if failed {
        *value = Json::Null;
        return !non_null;
    }
    true
}

/// A leaf or null: fine unless it is null in a non-null position.
fn null_allowed(value: &Json, non_null: bool, path: &[Json], errors: &mut Vec<FieldError>) -> bool {
    if !value.is_null() || !non_null {
        return true;
    }
    if !errors.iter().any(|e| e.path.starts_with(path)) {
        let field = path.iter().rev().find_map(Json::as_str).unwrap_or("value");
        errors.push(error(path, format!("Cannot return null for non-nullable field {field}.")));
    }
    false
}

fn error(path: &[Json], message: String) -> FieldError {
    FieldError { path: path.to_vec(), message, code: ErrorCode::UpstreamError }
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// Result coercion of the built-in scalars (GraphQL spec 3.5): numbers and booleans become
/// Strings, integral floats Ints, integers IDs; anything else that does not fit is an error.
pub(super) fn coerce_builtin(json: Json, type_name: &str) -> Result<Json, String> {
    let fits_int = |n: &serde_json::Number| {
        n.as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .filter(|i| i32::try_from(*i).is_ok())
    };
    match (type_name, json) {
        (_, Json::Null) => Ok(Json::Null),
        ("String", Json::String(s)) => Ok(Json::String(s)),
        ("String", Json::Number(n)) => Ok(Json::String(n.to_string())),
        ("String", Json::Bool(b)) => Ok(Json::String(b.to_string())),
        ("ID", Json::String(s)) => Ok(Json::String(s)),
        ("ID", Json::Number(n)) if n.is_i64() || n.is_u64() => Ok(Json::String(n.to_string())),
        ("Int", Json::Number(n)) if fits_int(&n).is_some() => Ok(Json::from(fits_int(&n).unwrap_or_default())),
        ("Float", Json::Number(n)) => Ok(Json::Number(n)),
        // proto3 JSON writes non-finite floats as strings.
        ("Float", Json::String(s)) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => Ok(Json::String(s)),
        ("Boolean", Json::Bool(b)) => Ok(Json::Bool(b)),
        ("String" | "ID" | "Int" | "Float" | "Boolean", other) => {
            Err(format!("{type_name} cannot represent {}: {other}", kind(&other)))
        }
        (_, other) => Ok(other),
    }
}

/// Shapes an introspection value (`__schema` or one `__Type`) of introspection type `type_name`.
pub fn shape_introspection(value: &Json, type_name: &str, selection: &SelectionSet) -> Json {
    match value {
        Json::Array(items) => {
            Json::Array(items.iter().map(|item| shape_introspection(item, type_name, selection)).collect())
        }
        Json::Object(object) => {
            let mut out = Map::new();
            for selected in &selection.fields {
                if selected.field_name == "__typename" {
                    out.insert(selected.response_key.clone(), Json::String(type_name.to_owned()));
                    continue;
                }
                let mut child = object.get(&selected.field_name).cloned().unwrap_or(Json::Null);
                let include_deprecated =
                    selected.arguments.iter().any(|(n, v)| n == "includeDeprecated" && v == &Json::Bool(true));
                if let Json::Array(items) = &mut child
                    && !include_deprecated
                    && matches!(selected.field_name.as_str(), "fields" | "enumValues" | "inputFields" | "args")
                {
                    items.retain(|item| item.get("isDeprecated") != Some(&Json::Bool(true)));
                }
                let child_type =
                    crate::schema::introspection_field_type(type_name, &selected.field_name).unwrap_or("String");
                let shaped = if selected.children.fields.is_empty() {
                    child
                } else {
                    shape_introspection(&child, child_type, &selected.children)
                };
                out.insert(selected.response_key.clone(), shaped);
            }
            Json::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keys_take_their_graphql_types() {
        let table = [
            (Json::from("7"), "Int", Json::from(7)),
            (Json::from("4000000000"), "UInt32", Json::from(4_000_000_000_i64)),
            (Json::from("true"), "Boolean", Json::Bool(true)),
            (Json::from("9007199254740993"), "Int64", Json::from("9007199254740993")),
            (Json::from("k"), "String", Json::from("k")),
        ];
        for (key, ty, want) in table {
            assert_eq!(typed_key(key.clone(), ty), want, "{key} as {ty}");
        }
    }
}
