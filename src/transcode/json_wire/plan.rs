//! What the direct transcoder knows about a message type, worked out once from the
//! descriptors: each field's wire tag, how its JSON value is read, and a key lookup that
//! answers a JSON key (its JSON name first, then its proto name, as prost-reflect does) with
//! the field's index. Types reachable from the root share one arena, so recursion is by index.

use std::collections::HashMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use super::wire::{Tag, WireType};

/// The plans of a root message type and every type reachable from it.
pub struct WirePlan {
    pub(super) messages: Vec<MessagePlan>,
    pub(super) enums: Vec<EnumPlan>,
    pub(super) root: usize,
}

impl std::fmt::Debug for WirePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WirePlan").field("messages", &self.messages.len()).field("enums", &self.enums.len()).finish()
    }
}

/// A scalar proto type: how its JSON is read and its value encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
}

impl Scalar {
    fn of(kind: &Kind) -> Option<Scalar> {
        Some(match kind {
            Kind::Double => Scalar::Double,
            Kind::Float => Scalar::Float,
            Kind::Int32 => Scalar::Int32,
            Kind::Int64 => Scalar::Int64,
            Kind::Uint32 => Scalar::Uint32,
            Kind::Uint64 => Scalar::Uint64,
            Kind::Sint32 => Scalar::Sint32,
            Kind::Sint64 => Scalar::Sint64,
            Kind::Fixed32 => Scalar::Fixed32,
            Kind::Fixed64 => Scalar::Fixed64,
            Kind::Sfixed32 => Scalar::Sfixed32,
            Kind::Sfixed64 => Scalar::Sfixed64,
            Kind::Bool => Scalar::Bool,
            Kind::String => Scalar::String,
            Kind::Bytes => Scalar::Bytes,
            Kind::Message(_) | Kind::Enum(_) => return None,
        })
    }

    pub(super) fn wire_type(self) -> WireType {
        match self {
            Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => WireType::Fixed64,
            Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => WireType::Fixed32,
            Scalar::String | Scalar::Bytes => WireType::Len,
            _ => WireType::Varint,
        }
    }
}

/// What a field's (or list element's, or map value's) JSON value holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum ValueKind {
    Scalar(Scalar),
    /// An enum, by index into [`WirePlan::enums`].
    Enum(usize),
    /// A message, by index into [`WirePlan::messages`].
    Message(usize),
}

impl ValueKind {
    pub(super) fn wire_type(self) -> WireType {
        match self {
            ValueKind::Scalar(scalar) => scalar.wire_type(),
            ValueKind::Enum(_) => WireType::Varint,
            ValueKind::Message(_) => WireType::Len,
        }
    }
}

/// How many values a field holds.
#[derive(Debug)]
pub(super) enum Shape {
    /// One value; `presence` says whether a default value is still written.
    Single { presence: bool },
    /// A JSON array; packed fields write all elements in one length-delimited record.
    List { packed: bool },
    /// A JSON object whose keys are map keys of type `key`, and values as `value` says.
    Map { key: Scalar, value: Box<FieldPlan> },
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct FieldPlan {
    /// The field number.
    pub(super) number: u32,
    /// `"jsonName":` and `"proto_name":`, escaped, as the writer puts them before a value.
    pub(super) json_key: Box<str>,
    pub(super) proto_key: Box<str>,
    /// The tag of one element (for a packed list, of the whole record: wire type 2).
    pub(super) tag: Tag,
    pub(super) kind: ValueKind,
    pub(super) shape: Shape,
    /// The index of its oneof among the message's oneofs.
    pub(super) oneof: Option<u8>,
    /// JSON null is a value here (google.protobuf.Value, NullValue), not "absent".
    pub(super) null_is_value: bool,
}

/// The message types the JSON mapping reads specially, and plain ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MessageShape {
    Plain,
    Timestamp,
    Duration,
    Struct,
    ListValue,
    Value,
    Empty,
    /// A wrapper type (`google.protobuf.Int64Value`, ...) holding one scalar in field 1.
    Wrapper(Scalar),
    /// A type this transcoder leaves to DynamicMessage (Any, FieldMask, more than 64 oneofs).
    Unsupported,
}

/// One message type.
#[derive(Debug)]
pub(super) struct MessagePlan {
    pub(super) shape: MessageShape,
    pub(super) fields: Vec<FieldPlan>,
    /// The pool extends it: a field number it does not declare may be an extension, which
    /// DynamicMessage writes as JSON.
    pub(super) extended: bool,
    names: Names,
}

impl MessagePlan {
    /// The index of the field a JSON key names.
    #[inline]
    pub(super) fn field_index(&self, key: &str) -> Option<usize> {
        self.lookup(key)
    }

    /// The index of the field numbered `number` (fields are in number order).
    #[inline]
    pub(super) fn index_of_number(&self, number: u32) -> Option<usize> {
        self.fields.binary_search_by_key(&number, |field| field.number).ok()
    }

    #[inline]
    fn lookup(&self, key: &str) -> Option<usize> {
        match &self.names {
            Names::Few(names) => names.iter().find(|(name, _)| &**name == key).map(|(_, index)| *index as usize),
            Names::Many(names) => names.get(key).map(|index| *index as usize),
        }
    }
}

/// Key lookup: a scan for small messages, a hash map for large ones.
#[derive(Debug)]
enum Names {
    Few(Vec<(Box<str>, u32)>),
    Many(HashMap<Box<str>, u32, foldhash::fast::RandomState>),
}

/// An enum's values by name.
#[derive(Debug)]
pub(super) struct EnumPlan {
    values: Vec<(Box<str>, i32)>,
}

impl EnumPlan {
    #[inline]
    pub(super) fn number(&self, name: &str) -> Option<i32> {
        self.values.iter().find(|(value, _)| &**value == name).map(|(_, number)| *number)
    }

    /// The name of the (first) value numbered `number`.
    #[inline]
    pub(super) fn name(&self, number: i32) -> Option<&str> {
        self.values.iter().find(|(_, value)| *value == number).map(|(name, _)| &**name)
    }
}

/// Messages with at most this many keys (JSON and proto names) are looked up by scanning.
const SCAN_LIMIT: usize = 16;

impl WirePlan {
    /// Works out the plans of `root` and every message and enum type reachable from it.
    pub fn new(root: &MessageDescriptor) -> WirePlan {
        let mut builder = Builder::default();
        let root = builder.message(root);
        WirePlan { messages: builder.messages, enums: builder.enums, root }
    }
}

#[derive(Default)]
struct Builder {
    messages: Vec<MessagePlan>,
    enums: Vec<EnumPlan>,
    message_ids: HashMap<String, usize>,
    enum_ids: HashMap<String, usize>,
}

impl Builder {
    fn message(&mut self, descriptor: &MessageDescriptor) -> usize {
        if let Some(&id) = self.message_ids.get(descriptor.full_name()) {
            return id;
        }
        let id = self.messages.len();
        self.messages.push(MessagePlan {
            shape: MessageShape::Unsupported,
            fields: Vec::new(),
            extended: false,
            names: Names::Few(Vec::new()),
        });
        self.message_ids.insert(descriptor.full_name().to_owned(), id);
        let shape = match descriptor.full_name() {
            "google.protobuf.Timestamp" => MessageShape::Timestamp,
            "google.protobuf.Duration" => MessageShape::Duration,
            "google.protobuf.Struct" => MessageShape::Struct,
            "google.protobuf.ListValue" => MessageShape::ListValue,
            "google.protobuf.Value" => MessageShape::Value,
            "google.protobuf.Empty" => MessageShape::Empty,
            "google.protobuf.DoubleValue" => MessageShape::Wrapper(Scalar::Double),
            "google.protobuf.FloatValue" => MessageShape::Wrapper(Scalar::Float),
            "google.protobuf.Int64Value" => MessageShape::Wrapper(Scalar::Int64),
            "google.protobuf.UInt64Value" => MessageShape::Wrapper(Scalar::Uint64),
            "google.protobuf.Int32Value" => MessageShape::Wrapper(Scalar::Int32),
            "google.protobuf.UInt32Value" => MessageShape::Wrapper(Scalar::Uint32),
            "google.protobuf.BoolValue" => MessageShape::Wrapper(Scalar::Bool),
            "google.protobuf.StringValue" => MessageShape::Wrapper(Scalar::String),
            "google.protobuf.BytesValue" => MessageShape::Wrapper(Scalar::Bytes),
            "google.protobuf.Any" | "google.protobuf.FieldMask" => MessageShape::Unsupported,
            // Groups have their own wire types; more than 64 oneofs do not fit the writer's mask.
            _ if descriptor.oneofs().len() > 64 || descriptor.fields().any(|f| f.is_group()) => {
                MessageShape::Unsupported
            }
            _ => MessageShape::Plain,
        };
        if shape != MessageShape::Plain {
            self.messages[id].shape = shape;
            return id;
        }
        let oneofs: Vec<String> = descriptor.oneofs().map(|o| o.full_name().to_owned()).collect();
        let fields: Vec<FieldPlan> = descriptor.fields().map(|field| self.field(&field, &oneofs)).collect();
        let mut keys: Vec<(Box<str>, u32)> = Vec::new();
        // JSON names first: a key that is one field's JSON name and another's proto name
        // names the first, as prost-reflect reads it.
        for (index, field) in descriptor.fields().enumerate() {
            keys.push((field.json_name().into(), index as u32));
        }
        for (index, field) in descriptor.fields().enumerate() {
            if !keys.iter().any(|(key, _)| &**key == field.name()) {
                keys.push((field.name().into(), index as u32));
            }
        }
        let names =
            if keys.len() <= SCAN_LIMIT { Names::Few(keys) } else { Names::Many(keys.into_iter().rev().collect()) };
        let extended = descriptor.extensions().len() > 0;
        self.messages[id] = MessagePlan { shape, fields, extended, names };
        id
    }

    fn enumeration(&mut self, descriptor: &EnumDescriptor) -> usize {
        if let Some(&id) = self.enum_ids.get(descriptor.full_name()) {
            return id;
        }
        let values = descriptor.values().map(|value| (value.name().into(), value.number())).collect();
        self.enums.push(EnumPlan { values });
        self.enum_ids.insert(descriptor.full_name().to_owned(), self.enums.len() - 1);
        self.enums.len() - 1
    }

    fn value_kind(&mut self, kind: &Kind) -> ValueKind {
        match kind {
            Kind::Message(message) => ValueKind::Message(self.message(message)),
            Kind::Enum(enumeration) => ValueKind::Enum(self.enumeration(enumeration)),
            scalar => ValueKind::Scalar(Scalar::of(scalar).expect("every other kind is a scalar")),
        }
    }

    fn field(&mut self, field: &FieldDescriptor, oneofs: &[String]) -> FieldPlan {
        let kind = field.kind();
        let null_is_value = match &kind {
            Kind::Message(message) => message.full_name() == "google.protobuf.Value",
            Kind::Enum(enumeration) => enumeration.full_name() == "google.protobuf.NullValue",
            _ => false,
        };
        let oneof = field
            .containing_oneof()
            .and_then(|oneof| oneofs.iter().position(|name| name == oneof.full_name()))
            .map(|index| index as u8);
        if field.is_map() {
            let Kind::Message(entry) = &kind else { unreachable!("a map field's kind is its entry message") };
            let key_field = entry.map_entry_key_field();
            let value_field = entry.map_entry_value_field();
            let key = Scalar::of(&key_field.kind()).expect("map keys are scalars");
            let value_kind = self.value_kind(&value_field.kind());
            let value = FieldPlan {
                number: 2,
                json_key: key_text("value"),
                proto_key: key_text("value"),
                tag: Tag::new(2, value_kind.wire_type()),
                kind: value_kind,
                shape: Shape::Single { presence: true },
                oneof: None,
                null_is_value: false,
            };
            return FieldPlan {
                number: field.number(),
                json_key: key_text(field.json_name()),
                proto_key: key_text(field.name()),
                tag: Tag::new(field.number(), WireType::Len),
                kind: value_kind,
                shape: Shape::Map { key, value: Box::new(value) },
                oneof,
                null_is_value,
            };
        }
        let value_kind = self.value_kind(&kind);
        if field.is_list() {
            let packed = field.is_packed();
            let wire_type = if packed { WireType::Len } else { value_kind.wire_type() };
            return FieldPlan {
                number: field.number(),
                json_key: key_text(field.json_name()),
                proto_key: key_text(field.name()),
                tag: Tag::new(field.number(), wire_type),
                kind: value_kind,
                shape: Shape::List { packed },
                oneof,
                null_is_value,
            };
        }
        FieldPlan {
            number: field.number(),
            json_key: key_text(field.json_name()),
            proto_key: key_text(field.name()),
            tag: Tag::new(field.number(), value_kind.wire_type()),
            kind: value_kind,
            shape: Shape::Single { presence: field.supports_presence() },
            oneof,
            null_is_value,
        }
    }
}

/// `"name":` with the name escaped as JSON.
fn key_text(name: &str) -> Box<str> {
    let mut text = serde_json::to_string(name).expect("a string serializes");
    text.push(':');
    text.into()
}
