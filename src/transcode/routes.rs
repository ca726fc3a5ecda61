//! Building the REST route table from descriptors: each method's google.api.http bindings
//! (primary and additional), then `POST /{package.Service}/{Method}` for every method unless an
//! annotated route already answers that path. Every binding is validated against the request
//! and response messages; conflicts and routes that would shadow the fixed endpoints are
//! problems that name both sides.

use std::sync::Arc;

use http::Method;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};

use super::json_wire::JsonCodec;
use super::route_table::{RouteEntry, RouteTable};
use super::template::PathTemplate;
use crate::config::Problem;
use crate::registry::{CallKind, HttpBinding, http_bindings};

/// The gateway's fixed endpoints, which REST routes may not shadow.
pub const FIXED_ENDPOINTS: &[&str] = &["/graphql", "/openapi.json"];

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOrigin {
    /// A google.api.http annotation in the protos.
    Annotation,
    /// The default `POST /{package.Service}/{Method}` route.
    Default,
}

/// Which part of the request message the HTTP body fills.
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body: everything comes from the path and the query string.
    None,
    /// `body: "*"`: every field not bound by the path.
    Whole,
    /// `body: "field"`: that top-level field.
    Field(FieldDescriptor),
}

/// What a REST route leads to.
#[derive(Debug, Clone)]
pub struct RestRoute {
    /// The gRPC method it calls.
    pub method: MethodDescriptor,
    /// The body mapping.
    pub body: BodyRule,
    /// `response_body`: the response field sent as the HTTP body, if not the whole message.
    pub response_body: Option<FieldDescriptor>,
    /// For each template variable, the field path it binds.
    pub path_fields: Vec<Vec<FieldDescriptor>>,
    /// Where the route came from.
    pub origin: RouteOrigin,
    /// The direct JSON → protobuf transcoder for the method's request type.
    pub input_json: Arc<JsonCodec>,
    /// The direct protobuf → JSON writer for its response type.
    pub output_json: Arc<JsonCodec>,
}

impl RestRoute {
    /// True when the body target is a `google.api.HttpBody`: the raw body is passed through.
    pub fn takes_raw_body(&self) -> bool {
        let target = match &self.body {
            BodyRule::None => return false,
            BodyRule::Whole => Some(self.method.input()),
            BodyRule::Field(field) => match field.kind() {
                Kind::Message(message) => Some(message),
                _ => None,
            },
        };
        target.is_some_and(|m| m.full_name() == super::binding::HTTP_BODY)
    }

    /// The call kind of the route's method.
    pub fn call_kind(&self) -> CallKind {
        CallKind::of(&self.method)
    }
}

/// The REST routes of a snapshot.
pub type RestRoutes = RouteTable<RestRoute>;

/// Bindings from an HTTP rules file, by method full name; they replace the annotations.
pub type RuleOverrides = std::collections::BTreeMap<String, Vec<HttpBinding>>;

/// Builds the routes of every service in `services` (full names), resolving them in `pool`;
/// `overrides` replace the annotated bindings of the methods they name.
pub fn build_routes(
    pool: &DescriptorPool,
    services: &[String],
    overrides: &RuleOverrides,
    mounts: &std::collections::BTreeMap<String, String>,
) -> (RestRoutes, Vec<Problem>) {
    let mut table = RestRoutes::default();
    let mut problems = Vec::new();
    let methods: Vec<MethodDescriptor> = services
        .iter()
        .filter_map(|name| pool.get_service_by_name(name))
        .flat_map(|service| service.methods().collect::<Vec<_>>())
        .collect();
    for selector in overrides.keys() {
        if !methods.iter().any(|m| m.full_name() == selector) {
            problems.push(Problem::error(
                format!("http rules selector {selector}"),
                "matches no registered method (write package.Service.Method)",
            ));
        }
    }
    for method in &methods {
        let mut bindings = overrides.get(method.full_name()).cloned().unwrap_or_else(|| http_bindings(method));
        if let Some(prefix) = mounts.get(method.parent_service().full_name()) {
            for binding in &mut bindings {
                binding.path = format!("{prefix}{}", binding.path);
            }
        }
        for binding in bindings {
            match route_from_binding(method, &binding) {
                Ok((http_method, template, route)) => insert(&mut table, http_method, template, route, &mut problems),
                Err(message) => problems.push(Problem::error(
                    format!("{} {} ({})", binding.method, binding.path, method.full_name()),
                    message,
                )),
            }
        }
    }
    for method in &methods {
        let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
        if table.find(&Method::POST, &path).is_ok() {
            continue;
        }
        let Ok(template) = PathTemplate::parse(&path) else {
            problems.push(Problem::error(format!("POST {path}"), "the default route's path is not a valid template"));
            continue;
        };
        let route = RestRoute {
            method: method.clone(),
            body: BodyRule::Whole,
            response_body: None,
            path_fields: Vec::new(),
            origin: RouteOrigin::Default,
            input_json: Arc::new(JsonCodec::new(method.input())),
            output_json: Arc::new(JsonCodec::new(method.output())),
        };
        insert(&mut table, Method::POST, template, route, &mut problems);
    }
    for fixed in FIXED_ENDPOINTS {
        for http_method in [Method::GET, Method::POST] {
            if let Ok(found) = table.find(&http_method, fixed) {
                problems.push(Problem::error(
                    format!(
                        "{} {} ({})",
                        found.route.method,
                        found.route.template,
                        found.route.value.method.full_name()
                    ),
                    format!("would shadow the fixed endpoint {fixed}; change the route's path"),
                ));
            }
        }
    }
    (table, problems)
}

fn insert(
    table: &mut RestRoutes,
    http_method: Method,
    template: PathTemplate,
    route: RestRoute,
    problems: &mut Vec<Problem>,
) {
    let shown = format!("{http_method} {template}");
    let grpc = route.method.full_name().to_owned();
    if let Err(conflict) = table.insert(http_method, template, route) {
        let existing: &RouteEntry<RestRoute> = table.route(conflict.existing);
        problems.push(Problem::error(
            format!("{shown} ({grpc})"),
            format!(
                "conflicts with {} {} ({}): same method and path shape",
                existing.method,
                existing.template,
                existing.value.method.full_name()
            ),
        ));
    }
}

fn route_from_binding(
    method: &MethodDescriptor,
    binding: &HttpBinding,
) -> Result<(Method, PathTemplate, RestRoute), String> {
    let http_method = Method::from_bytes(binding.method.as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", binding.method))?;
    let template = PathTemplate::parse(&binding.path).map_err(|e| e.to_string())?;
    let input = method.input();
    let mut path_fields = Vec::new();
    for variable in &template.variables {
        path_fields.push(resolve_path_field(&input, &variable.field_path)?);
    }
    let body = match binding.body.as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        name => BodyRule::Field(
            input
                .get_field_by_name(name)
                .ok_or_else(|| format!("body `{name}` is not a field of {}", input.full_name()))?,
        ),
    };
    if http_method == Method::GET && !matches!(body, BodyRule::None) {
        return Err("a GET binding cannot have a body".into());
    }
    if let BodyRule::Field(field) = &body
        && path_fields.iter().any(|path| path.len() == 1 && path[0].number() == field.number())
    {
        return Err(format!("field `{}` is bound by both the path and the body", field.name()));
    }
    let response_body = match binding.response_body.as_str() {
        "" => None,
        name => Some(
            method
                .output()
                .get_field_by_name(name)
                .ok_or_else(|| format!("response_body `{name}` is not a field of {}", method.output().full_name()))?,
        ),
    };
    let input_json = Arc::new(JsonCodec::new(method.input()));
    let output_json = Arc::new(JsonCodec::new(method.output()));
    let route = RestRoute {
        method: method.clone(),
        body,
        response_body,
        path_fields,
        origin: RouteOrigin::Annotation,
        input_json,
        output_json,
    };
    Ok((http_method, template, route))
}

/// Resolves `a.b.c` through singular message fields to a field a path segment can fill.
fn resolve_path_field(message: &MessageDescriptor, path: &[String]) -> Result<Vec<FieldDescriptor>, String> {
    let mut current = message.clone();
    let mut fields = Vec::with_capacity(path.len());
    for (i, name) in path.iter().enumerate() {
        let field = current.get_field_by_name(name).ok_or_else(|| {
            format!("path variable `{}`: `{name}` is not a field of {}", path.join("."), current.full_name())
        })?;
        if field.is_list() || field.is_map() {
            return Err(format!("path variable `{}`: `{name}` is repeated", path.join(".")));
        }
        let last = i + 1 == path.len();
        match field.kind() {
            Kind::Message(inner) if !last => current = inner,
            Kind::Message(inner) if is_string_like_wkt(inner.full_name()) => {}
            Kind::Message(inner) => {
                return Err(format!(
                    "path variable `{}` binds message {}; bind a scalar field",
                    path.join("."),
                    inner.full_name()
                ));
            }
            _ if !last => return Err(format!("path variable `{}`: `{name}` is not a message", path.join("."))),
            _ => {}
        }
        fields.push(field);
    }
    Ok(fields)
}

/// Well-known types whose JSON form is a string or number, so a path segment can fill them.
pub fn is_string_like_wkt(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.BoolValue"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registration, merge_registrations};

    fn pool_from(source: &str) -> (DescriptorPool, Vec<String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.proto"), source).expect("write");
        let registration: Registration =
            crate::registry::compile_sources(&[dir.path().join("t.proto")], &[dir.path().to_owned()], Some("t"))
                .expect("compiles");
        let services = registration.service_names().collect();
        (merge_registrations(vec![registration]).expect("merges").pool, services)
    }

    const HEADER: &str = "syntax = \"proto3\";\npackage t;\nimport \"google/api/annotations.proto\";\n\
        message Req { string name = 1; Inner inner = 2; repeated string tags = 3; string other = 4; }\n\
        message Inner { string id = 1; }\nmessage Res { string name = 1; Inner inner = 2; }\n";

    fn problems_of(rpcs: &str) -> Vec<String> {
        let (pool, services) = pool_from(&format!("{HEADER}service S {{\n{rpcs}\n}}\n"));
        build_routes(&pool, &services, &RuleOverrides::new(), &Default::default())
            .1
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn valid_bindings_build_routes_and_default_routes() {
        let (pool, services) = pool_from(&format!(
            "{HEADER}service S {{\n\
             rpc Get(Req) returns (Res) {{ option (google.api.http) = {{ get: \"/v1/{{name=things/*}}\" \
               additional_bindings {{ get: \"/v1/{{inner.id}}/x\" }} }}; }}\n\
             rpc Update(Req) returns (Res) {{ option (google.api.http) = {{ patch: \"/v1/{{name=things/*}}\" body: \"inner\" response_body: \"inner\" }}; }}\n\
             rpc Nested(Req) returns (Res) {{ option (google.api.http) = {{ put: \"/v1/{{inner.id}}\" body: \"inner\" }}; }}\n\
             rpc Plain(Req) returns (Res);\n}}\n"
        ));
        let (table, problems) = build_routes(&pool, &services, &RuleOverrides::new(), &Default::default());
        assert!(problems.is_empty(), "{problems:?}");
        let shown: Vec<String> = table.routes().iter().map(|r| format!("{} {}", r.method, r.template)).collect();
        assert_eq!(
            shown,
            [
                "GET /v1/{name=things/*}",
                "GET /v1/{inner.id}/x",
                "PATCH /v1/{name=things/*}",
                "PUT /v1/{inner.id}",
                "POST /t.S/Get",
                "POST /t.S/Update",
                "POST /t.S/Nested",
                "POST /t.S/Plain"
            ]
        );
        let found = table.find(&Method::GET, "/v1/abc/x").expect("matches");
        assert_eq!(found.route.value.path_fields[0].iter().map(|f| f.name()).collect::<Vec<_>>(), ["inner", "id"]);
    }

    #[test]
    fn invalid_bindings_are_problems_naming_the_method() {
        let table = [
            (
                "rpc A(Req) returns (Res) { option (google.api.http) = { get: \"/v1/{nope}\" }; }",
                "`nope` is not a field of t.Req",
            ),
            ("rpc A(Req) returns (Res) { option (google.api.http) = { get: \"/v1/{tags}\" }; }", "`tags` is repeated"),
            (
                "rpc A(Req) returns (Res) { option (google.api.http) = { get: \"/v1/{inner}\" }; }",
                "binds message t.Inner",
            ),
            (
                "rpc A(Req) returns (Res) { option (google.api.http) = { get: \"/v1/x\" body: \"*\" }; }",
                "GET binding cannot have a body",
            ),
            (
                "rpc A(Req) returns (Res) { option (google.api.http) = { post: \"/v1/x\" body: \"missing\" }; }",
                "body `missing` is not a field",
            ),
            (
                "rpc A(Req) returns (Res) { option (google.api.http) = { post: \"/v1/x\" response_body: \"gone\" }; }",
                "response_body `gone`",
            ),
            (
                "rpc A(Req) returns (Res) { option (google.api.http) = { post: \"/v1/{name}\" body: \"name\" }; }",
                "bound by both the path and the body",
            ),
            ("rpc A(Req) returns (Res) { option (google.api.http) = { get: \"v1/x\" }; }", "starts with `/`"),
            (
                "rpc A(Req) returns (Res) { option (google.api.http) = { get: \"/{name=**}\" }; }",
                "would shadow the fixed endpoint /graphql",
            ),
        ];
        for (rpc, want) in table {
            let problems = problems_of(rpc);
            assert!(problems.iter().any(|p| p.contains(want) && p.contains("t.S.A")), "{rpc}\n{problems:#?}");
        }
    }

    #[test]
    fn conflicting_routes_name_both_methods() {
        let problems = problems_of(
            "rpc A(Req) returns (Res) { option (google.api.http) = { get: \"/v1/{name=x/*}\" }; }\n\
             rpc B(Req) returns (Res) { option (google.api.http) = { get: \"/v1/{other=x/*}\" }; }",
        );
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("t.S.B") && problems[0].contains("t.S.A"), "{problems:#?}");
    }

    #[test]
    fn an_annotated_route_wins_over_the_default_route() {
        let (pool, services) = pool_from(&format!(
            "{HEADER}service S {{\n\
             rpc A(Req) returns (Res) {{ option (google.api.http) = {{ post: \"/t.S/{{name}}\" body: \"*\" }}; }}\n}}\n"
        ));
        let (table, problems) = build_routes(&pool, &services, &RuleOverrides::new(), &Default::default());
        assert!(problems.is_empty(), "{problems:?}");
        let found = table.find(&Method::POST, "/t.S/A").expect("routes");
        assert_eq!(found.route.value.origin, RouteOrigin::Annotation);
        assert_eq!(table.len(), 1, "no default route was added for A");
    }
}
