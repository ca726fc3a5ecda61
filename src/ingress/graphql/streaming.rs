//! GraphQL answers as streams over plain HTTP, for clients that cannot use WebSockets: Server-
//! Sent Events (graphql-sse's distinct connections mode: `next` events, then `complete`; errors
//! that stop an operation before it runs are `next` events too) and the multipart protocol
//! Apollo clients speak for subscriptions (`multipart/mixed;subscriptionSpec="1.0"`: a part per
//! event as `{"payload": …}`, `{}` heartbeats, a fatal error as `{"payload": null, "errors": …}`).
//! Dropping the response (the client went away) cancels the operation's backend stream; a
//! gateway shutdown ends the stream without a completion, so clients reconnect elsewhere.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value as Json, json};

use super::run::{Outcome, Started, Written};

/// The streaming answer a client asked for with Accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// `text/event-stream`.
    Sse,
    /// `multipart/mixed;subscriptionSpec="1.0"`.
    Multipart,
    /// `multipart/mixed;deferSpec=20220824` (incremental delivery of `@defer`).
    MultipartDefer,
}

impl Transport {
    /// The transport `accept` asks for, if it asks for one.
    pub(super) fn from_accept(accept: Option<&HeaderValue>) -> Option<Transport> {
        let accept = accept.and_then(|v| v.to_str().ok())?;
        for media in accept.split(',') {
            let mut parts = media.split(';').map(str::trim);
            // Compared without case, and without a lower-cased copy per media type.
            let essence = parts.next().unwrap_or("");
            if essence.eq_ignore_ascii_case("text/event-stream") {
                return Some(Transport::Sse);
            }
            if essence.eq_ignore_ascii_case("multipart/mixed") {
                let parameters: Vec<String> = parts.map(|p| p.replace(['"', ' '], "")).collect();
                if parameters.iter().any(|p| p == "subscriptionSpec=1.0") {
                    return Some(Transport::Multipart);
                }
                if parameters.iter().any(|p| p == "deferSpec=20220824") {
                    return Some(Transport::MultipartDefer);
                }
            }
        }
        None
    }
}

/// What one item of the stream carries.
enum Item {
    /// An execution result, serialised.
    Result(std::sync::Arc<str>),
    /// One part of an incremental result (`{data, hasNext}` or `{incremental, hasNext}`).
    Incremental(Json),
    /// Errors that end the operation.
    Fatal(Vec<Json>),
    /// Nothing happened for a while.
    Heartbeat,
    /// The operation is over.
    Done,
}

/// The response for `started` in `transport`; `heartbeat` paces keep-alive parts, and the
/// stream ends early (without completing) when `shutdown` turns true.
pub(super) fn respond(
    transport: Transport,
    started: Started,
    heartbeat: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let items: BoxStream<'static, Item> = match started {
        Started::Result(Outcome::Ran(body) | Outcome::Refused(body)) => {
            Box::pin(stream::iter([Item::Result(body.to_string().into()), Item::Done]))
        }
        Started::Result(Outcome::Written(Written { body, .. }) | Outcome::Cached(body, _)) => {
            Box::pin(stream::iter([Item::Result(String::from_utf8_lossy(&body).into()), Item::Done]))
        }
        Started::Result(Outcome::Http(refusal)) => Box::pin(stream::iter([Item::Fatal(refusal.errors()), Item::Done])),
        Started::Failed(errors) => Box::pin(stream::iter([Item::Fatal(errors), Item::Done])),
        Started::Incremental(payloads) => Box::pin(payloads.map(Item::Incremental).chain(stream::iter([Item::Done]))),
        Started::Events(events) => {
            let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            Box::pin(stream::unfold(Some((events, beat)), |state| async move {
                let (mut events, mut beat) = state?;
                tokio::select! {
                    event = events.next() => match event {
                        Some(Ok(payload)) => Some((Item::Result(payload), Some((events, beat)))),
                        // The event stream ends after its error; the next poll completes.
                        Some(Err(errors)) => Some((Item::Fatal(errors), Some((events, beat)))),
                        None => Some((Item::Done, None)),
                    },
                    _ = beat.tick() => Some((Item::Heartbeat, Some((events, beat)))),
                }
            }))
        }
    };
    let until_shutdown = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let items = items.take_until(Box::pin(until_shutdown));
    let (content_type, body) = match transport {
        Transport::Sse => ("text/event-stream", items.map(sse_frame).boxed()),
        Transport::Multipart => {
            ("multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"", items.map(multipart_frame).boxed())
        }
        Transport::MultipartDefer => {
            ("multipart/mixed;boundary=\"graphql\";deferSpec=20220824", items.map(multipart_frame).boxed())
        }
    };
    let mut response = Response::new(Body::from_stream(body.map(Ok::<_, std::convert::Infallible>)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn sse_frame(item: Item) -> Bytes {
    match item {
        Item::Incremental(payload) => Bytes::from(format!("event: next\ndata: {payload}\n\n")),
        Item::Result(body) => Bytes::from(format!("event: next\ndata: {body}\n\n")),
        Item::Fatal(errors) => Bytes::from(format!("event: next\ndata: {}\n\n", json!({ "errors": errors }))),
        Item::Heartbeat => Bytes::from_static(b":\n\n"),
        Item::Done => Bytes::from_static(b"event: complete\ndata:\n\n"),
    }
}

fn multipart_frame(item: Item) -> Bytes {
    const PART: &str = "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n";
    match item {
        // Incremental delivery parts are the payloads themselves.
        Item::Incremental(payload) => Bytes::from(format!("{PART}{payload}")),
        Item::Result(body) => Bytes::from(format!("{PART}{{\"payload\":{body}}}")),
        Item::Fatal(errors) => Bytes::from(format!("{PART}{}", json!({ "payload": null, "errors": errors }))),
        Item::Heartbeat => Bytes::from(format!("{PART}{{}}")),
        Item::Done => Bytes::from_static(b"\r\n--graphql--\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_header_picks_the_transport() {
        let table = [
            ("text/event-stream", Some(Transport::Sse)),
            ("application/json, text/event-stream;q=0.9", Some(Transport::Sse)),
            ("multipart/mixed;subscriptionSpec=\"1.0\", application/json", Some(Transport::Multipart)),
            ("multipart/mixed; subscriptionSpec=1.0", Some(Transport::Multipart)),
            ("multipart/mixed;deferSpec=20220824, application/json", Some(Transport::MultipartDefer)),
            ("application/json", None),
            ("Text/Event-Stream", Some(Transport::Sse)),
            ("MULTIPART/MIXED;deferSpec=20220824", Some(Transport::MultipartDefer)),
            ("multipart/mixed", None),
            ("text/event-streams", None),
        ];
        for (accept, want) in table {
            let value = HeaderValue::from_static(accept);
            assert_eq!(Transport::from_accept(Some(&value)), want, "{accept}");
        }
    }

    #[test]
    fn frames_follow_each_protocol() {
        let body: std::sync::Arc<str> = json!({"data": {"a": 1}}).to_string().into();
        assert_eq!(sse_frame(Item::Result(body.clone())), "event: next\ndata: {\"data\":{\"a\":1}}\n\n");
        assert_eq!(sse_frame(Item::Done), "event: complete\ndata:\n\n");
        assert_eq!(
            multipart_frame(Item::Result(body)),
            "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{\"payload\":{\"data\":{\"a\":1}}}"
        );
        assert_eq!(multipart_frame(Item::Heartbeat), "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{}");
        assert_eq!(
            multipart_frame(Item::Fatal(vec![json!({"message": "x"})])),
            "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{\"payload\":null,\"errors\":[{\"message\":\"x\"}]}"
        );
        assert_eq!(multipart_frame(Item::Done), "\r\n--graphql--\r\n");
    }
}
