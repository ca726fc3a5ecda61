//! GraphQL names from proto names: root fields in lowerCamelCase, types by short name with
//! parents prefixed (`BookEvent.Kind` → `BookEventKind`), an optional per-package prefix.

/// `ListBooks` → `listBooks`; with prefix `v2`: `v2ListBooks`.
pub(super) fn root_field_name(method: &str, prefix: Option<&str>) -> String {
    match prefix.filter(|p| !p.is_empty()) {
        Some(prefix) => format!("{}{}", lower_first(prefix), upper_first(method)),
        None => lower_first(method),
    }
}

/// `catalog.v1.BookEvent.Kind` in package `catalog.v1` → `BookEventKind`; with prefix `v2`:
/// `V2BookEventKind`.
pub(super) fn type_name(full_name: &str, package: &str, prefix: Option<&str>) -> String {
    let local = full_name.strip_prefix(package).map(|s| s.trim_start_matches('.')).unwrap_or(full_name);
    let joined: String = local.split('.').map(upper_first).collect();
    match prefix.filter(|p| !p.is_empty()) {
        Some(prefix) => format!("{}{joined}", upper_first(prefix)),
        None => joined,
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_table() {
        assert_eq!(root_field_name("ListBooks", None), "listBooks");
        assert_eq!(root_field_name("ListBooks", Some("v2")), "v2ListBooks");
        assert_eq!(root_field_name("GetISBN", None), "getISBN");
        assert_eq!(type_name("catalog.v1.Book", "catalog.v1", None), "Book");
        assert_eq!(type_name("catalog.v1.BookEvent.Kind", "catalog.v1", None), "BookEventKind");
        assert_eq!(type_name("catalog.v1.Book.LabelsEntry", "catalog.v1", None), "BookLabelsEntry");
        assert_eq!(type_name("catalog.v2.Book", "catalog.v2", Some("v2")), "V2Book");
        assert_eq!(type_name("Plain", "", None), "Plain");
    }
}
