//! gRPC length-prefixed framing (tonic's decoder) feeding our dynamic message decoder, as a
//! backend's answer stream is read: the first byte picks the message type, the second the
//! chunk size the body arrives in, and the rest is the body. Frames claiming more than the
//! 4 MiB limit (up to 4 GiB) are refused before anything that size is allocated; every
//! message is decoded or refused with a status; the stream ends; nothing panics.

use std::sync::OnceLock;

use bytes::Bytes;
use switchyard::upstream::grpc_codec::DynamicCodec;
use tonic::codec::Codec;

const MAX_MESSAGE: usize = 4 * 1024 * 1024;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"))
}

pub(crate) fn run(data: &[u8]) {
    let [pick, chunk, body @ ..] = data else { return };
    let pool = super::demo_pool();
    let mut messages: Vec<_> = pool.all_messages().collect();
    messages.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    let descriptor = messages[usize::from(*pick) % messages.len()].clone();
    let chunk = usize::from(*chunk % 32) + 1;
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
        body.chunks(chunk).map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
    let stream = futures_util::stream::iter(chunks);
    let body = http_body_util::StreamBody::new(stream);
    let mut codec = DynamicCodec::new(descriptor);
    let mut streaming = tonic::codec::Streaming::new_request(codec.decoder(), body, None, Some(MAX_MESSAGE));
    runtime().block_on(async {
        // A frame is at least 5 bytes, so the stream holds at most this many messages.
        for _ in 0..=body_len(data) / 5 + 1 {
            match streaming.message().await {
                Ok(Some(_message)) => {}
                Ok(None) | Err(_) => return,
            }
        }
        panic!("the stream did not end");
    });
}

fn body_len(data: &[u8]) -> usize {
    data.len().saturating_sub(2)
}
