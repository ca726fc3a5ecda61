//! The proto3 JSON mapping both ways over every message type of the demo pool (Struct, Any,
//! Timestamp, Duration, wrappers, maps, oneofs, int64s and enums among them). The first byte
//! picks the message type and the direction:
//!
//! - even: the rest is JSON. Transcoding never panics; an accepted message written back to JSON
//!   and read again is the same message, and its protobuf encoding decodes to it too. The
//!   direct JSON → wire transcoder agrees with DynamicMessage, its oracle: what it accepts,
//!   DynamicMessage accepts, and its bytes decode to the same message.
//! - odd: the rest is protobuf. A decoded message is written to JSON, and that JSON must be
//!   accepted again (what the gateway writes, it reads).

use prost::Message;
use prost_reflect::DynamicMessage;
use switchyard::transcode::json::{JsonOptions, json_to_message, message_to_json};
use switchyard::transcode::json_wire::{WirePlan, direct};

pub(crate) fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let pool = super::demo_pool();
    let mut messages: Vec<_> = pool.all_messages().collect();
    messages.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    let descriptor = messages[usize::from(pick >> 1) % messages.len()].clone();
    let options = JsonOptions::default();
    let name = descriptor.full_name().to_owned();
    if pick & 1 == 0 {
        let fast = direct(&WirePlan::new(&descriptor), rest, &options);
        let oracle = json_to_message(descriptor.clone(), rest, &options);
        if let Some(bytes) = &fast {
            let Ok(message) = &oracle else {
                panic!("{name}: the direct transcoder accepts what DynamicMessage refuses: {oracle:?}")
            };
            let ours = DynamicMessage::decode(descriptor.clone(), bytes.as_slice())
                .unwrap_or_else(|e| panic!("{name}: the direct bytes do not decode: {e}"));
            let theirs = DynamicMessage::decode(descriptor.clone(), message.encode_to_vec().as_slice())
                .expect("DynamicMessage's bytes decode");
            assert_eq!(ours, theirs, "{name}: the direct bytes mean another message");
        }
        let Ok(message) = oracle else { return };
        let written = message_to_json(&message, &options)
            .unwrap_or_else(|e| panic!("{name}: a message read from JSON cannot be written back: {e}"));
        let again = json_to_message(descriptor.clone(), &written, &options)
            .unwrap_or_else(|e| panic!("{name}: our own JSON {:?} is refused: {e}", String::from_utf8_lossy(&written)));
        assert_eq!(again, message, "{name}: JSON round trip through {}", String::from_utf8_lossy(&written));
        let decoded = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
            .unwrap_or_else(|e| panic!("{name}: our own encoding does not decode: {e}"));
        assert_eq!(decoded, message, "{name}: protobuf round trip");
    } else {
        let Ok(message) = DynamicMessage::decode(descriptor.clone(), rest) else { return };
        // A backend can send what JSON cannot say (a timestamp past 9999): an error, not a panic.
        let Ok(written) = message_to_json(&message, &options) else { return };
        if let Err(e) = json_to_message(descriptor, &written, &options) {
            panic!("{name}: JSON written for a decoded message is refused: {e}: {}", String::from_utf8_lossy(&written));
        }
    }
}
