//! Streaming over REST. Server-streaming answers are written message by message as they
//! arrive: NDJSON by default, Server-Sent Events for `Accept: text/event-stream`, or one JSON
//! array when configured; an error after the headers went out is the last item
//! (`{"error": <google.rpc.Status>}`). Client-streaming requests are read as NDJSON, one request
//! message per line, bound like a unary body. Dropping the response cancels the backend call.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};
use serde_json::json;

use super::encoding::is_too_large;
use crate::config::StreamFormat;
use crate::error::ErrorCode;
use crate::execute::{ExecuteError, OutputStream};
use crate::operation::{InputError, InputStream};
use crate::transcode::binding::{HttpParts, bind_request};
use crate::transcode::json::{JsonOptions, message_to_json};
use crate::transcode::routes::RestRoute;

/// How a server stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Ndjson,
    JsonArray,
    ServerSentEvents,
}

impl Framing {
    /// SSE when the client accepts it, else the configured format.
    pub(crate) fn choose(accept: Option<&HeaderValue>, configured: StreamFormat) -> Framing {
        let wants_sse = accept
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.split(';').next().unwrap_or("").trim() == "text/event-stream"));
        match (wants_sse, configured) {
            (true, _) => Framing::ServerSentEvents,
            (false, StreamFormat::Ndjson) => Framing::Ndjson,
            (false, StreamFormat::JsonArray) => Framing::JsonArray,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Framing::Ndjson => "application/x-ndjson",
            Framing::JsonArray => "application/json",
            Framing::ServerSentEvents => "text/event-stream",
        }
    }
}

enum Position {
    First,
    Middle,
    Done,
}

/// A 200 response whose body is `messages`, framed.
/// With `result_wrapper` (the grpc-gateway profile) each message is written as
/// `{"result": message}`.
pub(crate) fn stream_response(
    messages: OutputStream,
    framing: Framing,
    options: JsonOptions,
    result_wrapper: bool,
) -> Response {
    let frames = stream::unfold((messages, Position::First), move |(mut messages, position)| {
        let options = options.clone();
        async move {
            if matches!(position, Position::Done) {
                return None;
            }
            let first = matches!(position, Position::First);
            // A message with no JSON form ends the stream with its error, like a failed call.
            let next = messages
                .next()
                .await
                .map(|item| item.and_then(|message| message_to_json(&message, &options).map_err(ExecuteError::from)));
            let frame = match next {
                Some(Ok(json)) => {
                    let json = if result_wrapper { wrap_result(&json) } else { json };
                    frame_message(&json, framing, first)
                }
                Some(Err(error)) => {
                    let mut frame = frame_error(&error, framing, first);
                    if framing == Framing::JsonArray {
                        frame.extend_from_slice(b"]");
                    }
                    return Some((Ok::<Bytes, Infallible>(frame.freeze()), (messages, Position::Done)));
                }
                None => match (framing, first) {
                    (Framing::JsonArray, true) => BytesMut::from(&b"[]"[..]),
                    (Framing::JsonArray, false) => BytesMut::from(&b"]"[..]),
                    _ => return None,
                },
            };
            let next =
                if frame.as_ref() == b"]" || frame.as_ref() == b"[]" { Position::Done } else { Position::Middle };
            Some((Ok(frame.freeze()), (messages, next)))
        }
    });
    let mut response = Response::new(Body::from_stream(frames));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(framing.content_type()));
    if framing == Framing::ServerSentEvents {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

fn wrap_result(json: &[u8]) -> Vec<u8> {
    let mut wrapped = Vec::with_capacity(json.len() + 11);
    wrapped.extend_from_slice(b"{\"result\":");
    wrapped.extend_from_slice(json);
    wrapped.push(b'}');
    wrapped
}

fn frame_message(json: &[u8], framing: Framing, first: bool) -> BytesMut {
    let mut frame = BytesMut::with_capacity(json.len() + 8);
    match framing {
        Framing::Ndjson => {
            frame.extend_from_slice(json);
            frame.extend_from_slice(b"\n");
        }
        Framing::JsonArray => {
            frame.extend_from_slice(if first { b"[" } else { b"," });
            frame.extend_from_slice(json);
        }
        Framing::ServerSentEvents => {
            frame.extend_from_slice(b"data: ");
            frame.extend_from_slice(json);
            frame.extend_from_slice(b"\n\n");
        }
    }
    frame
}

fn frame_error(error: &ExecuteError, framing: Framing, first: bool) -> BytesMut {
    let code = error.code();
    let status = json!({ "code": code.grpc_code(), "message": error.to_string(), "details": [] });
    let body = serde_json::to_vec(&json!({ "error": status })).expect("JSON values serialize");
    match framing {
        Framing::ServerSentEvents => {
            let mut frame = BytesMut::from(&b"event: error\ndata: "[..]);
            frame.extend_from_slice(&serde_json::to_vec(&status).expect("JSON values serialize"));
            frame.extend_from_slice(b"\n\n");
            frame
        }
        _ => frame_message(&body, framing, first),
    }
}

/// Reads an NDJSON request body as a stream of request messages for `route`, each line bound
/// with the path variables and query; a line over `max_line` bytes or not a valid message ends
/// the stream with an error naming the line.
pub(crate) fn ndjson_requests(
    body: Body,
    route: RestRoute,
    variables: Vec<String>,
    query: Option<String>,
    options: JsonOptions,
    max_line: usize,
) -> InputStream {
    struct Reader {
        chunks: axum::body::BodyDataStream,
        buffer: BytesMut,
        line: usize,
        finished: bool,
    }
    let reader = Reader { chunks: body.into_data_stream(), buffer: BytesMut::new(), line: 0, finished: false };
    Box::pin(stream::unfold(Some(reader), move |state| {
        let route = route.clone();
        let variables = variables.clone();
        let query = query.clone();
        let options = options.clone();
        async move {
            let mut reader = state?;
            loop {
                if let Some(end) = reader.buffer.iter().position(|b| *b == b'\n') {
                    let line = reader.buffer.split_to(end + 1);
                    reader.line += 1;
                    let text = &line[..end];
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let parts = HttpParts {
                        variables: &variables,
                        query: query.as_deref(),
                        body: text,
                        ..HttpParts::default()
                    };
                    let item = bind_request(&route, parts, &options)
                        .map_err(|e| InputError::invalid(format!("line {}: {e}", reader.line)));
                    let next = if item.is_ok() { Some(reader) } else { None };
                    return Some((item, next));
                }
                if reader.buffer.len() > max_line {
                    let message =
                        format!("line {}: longer than {max_line} bytes (rest.max_body_bytes)", reader.line + 1);
                    return Some((Err(InputError { code: ErrorCode::PayloadTooLarge, message }), None));
                }
                if reader.finished {
                    if reader.buffer.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    reader.buffer.extend_from_slice(b"\n");
                    continue;
                }
                match reader.chunks.next().await {
                    Some(Ok(chunk)) => reader.buffer.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        let code =
                            if is_too_large(&e) { ErrorCode::PayloadTooLarge } else { ErrorCode::InvalidArgument };
                        let message =
                            if is_too_large(&e) { e.to_string() } else { format!("reading the request body: {e}") };
                        return Some((Err(InputError { code, message }), None));
                    }
                    None => reader.finished = true,
                }
            }
        }
    }))
}
