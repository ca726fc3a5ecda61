//! GraphQL argument values (literals and variables) as proto3 JSON for the request message:
//! enums by name, lists and input objects field by field, and map arguments (lists of
//! `{key, value}` entries) turned into JSON objects.

use async_graphql_value::Value;
use prost_reflect::{FieldDescriptor, Kind};
use serde_json::Value as Json;

/// Why an argument value cannot become JSON for its field.
pub(crate) struct ArgumentProblem {
    pub(crate) message: String,
}

fn problem(message: impl Into<String>) -> ArgumentProblem {
    ArgumentProblem { message: message.into() }
}

/// The JSON for `field` from a GraphQL value.
pub(crate) fn argument_json(
    value: &Value,
    field: &FieldDescriptor,
    variables: &serde_json::Map<String, Json>,
) -> Result<Json, ArgumentProblem> {
    let json = resolve(value, variables)?;
    shape_for_field(json, field)
}

/// Substitutes variables and turns GraphQL values into plain JSON.
fn resolve(value: &Value, variables: &serde_json::Map<String, Json>) -> Result<Json, ArgumentProblem> {
    Ok(match value {
        Value::Variable(name) => variables
            .get(name.as_str())
            .cloned()
            .ok_or_else(|| problem(format!("Variable \"${name}\" is not defined.")))?,
        Value::Null => Json::Null,
        Value::Number(number) => Json::Number(number.clone()),
        Value::String(text) => Json::String(text.clone()),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Binary(bytes) => Json::String(String::from_utf8_lossy(bytes).into_owned()),
        Value::Enum(name) => Json::String(name.to_string()),
        Value::List(items) => Json::Array(items.iter().map(|v| resolve(v, variables)).collect::<Result<_, _>>()?),
        Value::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.to_string(), resolve(v, variables)?)))
                .collect::<Result<_, ArgumentProblem>>()?,
        ),
    })
}

/// Reshapes plain JSON to the proto3 JSON form of `field`: maps from entry lists to objects,
/// recursively through message fields.
fn shape_for_field(json: Json, field: &FieldDescriptor) -> Result<Json, ArgumentProblem> {
    if json.is_null() {
        return Ok(json);
    }
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else { return Ok(json) };
        let value_field = entry.map_entry_value_field();
        let Json::Array(entries) = json else {
            return Err(problem(format!("`{}` takes a list of {{key, value}} entries", field.json_name())));
        };
        let mut object = serde_json::Map::new();
        for item in entries {
            let Json::Object(mut pair) = item else {
                return Err(problem(format!("`{}` entries are {{key, value}} objects", field.json_name())));
            };
            let key = match pair.remove("key") {
                Some(Json::String(key)) => key,
                Some(Json::Number(n)) => n.to_string(),
                Some(Json::Bool(b)) => b.to_string(),
                _ => return Err(problem(format!("`{}` entries need a key", field.json_name()))),
            };
            let value = shape_for_field(pair.remove("value").unwrap_or(Json::Null), &value_field)?;
            object.insert(key, value);
        }
        return Ok(Json::Object(object));
    }
    if field.is_list() {
        let items = match json {
            Json::Array(items) => items,
            single => vec![single],
        };
        let shaped = items.into_iter().map(|item| shape_item(item, field)).collect::<Result<_, _>>()?;
        return Ok(Json::Array(shaped));
    }
    shape_item(json, field)
}

fn shape_item(json: Json, field: &FieldDescriptor) -> Result<Json, ArgumentProblem> {
    match (field.kind(), json) {
        (Kind::Message(message), Json::Object(fields)) if !message.full_name().starts_with("google.protobuf.") => {
            let mut out = serde_json::Map::new();
            for (name, value) in fields {
                let Some(inner) = message.get_field_by_json_name(&name) else {
                    return Err(problem(format!("`{name}` is not a field of {}", message.full_name())));
                };
                out.insert(name, shape_for_field(value, &inner)?);
            }
            Ok(Json::Object(out))
        }
        (_, json) => Ok(json),
    }
}
