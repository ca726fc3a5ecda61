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

use super::input::{argument_json, bind_deferred, declared_arguments, declared_json, deferred_json};
use crate::operation::{FieldSelection, OperationKind, SelectionSet, hidden_key};
use crate::schema::{
    FieldSource, GraphqlSchema, InputField, InputSource, Resolver, RootField, RootKind, TypeDef, TypeRef,
    introspection_field_type, is_introspection_object,
};

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
    /// Query or mutation.
    pub(crate) kind: OperationKind,
    pub(crate) response_key: String,
    /// Where the field is in the document (line, column), for its errors.
    pub(crate) location: (usize, usize),
    /// Shared with the cached shape (a schema's root fields are not small).
    pub(crate) root: std::sync::Arc<RootField>,
    /// The request message as JSON, or why the arguments cannot make one (a field error);
    /// shared with the cached shape when no argument reads a variable.
    pub(crate) request: std::sync::Arc<Result<serde_json::Value, String>>,
    pub(crate) type_name: String,
    pub(crate) fields: std::sync::Arc<SelectionSet>,
    /// The deferred fragment the root field was selected in, if it was only in one.
    pub(crate) defer: Option<usize>,
    /// Why authorization denies the whole field, when it does (it is answered null with a
    /// FORBIDDEN error, and not called).
    pub(crate) forbidden: Option<String>,
}

/// The operation, ready to plan.
pub(crate) struct Prepared {
    pub(crate) kind: OperationKind,
    /// The labels of the `@defer`red fragments, by index.
    pub(crate) defers: Vec<Option<String>>,
    pub(crate) entries: Vec<RootEntry>,
    /// The operation's estimated cost (rate limits may charge it).
    pub(crate) cost: u64,
}

/// A validated, normalised operation before variable values are bound: what the plan cache
/// keeps. It depends on the document, the operation name, the schema and the values of the
/// variables that `@skip`/`@include` read, and on nothing else.
pub(crate) struct Shape {
    kind: OperationKind,
    /// The labels of the operation's `@defer`red fragments, by index.
    defers: Vec<Option<String>>,
    variables: Vec<VariableDef>,
    entries: Vec<ShapeEntry>,
    /// True when a stitched field below a root field takes arguments (bound per request).
    nested_arguments: bool,
    /// The estimated cost (set once measured against `graphql.limits`).
    pub(crate) cost: u64,
}

/// A declared variable.
#[derive(Clone)]
struct VariableDef {
    name: String,
    type_text: String,
    /// The type, when it is one the schema can coerce to (one list level at most).
    ty: Option<TypeRef>,
    nullable: bool,
    default: Option<serde_json::Value>,
    pos: Pos,
}

/// A root entry with its arguments still as written.
enum ShapeEntry {
    Typename {
        response_key: String,
        type_name: &'static str,
    },
    Introspection {
        response_key: String,
        type_name: Option<Value>,
        fields: SelectionSet,
    },
    Call {
        response_key: String,
        location: (usize, usize),
        root: std::sync::Arc<RootField>,
        arguments: Vec<(String, Value)>,
        /// The request, when no argument reads a variable: bound once, shared by every request.
        constant: Option<std::sync::Arc<Result<serde_json::Value, String>>>,
        type_name: String,
        fields: std::sync::Arc<SelectionSet>,
        defer: Option<usize>,
    },
}

/// A field found under a response key while checking field merging: its key, name, the type
/// it is selected on, where, and its own selection.
struct Keyed<'a> {
    key: String,
    name: String,
    scope: String,
    pos: Pos,
    set: Option<&'a Positioned<AstSet>>,
}

/// A field collected from a selection set, before merging by response key.
struct Collected<'a> {
    response_key: String,
    /// Where the field starts (its alias, if it has one).
    pos: Pos,
    name: &'a Positioned<Name>,
    arguments: &'a [(Positioned<Name>, Positioned<Value>)],
    sets: Vec<&'a Positioned<AstSet>>,
    /// The deferred fragment it was collected in; None once it is also selected outside one.
    defer: Option<usize>,
}

struct Validator<'a> {
    schema: &'a GraphqlSchema,
    document: &'a ExecutableDocument,
    variables: serde_json::Map<String, serde_json::Value>,
    /// The operation's declared variables.
    declared: Vec<VariableDef>,
    /// The `@defer`red fragments met so far: their labels.
    defers: Vec<Option<String>>,
    /// The deferred fragment being collected.
    deferring: Option<usize>,
    errors: Vec<DocumentError>,
    nested_arguments: bool,
}

/// The values `@skip`/`@include` read in `operation`: the plan cache's key material. Declared
/// defaults apply; a variable read by no directive does not count.
pub(crate) fn directive_values(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &serde_json::Map<String, serde_json::Value>,
) -> Vec<(String, serde_json::Value)> {
    let Ok(operation) = pick_operation(document, operation_name) else { return Vec::new() };
    let mut names = Vec::new();
    let mut visit = |set: &AstSet| directive_variables(set, &mut names);
    visit(&operation.node.selection_set.node);
    for fragment in document.fragments.values() {
        visit(&fragment.node.selection_set.node);
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let value = variables.get(&name).cloned().or_else(|| {
                operation
                    .node
                    .variable_definitions
                    .iter()
                    .find(|d| d.node.name.node == name)
                    .and_then(|d| d.node.default_value.as_ref())
                    .and_then(|v| v.node.clone().into_json().ok())
            });
            (name, value.unwrap_or(serde_json::Value::Null))
        })
        .collect()
}

fn directive_variables(set: &AstSet, out: &mut Vec<String>) {
    for item in &set.items {
        for directive in item.node.directives() {
            for (_, value) in &directive.node.arguments {
                if let Value::Variable(name) = &value.node {
                    out.push(name.to_string());
                }
            }
        }
        match &item.node {
            Selection::Field(field) => directive_variables(&field.node.selection_set.node, out),
            Selection::InlineFragment(fragment) => directive_variables(&fragment.node.selection_set.node, out),
            Selection::FragmentSpread(_) => {}
        }
    }
}

/// Validates and normalises the operation `operation_name` of `document`; `variables` are read
/// only by `@skip`/`@include`.
pub(crate) fn shape(
    schema: &GraphqlSchema,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &serde_json::Map<String, serde_json::Value>,
    introspection: bool,
) -> Result<Shape, Vec<DocumentError>> {
    let operation = pick_operation(document, operation_name)?;
    // Before anything inlines fragments: a cycle would make that walk exponential.
    let cycles = super::fragment_cycles::fragment_cycles(document);
    if !cycles.is_empty() {
        return Err(cycles);
    }
    let (kind, root_kind, root_name) = match operation.node.ty {
        OperationType::Query => (OperationKind::Query, RootKind::Query, "Query"),
        OperationType::Mutation => (OperationKind::Mutation, RootKind::Mutation, "Mutation"),
        OperationType::Subscription => (OperationKind::Subscription, RootKind::Subscription, "Subscription"),
    };
    let declared: Vec<VariableDef> = operation
        .node
        .variable_definitions
        .iter()
        .map(|d| VariableDef {
            name: d.node.name.node.to_string(),
            type_text: d.node.var_type.node.to_string(),
            ty: type_ref(&d.node.var_type.node),
            nullable: d.node.var_type.node.nullable,
            default: d.node.default_value.as_ref().and_then(|v| v.node.clone().into_json().ok()),
            pos: d.pos,
        })
        .collect();
    let mut validator = Validator {
        schema,
        document,
        variables: serde_json::Map::new(),
        declared: declared.clone(),
        defers: Vec::new(),
        deferring: None,
        errors: Vec::new(),
        nested_arguments: false,
    };
    for definition in &declared {
        let named = base_name(&definition.type_text);
        let message = match schema.types.get(named) {
            _ if crate::schema::is_builtin_scalar(named) => None,
            None => Some(format!("Unknown type \"{named}\".")),
            Some(TypeDef::Object { .. } | TypeDef::Interface { .. } | TypeDef::Union { .. }) => Some(format!(
                "Variable \"${}\" cannot be non-input type \"{}\".",
                definition.name, definition.type_text
            )),
            Some(_) => None,
        };
        if let Some(message) = message {
            validator.errors.push(error(message, definition.pos));
        }
    }
    for definition in &declared {
        let value = variables.get(&definition.name).cloned().or_else(|| definition.default.clone());
        validator.variables.insert(definition.name.clone(), value.unwrap_or(serde_json::Value::Null));
    }
    validator.check_usages(operation_name, &declared);
    let mut entries = Vec::new();
    for field in validator.collect(&operation.node.selection_set, root_name, root_name, &mut Vec::new()) {
        if field.name.node == "__typename" {
            entries.push(ShapeEntry::Typename { response_key: field.response_key, type_name: root_name });
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
            entries.push(ShapeEntry::Introspection { response_key: field.response_key, type_name, fields });
            continue;
        }
        let Some(root) = schema.root_field(root_kind, &field.name.node) else {
            let message = format!("Cannot query field \"{}\" on type \"{root_name}\".", field.name.node);
            validator.errors.push(error(message, field.name.pos));
            continue;
        };
        let arguments = validator.field_arguments(&root.name, &root.arguments, field.arguments, field.name.pos);
        let type_name = root.output.name.clone();
        let fields = validator.selection_of(&type_name, &field);
        let mut read = Vec::new();
        arguments.iter().for_each(|(_, value)| variables_in(value, &mut read));
        let constant = read
            .is_empty()
            .then(|| std::sync::Arc::new(call_request(root, &arguments, &serde_json::Map::new(), schema)));
        entries.push(ShapeEntry::Call {
            response_key: field.response_key,
            location: (field.pos.line, field.pos.column),
            root: std::sync::Arc::new(root.clone()),
            arguments,
            constant,
            type_name,
            fields: std::sync::Arc::new(fields),
            defer: field.defer,
        });
    }
    if kind != OperationKind::Query && !validator.defers.is_empty() {
        validator.errors.push(error("@defer is supported in queries only.", operation.pos));
    }
    if kind == OperationKind::Subscription {
        // Spec 5.2.3.1: one root field, and not an introspection field.
        let calls = entries.iter().filter(|e| matches!(e, ShapeEntry::Call { .. })).count();
        if calls != 1 || entries.len() != 1 {
            let name =
                operation_name.map_or_else(|| "Anonymous Subscription".to_owned(), |n| format!("Subscription \"{n}\""));
            let message = format!("{name} must select only one top level field.");
            validator.errors.push(error(message, operation.pos));
        }
    }
    // A selection on an interface or union is checked once per object type it may have.
    let mut seen = std::collections::HashSet::new();
    validator.errors.retain(|e| seen.insert((e.message.clone(), e.locations.clone())));
    if validator.errors.is_empty() {
        Ok(Shape {
            kind,
            defers: validator.defers,
            variables: declared,
            entries,
            nested_arguments: validator.nested_arguments,
            cost: 0,
        })
    } else {
        Err(validator.errors)
    }
}

impl Shape {
    /// The operation's estimated cost: 1 per field, and everything under a list field counted
    /// `list_size` times. Saturates instead of overflowing.
    pub(crate) fn estimated_cost(&self, schema: &GraphqlSchema, list_size: u64) -> u64 {
        self.entries.iter().fold(0u64, |total, entry| {
            let cost = match entry {
                ShapeEntry::Call { type_name, fields, .. } => {
                    1u64.saturating_add(selection_cost(schema, type_name, fields, list_size))
                }
                _ => 1,
            };
            total.saturating_add(cost)
        })
    }

    /// Binds `given` variables: required ones must be present and non-null ones not null; then
    /// each root call's arguments become its request JSON (a bad value is that field's error).
    pub(crate) fn bind(
        &self,
        given: &serde_json::Map<String, serde_json::Value>,
        schema: &GraphqlSchema,
    ) -> Result<Prepared, Vec<DocumentError>> {
        let mut errors = Vec::new();
        let mut variables = serde_json::Map::new();
        for definition in &self.variables {
            let value = match given.get(&definition.name).cloned().or_else(|| definition.default.clone()) {
                Some(value) => value,
                None if !definition.nullable => {
                    let message = format!(
                        "Variable \"${}\" of required type \"{}\" was not provided.",
                        definition.name, definition.type_text
                    );
                    errors.push(error(message, definition.pos));
                    continue;
                }
                None => serde_json::Value::Null,
            };
            if value.is_null() && !definition.nullable {
                let message = format!(
                    "Variable \"${}\" of non-null type \"{}\" must not be null.",
                    definition.name, definition.type_text
                );
                errors.push(error(message, definition.pos));
            }
            // Input coercion (spec 6.1.2): a value that does not fit its type refuses the request.
            let value = match &definition.ty {
                Some(ty) if !value.is_null() => match declared_json(value.clone(), ty, schema) {
                    Ok(coerced) => coerced,
                    Err(why) => {
                        let message = format!("Variable \"${}\" got invalid value {value}; {why}.", definition.name);
                        errors.push(error(message, definition.pos));
                        continue;
                    }
                },
                _ => value,
            };
            variables.insert(definition.name.clone(), value);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let entries = self
            .entries
            .iter()
            .map(|entry| match entry {
                ShapeEntry::Typename { response_key, type_name } => {
                    RootEntry::Typename { response_key: response_key.clone(), type_name }
                }
                ShapeEntry::Introspection { response_key, type_name, fields } => RootEntry::Introspection {
                    response_key: response_key.clone(),
                    type_name: type_name.as_ref().and_then(|v| match v {
                        Value::String(name) => Some(name.clone()),
                        Value::Variable(name) => {
                            variables.get(name.as_str()).and_then(|v| v.as_str()).map(str::to_owned)
                        }
                        _ => None,
                    }),
                    fields: fields.clone(),
                },
                ShapeEntry::Call { response_key, location, root, arguments, constant, type_name, fields, defer } => {
                    let mut request = match constant {
                        Some(request) => request.clone(),
                        None => std::sync::Arc::new(call_request(root, arguments, &variables, schema)),
                    };
                    // Shared with the cached shape unless variables bind nested arguments.
                    let mut fields = fields.clone();
                    if self.nested_arguments
                        && let Err(message) =
                            bind_nested(std::sync::Arc::make_mut(&mut fields), type_name, schema, &variables)
                        && request.is_ok()
                    {
                        request = std::sync::Arc::new(Err(message));
                    }
                    RootEntry::Call(Box::new(PreparedCall {
                        kind: self.kind,
                        response_key: response_key.clone(),
                        location: *location,
                        root: root.clone(),
                        request,
                        type_name: type_name.clone(),
                        fields,
                        defer: *defer,
                        forbidden: None,
                    }))
                }
            })
            .collect();
        Ok(Prepared { kind: self.kind, defers: self.defers.clone(), entries, cost: self.cost })
    }
}

/// A root field's request message as JSON from its arguments (variables substituted), or why
/// the arguments cannot make one.
fn call_request(
    root: &RootField,
    arguments: &[(String, Value)],
    variables: &serde_json::Map<String, serde_json::Value>,
    schema: &GraphqlSchema,
) -> Result<serde_json::Value, String> {
    match &root.resolver {
        Resolver::Method(_) => {
            let mut request = serde_json::Map::new();
            let mut failure = None;
            for (name, value) in arguments {
                let Some(argument) = root.arguments.iter().find(|a| &a.name == name) else { continue };
                let Some(field) = argument.proto() else { continue };
                match argument_json(value, field, variables) {
                    Ok(json) => {
                        request.insert(field.json_name().to_owned(), json);
                    }
                    Err(problem) => {
                        failure = failure.or(Some(format!("argument \"{name}\": {}", problem.message)));
                    }
                }
            }
            failure.map_or(Ok(serde_json::Value::Object(request)), Err)
        }
        Resolver::Bound(_) => {
            let given: Vec<(String, serde_json::Value)> = arguments
                .iter()
                .map(|(name, value)| (name.clone(), bind_deferred(&deferred_json(value), variables)))
                .collect();
            declared_arguments(&given, &root.arguments, schema).map(serde_json::Value::Object)
        }
    }
}

/// The variables and fragments `set` uses, following fragment spreads (each once).
fn usages(
    document: &ExecutableDocument,
    set: &AstSet,
    variables: &mut std::collections::BTreeSet<String>,
    fragments: &mut std::collections::BTreeSet<String>,
) {
    for item in &set.items {
        for directive in item.node.directives() {
            for (_, value) in &directive.node.arguments {
                let mut used = Vec::new();
                variables_in(&value.node, &mut used);
                variables.extend(used);
            }
        }
        match &item.node {
            Selection::Field(field) => {
                for (_, value) in &field.node.arguments {
                    let mut used = Vec::new();
                    variables_in(&value.node, &mut used);
                    variables.extend(used);
                }
                usages(document, &field.node.selection_set.node, variables, fragments);
            }
            Selection::InlineFragment(fragment) => {
                usages(document, &fragment.node.selection_set.node, variables, fragments);
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.to_string();
                if fragments.insert(name.clone())
                    && let Some(fragment) = document.fragments.get(name.as_str())
                {
                    usages(document, &fragment.node.selection_set.node, variables, fragments);
                }
            }
        }
    }
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
    /// Every declared variable must be used by the operation (spec 5.8.4), and every fragment
    /// by some operation of the document (5.5.1.4).
    fn check_usages(&mut self, operation_name: Option<&str>, declared: &[VariableDef]) {
        let document = self.document;
        let mut all_fragments = std::collections::BTreeSet::new();
        let operations: Vec<(Option<String>, &Positioned<OperationDefinition>)> = match &document.operations {
            DocumentOperations::Single(operation) => vec![(None, operation)],
            DocumentOperations::Multiple(operations) => {
                operations.iter().map(|(name, op)| (Some(name.to_string()), op)).collect()
            }
        };
        for (name, operation) in &operations {
            let mut variables = std::collections::BTreeSet::new();
            let mut fragments = std::collections::BTreeSet::new();
            usages(document, &operation.node.selection_set.node, &mut variables, &mut fragments);
            all_fragments.extend(fragments);
            let chosen = match (name, operation_name) {
                (Some(name), Some(wanted)) => name == wanted,
                _ => true,
            };
            if !chosen || operations.len() > 1 && operation_name.is_none() {
                continue;
            }
            for definition in declared.iter().filter(|d| !variables.contains(&d.name)) {
                let message = match name {
                    Some(name) => format!("Variable \"${}\" is never used in operation \"{name}\".", definition.name),
                    None => format!("Variable \"${}\" is never used.", definition.name),
                };
                self.errors.push(error(message, definition.pos));
            }
        }
        for (name, fragment) in &document.fragments {
            if !all_fragments.contains(name.as_str()) {
                self.errors.push(error(format!("Fragment \"{name}\" is never used."), fragment.pos));
            }
        }
    }

    /// Every variable a value uses must be declared, and one passed straight to an argument
    /// must have a type that fits it (spec 5.8.3 and 5.8.5).
    fn check_variable_usage(&mut self, value: &Positioned<Value>, argument: &InputField) {
        let mut used = Vec::new();
        variables_in(&value.node, &mut used);
        for name in used {
            if !self.declared.iter().any(|d| d.name == name) {
                self.errors.push(error(format!("Variable \"${name}\" is not defined."), value.pos));
            }
        }
        let Value::Variable(name) = &value.node else { return };
        let Some(variable) = self.declared.iter().find(|d| d.name == name.as_str()) else { return };
        let Some(ty) = &variable.ty else { return };
        let expected = &argument.ty;
        let has_default = variable.default.is_some() || matches!(&argument.source, InputSource::Declared(Some(_)));
        let fits = ty.name == expected.name
            && ty.list == expected.list
            && (!expected.non_null || ty.non_null || has_default)
            && (!expected.item_non_null || !expected.list || ty.item_non_null);
        if !fits {
            let message = format!(
                "Variable \"${name}\" of type \"{}\" used in position expecting type \"{expected}\".",
                variable.type_text
            );
            self.errors.push(error(message, value.pos));
        }
    }

    /// Collects the fields of `set`, written on type `scope`, for a value of object type
    /// `concrete` (the same, unless `scope` is an interface or union): fragments that apply to
    /// `concrete` are inlined, directives applied. Fields written on an abstract `scope` are
    /// checked against it here; the rest against `concrete` by `object_selection`.
    fn collect(
        &mut self,
        set: &'a Positioned<AstSet>,
        scope: &str,
        concrete: &str,
        spreads: &mut Vec<String>,
    ) -> Vec<Collected<'a>> {
        let mut out: Vec<Collected<'a>> = Vec::new();
        for item in &set.node.items {
            let Some(defer) = self.included(item.node.directives(), !matches!(item.node, Selection::Field(_))) else {
                continue;
            };
            let outer = self.deferring;
            if let Some(label) = defer {
                self.deferring = Some(self.defers.len());
                self.defers.push(label);
            }
            match &item.node {
                Selection::Field(field) => {
                    if scope != concrete && !self.on_abstract(scope, &field.node.name) {
                        self.deferring = outer;
                        continue;
                    }
                    let key = field.node.response_key().node.to_string();
                    let deferring = self.deferring;
                    match out.iter_mut().find(|c| c.response_key == key) {
                        Some(existing) if existing.name.node != field.node.name.node => {
                            let message = format!(
                                "Fields \"{key}\" conflict because \"{}\" and \"{}\" are different fields.",
                                existing.name.node, field.node.name.node
                            );
                            self.errors.push(error(message, field.pos));
                        }
                        Some(existing) => {
                            existing.sets.push(&field.node.selection_set);
                            existing.defer = existing.defer.and(deferring);
                        }
                        None => out.push(Collected {
                            response_key: key,
                            pos: field.pos,
                            name: &field.node.name,
                            arguments: &field.node.arguments,
                            sets: vec![&field.node.selection_set],
                            defer: deferring,
                        }),
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let condition = fragment.node.type_condition.as_ref().map_or(scope, |c| c.node.on.node.as_str());
                    if !self.fragment_applies(None, condition, scope, concrete, fragment.pos) {
                        self.deferring = outer;
                        continue;
                    }
                    let inner = self.collect(&fragment.node.selection_set, condition, concrete, spreads);
                    merge(&mut out, inner, &mut self.errors);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.to_string();
                    let document = self.document;
                    let Some(fragment) = document.fragments.get(spread.node.fragment_name.node.as_str()) else {
                        self.errors.push(error(format!("Unknown fragment \"{name}\"."), spread.pos));
                        self.deferring = outer;
                        continue;
                    };
                    if spreads.contains(&name) {
                        self.errors
                            .push(error(format!("Cannot spread fragment \"{name}\" within itself."), spread.pos));
                        self.deferring = outer;
                        continue;
                    }
                    let condition = fragment.node.type_condition.node.on.node.as_str();
                    if !self.fragment_applies(Some(&name), condition, scope, concrete, spread.pos) {
                        self.deferring = outer;
                        continue;
                    }
                    spreads.push(name);
                    let inner = self.collect(&fragment.node.selection_set, condition, concrete, spreads);
                    spreads.pop();
                    merge(&mut out, inner, &mut self.errors);
                }
            }
            self.deferring = outer;
        }
        out
    }

    /// Whether a fragment on `condition` (named `fragment`, for spreads), written where a
    /// `scope` is expected, applies to a value of object type `concrete`. A condition that is
    /// no composite type, or that no value of `scope` can have, is an error (spec 5.5.1.2,
    /// 5.5.1.3, 5.5.2.3).
    fn fragment_applies(
        &mut self,
        fragment: Option<&str>,
        condition: &str,
        scope: &str,
        concrete: &str,
        pos: Pos,
    ) -> bool {
        if condition == scope || condition == concrete {
            return true;
        }
        let schema = self.schema;
        let named = fragment.map_or_else(|| "Fragment".to_owned(), |name| format!("Fragment \"{name}\""));
        let builtin = crate::schema::is_builtin_scalar(condition);
        if !schema.types.contains_key(condition) && !is_root_name(condition) && !builtin {
            self.errors.push(error(format!("Unknown type \"{condition}\"."), pos));
            return false;
        }
        if !schema.is_composite(condition) && !is_root_name(condition) {
            self.errors.push(error(format!("{named} cannot condition on non composite type \"{condition}\"."), pos));
            return false;
        }
        let possible = schema.possible_types(condition);
        if !possible.iter().any(|t| schema.possible_types(scope).contains(t)) {
            let message = format!(
                "{named} cannot be spread here as objects of type \"{scope}\" can never be of type \"{condition}\"."
            );
            self.errors.push(error(message, pos));
            return false;
        }
        possible.iter().any(|t| t == concrete)
    }

    /// Whether field `name` may be selected on abstract type `scope`: `__typename`, or a field
    /// of the interface (a union has no fields of its own). Errors name the field otherwise.
    fn on_abstract(&mut self, scope: &str, name: &Positioned<Name>) -> bool {
        let schema = self.schema;
        if name.node == "__typename" || schema.object_field(scope, &name.node).is_some() {
            return true;
        }
        let message = match schema.types.get(scope) {
            Some(TypeDef::Union { .. }) => format!(
                "Cannot query field \"{}\" on type \"{scope}\". Did you mean to use an inline fragment on a member type?",
                name.node
            ),
            _ => format!("Cannot query field \"{}\" on type \"{scope}\".", name.node),
        };
        self.errors.push(error(message, name.pos));
        false
    }

    /// `@skip(if:)` and `@include(if:)`, and on fragments `@defer(label:, if:)`; other
    /// directives are refused. None when the selection is skipped; else whether it is deferred
    /// (and its label).
    fn included(
        &mut self,
        directives: &[Positioned<async_graphql_parser::types::Directive>],
        on_fragment: bool,
    ) -> Option<Option<Option<String>>> {
        let mut keep = true;
        let mut deferred = None;
        for directive in directives {
            let name = directive.node.name.node.as_str();
            if name == "defer" {
                if !on_fragment {
                    self.errors.push(error("Directive \"@defer\" may not be used on FIELD.", directive.pos));
                    continue;
                }
                let condition = match directive.node.get_argument("if").map(|v| &v.node) {
                    None => true,
                    Some(Value::Boolean(b)) => *b,
                    Some(Value::Variable(variable)) => match self.variables.get(variable.as_str()) {
                        Some(serde_json::Value::Bool(b)) => *b,
                        Some(_) => true,
                        None => {
                            self.errors.push(error(format!("Variable \"${variable}\" is not defined."), directive.pos));
                            true
                        }
                    },
                    Some(_) => {
                        self.errors
                            .push(error("Directive \"@defer\" argument \"if\" must be a Boolean.", directive.pos));
                        true
                    }
                };
                let label = match directive.node.get_argument("label").map(|v| &v.node) {
                    None => None,
                    Some(Value::String(label)) => Some(label.clone()),
                    Some(_) => {
                        let message = "Directive \"@defer\" argument \"label\" must be a literal String.";
                        self.errors.push(error(message, directive.pos));
                        None
                    }
                };
                if condition {
                    deferred = Some(label);
                }
                continue;
            }
            if name != "skip" && name != "include" {
                self.errors.push(error(format!("Unknown directive \"@{name}\"."), directive.pos));
                continue;
            }
            let condition = match directive.node.get_argument("if").map(|v| &v.node) {
                Some(Value::Boolean(b)) => Some(*b),
                Some(Value::Variable(variable)) => match self.variables.get(variable.as_str()) {
                    Some(serde_json::Value::Bool(b)) => Some(*b),
                    // A declared variable without a usable value is the variables' error,
                    // reported when they are bound; shape as if included.
                    Some(_) => continue,
                    None => {
                        self.errors.push(error(format!("Variable \"${variable}\" is not defined."), directive.pos));
                        continue;
                    }
                },
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
        keep.then_some(deferred)
    }

    /// A field's arguments as written; unknown names, and required declared arguments left
    /// out, are errors.
    fn field_arguments(
        &mut self,
        field_name: &str,
        declared: &[InputField],
        arguments: &[(Positioned<Name>, Positioned<Value>)],
        pos: Pos,
    ) -> Vec<(String, Value)> {
        let mut out = Vec::with_capacity(arguments.len());
        for (name, value) in arguments {
            if let Some(argument) = declared.iter().find(|a| a.name == name.node.as_str()) {
                self.check_variable_usage(value, argument);
                out.push((name.node.to_string(), value.node.clone()));
            } else {
                let message = format!("Unknown argument \"{}\" on field \"{field_name}\".", name.node);
                self.errors.push(error(message, name.pos));
            }
        }
        for argument in declared {
            let required = argument.ty.non_null && matches!(argument.source, InputSource::Declared(None));
            if required && !arguments.iter().any(|(name, _)| name.node == argument.name.as_str()) {
                let message = format!(
                    "Field \"{field_name}\" argument \"{}\" of type \"{}!\" is required, but it was not provided.",
                    argument.name, argument.ty.name
                );
                self.errors.push(error(message, pos));
            }
        }
        out
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
            Some(TypeDef::Object { .. } | TypeDef::Interface { .. } | TypeDef::Union { .. }) if !has_selection => {
                let message = format!(
                    "Field \"{}\" of type \"{type_name}\" must have a selection of subfields.",
                    field.name.node
                );
                self.errors.push(error(message, field.name.pos));
                SelectionSet::default()
            }
            Some(TypeDef::Object { fields, .. }) => {
                let collected = self.collect_for(field, type_name, type_name);
                self.object_selection(type_name, fields, collected)
            }
            Some(TypeDef::Interface { .. } | TypeDef::Union { .. }) => {
                self.check_merging(field, type_name);
                let mut by_type = Vec::new();
                for concrete in schema.possible_types(type_name) {
                    let Some(TypeDef::Object { fields, .. }) = schema.types.get(concrete) else { continue };
                    let collected = self.collect_for(field, type_name, concrete);
                    by_type.push((concrete.clone(), self.object_selection(concrete, fields, collected)));
                }
                SelectionSet { fields: vec![crate::operation::typename_selection()], by_type }
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

    /// Spec 5.3.2 (field selection merging) across the fragments of a selection on an
    /// interface or union: fields under one response key must be the same field, unless they
    /// are selected on two different object types (which no value can be at once), and must
    /// have the same response shape in any case.
    fn check_merging(&mut self, field: &Collected<'a>, type_name: &str) {
        let mut found = Vec::new();
        for set in &field.sets {
            self.keyed_fields(set, type_name, &mut found, &mut Vec::new());
        }
        let schema = self.schema;
        let is_object = |name: &str| matches!(schema.types.get(name), Some(TypeDef::Object { .. }));
        for (i, one) in found.iter().enumerate() {
            for other in &found[i + 1..] {
                if one.key != other.key {
                    continue;
                }
                let exclusive = one.scope != other.scope && is_object(&one.scope) && is_object(&other.scope);
                let together =
                    schema.possible_types(&one.scope).iter().any(|t| schema.possible_types(&other.scope).contains(t));
                if one.name != other.name && !exclusive {
                    // Fields that apply to one object type together are compared as they merge.
                    if !together {
                        let message = format!(
                            "Fields \"{}\" conflict because \"{}\" and \"{}\" are different fields.",
                            one.key, one.name, other.name
                        );
                        self.errors.push(error(message, other.pos));
                    }
                    continue;
                }
                if let Some(reason) = self.shape_conflict(one, other, 0) {
                    self.errors.push(error(format!("Fields \"{}\" conflict because {reason}.", one.key), other.pos));
                }
            }
        }
    }

    /// SameResponseShape (spec 5.3.2): why two fields under one response key cannot share a
    /// shape — different list or non-null wrappers, different leaf types, or a conflict among
    /// their subfields — or None when they can.
    fn shape_conflict(&self, one: &Keyed<'a>, other: &Keyed<'a>, depth: usize) -> Option<String> {
        let schema = self.schema;
        let type_of = |keyed: &Keyed<'a>| match keyed.name.as_str() {
            "__typename" => Some(TypeRef::named("String", true)),
            name => schema.object_field(&keyed.scope, name).map(|f| f.ty.clone()),
        };
        let (a, b) = (type_of(one)?, type_of(other)?);
        let leaf = |ty: &TypeRef| !schema.is_composite(&ty.name);
        let wrappers = |ty: &TypeRef| (ty.list, ty.non_null, ty.item_non_null);
        if wrappers(&a) != wrappers(&b) || ((leaf(&a) || leaf(&b)) && a.name != b.name) {
            return Some(format!("they return conflicting types \"{a}\" and \"{b}\""));
        }
        // Composite on both sides: their subfields under one key must share a shape too (the
        // document's own depth limit bounds this; the guard keeps a fragment cycle finite).
        if leaf(&a) || depth > 64 {
            return None;
        }
        let (mut left, mut right) = (Vec::new(), Vec::new());
        if let Some(set) = one.set {
            self.keyed_fields(set, &a.name, &mut left, &mut Vec::new());
        }
        if let Some(set) = other.set {
            self.keyed_fields(set, &b.name, &mut right, &mut Vec::new());
        }
        for sub in &left {
            for sub_other in right.iter().filter(|r| r.key == sub.key) {
                if let Some(reason) = self.shape_conflict(sub, sub_other, depth + 1) {
                    return Some(format!("subfields \"{}\" conflict because {reason}", sub.key));
                }
            }
        }
        None
    }

    /// Every field of `set` (on `scope`) and of the fragments in it, keyed by response key.
    fn keyed_fields(
        &self,
        set: &'a Positioned<AstSet>,
        scope: &str,
        out: &mut Vec<Keyed<'a>>,
        spreads: &mut Vec<String>,
    ) {
        for item in &set.node.items {
            match &item.node {
                Selection::Field(field) => out.push(Keyed {
                    key: field.node.response_key().node.to_string(),
                    name: field.node.name.node.to_string(),
                    scope: scope.to_owned(),
                    pos: field.pos,
                    set: (!field.node.selection_set.node.items.is_empty()).then_some(&field.node.selection_set),
                }),
                Selection::InlineFragment(fragment) => {
                    let condition = fragment.node.type_condition.as_ref().map_or(scope, |c| c.node.on.node.as_str());
                    self.keyed_fields(&fragment.node.selection_set, condition, out, spreads);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let Some(fragment) = self.document.fragments.get(name) else { continue };
                    if spreads.iter().any(|s| s == name) {
                        continue;
                    }
                    spreads.push(name.to_owned());
                    let condition = fragment.node.type_condition.node.on.node.as_str();
                    self.keyed_fields(&fragment.node.selection_set, condition, out, spreads);
                    spreads.pop();
                }
            }
        }
    }

    /// The fields selected under `field` (of type `scope`) for a value of object type
    /// `concrete`, merged by response key; deferred with the field when it is.
    fn collect_for(&mut self, field: &Collected<'a>, scope: &str, concrete: &str) -> Vec<Collected<'a>> {
        // What is selected under a deferred field is deferred with it.
        let outer = self.deferring;
        self.deferring = field.defer;
        let mut collected = Vec::new();
        for set in &field.sets {
            let inner = self.collect(set, scope, concrete, &mut Vec::new());
            merge(&mut collected, inner, &mut self.errors);
        }
        self.deferring = outer;
        collected
    }

    /// The normalised selection of `collected` fields on object type `type_name`.
    fn object_selection(
        &mut self,
        type_name: &str,
        fields: &'a [crate::schema::ObjectField],
        collected: Vec<Collected<'a>>,
    ) -> SelectionSet {
        let mut out = SelectionSet::default();
        let mut keys: Vec<String> = Vec::new();
        for child in collected {
            if child.name.node == "__typename" {
                out.fields.push(FieldSelection {
                    response_key: child.response_key,
                    field_name: "__typename".into(),
                    children: SelectionSet::default(),
                    arguments: Vec::new(),
                    defer: child.defer,
                    forbidden: None,
                });
                continue;
            }
            let Some(definition) = fields.iter().find(|f| f.name == child.name.node.as_str()) else {
                let message = format!("Cannot query field \"{}\" on type \"{type_name}\".", child.name.node);
                self.errors.push(error(message, child.name.pos));
                continue;
            };
            let field_path = format!("{type_name}.{}", child.name.node);
            let arguments = self.field_arguments(&field_path, &definition.arguments, child.arguments, child.pos);
            if !definition.arguments.is_empty() {
                self.nested_arguments = true;
            }
            if let Some(binding) = definition.binding() {
                keys.extend(binding.parent_fields.iter().cloned());
            }
            let children = self.selection_of(&definition.ty.name, &child);
            out.fields.push(FieldSelection {
                response_key: child.response_key,
                field_name: definition.name.clone(),
                children,
                arguments: arguments.iter().map(|(n, v)| (n.clone(), deferred_json(v))).collect(),
                defer: child.defer,
                forbidden: None,
            });
        }
        // The key fields stitched fields read, under hidden keys (removed from the answer).
        for key in keys {
            let response_key = hidden_key(&key);
            if !out.fields.iter().any(|f| f.response_key == response_key) {
                out.fields.push(FieldSelection {
                    response_key,
                    field_name: key,
                    children: SelectionSet::default(),
                    arguments: Vec::new(),
                    defer: None,
                    forbidden: None,
                });
            }
        }
        out
    }
}

impl<'a> Validator<'a> {
    /// `__type(name: String!)`'s name.
    fn type_argument(&mut self, field: &Collected<'a>) -> Option<Value> {
        let value = field.arguments.iter().find(|(n, _)| n.node == "name").map(|(_, v)| &v.node);
        match value {
            Some(Value::Variable(name)) if !self.declared.iter().any(|d| d.name == name.as_str()) => {
                self.errors.push(error(format!("Variable \"${name}\" is not defined."), field.name.pos));
                None
            }
            Some(value @ (Value::String(_) | Value::Variable(_))) => Some(value.clone()),
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
            let inner = self.collect(set, type_name, type_name, &mut Vec::new());
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
            out.fields.push(FieldSelection {
                response_key: child.response_key,
                field_name: name,
                children,
                arguments,
                defer: None,
                forbidden: None,
            });
        }
        out
    }
}

/// Binds the arguments of stitched fields below a root field: variables substituted, values
/// coerced to their declared types, defaults applied.
fn bind_nested(
    set: &mut SelectionSet,
    type_name: &str,
    schema: &GraphqlSchema,
    variables: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    for (name, set) in &mut set.by_type {
        bind_nested(set, name, schema, variables)?;
    }
    for field in &mut set.fields {
        let Some(definition) = schema.object_field(type_name, &field.field_name) else { continue };
        if definition.binding().is_some() || matches!(definition.source, FieldSource::Remote) {
            let given: Vec<(String, serde_json::Value)> =
                field.arguments.iter().map(|(name, value)| (name.clone(), bind_deferred(value, variables))).collect();
            let bound = declared_arguments(&given, &definition.arguments, schema)
                .map_err(|e| format!("{type_name}.{}: {e}", field.field_name))?;
            field.arguments = bound.into_iter().collect();
        }
        bind_nested(&mut field.children, &definition.ty.name, schema, variables)?;
    }
    Ok(())
}

/// A variable's type as a reference, when it has at most one list level.
fn type_ref(ty: &async_graphql_parser::types::Type) -> Option<TypeRef> {
    use async_graphql_parser::types::BaseType;
    match &ty.base {
        BaseType::Named(name) => {
            Some(TypeRef { name: name.to_string(), list: false, non_null: !ty.nullable, item_non_null: false })
        }
        BaseType::List(inner) => match &inner.base {
            BaseType::Named(name) => Some(TypeRef {
                name: name.to_string(),
                list: true,
                non_null: !ty.nullable,
                item_non_null: !inner.nullable,
            }),
            BaseType::List(_) => None,
        },
    }
}

/// The named type inside `[T!]!` text.
fn base_name(type_text: &str) -> &str {
    type_text.trim_matches(|c| matches!(c, '[' | ']' | '!'))
}

fn selection_cost(schema: &GraphqlSchema, type_name: &str, selection: &SelectionSet, list_size: u64) -> u64 {
    if !selection.by_type.is_empty() {
        // An interface's or union's value has one object type: the costliest counts.
        return selection
            .by_type
            .iter()
            .map(|(name, set)| selection_cost(schema, name, set, list_size))
            .max()
            .unwrap_or(0);
    }
    let Some(TypeDef::Object { fields, .. }) = schema.types.get(type_name) else { return 0 };
    selection.fields.iter().fold(0u64, |total, selected| {
        let Some(definition) = fields.iter().find(|f| f.name == selected.field_name) else {
            return total.saturating_add(1);
        };
        let below = selection_cost(schema, &definition.ty.name, &selected.children, list_size);
        let each = 1u64.saturating_add(below);
        let cost = if definition.ty.list { each.saturating_mul(list_size) } else { each };
        total.saturating_add(cost)
    })
}

/// The variables a value refers to.
fn variables_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Variable(name) => out.push(name.to_string()),
        Value::List(items) => items.iter().for_each(|v| variables_in(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| variables_in(v, out)),
        _ => {}
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
            Some(existing) => {
                existing.sets.extend(field.sets);
                existing.defer = existing.defer.and(field.defer);
            }
            None => out.push(field),
        }
    }
}

/// The root operation types' names, which fragments may name though they are not in the
/// schema's type map.
fn is_root_name(name: &str) -> bool {
    matches!(name, "Query" | "Mutation" | "Subscription")
}
