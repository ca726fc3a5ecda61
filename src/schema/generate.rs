//! Generating the schema: root fields from methods, then every type they reach, with collisions
//! (two proto definitions or two methods wanting one GraphQL name) reported, never resolved
//! silently.

use std::collections::BTreeMap;

use prost_reflect::{
    DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, Value,
};

use super::naming::{root_field_name, type_name};
use super::{
    EnumValue, FieldSource, GraphqlSchema, InputField, InputSource, ObjectField, Resolver, RootField, RootKind,
    TypeDef, TypeRef,
};
use crate::config::{GraphqlConfig, GraphqlKind, Problem};

/// Method name prefixes that make a unary method a Query (DESIGN.md).
const QUERY_PREFIXES: &[&str] = &["Get", "List", "Search", "Batch", "Lookup", "Find", "Count"];

/// Custom scalars and what they carry.
const SCALARS: &[(&str, &str)] = &[
    ("Int64", "A signed 64-bit integer, as a JSON string (integer literals are accepted exactly)."),
    ("UInt64", "An unsigned 64-bit integer, as a JSON string (integer literals are accepted exactly)."),
    ("UInt32", "An unsigned 32-bit integer."),
    ("DateTime", "A point in time, RFC 3339 (google.protobuf.Timestamp)."),
    ("Duration", "A duration such as \"1.5s\" (google.protobuf.Duration)."),
    ("FieldMask", "Comma-separated field paths (google.protobuf.FieldMask)."),
    ("Base64", "Bytes, base64-encoded."),
    ("JSON", "Any JSON value (google.protobuf.Struct, Value, ListValue, or Any with @type)."),
    ("Empty", "A message with no fields; always {}."),
];

/// Generates the schema for `services` (full names) in `pool`.
pub fn generate_schema(
    pool: &DescriptorPool,
    services: &[String],
    config: &GraphqlConfig,
) -> (GraphqlSchema, Vec<Problem>) {
    let mut generator = Generator {
        config,
        prefixes: BTreeMap::new(),
        schema: GraphqlSchema::default(),
        owners: BTreeMap::new(),
        problems: Vec::new(),
    };
    let services: Vec<_> = services.iter().filter_map(|name| pool.get_service_by_name(name)).collect();
    for service in &services {
        let prefix = generator.service_prefix(service);
        if let Some(prefix) = prefix {
            generator.prefixes.insert(service.package_name().to_owned(), prefix);
        }
    }
    let mut claimed: BTreeMap<(RootKind, String), String> = BTreeMap::new();
    for service in &services {
        if config.services.get(service.full_name()).is_some_and(|s| s.hidden) {
            continue;
        }
        let prefix = generator.prefixes.get(service.package_name()).cloned();
        for method in service.methods() {
            let Some((kind, name)) = generator.classify(&method, prefix.as_deref()) else { continue };
            if let Some(other) = claimed.insert((kind, name.clone()), method.full_name().to_owned()) {
                generator.problems.push(Problem::error(
                    format!("graphql {kind:?}.{name}"),
                    format!(
                        "both {other} and {} want this root field; set graphql.services.\"<service>\".prefix or \
                         graphql.methods.\"<method>\".name for one of them",
                        method.full_name()
                    ),
                ));
                continue;
            }
            let field = generator.root_field(&method, name);
            generator.schema.roots.entry(kind).or_default().push(field);
        }
    }
    for fields in generator.schema.roots.values_mut() {
        fields.sort_by(|a, b| a.name.cmp(&b.name));
    }
    (generator.schema, generator.problems)
}

struct Generator<'a> {
    config: &'a GraphqlConfig,
    /// Type-name prefix by proto package.
    prefixes: BTreeMap<String, String>,
    schema: GraphqlSchema,
    /// Which proto definition owns each GraphQL type name.
    owners: BTreeMap<String, String>,
    problems: Vec<Problem>,
}

impl Generator<'_> {
    fn service_prefix(&self, service: &prost_reflect::ServiceDescriptor) -> Option<String> {
        if let Some(prefix) = self.config.services.get(service.full_name()).and_then(|s| s.prefix.clone()) {
            return Some(prefix);
        }
        let extension = service.parent_pool().get_extension_by_name("switchyard.v1.service")?;
        let options = service.options();
        if !options.has_extension(&extension) {
            return None;
        }
        match options.get_extension(&extension).as_ref() {
            Value::Message(m) => match m.get_field_by_name("graphql_prefix").as_deref() {
                Some(Value::String(p)) if !p.is_empty() => Some(p.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The root kind and field name of `method`, or None when it is not in GraphQL.
    fn classify(&self, method: &MethodDescriptor, prefix: Option<&str>) -> Option<(RootKind, String)> {
        if method.is_client_streaming() {
            return None;
        }
        let configured = self.config.methods.get(method.full_name());
        if configured.is_some_and(|m| m.hidden) {
            return None;
        }
        let (option_kind, option_name) = switchyard_method_options(method);
        if option_kind == Some(3) {
            return None;
        }
        let kind = if method.is_server_streaming() {
            RootKind::Subscription
        } else if let Some(kind) = configured.and_then(|m| m.kind) {
            match kind {
                GraphqlKind::Query => RootKind::Query,
                GraphqlKind::Mutation => RootKind::Mutation,
            }
        } else if let Some(kind) = option_kind.filter(|k| *k == 1 || *k == 2) {
            if kind == 1 { RootKind::Query } else { RootKind::Mutation }
        } else if is_query_by_convention(method) {
            RootKind::Query
        } else {
            RootKind::Mutation
        };
        let name = configured
            .and_then(|m| m.name.clone())
            .or(option_name)
            .unwrap_or_else(|| root_field_name(method.name(), prefix));
        Some((kind, name))
    }

    fn root_field(&mut self, method: &MethodDescriptor, name: String) -> RootField {
        let input = method.input();
        let arguments = input.fields().filter_map(|f| self.input_field(&f)).collect();
        let output = self.output_type(&method.output());
        RootField {
            name,
            resolver: Resolver::Method(method.clone()),
            arguments,
            output: TypeRef::named(output, false),
            deprecated: method.method_descriptor_proto().options.as_ref().and_then(|o| o.deprecated) == Some(true),
            description: None,
        }
    }

    fn prefix_of(&self, package: &str) -> Option<String> {
        self.prefixes.get(package).cloned()
    }

    /// Registers a GraphQL name for a proto definition; a second definition is a collision.
    fn claim(&mut self, name: &str, owner: &str) -> bool {
        match self.owners.get(name) {
            Some(existing) if existing == owner => false,
            Some(existing) => {
                let existing = existing.clone();
                self.problems.push(Problem::error(
                    format!("graphql type {name}"),
                    format!(
                        "both {existing} and {owner} map to this name; set graphql.services.\"<service>\".prefix \
                         for one of their services"
                    ),
                ));
                false
            }
            None => {
                self.owners.insert(name.to_owned(), owner.to_owned());
                true
            }
        }
    }

    fn scalar(&mut self, name: &str) -> String {
        if !self.schema.types.contains_key(name)
            && let Some((_, description)) = SCALARS.iter().find(|(n, _)| *n == name)
        {
            self.owners.insert(name.to_owned(), format!("scalar {name}"));
            self.schema.types.insert(name.to_owned(), TypeDef::Scalar { description: (*description).to_owned() });
        }
        name.to_owned()
    }

    /// The output type name of a message: a scalar for well-known and empty messages, else an
    /// object type (generated on first use).
    fn output_type(&mut self, message: &MessageDescriptor) -> String {
        if let Some(scalar) = well_known_scalar(message.full_name()) {
            return self.scalar(scalar);
        }
        if message.fields().len() == 0 {
            return self.scalar("Empty");
        }
        let name =
            type_name(message.full_name(), message.package_name(), self.prefix_of(message.package_name()).as_deref());
        if self.claim(&name, message.full_name()) {
            self.schema
                .types
                .insert(name.clone(), TypeDef::Object { message: Some(message.clone()), fields: Vec::new() });
            let fields = message.fields().map(|f| self.object_field(&f)).collect();
            self.schema.types.insert(name.clone(), TypeDef::Object { message: Some(message.clone()), fields });
        }
        name
    }

    /// The input type name of a message, or None for a message an input cannot express (no
    /// fields).
    fn input_type(&mut self, message: &MessageDescriptor) -> Option<String> {
        if let Some(scalar) = well_known_scalar(message.full_name()) {
            return Some(self.scalar(scalar));
        }
        if message.fields().len() == 0 {
            return None;
        }
        let base =
            type_name(message.full_name(), message.package_name(), self.prefix_of(message.package_name()).as_deref());
        let name = format!("{base}Input");
        if self.claim(&name, &format!("{} (input)", message.full_name())) {
            self.schema
                .types
                .insert(name.clone(), TypeDef::Input { message: Some(message.clone()), fields: Vec::new() });
            let fields = message.fields().filter_map(|f| self.input_field(&f)).collect();
            self.schema.types.insert(name.clone(), TypeDef::Input { message: Some(message.clone()), fields });
        }
        Some(name)
    }

    fn enum_type(&mut self, descriptor: &EnumDescriptor) -> String {
        let name = type_name(
            descriptor.full_name(),
            descriptor.package_name(),
            self.prefix_of(descriptor.package_name()).as_deref(),
        );
        if self.claim(&name, descriptor.full_name()) {
            let values = descriptor
                .values()
                .map(|v| EnumValue {
                    name: v.name().to_owned(),
                    deprecated: v.enum_value_descriptor_proto().options.as_ref().and_then(|o| o.deprecated)
                        == Some(true),
                })
                .collect();
            self.schema.types.insert(name.clone(), TypeDef::Enum { descriptor: Some(descriptor.clone()), values });
        }
        name
    }

    fn object_field(&mut self, field: &FieldDescriptor) -> ObjectField {
        let deprecated = field.field_descriptor_proto().options.as_ref().and_then(|o| o.deprecated) == Some(true);
        let ty = if field.is_map() || field.is_list() {
            let item = self.output_item(field);
            TypeRef { name: item, list: true, non_null: true, item_non_null: true }
        } else {
            let nullable = field.supports_presence() || matches!(field.kind(), Kind::Message(_));
            let name = self.output_item(field);
            let empty_message = matches!(field.kind(), Kind::Message(ref m) if m.fields().len() == 0 && well_known_scalar(m.full_name()).is_none());
            TypeRef::named(name, !nullable && !empty_message)
        };
        ObjectField {
            name: field.json_name().to_owned(),
            ty,
            source: FieldSource::Proto(field.clone()),
            arguments: Vec::new(),
            deprecated,
            description: None,
        }
    }

    fn output_item(&mut self, field: &FieldDescriptor) -> String {
        match field.kind() {
            Kind::Message(message) => self.output_type(&message),
            Kind::Enum(descriptor) => self.enum_type(&descriptor),
            other => self.scalar_kind(&other),
        }
    }

    /// An argument or input field; None when its type cannot be an input (an empty message).
    fn input_field(&mut self, field: &FieldDescriptor) -> Option<InputField> {
        let deprecated = field.field_descriptor_proto().options.as_ref().and_then(|o| o.deprecated) == Some(true);
        let item = match field.kind() {
            Kind::Message(message) => self.input_type(&message)?,
            Kind::Enum(descriptor) => self.enum_type(&descriptor),
            other => self.scalar_kind(&other),
        };
        let list = field.is_list() || field.is_map();
        let ty = TypeRef { name: item, list, non_null: false, item_non_null: list };
        Some(InputField {
            description: None,
            name: field.json_name().to_owned(),
            ty,
            source: InputSource::Proto(field.clone()),
            deprecated,
        })
    }

    fn scalar_kind(&mut self, kind: &Kind) -> String {
        match kind {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "Int".into(),
            Kind::Uint32 | Kind::Fixed32 => self.scalar("UInt32"),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => self.scalar("Int64"),
            Kind::Uint64 | Kind::Fixed64 => self.scalar("UInt64"),
            Kind::Float | Kind::Double => "Float".into(),
            Kind::Bool => "Boolean".into(),
            Kind::String => "String".into(),
            Kind::Bytes => self.scalar("Base64"),
            Kind::Message(_) | Kind::Enum(_) => unreachable!("messages and enums are mapped by their callers"),
        }
    }
}

/// The scalar a well-known type maps to (wrappers: their nullable wrapped scalar).
fn well_known_scalar(full_name: &str) -> Option<&'static str> {
    Some(match full_name {
        "google.protobuf.Timestamp" => "DateTime",
        "google.protobuf.Duration" => "Duration",
        "google.protobuf.FieldMask" => "FieldMask",
        "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue" | "google.protobuf.Any" => {
            "JSON"
        }
        "google.protobuf.Empty" => "Empty",
        "google.protobuf.Int32Value" => "Int",
        "google.protobuf.Int64Value" => "Int64",
        "google.protobuf.UInt32Value" => "UInt32",
        "google.protobuf.UInt64Value" => "UInt64",
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => "Float",
        "google.protobuf.BoolValue" => "Boolean",
        "google.protobuf.StringValue" => "String",
        "google.protobuf.BytesValue" => "Base64",
        _ => return None,
    })
}

/// Query by DESIGN.md's convention: no side effects, a GET binding, or a reading name.
fn is_query_by_convention(method: &MethodDescriptor) -> bool {
    crate::registry::MethodTraits::of(method).reads || QUERY_PREFIXES.iter().any(|p| method.name().starts_with(p))
}

/// `(switchyard.v1.method).graphql_kind` and `.graphql_name`, when set.
fn switchyard_method_options(method: &MethodDescriptor) -> (Option<i32>, Option<String>) {
    let Some(extension) = method.parent_pool().get_extension_by_name("switchyard.v1.method") else {
        return (None, None);
    };
    let options = method.options();
    if !options.has_extension(&extension) {
        return (None, None);
    }
    let Value::Message(m) = options.get_extension(&extension).into_owned() else { return (None, None) };
    let kind = match m.get_field_by_name("graphql_kind").as_deref() {
        Some(Value::EnumNumber(n)) if *n != 0 => Some(*n),
        _ => None,
    };
    let name = match m.get_field_by_name("graphql_name").as_deref() {
        Some(Value::String(n)) if !n.is_empty() => Some(n.clone()),
        _ => None,
    };
    (kind, name)
}

/// Adds the custom scalar `name` (one of the generator's) if the schema lacks it; a schema file
/// may use `JSON` or `Int64` even when no proto does.
pub(super) fn add_builtin_scalar(schema: &mut GraphqlSchema, name: &str) {
    if let Some((_, description)) = SCALARS.iter().find(|(n, _)| *n == name) {
        schema.types.entry(name.to_owned()).or_insert(TypeDef::Scalar { description: (*description).to_owned() });
    }
}
