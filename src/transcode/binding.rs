//! Building a gRPC request message from an HTTP request, per google.api.http: the body (all of
//! it, one field, or none), then query parameters for fields the path and body do not bind
//! (dotted paths, repeated by repetition, enums by name or number, wrappers and string-like
//! well-known types), then path variables, which win. A PATCH whose request has a FieldMask the
//! client left empty gets the mask from the JSON keys present in the body.

use base64::Engine;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value};

use super::json::{JsonError, JsonOptions, json_to_message};
use super::percent::{Keep, percent_decode};
use super::routes::{BodyRule, RestRoute, is_string_like_wkt};
use crate::wire_message::WireMessage;

/// Why a request could not be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// The body is not a valid message.
    #[error("request body: {0}")]
    Body(#[from] JsonError),
    /// A query parameter is unknown or has a bad value.
    #[error("query parameter `{name}`: {message}")]
    Query {
        /// The parameter name as sent.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A header-bound value does not fit its field.
    #[error("header bound to `{field}`: {message}")]
    Header {
        /// The field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A form field is unknown or has a bad value.
    #[error("form field `{name}`: {message}")]
    Form {
        /// The field name as sent.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A path variable's value does not fit its field.
    #[error("path variable `{field}`: {message}")]
    Path {
        /// The field path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// How the body bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat<'a> {
    /// A JSON document.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` pairs, read like query parameters.
    Form,
    /// Raw bytes for a `google.api.HttpBody` target, with their content type.
    Raw(&'a str),
}

/// The HTTP request parts a route binds.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpParts<'a> {
    /// Decoded path variable values, in template order.
    pub variables: &'a [String],
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The body bytes.
    pub body: &'a [u8],
    /// How to read them.
    pub body_format: BodyFormat<'a>,
    /// Header-bound fields: (field path, header value).
    pub headers: &'a [(&'a str, &'a str)],
    /// True for PATCH (FieldMask auto-fill).
    pub is_patch: bool,
}

/// The full name of google.api.HttpBody, whose messages carry raw HTTP bodies.
pub const HTTP_BODY: &str = "google.api.HttpBody";

/// Builds the request message for `route` from `parts`.
pub fn bind_request(
    route: &RestRoute,
    parts: HttpParts<'_>,
    options: &JsonOptions,
) -> Result<DynamicMessage, BindError> {
    let input = route.method.input();
    let body_present = !parts.body.iter().all(u8::is_ascii_whitespace);
    let mut message = match (&route.body, body_present, parts.body_format) {
        (BodyRule::None, _, _) | (_, false, BodyFormat::Json | BodyFormat::Form) => DynamicMessage::new(input.clone()),
        (BodyRule::Whole, _, BodyFormat::Raw(content_type)) => http_body(&input, content_type, parts.body),
        (BodyRule::Field(field), _, BodyFormat::Raw(content_type)) => {
            let mut message = DynamicMessage::new(input.clone());
            if let Kind::Message(target) = field.kind() {
                message.set_field(field, Value::Message(http_body(&target, content_type, parts.body)));
            }
            message
        }
        (BodyRule::Whole, true, BodyFormat::Json) => json_to_message(input.clone(), parts.body, options)?,
        (BodyRule::Field(field), true, BodyFormat::Json) => bind_body_field(&input, field, parts.body, options)?,
        (rule, true, BodyFormat::Form) => {
            let mut message = DynamicMessage::new(input.clone());
            let prefix = match rule {
                BodyRule::Field(field) => vec![field.clone()],
                _ => Vec::new(),
            };
            bind_form(&mut message, &prefix, parts.body, options)?;
            message
        }
    };
    if let Some(query) = parts.query.filter(|q| !q.is_empty()) {
        bind_query(&mut message, route, query, options)?;
    }
    for (path, value) in parts.headers {
        let fields = resolve_field_path(&input, path)
            .map_err(|message| BindError::Path { field: (*path).to_owned(), message })?;
        let parsed = parse_text(fields.last().expect("resolved paths are never empty"), value)
            .map_err(|message| BindError::Header { field: (*path).to_owned(), message })?;
        set_path(&mut message, &fields, parsed);
    }
    for (fields, value) in route.path_fields.iter().zip(parts.variables) {
        let name = fields.iter().map(FieldDescriptor::name).collect::<Vec<_>>().join(".");
        let parsed = parse_text(fields.last().expect("a field path is never empty"), value)
            .map_err(|message| BindError::Path { field: name.clone(), message })?;
        set_path(&mut message, fields, parsed);
    }
    if parts.is_patch
        && body_present
        && parts.body_format == BodyFormat::Json
        && let BodyRule::Field(body_field) = &route.body
    {
        fill_update_mask(&mut message, body_field, parts.body);
    }
    Ok(message)
}

/// Builds the request for `route` from `parts` as protobuf wire bytes, the same message
/// [`bind_request`] builds. A JSON body the route reads whole or as one field is transcoded
/// directly (json_wire); the fields bound outside the body (query parameters, a PATCH's update
/// mask, the path's variables) are appended as a second encoding, which decoders merge over
/// the first. Query parameters can never name the body's field or a path variable (bind_query
/// refuses both), and path variables win as they do in [`bind_request`]. Header bindings,
/// forms and raw bodies go through [`bind_request`].
///
/// `body` is the buffer `parts.body` is (when the caller has it as one): from
/// [`PIECES_FROM`] bytes on, the body's long strings are left in it, and the message is sent
/// as pieces (json_wire's `direct_pieces`).
pub fn bind_request_wire(
    route: &RestRoute,
    parts: HttpParts<'_>,
    body: Option<&bytes::Bytes>,
    options: &JsonOptions,
) -> Result<WireMessage, BindError> {
    use prost::Message;
    let body_present = !parts.body.iter().all(u8::is_ascii_whitespace);
    let direct = body_present && parts.body_format == BodyFormat::Json && parts.headers.is_empty();
    // The strings left in the buffer are found by their place in it: it must be the body read.
    let in_pieces = body.filter(|body| body.len() >= PIECES_FROM && std::ptr::eq(body.as_ref(), parts.body));
    let message: WireMessage = match &route.body {
        BodyRule::Whole if direct => {
            match in_pieces.and_then(|body| route.input_json.encode_pieces(None, body, options)) {
                Some(message) => message,
                None => route.input_json.encode(parts.body, options)?.into(),
            }
        }
        // A body that is itself the update mask would be read twice below.
        // Read in place; a document the direct encoder leaves (an error among them) is read
        // wrapped, so errors name the field as bind_request's do.
        BodyRule::Field(field) if direct && !(parts.is_patch && is_field_mask(field)) => {
            let name = field.name();
            match in_pieces.and_then(|body| route.input_json.encode_pieces(Some(name), body, options)) {
                Some(message) => message,
                None => match route.input_json.encode_field_direct(name, parts.body, options) {
                    Some(bytes) => bytes.into(),
                    None => with_body_field(field, parts.body, options, |wrapped, strict| {
                        Ok(json_to_message(route.method.input(), wrapped, strict)?.encode_to_vec())
                    })?
                    .into(),
                },
            }
        }
        _ => return Ok(bind_request(route, parts, options)?.encode_to_vec().into()),
    };
    let query = parts.query.filter(|q| !q.is_empty());
    let patch_field = match &route.body {
        BodyRule::Field(field) if parts.is_patch => Some(field),
        _ => None,
    };
    if route.path_fields.is_empty() && query.is_none() && patch_field.is_none() {
        return Ok(message);
    }
    let mut outside = DynamicMessage::new(route.method.input());
    if let Some(query) = query {
        bind_query(&mut outside, route, query, options)?;
    }
    for (fields, value) in route.path_fields.iter().zip(parts.variables) {
        let leaf = fields.last().expect("a field path is never empty");
        let parsed = parse_text(leaf, value).map_err(|message| BindError::Path {
            field: fields.iter().map(FieldDescriptor::name).collect::<Vec<_>>().join("."),
            message,
        })?;
        // A default value is not encoded, so it could not win over the body's: bind the
        // message instead.
        if !leaf.supports_presence() && parsed.is_default_for_field(leaf) {
            return Ok(bind_request(route, parts, options)?.encode_to_vec().into());
        }
        set_path(&mut outside, fields, parsed);
    }
    if let Some(body_field) = patch_field {
        // The body cannot hold the mask (it is another field), so whether the client sent one
        // is read off the fields bound outside it, as bind_request reads it off the whole.
        fill_update_mask(&mut outside, body_field, parts.body);
    }
    let outside = outside.encode_to_vec();
    // A small message is joined with them; a large one goes on as pieces, uncopied.
    if message.len() < PIECES_FROM {
        let mut joined = Vec::with_capacity(message.len() + outside.len());
        message.copy_to(&mut joined);
        joined.extend_from_slice(&outside);
        return Ok(joined.into());
    }
    let mut pieces = message.pieces().to_vec();
    pieces.push(outside.into());
    Ok(WireMessage::from_pieces(pieces))
}

/// Bodies of this many bytes or more are encoded as pieces, their long strings left in the
/// client's buffer.
pub const PIECES_FROM: usize = 64 * 1024;

/// True for a `google.protobuf.FieldMask` field.
fn is_field_mask(field: &FieldDescriptor) -> bool {
    matches!(field.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask")
}

/// `body: "field"`: reads the body as that field's value by wrapping it as `{"field": body}`,
/// so errors name the field and any field type works.
fn bind_body_field(
    input: &MessageDescriptor,
    field: &FieldDescriptor,
    body: &[u8],
    options: &JsonOptions,
) -> Result<DynamicMessage, JsonError> {
    with_body_field(field, body, options, |wrapped, strict| json_to_message(input.clone(), wrapped, strict))
}

/// Runs `read` over the body wrapped as `{"field": body}`, with error positions and the
/// depth limit given as the client sees the body.
fn with_body_field<T>(
    field: &FieldDescriptor,
    body: &[u8],
    options: &JsonOptions,
    read: impl FnOnce(&[u8], &JsonOptions) -> Result<T, JsonError>,
) -> Result<T, JsonError> {
    let mut wrapped = Vec::with_capacity(body.len() + field.name().len() + 5);
    wrapped.extend_from_slice(b"{\"");
    wrapped.extend_from_slice(field.name().as_bytes());
    wrapped.extend_from_slice(b"\":");
    wrapped.extend_from_slice(body);
    wrapped.push(b'}');
    let strict = JsonOptions { max_depth: options.max_depth + 1, ..options.clone() };
    read(&wrapped, &strict).map_err(|e| match e {
        JsonError::Syntax { line, column, message } => {
            let column = if line == 1 { column.saturating_sub(field.name().len() + 4) } else { column };
            JsonError::Syntax { line, column, message }
        }
        JsonError::TooDeep { .. } => JsonError::TooDeep { limit: options.max_depth },
        other => other,
    })
}

fn bind_query(
    message: &mut DynamicMessage,
    route: &RestRoute,
    query: &str,
    options: &JsonOptions,
) -> Result<(), BindError> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let fail = |name: &str, message: String| BindError::Query { name: name.to_owned(), message };
        let name = percent_decode(raw_name, Keep::Nothing, true).map_err(|e| fail(raw_name, e.to_string()))?;
        let value = percent_decode(raw_value, Keep::Nothing, true).map_err(|e| fail(&name, e.to_string()))?;
        if matches!(route.body, BodyRule::Whole) {
            if options.ignore_unknown {
                continue;
            }
            return Err(fail(&name, "this route reads every field from the body (`body: \"*\"`)".into()));
        }
        let fields = match resolve_field_path(&message.descriptor(), &name) {
            Ok(fields) => fields,
            Err(_) if options.ignore_unknown => continue,
            Err(message) => return Err(fail(&name, message)),
        };
        if route.path_fields.iter().any(|p| same_path(p, &fields)) {
            return Err(fail(&name, "this field is bound by the URL path".into()));
        }
        if let BodyRule::Field(body) = &route.body
            && fields[0].number() == body.number()
        {
            return Err(fail(&name, format!("this field is bound by the body (`body: \"{}\"`)", body.name())));
        }
        let leaf = fields.last().expect("resolved paths are never empty");
        let parsed = parse_text(leaf, &value).map_err(|m| fail(&name, m))?;
        set_path(message, &fields, parsed);
    }
    Ok(())
}

/// A google.api.HttpBody (or compatible) message holding `data` and its content type.
fn http_body(descriptor: &MessageDescriptor, content_type: &str, data: &[u8]) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    message.set_field_by_name("content_type", Value::String(content_type.to_owned()));
    message.set_field_by_name("data", Value::Bytes(bytes::Bytes::copy_from_slice(data)));
    message
}

/// Form pairs set fields of the body target (the whole message, or the field under `prefix`).
fn bind_form(
    message: &mut DynamicMessage,
    prefix: &[FieldDescriptor],
    body: &[u8],
    options: &JsonOptions,
) -> Result<(), BindError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| BindError::Form { name: String::new(), message: "the form body is not UTF-8".into() })?;
    let target = match prefix.last().map(FieldDescriptor::kind) {
        Some(Kind::Message(target)) => target,
        Some(_) => {
            let name = prefix[0].name().to_owned();
            return Err(BindError::Form { name, message: "a form body needs a message body field".into() });
        }
        None => message.descriptor(),
    };
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let fail = |name: &str, message: String| BindError::Form { name: name.to_owned(), message };
        let name = percent_decode(raw_name, Keep::Nothing, true).map_err(|e| fail(raw_name, e.to_string()))?;
        let value = percent_decode(raw_value, Keep::Nothing, true).map_err(|e| fail(&name, e.to_string()))?;
        let fields = match resolve_field_path(&target, &name) {
            Ok(fields) => fields,
            Err(_) if options.ignore_unknown => continue,
            Err(message) => return Err(fail(&name, message)),
        };
        let parsed =
            parse_text(fields.last().expect("resolved paths are never empty"), &value).map_err(|m| fail(&name, m))?;
        let full: Vec<FieldDescriptor> = prefix.iter().cloned().chain(fields).collect();
        set_path(message, &full, parsed);
    }
    Ok(())
}

fn same_path(a: &[FieldDescriptor], b: &[FieldDescriptor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.number() == y.number())
}

/// Resolves a dotted field name (json or proto names per segment) to a path of fields that a
/// text value can fill (query parameters, form fields, header bindings).
pub fn resolve_field_path(message: &MessageDescriptor, name: &str) -> Result<Vec<FieldDescriptor>, String> {
    let mut current = message.clone();
    let mut fields = Vec::new();
    let parts: Vec<&str> = name.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let field = current
            .get_field_by_json_name(part)
            .or_else(|| current.get_field_by_name(part))
            .ok_or_else(|| format!("`{part}` is not a field of {}", current.full_name()))?;
        let last = i + 1 == parts.len();
        if field.is_map() {
            return Err(format!("`{part}` is a map; maps cannot be set from the query string"));
        }
        match field.kind() {
            Kind::Message(inner) if last && !is_string_like_wkt(inner.full_name()) => {
                return Err(format!("`{part}` is a message; set its fields as `{name}.<field>`"));
            }
            Kind::Message(inner) if !last => {
                if field.is_list() {
                    return Err(format!("`{part}` is a repeated message; it cannot be set from the query string"));
                }
                current = inner;
            }
            _ if !last => return Err(format!("`{part}` is not a message")),
            _ => {}
        }
        fields.push(field);
    }
    Ok(fields)
}

/// Sets (or, for repeated fields, appends) `value` at `fields`, creating parent messages.
fn set_path(message: &mut DynamicMessage, fields: &[FieldDescriptor], value: Value) {
    let (leaf, parents) = fields.split_last().expect("field paths are never empty");
    let mut current = message;
    for parent in parents {
        let slot = current.get_field_mut(parent);
        let Value::Message(inner) = slot else { return };
        current = inner;
    }
    if leaf.is_list() {
        if let Value::List(items) = current.get_field_mut(leaf) {
            items.push(value);
        }
    } else {
        current.set_field(leaf, value);
    }
}

/// Parses a path or query text value for `field` (for repeated fields, one element).
fn parse_text(field: &FieldDescriptor, text: &str) -> Result<Value, String> {
    parse_kind(&field.kind(), text)
}

fn parse_kind(kind: &Kind, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("`{text}` is not {what}");
    Ok(match kind {
        Kind::String => Value::String(text.to_owned()),
        Kind::Bytes => Value::Bytes(decode_base64(text).ok_or_else(|| bad("base64"))?.into()),
        Kind::Bool => Value::Bool(match text {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad("a boolean (true or false)")),
        }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(text.parse().map_err(|_| bad("a 32-bit integer"))?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(text.parse().map_err(|_| bad("a 64-bit integer"))?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(text.parse().map_err(|_| bad("an unsigned 32-bit integer"))?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(text.parse().map_err(|_| bad("an unsigned 64-bit integer"))?),
        Kind::Float => Value::F32(parse_float(text).ok_or_else(|| bad("a number"))? as f32),
        Kind::Double => Value::F64(parse_float(text).ok_or_else(|| bad("a number"))?),
        Kind::Enum(e) => {
            let number = match e.get_value_by_name(text) {
                Some(v) => v.number(),
                None => text.parse::<i32>().ok().filter(|n| e.get_value(*n).is_some()).ok_or_else(|| {
                    let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
                    format!("`{text}` is not a value of {} ({})", e.full_name(), names.join(", "))
                })?,
            };
            Value::EnumNumber(number)
        }
        Kind::Message(m) => Value::Message(parse_well_known(m, text)?),
    })
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok().filter(|f: &f64| f.is_finite()),
    }
}

/// Wrappers take their inner value's text form; Timestamp, Duration and FieldMask their JSON
/// string form.
fn parse_well_known(message: &MessageDescriptor, text: &str) -> Result<DynamicMessage, String> {
    if message.full_name().ends_with("Value")
        && message.package_name() == "google.protobuf"
        && let Some(inner) = message.get_field_by_name("value")
    {
        let mut wrapper = DynamicMessage::new(message.clone());
        wrapper.set_field(&inner, parse_kind(&inner.kind(), text)?);
        return Ok(wrapper);
    }
    let json = serde_json::Value::String(text.to_owned());
    DynamicMessage::deserialize(message.clone(), json)
        .map_err(|e| format!("`{text}` is not a valid {}: {e}", message.full_name()))
}

/// Standard or URL-safe base64, with or without padding (proto3 JSON accepts all four).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(text).ok())
}

/// PATCH: when the request has exactly one top-level FieldMask field and the client left it
/// empty, fill it with the paths of the keys present in the body (nested objects become dotted
/// paths; maps, Struct and well-known values are leaves).
fn fill_update_mask(message: &mut DynamicMessage, body_field: &FieldDescriptor, body: &[u8]) {
    let descriptor = message.descriptor();
    let masks: Vec<FieldDescriptor> = descriptor.fields().filter(|f| is_field_mask(f) && !f.is_list()).collect();
    let [mask] = masks.as_slice() else { return };
    if message.has_field(mask) {
        return;
    }
    let Kind::Message(body_type) = body_field.kind() else { return };
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let mut paths = Vec::new();
    collect_paths(&body_type, &object, "", &mut paths);
    let Kind::Message(mask_type) = mask.kind() else { return };
    let mut value = DynamicMessage::new(mask_type);
    value.set_field_by_name("paths", Value::List(paths.into_iter().map(Value::String).collect()));
    message.set_field(mask, Value::Message(value));
}

fn collect_paths(
    message: &MessageDescriptor,
    object: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for (key, value) in object {
        let Some(field) = message.get_field_by_json_name(key).or_else(|| message.get_field_by_name(key)) else {
            continue;
        };
        let path = if prefix.is_empty() { field.name().to_owned() } else { format!("{prefix}.{}", field.name()) };
        match (field.kind(), value) {
            (Kind::Message(inner), serde_json::Value::Object(nested))
                if !field.is_map() && !field.is_list() && inner.package_name() != "google.protobuf" =>
            {
                collect_paths(&inner, nested, &path, out);
            }
            _ => out.push(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Path, query, form and header values are text; each field kind reads it its own way.
    #[test]
    fn text_values_by_field_kind() {
        let all = crate::transcode::json::mapping_tests::descriptor();
        let field = |name: &str| all.get_field_by_name(name).expect(name);
        let table: &[(&str, &str, Result<&str, &str>)] = &[
            ("i64", "-9223372036854775808", Ok("{\"i64\":\"-9223372036854775808\"}")),
            ("i64", "abc", Err("64-bit integer")),
            ("u64", "-1", Err("unsigned")),
            ("b", "true", Ok("{\"b\":true}")),
            ("b", "yes", Err("boolean")),
            ("d", "Infinity", Ok("{\"d\":\"Infinity\"}")),
            ("by", "-_8", Ok("{\"by\":\"+/8=\"}")),
            ("color", "RED", Ok("{\"color\":\"RED\"}")),
            ("color", "1", Ok("{\"color\":\"RED\"}")),
            ("color", "7", Err("not a value of t.Color")),
            ("w64", "5", Ok("{\"w64\":\"5\"}")),
            ("ts", "2020-01-01T00:00:00Z", Ok("{\"ts\":\"2020-01-01T00:00:00Z\"}")),
            ("ts", "yesterday", Err("google.protobuf.Timestamp")),
            ("dur", "2s", Ok("{\"dur\":\"2s\"}")),
            ("mask", "a,bC", Ok("{\"mask\":\"a,bC\"}")),
        ];
        for (name, text, want) in table {
            let field = field(name);
            let got = parse_text(&field, text).map(|value| {
                let mut message = DynamicMessage::new(all.clone());
                message.set_field(&field, value);
                String::from_utf8(
                    crate::transcode::json::message_to_json(&message, &JsonOptions::default()).expect("writes"),
                )
                .expect("utf8")
            });
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{name}={text}"),
                (Err(error), Err(part)) => assert!(error.contains(part), "{name}={text}: {error}"),
                (got, want) => panic!("{name}={text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn base64_accepts_all_four_alphabets() {
        for text in ["+/8=", "-_8=", "+/8", "-_8"] {
            assert_eq!(decode_base64(text), Some(vec![0xfb, 0xff]), "{text}");
        }
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn floats_accept_the_json_specials_only() {
        assert_eq!(parse_float("1.5"), Some(1.5));
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_float("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_float("inf"), None);
    }

    const WIRE_PROTO: &str = r#"
syntax = "proto3";
package b;
import "google/protobuf/field_mask.proto";
message Inner { string id = 1; int64 n = 2; }
message Req {
  string name = 1; int64 count = 2; Inner inner = 3; repeated string tags = 4; optional int32 maybe = 5;
  oneof pick { string a = 6; string b = 7; }
  google.protobuf.FieldMask mask = 8;
}
service S { rpc Call(Req) returns (Req); }
"#;

    /// The bytes [`bind_request_wire`] builds mean the message [`bind_request`] builds, and a
    /// refusal is the same refusal, whichever way each request goes.
    #[test]
    fn wire_binding_means_the_bound_message() {
        use prost::Message;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.proto"), WIRE_PROTO).expect("write");
        let registration =
            crate::registry::compile_sources(&[dir.path().join("b.proto")], &[dir.path().to_owned()], Some("b"))
                .expect("compiles");
        let pool = crate::registry::merge_registrations(vec![registration]).expect("merges").pool;
        let method = pool.get_service_by_name("b.S").expect("service").methods().next().expect("method");
        let input = method.input();
        let path = |names: &str| -> Vec<FieldDescriptor> {
            let mut message = input.clone();
            names
                .split('.')
                .map(|name| {
                    let field = message.get_field_by_name(name).expect(name);
                    if let Kind::Message(inner) = field.kind() {
                        message = inner;
                    }
                    field
                })
                .collect()
        };
        let route = |body: BodyRule, paths: &[&str]| RestRoute {
            method: method.clone(),
            body,
            response_body: None,
            path_fields: paths.iter().map(|p| path(p)).collect(),
            origin: super::super::routes::RouteOrigin::Annotation,
            input_json: std::sync::Arc::new(super::super::json_wire::JsonCodec::new(input.clone())),
            output_json: std::sync::Arc::new(super::super::json_wire::JsonCodec::new(method.output())),
        };
        let inner = input.get_field_by_name("inner").expect("inner");
        let count = input.get_field_by_name("count").expect("count");
        let tags = input.get_field_by_name("tags").expect("tags");
        // Bodies large enough to be encoded in pieces, their long strings left in the buffer
        // (one with an escape, which is copied), inside a nested message whose length prefix
        // grows past one byte.
        let long = "x".repeat(PIECES_FROM / 2);
        let escaped = format!("{long}\\n{long}");
        let long_whole =
            format!(r#"{{"name":"{long}","tags":["{long}","b","{escaped}"],"inner":{{"id":"{long}","n":"4"}}}}"#);
        let long_inner = format!(r#"{{"id":"{long}{long}","n":"4"}}"#);
        type Case<'a> = (RestRoute, &'a [&'a str], &'a str, Option<&'a str>, bool);
        let table: Vec<Case> = vec![
            (route(BodyRule::Whole, &["count"]), &["3"], &long_whole, Some("maybe=2"), false),
            (route(BodyRule::Whole, &[]), &[], &long_whole, None, false),
            (route(BodyRule::Field(inner.clone()), &["name"]), &["n1"], &long_inner, Some("tags=a"), true),
            (route(BodyRule::Field(inner.clone()), &[]), &[], &long_inner, None, false),
            (route(BodyRule::Whole, &["name"]), &["shelves/1"], r#"{"name":"x","count":5}"#, None, false),
            (route(BodyRule::Whole, &["count"]), &["0"], r#"{"count":5,"name":"x"}"#, None, false),
            (route(BodyRule::Whole, &["inner.id"]), &["7"], r#"{"inner":{"n":3,"id":"z"}}"#, None, false),
            (route(BodyRule::Whole, &["a"]), &["x"], r#"{"b":"y"}"#, None, false),
            (route(BodyRule::Whole, &["maybe"]), &["0"], r#"{"maybe":3}"#, None, false),
            (route(BodyRule::Whole, &[]), &[], r#"{"count":"x"}"#, None, false),
            (route(BodyRule::Whole, &[]), &[], r#"{"tags":["a","b"],"count":"-4"}"#, None, true),
            (route(BodyRule::Whole, &["count"]), &["nine"], r#"{"name":"x"}"#, None, false),
            (route(BodyRule::Whole, &[]), &[], "  ", None, false),
            (route(BodyRule::Field(inner.clone()), &["name"]), &["n1"], r#"{"id":"q","n":"4"}"#, None, false),
            (route(BodyRule::Field(inner.clone()), &["name"]), &["n1"], r#"{"id":"q","n":"4"}"#, None, true),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"#, None, false),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q"}"#, Some("tags=a&tags=b"), false),
            (route(BodyRule::None, &["name"]), &["n"], "", Some("count=3"), false),
            // Query parameters and a PATCH's update mask next to a body read directly.
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q","n":"4"}"#, Some("mask=id"), true),
            (route(BodyRule::Field(inner.clone()), &["name"]), &["n1"], r#"{"id":"q","n":2}"#, None, true),
            (route(BodyRule::Field(inner.clone()), &["name"]), &["n1"], r#"{"id":"q"}"#, Some("count=3&tags=x"), true),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q"}"#, Some("count=0&maybe=0"), false),
            (route(BodyRule::Field(inner.clone()), &["name"]), &["n1"], r#"{"id":"q"}"#, Some("tags=a&mask=n"), false),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q"}"#, Some("inner.id=z"), false),
            (route(BodyRule::Field(inner.clone()), &["name"]), &["n1"], r#"{"id":"q"}"#, Some("name=z"), false),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q"}"#, Some("nope=1"), false),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q"}"#, Some("count=x"), false),
            (route(BodyRule::Whole, &[]), &[], r#"{"count":1}"#, Some("name=z"), false),
            (route(BodyRule::Whole, &[]), &[], r#"{"count":1}"#, None, true),
            // A body that is one field's value, read in place: scalars, lists, null, what
            // follows the value, whitespace around it.
            (route(BodyRule::Field(count.clone()), &["name"]), &["n1"], "7", None, false),
            (route(BodyRule::Field(count.clone()), &[]), &[], r#""-3""#, None, false),
            (route(BodyRule::Field(count.clone()), &[]), &[], "7 8", None, false),
            (route(BodyRule::Field(count.clone()), &[]), &[], "true", None, false),
            (route(BodyRule::Field(tags.clone()), &[]), &[], r#" ["a", "b"] "#, None, false),
            (route(BodyRule::Field(tags.clone()), &[]), &[], r#"["a", null]"#, None, false),
            (route(BodyRule::Field(inner.clone()), &["name"]), &["n1"], "null", None, false),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q"}}"#, None, false),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q","id":"r"}"#, None, false),
            (route(BodyRule::Field(inner.clone()), &[]), &[], r#"{"id":"q","zz":1}"#, None, false),
        ];
        for (route, variables, body, query, is_patch) in &table {
            let variables: Vec<String> = variables.iter().map(|v| (*v).to_owned()).collect();
            let held = bytes::Bytes::copy_from_slice(body.as_bytes());
            let parts = HttpParts {
                variables: &variables,
                query: *query,
                body: &held,
                body_format: BodyFormat::Json,
                headers: &[],
                is_patch: *is_patch,
            };
            // The default limits, and a nesting limit the wrapped reading would count differently.
            for max_depth in [JsonOptions::default().max_depth, 1, 2] {
                let options = JsonOptions { max_depth, ..JsonOptions::default() };
                let whole = bind_request_wire(route, parts, None, &options);
                let in_pieces = bind_request_wire(route, parts, Some(&held), &options);
                let short = || format!("{:.40} with {variables:?} and {query:?}, depth {max_depth}", body);
                assert_eq!(
                    in_pieces.as_ref().map(WireMessage::to_bytes),
                    whole.as_ref().map(WireMessage::to_bytes),
                    "{}: in pieces",
                    short()
                );
                if let (Ok(message), true) = (&in_pieces, held.len() >= PIECES_FROM) {
                    let from_body =
                        message.pieces().iter().filter(|p| held.as_ptr_range().contains(&p.as_ptr())).count();
                    assert!(from_body >= 1, "{}: no piece left in the body", short());
                }
                let wire =
                    whole.map(|message| DynamicMessage::decode(input.clone(), message.to_bytes()).expect("decodes"));
                let bound = bind_request(route, parts, &options).map(|message| {
                    DynamicMessage::decode(input.clone(), message.encode_to_vec().as_slice()).expect("decodes")
                });
                assert_eq!(wire, bound, "{}", short());
            }
        }
    }
}
