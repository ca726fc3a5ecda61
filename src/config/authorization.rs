//! The `[authorization]` block: rules that say who may call a gRPC method (however it is
//! reached), a REST route, or a GraphQL field, and what happens to a GraphQL operation that
//! selects fields its client may not see.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Authorization rules, checked on every operation before any backend call. Every rule that
/// targets a method, route or field must pass; with no rule, everything is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// A GraphQL operation selecting fields its client may not see: `null` answers them null
    /// with FORBIDDEN errors at their paths and runs the rest; `reject` refuses the whole
    /// operation (403, an error per field).
    pub graphql_denied: GraphqlDenied,
    /// The rules.
    pub rules: Vec<RuleConfig>,
}

/// What a GraphQL operation with unauthorized fields gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GraphqlDenied {
    /// Those fields are null, each with a FORBIDDEN error; the rest runs.
    #[default]
    Null,
    /// The operation is refused.
    Reject,
}

/// One rule: what it guards, and what the client must have.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// gRPC methods, whether reached by REST, GraphQL, WebSocket or gRPC:
    /// `pkg.Service/Method`, `pkg.Service/*`, or `*`.
    pub methods: Vec<String>,
    /// REST routes as `switchyard routes` prints them: `GET /v1/{name=shelves/*}`, or a
    /// template alone for every verb.
    pub routes: Vec<String>,
    /// GraphQL fields: `Type.field`, or `Type.*` for every field of a type (root types
    /// included: `Mutation.*`).
    pub fields: Vec<String>,
    /// GraphQL types: every field whose value is of this type.
    pub types: Vec<String>,
    /// The client must be authenticated (implied by every other requirement).
    pub authenticated: bool,
    /// The client must have at least one of these scopes.
    pub scopes_any: Vec<String>,
    /// The client must have every one of these scopes.
    pub scopes_all: Vec<String>,
    /// Conditions on the token's claims, all of which must hold.
    pub claims: Vec<ClaimRule>,
}

/// A condition on one claim (a dotted path reaches into objects: `realm.roles`). Exactly one
/// of `equals`, `contains` and `matches` is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// The claim's name or dotted path (`sub` and `scope` work for API keys too).
    pub claim: String,
    /// The claim's value equals this (numbers and booleans compare by their JSON text).
    #[serde(default)]
    pub equals: Option<String>,
    /// The claim is a list with this item, or a space-separated string with this word.
    #[serde(default)]
    pub contains: Option<String>,
    /// The claim's value (or one of its items) matches this regular expression as a whole.
    #[serde(default)]
    pub matches: Option<String>,
}
