//! The JSON → wire encoder's output: its own bytes, and the places where a long string is left
//! in the client's JSON rather than copied (a string without escapes has the same bytes in
//! JSON and on the wire). The message is then the own bytes with those slices of the JSON
//! between them, sent as pieces ([`WireMessage`]), so a large body is not held twice.
//!
//! Length prefixes count the strings left in the JSON; a prefix that needs more than its one
//! reserved byte is spliced in, moving the places of the strings after it.

use bytes::Bytes;

use super::wire::varint;
use crate::wire_message::WireMessage;

/// A string left in the JSON: it goes before own byte `at`, and is `len` bytes from `start`.
#[derive(Debug, Clone, Copy)]
struct Left {
    at: usize,
    start: usize,
    len: usize,
}

pub(super) struct WireOut {
    bytes: Vec<u8>,
    left: Vec<Left>,
    /// The bytes of every string left in the JSON so far.
    left_bytes: usize,
    /// Strings at least this long are left in the JSON (never, at `usize::MAX`).
    leave_from: usize,
}

/// A length-delimited value being written: where its one-byte prefix is reserved.
#[derive(Debug, Clone, Copy)]
pub(super) struct Open {
    at: usize,
    left: usize,
    left_bytes: usize,
}

impl std::ops::Deref for WireOut {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl std::ops::DerefMut for WireOut {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl WireOut {
    /// Output that copies every string.
    pub(super) fn copying(capacity: usize) -> WireOut {
        WireOut { bytes: Vec::with_capacity(capacity), left: Vec::new(), left_bytes: 0, leave_from: usize::MAX }
    }

    /// Output that leaves strings of `leave_from` bytes or more in the JSON.
    pub(super) fn leaving(capacity: usize, leave_from: usize) -> WireOut {
        WireOut { leave_from: leave_from.max(1), ..WireOut::copying(capacity) }
    }

    /// A string value, its length first: left in the JSON when it is long and lies there as it
    /// is (`in_json`: its offset in the JSON), copied otherwise.
    #[inline]
    pub(super) fn string(&mut self, text: &[u8], in_json: Option<usize>) {
        varint(&mut self.bytes, text.len() as u64);
        match in_json {
            Some(start) if text.len() >= self.leave_from => {
                self.left.push(Left { at: self.bytes.len(), start, len: text.len() });
                self.left_bytes += text.len();
            }
            _ => self.bytes.extend_from_slice(text),
        }
    }

    /// True when nothing was written since `open`.
    pub(super) fn nothing_since(&self, open: Open) -> bool {
        self.bytes.len() == open.at && self.left_bytes == open.left_bytes
    }

    /// The bytes, for output that left no string in the JSON.
    pub(super) fn into_vec(self) -> Vec<u8> {
        debug_assert!(self.left.is_empty(), "strings were left in the JSON");
        self.bytes
    }

    /// The message: the own bytes with the strings left in `json` between them.
    pub(super) fn into_message(self, json: &Bytes) -> WireMessage {
        if self.left.is_empty() {
            return WireMessage::from(self.bytes);
        }
        let mut bytes = self.bytes;
        // The pieces keep the buffer alive until they are sent: not its spare room.
        if bytes.capacity() > 2 * bytes.len() + 1024 {
            bytes.shrink_to_fit();
        }
        let own = Bytes::from(bytes);
        let mut pieces = Vec::with_capacity(2 * self.left.len() + 1);
        let mut from = 0;
        for left in &self.left {
            pieces.push(own.slice(from..left.at));
            pieces.push(json.slice(left.start..left.start + left.len));
            from = left.at;
        }
        pieces.push(own.slice(from..));
        WireMessage::from_pieces(pieces)
    }
}

/// Reserves a one-byte length prefix for the value written next.
#[inline]
pub(super) fn open_len(out: &mut WireOut) -> Open {
    out.bytes.push(0);
    Open { at: out.bytes.len(), left: out.left.len(), left_bytes: out.left_bytes }
}

/// Writes the length of what was written since `open` into its prefix.
#[inline]
pub(super) fn close_len(out: &mut WireOut, open: Open) {
    let len = out.bytes.len() - open.at + (out.left_bytes - open.left_bytes);
    if len < 0x80 {
        out.bytes[open.at - 1] = len as u8;
        return;
    }
    let mut prefix = Vec::with_capacity(10);
    varint(&mut prefix, len as u64);
    let grown = prefix.len() - 1;
    out.bytes.splice(open.at - 1..open.at, prefix);
    for left in &mut out.left[open.left..] {
        left.at += grown;
    }
}
