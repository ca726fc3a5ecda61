//! Bidirectional streaming over a WebSocket on the method's REST route (a GET with
//! `Upgrade: websocket`): each text frame is one whole request message, and the fields the
//! upgrade URL binds (path variables, query) are merged over it, so they win; each response
//! message is one text frame. The
//! client's Close half-closes the request stream, so the backend sees a complete input. A
//! frame that is not a valid message closes the socket with 1007 and cancels the call; a
//! backend error is sent as `{"error": <google.rpc.Status>}` and the socket closes with 1011.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt};
use prost::Message as _;
use serde_json::json;

use crate::gateway::{GatewayError, Served, execute_streaming_operation};
use crate::operation::{CallInput, InputError, InputStream, Operation, RequestContext, RootCall, Selection};
use crate::transcode::json::{JsonError, JsonOptions, json_to_message, message_to_json};
use crate::transcode::routes::RestRoute;

/// What a bidi session needs from the upgrade request.
pub(crate) struct BidiSession {
    pub(crate) route: RestRoute,
    /// The fields bound by the upgrade URL, encoded, merged over every frame's message.
    pub(crate) url_fields: Vec<u8>,
    pub(crate) options: JsonOptions,
    pub(crate) context: RequestContext,
}

/// Runs one bidi call over `socket` until either side ends it.
pub(crate) async fn run_bidi(served: std::sync::Arc<Served>, socket: WebSocket, session: BidiSession) {
    let (mut sender, receiver) = socket.split();
    let BidiSession { route, url_fields, options, context } = session;
    let input: InputStream = {
        let descriptor = route.method.input();
        let options = options.clone();
        Box::pin(stream::unfold(Some((receiver, 0usize)), move |state| {
            let descriptor = descriptor.clone();
            let options = options.clone();
            let url_fields = url_fields.clone();
            async move {
                let (mut receiver, mut frame) = state?;
                loop {
                    let message = match receiver.next().await {
                        None | Some(Ok(Message::Close(_))) => return None,
                        Some(Err(error)) => {
                            return Some((Err(InputError::invalid(format!("the WebSocket failed: {error}"))), None));
                        }
                        Some(Ok(message)) => message,
                    };
                    frame += 1;
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Binary(_) => {
                            let message = format!("frame {frame}: send JSON text frames, not binary");
                            return Some((Err(InputError::invalid(message)), None));
                        }
                        _ => continue,
                    };
                    let bound = json_to_message(descriptor, text.as_bytes(), &options).and_then(|mut request| {
                        request.merge(url_fields.as_slice()).map_err(|e| JsonError::Body(e.to_string()))?;
                        Ok(request)
                    });
                    return match bound {
                        Ok(request) => Some((Ok(request), Some((receiver, frame)))),
                        Err(error) => Some((Err(InputError::invalid(format!("frame {frame}: {error}"))), None)),
                    };
                }
            }
        }))
    };
    let call = RootCall::method(route.method.clone(), CallInput::Stream(input), Selection::Whole);
    let outcome = match execute_streaming_operation(&served, Operation::single(call, context)).await {
        Ok((_, mut messages)) => loop {
            match messages.next().await {
                Some(Ok(message)) => {
                    let json = match message_to_json(&message, &options) {
                        Ok(json) => json,
                        Err(error) => break Err(GatewayError::Execute(error.into())),
                    };
                    let text = String::from_utf8(json).unwrap_or_default();
                    if sender.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => break Err(GatewayError::Execute(error)),
                None => break Ok(()),
            }
        },
        Err(error) => Err(error),
    };
    let close = match outcome {
        Ok(()) => CloseFrame { code: 1000, reason: Utf8Bytes::from_static("done") },
        Err(error) => {
            let input_fault = matches!(&error, GatewayError::Execute(crate::execute::ExecuteError::Input(_)));
            let status = json!({ "code": error.code().grpc_code(), "message": error.to_string(), "details": [] });
            let _ = sender.send(Message::Text(json!({ "error": status }).to_string().into())).await;
            let code = if input_fault { 1007 } else { 1011 };
            CloseFrame { code, reason: close_reason(&error.to_string()) }
        }
    };
    let _ = sender.send(Message::Close(Some(close))).await;
}

/// A close reason fits in 123 bytes (RFC 6455), cut at a character boundary.
fn close_reason(text: &str) -> Utf8Bytes {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Utf8Bytes::from(text[..end].to_owned())
}
