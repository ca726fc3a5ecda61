//! Percent-decoding of path segments and query strings, with http.proto's rule for variables:
//! a single-segment variable is fully decoded; a multi-segment one keeps `%2F` (and `%2f`)
//! encoded so a decoded slash can never look like a segment boundary.

use std::borrow::Cow;

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    #[error("`{0}` has a `%` that is not followed by two hex digits")]
    BadEscape(String),
    /// The decoded bytes are not UTF-8.
    #[error("`{0}` does not decode to UTF-8 text")]
    NotUtf8(String),
}

/// Which escapes to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Decode everything.
    Nothing,
    /// Leave `%2F`/`%2f` as they are (multi-segment variables).
    EncodedSlash,
}

/// Decodes `%XX` escapes in `text`; with `plus_is_space`, `+` becomes a space (query strings).
pub fn percent_decode(text: &str, keep: Keep, plus_is_space: bool) -> Result<Cow<'_, str>, DecodeError> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || (plus_is_space && b == b'+')) {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(hi), Some(lo)) =
                    (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
                else {
                    return Err(DecodeError::BadEscape(text.to_owned()));
                };
                let byte = hi * 16 + lo;
                if keep == Keep::EncodedSlash && byte == b'/' {
                    out.extend_from_slice(&bytes[i..i + 3]);
                } else {
                    out.push(byte);
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| DecodeError::NotUtf8(text.to_owned()))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes `text` for one path segment or query component: everything but RFC 3986's
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`) is escaped, `/` included.
pub fn percent_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_rules() {
        let table = [
            ("plain", Keep::Nothing, false, Ok("plain")),
            ("a%20b", Keep::Nothing, false, Ok("a b")),
            ("a%2Fb", Keep::Nothing, false, Ok("a/b")),
            ("a%2Fb%2fc", Keep::EncodedSlash, false, Ok("a%2Fb%2fc")),
            ("a%3Ab", Keep::EncodedSlash, false, Ok("a:b")),
            ("a+b", Keep::Nothing, true, Ok("a b")),
            ("a+b", Keep::Nothing, false, Ok("a+b")),
            ("%E2%9C%93", Keep::Nothing, false, Ok("\u{2713}")),
            ("bad%2", Keep::Nothing, false, Err("not followed")),
            ("bad%zz", Keep::Nothing, false, Err("not followed")),
            ("%FF", Keep::Nothing, false, Err("UTF-8")),
        ];
        for (input, keep, plus, want) in table {
            match (percent_decode(input, keep, plus), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(got), Err(want)) => assert!(got.to_string().contains(want), "{input}: {got}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn encoding_escapes_all_but_unreserved() {
        let table = [("abc-._~", "abc-._~"), ("a b/c", "a%20b%2Fc"), ("é?&=#", "%C3%A9%3F%26%3D%23"), ("", "")];
        for (text, want) in table {
            let mut out = String::new();
            percent_encode(text, &mut out);
            assert_eq!(out, want, "{text}");
        }
    }
}
