//! A spliced gRPC call's deadline: the `grpc-timeout` sent upstream (the time left, not the
//! time the client first asked for) and an answer body that ends at the deadline with
//! DEADLINE_EXCEEDED trailers, dropping the backend's stream so the backend sees the cancel.
//! tonic's channel bounds only the wait for the answer's headers; a backend that sends headers
//! and then stalls would otherwise hold the client past its deadline.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::grpc_code;

/// `grpc-timeout` for `left`: at most 8 digits, in the finest unit that fits (PROTOCOL-HTTP2.md).
/// Rounded down, so the backend is never given more than is left.
pub fn grpc_timeout_value(left: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = left.as_nanos();
    let (value, unit) = [(1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M")]
        .into_iter()
        .map(|(per, unit)| (nanos / per, unit))
        .find(|(value, _)| *value <= MAX)
        .unwrap_or(((nanos / 3_600_000_000_000).min(MAX), "H"));
    HeaderValue::from_str(&format!("{value}{unit}")).unwrap_or_else(|_| HeaderValue::from_static("0n"))
}

/// An answer body that ends with DEADLINE_EXCEEDED trailers at `until` if the backend's has
/// not ended by then.
pub struct DeadlineBody {
    inner: Option<tonic::body::Body>,
    expires: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    /// `inner`, ended at `until`.
    pub fn new(inner: tonic::body::Body, until: Instant) -> Self {
        DeadlineBody { inner: Some(inner), expires: Box::pin(tokio::time::sleep_until(until)) }
    }
}

fn deadline_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(grpc_code::DEADLINE_EXCEEDED));
    trailers.insert("grpc-message", HeaderValue::from_static("the backend did not answer before the deadline"));
    trailers
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            if frame.is_none() {
                this.inner = None;
            }
            return Poll::Ready(frame);
        }
        if this.expires.as_mut().poll(cx).is_ready() {
            // Dropping the backend's body resets its stream: the backend sees the cancel.
            this.inner = None;
            return Poll::Ready(Some(Ok(Frame::trailers(deadline_trailers()))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn grpc_timeout_values_use_the_finest_unit_that_fits_in_eight_digits() {
        // (time left, header value)
        let table = [
            (Duration::from_nanos(0), "0n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_millis(150), "150000u"),
            (Duration::from_nanos(150_000_001), "150000u"),
            (Duration::from_secs(2), "2000000u"),
            (Duration::from_secs(100_000), "100000S"),
            (Duration::from_secs(99_999_999 * 60), "99999999M"),
            (Duration::from_secs(200_000_000 * 60), "3333333H"),
            (Duration::MAX, "99999999H"),
        ];
        for (left, want) in table {
            assert_eq!(grpc_timeout_value(left), want, "{left:?}");
            let told = crate::ingress::forward::parse_grpc_timeout(want).expect("parses back");
            assert!(told <= left, "{want} gives more than {left:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_outlives_its_deadline_ends_with_deadline_exceeded() {
        let never = futures_util::stream::pending::<Result<Frame<Bytes>, tonic::Status>>();
        let stalled = tonic::body::Body::new(http_body_util::StreamBody::new(never));
        let until = Instant::now() + Duration::from_millis(200);
        let started = Instant::now();
        let mut body = DeadlineBody::new(stalled, until);
        let frame = body.frame().await.expect("a frame").expect("ok");
        let trailers = frame.into_trailers().expect("trailers");
        assert_eq!(trailers["grpc-status"], "4");
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        assert!(body.frame().await.is_none(), "ended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_ends_in_time_passes_through_unchanged() {
        let inner =
            tonic::body::Body::new(http_body_util::Full::new(Bytes::from_static(b"abc")).map_err(|e| match e {}));
        let mut body = DeadlineBody::new(inner, Instant::now() + Duration::from_millis(200));
        let data = body.frame().await.expect("a frame").expect("ok").into_data().expect("data");
        assert_eq!(data, "abc");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }
}
