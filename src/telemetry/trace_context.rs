//! W3C Trace Context (https://www.w3.org/TR/trace-context/): `traceparent` is read from the
//! client (a malformed one is ignored and a new trace started), the gateway's own span becomes
//! the parent its backends see, and every backend call carries a `traceparent` naming a span of
//! its own; `tracestate` passes through untouched. When OpenTelemetry export is on, the span
//! ids are the exported spans' (so a backend's spans join the gateway's trace); otherwise they
//! are made here.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header names.
pub const TRACEPARENT: &str = "traceparent";

/// The same, as a header name (inserting by a `&str` name copies it into a new one each time).
pub const TRACEPARENT_NAME: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);

/// The length of a `traceparent` value (version 00).
pub const TEXT_LEN: usize = 55;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The span the next hop is a child of.
    pub span_id: [u8; 8],
    /// Sampled (bit 0 of the flags).
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` value; None when it is not a valid version-00 (or later, read as
    /// 00) header.
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let text = std::str::from_utf8(value).ok()?.trim();
        let mut parts = text.split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if version.len() != 2 || !lower_hex(version) || version == "ff" || flags.len() != 2 || !lower_hex(flags) {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || !lower_hex(trace) || !lower_hex(span) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceParent { trace_id, span_id, sampled: flags & 1 == 1 })
    }

    /// A new trace with a random id (sampled).
    pub fn root() -> TraceParent {
        TraceParent { trace_id: nonzero_id(), span_id: nonzero_id(), sampled: true }
    }

    /// The same trace, with `span_id` as the parent.
    pub fn with_span(self, span_id: [u8; 8]) -> TraceParent {
        TraceParent { span_id, ..self }
    }

    /// The header value.
    pub fn header(&self) -> String {
        String::from_utf8_lossy(&self.text()).into_owned()
    }

    /// The header value as one, in one allocation (clones share it).
    ///
    /// `text` is the same, for a caller that puts it in a buffer of its own.
    pub fn header_value(&self) -> http::HeaderValue {
        // Hex digits and dashes: always a valid header value.
        http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(self.text()))
            .unwrap_or_else(|_| http::HeaderValue::from_static("invalid"))
    }

    /// `00-` trace id `-` span id `-` flags, written into one exact buffer (every request and
    /// backend call sends one).
    pub fn text(&self) -> [u8; TEXT_LEN] {
        let mut text = [0u8; TEXT_LEN];
        text[..3].copy_from_slice(b"00-");
        hex::encode_to_slice(self.trace_id, &mut text[3..35]).expect("32 hex digits fit");
        text[35] = b'-';
        hex::encode_to_slice(self.span_id, &mut text[36..52]).expect("16 hex digits fit");
        text[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        text
    }

    /// As an OpenTelemetry parent (remote).
    pub fn otel_context(&self) -> opentelemetry::Context {
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let span = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            flags,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(span)
    }
}

/// A random id that is not all zeros.
fn nonzero_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        for chunk in id.chunks_mut(8) {
            let random = fastrand::u64(..).to_le_bytes();
            chunk.copy_from_slice(&random[..chunk.len()]);
        }
        if id != [0; N] {
            return id;
        }
    }
}

/// The trace context of `span` (a tracing span): its OpenTelemetry ids when export is on and
/// it is recorded, else `parent`'s trace with a new span id. `parent` is what the span
/// continues (the client's traceparent, or the request's).
pub fn of_span(span: &tracing::Span, parent: TraceParent) -> TraceParent {
    let context = span.context();
    let otel = context.span();
    let ids = otel.span_context();
    if ids.is_valid() {
        return TraceParent {
            trace_id: ids.trace_id().to_bytes(),
            span_id: ids.span_id().to_bytes(),
            sampled: ids.is_sampled(),
        };
    }
    parent.with_span(nonzero_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_headers_are_parsed_to_the_letter() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(valid.as_bytes()).expect("valid");
        assert!(parsed.sampled);
        assert_eq!(parsed.header(), valid);
        assert_eq!(parsed.header_value().to_str().ok(), Some(valid));
        let table = [
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", Some(false)),
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra", Some(true)),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", None),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", None),
            ("garbage", None),
        ];
        for (header, sampled) in table {
            assert_eq!(TraceParent::parse(header.as_bytes()).map(|p| p.sampled), sampled, "{header}");
        }
        let root = TraceParent::root();
        assert_eq!(TraceParent::parse(root.header().as_bytes()), Some(root));
        let child = of_span(&tracing::Span::none(), parsed);
        assert_eq!((child.trace_id, child.sampled), (parsed.trace_id, true));
        assert_ne!(child.span_id, parsed.span_id);
    }
}
