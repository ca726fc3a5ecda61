//! JSON → protobuf wire bytes in one pass, driven by the descriptors, for request bodies on
//! the hot path. DynamicMessage stays the reference: the direct transcoder writes only what
//! DynamicMessage would encode for the same document, and hands every document it cannot
//! vouch for (any error, and the rare shapes it does not read itself) to
//! [`json_to_message`], so errors keep their exact wording and position.
//!
//! `plan` works out per-type tables once, `reader` is a strict JSON reader, `encode` the
//! transcoder, `wire` the wire-format writing and `wkt` the timestamp and duration forms.

mod encode;
mod plan;
mod reader;
mod wire;
mod wkt;

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::MessageDescriptor;

pub use plan::WirePlan;

use super::json::{JsonError, JsonOptions, json_to_message};

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
    let mut out = Vec::with_capacity(json.len() / 2 + 16);
    encode::Encoder::new(plan, json, options.max_depth).document(&mut out).ok()?;
    Some(out)
}

/// A message type's plan, worked out on first use: routes are built for every method when a
/// snapshot loads, and most never see a request.
pub struct JsonToWire {
    descriptor: MessageDescriptor,
    plan: OnceLock<WirePlan>,
}

impl JsonToWire {
    /// For messages of type `descriptor`.
    pub fn new(descriptor: MessageDescriptor) -> JsonToWire {
        JsonToWire { descriptor, plan: OnceLock::new() }
    }

    /// The message type.
    pub fn descriptor(&self) -> &MessageDescriptor {
        &self.descriptor
    }

    /// [`json_to_wire`] with this type's plan.
    pub fn encode(&self, json: &[u8], options: &JsonOptions) -> Result<Vec<u8>, JsonError> {
        let plan = self.plan.get_or_init(|| WirePlan::new(&self.descriptor));
        json_to_wire(plan, &self.descriptor, json, options)
    }
}

impl std::fmt::Debug for JsonToWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JsonToWire").field(&self.descriptor.full_name()).finish()
    }
}

#[cfg(test)]
mod oracle_tests;
