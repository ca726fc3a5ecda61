//! Authorization: the rules of `[[authorization.rules]]` and of `(switchyard.v1.method).auth`
//! proto options, indexed when the snapshot is built by what they guard — gRPC methods, REST
//! routes, GraphQL fields — so a request looks its targets up instead of matching patterns.
//! A rule on a method also guards every GraphQL field that calls it (generated root fields and
//! `@grpc` bindings), so it holds whichever protocol reaches the method.

use std::sync::Arc;

use prost_reflect::{MethodDescriptor, ReflectMessage, Value};

use super::rules::{Denial, Requirement};
use super::targets::{Served, TargetIndex, Targets, method_option, method_path};
use crate::config::{AuthorizationConfig, ClaimRule, GraphqlDenied, Problem, RuleConfig};
use crate::operation::{Identity, SelectionSet, is_hidden_key};
use crate::schema::GraphqlSchema;

/// The snapshot's authorization rules, indexed by target.
#[derive(Debug, Default)]
pub struct PolicySet {
    requirements: Vec<Requirement>,
    targets: TargetIndex,
    graphql_denied: GraphqlDenied,
}

impl PolicySet {
    /// Compiles and indexes the rules of `config` and of the methods' proto options against
    /// what the snapshot serves. Errors refuse the snapshot; a pattern that matches nothing is
    /// a warning (a descriptor change may have removed its target).
    pub fn build(config: &AuthorizationConfig, served: &Served<'_>) -> (Self, Vec<Problem>) {
        let mut set = PolicySet { graphql_denied: config.graphql_denied, ..PolicySet::default() };
        let mut problems = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let at = |key: &str| format!("authorization.rules[{i}].{key}");
            let requirement = match Requirement::compile(rule) {
                Ok(requirement) => requirement,
                Err((key, why)) => {
                    problems.push(Problem::error(at(&key), why));
                    continue;
                }
            };
            let targets =
                Targets { methods: &rule.methods, routes: &rule.routes, fields: &rule.fields, types: &rule.types };
            if targets.is_empty() {
                problems.push(Problem::error(
                    at("methods"),
                    "the rule guards nothing: set methods, routes, fields or types",
                ));
                continue;
            }
            let index = set.requirements.len();
            set.requirements.push(requirement);
            set.targets.add(served, index, &targets, &at, &mut problems);
        }
        for method in served.methods() {
            let Some(rule) = option_rule(method) else { continue };
            match Requirement::compile(&rule) {
                Ok(requirement) => {
                    let index = set.requirements.len();
                    set.requirements.push(requirement);
                    set.targets.add_method(method.full_name().to_owned(), index);
                }
                Err((key, why)) => problems
                    .push(Problem::error(format!("{}: (switchyard.v1.method).auth.{key}", method.full_name()), why)),
            }
        }
        set.targets.fold_methods_into_fields(served.schema());
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

    /// Checks a call of `method` (REST, gRPC, WebSocket).
    pub fn check_method(&self, method: &MethodDescriptor, identity: Option<&Identity>) -> Result<(), Denial> {
        if self.is_empty() {
            return Ok(());
        }
        let rules = self.targets.method(method);
        if rules.is_empty() {
            return Ok(());
        }
        self.check_rules(rules, &method_path(method), identity)
    }

    /// Checks a REST call of route `index` (`name` as `switchyard routes` prints it).
    pub fn check_route(
        &self,
        index: usize,
        name: &dyn std::fmt::Display,
        identity: Option<&Identity>,
    ) -> Result<(), Denial> {
        self.check_rules(self.targets.route(index), name, identity)
    }

    /// Checks GraphQL field `type_name.field`.
    pub fn check_field(&self, type_name: &str, field: &str, identity: Option<&Identity>) -> Result<(), Denial> {
        let rules = self.targets.field(type_name, field);
        if rules.is_empty() {
            return Ok(());
        }
        self.check_rules(rules, &format_args!("{type_name}.{field}"), identity)
    }

    fn check_rules(
        &self,
        rules: &[usize],
        target: &dyn std::fmt::Display,
        identity: Option<&Identity>,
    ) -> Result<(), Denial> {
        for &rule in rules {
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
        if !self.targets.has_fields() {
            return 0;
        }
        let mut marked = 0;
        // An interface's or union's selection: each object type's fields, by that type's rules.
        for (name, set) in &mut selection.by_type {
            marked += self.mark_forbidden(schema, name, set, identity);
        }
        for field in &mut selection.fields {
            if is_hidden_key(&field.response_key) || field.field_name.starts_with("__") {
                continue;
            }
            // A rule on an interface's field holds for the field of every implementation.
            let checked = std::iter::once(type_name)
                .chain(schema.interfaces_of(type_name))
                .try_for_each(|owner| self.check_field(owner, &field.field_name, identity));
            if let Err(denial) = checked {
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

/// The rule `(switchyard.v1.method).auth` declares on `method`, as a config rule.
fn option_rule(method: &MethodDescriptor) -> Option<RuleConfig> {
    let auth = method_option(method, "auth")?;
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
        let routes = crate::transcode::routes::RestRoutes::default();
        let schema = GraphqlSchema::default();
        let served = Served::new(&registry.pool, &services, &routes, &schema);
        let (set, problems) = PolicySet::build(&AuthorizationConfig::default(), &served);
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
