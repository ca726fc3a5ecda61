//! Response compression on the main way (REST, GraphQL, OpenAPI): the client's `Accept-Encoding`
//! (RFC 9110 §12.5.3) picks zstd, br or gzip, and a JSON answer of known size of at least 1 KiB is
//! sent in it, at each encoder's fastest level (a JSON answer still shrinks several-fold for a
//! fraction of the default level's CPU; gzip 1 is also nginx's default). Streams (NDJSON, SSE)
//! are never compressed here, since buffering would break message-by-message delivery, nor is
//! gRPC, which compresses in-band, nor an answer that is already encoded or a byte range.
//!
//! Written here rather than taken from tower-http's layer: that layer's body holds brotli's
//! encoder state inline (5.8 KB), so every answer, compressed or not, was moved through its
//! futures several times and boxed again; here an answer that is not compressed passes
//! untouched and an encoder is allocated only when one is chosen.

use std::io;
use std::pin::Pin;

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use axum::body::Body;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Response, header};
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

/// Answers smaller than this are sent as they are.
const COMPRESS_ABOVE: u64 = 1024;

/// Bytes read from an encoder at a time.
const ENCODED_CHUNK: usize = 16 * 1024;

/// A content coding the gateway can send, ordered from least to most preferred when the client
/// weighs several alike (zstd and br compress JSON better than gzip at their fastest levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ContentCoding {
    Gzip,
    Brotli,
    Zstd,
}

impl ContentCoding {
    const ALL: [ContentCoding; 3] = [ContentCoding::Gzip, ContentCoding::Brotli, ContentCoding::Zstd];

    /// The coding's token in `Content-Encoding`.
    fn token(self) -> &'static str {
        match self {
            ContentCoding::Gzip => "gzip",
            ContentCoding::Brotli => "br",
            ContentCoding::Zstd => "zstd",
        }
    }
}

/// What one `Accept-Encoding` names, each weight in thousandths (`q=1` is 1000).
#[derive(Debug, Default)]
struct Accepted {
    codings: [Option<u16>; 3],
    identity: Option<u16>,
    any: Option<u16>,
}

/// The coding to send an answer in, by the request's `Accept-Encoding`: the coding of highest
/// weight above zero, `*` standing for every coding not named, unless the client weighs
/// `identity` higher. No header (or no acceptable coding) means identity. Unknown codings and
/// elements with a malformed weight are ignored, as a tolerant server does.
pub(crate) fn negotiate(headers: &HeaderMap) -> Option<ContentCoding> {
    let mut accepted = Accepted::default();
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            let mut parts = element.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let Some(weight) = weight(parts) else { continue };
            let slot = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                &mut accepted.codings[0]
            } else if name.eq_ignore_ascii_case("br") {
                &mut accepted.codings[1]
            } else if name.eq_ignore_ascii_case("zstd") {
                &mut accepted.codings[2]
            } else if name.eq_ignore_ascii_case("identity") {
                &mut accepted.identity
            } else if name == "*" {
                &mut accepted.any
            } else {
                continue;
            };
            *slot = Some(weight);
        }
    }
    let identity = accepted.identity.unwrap_or(0);
    ContentCoding::ALL
        .into_iter()
        .zip(accepted.codings)
        .filter_map(|(coding, weight)| weight.or(accepted.any).map(|w| (w, coding)))
        .filter(|&(weight, _)| weight > 0 && weight >= identity)
        .max()
        .map(|(_, coding)| coding)
}

/// The weight among an element's parameters (`q=0.5`), 1000 when it has none; None when the
/// weight is malformed (more than three decimals, above 1).
fn weight<'a>(parameters: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut weight = 1000;
    for parameter in parameters {
        let Some((key, value)) = parameter.split_once('=') else { continue };
        if key.trim().eq_ignore_ascii_case("q") {
            weight = parse_qvalue(value.trim())?;
        }
    }
    Some(weight)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths =
        fraction.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// True for a JSON document (`application/json` or a `+json` type such as GraphQL's
/// `application/graphql-response+json`) whose size is known and at least the threshold.
fn compressible(response: &Response<Body>) -> bool {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|essence| {
            let essence = essence.as_bytes();
            essence.eq_ignore_ascii_case(b"application/json")
                || (essence.len() > 17
                    && essence[..12].eq_ignore_ascii_case(b"application/")
                    && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"))
        });
    let size = http_body::Body::size_hint(response.body()).exact();
    is_json && size.is_some_and(|n| n >= COMPRESS_ABOVE)
}

/// The answer in `coding` when it is a compressible JSON document; else as it is. Every
/// compressible answer says `Vary: accept-encoding` (whichever coding it went in), so a shared
/// cache keeps one copy per coding.
pub(crate) fn compress(response: Response<Body>, coding: Option<ContentCoding>) -> Response<Body> {
    let headers = response.headers();
    if headers.contains_key(header::CONTENT_ENCODING)
        || headers.contains_key(header::CONTENT_RANGE)
        || !compressible(&response)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    if !varies_by_encoding(&parts.headers) {
        parts.headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    let Some(coding) = coding else { return Response::from_parts(parts, body) };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::ACCEPT_RANGES);
    parts.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    Response::from_parts(parts, encode(body, coding))
}

/// True if `Vary` already names `Accept-Encoding` (or `*`).
fn varies_by_encoding(headers: &HeaderMap) -> bool {
    headers.get_all(header::VARY).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|name| {
        let name = name.trim();
        name == "*" || name.eq_ignore_ascii_case("accept-encoding")
    })
}

/// The body encoded in `coding` as it streams out.
fn encode(body: Body, coding: ContentCoding) -> Body {
    let plain = StreamReader::new(body.into_data_stream().map_err(io::Error::other));
    let encoded: Pin<Box<dyn AsyncRead + Send>> = match coding {
        ContentCoding::Gzip => Box::pin(GzipEncoder::with_quality(plain, Level::Fastest)),
        ContentCoding::Brotli => Box::pin(BrotliEncoder::with_quality(plain, Level::Fastest)),
        ContentCoding::Zstd => Box::pin(ZstdEncoder::with_quality(plain, Level::Fastest)),
    };
    Body::from_stream(ReaderStream::with_capacity(encoded, ENCODED_CHUNK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContentCoding::{Brotli, Gzip, Zstd};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_str(value).expect("header"));
        }
        headers
    }

    #[test]
    fn accept_encoding_picks_the_coding_by_weight_then_preference() {
        // (Accept-Encoding lines, the coding chosen)
        let table: &[(&[&str], Option<ContentCoding>)] = &[
            (&[], None),
            (&[""], None),
            (&["gzip"], Some(Gzip)),
            (&["x-gzip"], Some(Gzip)),
            (&["GZIP"], Some(Gzip)),
            (&["br"], Some(Brotli)),
            (&["zstd"], Some(Zstd)),
            (&["gzip, deflate, br, zstd"], Some(Zstd)),
            (&["gzip, deflate, br"], Some(Brotli)),
            (&["gzip", "br"], Some(Brotli)),
            (&["deflate, compress"], None),
            (&["identity"], None),
            (&["gzip;q=0"], None),
            (&["gzip;q=0.000"], None),
            (&["gzip;q=1.0, br;q=0.5"], Some(Gzip)),
            (&["gzip;q=0.8, br;q=0.9"], Some(Brotli)),
            (&["gzip ; q=0.8 , br;Q=0.9"], Some(Brotli)),
            (&["gzip;q=0.001"], Some(Gzip)),
            (&["gzip;q=0.5, identity"], None),
            (&["gzip;q=0.5, identity;q=0.5"], Some(Gzip)),
            (&["gzip, identity;q=0"], Some(Gzip)),
            (&["*"], Some(Zstd)),
            (&["*;q=0"], None),
            (&["*;q=0, gzip"], Some(Gzip)),
            (&["zstd;q=0, *"], Some(Brotli)),
            (&["zstd;q=0, br;q=0, *;q=0.1"], Some(Gzip)),
            (&["gzip;q=0.5, *;q=0.1"], Some(Gzip)),
            // Malformed weights drop their element only.
            (&["br;q=2, gzip"], Some(Gzip)),
            (&["br;q=1.5, gzip"], Some(Gzip)),
            (&["br;q=0.5000, gzip;q=0.1"], Some(Gzip)),
            (&["br;q=abc, gzip;q=0.1"], Some(Gzip)),
            (&["br;q=, gzip;q=0.1"], Some(Gzip)),
            (&["br;q=1.000"], Some(Brotli)),
            (&[",,gzip,,"], Some(Gzip)),
        ];
        for (lines, expected) in table {
            assert_eq!(negotiate(&headers(lines)), *expected, "Accept-Encoding {lines:?}");
        }
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        let table = [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.123", Some(123)),
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("0.1234", None),
            ("2", None),
            ("", None),
            (".5", None),
            ("0.5x", None),
            ("-0", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_qvalue(text), expected, "q={text}");
        }
    }

    fn answer(content_type: &str, size: usize, extra: &[(&str, &str)]) -> Response<Body> {
        let mut response = Response::new(Body::from(vec![b' '; size]));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("type"));
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        for (name, value) in extra {
            response.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        response
    }

    #[test]
    fn only_json_documents_of_known_size_above_the_threshold_are_compressed() {
        // (content type, size, extra headers, compressed)
        type Row<'a> = (&'a str, usize, &'a [(&'a str, &'a str)], bool);
        let table: &[Row] = &[
            ("application/json", 1024, &[], true),
            ("application/json", 1023, &[], false),
            ("application/json; charset=utf-8", 4096, &[], true),
            ("Application/JSON", 4096, &[], true),
            ("application/graphql-response+json", 4096, &[], true),
            ("application/problem+json", 4096, &[], true),
            ("application/x-ndjson", 4096, &[], false),
            ("text/event-stream", 4096, &[], false),
            ("application/grpc", 4096, &[], false),
            ("text/plain", 4096, &[], false),
            ("application/jsonx", 4096, &[], false),
            ("application/json", 4096, &[("content-encoding", "gzip")], false),
            ("application/json", 4096, &[("content-range", "bytes 0-4095/8000")], false),
        ];
        for (content_type, size, extra, expected) in table {
            let compressed = compress(answer(content_type, *size, extra), Some(Gzip));
            // Encoding drops the plain length; an answer left alone keeps it.
            let encoded = compressed.headers().get(header::CONTENT_LENGTH).is_none();
            assert_eq!(encoded, *expected, "{content_type} {size} {extra:?}");
        }
    }

    #[test]
    fn a_compressible_answer_varies_by_encoding_once_whichever_coding_it_went_in() {
        // (coding, Vary already sent, Vary values after)
        let table: &[(Option<ContentCoding>, &[&str], &[&str])] = &[
            (Some(Gzip), &[], &["accept-encoding"]),
            (None, &[], &["accept-encoding"]),
            (Some(Gzip), &["origin"], &["origin", "accept-encoding"]),
            (Some(Gzip), &["Origin, Accept-Encoding"], &["Origin, Accept-Encoding"]),
            (Some(Zstd), &["*"], &["*"]),
        ];
        for (coding, before, after) in table {
            let extra: Vec<(&str, &str)> = before.iter().map(|v| ("vary", *v)).collect();
            let response = compress(answer("application/json", 2048, &extra), *coding);
            let vary: Vec<&str> =
                response.headers().get_all(header::VARY).iter().map(|v| v.to_str().expect("ascii")).collect();
            assert_eq!(vary, *after, "{coding:?} with Vary {before:?}");
        }
        let small = compress(answer("application/json", 10, &[]), Some(Gzip));
        assert!(small.headers().get(header::VARY).is_none(), "an answer never compressed does not vary");
    }

    #[tokio::test]
    async fn each_coding_round_trips_and_drops_the_plain_length() {
        use tokio::io::AsyncReadExt;
        let document = serde_json::to_vec(&serde_json::json!({
            "books": (0..200).map(|i| serde_json::json!({"name": format!("shelves/1/books/{i}"), "title": "A title"})).collect::<Vec<_>>()
        }))
        .expect("json");
        for coding in ContentCoding::ALL {
            let mut response = Response::new(Body::from(document.clone()));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(document.len()));
            response.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            let response = compress(response, Some(coding));
            assert_eq!(response.headers()[header::CONTENT_ENCODING], coding.token());
            assert!(response.headers().get(header::CONTENT_LENGTH).is_none(), "{coding:?}: the plain length is gone");
            assert!(response.headers().get(header::ACCEPT_RANGES).is_none(), "{coding:?}: ranges of what?");
            let packed = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
            assert!(packed.len() < document.len() / 3, "{coding:?}: {} of {} bytes", packed.len(), document.len());
            let mut plain = Vec::new();
            match coding {
                Gzip => async_compression::tokio::bufread::GzipDecoder::new(&packed[..]).read_to_end(&mut plain).await,
                Brotli => {
                    async_compression::tokio::bufread::BrotliDecoder::new(&packed[..]).read_to_end(&mut plain).await
                }
                Zstd => async_compression::tokio::bufread::ZstdDecoder::new(&packed[..]).read_to_end(&mut plain).await,
            }
            .expect("decode");
            assert_eq!(plain, document, "{coding:?} round trip");
        }
    }
}
