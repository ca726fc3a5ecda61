//! Apollo Federation v2 supergraphs, as the standard composition tools write them: the
//! subgraphs (`join__Graph` values with `@join__graph(name:, url:)`), which subgraphs define
//! each type and with which keys (`@join__type`), which resolve each field and how
//! (`@join__field`: requires, provides, external, override, the type in that subgraph), interface
//! and union membership per subgraph, `@interfaceObject`s, and what is `@inaccessible`. Supported: link v1.0, join
//! v0.3 to v0.5, inaccessible v0.2 and tag; every other feature a supergraph links is reported by
//! name — as an error when it is `for: SECURITY` or `EXECUTION` (a router must not serve what it
//! cannot enforce or execute), else as a warning — and so are the join v0.5 features not yet
//! planned (`@join__directive`, context arguments, progressive override labels). Pure parsing;
//! planning is the planner's.

use std::collections::BTreeMap;

use async_graphql_parser::Positioned;
use async_graphql_parser::types::{ConstDirective, TypeKind, TypeSystemDefinition};
use async_graphql_value::ConstValue;

use crate::config::Problem;

/// One subgraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subgraph {
    /// Its name (`accounts`).
    pub name: String,
    /// Where it is served.
    pub url: String,
    /// Its `join__Graph` value (`ACCOUNTS`).
    pub graph: String,
}

/// What kind of type a supergraph type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuperKind {
    /// `type`.
    Object,
    /// `interface`.
    Interface,
    /// `union`.
    Union,
    /// `enum`.
    Enum,
    /// `input`.
    Input,
    /// `scalar`.
    Scalar,
}

/// A type's presence in one subgraph (`@join__type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeJoin {
    /// The subgraph (index into `Supergraph::subgraphs`).
    pub graph: usize,
    /// Its key there (a field set), if it is an entity there.
    pub key: Option<String>,
    /// The key, parsed.
    pub key_set: Option<super::FieldSet>,
    /// Defined there as an extension.
    pub extension: bool,
    /// Whether that subgraph can resolve the entity by this key (`resolvable: false` keys only
    /// reference it).
    pub resolvable: bool,
    /// An `@interfaceObject` there: the subgraph sees this interface as an object type.
    pub interface_object: bool,
}

/// A field's resolution in one subgraph (`@join__field`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldJoin {
    /// The subgraph; None when the directive names none (the field is the same everywhere).
    pub graph: Option<usize>,
    /// Fields of the parent it needs, fetched first and passed in the representation.
    pub requires: Option<String>,
    /// `requires`, parsed.
    pub requires_set: Option<super::FieldSet>,
    /// Fields of its value that subgraph returns along with it (no further fetch needed).
    pub provides: Option<String>,
    /// `provides`, parsed.
    pub provides_set: Option<super::FieldSet>,
    /// Its type in that subgraph, when it differs from the supergraph's.
    pub type_in_graph: Option<String>,
    /// Declared there only to be required or keyed on: that subgraph does not resolve it.
    pub external: bool,
    /// The subgraph it took the field over from.
    pub override_from: Option<String>,
    /// The subgraph it was taken over from still answers it for other fields' requires.
    pub used_overridden: bool,
}

/// A field (or input field, or enum value) of a supergraph type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperField {
    /// Its name.
    pub name: String,
    /// Its type as SDL text (`[Review]`); empty for enum values.
    pub ty: String,
    /// Where it is resolved; empty means: in every subgraph that defines the type.
    pub joins: Vec<FieldJoin>,
    /// Hidden from clients (`@inaccessible`).
    pub inaccessible: bool,
}

/// A supergraph type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperType {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: SuperKind,
    /// The subgraphs that define it.
    pub joins: Vec<TypeJoin>,
    /// Its fields (input fields, enum values), in declaration order.
    pub fields: Vec<SuperField>,
    /// (subgraph, interface) it implements there (`@join__implements`).
    pub implements: Vec<(usize, String)>,
    /// (subgraph, member) of a union there (`@join__unionMember`).
    pub members: Vec<(usize, String)>,
    /// Hidden from clients.
    pub inaccessible: bool,
}

impl SuperType {
    /// The field `name`.
    pub fn field(&self, name: &str) -> Option<&SuperField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The subgraphs that resolve `field` on this type itself: those its `@join__field`s name
    /// (external ones excepted), or, without any, every subgraph that defines the type. A bare
    /// `@join__field` (no graph) marks a field an `@interfaceObject` adds to an implementation:
    /// no subgraph resolves it on the type; it is fetched through the interface.
    pub fn resolving(&self, field: &SuperField) -> Vec<usize> {
        if field.joins.is_empty() {
            return self.joins.iter().map(|j| j.graph).collect();
        }
        field.joins.iter().filter(|j| !j.external).filter_map(|j| j.graph).collect()
    }

    /// Whether subgraph `graph` resolves `field` (as `resolving` says, without collecting).
    pub fn resolves(&self, field: &SuperField, graph: usize) -> bool {
        if field.joins.is_empty() {
            return self.joins.iter().any(|j| j.graph == graph);
        }
        field.joins.iter().any(|j| !j.external && j.graph == Some(graph))
    }

    /// Whether subgraph `graph` defines this type (its `@join__type`).
    pub fn defined_in(&self, graph: usize) -> bool {
        self.joins.iter().any(|j| j.graph == graph)
    }

    /// Whether subgraph `graph` sees this interface as an object type (`@interfaceObject`).
    pub fn interface_object_in(&self, graph: usize) -> bool {
        self.joins.iter().any(|j| j.graph == graph && j.interface_object)
    }

    /// The keys subgraph `graph` resolves this entity by.
    pub fn keys_in(&self, graph: usize) -> impl Iterator<Item = &str> {
        self.key_sets_in(graph).map(|(text, _)| text)
    }

    /// The keys subgraph `graph` resolves this entity by, as written and parsed.
    pub fn key_sets_in(&self, graph: usize) -> impl Iterator<Item = (&str, &super::FieldSet)> {
        self.joins
            .iter()
            .filter(move |j| j.graph == graph && j.resolvable)
            .filter_map(|j| Some((j.key.as_deref()?, j.key_set.as_ref()?)))
    }
}

/// A parsed supergraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supergraph {
    /// Its subgraphs, in `join__Graph` order.
    pub subgraphs: Vec<Subgraph>,
    /// Its types (without the link and join machinery), by name.
    pub types: BTreeMap<String, SuperType>,
    /// The root types' names (`query`, `mutation`, `subscription`).
    pub roots: BTreeMap<String, String>,
    /// The join spec version (`0.3`).
    pub join_version: String,
    /// The API schema clients see, as SDL: the supergraph without the link and join machinery
    /// and without what is `@inaccessible`.
    pub api_sdl: String,
}

/// Specs a supergraph may link that are fully understood.
const SUPPORTED: &[(&str, &[&str])] = &[
    ("link", &["1.0"]),
    ("join", &["0.3", "0.4", "0.5"]),
    ("inaccessible", &["0.2"]),
    ("tag", &["0.1", "0.2", "0.3"]),
];

/// The machinery a supergraph defines for its own use, not part of the API.
fn is_machinery(name: &str) -> bool {
    name.starts_with("join__")
        || name.starts_with("link__")
        || name == "link"
        || name == "inaccessible"
        || name == "tag"
}

/// Parses a supergraph SDL. Problems are keyed `supergraph` (with the element they concern);
/// errors mean it cannot be served.
pub fn parse_supergraph(text: &str) -> Result<(Supergraph, Vec<Problem>), Vec<Problem>> {
    let problem = |message: String| Problem::error("supergraph", message);
    let document = async_graphql_parser::parse_schema(text).map_err(|e| {
        let at = e.positions().next().map(|p| format!("line {}, column {}: ", p.line, p.column)).unwrap_or_default();
        vec![problem(format!("{at}{e}"))]
    })?;
    let mut problems = Vec::new();
    let mut roots = BTreeMap::new();
    let mut join_version = None;
    let mut inaccessible_name = None;
    for definition in &document.definitions {
        let TypeSystemDefinition::Schema(schema) = definition else { continue };
        let schema = &schema.node;
        for (kind, name) in
            [("query", &schema.query), ("mutation", &schema.mutation), ("subscription", &schema.subscription)]
        {
            if let Some(name) = name {
                roots.insert(kind.to_owned(), name.node.to_string());
            }
        }
        for directive in schema.directives.iter().filter(|d| d.node.name.node == "link") {
            let url = string_argument(&directive.node, "url").unwrap_or_default();
            let purpose = enum_argument(&directive.node, "for");
            let Some((spec, version)) = spec_of(&url) else {
                problems.push(problem(format!("@link(url: \"{url}\") is not a spec URL this router knows")));
                continue;
            };
            let supported = SUPPORTED.iter().any(|(s, versions)| *s == spec && versions.contains(&version.as_str()));
            match spec.as_str() {
                "join" if supported => join_version = Some(version.clone()),
                "inaccessible" if supported => {
                    inaccessible_name =
                        Some(string_argument(&directive.node, "as").unwrap_or_else(|| "inaccessible".into()))
                }
                _ => {}
            }
            if !supported {
                let what = format!("@link(url: \"{url}\") links {spec} v{version}, which this router does not support");
                match purpose.as_deref() {
                    Some("SECURITY" | "EXECUTION") => problems.push(problem(format!(
                        "{what}; it is for {}, so the supergraph cannot be served without it",
                        purpose.as_deref().unwrap_or_default()
                    ))),
                    _ => problems.push(Problem::warning("supergraph", format!("{what}; its directives are ignored"))),
                }
            }
        }
    }
    let Some(join_version) = join_version else {
        return Err(vec![problem(
            "no @link to the join spec (v0.3 to v0.5): this is not a Federation v2 supergraph".into(),
        )]);
    };
    let inaccessible = inaccessible_name.unwrap_or_else(|| "inaccessible".into());
    let subgraphs = subgraphs_of(&document, &mut problems);
    let graph_index = |value: &str| subgraphs.iter().position(|s| s.graph == value);
    let mut types = BTreeMap::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(definition) = definition else { continue };
        let definition = &definition.node;
        let name = definition.name.node.to_string();
        if is_machinery(&name) {
            continue;
        }
        let mut joins = Vec::new();
        let mut implements = Vec::new();
        let mut members = Vec::new();
        for directive in &definition.directives {
            let directive = &directive.node;
            let graph = enum_argument(directive, "graph").and_then(|g| graph_index(&g));
            match directive.name.node.as_str() {
                "join__type" => match graph {
                    Some(graph) => joins.push(TypeJoin {
                        graph,
                        key_set: match string_argument(directive, "key").map(|k| super::FieldSet::parse(&k)) {
                            Some(Ok(set)) => Some(set),
                            Some(Err(message)) => {
                                problems.push(problem(format!("type {name}: @join__type key: {message}")));
                                None
                            }
                            None => None,
                        },
                        key: string_argument(directive, "key"),
                        extension: bool_argument(directive, "extension").unwrap_or(false),
                        resolvable: bool_argument(directive, "resolvable").unwrap_or(true),
                        interface_object: bool_argument(directive, "isInterfaceObject").unwrap_or(false),
                    }),
                    None => problems.push(problem(format!("type {name}: @join__type names no join__Graph value"))),
                },
                "join__implements" => {
                    if let (Some(graph), Some(interface)) = (graph, string_argument(directive, "interface")) {
                        implements.push((graph, interface));
                    }
                }
                "join__unionMember" => {
                    if let (Some(graph), Some(member)) = (graph, string_argument(directive, "member")) {
                        members.push((graph, member));
                    }
                }
                "join__directive" => problems.push(problem(format!(
                    "type {name}: @join__directive (a subgraph's own directive, e.g. @connect) is not supported yet"
                ))),
                _ => {}
            }
        }
        let hidden = |directives: &[Positioned<ConstDirective>]| {
            directives.iter().any(|d| d.node.name.node.as_str() == inaccessible)
        };
        let (kind, fields) = match &definition.kind {
            TypeKind::Scalar => (SuperKind::Scalar, Vec::new()),
            TypeKind::Object(object) => {
                (SuperKind::Object, fields_of(&name, &object.fields, &graph_index, &hidden, &mut problems))
            }
            TypeKind::Interface(interface) => {
                (SuperKind::Interface, fields_of(&name, &interface.fields, &graph_index, &hidden, &mut problems))
            }
            TypeKind::Union(_) => (SuperKind::Union, Vec::new()),
            TypeKind::Enum(values) => (
                SuperKind::Enum,
                values
                    .values
                    .iter()
                    .map(|v| SuperField {
                        name: v.node.value.node.to_string(),
                        ty: String::new(),
                        joins: Vec::new(),
                        inaccessible: hidden(&v.node.directives),
                    })
                    .collect(),
            ),
            TypeKind::InputObject(input) => (
                SuperKind::Input,
                input
                    .fields
                    .iter()
                    .map(|f| SuperField {
                        name: f.node.name.node.to_string(),
                        ty: f.node.ty.node.to_string(),
                        joins: Vec::new(),
                        inaccessible: hidden(&f.node.directives),
                    })
                    .collect(),
            ),
        };
        let inaccessible = hidden(&definition.directives);
        types.insert(name.clone(), SuperType { name, kind, joins, fields, implements, members, inaccessible });
    }
    if problems.iter().any(Problem::is_error) {
        return Err(problems);
    }
    let api_sdl = super::api_sdl::print(&document, &types, &inaccessible);
    Ok((Supergraph { subgraphs, types, roots, join_version, api_sdl }, problems))
}

/// The subgraphs: the `join__Graph` enum's values with their `@join__graph`.
fn subgraphs_of(document: &async_graphql_parser::types::ServiceDocument, problems: &mut Vec<Problem>) -> Vec<Subgraph> {
    let mut subgraphs = Vec::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(definition) = definition else { continue };
        let (true, TypeKind::Enum(values)) = (definition.node.name.node == "join__Graph", &definition.node.kind) else {
            continue;
        };
        for value in &values.values {
            let graph = value.node.value.node.to_string();
            let directive = value.node.directives.iter().find(|d| d.node.name.node == "join__graph");
            let name = directive.and_then(|d| string_argument(&d.node, "name"));
            let url = directive.and_then(|d| string_argument(&d.node, "url"));
            match (name, url) {
                (Some(name), Some(url)) => subgraphs.push(Subgraph { name, url, graph }),
                _ => problems.push(Problem::error(
                    "supergraph",
                    format!("join__Graph.{graph} has no @join__graph(name:, url:)"),
                )),
            }
        }
    }
    if subgraphs.is_empty() {
        problems.push(Problem::error("supergraph", "no subgraphs: the join__Graph enum is missing or empty"));
    }
    subgraphs
}

fn fields_of(
    owner: &str,
    fields: &[Positioned<async_graphql_parser::types::FieldDefinition>],
    graph_index: &dyn Fn(&str) -> Option<usize>,
    hidden: &dyn Fn(&[Positioned<ConstDirective>]) -> bool,
    problems: &mut Vec<Problem>,
) -> Vec<SuperField> {
    let mut out = Vec::new();
    for field in fields {
        let field = &field.node;
        let name = field.name.node.to_string();
        let mut joins = Vec::new();
        for directive in field.directives.iter().map(|d| &d.node) {
            match directive.name.node.as_str() {
                "join__field" => {
                    let graph = match enum_argument(directive, "graph") {
                        Some(value) => match graph_index(&value) {
                            Some(graph) => Some(graph),
                            None => {
                                problems.push(Problem::error(
                                    "supergraph",
                                    format!("field {owner}.{name}: @join__field names `{value}`, which is no subgraph"),
                                ));
                                continue;
                            }
                        },
                        None => None,
                    };
                    for unplanned in ["contextArguments", "overrideLabel"] {
                        if directive.get_argument(unplanned).is_some() {
                            let feature = if unplanned == "contextArguments" {
                                "@context / @fromContext"
                            } else {
                                "progressive @override(label:)"
                            };
                            problems.push(Problem::error(
                                "supergraph",
                                format!("field {owner}.{name}: {feature} is not supported yet"),
                            ));
                        }
                    }
                    let requires = string_argument(directive, "requires");
                    let provides = string_argument(directive, "provides");
                    joins.push(FieldJoin {
                        graph,
                        requires_set: requires.as_deref().and_then(|t| super::FieldSet::parse(t).ok()),
                        provides_set: provides.as_deref().and_then(|t| super::FieldSet::parse(t).ok()),
                        requires,
                        provides,
                        type_in_graph: string_argument(directive, "type"),
                        external: bool_argument(directive, "external").unwrap_or(false),
                        override_from: string_argument(directive, "override"),
                        used_overridden: bool_argument(directive, "usedOverridden").unwrap_or(false),
                    });
                }
                "join__directive" => problems.push(Problem::error(
                    "supergraph",
                    format!("field {owner}.{name}: @join__directive (a subgraph's own directive, e.g. @connect) is not supported yet"),
                )),
                _ => {}
            }
        }
        for set in joins.iter().flat_map(|j| [&j.requires, &j.provides]).flatten() {
            if let Err(message) = super::FieldSet::parse(set) {
                problems.push(Problem::error("supergraph", format!("field {owner}.{name}: `{set}`: {message}")));
            }
        }
        out.push(SuperField { name, ty: field.ty.node.to_string(), joins, inaccessible: hidden(&field.directives) });
    }
    out
}

/// `https://specs.apollo.dev/join/v0.3` → (`join`, `0.3`).
fn spec_of(url: &str) -> Option<(String, String)> {
    let trimmed = url.trim_end_matches('/');
    let (rest, version) = trimmed.rsplit_once('/')?;
    let name = rest.rsplit('/').next()?;
    let version = version.strip_prefix('v')?;
    version.split_once('.').filter(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())?;
    Some((name.to_owned(), version.to_owned()))
}

fn string_argument(directive: &ConstDirective, name: &str) -> Option<String> {
    match directive.get_argument(name).map(|v| &v.node) {
        Some(ConstValue::String(text)) => Some(text.clone()),
        _ => None,
    }
}

fn enum_argument(directive: &ConstDirective, name: &str) -> Option<String> {
    match directive.get_argument(name).map(|v| &v.node) {
        Some(ConstValue::Enum(value)) => Some(value.to_string()),
        _ => None,
    }
}

fn bool_argument(directive: &ConstDirective, name: &str) -> Option<bool> {
    match directive.get_argument(name).map(|v| &v.node) {
        Some(ConstValue::Boolean(value)) => Some(*value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_urls_are_read() {
        let table = [
            ("https://specs.apollo.dev/join/v0.3", Some(("join", "0.3"))),
            ("https://specs.apollo.dev/link/v1.0/", Some(("link", "1.0"))),
            ("https://specs.apollo.dev/authenticated/v0.1", Some(("authenticated", "0.1"))),
            ("https://example.com/x", None),
            ("join", None),
        ];
        for (url, expected) in table {
            let found = spec_of(url);
            assert_eq!(found.as_ref().map(|(a, b)| (a.as_str(), b.as_str())), expected, "{url}");
        }
    }
}
