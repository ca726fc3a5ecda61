//! The REST ingress: matches a request against the snapshot's route table, reads and checks
//! the body (content type, size), binds path, query and body into the request message, and
//! hands the gateway a one-call Operation; the answer is written as proto3 JSON (or its
//! `response_body` field). Every refusal names the header, field or parameter at fault.

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use prost_reflect::Value;

use futures_util::StreamExt;

use super::encoding::{decode_request_body, is_too_large};
use super::forward::request_context;
use super::respond::{
    add_backend_metadata, error_response, error_response_with_details, json_response, status_details_json,
};
use super::rest_stream::{Framing, ndjson_requests, stream_response};
use super::rest_ws::{BidiSession, run_bidi};
use crate::error::ErrorCode;
use crate::gateway::{Gateway, GatewayError, execute_operation, execute_streaming_operation};
use crate::operation::{CallInput, Operation, RootCall, Selection};
use crate::registry::CallKind;
use crate::transcode::binding::{HttpParts, bind_request};
use crate::transcode::json::{JsonOptions, message_to_json};
use crate::transcode::route_table::MatchError;

/// Serves any request the fixed routes did not take.
pub(crate) async fn handle_rest(gateway: Arc<Gateway>, request: Request) -> Response {
    let served = gateway.served();
    let snapshot = &served.snapshot;
    let (mut parts, body) = request.into_parts();
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
    let route = found.route.value.clone();
    let variables = found.variables;
    let rest = &snapshot.config.rest;
    let choices = rest.json_for(route.method.parent_service().full_name());
    let options = JsonOptions {
        emit_defaults: choices.emit_defaults,
        proto_names: choices.proto_field_names,
        ignore_unknown: choices.ignore_unknown_fields,
        max_depth: rest.max_json_depth as usize,
    };
    let limit = usize::try_from(rest.max_body_bytes).unwrap_or(usize::MAX);
    let mut context = match request_context(&parts.headers, &snapshot.config.headers) {
        Ok(context) => context,
        Err(error) => return error_response(ErrorCode::InvalidArgument, &error.to_string()),
    };
    let has_body = parts.headers.contains_key(header::TRANSFER_ENCODING)
        || parts.headers.get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    if has_body && let Some(refusal) = check_content_type(parts.headers.get(header::CONTENT_TYPE)) {
        return refusal;
    }
    let body = match decode_request_body(body, parts.headers.get(header::CONTENT_ENCODING), limit) {
        Ok(body) => body,
        Err(error) => return error_response(ErrorCode::UnsupportedMediaType, &error.to_string()),
    };
    let selection = route.response_body.clone().map_or(Selection::Whole, Selection::Field);
    let kind = route.call_kind();
    let input = match kind {
        CallKind::Unary | CallKind::ServerStreaming => {
            let bytes = match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => bytes,
                Err(error) if is_too_large(&error) => {
                    let message = format!("the request body is larger than {limit} bytes (rest.max_body_bytes)");
                    return error_response(ErrorCode::PayloadTooLarge, &message);
                }
                Err(error) => {
                    return error_response(
                        ErrorCode::InvalidArgument,
                        &format!("cannot read the request body: {error}"),
                    );
                }
            };
            let http = HttpParts {
                variables: &variables,
                query: parts.uri.query(),
                body: &bytes,
                is_patch: parts.method == Method::PATCH,
            };
            match bind_request(&route, http, &options) {
                Ok(input) => CallInput::Message(input),
                Err(error) => return error_response(ErrorCode::InvalidArgument, &error.to_string()),
            }
        }
        CallKind::ClientStreaming => {
            let query = parts.uri.query().map(str::to_owned);
            CallInput::Stream(ndjson_requests(body, route.clone(), variables, query, options.clone(), limit))
        }
        CallKind::Bidi => {
            let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
                Ok(upgrade) => upgrade,
                Err(_) => {
                    let message = format!(
                        "{} is a bidirectional stream; open a WebSocket on this route (GET with Upgrade: websocket)",
                        route.method.full_name()
                    );
                    return error_response(ErrorCode::InvalidArgument, &message);
                }
            };
            let http = HttpParts { variables: &variables, query: parts.uri.query(), body: b"", is_patch: false };
            let url_fields = match bind_request(&route, http, &options) {
                Ok(fields) => prost::Message::encode_to_vec(&fields),
                Err(error) => return error_response(ErrorCode::InvalidArgument, &error.to_string()),
            };
            let session = BidiSession { route: route.clone(), url_fields, options, context };
            let served = served.clone();
            return upgrade
                .max_message_size(limit)
                .max_frame_size(limit)
                .on_upgrade(move |socket| run_bidi(served, socket, session));
        }
    };
    // Unary and client-streaming calls get the route's deadline unless the client asked for a
    // shorter one; streams of responses run as long as the client wants.
    if matches!(kind, CallKind::Unary | CallKind::ClientStreaming) {
        let default = rest.timeout.get();
        context.timeout = Some(context.timeout.map_or(default, |asked| asked.min(default)));
    }
    let pool = &snapshot.registry.pool;
    let call = RootCall { method: route.method.clone(), input, selection };
    let operation = Operation::single(call, context);
    match kind {
        CallKind::Unary => match execute_operation(&served, operation).await {
            Ok(outputs) => {
                let output = outputs.into_iter().next().expect("a one-call operation has one output");
                let mut response =
                    json_response(StatusCode::OK, encode_selection(&output.message, &output.selection, &options));
                add_backend_metadata(&mut response, &output.metadata);
                response
            }
            Err(error) => gateway_error_response(&error, pool),
        },
        CallKind::ServerStreaming => match execute_streaming_operation(&served, operation).await {
            Ok((metadata, messages)) => {
                let framing = Framing::choose(parts.headers.get(header::ACCEPT), rest.stream_format);
                let mut response = stream_response(messages, framing, options, choices.stream_result_wrapper);
                add_backend_metadata(&mut response, &metadata);
                response
            }
            Err(error) => gateway_error_response(&error, pool),
        },
        _ => match execute_streaming_operation(&served, operation).await {
            Ok((metadata, mut messages)) => match messages.next().await {
                Some(Ok(message)) => {
                    let selection = route.response_body.clone().map_or(Selection::Whole, Selection::Field);
                    let mut response = json_response(StatusCode::OK, encode_selection(&message, &selection, &options));
                    add_backend_metadata(&mut response, &metadata);
                    response
                }
                Some(Err(error)) => gateway_error_response(&GatewayError::Execute(error), pool),
                None => error_response(ErrorCode::UpstreamError, "the backend closed the call without a response"),
            },
            Err(error) => gateway_error_response(&error, pool),
        },
    }
}

/// A gateway error as google.rpc.Status JSON, with the backend's details when it sent some.
fn gateway_error_response(error: &GatewayError, pool: &prost_reflect::DescriptorPool) -> Response {
    let details = error.status_details().map(|d| status_details_json(pool, d)).unwrap_or_default();
    error_response_with_details(error.code(), &error.to_string(), details)
}

fn encode_selection(message: &prost_reflect::DynamicMessage, selection: &Selection, options: &JsonOptions) -> Vec<u8> {
    match selection {
        Selection::Whole => message_to_json(message, options),
        Selection::Field(field) => field_to_json(message, field, options),
    }
}

/// Only JSON bodies are read (form and other encodings are not transcoded).
fn check_content_type(value: Option<&HeaderValue>) -> Option<Response> {
    let value = value?;
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let is_json = essence == "application/json"
        || essence == "application/x-ndjson"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
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
