//! Streaming fetches: server-streaming, client-streaming and bidi calls. Request messages are
//! encoded as the client sends them; a client message that cannot be read abandons the call
//! (the backend sees a cancel, never a half-close that would look like a complete input).
//! Response messages are decoded as they arrive; dropping the output stream cancels the call.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio::sync::oneshot;

use super::ExecuteError;
use crate::operation::{CallInput, InputError};
use crate::plan::{Fetch, FetchCall};
use crate::upstream::Upstreams;
use crate::upstream::grpc_codec::Outgoing;

/// Decoded response messages; ends with an error if the call failed.
pub type OutputStream = BoxStream<'static, Result<DynamicMessage, ExecuteError>>;

/// Opens a streaming fetch; resolves once the backend answered with headers.
pub async fn execute_streaming_fetch(
    fetch: Fetch,
    upstreams: &Upstreams,
) -> Result<(http::HeaderMap, OutputStream), ExecuteError> {
    let cluster = fetch.cluster.as_deref().ok_or_else(|| ExecuteError::NoBackend { name: fetch.describe() })?;
    let client = upstreams.grpc(cluster)?.clone();
    let FetchCall::Grpc { method, input, .. } = fetch.call else {
        return Err(ExecuteError::Shape("a streaming call is a gRPC method call".into()));
    };
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let (bad_input, bad_input_seen) = oneshot::channel::<InputError>();
    let requests: BoxStream<'static, Outgoing> = match input {
        CallInput::Message(_) | CallInput::Encoded(_) => {
            let request = input.into_encoded().expect("one message").to_bytes();
            let opened = client.server_streaming(&path, request, &fetch.metadata, fetch.timeout).await?;
            let messages = decode_messages(opened.messages, method.output(), None);
            return Ok((opened.metadata.into_headers(), messages));
        }
        CallInput::Stream(input) => Box::pin(stream::unfold(Some((input, bad_input)), |state| async move {
            let (mut input, signal) = state?;
            match input.next().await {
                Some(Ok(message)) => {
                    Some((Outgoing::Message(Bytes::from(message.encode_to_vec())), Some((input, signal))))
                }
                Some(Err(error)) => {
                    let _ = signal.send(error);
                    // Not an end, which would half-close and make the truncated input look
                    // complete to the backend: an abort, which resets the stream.
                    Some((Outgoing::Abort, None))
                }
                None => None,
            }
        })),
        CallInput::Arguments(_) => return Err(ExecuteError::Shape("a gRPC call takes request messages".into())),
    };
    // The signal is polled until it resolves once (an error, or the input's end dropping the
    // sender) and never after: a oneshot must not be polled past completion.
    let mut bad_input_seen = Some(Box::pin(bad_input_seen));
    let open = client.streaming(&path, requests, &fetch.metadata, fetch.timeout);
    tokio::pin!(open);
    let opened = loop {
        match bad_input_seen.as_mut() {
            Some(signal) => tokio::select! {
                biased;
                seen = signal => match seen {
                    Ok(error) => return Err(ExecuteError::Input(error)),
                    Err(_) => bad_input_seen = None,
                },
                opened = &mut open => break opened?,
            },
            None => break open.await?,
        }
    };
    let output = method.output();
    let messages = decode_messages(opened.messages, output, bad_input_seen);
    Ok((opened.metadata.into_headers(), messages))
}

fn decode_messages(
    messages: BoxStream<'static, Result<Bytes, crate::upstream::UpstreamError>>,
    output: MessageDescriptor,
    bad_input: Option<std::pin::Pin<Box<oneshot::Receiver<InputError>>>>,
) -> OutputStream {
    let state = (messages, bad_input, output);
    Box::pin(stream::unfold(Some(state), |state| async move {
        let (mut messages, mut bad_input, output) = state?;
        let next = match bad_input.as_mut() {
            Some(signal) => tokio::select! {
                biased;
                seen = signal => match seen {
                    Ok(error) => return Some((Err(ExecuteError::Input(error)), None)),
                    Err(_) => {
                        bad_input = None;
                        messages.next().await
                    }
                },
                item = messages.next() => item,
            },
            None => messages.next().await,
        };
        match next? {
            Ok(bytes) => match DynamicMessage::decode(output.clone(), bytes) {
                Ok(message) => Some((Ok(message), Some((messages, bad_input, output)))),
                Err(_) => {
                    let error = ExecuteError::Undecodable { type_name: output.full_name().to_owned() };
                    Some((Err(error), None))
                }
            },
            Err(error) => Some((Err(ExecuteError::Upstream(error)), None)),
        }
    }))
}
