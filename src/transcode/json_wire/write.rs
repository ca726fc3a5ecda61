//! The direct writer: protobuf wire bytes → proto3 JSON in one pass per message, steered by
//! the [`WirePlan`]. It writes byte for byte what `message_to_json` writes for the decoded
//! message (fields in number order, the same number and string forms) and answers
//! [`Fallback`] wherever it cannot vouch for that: malformed or unexpected wire data, a message
//! field or a oneof given twice (decoders merge those), duplicate map keys (whose JSON order
//! DynamicMessage leaves to its hash map), Any, FieldMask, out-of-range timestamps.

use base64::Engine;

use super::json_out::{double, float, integer, string, string_part};
use super::plan::{FieldPlan, MessagePlan, MessageShape, Scalar, Shape, ValueKind, WirePlan};
use super::reader::{Fallback, Fast};
use super::wire::{WireReader, WireType, WireValue};
use crate::civil_time::civil_from_days;

/// Messages nested deeper than this are left to DynamicMessage (whose decoder stops at 100).
const MAX_DEPTH: usize = 64;

/// One record of the message being written: the field it belongs to and its value.
#[derive(Debug, Clone, Copy)]
struct Record<'b> {
    field: usize,
    value: WireValue<'b>,
}

/// What a streaming writer does with its output each time it holds enough: takes the bytes
/// out of the buffer (an error stops the writing).
pub(super) type HandOn<'s> = &'s mut dyn FnMut(&mut Vec<u8>) -> Fast<()>;

/// `PIECES`: the writer hands its output on as it goes (the whole-document writer compiles
/// without the checks).
pub(super) struct Writer<'p, 'b, 's, const PIECES: bool> {
    plan: &'p WirePlan,
    emit_defaults: bool,
    proto_names: bool,
    depth: usize,
    /// Record lists for each depth, reused across messages.
    scratch: Vec<Vec<Record<'b>>>,
    /// The output is handed on once it holds this many bytes (never, at `usize::MAX`), at the
    /// points where what is written so far is final: between fields, elements and members, and
    /// between pieces of a long string. Not inside a map, whose key check reads back what it
    /// wrote.
    spill_at: usize,
    hand_on: Option<HandOn<'s>>,
}

impl<'p, 'b, 's> Writer<'p, 'b, 's, false> {
    pub(super) fn new(plan: &'p WirePlan, emit_defaults: bool, proto_names: bool) -> Self {
        Writer { plan, emit_defaults, proto_names, depth: 0, scratch: Vec::new(), spill_at: usize::MAX, hand_on: None }
    }
}

impl<'p, 'b, 's> Writer<'p, 'b, 's, true> {
    /// A writer that hands its output on in pieces of about `at` bytes (the last piece is left
    /// in the buffer when the document ends).
    pub(super) fn streaming(
        plan: &'p WirePlan,
        emit_defaults: bool,
        proto_names: bool,
        at: usize,
        hand_on: HandOn<'s>,
    ) -> Self {
        let (depth, scratch, spill_at, hand_on) = (0, Vec::new(), at.max(1), Some(hand_on));
        Writer { plan, emit_defaults, proto_names, depth, scratch, spill_at, hand_on }
    }
}

impl<'p, 'b, 's, const PIECES: bool> Writer<'p, 'b, 's, PIECES> {
    /// Hands the output on if it holds enough.
    #[inline]
    fn spill(&mut self, out: &mut Vec<u8>) -> Fast<()> {
        if PIECES && out.len() >= self.spill_at { self.hand_on_now(out) } else { Ok(()) }
    }

    #[cold]
    fn hand_on_now(&mut self, out: &mut Vec<u8>) -> Fast<()> {
        match self.hand_on.as_mut() {
            Some(hand_on) => hand_on(out),
            None => Ok(()),
        }
    }

    /// A string's text, in pieces when the writer streams and the text is long.
    #[inline]
    fn text(&mut self, text: &[u8], out: &mut Vec<u8>) -> Fast<()> {
        if !PIECES || text.len() <= self.spill_at {
            string(out, text);
            return Ok(());
        }
        out.push(b'"');
        for piece in text.chunks(self.spill_at) {
            string_part(out, piece);
            self.spill(out)?;
        }
        out.push(b'"');
        Ok(())
    }

    /// Bytes as base64, in pieces (of whole 3-byte groups) when the writer streams and they
    /// are long.
    #[inline]
    fn binary(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Fast<()> {
        if !PIECES || bytes.len() <= self.spill_at {
            base64(out, bytes);
            return Ok(());
        }
        out.push(b'"');
        for piece in bytes.chunks((self.spill_at / 4 * 3).max(3)) {
            base64_part(out, piece);
            self.spill(out)?;
        }
        out.push(b'"');
        Ok(())
    }

    /// The whole message, as the plan's root type.
    pub(super) fn document(&mut self, bytes: &'b [u8], out: &mut Vec<u8>) -> Fast<()> {
        self.message(self.plan.root, bytes, out)
    }

    fn message(&mut self, id: usize, bytes: &'b [u8], out: &mut Vec<u8>) -> Fast<()> {
        if self.depth >= MAX_DEPTH {
            return Err(Fallback);
        }
        self.depth += 1;
        let plan = self.plan;
        let message = &plan.messages[id];
        let written = match message.shape {
            MessageShape::Plain => self.plain(message, bytes, out),
            MessageShape::Timestamp => timestamp(bytes, out),
            MessageShape::Duration => duration(bytes, out),
            MessageShape::Struct => self.structure(bytes, out),
            MessageShape::ListValue => self.list_value(bytes, out),
            MessageShape::Value => self.value(bytes, out),
            MessageShape::Empty => {
                let mut reader = WireReader::new(bytes);
                while !reader.done() {
                    reader.record()?;
                }
                out.extend_from_slice(b"{}");
                Ok(())
            }
            MessageShape::Wrapper(scalar) => {
                let value = last_of(bytes, 1, scalar.wire_type())?;
                match value {
                    Some(value) => self.scalar(scalar, value, out),
                    None => default_scalar(scalar, out),
                }
            }
            MessageShape::Unsupported => Err(Fallback),
        };
        self.depth -= 1;
        written
    }

    fn plain(&mut self, message: &MessagePlan, bytes: &'b [u8], out: &mut Vec<u8>) -> Fast<()> {
        let depth = self.depth;
        if self.scratch.len() < depth {
            self.scratch.resize_with(depth, Vec::new);
        }
        let mut records = std::mem::take(&mut self.scratch[depth - 1]);
        records.clear();
        let written =
            self.read_records(message, bytes, &mut records).and_then(|()| self.fields(message, &records, out));
        self.scratch[depth - 1] = records;
        written
    }

    /// Reads every record of a plain message, checking each known field's wire type; unknown
    /// fields are skipped (DynamicMessage keeps them, and writes none of them as JSON).
    fn read_records(&self, message: &MessagePlan, bytes: &'b [u8], records: &mut Vec<Record<'b>>) -> Fast<()> {
        let mut reader = WireReader::new(bytes);
        while !reader.done() {
            let (number, value) = reader.record()?;
            let Some(field) = message.index_of_number(number) else {
                if message.extended {
                    return Err(Fallback);
                }
                continue;
            };
            let plan = &message.fields[field];
            let element = plan.kind.wire_type();
            let fits = match plan.shape {
                Shape::Single { .. } => value.wire_type() == element,
                Shape::List { .. } => {
                    value.wire_type() == element || (value.wire_type() == WireType::Len && element != WireType::Len)
                }
                Shape::Map { .. } => value.wire_type() == WireType::Len,
            };
            if !fits {
                return Err(Fallback);
            }
            records.push(Record { field, value });
        }
        if !records.is_sorted_by_key(|record| record.field) {
            records.sort_by_key(|record| record.field);
        }
        Ok(())
    }

    /// Writes the fields of a plain message from its records, in field-number order.
    fn fields(&mut self, message: &MessagePlan, records: &[Record<'b>], out: &mut Vec<u8>) -> Fast<()> {
        out.push(b'{');
        let mut first = true;
        let mut oneofs = 0u64;
        let mut at = 0;
        for (index, field) in message.fields.iter().enumerate() {
            let start = at;
            while at < records.len() && records[at].field == index {
                at += 1;
            }
            let group = &records[start..at];
            if group.is_empty() {
                if self.emit_defaults && !matches!(field.shape, Shape::Single { presence: true }) {
                    self.key(field, &mut first, out);
                    self.default_value(field, out)?;
                }
                continue;
            }
            if let Some(oneof) = field.oneof {
                let bit = 1u64 << oneof;
                if oneofs & bit != 0 {
                    return Err(Fallback);
                }
                oneofs |= bit;
            }
            match &field.shape {
                Shape::Single { presence } => {
                    let last = group[group.len() - 1].value;
                    match field.kind {
                        ValueKind::Message(id) => {
                            let (1, WireValue::Len(bytes)) = (group.len(), last) else { return Err(Fallback) };
                            self.key(field, &mut first, out);
                            self.message(id, bytes, out)?;
                        }
                        kind => {
                            if !*presence && !self.emit_defaults && is_default(kind, last) {
                                continue;
                            }
                            self.key(field, &mut first, out);
                            self.single(kind, last, out)?;
                        }
                    }
                }
                Shape::List { .. } => {
                    self.key(field, &mut first, out);
                    self.list(field.kind, group, out)?;
                }
                Shape::Map { key, value } => {
                    self.key(field, &mut first, out);
                    self.map(*key, value, group, out)?;
                }
            }
            self.spill(out)?;
        }
        out.push(b'}');
        Ok(())
    }

    #[inline]
    fn key(&self, field: &FieldPlan, first: &mut bool, out: &mut Vec<u8>) {
        if !std::mem::take(first) {
            out.push(b',');
        }
        let key = if self.proto_names { &field.proto_key } else { &field.json_key };
        out.extend_from_slice(key.as_bytes());
    }

    /// One value of a scalar, enum or message kind.
    #[inline]
    fn single(&mut self, kind: ValueKind, value: WireValue<'b>, out: &mut Vec<u8>) -> Fast<()> {
        match kind {
            ValueKind::Scalar(scalar) => self.scalar(scalar, value, out),
            ValueKind::Enum(id) => {
                let WireValue::Varint(number) = value else { return Err(Fallback) };
                self.enumeration(id, number as i32, out);
                Ok(())
            }
            ValueKind::Message(id) => {
                let WireValue::Len(bytes) = value else { return Err(Fallback) };
                self.message(id, bytes, out)
            }
        }
    }

    fn enumeration(&self, id: usize, number: i32, out: &mut Vec<u8>) {
        match self.plan.enums[id].name(number) {
            Some(name) => string(out, name.as_bytes()),
            None => integer(out, number),
        }
    }

    #[inline]
    fn scalar(&mut self, scalar: Scalar, value: WireValue<'b>, out: &mut Vec<u8>) -> Fast<()> {
        match (scalar, value) {
            (Scalar::Int32 | Scalar::Uint32 | Scalar::Sint32 | Scalar::Fixed32 | Scalar::Sfixed32, _) => {
                digits(scalar, value, out)?
            }
            // 64-bit integers are strings: JavaScript cannot hold them exactly.
            (Scalar::Int64 | Scalar::Uint64 | Scalar::Sint64 | Scalar::Fixed64 | Scalar::Sfixed64, _) => {
                out.push(b'"');
                digits(scalar, value, out)?;
                out.push(b'"');
            }
            (Scalar::Bool, WireValue::Varint(v)) => out.extend_from_slice(if v != 0 { b"true" } else { b"false" }),
            (Scalar::Float, WireValue::Fixed32(v)) => float(out, f32::from_bits(v)),
            (Scalar::Double, WireValue::Fixed64(v)) => double(out, f64::from_bits(v)),
            (Scalar::String, WireValue::Len(bytes)) => self.text(utf8(bytes)?, out)?,
            (Scalar::Bytes, WireValue::Len(bytes)) => self.binary(bytes, out)?,
            _ => return Err(Fallback),
        }
        Ok(())
    }

    /// A repeated field's records (packed ones expanded) as a JSON array.
    fn list(&mut self, kind: ValueKind, group: &[Record<'b>], out: &mut Vec<u8>) -> Fast<()> {
        out.push(b'[');
        let mut first = true;
        let element = kind.wire_type();
        for record in group {
            match record.value {
                WireValue::Len(packed) if element != WireType::Len => {
                    let mut reader = WireReader::new(packed);
                    while !reader.done() {
                        let value = match element {
                            WireType::Varint => WireValue::Varint(reader.varint()?),
                            WireType::Fixed32 => WireValue::Fixed32(reader.fixed32()?),
                            WireType::Fixed64 => WireValue::Fixed64(reader.fixed64()?),
                            WireType::Len => return Err(Fallback),
                        };
                        if !std::mem::take(&mut first) {
                            out.push(b',');
                        }
                        self.single(kind, value, out)?;
                        self.spill(out)?;
                    }
                }
                value => {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    self.single(kind, value, out)?;
                    self.spill(out)?;
                }
            }
        }
        out.push(b']');
        Ok(())
    }

    /// A map field's entry records as a JSON object; keys are written as strings.
    fn map(&mut self, key: Scalar, value: &FieldPlan, group: &[Record<'b>], out: &mut Vec<u8>) -> Fast<()> {
        // Each entry is a message level to the decoder. The entries stay in the buffer until
        // the map is whole: its duplicate-key check reads the keys back.
        self.depth += 1;
        let spill_at = std::mem::replace(&mut self.spill_at, usize::MAX);
        let written = self.map_entries(key, value, group, out);
        self.spill_at = spill_at;
        self.depth -= 1;
        written
    }

    fn map_entries(&mut self, key: Scalar, value: &FieldPlan, group: &[Record<'b>], out: &mut Vec<u8>) -> Fast<()> {
        out.push(b'{');
        let mut keys: Vec<(usize, usize)> = Vec::with_capacity(group.len());
        for (index, record) in group.iter().enumerate() {
            let WireValue::Len(entry) = record.value else { return Err(Fallback) };
            let (mut entry_key, mut entry_value) = (None, None);
            let mut reader = WireReader::new(entry);
            while !reader.done() {
                match reader.record()? {
                    (1, found) => entry_key = Some(found),
                    (2, found) => {
                        // A message value given twice is merged by decoders.
                        if entry_value.is_some() && matches!(value.kind, ValueKind::Message(_)) {
                            return Err(Fallback);
                        }
                        entry_value = Some(found);
                    }
                    _ => {}
                }
            }
            if index > 0 {
                out.push(b',');
            }
            let start = out.len();
            map_key(key, entry_key, out)?;
            keys.push((start, out.len()));
            out.push(b':');
            match entry_value {
                Some(found) if found.wire_type() == value.kind.wire_type() => self.single(value.kind, found, out)?,
                Some(_) => return Err(Fallback),
                None => self.default_value(value, out)?,
            }
        }
        out.push(b'}');
        // A key given twice: DynamicMessage keeps the last, in its hash map's order.
        if keys.len() > 1 {
            keys.sort_unstable_by(|a, b| out[a.0..a.1].cmp(&out[b.0..b.1]));
            if keys.windows(2).any(|pair| out[pair[0].0..pair[0].1] == out[pair[1].0..pair[1].1]) {
                return Err(Fallback);
            }
        }
        Ok(())
    }

    /// The value DynamicMessage writes for a field (or map value) that is not on the wire.
    fn default_value(&self, field: &FieldPlan, out: &mut Vec<u8>) -> Fast<()> {
        match (&field.shape, field.kind) {
            (Shape::List { .. }, _) => out.extend_from_slice(b"[]"),
            (Shape::Map { .. }, _) => out.extend_from_slice(b"{}"),
            (Shape::Single { .. }, ValueKind::Scalar(scalar)) => default_scalar(scalar, out)?,
            (Shape::Single { .. }, ValueKind::Enum(id)) => self.enumeration(id, 0, out),
            (Shape::Single { .. }, ValueKind::Message(_)) => return Err(Fallback),
        }
        Ok(())
    }

    /// google.protobuf.Struct: its entries sorted by key, as prost's BTreeMap holds them.
    /// Entries that arrive in key order (prost and most encoders write them so) are written
    /// as they come; otherwise they are sorted first.
    fn structure(&mut self, bytes: &'b [u8], out: &mut Vec<u8>) -> Fast<()> {
        if in_key_order(bytes)? {
            return self.members(struct_entries(bytes), out);
        }
        let mut entries = struct_entries(bytes).collect::<Fast<Vec<_>>>()?;
        entries.sort_by(|a, b| a.0.cmp(b.0));
        // A key given twice: prost keeps the last.
        if entries.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(Fallback);
        }
        self.members(entries.into_iter().map(Ok), out)
    }

    /// A Struct's members as a JSON object, in the order given.
    fn members(&mut self, entries: impl Iterator<Item = Fast<(&'b [u8], &'b [u8])>>, out: &mut Vec<u8>) -> Fast<()> {
        out.push(b'{');
        for (index, entry) in entries.enumerate() {
            let (key, value) = entry?;
            if index > 0 {
                out.push(b',');
            }
            string(out, utf8(key)?);
            out.push(b':');
            self.nested_value(value, out)?;
            self.spill(out)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// google.protobuf.ListValue: `values` as a JSON array.
    fn list_value(&mut self, bytes: &'b [u8], out: &mut Vec<u8>) -> Fast<()> {
        out.push(b'[');
        let mut first = true;
        let mut reader = WireReader::new(bytes);
        while !reader.done() {
            match reader.record()? {
                (1, WireValue::Len(value)) => {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    self.nested_value(value, out)?;
                    self.spill(out)?;
                }
                (1, _) => return Err(Fallback),
                _ => {}
            }
        }
        out.push(b']');
        Ok(())
    }

    /// A Value inside a Struct or ListValue, within the depth limit: to the decoder each is
    /// up to three message levels (Value, Struct or ListValue, entry).
    fn nested_value(&mut self, bytes: &'b [u8], out: &mut Vec<u8>) -> Fast<()> {
        if self.depth + 3 > MAX_DEPTH {
            return Err(Fallback);
        }
        self.depth += 3;
        let written = self.value(bytes, out);
        self.depth -= 3;
        written
    }

    /// google.protobuf.Value: whichever member of `kind` is set (none is null).
    fn value(&mut self, bytes: &'b [u8], out: &mut Vec<u8>) -> Fast<()> {
        let mut member = None;
        let mut reader = WireReader::new(bytes);
        while !reader.done() {
            let (number, value) = reader.record()?;
            if (1..=6).contains(&number) && member.replace((number, value)).is_some() {
                return Err(Fallback);
            }
        }
        match member {
            None | Some((1, WireValue::Varint(_))) => out.extend_from_slice(b"null"),
            Some((2, WireValue::Fixed64(bits))) => {
                let number = f64::from_bits(bits);
                if !number.is_finite() {
                    return Err(Fallback);
                }
                double(out, number);
            }
            Some((3, WireValue::Len(text))) => self.text(utf8(text)?, out)?,
            Some((4, WireValue::Varint(v))) => out.extend_from_slice(if v != 0 { b"true" } else { b"false" }),
            Some((5, WireValue::Len(inner))) => self.structure(inner, out)?,
            Some((6, WireValue::Len(inner))) => self.list_value(inner, out)?,
            Some(_) => return Err(Fallback),
        }
        Ok(())
    }
}

/// A map entry's key (the type's default when the entry has none) as a JSON string.
fn map_key(key: Scalar, value: Option<WireValue<'_>>, out: &mut Vec<u8>) -> Fast<()> {
    let value = match value {
        Some(value) if value.wire_type() == key.wire_type() => value,
        Some(_) => return Err(Fallback),
        None if key == Scalar::String => WireValue::Len(&[]),
        None if key.wire_type() == WireType::Fixed32 => WireValue::Fixed32(0),
        None if key.wire_type() == WireType::Fixed64 => WireValue::Fixed64(0),
        None => WireValue::Varint(0),
    };
    if let (Scalar::String, WireValue::Len(text)) = (key, value) {
        string(out, utf8(text)?);
        return Ok(());
    }
    out.push(b'"');
    match (key, value) {
        (Scalar::Bool, WireValue::Varint(v)) => out.extend_from_slice(if v != 0 { b"true" } else { b"false" }),
        _ => digits(key, value, out)?,
    }
    out.push(b'"');
    Ok(())
}

/// An integer scalar's decimal digits, read as the decoder reads its wire value.
#[inline]
fn digits(scalar: Scalar, value: WireValue<'_>, out: &mut Vec<u8>) -> Fast<()> {
    match (scalar, value) {
        (Scalar::Int32, WireValue::Varint(v)) => integer(out, v as i32),
        (Scalar::Int64, WireValue::Varint(v)) => integer(out, v as i64),
        (Scalar::Uint32, WireValue::Varint(v)) => integer(out, v as u32),
        (Scalar::Uint64, WireValue::Varint(v)) => integer(out, v),
        (Scalar::Sint32, WireValue::Varint(v)) => {
            let v = v as u32;
            integer(out, ((v >> 1) as i32) ^ -((v & 1) as i32))
        }
        (Scalar::Sint64, WireValue::Varint(v)) => integer(out, ((v >> 1) as i64) ^ -((v & 1) as i64)),
        (Scalar::Fixed32, WireValue::Fixed32(v)) => integer(out, v),
        (Scalar::Sfixed32, WireValue::Fixed32(v)) => integer(out, v as i32),
        (Scalar::Fixed64, WireValue::Fixed64(v)) => integer(out, v),
        (Scalar::Sfixed64, WireValue::Fixed64(v)) => integer(out, v as i64),
        _ => return Err(Fallback),
    }
    Ok(())
}

/// Whether a Struct's entries come in strictly increasing key order (so no key twice).
fn in_key_order(bytes: &[u8]) -> Fast<bool> {
    let mut previous: Option<&[u8]> = None;
    for entry in struct_entries(bytes) {
        let (key, _) = entry?;
        if previous.is_some_and(|previous| previous >= key) {
            return Ok(false);
        }
        previous = Some(key);
    }
    Ok(true)
}

/// A Struct's entries (field 1) as key and Value bytes, in wire order; other fields skipped.
/// After an error it yields nothing more worth reading: callers stop at the first.
fn struct_entries(bytes: &[u8]) -> impl Iterator<Item = Fast<(&[u8], &[u8])>> {
    let mut reader = WireReader::new(bytes);
    std::iter::from_fn(move || {
        while !reader.done() {
            match reader.record() {
                Ok((1, WireValue::Len(entry))) => return Some(struct_entry(entry)),
                Ok((1, _)) | Err(Fallback) => return Some(Err(Fallback)),
                Ok(_) => {}
            }
        }
        None
    })
}

/// A Struct entry's key and Value bytes (empty: the default Value, null).
fn struct_entry(entry: &[u8]) -> Fast<(&[u8], &[u8])> {
    let (mut key, mut value) = (None, None);
    let mut fields = WireReader::new(entry);
    while !fields.done() {
        match fields.record()? {
            (1, WireValue::Len(text)) => key = Some(text),
            // A Value given twice is merged by decoders.
            (2, WireValue::Len(_)) if value.is_some() => return Err(Fallback),
            (2, WireValue::Len(found)) => value = Some(found),
            (1 | 2, _) => return Err(Fallback),
            _ => {}
        }
    }
    Ok((key.unwrap_or_default(), value.unwrap_or_default()))
}

/// The last value of field `number` in a small message (a wrapper), its wire type checked.
fn last_of(bytes: &[u8], number: u32, wire_type: WireType) -> Fast<Option<WireValue<'_>>> {
    let mut last = None;
    let mut reader = WireReader::new(bytes);
    while !reader.done() {
        let (found, value) = reader.record()?;
        if found == number {
            if value.wire_type() != wire_type {
                return Err(Fallback);
            }
            last = Some(value);
        }
    }
    Ok(last)
}

/// Timestamp and Duration fields: (seconds, nanos), as the decoder reads int64 and int32.
fn seconds_and_nanos(bytes: &[u8]) -> Fast<(i64, i32)> {
    let (mut seconds, mut nanos) = (0, 0);
    let mut reader = WireReader::new(bytes);
    while !reader.done() {
        match reader.record()? {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            (2, WireValue::Varint(v)) => nanos = v as i32,
            (1 | 2, _) => return Err(Fallback),
            _ => {}
        }
    }
    Ok((seconds, nanos))
}

/// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, for years 0001 to 9999.
fn timestamp(bytes: &[u8], out: &mut Vec<u8>) -> Fast<()> {
    let (seconds, nanos) = seconds_and_nanos(bytes)?;
    if !(-62_135_596_800..=253_402_300_799).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
        return Err(Fallback);
    }
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    let mut text = [0u8; 19];
    let fields = [
        (year, 4, 0),
        (i64::from(month), 2, 5),
        (i64::from(day), 2, 8),
        (of_day / 3600, 2, 11),
        (of_day / 60 % 60, 2, 14),
        (of_day % 60, 2, 17),
    ];
    for (value, width, at) in fields {
        let mut value = value;
        for place in (0..width).rev() {
            text[at + place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        text[at] = separator;
    }
    out.push(b'"');
    out.extend_from_slice(&text);
    fraction(out, nanos);
    out.extend_from_slice(b"Z\"");
    Ok(())
}

/// `S[.fff]s` for non-negative durations within the mapping's range.
fn duration(bytes: &[u8], out: &mut Vec<u8>) -> Fast<()> {
    let (seconds, nanos) = seconds_and_nanos(bytes)?;
    if !(0..=315_576_000_000).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
        return Err(Fallback);
    }
    out.push(b'"');
    integer(out, seconds);
    fraction(out, nanos);
    out.extend_from_slice(b"s\"");
    Ok(())
}

/// Nanoseconds as nothing, or 3, 6 or 9 digits after a point.
fn fraction(out: &mut Vec<u8>, nanos: i32) {
    let (value, width) = match nanos {
        0 => return,
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    out.push(b'.');
    let start = out.len();
    out.resize(start + width, b'0');
    let mut value = value;
    for place in (0..width).rev() {
        out[start + place] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The JSON of a scalar's default value.
fn default_scalar(scalar: Scalar, out: &mut Vec<u8>) -> Fast<()> {
    out.extend_from_slice(match scalar {
        Scalar::Int32 | Scalar::Uint32 | Scalar::Sint32 | Scalar::Fixed32 | Scalar::Sfixed32 => b"0",
        Scalar::Int64 | Scalar::Uint64 | Scalar::Sint64 | Scalar::Fixed64 | Scalar::Sfixed64 => b"\"0\"",
        Scalar::Float | Scalar::Double => b"0.0",
        Scalar::Bool => b"false",
        Scalar::String | Scalar::Bytes => b"\"\"",
    });
    Ok(())
}

/// Whether a value is its type's default (not written for fields without presence); -0.0
/// counts, as it does for DynamicMessage.
fn is_default(kind: ValueKind, value: WireValue<'_>) -> bool {
    match (kind, value) {
        (ValueKind::Scalar(Scalar::Float), WireValue::Fixed32(bits)) => f32::from_bits(bits) == 0.0,
        (ValueKind::Scalar(Scalar::Double), WireValue::Fixed64(bits)) => f64::from_bits(bits) == 0.0,
        (_, WireValue::Varint(v) | WireValue::Fixed64(v)) => v == 0,
        (_, WireValue::Fixed32(bits)) => bits == 0,
        (_, WireValue::Len(bytes)) => bytes.is_empty(),
    }
}

fn utf8(bytes: &[u8]) -> Fast<&[u8]> {
    std::str::from_utf8(bytes).map(str::as_bytes).map_err(|_| Fallback)
}

/// Bytes as standard, padded base64 in quotes.
fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    base64_part(out, bytes);
    out.push(b'"');
}

/// Bytes as standard, padded base64, unquoted: pieces of whole 3-byte groups join into the
/// whole's base64.
fn base64_part(out: &mut Vec<u8>, bytes: &[u8]) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).expect("a body's base64 fits in memory");
    out.resize(start + len, 0);
    let written = engine.encode_slice(bytes, &mut out[start..]).expect("sized for it");
    out.truncate(start + written);
}
