//! Validating a parsed GraphQL document against the generated schema and normalising it:
//! the operation is chosen, variables are checked, fragments are inlined (with unknown,
//! misplaced and cyclic spreads refused), `@skip`/`@include` are applied, fields with one
//! response key are merged, and every field, argument and selection is checked against the
//! schema. Every problem is collected with its location, in the spec's wording.

use async_graphql_parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet as AstSet,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::{Name, Value};

use super::input::argument_json;
use crate::operation::{FieldSelection, OperationKind, SelectionSet};
use crate::schema::{GraphqlSchema, RootField, RootKind, TypeDef, introspection_field_type, is_introspection_object};

/// A problem with the document, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocumentError {
    pub(crate) message: String,
    pub(crate) locations: Vec<(usize, usize)>,
}

fn error(message: impl Into<String>, pos: Pos) -> DocumentError {
    DocumentError { message: message.into(), locations: vec![(pos.line, pos.column)] }
}

/// One entry of the root selection.
pub(crate) enum RootEntry {
    /// `__typename` on the root type.
    Typename { response_key: String, type_name: &'static str },
    /// `__schema`, or `__type(name:)` when `type_name` is set.
    Introspection { response_key: String, type_name: Option<String>, fields: SelectionSet },
    /// A root field: one backend call.
    Call(Box<PreparedCall>),
}

/// A validated root field with its request JSON and selection.
pub(crate) struct PreparedCall {
    pub(crate) response_key: String,
    pub(crate) root: RootField,
    /// The request message as JSON, or why the arguments cannot make one (a field error).
    pub(crate) request: Result<serde_json::Value, String>,
    pub(crate) type_name: String,
    pub(crate) fields: SelectionSet,
}

/// The operation, ready to plan.
pub(crate) struct Prepared {
    pub(crate) kind: OperationKind,
    pub(crate) entries: Vec<RootEntry>,
}

/// A field collected from a selection set, before merging by response key.
struct Collected<'a> {
    response_key: String,
    name: &'a Positioned<Name>,
    arguments: &'a [(Positioned<Name>, Positioned<Value>)],
    sets: Vec<&'a Positioned<AstSet>>,
}

struct Validator<'a> {
    schema: &'a GraphqlSchema,
    document: &'a ExecutableDocument,
    variables: serde_json::Map<String, serde_json::Value>,
    errors: Vec<DocumentError>,
}

/// Validates and normalises the operation `operation_name` of `document`.
pub(crate) fn prepare(
    schema: &GraphqlSchema,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &serde_json::Map<String, serde_json::Value>,
    introspection: bool,
) -> Result<Prepared, Vec<DocumentError>> {
    let operation = pick_operation(document, operation_name)?;
    let (kind, root_kind, root_name) = match operation.node.ty {
        OperationType::Query => (OperationKind::Query, RootKind::Query, "Query"),
        OperationType::Mutation => (OperationKind::Mutation, RootKind::Mutation, "Mutation"),
        OperationType::Subscription => {
            return Err(vec![error(
                "subscriptions are served over WebSocket and Server-Sent Events, not a single HTTP response",
                operation.pos,
            )]);
        }
    };
    let mut validator = Validator { schema, document, variables: serde_json::Map::new(), errors: Vec::new() };
    validator.coerce_variables(&operation.node, variables);
    let mut entries = Vec::new();
    for field in validator.collect(&operation.node.selection_set, root_name, &mut Vec::new()) {
        if field.name.node == "__typename" {
            entries.push(RootEntry::Typename { response_key: field.response_key, type_name: root_name });
            continue;
        }
        if root_kind == RootKind::Query && (field.name.node == "__schema" || field.name.node == "__type") {
            if !introspection {
                let message = "introspection is disabled on this gateway (graphql.introspection)";
                validator.errors.push(error(message, field.name.pos));
                continue;
            }
            let is_type = field.name.node == "__type";
            let type_name = if is_type { validator.type_argument(&field) } else { None };
            let fields = validator.introspection_selection(if is_type { "__Type" } else { "__Schema" }, &field);
            entries.push(RootEntry::Introspection { response_key: field.response_key, type_name, fields });
            continue;
        }
        let Some(root) = schema.root_field(root_kind, &field.name.node) else {
            let message = format!("Cannot query field \"{}\" on type \"{root_name}\".", field.name.node);
            validator.errors.push(error(message, field.name.pos));
            continue;
        };
        let request = validator.root_arguments(root, field.arguments);
        let type_name = root.output.name.clone();
        let fields = validator.selection_of(&type_name, &field);
        entries.push(RootEntry::Call(Box::new(PreparedCall {
            response_key: field.response_key,
            root: root.clone(),
            request,
            type_name,
            fields,
        })));
    }
    if validator.errors.is_empty() { Ok(Prepared { kind, entries }) } else { Err(validator.errors) }
}

fn pick_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Result<&'a Positioned<OperationDefinition>, Vec<DocumentError>> {
    let none = |message: String| vec![DocumentError { message, locations: Vec::new() }];
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Ok(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).ok_or_else(|| none(format!("Unknown operation named \"{name}\".")))
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            Ok(operations.values().next().expect("one operation"))
        }
        (DocumentOperations::Multiple(_), None) => {
            Err(none("The document has several operations; say which to run with operationName.".into()))
        }
    }
}

impl<'a> Validator<'a> {
    /// Declared variables take the request's values or their defaults; a required one missing is
    /// an error, as is an undeclared one used (found while converting arguments).
    fn coerce_variables(
        &mut self,
        operation: &OperationDefinition,
        given: &serde_json::Map<String, serde_json::Value>,
    ) {
        for definition in &operation.variable_definitions {
            let name = definition.node.name.node.as_str();
            let value = match given.get(name) {
                Some(value) => value.clone(),
                None => match &definition.node.default_value {
                    Some(default) => default.node.clone().into_json().unwrap_or(serde_json::Value::Null),
                    None if !definition.node.var_type.node.nullable => {
                        let message = format!(
                            "Variable \"${name}\" of required type \"{}\" was not provided.",
                            definition.node.var_type.node
                        );
                        self.errors.push(error(message, definition.pos));
                        continue;
                    }
                    None => serde_json::Value::Null,
                },
            };
            if value.is_null() && !definition.node.var_type.node.nullable {
                let message = format!(
                    "Variable \"${name}\" of non-null type \"{}\" must not be null.",
                    definition.node.var_type.node
                );
                self.errors.push(error(message, definition.pos));
            }
            self.variables.insert(name.to_owned(), value);
        }
    }

    /// Collects the fields of `set` on `type_name`, inlining fragments and applying directives.
    fn collect(
        &mut self,
        set: &'a Positioned<AstSet>,
        type_name: &str,
        spreads: &mut Vec<String>,
    ) -> Vec<Collected<'a>> {
        let mut out: Vec<Collected<'a>> = Vec::new();
        for item in &set.node.items {
            if !self.included(item.node.directives()) {
                continue;
            }
            match &item.node {
                Selection::Field(field) => {
                    let key = field.node.response_key().node.to_string();
                    match out.iter_mut().find(|c| c.response_key == key) {
                        Some(existing) if existing.name.node != field.node.name.node => {
                            let message = format!(
                                "Fields \"{key}\" conflict because \"{}\" and \"{}\" are different fields.",
                                existing.name.node, field.node.name.node
                            );
                            self.errors.push(error(message, field.pos));
                        }
                        Some(existing) => existing.sets.push(&field.node.selection_set),
                        None => out.push(Collected {
                            response_key: key,
                            name: &field.node.name,
                            arguments: &field.node.arguments,
                            sets: vec![&field.node.selection_set],
                        }),
                    }
                }
                Selection::InlineFragment(fragment) => {
                    if let Some(condition) = &fragment.node.type_condition
                        && condition.node.on.node != type_name
                    {
                        let message = format!(
                            "Fragment cannot be spread here as objects of type \"{type_name}\" can never be of type \"{}\".",
                            condition.node.on.node
                        );
                        self.errors.push(error(message, fragment.pos));
                        continue;
                    }
                    let inner = self.collect(&fragment.node.selection_set, type_name, spreads);
                    merge(&mut out, inner, &mut self.errors);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.to_string();
                    let document = self.document;
                    let Some(fragment) = document.fragments.get(spread.node.fragment_name.node.as_str()) else {
                        self.errors.push(error(format!("Unknown fragment \"{name}\"."), spread.pos));
                        continue;
                    };
                    if spreads.contains(&name) {
                        self.errors
                            .push(error(format!("Cannot spread fragment \"{name}\" within itself."), spread.pos));
                        continue;
                    }
                    if fragment.node.type_condition.node.on.node != type_name {
                        let message = format!(
                            "Fragment \"{name}\" cannot be spread here as objects of type \"{type_name}\" can never be of type \"{}\".",
                            fragment.node.type_condition.node.on.node
                        );
                        self.errors.push(error(message, spread.pos));
                        continue;
                    }
                    spreads.push(name);
                    let inner = self.collect(&fragment.node.selection_set, type_name, spreads);
                    spreads.pop();
                    merge(&mut out, inner, &mut self.errors);
                }
            }
        }
        out
    }

    /// `@skip(if:)` and `@include(if:)`; other directives are refused.
    fn included(&mut self, directives: &[Positioned<async_graphql_parser::types::Directive>]) -> bool {
        let mut keep = true;
        for directive in directives {
            let name = directive.node.name.node.as_str();
            if name != "skip" && name != "include" {
                self.errors.push(error(format!("Unknown directive \"@{name}\"."), directive.pos));
                continue;
            }
            let condition = match directive.node.get_argument("if").map(|v| &v.node) {
                Some(Value::Boolean(b)) => Some(*b),
                Some(Value::Variable(variable)) => {
                    self.variables.get(variable.as_str()).and_then(serde_json::Value::as_bool)
                }
                _ => None,
            };
            match condition {
                Some(condition) => keep &= if name == "skip" { !condition } else { condition },
                None => {
                    let message = format!("Directive \"@{name}\" argument \"if\" of type \"Boolean!\" is required.");
                    self.errors.push(error(message, directive.pos));
                }
            }
        }
        keep
    }

    fn root_arguments(
        &mut self,
        root: &RootField,
        arguments: &[(Positioned<Name>, Positioned<Value>)],
    ) -> Result<serde_json::Value, String> {
        let mut request = serde_json::Map::new();
        let mut failure = None;
        for (name, value) in arguments {
            let Some(argument) = root.arguments.iter().find(|a| a.name == name.node.as_str()) else {
                let message = format!("Unknown argument \"{}\" on field \"{}\".", name.node, root.name);
                self.errors.push(error(message, name.pos));
                continue;
            };
            match argument_json(&value.node, &argument.field, &self.variables) {
                Ok(json) => {
                    request.insert(argument.field.json_name().to_owned(), json);
                }
                Err(problem) if problem.undefined_variable => self.errors.push(error(problem.message, value.pos)),
                Err(problem) => failure = failure.or(Some(format!("argument \"{}\": {}", name.node, problem.message))),
            }
        }
        match failure {
            Some(message) => Err(message),
            None => Ok(serde_json::Value::Object(request)),
        }
    }

    /// The normalised selection of a field of type `type_name`.
    fn selection_of(&mut self, type_name: &str, field: &Collected<'a>) -> SelectionSet {
        let has_selection = field.sets.iter().any(|s| !s.node.items.is_empty());
        let schema: &'a GraphqlSchema = self.schema;
        match schema.types.get(type_name) {
            Some(TypeDef::Object { .. }) if !has_selection => {
                let message = format!(
                    "Field \"{}\" of type \"{type_name}\" must have a selection of subfields.",
                    field.name.node
                );
                self.errors.push(error(message, field.name.pos));
                SelectionSet::default()
            }
            Some(TypeDef::Object { fields, .. }) => {
                let mut collected = Vec::new();
                for set in &field.sets {
                    let inner = self.collect(set, type_name, &mut Vec::new());
                    merge(&mut collected, inner, &mut self.errors);
                }
                let mut out = SelectionSet::default();
                for child in collected {
                    if child.name.node == "__typename" {
                        out.fields.push(FieldSelection {
                            response_key: child.response_key,
                            field_name: "__typename".into(),
                            children: SelectionSet::default(),
                            arguments: Vec::new(),
                        });
                        continue;
                    }
                    let Some(definition) = fields.iter().find(|f| f.name == child.name.node.as_str()) else {
                        let message = format!("Cannot query field \"{}\" on type \"{type_name}\".", child.name.node);
                        self.errors.push(error(message, child.name.pos));
                        continue;
                    };
                    if let Some((name, _)) = child.arguments.first() {
                        let message =
                            format!("Unknown argument \"{}\" on field \"{type_name}.{}\".", name.node, child.name.node);
                        self.errors.push(error(message, name.pos));
                    }
                    let children = self.selection_of(&definition.ty.name, &child);
                    out.fields.push(FieldSelection {
                        response_key: child.response_key,
                        field_name: definition.name.clone(),
                        children,
                        arguments: Vec::new(),
                    });
                }
                out
            }
            _ if has_selection => {
                let message = format!(
                    "Field \"{}\" must not have a selection since type \"{type_name}\" has no subfields.",
                    field.name.node
                );
                self.errors.push(error(message, field.name.pos));
                SelectionSet::default()
            }
            _ => SelectionSet::default(),
        }
    }
}

impl<'a> Validator<'a> {
    /// `__type(name: String!)`'s name.
    fn type_argument(&mut self, field: &Collected<'a>) -> Option<String> {
        let value = field.arguments.iter().find(|(n, _)| n.node == "name").map(|(_, v)| &v.node);
        match value {
            Some(Value::String(name)) => Some(name.clone()),
            Some(Value::Variable(variable)) => {
                self.variables.get(variable.as_str()).and_then(|v| v.as_str()).map(str::to_owned)
            }
            _ => {
                self.errors
                    .push(error("Field \"__type\" argument \"name\" of type \"String!\" is required.", field.name.pos));
                None
            }
        }
    }

    /// The normalised selection into an introspection type.
    fn introspection_selection(&mut self, type_name: &str, field: &Collected<'a>) -> SelectionSet {
        let mut collected = Vec::new();
        for set in &field.sets {
            let inner = self.collect(set, type_name, &mut Vec::new());
            merge(&mut collected, inner, &mut self.errors);
        }
        if collected.is_empty() {
            let message =
                format!("Field \"{}\" of type \"{type_name}\" must have a selection of subfields.", field.name.node);
            self.errors.push(error(message, field.name.pos));
        }
        let mut out = SelectionSet::default();
        for child in collected {
            let name = child.name.node.to_string();
            let child_type =
                if name == "__typename" { Some("String") } else { introspection_field_type(type_name, &name) };
            let Some(child_type) = child_type else {
                self.errors
                    .push(error(format!("Cannot query field \"{name}\" on type \"{type_name}\"."), child.name.pos));
                continue;
            };
            let mut arguments = Vec::new();
            for (argument, value) in child.arguments {
                if argument.node != "includeDeprecated" {
                    let message = format!("Unknown argument \"{}\" on field \"{type_name}.{name}\".", argument.node);
                    self.errors.push(error(message, argument.pos));
                    continue;
                }
                let resolved = match &value.node {
                    Value::Boolean(b) => serde_json::Value::Bool(*b),
                    Value::Variable(v) => self.variables.get(v.as_str()).cloned().unwrap_or(serde_json::Value::Null),
                    _ => serde_json::Value::Null,
                };
                arguments.push((argument.node.to_string(), resolved));
            }
            let children = if is_introspection_object(child_type) {
                self.introspection_selection(child_type, &child)
            } else {
                if child.sets.iter().any(|s| !s.node.items.is_empty()) {
                    let message = format!(
                        "Field \"{name}\" must not have a selection since type \"{child_type}\" has no subfields."
                    );
                    self.errors.push(error(message, child.name.pos));
                }
                SelectionSet::default()
            };
            out.fields.push(FieldSelection { response_key: child.response_key, field_name: name, children, arguments });
        }
        out
    }
}

/// Adds `inner` fields to `out`, merging same response keys.
fn merge<'a>(out: &mut Vec<Collected<'a>>, inner: Vec<Collected<'a>>, errors: &mut Vec<DocumentError>) {
    for field in inner {
        match out.iter_mut().find(|c| c.response_key == field.response_key) {
            Some(existing) if existing.name.node != field.name.node => errors.push(error(
                format!(
                    "Fields \"{}\" conflict because \"{}\" and \"{}\" are different fields.",
                    field.response_key, existing.name.node, field.name.node
                ),
                field.name.pos,
            )),
            Some(existing) => existing.sets.extend(field.sets),
            None => out.push(field),
        }
    }
}
