//! `[graphql]`: how the generated GraphQL schema names and classifies services and methods,
//! overriding what the descriptors (and switchyard/options.proto) say.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// GraphQL schema generation settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Serve GraphiQL to browsers that GET /graphql (it loads from a public CDN in the
    /// browser). Off by default, as it should be in production; on in the demo.
    pub graphiql: bool,
    /// Answer `__schema` and `__type` (introspection).
    pub introspection: bool,
    /// Limits checked before any backend call; each refusal names its key.
    pub limits: GraphqlLimits,
    /// A safelist of operations (trusted documents).
    pub trusted_documents: Option<TrustedDocumentsConfig>,
    /// Subscriptions and operations over WebSocket.
    pub subscriptions: SubscriptionConfig,
    /// Per service (full name): prefix or hide.
    pub services: BTreeMap<String, GraphqlServiceConfig>,
    /// Per method (`package.Service.Method`): rename, hide, or force query/mutation.
    pub methods: BTreeMap<String, GraphqlMethodConfig>,
    /// Per field of a generated object type (`Book.isbn`): rename or hide it. Schema files see
    /// the result (a hidden field cannot be a stitching key).
    pub fields: BTreeMap<String, GraphqlFieldConfig>,
    /// Generated types to rename: `{ Book = "CatalogBook" }` (objects, inputs, enums). Applied
    /// after field edits (which use the generated names); schema files see the new names.
    pub type_names: BTreeMap<String, String>,
    /// Generated types to leave out (by generated name), with every field, argument and root
    /// field of that type: `["BookLabelsEntry"]`. A type whose fields are all hidden leaves too.
    pub hidden_types: BTreeSet<String>,
    /// Cross-site request forgery prevention.
    pub csrf: CsrfConfig,
}

/// CSRF prevention: a request a browser could send cross-site without a preflight (a GET, or a
/// POST with a text/plain, form or multipart body) that carries ambient credentials (cookies,
/// or Basic/Digest authorization) is refused with 400 unless it has a header that forces a
/// preflight. Requests without ambient credentials are never affected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CsrfConfig {
    /// Turn it off only behind another CSRF defence.
    pub enabled: bool,
    /// Headers that force a preflight, besides `apollo-require-preflight` and
    /// `x-apollo-operation-name`.
    pub preflight_headers: Vec<String>,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig { enabled: true, preflight_headers: Vec::new() }
    }
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        GraphqlConfig {
            graphiql: false,
            introspection: true,
            limits: GraphqlLimits::default(),
            trusted_documents: None,
            subscriptions: SubscriptionConfig::default(),
            services: BTreeMap::new(),
            methods: BTreeMap::new(),
            fields: BTreeMap::new(),
            type_names: BTreeMap::new(),
            hidden_types: BTreeSet::new(),
            csrf: CsrfConfig::default(),
        }
    }
}

/// Operation limits. Fragments are expanded (with memoisation) before counting, so a small
/// document that expands to a huge one is refused in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlLimits {
    /// Largest document, in bytes.
    #[schemars(range(min = 1))]
    pub max_document_bytes: u32,
    /// Most lexical tokens in a document.
    #[schemars(range(min = 1))]
    pub max_tokens: u32,
    /// Deepest selection nesting.
    #[schemars(range(min = 1))]
    pub max_depth: u32,
    /// Most fields after fragments are expanded.
    #[schemars(range(min = 1))]
    pub max_fields: u32,
    /// Most aliased fields after fragments are expanded.
    pub max_aliases: u32,
    /// Most root fields in an operation.
    #[schemars(range(min = 1))]
    pub max_root_fields: u32,
    /// Most directives on one field, fragment spread or inline fragment.
    pub max_directives: u32,
    /// Highest estimated cost: each field costs 1, and what is selected under a list counts
    /// once per item the list is expected to hold (`list_size`).
    #[schemars(range(min = 1))]
    pub max_cost: u32,
    /// The items a list field is expected to hold when estimating cost.
    #[schemars(range(min = 1))]
    pub list_size: u32,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        GraphqlLimits {
            max_document_bytes: 64 * 1024,
            max_tokens: 15_000,
            max_depth: 15,
            max_fields: 5_000,
            max_aliases: 100,
            max_root_fields: 30,
            max_directives: 5,
            max_cost: 50_000,
            list_size: 10,
        }
    }
}

/// WebSocket sessions (graphql-transport-ws and the legacy graphql-ws) and their subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// How long a new socket may wait before sending connection_init (then 4408).
    pub init_timeout: crate::config::duration::ConfigDuration,
    /// How often the gateway pings an idle socket (a WebSocket ping; `ka` for the legacy protocol).
    pub keepalive: crate::config::duration::ConfigDuration,
    /// Most operations running at once on one socket.
    #[schemars(range(min = 1))]
    pub max_per_connection: u32,
    /// Most subscriptions running at once on the gateway.
    #[schemars(range(min = 1))]
    pub max_total: u32,
    /// Most operations one consumer (a verified identity, else the client's address) runs at
    /// once over all its sockets: many sockets cannot take the whole of `max_total`.
    #[schemars(range(min = 1))]
    pub max_per_consumer: u32,
    /// Largest message a client may send, in bytes (then 1009).
    #[schemars(range(min = 1))]
    pub max_message_bytes: u32,
    /// Messages waiting for a slow client, per socket; when full the socket is closed with 1013.
    #[schemars(range(min = 1))]
    pub buffer: u32,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        SubscriptionConfig {
            init_timeout: crate::config::duration::ConfigDuration::from_secs(10),
            keepalive: crate::config::duration::ConfigDuration::from_secs(12),
            max_per_connection: 100,
            max_total: 10_000,
            max_per_consumer: 1_000,
            max_message_bytes: 256 * 1024,
            buffer: 1024,
        }
    }
}

/// Trusted documents: a JSON file whose object maps document ids (usually the sha256 of the
/// text) to document texts. Clients send `documentId`, a persisted-query hash, or the text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedDocumentsConfig {
    /// The JSON file.
    pub file: std::path::PathBuf,
    /// Refuse every document that is not in the list (403). Off: unlisted documents run.
    #[serde(default = "enforce_by_default")]
    pub enforce: bool,
}

fn enforce_by_default() -> bool {
    true
}

/// One service's place in the schema.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlServiceConfig {
    /// Put in front of the service's root fields (lowerCamelCase: `v2ListBooks`) and of the
    /// type names of its package (PascalCase: `V2Book`), to resolve collisions.
    pub prefix: Option<String>,
    /// Leave the service out of the schema.
    pub hidden: bool,
}

/// One method's place in the schema.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlMethodConfig {
    /// The root field's name instead of the method name in lowerCamelCase.
    pub name: Option<String>,
    /// Force the root type.
    pub kind: Option<GraphqlKind>,
    /// Leave the method out of the schema.
    pub hidden: bool,
}

/// One generated field's place in the schema.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlFieldConfig {
    /// Its name in the schema instead of its json_name.
    pub name: Option<String>,
    /// Leave it out of the schema.
    pub hidden: bool,
}

/// A root type a unary method can be placed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GraphqlKind {
    /// A Query field.
    Query,
    /// A Mutation field.
    Mutation,
}
