//! One authorization rule's requirement, compiled: authenticated, any-of and all-of scopes,
//! and claim conditions (equals, contains, matches). Evaluating it against an identity is
//! pure and allocation-free when it passes.

use crate::config::{ClaimRule, RuleConfig};
use crate::error::ErrorCode;
use crate::operation::Identity;

/// Why an operation (or one of its fields) may not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denial {
    /// The client presented no credentials (401 / UNAUTHENTICATED rather than 403).
    pub anonymous: bool,
    /// What the target requires, naming it.
    pub message: String,
}

impl Denial {
    /// UNAUTHENTICATED for anonymous clients, else PERMISSION_DENIED.
    pub fn code(&self) -> ErrorCode {
        if self.anonymous { ErrorCode::Unauthenticated } else { ErrorCode::Forbidden }
    }
}

/// What a client must have.
#[derive(Debug, Clone)]
pub struct Requirement {
    scopes_any: Vec<String>,
    scopes_all: Vec<String>,
    claims: Vec<ClaimCheck>,
}

#[derive(Debug, Clone)]
struct ClaimCheck {
    claim: String,
    test: ClaimTest,
}

#[derive(Debug, Clone)]
enum ClaimTest {
    Equals(String),
    Contains(String),
    Matches(regex::Regex, String),
}

impl Requirement {
    /// The requirement of `rule`; an error names the key (relative to the rule) and the fault.
    pub fn compile(rule: &RuleConfig) -> Result<Self, (String, String)> {
        let says_something =
            rule.authenticated || !rule.scopes_any.is_empty() || !rule.scopes_all.is_empty() || !rule.claims.is_empty();
        if !says_something {
            return Err((
                "authenticated".into(),
                "the rule requires nothing: set authenticated, scopes_any, scopes_all or claims".into(),
            ));
        }
        let mut claims = Vec::with_capacity(rule.claims.len());
        for (i, claim) in rule.claims.iter().enumerate() {
            claims.push(ClaimCheck::compile(claim).map_err(|why| (format!("claims[{i}]"), why))?);
        }
        Ok(Requirement { scopes_any: rule.scopes_any.clone(), scopes_all: rule.scopes_all.clone(), claims })
    }

    /// Checks `identity` against the requirement guarding `target` (named in the message, which
    /// is only written when the check fails).
    pub fn check(&self, target: &dyn std::fmt::Display, identity: Option<&Identity>) -> Result<(), Denial> {
        let Some(identity) = identity else {
            return Err(Denial { anonymous: true, message: format!("{target} requires authentication") });
        };
        let has = |scope: &String| identity.scopes.iter().any(|s| s == scope);
        if !self.scopes_any.is_empty() && !self.scopes_any.iter().any(has) {
            let message = match self.scopes_any.as_slice() {
                [one] => format!("{target} requires the scope `{one}`"),
                many => format!("{target} requires one of the scopes {}", quoted(many)),
            };
            return Err(Denial { anonymous: false, message });
        }
        if let Some(missing) = self.scopes_all.iter().find(|s| !has(s)) {
            return Err(Denial { anonymous: false, message: format!("{target} requires the scope `{missing}`") });
        }
        for check in &self.claims {
            if !check.holds(identity) {
                return Err(Denial { anonymous: false, message: format!("{target} requires {}", check.describe()) });
            }
        }
        Ok(())
    }
}

fn quoted(items: &[String]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

impl ClaimCheck {
    fn compile(rule: &ClaimRule) -> Result<Self, String> {
        if rule.claim.is_empty() || rule.claim.split('.').any(str::is_empty) {
            return Err(format!("`{}` is not a claim name or dotted path", rule.claim));
        }
        let test = match (&rule.equals, &rule.contains, &rule.matches) {
            (Some(value), None, None) => ClaimTest::Equals(value.clone()),
            (None, Some(value), None) => ClaimTest::Contains(value.clone()),
            (None, None, Some(pattern)) => {
                let anchored = format!("^(?:{pattern})$");
                let regex = regex::Regex::new(&anchored)
                    .map_err(|e| format!("`matches` is not a regular expression: {}", first_line(&e.to_string())))?;
                ClaimTest::Matches(regex, pattern.clone())
            }
            _ => return Err("set exactly one of `equals`, `contains` and `matches`".into()),
        };
        Ok(ClaimCheck { claim: rule.claim.clone(), test })
    }

    fn holds(&self, identity: &Identity) -> bool {
        let Some(value) = identity.claim(&self.claim) else { return false };
        match &self.test {
            ClaimTest::Equals(expected) => text(&value).is_some_and(|t| t == *expected),
            ClaimTest::Contains(item) => match value.as_ref() {
                serde_json::Value::Array(items) => items.iter().any(|i| text(i).is_some_and(|t| t == *item)),
                serde_json::Value::String(words) => words.split_whitespace().any(|w| w == item),
                _ => false,
            },
            ClaimTest::Matches(regex, _) => match value.as_ref() {
                serde_json::Value::Array(items) => items.iter().any(|i| text(i).is_some_and(|t| regex.is_match(&t))),
                other => text(other).is_some_and(|t| regex.is_match(&t)),
            },
        }
    }

    fn describe(&self) -> String {
        let claim = &self.claim;
        match &self.test {
            ClaimTest::Equals(value) => format!("the claim `{claim}` to equal `{value}`"),
            ClaimTest::Contains(value) => format!("the claim `{claim}` to contain `{value}`"),
            ClaimTest::Matches(_, pattern) => format!("the claim `{claim}` to match `{pattern}`"),
        }
    }
}

/// A scalar claim's text (numbers and booleans by their JSON text); objects and lists have none.
fn text(value: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        serde_json::Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        serde_json::Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        serde_json::Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(scopes: &[&str], claims: serde_json::Value) -> Identity {
        let serde_json::Value::Object(claims) = claims else { panic!("claims must be an object") };
        Identity {
            provider: "test".into(),
            subject: "alice".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            claims,
            expires_at: None,
        }
    }

    fn claim(name: &str, equals: Option<&str>, contains: Option<&str>, matches: Option<&str>) -> ClaimRule {
        ClaimRule {
            claim: name.into(),
            equals: equals.map(Into::into),
            contains: contains.map(Into::into),
            matches: matches.map(Into::into),
        }
    }

    /// Every requirement kind, passing and failing, with the exact message.
    #[test]
    fn requirements_pass_or_name_what_is_missing() {
        let claims = json!({"tenant": "acme", "level": 3, "admin": false, "groups": ["eng", "ops"],
            "roles": "reader writer", "realm": {"roles": ["auditor"]}, "email": "a@example.com"});
        let alice = identity(&["books:read", "books:write"], claims);
        let rule = |f: fn(&mut RuleConfig)| {
            let mut rule = RuleConfig::default();
            f(&mut rule);
            Requirement::compile(&rule).expect("compiles")
        };
        let cases: Vec<(Requirement, Option<&str>)> = vec![
            (rule(|r| r.authenticated = true), None),
            (rule(|r| r.scopes_any = vec!["admin".into(), "books:read".into()]), None),
            (rule(|r| r.scopes_any = vec!["admin".into()]), Some("T requires the scope `admin`")),
            (
                rule(|r| r.scopes_any = vec!["admin".into(), "root".into()]),
                Some("T requires one of the scopes `admin`, `root`"),
            ),
            (rule(|r| r.scopes_all = vec!["books:read".into(), "books:write".into()]), None),
            (
                rule(|r| r.scopes_all = vec!["books:read".into(), "books:delete".into()]),
                Some("T requires the scope `books:delete`"),
            ),
            (rule(|r| r.claims = vec![claim("tenant", Some("acme"), None, None)]), None),
            (
                rule(|r| r.claims = vec![claim("tenant", Some("other"), None, None)]),
                Some("T requires the claim `tenant` to equal `other`"),
            ),
            (rule(|r| r.claims = vec![claim("level", Some("3"), None, None)]), None),
            (rule(|r| r.claims = vec![claim("admin", Some("false"), None, None)]), None),
            (rule(|r| r.claims = vec![claim("groups", None, Some("ops"), None)]), None),
            (
                rule(|r| r.claims = vec![claim("groups", None, Some("op"), None)]),
                Some("T requires the claim `groups` to contain `op`"),
            ),
            (rule(|r| r.claims = vec![claim("roles", None, Some("writer"), None)]), None),
            (rule(|r| r.claims = vec![claim("realm.roles", None, Some("auditor"), None)]), None),
            (rule(|r| r.claims = vec![claim("email", None, None, Some(r".*@example\.com"))]), None),
            (
                rule(|r| r.claims = vec![claim("email", None, None, Some("example"))]),
                Some("T requires the claim `email` to match `example`"),
            ),
            (rule(|r| r.claims = vec![claim("groups", None, None, Some("e.g"))]), None),
            (
                rule(|r| r.claims = vec![claim("missing", Some("x"), None, None)]),
                Some("T requires the claim `missing` to equal `x`"),
            ),
            (rule(|r| r.claims = vec![claim("sub", Some("alice"), None, None)]), None),
            (rule(|r| r.claims = vec![claim("scope", None, Some("books:write"), None)]), None),
        ];
        for (i, (requirement, expected)) in cases.iter().enumerate() {
            let got = requirement.check(&"T", Some(&alice)).err().map(|d| d.message);
            assert_eq!(got.as_deref(), *expected, "case {i}");
        }
        let anonymous = rule(|r| r.authenticated = true).check(&"T", None).expect_err("refused");
        assert_eq!((anonymous.anonymous, anonymous.message.as_str()), (true, "T requires authentication"));
        assert_eq!(anonymous.code(), ErrorCode::Unauthenticated);
    }

    #[test]
    fn bad_rules_are_refused_naming_the_key() {
        let mut empty = RuleConfig { methods: vec!["*".into()], ..Default::default() };
        assert_eq!(Requirement::compile(&empty).expect_err("refused").0, "authenticated");
        empty.claims = vec![claim("tenant", Some("a"), Some("b"), None)];
        let (key, why) = Requirement::compile(&empty).expect_err("refused");
        assert_eq!(
            (key.as_str(), why.as_str()),
            ("claims[0]", "set exactly one of `equals`, `contains` and `matches`")
        );
        empty.claims = vec![claim("email", None, None, Some("(unclosed"))];
        let (key, why) = Requirement::compile(&empty).expect_err("refused");
        assert_eq!(key, "claims[0]");
        assert!(why.starts_with("`matches` is not a regular expression"), "{why}");
        empty.claims = vec![claim("a..b", Some("x"), None, None)];
        assert_eq!(Requirement::compile(&empty).expect_err("refused").1, "`a..b` is not a claim name or dotted path");
    }
}
