//! OpenAPI 3.1 for the REST routes: one operation per route, parameters for path variables and
//! for the query fields a route leaves to the query string, request and response bodies, and a
//! schema per message following the JSON options (json or proto names, 64-bit integers as
//! strings, enums by name, well-known types in their JSON forms). Pure: the caller serves or
//! prints the document.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::route_table::RouteEntry;
use super::routes::{BodyRule, RestRoute, RestRoutes};
use super::template::{PathTemplate, Segment};
use crate::registry::CallKind;

/// Nesting depth up to which query parameters are listed for nested messages.
const QUERY_DEPTH: usize = 3;

/// The OpenAPI document for `routes`. `proto_names` picks field names like the JSON encoder.
pub fn openapi_document(routes: &RestRoutes, proto_names: bool, version: &str) -> Value {
    let mut builder = Builder { proto_names, schemas: BTreeMap::new() };
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for entry in routes.routes() {
        let (path, parameters) = builder.path(entry);
        let operation = builder.operation(entry, parameters);
        paths.entry(path).or_default().insert(entry.method.as_str().to_ascii_lowercase(), operation);
    }
    builder.schema_for_status();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchyard REST API",
            "version": version,
            "description": "JSON REST routes transcoded to gRPC by Switchyard, from google.api.http bindings."
        },
        "paths": paths,
        "components": { "schemas": builder.schemas },
    })
}

struct Builder {
    proto_names: bool,
    schemas: BTreeMap<String, Value>,
}

impl Builder {
    fn name_of(&self, field: &FieldDescriptor) -> String {
        if self.proto_names { field.name().to_owned() } else { field.json_name().to_owned() }
    }

    /// The OpenAPI path (`/v1/{name}`) and its path parameters (with patterns for
    /// multi-segment variables).
    fn path(&self, entry: &RouteEntry<RestRoute>) -> (String, Vec<Value>) {
        let template = &entry.template;
        let mut path = String::new();
        let mut parameters = Vec::new();
        let mut i = 0;
        while i < template.segments.len() {
            path.push('/');
            if let Some(variable) = template.variables.iter().find(|v| v.start == i) {
                let name = variable.field_name();
                path.push_str(&format!("{{{name}}}"));
                let mut schema = json!({ "type": "string" });
                if variable.end - variable.start > 1 || template.segments[variable.start] == Segment::Multi {
                    schema["pattern"] = Value::String(pattern(template, variable.start, variable.end));
                }
                parameters.push(json!({ "name": name, "in": "path", "required": true, "schema": schema }));
                i = variable.end;
                continue;
            }
            match &template.segments[i] {
                Segment::Literal(text) => path.push_str(text),
                Segment::Single => path.push_str(&format!("{{wildcard{i}}}")),
                Segment::Multi => path.push_str(&format!("{{wildcard{i}}}")),
            }
            if !matches!(template.segments[i], Segment::Literal(_)) {
                let required = json!({ "name": format!("wildcard{i}"), "in": "path", "required": true, "schema": { "type": "string" } });
                parameters.push(required);
            }
            i += 1;
        }
        if let Some(verb) = &template.verb {
            path.push(':');
            path.push_str(verb);
        }
        (path, parameters)
    }

    fn operation(&mut self, entry: &RouteEntry<RestRoute>, mut parameters: Vec<Value>) -> Value {
        let route = &entry.value;
        let method = &route.method;
        let input = method.input();
        if !matches!(route.body, BodyRule::Whole) {
            let bound: BTreeSet<String> =
                route.path_fields.iter().map(|p| p.iter().map(|f| f.name()).collect::<Vec<_>>().join(".")).collect();
            let body = match &route.body {
                BodyRule::Field(field) => Some(field.name().to_owned()),
                _ => None,
            };
            self.query_parameters(&input, "", &bound, body.as_deref(), 0, &mut parameters);
        }
        let mut operation = json!({
            "operationId": format!("{}_{}{}", method.parent_service().name(), method.name(), suffix(entry)),
            "tags": [method.parent_service().full_name()],
            "summary": format!("{} ({})", method.full_name(), CallKind::of(method).as_str()),
            "parameters": parameters,
        });
        let kind = CallKind::of(method);
        let request_schema = match &route.body {
            BodyRule::None => None,
            BodyRule::Whole => Some(self.message_ref(&input)),
            BodyRule::Field(field) => Some(self.field_schema(field)),
        };
        if let Some(schema) = request_schema {
            let media =
                if matches!(kind, CallKind::ClientStreaming) { "application/x-ndjson" } else { "application/json" };
            operation["requestBody"] = json!({ "required": true, "content": { media: { "schema": schema } } });
        }
        let response_schema = match &route.response_body {
            Some(field) => self.field_schema(field),
            None => self.message_ref(&method.output()),
        };
        let content = if matches!(kind, CallKind::ServerStreaming) {
            json!({
                "application/x-ndjson": { "schema": response_schema.clone() },
                "text/event-stream": { "schema": response_schema },
            })
        } else {
            json!({ "application/json": { "schema": response_schema } })
        };
        operation["responses"] = json!({
            "200": { "description": "The method's response.", "content": content },
            "default": {
                "description": "An error, as google.rpc.Status.",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/google.rpc.Status" } } }
            }
        });
        if matches!(kind, CallKind::Bidi) {
            operation["description"] = Value::String(
                "Bidirectional stream: open a WebSocket on this path; one JSON message per text frame.".into(),
            );
        }
        operation
    }

    fn query_parameters(
        &mut self,
        message: &MessageDescriptor,
        prefix: &str,
        bound: &BTreeSet<String>,
        body: Option<&str>,
        depth: usize,
        out: &mut Vec<Value>,
    ) {
        for field in message.fields() {
            let proto_path =
                if prefix.is_empty() { field.name().to_owned() } else { format!("{prefix}.{}", field.name()) };
            if bound.contains(&proto_path) || (depth == 0 && body == Some(field.name())) || field.is_map() {
                continue;
            }
            match field.kind() {
                Kind::Message(inner) if !super::routes::is_string_like_wkt(inner.full_name()) => {
                    if !field.is_list() && depth + 1 < QUERY_DEPTH && inner.full_name() != message.full_name() {
                        self.query_parameters(&inner, &proto_path, bound, body, depth + 1, out);
                    }
                }
                _ => {
                    let name = if prefix.is_empty() {
                        self.name_of(&field)
                    } else {
                        format!("{prefix}.{}", self.name_of(&field))
                    };
                    let schema = self.field_schema(&field);
                    out.push(json!({ "name": name, "in": "query", "required": false, "schema": schema }));
                }
            }
        }
    }

    fn message_ref(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message.full_name()) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if !self.schemas.contains_key(&name) {
            self.schemas.insert(name.clone(), Value::Null);
            let mut properties = Map::new();
            for field in message.fields() {
                properties.insert(self.name_of(&field), self.field_schema(&field));
            }
            self.schemas.insert(name.clone(), json!({ "type": "object", "properties": properties }));
        }
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    fn field_schema(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { return json!({}) };
            let value = entry.map_entry_value_field();
            return json!({ "type": "object", "additionalProperties": self.kind_schema(&value.kind()) });
        }
        let item = self.kind_schema(&field.kind());
        if field.is_list() { json!({ "type": "array", "items": item }) } else { item }
    }

    fn kind_schema(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({ "type": "number" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
            Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "format": "uint32", "minimum": 0 }),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({ "type": "string", "format": "int64" }),
            Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "format": "uint64" }),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "format": "byte" }),
            Kind::Enum(e) => {
                json!({ "type": "string", "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>() })
            }
            Kind::Message(m) => self.message_ref(m),
        }
    }

    fn schema_for_status(&mut self) {
        self.schemas.insert(
            "google.rpc.Status".into(),
            json!({
                "type": "object",
                "properties": {
                    "code": { "type": "integer", "format": "int32" },
                    "message": { "type": "string" },
                    "details": { "type": "array", "items": { "type": "object", "properties": { "@type": { "type": "string" } }, "additionalProperties": true } }
                }
            }),
        );
    }
}

/// Distinguishes additional bindings of one method in operationIds.
fn suffix(entry: &RouteEntry<RestRoute>) -> String {
    let template = entry.template.as_str();
    let digest = template.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("_{}_{digest:08x}", entry.method.as_str().to_ascii_lowercase())
}

/// A regular expression for the segments of a multi-segment variable.
fn pattern(template: &PathTemplate, start: usize, end: usize) -> String {
    let parts: Vec<String> = template.segments[start..end]
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => regex_escape(text),
            Segment::Single => "[^/]+".to_owned(),
            Segment::Multi => ".*".to_owned(),
        })
        .collect();
    format!("^{}$", parts.join("/"))
}

fn regex_escape(text: &str) -> String {
    text.chars().flat_map(|c| if "\\.+*?()|[]{}^$".contains(c) { vec!['\\', c] } else { vec![c] }).collect()
}

/// JSON forms of the well-known types.
fn well_known(full_name: &str) -> Option<Value> {
    Some(match full_name {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$" }),
        "google.protobuf.FieldMask" => json!({ "type": "string" }),
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array", "items": {} }),
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.Any" => {
            json!({ "type": "object", "properties": { "@type": { "type": "string" } }, "additionalProperties": true })
        }
        "google.protobuf.StringValue" => json!({ "type": ["string", "null"] }),
        "google.protobuf.BytesValue" => json!({ "type": ["string", "null"], "format": "byte" }),
        "google.protobuf.BoolValue" => json!({ "type": ["boolean", "null"] }),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({ "type": ["integer", "null"] }),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({ "type": ["string", "null"], "format": "int64" })
        }
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => json!({ "type": ["number", "null"] }),
        _ => return None,
    })
}
