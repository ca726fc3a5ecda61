//! Reads a method's google.api.http rule (and its additional_bindings) from the descriptor
//! options, as plain data. The transcoder parses the templates; this only lists them.

use prost_reflect::{DynamicMessage, MethodDescriptor, Value};

/// One HTTP binding of a method, as written in its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpBinding {
    /// `GET`, `POST`, ... or a custom verb.
    pub method: String,
    /// The path template.
    pub path: String,
    /// The `body` field (`*`, a field name, or empty).
    pub body: String,
    /// The `response_body` field (empty for the whole message).
    pub response_body: String,
}

/// The method's google.api.http bindings, primary first.
pub fn http_bindings(method: &MethodDescriptor) -> Vec<HttpBinding> {
    let pool = method.parent_pool();
    let Some(extension) = pool.get_extension_by_name("google.api.http") else { return Vec::new() };
    let options = method.options();
    if !options.has_extension(&extension) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Value::Message(rule) = options.get_extension(&extension).as_ref() {
        collect(rule, &mut out, true);
    }
    out
}

fn text(rule: &DynamicMessage, field: &str) -> String {
    match rule.get_field_by_name(field).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn collect(rule: &DynamicMessage, out: &mut Vec<HttpBinding>, top: bool) {
    let verbs = ["get", "put", "post", "delete", "patch"];
    let pattern = verbs.iter().find(|v| rule.has_field_by_name(v)).map(|v| (v.to_uppercase(), text(rule, v)));
    let pattern = pattern.or_else(|| match rule.get_field_by_name("custom").as_deref() {
        Some(Value::Message(custom)) if rule.has_field_by_name("custom") => {
            Some((text(custom, "kind"), text(custom, "path")))
        }
        _ => None,
    });
    if let Some((method, path)) = pattern {
        out.push(HttpBinding { method, path, body: text(rule, "body"), response_body: text(rule, "response_body") });
    }
    if top && let Some(Value::List(more)) = rule.get_field_by_name("additional_bindings").as_deref() {
        for binding in more {
            if let Value::Message(binding) = binding {
                collect(binding, out, false);
            }
        }
    }
}
