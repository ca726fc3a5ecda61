//! The REST ingress: matches a request against the snapshot's route table, reads and checks
//! the body (content type, size), binds path, query and body into the request message, and
//! hands the gateway a one-call Operation; the answer is written as proto3 JSON (or its
//! `response_body` field). Every refusal names the header, field or parameter at fault.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use prost_reflect::Value;

use super::forward::request_context;
use super::respond::{error_response, json_response};
use crate::error::ErrorCode;
use crate::gateway::{Gateway, execute_operation};
use crate::operation::{Operation, RootCall, Selection};
use crate::registry::CallKind;
use crate::transcode::binding::{HttpParts, bind_request};
use crate::transcode::json::{JsonOptions, message_to_json};
use crate::transcode::route_table::MatchError;

/// Serves any request the fixed routes did not take.
pub(crate) async fn handle_rest(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let served = gateway.served();
    let snapshot = &served.snapshot;
    let (parts, body) = request.into_parts();
    let found = match snapshot.routes.find(&parts.method, parts.uri.path()) {
        Ok(found) => found,
        Err(MatchError::NotFound) => {
            let message = format!("no route matches {} {}", parts.method, parts.uri.path());
            return error_response(ErrorCode::UnknownRoute, &message);
        }
        Err(MatchError::MethodNotAllowed { allowed }) => {
            let list = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            let message = format!("{} does not accept {}; it accepts {list}", parts.uri.path(), parts.method);
            let mut response = error_response(ErrorCode::MethodNotAllowed, &message);
            if let Ok(value) = HeaderValue::from_str(&list) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return response;
        }
        Err(MatchError::BadPath(message)) => return error_response(ErrorCode::InvalidArgument, &message),
    };
    let route = &found.route.value;
    if route.call_kind() != CallKind::Unary {
        let message = format!(
            "{} is a {} method; streaming over REST is not served yet",
            route.method.full_name(),
            route.call_kind().as_str()
        );
        return error_response(ErrorCode::NotImplemented, &message);
    }
    let rest = &snapshot.config.rest;
    let options = JsonOptions {
        emit_defaults: rest.emit_defaults,
        proto_names: rest.proto_field_names,
        ignore_unknown: rest.ignore_unknown_fields,
        max_depth: rest.max_json_depth as usize,
    };
    let limit = usize::try_from(rest.max_body_bytes).unwrap_or(usize::MAX);
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!("the request body is larger than {limit} bytes (rest.max_body_bytes)");
            return error_response(ErrorCode::PayloadTooLarge, &message);
        }
    };
    if !bytes.is_empty()
        && let Some(refusal) = check_content_type(parts.headers.get(header::CONTENT_TYPE))
    {
        return refusal;
    }
    let http = HttpParts {
        variables: &found.variables,
        query: parts.uri.query(),
        body: &bytes,
        is_patch: parts.method == Method::PATCH,
    };
    let input = match bind_request(route, http, &options) {
        Ok(input) => input,
        Err(error) => return error_response(ErrorCode::InvalidArgument, &error.to_string()),
    };
    let selection = route.response_body.clone().map_or(Selection::Whole, Selection::Field);
    let mut context = request_context(&parts.headers);
    context.timeout = Some(rest.timeout.get());
    let operation = Operation::single(RootCall { method: route.method.clone(), input, selection }, context);
    match execute_operation(&served, operation).await {
        Ok(outputs) => {
            let output = outputs.into_iter().next().expect("a one-call operation has one output");
            let body = match &output.selection {
                Selection::Whole => message_to_json(&output.message, &options),
                Selection::Field(field) => field_to_json(&output.message, field, &options),
            };
            json_response(StatusCode::OK, body)
        }
        Err(error) => error_response(error.code(), &error.to_string()),
    }
}

/// Only JSON bodies are read (form and other encodings are not transcoded).
fn check_content_type(value: Option<&HeaderValue>) -> Option<Response> {
    let value = value?;
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let is_json = essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        return None;
    }
    let message = format!("Content-Type `{text}` is not supported; send the body as application/json");
    Some(error_response(ErrorCode::UnsupportedMediaType, &message))
}

/// `response_body`: the selected field's JSON value.
fn field_to_json(
    message: &prost_reflect::DynamicMessage,
    field: &prost_reflect::FieldDescriptor,
    options: &JsonOptions,
) -> Vec<u8> {
    if !field.is_list()
        && let Value::Message(inner) = message.get_field(field).as_ref()
    {
        return message_to_json(inner, options);
    }
    let whole = message_to_json(message, &JsonOptions { emit_defaults: true, ..options.clone() });
    let key = if options.proto_names { field.name() } else { field.json_name() };
    let value = serde_json::from_slice::<serde_json::Value>(&whole)
        .ok()
        .and_then(|mut v| v.get_mut(key).map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    serde_json::to_vec(&value).unwrap_or_default()
}
