//! `x-request-id`: the client's, when it is well-formed, else a fresh one. Well-formed is 1 to
//! 128 characters of letters, digits and `-_.:/+=@` — enough for UUIDs, ULIDs, AWS and Envoy
//! ids, and nothing that could break a log line or a header.

/// The longest request id taken from a client.
pub const MAX_LEN: usize = 128;

/// The header that carries it.
pub const HEADER: &str = "x-request-id";

/// The same, as a header name (inserting by a `&str` name copies it into a new one each time).
pub const HEADER_NAME: http::HeaderName = http::HeaderName::from_static(HEADER);

/// True if a client's `x-request-id` can be used as it is.
pub fn is_well_formed(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=' | b'@'))
}

/// A new request id: a random (version 4) UUID.
pub fn generate() -> http::HeaderValue {
    // Written into one exact buffer that becomes the value's one allocation (this runs on every
    // request); its clones (the request's, the answer's) share it.
    header_value(bytes::Bytes::from_owner(new_text()))
}

/// A new request id's text (a random, version 4 UUID), for a caller that puts it in a buffer
/// of its own.
pub fn new_text() -> [u8; TEXT_LEN] {
    let mut bytes: [u8; 16] = fastrand::u128(..).to_le_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = [0u8; TEXT_LEN];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text[at] = b'-';
            at += 1;
        }
        hex::encode_to_slice([*byte], &mut text[at..at + 2]).expect("two hex digits fit");
        at += 2;
    }
    text
}

/// The length of a generated id.
pub const TEXT_LEN: usize = 36;

/// ASCII `text` (a generated id, or a buffer's slice holding one) as a header value, without a
/// copy.
pub fn header_value(text: bytes::Bytes) -> http::HeaderValue {
    // Generated ids and trace contexts are hex digits and dashes: always valid header values.
    http::HeaderValue::from_maybe_shared(text).unwrap_or_else(|_| http::HeaderValue::from_static("invalid"))
}

/// The request's id: the client's when it is well-formed (and only one was sent), else a new one.
/// Well-formed ids are ASCII, so the value is always a `str` too.
pub fn accept_or_generate(headers: &http::HeaderMap) -> http::HeaderValue {
    accepted(headers).unwrap_or_else(generate)
}

/// The client's id, when it is well-formed and only one was sent.
pub fn accepted(headers: &http::HeaderMap) -> Option<http::HeaderValue> {
    let mut values = headers.get_all(HEADER_NAME).iter();
    match (values.next(), values.next()) {
        (Some(value), None) if is_well_formed(value.as_bytes()) => Some(value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_taken_only_when_well_formed() {
        let long = "a".repeat(MAX_LEN + 1);
        let table: &[(&[&str], Option<&str>)] = &[
            (&["r-1"], Some("r-1")),
            (&["0190b6c2-7f4e-7c1a-9f3e-2d1c0b9a8f7e"], Some("0190b6c2-7f4e-7c1a-9f3e-2d1c0b9a8f7e")),
            (&["Root=1-5759e988-bd862e3fe1be46a994272793"], Some("Root=1-5759e988-bd862e3fe1be46a994272793")),
            (&["has space"], None),
            (&["quote\"d"], None),
            (&[""], None),
            (&[long.as_str()], None),
            (&["a", "b"], None),
            (&[], None),
        ];
        for (sent, kept) in table {
            let mut headers = http::HeaderMap::new();
            for value in *sent {
                headers.append(HEADER, value.parse().expect("header value"));
            }
            let id = accept_or_generate(&headers);
            let id = id.to_str().expect("ASCII");
            match kept {
                Some(kept) => assert_eq!(id, *kept, "{sent:?}"),
                None => {
                    assert!(is_well_formed(id.as_bytes()) && id.len() == 36, "{sent:?} → {id}");
                    assert_eq!(&id[14..15], "4", "a version 4 UUID: {id}");
                }
            }
        }
        assert_ne!(generate(), generate());
        for _ in 0..100 {
            let id = generate();
            let id = id.to_str().expect("ASCII");
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "the RFC 4122 variant: {id}");
        }
    }
}
