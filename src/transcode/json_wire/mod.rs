//! proto3 JSON ⇄ protobuf wire bytes in one pass, driven by the descriptors, for bodies on
//! the hot path. DynamicMessage stays the reference both ways: the direct transcoders write
//! only what DynamicMessage would write for the same input, and hand everything they cannot
//! vouch for (any error, and the rare shapes they do not handle themselves) to
//! [`json_to_message`] and [`message_to_json`], so errors keep their exact wording.
//!
//! `plan` works out per-type tables once; `reader` is a strict JSON reader and `encode` the
//! JSON → wire transcoder; `wire` reads and writes the wire format and `write` is the wire →
//! JSON writer, with `json_out` for JSON text; `wkt` parses timestamps and durations.

mod encode;
mod json_out;
mod plan;
mod reader;
mod wire;
mod wire_out;
mod wkt;
mod write;

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::MessageDescriptor;

pub use plan::WirePlan;
use wire_out::WireOut;

use super::json::{JsonError, JsonOptions, NoJsonForm, json_to_message, message_to_json};

/// Encodes `json` as a message of the plan's root type, directly when it can and through
/// DynamicMessage when it cannot; the bytes decode to the same message either way.
pub fn json_to_wire(
    plan: &WirePlan,
    descriptor: &MessageDescriptor,
    json: &[u8],
    options: &JsonOptions,
) -> Result<Vec<u8>, JsonError> {
    match direct(plan, json, options) {
        Some(bytes) => Ok(bytes),
        None => Ok(json_to_message(descriptor.clone(), json, options)?.encode_to_vec()),
    }
}

/// The direct transcoder alone: None where it leaves the document to DynamicMessage.
pub fn direct(plan: &WirePlan, json: &[u8], options: &JsonOptions) -> Option<Vec<u8>> {
    // Wire bytes are almost always smaller than their JSON (Struct numbers are the exception),
    // so this seldom grows, and a grown buffer would briefly hold both copies.
    let mut out = WireOut::copying(json.len() + 16);
    encode::Encoder::new(plan, json, options.max_depth, options.ignore_unknown).document(&mut out).ok()?;
    Some(out.into_vec())
}

/// [`direct`] for a document that is the value of the root's field `name` (a route's
/// `body: "field"`), without copying it into a wrapping object: None where it leaves the
/// document to DynamicMessage.
pub fn direct_field(plan: &WirePlan, name: &str, json: &[u8], options: &JsonOptions) -> Option<Vec<u8>> {
    // The field's tag and length prefix: at most 5 + 10 bytes.
    let mut out = WireOut::copying(json.len() + 16);
    encode::Encoder::new(plan, json, options.max_depth, options.ignore_unknown).field_document(name, &mut out).ok()?;
    Some(out.into_vec())
}

/// Strings at least this long are left in the client's JSON by [`direct_pieces`].
const LEAVE_FROM: usize = 4 * 1024;

/// [`direct`] (or, with `field`, [`direct_field`]) leaving every string of 4 KiB or more
/// without escapes in `json`: the message is the encoder's own bytes with slices of `json`
/// between them, byte for byte the same message. None where it leaves the document to
/// DynamicMessage.
pub fn direct_pieces(
    plan: &WirePlan,
    field: Option<&str>,
    json: &bytes::Bytes,
    options: &JsonOptions,
) -> Option<crate::wire_message::WireMessage> {
    pieces_leaving(plan, field, json, options, LEAVE_FROM)
}

/// [`direct_pieces`] leaving strings of `leave_from` bytes or more.
fn pieces_leaving(
    plan: &WirePlan,
    field: Option<&str>,
    json: &bytes::Bytes,
    options: &JsonOptions,
    leave_from: usize,
) -> Option<crate::wire_message::WireMessage> {
    // Own bytes are the tags, lengths, numbers and short strings between the long ones: few,
    // when the body's bulk is long strings; the buffer grows when it is not.
    let mut out = WireOut::leaving(json.len().min(4 * 1024), leave_from);
    let encoder = encode::Encoder::new(plan, json, options.max_depth, options.ignore_unknown);
    match field {
        None => encoder.document(&mut out),
        Some(name) => encoder.field_document(name, &mut out),
    }
    .ok()?;
    Some(out.into_message(json))
}

/// Why wire bytes could not be written as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireToJsonError {
    /// The bytes are not a message of the type.
    #[error("the bytes are not a valid {type_name}")]
    Undecodable {
        /// The message type's full name.
        type_name: String,
    },
    /// The message decodes but proto3 JSON cannot say it.
    #[error(transparent)]
    NoJsonForm(#[from] NoJsonForm),
}

/// Writes protobuf `bytes` of the plan's root type as proto3 JSON, directly when it can and
/// through DynamicMessage when it cannot; the JSON is what [`message_to_json`] writes.
pub fn wire_to_json(
    plan: &WirePlan,
    descriptor: &MessageDescriptor,
    bytes: &[u8],
    options: &JsonOptions,
) -> Result<Vec<u8>, WireToJsonError> {
    if let Some(json) = write_direct(plan, bytes, options) {
        return Ok(json);
    }
    let message = prost_reflect::DynamicMessage::decode(descriptor.clone(), bytes)
        .map_err(|_| WireToJsonError::Undecodable { type_name: descriptor.full_name().to_owned() })?;
    Ok(message_to_json(&message, options)?)
}

/// The direct writer alone: None where it leaves the bytes to DynamicMessage.
pub fn write_direct(plan: &WirePlan, bytes: &[u8], options: &JsonOptions) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json_capacity(bytes.len()));
    write::Writer::new(plan, options.emit_defaults, options.proto_names).document(bytes, &mut out).ok()?;
    Some(out)
}

/// The length of the JSON [`write_direct`] writes for `bytes`, found by writing it in pieces
/// that are counted and dropped (so a large answer's length is known, and the writer is known to
/// vouch for it, before any of it is sent): None where the direct writer leaves the bytes to
/// DynamicMessage.
pub fn direct_len(plan: &WirePlan, bytes: &[u8], options: &JsonOptions) -> Option<usize> {
    const PIECE: usize = 16 * 1024;
    let mut counted = 0;
    let mut count = |out: &mut Vec<u8>| {
        counted += out.len();
        out.clear();
        Ok(())
    };
    let mut out = Vec::with_capacity(PIECE + PIECE / 4);
    write::Writer::streaming(plan, options.emit_defaults, options.proto_names, PIECE, &mut count)
        .document(bytes, &mut out)
        .ok()?;
    Some(counted + out.len())
}

/// [`write_direct`] handing its output to `hand_on` in pieces of about `at` bytes as it is
/// written, the last one when the document is whole; `hand_on` answers false to stop. True
/// once every piece is handed on; false where the writer stopped, or where it leaves the bytes
/// to DynamicMessage (which [`direct_len`] tells beforehand).
pub fn write_direct_in_pieces(
    plan: &WirePlan,
    bytes: &[u8],
    options: &JsonOptions,
    at: usize,
    hand_on: &mut dyn FnMut(Vec<u8>) -> bool,
) -> bool {
    // A piece may run past `at` by the field or escape that crossed it.
    let capacity = at + at / 4;
    let mut give = |out: &mut Vec<u8>| {
        let piece = std::mem::replace(out, Vec::with_capacity(capacity));
        if hand_on(piece) { Ok(()) } else { Err(reader::Fallback) }
    };
    let mut out = Vec::with_capacity(capacity);
    let written = write::Writer::streaming(plan, options.emit_defaults, options.proto_names, at, &mut give)
        .document(bytes, &mut out)
        .is_ok();
    written && (out.is_empty() || hand_on(out))
}

/// Messages from this size on are written into a buffer reserved tightly.
const LARGE_WIRE: usize = 16 * 1024;

/// The buffer reserved for the JSON of `wire` bytes. JSON is larger than its wire bytes by the
/// field names and quoting, so a small message gets half again (growing costs more than the
/// spare bytes). A large message's size is nearly all in a few long strings or bytes, whose JSON
/// is about as long (a third more for base64): it gets an eighth more, because the answer's wire
/// bytes are live beside this buffer and a request in flight should hold little more than the
/// two (`cargo bench --bench request_memory`); one that outgrows it grows as a Vec does.
fn json_capacity(wire: usize) -> usize {
    if wire < LARGE_WIRE { wire + wire / 2 + 64 } else { wire + wire / 8 + 64 }
}

/// One message type's transcoders, its plan worked out on first use: routes are built for
/// every method when a snapshot loads, and most never see a request.
pub struct JsonCodec {
    descriptor: MessageDescriptor,
    plan: OnceLock<WirePlan>,
}

impl JsonCodec {
    /// For messages of type `descriptor`.
    pub fn new(descriptor: MessageDescriptor) -> JsonCodec {
        JsonCodec { descriptor, plan: OnceLock::new() }
    }

    /// The message type.
    pub fn descriptor(&self) -> &MessageDescriptor {
        &self.descriptor
    }

    fn plan(&self) -> &WirePlan {
        self.plan.get_or_init(|| WirePlan::new(&self.descriptor))
    }

    /// [`json_to_wire`] with this type's plan.
    pub fn encode(&self, json: &[u8], options: &JsonOptions) -> Result<Vec<u8>, JsonError> {
        json_to_wire(self.plan(), &self.descriptor, json, options)
    }

    /// [`direct_pieces`] with this type's plan.
    pub fn encode_pieces(
        &self,
        field: Option<&str>,
        json: &bytes::Bytes,
        options: &JsonOptions,
    ) -> Option<crate::wire_message::WireMessage> {
        direct_pieces(self.plan(), field, json, options)
    }

    /// [`direct_field`] with this type's plan.
    pub fn encode_field_direct(&self, name: &str, json: &[u8], options: &JsonOptions) -> Option<Vec<u8>> {
        direct_field(self.plan(), name, json, options)
    }

    /// [`wire_to_json`] with this type's plan.
    pub fn to_json(&self, bytes: &[u8], options: &JsonOptions) -> Result<Vec<u8>, WireToJsonError> {
        wire_to_json(self.plan(), &self.descriptor, bytes, options)
    }

    /// [`direct_len`] with this type's plan.
    pub fn direct_len(&self, bytes: &[u8], options: &JsonOptions) -> Option<usize> {
        direct_len(self.plan(), bytes, options)
    }

    /// [`write_direct_in_pieces`] with this type's plan.
    pub fn write_in_pieces(
        &self,
        bytes: &[u8],
        options: &JsonOptions,
        at: usize,
        hand_on: &mut dyn FnMut(Vec<u8>) -> bool,
    ) -> bool {
        write_direct_in_pieces(self.plan(), bytes, options, at, hand_on)
    }
}

/// Codecs by message type, made on first use and kept with the snapshot that owns the types
/// (a codec of another pool's type of the same name is replaced, never reused).
#[derive(Default)]
pub struct JsonCodecs {
    by_name: std::sync::RwLock<std::collections::HashMap<Box<str>, std::sync::Arc<JsonCodec>>>,
}

impl JsonCodecs {
    /// The codec for `message`.
    pub fn get(&self, message: &MessageDescriptor) -> std::sync::Arc<JsonCodec> {
        let found = self.by_name.read().unwrap_or_else(|p| p.into_inner()).get(message.full_name()).cloned();
        if let Some(codec) = found.filter(|codec| codec.descriptor() == message) {
            return codec;
        }
        let codec = std::sync::Arc::new(JsonCodec::new(message.clone()));
        self.by_name.write().unwrap_or_else(|p| p.into_inner()).insert(message.full_name().into(), codec.clone());
        codec
    }
}

/// A copy starts empty: its types may come from another pool.
impl Clone for JsonCodecs {
    fn clone(&self) -> JsonCodecs {
        JsonCodecs::default()
    }
}

impl std::fmt::Debug for JsonCodecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.by_name.read().map(|map| map.len()).unwrap_or_default();
        f.debug_struct("JsonCodecs").field("types", &count).finish()
    }
}

impl std::fmt::Debug for JsonCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JsonCodec").field(&self.descriptor.full_name()).finish()
    }
}

#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod write_oracle_tests;
