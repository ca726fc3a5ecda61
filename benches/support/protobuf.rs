//! Hand-built protobuf and gRPC framing for benches that send bytes without generated types.

/// A length-delimited protobuf field: tag, varint length, bytes.
pub(crate) fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut length = bytes.len();
    while length >= 0x80 {
        out.push(u8::try_from(length & 0x7f).expect("7 bits") | 0x80);
        length >>= 7;
    }
    out.push(u8::try_from(length).expect("7 bits"));
    out.extend_from_slice(bytes);
    out
}

/// A message in an uncompressed, length-prefixed gRPC frame.
pub(crate) fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(message);
    frame
}
