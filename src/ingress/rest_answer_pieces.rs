//! A large REST answer's JSON, written from its wire bytes while it is sent rather than whole
//! first, so a request in flight holds the answer's wire bytes and a few pieces of its JSON,
//! not both forms whole (issue 12's memory per in-flight request). The JSON is counted first,
//! by a pass that writes and drops it, so the answer has its `Content-Length` (and can still be
//! compressed) and an answer the direct writer leaves to DynamicMessage is known before any of
//! it goes out. The writer runs on a blocking thread, one piece ahead of the socket: it cannot
//! stop half-way through a message to wait for the client, so it waits on a channel instead.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{Semaphore, mpsc};

use crate::transcode::json::JsonOptions;
use crate::transcode::json_wire::JsonCodec;

/// Answers with at least this many wire bytes are written while they are sent. Below it a
/// whole JSON buffer costs less than the counting pass and the thread hop.
pub(crate) const PIECES_FROM: usize = 256 * 1024;

/// The JSON handed to the socket at a time.
const PIECE: usize = 32 * 1024;

/// Answers written in pieces at once, each holding a blocking thread while its client reads.
/// Past this many, an answer is written whole (more memory, no thread): slow readers of large
/// answers must not take the runtime's blocking threads from everything else.
const WRITERS: usize = 32;

/// The answer `wire` (of the codec's type) as a JSON body written while it is sent, when it is
/// large enough, the direct writer writes it and a writer is free; None otherwise.
pub(crate) fn json_in_pieces(codec: &Arc<JsonCodec>, wire: &Bytes, options: &JsonOptions) -> Option<Body> {
    static FREE: std::sync::LazyLock<Arc<Semaphore>> = std::sync::LazyLock::new(|| Arc::new(Semaphore::new(WRITERS)));
    json_in_pieces_with(&FREE, codec, wire, options)
}

/// [`json_in_pieces`] with the writers `free`.
fn json_in_pieces_with(
    free: &Arc<Semaphore>,
    codec: &Arc<JsonCodec>,
    wire: &Bytes,
    options: &JsonOptions,
) -> Option<Body> {
    if wire.len() < PIECES_FROM {
        return None;
    }
    let writer = free.clone().try_acquire_owned().ok()?;
    let length = codec.direct_len(wire, options)?;
    let (pieces, receiver) = mpsc::channel(1);
    let (codec, wire, options) = (codec.clone(), wire.clone(), options.clone());
    tokio::task::spawn_blocking(move || {
        let _writer = writer;
        // Stops when the client goes (the receiver is dropped with the answer).
        codec.write_in_pieces(&wire, &options, PIECE, &mut |piece| pieces.blocking_send(Bytes::from(piece)).is_ok())
    });
    Some(Body::new(Pieces { receiver, remaining: length as u64 }))
}

/// The body: pieces as the writer hands them on, exactly the counted length of them.
struct Pieces {
    receiver: mpsc::Receiver<Bytes>,
    remaining: u64,
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let Some(piece) = std::task::ready!(self.receiver.poll_recv(cx)) else {
            // The writer wrote less than it counted: the counting pass and it disagree.
            return Poll::Ready(Some(Err(std::io::Error::other("the answer's JSON ended before its counted length"))));
        };
        let Some(remaining) = self.remaining.checked_sub(piece.len() as u64) else {
            return Poll::Ready(Some(Err(std::io::Error::other("the answer's JSON ran past its counted length"))));
        };
        self.remaining = remaining;
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn codec_and_wire(title: &str) -> (Arc<JsonCodec>, Bytes) {
        let all = crate::transcode::json::mapping_tests::descriptor();
        let message = crate::transcode::json::json_to_message(
            all.clone(),
            serde_json::json!({ "s": title, "nums": ["1", "-2"] }).to_string().as_bytes(),
            &JsonOptions::default(),
        )
        .expect("reads");
        (Arc::new(JsonCodec::new(all)), Bytes::from(message.encode_to_vec()))
    }

    /// A large answer's body has the exact length of the whole JSON and is that JSON, in more
    /// than one piece; a small one is left to the whole writer.
    #[tokio::test]
    async fn a_large_answer_is_sent_in_pieces_of_the_whole_json() {
        let options = JsonOptions::default();
        let (codec, small) = codec_and_wire("short");
        assert!(json_in_pieces(&codec, &small, &options).is_none());

        let (codec, wire) = codec_and_wire(&"long \"title\" é\u{1}".repeat(PIECES_FROM / 8));
        let whole = codec.to_json(&wire, &options).expect("writes");
        let mut body = json_in_pieces(&codec, &wire, &options).expect("large enough");
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(whole.len() as u64));
        let mut joined = Vec::new();
        let mut pieces = 0;
        while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
            let piece = frame.expect("a piece").into_data().expect("data");
            assert!(piece.len() <= PIECE * 7 + 64, "a piece of {}", piece.len());
            joined.extend_from_slice(&piece);
            pieces += 1;
        }
        assert!(pieces > 1, "one piece");
        assert_eq!(joined, whole);
        assert!(http_body::Body::is_end_stream(&body));
    }

    /// Past the free writers an answer is written whole; a writer is free again once its
    /// answer is sent, or its client gone.
    #[tokio::test]
    async fn answers_past_the_free_writers_are_written_whole() {
        let options = JsonOptions::default();
        let (codec, wire) = codec_and_wire(&"x".repeat(PIECES_FROM));
        let free = Arc::new(Semaphore::new(2));
        let first = json_in_pieces_with(&free, &codec, &wire, &options).expect("a writer is free");
        let second = json_in_pieces_with(&free, &codec, &wire, &options).expect("a writer is free");
        assert!(json_in_pieces_with(&free, &codec, &wire, &options).is_none(), "none is free");
        let sent = http_body_util::BodyExt::collect(first).await.expect("sent").to_bytes();
        assert_eq!(sent, codec.to_json(&wire, &options).expect("writes"));
        drop(second);
        // The writers give their places back as their threads end.
        let hang = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while free.available_permits() < 2 {
            assert!(std::time::Instant::now() < hang, "the writers never gave their places back");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(json_in_pieces_with(&free, &codec, &wire, &options).is_some());
    }

    /// An answer the direct writer leaves to DynamicMessage is never sent in pieces.
    #[tokio::test]
    async fn an_answer_the_writer_steps_aside_from_is_written_whole() {
        let all = crate::transcode::json::mapping_tests::descriptor();
        // A string field (7) that is not UTF-8: the direct writer steps aside.
        let mut wire = Vec::new();
        prost::encoding::bytes::encode(7, &vec![0xff; PIECES_FROM], &mut wire);
        let codec = Arc::new(JsonCodec::new(all));
        assert!(json_in_pieces(&codec, &Bytes::from(wire), &JsonOptions::default()).is_none());
    }
}
