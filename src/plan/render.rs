//! Rendering a binding's templates into a concrete call: `{args.NAME}` from the field's
//! arguments, `{parent.NAME}` from the parent object (its hidden key fields), `{keys}` from a
//! batch. Path placeholders are percent-encoded per segment; a null query value leaves the
//! parameter out and a list repeats it; a string that is exactly one placeholder keeps the
//! value's JSON type in bodies and gRPC requests. Pure.

use bytes::Bytes;
use prost_reflect::{DynamicMessage, MethodDescriptor};
use serde_json::{Map, Value as Json};

use crate::operation::{SelectionSet, hidden_key, is_hidden_key};
use crate::schema::{FieldSource, GraphqlCall, GraphqlSchema, Part, RestCall, RootKind, Template, ValueTemplate};
use crate::transcode::json::{JsonOptions, json_to_message};
use crate::transcode::percent::percent_encode;
use crate::upstream::HttpRequest;

/// What placeholders read.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The field's arguments, by GraphQL name.
    pub args: &'a Map<String, Json>,
    /// The parent object, as shaped (key fields under their hidden keys).
    pub parent: Option<&'a Map<String, Json>>,
    /// A batch's keys.
    pub keys: Option<&'a [Json]>,
}

/// A binding that cannot be rendered with these values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

impl Scope<'_> {
    fn lookup(&self, part: &Part) -> Json {
        match part {
            Part::Text(text) => Json::String(text.clone()),
            Part::Arg(path) => {
                let mut value = self.args.get(&path[0]);
                for key in &path[1..] {
                    value = value.and_then(|v| v.get(key));
                }
                value.cloned().unwrap_or(Json::Null)
            }
            Part::Parent(name) => {
                let parent = self.parent;
                parent.and_then(|p| p.get(&hidden_key(name)).or_else(|| p.get(name))).cloned().unwrap_or(Json::Null)
            }
            Part::Keys => Json::Array(self.keys.unwrap_or_default().to_vec()),
        }
    }
}

/// A scalar as text: strings as they are, numbers and booleans in JSON form.
pub fn scalar_text(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn placeholder_name(part: &Part) -> String {
    match part {
        Part::Text(text) => text.clone(),
        Part::Arg(path) => format!("{{args.{}}}", path.join(".")),
        Part::Parent(name) => format!("{{parent.{name}}}"),
        Part::Keys => "{keys}".into(),
    }
}

/// `template` as text, or None when a placeholder has no value.
pub fn render_text(template: &Template, scope: &Scope<'_>) -> Result<Option<String>, RenderError> {
    let mut out = String::new();
    for part in &template.parts {
        if let Part::Text(text) = part {
            out.push_str(text);
            continue;
        }
        match scope.lookup(part) {
            Json::Null => return Ok(None),
            value => match scalar_text(&value) {
                Some(text) => out.push_str(&text),
                None => {
                    return Err(RenderError(format!(
                        "{} is a list or object; it cannot go in text",
                        placeholder_name(part)
                    )));
                }
            },
        }
    }
    Ok(Some(out))
}

/// The JSON value of `template`; absent placeholders make nulls, and null object members are
/// left out.
pub fn render_value(template: &ValueTemplate, scope: &Scope<'_>) -> Result<Json, RenderError> {
    Ok(match template {
        ValueTemplate::Value(value) => value.clone(),
        ValueTemplate::Text(text) => match text.single() {
            Some(part) => scope.lookup(part),
            None => render_text(text, scope)?.map_or(Json::Null, Json::String),
        },
        ValueTemplate::List(items) => {
            Json::Array(items.iter().map(|i| render_value(i, scope)).collect::<Result<_, _>>()?)
        }
        ValueTemplate::Object(fields) => {
            let mut out = Map::new();
            for (name, value) in fields {
                let value = render_value(value, scope)?;
                if !value.is_null() {
                    out.insert(name.clone(), value);
                }
            }
            Json::Object(out)
        }
    })
}

/// The REST request `call` makes in `scope`.
pub fn http_request(call: &RestCall, scope: &Scope<'_>) -> Result<HttpRequest, RenderError> {
    let mut path_and_query = String::new();
    for part in &call.path.parts {
        if let Part::Text(text) = part {
            path_and_query.push_str(text);
            continue;
        }
        let value = scope.lookup(part);
        let text = match &value {
            Json::Null => return Err(RenderError(format!("path placeholder {} has no value", placeholder_name(part)))),
            Json::Array(items) => {
                let texts: Option<Vec<String>> = items.iter().map(scalar_text).collect();
                texts.map(|t| t.join(","))
            }
            other => scalar_text(other),
        };
        let Some(text) = text else {
            return Err(RenderError(format!("path placeholder {} is an object", placeholder_name(part))));
        };
        percent_encode(&text, &mut path_and_query);
    }
    refuse_dot_segments(&path_and_query)?;
    let mut separator = if path_and_query.contains('?') { '&' } else { '?' };
    for (name, template) in &call.query {
        let value = render_value(template, scope)?;
        let values = match value {
            Json::Null => continue,
            Json::Array(items) => items,
            other => vec![other],
        };
        for value in values.iter().filter(|v| !v.is_null()) {
            let Some(text) = scalar_text(value) else {
                return Err(RenderError(format!("query parameter `{name}` cannot hold an object")));
            };
            path_and_query.push(separator);
            separator = '&';
            percent_encode(name, &mut path_and_query);
            path_and_query.push('=');
            percent_encode(&text, &mut path_and_query);
        }
    }
    let mut headers = Vec::new();
    for (name, template) in &call.headers {
        let Some(text) = render_text(template, scope)? else { continue };
        let value = http::HeaderValue::from_str(&text)
            .map_err(|_| RenderError(format!("header `{name}` cannot hold {text:?}")))?;
        headers.push((name.clone(), value));
    }
    let body = match &call.body {
        Some(template) => {
            let value = render_value(template, scope)?;
            Some(Bytes::from(serde_json::to_vec(&value).unwrap_or_default()))
        }
        None => None,
    };
    // Retried when it fails only if the verb is idempotent (RFC 9110 §9.2.2).
    let idempotent = matches!(call.method.as_str(), "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE");
    Ok(HttpRequest { method: call.method.clone(), path_and_query, headers, body, idempotent })
}

/// Refuses a rendered path with a `.` or `..` segment. Percent-encoding keeps a value inside
/// its segment (`/` becomes `%2F`), but `.` is unreserved and stays as it is, and every URL
/// parser (the WHATWG rules reqwest follows) resolves such a segment, so an argument `..` in
/// `/authors/{args.id}` would call `/` instead (while `../admin/x` fills one segment
/// as `..%2Fadmin%2Fx`, which no parser resolves).
fn refuse_dot_segments(path: &str) -> Result<(), RenderError> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path.split('/').find(|segment| matches!(*segment, "." | "..")) {
        Some(segment) => {
            Err(RenderError(format!("a path placeholder's value cannot be `{segment}`: it would leave its segment")))
        }
        None => Ok(()),
    }
}

/// `remote_key(HIDDEN_TYPENAME, "__typename")`: the alias fetches carry an abstract value's
/// object type under.
pub const TYPENAME_ALIAS: &str = "_sy___typename";

/// The response key a GraphQL source answers a selected field under: the client's key, or for
/// a hidden key field (`@name`, not a GraphQL name) the alias `_sy_name`.
pub fn remote_key(response_key: &str, field_name: &str) -> String {
    if is_hidden_key(response_key) { format!("_sy_{field_name}") } else { response_key.to_owned() }
}

/// The sub-operation for `call` in `scope`: its one root field with `selection` (of the
/// source's type `type_name`), every argument passed as a variable so the source coerces it.
/// Stitched fields are left out (their keys are in the selection); aliases keep the client's
/// response keys, so the answer needs no renaming.
pub fn graphql_request(
    call: &GraphqlCall,
    select: &[String],
    scope: &Scope<'_>,
    selection: &SelectionSet,
    type_name: &str,
    schema: &GraphqlSchema,
) -> Result<HttpRequest, RenderError> {
    let mut variables = Map::new();
    let mut declarations = Vec::new();
    let mut arguments = Vec::new();
    let given: Vec<(String, Json)> = match &call.arguments {
        None => scope.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(template) => match render_value(template, scope)? {
            Json::Object(object) => object.into_iter().collect(),
            _ => return Err(RenderError("@graphql arguments must render to an object".into())),
        },
    };
    for (name, value) in given {
        if value.is_null() {
            continue;
        }
        let Some((_, ty)) = call.argument_types.iter().find(|(n, _)| *n == name) else {
            return Err(RenderError(format!("the {} source's `{}` has no argument `{name}`", call.source, call.field)));
        };
        let variable = format!("a{}", declarations.len());
        declarations.push(format!("${variable}: {ty}"));
        arguments.push(format!("{name}: ${variable}"));
        variables.insert(variable, value);
    }
    let mut body = String::new();
    write_selection(selection, type_name, schema, &mut declarations, &mut variables, &mut body);
    // A binding's `select` path leads from the source field to the value: select along it.
    for key in select.iter().rev() {
        body = format!(" {{ {key}{body} }}");
    }
    let operation = match call.operation {
        RootKind::Query => "query",
        RootKind::Mutation => "mutation",
        RootKind::Subscription => "subscription",
    };
    let mut query = format!("{operation} Switchyard");
    if !declarations.is_empty() {
        query.push('(');
        query.push_str(&declarations.join(", "));
        query.push(')');
    }
    query.push_str(" { ");
    query.push_str(&call.field);
    if !arguments.is_empty() {
        query.push('(');
        query.push_str(&arguments.join(", "));
        query.push(')');
    }
    query.push_str(&body);
    query.push_str(" }");
    let payload = serde_json::json!({"query": query, "variables": variables});
    Ok(HttpRequest {
        method: http::Method::POST,
        path_and_query: String::new(),
        headers: Vec::new(),
        body: Some(Bytes::from(serde_json::to_vec(&payload).unwrap_or_default())),
        // A query has no side effects (GraphQL spec §6.2.1): it may be retried.
        idempotent: call.operation == RootKind::Query,
    })
}

/// ` { a b: c(x: $a1) { … } }` for the fields of `selection` the source answers; nothing for a
/// leaf.
fn write_selection(
    selection: &SelectionSet,
    type_name: &str,
    schema: &GraphqlSchema,
    declarations: &mut Vec<String>,
    variables: &mut Map<String, Json>,
    out: &mut String,
) {
    if schema.is_abstract(type_name) {
        // The hidden `__typename`, then each object type's fields in a fragment on it.
        let mut pieces = vec![format!("{TYPENAME_ALIAS}: __typename")];
        for (concrete, set) in &selection.by_type {
            let mut text = format!("... on {concrete}");
            write_selection(set, concrete, schema, declarations, variables, &mut text);
            pieces.push(text);
        }
        out.push_str(" { ");
        out.push_str(&pieces.join(" "));
        out.push_str(" }");
        return;
    }
    if !matches!(schema.types.get(type_name), Some(crate::schema::TypeDef::Object { .. })) {
        return;
    }
    let mut fields = Vec::new();
    for selected in selection.fields.iter().filter(|f| f.forbidden.is_none()) {
        let key = remote_key(&selected.response_key, &selected.field_name);
        if selected.field_name == "__typename" {
            fields.push(if key == "__typename" { key } else { format!("{key}: __typename") });
            continue;
        }
        let Some(definition) = schema.object_field(type_name, &selected.field_name) else { continue };
        if !matches!(definition.source, FieldSource::Remote) {
            continue;
        }
        let mut text = if key == selected.field_name { key } else { format!("{key}: {}", selected.field_name) };
        let mut arguments = Vec::new();
        for (name, value) in selected.arguments.iter().filter(|(_, v)| !v.is_null()) {
            let Some(argument) = definition.arguments.iter().find(|a| &a.name == name) else { continue };
            let variable = format!("a{}", declarations.len());
            declarations.push(format!("${variable}: {}", argument.ty));
            arguments.push(format!("{name}: ${variable}"));
            variables.insert(variable, value.clone());
        }
        if !arguments.is_empty() {
            text.push('(');
            text.push_str(&arguments.join(", "));
            text.push(')');
        }
        write_selection(&selected.children, &definition.ty.name, schema, declarations, variables, &mut text);
        fields.push(text);
    }
    if fields.is_empty() {
        // Only stitched fields were selected: a selection cannot be empty.
        fields.push("__typename".into());
    }
    out.push_str(" { ");
    out.push_str(&fields.join(" "));
    out.push_str(" }");
}

/// The gRPC request message `template` makes in `scope`.
pub fn grpc_request(
    method: &MethodDescriptor,
    template: &ValueTemplate,
    scope: &Scope<'_>,
) -> Result<DynamicMessage, RenderError> {
    let value = render_value(template, scope)?;
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    json_to_message(method.input(), &bytes, &JsonOptions::default())
        .map_err(|e| RenderError(format!("the request for {}: {e}", method.full_name())))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rest(path: &str, query: Vec<(&str, ValueTemplate)>) -> RestCall {
        RestCall {
            source: "authors".into(),
            method: http::Method::GET,
            path: Template::parse(path).expect("valid"),
            query: query.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
            headers: Vec::new(),
            body: None,
        }
    }

    fn text(t: &str) -> ValueTemplate {
        ValueTemplate::Text(Template::parse(t).expect("valid"))
    }

    #[test]
    fn the_typename_keys_are_the_hidden_key_and_its_alias() {
        assert_eq!(hidden_key("__typename"), crate::operation::HIDDEN_TYPENAME);
        assert_eq!(remote_key(crate::operation::HIDDEN_TYPENAME, "__typename"), TYPENAME_ALIAS);
    }

    #[test]
    fn requests_render_paths_queries_and_keys() {
        let args = json!({"id": "a/b c", "country": null, "tags": ["x", "y"], "n": 3});
        let Json::Object(args) = args else { unreachable!() };
        let parent = json!({"@author": "Ursula K. Le Guin"});
        let Json::Object(parent) = parent else { unreachable!() };
        let keys = [json!("k1"), json!("k 2")];
        let Json::Object(dots) = json!({"dot": ".", "dots": "..", "up": "../admin"}) else { unreachable!() };
        let table: Vec<(RestCall, Scope<'_>, Result<&str, ()>)> = vec![
            (
                rest("/authors/{args.id}", vec![]),
                Scope { args: &args, parent: None, keys: None },
                Ok("/authors/a%2Fb%20c"),
            ),
            (
                rest(
                    "/authors",
                    vec![("country", text("{args.country}")), ("tag", text("{args.tags}")), ("n", text("{args.n}"))],
                ),
                Scope { args: &args, parent: None, keys: None },
                Ok("/authors?tag=x&tag=y&n=3"),
            ),
            (
                rest("/by-name/{parent.author}", vec![]),
                Scope { args: &args, parent: Some(&parent), keys: None },
                Ok("/by-name/Ursula%20K.%20Le%20Guin"),
            ),
            (
                rest("/authors", vec![("name", text("{keys}"))]),
                Scope { args: &args, parent: None, keys: Some(&keys) },
                Ok("/authors?name=k1&name=k%202"),
            ),
            (rest("/authors/{args.missing}", vec![]), Scope { args: &args, parent: None, keys: None }, Err(())),
            // Dot segments would be resolved by the URL parser and leave the template's path.
            (rest("/authors/{args.dot}", vec![]), Scope { args: &dots, parent: None, keys: None }, Err(())),
            (rest("/authors/{args.dots}/x", vec![]), Scope { args: &dots, parent: None, keys: None }, Err(())),
            (
                rest("/authors/{args.dots}{args.dot}", vec![]),
                Scope { args: &dots, parent: None, keys: None },
                Ok("/authors/..."),
            ),
            (
                rest("/authors/v{args.dots}", vec![]),
                Scope { args: &dots, parent: None, keys: None },
                Ok("/authors/v.."),
            ),
            (
                rest("/authors/{args.up}", vec![]),
                Scope { args: &dots, parent: None, keys: None },
                Ok("/authors/..%2Fadmin"),
            ),
            (
                rest("/authors/{args.dots}", vec![("q", text("{args.dots}"))]),
                Scope { args: &dots, parent: None, keys: None },
                Err(()),
            ),
            (
                rest("/authors", vec![("q", text("{args.dots}"))]),
                Scope { args: &dots, parent: None, keys: None },
                Ok("/authors?q=.."),
            ),
        ];
        for (call, scope, want) in table {
            let got = http_request(&call, &scope).map(|r| r.path_and_query).ok();
            assert_eq!(got.as_deref(), want.ok(), "{:?}", call.path);
        }
    }

    #[test]
    fn single_placeholders_keep_their_type_and_nulls_drop_out() {
        let Json::Object(args) = json!({"n": 3, "flag": true, "name": "x"}) else { unreachable!() };
        let scope = Scope { args: &args, parent: None, keys: None };
        let template = ValueTemplate::Object(vec![
            ("count".into(), text("{args.n}")),
            ("flag".into(), text("{args.flag}")),
            ("label".into(), text("name-{args.name}")),
            ("gone".into(), text("{args.absent}")),
        ]);
        assert_eq!(
            render_value(&template, &scope).expect("renders"),
            json!({"count": 3, "flag": true, "label": "name-x"})
        );
    }

    #[test]
    fn sub_operations_select_only_what_the_source_answers() {
        use crate::operation::FieldSelection;
        use crate::schema::{GraphqlSchema, InputField, InputSource, ObjectField, TypeDef, TypeRef};
        let named = |name: &str| TypeRef { name: name.into(), list: false, non_null: false, item_non_null: false };
        let field = |name: &str, ty: &str, source: FieldSource, arguments: Vec<InputField>| ObjectField {
            name: name.into(),
            ty: named(ty),
            source,
            arguments,
            deprecated: false,
            description: None,
        };
        let mut schema = GraphqlSchema::default();
        let limit = InputField {
            name: "first".into(),
            ty: named("Int"),
            source: InputSource::Declared(None),
            deprecated: false,
            description: None,
        };
        let binding = std::sync::Arc::new(crate::schema::Binding {
            call: crate::schema::BoundCall::Graphql(GraphqlCall {
                source: "x".into(),
                operation: RootKind::Query,
                field: "f".into(),
                arguments: None,
                argument_types: Vec::new(),
            }),
            select: Vec::new(),
            batch: None,
            parent_fields: vec!["id".into()],
            declared_at: "t.graphql:1".into(),
        });
        schema.types.insert(
            "Review".into(),
            TypeDef::Object {
                message: None,
                fields: vec![
                    field("id", "ID", FieldSource::Remote, Vec::new()),
                    field("text", "String", FieldSource::Remote, Vec::new()),
                    field("replies", "Review", FieldSource::Remote, vec![limit]),
                    field("author", "String", FieldSource::Bound(binding), Vec::new()),
                ],
            },
        );
        let leaf = |key: &str, name: &str| FieldSelection {
            response_key: key.into(),
            field_name: name.into(),
            children: SelectionSet::default(),
            arguments: Vec::new(),
            defer: None,
            forbidden: None,
        };
        let selection = SelectionSet::new(vec![
            leaf("body", "text"),
            leaf("author", "author"),
            leaf("@id", "id"),
            FieldSelection {
                response_key: "replies".into(),
                field_name: "replies".into(),
                children: SelectionSet::new(vec![leaf("__typename", "__typename"), leaf("text", "text")]),
                arguments: vec![("first".into(), json!(2))],
                defer: None,
                forbidden: None,
            },
        ]);
        let call = GraphqlCall {
            source: "reviews".into(),
            operation: RootKind::Query,
            field: "review".into(),
            arguments: None,
            argument_types: vec![("id".into(), "ID!".into())],
        };
        let Json::Object(args) = json!({"id": "r1"}) else { unreachable!() };
        let scope = Scope { args: &args, parent: None, keys: None };
        let request = graphql_request(&call, &[], &scope, &selection, "Review", &schema).expect("renders");
        let body: Json = serde_json::from_slice(request.body.as_deref().expect("body")).expect("json");
        assert_eq!(
            body,
            json!({
                "query": "query Switchyard($a0: ID!, $a1: Int) { review(id: $a0) { body: text _sy_id: id replies(first: $a1) { __typename text } } }",
                "variables": {"a0": "r1", "a1": 2}
            })
        );
        assert_eq!((request.method, request.path_and_query.as_str()), (http::Method::POST, ""));
    }
}
