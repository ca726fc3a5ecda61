//! The direct transcoder: reads a JSON document once and writes protobuf wire bytes as it
//! goes, steered by the [`WirePlan`]. It writes what `DynamicMessage` would encode for the same
//! document (fields in document order; decoders merge the same way) and answers [`Fallback`]
//! wherever it cannot vouch for that: unknown keys (unless a lenient profile skips them),
//! duplicates, nulls in lists, non-canonical timestamps, Any, anything deeper than the limit.

use std::borrow::Cow;

use base64::Engine;

use super::plan::{FieldPlan, MessagePlan, MessageShape, Scalar, Shape, ValueKind, WirePlan};
use super::reader::{Fallback, Fast, Integer, Reader};
use super::wire::{Tag, bytes, varint, zigzag32, zigzag64};
use super::wire_out::{WireOut, close_len, open_len};
use super::wkt;

pub(super) struct Encoder<'a, 'p> {
    reader: Reader<'a>,
    /// The document, where strings read without escapes lie.
    json: &'a [u8],
    plan: &'p WirePlan,
    /// Objects and arrays open now, and how many may be.
    open: usize,
    limit: usize,
    /// Unknown keys are skipped (a lenient JSON profile) rather than refused.
    ignore_unknown: bool,
}

impl<'a, 'p> Encoder<'a, 'p> {
    pub(super) fn new(plan: &'p WirePlan, json: &'a [u8], limit: usize, ignore_unknown: bool) -> Encoder<'a, 'p> {
        Encoder { reader: Reader::new(json), json, plan, open: 0, limit, ignore_unknown }
    }

    /// A string value with its length: the output may leave it in the document when it lies
    /// there as it is (read without escapes, so borrowed from it; an unescaped copy is not).
    #[inline]
    fn string_value(&self, text: &str, out: &mut WireOut) {
        let json = self.json.as_ptr_range();
        let within = json.start <= text.as_ptr() && text.as_bytes().as_ptr_range().end <= json.end;
        let in_json = within.then(|| text.as_ptr() as usize - json.start as usize);
        out.string(text.as_bytes(), in_json);
    }

    /// The whole document as the plan's root message.
    pub(super) fn document(mut self, out: &mut WireOut) -> Fast<()> {
        let root = &self.plan.messages[self.plan.root];
        if root.shape != MessageShape::Plain {
            return Err(Fallback);
        }
        self.plain(root, out)?;
        if self.reader.at_end() { Ok(()) } else { Err(Fallback) }
    }

    /// The whole document as the value of the root message's field `name` (a route's
    /// `body: "field"`): what the document `{"name": document}` encodes to, read without
    /// writing that wrapper. The wrapper's level of nesting is not counted, so the limit is the
    /// client's own.
    pub(super) fn field_document(mut self, name: &str, out: &mut WireOut) -> Fast<()> {
        let root = &self.plan.messages[self.plan.root];
        if root.shape != MessageShape::Plain {
            return Err(Fallback);
        }
        let field = &root.fields[root.field_index(name).ok_or(Fallback)?];
        if self.reader.peek() == Some(b'n') {
            // null is "not set", except where it is a value of its own.
            if field.null_is_value {
                return Err(Fallback);
            }
            self.reader.literal(b"null")?;
        } else {
            self.field(field, out)?;
        }
        if self.reader.at_end() { Ok(()) } else { Err(Fallback) }
    }

    /// Opens an object or array, within the nesting limit.
    #[inline]
    fn enter(&mut self, bracket: u8) -> Fast<()> {
        if self.open >= self.limit {
            return Err(Fallback);
        }
        self.reader.eat(bracket)?;
        self.open += 1;
        Ok(())
    }

    /// After [`enter`](Self::enter): true (and closed) when the container is empty.
    #[inline]
    fn empty(&mut self, close: u8) -> Fast<bool> {
        if self.reader.peek() == Some(close) {
            self.reader.eat(close)?;
            self.open -= 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// A JSON value read as message type `id`, written as that message's fields.
    fn message(&mut self, id: usize, out: &mut WireOut) -> Fast<()> {
        let plan = self.plan;
        let message = &plan.messages[id];
        match message.shape {
            MessageShape::Plain => self.plain(message, out),
            MessageShape::Timestamp => {
                let text = self.reader.string()?;
                let (seconds, nanos) = wkt::timestamp(&text)?;
                seconds_and_nanos(out, seconds, nanos);
                Ok(())
            }
            MessageShape::Duration => {
                let text = self.reader.string()?;
                let (seconds, nanos) = wkt::duration(&text)?;
                seconds_and_nanos(out, seconds, nanos);
                Ok(())
            }
            MessageShape::Struct => self.structure(out),
            MessageShape::ListValue => self.list_value(out),
            MessageShape::Value => self.value(out),
            MessageShape::Empty => {
                self.enter(b'{')?;
                if self.empty(b'}')? { Ok(()) } else { Err(Fallback) }
            }
            MessageShape::Wrapper(scalar) => {
                if self.reader.peek() == Some(b'n') {
                    return Err(Fallback);
                }
                self.scalar_field(Tag::new(1, scalar.wire_type()), scalar, false, out)
            }
            MessageShape::Unsupported => Err(Fallback),
        }
    }

    /// A JSON object read as a plain message.
    fn plain(&mut self, message: &MessagePlan, out: &mut WireOut) -> Fast<()> {
        self.enter(b'{')?;
        if self.empty(b'}')? {
            return Ok(());
        }
        let mut seen = Seen::new(message.fields.len());
        let mut oneofs = 0u64;
        let mut unknown: Vec<Cow<'a, str>> = Vec::new();
        loop {
            let key = self.reader.string()?;
            let Some(index) = message.field_index(&key) else {
                // Refused, or skipped by a lenient profile. `[pkg.ext]` names an extension,
                // which DynamicMessage reads rather than skips.
                if !self.ignore_unknown || key.starts_with('[') {
                    return Err(Fallback);
                }
                self.reader.eat(b':')?;
                self.skip_value()?;
                unknown.push(key);
                if !self.reader.more(b'}')? {
                    break;
                }
                continue;
            };
            if !seen.insert(index) {
                return Err(Fallback);
            }
            self.reader.eat(b':')?;
            let field = &message.fields[index];
            if self.reader.peek() == Some(b'n') {
                // null is "not set", except where it is a value of its own.
                if field.null_is_value {
                    return Err(Fallback);
                }
                self.reader.literal(b"null")?;
            } else {
                if let Some(oneof) = field.oneof {
                    let bit = 1u64 << oneof;
                    if oneofs & bit != 0 {
                        return Err(Fallback);
                    }
                    oneofs |= bit;
                }
                self.field(field, out)?;
            }
            if !self.reader.more(b'}')? {
                break;
            }
        }
        // An unknown key given twice is refused like any other duplicate.
        if has_duplicate(&mut unknown) {
            return Err(Fallback);
        }
        self.open -= 1;
        Ok(())
    }

    /// Reads any JSON value and writes nothing: it is read as a google.protobuf.Value into a
    /// scratch buffer, which checks its syntax, nesting and duplicate keys as the oracle does.
    fn skip_value(&mut self) -> Fast<()> {
        let mut scratch = WireOut::copying(0);
        self.value(&mut scratch)
    }

    fn field(&mut self, field: &FieldPlan, out: &mut WireOut) -> Fast<()> {
        match &field.shape {
            Shape::Single { presence } => self.single(field.tag, field.kind, *presence, out),
            Shape::List { packed } => self.list(field, *packed, out),
            Shape::Map { key, value } => self.map(field.tag, *key, value, out),
        }
    }

    /// One value with its tag; a default value is left out unless the field has presence.
    #[inline]
    fn single(&mut self, tag: Tag, kind: ValueKind, presence: bool, out: &mut WireOut) -> Fast<()> {
        match kind {
            ValueKind::Scalar(scalar) => self.scalar_field(tag, scalar, presence, out),
            ValueKind::Enum(id) => {
                let number = self.enum_number(id)?;
                if number != 0 || presence {
                    tag.put(out);
                    varint(out, number as i64 as u64);
                }
                Ok(())
            }
            ValueKind::Message(id) => {
                tag.put(out);
                let start = open_len(out);
                self.message(id, out)?;
                close_len(out, start);
                Ok(())
            }
        }
    }

    #[inline]
    fn scalar_field(&mut self, tag: Tag, scalar: Scalar, presence: bool, out: &mut WireOut) -> Fast<()> {
        let mark = out.len();
        tag.put(out);
        if self.scalar(scalar, out)? && !presence {
            out.truncate(mark);
        }
        Ok(())
    }

    /// Reads a value of type `scalar` and writes it without a tag; true when it is the default.
    #[inline]
    fn scalar(&mut self, scalar: Scalar, out: &mut WireOut) -> Fast<bool> {
        Ok(match scalar {
            Scalar::String => {
                let text = self.reader.string()?;
                self.string_value(&text, out);
                text.is_empty()
            }
            Scalar::Bytes => {
                let text = self.reader.string()?;
                let start = open_len(out);
                base64_into(&text, out)?;
                let empty = out.nothing_since(start);
                close_len(out, start);
                empty
            }
            Scalar::Bool => {
                let value = self.reader.boolean()?;
                out.push(u8::from(value));
                !value
            }
            Scalar::Double => {
                let value = self.double()?;
                out.extend_from_slice(&value.to_le_bytes());
                value == 0.0
            }
            Scalar::Float => {
                let value = self.float()?;
                out.extend_from_slice(&value.to_le_bytes());
                value == 0.0
            }
            Scalar::Int32 => {
                let value = i32::try_from(signed(self.integer()?)?).map_err(|_| Fallback)?;
                varint(out, i64::from(value) as u64);
                value == 0
            }
            Scalar::Sint32 => {
                let value = i32::try_from(signed(self.integer()?)?).map_err(|_| Fallback)?;
                varint(out, zigzag32(value));
                value == 0
            }
            Scalar::Sfixed32 => {
                let value = i32::try_from(signed(self.integer()?)?).map_err(|_| Fallback)?;
                out.extend_from_slice(&value.to_le_bytes());
                value == 0
            }
            Scalar::Int64 => {
                let value = signed(self.integer()?)?;
                varint(out, value as u64);
                value == 0
            }
            Scalar::Sint64 => {
                let value = signed(self.integer()?)?;
                varint(out, zigzag64(value));
                value == 0
            }
            Scalar::Sfixed64 => {
                let value = signed(self.integer()?)?;
                out.extend_from_slice(&value.to_le_bytes());
                value == 0
            }
            Scalar::Uint32 => {
                let value = u32::try_from(unsigned(self.integer()?)?).map_err(|_| Fallback)?;
                varint(out, u64::from(value));
                value == 0
            }
            Scalar::Fixed32 => {
                let value = u32::try_from(unsigned(self.integer()?)?).map_err(|_| Fallback)?;
                out.extend_from_slice(&value.to_le_bytes());
                value == 0
            }
            Scalar::Uint64 => {
                let value = unsigned(self.integer()?)?;
                varint(out, value);
                value == 0
            }
            Scalar::Fixed64 => {
                let value = unsigned(self.integer()?)?;
                out.extend_from_slice(&value.to_le_bytes());
                value == 0
            }
        })
    }

    /// An integer field's value: a JSON integer literal, or a string of one.
    #[inline]
    fn integer(&mut self) -> Fast<Integer> {
        if self.reader.peek() == Some(b'"') {
            let text = self.reader.string()?;
            return match text.strip_prefix('-') {
                Some(_) => text.parse::<i64>().map(Integer::Negative).map_err(|_| Fallback),
                None => text.parse::<u64>().map(Integer::Positive).map_err(|_| Fallback),
            };
        }
        self.reader.number()?.integer()
    }

    /// A double field's value from a JSON number (strings such as "NaN" go to DynamicMessage).
    #[inline]
    fn double(&mut self) -> Fast<f64> {
        if self.reader.peek() == Some(b'"') {
            return Err(Fallback);
        }
        self.reader.number()?.double()
    }

    /// A float field's value, converted as prost-reflect converts: integer literals directly,
    /// other numbers through f64 within f32's range.
    #[inline]
    fn float(&mut self) -> Fast<f32> {
        if self.reader.peek() == Some(b'"') {
            return Err(Fallback);
        }
        let number = self.reader.number()?;
        if number.integer {
            return Ok(match number.integer()? {
                Integer::Positive(value) => value as f32,
                Integer::Negative(value) => value as f32,
            });
        }
        let value = number.double()?;
        if value < f64::from(f32::MIN) || value > f64::from(f32::MAX) {
            return Err(Fallback);
        }
        Ok(value as f32)
    }

    /// An enum value by name or number.
    #[inline]
    fn enum_number(&mut self, id: usize) -> Fast<i32> {
        if self.reader.peek() == Some(b'"') {
            let name = self.reader.string()?;
            return self.plan.enums[id].number(&name).ok_or(Fallback);
        }
        i32::try_from(signed(self.reader.number()?.integer()?)?).map_err(|_| Fallback)
    }

    /// A JSON array for a repeated field.
    fn list(&mut self, field: &FieldPlan, packed: bool, out: &mut WireOut) -> Fast<()> {
        // A null element is refused, except in google.protobuf.Value lists: left to the oracle.
        if !packed {
            return self.elements(out, |this, out| {
                if this.reader.peek() == Some(b'n') {
                    return Err(Fallback);
                }
                this.single(field.tag, field.kind, true, out)
            });
        }
        let mark = out.len();
        field.tag.put(out);
        let start = open_len(out);
        self.elements(out, |this, out| {
            if this.reader.peek() == Some(b'n') {
                return Err(Fallback);
            }
            match field.kind {
                ValueKind::Scalar(scalar) => {
                    this.scalar(scalar, out)?;
                }
                ValueKind::Enum(id) => {
                    let number = this.enum_number(id)?;
                    varint(out, number as i64 as u64);
                }
                ValueKind::Message(_) => return Err(Fallback),
            }
            Ok(())
        })?;
        if out.nothing_since(start) {
            out.truncate(mark);
        } else {
            close_len(out, start);
        }
        Ok(())
    }

    /// A JSON object for a map field: one entry record per key.
    fn map(&mut self, tag: Tag, key: Scalar, value: &FieldPlan, out: &mut WireOut) -> Fast<()> {
        self.entries(out, |this, text, out| {
            if this.reader.peek() == Some(b'n') {
                return Err(Fallback);
            }
            tag.put(out);
            let start = open_len(out);
            map_key(key, text, out)?;
            this.single(value.tag, value.kind, true, out)?;
            close_len(out, start);
            Ok(())
        })
    }

    /// google.protobuf.Struct: `fields` entries (field 1) of key (1) and Value (2).
    fn structure(&mut self, out: &mut WireOut) -> Fast<()> {
        self.entries(out, |this, key, out| {
            out.push(0x0a);
            let entry = open_len(out);
            out.push(0x0a);
            bytes(out, key.as_bytes());
            out.push(0x12);
            let value = open_len(out);
            this.value(out)?;
            close_len(out, value);
            close_len(out, entry);
            Ok(())
        })
    }

    /// google.protobuf.ListValue: `values` (field 1).
    fn list_value(&mut self, out: &mut WireOut) -> Fast<()> {
        self.elements(out, |this, out| {
            out.push(0x0a);
            let start = open_len(out);
            this.value(out)?;
            close_len(out, start);
            Ok(())
        })
    }

    /// A JSON array whose elements `element` writes.
    fn elements(
        &mut self,
        out: &mut WireOut,
        mut element: impl FnMut(&mut Self, &mut WireOut) -> Fast<()>,
    ) -> Fast<()> {
        self.enter(b'[')?;
        if self.empty(b']')? {
            return Ok(());
        }
        loop {
            element(self, out)?;
            if !self.reader.more(b']')? {
                break;
            }
        }
        self.open -= 1;
        Ok(())
    }

    /// A JSON object whose keys are data (map keys, Struct keys), whose members `entry` writes;
    /// an object naming a key twice is left to the oracle.
    fn entries(
        &mut self,
        out: &mut WireOut,
        mut entry: impl FnMut(&mut Self, &str, &mut WireOut) -> Fast<()>,
    ) -> Fast<()> {
        self.enter(b'{')?;
        if self.empty(b'}')? {
            return Ok(());
        }
        let mut keys: Vec<Cow<'a, str>> = Vec::new();
        loop {
            let key = self.reader.string()?;
            self.reader.eat(b':')?;
            entry(self, &key, out)?;
            keys.push(key);
            if !self.reader.more(b'}')? {
                break;
            }
        }
        if has_duplicate(&mut keys) {
            return Err(Fallback);
        }
        self.open -= 1;
        Ok(())
    }

    /// google.protobuf.Value: whichever member of its `kind` oneof the JSON value is.
    fn value(&mut self, out: &mut WireOut) -> Fast<()> {
        match self.reader.peek().ok_or(Fallback)? {
            b'n' => {
                self.reader.literal(b"null")?;
                out.extend_from_slice(&[0x08, 0x00]);
            }
            b't' | b'f' => {
                let value = self.reader.boolean()?;
                out.extend_from_slice(&[0x20, u8::from(value)]);
            }
            b'"' => {
                let text = self.reader.string()?;
                out.push(0x1a);
                self.string_value(&text, out);
            }
            b'{' => {
                out.push(0x2a);
                let start = open_len(out);
                self.structure(out)?;
                close_len(out, start);
            }
            b'[' => {
                out.push(0x32);
                let start = open_len(out);
                self.list_value(out)?;
                close_len(out, start);
            }
            _ => {
                let value = self.reader.number()?.double()?;
                out.push(0x11);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        Ok(())
    }
}

/// Timestamp and Duration: `seconds` (1) and `nanos` (2), each left out when zero.
fn seconds_and_nanos(out: &mut Vec<u8>, seconds: i64, nanos: i32) {
    if seconds != 0 {
        out.push(0x08);
        varint(out, seconds as u64);
    }
    if nanos != 0 {
        out.push(0x10);
        varint(out, i64::from(nanos) as u64);
    }
}

fn signed(integer: Integer) -> Fast<i64> {
    match integer {
        Integer::Positive(value) => i64::try_from(value).map_err(|_| Fallback),
        Integer::Negative(value) => Ok(value),
    }
}

fn unsigned(integer: Integer) -> Fast<u64> {
    match integer {
        Integer::Positive(value) => Ok(value),
        Integer::Negative(_) => Err(Fallback),
    }
}

/// Standard or URL-safe base64, padded or not, as prost-reflect reads bytes fields.
fn base64_into(text: &str, out: &mut WireOut) -> Fast<()> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    let engine = if text.bytes().any(|b| b == b'-' || b == b'_') { &URL_SAFE } else { &STANDARD };
    engine.decode_vec(text, out).map_err(|_| Fallback)
}

/// A map key (field 1 of the entry) from its JSON text, parsed as prost-reflect parses it.
fn map_key(key: Scalar, text: &str, out: &mut WireOut) -> Fast<()> {
    Tag::new(1, key.wire_type()).put(out);
    match key {
        Scalar::String => bytes(out, text.as_bytes()),
        Scalar::Bool => out.push(match text {
            "true" => 1,
            "false" => 0,
            _ => return Err(Fallback),
        }),
        Scalar::Int32 => varint(out, i64::from(text.parse::<i32>().map_err(|_| Fallback)?) as u64),
        Scalar::Sint32 => varint(out, zigzag32(text.parse::<i32>().map_err(|_| Fallback)?)),
        Scalar::Sfixed32 => out.extend_from_slice(&text.parse::<i32>().map_err(|_| Fallback)?.to_le_bytes()),
        Scalar::Int64 => varint(out, text.parse::<i64>().map_err(|_| Fallback)? as u64),
        Scalar::Sint64 => varint(out, zigzag64(text.parse::<i64>().map_err(|_| Fallback)?)),
        Scalar::Sfixed64 => out.extend_from_slice(&text.parse::<i64>().map_err(|_| Fallback)?.to_le_bytes()),
        Scalar::Uint32 => varint(out, u64::from(text.parse::<u32>().map_err(|_| Fallback)?)),
        Scalar::Fixed32 => out.extend_from_slice(&text.parse::<u32>().map_err(|_| Fallback)?.to_le_bytes()),
        Scalar::Uint64 => varint(out, text.parse::<u64>().map_err(|_| Fallback)?),
        Scalar::Fixed64 => out.extend_from_slice(&text.parse::<u64>().map_err(|_| Fallback)?.to_le_bytes()),
        Scalar::Double | Scalar::Float | Scalar::Bytes => return Err(Fallback),
    }
    Ok(())
}

/// True when two of an object's keys are the same text.
fn has_duplicate(keys: &mut [Cow<'_, str>]) -> bool {
    match keys.len() {
        0 | 1 => false,
        2 => keys[0] == keys[1],
        _ => {
            keys.sort_unstable();
            keys.windows(2).any(|pair| pair[0] == pair[1])
        }
    }
}

/// Which fields of one object have been given.
enum Seen {
    Few(u128),
    Many(Vec<bool>),
}

impl Seen {
    #[inline]
    fn new(fields: usize) -> Seen {
        if fields <= 128 { Seen::Few(0) } else { Seen::Many(vec![false; fields]) }
    }

    /// Marks field `index`; false when it was already marked.
    #[inline]
    fn insert(&mut self, index: usize) -> bool {
        match self {
            Seen::Few(bits) => {
                let bit = 1u128 << index;
                let fresh = *bits & bit == 0;
                *bits |= bit;
                fresh
            }
            Seen::Many(seen) => !std::mem::replace(&mut seen[index], true),
        }
    }
}
