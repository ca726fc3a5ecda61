//! The upgrade request's headers, as a session keeps them for its lifetime: one buffer of
//! text, turned back into a `HeaderMap` when an operation starts or credentials are verified.
//!
//! Kept as they arrive, the headers would cost a socket twice: hyper's header values are slices
//! of the connection's 16 KiB read buffer, so holding them keeps that buffer alive, and a
//! `HeaderMap` of a dozen headers is itself over a kilobyte. The text is a few hundred bytes.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers as lines of `FLAG NAME ':' VALUE '\n'`, FLAG `s` for a sensitive value, `-` if not.
/// (Names hold neither `:` nor `\n`, and values hold no `\n`.)
#[derive(Clone, Debug, Default)]
pub(crate) struct HeaderBlock(Bytes);

impl HeaderBlock {
    /// A copy of `headers`, in an allocation of its own.
    pub(crate) fn copy(headers: &HeaderMap) -> HeaderBlock {
        let length = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 3).sum();
        let mut text = BytesMut::with_capacity(length);
        for (name, value) in headers {
            text.put_u8(if value.is_sensitive() { b's' } else { b'-' });
            text.put_slice(name.as_str().as_bytes());
            text.put_u8(b':');
            text.put_slice(value.as_bytes());
            text.put_u8(b'\n');
        }
        HeaderBlock(text.freeze())
    }

    /// The headers again; values are slices of the block's buffer (no copy per value).
    pub(crate) fn to_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let mut at = 0;
        while let Some(end) = self.0[at..].iter().position(|&b| b == b'\n').map(|n| at + n) {
            let line = &self.0[at..end];
            let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            let name = HeaderName::from_bytes(&line[1..colon]);
            let value = HeaderValue::from_maybe_shared(self.0.slice(at + colon + 1..end));
            // Every line was written from a valid name and value, so both read back.
            if let (Ok(name), Ok(mut value)) = (name, value) {
                value.set_sensitive(line[0] == b's');
                headers.append(name, value);
            }
            at = end + 1;
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_back_as_they_were_without_the_source_buffer() {
        // Values sliced from one buffer, as hyper slices them from its read buffer.
        let source = Bytes::from(b"Bearer abctext/plainab: c".to_vec());
        let value = |range: std::ops::Range<usize>| HeaderValue::from_maybe_shared(source.slice(range)).expect("value");
        let mut headers = HeaderMap::new();
        let mut secret = value(0..10);
        secret.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, secret);
        headers.append(http::header::ACCEPT, value(10..20));
        headers.append(http::header::ACCEPT, value(20..22));
        headers.insert("x-colon", value(20..25));
        headers.insert("x-empty", HeaderValue::from_static(""));
        let block = HeaderBlock::copy(&headers);
        let back = block.to_map();
        assert_eq!(back, headers);
        assert!(back[http::header::AUTHORIZATION].is_sensitive());
        assert!(!back[http::header::ACCEPT].is_sensitive());
        let accepts: Vec<_> = back.get_all(http::header::ACCEPT).iter().collect();
        assert_eq!(accepts, ["text/plain", "ab"]);
        assert_eq!(back["x-colon"], "ab: c");
        let within = |v: &HeaderValue| source.as_ptr_range().contains(&v.as_bytes().as_ptr());
        assert!(headers.values().filter(|v| !v.is_empty()).all(within), "the source's values are slices of it");
        assert!(!back.values().any(within), "nothing read back points into the source buffer");
        assert!(HeaderBlock::default().to_map().is_empty());
    }
}
