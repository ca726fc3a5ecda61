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
use crate::schema::{FieldSource, GraphqlSchema, ObjectField, TypeDef, TypeRef, is_builtin_scalar};
use crate::tree::{Object, Str, Value};

/// Projects `value`, of type `ty`, onto `selection`, written as JSON text; problems become
/// errors with paths from the value. False when the value is null in a non-null position (the
/// caller's value must become null in turn).
pub(super) fn project(
    value: &Value,
    ty: &TypeRef,
    selection: &SelectionSet,
    schema: &GraphqlSchema,
    errors: &mut Vec<FieldError>,
) -> (Vec<u8>, bool) {
    let mut projector =
        Projector { schema, errors, path: Vec::new(), out: Vec::with_capacity(4096), resolved: Vec::new() };
    let null = projector.value(value, ty, selection);
    let complete = !(null && ty.non_null);
    if !complete {
        projector.null_error();
    }
    (projector.out, complete)
}

/// One step of a path: a response key or a list index.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Writes as it walks: an object or list is written as it is found, and if one of its
/// non-null fields or items turns out null, what was written of it is cut back and `null`
/// written instead. Each writer returns whether it wrote null.
struct Projector<'a, 'e> {
    schema: &'a GraphqlSchema,
    errors: &'e mut Vec<FieldError>,
    /// Where the projection is (kept borrowed; made JSON only for an error).
    path: Vec<Step<'a>>,
    out: Vec<u8>,
    /// Each selection's fields' definitions on an object type, found once per projection (a
    /// list of a hundred objects asks for the same ones a hundred times).
    resolved: Vec<Resolved<'a>>,
}

/// The definitions of `selection`'s fields among `definitions` (None: `__typename`, a hidden
/// key, or a field the type does not have).
struct Resolved<'a> {
    selection: &'a SelectionSet,
    definitions: &'a [ObjectField],
    fields: Vec<Option<&'a ObjectField>>,
}

impl<'a> Projector<'a, '_> {
    fn value(&mut self, value: &Value, ty: &'a TypeRef, selection: &'a SelectionSet) -> bool {
        if !ty.list {
            return self.named(value, &ty.name, selection);
        }
        match value {
            Value::Null => self.null(),
            Value::Array(items) => {
                let start = self.out.len();
                self.out.push(b'[');
                let mut failed = false;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.path.push(Step::Index(i));
                    if self.named(item, &ty.name, selection) && ty.item_non_null {
                        self.null_error();
                        failed = true;
                    }
                    self.path.pop();
                }
                self.out.push(b']');
                if failed { self.cut_to_null(start) } else { false }
            }
            other => {
                self.error(format!("expected a list of {}, got {}", ty.name, other.kind()));
                self.null()
            }
        }
    }

    fn named(&mut self, value: &Value, type_name: &'a str, selection: &'a SelectionSet) -> bool {
        let schema = self.schema;
        let definition = if is_builtin_scalar(type_name) { None } else { schema.types.get(type_name) };
        match definition {
            Some(TypeDef::Object { fields, .. }) => match value {
                Value::Null => self.null(),
                Value::Object(source) => self.object(source, type_name, fields, selection),
                other => {
                    self.error(format!("expected an object of type {type_name}, got {}", other.kind()));
                    self.null()
                }
            },
            Some(TypeDef::Interface { .. } | TypeDef::Union { .. }) => match value {
                Value::Null => self.null(),
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
                            self.null()
                        }
                    }
                }
                other => {
                    self.error(format!("expected an object of type {type_name}, got {}", other.kind()));
                    self.null()
                }
            },
            Some(TypeDef::Enum { descriptor: None, values }) => match value {
                Value::String(name) if values.iter().any(|v| v.name == *name) => self.write(value),
                Value::Null => self.null(),
                other => {
                    self.error(format!("Enum \"{type_name}\" cannot represent value: {other}"));
                    self.null()
                }
            },
            Some(_) => self.write(value),
            None => match coerce_builtin(value, type_name) {
                Ok(None) => self.write(value),
                Ok(Some(coerced)) => self.write(&coerced),
                Err(message) => {
                    self.error(message);
                    self.null()
                }
            },
        }
    }

    fn object(
        &mut self,
        source: &Object,
        type_name: &'a str,
        definitions: &'a [ObjectField],
        selection: &'a SelectionSet,
    ) -> bool {
        let start = self.out.len();
        self.out.push(b'{');
        let mut failed = false;
        let mut first = true;
        let resolved = self.resolve(selection, definitions);
        for (index, selected) in selection.fields.iter().enumerate() {
            let key = selected.response_key.as_str();
            let definition = self.resolved[resolved].fields[index];
            let typename = selected.field_name == "__typename";
            if definition.is_none() && !typename || is_hidden_key(key) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.name(key);
            self.out.push(b':');
            let Some(definition) = definition else {
                self.name(type_name);
                continue;
            };
            self.path.push(Step::Key(key));
            let null = if let Some(why) = &selected.forbidden {
                let path = self.json_path();
                self.errors.push(FieldError { path, message: why.to_string(), code: ErrorCode::Forbidden });
                self.null()
            } else {
                match &definition.source {
                    FieldSource::Remote => {
                        let value = source.get(key).unwrap_or(&Value::Null);
                        self.value(value, &definition.ty, &selected.children)
                    }
                    FieldSource::Proto(field) => {
                        let value = source.get(field.json_name()).cloned().unwrap_or_default();
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
                    FieldSource::Bound(_) => self.null(),
                }
            };
            if null && definition.ty.non_null {
                self.null_error();
                failed = true;
            }
            self.path.pop();
        }
        self.out.push(b'}');
        if failed { self.cut_to_null(start) } else { false }
    }

    /// The index in `resolved` of `selection`'s fields' definitions among `definitions`.
    fn resolve(&mut self, selection: &'a SelectionSet, definitions: &'a [ObjectField]) -> usize {
        let found = self.resolved.iter().position(|r| {
            std::ptr::eq(r.selection, selection) && std::ptr::eq(r.definitions.as_ptr(), definitions.as_ptr())
        });
        if let Some(found) = found {
            return found;
        }
        let fields = selection.fields.iter().map(|f| definitions.iter().find(|d| d.name == f.field_name)).collect();
        self.resolved.push(Resolved { selection, definitions, fields });
        self.resolved.len() - 1
    }

    /// A field of a gRPC- or REST-backed type, shaped and completed as serde_json values.
    fn through_json(&mut self, value: Value, definition: &ObjectField, children: &SelectionSet) -> bool {
        let mut path = self.json_path();
        let mut shaped = shape_field(value.into_json(), definition, children, self.schema, &mut path, self.errors);
        complete(&mut shaped, &definition.ty, children, self.schema, &mut path, self.errors);
        let _ = serde_json::to_writer(&mut self.out, &shaped);
        shaped.is_null()
    }

    fn write(&mut self, value: &Value) -> bool {
        let _ = serde_json::to_writer(&mut self.out, value);
        value.is_null()
    }

    /// A GraphQL name (a response key, a type's name) as a JSON string: names are
    /// `[_A-Za-z][_0-9A-Za-z]*`, so nothing in them needs escaping.
    fn name(&mut self, name: &str) {
        debug_assert!(name.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric()), "{name}");
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'"');
    }

    fn null(&mut self) -> bool {
        self.out.extend_from_slice(b"null");
        true
    }

    /// Replaces what was written from `start` on with `null`.
    fn cut_to_null(&mut self, start: usize) -> bool {
        self.out.truncate(start);
        self.null()
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

/// Result coercion of the built-in scalars (GraphQL spec 3.5), as `shape` does it: None when
/// the value stands as it is, else the coerced value; an error for what does not fit.
fn coerce_builtin(value: &Value, type_name: &str) -> Result<Option<Value>, String> {
    let fits_int = |n: &serde_json::Number| {
        n.as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .filter(|i| i32::try_from(*i).is_ok())
    };
    match (type_name, value) {
        (_, Value::Null) | ("String" | "ID", Value::String(_)) | ("Float", Value::Number(_)) => Ok(None),
        ("Boolean", Value::Bool(_)) => Ok(None),
        ("String", Value::Number(n)) => Ok(Some(Value::String(Str::from(n.to_string())))),
        ("String", Value::Bool(b)) => Ok(Some(Value::String(Str::new(if *b { "true" } else { "false" })))),
        ("ID", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(Value::String(Str::from(n.to_string())))),
        ("Int", Value::Number(n)) => match fits_int(n) {
            Some(i) if n.as_i64() == Some(i) => Ok(None),
            Some(i) => Ok(Some(Value::Number(i.into()))),
            None => Err(format!("Int cannot represent {}: {value}", value.kind())),
        },
        // proto3 JSON writes non-finite floats as strings.
        ("Float", Value::String(s)) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => Ok(None),
        ("String" | "ID" | "Int" | "Float" | "Boolean", other) => {
            Err(format!("{type_name} cannot represent {}: {other}", other.kind()))
        }
        _ => Ok(None),
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
            let given = Value::from_json(value.clone());
            let found = coerce_builtin(&given, ty).map(|c| c.unwrap_or(given).into_json());
            // The serde_json shaper, which other sources' fields go through, agrees exactly.
            assert_eq!(found, super::super::shape::coerce_builtin(value.clone(), ty), "{ty} {value}");
            match (found, want) {
                (Ok(found), Ok(want)) => assert_eq!(found, want, "{ty} {value}"),
                (Err(found), Err(want)) => assert!(found.starts_with(want), "{ty} {value}: {found}"),
                (found, want) => panic!("{ty} {value}: {found:?}, wanted {want:?}"),
            }
        }
    }
}
