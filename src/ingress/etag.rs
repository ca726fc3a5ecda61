//! Weak entity tags for REST GET answers, and the `If-None-Match` check (RFC 9110 sections
//! 8.8.3 and 13.1.2). A whole answer message is tagged from what its JSON is a function of:
//! its protobuf bytes, the JSON options that shape the output, and the registered descriptors
//! with the gateway's version (`Registry::descriptor_digest`). So a client that holds the tag
//! gets its 304 before any JSON is written, and a large answer can be sent while it is
//! written. Other answers (a `response_body` field, an edited answer) are tagged from the JSON
//! body itself. Tags are weak: the compression step may send the same JSON encoded otherwise.

use axum::http::HeaderValue;
use sha2::{Digest, Sha256};

use crate::transcode::json::JsonOptions;

/// The tag of a whole answer message: its bytes as the backend sent them, written as JSON
/// with `options` under the descriptors `descriptors` digests.
pub(crate) fn of_wire(descriptors: &[u8; 32], options: &JsonOptions, wire: &[u8]) -> HeaderValue {
    let mut hash = Sha256::new();
    hash.update(b"wire\0");
    hash.update(descriptors);
    // The options that change what is written (the others only read requests).
    hash.update([u8::from(options.emit_defaults), u8::from(options.proto_names)]);
    hash.update(wire);
    weak_tag(&hash.finalize())
}

/// The tag of an answer body as it is sent (before compression).
pub(crate) fn of_body(body: &[u8]) -> HeaderValue {
    let mut hash = Sha256::new();
    hash.update(b"body\0");
    hash.update(body);
    weak_tag(&hash.finalize())
}

/// `W/"` and the first 16 bytes of the digest in hex, `"`.
fn weak_tag(digest: &[u8]) -> HeaderValue {
    let mut text = [0u8; 36];
    text[..3].copy_from_slice(b"W/\"");
    hex::encode_to_slice(&digest[..16], &mut text[3..35]).expect("32 hex digits fit");
    text[35] = b'"';
    HeaderValue::from_bytes(&text).expect("ASCII")
}

/// Whether the `If-None-Match` field (every line of it) names `tag` by weak comparison, or is
/// `*`. A member that is not an entity-tag ends the reading of its line: what came before it
/// still counts, nothing after it does.
pub(crate) fn is_matched(if_none_match: &[HeaderValue], tag: &HeaderValue) -> bool {
    let ours = opaque(tag.as_bytes());
    if_none_match.iter().any(|line| names(line.as_bytes(), ours))
}

/// A tag's opaque part, with its quotes (`W/` dropped).
fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// One `If-None-Match` line: `*`, or a comma-separated list of entity-tags
/// (`[W/]"<etagc>*"`, where a comma may sit inside the quotes) with optional whitespace.
fn names(mut line: &[u8], ours: &[u8]) -> bool {
    loop {
        line = line.trim_ascii_start();
        while let Some(rest) = line.strip_prefix(b",") {
            line = rest.trim_ascii_start();
        }
        if line.is_empty() {
            return false;
        }
        if line.trim_ascii_end() == b"*" {
            return true;
        }
        let candidate = line.strip_prefix(b"W/").unwrap_or(line);
        let Some(quoted) = candidate.strip_prefix(b"\"") else { return false };
        let Some(end) = quoted.iter().position(|&b| b == b'"') else { return false };
        line = quoted[end + 1..].trim_ascii_start();
        if !line.is_empty() && !line.starts_with(b",") {
            return false;
        }
        if &candidate[..end + 2] == ours {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).expect("a header value")
    }

    #[test]
    fn if_none_match_is_read_by_weak_comparison() {
        let tag = header("W/\"0123abcd\"");
        // (the field's lines, whether they name the tag)
        let table: &[(&[&str], bool)] = &[
            (&["W/\"0123abcd\""], true),
            (&["\"0123abcd\""], true),
            (&["*"], true),
            (&["  *  "], true),
            (&["\"other\", W/\"0123abcd\""], true),
            (&["\"other\",W/\"0123abcd\" , \"third\""], true),
            (&[",, \"0123abcd\""], true),
            (&["\"a,b\", \"0123abcd\""], true),
            (&["\"other\"", "W/\"0123abcd\""], true),
            (&[], false),
            (&[""], false),
            (&["\"other\""], false),
            (&["W/\"0123abcd"], false),
            (&["0123abcd"], false),
            (&["W/\"0123abc\""], false),
            (&["\"0123abcd\"x"], false),
            (&["\"x\" junk, \"0123abcd\""], false),
            (&["W/\"other,\"0123abcd\"\""], false),
            (&["*, \"other\""], false),
        ];
        for (lines, expected) in table {
            let lines: Vec<HeaderValue> = lines.iter().map(|l| header(l)).collect();
            assert_eq!(is_matched(&lines, &tag), *expected, "{lines:?}");
        }
    }

    #[test]
    fn a_wire_tag_changes_with_anything_the_json_depends_on() {
        let descriptors = [7u8; 32];
        let options = JsonOptions::default();
        let base = of_wire(&descriptors, &options, b"\x0a\x03abc");
        assert_eq!(base, of_wire(&descriptors, &options, b"\x0a\x03abc"), "the same inputs, the same tag");
        let emitting = JsonOptions { emit_defaults: true, ..JsonOptions::default() };
        let proto_names = JsonOptions { proto_names: true, ..JsonOptions::default() };
        let reading_only = JsonOptions { ignore_unknown: true, max_depth: 3, ..JsonOptions::default() };
        let others = [
            of_wire(&descriptors, &options, b"\x0a\x03abd"),
            of_wire(&[8u8; 32], &options, b"\x0a\x03abc"),
            of_wire(&descriptors, &emitting, b"\x0a\x03abc"),
            of_wire(&descriptors, &proto_names, b"\x0a\x03abc"),
            of_body(b"\x0a\x03abc"),
        ];
        for other in &others {
            assert_ne!(&base, other);
        }
        assert_eq!(base, of_wire(&descriptors, &reading_only, b"\x0a\x03abc"), "request-only options do not count");
        for tag in others.iter().chain([&base]) {
            let text = tag.to_str().expect("ASCII");
            assert!(text.starts_with("W/\"") && text.ends_with('"') && text.len() == 36, "{text}");
            assert!(is_matched(std::slice::from_ref(tag), tag));
        }
    }
}
