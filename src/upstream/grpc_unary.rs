//! One unary gRPC call on the gateway's own HTTP/2 connection (`pool::http2`), framed here
//! rather than by tonic's client (which the streaming calls still use).
//!
//! Why: tonic's `Grpc::unary` copies the request message into its encode buffer, assembles the
//! answer in a decode buffer that grows by doubling, and gives no sign when the answer's headers
//! arrive, so the caller had to keep the request (for a transparent resend) until the whole
//! answer was in: a 1 MiB REST PATCH held its 1 MiB request beside hyper's and tonic's copies of
//! the 1 MiB answer (`cargo bench --bench request_memory`). Here the message is sent as it is
//! (a large one after its length prefix as a frame of its own, never copied), the answer is
//! read into one buffer of its declared length as its frames arrive, and the caller hears when
//! the headers arrive: the backend has taken the stream then, so nothing will be resent
//! transparently.
//!
//! The rules are gRPC over HTTP/2's (PROTOCOL-HTTP2.md): `te: trailers`, `content-type:
//! application/grpc`, `grpc-timeout`, length-prefixed messages with a compression flag, the
//! status in the trailers (or in the headers of a trailers-only answer), and for an answer
//! without a `grpc-status`, the status its HTTP status maps to (http-grpc-status-mapping.md).

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::{Bytes, BytesMut};

use crate::wire_message::WireMessage;
use http::header::{CONTENT_TYPE, TE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tonic::metadata::MetadataMap;

use super::UpstreamError;
use super::grpc::UnaryReply;
use super::pool::http2::{CallBody, MessageBody};
use crate::error::grpc_code;

/// The largest answer message read (after inflating), as tonic's default and grpc-go's.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Messages up to this size are sent in one frame with their prefix (copied once, cheaply);
/// larger ones after a prefix frame of their own, uncopied.
const COPY_BELOW: usize = 16 * 1024;

/// Metadata names the gateway sets itself or that belong to the answer: a client's are dropped.
/// Names, not text: removing by text parses the name on every call.
const RESERVED: [HeaderName; 5] = [
    TE,
    CONTENT_TYPE,
    HeaderName::from_static("grpc-message"),
    HeaderName::from_static("grpc-message-type"),
    HeaderName::from_static("grpc-status"),
];
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");

/// What a call sends besides its message.
pub struct Head<'a> {
    /// `/package.Service/Method`.
    pub path: &'a PathAndQuery,
    /// The call's metadata, as headers (names checked, `-bin` values base64).
    pub metadata: MetadataMap,
    /// The time left, sent as `grpc-timeout`.
    pub timeout: Option<Duration>,
    /// The fetch's `traceparent`.
    pub traceparent: &'a str,
    /// Compress the message with gzip and accept gzip answers.
    pub gzip: bool,
}

/// The HTTP/2 request of one unary call of `message`.
pub fn request(head: Head<'_>, message: WireMessage) -> http::Request<CallBody> {
    let body = if head.gzip { gzip_framed(&message.to_bytes()) } else { framed(message) };
    let mut request = http::Request::new(CallBody::Message(body));
    *request.method_mut() = http::Method::POST;
    *request.version_mut() = http::Version::HTTP_2;
    *request.uri_mut() = http::Uri::from(head.path.clone());
    let mut headers = head.metadata.into_headers();
    for name in &RESERVED {
        headers.remove(name);
    }
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    if let Some(left) = head.timeout {
        headers.insert(GRPC_TIMEOUT, super::deadline::grpc_timeout_value(left));
    }
    if head.gzip {
        headers.insert(GRPC_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(GRPC_ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Ok(value) = HeaderValue::from_str(head.traceparent) {
        headers.insert(crate::telemetry::trace_context::TRACEPARENT, value);
    }
    *request.headers_mut() = headers;
    request
}

/// The 5-byte prefix: the compression flag and the length, big-endian.
fn prefix(compressed: bool, length: usize) -> [u8; 5] {
    let length = u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes();
    [u8::from(compressed), length[0], length[1], length[2], length[3]]
}

/// `message` uncompressed: with its prefix in one buffer when small, else after it (in its
/// pieces, if it is in pieces).
fn framed(message: WireMessage) -> MessageBody {
    let head = prefix(false, message.len());
    if message.len() < COPY_BELOW {
        let mut frame = BytesMut::with_capacity(5 + message.len());
        frame.extend_from_slice(&head);
        message.copy_to(&mut frame);
        return MessageBody::new(frame.freeze(), Bytes::new());
    }
    MessageBody::new(Bytes::copy_from_slice(&head), message)
}

/// `message` gzipped, with its prefix, in one buffer.
fn gzip_framed(message: &[u8]) -> MessageBody {
    let mut out = Vec::with_capacity(5 + message.len() / 2 + 32);
    out.extend_from_slice(&[0; 5]);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(message);
    let mut out = encoder.finish().unwrap_or_default();
    let head = prefix(true, out.len().saturating_sub(5));
    out[..5].copy_from_slice(&head);
    MessageBody::new(Bytes::from(out), Bytes::new())
}

/// Why an answer is not a valid unary gRPC answer: the backend's fault, a 502.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerFault {
    /// A message longer than the limit (declared, or once inflated).
    #[error("a message of {length} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The declared length.
        length: u64,
        /// The limit.
        limit: usize,
    },
    /// A compressed message that inflates past the limit.
    #[error("a compressed message that inflates past the {0}-byte limit")]
    InflatesTooFar(usize),
    /// A compression flag other than 0 or 1.
    #[error("compression flag {0} (only 0 and 1 are defined)")]
    BadFlag(u8),
    /// A compressed message in an encoding the gateway did not offer.
    #[error("a message compressed as `{0}`, which the gateway did not offer")]
    NotOffered(String),
    /// A gzip message that does not inflate.
    #[error("a gzip message that does not inflate: {0}")]
    NotGzip(String),
    /// The answer ended inside a message.
    #[error("the answer ended inside a message")]
    Truncated,
    /// More than the one message of a unary answer.
    #[error("more than one message in a unary answer")]
    SecondMessage,
    /// An OK status without a message.
    #[error("status OK without a message")]
    NoMessage,
    /// The answer ended without a status.
    #[error("no grpc-status trailer")]
    NoStatus,
}

/// The answer's message as its frames arrive.
#[derive(Debug)]
enum Reading {
    /// The prefix, `have` bytes of it so far.
    Prefix { bytes: [u8; 5], have: usize },
    /// The message, `left` bytes still to come.
    Message { compressed: bool, buffer: BytesMut, left: usize },
    /// The whole message.
    Done { compressed: bool, message: Bytes },
}

impl Reading {
    fn new() -> Self {
        Reading::Prefix { bytes: [0; 5], have: 0 }
    }

    /// Takes in one DATA frame.
    fn push(&mut self, mut data: &[u8]) -> Result<(), AnswerFault> {
        while !data.is_empty() {
            match self {
                Reading::Prefix { bytes, have } => {
                    let take = (5 - *have).min(data.len());
                    bytes[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    if *have == 5 {
                        *self = Reading::after_prefix(*bytes)?;
                    }
                }
                Reading::Message { compressed, buffer, left } => {
                    let take = (*left).min(data.len());
                    buffer.extend_from_slice(&data[..take]);
                    *left -= take;
                    data = &data[take..];
                    if *left == 0 {
                        let message = std::mem::take(buffer).freeze();
                        *self = Reading::Done { compressed: *compressed, message };
                    }
                }
                Reading::Done { .. } => return Err(AnswerFault::SecondMessage),
            }
        }
        Ok(())
    }

    fn after_prefix(bytes: [u8; 5]) -> Result<Reading, AnswerFault> {
        let compressed = match bytes[0] {
            0 => false,
            1 => true,
            flag => return Err(AnswerFault::BadFlag(flag)),
        };
        let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length > MAX_ANSWER_BYTES {
            return Err(AnswerFault::TooLarge { length: length as u64, limit: MAX_ANSWER_BYTES });
        }
        if length == 0 {
            return Ok(Reading::Done { compressed, message: Bytes::new() });
        }
        Ok(Reading::Message { compressed, buffer: BytesMut::with_capacity(length), left: length })
    }

    /// The message, once the answer has ended.
    fn finish(self, encoding: Option<&HeaderValue>, gzip_offered: bool) -> Result<Bytes, AnswerFault> {
        match self {
            Reading::Prefix { have: 0, .. } => Err(AnswerFault::NoMessage),
            Reading::Prefix { .. } | Reading::Message { .. } => Err(AnswerFault::Truncated),
            Reading::Done { compressed: false, message } => Ok(message),
            Reading::Done { compressed: true, message } => {
                let encoding = encoding.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                match encoding.as_deref() {
                    Some("gzip") if gzip_offered => inflate(&message),
                    other => Err(AnswerFault::NotOffered(other.unwrap_or("an encoding it did not name").to_owned())),
                }
            }
        }
    }
}

/// A gzip message inflated, within the limit.
fn inflate(message: &[u8]) -> Result<Bytes, AnswerFault> {
    let mut out = Vec::with_capacity((message.len() * 4).min(MAX_ANSWER_BYTES));
    let limit = MAX_ANSWER_BYTES as u64 + 1;
    flate2::read::GzDecoder::new(message)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| AnswerFault::NotGzip(e.to_string()))?;
    if out.len() > MAX_ANSWER_BYTES {
        return Err(AnswerFault::InflatesTooFar(MAX_ANSWER_BYTES));
    }
    Ok(Bytes::from(out))
}

/// The status a trailer block (or a trailers-only answer's headers) carries, if any: its code,
/// its percent-decoded message, its details.
fn status_of(headers: &HeaderMap) -> Option<(i32, String, Bytes)> {
    let code = headers.get("grpc-status")?;
    // A code that is not a number is UNKNOWN (PROTOCOL-HTTP2.md leaves no other reading).
    let code = std::str::from_utf8(code.as_bytes()).ok().and_then(|c| c.parse().ok()).unwrap_or(grpc_code::UNKNOWN);
    let message = headers.get("grpc-message").map(|m| percent_decoded(m.as_bytes())).unwrap_or_default();
    let details = headers
        .get("grpc-status-details-bin")
        .and_then(|d| BASE64_LENIENT.decode(d.as_bytes()).ok())
        .map(Bytes::from)
        .unwrap_or_default();
    Some((code, message, details))
}

/// Base64 with or without padding, as `-bin` metadata may come.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `grpc-message` decoded: `%XX` sequences become their bytes, anything else (a bad sequence
/// among it) is kept as it is, and the result is read as UTF-8.
fn percent_decoded(bytes: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) =
                (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A backend's non-OK status as the call's error.
fn status_error(code: i32, message: String, details: Bytes) -> UpstreamError {
    if code == grpc_code::DEADLINE_EXCEEDED {
        return UpstreamError::DeadlineExceeded;
    }
    UpstreamError::Status { code, message, details }
}

fn malformed(cluster: &str, fault: &AnswerFault) -> UpstreamError {
    UpstreamError::BadAnswer(format!("backend {cluster} sent a malformed answer: {fault}"))
}

/// Reads the answer to a unary call whose headers have arrived: its one message and its
/// status. Headers and trailers together are the reply's metadata.
pub async fn answer(
    cluster: &str,
    response: http::Response<hyper::body::Incoming>,
    gzip_offered: bool,
) -> Result<UnaryReply, UpstreamError> {
    if let Some((code, message)) = super::grpc_only::not_grpc(&response) {
        return Err(status_error(code, message, Bytes::new()));
    }
    let (parts, mut body) = response.into_parts();
    let mut headers = parts.headers;
    // A trailers-only answer: the status is in the headers, and there is no message.
    if let Some((code, message, details)) = status_of(&headers) {
        if code != grpc_code::OK {
            return Err(status_error(code, message, details));
        }
        return Err(malformed(cluster, &AnswerFault::NoMessage));
    }
    // gRPC content without a status, under an HTTP status that is not 200: the status it maps to.
    if parts.status != StatusCode::OK {
        let code = super::grpc_only::status_for_http(parts.status);
        let message = format!("the backend answered HTTP {} without a grpc-status", parts.status.as_u16());
        return Err(status_error(code, message, Bytes::new()));
    }
    let mut reading = Reading::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        // The backend answered, so it processed the call: a failure now is never "unsent".
        let frame = frame.map_err(|e| UpstreamError::unreachable(cluster, &e))?;
        match frame.into_data() {
            Ok(data) => reading.push(&data).map_err(|fault| malformed(cluster, &fault))?,
            Err(frame) => {
                if let Ok(block) = frame.into_trailers() {
                    trailers = Some(block);
                }
            }
        }
    }
    let Some(trailers) = trailers else { return Err(malformed(cluster, &AnswerFault::NoStatus)) };
    let Some((code, message, details)) = status_of(&trailers) else {
        return Err(malformed(cluster, &AnswerFault::NoStatus));
    };
    if code != grpc_code::OK {
        return Err(status_error(code, message, details));
    }
    let body =
        reading.finish(headers.get("grpc-encoding"), gzip_offered).map_err(|fault| malformed(cluster, &fault))?;
    headers.extend(trailers);
    Ok(UnaryReply { body, metadata: MetadataMap::from_headers(headers) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    fn gzipped(message: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(message).expect("write");
        encoder.finish().expect("gzip")
    }

    /// The answer's DATA, cut into frames at every `step` bytes, read as a unary answer.
    fn read(data: &[u8], step: usize, encoding: Option<&str>, gzip_offered: bool) -> Result<Bytes, AnswerFault> {
        let mut reading = Reading::new();
        for chunk in data.chunks(step.max(1)) {
            reading.push(chunk)?;
        }
        let encoding = encoding.map(|e| HeaderValue::from_str(e).expect("value"));
        reading.finish(encoding.as_ref(), gzip_offered)
    }

    #[test]
    fn answers_are_read_by_the_framing_rules_however_the_frames_fall() {
        let long = vec![7u8; 40_000];
        let mut four_gib = vec![0, 0xff, 0xff, 0xff, 0xff];
        four_gib.extend_from_slice(&[0; 8]);
        let whole = frame(0, b"hello");
        let two = [frame(0, b"a"), frame(0, b"b")].concat();
        let bomb = frame(1, &gzipped(&vec![0u8; MAX_ANSWER_BYTES + 1]));
        type Row<'a> = (&'a str, Vec<u8>, Option<&'a str>, bool, Result<Bytes, AnswerFault>);
        let table: Vec<Row> = vec![
            ("a message", whole.clone(), None, false, Ok(Bytes::from_static(b"hello"))),
            ("an empty message", frame(0, b""), None, false, Ok(Bytes::new())),
            ("a long message", frame(0, &long), None, false, Ok(Bytes::from(long.clone()))),
            ("gzip, offered", frame(1, &gzipped(b"hello")), Some("gzip"), true, Ok(Bytes::from_static(b"hello"))),
            (
                "gzip, not offered",
                frame(1, &gzipped(b"hello")),
                Some("gzip"),
                false,
                Err(AnswerFault::NotOffered("gzip".into())),
            ),
            (
                "compressed, no encoding named",
                frame(1, b"x"),
                None,
                true,
                Err(AnswerFault::NotOffered("an encoding it did not name".into())),
            ),
            ("flag 1 on garbage", frame(1, b"not gzip"), Some("gzip"), true, Err(AnswerFault::NotGzip(String::new()))),
            ("a gzip bomb", bomb, Some("gzip"), true, Err(AnswerFault::InflatesTooFar(MAX_ANSWER_BYTES))),
            ("flag 2", frame(2, b"x"), None, false, Err(AnswerFault::BadFlag(2))),
            (
                "4 GiB declared",
                four_gib,
                None,
                false,
                Err(AnswerFault::TooLarge { length: u64::from(u32::MAX), limit: MAX_ANSWER_BYTES }),
            ),
            ("nothing", Vec::new(), None, false, Err(AnswerFault::NoMessage)),
            ("half a prefix", whole[..3].to_vec(), None, false, Err(AnswerFault::Truncated)),
            ("half a message", whole[..7].to_vec(), None, false, Err(AnswerFault::Truncated)),
            ("two messages", two, None, false, Err(AnswerFault::SecondMessage)),
        ];
        for (what, data, encoding, offered, want) in table {
            for step in [1, 3, 5, 6, 4096, usize::MAX] {
                let got = read(&data, step.min(data.len().max(1)), encoding, offered);
                match (&got, &want) {
                    // The inflater's own words vary; the kind is what counts.
                    (Err(AnswerFault::NotGzip(_)), Err(AnswerFault::NotGzip(_))) => {}
                    _ => assert_eq!(got, want, "{what}, frames of {step}"),
                }
            }
        }
    }

    #[test]
    fn statuses_are_read_as_the_spec_writes_them() {
        let block = |pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_str(value).expect("value"));
            }
            headers
        };
        type Row<'a> = (&'a [(&'static str, &'a str)], Option<(i32, &'a str, &'a [u8])>);
        let table: Vec<Row> = vec![
            (&[], None),
            (&[("grpc-status", "0")], Some((0, "", b""))),
            (&[("grpc-status", "5"), ("grpc-message", "no such book")], Some((5, "no such book", b""))),
            (&[("grpc-status", "3"), ("grpc-message", "caf%C3%A9 100%25")], Some((3, "café 100%", b""))),
            (&[("grpc-status", "3"), ("grpc-message", "bad %zz and %4")], Some((3, "bad %zz and %4", b""))),
            (&[("grpc-status", "x")], Some((grpc_code::UNKNOWN, "", b""))),
            (&[("grpc-status", "9"), ("grpc-status-details-bin", "AQID")], Some((9, "", &[1, 2, 3]))),
            (&[("grpc-status", "9"), ("grpc-status-details-bin", "AQI")], Some((9, "", &[1, 2]))),
            (&[("grpc-status", "9"), ("grpc-status-details-bin", "AQI=")], Some((9, "", &[1, 2]))),
            (&[("grpc-status", "9"), ("grpc-status-details-bin", "!!")], Some((9, "", b""))),
        ];
        for (pairs, want) in table {
            let got = status_of(&block(pairs));
            let want = want.map(|(code, message, details)| (code, message.to_owned(), Bytes::copy_from_slice(details)));
            assert_eq!(got, want, "{pairs:?}");
        }
    }

    #[test]
    fn requests_carry_the_grpc_headers_and_the_message_uncopied_when_large() {
        let path = PathAndQuery::from_static("/catalog.v1.Catalog/GetBook");
        let mut metadata = MetadataMap::new();
        metadata.insert("x-tenant", "acme".parse().expect("value"));
        metadata.insert("content-type", "text/plain".parse().expect("value"));
        metadata.insert("grpc-status", "0".parse().expect("value"));
        let large = Bytes::from(vec![1u8; COPY_BELOW]);
        let in_pieces = |pieces: &[&Bytes]| WireMessage::from_pieces(pieces.iter().map(|p| (*p).clone()).collect());
        let (a, b) = (Bytes::from_static(b"sm"), Bytes::from_static(b"all"));
        let rows = [
            (false, WireMessage::from(Bytes::from_static(b"small"))),
            (false, WireMessage::from(large.clone())),
            (true, WireMessage::from(large.clone())),
            (false, in_pieces(&[&a, &b])),
            (false, in_pieces(&[&a, &large, &b])),
            (true, in_pieces(&[&a, &large, &b])),
        ];
        for (gzip, message) in rows {
            let head = Head {
                path: &path,
                metadata: metadata.clone(),
                timeout: Some(Duration::from_millis(250)),
                traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                gzip,
            };
            let request = request(head, message.clone());
            let headers = request.headers();
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(request.uri().path(), "/catalog.v1.Catalog/GetBook");
            assert_eq!(headers["te"], "trailers");
            assert_eq!(headers["content-type"], "application/grpc", "a client's content-type is not sent");
            assert!(headers.get("grpc-status").is_none(), "nor its grpc-status");
            assert_eq!(headers["x-tenant"], "acme");
            assert_eq!(headers["grpc-timeout"], "250000u");
            assert!(headers.contains_key("traceparent"));
            assert_eq!(headers.get("grpc-encoding").is_some(), gzip);
            let CallBody::Message(body) = request.into_body() else { panic!("a message body") };
            let frames = body.into_frames();
            let sent: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
            let read = read(&sent, usize::MAX, gzip.then_some("gzip"), gzip).expect("reads back");
            assert_eq!(read, message.to_bytes(), "gzip {gzip}");
            if !gzip && message.len() >= COPY_BELOW {
                let sent_as_is: Vec<*const u8> = frames[1..].iter().map(|f| f.as_ptr()).collect();
                let pieces: Vec<*const u8> = message.pieces().iter().map(|p| p.as_ptr()).collect();
                assert_eq!(sent_as_is, pieces, "a large message is sent as it is, piece by piece");
            } else {
                assert_eq!(frames.len(), 1, "a small or compressed message goes in one frame with its prefix");
            }
        }
    }
}
