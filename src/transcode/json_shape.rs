//! The shape check a request body passes before it is parsed: nesting depth and duplicate
//! object keys, in one pass over the bytes with no recursion, so a hostile body costs O(n) time
//! and no stack.
//!
//! Duplicate keys are refused because parsers disagree on them: serde (and so prost-reflect)
//! keeps the last value, some keep the first. A body that an auditing layer in front of the
//! gateway reads as `{"role":"reader"}` must not reach the backend as `"admin"`.

use std::borrow::Cow;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::json::JsonError;

/// What a JSON value holds, as far as the descriptors say: which keys of an object name the
/// same thing depends on it.
#[derive(Clone)]
enum Holds {
    /// A message: a field may be named by its JSON name or its proto name, one key either way.
    Message(MessageDescriptor),
    /// A map field's entries, whose values hold the boxed kind.
    Map(Box<Holds>),
    /// A repeated field's elements.
    List(Box<Holds>),
    /// Anything else: scalars, Struct, Value, Any, unknown fields. Keys are compared as text.
    Free,
}

impl Holds {
    fn of_field(field: &FieldDescriptor) -> Holds {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { return Holds::Free };
            return Holds::Map(Box::new(entry.map_entry_value_field().kind().into()));
        }
        let holds = Holds::from(field.kind());
        if field.is_list() { Holds::List(Box::new(holds)) } else { holds }
    }
}

impl From<Kind> for Holds {
    fn from(kind: Kind) -> Holds {
        match kind {
            // The well-known types' JSON forms are strings, scalars or free-form objects.
            Kind::Message(message) if !message.full_name().starts_with("google.protobuf.") => Holds::Message(message),
            _ => Holds::Free,
        }
    }
}

/// What decides whether two keys of one object collide: the field they name in a message,
/// their decoded text anywhere else.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Canonical<'a> {
    Field(u32),
    Text(Cow<'a, [u8]>),
}

/// A key as decoded from the document.
type KeyText<'a> = Cow<'a, [u8]>;

/// One key of an open object: what it names and how it was written.
struct Key<'a> {
    canonical: Canonical<'a>,
    text: Cow<'a, [u8]>,
}

/// One open object or array, innermost last.
enum Frame {
    /// An object whose keys are `keys[first_key..]`; `expect_key` is true after `{` and `,`;
    /// `value` is what the value of the key just read holds.
    Object { first_key: usize, expect_key: bool, holds: Holds, value: Holds },
    /// An array; `index` counts the commas seen so far.
    Array { index: usize, element: Holds },
}

/// Refuses documents nested deeper than `limit` and objects that name a key twice, where a
/// message field named once by its JSON name and once by its proto name counts as twice.
/// `message` is what the top-level object holds. Syntax errors are left to the parser that
/// follows, which reports them with a line and column.
pub fn check_shape(json: &[u8], limit: usize, message: &MessageDescriptor) -> Result<(), JsonError> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut keys: Vec<Key<'_>> = Vec::new();
    let mut at = 0;
    while at < json.len() {
        let byte = json[at];
        match byte {
            b'"' => {
                let (end, has_escape) = string_end(json, at + 1);
                if let Some(Frame::Object { expect_key, holds, value, .. }) = frames.last_mut()
                    && *expect_key
                {
                    *expect_key = false;
                    let text = key_text(&json[at..end.min(json.len())], has_escape);
                    let (canonical, holds_value) = resolve(holds, &text);
                    *value = holds_value;
                    keys.push(Key { canonical, text });
                }
                at = end;
                continue;
            }
            b'{' | b'[' => {
                if frames.len() >= limit {
                    return Err(JsonError::TooDeep { limit });
                }
                let opened = match frames.last() {
                    None => Holds::Message(message.clone()),
                    Some(Frame::Object { value, .. }) => value.clone(),
                    Some(Frame::Array { element, .. }) => element.clone(),
                };
                frames.push(if byte == b'{' {
                    let holds = match opened {
                        Holds::List(_) => Holds::Free,
                        other => other,
                    };
                    Frame::Object { first_key: keys.len(), expect_key: true, holds, value: Holds::Free }
                } else {
                    let element = match opened {
                        Holds::List(element) => *element,
                        _ => Holds::Free,
                    };
                    Frame::Array { index: 0, element }
                });
            }
            b'}' | b']' => match frames.pop() {
                Some(Frame::Object { first_key, .. }) => {
                    if let Some((first, second)) = duplicate_key(&mut keys[first_key..]) {
                        let path = duplicate_path(&frames, &keys, first_key, &second);
                        let message = if first == second {
                            "duplicate key".to_owned()
                        } else {
                            format!("duplicate field: also given as \"{}\"", String::from_utf8_lossy(&first))
                        };
                        return Err(JsonError::Field { path, message });
                    }
                    keys.truncate(first_key);
                }
                Some(Frame::Array { .. }) | None => {}
            },
            b',' => match frames.last_mut() {
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                Some(Frame::Array { index, .. }) => *index += 1,
                None => {}
            },
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// What a key of an object that holds `holds` names, and what its value holds.
fn resolve<'a>(holds: &Holds, text: &Cow<'a, [u8]>) -> (Canonical<'a>, Holds) {
    match holds {
        Holds::Message(message) => {
            let field = std::str::from_utf8(text)
                .ok()
                .and_then(|name| message.get_field_by_json_name(name).or_else(|| message.get_field_by_name(name)));
            match field {
                Some(field) => (Canonical::Field(field.number()), Holds::of_field(&field)),
                None => (Canonical::Text(text.clone()), Holds::Free),
            }
        }
        Holds::Map(value) => (Canonical::Text(text.clone()), (**value).clone()),
        Holds::List(_) | Holds::Free => (Canonical::Text(text.clone()), Holds::Free),
    }
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

/// The first key named twice among one object's keys, as first and second written, found by
/// sorting them in place (stably, so equal keys keep their order).
fn duplicate_key<'a>(keys: &mut [Key<'a>]) -> Option<(KeyText<'a>, KeyText<'a>)> {
    match keys.len() {
        0 | 1 => None,
        2 => (keys[0].canonical == keys[1].canonical).then(|| (keys[0].text.clone(), keys[1].text.clone())),
        _ => {
            keys.sort_by(|a, b| a.canonical.cmp(&b.canonical));
            keys.windows(2)
                .find(|pair| pair[0].canonical == pair[1].canonical)
                .map(|pair| (pair[0].text.clone(), pair[1].text.clone()))
        }
    }
}

/// The path of the duplicate key as serde_path_to_error writes it (`book.tags[2].name`): each
/// open object contributes the key being read, each open array its element index.
fn duplicate_path(frames: &[Frame], keys: &[Key<'_>], innermost_first_key: usize, duplicate: &[u8]) -> String {
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
                    path.push_str(&String::from_utf8_lossy(&key.text));
                }
            }
            Frame::Array { index, .. } => path.push_str(&format!("[{index}]")),
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

    fn check(json: &str, limit: usize) -> Result<(), JsonError> {
        thread_local!(static ALL: MessageDescriptor = crate::transcode::json::mapping_tests::descriptor());
        ALL.with(|all| check_shape(json.as_bytes(), limit, all))
    }

    #[test]
    fn depth_is_counted_outside_strings_only() {
        assert!(check(r#"{"a":[{"b":"[[[[[[[[["}]}"#, 3).is_ok());
        assert_eq!(check("[[[[1]]]]", 3), Err(JsonError::TooDeep { limit: 3 }));
        assert!(check(r#"{"a":"\"{{{{"}"#, 1).is_ok());
        let deep = "[".repeat(100_000);
        assert_eq!(check(&deep, 64), Err(JsonError::TooDeep { limit: 64 }));
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
            let got = check(input, 64);
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
        assert!(check(&body, 64).is_ok());
        let dup = body.replacen("}", ",\"k5000\":0}", 1);
        assert!(matches!(check(&dup, 64), Err(JsonError::Field { path, .. }) if path == "k5000"));
    }

    #[test]
    fn a_field_named_by_both_its_names_is_a_duplicate() {
        type Case<'a> = (&'a str, Result<(), (&'a str, &'a str)>);
        let also = |name: &'static str| format!("duplicate field: also given as \"{name}\"");
        let table: &[Case] = &[
            (r#"{"byInt":{"1":"a"},"by_int":{"2":"b"}}"#, Err(("by_int", "byInt"))),
            (r#"{"renamed":"x","custom":"y"}"#, Err(("custom", "renamed"))),
            (r#"{"inners":[{"id":"a"},{"longName":"x","long_name":"y"}]}"#, Err(("inners[1].long_name", "longName"))),
            (r#"{"inner":{"long_name":"x","longName":"y"}}"#, Err(("inner.longName", "long_name"))),
            (r#"{"byName":{"k":{"longName":"a","long_name":"b"}}}"#, Err(("byName.k.long_name", "longName"))),
            // Map keys, Struct keys and unknown keys are data: only equal text collides.
            (r#"{"byName":{"long_name":{"id":"1"},"longName":{"id":"2"}}}"#, Ok(())),
            (r#"{"st":{"fooBar":1,"foo_bar":2}}"#, Ok(())),
            (r#"{"any":{"@type":"type.googleapis.com/t.Inner","longName":"a"}}"#, Ok(())),
            (r#"{"unknownField":{"a_b":1,"aB":2}}"#, Ok(())),
        ];
        for (input, want) in table {
            let got = check(input, 64);
            match want {
                Ok(()) => assert!(got.is_ok(), "{input}: {got:?}"),
                Err((path, first)) => {
                    assert_eq!(got, Err(JsonError::Field { path: (*path).into(), message: also(first) }), "{input}")
                }
            }
        }
    }
}
