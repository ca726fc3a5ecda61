//! Rendering a binding's templates into a concrete call: `{args.NAME}` from the field's
//! arguments, `{parent.NAME}` from the parent object (its hidden key fields), `{keys}` from a
//! batch. Path placeholders are percent-encoded per segment; a null query value leaves the
//! parameter out and a list repeats it; a string that is exactly one placeholder keeps the
//! value's JSON type in bodies and gRPC requests. Pure.

use bytes::Bytes;
use prost_reflect::{DynamicMessage, MethodDescriptor};
use serde_json::{Map, Value as Json};

use crate::operation::hidden_key;
use crate::schema::{Part, RestCall, Template, ValueTemplate};
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
fn scalar_text(value: &Json) -> Option<String> {
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
    Ok(HttpRequest { method: call.method.clone(), path_and_query, headers, body })
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
    fn requests_render_paths_queries_and_keys() {
        let args = json!({"id": "a/b c", "country": null, "tags": ["x", "y"], "n": 3});
        let Json::Object(args) = args else { unreachable!() };
        let parent = json!({"@author": "Ursula K. Le Guin"});
        let Json::Object(parent) = parent else { unreachable!() };
        let keys = [json!("k1"), json!("k 2")];
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
}
