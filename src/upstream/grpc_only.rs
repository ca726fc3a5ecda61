//! A gRPC backend's answer that is not gRPC (an HTML 502 from a proxy in front of it, a 404
//! from a web server on the wrong port) becomes the gRPC status the gRPC spec maps its HTTP
//! status to (doc/http-grpc-status-mapping.md), as a trailers-only answer, instead of being
//! read as frames: `<` would otherwise be taken for a compression flag.

use std::task::{Context, Poll};

use futures_util::TryFutureExt;

use http::{HeaderValue, StatusCode, header};
use tonic::body::Body;

use crate::error::grpc_code;

/// A channel whose non-gRPC answers are turned into gRPC statuses.
#[derive(Debug, Clone)]
pub struct GrpcOnly<S>(pub S);

/// The gRPC status for an HTTP status on an answer that is not gRPC.
pub fn status_for_http(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => grpc_code::INTERNAL,
        401 => grpc_code::UNAUTHENTICATED,
        403 => grpc_code::PERMISSION_DENIED,
        404 => grpc_code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => grpc_code::UNAVAILABLE,
        _ => grpc_code::UNKNOWN,
    }
}

fn is_grpc<B>(response: &http::Response<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// `response` if it is gRPC, else the trailers-only gRPC answer standing for it (its body the
/// empty one, `Default`).
pub fn grpc_or_status<B: Default>(response: http::Response<B>) -> http::Response<B> {
    match not_grpc(&response) {
        None => response,
        Some((code, message)) => trailers_only(code, &message),
    }
}

/// For an answer that is not gRPC, the gRPC status standing for it: its code and message.
pub fn not_grpc<B>(response: &http::Response<B>) -> Option<(i32, String)> {
    if is_grpc(response) {
        return None;
    }
    let status = response.status();
    let content_type =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("no content type");
    Some((status_for_http(status), format!("the backend answered HTTP {} ({content_type}), not gRPC", status.as_u16())))
}

/// A trailers-only gRPC answer of status `code` and `message`.
fn trailers_only<B: Default>(code: i32, message: &str) -> http::Response<B> {
    // grpc-message: bytes outside printable ASCII, and `%`, are percent-encoded.
    let encoded: String = message
        .bytes()
        .map(|b| if (0x20..=0x7e).contains(&b) && b != b'%' { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let mut answer = http::Response::new(B::default());
    let headers = answer.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", value);
    }
    answer
}

impl<S> tower::Service<http::Request<Body>> for GrpcOnly<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    // No box: this wraps every backend call.
    type Future = futures_util::future::MapOk<S::Future, fn(http::Response<Body>) -> http::Response<Body>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.0.call(request).map_ok(grpc_or_status::<Body> as fn(_) -> _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_as_the_grpc_spec_says() {
        let table = [
            (400, grpc_code::INTERNAL),
            (401, grpc_code::UNAUTHENTICATED),
            (403, grpc_code::PERMISSION_DENIED),
            (404, grpc_code::UNIMPLEMENTED),
            (429, grpc_code::UNAVAILABLE),
            (502, grpc_code::UNAVAILABLE),
            (503, grpc_code::UNAVAILABLE),
            (504, grpc_code::UNAVAILABLE),
            (200, grpc_code::UNKNOWN),
            (500, grpc_code::UNKNOWN),
        ];
        for (http, grpc) in table {
            assert_eq!(status_for_http(StatusCode::from_u16(http).expect("status")), grpc, "{http}");
        }
        let mut html = http::Response::new(Body::empty());
        *html.status_mut() = StatusCode::BAD_GATEWAY;
        html.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        let answer = grpc_or_status(html);
        assert_eq!(answer.headers()["grpc-status"], "14");
        assert_eq!(answer.headers()["grpc-message"], "the backend answered HTTP 502 (text/html), not gRPC");
    }
}
