//! What replacing one version of a registration with another changes, and which changes break
//! clients: removed services, methods, fields and enum values; a method's request, response or
//! streaming changed; a field's number, name (JSON and GraphQL use names), type or cardinality
//! changed; an HTTP binding removed or changed. Additions are listed but break nothing.

use std::collections::BTreeMap;
use std::fmt;

use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use super::{Registration, http_bindings, merge_registrations};

/// One difference between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// True when clients of the old version may fail against the new one.
    pub breaking: bool,
    /// What changed, naming the definition.
    pub what: String,
}

/// Every difference, breaking ones first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompatReport {
    /// The differences.
    pub changes: Vec<Change>,
}

impl CompatReport {
    /// True when any change breaks clients.
    pub fn is_breaking(&self) -> bool {
        self.changes.iter().any(|c| c.breaking)
    }

    fn push(&mut self, breaking: bool, what: String) {
        self.changes.push(Change { breaking, what });
    }
}

impl fmt::Display for CompatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "  no changes to services, methods, fields, enums or HTTP bindings");
        }
        for change in &self.changes {
            writeln!(f, "  {} {}", if change.breaking { "breaking:" } else { "compatible:" }, change.what)?;
        }
        Ok(())
    }
}

/// Compares `old` with `new` (two versions of one registration).
pub fn compare(old: &Registration, new: &Registration) -> CompatReport {
    let (Ok(old_registry), Ok(new_registry)) =
        (merge_registrations(vec![old.clone()]), merge_registrations(vec![new.clone()]))
    else {
        // A version that does not build on its own cannot be compared; merging reports why.
        return CompatReport::default();
    };
    let (old_pool, new_pool) = (&old_registry.pool, &new_registry.pool);
    let mut report = CompatReport::default();
    compare_services(old, new, old_pool, new_pool, &mut report);
    let old_messages = messages_of(old, old_pool);
    let new_messages = messages_of(new, new_pool);
    for (name, old_message) in &old_messages {
        match new_messages.get(name) {
            Some(new_message) => compare_fields(old_message, new_message, &mut report),
            None => report.push(false, format!("message {name} removed")),
        }
    }
    for name in new_messages.keys().filter(|n| !old_messages.contains_key(*n)) {
        report.push(false, format!("message {name} added"));
    }
    let old_enums = enums_of(old, old_pool);
    let new_enums = enums_of(new, new_pool);
    for (name, old_enum) in &old_enums {
        match new_enums.get(name) {
            Some(new_enum) => compare_values(old_enum, new_enum, &mut report),
            None => report.push(false, format!("enum {name} removed")),
        }
    }
    report.changes.sort_by_key(|c| !c.breaking);
    report
}

fn compare_services(
    old: &Registration,
    new: &Registration,
    old_pool: &DescriptorPool,
    new_pool: &DescriptorPool,
    report: &mut CompatReport,
) {
    let new_services: Vec<String> = new.service_names().collect();
    for name in old.service_names() {
        let Some(old_service) = old_pool.get_service_by_name(&name) else { continue };
        let Some(new_service) = new_pool.get_service_by_name(&name) else {
            report.push(true, format!("service {name} removed"));
            continue;
        };
        for old_method in old_service.methods() {
            let full = old_method.full_name().to_owned();
            let Some(new_method) = new_service.methods().find(|m| m.name() == old_method.name()) else {
                report.push(true, format!("method {full} removed"));
                continue;
            };
            if old_method.input().full_name() != new_method.input().full_name() {
                let (from, to) = (old_method.input(), new_method.input());
                report.push(
                    true,
                    format!("method {full}: request changed from {} to {}", from.full_name(), to.full_name()),
                );
            }
            if old_method.output().full_name() != new_method.output().full_name() {
                let (from, to) = (old_method.output(), new_method.output());
                report.push(
                    true,
                    format!("method {full}: response changed from {} to {}", from.full_name(), to.full_name()),
                );
            }
            let kind = |m: &prost_reflect::MethodDescriptor| super::CallKind::of(m).as_str();
            if kind(&old_method) != kind(&new_method) {
                report
                    .push(true, format!("method {full}: changed from {} to {}", kind(&old_method), kind(&new_method)));
            }
            let describe = |b: &super::HttpBinding| {
                let body = if b.body.is_empty() { String::new() } else { format!(" body={}", b.body) };
                format!("{} {}{body}", b.method, b.path)
            };
            let old_bindings: Vec<String> = http_bindings(&old_method).iter().map(describe).collect();
            let new_bindings: Vec<String> = http_bindings(&new_method).iter().map(describe).collect();
            for binding in old_bindings.iter().filter(|b| !new_bindings.contains(b)) {
                report.push(true, format!("method {full}: HTTP binding `{binding}` removed or changed"));
            }
            for binding in new_bindings.iter().filter(|b| !old_bindings.contains(b)) {
                report.push(false, format!("method {full}: HTTP binding `{binding}` added"));
            }
        }
        for new_method in new_service.methods().filter(|m| old_service.methods().all(|o| o.name() != m.name())) {
            report.push(false, format!("method {} added", new_method.full_name()));
        }
    }
    for name in new_services.iter().filter(|n| !old.service_names().any(|o| &o == *n)) {
        report.push(false, format!("service {name} added"));
    }
}

/// Every message the registration's own files define, nested ones included (map entries are
/// compared through their map field).
fn messages_of(registration: &Registration, pool: &DescriptorPool) -> BTreeMap<String, MessageDescriptor> {
    let mut found = BTreeMap::new();
    let mut stack: Vec<MessageDescriptor> =
        own_files(registration, pool).flat_map(|f| f.messages().collect::<Vec<_>>()).collect();
    while let Some(message) = stack.pop() {
        stack.extend(message.child_messages());
        if !message.is_map_entry() {
            found.insert(message.full_name().to_owned(), message);
        }
    }
    found
}

fn enums_of(registration: &Registration, pool: &DescriptorPool) -> BTreeMap<String, EnumDescriptor> {
    let mut found = BTreeMap::new();
    for file in own_files(registration, pool) {
        found.extend(file.enums().map(|e| (e.full_name().to_owned(), e)));
    }
    for message in messages_of(registration, pool).values() {
        found.extend(message.child_enums().map(|e| (e.full_name().to_owned(), e)));
    }
    found
}

fn own_files<'a>(
    registration: &'a Registration,
    pool: &'a DescriptorPool,
) -> impl Iterator<Item = prost_reflect::FileDescriptor> + 'a {
    pool.files().filter(|file| registration.files.iter().any(|f| f.name == file.name()))
}

/// A field's type as a reader sees it: `int64`, `repeated string`, `map<string, Book>`.
fn field_type(field: &FieldDescriptor) -> String {
    let kind = |kind: Kind| match kind {
        Kind::Message(m) => m.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
        other => format!("{other:?}").to_ascii_lowercase(),
    };
    if field.is_map()
        && let Kind::Message(entry) = field.kind()
    {
        let key = entry.map_entry_key_field().kind();
        let value = entry.map_entry_value_field().kind();
        return format!("map<{}, {}>", kind(key), kind(value));
    }
    let base = kind(field.kind());
    if field.is_list() { format!("repeated {base}") } else { base }
}

fn compare_fields(old: &MessageDescriptor, new: &MessageDescriptor, report: &mut CompatReport) {
    let message = old.full_name();
    for old_field in old.fields() {
        let name = old_field.name();
        match new.get_field(old_field.number()) {
            None => match new.get_field_by_name(name) {
                Some(moved) => report.push(
                    true,
                    format!("field {message}.{name}: number changed from {} to {}", old_field.number(), moved.number()),
                ),
                None => report.push(true, format!("field {message}.{name} ({}) removed", old_field.number())),
            },
            Some(new_field) => {
                if new_field.name() != name {
                    report.push(
                        true,
                        format!("field {message}.{name} ({}) renamed to {}", old_field.number(), new_field.name()),
                    );
                }
                let (from, to) = (field_type(&old_field), field_type(&new_field));
                if from != to {
                    report.push(true, format!("field {message}.{name}: type changed from {from} to {to}"));
                }
            }
        }
    }
    for new_field in
        new.fields().filter(|f| old.get_field(f.number()).is_none() && old.get_field_by_name(f.name()).is_none())
    {
        report.push(false, format!("field {message}.{} ({}) added", new_field.name(), new_field.number()));
    }
}

fn compare_values(old: &EnumDescriptor, new: &EnumDescriptor, report: &mut CompatReport) {
    let name = old.full_name();
    for value in old.values() {
        match new.get_value(value.number()) {
            None => report.push(true, format!("enum value {name}.{} ({}) removed", value.name(), value.number())),
            Some(kept) if kept.name() != value.name() => {
                report.push(true, format!("enum value {name}.{} renamed to {}", value.name(), kept.name()))
            }
            Some(_) => {}
        }
    }
    for value in new.values().filter(|v| old.get_value(v.number()).is_none()) {
        report.push(false, format!("enum value {name}.{} ({}) added", value.name(), value.number()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(source: &str) -> Registration {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shop.proto");
        std::fs::write(&path, source).expect("write");
        super::super::compile_sources(&[path], &[], Some("shop")).expect("compiles")
    }

    const BASE: &str = r#"syntax = "proto3";
package shop;
import "google/api/annotations.proto";
service Shop {
  rpc GetItem(GetItemRequest) returns (Item) { option (google.api.http) = {get: "/v1/{name=items/*}"}; }
  rpc ListItems(GetItemRequest) returns (Item);
}
message GetItemRequest { string name = 1; }
message Item { string name = 1; int64 price = 2; repeated string tags = 3; Color color = 4; }
enum Color { COLOR_UNSPECIFIED = 0; RED = 1; BLUE = 2; }
"#;

    #[test]
    fn each_kind_of_change_is_reported_and_classified() {
        let old = registration(BASE);
        // (edit of BASE, expected change, breaking)
        let table: &[(&str, &str, &str, bool)] = &[
            ("  rpc ListItems(GetItemRequest) returns (Item);\n", "", "method shop.Shop.ListItems removed", true),
            ("int64 price = 2;", "string price = 2;", "field shop.Item.price: type changed from int64 to string", true),
            ("int64 price = 2;", "int64 price = 5;", "field shop.Item.price: number changed from 2 to 5", true),
            ("int64 price = 2;", "int64 cost = 2;", "field shop.Item.price (2) renamed to cost", true),
            ("int64 price = 2;", "", "field shop.Item.price (2) removed", true),
            (
                "repeated string tags = 3;",
                "string tags = 3;",
                "field shop.Item.tags: type changed from repeated string to string",
                true,
            ),
            ("BLUE = 2; ", "", "enum value shop.Color.BLUE (2) removed", true),
            (
                "{get: \"/v1/{name=items/*}\"}",
                "{get: \"/v2/{name=items/*}\"}",
                "method shop.Shop.GetItem: HTTP binding `GET /v1/{name=items/*}` removed or changed",
                true,
            ),
            (
                "returns (Item);",
                "returns (stream Item);",
                "method shop.Shop.ListItems: changed from unary to server-streaming",
                true,
            ),
            ("Color color = 4; }", "Color color = 4; bool sale = 6; }", "field shop.Item.sale (6) added", false),
            ("BLUE = 2; ", "BLUE = 2; GREEN = 3; ", "enum value shop.Color.GREEN (3) added", false),
            (
                "  rpc ListItems",
                "  rpc Count(GetItemRequest) returns (Item);\n  rpc ListItems",
                "method shop.Shop.Count added",
                false,
            ),
        ];
        for (from, to, expected, breaking) in table {
            assert!(BASE.contains(from), "{from}");
            let new = registration(&BASE.replacen(from, to, 1));
            let report = compare(&old, &new);
            let found = report.changes.iter().find(|c| c.what == *expected);
            assert!(found.is_some_and(|c| c.breaking == *breaking), "{from} → {to}: {report}");
            assert_eq!(report.is_breaking(), *breaking, "{from} → {to}: {report}");
        }
        assert!(compare(&old, &registration(BASE)).changes.is_empty());
    }
}
