//! Merging registrations into one `DescriptorPool`. A file shared by two registrations is fine
//! when identical; a file name or a full name defined differently by two registrations is a
//! conflict naming both. prost-reflect silently skips a file whose name is already in the pool,
//! so identity is checked here, on normalised bytes, before anything is added.

use std::collections::BTreeMap;

use prost_reflect::DescriptorPool;

use super::normalize::RawFileSet;
use super::normalize::qualify;
use super::{Registration, RegistryError, builtin_pool};

/// Every registration, merged and validated as one pool.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The registrations, sorted by name.
    pub registrations: Vec<Registration>,
    /// Built-ins plus every registration's files.
    pub pool: DescriptorPool,
    /// SHA-256 of the gateway's version and the registered files: what an answer's JSON
    /// depends on besides its bytes and the JSON options. A GET's ETag is derived from it, so a
    /// descriptor change or an upgrade re-tags every answer, and replicas serving the same
    /// files and version tag alike.
    pub descriptor_digest: [u8; 32],
}

impl Registry {
    /// A registry with only the built-in files.
    pub fn empty() -> Self {
        Registry { registrations: Vec::new(), pool: builtin_pool().clone(), descriptor_digest: descriptor_digest(&[]) }
    }

    /// The registration that defines service `full_name`.
    pub fn registration_of_service(&self, full_name: &str) -> Option<&Registration> {
        self.registrations.iter().find(|r| r.service_names().any(|s| s == full_name))
    }
}

/// Where a file or a symbol was first seen.
struct Origin<'a> {
    registration: &'a str,
    file: &'a str,
    bytes: &'a [u8],
}

/// Merges `registrations` (any order) into one pool, or explains every conflict.
pub fn merge_registrations(mut registrations: Vec<Registration>) -> Result<Registry, RegistryError> {
    registrations.sort_by(|a, b| a.name.cmp(&b.name));
    let mut conflicts = Vec::new();
    let mut files: BTreeMap<&str, Origin<'_>> = BTreeMap::new();
    let mut symbols: BTreeMap<String, Origin<'_>> = BTreeMap::new();
    let mut unique = Vec::new();
    for registration in &registrations {
        for file in &registration.files {
            let origin = Origin { registration: &registration.name, file: &file.name, bytes: &file.encoded };
            if let Some(seen) = files.get(file.name.as_str()) {
                if seen.bytes != &file.encoded[..] {
                    conflicts.push(format!(
                        "file `{}` differs between registration `{}` and registration `{}`",
                        file.name, seen.registration, registration.name
                    ));
                }
                continue;
            }
            for symbol in defined_symbols(&file.proto) {
                if let Some(seen) = symbols.get(&symbol) {
                    conflicts.push(format!(
                        "`{symbol}` is defined by registration `{}` ({}) and differently by registration `{}` ({})",
                        seen.registration, seen.file, registration.name, file.name
                    ));
                } else {
                    symbols.insert(symbol, Origin { ..origin });
                }
            }
            files.insert(&file.name, origin);
            unique.push(file.encoded.clone());
        }
    }
    if !conflicts.is_empty() {
        return Err(RegistryError::Conflict(conflicts.join("; ")));
    }
    let mut pool = builtin_pool().clone();
    let set = prost::Message::encode_to_vec(&RawFileSet { file: unique });
    // prost-reflect can panic while describing an error in a malformed file (an index past its
    // file list); an uploaded descriptor must be refused, not take down the request.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.decode_file_descriptor_set(set.as_slice()).map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|_| Err("the descriptors are malformed (the descriptor library could not describe how)".into()));
    decoded.map_err(|message| RegistryError::InvalidDescriptors { what: "registry".into(), message })?;
    Ok(Registry { registrations, pool, descriptor_digest: descriptor_digest(&set) })
}

/// SHA-256 of the gateway's version (the built-in files and the JSON writer come with it) and
/// the encoded set of registered files.
fn descriptor_digest(set: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    hash.update(b"\0");
    hash.update(set);
    hash.finalize().into()
}

/// Full names of the top-level and nested types, services and extensions a file defines.
fn defined_symbols(file: &prost_types::FileDescriptorProto) -> Vec<String> {
    let package = file.package();
    let mut out = Vec::new();
    fn messages(prefix: &str, list: &[prost_types::DescriptorProto], out: &mut Vec<String>) {
        for message in list {
            let name = qualify(prefix, message.name());
            for e in &message.enum_type {
                out.push(qualify(&name, e.name()));
            }
            for x in &message.extension {
                out.push(qualify(&name, x.name()));
            }
            messages(&name, &message.nested_type, out);
            out.push(name);
        }
    }
    messages(package, &file.message_type, &mut out);
    out.extend(file.enum_type.iter().map(|e| qualify(package, e.name())));
    out.extend(file.service.iter().map(|s| qualify(package, s.name())));
    out.extend(file.extension.iter().map(|x| qualify(package, x.name())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(json_name: &str) -> Registration {
        let dir = tempfile::tempdir().expect("tempdir");
        let proto = format!(
            "syntax = \"proto3\";\npackage lib.v1;\nmessage Book {{ string title = 1 [json_name = \"{json_name}\"]; }}\n"
        );
        std::fs::write(dir.path().join("lib.proto"), proto).expect("write");
        super::super::compile_sources(&[dir.path().join("lib.proto")], &[dir.path().to_owned()], Some("lib"))
            .expect("compiles")
    }

    /// The digest an answer's ETag starts from is the same for the same files (so replicas
    /// agree) and changes with any change that could change an answer's JSON.
    #[test]
    fn the_descriptor_digest_follows_the_registered_files() {
        let digest =
            |registrations: Vec<Registration>| merge_registrations(registrations).expect("merges").descriptor_digest;
        let titled = digest(vec![registration("title")]);
        assert_eq!(titled, digest(vec![registration("title")]));
        assert_ne!(titled, digest(vec![registration("heading")]));
        assert_ne!(titled, Registry::empty().descriptor_digest);
        assert_eq!(Registry::empty().descriptor_digest, digest(Vec::new()));
    }
}
