//! Federation field sets: the fields of a `@key`, a `@requires` or a `@provides` (`upc`,
//! `sku variant { id }`, `... on Book { isbn }`), read into a tree that can copy those fields
//! out of an answer. The supergraph reader checks them; the planner builds representations
//! with them.

use crate::tree::{Object, Value};
use async_graphql_parser::types::{Selection, SelectionSet};

/// A field set: the fields of a key, a `@requires` or a `@provides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSet {
    items: Vec<FieldSetItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldSetItem {
    /// A field, with the field set below it for objects.
    Field { name: String, children: FieldSet },
    /// `... on Type { ... }`: fields read only when the value is of that type.
    On { type_condition: String, children: FieldSet },
}

impl FieldSet {
    /// Parses a field set; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<FieldSet, String> {
        let document = async_graphql_parser::parse_query(format!("{{ {text} }}")).map_err(|e| e.to_string())?;
        let operation = match &document.operations {
            async_graphql_parser::types::DocumentOperations::Single(operation) => operation,
            async_graphql_parser::types::DocumentOperations::Multiple(_) => return Err("not a field set".into()),
        };
        FieldSet::of(&operation.node.selection_set.node)
    }

    fn of(selection: &SelectionSet) -> Result<FieldSet, String> {
        let mut items = Vec::new();
        for item in &selection.items {
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    if field.alias.is_some() || !field.arguments.is_empty() || !field.directives.is_empty() {
                        return Err(format!(
                            "`{}`: a field set takes no aliases, arguments or directives",
                            field.name.node
                        ));
                    }
                    items.push(FieldSetItem::Field {
                        name: field.name.node.to_string(),
                        children: FieldSet::of(&field.selection_set.node)?,
                    });
                }
                Selection::InlineFragment(fragment) => {
                    let fragment = &fragment.node;
                    let condition = fragment.type_condition.as_ref().ok_or("an inline fragment needs `on Type`")?;
                    items.push(FieldSetItem::On {
                        type_condition: condition.node.on.node.to_string(),
                        children: FieldSet::of(&fragment.selection_set.node)?,
                    });
                }
                Selection::FragmentSpread(_) => return Err("a field set takes no fragment spreads".into()),
            }
        }
        Ok(FieldSet { items })
    }

    /// The names of its top-level fields (what a parent must have been fetched with).
    pub fn top_level(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for item in &self.items {
            match item {
                FieldSetItem::Field { name, .. } => names.push(name.as_str()),
                FieldSetItem::On { children, .. } => names.extend(children.top_level()),
            }
        }
        names
    }

    /// True when it selects nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when field `name` is one of its top-level fields.
    pub fn has(&self, name: &str) -> bool {
        self.top_level().contains(&name)
    }

    /// The field set below top-level field `name` (what a `@provides` provides of its value).
    pub fn child(&self, name: &str) -> Option<&FieldSet> {
        self.items.iter().find_map(|item| match item {
            FieldSetItem::Field { name: n, children } if n == name => Some(children),
            FieldSetItem::On { children, .. } => children.child(name),
            FieldSetItem::Field { .. } => None,
        })
    }

    /// The names of its fields when they are all plain fields (no selection below them, no
    /// type condition), which a representation copies as they are.
    pub fn flat_fields(&self) -> Option<Vec<&str>> {
        self.items
            .iter()
            .map(|item| match item {
                FieldSetItem::Field { name, children } if children.items.is_empty() => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Both sets' fields in one.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet { items: self.items.iter().chain(&other.items).cloned().collect() }
    }

    /// Splits the set by its top-level fields: those `keep` accepts, and the rest (a type
    /// condition stays whole, kept only when every field in it is).
    pub fn partition(&self, keep: impl Fn(&str) -> bool) -> (FieldSet, FieldSet) {
        let (kept, rest): (Vec<FieldSetItem>, Vec<FieldSetItem>) =
            self.items.iter().cloned().partition(|item| match item {
                FieldSetItem::Field { name, .. } => keep(name),
                FieldSetItem::On { children, .. } => children.top_level().iter().all(|n| keep(n)),
            });
        (FieldSet { items: kept }, FieldSet { items: rest })
    }

    /// `selection_text`, one piece per top-level field (or type condition).
    pub fn selection_pieces(&self, prefix: &str) -> Vec<String> {
        self.items.iter().map(|item| FieldSet { items: vec![item.clone()] }.selection_text(prefix)).collect()
    }

    /// The set as selection text with each top-level field under the alias `{prefix}{name}`
    /// (`_sy_upc: upc _sy_variant: variant { id }`), so a fetch can carry it beside whatever
    /// the client selected under the same names; an empty prefix writes plain fields.
    pub fn selection_text(&self, prefix: &str) -> String {
        let mut out = String::new();
        for item in &self.items {
            if !out.is_empty() {
                out.push(' ');
            }
            match item {
                FieldSetItem::Field { name, children } => {
                    if !prefix.is_empty() {
                        out.push_str(prefix);
                        out.push_str(name);
                        out.push_str(": ");
                    }
                    out.push_str(name);
                    if !children.items.is_empty() {
                        out.push_str(" { ");
                        out.push_str(&children.selection_text(""));
                        out.push_str(" }");
                    }
                }
                FieldSetItem::On { type_condition, children } => {
                    out.push_str("... on ");
                    out.push_str(type_condition);
                    out.push_str(" { ");
                    out.push_str(&children.selection_text(prefix));
                    out.push_str(" }");
                }
            }
        }
        out
    }

    /// Copies this set's fields from `value` (an object whose `__typename` is `typename`) into
    /// `into`, reading each top-level field under `{prefix}{name}` (as `selection_text` fetched
    /// it) and writing it under its name; false when a field is missing (null counts as
    /// present).
    pub(crate) fn copy(&self, value: &Object, typename: &str, into: &mut Object, prefix: &str) -> bool {
        for item in &self.items {
            match item {
                FieldSetItem::Field { name, children } => {
                    // Under the planner's alias, or under its own name when the fetch had it there
                    // already (the planner then leaves the alias out).
                    let found = if prefix.is_empty() {
                        value.get(name)
                    } else {
                        let mut aliased = String::with_capacity(prefix.len() + name.len());
                        aliased.push_str(prefix);
                        aliased.push_str(name);
                        value.get(&aliased).or_else(|| value.get(name))
                    };
                    let Some(found) = found else { return false };
                    let copied = match (found, children.items.is_empty()) {
                        (_, true) | (Value::Null, false) => found.clone(),
                        (Value::Object(inner), false) => {
                            let inner_type = inner.get("__typename").and_then(Value::as_str).unwrap_or_default();
                            let mut nested = match into.get(name) {
                                Some(Value::Object(existing)) => existing.clone(),
                                _ => Object::default(),
                            };
                            if !children.copy(inner, inner_type, &mut nested, "") {
                                return false;
                            }
                            Value::Object(nested)
                        }
                        (Value::Array(items), false) => {
                            let mut list = Vec::with_capacity(items.len());
                            for item in items {
                                let Value::Object(inner) = item else { return false };
                                let inner_type = inner.get("__typename").and_then(Value::as_str).unwrap_or_default();
                                let mut nested = Object::default();
                                if !children.copy(inner, inner_type, &mut nested, "") {
                                    return false;
                                }
                                list.push(Value::Object(nested));
                            }
                            Value::Array(list)
                        }
                        _ => return false,
                    };
                    into.insert(name.as_str(), copied);
                }
                FieldSetItem::On { type_condition, children } => {
                    if type_condition == typename && !children.copy(value, typename, into, prefix) {
                        return false;
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_sets_parse_into_trees() {
        let table = [
            ("upc", vec!["upc"]),
            ("sku variant { id }", vec!["sku", "variant"]),
            ("id ... on Book { isbn }", vec!["id", "isbn"]),
        ];
        for (text, top) in table {
            assert_eq!(FieldSet::parse(text).expect(text).top_level(), top, "{text}");
        }
        // Every prefix of a field set parses or is refused with a reason; none panics.
        let full = "sku variant { id } ... on Book { isbn }";
        for end in 0..=full.len() {
            if let Err(reason) = FieldSet::parse(&full[..end]) {
                assert!(!reason.is_empty(), "{:?}", &full[..end]);
            }
        }
        for (text, error) in
            [("a(x: 1)", "no aliases, arguments"), ("b: a", "no aliases"), ("...F", "fragment spreads"), ("a {", "")]
        {
            let found = FieldSet::parse(text).expect_err(text);
            assert!(found.contains(error), "{text}: {found}");
        }
    }

    #[test]
    fn field_sets_print_aliased_and_split() {
        let set = FieldSet::parse("sku variant { id } ... on Book { isbn }").expect("a field set");
        assert_eq!(set.selection_text(""), "sku variant { id } ... on Book { isbn }");
        assert_eq!(
            set.selection_text("_sy_"),
            "_sy_sku: sku _sy_variant: variant { id } ... on Book { _sy_isbn: isbn }"
        );
        let (kept, rest) = set.partition(|name| name == "sku" || name == "isbn");
        assert_eq!(
            (kept.selection_text(""), rest.selection_text("")),
            ("sku ... on Book { isbn }".into(), "variant { id }".into())
        );
        assert!(set.has("variant") && !set.has("id"));
        assert_eq!(set.child("variant").map(|c| c.selection_text("")), Some("id".into()));
        let fetched = Value::from_json(
            serde_json::json!({"_sy_sku": "A", "sku": "wrong", "_sy_variant": {"id": 1, "name": "x"}}),
        );
        let mut into = Object::default();
        let key = FieldSet::parse("sku variant { id }").expect("a key");
        assert!(key.copy(fetched.as_object().expect("an object"), "Product", &mut into, "_sy_"));
        assert_eq!(Value::Object(into).to_json(), serde_json::json!({"sku": "A", "variant": {"id": 1}}));
    }

    #[test]
    fn field_sets_must_be_selection_sets() {
        for set in ["id", "upc sku", "owner { id }", "... on Book { isbn }"] {
            assert!(FieldSet::parse(set).is_ok(), "{set}");
        }
        for set in ["id {", "{", ""] {
            assert!(FieldSet::parse(set).is_err(), "{set:?}");
        }
    }
}
