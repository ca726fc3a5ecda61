//! The one place gateway errors become HTTP responses: the google.rpc.Status JSON body
//! (`code`, `message`, `details`) with the status code of the ErrorCode table.

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ErrorCode;

/// A google.rpc.Status JSON error response for `code`.
pub fn error_response(code: ErrorCode, message: &str) -> Response {
    let body = json!({ "code": code.grpc_code(), "message": message, "details": [] });
    let mut response = (code.http_status(), Json(body)).into_response();
    if code == ErrorCode::Unauthenticated {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}
