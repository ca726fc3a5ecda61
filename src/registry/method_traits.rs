//! What the request path asks of a method on every call: whether it reads (its answers may be
//! cached and identical calls coalesced) and whether it is idempotent (it may be retried). Both
//! come from the method's options (`idempotency_level`, the verb of its first `google.api.http`
//! binding), which prost-reflect decodes anew on every look, so a snapshot keeps them per method
//! once read.

use std::collections::HashMap;
use std::sync::RwLock;

use prost_reflect::MethodDescriptor;
use prost_types::method_options::IdempotencyLevel;

/// A method's traits, read from its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodTraits {
    /// No side effects: `idempotency_level = NO_SIDE_EFFECTS`, or a `get` binding first.
    pub reads: bool,
    /// Safe to send again: it reads, or `idempotency_level = IDEMPOTENT`, or its first binding
    /// is `put` or `delete` (idempotent in HTTP's terms).
    pub idempotent: bool,
}

impl MethodTraits {
    /// Reads the traits off `method`'s options (decoding them).
    pub fn of(method: &MethodDescriptor) -> MethodTraits {
        let level = method.method_descriptor_proto().options.as_ref().and_then(|o| o.idempotency_level);
        let declared = |wanted: IdempotencyLevel| level == Some(wanted as i32);
        let verb = super::http_bindings(method).into_iter().next().map(|binding| binding.method);
        let reads = declared(IdempotencyLevel::NoSideEffects) || verb.as_deref() == Some("GET");
        let idempotent =
            reads || declared(IdempotencyLevel::Idempotent) || matches!(verb.as_deref(), Some("PUT" | "DELETE"));
        MethodTraits { reads, idempotent }
    }
}

/// Traits per method of one descriptor pool, filled on first use (a snapshot holds one, so a
/// reload starts afresh).
#[derive(Debug, Default)]
pub struct MethodTraitsMemo {
    by_name: RwLock<HashMap<Box<str>, MethodTraits, foldhash::fast::RandomState>>,
}

impl MethodTraitsMemo {
    /// `method`'s traits, read once.
    pub fn get(&self, method: &MethodDescriptor) -> MethodTraits {
        let known =
            self.by_name.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(method.full_name()).copied();
        if let Some(traits) = known {
            return traits;
        }
        let traits = MethodTraits::of(method);
        self.by_name
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(method.full_name().into(), traits);
        traits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"syntax = "proto3";
package t;
import "google/api/annotations.proto";
message M { string name = 1; }
service S {
  rpc Get(M) returns (M) { option (google.api.http) = { get: "/v1/{name=m/*}" additional_bindings { post: "/v1/m:get" body: "*" } }; }
  rpc Put(M) returns (M) { option (google.api.http) = { put: "/v1/{name=m/*}" body: "*" }; }
  rpc Delete(M) returns (M) { option (google.api.http) = { delete: "/v1/{name=m/*}" }; }
  rpc Post(M) returns (M) { option (google.api.http) = { post: "/v1/m" body: "*" additional_bindings { get: "/v1/m" } }; }
  rpc Patch(M) returns (M) { option (google.api.http) = { patch: "/v1/{name=m/*}" body: "*" }; }
  rpc Pure(M) returns (M) { option idempotency_level = NO_SIDE_EFFECTS; }
  rpc Again(M) returns (M) { option idempotency_level = IDEMPOTENT; }
  rpc PostButPure(M) returns (M) { option idempotency_level = NO_SIDE_EFFECTS; option (google.api.http) = { post: "/v1/p" body: "*" }; }
  rpc Plain(M) returns (M);
}
"#;

    #[test]
    fn traits_come_from_the_idempotency_level_and_the_first_binding() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.proto"), PROTO).expect("write");
        let registration =
            super::super::compile_sources(&[dir.path().join("t.proto")], &[dir.path().to_owned()], Some("t"))
                .expect("compiles");
        let pool = super::super::merge_registrations(vec![registration]).expect("merges").pool;
        let service = pool.get_service_by_name("t.S").expect("service");
        let memo = MethodTraitsMemo::default();
        // (method, reads, idempotent)
        let table = [
            ("Get", true, true),
            ("Put", false, true),
            ("Delete", false, true),
            ("Post", false, false),
            ("Patch", false, false),
            ("Pure", true, true),
            ("Again", false, true),
            ("PostButPure", true, true),
            ("Plain", false, false),
        ];
        for (name, reads, idempotent) in table {
            let method = service.methods().find(|m| m.name() == name).expect(name);
            let expected = MethodTraits { reads, idempotent };
            assert_eq!(MethodTraits::of(&method), expected, "{name}");
            // The memo answers the same, the first time and from memory.
            assert_eq!(memo.get(&method), expected, "{name} (memo, first)");
            assert_eq!(memo.get(&method), expected, "{name} (memo, again)");
        }
    }
}
