//! `[[transforms]]`: header edits on the way to a backend and on the way back, per gRPC method
//! (however it is reached) or REST / GraphQL source.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One transformation: what it applies to, and the header edits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TransformConfig {
    /// gRPC methods (`pkg.Service/Method`, `pkg.Service/*`, `*`): calls made for REST, GraphQL
    /// and passed-through gRPC alike.
    pub methods: Vec<String>,
    /// REST and GraphQL sources (declared in schemas/), by name.
    pub sources: Vec<String>,
    /// Edits of the headers (gRPC metadata) sent to the backend.
    pub request_headers: HeaderEdits,
    /// Edits of the headers of REST and gRPC answers sent to the client.
    pub response_headers: HeaderEdits,
    /// Edits of JSON request bodies: the methods' REST routes' (before they are transcoded),
    /// and the sources' rendered requests.
    pub request_body: BodyEdits,
    /// Edits of JSON answers: the methods' REST routes' (as sent to the client), and the
    /// sources' (before their bindings read them).
    pub response_body: BodyEdits,
}

/// JSON body edits, applied in this order: drop, rename, inject. Paths are dotted
/// (`book.title`); a path that is absent is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BodyEdits {
    /// Fields to remove.
    pub drop: Vec<String>,
    /// Fields to rename in place: `{ "book.name" = "id" }` renames `book.name` to `book.id`.
    pub rename: BTreeMap<String, String>,
    /// Fields to set, as JSON text (`"2"` is the number 2, `"\"2\""` the string); text that is
    /// not JSON is a string.
    pub inject: BTreeMap<String, String>,
}

/// Header edits, applied in this order: remove, rename, set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderEdits {
    /// Headers to drop.
    pub remove: Vec<String>,
    /// Headers to rename: `{ "x-old" = "x-new" }`.
    pub rename: BTreeMap<String, String>,
    /// Headers to set (replacing any value): a literal, or a template with `{subject}`,
    /// `{claim.NAME}` (dotted path) or `{client_ip}`; a placeholder without a value leaves the
    /// header unset.
    pub set: BTreeMap<String, String>,
}
