//! The protobuf wire format: writing varints, tags, fixed-width values and length prefixes
//! that are filled in once the record they measure has been written, and reading records.

use super::reader::{Fallback, Fast};

/// The wire types the transcoder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireType {
    Varint = 0,
    Fixed64 = 1,
    Len = 2,
    Fixed32 = 5,
}

/// A field's tag, encoded once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tag {
    bytes: [u8; 5],
    len: u8,
}

impl Tag {
    pub(super) fn new(number: u32, wire_type: WireType) -> Tag {
        let mut bytes = [0u8; 5];
        let mut value = (u64::from(number) << 3) | wire_type as u64;
        let mut len = 0;
        while value >= 0x80 {
            bytes[len] = (value as u8) | 0x80;
            value >>= 7;
            len += 1;
        }
        bytes[len] = value as u8;
        Tag { bytes, len: len as u8 + 1 }
    }

    #[inline]
    pub(super) fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes[..self.len as usize]);
    }
}

#[inline]
pub(super) fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[inline]
pub(super) fn zigzag32(value: i32) -> u64 {
    u64::from(((value << 1) ^ (value >> 31)) as u32)
}

#[inline]
pub(super) fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// A length-delimited value: its length, then its bytes.
#[inline]
pub(super) fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// One value as read off the wire, by wire type.
#[derive(Debug, Clone, Copy)]
pub(super) enum WireValue<'b> {
    Varint(u64),
    Fixed64(u64),
    Len(&'b [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub(super) fn wire_type(&self) -> WireType {
        match self {
            WireValue::Varint(_) => WireType::Varint,
            WireValue::Fixed64(_) => WireType::Fixed64,
            WireValue::Len(_) => WireType::Len,
            WireValue::Fixed32(_) => WireType::Fixed32,
        }
    }
}

/// A cursor over wire bytes that reads what prost's decoder reads and answers [`Fallback`]
/// at anything it would refuse (and at groups, which it leaves to DynamicMessage).
pub(super) struct WireReader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> WireReader<'b> {
    pub(super) fn new(bytes: &'b [u8]) -> WireReader<'b> {
        WireReader { bytes, at: 0 }
    }

    #[inline]
    pub(super) fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// A varint of at most ten bytes, the tenth at most 1.
    #[inline]
    pub(super) fn varint(&mut self) -> Fast<u64> {
        // Tags, lengths and small numbers: one byte.
        if let Some(&byte) = self.bytes.get(self.at)
            && byte < 0x80
        {
            self.at += 1;
            return Ok(u64::from(byte));
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Fast<u64> {
        let mut value = 0u64;
        for shift in 0..10 {
            let byte = *self.bytes.get(self.at).ok_or(Fallback)?;
            self.at += 1;
            if shift == 9 && byte > 1 {
                return Err(Fallback);
            }
            value |= u64::from(byte & 0x7f) << (shift * 7);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Fallback)
    }

    #[inline]
    pub(super) fn fixed32(&mut self) -> Fast<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| Fallback)?))
    }

    #[inline]
    pub(super) fn fixed64(&mut self) -> Fast<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Fallback)?))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Fast<&'b [u8]> {
        let end = self.at.checked_add(len).filter(|end| *end <= self.bytes.len()).ok_or(Fallback)?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    /// The next record: its field number and value.
    #[inline]
    pub(super) fn record(&mut self) -> Fast<(u32, WireValue<'b>)> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).ok().filter(|n| *n != 0).ok_or(Fallback)?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(self.fixed64()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| Fallback)?;
                WireValue::Len(self.take(len)?)
            }
            5 => WireValue::Fixed32(self.fixed32()?),
            _ => return Err(Fallback),
        };
        Ok((number, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_varints_and_length_prefixes_match_prost() {
        for (number, wire_type) in
            [(1, WireType::Varint), (15, WireType::Len), (16, WireType::Fixed64), (536_870_911, WireType::Fixed32)]
        {
            let mut ours = Vec::new();
            Tag::new(number, wire_type).put(&mut ours);
            let mut theirs = Vec::new();
            prost::encoding::encode_key(
                number,
                prost::encoding::WireType::try_from(wire_type as u64).expect("wire type"),
                &mut theirs,
            );
            assert_eq!(ours, theirs, "tag {number}");
        }
        for value in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut ours = Vec::new();
            varint(&mut ours, value);
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(value, &mut theirs);
            assert_eq!(ours, theirs, "varint {value}");
        }
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 70_000] {
            let mut out = super::super::wire_out::WireOut::copying(0);
            out.push(9);
            let start = super::super::wire_out::open_len(&mut out);
            out.extend(std::iter::repeat_n(7u8, len));
            super::super::wire_out::close_len(&mut out, start);
            let mut want = vec![9u8];
            prost::encoding::encode_varint(len as u64, &mut want);
            want.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(out.into_vec(), want, "record of {len} bytes");
        }
        assert_eq!((zigzag32(-1), zigzag32(1), zigzag64(i64::MIN)), (1, 2, u64::MAX));
    }
}
