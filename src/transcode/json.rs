//! proto3 JSON ⇄ protobuf through prost-reflect's canonical mapping, with what a gateway adds:
//! a nesting-depth cap and duplicate-key refusal checked before parsing (a 400, never a stack
//! overflow, never two readings of one body), errors that name the field path
//! (`book.publishTime`), and the JSON options (emit defaults, proto names, ignore unknown fields).

use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions};

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
    super::json_shape::check_shape(json, options.max_depth, &descriptor)?;
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

/// A message with no proto3 JSON form: a Timestamp or Duration out of the mapping's range, a
/// non-finite number in a google.protobuf.Value, an Any of a type the registry does not know,
/// a FieldMask path that does not survive camelCase. Only a backend can send one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{type_name} has no proto3 JSON form: {reason}")]
pub struct NoJsonForm {
    /// The full name of the message type written.
    pub type_name: String,
    /// What the JSON mapping refused.
    pub reason: String,
}

/// Writes `message` as JSON.
pub fn message_to_json(message: &DynamicMessage, options: &JsonOptions) -> Result<Vec<u8>, NoJsonForm> {
    let mut out = Vec::with_capacity(128);
    let serialize_options = SerializeOptions::new()
        .skip_default_fields(!options.emit_defaults)
        .use_proto_field_name(options.proto_names)
        .stringify_64_bit_integers(true);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message.serialize_with_options(&mut serializer, &serialize_options).map_err(|error| NoJsonForm {
        type_name: message.descriptor().full_name().to_owned(),
        reason: error.to_string(),
    })?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod mapping_tests {
    use super::*;

    const PROTO: &str = r#"
syntax = "proto3";
package t;
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
enum Color { COLOR_UNSPECIFIED = 0; RED = 1; }
message Inner { string id = 1; string long_name = 2; }
message All {
  int64 i64 = 1; uint64 u64 = 2; int32 i32 = 3; double d = 4; float f = 5; bool b = 6; string s = 7; bytes by = 8;
  Color color = 9; map<int32, string> by_int = 10; map<bool, Inner> by_bool = 11;
  google.protobuf.Any any = 12; google.protobuf.Struct st = 13; google.protobuf.ListValue lv = 15;
  google.protobuf.Duration dur = 16; google.protobuf.FieldMask mask = 17; google.protobuf.Int64Value w64 = 18;
  google.protobuf.Timestamp ts = 19; google.protobuf.Empty empty = 20;
  oneof pick { string a = 21; Inner inner = 22; }
  repeated int64 nums = 23; optional int32 maybe = 24;
  repeated Inner inners = 25; string custom = 26 [json_name = "renamed"]; map<string, Inner> by_name = 27;
}
"#;

    /// `t.All`: one field of every kind the JSON mapping treats specially.
    pub(crate) fn descriptor() -> MessageDescriptor {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.proto"), PROTO).expect("write");
        let registration =
            crate::registry::compile_sources(&[dir.path().join("t.proto")], &[dir.path().to_owned()], Some("t"))
                .expect("compiles");
        crate::registry::merge_registrations(vec![registration])
            .expect("merges")
            .pool
            .get_message_by_name("t.All")
            .expect("t.All")
    }

    /// proto3 JSON mapping rules, one per row: the input, then the JSON written back or the part
    /// of the error that names the field.
    #[test]
    fn proto3_json_mapping_table() {
        let all = descriptor();
        let options = JsonOptions::default();
        let table: &[(&str, Result<&str, &str>)] = &[
            (r#"{"i64":5}"#, Ok(r#"{"i64":"5"}"#)),
            (r#"{"i64":"9007199254740993"}"#, Ok(r#"{"i64":"9007199254740993"}"#)),
            (r#"{"i64":"9223372036854775808"}"#, Err("i64")),
            (r#"{"u64":-1}"#, Err("u64")),
            (r#"{"color":1}"#, Ok(r#"{"color":"RED"}"#)),
            (r#"{"color":"BLUE"}"#, Err("color")),
            (r#"{"d":"NaN","f":"-Infinity"}"#, Ok(r#"{"d":"NaN","f":"-Infinity"}"#)),
            (r#"{"by":"-_8"}"#, Ok(r#"{"by":"+/8="}"#)),
            (r#"{"byInt":{"1":"a"}}"#, Ok(r#"{"byInt":{"1":"a"}}"#)),
            (r#"{"by_int":{"2":"b"}}"#, Ok(r#"{"byInt":{"2":"b"}}"#)),
            (r#"{"byBool":{"true":{"id":"x"}}}"#, Ok(r#"{"byBool":{"true":{"id":"x"}}}"#)),
            (r#"{"byInt":{"one":"a"}}"#, Err("byInt")),
            (
                r#"{"any":{"@type":"type.googleapis.com/t.Inner","id":"x"}}"#,
                Ok(r#"{"any":{"@type":"type.googleapis.com/t.Inner","id":"x"}}"#),
            ),
            (
                r#"{"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.500s"}}"#,
                Ok(r#"{"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.500s"}}"#),
            ),
            (r#"{"any":{"@type":"type.googleapis.com/nope.Unknown","id":"x"}}"#, Err("any")),
            (r#"{"st":{"a":[1,"b",null,{"c":true}]}}"#, Ok(r#"{"st":{"a":[1.0,"b",null,{"c":true}]}}"#)),
            (r#"{"lv":[1,"two"]}"#, Ok(r#"{"lv":[1.0,"two"]}"#)),
            (r#"{"dur":"1.500s"}"#, Ok(r#"{"dur":"1.500s"}"#)),
            (r#"{"dur":"1 hour"}"#, Err("dur")),
            (r#"{"mask":"a.b,cD"}"#, Ok(r#"{"mask":"a.b,cD"}"#)),
            (r#"{"w64":"5"}"#, Ok(r#"{"w64":"5"}"#)),
            (r#"{"w64":null,"i32":null}"#, Ok(r#"{}"#)),
            (r#"{"ts":"1970-01-01T00:00:01.5+01:00"}"#, Ok(r#"{"ts":"1969-12-31T23:00:01.500Z"}"#)),
            (r#"{"ts":"10000-01-01T00:00:00Z"}"#, Err("ts")),
            (r#"{"empty":{}}"#, Ok(r#"{"empty":{}}"#)),
            (r#"{"a":"x","inner":{"id":"y"}}"#, Err("oneof")),
            (r#"{"nums":[1,"2"]}"#, Ok(r#"{"nums":["1","2"]}"#)),
            (r#"{"maybe":0}"#, Ok(r#"{"maybe":0}"#)),
            (r#"{"nope":1}"#, Err("nope")),
            (r#"{"i64":"1","i64":"2"}"#, Err("i64")),
            (r#"{"color":"RED","color":"GREEN"}"#, Err("color")),
            (r#"{"byInt":{"1":"a"},"by_int":{"2":"b"}}"#, Err("by_int")),
            (r#"{"i32":"NaN"}"#, Err("i32")),
            (r#"{"d":NaN}"#, Err("line 1")),
            (r#"{"by":"***"}"#, Err("by")),
            (r#"[1]"#, Err("map")),
        ];
        for (input, want) in table {
            let got = json_to_message(all.clone(), input.as_bytes(), &options)
                .map(|m| String::from_utf8(message_to_json(&m, &options).expect("writes")).expect("utf8"));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{input}"),
                (Err(error), Err(part)) => assert!(error.to_string().contains(part), "{input}: {error}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// What a backend can send that proto3 JSON cannot say is an error naming the type and the
    /// rule, never a panic.
    #[test]
    fn messages_without_a_json_form_are_errors() {
        use prost::Message;
        let all = descriptor();
        let wire = |field: u32, inner: Vec<u8>| {
            let mut bytes = Vec::new();
            prost::encoding::bytes::encode(field, &inner, &mut bytes);
            bytes
        };
        let timestamp = prost_types::Timestamp { seconds: 1_000_000_000_000, nanos: 0 }.encode_to_vec();
        let duration = prost_types::Duration { seconds: 400_000_000_000, nanos: 0 }.encode_to_vec();
        let infinite = prost_types::Struct {
            fields: [(
                "x".to_owned(),
                prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(f64::INFINITY)) },
            )]
            .into(),
        }
        .encode_to_vec();
        let any =
            prost_types::Any { type_url: "type.googleapis.com/nope.Unknown".into(), value: vec![] }.encode_to_vec();
        let mask = prost_types::FieldMask { paths: vec!["fooBar".into()] }.encode_to_vec();
        let table = [
            (wire(19, timestamp), "timestamp out of range"),
            (wire(16, duration), "duration out of range"),
            (wire(13, infinite), "non-finite"),
            (wire(12, any), "nope.Unknown"),
            (wire(17, mask), "camelcase"),
        ];
        for (bytes, reason) in table {
            let message = DynamicMessage::decode(all.clone(), bytes.as_slice()).expect("decodes");
            let error = message_to_json(&message, &JsonOptions::default()).expect_err(reason);
            assert_eq!(error.type_name, "t.All");
            assert!(error.reason.contains(reason), "{reason}: {error}");
        }
    }
}
