//! GraphQL selections after validation and normalisation: fragments inlined, `@skip`/`@include`
//! applied, fields with the same response key merged. Pure data; the GraphQL ingress builds it
//! and the response shaper walks it.

/// The fields selected on one object type — or, for an interface or union, on each object
/// type a value may have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectionSet {
    /// The selected fields, in document order. For an interface or union only the hidden
    /// `__typename` (`@__typename`) that tells which entry of `by_type` applies.
    pub fields: Vec<FieldSelection>,
    /// For an interface or union: each possible object type with its selection, fragments
    /// applied (fields of the interface and of the fragments that match it). Empty otherwise.
    pub by_type: Vec<(String, SelectionSet)>,
}

impl SelectionSet {
    /// The selection of `fields` on an object type.
    pub fn new(fields: Vec<FieldSelection>) -> Self {
        SelectionSet { fields, by_type: Vec::new() }
    }

    /// The selection for values of object type `type_name`: this one for an object type, the
    /// entry of `by_type` for an interface or union.
    pub fn for_type(&self, type_name: &str) -> Option<&SelectionSet> {
        if self.by_type.is_empty() {
            return Some(self);
        }
        self.by_type.iter().find(|(name, _)| name == type_name).map(|(_, set)| set)
    }

    /// Every object type's selection: this one, or each of `by_type`.
    pub fn each_type(&self) -> impl Iterator<Item = &SelectionSet> {
        let own = self.by_type.is_empty().then_some(self);
        own.into_iter().chain(self.by_type.iter().map(|(_, set)| set))
    }
}

/// `hidden_key("__typename")`: where an interface's or union's selection, and the shaped value,
/// keep each value's object type.
pub const HIDDEN_TYPENAME: &str = "@__typename";

/// The hidden field an abstract selection carries to learn each value's object type.
pub fn typename_selection() -> FieldSelection {
    FieldSelection {
        response_key: HIDDEN_TYPENAME.to_owned(),
        field_name: "__typename".into(),
        children: SelectionSet::default(),
        arguments: Vec::new(),
        defer: None,
        forbidden: None,
    }
}

/// One selected field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSelection {
    /// The key in the response (alias or name).
    pub response_key: String,
    /// The schema field name (`__typename` included).
    pub field_name: String,
    /// The selection below it (empty for leaves).
    pub children: SelectionSet,
    /// Arguments of non-root fields, already resolved (introspection's `includeDeprecated`).
    pub arguments: Vec<(String, serde_json::Value)>,
    /// The `@defer`red fragment it was selected in (its index among the operation's), when it
    /// was selected only in deferred fragments.
    pub defer: Option<usize>,
    /// Why the client may not see this field, when authorization denied it: it is answered
    /// null with a FORBIDDEN error and nothing is fetched for it.
    pub forbidden: Option<std::sync::Arc<str>>,
}

/// The response key under which a stitched field's parent key `field` is fetched when the client
/// did not select it; `@` cannot start a GraphQL name, so it never meets a client's key.
pub fn hidden_key(field: &str) -> String {
    format!("@{field}")
}

/// True for keys made by `hidden_key` (removed before the response is sent).
pub fn is_hidden_key(key: &str) -> bool {
    key.starts_with('@')
}
