//! Operator edits to the generated schema, from `[graphql]`: fields renamed or hidden, whole
//! types hidden (with every field, argument and root field of that type), and types renamed.
//! Each runs on the generated schema before schema files are applied, so those see the result;
//! each problem names its config key.

use std::collections::{BTreeMap, BTreeSet};

use super::{GraphqlSchema, TypeDef, TypeRef};
use crate::config::Problem;

/// Applies `graphql.fields`: renames and hides fields of object types. Each problem names the
/// config key.
pub fn apply_field_config(
    schema: &mut GraphqlSchema,
    config: &BTreeMap<String, crate::config::GraphqlFieldConfig>,
) -> Vec<crate::config::Problem> {
    let mut problems = Vec::new();
    for (key, field_config) in config {
        let at = format!("graphql.fields.\"{key}\"");
        let Some((type_name, field)) = key.split_once('.') else {
            problems.push(Problem::error(at, format!("`{key}` is not `Type.field`")));
            continue;
        };
        let Some(TypeDef::Object { fields, .. }) = schema.types.get_mut(type_name) else {
            problems.push(Problem::error(at, format!("there is no object type `{type_name}`")));
            continue;
        };
        let Some(index) = fields.iter().position(|f| f.name == field) else {
            problems.push(Problem::error(at, format!("{type_name} has no field `{field}`")));
            continue;
        };
        if field_config.hidden {
            fields.remove(index);
            continue;
        }
        if let Some(name) = &field_config.name {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with("__");
            if !valid {
                problems.push(Problem::error(format!("{at}.name"), format!("`{name}` is not a GraphQL field name")));
            } else if fields.iter().any(|f| &f.name == name) {
                problems
                    .push(Problem::error(format!("{at}.name"), format!("{type_name} already has a field `{name}`")));
            } else {
                fields[index].name = name.clone();
            }
        }
    }
    problems
}

/// Applies `graphql.type_names`: renames generated types and every reference to them.
pub fn apply_type_names(schema: &mut GraphqlSchema, renames: &BTreeMap<String, String>) -> Vec<crate::config::Problem> {
    let mut problems = Vec::new();
    let mut applied: BTreeMap<String, String> = BTreeMap::new();
    for (from, to) in renames {
        let at = format!("graphql.type_names.{from}");
        let valid = to.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && to.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !to.starts_with("__");
        match schema.types.get(from) {
            None => problems.push(Problem::error(at, format!("there is no generated type `{from}`"))),
            Some(TypeDef::Scalar { .. }) => {
                problems.push(Problem::error(at, format!("`{from}` is a scalar; scalars keep their names")))
            }
            Some(_) if !valid => problems.push(Problem::error(at, format!("`{to}` is not a GraphQL type name"))),
            Some(_) if schema.types.contains_key(to) || applied.values().any(|t| t == to) => {
                problems.push(Problem::error(at, format!("a type `{to}` exists already")))
            }
            Some(_) => {
                applied.insert(from.clone(), to.clone());
            }
        }
    }
    if applied.is_empty() {
        return problems;
    }
    let rename = |ty: &mut TypeRef| {
        if let Some(to) = applied.get(&ty.name) {
            ty.name = to.clone();
        }
    };
    for field in schema.roots.values_mut().flatten() {
        rename(&mut field.output);
        field.arguments.iter_mut().for_each(|a| rename(&mut a.ty));
    }
    let types = std::mem::take(&mut schema.types);
    for (name, mut definition) in types {
        match &mut definition {
            TypeDef::Object { fields, .. } => {
                for field in fields.iter_mut() {
                    rename(&mut field.ty);
                    field.arguments.iter_mut().for_each(|a| rename(&mut a.ty));
                }
            }
            TypeDef::Input { fields, .. } => fields.iter_mut().for_each(|f| rename(&mut f.ty)),
            _ => {}
        }
        schema.types.insert(applied.get(&name).cloned().unwrap_or(name), definition);
    }
    for (from, to) in &applied {
        if let Some(description) = schema.type_descriptions.remove(from) {
            schema.type_descriptions.insert(to.clone(), description);
        }
    }
    problems
}

/// Applies `graphql.hidden_types`: each named type leaves the schema with every object field,
/// input field, argument and root field of that type. An object or input type left with no
/// fields leaves too (GraphQL has no empty types), with a warning naming why, and so on until
/// nothing more empties.
pub fn apply_hidden_types(schema: &mut GraphqlSchema, hidden: &BTreeSet<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut round: BTreeSet<String> = BTreeSet::new();
    for name in hidden {
        if schema.types.contains_key(name) {
            round.insert(name.clone());
        } else {
            let at = format!("graphql.hidden_types.{name}");
            problems.push(Problem::error(at, format!("there is no generated type `{name}`")));
        }
    }
    while !round.is_empty() {
        for name in &round {
            schema.types.remove(name);
            schema.type_descriptions.remove(name);
        }
        let refers = |ty: &TypeRef| round.contains(&ty.name);
        for fields in schema.roots.values_mut() {
            fields.retain(|f| !refers(&f.output));
            fields.iter_mut().for_each(|f| f.arguments.retain(|a| !refers(&a.ty)));
        }
        schema.roots.retain(|_, fields| !fields.is_empty());
        let mut emptied = BTreeSet::new();
        for (name, definition) in &mut schema.types {
            let now_empty = match definition {
                TypeDef::Object { fields, .. } => {
                    let before = fields.len();
                    fields.retain(|f| !refers(&f.ty));
                    fields.iter_mut().for_each(|f| f.arguments.retain(|a| !refers(&a.ty)));
                    before > 0 && fields.is_empty()
                }
                TypeDef::Input { fields, .. } => {
                    let before = fields.len();
                    fields.retain(|f| !refers(&f.ty));
                    before > 0 && fields.is_empty()
                }
                _ => false,
            };
            if now_empty {
                emptied.insert(name.clone());
            }
        }
        for name in &emptied {
            problems.push(Problem::warning(
                "graphql.hidden_types",
                format!("`{name}` is hidden too: every one of its fields had a hidden type"),
            ));
        }
        round = emptied;
    }
    problems
}
