//! `DynamicCodec`: a tonic codec for prost-reflect `DynamicMessage`s, so gRPC calls can be made
//! and served for any registered method without generated code.

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Encodes `DynamicMessage`s and decodes them as `decode_as`.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    decode_as: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec whose decoder produces messages of type `decode_as`.
    pub fn new(decode_as: MessageDescriptor) -> Self {
        DynamicCodec { decode_as }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder { descriptor: self.decode_as.clone() }
    }
}

/// Writes a `DynamicMessage`'s protobuf encoding.
#[derive(Debug)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(format!("encoding {}: {e}", item.descriptor().full_name())))
    }
}

/// Reads one message of a known type.
#[derive(Debug)]
pub struct DynamicDecoder {
    descriptor: MessageDescriptor,
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.descriptor.clone(), src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("cannot decode {}: {e}", self.descriptor.full_name())))
    }
}

/// One request message for `RawCodec`, or the order to abandon the call.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// An encoded request message.
    Message(Bytes),
    /// Reset the stream: the backend sees a cancel, never a half-close that would make a
    /// truncated input look complete.
    Abort,
}

/// Passes protobuf bytes through untouched: the gateway encodes requests itself and decodes
/// (or transcodes) responses after the call, so a backend's undecodable answer is the gateway's
/// 502, not a status tonic invents.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Outgoing;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Outgoing;
    type Error = Status;

    fn encode(&mut self, item: Outgoing, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Outgoing::Message(bytes) => {
                dst.put(bytes);
                Ok(())
            }
            // An encode error makes the request body fail, and hyper resets the HTTP/2 stream.
            Outgoing::Abort => Err(Status::cancelled("the client's input was abandoned")),
        }
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}
