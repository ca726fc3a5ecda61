//! Normalisation and the `Registration` type. Before registrations are compared, hashed or
//! stored: files are sorted by name, source info is stripped, json_name is filled in where
//! missing, and built-in files are dropped in favour of ours. Files stay as encoded bytes, edited
//! through DynamicMessage, so custom option extensions (google.api.http among them) survive;
//! prost_types would drop them.

use bytes::Bytes;
use prost::Message;
use prost_reflect::{DynamicMessage, Value};
use sha2::{Digest, Sha256};

use super::{RegistryError, builtin_pool, is_builtin_file};

/// A FileDescriptorSet whose files stay raw, so no option is lost in decoding.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RawFileSet {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub(crate) file: Vec<Bytes>,
}

/// One file of a registration.
#[derive(Debug, Clone)]
pub struct RegisteredFile {
    /// Its import name (`catalog/v1/catalog.proto`).
    pub name: String,
    /// Its normalised encoding, options included.
    pub encoded: Bytes,
    /// A decoded view for names and dependencies (custom options are not in it).
    pub proto: prost_types::FileDescriptorProto,
}

/// A named, normalised set of files.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The registration name (its file is `NAME.binpb`).
    pub name: String,
    /// Its files, sorted by name, built-ins excluded.
    pub files: Vec<RegisteredFile>,
    /// `sha256:` and the hex digest of the normalised encoding.
    pub digest: String,
}

impl Registration {
    /// Normalises raw file encodings into a registration named `name`.
    pub fn from_files(name: &str, files: impl IntoIterator<Item = Bytes>) -> Result<Self, RegistryError> {
        check_name(name)?;
        let mut normalised = Vec::new();
        for raw in files {
            let proto = prost_types::FileDescriptorProto::decode(raw.clone()).map_err(|e| invalid(name, e))?;
            let file_name = proto.name().to_owned();
            if file_name.is_empty() {
                return Err(invalid(name, "a file descriptor has no name"));
            }
            if !matches!(proto.syntax(), "" | "proto2" | "proto3" | "editions") {
                return Err(invalid(name, format!("{file_name}: unknown syntax `{}`", proto.syntax())));
            }
            if is_builtin_file(&file_name) || normalised.iter().any(|f: &RegisteredFile| f.name == file_name) {
                continue;
            }
            let encoded = normalise_file(&raw).map_err(|e| invalid(name, format!("{file_name}: {e}")))?;
            let proto = prost_types::FileDescriptorProto::decode(encoded.clone()).map_err(|e| invalid(name, e))?;
            normalised.push(RegisteredFile { name: file_name, encoded, proto });
        }
        if normalised.is_empty() {
            return Err(invalid(name, "it holds no files besides built-in ones"));
        }
        normalised.sort_by(|a, b| a.name.cmp(&b.name));
        let mut registration = Registration { name: name.to_owned(), files: normalised, digest: String::new() };
        registration.digest = format!("sha256:{}", hex::encode(Sha256::digest(registration.encode())));
        Ok(registration)
    }

    /// Decodes a stored or uploaded FileDescriptorSet and normalises it.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Self, RegistryError> {
        let set = RawFileSet::decode(bytes).map_err(|e| invalid(name, format!("not a FileDescriptorSet: {e}")))?;
        Registration::from_files(name, set.file)
    }

    /// The normalised FileDescriptorSet encoding (what is stored and hashed).
    pub fn encode(&self) -> Vec<u8> {
        RawFileSet { file: self.files.iter().map(|f| f.encoded.clone()).collect() }.encode_to_vec()
    }

    /// The full names of the services this registration defines.
    pub fn service_names(&self) -> impl Iterator<Item = String> + '_ {
        self.files.iter().flat_map(|f| {
            let package = f.proto.package();
            f.proto.service.iter().map(move |s| qualify(package, s.name()))
        })
    }
}

/// `package.name`, or `name` without a package.
pub(crate) fn qualify(package: &str, name: &str) -> String {
    if package.is_empty() { name.to_owned() } else { format!("{package}.{name}") }
}

fn invalid(name: &str, message: impl ToString) -> RegistryError {
    RegistryError::InvalidDescriptors { what: format!("registration `{name}`"), message: message.to_string() }
}

/// Registration names become file names: keep them to a safe alphabet.
pub(crate) fn check_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(()) } else { Err(RegistryError::InvalidName(name.to_owned())) }
}

fn normalise_file(raw: &[u8]) -> Result<Bytes, prost::DecodeError> {
    let descriptor = builtin_pool()
        .get_message_by_name("google.protobuf.FileDescriptorProto")
        .expect("descriptor.proto is built in");
    let mut file = DynamicMessage::decode(descriptor, raw)?;
    file.clear_field_by_name("source_code_info");
    for list in ["message_type", "extension"] {
        if let Some(Value::List(items)) = file.get_field_by_name_mut(list) {
            for item in items {
                if let Value::Message(message) = item {
                    if list == "message_type" {
                        fill_json_names(message);
                    } else {
                        fill_field_json_name(message);
                    }
                }
            }
        }
    }
    Ok(file.encode_to_vec().into())
}

fn fill_json_names(message: &mut DynamicMessage) {
    for list in ["field", "extension"] {
        if let Some(Value::List(fields)) = message.get_field_by_name_mut(list) {
            for field in fields {
                if let Value::Message(field) = field {
                    fill_field_json_name(field);
                }
            }
        }
    }
    if let Some(Value::List(nested)) = message.get_field_by_name_mut("nested_type") {
        for nested in nested {
            if let Value::Message(nested) = nested {
                fill_json_names(nested);
            }
        }
    }
}

fn fill_field_json_name(field: &mut DynamicMessage) {
    if field.has_field_by_name("json_name") {
        return;
    }
    let name = match field.get_field_by_name("name").as_deref() {
        Some(Value::String(name)) => name.clone(),
        _ => return,
    };
    field.set_field_by_name("json_name", Value::String(to_json_name(&name)));
}

/// protoc's json_name rule: drop underscores and upper-case the letter after each.
pub(crate) fn to_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper_next = false;
    for c in name.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            out.push(c.to_ascii_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_syntax_is_refused_before_the_descriptor_library_sees_it() {
        // Found by the descriptor_set fuzz target: prost-reflect panicked describing this error.
        let file = prost_types::FileDescriptorProto {
            name: Some("b.proto".into()),
            package: Some("b".into()),
            syntax: Some("prouo3".into()),
            ..Default::default()
        };
        let error = Registration::from_files("b", [Bytes::from(file.encode_to_vec())]).expect_err("refused");
        assert!(error.to_string().contains("b.proto: unknown syntax `prouo3`"), "{error}");
    }

    #[test]
    fn json_name_follows_protoc() {
        let table =
            [("page_size", "pageSize"), ("name", "name"), ("a_b_c", "aBC"), ("x__y", "xY"), ("trailing_", "trailing")];
        for (name, json) in table {
            assert_eq!(to_json_name(name), json, "{name}");
        }
    }

    #[test]
    fn registration_names_are_safe_file_names() {
        for ok in ["catalog.v1", "my-api", "a_b"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
