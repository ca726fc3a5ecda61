//! The GraphQL schema generated from the registry, by DESIGN.md's mapping table: each method a
//! root field (Query, Mutation or Subscription), request fields as arguments, messages as
//! object and input types, enums as enums, well-known types as scalars; per-service prefixes
//! and per-method renames, kinds and hiding from config or switchyard/options.proto; name
//! collisions are problems naming both sides. This module builds data and SDL; it does no I/O
//! and knows nothing of requests (the planner reads this model).

mod api_sdl;
mod binding;
mod declared;
mod edits;
mod field_set;
mod generate;
mod introspected;
mod introspection;
mod naming;
mod sdl;
mod supergraph;
mod trusted;

use std::collections::BTreeMap;
use std::sync::Arc;

use prost_reflect::{EnumDescriptor, FieldDescriptor, MessageDescriptor, MethodDescriptor};

pub use binding::{Batch, Binding, BoundCall, GraphqlCall, Part, RestCall, Template, ValueTemplate};
pub use declared::{
    DIRECTIVES_SDL, IntrospectedSources, SchemaFile, SourceDecl, SourceKind, apply_schema_files, declared_sources,
};
pub use edits::{apply_field_config, apply_hidden_types, apply_type_names};
pub use field_set::FieldSet;
pub use generate::generate_schema;
pub use introspected::{INTROSPECTION_QUERY, introspection_sdl};
pub use introspection::{introspection_field_type, is_introspection_object};
pub use supergraph::{FieldJoin, Subgraph, SuperField, SuperKind, SuperType, Supergraph, TypeJoin, parse_supergraph};
pub use trusted::TrustedDocuments;

/// The name under which a supergraph's API schema is a GraphQL source: its root fields' bindings
/// name it, and the planner sends them to the subgraphs that own them.
pub const SUPERGRAPH_SOURCE: &str = "supergraph";

/// True for GraphQL's built-in scalars (`String`, `Int`, `Float`, `Boolean`, `ID`), which
/// the schema's type map does not hold.
pub fn is_builtin_scalar(name: &str) -> bool {
    matches!(name, "String" | "Int" | "Float" | "Boolean" | "ID")
}

/// Which root type a field is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RootKind {
    /// `Query`.
    Query,
    /// `Mutation`.
    Mutation,
    /// `Subscription` (server-streaming methods).
    Subscription,
}

/// A reference to a type, with its list and non-null wrappers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef {
    /// The named type.
    pub name: String,
    /// `[T]`.
    pub list: bool,
    /// `T!` (or `[T]!` for lists).
    pub non_null: bool,
    /// `[T!]`.
    pub item_non_null: bool,
}

impl TypeRef {
    /// A named type, not a list.
    pub fn named(name: impl Into<String>, non_null: bool) -> Self {
        TypeRef { name: name.into(), list: false, non_null, item_non_null: false }
    }
}

impl std::fmt::Display for TypeRef {
    /// The reference in SDL: `T`, `T!`, `[T!]!`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.list, self.item_non_null) {
            (true, true) => write!(f, "[{}!]", self.name)?,
            (true, false) => write!(f, "[{}]", self.name)?,
            (false, _) => f.write_str(&self.name)?,
        }
        if self.non_null { f.write_str("!") } else { Ok(()) }
    }
}

/// Where an object field's value comes from.
#[derive(Debug, Clone)]
pub enum FieldSource {
    /// A proto field, read from the answer's proto3 JSON by its json_name.
    Proto(FieldDescriptor),
    /// The value at this key path of a JSON answer (types declared in schemas/).
    Json(Vec<String>),
    /// A call to a backend with arguments from the parent (stitching).
    Bound(Arc<Binding>),
    /// A field of a GraphQL source's type: its answer carries it under the response key.
    Remote,
}

/// A field of an object type.
#[derive(Debug, Clone)]
pub struct ObjectField {
    /// The GraphQL name (the json_name for proto fields).
    pub name: String,
    /// Its type.
    pub ty: TypeRef,
    /// Where its value comes from.
    pub source: FieldSource,
    /// Its arguments (only bound fields take any).
    pub arguments: Vec<InputField>,
    /// Marked deprecated.
    pub deprecated: bool,
    /// Its description (from schemas/).
    pub description: Option<String>,
}

impl ObjectField {
    /// The binding of a stitched field.
    pub fn binding(&self) -> Option<&Arc<Binding>> {
        match &self.source {
            FieldSource::Bound(binding) => Some(binding),
            _ => None,
        }
    }
}

/// Where an argument or input field goes.
#[derive(Debug, Clone)]
pub enum InputSource {
    /// The request message's proto field.
    Proto(FieldDescriptor),
    /// An argument declared in schemas/, read by a binding's templates; its default, if any.
    Declared(Option<serde_json::Value>),
}

/// An argument or input field.
#[derive(Debug, Clone)]
pub struct InputField {
    /// The GraphQL name (the json_name for proto fields).
    pub name: String,
    /// Its type (proto fields are always nullable: absent means the proto default).
    pub ty: TypeRef,
    /// Where the value goes.
    pub source: InputSource,
    /// Marked deprecated.
    pub deprecated: bool,
    /// Its description (from schemas/).
    pub description: Option<String>,
}

impl InputField {
    /// The proto field it fills, for generated arguments.
    pub fn proto(&self) -> Option<&FieldDescriptor> {
        match &self.source {
            InputSource::Proto(field) => Some(field),
            InputSource::Declared(_) => None,
        }
    }
}

/// What answers a root field.
#[derive(Debug, Clone)]
pub enum Resolver {
    /// A gRPC method whose request fields are the arguments (generated from the registry).
    Method(MethodDescriptor),
    /// A call declared in schemas/ by `@rest` or `@grpc`.
    Bound(Arc<Binding>),
}

/// A root field: one backend call.
#[derive(Debug, Clone)]
pub struct RootField {
    /// The field name.
    pub name: String,
    /// What answers it.
    pub resolver: Resolver,
    /// Its arguments.
    pub arguments: Vec<InputField>,
    /// The response type (nullable, so an error can null it).
    pub output: TypeRef,
    /// Marked deprecated.
    pub deprecated: bool,
    /// Its description (from schemas/).
    pub description: Option<String>,
}

/// One value of an enum type.
#[derive(Debug, Clone)]
pub struct EnumValue {
    /// Its name.
    pub name: String,
    /// Marked deprecated.
    pub deprecated: bool,
}

/// A named type of the schema.
#[derive(Debug, Clone)]
pub enum TypeDef {
    /// An object type, from an output message or declared in schemas/.
    Object {
        /// The message, for generated types.
        message: Option<MessageDescriptor>,
        /// Its fields.
        fields: Vec<ObjectField>,
    },
    /// An input type, from a request (or nested) message or declared in schemas/.
    Input {
        /// The message, for generated types.
        message: Option<MessageDescriptor>,
        /// Its fields.
        fields: Vec<InputField>,
    },
    /// An enum, from a proto enum or declared in schemas/.
    Enum {
        /// The proto enum, for generated types.
        descriptor: Option<EnumDescriptor>,
        /// Its values.
        values: Vec<EnumValue>,
    },
    /// An interface (only GraphQL sources and supergraphs have them): the fields every
    /// implementation has, and the object types that implement it.
    Interface {
        /// Its fields (remote fields, read from the answer like an object's).
        fields: Vec<ObjectField>,
        /// The object types implementing it, in declaration order.
        possible: Vec<String>,
    },
    /// A union (only GraphQL sources and supergraphs have them).
    Union {
        /// Its member object types.
        possible: Vec<String>,
    },
    /// A custom scalar.
    Scalar {
        /// What it carries.
        description: String,
    },
}

/// The generated schema.
#[derive(Debug, Clone, Default)]
pub struct GraphqlSchema {
    /// Root fields by root type, each list sorted by name.
    pub roots: BTreeMap<RootKind, Vec<RootField>>,
    /// Every named type, by name.
    pub types: BTreeMap<String, TypeDef>,
    /// Descriptions of named types (from schemas/), by name.
    pub type_descriptions: BTreeMap<String, String>,
    /// `@cacheControl(maxAge:, scope:)` on fields declared in schemas/: (type, field) → (max
    /// age in seconds, private).
    pub cache_hints: BTreeMap<(String, String), (u64, bool)>,
    /// Entity resolvers declared in schemas/ (`extend type Book @grpc(...)`): the call that
    /// fetches an object of the type from its key fields, by type name.
    pub entities: BTreeMap<String, Arc<Binding>>,
    /// The `__schema` tree, built on first use.
    introspected: std::sync::OnceLock<serde_json::Value>,
    /// The interfaces of each object type that implements any, built on first use.
    implemented: std::sync::OnceLock<BTreeMap<String, Vec<String>>>,
    /// proto3 JSON codecs for the gRPC answers root fields read, made on first use.
    codecs: crate::transcode::json_wire::JsonCodecs,
}

impl GraphqlSchema {
    /// The schema in GraphQL SDL.
    pub fn to_sdl(&self) -> String {
        sdl::print(self)
    }

    /// The proto3 JSON codec for answers of type `message`.
    pub fn json_codec(
        &self,
        message: &prost_reflect::MessageDescriptor,
    ) -> Arc<crate::transcode::json_wire::JsonCodec> {
        self.codecs.get(message)
    }

    /// The `__schema` value, built once.
    pub fn introspected(&self) -> &serde_json::Value {
        self.introspected.get_or_init(|| self.introspection())
    }

    /// The root field `name` of `kind`.
    pub fn root_field(&self, kind: RootKind, name: &str) -> Option<&RootField> {
        self.roots.get(&kind)?.iter().find(|f| f.name == name)
    }

    /// The field `name` of object or interface type `type_name`.
    pub fn object_field(&self, type_name: &str, name: &str) -> Option<&ObjectField> {
        match self.types.get(type_name)? {
            TypeDef::Object { fields, .. } | TypeDef::Interface { fields, .. } => {
                fields.iter().find(|f| f.name == name)
            }
            _ => None,
        }
    }

    /// The object types a value of type `type_name` can have: its members for an interface or
    /// union, itself for an object type, none for anything else.
    pub fn possible_types<'s>(&'s self, type_name: &'s str) -> &'s [String] {
        match self.types.get_key_value(type_name) {
            Some((_, TypeDef::Interface { possible, .. } | TypeDef::Union { possible })) => possible,
            Some((name, TypeDef::Object { .. })) => std::slice::from_ref(name),
            _ => &[],
        }
    }

    /// True for interfaces and unions.
    pub fn is_abstract(&self, type_name: &str) -> bool {
        matches!(self.types.get(type_name), Some(TypeDef::Interface { .. } | TypeDef::Union { .. }))
    }

    /// True for types whose values have fields to select (objects, interfaces, unions).
    pub fn is_composite(&self, type_name: &str) -> bool {
        matches!(
            self.types.get(type_name),
            Some(TypeDef::Object { .. } | TypeDef::Interface { .. } | TypeDef::Union { .. })
        )
    }

    /// The interfaces object type `type_name` implements, in name order.
    pub fn interfaces_of(&self, type_name: &str) -> impl Iterator<Item = &str> {
        let implemented = self.implemented.get_or_init(|| {
            let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, def) in &self.types {
                if let TypeDef::Interface { possible, .. } = def {
                    for object in possible {
                        out.entry(object.clone()).or_default().push(name.clone());
                    }
                }
            }
            out
        });
        implemented.get(type_name).into_iter().flatten().map(String::as_str)
    }
}
