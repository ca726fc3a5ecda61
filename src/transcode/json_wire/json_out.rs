//! JSON text as serde_json writes it (compact, the same string escapes and number forms), so
//! the direct writer's output is byte for byte what `message_to_json` writes.

/// What each byte of a string becomes: 0 as is, `u` as `\u00XX`, else `\` and that letter.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// `text` as a JSON string.
#[inline]
pub(super) fn string(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
    string_part(out, text);
    out.push(b'"');
}

/// `text` escaped as inside a JSON string, without the quotes: pieces of a text, cut anywhere
/// (escapes are per byte), join into the whole's escaping.
#[inline]
pub(super) fn string_part(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (at, &byte) in text.iter().enumerate() {
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&text[start..at]);
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(byte >> 4) as usize], HEX[(byte & 0xf) as usize]]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = at + 1;
    }
    out.extend_from_slice(&text[start..]);
}

/// An integer as a JSON number.
#[inline]
pub(super) fn integer(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A double: finite values as serde_json writes them, the others as the mapping's strings.
#[inline]
pub(super) fn double(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(non_finite(value.is_nan(), value.is_sign_negative()));
    }
}

/// A float: as [`double`], with f32's shortest form.
#[inline]
pub(super) fn float(out: &mut Vec<u8>, value: f32) {
    if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(non_finite(value.is_nan(), value.is_sign_negative()));
    }
}

fn non_finite(nan: bool, negative: bool) -> &'static [u8] {
    match (nan, negative) {
        (true, _) => b"\"NaN\"",
        (false, true) => b"\"-Infinity\"",
        (false, false) => b"\"Infinity\"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        for text in ["plain", "quote \" and \\ slash /", "\u{0}\u{1f}\u{7f}\n\r\t\u{8}\u{c}", "é 😀 \u{2028}"] {
            let mut ours = Vec::new();
            string(&mut ours, text.as_bytes());
            assert_eq!(ours, serde_json::to_vec(text).expect("json"), "{text:?}");
        }
        for value in [0.0, -0.0, 1.0, 0.1, 1e21, 1e-7, 123456789.125, f64::MAX, f64::MIN_POSITIVE, 5e-324] {
            let mut ours = Vec::new();
            double(&mut ours, value);
            assert_eq!(ours, serde_json::to_vec(&value).expect("json"), "{value}");
        }
        for value in [0.0f32, 0.1, 3.4028235e38, 1e-45, 16777217.0] {
            let mut ours = Vec::new();
            float(&mut ours, value);
            assert_eq!(ours, serde_json::to_vec(&value).expect("json"), "{value}");
        }
        let mut out = Vec::new();
        double(&mut out, f64::NEG_INFINITY);
        integer(&mut out, i64::MIN);
        integer(&mut out, u32::MAX);
        assert_eq!(out, br#""-Infinity"-92233720368547758084294967295"#);
    }
}
