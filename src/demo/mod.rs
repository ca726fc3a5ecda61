//! The embedded demo: the protos of `descriptors/demo/` compiled into the binary, and a real
//! tonic backend serving them in-process on loopback (with grpc.health.v1 and server
//! reflection). `switchyard demo` wires the gateway to it. This module is a backend, not part of
//! the gateway: it sits at the top of the module order and only the CLI and tests use it.

mod authors;
mod backend;
mod catalog;
mod catalog_v2;
mod critics;
mod fields;
mod security;

use std::sync::OnceLock;

use protox::file::{ChainFileResolver, File, FileResolver};

use crate::registry::{Registration, RegistryError};

pub use authors::{DemoAuthors, start_demo_authors};
pub use backend::{
    DemoBackend, DemoError, start_demo_backend, start_demo_backend_replica, start_demo_backend_replicas,
};
pub use critics::{DemoCritics, critics_sdl, start_demo_critics};
pub use security::{DemoSecurity, demo_security};

/// The demo's schema files (the authors REST source stitched to the catalog), by path, as
/// embedded in the binary.
pub const DEMO_SCHEMAS: &[(&str, &str)] = &[
    ("schemas/demo/authors.graphql", include_str!("../../schemas/demo/authors.graphql")),
    ("schemas/demo/critics.graphql", include_str!("../../schemas/demo/critics.graphql")),
];

/// The demo's Federation supergraph: the critics subgraph, composed by a standard composition
/// tool (a test recomposes it from `critics_sdl()` and compares).
pub const DEMO_SUPERGRAPH: &str = include_str!("../../descriptors/demo/supergraph.graphql");

/// The critics subgraph's name in the demo supergraph (its cluster's name).
pub const DEMO_CRITICS_SUBGRAPH: &str = "critics";

/// The REST source the demo's schema declares.
pub const DEMO_AUTHORS_SOURCE: &str = "authors";

/// The demo's schema files, ready for `SnapshotSources::embedded_schemas`.
pub fn demo_schemas() -> Vec<crate::schema::SchemaFile> {
    DEMO_SCHEMAS
        .iter()
        .map(|(path, text)| crate::schema::SchemaFile { path: (*path).into(), text: (*text).to_owned() })
        .collect()
}

/// The demo's proto sources, by import name, as embedded in the binary.
pub const DEMO_SOURCES: &[(&str, &str)] = &[
    ("catalog/v1/catalog.proto", include_str!("../../descriptors/demo/catalog/v1/catalog.proto")),
    ("catalog/v2/catalog.proto", include_str!("../../descriptors/demo/catalog/v2/catalog.proto")),
];

/// The gRPC service the demo backend serves.
pub const DEMO_SERVICE: &str = "catalog.v1.Catalog";

/// The catalog's second version, served by the same backend over the same books.
pub const DEMO_V2_SERVICE: &str = "catalog.v2.Catalog";

struct EmbeddedDemo;

impl FileResolver for EmbeddedDemo {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match DEMO_SOURCES.iter().find(|(n, _)| *n == name) {
            Some((name, source)) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// The demo registration (catalog.v1), compiled once from the embedded sources.
pub fn demo_registration() -> Result<Registration, RegistryError> {
    static COMPILED: OnceLock<Result<Registration, String>> = OnceLock::new();
    COMPILED.get_or_init(|| compile("catalog.v1", "catalog/v1/catalog.proto")).clone().map_err(RegistryError::Compile)
}

/// The registration of the catalog's second version (catalog.v2), compiled once.
pub fn demo_v2_registration() -> Result<Registration, RegistryError> {
    static COMPILED: OnceLock<Result<Registration, String>> = OnceLock::new();
    COMPILED.get_or_init(|| compile("catalog.v2", "catalog/v2/catalog.proto")).clone().map_err(RegistryError::Compile)
}

/// The demo's catalog (catalog.v1) and stitching schemas with their backends at an address
/// that is never called: a snapshot to plan and validate against without serving (tests,
/// benches, fuzz targets).
pub fn offline_sources() -> Result<crate::snapshot::SnapshotSources, RegistryError> {
    let nowhere =
        |name: &str| crate::snapshot::BackendFlag { name: name.into(), urls: vec!["http://127.0.0.1:1".into()] };
    Ok(crate::snapshot::SnapshotSources {
        embedded: vec![demo_registration()?],
        embedded_schemas: demo_schemas(),
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        backends: vec![nowhere("catalog.v1"), nowhere(DEMO_AUTHORS_SOURCE)],
        ..Default::default()
    })
}

fn compile(registration: &str, file: &str) -> Result<Registration, String> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(EmbeddedDemo);
    resolver.add(crate::registry::builtin_file_resolver());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler.open_file(file).map_err(|e| e.to_string())?;
    let set = compiler.encode_file_descriptor_set();
    let files = crate::registry::split_file_set(&set).map_err(|e| e.to_string())?;
    Registration::from_files(registration, files).map_err(|e| e.to_string())
}
