//! GraphQL over HTTP (`/graphql`): GET for queries and POST with a JSON body, per the
//! GraphQL-over-HTTP spec's media types. A document is parsed, validated and normalised against
//! the generated schema (`document`), its root fields become one Operation with a call each
//! (arguments as JSON by `input`), the gateway plans and runs them (queries concurrently,
//! mutations in order), and each answer is shaped to its selection (`shape`); a failed call is
//! a null with an error at its path, the others still answer.

mod document;
mod input;
mod shape;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use super::forward::request_context;
use crate::error::ErrorCode;
use crate::gateway::{Gateway, execute_operation_partial};
use crate::operation::{CallInput, Operation, OperationKind, RootCall, Selection};
use crate::transcode::json::{JsonOptions, json_to_message};
use document::{DocumentError, RootEntry, prepare};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// An HTTP-level refusal; keeps its status whatever the client accepts.
struct Refusal {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    allow: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal { status, code, message: message.into(), allow: None }
    }

    fn into_response(self) -> Response {
        refusal(self.status, self.code, &self.message, self.allow)
    }
}

/// A GraphQL request's parts, from either method.
struct GraphqlRequest {
    query: String,
    operation_name: Option<String>,
    variables: Map<String, Json>,
}

/// Serves `/graphql`.
pub(crate) async fn handle_graphql(gateway: Arc<Gateway>, request: Request) -> Response {
    let served = gateway.served();
    let snapshot = &served.snapshot;
    let (parts, body) = request.into_parts();
    let modern = accepts_graphql_response(parts.headers.get(header::ACCEPT));
    let is_get = parts.method == Method::GET;
    if is_get && snapshot.config.graphql.graphiql && wants_html(&parts) {
        let mut response = Response::new(Body::from(GRAPHIQL));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        return response;
    }
    let parsed = match parts.method {
        Method::GET => from_query(parts.uri.query().unwrap_or("")),
        Method::POST => {
            let limit = usize::try_from(snapshot.config.rest.max_body_bytes).unwrap_or(usize::MAX);
            from_body(parts.headers.get(header::CONTENT_TYPE), body, limit).await
        }
        _ => Err(Refusal {
            allow: Some("GET, POST"),
            ..Refusal::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, "use GET or POST on /graphql")
        }),
    };
    let request = match parsed {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    let document = match async_graphql_parser::parse_query(&request.query) {
        Ok(document) => document,
        Err(error) => {
            let locations = error.positions().map(|p| json!({"line": p.line, "column": p.column})).collect::<Vec<_>>();
            let body = json!({"errors": [{"message": error.to_string(), "locations": locations, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}]});
            return document_failure(body, modern);
        }
    };
    let prepared = match prepare(&snapshot.graphql, &document, request.operation_name.as_deref(), &request.variables) {
        Ok(prepared) => prepared,
        Err(errors) => return document_failure(validation_errors(&errors), modern),
    };
    if is_get && prepared.kind == OperationKind::Mutation {
        return refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "mutations are sent with POST",
            Some("POST"),
        );
    }
    let mut context = match request_context(&parts.headers, &snapshot.config.headers) {
        Ok(context) => context,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, &error.to_string(), None),
    };
    context.timeout =
        Some(context.timeout.map_or(snapshot.config.rest.timeout.get(), |t| t.min(snapshot.config.rest.timeout.get())));

    let mut data = Map::new();
    let mut errors = Vec::new();
    let mut calls = Vec::new();
    let mut slots = Vec::new();
    for entry in prepared.entries {
        match entry {
            RootEntry::Typename { response_key, type_name } => {
                data.insert(response_key, Json::String(type_name.to_owned()));
            }
            RootEntry::Introspection { response_key, type_name, fields } => {
                let schema = snapshot.graphql.introspected();
                let value = match type_name {
                    None => shape::shape_introspection(schema, "__Schema", &fields),
                    Some(name) => schema["types"]
                        .as_array()
                        .and_then(|types| types.iter().find(|t| t["name"] == name.as_str()))
                        .map_or(Json::Null, |t| shape::shape_introspection(t, "__Type", &fields)),
                };
                data.insert(response_key, value);
            }
            RootEntry::Call(call) => {
                data.insert(call.response_key.clone(), Json::Null);
                let input = call.request.and_then(|json| {
                    let bytes = serde_json::to_vec(&json).unwrap_or_default();
                    json_to_message(call.root.method.input(), &bytes, &JsonOptions::default())
                        .map_err(|e| e.to_string())
                });
                match input {
                    Ok(input) => {
                        let selection = Selection::Graphql {
                            response_key: call.response_key.clone(),
                            type_name: call.type_name,
                            fields: call.fields,
                        };
                        calls.push(RootCall {
                            method: call.root.method.clone(),
                            input: CallInput::Message(input),
                            selection,
                        });
                        slots.push(call.response_key);
                    }
                    Err(message) => errors.push(field_error(&call.response_key, &message, ErrorCode::InvalidArgument)),
                }
            }
        }
    }
    let operation = Operation { kind: prepared.kind, calls, context };
    for (result, key) in execute_operation_partial(&served, operation).await.into_iter().zip(slots) {
        match result {
            Ok(output) => {
                if let Selection::Graphql { type_name, fields, .. } = &output.selection {
                    data.insert(key, shape::shape_answer(&output.message, type_name, fields, &snapshot.graphql));
                }
            }
            Err(error) => errors.push(field_error(&key, &error.to_string(), error.code())),
        }
    }
    let mut body = Map::new();
    if !errors.is_empty() {
        body.insert("errors".into(), Json::Array(errors));
    }
    body.insert("data".into(), Json::Object(data));
    respond(StatusCode::OK, &Json::Object(body), modern)
}

fn field_error(key: &str, message: &str, code: ErrorCode) -> Json {
    json!({"message": message, "path": [key], "extensions": {"code": code.graphql_code()}})
}

fn validation_errors(errors: &[DocumentError]) -> Json {
    let errors: Vec<Json> = errors
        .iter()
        .map(|e| {
            let locations: Vec<Json> =
                e.locations.iter().map(|(line, column)| json!({"line": line, "column": column})).collect();
            json!({"message": e.message, "locations": locations, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}})
        })
        .collect();
    json!({ "errors": errors })
}

/// A document that cannot run: 400 for `application/graphql-response+json` clients, 200 for
/// legacy `application/json` ones (GraphQL-over-HTTP).
fn document_failure(body: Json, modern: bool) -> Response {
    respond(if modern { StatusCode::BAD_REQUEST } else { StatusCode::OK }, &body, modern)
}

/// An HTTP-level refusal keeps its status whatever the client accepts.
fn refusal(status: StatusCode, code: ErrorCode, message: &str, allow: Option<&'static str>) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code.graphql_code()}}]});
    let mut response = respond(status, &body, false);
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

fn respond(status: StatusCode, body: &Json, modern: bool) -> Response {
    let mut response = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = status;
    let media = if modern { GRAPHQL_RESPONSE } else { "application/json" };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    response
}

/// A browser navigating to /graphql: it accepts HTML and sends no query.
fn wants_html(parts: &axum::http::request::Parts) -> bool {
    let accepts_html =
        parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    accepts_html && !parts.uri.query().unwrap_or("").split('&').any(|p| p.starts_with("query="))
}

/// GraphiQL, loaded from a public CDN by the browser, pointed at this endpoint.
const GRAPHIQL: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Switchyard GraphiQL</title>
<link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
</head>
<body style="margin:0">
<div id="graphiql" style="height:100vh"></div>
<script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
<script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
<script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
<script>
  const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(GraphiQL, { fetcher }));
</script>
</body>
</html>
"#;

fn accepts_graphql_response(accept: Option<&HeaderValue>) -> bool {
    accept
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.split(';').next().unwrap_or("").trim() == GRAPHQL_RESPONSE))
}

fn from_query(query: &str) -> Result<GraphqlRequest, Refusal> {
    let bad = |message: String| Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message);
    let mut request = GraphqlRequest { query: String::new(), operation_name: None, variables: Map::new() };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = crate::transcode::percent::percent_decode(value, crate::transcode::percent::Keep::Nothing, true)
            .map_err(|e| bad(format!("query parameter `{name}`: {e}")))?
            .into_owned();
        match name {
            "query" => request.query = value,
            "operationName" => request.operation_name = Some(value).filter(|v| !v.is_empty()),
            "variables" if !value.is_empty() => match serde_json::from_str(&value) {
                Ok(Json::Object(variables)) => request.variables = variables,
                _ => return Err(bad("query parameter `variables` must be a JSON object".into())),
            },
            _ => {}
        }
    }
    if request.query.is_empty() {
        return Err(bad("query parameter `query` is required".into()));
    }
    Ok(request)
}

async fn from_body(content_type: Option<&HeaderValue>, body: Body, limit: usize) -> Result<GraphqlRequest, Refusal> {
    let essence = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" {
        let message = format!("Content-Type `{essence}` is not supported; send application/json");
        return Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::UnsupportedMediaType, message));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, "the request body is too large")
    })?;
    let bad = |message: &str| Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidArgument, message);
    let Ok(Json::Object(mut object)) = serde_json::from_slice::<Json>(&bytes) else {
        return Err(bad("the body must be a JSON object with a `query`"));
    };
    let query = match object.remove("query") {
        Some(Json::String(query)) => query,
        _ => return Err(bad("`query` must be a string")),
    };
    let operation_name = match object.remove("operationName") {
        Some(Json::String(name)) => Some(name),
        None | Some(Json::Null) => None,
        Some(_) => return Err(bad("`operationName` must be a string")),
    };
    let variables = match object.remove("variables") {
        Some(Json::Object(variables)) => variables,
        None | Some(Json::Null) => Map::new(),
        Some(_) => return Err(bad("`variables` must be an object")),
    };
    Ok(GraphqlRequest { query, operation_name, variables })
}
