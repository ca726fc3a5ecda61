//! Authorization: the rules of `[[authorization.rules]]` and of `(switchyard.v1.method).auth`
//! proto options, indexed when the snapshot is built by what they guard — gRPC methods, REST
//! routes, GraphQL fields — so a request looks its targets up instead of matching patterns.
//! A rule on a method also guards every GraphQL field that calls it (generated root fields and
//! `@grpc` bindings), so it holds whichever protocol reaches the method.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::{DescriptorPool, MethodDescriptor, ReflectMessage, Value};

use super::rules::{Denial, Requirement};
use crate::config::{AuthorizationConfig, ClaimRule, GraphqlDenied, Problem, RuleConfig};
use crate::operation::{Identity, SelectionSet, is_hidden_key};
use crate::schema::{BoundCall, GraphqlSchema, Resolver, RootKind, TypeDef};
use crate::transcode::routes::RestRoutes;

/// The snapshot's authorization rules, indexed by target.
#[derive(Debug, Default)]
pub struct PolicySet {
    requirements: Vec<Requirement>,
    /// `pkg.Service/Method` → rules.
    methods: HashMap<String, Vec<usize>>,
    /// Route index → rules.
    routes: HashMap<usize, Vec<usize>>,
    /// Type name → field name → rules (method rules included for fields that call a method).
    fields: HashMap<String, HashMap<String, Vec<usize>>>,
    graphql_denied: GraphqlDenied,
}

/// The name rules and messages use for a method.
pub fn method_path(method: &MethodDescriptor) -> String {
    format!("{}/{}", method.parent_service().full_name(), method.name())
}

impl PolicySet {
    /// Compiles and indexes the rules of `config` and of the methods' proto options against
    /// what the snapshot serves. Errors refuse the snapshot; a pattern that matches nothing is
    /// a warning (a descriptor change may have removed its target).
    pub fn build(
        config: &AuthorizationConfig,
        pool: &DescriptorPool,
        services: &[String],
        routes: &RestRoutes,
        schema: &GraphqlSchema,
    ) -> (Self, Vec<Problem>) {
        let mut set = PolicySet { graphql_denied: config.graphql_denied, ..PolicySet::default() };
        let mut problems = Vec::new();
        let methods: Vec<MethodDescriptor> = services
            .iter()
            .filter_map(|name| pool.get_service_by_name(name))
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .collect();
        let route_names: Vec<(String, String)> =
            routes.routes().iter().map(|entry| (entry.method.to_string(), entry.template.to_string())).collect();
        for (i, rule) in config.rules.iter().enumerate() {
            let at = |key: &str| format!("authorization.rules[{i}].{key}");
            let requirement = match Requirement::compile(rule) {
                Ok(requirement) => requirement,
                Err((key, why)) => {
                    problems.push(Problem::error(at(&key), why));
                    continue;
                }
            };
            if rule.methods.is_empty() && rule.routes.is_empty() && rule.fields.is_empty() && rule.types.is_empty() {
                problems.push(Problem::error(
                    at("methods"),
                    "the rule guards nothing: set methods, routes, fields or types",
                ));
                continue;
            }
            let index = set.requirements.len();
            set.requirements.push(requirement);
            for (j, pattern) in rule.methods.iter().enumerate() {
                let matched: Vec<String> =
                    methods.iter().map(method_path).filter(|path| method_matches(pattern, path)).collect();
                if matched.is_empty() {
                    problems.push(Problem::warning(
                        at(&format!("methods[{j}]")),
                        format!("no registered method matches `{pattern}`"),
                    ));
                }
                for path in matched {
                    set.methods.entry(path).or_default().push(index);
                }
            }
            for (j, pattern) in rule.routes.iter().enumerate() {
                let (verb, template) = match pattern.split_once(' ') {
                    Some((verb, template)) => (Some(verb.trim()), template.trim()),
                    None => (None, pattern.trim()),
                };
                let mut found = false;
                for (route, (route_verb, route_template)) in route_names.iter().enumerate() {
                    if route_template == template && verb.is_none_or(|v| v.eq_ignore_ascii_case(route_verb)) {
                        set.routes.entry(route).or_default().push(index);
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
            for (j, pattern) in rule.fields.iter().enumerate() {
                let Some((type_name, field)) = pattern.split_once('.') else {
                    problems.push(Problem::error(
                        at(&format!("fields[{j}]")),
                        format!("`{pattern}` is not `Type.field` or `Type.*`"),
                    ));
                    continue;
                };
                let names = field_names(schema, type_name);
                let matched: Vec<&str> = names.iter().copied().filter(|name| field == "*" || *name == field).collect();
                if matched.is_empty() {
                    problems.push(Problem::warning(
                        at(&format!("fields[{j}]")),
                        format!("no GraphQL field is `{pattern}`"),
                    ));
                }
                for name in matched {
                    set.guard_field(type_name, name, index);
                }
            }
            for (j, wanted) in rule.types.iter().enumerate() {
                let typed = fields_of_type(schema, wanted);
                if typed.is_empty() {
                    problems.push(Problem::warning(
                        at(&format!("types[{j}]")),
                        format!("no GraphQL field has the type `{wanted}`"),
                    ));
                }
                for (parent, name) in typed {
                    set.guard_field(&parent, &name, index);
                }
            }
        }
        for method in &methods {
            let Some(rule) = option_rule(method) else { continue };
            match Requirement::compile(&rule) {
                Ok(requirement) => {
                    let index = set.requirements.len();
                    set.requirements.push(requirement);
                    set.methods.entry(method_path(method)).or_default().push(index);
                }
                Err((key, why)) => problems
                    .push(Problem::error(format!("{}: (switchyard.v1.method).auth.{key}", method.full_name()), why)),
            }
        }
        set.guard_method_fields(schema);
        (set, problems)
    }

    /// True when no rule exists (every check passes without looking).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// What a GraphQL operation with denied fields gets.
    pub fn graphql_denied(&self) -> GraphqlDenied {
        self.graphql_denied
    }

    fn guard_field(&mut self, type_name: &str, field: &str, rule: usize) {
        let rules = self.fields.entry(type_name.to_owned()).or_default().entry(field.to_owned()).or_default();
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }

    /// Method rules also guard the GraphQL fields that call those methods.
    fn guard_method_fields(&mut self, schema: &GraphqlSchema) {
        let mut guarded = Vec::new();
        for (kind, fields) in &schema.roots {
            for field in fields {
                let method = match &field.resolver {
                    Resolver::Method(method) => Some(method),
                    Resolver::Bound(binding) => match &binding.call {
                        BoundCall::Grpc { method, .. } => Some(method),
                        _ => None,
                    },
                };
                if let Some(rules) = method.and_then(|m| self.methods.get(&method_path(m))) {
                    guarded.push((root_name(*kind).to_owned(), field.name.clone(), rules.clone()));
                }
            }
        }
        for (type_name, definition) in &schema.types {
            let TypeDef::Object { fields, .. } = definition else { continue };
            for field in fields {
                if let Some(BoundCall::Grpc { method, .. }) = field.binding().map(|b| &b.call)
                    && let Some(rules) = self.methods.get(&method_path(method))
                {
                    guarded.push((type_name.clone(), field.name.clone(), rules.clone()));
                }
            }
        }
        for (type_name, field, rules) in guarded {
            for rule in rules {
                self.guard_field(&type_name, &field, rule);
            }
        }
    }

    /// Checks a call of `method` (REST, gRPC, WebSocket).
    pub fn check_method(&self, method: &MethodDescriptor, identity: Option<&Identity>) -> Result<(), Denial> {
        if self.methods.is_empty() {
            return Ok(());
        }
        let path = method_path(method);
        self.check_rules(self.methods.get(&path), &path, identity)
    }

    /// Checks a REST call of route `index` (`name` as `switchyard routes` prints it).
    pub fn check_route(&self, index: usize, name: &str, identity: Option<&Identity>) -> Result<(), Denial> {
        self.check_rules(self.routes.get(&index), name, identity)
    }

    /// Checks GraphQL field `type_name.field`.
    pub fn check_field(&self, type_name: &str, field: &str, identity: Option<&Identity>) -> Result<(), Denial> {
        if self.fields.is_empty() {
            return Ok(());
        }
        let rules = self.fields.get(type_name).and_then(|fields| fields.get(field));
        if rules.is_none() {
            return Ok(());
        }
        self.check_rules(rules, &format!("{type_name}.{field}"), identity)
    }

    fn check_rules(&self, rules: Option<&Vec<usize>>, target: &str, identity: Option<&Identity>) -> Result<(), Denial> {
        for &rule in rules.map(Vec::as_slice).unwrap_or_default() {
            self.requirements[rule].check(target, identity)?;
        }
        Ok(())
    }

    /// Marks every field under `selection` (on `type_name`) that `identity` may not see, with
    /// why; returns the number marked. Hidden stitching keys are the gateway's, never checked.
    pub fn mark_forbidden(
        &self,
        schema: &GraphqlSchema,
        type_name: &str,
        selection: &mut SelectionSet,
        identity: Option<&Identity>,
    ) -> usize {
        if self.fields.is_empty() {
            return 0;
        }
        let mut marked = 0;
        let guarded = self.fields.get(type_name);
        for field in &mut selection.fields {
            if is_hidden_key(&field.response_key) || field.field_name.starts_with("__") {
                continue;
            }
            if let Some(rules) = guarded.and_then(|fields| fields.get(&field.field_name))
                && let Err(denial) =
                    self.check_rules(Some(rules), &format!("{type_name}.{}", field.field_name), identity)
            {
                field.forbidden = Some(Arc::from(denial.message));
                marked += 1;
                continue;
            }
            if !field.children.fields.is_empty()
                && let Some(definition) = schema.object_field(type_name, &field.field_name)
            {
                marked += self.mark_forbidden(schema, &definition.ty.name, &mut field.children, identity);
            }
        }
        marked
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

/// The rule `(switchyard.v1.method).auth` declares on `method`, as a config rule.
fn option_rule(method: &MethodDescriptor) -> Option<RuleConfig> {
    let extension = method.parent_pool().get_extension_by_name("switchyard.v1.method")?;
    let options = method.options();
    if !options.has_extension(&extension) {
        return None;
    }
    let Value::Message(declared) = options.get_extension(&extension).into_owned() else { return None };
    let field = declared.descriptor().get_field_by_name("auth")?;
    if !declared.has_field(&field) {
        return None;
    }
    let Value::Message(auth) = declared.get_field(&field).into_owned() else { return None };
    let strings = |name: &str| -> Vec<String> {
        match auth.get_field_by_name(name).as_deref() {
            Some(Value::List(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let mut rule = RuleConfig {
        authenticated: matches!(auth.get_field_by_name("authenticated").as_deref(), Some(Value::Bool(true))),
        scopes_any: strings("scopes_any"),
        scopes_all: strings("scopes_all"),
        ..RuleConfig::default()
    };
    if let Some(Value::List(claims)) = auth.get_field_by_name("claims").as_deref() {
        for claim in claims {
            let Value::Message(claim) = claim else { continue };
            let text = |name: &str| {
                let field = claim.descriptor().get_field_by_name(name)?;
                if !claim.has_field(&field) {
                    return None;
                }
                claim.get_field(&field).as_str().map(str::to_owned)
            };
            rule.claims.push(ClaimRule {
                claim: text("claim").unwrap_or_default(),
                equals: text("equals"),
                contains: text("contains"),
                matches: text("matches"),
            });
        }
    }
    Some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Identity;

    const PROTO: &str = r#"syntax = "proto3";
package lib.v1;
import "switchyard/options.proto";
message Req { string name = 1; }
message Res { string name = 1; }
service Lib {
  rpc Read(Req) returns (Res) { option (switchyard.v1.method).auth = { scopes_any: ["lib:read"] }; }
  rpc Write(Req) returns (Res) {
    option (switchyard.v1.method).auth = {
      authenticated: true
      claims: [{ claim: "tenant" equals: "acme" }, { claim: "email" matches: ".*@acme\\.test" }]
    };
  }
  rpc Bad(Req) returns (Res) { option (switchyard.v1.method).auth = { claims: [{ claim: "x" }] }; }
  rpc Open(Req) returns (Res);
}
"#;

    fn identity(scopes: &[&str], claims: serde_json::Value) -> Identity {
        let serde_json::Value::Object(claims) = claims else { panic!("object") };
        Identity {
            provider: "t".into(),
            subject: "ada".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            claims,
            expires_at: None,
        }
    }

    /// Rules declared next to the API in the protos apply like config rules; a malformed one
    /// refuses the snapshot naming the method.
    #[test]
    fn proto_options_declare_rules_on_methods() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("lib.proto"), PROTO).expect("write");
        let registration =
            crate::registry::compile_sources(&[dir.path().join("lib.proto")], &[dir.path().to_owned()], Some("lib"))
                .expect("compiles");
        let registry = crate::registry::merge_registrations(vec![registration]).expect("merges");
        let services = vec!["lib.v1.Lib".to_owned()];
        let (set, problems) = PolicySet::build(
            &AuthorizationConfig::default(),
            &registry.pool,
            &services,
            &RestRoutes::default(),
            &GraphqlSchema::default(),
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "lib.v1.Lib.Bad: (switchyard.v1.method).auth.claims[0]");
        assert_eq!(problems[0].message, "set exactly one of `equals`, `contains` and `matches`");
        let method = |name: &str| {
            registry
                .pool
                .get_service_by_name("lib.v1.Lib")
                .and_then(|s| s.methods().find(|m| m.name() == name))
                .expect("method")
        };
        let reader = identity(&["lib:read"], serde_json::json!({"tenant": "acme", "email": "ada@acme.test"}));
        let outsider = identity(&[], serde_json::json!({"tenant": "other", "email": "ada@acme.test"}));
        let cases = [
            ("Read", Some(&reader), None),
            ("Read", Some(&outsider), Some("lib.v1.Lib/Read requires the scope `lib:read`")),
            ("Read", None, Some("lib.v1.Lib/Read requires authentication")),
            ("Write", Some(&reader), None),
            ("Write", Some(&outsider), Some("lib.v1.Lib/Write requires the claim `tenant` to equal `acme`")),
            ("Open", None, None),
        ];
        for (name, who, expected) in cases {
            let got = set.check_method(&method(name), who).err().map(|d| d.message);
            assert_eq!(got.as_deref(), expected, "{name} as {:?}", who.map(|w| &w.claims));
        }
    }
}
