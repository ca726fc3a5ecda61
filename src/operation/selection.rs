//! GraphQL selections after validation and normalisation: fragments inlined, `@skip`/`@include`
//! applied, fields with the same response key merged. Pure data; the GraphQL ingress builds it
//! and the response shaper walks it.

/// The fields selected on one object type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectionSet {
    /// The selected fields, in document order.
    pub fields: Vec<FieldSelection>,
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
