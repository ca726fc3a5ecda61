//! Writing REST answers: a unary response as proto3 JSON (or its `response_body` field), a
//! `google.api.HttpBody` as its raw bytes and content type, a stream of HttpBody messages as
//! one raw body, and gateway errors as google.rpc.Status JSON with decoded backend details.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value};

use super::respond::{
    error_response, error_response_with_details, json_body_response, json_response, status_details_json,
};
use super::rest_answer_pieces::json_in_pieces;
use crate::error::ErrorCode;
use crate::execute::{ExecuteError, FetchOutput, OutputStream};
use crate::gateway::GatewayError;
use crate::operation::Selection;
use crate::transcode::binding::HTTP_BODY;
use crate::transcode::json::{JsonOptions, NoJsonForm, message_to_json};
use crate::transcode::json_wire::JsonCodec;

/// A 200 response for a unary answer. A whole message is written from its bytes by the
/// direct writer (json_wire), which hands what it cannot write to DynamicMessage; a large one
/// while it is sent (rest_answer_pieces), unless the caller needs it `whole`. A
/// `response_body` field or an HttpBody answer is decoded first.
pub(crate) fn answer_response(
    output: &FetchOutput,
    codec: &Arc<JsonCodec>,
    options: &JsonOptions,
    whole: bool,
    pool: &prost_reflect::DescriptorPool,
) -> Response {
    if is_written_from_wire(output) {
        if !whole && let Some(body) = json_in_pieces(codec, &output.body, options) {
            return json_body_response(StatusCode::OK, body);
        }
        return match codec.to_json(&output.body, options) {
            Ok(json) => json_response(StatusCode::OK, json),
            Err(error) => gateway_error_response(&GatewayError::Execute(error.into()), pool),
        };
    }
    match output.message() {
        Ok(message) => output_response(&message, &output.selection, options),
        Err(error) => gateway_error_response(&GatewayError::Execute(error), pool),
    }
}

/// Whether `answer_response` writes this answer's JSON straight from its bytes (a whole message
/// that is not an HttpBody), so the JSON is a function of those bytes, the options and the
/// descriptors alone.
pub(crate) fn is_written_from_wire(output: &FetchOutput) -> bool {
    matches!(output.selection, Selection::Whole) && output.output.full_name() != HTTP_BODY
}

/// A 200 response for one answer message.
pub(crate) fn output_response(message: &DynamicMessage, selection: &Selection, options: &JsonOptions) -> Response {
    // The message the body is written from: the whole answer, or its `response_body` field
    // when that is a singular message (other fields are written as plain JSON values).
    let inner;
    let selected = match selection {
        Selection::Whole | Selection::Graphql { .. } => Some(message),
        Selection::Field(field) => match message.get_field(field) {
            std::borrow::Cow::Borrowed(Value::Message(borrowed)) if !field.is_list() => Some(borrowed),
            std::borrow::Cow::Owned(Value::Message(owned)) if !field.is_list() => {
                inner = owned;
                Some(&inner)
            }
            _ => None,
        },
    };
    if let Some(body) = selected.filter(|m| m.descriptor().full_name() == HTTP_BODY) {
        let (content_type, data) = http_body_parts(body);
        return raw_response(content_type, Body::from(data));
    }
    let json = match (selection, selected) {
        (Selection::Field(field), None) => field_to_json(message, field, options),
        (_, Some(selected)) => message_to_json(selected, options),
        (_, None) => message_to_json(message, options),
    };
    match json {
        Ok(json) => json_response(StatusCode::OK, json),
        Err(error) => error_response(ErrorCode::UpstreamError, &ExecuteError::NoJsonForm(error).to_string()),
    }
}

/// A server stream of HttpBody messages as one raw body: the first message's content type,
/// then every message's data as it arrives. Waits for the first message, so a call that fails
/// before any data answers with its own status.
pub(crate) async fn http_body_stream_response(
    mut messages: OutputStream,
    pool: &prost_reflect::DescriptorPool,
) -> Response {
    let first = match messages.next().await {
        Some(Ok(first)) => first,
        Some(Err(error)) => return gateway_error_response(&GatewayError::Execute(error), pool),
        None => return raw_response(String::from("application/octet-stream"), Body::empty()),
    };
    let (content_type, data) = http_body_parts(&first);
    let rest =
        messages.map(|item| item.map(|m| http_body_parts(&m).1).map_err(|e| std::io::Error::other(e.to_string())));
    let chunks = stream::once(async move { Ok(data) }).chain(rest);
    raw_response(content_type, Body::from_stream(chunks))
}

fn http_body_parts(message: &DynamicMessage) -> (String, Bytes) {
    let content_type = match message.get_field_by_name("content_type").as_deref() {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        _ => "application/octet-stream".to_owned(),
    };
    let data = match message.get_field_by_name("data").as_deref() {
        Some(Value::Bytes(bytes)) => bytes.clone(),
        _ => Bytes::new(),
    };
    (content_type, data)
}

fn raw_response(content_type: String, body: Body) -> Response {
    let mut response = Response::new(body);
    let value = HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert(header::CONTENT_TYPE, value);
    response
}

/// A gateway error as google.rpc.Status JSON, with the backend's details when it sent some.
pub(crate) fn gateway_error_response(error: &GatewayError, pool: &prost_reflect::DescriptorPool) -> Response {
    let details = error.status_details().map(|d| status_details_json(pool, d)).unwrap_or_default();
    error_response_with_details(error.code(), &error.to_string(), details)
}

/// The answer of a client-streaming call: its one message, or why there is none.
pub(crate) async fn single_output(
    mut messages: OutputStream,
    selection: &Selection,
    options: &JsonOptions,
    pool: &prost_reflect::DescriptorPool,
) -> Response {
    match messages.next().await {
        Some(Ok(message)) => output_response(&message, selection, options),
        Some(Err(error)) => gateway_error_response(&GatewayError::Execute(error), pool),
        None => error_response(ErrorCode::UpstreamError, "the backend closed the call without a response"),
    }
}

/// `response_body` naming a scalar or repeated field: that field's JSON value.
fn field_to_json(
    message: &DynamicMessage,
    field: &FieldDescriptor,
    options: &JsonOptions,
) -> Result<Vec<u8>, NoJsonForm> {
    let whole = message_to_json(message, &JsonOptions { emit_defaults: true, ..options.clone() })?;
    let key = if options.proto_names { field.name() } else { field.json_name() };
    let value = serde_json::from_slice::<serde_json::Value>(&whole)
        .ok()
        .and_then(|mut v| v.get_mut(key).map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    Ok(serde_json::to_vec(&value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A large answer goes in pieces unless the caller needs it whole (a GET's ETag, a
    /// transformation's edits): then it is one frame, the whole JSON. Either way the same JSON.
    #[tokio::test]
    async fn a_large_answer_is_written_in_pieces_unless_needed_whole() {
        let all = crate::transcode::json::mapping_tests::descriptor();
        let options = JsonOptions::default();
        let title = "t".repeat(super::super::rest_answer_pieces::PIECES_FROM);
        let json = serde_json::json!({ "s": title }).to_string();
        let message = crate::transcode::json::json_to_message(all.clone(), json.as_bytes(), &options).expect("reads");
        let output = FetchOutput {
            body: Bytes::from(message.encode_to_vec()),
            output: all.clone(),
            selection: Selection::Whole,
            metadata: http::HeaderMap::new(),
            cache: None,
        };
        let codec = Arc::new(JsonCodec::new(all.clone()));
        let whole_json = codec.to_json(&output.body, &options).expect("writes");
        for (whole, one_frame) in [(true, true), (false, false)] {
            let response = answer_response(&output, &codec, &options, whole, all.parent_pool());
            let mut body = response.into_body();
            let mut frames = Vec::new();
            while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
                frames.push(frame.expect("a frame").into_data().expect("data"));
            }
            assert_eq!(frames.len() == 1, one_frame, "whole {whole}: {} frames", frames.len());
            assert_eq!(frames.concat(), whole_json, "whole {whole}");
        }
    }
}
