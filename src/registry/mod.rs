//! The descriptor registry: where served protobuf definitions come from and how they are kept.
//! Sources are .proto files compiled in-process with protox (`compile`), binary
//! FileDescriptorSets, and live servers' gRPC reflection (`reflection`). A registration is one
//! named, normalised FileDescriptorSet (`normalize`) stored atomically on disk (`store`) or, shared
//! by every instance of a deployment, in Redis (`shared`);
//! registrations merge into one `DescriptorPool` with conflicts refused (`merge`). google/api,
//! google/rpc, the well-known types and switchyard/options.proto are built in (`builtin`).
//! This module knows nothing of routes, GraphQL or requests; the gateway never calls a
//! backend's reflection at request time.

mod builtin;
mod compat;
mod compile;
mod describe;
mod error;
mod http_bindings;
mod merge;
mod method_traits;
mod normalize;
mod reflection;
mod shared;
mod store;

pub use builtin::{builtin_pool, is_builtin_file};

/// A protox resolver for every built-in file (for compiling embedded sources).
pub fn builtin_file_resolver() -> protox::file::ChainFileResolver {
    builtin::builtin_resolver()
}

/// Splits an encoded FileDescriptorSet into its files' raw encodings (options kept).
pub fn split_file_set(bytes: &[u8]) -> Result<Vec<bytes::Bytes>, prost::DecodeError> {
    <normalize::RawFileSet as prost::Message>::decode(bytes).map(|set| set.file)
}
pub use compat::{Change, CompatReport, compare};
pub use compile::compile_sources;
pub use describe::{describe_registration, describe_versions};
pub use error::RegistryError;
pub use http_bindings::{HttpBinding, http_bindings};
pub use merge::{Registry, merge_registrations};
pub use method_traits::{MethodTraits, MethodTraitsMemo};
pub use normalize::{RegisteredFile, Registration};
pub use reflection::pull_from_server;
pub use shared::{SharedRegistry, SharedState};
pub use store::{AddOutcome, Changed, Pending, RegistryDir, Version};

/// How a method streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    ServerStreaming,
    /// A stream of requests, one response.
    ClientStreaming,
    /// Streams both ways.
    Bidi,
}

impl CallKind {
    /// The call kind of `method`.
    pub fn of(method: &prost_reflect::MethodDescriptor) -> Self {
        match (method.is_client_streaming(), method.is_server_streaming()) {
            (false, false) => CallKind::Unary,
            (false, true) => CallKind::ServerStreaming,
            (true, false) => CallKind::ClientStreaming,
            (true, true) => CallKind::Bidi,
        }
    }

    /// A short name for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Unary => "unary",
            CallKind::ServerStreaming => "server-streaming",
            CallKind::ClientStreaming => "client-streaming",
            CallKind::Bidi => "bidi-streaming",
        }
    }
}
