//! Shaping a backend answer into the GraphQL response: the selected fields under their response
//! keys, in selection order, with `__typename`, maps as `{key, value}` entry lists, and the
//! scalars in their GraphQL forms (which are their proto3 JSON forms).

use prost_reflect::{DynamicMessage, ReflectMessage};
use serde_json::{Map, Value as Json};

use crate::operation::SelectionSet;
use crate::schema::{GraphqlSchema, ObjectField, TypeDef};
use crate::transcode::json::{JsonOptions, message_to_json};

/// The value of a root field whose answer is `message`, typed `type_name`.
pub(crate) fn shape_answer(
    message: &DynamicMessage,
    type_name: &str,
    fields: &SelectionSet,
    schema: &GraphqlSchema,
) -> Json {
    let options = JsonOptions { emit_defaults: true, ..JsonOptions::default() };
    let json: Json = serde_json::from_slice(&message_to_json(message, &options)).unwrap_or(Json::Null);
    if message.descriptor().fields().len() == 0 && fields.fields.is_empty() {
        return Json::Object(Map::new());
    }
    shape(json, type_name, fields, schema)
}

fn shape(json: Json, type_name: &str, selection: &SelectionSet, schema: &GraphqlSchema) -> Json {
    let Some(TypeDef::Object { fields: definitions, .. }) = schema.types.get(type_name) else { return json };
    let Json::Object(mut source) = json else { return json };
    let mut out = Map::new();
    for selected in &selection.fields {
        if selected.field_name == "__typename" {
            out.insert(selected.response_key.clone(), Json::String(type_name.to_owned()));
            continue;
        }
        let Some(definition) = definitions.iter().find(|d| d.name == selected.field_name) else { continue };
        let value = source.remove(definition.field.json_name()).unwrap_or(Json::Null);
        // The same field may be selected under two keys: keep a copy for the next one.
        if selection.fields.iter().filter(|f| f.field_name == selected.field_name).count() > 1 {
            source.insert(definition.field.json_name().to_owned(), value.clone());
        }
        out.insert(selected.response_key.clone(), shape_field(value, definition, &selected.children, schema));
    }
    Json::Object(out)
}

fn shape_field(value: Json, definition: &ObjectField, children: &SelectionSet, schema: &GraphqlSchema) -> Json {
    let item_type = definition.ty.name.as_str();
    if definition.field.is_map() {
        let Json::Object(entries) = value else { return Json::Array(Vec::new()) };
        let shaped = entries
            .into_iter()
            .map(|(key, value)| {
                let entry =
                    Json::Object(Map::from_iter([("key".to_owned(), Json::String(key)), ("value".to_owned(), value)]));
                shape_map_entry(entry, item_type, children, schema)
            })
            .collect();
        return Json::Array(shaped);
    }
    match value {
        Json::Array(items) if definition.ty.list => {
            Json::Array(items.into_iter().map(|item| shape(item, item_type, children, schema)).collect())
        }
        other => shape(other, item_type, children, schema),
    }
}

/// A map entry: `key` is written as the key's proto3 JSON form; `value` is shaped as its type.
fn shape_map_entry(entry: Json, entry_type: &str, children: &SelectionSet, schema: &GraphqlSchema) -> Json {
    let Some(TypeDef::Object { fields, .. }) = schema.types.get(entry_type) else { return entry };
    let Json::Object(mut source) = entry else { return entry };
    let mut out = Map::new();
    for selected in &children.fields {
        if selected.field_name == "__typename" {
            out.insert(selected.response_key.clone(), Json::String(entry_type.to_owned()));
            continue;
        }
        let value = source.get(selected.field_name.as_str()).cloned().unwrap_or(Json::Null);
        let value = match fields.iter().find(|f| f.name == selected.field_name) {
            Some(definition) if selected.field_name == "value" => {
                shape(value, &definition.ty.name, &selected.children, schema)
            }
            Some(definition) if selected.field_name == "key" => typed_key(value, &definition.ty.name),
            _ => value,
        };
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

/// Shapes an introspection value (`__schema` or one `__Type`) of introspection type `type_name`.
pub(crate) fn shape_introspection(value: &Json, type_name: &str, selection: &SelectionSet) -> Json {
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
