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
}
