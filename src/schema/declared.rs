//! What schemas/*.graphql adds to the generated schema, with Switchyard's directives: sources
//! (`extend schema @source`), object, enum and input types read from JSON answers, root fields
//! answered by REST or gRPC calls (`extend type Query { … @rest(…) }`), and stitched fields on
//! any object type (`extend type Book { writer: Author @rest(…) }`). Every problem names its
//! file and line; nothing is applied from a file set that has errors (the snapshot is refused).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_graphql_parser::Positioned;
use async_graphql_parser::types::{
    BaseType, ConstDirective, FieldDefinition, InputValueDefinition, ServiceDocument, Type, TypeKind,
    TypeSystemDefinition,
};
use async_graphql_value::ConstValue;
use prost_reflect::DescriptorPool;
use serde_json::Value as Json;

use super::binding::{Batch, Binding, BoundCall, GraphqlCall, Part, RestCall, Template, ValueTemplate};
use super::{
    EnumValue, FieldSource, GraphqlSchema, InputField, InputSource, ObjectField, Resolver, RootField, RootKind,
    TypeDef, TypeRef,
};
use crate::config::Problem;

/// The directives and input types schemas/*.graphql may use (documentation and editor support;
/// a file may include these definitions, which are then ignored).
pub const DIRECTIVES_SDL: &str = r#""Declares a backend source; its base URL is the backend cluster of the same name. A GRAPHQL source names its SDL file (relative to this file); its root fields join ours."
directive @source(name: String!, kind: SourceKind!, schema: String) repeatable on SCHEMA
enum SourceKind { REST GRAPHQL }

"Answers a field with a JSON REST call to a source. On `extend type X`: resolves X as a Federation entity from the key fields its {parent.NAME} placeholders read."
directive @rest(
  source: String!
  method: String = "GET"
  "Path under the source's base URL, with {args.NAME} and {parent.NAME} placeholders."
  path: String!
  "Query parameters: a null value leaves one out, a list repeats it."
  query: JSON
  headers: [SwitchyardHeader!]
  "JSON body; a string that is exactly one placeholder keeps the value's type."
  body: JSON
  "Dotted key path to the field's value in the answer."
  select: String
  batch: SwitchyardBatch
) on FIELD_DEFINITION | OBJECT

"Answers a field with a unary gRPC call. On `extend type X`: resolves X as a Federation entity from the key fields its {parent.NAME} placeholders read."
directive @grpc(method: String!, request: JSON, select: String, batch: SwitchyardBatch) on FIELD_DEFINITION | OBJECT

"Answers a field with a sub-operation to a GraphQL source's Query field (default: this field's name), with only the selected fields."
directive @graphql(source: String!, field: String, arguments: JSON, select: String, batch: SwitchyardBatch) on FIELD_DEFINITION

"Reads a field of a declared type from this dotted key path of the JSON answer (default: its name)."
directive @from(path: String!) on FIELD_DEFINITION

"Caches the field's fetch for maxAge seconds (PRIVATE: per identity; PUBLIC: shared); config rules on the same field combine to the stricter."
directive @cacheControl(maxAge: Int!, scope: CacheControlScope = PRIVATE) on FIELD_DEFINITION
enum CacheControlScope { PUBLIC PRIVATE }

input SwitchyardHeader { name: String!, value: String! }

"One call for many parents: {keys} in the call is the list of distinct keys."
input SwitchyardBatch { key: String!, match: String!, maxSize: Int = 100 }
"#;

const OUR_DEFINITIONS: &[&str] = &[
    "source",
    "rest",
    "grpc",
    "from",
    "cacheControl",
    "SourceKind",
    "CacheControlScope",
    "SwitchyardHeader",
    "SwitchyardBatch",
];

const MAX_BATCH_SIZE: i64 = 1000;

/// One schema file: its path (for problems) and text.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// A source declared with `@source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDecl {
    /// Its name: the backend cluster that serves it.
    pub name: String,
    /// REST or GraphQL.
    pub kind: SourceKind,
    /// A GraphQL source's SDL file (`schema:`, relative to the declaring file).
    pub schema_file: Option<PathBuf>,
    /// `file:line`.
    pub declared_at: String,
}

fn source_kind(directive: &ConstDirective) -> Option<SourceKind> {
    match directive.get_argument("kind").map(|v| &v.node) {
        Some(ConstValue::Enum(kind)) if kind.as_str() == "REST" => Some(SourceKind::Rest),
        Some(ConstValue::String(kind)) if kind == "REST" => Some(SourceKind::Rest),
        Some(ConstValue::Enum(kind)) if kind.as_str() == "GRAPHQL" => Some(SourceKind::Graphql),
        Some(ConstValue::String(kind)) if kind == "GRAPHQL" => Some(SourceKind::Graphql),
        _ => None,
    }
}

/// `schema:` of a `@source`, resolved against the declaring file's directory.
fn source_schema_file(directive: &ConstDirective, declaring: &SchemaFile) -> Option<PathBuf> {
    match directive.get_argument("schema").map(|v| &v.node) {
        Some(ConstValue::String(path)) if !path.is_empty() => {
            Some(declaring.path.parent().unwrap_or(std::path::Path::new("")).join(path))
        }
        _ => None,
    }
}

struct Parsed {
    file: SchemaFile,
    document: ServiceDocument,
    /// The GraphQL source whose schema this is, for remote SDL files.
    remote: Option<String>,
}

fn parse_one(file: &SchemaFile, remote: Option<String>, problems: &mut Vec<Problem>) -> Option<Parsed> {
    match async_graphql_parser::parse_schema(&file.text) {
        Ok(document) => Some(Parsed { file: file.clone(), document, remote }),
        Err(e) => {
            let line = e.positions().next().map(|p| p.line);
            problems.push(Problem::error("", format!("GraphQL syntax: {e}")).in_file(&file.path).at_line(line));
            None
        }
    }
}

fn parse_all(files: &[SchemaFile], problems: &mut Vec<Problem>) -> Vec<Parsed> {
    files.iter().filter_map(|file| parse_one(file, None, problems)).collect()
}

/// What kind of backend a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// JSON over HTTP.
    Rest,
    /// A GraphQL service over HTTP.
    Graphql,
}

/// The sources `files` declare (syntax problems are reported by `apply_schema_files`).
pub fn declared_sources(files: &[SchemaFile]) -> Vec<SourceDecl> {
    let mut sources = Vec::new();
    for parsed in parse_all(files, &mut Vec::new()) {
        for definition in &parsed.document.definitions {
            let TypeSystemDefinition::Schema(schema) = definition else { continue };
            for directive in schema.node.directives.iter().filter(|d| d.node.name.node == "source") {
                if let Some(ConstValue::String(name)) = directive.node.get_argument("name").map(|v| &v.node)
                    && let Some(kind) = source_kind(&directive.node)
                {
                    let declared_at = format!("{}:{}", parsed.file.path.display(), directive.pos.line);
                    let schema_file = source_schema_file(&directive.node, &parsed.file);
                    sources.push(SourceDecl { name: name.clone(), kind, schema_file, declared_at });
                }
            }
        }
    }
    sources
}

/// The schemas of GraphQL sources declared without a `schema` file, fetched by introspection:
/// source name → its SDL, or why it could not be fetched.
pub type IntrospectedSources = BTreeMap<String, Result<SchemaFile, String>>;

/// Adds what `files` declare to `schema`; returns every problem found.
pub fn apply_schema_files(
    schema: &mut GraphqlSchema,
    files: &[SchemaFile],
    introspected: &IntrospectedSources,
    pool: &DescriptorPool,
    supergraph: Option<&SchemaFile>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut parsed = parse_all(files, &mut problems);
    let mut applier = Applier {
        schema,
        pool,
        sources: BTreeMap::new(),
        declared: BTreeMap::new(),
        remote_fields: BTreeMap::new(),
        entity_types: std::collections::BTreeSet::new(),
        merged: std::collections::BTreeSet::new(),
        source_types: BTreeMap::new(),
        problems,
    };
    let mut remote_files = Vec::new();
    for file in &parsed {
        remote_files.extend(applier.declare_sources(file, introspected));
    }
    // A supergraph's API schema joins ours as the schema of one GraphQL source, whose root
    // fields the planner sends to the subgraphs that own them.
    if let Some(api) = supergraph {
        let here = api.path.display().to_string();
        if let Some((_, first)) =
            applier.sources.insert(super::SUPERGRAPH_SOURCE.to_owned(), (SourceKind::Graphql, here))
        {
            applier.problems.push(Problem::error(
                format!("@source {}", super::SUPERGRAPH_SOURCE),
                format!("the name is the supergraph's; rename the source declared at {first}"),
            ));
        }
        remote_files.push((super::SUPERGRAPH_SOURCE.to_owned(), api.clone()));
    }
    for (source, file) in remote_files {
        if let Some(remote) = parse_one(&file, Some(source), &mut applier.problems) {
            parsed.push(remote);
        }
    }
    for file in parsed.iter().filter(|p| p.remote.is_none()) {
        applier.entity_types.extend(entity_extensions(file));
    }
    for file in &parsed {
        applier.declare_types(file);
    }
    // A GraphQL source's root fields first: local bindings refer to them.
    for file in parsed.iter().filter(|p| p.remote.is_some()).chain(parsed.iter().filter(|p| p.remote.is_none())) {
        applier.fill_types(file);
    }
    for file in parsed.iter().filter(|p| p.remote.is_none()) {
        applier.extend_types(file);
    }
    applier.check_parent_fields();
    for fields in applier.schema.roots.values_mut() {
        fields.sort_by(|a, b| a.name.cmp(&b.name));
    }
    applier.problems
}

struct Applier<'s, 'p> {
    schema: &'s mut GraphqlSchema,
    pool: &'p DescriptorPool,
    /// Declared sources: name → (kind, `file:line`).
    sources: BTreeMap<String, (SourceKind, String)>,
    /// A GraphQL source's root fields: (source, root, field) → argument types as SDL text.
    remote_fields: BTreeMap<(String, RootKind, String), Vec<(String, String)>>,
    /// Types declared in the files: name → `file:line`.
    declared: BTreeMap<String, String>,
    /// Types `extend type X @grpc(...)` / `@rest(...)` makes entities resolved by a call.
    entity_types: std::collections::BTreeSet<String>,
    /// Generated types the supergraph's type of the same name merged into.
    merged: std::collections::BTreeSet<String>,
    /// Types a GraphQL source declared: name → source.
    source_types: BTreeMap<String, String>,
    problems: Vec<Problem>,
}

/// Where a problem is.
#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a SchemaFile,
    line: usize,
}

impl Applier<'_, '_> {
    fn error(&mut self, at: At<'_>, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::error(path, message).in_file(&at.file.path).at_line(Some(at.line)));
    }

    /// Records the sources `parsed` declares; returns the GraphQL sources' SDL files to load.
    fn declare_sources(&mut self, parsed: &Parsed, introspected: &IntrospectedSources) -> Vec<(String, SchemaFile)> {
        let mut remote = Vec::new();
        for definition in &parsed.document.definitions {
            let TypeSystemDefinition::Schema(schema) = definition else { continue };
            let at = At { file: &parsed.file, line: schema.pos.line };
            if !schema.node.extend || schema.node.query.is_some() || schema.node.mutation.is_some() {
                self.error(at, "schema", "root types are generated; declare sources with `extend schema @source(...)`");
                continue;
            }
            for directive in &schema.node.directives {
                let at = At { file: &parsed.file, line: directive.pos.line };
                if directive.node.name.node != "source" {
                    self.error(at, "schema", format!("unknown directive @{} on schema", directive.node.name.node));
                    continue;
                }
                let name = match directive.node.get_argument("name").map(|v| &v.node) {
                    Some(ConstValue::String(name)) if !name.trim().is_empty() => name.clone(),
                    _ => {
                        self.error(at, "@source", "`name` is required (the backend cluster's name)");
                        continue;
                    }
                };
                let Some(kind) = source_kind(&directive.node) else {
                    let got = directive.node.get_argument("kind").map_or("nothing".to_owned(), |v| v.node.to_string());
                    self.error(at, format!("@source {name}"), format!("`kind` must be REST or GRAPHQL, not {got}"));
                    continue;
                };
                let schema_file = source_schema_file(&directive.node, &parsed.file);
                match (kind, &schema_file) {
                    (SourceKind::Rest, Some(_)) => {
                        self.error(at, format!("@source {name}"), "`schema` is for GRAPHQL sources");
                        continue;
                    }
                    (SourceKind::Graphql, None) => match introspected.get(&name) {
                        Some(Ok(file)) => remote.push((name.clone(), file.clone())),
                        Some(Err(why)) => {
                            let message = format!("no `schema` file, and introspecting its backend failed: {why}");
                            self.error(at, format!("@source {name}"), message);
                            continue;
                        }
                        None => {
                            let message = "a GRAPHQL source needs `schema` (its SDL file) or a backend to introspect";
                            self.error(at, format!("@source {name}"), message);
                            continue;
                        }
                    },
                    (SourceKind::Graphql, Some(path)) => match std::fs::read_to_string(path) {
                        Ok(text) => remote.push((name.clone(), SchemaFile { path: path.clone(), text })),
                        Err(e) => {
                            let message = format!("cannot read its schema {}: {e}", path.display());
                            self.error(at, format!("@source {name}"), message);
                            continue;
                        }
                    },
                    (SourceKind::Rest, None) => {}
                }
                let here = format!("{}:{}", at.file.path.display(), at.line);
                if let Some((_, first)) = self.sources.insert(name.clone(), (kind, here)) {
                    self.error(at, format!("@source {name}"), format!("already declared at {first}"));
                }
            }
        }
        remote
    }

    fn declare_types(&mut self, parsed: &Parsed) {
        for definition in &parsed.document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else { continue };
            let name = ty.node.name.node.to_string();
            let at = At { file: &parsed.file, line: ty.pos.line };
            if ty.node.extend || OUR_DEFINITIONS.contains(&name.as_str()) {
                continue;
            }
            if parsed.remote.is_some() && remote_root(parsed, &name).is_some() {
                continue;
            }
            if matches!(name.as_str(), "Query" | "Mutation" | "Subscription") {
                self.error(at, format!("type {name}"), format!("root types are generated; write `extend type {name}`"));
                continue;
            }
            let from_supergraph = parsed.remote.as_deref() == Some(super::SUPERGRAPH_SOURCE);
            if let (true, Some(source)) = (from_supergraph, self.source_types.get(&name)) {
                // Its fetches ask the source for its fields only, so the supergraph's would be
                // asked of a service that does not have them.
                let message = format!(
                    "a GraphQL source's type ({source}'s) cannot be one entity with the supergraph's; serve {source} as a subgraph of the supergraph instead, or rename one"
                );
                self.error(at, format!("type {name}"), message);
                continue;
            }
            if from_supergraph
                && self.entity_types.contains(&name)
                && matches!(self.schema.types.get(&name), Some(TypeDef::Object { .. }))
            {
                // One entity: the generated (or declared) type gains the supergraph type's fields.
                self.merged.insert(name);
                continue;
            }
            if let Some(first) = self.declared.get(&name) {
                let message = if from_supergraph {
                    format!(
                        "already declared at {first}; to make them one entity, declare how it is resolved (`extend type {name} @rest(...)`)"
                    )
                } else {
                    format!("already declared at {first}")
                };
                self.error(at, format!("type {name}"), message);
                continue;
            }
            if let Some(existing) = self.schema.types.get(&name) {
                let owner = match existing {
                    TypeDef::Object { message: Some(m), .. } | TypeDef::Input { message: Some(m), .. } => {
                        m.full_name().to_owned()
                    }
                    TypeDef::Enum { descriptor: Some(e), .. } => e.full_name().to_owned(),
                    _ => "a built-in scalar".to_owned(),
                };
                let message = if parsed.remote.as_deref() == Some(super::SUPERGRAPH_SOURCE) {
                    format!(
                        "the supergraph's type is also {owner}'s; to make them one entity, declare how it is resolved in schemas/ (`extend type {name} @grpc(...)`)"
                    )
                } else {
                    format!("the name is taken by {owner}; rename one, or use `extend type {name}`")
                };
                self.error(at, format!("type {name}"), message);
                continue;
            }
            let def = match &ty.node.kind {
                TypeKind::Object(_) => TypeDef::Object { message: None, fields: Vec::new() },
                TypeKind::InputObject(_) => TypeDef::Input { message: None, fields: Vec::new() },
                TypeKind::Enum(values) => TypeDef::Enum {
                    descriptor: None,
                    values: values
                        .values
                        .iter()
                        .map(|v| EnumValue {
                            name: v.node.value.node.to_string(),
                            deprecated: v.node.directives.iter().any(|d| d.node.name.node == "deprecated"),
                        })
                        .collect(),
                },
                TypeKind::Scalar if parsed.remote.is_some() => TypeDef::Scalar {
                    description: format!(
                        "A scalar of the {} GraphQL source, passed through.",
                        parsed.remote.as_deref().unwrap_or("")
                    ),
                },
                TypeKind::Scalar => {
                    self.error(at, format!("scalar {name}"), "custom scalars are not supported; use JSON or String");
                    continue;
                }
                // A GraphQL source's (or supergraph's) abstract types: filled in below.
                TypeKind::Interface(_) if parsed.remote.is_some() => {
                    TypeDef::Interface { fields: Vec::new(), possible: Vec::new() }
                }
                TypeKind::Union(_) if parsed.remote.is_some() => TypeDef::Union { possible: Vec::new() },
                TypeKind::Interface(_) | TypeKind::Union(_) => {
                    let message = "interfaces and unions are supported in GraphQL sources and supergraphs, not in types declared for REST or gRPC";
                    self.error(at, format!("type {name}"), message);
                    continue;
                }
            };
            self.declared.insert(name.clone(), format!("{}:{}", at.file.path.display(), at.line));
            if let Some(source) = parsed.remote.as_deref().filter(|s| *s != super::SUPERGRAPH_SOURCE) {
                self.source_types.insert(name.clone(), source.to_owned());
            }
            if let Some(description) = &ty.node.description
                && !matches!(def, TypeDef::Scalar { .. })
            {
                self.schema.type_descriptions.insert(name.clone(), description.node.clone());
            }
            self.schema.types.insert(name, def);
        }
    }

    fn fill_types(&mut self, parsed: &Parsed) {
        for definition in &parsed.document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else { continue };
            let name = ty.node.name.node.to_string();
            if ty.node.extend || OUR_DEFINITIONS.contains(&name.as_str()) {
                continue;
            }
            if let (Some(_), TypeKind::Object(object)) = (&parsed.remote, &ty.node.kind) {
                let at = At { file: &parsed.file, line: ty.pos.line };
                self.implementations(at, &name, &object.implements);
            }
            if let (Some(source), Some(kind), TypeKind::Object(object)) =
                (&parsed.remote, remote_root(parsed, &name), &ty.node.kind)
            {
                self.remote_roots(&parsed.file, source, kind, &object.fields);
                continue;
            }
            if let (true, Some(_), TypeKind::Object(object)) =
                (self.merged.contains(&name), &parsed.remote, &ty.node.kind)
            {
                let added = self.remote_fields_of(&parsed.file, &name, &object.fields);
                if let Some(TypeDef::Object { fields, .. }) = self.schema.types.get_mut(&name) {
                    // A field on both sides (the key, at least) is read from the message.
                    let fresh: Vec<ObjectField> =
                        added.into_iter().filter(|a| !fields.iter().any(|f| f.name == a.name)).collect();
                    fields.extend(fresh);
                }
                continue;
            }
            let here = format!("{}:{}", parsed.file.path.display(), ty.pos.line);
            if self.declared.get(&name) != Some(&here) {
                continue;
            }
            match &ty.node.kind {
                TypeKind::Object(object) if parsed.remote.is_some() => {
                    let fields = self.remote_fields_of(&parsed.file, &name, &object.fields);
                    self.schema.types.insert(name, TypeDef::Object { message: None, fields });
                }
                TypeKind::Object(object) => {
                    let mut fields = self.object_fields(&parsed.file, &name, &object.fields, false);
                    // A supergraph type merged into this one first: its fields stay.
                    if let Some(TypeDef::Object { fields: merged, .. }) = self.schema.types.get(&name) {
                        fields.extend(
                            merged
                                .iter()
                                .filter(|m| !fields.iter().any(|f| f.name == m.name))
                                .cloned()
                                .collect::<Vec<_>>(),
                        );
                    }
                    self.schema.types.insert(name, TypeDef::Object { message: None, fields });
                }
                TypeKind::Interface(interface) => {
                    let fields = self.remote_fields_of(&parsed.file, &name, &interface.fields);
                    if let Some(TypeDef::Interface { fields: slot, .. }) = self.schema.types.get_mut(&name) {
                        *slot = fields;
                    }
                }
                TypeKind::Union(union) => {
                    let at = At { file: &parsed.file, line: ty.pos.line };
                    let mut members = Vec::new();
                    for member in &union.members {
                        let member = member.node.to_string();
                        if matches!(self.schema.types.get(&member), Some(TypeDef::Object { .. })) {
                            members.push(member);
                        } else {
                            self.error(at, format!("union {name}"), format!("member `{member}` is not an object type"));
                        }
                    }
                    self.schema.types.insert(name, TypeDef::Union { possible: members });
                }
                TypeKind::InputObject(input) => {
                    let fields = input.fields.iter().filter_map(|f| self.input_value(&parsed.file, &name, f)).collect();
                    self.schema.types.insert(name, TypeDef::Input { message: None, fields });
                }
                _ => {}
            }
        }
    }

    fn extend_types(&mut self, parsed: &Parsed) {
        for definition in &parsed.document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else { continue };
            if !ty.node.extend {
                continue;
            }
            let name = ty.node.name.node.to_string();
            let at = At { file: &parsed.file, line: ty.pos.line };
            let TypeKind::Object(object) = &ty.node.kind else {
                self.error(at, format!("extend {name}"), "only object types can be extended");
                continue;
            };
            for directive in &ty.node.directives {
                let at = At { file: &parsed.file, line: directive.pos.line };
                self.entity_resolver(at, &name, &directive.node);
            }
            let root = match name.as_str() {
                "Query" => Some(RootKind::Query),
                "Mutation" => Some(RootKind::Mutation),
                "Subscription" => {
                    self.error(at, "extend type Subscription", "subscriptions come from server-streaming methods only");
                    continue;
                }
                _ => None,
            };
            if let Some(kind) = root {
                for field in self.object_fields(&parsed.file, &name, &object.fields, true) {
                    let Some(binding) = field.binding().cloned() else { continue };
                    if let Some(existing) = self.schema.root_field(kind, &field.name) {
                        let owner = match &existing.resolver {
                            Resolver::Method(m) => m.full_name().to_owned(),
                            Resolver::Bound(b) => b.declared_at.clone(),
                        };
                        let line = binding.declared_at.rsplit(':').next().and_then(|l| l.parse().ok()).unwrap_or(0);
                        let at = At { file: &parsed.file, line };
                        self.error(at, format!("{name}.{}", field.name), format!("already defined by {owner}"));
                        continue;
                    }
                    self.schema.roots.entry(kind).or_default().push(RootField {
                        name: field.name,
                        resolver: Resolver::Bound(binding),
                        arguments: field.arguments,
                        output: field.ty,
                        deprecated: field.deprecated,
                        description: field.description,
                    });
                }
                continue;
            }
            if !matches!(self.schema.types.get(&name), Some(TypeDef::Object { .. })) {
                self.error(at, format!("extend type {name}"), format!("there is no object type {name} to extend"));
                continue;
            }
            let added = self.object_fields(&parsed.file, &name, &object.fields, true);
            let Some(TypeDef::Object { fields, .. }) = self.schema.types.get_mut(&name) else { continue };
            let mut clashes = Vec::new();
            for field in added {
                if fields.iter().any(|f| f.name == field.name) {
                    clashes.push(field.name);
                } else {
                    fields.push(field);
                }
            }
            for clash in clashes {
                self.error(at, format!("{name}.{clash}"), "the type already has this field");
            }
        }
    }

    /// A GraphQL source's root fields become ours, each answered by a sub-operation to it.
    fn remote_roots(
        &mut self,
        file: &SchemaFile,
        source: &str,
        kind: RootKind,
        fields: &[Positioned<FieldDefinition>],
    ) {
        let root_name = match kind {
            RootKind::Query => "Query",
            RootKind::Mutation => "Mutation",
            RootKind::Subscription => "Subscription",
        };
        for definition in fields {
            let field = &definition.node;
            let name = field.name.node.to_string();
            let at = At { file, line: definition.pos.line };
            let path = format!("{root_name}.{name}");
            let Some(ty) = self.type_ref(at, &path, &field.ty.node, false) else { continue };
            let arguments: Vec<InputField> =
                field.arguments.iter().filter_map(|a| self.input_value(file, &path, a)).collect();
            let argument_types: Vec<(String, String)> =
                field.arguments.iter().map(|a| (a.node.name.node.to_string(), a.node.ty.node.to_string())).collect();
            self.remote_fields.insert((source.to_owned(), kind, name.clone()), argument_types.clone());
            if let Some(existing) = self.schema.root_field(kind, &name) {
                let owner = match &existing.resolver {
                    Resolver::Method(m) => m.full_name().to_owned(),
                    Resolver::Bound(b) => b.declared_at.clone(),
                };
                self.error(at, &path, format!("the {source} source's field clashes with {owner}"));
                continue;
            }
            let binding = Binding {
                call: BoundCall::Graphql(GraphqlCall {
                    source: source.to_owned(),
                    operation: kind,
                    field: name.clone(),
                    arguments: None,
                    argument_types,
                }),
                select: Vec::new(),
                batch: None,
                parent_fields: Vec::new(),
                declared_at: format!("{}:{}", file.path.display(), definition.pos.line),
            };
            let deprecated = field.directives.iter().any(|d| d.node.name.node == "deprecated");
            self.schema.roots.entry(kind).or_default().push(RootField {
                name,
                resolver: Resolver::Bound(Arc::new(binding)),
                arguments,
                output: ty,
                deprecated,
                description: field.description.as_ref().map(|d| d.node.clone()),
            });
        }
    }

    /// The fields of a GraphQL source's object type: read from its answers by response key.
    /// Records object type `name` (of a GraphQL source) as an implementation of `interfaces`.
    fn implementations(&mut self, at: At<'_>, name: &str, interfaces: &[Positioned<async_graphql_value::Name>]) {
        for interface in interfaces {
            match self.schema.types.get_mut(interface.node.as_str()) {
                Some(TypeDef::Interface { possible, .. }) => {
                    if !possible.iter().any(|p| p == name) {
                        possible.push(name.to_owned());
                    }
                }
                _ => self.error(at, format!("type {name}"), format!("`{}` is not an interface", interface.node)),
            }
        }
    }

    fn remote_fields_of(
        &mut self,
        file: &SchemaFile,
        owner: &str,
        fields: &[Positioned<FieldDefinition>],
    ) -> Vec<ObjectField> {
        let mut out = Vec::new();
        for definition in fields {
            let field = &definition.node;
            let name = field.name.node.to_string();
            let at = At { file, line: definition.pos.line };
            let path = format!("{owner}.{name}");
            let Some(ty) = self.type_ref(at, &path, &field.ty.node, false) else { continue };
            let arguments = field.arguments.iter().filter_map(|a| self.input_value(file, &path, a)).collect();
            let deprecated = field.directives.iter().any(|d| d.node.name.node == "deprecated");
            let description = field.description.as_ref().map(|d| d.node.clone());
            out.push(ObjectField { name, ty, source: FieldSource::Remote, arguments, deprecated, description });
        }
        out
    }

    /// The fields of object type `owner`; with `bound_only`, each must have `@rest` or `@grpc`.
    fn object_fields(
        &mut self,
        file: &SchemaFile,
        owner: &str,
        definitions: &[Positioned<FieldDefinition>],
        bound_only: bool,
    ) -> Vec<ObjectField> {
        let mut out = Vec::new();
        for definition in definitions {
            let field = &definition.node;
            let name = field.name.node.to_string();
            let at = At { file, line: definition.pos.line };
            let path = format!("{owner}.{name}");
            let Some(ty) = self.type_ref(at, &path, &field.ty.node, false) else { continue };
            let arguments: Vec<InputField> =
                field.arguments.iter().filter_map(|a| self.input_value(file, &path, a)).collect();
            let deprecated = field.directives.iter().any(|d| d.node.name.node == "deprecated");
            let mut source = None;
            let mut refused = false;
            for directive in &field.directives {
                let at = At { file, line: directive.pos.line };
                let kind = directive.node.name.node.as_str();
                match kind {
                    "rest" | "grpc" | "graphql" => {
                        let root = matches!(owner, "Query" | "Mutation");
                        match self.binding(at, &path, &directive.node, &arguments, root) {
                            Some(binding) => source = Some(FieldSource::Bound(Arc::new(binding))),
                            None => refused = true,
                        }
                    }
                    "from" if !bound_only => match directive.node.get_argument("path").map(|v| &v.node) {
                        Some(ConstValue::String(p)) if key_path(p).is_some() => {
                            source = Some(FieldSource::Json(key_path(p).unwrap_or_default()));
                        }
                        _ => self.error(at, &path, "@from needs `path`, a dotted key path such as \"birth.year\""),
                    },
                    "deprecated" => {}
                    "cacheControl" => {
                        let max_age = match directive.node.get_argument("maxAge").map(|v| &v.node) {
                            Some(ConstValue::Number(n)) => n.as_u64(),
                            _ => None,
                        };
                        let private = !matches!(
                            directive.node.get_argument("scope").map(|v| &v.node),
                            Some(ConstValue::Enum(scope)) if scope.as_str() == "PUBLIC"
                        );
                        match max_age {
                            Some(seconds) if seconds > 0 => {
                                self.schema.cache_hints.insert((owner.to_owned(), name.clone()), (seconds, private));
                            }
                            _ => self.error(at, &path, "@cacheControl needs `maxAge`, a number of seconds above 0"),
                        }
                    }
                    other => self.error(at, &path, format!("unknown directive @{other} here")),
                }
            }
            let source = match source {
                Some(source) => source,
                // Its binding's problem is reported already.
                None if refused => continue,
                None if bound_only => {
                    self.error(
                        at,
                        &path,
                        "a field added to an existing type needs @rest or @grpc to say what answers it",
                    );
                    continue;
                }
                None => FieldSource::Json(vec![name.clone()]),
            };
            if !matches!(source, FieldSource::Bound(_)) && !arguments.is_empty() {
                self.error(at, &path, "only fields answered by @rest or @grpc take arguments");
                continue;
            }
            let description = field.description.as_ref().map(|d| d.node.clone());
            out.push(ObjectField { name, ty, source, arguments, deprecated, description });
        }
        out
    }

    fn input_value(
        &mut self,
        file: &SchemaFile,
        owner: &str,
        value: &Positioned<InputValueDefinition>,
    ) -> Option<InputField> {
        let at = At { file, line: value.pos.line };
        let name = value.node.name.node.to_string();
        let path = format!("{owner}({name})");
        let ty = self.type_ref(at, &path, &value.node.ty.node, true)?;
        let default = value.node.default_value.as_ref().and_then(|v| v.node.clone().into_json().ok());
        let deprecated = value.node.directives.iter().any(|d| d.node.name.node == "deprecated");
        let description = value.node.description.as_ref().map(|d| d.node.clone());
        Some(InputField { name, ty, source: InputSource::Declared(default), deprecated, description })
    }

    fn type_ref(&mut self, at: At<'_>, path: &str, ty: &Type, input: bool) -> Option<TypeRef> {
        let (name, list, item_non_null) = match &ty.base {
            BaseType::Named(name) => (name.to_string(), false, false),
            BaseType::List(inner) => match &inner.base {
                BaseType::Named(name) => (name.to_string(), true, !inner.nullable),
                BaseType::List(_) => {
                    self.error(at, path, "lists of lists are not supported");
                    return None;
                }
            },
        };
        if !super::is_builtin_scalar(&name) {
            if !self.schema.types.contains_key(&name) {
                super::generate::add_builtin_scalar(self.schema, &name);
            }
            match self.schema.types.get(&name) {
                None => {
                    self.error(at, path, format!("unknown type `{name}`"));
                    return None;
                }
                Some(TypeDef::Object { .. }) if input => {
                    self.error(
                        at,
                        path,
                        format!("`{name}` is an object type; arguments and input fields need input types"),
                    );
                    return None;
                }
                Some(TypeDef::Input { .. }) if !input => {
                    self.error(
                        at,
                        path,
                        format!("`{name}` is an input type; fields need object, enum or scalar types"),
                    );
                    return None;
                }
                _ => {}
            }
        }
        Some(TypeRef { name, list, non_null: !ty.nullable, item_non_null })
    }

    fn binding(
        &mut self,
        at: At<'_>,
        path: &str,
        directive: &ConstDirective,
        arguments: &[InputField],
        root: bool,
    ) -> Option<Binding> {
        let kind = directive.name.node.as_str();
        let known: &[&str] = match kind {
            "rest" => &["source", "method", "path", "query", "headers", "body", "select", "batch"],
            "grpc" => &["method", "request", "select", "batch"],
            _ => &["source", "field", "arguments", "select", "batch"],
        };
        for (name, _) in &directive.arguments {
            if !known.contains(&name.node.as_str()) {
                self.error(at, path, format!("@{kind} has no argument `{}`", name.node));
                return None;
            }
        }
        let string = |name: &str| match directive.get_argument(name).map(|v| &v.node) {
            Some(ConstValue::String(s)) => Some(s.clone()),
            Some(ConstValue::Enum(e)) => Some(e.to_string()),
            _ => None,
        };
        let call = if kind == "rest" {
            let Some(source) = string("source") else {
                self.error(at, path, "@rest needs `source`");
                return None;
            };
            if let Some(problem) = self.source_problem(&source, SourceKind::Rest) {
                self.error(at, path, problem);
                return None;
            }
            let method_text = string("method").unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
            let method = match method_text.as_str() {
                "GET" => http::Method::GET,
                "POST" => http::Method::POST,
                "PUT" => http::Method::PUT,
                "PATCH" => http::Method::PATCH,
                "DELETE" => http::Method::DELETE,
                other => {
                    self.error(at, path, format!("@rest method `{other}` is not one of GET, POST, PUT, PATCH, DELETE"));
                    return None;
                }
            };
            let Some(path_text) = string("path").filter(|p| p.starts_with('/')) else {
                self.error(at, path, "@rest needs `path`, starting with `/`");
                return None;
            };
            let template = self.template(at, path, "path", &path_text)?;
            let query = match directive.get_argument("query").map(|v| &v.node) {
                None | Some(ConstValue::Null) => Vec::new(),
                Some(ConstValue::Object(fields)) => {
                    let mut query = Vec::new();
                    for (name, value) in fields {
                        query.push((name.to_string(), self.value_template(at, path, "query", value)?));
                    }
                    query
                }
                Some(_) => {
                    self.error(at, path, "@rest `query` is an object of parameter names to values");
                    return None;
                }
            };
            let headers = self.headers(at, path, directive)?;
            let body = match directive.get_argument("body").map(|v| &v.node) {
                None | Some(ConstValue::Null) => None,
                Some(value) => Some(self.value_template(at, path, "body", value)?),
            };
            BoundCall::Rest(RestCall { source, method, path: template, query, headers, body })
        } else if kind == "graphql" {
            let Some(source) = string("source") else {
                self.error(at, path, "@graphql needs `source`");
                return None;
            };
            if let Some(problem) = self.source_problem(&source, SourceKind::Graphql) {
                self.error(at, path, problem);
                return None;
            }
            let own_name = path.rsplit('.').next().unwrap_or(path).to_owned();
            let field = string("field").unwrap_or(own_name);
            let Some(argument_types) =
                self.remote_fields.get(&(source.clone(), RootKind::Query, field.clone())).cloned()
            else {
                self.error(at, path, format!("the {source} source has no Query field `{field}`"));
                return None;
            };
            let arguments = match directive.get_argument("arguments").map(|v| &v.node) {
                None | Some(ConstValue::Null) => {
                    for argument in arguments {
                        if !argument_types.iter().any(|(name, _)| name == &argument.name) {
                            let message =
                                format!("{source}'s `{field}` has no argument `{}` to pass it to", argument.name);
                            self.error(at, path, message);
                            return None;
                        }
                    }
                    None
                }
                Some(value @ ConstValue::Object(fields)) => {
                    if let Some(name) = fields.keys().find(|k| !argument_types.iter().any(|(n, _)| n == k.as_str())) {
                        self.error(at, path, format!("{source}'s `{field}` has no argument `{name}`"));
                        return None;
                    }
                    Some(self.value_template(at, path, "arguments", value)?)
                }
                Some(_) => {
                    self.error(at, path, "@graphql `arguments` is an object of the source field's arguments");
                    return None;
                }
            };
            BoundCall::Graphql(GraphqlCall { source, operation: RootKind::Query, field, arguments, argument_types })
        } else {
            let Some(method_name) = string("method") else {
                self.error(at, path, "@grpc needs `method` (package.Service/Method)");
                return None;
            };
            let normalized = method_name.replace('/', ".");
            let found = normalized.rsplit_once('.').and_then(|(service, method)| {
                self.pool.get_service_by_name(service)?.methods().find(|m| m.name() == method)
            });
            let Some(method) = found else {
                self.error(at, path, format!("@grpc method `{method_name}` is not registered"));
                return None;
            };
            if method.is_client_streaming() || method.is_server_streaming() {
                self.error(at, path, format!("@grpc method `{method_name}` streams; only unary methods answer fields"));
                return None;
            }
            let request = match directive.get_argument("request").map(|v| &v.node) {
                None | Some(ConstValue::Null) => ValueTemplate::Object(Vec::new()),
                Some(value @ ConstValue::Object(fields)) => {
                    let input = method.input();
                    for name in fields.keys() {
                        let known = input.fields().any(|f| f.json_name() == name.as_str() || f.name() == name.as_str());
                        if !known {
                            let message = format!("@grpc request: {} has no field `{name}`", input.full_name());
                            self.error(at, path, message);
                            return None;
                        }
                    }
                    self.value_template(at, path, "request", value)?
                }
                Some(_) => {
                    self.error(at, path, "@grpc `request` is an object: the request message in proto3 JSON");
                    return None;
                }
            };
            BoundCall::Grpc { method, request }
        };
        let select = match string("select") {
            Some(text) => match key_path(&text) {
                Some(select) => select,
                None => {
                    self.error(at, path, format!("`select` \"{text}\" is not a dotted key path"));
                    return None;
                }
            },
            None => Vec::new(),
        };
        let batch = match directive.get_argument("batch").map(|v| &v.node) {
            None | Some(ConstValue::Null) => None,
            Some(ConstValue::Object(fields)) if !root => {
                let key = match fields.get("key") {
                    Some(ConstValue::String(key)) => self.template(at, path, "batch.key", key)?,
                    _ => {
                        self.error(at, path, "batch needs `key`, the parent's key (e.g. \"{parent.id}\")");
                        return None;
                    }
                };
                let matches = match fields.get("match") {
                    Some(ConstValue::String(m)) if key_path(m).is_some() => key_path(m).unwrap_or_default(),
                    _ => {
                        self.error(
                            at,
                            path,
                            "batch needs `match`, the key path in each answer item that holds its key",
                        );
                        return None;
                    }
                };
                let max_size = match fields.get("maxSize") {
                    None => 100,
                    Some(ConstValue::Number(n)) if n.as_i64().is_some_and(|n| (1..=MAX_BATCH_SIZE).contains(&n)) => {
                        usize::try_from(n.as_i64().unwrap_or(100)).unwrap_or(100)
                    }
                    Some(other) => {
                        self.error(
                            at,
                            path,
                            format!("batch maxSize {other} is not an integer from 1 to {MAX_BATCH_SIZE}"),
                        );
                        return None;
                    }
                };
                if let Some(extra) = fields.keys().find(|k| !matches!(k.as_str(), "key" | "match" | "maxSize")) {
                    self.error(at, path, format!("batch has no field `{extra}`"));
                    return None;
                }
                Some(Batch { key, matches, max_size })
            }
            Some(ConstValue::Object(_)) => {
                self.error(at, path, "root fields have no parents to batch");
                return None;
            }
            Some(_) => {
                self.error(at, path, "`batch` is an object {key, match, maxSize}");
                return None;
            }
        };
        let declared_at = format!("{}:{}", at.file.path.display(), at.line);
        let mut binding = Binding { call, select, batch, parent_fields: Vec::new(), declared_at };
        let mut parent_fields = Vec::new();
        let mut uses_keys = false;
        for part in binding.parts() {
            match part {
                Part::Arg(arg_path) if !arguments.iter().any(|a| a.name == arg_path[0]) => {
                    self.error(
                        at,
                        path,
                        format!("{{args.{}}}: the field has no argument `{}`", arg_path.join("."), arg_path[0]),
                    );
                    return None;
                }
                Part::Parent(name) if root => {
                    self.error(at, path, format!("{{parent.{name}}}: root fields have no parent"));
                    return None;
                }
                Part::Parent(name) => parent_fields.push(name.clone()),
                Part::Keys => uses_keys = true,
                _ => {}
            }
        }
        if let Some(batch) = &binding.batch {
            if batch.key.parts.iter().any(|p| matches!(p, Part::Keys)) {
                self.error(at, path, "batch key cannot use {keys}");
                return None;
            }
            if !uses_keys {
                self.error(at, path, "a batched call must send the keys: put {keys} in its path, query or body");
                return None;
            }
        } else if uses_keys {
            self.error(at, path, "{keys} is only for batched calls (add `batch: {key, match}`)");
            return None;
        }
        parent_fields.sort();
        parent_fields.dedup();
        binding.parent_fields = parent_fields;
        Some(binding)
    }

    /// Why `source` cannot be used as a `kind` source, if it cannot.
    fn source_problem(&self, source: &str, kind: SourceKind) -> Option<String> {
        let word = if kind == SourceKind::Rest { "REST" } else { "GRAPHQL" };
        match self.sources.get(source) {
            None => Some(format!(
                "unknown source `{source}`; declare it with `extend schema @source(name: \"{source}\", kind: {word})`"
            )),
            Some((declared, at)) if *declared != kind => {
                Some(format!("source `{source}` (declared at {at}) is not a {word} source"))
            }
            Some(_) => None,
        }
    }

    fn headers(
        &mut self,
        at: At<'_>,
        path: &str,
        directive: &ConstDirective,
    ) -> Option<Vec<(http::HeaderName, Template)>> {
        let mut out = Vec::new();
        let items = match directive.get_argument("headers").map(|v| &v.node) {
            None | Some(ConstValue::Null) => return Some(out),
            Some(ConstValue::List(items)) => items.clone(),
            Some(single @ ConstValue::Object(_)) => vec![single.clone()],
            Some(_) => {
                self.error(at, path, "@rest `headers` is a list of {name, value}");
                return None;
            }
        };
        for item in items {
            let ConstValue::Object(fields) = &item else {
                self.error(at, path, "@rest `headers` is a list of {name, value}");
                return None;
            };
            let (Some(ConstValue::String(name)), Some(ConstValue::String(value))) =
                (fields.get("name"), fields.get("value"))
            else {
                self.error(at, path, "each header is {name: String!, value: String!}");
                return None;
            };
            let Ok(header) = http::HeaderName::from_bytes(name.as_bytes()) else {
                self.error(at, path, format!("`{name}` is not a valid header name"));
                return None;
            };
            out.push((header, self.template(at, path, "headers", value)?));
        }
        Some(out)
    }

    fn template(&mut self, at: At<'_>, path: &str, what: &str, text: &str) -> Option<Template> {
        match Template::parse(text) {
            Ok(template) => Some(template),
            Err(message) => {
                self.error(at, path, format!("{what}: {message}"));
                None
            }
        }
    }

    fn value_template(&mut self, at: At<'_>, path: &str, what: &str, value: &ConstValue) -> Option<ValueTemplate> {
        Some(match value {
            ConstValue::String(text) => {
                let template = self.template(at, path, what, text)?;
                if template.parts.iter().all(|p| matches!(p, Part::Text(_))) {
                    ValueTemplate::Value(Json::String(text.replace("{{", "{").replace("}}", "}")))
                } else {
                    ValueTemplate::Text(template)
                }
            }
            ConstValue::List(items) => ValueTemplate::List(
                items.iter().map(|i| self.value_template(at, path, what, i)).collect::<Option<Vec<_>>>()?,
            ),
            ConstValue::Object(fields) => ValueTemplate::Object(
                fields
                    .iter()
                    .map(|(k, v)| Some((k.to_string(), self.value_template(at, path, what, v)?)))
                    .collect::<Option<Vec<_>>>()?,
            ),
            ConstValue::Enum(name) => ValueTemplate::Value(Json::String(name.to_string())),
            other => ValueTemplate::Value(other.clone().into_json().unwrap_or(Json::Null)),
        })
    }

    /// Every `{parent.NAME}` must name a field of the parent type that the parent's own answer
    /// carries (not another stitched field) and that is a scalar or enum.
    /// `extend type NAME @grpc(...)` / `@rest(...)`: NAME is an entity its call resolves from
    /// the key fields it reads (`{parent.NAME}`), for other fetches' parents of that type.
    fn entity_resolver(&mut self, at: At<'_>, name: &str, directive: &ConstDirective) {
        let path = format!("extend type {name}");
        let kind = directive.name.node.as_str();
        if kind != "grpc" && kind != "rest" {
            self.error(
                at,
                &path,
                format!("@{kind} is not a directive for types; @grpc or @rest resolves the type as an entity"),
            );
            return;
        }
        let Some(TypeDef::Object { message, fields }) = self.schema.types.get(name) else {
            self.error(at, &path, format!("there is no object type {name} to resolve"));
            return;
        };
        let message = message.clone();
        let field_names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        let Some(binding) = self.binding(at, &path, directive, &[], false) else { return };
        if binding.parent_fields.is_empty() {
            self.error(at, &path, "the call reads no key: name the key fields with {parent.NAME} placeholders");
            return;
        }
        if let Some(missing) = binding.parent_fields.iter().find(|f| !field_names.contains(f)) {
            self.error(at, &path, format!("{{parent.{missing}}}: {name} has no field `{missing}`"));
            return;
        }
        if let (BoundCall::Grpc { method, .. }, Some(message), true) =
            (&binding.call, &message, binding.select.is_empty())
            && method.output().full_name() != message.full_name()
            && binding.batch.is_none()
        {
            let message = format!(
                "{} answers {}, not {name} ({}); use `select` to reach it",
                method.full_name(),
                method.output().full_name(),
                message.full_name()
            );
            self.error(at, &path, message);
            return;
        }
        if self.schema.entities.insert(name.to_owned(), Arc::new(binding)).is_some() {
            self.error(at, &path, format!("{name} already has an entity resolver"));
        }
    }

    fn check_parent_fields(&mut self) {
        let mut found = Vec::new();
        for (type_name, def) in &self.schema.types {
            let TypeDef::Object { fields, .. } = def else { continue };
            for field in fields {
                let Some(binding) = field.binding() else { continue };
                for parent in &binding.parent_fields {
                    let problem = match fields.iter().find(|f| &f.name == parent) {
                        None => Some(format!("{{parent.{parent}}}: {type_name} has no field `{parent}`")),
                        Some(f) if f.binding().is_some() => {
                            Some(format!("{{parent.{parent}}}: `{parent}` is itself a stitched field"))
                        }
                        Some(f) if matches!(self.schema.types.get(&f.ty.name), Some(TypeDef::Object { .. })) => {
                            Some(format!("{{parent.{parent}}}: `{parent}` is an object; keys are scalars or enums"))
                        }
                        Some(_) => None,
                    };
                    if let Some(message) = problem {
                        found.push((binding.declared_at.clone(), format!("{type_name}.{}", field.name), message));
                    }
                }
            }
        }
        for (declared_at, path, message) in found {
            let (file, line) = declared_at.rsplit_once(':').unwrap_or((&declared_at, ""));
            self.problems.push(Problem::error(path, message).in_file(file).at_line(line.parse().ok()));
        }
    }
}

/// The types a file's `extend type X @grpc(...)` / `@rest(...)` declares entities.
fn entity_extensions(parsed: &Parsed) -> Vec<String> {
    parsed
        .document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(ty)
                if ty.node.extend
                    && ty.node.directives.iter().any(|d| matches!(d.node.name.node.as_str(), "grpc" | "rest")) =>
            {
                Some(ty.node.name.node.to_string())
            }
            _ => None,
        })
        .collect()
}

/// The root kind of type `name` in a GraphQL source's SDL (its `schema` definition, or the
/// conventional names); subscriptions are not served from sources.
fn remote_root(parsed: &Parsed, name: &str) -> Option<RootKind> {
    let mut query = "Query".to_owned();
    let mut mutation = "Mutation".to_owned();
    let mut subscription = "Subscription".to_owned();
    for definition in &parsed.document.definitions {
        if let TypeSystemDefinition::Schema(schema) = definition
            && !schema.node.extend
        {
            if let Some(q) = &schema.node.query {
                query = q.node.to_string();
            }
            if let Some(m) = &schema.node.mutation {
                mutation = m.node.to_string();
            }
            if let Some(s) = &schema.node.subscription {
                subscription = s.node.to_string();
            }
        }
    }
    if name == query {
        Some(RootKind::Query)
    } else if name == mutation {
        Some(RootKind::Mutation)
    } else if name == subscription {
        Some(RootKind::Subscription)
    } else {
        None
    }
}

/// `a.b.c` as its keys, or None when a key is empty.
fn key_path(text: &str) -> Option<Vec<String>> {
    let keys: Vec<String> = text.split('.').map(str::to_owned).collect();
    (!text.is_empty() && keys.iter().all(|k| !k.is_empty())).then_some(keys)
}
