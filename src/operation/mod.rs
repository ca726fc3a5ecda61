//! The one internal operation model: what a client asked for, whatever its protocol. A REST
//! call is an Operation with one root call that selects the whole response message (or its
//! `response_body` field); GraphQL documents, WebSocket subscriptions and gRPC calls become
//! Operations too. Pure data: no tokio, axum, tonic, reqwest or async-graphql types.

mod context;
mod selection;

use std::pin::Pin;

use futures_core::Stream;
use prost_reflect::{DynamicMessage, FieldDescriptor, MethodDescriptor};

pub use context::{CORRELATION_HEADERS, HashClaims, HashInputs, Identity, Metadata, RequestContext};
pub use selection::{FieldSelection, HIDDEN_TYPENAME, SelectionSet, hidden_key, is_hidden_key, typename_selection};

/// A client's stream of request messages (client-streaming and bidi calls). An `Err` item
/// means the client sent something that is not a valid message; the call is abandoned.
pub type InputStream = Pin<Box<dyn Stream<Item = Result<DynamicMessage, InputError>> + Send>>;

/// A client-sent message that cannot be used, and the error code it earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// Invalid argument, or payload too large.
    pub code: crate::error::ErrorCode,
    /// What is wrong, naming the line or frame.
    pub message: String,
}

impl InputError {
    /// An invalid message.
    pub fn invalid(message: impl Into<String>) -> Self {
        InputError { code: crate::error::ErrorCode::InvalidArgument, message: message.into() }
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A call's request: one message, a stream of them, or a declared field's arguments.
pub enum CallInput {
    /// One request message.
    Message(DynamicMessage),
    /// One request message already in protobuf wire format: a REST body transcoded directly
    /// (in pieces when it leaves its long strings in the client's buffer).
    Encoded(crate::wire_message::WireMessage),
    /// Request messages as the client sends them.
    Stream(InputStream),
    /// The arguments of a field declared in schemas/, by GraphQL name (its binding reads them).
    Arguments(serde_json::Map<String, serde_json::Value>),
}

impl std::fmt::Debug for CallInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallInput::Message(message) => f.debug_tuple("Message").field(message).finish(),
            CallInput::Encoded(message) => f.debug_tuple("Encoded").field(&message.len()).finish(),
            CallInput::Stream(_) => f.write_str("Stream(..)"),
            CallInput::Arguments(arguments) => f.debug_tuple("Arguments").field(arguments).finish(),
        }
    }
}

impl CallInput {
    /// The one request message's wire bytes, in one buffer, for inputs that are one message.
    pub fn encoded(&self) -> Option<bytes::Bytes> {
        match self {
            CallInput::Message(message) => Some(bytes::Bytes::from(prost::Message::encode_to_vec(message))),
            CallInput::Encoded(message) => Some(message.to_bytes()),
            CallInput::Stream(_) | CallInput::Arguments(_) => None,
        }
    }

    /// The one request message's wire bytes, giving up the input: an encoded request is handed
    /// on as it is (in pieces, if it is), not shared, so the call that sends it is its last
    /// holder and can let it go (a 1 MiB REST body is not kept beside the answer).
    pub fn into_encoded(self) -> Option<crate::wire_message::WireMessage> {
        match self {
            CallInput::Encoded(message) => Some(message),
            other => other.encoded().map(Into::into),
        }
    }
}

/// Whether root calls may run concurrently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OperationKind {
    /// Reads: root calls run concurrently.
    #[default]
    Query,
    /// Writes: root calls run one after another, in document order.
    Mutation,
    /// A subscription: one root call whose answer is a stream of events.
    Subscription,
}

/// A client's request, parsed and validated by its ingress.
#[derive(Debug)]
pub struct Operation {
    /// Query (concurrent) or mutation (serial).
    pub kind: OperationKind,
    /// The backend calls the client asked for, in order.
    pub calls: Vec<RootCall>,
    /// Who asked, with what headers and deadline.
    pub context: RequestContext,
}

/// What a root call calls.
#[derive(Debug, Clone)]
pub enum CallTarget {
    /// A gRPC method.
    Method(MethodDescriptor),
    /// A root field declared in schemas/ (`Query`, `Mutation` or a GraphQL source's
    /// `Subscription`), answered by its binding.
    Field {
        /// `Query`, `Mutation` or `Subscription`.
        root: &'static str,
        /// The field's name.
        name: String,
    },
}

/// One backend call requested by the client.
#[derive(Debug)]
pub struct RootCall {
    /// The method or declared field.
    pub target: CallTarget,
    /// The request message or messages.
    pub input: CallInput,
    /// Which part of the response the client wants.
    pub selection: Selection,
}

/// The part of a response message a client selected.
#[derive(Debug, Clone)]
pub enum Selection {
    /// The whole message.
    Whole,
    /// One top-level field (a REST binding's `response_body`).
    Field(FieldDescriptor),
    /// A GraphQL root field's selection: its response key, its output type's name, the fields.
    Graphql {
        /// The root field's response key.
        response_key: String,
        /// The GraphQL type of the answer.
        type_name: String,
        /// What is selected on it.
        fields: std::sync::Arc<SelectionSet>,
    },
}

impl RootCall {
    /// A call of gRPC `method`.
    pub fn method(method: MethodDescriptor, input: CallInput, selection: Selection) -> Self {
        RootCall { target: CallTarget::Method(method), input, selection }
    }
}

impl Operation {
    /// An operation with a single root call.
    pub fn single(call: RootCall, context: RequestContext) -> Self {
        Operation { kind: OperationKind::Query, calls: vec![call], context }
    }
}
