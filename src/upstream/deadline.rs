//! A spliced gRPC call's deadline: the `grpc-timeout` sent upstream (the time left, not the
//! time the client first asked for) and an answer body that ends at the deadline with
//! DEADLINE_EXCEEDED trailers, dropping the backend's stream so the backend sees the cancel.
//! The call's timeout bounds only the wait for the answer's headers; a backend that sends
//! headers and then stalls would otherwise hold the client past its deadline.

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

/// A spliced call's answer body: the backend's as it streams, ended with DEADLINE_EXCEEDED
/// trailers at the call's deadline (when it has one) if it has not ended by then; or empty,
/// for a trailers-only answer the gateway made in its stead (`Default`). The backend's body
/// is held as it is (hyper's `Incoming` on the passthrough way): the one box around it is
/// the listener's.
pub struct SplicedBody<B> {
    inner: Option<B>,
    expires: Option<Pin<Box<Sleep>>>,
}

impl<B> SplicedBody<B> {
    /// `inner`, not bounded in time.
    pub fn new(inner: B) -> Self {
        SplicedBody { inner: Some(inner), expires: None }
    }

    /// The same body, ended at `until`.
    pub fn ending_at(self, until: Instant) -> Self {
        SplicedBody { inner: self.inner, expires: Some(Box::pin(tokio::time::sleep_until(until))) }
    }
}

impl<B> Default for SplicedBody<B> {
    fn default() -> Self {
        SplicedBody { inner: None, expires: None }
    }
}

fn deadline_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(grpc_code::DEADLINE_EXCEEDED));
    trailers.insert("grpc-message", HeaderValue::from_static("the backend did not answer before the deadline"));
    trailers
}

impl<B> Body for SplicedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            if frame.is_none() {
                this.inner = None;
            }
            return Poll::Ready(frame);
        }
        if let Some(expires) = this.expires.as_mut()
            && expires.as_mut().poll(cx).is_ready()
        {
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
        self.inner.as_ref().map(Body::size_hint).unwrap_or_else(|| SizeHint::with_exact(0))
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
        let mut body = SplicedBody::new(stalled).ending_at(until);
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
        let mut body = SplicedBody::new(inner).ending_at(Instant::now() + Duration::from_millis(200));
        let data = body.frame().await.expect("a frame").expect("ok").into_data().expect("data");
        assert_eq!(data, "abc");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unbounded_body_waits_for_its_backend_and_an_empty_one_has_ended() {
        let (sender, later) = tokio::sync::oneshot::channel::<Bytes>();
        let frames = futures_util::stream::once(async move {
            later.await.map(Frame::data).map_err(|_| tonic::Status::cancelled("no data"))
        });
        let mut body = SplicedBody::new(tonic::body::Body::new(http_body_util::StreamBody::new(frames)));
        let waited = tokio::time::timeout(Duration::from_secs(3600), body.frame()).await;
        assert!(waited.is_err(), "no deadline of its own");
        sender.send(Bytes::from_static(b"late")).expect("sent");
        let data = body.frame().await.expect("a frame").expect("ok").into_data().expect("data");
        assert_eq!(data, "late");
        let empty = SplicedBody::<tonic::body::Body>::default();
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }
}
