//! The one place gateway errors become HTTP responses: the google.rpc.Status JSON body
//! (`code`, `message`, `details`) with the status code of the ErrorCode table.

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ErrorCode;

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

/// A google.rpc.Status JSON error response for `code`.
pub fn error_response(code: ErrorCode, message: &str) -> Response {
    let body = json!({ "code": code.grpc_code(), "message": message, "details": [] });
    let mut response = (code.http_status(), Json(body)).into_response();
    if code == ErrorCode::Unauthenticated {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}
