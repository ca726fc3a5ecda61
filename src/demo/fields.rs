//! Small typed accessors over `DynamicMessage` fields for the demo backend's logic.

use std::time::{SystemTime, UNIX_EPOCH};

use prost_reflect::{DynamicMessage, MessageDescriptor, Value};

pub(super) fn string(message: &DynamicMessage, field: &str) -> String {
    match message.get_field_by_name(field).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

pub(super) fn int(message: &DynamicMessage, field: &str) -> i64 {
    match message.get_field_by_name(field).as_deref() {
        Some(Value::I32(v)) => i64::from(*v),
        Some(Value::I64(v)) => *v,
        Some(Value::EnumNumber(v)) => i64::from(*v),
        _ => 0,
    }
}

pub(super) fn message(message: &DynamicMessage, field: &str) -> Option<DynamicMessage> {
    if !message.has_field_by_name(field) {
        return None;
    }
    match message.get_field_by_name(field).as_deref() {
        Some(Value::Message(m)) => Some(m.clone()),
        _ => None,
    }
}

pub(super) fn strings(message: &DynamicMessage, field: &str) -> Vec<String> {
    match message.get_field_by_name(field).as_deref() {
        Some(Value::List(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn set(message: &mut DynamicMessage, field: &str, value: Value) {
    message.set_field_by_name(field, value);
}

/// A google.protobuf.Timestamp message for `time`.
pub(super) fn timestamp(descriptor: &MessageDescriptor, time: SystemTime) -> DynamicMessage {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    timestamp_at(descriptor, seconds, i32::try_from(since.subsec_nanos()).unwrap_or(0))
}

/// A google.protobuf.Timestamp message for seconds and nanos since the Unix epoch.
pub(super) fn timestamp_at(descriptor: &MessageDescriptor, seconds: i64, nanos: i32) -> DynamicMessage {
    let mut ts = DynamicMessage::new(descriptor.clone());
    ts.set_field_by_name("seconds", Value::I64(seconds));
    ts.set_field_by_name("nanos", Value::I32(nanos));
    ts
}
