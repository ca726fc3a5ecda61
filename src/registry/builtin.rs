//! Built-in definitions that always resolve without being shipped: the google/protobuf
//! well-known types (from protox), google/api (annotations, http, httpbody, field_behavior),
//! google/rpc (status, code, error_details) and switchyard/options.proto. Our copies of the
//! google files are written to be wire-compatible with the originals.

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

const BUILTIN_SOURCES: &[(&str, &str)] = &[
    ("google/api/http.proto", include_str!("builtin/google/api/http.proto")),
    ("google/api/annotations.proto", include_str!("builtin/google/api/annotations.proto")),
    ("google/api/httpbody.proto", include_str!("builtin/google/api/httpbody.proto")),
    ("google/api/field_behavior.proto", include_str!("builtin/google/api/field_behavior.proto")),
    ("google/rpc/status.proto", include_str!("builtin/google/rpc/status.proto")),
    ("google/rpc/code.proto", include_str!("builtin/google/rpc/code.proto")),
    ("google/rpc/error_details.proto", include_str!("builtin/google/rpc/error_details.proto")),
    ("switchyard/options.proto", include_str!("builtin/switchyard/options.proto")),
];

const WELL_KNOWN: &[&str] = &[
    "google/protobuf/any.proto",
    "google/protobuf/api.proto",
    "google/protobuf/descriptor.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/field_mask.proto",
    "google/protobuf/source_context.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/type.proto",
    "google/protobuf/wrappers.proto",
];

/// Resolves Switchyard's embedded google/api, google/rpc and switchyard files for protox.
pub(crate) struct EmbeddedResolver;

impl FileResolver for EmbeddedResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match BUILTIN_SOURCES.iter().find(|(n, _)| *n == name) {
            Some((name, source)) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// A resolver for every built-in file: ours first, then protox's well-known types.
pub(crate) fn builtin_resolver() -> ChainFileResolver {
    let mut chain = ChainFileResolver::new();
    chain.add(EmbeddedResolver);
    chain.add(GoogleFileResolver::new());
    chain
}

/// The pool of every built-in file. Registrations are added on top of a clone of it.
pub fn builtin_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut compiler = protox::Compiler::with_file_resolver(builtin_resolver());
        compiler.include_imports(true);
        let names = WELL_KNOWN.iter().copied().chain(BUILTIN_SOURCES.iter().map(|(n, _)| *n));
        for name in names {
            compiler.open_file(name).expect("built-in protos compile (covered by a unit test)");
        }
        let encoded = compiler.encode_file_descriptor_set();
        DescriptorPool::decode(encoded.as_slice()).expect("built-in descriptor set is valid")
    })
}

/// True if `name` is a built-in file, which registrations never carry.
pub fn is_builtin_file(name: &str) -> bool {
    builtin_pool().get_file_by_name(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_resolve_and_carry_the_http_extension() {
        let pool = builtin_pool();
        for name in ["google.api.HttpRule", "google.rpc.Status", "google.rpc.BadRequest", "google.protobuf.Timestamp"] {
            assert!(pool.get_message_by_name(name).is_some(), "{name}");
        }
        let http = pool.get_extension_by_name("google.api.http").expect("google.api.http");
        assert_eq!(http.number(), 72295728);
        assert!(is_builtin_file("google/rpc/error_details.proto"));
        assert!(!is_builtin_file("catalog/v1/catalog.proto"));
    }
}
