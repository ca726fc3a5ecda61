//! The one place gateway errors become HTTP responses: the google.rpc.Status JSON body
//! (`code`, `message`, `details`) with the status code of the ErrorCode table.

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ErrorCode;

/// The headers a JSON answer is sized for when it is made.
const RESPONSE_HEADERS: usize = 12;

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    json_body_response(status, Body::from(body))
}

/// A JSON response with `status` whose body is written as it is sent.
pub(crate) fn json_body_response(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    // Room for what the way back adds (request id, length, ETag, the backend's metadata, the
    // RateLimit pair): a header map that fills grows and rehashes, ~1,400 instructions.
    response.headers_mut().reserve(RESPONSE_HEADERS);
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

/// A google.rpc.Status JSON error response for `code`.
pub fn error_response(code: ErrorCode, message: &str) -> Response {
    error_response_with_details(code, message, Vec::new())
}

/// A google.rpc.Status JSON error response carrying `details` (already JSON).
pub fn error_response_with_details(code: ErrorCode, message: &str, details: Vec<Value>) -> Response {
    crate::telemetry::record::note_error(crate::error::grpc_code::name(code.grpc_code()));
    let body = json!({ "code": code.grpc_code(), "message": message, "details": details });
    let mut response = (code.http_status(), Json(body)).into_response();
    if code == ErrorCode::Unauthenticated {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}

/// The JSON of a backend's `grpc-status-details-bin` details: each `Any` whose type is
/// registered is written in its JSON form with `@type`; others as `@type` and base64 `value`.
/// Undecodable details yield none (the status code and message still go out).
pub fn status_details_json(pool: &prost_reflect::DescriptorPool, encoded: &[u8]) -> Vec<Value> {
    use prost::Message;
    let Ok(status) = RpcStatus::decode(encoded) else { return Vec::new() };
    status
        .details
        .iter()
        .map(|any| {
            let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
            let decoded = pool
                .get_message_by_name(type_name)
                .and_then(|descriptor| prost_reflect::DynamicMessage::decode(descriptor, any.value.as_slice()).ok());
            let mut object = match decoded.map(|m| serde_json::to_value(&m)) {
                Some(Ok(Value::Object(object))) => object,
                _ => {
                    let mut object = serde_json::Map::new();
                    object.insert("value".into(), Value::String(base64_standard(&any.value)));
                    object
                }
            };
            let mut ordered = serde_json::Map::new();
            ordered.insert("@type".into(), Value::String(any.type_url.clone()));
            ordered.append(&mut object);
            Value::Object(ordered)
        })
        .collect()
}

fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// google.rpc.Status as prost reads it (details stay `Any`).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// Response headers for a backend's metadata, grpc-gateway style: each non-reserved entry as
/// `grpc-metadata-<name>` (`-bin` values stay base64, as on the wire).
pub fn add_backend_metadata(response: &mut Response, metadata: &http::HeaderMap) {
    for (name, value) in metadata {
        let name = name.as_str();
        if name.starts_with("grpc-") || RESERVED.contains(&name) {
            continue;
        }
        if let Ok(header) = header::HeaderName::from_bytes(format!("grpc-metadata-{name}").as_bytes()) {
            response.headers_mut().append(header, value.clone());
        }
    }
}

const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "te",
    "trailer",
    "transfer-encoding",
    "connection",
    "date",
    "server",
    "user-agent",
];
