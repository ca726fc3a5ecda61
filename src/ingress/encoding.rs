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

/// The whole request body, at most `limit` bytes (else the error `too_large_message` reads as
/// a 413). A body in one chunk is kept as it is; one in several is copied into a single buffer
/// sized once by its declared length, so a large body is held once plus a chunk, where
/// collecting the chunks and then joining them held it twice. The declared length is the
/// client's word, capped at `limit` (and the listener caps requests in flight).
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, axum::Error> {
    use http_body_util::BodyExt;
    let declared = http_body::Body::size_hint(&body).exact().map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut body = http_body_util::Limited::new(body, limit);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.map_err(axum::Error::new)?.into_data() else { continue };
        if let Some(joined) = joined.as_mut() {
            joined.extend_from_slice(&chunk);
        } else if let Some(earlier) = first.take() {
            let mut buffer = bytes::BytesMut::with_capacity(declared.min(limit).max(earlier.len() + chunk.len()));
            buffer.extend_from_slice(&earlier);
            buffer.extend_from_slice(&chunk);
            joined = Some(buffer);
        } else {
            first = Some(chunk);
        }
    }
    Ok(joined.map(bytes::BytesMut::freeze).or(first).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `chunks`, with `declared` as its exact size hint when given.
    fn body(chunks: &[&'static [u8]], declared: Option<u64>) -> Body {
        let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
            chunks.iter().map(|c| Ok(http_body::Frame::data(Bytes::from_static(c)))).collect();
        let stream = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        match declared {
            Some(n) => Body::new(Sized(stream, n)),
            None => Body::new(stream),
        }
    }

    /// A body that declares its exact length, as hyper's does from Content-Length.
    struct Sized<B>(B, u64);

    impl<B: http_body::Body + Unpin> http_body::Body for Sized<B> {
        type Data = B::Data;
        type Error = B::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
            Pin::new(&mut self.0).poll_frame(cx)
        }
        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.1)
        }
    }

    #[tokio::test]
    async fn a_body_is_read_whole_within_its_limit() {
        // (chunks, declared length, limit, the bytes read or None for a 413)
        type Row = (&'static [&'static [u8]], Option<u64>, usize, Option<&'static [u8]>);
        let table: &[Row] = &[
            (&[], None, 10, Some(b"")),
            (&[b"abc"], Some(3), 10, Some(b"abc")),
            (&[b"ab", b"cd", b"e"], Some(5), 10, Some(b"abcde")),
            (&[b"ab", b"cd", b"e"], None, 10, Some(b"abcde")),
            // A declared length that undersells or oversells the body changes nothing read.
            (&[b"ab", b"cd", b"e"], Some(2), 10, Some(b"abcde")),
            (&[b"ab", b"cd"], Some(1_000_000), 10, Some(b"abcd")),
            (&[b"abcde", b"fghij"], None, 10, Some(b"abcdefghij")),
            (&[b"abcde", b"fghij", b"k"], None, 10, None),
            (&[b"abcdefghijk"], Some(11), 10, None),
        ];
        for (chunks, declared, limit, expected) in table {
            let read = read_body(body(chunks, *declared), *limit).await;
            match (read, expected) {
                (Ok(bytes), Some(expected)) => assert_eq!(&bytes[..], *expected, "{chunks:?}"),
                (Err(error), None) => {
                    assert!(too_large_message(&error, *limit).is_some(), "{chunks:?}: {error}");
                }
                (read, _) => panic!("{chunks:?} {declared:?}: {read:?}"),
            }
        }
    }
}
