//! Header transformations (`[[transforms]]`): edits of the headers sent to a backend and of the
//! answer's headers, per gRPC method or source, with values from literals, the identity, its
//! claims or the client's address. Pure: the planner applies request edits to each fetch's
//! metadata, the ingresses apply response edits to answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{BodyEdits, HeaderEdits, TransformConfig};
use crate::operation::{Identity, Metadata};

/// A value template's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Subject,
    Claim(String),
    ClientIp,
}

/// Compiled header edits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    remove: Vec<String>,
    rename: Vec<(String, String)>,
    set: Vec<(String, Vec<Part>)>,
}

/// What a request's values come from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Values<'a> {
    /// The verified identity.
    pub identity: Option<&'a Identity>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
}

impl Edits {
    /// Compiles `edits`; an error names the key (under the edits) and the fault.
    pub fn compile(edits: &HeaderEdits) -> Result<Self, (String, String)> {
        let name = |key: String, text: &str| {
            let lower = text.to_ascii_lowercase();
            HeaderName::from_bytes(lower.as_bytes())
                .map(|_| lower)
                .map_err(|_| (key, format!("`{text}` is not a header name")))
        };
        let mut compiled = Edits::default();
        for (i, header) in edits.remove.iter().enumerate() {
            compiled.remove.push(name(format!("remove[{i}]"), header)?);
        }
        for (from, to) in &edits.rename {
            compiled.rename.push((name(format!("rename.{from}"), from)?, name(format!("rename.{from}"), to)?));
        }
        for (header, template) in &edits.set {
            let key = format!("set.{header}");
            compiled.set.push((name(key.clone(), header)?, parse_template(template).map_err(|why| (key, why))?));
        }
        Ok(compiled)
    }

    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.rename.is_empty() && self.set.is_empty()
    }

    /// Applies the edits to metadata sent to a backend.
    pub fn apply_metadata(&self, metadata: &mut Metadata, values: Values<'_>) {
        for name in &self.remove {
            metadata.remove(name);
        }
        for (from, to) in &self.rename {
            let taken: Vec<Vec<u8>> = metadata.iter().filter(|(n, _)| n == from).map(|(_, v)| v.to_vec()).collect();
            metadata.remove(from);
            for value in taken {
                metadata.push(to, value);
            }
        }
        for (name, template) in &self.set {
            metadata.remove(name);
            if let Some(value) = render(template, values) {
                metadata.push(name, value);
            }
        }
    }

    /// Applies the edits to HTTP headers (a passed-through request, or an answer).
    pub fn apply_headers(&self, headers: &mut HeaderMap, values: Values<'_>) {
        for name in &self.remove {
            headers.remove(name.as_str());
        }
        for (from, to) in &self.rename {
            let taken: Vec<HeaderValue> = headers.get_all(from.as_str()).iter().cloned().collect();
            headers.remove(from.as_str());
            if let Ok(to) = HeaderName::from_bytes(to.as_bytes()) {
                for value in taken {
                    headers.append(to.clone(), value);
                }
            }
        }
        for (name, template) in &self.set {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else { continue };
            headers.remove(&header);
            if let Some(value) = render(template, values).and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(header, value);
            }
        }
    }
}

fn parse_template(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let end = rest[start..].find('}').ok_or_else(|| format!("`{text}` has an unclosed `{{`"))? + start;
        let name = &rest[start + 1..end];
        parts.push(match name {
            "subject" => Part::Subject,
            "client_ip" => Part::ClientIp,
            _ => match name.strip_prefix("claim.") {
                Some(claim) if !claim.is_empty() => Part::Claim(claim.to_owned()),
                _ => return Err(format!("`{{{name}}}` is not {{subject}}, {{client_ip}} or {{claim.NAME}}")),
            },
        });
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

/// The template's text, or None when a placeholder has no value (or the text is not a header
/// value).
fn render(template: &[Part], values: Values<'_>) -> Option<String> {
    let mut out = String::new();
    for part in template {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Subject => out.push_str(&values.identity?.subject),
            Part::ClientIp => out.push_str(&values.client_ip?.to_string()),
            Part::Claim(path) => {
                let value = values.identity?.claim(path)?;
                match value.as_ref() {
                    serde_json::Value::String(s) => out.push_str(s),
                    serde_json::Value::Null => return None,
                    other => out.push_str(&other.to_string()),
                }
            }
        }
    }
    out.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b)).then_some(out)
}

/// Compiled JSON body edits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonEdits {
    drop: Vec<Vec<String>>,
    rename: Vec<(Vec<String>, String)>,
    inject: Vec<(Vec<String>, serde_json::Value)>,
}

impl JsonEdits {
    /// Compiles `edits`; an error names the key and the fault.
    pub fn compile(edits: &BodyEdits) -> Result<Self, (String, String)> {
        let path = |key: String, text: &str| {
            let parts: Vec<String> = text.split('.').map(str::to_owned).collect();
            if parts.iter().any(String::is_empty) {
                return Err((key, format!("`{text}` is not a field name or dotted path")));
            }
            Ok(parts)
        };
        let mut compiled = JsonEdits::default();
        for (i, field) in edits.drop.iter().enumerate() {
            compiled.drop.push(path(format!("drop[{i}]"), field)?);
        }
        for (from, to) in &edits.rename {
            if to.is_empty() || to.contains('.') {
                return Err((
                    format!("rename.{from}"),
                    format!("`{to}` is not a field name (the field stays where it is)"),
                ));
            }
            compiled.rename.push((path(format!("rename.{from}"), from)?, to.clone()));
        }
        for (field, text) in &edits.inject {
            let value = serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone()));
            compiled.inject.push((path(format!("inject.{field}"), field)?, value));
        }
        Ok(compiled)
    }

    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.rename.is_empty() && self.inject.is_empty()
    }

    /// Applies the edits to `value` (an object; anything else is left alone).
    pub fn apply(&self, value: &mut serde_json::Value) {
        fn parent<'a>(
            value: &'a mut serde_json::Value,
            path: &[String],
        ) -> Option<&'a mut serde_json::Map<String, serde_json::Value>> {
            let mut current = value;
            for step in path {
                current = current.get_mut(step.as_str())?;
            }
            current.as_object_mut()
        }
        for path in &self.drop {
            if let Some((last, head)) = path.split_last()
                && let Some(object) = parent(value, head)
            {
                object.remove(last);
            }
        }
        for (path, to) in &self.rename {
            if let Some((last, head)) = path.split_last()
                && let Some(object) = parent(value, head)
                && let Some(moved) = object.remove(last)
            {
                object.insert(to.clone(), moved);
            }
        }
        for (path, injected) in &self.inject {
            let Some((last, head)) = path.split_last() else { continue };
            let mut current = Some(&mut *value);
            for step in head {
                current = current.and_then(|c| c.as_object_mut()).map(|object| {
                    object.entry(step.clone()).or_insert_with(|| serde_json::Value::Object(Default::default()))
                });
            }
            if let Some(object) = current.and_then(|c| c.as_object_mut()) {
                object.insert(last.clone(), injected.clone());
            }
        }
    }

    /// Applies the edits to JSON `bytes`; bytes that are not a JSON object come back as they are.
    pub fn apply_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        if !value.is_object() {
            return None;
        }
        self.apply(&mut value);
        serde_json::to_vec(&value).ok()
    }
}

/// One target's request and response edits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transform {
    /// Edits of what is sent to the backend.
    pub request: Edits,
    /// Edits of the answer.
    pub response: Edits,
    /// Edits of a JSON request body.
    pub request_body: JsonEdits,
    /// Edits of a JSON answer.
    pub response_body: JsonEdits,
}

/// The snapshot's transformations by method full name and by source name.
#[derive(Debug, Clone, Default)]
pub struct Transforms {
    /// Method full name → its edits.
    pub methods: HashMap<String, Arc<Transform>>,
    /// Source (cluster) name → its edits.
    pub sources: HashMap<String, Arc<Transform>>,
}

impl Transforms {
    /// Adds `config`'s edits to the targets it names (several transformations on one target
    /// apply in config order).
    pub fn add(&mut self, config: &TransformConfig, methods: &[String]) -> Result<(), (String, String)> {
        let request = Edits::compile(&config.request_headers).map_err(|(k, w)| (format!("request_headers.{k}"), w))?;
        let response =
            Edits::compile(&config.response_headers).map_err(|(k, w)| (format!("response_headers.{k}"), w))?;
        let request_body =
            JsonEdits::compile(&config.request_body).map_err(|(k, w)| (format!("request_body.{k}"), w))?;
        let response_body =
            JsonEdits::compile(&config.response_body).map_err(|(k, w)| (format!("response_body.{k}"), w))?;
        let merge = |existing: Option<&Arc<Transform>>| {
            let mut merged = existing.map(|t| (**t).clone()).unwrap_or_default();
            merged.request.remove.extend(request.remove.iter().cloned());
            merged.request.rename.extend(request.rename.iter().cloned());
            merged.request.set.extend(request.set.iter().cloned());
            merged.response.remove.extend(response.remove.iter().cloned());
            merged.response.rename.extend(response.rename.iter().cloned());
            merged.response.set.extend(response.set.iter().cloned());
            for (into, from) in [(&mut merged.request_body, &request_body), (&mut merged.response_body, &response_body)]
            {
                into.drop.extend(from.drop.iter().cloned());
                into.rename.extend(from.rename.iter().cloned());
                into.inject.extend(from.inject.iter().cloned());
            }
            Arc::new(merged)
        };
        for method in methods {
            let merged = merge(self.methods.get(method));
            self.methods.insert(method.clone(), merged);
        }
        for source in &config.sources {
            let merged = merge(self.sources.get(source));
            self.sources.insert(source.clone(), merged);
        }
        Ok(())
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.sources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(remove: &[&str], rename: &[(&str, &str)], set: &[(&str, &str)]) -> Edits {
        Edits::compile(&HeaderEdits {
            remove: remove.iter().map(|s| s.to_string()).collect(),
            rename: rename.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            set: set.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        })
        .expect("compiles")
    }

    #[test]
    fn edits_remove_rename_and_set_with_values() {
        let identity = Identity {
            provider: "corp".into(),
            subject: "ada".into(),
            scopes: Vec::new(),
            claims: serde_json::json!({"tenant": "acme", "level": 3}).as_object().cloned().unwrap_or_default(),
            expires_at: None,
        };
        let values = Values { identity: Some(&identity), client_ip: Some("10.0.0.7".parse().expect("ip")) };
        let mut metadata = Metadata::default();
        metadata.push("x-debug", "1");
        metadata.push("x-old", "kept");
        metadata.push("x-tenant", "forged");
        let edit = edits(
            &["X-Debug"],
            &[("x-old", "x-new")],
            &[
                ("x-tenant", "{claim.tenant}"),
                ("x-who", "{subject}@{client_ip}"),
                ("x-level", "L{claim.level}"),
                ("x-missing", "{claim.nope}"),
                ("x-static", "v1"),
            ],
        );
        edit.apply_metadata(&mut metadata, values);
        let got: Vec<(String, String)> =
            metadata.iter().map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned())).collect();
        // Sets apply in the config's key order (a TOML table).
        let want: Vec<(String, String)> =
            [("x-new", "kept"), ("x-level", "L3"), ("x-static", "v1"), ("x-tenant", "acme"), ("x-who", "ada@10.0.0.7")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        assert_eq!(got, want);
        // Anonymous: identity placeholders leave their headers out.
        let mut anonymous = Metadata::default();
        edit.apply_metadata(&mut anonymous, Values::default());
        assert_eq!(anonymous.iter().map(|(n, _)| n.to_owned()).collect::<Vec<_>>(), ["x-static"]);
    }

    #[test]
    fn json_edits_drop_rename_and_inject() {
        let edits = JsonEdits::compile(&BodyEdits {
            drop: vec!["secret".into(), "book.internal".into(), "absent.x".into()],
            rename: [("book.name".to_owned(), "id".to_owned()), ("top".to_owned(), "renamed".to_owned())].into(),
            inject: [
                ("api".to_owned(), "2".to_owned()),
                ("book.source".to_owned(), "gateway".to_owned()),
                ("meta.version".to_owned(), "\"v2\"".to_owned()),
            ]
            .into(),
        })
        .expect("compiles");
        let mut value =
            serde_json::json!({"secret": 1, "top": true, "book": {"name": "b1", "internal": "x", "title": "T"}});
        edits.apply(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"renamed": true, "api": 2, "book": {"id": "b1", "title": "T", "source": "gateway"}, "meta": {"version": "v2"}})
        );
        assert_eq!(edits.apply_bytes(b"[1]"), None, "not an object: left alone");
        let bad = JsonEdits::compile(&BodyEdits {
            rename: [("a".to_owned(), "b.c".to_owned())].into(),
            ..Default::default()
        });
        assert_eq!(bad.expect_err("refused").0, "rename.a");
    }

    #[test]
    fn bad_edits_name_the_key() {
        let bad = |set: &str| {
            Edits::compile(&HeaderEdits { set: [("x-a".to_owned(), set.to_owned())].into(), ..Default::default() })
                .expect_err("refused")
        };
        assert_eq!(bad("{nope}").1, "`{nope}` is not {subject}, {client_ip} or {claim.NAME}");
        assert_eq!(bad("{claim.x").1, "`{claim.x` has an unclosed `{`");
        let named = Edits::compile(&HeaderEdits { remove: vec!["bad header".into()], ..Default::default() });
        assert_eq!(named.expect_err("refused").0, "remove[0]");
    }
}

/// The headers a deprecated service's REST answers carry: `Deprecation: @SECONDS` (RFC 9745),
/// `Sunset: HTTP-date` (RFC 8594) and `Link: <URL>; rel="deprecation"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    /// The header values, ready to send.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The GraphQL deprecation reason.
    pub reason: String,
}

impl Deprecation {
    /// From `config`; an error names the key and the fault.
    pub fn compile(config: &crate::config::DeprecationConfig) -> Result<Self, (String, String)> {
        let seconds = |key: &str, text: &str| {
            humantime::parse_rfc3339(text.trim())
                .map_err(|e| (key.to_owned(), format!("`{text}` is not an RFC 3339 time ({e})")))?
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(|_| (key.to_owned(), format!("`{text}` is before 1970")))
        };
        let since = seconds("since", &config.since)?;
        let mut headers = vec![(
            HeaderName::from_static("deprecation"),
            HeaderValue::from_str(&format!("@{since}")).expect("digits"),
        )];
        let mut reason = format!("deprecated since {}", config.since.trim());
        if let Some(sunset) = &config.sunset {
            let at = seconds("sunset", sunset)?;
            headers.push((
                HeaderName::from_static("sunset"),
                HeaderValue::from_str(&crate::civil_time::http_date(at)).expect("ascii"),
            ));
            reason.push_str(&format!("; served until {}", sunset.trim()));
        }
        if let Some(link) = &config.link {
            let value = HeaderValue::from_str(&format!("<{link}>; rel=\"deprecation\""))
                .map_err(|_| ("link".to_owned(), format!("`{link}` cannot be sent in a header")))?;
            headers.push((http::header::LINK, value));
            reason.push_str(&format!("; see {link}"));
        }
        Ok(Deprecation { headers, reason })
    }
}

#[cfg(test)]
mod deprecation_tests {
    use super::*;

    #[test]
    fn deprecation_headers_follow_the_rfcs() {
        let config = crate::config::DeprecationConfig {
            since: "2026-01-01T00:00:00Z".into(),
            sunset: Some("2027-06-30T00:00:00Z".into()),
            link: Some("https://example.com/v2".into()),
        };
        let deprecation = Deprecation::compile(&config).expect("compiles");
        let text: Vec<(String, String)> =
            deprecation.headers.iter().map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned())).collect();
        assert_eq!(
            text,
            [
                ("deprecation".to_owned(), "@1767225600".to_owned()),
                ("sunset".to_owned(), "Wed, 30 Jun 2027 00:00:00 GMT".to_owned()),
                ("link".to_owned(), "<https://example.com/v2>; rel=\"deprecation\"".to_owned()),
            ]
        );
        assert_eq!(crate::civil_time::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(crate::civil_time::http_date(951_782_400 + 3_723), "Tue, 29 Feb 2000 01:02:03 GMT");
        let bad = crate::config::DeprecationConfig { since: "yesterday".into(), sunset: None, link: None };
        assert_eq!(Deprecation::compile(&bad).expect_err("refused").0, "since");
    }
}
