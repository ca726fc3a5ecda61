//! Loading a config file: TOML syntax, `${VAR}` expansion, the schema check (every problem at
//! once, with key path and line), then typed deserialization and the semantic checks.

use std::path::{Path, PathBuf};

use toml_edit::{Document, Item, Table, Value};

use super::schema_check::{Node, NodeValue, check_against_schema};
use super::{Config, Problem, config_json_schema, env::expand_env, validate::validate_config};

/// A config that passed every check, with the warnings it produced.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The config.
    pub config: Config,
    /// The file it came from, if any.
    pub file: Option<PathBuf>,
    /// Problems that did not refuse it.
    pub warnings: Vec<Problem>,
}

/// Reads and checks `path`. On failure, returns every problem found, each naming the file.
pub fn load_config_file(path: &Path) -> Result<LoadedConfig, Vec<Problem>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Problem::error("", format!("cannot read config file: {e}")).in_file(path)])?;
    let lookup = |name: &str| std::env::var(name).ok();
    let located = |problems: Vec<Problem>| problems.into_iter().map(|p| p.in_file(path)).collect();
    let (config, warnings) = parse_config(&text, &lookup).map_err(located)?;
    Ok(LoadedConfig { config, file: Some(path.to_owned()), warnings: located(warnings) })
}

/// Parses and checks config text; `lookup` resolves environment variables. Returns the config
/// and its warnings, or every problem (errors and warnings) found.
pub fn parse_config(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let lines = LineIndex::new(text);
    let doc = Document::parse(text).map_err(|e| {
        let line = e.span().map(|s| lines.line_of(s.start));
        let message = e.message().trim().to_owned();
        vec![Problem::error("", format!("TOML syntax: {message}")).at_line(line)]
    })?;
    let mut problems = Vec::new();
    let root = table_node(doc.as_table(), "", &lines, lookup, &mut problems);
    let schema = config_json_schema();
    check_against_schema(&root, &schema, &mut problems);
    if problems.iter().any(Problem::is_error) {
        return Err(problems);
    }
    let config: Config = serde_json::from_value(root.to_json())
        .map_err(|e| vec![Problem::error("", format!("config does not match its schema: {e}"))])?;
    problems.extend(validate_config(&config).into_iter().map(|p| {
        let line = root.line_of_path(&p.path);
        p.at_line(line)
    }));
    if problems.iter().any(Problem::is_error) {
        return Err(problems);
    }
    Ok((config, problems))
}

/// Byte offset → 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn table_node(
    table: &Table,
    path: &str,
    lines: &LineIndex,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Node {
    let line = table.span().map(|s| lines.line_of(s.start)).unwrap_or(1);
    let mut entries = Vec::new();
    for (key, item) in table.iter() {
        let key_line = table.get_key_value(key).and_then(|(k, _)| k.span()).map(|s| lines.line_of(s.start));
        let child_path = join(path, key);
        let mut node = item_node(item, &child_path, lines, lookup, problems);
        if let Some(key_line) = key_line {
            node.line = key_line;
        }
        entries.push((key.to_owned(), node));
    }
    Node { value: NodeValue::Table(entries), line }
}

fn item_node(
    item: &Item,
    path: &str,
    lines: &LineIndex,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Node {
    match item {
        Item::Table(table) => table_node(table, path, lines, lookup, problems),
        Item::ArrayOfTables(array) => {
            let line = array.span().map(|s| lines.line_of(s.start)).unwrap_or(1);
            let items = array
                .iter()
                .enumerate()
                .map(|(i, t)| table_node(t, &format!("{path}[{i}]"), lines, lookup, problems))
                .collect();
            Node { value: NodeValue::Array(items), line }
        }
        Item::Value(value) => value_node(value, path, lines, lookup, problems),
        Item::None => Node { value: NodeValue::Table(Vec::new()), line: 1 },
    }
}

fn value_node(
    value: &Value,
    path: &str,
    lines: &LineIndex,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Node {
    let line = value.span().map(|s| lines.line_of(s.start)).unwrap_or(1);
    let value = match value {
        Value::String(s) => match expand_env(s.value(), lookup) {
            Ok(expanded) => NodeValue::String(expanded),
            Err(message) => {
                problems.push(Problem::error(path, message).at_line(Some(line)));
                NodeValue::String(s.value().clone())
            }
        },
        Value::Integer(i) => NodeValue::Integer(*i.value()),
        Value::Float(f) => NodeValue::Float(*f.value()),
        Value::Boolean(b) => NodeValue::Boolean(*b.value()),
        Value::Datetime(d) => NodeValue::Datetime(d.value().to_string()),
        Value::Array(array) => NodeValue::Array(
            array
                .iter()
                .enumerate()
                .map(|(i, v)| value_node(v, &format!("{path}[{i}]"), lines, lookup, problems))
                .collect(),
        ),
        Value::InlineTable(table) => {
            let mut entries = Vec::new();
            for (key, v) in table.iter() {
                entries.push((key.to_owned(), value_node(v, &join(path, key), lines, lookup, problems)));
            }
            NodeValue::Table(entries)
        }
    };
    Node { value, line }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn an_empty_file_is_the_default_config() {
        let (config, warnings) = parse_config("", &no_env).expect("empty config is valid");
        assert_eq!(config, Config::default());
        assert!(warnings.is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_path_and_line() {
        let text = "\
[listener]
listen = \"127.0.0.1:8080\"
max_conections = 5
header_read_timeout = 10

[backends.catalog]
endpoints = [\"http://127.0.0.1:1\"]
protocol = \"soap\"
";
        let problems = parse_config(text, &no_env).expect_err("three problems");
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 3, "{shown:#?}");
        assert!(shown[0].contains("line 3: listener.max_conections: unknown key"), "{shown:#?}");
        assert!(shown[0].contains("max_connections"), "suggests the right key: {shown:#?}");
        assert!(shown[1].contains("line 4: listener.header_read_timeout: expected a string"), "{shown:#?}");
        assert!(shown[2].contains("line 8: backends.catalog.protocol"), "{shown:#?}");
        assert!(shown[2].contains("grpc, http, graphql"), "{shown:#?}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let problems = parse_config("[listener]\nlisten = \n", &no_env).expect_err("syntax error");
        assert_eq!(problems[0].line, Some(2), "{problems:?}");
        assert!(problems[0].message.starts_with("TOML syntax"), "{problems:?}");
    }

    #[test]
    fn env_vars_expand_in_strings() {
        let env = |name: &str| (name == "PORT").then(|| "7000".to_owned());
        let text = "[listener]\nlisten = \"127.0.0.1:${PORT}\"\n[admin]\nlisten = \"127.0.0.1:${ADMIN_PORT:-7001}\"\n";
        let (config, _) = parse_config(text, &env).expect("valid");
        assert_eq!(config.listener.listen.port(), 7000);
        assert_eq!(config.admin.listen.port(), 7001);
        let problems = parse_config("[admin]\ntoken = \"${TOKEN}\"\n", &env).expect_err("unset");
        assert!(problems[0].to_string().contains("line 2: admin.token: environment variable TOKEN"), "{problems:?}");
    }

    #[test]
    fn missing_required_keys_and_bad_formats_are_named() {
        let text = "[backends.a]\nservices = [\"x\"]\n[listener]\nlisten = \"nowhere\"\nidle_timeout = \"soon\"\n";
        let problems = parse_config(text, &no_env).expect_err("problems");
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(shown.iter().any(|s| s.contains("backends.a: missing required key `endpoints`")), "{shown:#?}");
        assert!(shown.iter().any(|s| s.contains("line 4: listener.listen") && s.contains("nowhere")), "{shown:#?}");
        assert!(shown.iter().any(|s| s.contains("line 5: listener.idle_timeout")), "{shown:#?}");
    }

    #[test]
    fn a_backend_stream_window_is_read_within_http2s_bounds() {
        let with = |window: &str| {
            let text = format!(
                "[backends.a]\nendpoints = [\"http://127.0.0.1:1\"]\nservices = [\"a.v1\"]\n[backends.a.connection]\nstream_window_bytes = {window}\n"
            );
            parse_config(&text, &no_env).map(|(config, _)| config.backends["a"].connection.stream_window_bytes)
        };
        assert_eq!(with("65535").expect("the smallest HTTP/2 allows"), 65_535);
        assert_eq!(with("4194304").expect("4 MiB"), 4 << 20);
        for (window, says) in [("1024", "below the minimum 65535"), ("2147483648", "above the maximum 2147483647")] {
            let problems = with(window).expect_err(window);
            let shown = problems[0].to_string();
            assert!(shown.contains("line 5: backends.a.connection.stream_window_bytes"), "{shown}");
            assert!(shown.contains(says), "{shown}");
        }
    }
}
