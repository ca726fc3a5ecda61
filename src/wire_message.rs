//! One protobuf message's wire bytes, whole or in pieces that are sent one after another
//! without being joined. A large REST body's strings are the same bytes in its JSON and on the
//! wire, so the direct transcoder leaves them in the client's buffer and the message is the
//! transcoder's own few bytes between slices of that buffer (issue 12's memory per in-flight
//! request: the request is not held in both forms).

use std::sync::Arc;

use bytes::Bytes;

/// A message's wire bytes.
#[derive(Clone)]
pub enum WireMessage {
    /// One buffer.
    One(Bytes),
    /// Pieces in order (two or more), and their total length.
    Pieces(Arc<[Bytes]>, usize),
}

impl WireMessage {
    /// `pieces` in order; empty ones are dropped, and a single piece is kept as one buffer.
    pub fn from_pieces(pieces: Vec<Bytes>) -> WireMessage {
        let mut pieces: Vec<Bytes> = pieces.into_iter().filter(|p| !p.is_empty()).collect();
        match pieces.len() {
            0 => WireMessage::One(Bytes::new()),
            1 => WireMessage::One(pieces.pop().expect("one piece")),
            _ => {
                let length = pieces.iter().map(Bytes::len).sum();
                WireMessage::Pieces(pieces.into(), length)
            }
        }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        match self {
            WireMessage::One(bytes) => bytes.len(),
            WireMessage::Pieces(_, length) => *length,
        }
    }

    /// True for the empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Bytes] {
        match self {
            WireMessage::One(bytes) => std::slice::from_ref(bytes),
            WireMessage::Pieces(pieces, _) => pieces,
        }
    }

    /// The bytes in one buffer: shared when they are one already, else joined (a copy).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            WireMessage::One(bytes) => bytes.clone(),
            WireMessage::Pieces(_, length) => {
                let mut joined = Vec::with_capacity(*length);
                self.copy_to(&mut joined);
                Bytes::from(joined)
            }
        }
    }

    /// Appends the bytes, piece after piece, to `out`.
    pub fn copy_to(&self, out: &mut impl bytes::BufMut) {
        for piece in self.pieces() {
            out.put_slice(piece);
        }
    }
}

impl From<Bytes> for WireMessage {
    fn from(bytes: Bytes) -> WireMessage {
        WireMessage::One(bytes)
    }
}

impl From<Vec<u8>> for WireMessage {
    fn from(bytes: Vec<u8>) -> WireMessage {
        WireMessage::One(Bytes::from(bytes))
    }
}

impl std::fmt::Debug for WireMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireMessage").field("len", &self.len()).field("pieces", &self.pieces().len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_in_order_and_one_piece_stays_one_buffer() {
        let message = WireMessage::from_pieces(vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
            Bytes::from_static(b"f"),
        ]);
        assert_eq!((message.len(), message.pieces().len()), (6, 3));
        assert_eq!(message.to_bytes(), Bytes::from_static(b"abcdef"));
        let shared = Bytes::from_static(b"whole");
        let one = WireMessage::from_pieces(vec![Bytes::new(), shared.clone()]);
        assert!(matches!(&one, WireMessage::One(bytes) if bytes.as_ptr() == shared.as_ptr()));
        assert_eq!(one.to_bytes().as_ptr(), shared.as_ptr(), "one buffer is shared, not copied");
        assert!(WireMessage::from_pieces(Vec::new()).is_empty());
    }
}
