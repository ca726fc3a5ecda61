//! Checks on a request's head before any route sees it: the HTTP/1 framing rules that request
//! smuggling plays on (RFC 9112 sections 3.2 and 6), and header names with underscores, which
//! proxies and CGI-style backends fold into dashes (`X_User_Id` and `X-User-Id` would be one
//! header to them and two to us).
//!
//! hyper already refuses two Content-Length values, obs-fold, a space before the colon, signed
//! lengths and unknown final transfer codings. Transfer-Encoding together with Content-Length
//! it reads by Transfer-Encoding alone and closes the connection after answering, which is one
//! of the two answers RFC 9112 section 6.3 allows (it removes the Content-Length before the
//! request reaches us, so the other, a 400, cannot be chosen here). It accepts, and these
//! checks refuse:
//!
//! - a Transfer-Encoding other than `chunked` alone (`gzip, chunked`): 501 and close;
//! - an HTTP/1.1 request without Host, or with more than one: 400 (section 3.2's MUST).

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, Version, header};

use super::respond::error_response;
use crate::config::UnderscoreHeaders;
use crate::error::ErrorCode;

/// Why a request head was refused, and whether the connection must close after the answer (its
/// body's framing cannot be trusted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadRefusal {
    /// The error.
    pub code: ErrorCode,
    /// What was wrong, naming the header.
    pub message: String,
    /// Close the connection after answering.
    pub close: bool,
}

fn refuse(code: ErrorCode, message: String, close: bool) -> HeadRefusal {
    HeadRefusal { code, message, close }
}

/// The media type of a `Content-Type` value, its parameters and spaces left off (as written:
/// compare it without case); empty when there is none or it is not text.
pub(crate) fn media_type(content_type: Option<&HeaderValue>) -> &str {
    content_type.and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).unwrap_or("").trim()
}

/// Checks (and with `drop`, edits) a request head.
pub fn check_head(
    version: Version,
    headers: &mut http::HeaderMap,
    underscores: UnderscoreHeaders,
) -> Result<(), HeadRefusal> {
    if version <= Version::HTTP_11 {
        let encodings: Vec<&HeaderValue> = headers.get_all(header::TRANSFER_ENCODING).iter().collect();
        if !encodings.is_empty() {
            let chunked_alone =
                encodings.len() == 1 && encodings[0].to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
            if !chunked_alone {
                let shown: Vec<String> =
                    encodings.iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
                let message =
                    format!("Transfer-Encoding `{}` is not supported; only `chunked` alone", shown.join(", "));
                return Err(refuse(ErrorCode::NotImplemented, message, true));
            }
        }
        if version == Version::HTTP_11 {
            match headers.get_all(header::HOST).iter().count() {
                1 => {}
                0 => return Err(refuse(ErrorCode::InvalidArgument, "the Host header is missing".into(), false)),
                n => {
                    let message = format!("{n} Host headers; an HTTP/1.1 request has exactly one");
                    return Err(refuse(ErrorCode::InvalidArgument, message, false));
                }
            }
        }
    }
    if underscores != UnderscoreHeaders::Allow && headers.keys().any(|name| name.as_str().contains('_')) {
        let named: Vec<http::HeaderName> = headers.keys().filter(|n| n.as_str().contains('_')).cloned().collect();
        if underscores == UnderscoreHeaders::Reject {
            let message = format!(
                "header name `{}` contains an underscore (listener.headers_with_underscores = \"reject\")",
                named[0]
            );
            return Err(refuse(ErrorCode::InvalidArgument, message, false));
        }
        for name in named {
            headers.remove(name);
        }
    }
    Ok(())
}

/// A refusal before any route read the request, in the shape of the protocol the request
/// speaks: a gRPC status (trailers-only, `application/grpc-web` for gRPC-Web), GraphQL's
/// `errors` on the GraphQL endpoint, else a JSON google.rpc.Status.
pub(super) fn refuse_before_routing(request: &Request, code: ErrorCode, message: &str) -> Response {
    if let Some(wire) = super::grpc::grpc_wire(request.headers()) {
        let web = wire == super::grpc::GrpcWire::Web;
        let status = tonic::Status::new(tonic::Code::from(code.grpc_code()), message);
        let mut response = super::grpc::status(status);
        if web {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc-web+proto"));
        }
        return response;
    }
    if request.uri().path() == "/graphql" {
        return super::graphql::refusal_response(code, message);
    }
    error_response(code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_type_s_media_type_is_read_before_its_parameters() {
        let table = [
            (Some("application/json"), "application/json"),
            (Some(" Application/JSON ; charset=utf-8"), "Application/JSON"),
            (Some("text/plain;"), "text/plain"),
            (Some(""), ""),
            (None, ""),
        ];
        for (value, media) in table {
            let value = value.map(|v| HeaderValue::from_str(v).expect("header"));
            assert_eq!(media_type(value.as_ref()), media, "{value:?}");
        }
        let opaque = HeaderValue::from_bytes(b"application/json\xff").expect("header");
        assert_eq!(media_type(Some(&opaque)), "", "not text");
    }

    #[test]
    fn each_head_rule_has_its_answer() {
        use UnderscoreHeaders::*;
        // (what, version, headers, underscores, refusal code and close, or None; headers left)
        type Row = (
            &'static str,
            Version,
            &'static [(&'static str, &'static str)],
            UnderscoreHeaders,
            Option<(ErrorCode, bool)>,
            usize,
        );
        let table: &[Row] = &[
            ("plain GET", Version::HTTP_11, &[("host", "a")], Reject, None, 1),
            ("chunked", Version::HTTP_11, &[("host", "a"), ("transfer-encoding", "chunked")], Reject, None, 2),
            (
                "Chunked, any case",
                Version::HTTP_11,
                &[("host", "a"), ("transfer-encoding", " Chunked ")],
                Reject,
                None,
                2,
            ),
            (
                "gzip, chunked",
                Version::HTTP_11,
                &[("host", "a"), ("transfer-encoding", "gzip, chunked")],
                Reject,
                Some((ErrorCode::NotImplemented, true)),
                2,
            ),
            (
                "two TE lines",
                Version::HTTP_11,
                &[("host", "a"), ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
                Reject,
                Some((ErrorCode::NotImplemented, true)),
                3,
            ),
            ("no Host on 1.1", Version::HTTP_11, &[], Reject, Some((ErrorCode::InvalidArgument, false)), 0),
            ("no Host on 1.0", Version::HTTP_10, &[], Reject, None, 0),
            (
                "two Hosts",
                Version::HTTP_11,
                &[("host", "a"), ("host", "b")],
                Reject,
                Some((ErrorCode::InvalidArgument, false)),
                2,
            ),
            ("HTTP/2 has :authority", Version::HTTP_2, &[], Reject, None, 0),
            (
                "underscore refused",
                Version::HTTP_2,
                &[("x_user_id", "a")],
                Reject,
                Some((ErrorCode::InvalidArgument, false)),
                1,
            ),
            ("underscore dropped", Version::HTTP_2, &[("x_user_id", "a"), ("x-user-id", "b")], Drop, None, 1),
            ("underscore allowed", Version::HTTP_2, &[("x_user_id", "a")], Allow, None, 1),
        ];
        for (what, version, headers, underscores, expected, left) in table {
            let mut map = http::HeaderMap::new();
            for (name, value) in *headers {
                map.append(http::HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            let result = check_head(*version, &mut map, *underscores);
            assert_eq!(result.as_ref().err().map(|r| (r.code, r.close)), *expected, "{what}: {result:?}");
            assert_eq!(map.len(), *left, "{what}");
        }
        let mut map = http::HeaderMap::new();
        map.insert("x_user_id", HeaderValue::from_static("a"));
        let refusal = check_head(Version::HTTP_11, &mut map, Reject).expect_err("no host");
        assert_eq!(refusal.message, "the Host header is missing");
        map.insert(header::HOST, HeaderValue::from_static("a"));
        let refusal = check_head(Version::HTTP_11, &mut map, Reject).expect_err("underscore");
        assert!(refusal.message.contains("`x_user_id`"), "{}", refusal.message);
    }
}
