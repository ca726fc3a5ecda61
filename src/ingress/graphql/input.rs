//! GraphQL argument values (literals and variables) as proto3 JSON for the request message:
//! enums by name, lists and input objects field by field, and map arguments (lists of
//! `{key, value}` entries) turned into JSON objects.

use async_graphql_value::Value;
use prost_reflect::{FieldDescriptor, Kind};
use serde_json::Value as Json;

use crate::schema::{GraphqlSchema, InputField, InputSource, TypeDef, TypeRef};

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

/// The JSON of a value whose variables are bound later: a variable becomes
/// `{"$variable": NAME}`, a key no GraphQL object literal can have (`$` starts no name).
pub(crate) fn deferred_json(value: &Value) -> Json {
    match value {
        Value::Variable(name) => {
            Json::Object(serde_json::Map::from_iter([(VARIABLE.to_owned(), Json::from(name.as_str()))]))
        }
        Value::List(items) => Json::Array(items.iter().map(deferred_json).collect()),
        Value::Object(fields) => Json::Object(fields.iter().map(|(k, v)| (k.to_string(), deferred_json(v))).collect()),
        other => resolve(other, &serde_json::Map::new()).unwrap_or(Json::Null),
    }
}

const VARIABLE: &str = "$variable";

/// `json` with the variables of `deferred_json` replaced by their values (absent: null).
pub(crate) fn bind_deferred(json: &Json, variables: &serde_json::Map<String, Json>) -> Json {
    match json {
        Json::Object(object) if object.len() == 1 && object.contains_key(VARIABLE) => {
            object[VARIABLE].as_str().and_then(|name| variables.get(name)).cloned().unwrap_or(Json::Null)
        }
        Json::Object(object) => {
            Json::Object(object.iter().map(|(k, v)| (k.clone(), bind_deferred(v, variables))).collect())
        }
        Json::Array(items) => Json::Array(items.iter().map(|v| bind_deferred(v, variables)).collect()),
        other => other.clone(),
    }
}

/// Input coercion (GraphQL spec 3.5 and 3.10) of a value for an argument declared in
/// schemas/: built-in scalars, enums, input objects and lists (a single value is a list of
/// one), with non-null checked and input-object defaults applied.
pub(crate) fn declared_json(json: Json, ty: &TypeRef, schema: &GraphqlSchema) -> Result<Json, String> {
    if json.is_null() {
        return if ty.non_null { Err(format!("expected a non-null {}", ty)) } else { Ok(Json::Null) };
    }
    if !ty.list {
        return named_json(json, &ty.name, schema);
    }
    let items = match json {
        Json::Array(items) => items,
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| {
            if item.is_null() {
                if ty.item_non_null { Err(format!("the items of {} cannot be null", ty)) } else { Ok(item) }
            } else {
                named_json(item, &ty.name, schema)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Array)
}

fn named_json(json: Json, name: &str, schema: &GraphqlSchema) -> Result<Json, String> {
    let fits_int = json.as_i64().is_some_and(|n| i32::try_from(n).is_ok());
    match (name, schema.types.get(name)) {
        ("String", _) if json.is_string() => Ok(json),
        ("ID", _) if json.is_string() => Ok(json),
        ("ID", _) if json.is_i64() || json.is_u64() => Ok(Json::String(json.to_string())),
        ("Int", _) if fits_int => Ok(json),
        ("Float", _) if json.is_number() => Ok(json),
        ("Boolean", _) if json.is_boolean() => Ok(json),
        ("String", _) => Err(format!("String cannot represent a non string value: {json}")),
        ("ID", _) => Err(format!("ID cannot represent value: {json}")),
        ("Int", _) if json.is_i64() || json.is_u64() => {
            Err(format!("Int cannot represent non 32-bit signed integer value: {json}"))
        }
        ("Int", _) => Err(format!("Int cannot represent non-integer value: {json}")),
        ("Float", _) => Err(format!("Float cannot represent non numeric value: {json}")),
        ("Boolean", _) => Err(format!("Boolean cannot represent a non boolean value: {json}")),
        (_, Some(TypeDef::Enum { values, .. })) => match json.as_str() {
            Some(value) if values.iter().any(|v| v.name == value) => Ok(json),
            _ => Err(format!("Value {json} does not exist in \"{name}\" enum")),
        },
        (_, Some(TypeDef::Input { fields, .. })) => {
            let Json::Object(mut given) = json else { return Err(format!("{name} is an input object; got {json}")) };
            let mut out = serde_json::Map::new();
            for field in fields {
                let value = match given.remove(&field.name) {
                    Some(value) => value,
                    None => match &field.source {
                        InputSource::Declared(Some(default)) => default.clone(),
                        _ if field.ty.non_null => return Err(format!("{name}.{} is required", field.name)),
                        _ => continue,
                    },
                };
                let value =
                    declared_json(value, &field.ty, schema).map_err(|e| format!("{name}.{}: {e}", field.name))?;
                out.insert(field.name.clone(), value);
            }
            if let Some(extra) = given.keys().next() {
                return Err(format!("{name} has no field `{extra}`"));
            }
            Ok(Json::Object(out))
        }
        _ => Ok(json),
    }
}

/// The arguments of a declared field: given values coerced, defaults applied, required ones
/// checked. Keys are GraphQL names.
pub(crate) fn declared_arguments(
    given: &[(String, Json)],
    declared: &[InputField],
    schema: &GraphqlSchema,
) -> Result<serde_json::Map<String, Json>, String> {
    let mut out = serde_json::Map::new();
    for argument in declared {
        let value = match given.iter().find(|(name, _)| name == &argument.name) {
            Some((_, value)) => value.clone(),
            None => match &argument.source {
                InputSource::Declared(Some(default)) => default.clone(),
                _ => Json::Null,
            },
        };
        let value =
            declared_json(value, &argument.ty, schema).map_err(|e| format!("argument \"{}\": {e}", argument.name))?;
        if !value.is_null() {
            out.insert(argument.name.clone(), value);
        }
    }
    Ok(out)
}
