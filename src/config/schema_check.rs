//! Checks a parsed config document against the JSON Schema its types generate, collecting every
//! problem (unknown key, wrong type, bad value, missing key) with its key path and line. serde
//! stops at the first error; this walk does not. Supports the schema subset schemars emits for
//! our types: `$ref`, `type`, `properties`, `additionalProperties`, `required`, `items`, `enum`,
//! `anyOf`/`oneOf`, `minimum`/`maximum`, and the formats `duration`, `socket-address`, `uint*`.

use std::net::SocketAddr;

use serde_json::{Map, Value as Json};

use super::{ConfigDuration, Problem};

/// A config value with the line it was written on.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) value: NodeValue,
    pub(crate) line: usize,
}

/// The TOML value kinds.
#[derive(Debug, Clone)]
pub(crate) enum NodeValue {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<(String, Node)>),
}

impl Node {
    /// The value as JSON, for typed deserialization after the check passed.
    pub(crate) fn to_json(&self) -> Json {
        match &self.value {
            NodeValue::String(s) | NodeValue::Datetime(s) => Json::String(s.clone()),
            NodeValue::Integer(i) => Json::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            NodeValue::Boolean(b) => Json::Bool(*b),
            NodeValue::Array(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Table(entries) => Json::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// The line of the value at a dotted key path (`backends.a.endpoints[0]`), or of its
    /// nearest written ancestor.
    pub(crate) fn line_of_path(&self, path: &str) -> Option<usize> {
        let mut node = self;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (key, indexes) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            let NodeValue::Table(entries) = &node.value else { break };
            let Some((_, child)) = entries.iter().find(|(k, _)| k == key) else { break };
            node = child;
            for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
                let (NodeValue::Array(items), Ok(i)) = (&node.value, index.parse::<usize>()) else { break };
                let Some(item) = items.get(i) else { break };
                node = item;
            }
        }
        Some(node.line)
    }

    fn kind(&self) -> &'static str {
        match self.value {
            NodeValue::String(_) => "a string",
            NodeValue::Integer(_) => "an integer",
            NodeValue::Float(_) => "a float",
            NodeValue::Boolean(_) => "a boolean",
            NodeValue::Datetime(_) => "a date-time",
            NodeValue::Array(_) => "an array",
            NodeValue::Table(_) => "a table",
        }
    }

    fn matches_type(&self, ty: &str) -> bool {
        matches!(
            (&self.value, ty),
            (NodeValue::String(_), "string")
                | (NodeValue::Integer(_), "integer" | "number")
                | (NodeValue::Float(_), "number")
                | (NodeValue::Boolean(_), "boolean")
                | (NodeValue::Array(_), "array")
                | (NodeValue::Table(_), "object")
        )
    }
}

/// Checks `root` against `schema`, appending a problem for everything that does not match.
pub(crate) fn check_against_schema(root: &Node, schema: &Json, problems: &mut Vec<Problem>) {
    Checker { root_schema: schema }.check(root, schema, "", problems);
}

struct Checker<'a> {
    root_schema: &'a Json,
}

impl<'a> Checker<'a> {
    fn resolve(&self, mut schema: &'a Json) -> &'a Json {
        while let Some(reference) = schema.get("$ref").and_then(Json::as_str) {
            let pointer = reference.trim_start_matches('#');
            match self.root_schema.pointer(pointer) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn check(&self, node: &Node, schema: &'a Json, path: &str, out: &mut Vec<Problem>) {
        let schema = self.resolve(schema);
        let error = |message: String| Problem::error(path, message).at_line(Some(node.line));
        if let Some(branches) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Json::as_array) {
            self.check_branches(node, branches, path, out);
            return;
        }
        if let Some(types) = schema.get("type") {
            let wanted: Vec<&str> = match types {
                Json::String(t) => vec![t.as_str()],
                Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
                _ => Vec::new(),
            };
            if !wanted.iter().any(|t| node.matches_type(t)) {
                let names: Vec<&str> = wanted.iter().filter(|t| **t != "null").map(|t| type_name(t)).collect();
                out.push(error(format!("expected {}, found {}", names.join(" or "), node.kind())));
                return;
            }
        }
        if let Some(constant) = schema.get("const")
            && node.to_json() != *constant
        {
            out.push(error(format!("expected {constant}")));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Json::as_array) {
            let json = node.to_json();
            if !allowed.contains(&json) {
                let names: Vec<String> =
                    allowed.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
                out.push(error(format!("{json} is not one of: {}", names.join(", "))));
            }
        }
        match &node.value {
            NodeValue::Table(entries) => self.check_table(node, entries, schema, path, out),
            NodeValue::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, item_schema, &format!("{path}[{i}]"), out);
                    }
                }
            }
            NodeValue::String(s) => {
                if let Some(message) = check_string_format(s, schema) {
                    out.push(error(message));
                }
            }
            NodeValue::Integer(i) => {
                if let Some(message) = check_integer_range(*i, schema) {
                    out.push(error(message));
                }
            }
            _ => {}
        }
    }

    fn check_branches(&self, node: &Node, branches: &'a [Json], path: &str, out: &mut Vec<Problem>) {
        let constants: Option<Vec<String>> = branches
            .iter()
            .map(|b| self.resolve(b).get("const").map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned)))
            .collect();
        let mut attempts = Vec::new();
        for branch in branches {
            let resolved = self.resolve(branch);
            if resolved.get("type").and_then(Json::as_str) == Some("null") {
                continue;
            }
            let mut problems = Vec::new();
            self.check(node, branch, path, &mut problems);
            if problems.is_empty() {
                return;
            }
            attempts.push(problems);
        }
        if let Some(constants) = constants {
            out.push(
                Problem::error(path, format!("{} is not one of: {}", node.to_json(), constants.join(", ")))
                    .at_line(Some(node.line)),
            );
        } else if attempts.len() == 1 {
            out.extend(attempts.remove(0));
        } else {
            out.push(
                Problem::error(path, format!("{} does not match any allowed form", node.kind()))
                    .at_line(Some(node.line)),
            );
        }
    }

    fn check_table(
        &self,
        node: &Node,
        entries: &[(String, Node)],
        schema: &'a Json,
        path: &str,
        out: &mut Vec<Problem>,
    ) {
        let empty = Map::new();
        let properties = schema.get("properties").and_then(Json::as_object).unwrap_or(&empty);
        let additional = schema.get("additionalProperties");
        for (key, child) in entries {
            let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            if let Some(property) = properties.get(key) {
                self.check(child, property, &child_path, out);
            } else if let Some(extra) = additional.filter(|a| a.is_object()) {
                self.check(child, extra, &child_path, out);
            } else if additional == Some(&Json::Bool(false)) {
                let mut message = "unknown key".to_owned();
                if let Some(near) = closest_key(key, properties.keys()) {
                    message.push_str(&format!("; did you mean `{near}`?"));
                } else if !properties.is_empty() {
                    let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                    message.push_str(&format!(" (known keys: {})", known.join(", ")));
                }
                out.push(Problem::error(child_path, message).at_line(Some(child.line)));
            }
        }
        for required in schema.get("required").and_then(Json::as_array).into_iter().flatten() {
            let Some(required) = required.as_str() else { continue };
            if !entries.iter().any(|(k, _)| k == required) {
                out.push(Problem::error(path, format!("missing required key `{required}`")).at_line(Some(node.line)));
            }
        }
    }
}

fn type_name(ty: &str) -> &str {
    match ty {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        "array" => "an array",
        "object" => "a table",
        other => other,
    }
}

fn check_string_format(value: &str, schema: &Json) -> Option<String> {
    match schema.get("format").and_then(Json::as_str)? {
        "duration" => ConfigDuration::parse(value).err(),
        "socket-address" => value.parse::<SocketAddr>().err().map(|_| {
            format!("`{value}` is not a socket address; write IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")
        }),
        _ => None,
    }
}

fn check_integer_range(value: i64, schema: &Json) -> Option<String> {
    let (format_min, format_max) = match schema.get("format").and_then(Json::as_str) {
        Some("uint8") => (0, u8::MAX as i64),
        Some("uint16") => (0, u16::MAX as i64),
        Some("uint32") => (0, u32::MAX as i64),
        Some("uint64" | "uint") => (0, i64::MAX),
        Some("int32") => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    let min = schema.get("minimum").and_then(Json::as_i64).unwrap_or(i64::MIN).max(format_min);
    let max = schema.get("maximum").and_then(Json::as_i64).unwrap_or(i64::MAX).min(format_max);
    if value < min {
        Some(format!("{value} is below the minimum {min}"))
    } else if value > max {
        Some(format!("{value} is above the maximum {max}"))
    } else {
        None
    }
}

/// The known key within edit distance 2 of `key`, if there is one.
fn closest_key<'k>(key: &str, known: impl Iterator<Item = &'k String>) -> Option<&'k str> {
    known.map(|k| (edit_distance(key, k), k)).filter(|(d, _)| *d <= 2).min_by_key(|(d, _)| *d).map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb { previous } else { 1 + previous.min(row[j]).min(current) };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_finds_typos() {
        let known = ["max_connections".to_owned(), "listen".to_owned()];
        assert_eq!(closest_key("max_conections", known.iter()), Some("max_connections"));
        assert_eq!(closest_key("lisen", known.iter()), Some("listen"));
        assert_eq!(closest_key("completely_else", known.iter()), None);
    }
}
