//! proto3 JSON ⇄ protobuf through prost-reflect's canonical mapping, with what a gateway adds:
//! a nesting-depth cap checked before parsing (a 400, never a stack overflow), errors that name
//! the field path (`book.publishTime`), and the JSON options (emit defaults, proto names,
//! ignore unknown fields).

use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};

/// How messages are written and read as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonOptions {
    /// Write fields that hold their default value.
    pub emit_defaults: bool,
    /// Write original proto field names instead of lowerCamelCase json names.
    pub proto_names: bool,
    /// Ignore unknown fields in requests instead of refusing them.
    pub ignore_unknown: bool,
    /// Deepest nesting of objects and arrays accepted in a request.
    pub max_depth: usize,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions { emit_defaults: false, proto_names: false, ignore_unknown: false, max_depth: 64 }
    }
}

/// A JSON request body that cannot become the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// Nested deeper than allowed.
    #[error("JSON nested deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// JSON, but not a valid value for a field.
    #[error("field `{path}`: {message}")]
    Field {
        /// The field path as written in the JSON (`book.publishTime`, `books[2].isbn`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Wrong at the top level (e.g. not an object).
    #[error("{0}")]
    Body(String),
}

/// Reads a JSON document as a message of type `descriptor`.
pub fn json_to_message(
    descriptor: MessageDescriptor,
    json: &[u8],
    options: &JsonOptions,
) -> Result<DynamicMessage, JsonError> {
    check_depth(json, options.max_depth)?;
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let deserialize_options = DeserializeOptions::new().deny_unknown_fields(!options.ignore_unknown);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(&mut deserializer, &mut track);
    let message = DynamicMessage::deserialize_with_options(descriptor, tracked, &deserialize_options)
        .map_err(|e| classify(track.path().to_string(), e))?;
    deserializer.end().map_err(|e| classify(String::new(), e))?;
    Ok(message)
}

fn classify(path: String, error: serde_json::Error) -> JsonError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            let text = error.to_string();
            let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
            JsonError::Syntax { line: error.line(), column: error.column(), message }
        }
        Category::Data => {
            let text = error.to_string();
            let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
            if let Some(name) = message.strip_prefix("unrecognized field name '").and_then(|m| m.strip_suffix('\'')) {
                let path = if path.is_empty() || path == "." { name.to_owned() } else { format!("{path}.{name}") };
                return JsonError::Field { path, message: "unknown field".into() };
            }
            if path.is_empty() || path == "." { JsonError::Body(message) } else { JsonError::Field { path, message } }
        }
    }
}

/// Writes `message` as JSON.
pub fn message_to_json(message: &DynamicMessage, options: &JsonOptions) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let serialize_options = SerializeOptions::new()
        .skip_default_fields(!options.emit_defaults)
        .use_proto_field_name(options.proto_names)
        .stringify_64_bit_integers(true);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &serialize_options)
        .expect("writing JSON to a Vec cannot fail and a DynamicMessage always serializes");
    out
}

/// Refuses documents nested deeper than `limit`, without parsing them: one pass over the bytes
/// counting brackets outside strings, so a hostile body costs O(n) and no stack.
pub fn check_depth(json: &[u8], limit: usize) -> Result<(), JsonError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Err(JsonError::TooDeep { limit });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_counted_outside_strings_only() {
        assert!(check_depth(br#"{"a":[{"b":"[[[[[[[[["}]}"#, 3).is_ok());
        assert_eq!(check_depth(b"[[[[1]]]]", 3), Err(JsonError::TooDeep { limit: 3 }));
        assert!(check_depth(br#"{"a":"\"{{{{"}"#, 1).is_ok());
        let deep = "[".repeat(100_000);
        assert_eq!(check_depth(deep.as_bytes(), 64), Err(JsonError::TooDeep { limit: 64 }));
    }
}
