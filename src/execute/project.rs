//! Projecting a supergraph root field's merged answer (a `tree::Value`, planner aliases and
//! all) onto the client's selection in one pass: `shape` and `complete` together, for values
//! with no stitched fetch left to run. Each selected field under its response key, in
//! selection order, `__typename` from the object type, an abstract value's fields by its
//! `__typename`, scalars by result coercion, a forbidden field null with its error; a null in
//! a non-null position nulls the nearest nullable parent (with "Cannot return null …" unless
//! an error at or below it says why already); hidden key fields are never written. Fields of
//! gRPC- or REST-backed types go through the serde_json shaper, which knows their sources.

use serde_json::Value as Json;

use super::graphql::FieldError;
use super::shape::{complete, shape_field};
use crate::error::ErrorCode;
use crate::operation::{SelectionSet, is_hidden_key};
use crate::plan::render::TYPENAME_ALIAS;
use crate::schema::{FieldSource, GraphqlSchema, ObjectField, TypeDef, TypeRef};
use crate::tree::{Object, Str, Value};

/// Projects `value`, of type `ty`, onto `selection`; problems become errors with paths from
/// the value. False when the value is null in a non-null position (the caller's value must
/// become null in turn).
pub(super) fn project(
    value: Value,
    ty: &TypeRef,
    selection: &SelectionSet,
    schema: &GraphqlSchema,
    errors: &mut Vec<FieldError>,
) -> (Value, bool) {
    let mut projector = Projector { schema, errors, path: Vec::new() };
    let projected = projector.value(value, ty, selection);
    if projected.is_null() && ty.non_null {
        projector.null_error();
        return (projected, false);
    }
    (projected, true)
}

/// One step of a path: a response key or a list index.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

struct Projector<'a, 'e> {
    schema: &'a GraphqlSchema,
    errors: &'e mut Vec<FieldError>,
    /// Where the projection is (kept borrowed; made JSON only for an error).
    path: Vec<Step<'a>>,
}

impl<'a> Projector<'a, '_> {
    fn value(&mut self, value: Value, ty: &'a TypeRef, selection: &'a SelectionSet) -> Value {
        if !ty.list {
            return self.named(value, &ty.name, selection);
        }
        match value {
            Value::Null => Value::Null,
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut failed = false;
                for (i, item) in items.into_iter().enumerate() {
                    self.path.push(Step::Index(i));
                    let projected = self.named(item, &ty.name, selection);
                    if projected.is_null() && ty.item_non_null {
                        self.null_error();
                        failed = true;
                    }
                    self.path.pop();
                    out.push(projected);
                }
                if failed { Value::Null } else { Value::Array(out) }
            }
            other => {
                self.error(format!("expected a list of {}, got {}", ty.name, other.kind()));
                Value::Null
            }
        }
    }

    fn named(&mut self, value: Value, type_name: &'a str, selection: &'a SelectionSet) -> Value {
        let schema = self.schema;
        match schema.types.get(type_name) {
            Some(TypeDef::Object { fields, .. }) => match value {
                Value::Null => Value::Null,
                Value::Object(source) => self.object(source, type_name, fields, selection),
                other => {
                    self.error(format!("expected an object of type {type_name}, got {}", other.kind()));
                    Value::Null
                }
            },
            Some(TypeDef::Interface { .. } | TypeDef::Union { .. }) => match value {
                Value::Null => Value::Null,
                Value::Object(source) => {
                    let concrete = source.get(TYPENAME_ALIAS).or_else(|| source.get("__typename"));
                    let concrete = concrete.and_then(Value::as_str);
                    let found = concrete.and_then(|name| {
                        let (name, def) = schema.types.get_key_value(name)?;
                        match def {
                            TypeDef::Object { fields, .. } => Some((name.as_str(), fields, selection.for_type(name)?)),
                            _ => None,
                        }
                    });
                    match found {
                        Some((name, fields, selection)) => self.object(source, name, fields, selection),
                        None => {
                            let told =
                                concrete.map_or_else(|| "no __typename".to_owned(), |c| format!("__typename {c:?}"));
                            self.error(format!("cannot tell which object type of {type_name} the value is ({told})"));
                            Value::Null
                        }
                    }
                }
                other => {
                    self.error(format!("expected an object of type {type_name}, got {}", other.kind()));
                    Value::Null
                }
            },
            Some(TypeDef::Enum { descriptor: None, values }) => match value {
                Value::String(name) if values.iter().any(|v| v.name == name) => Value::String(name),
                Value::Null => Value::Null,
                other => {
                    self.error(format!("Enum \"{type_name}\" cannot represent value: {other}"));
                    Value::Null
                }
            },
            Some(_) => value,
            None => match coerce_builtin(value, type_name) {
                Ok(value) => value,
                Err(message) => {
                    self.error(message);
                    Value::Null
                }
            },
        }
    }

    fn object(
        &mut self,
        mut source: Object,
        type_name: &'a str,
        definitions: &'a [ObjectField],
        selection: &'a SelectionSet,
    ) -> Value {
        let mut out = Object::with_capacity(selection.fields.len());
        let mut failed = false;
        for (index, selected) in selection.fields.iter().enumerate() {
            let key = selected.response_key.as_str();
            if is_hidden_key(key) {
                continue;
            }
            if selected.field_name == "__typename" {
                out.push(Str::new(key), Value::String(Str::new(type_name)));
                continue;
            }
            let Some(definition) = definitions.iter().find(|d| d.name == selected.field_name) else { continue };
            self.path.push(Step::Key(key));
            let projected = if let Some(why) = &selected.forbidden {
                let path = self.json_path();
                self.errors.push(FieldError { path, message: why.to_string(), code: ErrorCode::Forbidden });
                Value::Null
            } else {
                // The same field may be selected under two keys: later keys need the value too
                // (the last one takes it).
                let shared = selection.fields[index + 1..]
                    .iter()
                    .any(|f| f.field_name == selected.field_name && !is_hidden_key(&f.response_key));
                let take = |source: &mut Object, name: &str| {
                    if shared { source.get(name).cloned() } else { source.take(name) }.unwrap_or_default()
                };
                match &definition.source {
                    FieldSource::Remote => self.value(take(&mut source, key), &definition.ty, &selected.children),
                    FieldSource::Proto(field) => {
                        let value = take(&mut source, field.json_name());
                        self.through_json(value, definition, &selected.children)
                    }
                    FieldSource::Json(keys) => {
                        let mut value = source.get(&keys[0]);
                        for key in &keys[1..] {
                            value = value.and_then(|v| v.get(key));
                        }
                        let value = value.cloned().unwrap_or_default();
                        self.through_json(value, definition, &selected.children)
                    }
                    // A stitched field: answered only where stitches run (not projected).
                    FieldSource::Bound(_) => Value::Null,
                }
            };
            if projected.is_null() && definition.ty.non_null {
                self.null_error();
                failed = true;
            }
            self.path.pop();
            out.push(Str::new(key), projected);
        }
        if failed { Value::Null } else { Value::Object(out) }
    }

    /// A field of a gRPC- or REST-backed type, shaped and completed as serde_json values.
    fn through_json(&mut self, value: Value, definition: &ObjectField, children: &SelectionSet) -> Value {
        let mut path = self.json_path();
        let mut shaped = shape_field(value.into_json(), definition, children, self.schema, &mut path, self.errors);
        complete(&mut shaped, &definition.ty, children, self.schema, &mut path, self.errors);
        Value::from_json(shaped)
    }

    /// Records that the value here is null in a non-null position, unless an error at or below
    /// it says why already.
    fn null_error(&mut self) {
        let path = self.json_path();
        if self.errors.iter().any(|e| e.path.starts_with(&path)) {
            return;
        }
        let field = self
            .path
            .iter()
            .rev()
            .find_map(|step| match step {
                Step::Key(key) => Some(*key),
                Step::Index(_) => None,
            })
            .unwrap_or("value");
        let message = format!("Cannot return null for non-nullable field {field}.");
        self.errors.push(FieldError { path, message, code: ErrorCode::UpstreamError });
    }

    fn error(&mut self, message: String) {
        let path = self.json_path();
        self.errors.push(FieldError { path, message, code: ErrorCode::UpstreamError });
    }

    fn json_path(&self) -> Vec<Json> {
        self.path
            .iter()
            .map(|step| match step {
                Step::Key(key) => Json::String((*key).to_owned()),
                Step::Index(i) => Json::from(*i),
            })
            .collect()
    }
}

/// Result coercion of the built-in scalars (GraphQL spec 3.5), as `shape` does it.
fn coerce_builtin(value: Value, type_name: &str) -> Result<Value, String> {
    let fits_int = |n: &serde_json::Number| {
        n.as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .filter(|i| i32::try_from(*i).is_ok())
    };
    match (type_name, value) {
        (_, Value::Null) => Ok(Value::Null),
        ("String" | "ID", Value::String(s)) => Ok(Value::String(s)),
        ("String", Value::Number(n)) => Ok(Value::String(Str::from(n.to_string()))),
        ("String", Value::Bool(b)) => Ok(Value::String(Str::new(if b { "true" } else { "false" }))),
        ("ID", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Value::String(Str::from(n.to_string()))),
        ("Int", Value::Number(n)) if fits_int(&n).is_some() => {
            Ok(Value::Number(fits_int(&n).unwrap_or_default().into()))
        }
        ("Float", Value::Number(n)) => Ok(Value::Number(n)),
        // proto3 JSON writes non-finite floats as strings.
        ("Float", Value::String(s)) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => Ok(Value::String(s)),
        ("Boolean", Value::Bool(b)) => Ok(Value::Bool(b)),
        ("String" | "ID" | "Int" | "Float" | "Boolean", other) => {
            Err(format!("{type_name} cannot represent {}: {other}", other.kind()))
        }
        (_, other) => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn builtin_scalars_coerce_as_the_serde_json_shaper_does() {
        // (type, value, coerced or the error's start)
        let table = [
            ("String", json!(7), Ok(json!("7"))),
            ("String", json!(true), Ok(json!("true"))),
            ("ID", json!(12), Ok(json!("12"))),
            ("ID", json!(1.5), Err("ID cannot represent a number: 1.5")),
            ("Int", json!(3.0), Ok(json!(3))),
            ("Int", json!(4_000_000_000_i64), Err("Int cannot represent a number")),
            ("Float", json!("NaN"), Ok(json!("NaN"))),
            ("Float", json!("x"), Err("Float cannot represent a string: \"x\"")),
            ("Boolean", json!(1), Err("Boolean cannot represent a number: 1")),
            ("DateTime", json!({"a": 1}), Ok(json!({"a": 1}))),
            ("Int", Json::Null, Ok(Json::Null)),
        ];
        for (ty, value, want) in table {
            let found = coerce_builtin(Value::from_json(value.clone()), ty).map(Value::into_json);
            match (found, want) {
                (Ok(found), Ok(want)) => assert_eq!(found, want, "{ty} {value}"),
                (Err(found), Err(want)) => assert!(found.starts_with(want), "{ty} {value}: {found}"),
                (found, want) => panic!("{ty} {value}: {found:?}, wanted {want:?}"),
            }
        }
    }
}
