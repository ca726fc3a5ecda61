//! HTTP rules files in the service-config form grpc-gateway reads (`http: rules: - selector:
//! pkg.Service.Method, get: ...`). A selector in the file replaces all of that method's annotated
//! bindings. Parsing is pure; the snapshot reads the file. Other top-level keys of a service
//! config (`type`, `config_version`, `name`, ...) are ignored; keys inside a rule are checked.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::registry::HttpBinding;

#[derive(Debug, Deserialize)]
struct ServiceConfig {
    #[serde(default)]
    http: Option<HttpSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    #[allow(dead_code)]
    fully_decode_reserved_expansion: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    selector: String,
    get: Option<String>,
    put: Option<String>,
    post: Option<String>,
    delete: Option<String>,
    patch: Option<String>,
    custom: Option<Custom>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    response_body: String,
    #[serde(default)]
    additional_bindings: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Custom {
    kind: String,
    path: String,
}

/// A rules file problem, with the line when the parser knows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RulesError {
    /// 1-based line.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Parses a rules file into bindings by method full name (`pkg.Service.Method`).
pub fn parse_rules_file(text: &str) -> Result<BTreeMap<String, Vec<HttpBinding>>, RulesError> {
    let config: ServiceConfig = serde_saphyr::from_str(text).map_err(|e| RulesError {
        line: e.location().map(|l| usize::try_from(l.line()).unwrap_or(usize::MAX)),
        message: e.to_string().lines().next().unwrap_or("invalid YAML").to_owned(),
    })?;
    let mut by_method: BTreeMap<String, Vec<HttpBinding>> = BTreeMap::new();
    for (i, rule) in config.http.map(|h| h.rules).unwrap_or_default().into_iter().enumerate() {
        let fail = |message: String| RulesError { line: None, message: format!("http.rules[{i}]: {message}") };
        if rule.selector.is_empty() {
            return Err(fail("`selector` is required".into()));
        }
        if by_method.contains_key(&rule.selector) {
            return Err(fail(format!("selector `{}` appears twice", rule.selector)));
        }
        let mut bindings = vec![binding(&rule).map_err(fail)?];
        for (j, extra) in rule.additional_bindings.iter().enumerate() {
            if !extra.additional_bindings.is_empty() {
                return Err(fail(format!("additional_bindings[{j}] cannot nest additional_bindings")));
            }
            bindings.push(binding(extra).map_err(|m| fail(format!("additional_bindings[{j}]: {m}")))?);
        }
        by_method.insert(rule.selector, bindings);
    }
    Ok(by_method)
}

fn binding(rule: &Rule) -> Result<HttpBinding, String> {
    let mut patterns = Vec::new();
    for (method, path) in
        [("GET", &rule.get), ("PUT", &rule.put), ("POST", &rule.post), ("DELETE", &rule.delete), ("PATCH", &rule.patch)]
    {
        if let Some(path) = path {
            patterns.push((method.to_owned(), path.clone()));
        }
    }
    if let Some(custom) = &rule.custom {
        patterns.push((custom.kind.clone(), custom.path.clone()));
    }
    match patterns.len() {
        1 => {
            let (method, path) = patterns.remove(0);
            Ok(HttpBinding { method, path, body: rule.body.clone(), response_body: rule.response_body.clone() })
        }
        0 => Err("a rule needs one of get, put, post, delete, patch or custom".into()),
        _ => Err("a rule may have only one of get, put, post, delete, patch or custom".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_gateway_style_rules_parse() {
        let text = "\
type: google.api.Service
config_version: 3
http:
  rules:
    - selector: catalog.v1.Catalog.GetBook
      get: /v2/books/{name=**}
      additional_bindings:
        - get: /v2/book/{name}
    - selector: catalog.v1.Catalog.CreateBook
      post: /v2/{parent=shelves/*}/books
      body: book
    - selector: catalog.v1.Catalog.DeleteBook
      custom:
        kind: PURGE
        path: /v2/{name=**}
";
        let rules = parse_rules_file(text).expect("valid");
        let get = &rules["catalog.v1.Catalog.GetBook"];
        assert_eq!(get.len(), 2);
        assert_eq!((get[0].method.as_str(), get[0].path.as_str()), ("GET", "/v2/books/{name=**}"));
        assert_eq!(get[1].path, "/v2/book/{name}");
        assert_eq!(rules["catalog.v1.Catalog.CreateBook"][0].body, "book");
        assert_eq!(rules["catalog.v1.Catalog.DeleteBook"][0].method, "PURGE");
    }

    #[test]
    fn bad_rules_are_named() {
        let table = [
            ("http:\n  rules:\n    - get: /x\n", "http.rules[0]: `selector` is required"),
            ("http:\n  rules:\n    - selector: a.B.C\n", "needs one of get"),
            ("http:\n  rules:\n    - selector: a.B.C\n      get: /x\n      post: /y\n", "only one of"),
            ("http:\n  rules:\n    - selector: a.B.C\n      gte: /x\n", "gte"),
            (
                "http:\n  rules:\n    - selector: a.B.C\n      get: /x\n    - selector: a.B.C\n      get: /y\n",
                "appears twice",
            ),
        ];
        for (text, want) in table {
            let error = parse_rules_file(text).expect_err(text);
            assert!(error.message.contains(want), "{text}: {error}");
        }
        let syntax = parse_rules_file("http:\n  rules: [\n").expect_err("syntax");
        assert!(syntax.line.is_some(), "{syntax:?}");
    }
}
