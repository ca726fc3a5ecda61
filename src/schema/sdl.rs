//! Printing the generated schema as SDL, deterministically: schema definition, root types,
//! then every named type sorted by name.

use std::fmt::Write;

use super::{GraphqlSchema, InputField, RootKind, TypeDef};

pub(super) fn print(schema: &GraphqlSchema) -> String {
    let mut out = String::new();
    let roots: Vec<(RootKind, &str)> =
        [(RootKind::Query, "Query"), (RootKind::Mutation, "Mutation"), (RootKind::Subscription, "Subscription")]
            .into_iter()
            .filter(|(kind, _)| schema.roots.get(kind).is_some_and(|f| !f.is_empty()))
            .collect();
    out.push_str("schema {\n");
    for (kind, name) in &roots {
        let _ = writeln!(out, "  {}: {name}", format!("{kind:?}").to_ascii_lowercase());
    }
    out.push_str("}\n");
    for (kind, name) in &roots {
        let _ = writeln!(out, "\ntype {name} {{");
        for field in &schema.roots[kind] {
            describe(&mut out, field.description.as_deref(), "  ");
            let _ = write!(out, "  {}", field.name);
            print_arguments(&mut out, &field.arguments);
            let _ = write!(out, ": {}", field.output);
            if field.deprecated {
                out.push_str(" @deprecated");
            }
            out.push('\n');
        }
        out.push_str("}\n");
    }
    for (name, def) in &schema.types {
        out.push('\n');
        describe(&mut out, schema.type_descriptions.get(name).map(String::as_str), "");
        match def {
            TypeDef::Scalar { description } => {
                let _ = writeln!(out, "\"{description}\"\nscalar {name}");
            }
            TypeDef::Enum { values, .. } => {
                let _ = writeln!(out, "enum {name} {{");
                for value in values {
                    let _ = writeln!(out, "  {}{}", value.name, if value.deprecated { " @deprecated" } else { "" });
                }
                out.push_str("}\n");
            }
            TypeDef::Union { possible } => {
                let _ = writeln!(out, "union {name} = {}", possible.join(" | "));
            }
            TypeDef::Object { fields, .. } | TypeDef::Interface { fields, .. } => {
                let keyword = if matches!(def, TypeDef::Object { .. }) { "type" } else { "interface" };
                let interfaces: Vec<&str> = schema.interfaces_of(name).collect();
                let implements = if interfaces.is_empty() {
                    String::new()
                } else {
                    format!(" implements {}", interfaces.join(" & "))
                };
                let _ = writeln!(out, "{keyword} {name}{implements} {{");
                for field in fields {
                    describe(&mut out, field.description.as_deref(), "  ");
                    let deprecated = if field.deprecated { " @deprecated" } else { "" };
                    let _ = write!(out, "  {}", field.name);
                    print_arguments(&mut out, &field.arguments);
                    let _ = writeln!(out, ": {}{deprecated}", field.ty);
                }
                out.push_str("}\n");
            }
            TypeDef::Input { fields, .. } => {
                let _ = writeln!(out, "input {name} {{");
                for field in fields {
                    describe(&mut out, field.description.as_deref(), "  ");
                    let deprecated = if field.deprecated { " @deprecated" } else { "" };
                    let _ = writeln!(out, "  {}: {}{deprecated}", field.name, field.ty);
                }
                out.push_str("}\n");
            }
        }
    }
    out
}

/// A description line (a GraphQL string, escaped as JSON escapes, which GraphQL shares).
fn describe(out: &mut String, description: Option<&str>, indent: &str) {
    if let Some(text) = description {
        let _ = writeln!(out, "{indent}{}", serde_json::Value::String(text.to_owned()));
    }
}

fn print_arguments(out: &mut String, arguments: &[InputField]) {
    if arguments.is_empty() {
        return;
    }
    out.push('(');
    for (i, argument) in arguments.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: {}", argument.name, argument.ty);
        if argument.deprecated {
            out.push_str(" @deprecated");
        }
    }
    out.push(')');
}
