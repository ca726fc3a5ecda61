//! The GraphQL schema generated from the registry, by DESIGN.md's mapping table: each method a
//! root field (Query, Mutation or Subscription), request fields as arguments, messages as
//! object and input types, enums as enums, well-known types as scalars; per-service prefixes
//! and per-method renames, kinds and hiding from config or switchyard/options.proto; name
//! collisions are problems naming both sides. This module builds data and SDL; it does no I/O
//! and knows nothing of requests (the planner reads this model).

mod generate;
mod introspection;
mod naming;
mod sdl;
mod trusted;

use std::collections::BTreeMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, MessageDescriptor, MethodDescriptor};

pub use generate::generate_schema;
pub use introspection::{introspection_field_type, is_introspection_object};
pub use trusted::TrustedDocuments;

/// Which root type a field is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    fn named(name: impl Into<String>, non_null: bool) -> Self {
        TypeRef { name: name.into(), list: false, non_null, item_non_null: false }
    }
}

/// A field of an object type.
#[derive(Debug, Clone)]
pub struct ObjectField {
    /// The GraphQL name (the json_name).
    pub name: String,
    /// Its type.
    pub ty: TypeRef,
    /// The proto field it reads.
    pub field: FieldDescriptor,
    /// Marked deprecated in the proto.
    pub deprecated: bool,
}

/// An argument or input field.
#[derive(Debug, Clone)]
pub struct InputField {
    /// The GraphQL name (the json_name).
    pub name: String,
    /// Its type (always nullable: absent means the proto default).
    pub ty: TypeRef,
    /// The proto field it fills.
    pub field: FieldDescriptor,
    /// Marked deprecated in the proto.
    pub deprecated: bool,
}

/// A root field: one backend method.
#[derive(Debug, Clone)]
pub struct RootField {
    /// The field name.
    pub name: String,
    /// The method it calls.
    pub method: MethodDescriptor,
    /// Its arguments, one per request field.
    pub arguments: Vec<InputField>,
    /// The response type (nullable, so an error can null it).
    pub output: TypeRef,
    /// Marked deprecated in the proto.
    pub deprecated: bool,
}

/// A named type of the schema.
#[derive(Debug, Clone)]
pub enum TypeDef {
    /// An object type from an output message.
    Object {
        /// The message.
        message: MessageDescriptor,
        /// Its fields.
        fields: Vec<ObjectField>,
    },
    /// An input type from a request (or nested) message.
    Input {
        /// The message.
        message: MessageDescriptor,
        /// Its fields.
        fields: Vec<InputField>,
    },
    /// An enum from a proto enum.
    Enum {
        /// The enum.
        descriptor: EnumDescriptor,
    },
    /// A custom scalar.
    Scalar {
        /// What it carries.
        description: &'static str,
    },
}

/// The generated schema.
#[derive(Debug, Clone, Default)]
pub struct GraphqlSchema {
    /// Root fields by root type, each list sorted by name.
    pub roots: BTreeMap<RootKind, Vec<RootField>>,
    /// Every named type, by name.
    pub types: BTreeMap<String, TypeDef>,
    /// The `__schema` tree, built on first use.
    introspected: std::sync::OnceLock<serde_json::Value>,
}

impl GraphqlSchema {
    /// The schema in GraphQL SDL.
    pub fn to_sdl(&self) -> String {
        sdl::print(self)
    }

    /// The `__schema` value, built once.
    pub fn introspected(&self) -> &serde_json::Value {
        self.introspected.get_or_init(|| self.introspection())
    }

    /// The root field `name` of `kind`.
    pub fn root_field(&self, kind: RootKind, name: &str) -> Option<&RootField> {
        self.roots.get(&kind)?.iter().find(|f| f.name == name)
    }
}
