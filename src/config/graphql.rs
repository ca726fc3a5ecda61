//! `[graphql]`: how the generated GraphQL schema names and classifies services and methods,
//! overriding what the descriptors (and switchyard/options.proto) say.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// GraphQL schema generation settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Serve GraphiQL to browsers that GET /graphql (it loads from a public CDN in the
    /// browser). Off by default, as it should be in production; on in the demo.
    pub graphiql: bool,
    /// Per service (full name): prefix or hide.
    pub services: BTreeMap<String, GraphqlServiceConfig>,
    /// Per method (`package.Service.Method`): rename, hide, or force query/mutation.
    pub methods: BTreeMap<String, GraphqlMethodConfig>,
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

/// A root type a unary method can be placed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GraphqlKind {
    /// A Query field.
    Query,
    /// A Mutation field.
    Mutation,
}
