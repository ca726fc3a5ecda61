//! A supergraph's API schema as SDL: its object, interface, union, input, enum and scalar types with their
//! fields, arguments, defaults, descriptions and deprecations — without the link and join
//! machinery, without any other directive, and without what is `@inaccessible` (types, fields,
//! arguments, enum values). The GraphQL schema is then built from it as from a GraphQL
//! source's SDL.

use std::collections::BTreeMap;
use std::fmt::Write;

use async_graphql_parser::Positioned;
use async_graphql_parser::types::{
    ConstDirective, FieldDefinition, InputValueDefinition, ServiceDocument, TypeKind, TypeSystemDefinition,
};

use super::supergraph::SuperType;

/// Prints the API schema of `document`, whose non-machinery types are `types`;
/// `inaccessible` is the name the supergraph links `@inaccessible` under.
pub(super) fn print(document: &ServiceDocument, types: &BTreeMap<String, SuperType>, inaccessible: &str) -> String {
    let hidden = |directives: &[Positioned<ConstDirective>]| {
        directives.iter().any(|d| d.node.name.node.as_str() == inaccessible)
    };
    let mut out = String::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(definition) = definition else { continue };
        let definition = &definition.node;
        let name = definition.name.node.as_str();
        let Some(ty) = types.get(name) else { continue };
        if ty.inaccessible {
            continue;
        }
        describe(&mut out, definition.description.as_ref().map(|d| d.node.as_str()), "");
        match &definition.kind {
            TypeKind::Scalar => {
                let _ = writeln!(out, "scalar {name}\n");
            }
            TypeKind::Object(object) => {
                let _ = writeln!(out, "type {name}{} {{", implements(&object.implements, types));
                for field in object.fields.iter().filter(|f| !hidden(&f.node.directives)) {
                    field_line(&mut out, &field.node, &hidden);
                }
                out.push_str("}\n\n");
            }
            TypeKind::Interface(interface) => {
                let _ = writeln!(out, "interface {name}{} {{", implements(&interface.implements, types));
                for field in interface.fields.iter().filter(|f| !hidden(&f.node.directives)) {
                    field_line(&mut out, &field.node, &hidden);
                }
                out.push_str("}\n\n");
            }
            TypeKind::Union(union) => {
                let members: Vec<&str> = union
                    .members
                    .iter()
                    .map(|m| m.node.as_str())
                    .filter(|m| types.get(*m).is_some_and(|t| !t.inaccessible))
                    .collect();
                let _ = writeln!(out, "union {name} = {}\n", members.join(" | "));
            }
            TypeKind::InputObject(input) => {
                let _ = writeln!(out, "input {name} {{");
                for field in input.fields.iter().filter(|f| !hidden(&f.node.directives)) {
                    describe(&mut out, field.node.description.as_ref().map(|d| d.node.as_str()), "  ");
                    out.push_str("  ");
                    input_value(&mut out, &field.node);
                    deprecation(&mut out, &field.node.directives);
                    out.push('\n');
                }
                out.push_str("}\n\n");
            }
            TypeKind::Enum(values) => {
                let _ = writeln!(out, "enum {name} {{");
                for value in values.values.iter().filter(|v| !hidden(&v.node.directives)) {
                    describe(&mut out, value.node.description.as_ref().map(|d| d.node.as_str()), "  ");
                    let _ = write!(out, "  {}", value.node.value.node);
                    deprecation(&mut out, &value.node.directives);
                    out.push('\n');
                }
                out.push_str("}\n\n");
            }
        }
    }
    out
}

/// ` implements A & B` for the accessible interfaces of `names` (empty for none).
fn implements(names: &[Positioned<async_graphql_value::Name>], types: &BTreeMap<String, SuperType>) -> String {
    let names: Vec<&str> =
        names.iter().map(|n| n.node.as_str()).filter(|n| types.get(*n).is_some_and(|t| !t.inaccessible)).collect();
    if names.is_empty() { String::new() } else { format!(" implements {}", names.join(" & ")) }
}

fn field_line(out: &mut String, field: &FieldDefinition, hidden: &dyn Fn(&[Positioned<ConstDirective>]) -> bool) {
    describe(out, field.description.as_ref().map(|d| d.node.as_str()), "  ");
    let _ = write!(out, "  {}", field.name.node);
    let arguments: Vec<&InputValueDefinition> =
        field.arguments.iter().map(|a| &a.node).filter(|a| !hidden(&a.directives)).collect();
    if !arguments.is_empty() {
        out.push('(');
        for (i, argument) in arguments.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            input_value(out, argument);
        }
        out.push(')');
    }
    let _ = write!(out, ": {}", field.ty.node);
    deprecation(out, &field.directives);
    out.push('\n');
}

/// `name: Type = default`.
fn input_value(out: &mut String, value: &InputValueDefinition) {
    let _ = write!(out, "{}: {}", value.name.node, value.ty.node);
    if let Some(default) = &value.default_value {
        let _ = write!(out, " = {}", default.node);
    }
}

/// ` @deprecated(reason: "...")` when the element carries it.
fn deprecation(out: &mut String, directives: &[Positioned<ConstDirective>]) {
    if let Some(directive) = directives.iter().find(|d| d.node.name.node == "deprecated") {
        match directive.node.get_argument("reason") {
            Some(reason) => {
                let _ = write!(out, " @deprecated(reason: {})", reason.node);
            }
            None => out.push_str(" @deprecated"),
        }
    }
}

/// A description as a GraphQL string (JSON escapes are GraphQL escapes).
fn describe(out: &mut String, description: Option<&str>, indent: &str) {
    if let Some(text) = description {
        let _ = writeln!(out, "{indent}{}", serde_json::Value::String(text.to_owned()));
    }
}
