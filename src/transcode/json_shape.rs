//! The shape check a request body passes before it is parsed: nesting depth and duplicate
//! object keys, in one pass over the bytes with no recursion, so a hostile body costs O(n) time
//! and no stack.
//!
//! Duplicate keys are refused because parsers disagree on them: serde (and so prost-reflect)
//! keeps the last value, some keep the first. A body that an auditing layer in front of the
//! gateway reads as `{"role":"reader"}` must not reach the backend as `"admin"`.

use std::borrow::Cow;

use super::json::JsonError;

/// One open object or array, innermost last.
enum Frame {
    /// An object whose keys are `keys[first_key..]`; `expect_key` is true after `{` and `,`.
    Object { first_key: usize, expect_key: bool },
    /// An array; `index` counts the commas seen so far.
    Array { index: usize },
}

/// Refuses documents nested deeper than `limit` and objects that name a key twice. Syntax errors
/// are left to the parser that follows, which reports them with a line and column.
pub fn check_shape(json: &[u8], limit: usize) -> Result<(), JsonError> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut keys: Vec<Cow<'_, [u8]>> = Vec::new();
    let mut at = 0;
    while at < json.len() {
        let byte = json[at];
        match byte {
            b'"' => {
                let (end, has_escape) = string_end(json, at + 1);
                if let Some(Frame::Object { expect_key, .. }) = frames.last_mut()
                    && *expect_key
                {
                    *expect_key = false;
                    keys.push(key_text(&json[at..end.min(json.len())], has_escape));
                }
                at = end;
                continue;
            }
            b'{' | b'[' => {
                if frames.len() >= limit {
                    return Err(JsonError::TooDeep { limit });
                }
                frames.push(if byte == b'{' {
                    Frame::Object { first_key: keys.len(), expect_key: true }
                } else {
                    Frame::Array { index: 0 }
                });
            }
            b'}' | b']' => match frames.pop() {
                Some(Frame::Object { first_key, .. }) => {
                    if let Some(duplicate) = duplicate_key(&mut keys[first_key..]) {
                        let path = duplicate_path(&frames, &keys, first_key, &duplicate);
                        return Err(JsonError::Field { path, message: "duplicate key".into() });
                    }
                    keys.truncate(first_key);
                }
                Some(Frame::Array { .. }) | None => {}
            },
            b',' => match frames.last_mut() {
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// The index just past the closing quote of the string whose contents start at `from`, and
/// whether it holds a backslash escape. An unterminated string ends at the end of input.
fn string_end(json: &[u8], from: usize) -> (usize, bool) {
    let mut has_escape = false;
    let mut at = from;
    while at < json.len() {
        match json[at] {
            b'"' => return (at + 1, has_escape),
            b'\\' => {
                has_escape = true;
                at += 2;
            }
            _ => at += 1,
        }
    }
    (json.len(), has_escape)
}

/// A key as its decoded bytes, so `"a"` and `"\u0061"` are the same key. A key that does not
/// decode is kept raw; the parser rejects it afterwards with its position.
fn key_text(quoted: &[u8], has_escape: bool) -> Cow<'_, [u8]> {
    if has_escape && let Ok(decoded) = serde_json::from_slice::<String>(quoted) {
        return Cow::Owned(decoded.into_bytes());
    }
    let inner = quoted.strip_prefix(b"\"").unwrap_or(quoted);
    Cow::Borrowed(inner.strip_suffix(b"\"").unwrap_or(inner))
}

/// The first key named twice among one object's keys, found by sorting them in place.
fn duplicate_key<'a>(keys: &mut [Cow<'a, [u8]>]) -> Option<Cow<'a, [u8]>> {
    match keys.len() {
        0 | 1 => None,
        2 => (keys[0] == keys[1]).then(|| keys[0].clone()),
        _ => {
            keys.sort_unstable();
            keys.windows(2).find(|pair| pair[0] == pair[1]).map(|pair| pair[0].clone())
        }
    }
}

/// The path of the duplicate key as serde_path_to_error writes it (`book.tags[2].name`): each
/// open object contributes the key being read, each open array its element index.
fn duplicate_path(frames: &[Frame], keys: &[Cow<'_, [u8]>], innermost_first_key: usize, duplicate: &[u8]) -> String {
    let mut path = String::new();
    for (depth, frame) in frames.iter().enumerate() {
        match frame {
            Frame::Object { .. } => {
                // The key being read in this object is the last one pushed before the next
                // open object's keys (or the innermost object's keys) begin.
                let next_first = frames[depth + 1..]
                    .iter()
                    .find_map(|f| match f {
                        Frame::Object { first_key, .. } => Some(*first_key),
                        Frame::Array { .. } => None,
                    })
                    .unwrap_or(innermost_first_key);
                if let Some(key) = next_first.checked_sub(1).and_then(|i| keys.get(i)) {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&String::from_utf8_lossy(key));
                }
            }
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(&String::from_utf8_lossy(duplicate));
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_counted_outside_strings_only() {
        assert!(check_shape(br#"{"a":[{"b":"[[[[[[[[["}]}"#, 3).is_ok());
        assert_eq!(check_shape(b"[[[[1]]]]", 3), Err(JsonError::TooDeep { limit: 3 }));
        assert!(check_shape(br#"{"a":"\"{{{{"}"#, 1).is_ok());
        let deep = "[".repeat(100_000);
        assert_eq!(check_shape(deep.as_bytes(), 64), Err(JsonError::TooDeep { limit: 64 }));
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        type Case<'a> = (&'a str, Option<&'a str>);
        let table: &[Case] = &[
            (r#"{"a":1,"b":2}"#, None),
            (r#"{"a":1,"a":2}"#, Some("a")),
            (r#"{"a":1,"\u0061":2}"#, Some("a")),
            (r#"{"a":{"x":1},"b":{"x":1}}"#, None),
            (r#"{"a":{"x":1,"y":{"z":1},"x":2}}"#, Some("a.x")),
            (r#"{"list":[{"k":1},{"k":1,"k":2}]}"#, Some("list[1].k")),
            (r#"{"m":{"k1":"v","k2":"v","k3":"v","k1":"w"}}"#, Some("m.k1")),
            (r#"{"s":"{\"a\":1,\"a\":2}"}"#, None),
            (r#"[{"a":1},{"a":1}]"#, None),
            (r#"[[],[{"q":[1,{"z":0,"z":0}]}]]"#, Some("[1][0].q[1].z")),
            (r#"{"a":1,"b":{"c":[]},"b":3}"#, Some("b")),
            (r#"{"unterminated":"#, None),
        ];
        for (input, want) in table {
            let got = check_shape(input.as_bytes(), 64);
            match want {
                None => assert!(got.is_ok(), "{input}: {got:?}"),
                Some(path) => assert_eq!(
                    got,
                    Err(JsonError::Field { path: (*path).into(), message: "duplicate key".into() }),
                    "{input}"
                ),
            }
        }
    }

    #[test]
    fn many_keys_cost_one_sort_per_object() {
        let body: String =
            format!("{{{}}}", (0..10_000).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(","));
        assert!(check_shape(body.as_bytes(), 64).is_ok());
        let dup = body.replacen("}", ",\"k5000\":0}", 1);
        assert!(matches!(check_shape(dup.as_bytes(), 64), Err(JsonError::Field { path, .. }) if path == "k5000"));
    }
}
