//! What policy rules target, indexed once per snapshot: gRPC methods (`pkg.Service/Method`,
//! `pkg.Service/*`, `*`), REST routes (as `switchyard routes` prints them) and GraphQL fields
//! (`Type.field`, `Type.*`, or every field of a type). A rule on a method also targets the
//! GraphQL fields that call it, so it holds whichever protocol reaches the method. Authorization
//! rules and rate limits share this index.

use rustc_hash::FxHashMap as HashMap;

use prost_reflect::{DescriptorPool, MethodDescriptor};

use crate::config::Problem;
use crate::schema::{BoundCall, GraphqlSchema, Resolver, RootKind, TypeDef};
use crate::transcode::routes::RestRoutes;

/// The name rules and messages use for a method.
pub fn method_path(method: &MethodDescriptor) -> String {
    format!("{}/{}", method.parent_service().full_name(), method.name())
}

/// True if `pattern` — a route as `switchyard routes` prints it (`GET /v1/{name=shelves/*}`),
/// or a template alone for every verb — names the route `verb template`.
pub(crate) fn route_matches(pattern: &str, verb: &str, template: &str) -> bool {
    let (wanted_verb, wanted_template) = match pattern.trim().split_once(' ') {
        Some((verb, template)) => (Some(verb.trim()), template.trim()),
        None => (None, pattern.trim()),
    };
    wanted_template == template && wanted_verb.is_none_or(|v| v.eq_ignore_ascii_case(verb))
}

/// The message field `field` of `(switchyard.v1.method)` on `method`, when it is set.
pub(crate) fn method_option(method: &MethodDescriptor, field: &str) -> Option<prost_reflect::DynamicMessage> {
    use prost_reflect::{ReflectMessage, Value};
    let extension = method.parent_pool().get_extension_by_name("switchyard.v1.method")?;
    let options = method.options();
    if !options.has_extension(&extension) {
        return None;
    }
    let Value::Message(declared) = options.get_extension(&extension).into_owned() else { return None };
    let field = declared.descriptor().get_field_by_name(field)?;
    if !declared.has_field(&field) {
        return None;
    }
    match declared.get_field(&field).into_owned() {
        Value::Message(message) => Some(message),
        _ => None,
    }
}

/// What the snapshot serves, as rules see it.
pub struct Served<'a> {
    methods: Vec<MethodDescriptor>,
    route_names: Vec<(String, String)>,
    route_methods: Vec<MethodDescriptor>,
    schema: &'a GraphqlSchema,
}

impl<'a> Served<'a> {
    /// The methods of `services` in `pool`, the routes and the schema.
    pub fn new(pool: &DescriptorPool, services: &[String], routes: &RestRoutes, schema: &'a GraphqlSchema) -> Self {
        let methods = services
            .iter()
            .filter_map(|name| pool.get_service_by_name(name))
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .collect();
        let route_names =
            routes.routes().iter().map(|entry| (entry.method.to_string(), entry.template.to_string())).collect();
        let route_methods = routes.routes().iter().map(|entry| entry.value.method.clone()).collect();
        Served { methods, route_names, route_methods, schema }
    }

    /// The method of each route, by route index.
    pub fn route_methods(&self) -> impl Iterator<Item = &MethodDescriptor> {
        self.route_methods.iter()
    }

    /// Every served method.
    pub fn methods(&self) -> &[MethodDescriptor] {
        &self.methods
    }

    /// The GraphQL schema.
    pub fn schema(&self) -> &'a GraphqlSchema {
        self.schema
    }
}

/// A rule's target patterns.
pub(crate) struct Targets<'a> {
    /// Method patterns.
    pub(crate) methods: &'a [String],
    /// Route patterns.
    pub(crate) routes: &'a [String],
    /// Field patterns.
    pub(crate) fields: &'a [String],
    /// Type names.
    pub(crate) types: &'a [String],
}

impl Targets<'_> {
    /// True when it targets nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.routes.is_empty() && self.fields.is_empty() && self.types.is_empty()
    }
}

/// Rule numbers by target.
#[derive(Debug, Default)]
pub(crate) struct TargetIndex {
    /// `pkg.Service.Method` → rules.
    methods: HashMap<String, Vec<usize>>,
    /// Route index → rules.
    routes: HashMap<usize, Vec<usize>>,
    /// Type name → field name → rules.
    fields: HashMap<String, HashMap<String, Vec<usize>>>,
}

impl TargetIndex {
    /// Indexes rule `rule`'s `targets` against `served`. `at` names a key of the rule for
    /// problems: a malformed pattern is an error, one that matches nothing a warning.
    pub(crate) fn add(
        &mut self,
        served: &Served<'_>,
        rule: usize,
        targets: &Targets<'_>,
        at: &dyn Fn(&str) -> String,
        problems: &mut Vec<Problem>,
    ) {
        for (j, pattern) in targets.methods.iter().enumerate() {
            let matched: Vec<String> = served
                .methods
                .iter()
                .filter(|method| method_matches(pattern, &method_path(method)))
                .map(|method| method.full_name().to_owned())
                .collect();
            if matched.is_empty() {
                problems.push(Problem::warning(
                    at(&format!("methods[{j}]")),
                    format!("no registered method matches `{pattern}`"),
                ));
            }
            for full_name in matched {
                self.add_method(full_name, rule);
            }
        }
        for (j, pattern) in targets.routes.iter().enumerate() {
            let mut found = false;
            for (route, (route_verb, route_template)) in served.route_names.iter().enumerate() {
                if route_matches(pattern, route_verb, route_template) {
                    push_once(self.routes.entry(route).or_default(), rule);
                    found = true;
                }
            }
            if !found {
                problems.push(Problem::warning(
                    at(&format!("routes[{j}]")),
                    format!("no REST route is `{pattern}` (`switchyard routes` lists them)"),
                ));
            }
        }
        for (j, pattern) in targets.fields.iter().enumerate() {
            let Some((type_name, field)) = pattern.split_once('.') else {
                problems.push(Problem::error(
                    at(&format!("fields[{j}]")),
                    format!("`{pattern}` is not `Type.field` or `Type.*`"),
                ));
                continue;
            };
            let names = field_names(served.schema, type_name);
            let matched: Vec<&str> = names.iter().copied().filter(|name| field == "*" || *name == field).collect();
            if matched.is_empty() {
                problems
                    .push(Problem::warning(at(&format!("fields[{j}]")), format!("no GraphQL field is `{pattern}`")));
            }
            for name in matched {
                self.add_field(type_name, name, rule);
            }
        }
        for (j, wanted) in targets.types.iter().enumerate() {
            let typed = fields_of_type(served.schema, wanted);
            if typed.is_empty() {
                problems.push(Problem::warning(
                    at(&format!("types[{j}]")),
                    format!("no GraphQL field has the type `{wanted}`"),
                ));
            }
            for (parent, name) in typed {
                self.add_field(&parent, &name, rule);
            }
        }
    }

    /// Targets the method named `full_name` (`pkg.Service.Method`) with `rule`.
    pub(crate) fn add_method(&mut self, full_name: String, rule: usize) {
        push_once(self.methods.entry(full_name).or_default(), rule);
    }

    fn add_field(&mut self, type_name: &str, field: &str, rule: usize) {
        push_once(self.fields.entry(type_name.to_owned()).or_default().entry(field.to_owned()).or_default(), rule);
    }

    /// Makes every method's rules also target the GraphQL fields that call it (generated root
    /// fields and `@grpc` bindings). Call once, after every rule is added.
    pub(crate) fn fold_methods_into_fields(&mut self, schema: &GraphqlSchema) {
        if self.methods.is_empty() {
            return;
        }
        let mut targeted = Vec::new();
        for (kind, fields) in &schema.roots {
            for field in fields {
                let method = match &field.resolver {
                    Resolver::Method(method) => Some(method),
                    Resolver::Bound(binding) => match &binding.call {
                        BoundCall::Grpc { method, .. } => Some(method),
                        _ => None,
                    },
                };
                if let Some(rules) = method.and_then(|m| self.methods.get(m.full_name())) {
                    targeted.push((root_name(*kind).to_owned(), field.name.clone(), rules.clone()));
                }
            }
        }
        for (type_name, definition) in &schema.types {
            let TypeDef::Object { fields, .. } = definition else { continue };
            for field in fields {
                if let Some(BoundCall::Grpc { method, .. }) = field.binding().map(|b| &b.call)
                    && let Some(rules) = self.methods.get(method.full_name())
                {
                    targeted.push((type_name.clone(), field.name.clone(), rules.clone()));
                }
            }
        }
        for (type_name, field, rules) in targeted {
            for rule in rules {
                self.add_field(&type_name, &field, rule);
            }
        }
    }

    /// The rules targeting `method`.
    pub(crate) fn method(&self, method: &MethodDescriptor) -> &[usize] {
        self.methods.get(method.full_name()).map(Vec::as_slice).unwrap_or_default()
    }

    /// The rules targeting route `index`.
    pub(crate) fn route(&self, index: usize) -> &[usize] {
        self.routes.get(&index).map(Vec::as_slice).unwrap_or_default()
    }

    /// The rules targeting GraphQL field `type_name.field`.
    pub(crate) fn field(&self, type_name: &str, field: &str) -> &[usize] {
        self.fields.get(type_name).and_then(|fields| fields.get(field)).map(Vec::as_slice).unwrap_or_default()
    }

    /// True when some rule targets a GraphQL field.
    pub(crate) fn has_fields(&self) -> bool {
        !self.fields.is_empty()
    }
}

fn push_once(rules: &mut Vec<usize>, rule: usize) {
    if !rules.contains(&rule) {
        rules.push(rule);
    }
}

/// The GraphQL name of a root type.
pub fn root_name(kind: RootKind) -> &'static str {
    match kind {
        RootKind::Query => "Query",
        RootKind::Mutation => "Mutation",
        RootKind::Subscription => "Subscription",
    }
}

/// `*`, `pkg.Service/*` or an exact `pkg.Service/Method`.
fn method_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix("/*") {
        _ if pattern == "*" => true,
        Some(service) => path.strip_prefix(service).is_some_and(|rest| rest.starts_with('/')),
        None => pattern == path,
    }
}

/// The fields of object or root type `type_name`.
fn field_names<'a>(schema: &'a GraphqlSchema, type_name: &str) -> Vec<&'a str> {
    let root = match type_name {
        "Query" => Some(RootKind::Query),
        "Mutation" => Some(RootKind::Mutation),
        "Subscription" => Some(RootKind::Subscription),
        _ => None,
    };
    if let Some(kind) = root {
        return schema
            .roots
            .get(&kind)
            .map(|fields| fields.iter().map(|f| f.name.as_str()).collect())
            .unwrap_or_default();
    }
    match schema.types.get(type_name) {
        Some(TypeDef::Object { fields, .. }) => fields.iter().map(|f| f.name.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// Every (parent type, field) whose value is of type `wanted`.
fn fields_of_type(schema: &GraphqlSchema, wanted: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (kind, fields) in &schema.roots {
        for field in fields.iter().filter(|f| f.output.name == wanted) {
            found.push((root_name(*kind).to_owned(), field.name.clone()));
        }
    }
    for (type_name, definition) in &schema.types {
        let TypeDef::Object { fields, .. } = definition else { continue };
        for field in fields.iter().filter(|f| f.ty.name == wanted) {
            found.push((type_name.clone(), field.name.clone()));
        }
    }
    found
}
