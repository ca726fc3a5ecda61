//! HTTP content codings for REST and GraphQL. Request bodies with `Content-Encoding` gzip, br or zstd are
//! decoded as they stream in, with the size limit checked on the compressed bytes and again on
//! the decoded bytes, so a decompression bomb is a 413 and never a large allocation. (Responses
//! are compressed in `compress`.)

use std::io;
use std::pin::Pin;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::HeaderValue;
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

/// A body that grew past its limit while it was read (compressed or decoded).
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than {limit} bytes {stage} (rest.max_body_bytes)")]
pub(crate) struct BodyTooLarge {
    pub(crate) limit: usize,
    stage: &'static str,
}

/// Why a request's content coding cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("Content-Encoding `{0}` is not supported; send identity, gzip, br or zstd")]
pub(crate) struct UnsupportedEncoding(String);

/// The body decoded per `Content-Encoding`, each stage bounded by `limit` bytes.
pub(crate) fn decode_request_body(
    body: Body,
    encoding: Option<&HeaderValue>,
    limit: usize,
) -> Result<Body, UnsupportedEncoding> {
    let coding = encoding.and_then(|v| v.to_str().ok()).map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default();
    if coding.is_empty() || coding == "identity" {
        return Ok(body);
    }
    let compressed = limited(body.into_data_stream().map_err(io::Error::other), limit, "compressed");
    let reader = StreamReader::new(compressed);
    let decoded: Pin<Box<dyn AsyncRead + Send>> = match coding.as_str() {
        "gzip" | "x-gzip" => Box::pin(GzipDecoder::new(reader)),
        "br" => Box::pin(BrotliDecoder::new(reader)),
        "zstd" => Box::pin(ZstdDecoder::new(reader)),
        other => return Err(UnsupportedEncoding(other.to_owned())),
    };
    let decoded = limited(ReaderStream::new(decoded), limit, "decoded");
    Ok(Body::from_stream(decoded))
}

/// Fails the stream with `BodyTooLarge` once more than `limit` bytes went through.
fn limited<S>(stream: S, limit: usize, stage: &'static str) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let mut seen = 0usize;
    stream.map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit { Err(io::Error::other(BodyTooLarge { limit, stage })) } else { Ok(chunk) }
    })
}

/// True if a body-read error is a size-limit refusal (413) rather than a broken body (400).
pub(crate) fn is_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    too_large_message(error, 0).is_some()
}

/// The 413 message for a body-read error that is a size-limit refusal: naming the stage (the
/// compressed or the decoded size) when the body had a content coding, else the `limit` alone.
/// None for a broken body (a 400).
pub(crate) fn too_large_message(error: &(dyn std::error::Error + 'static), limit: usize) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        // io::Error hides a custom error from `source()`; look inside it explicitly.
        let inner =
            e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()).map(|inner| inner as &dyn std::error::Error);
        if let Some(too_large) =
            inner.and_then(|i| i.downcast_ref::<BodyTooLarge>()).or(e.downcast_ref::<BodyTooLarge>())
        {
            return Some(too_large.to_string());
        }
        if e.to_string().starts_with("length limit exceeded") {
            return Some(format!("the request body is larger than {limit} bytes (rest.max_body_bytes)"));
        }
        current = e.source();
    }
    None
}
