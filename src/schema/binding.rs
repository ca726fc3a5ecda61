//! Bindings: what a field declared in schemas/ calls. A binding is a REST call (`@rest`: source,
//! method, path, query, headers, body), a gRPC call (`@grpc`: method, request) or a GraphQL
//! sub-operation (a GraphQL source's root fields, and `@graphql`: source, field, arguments), a `select`
//! path into the answer, and an optional batch form. Strings in a binding are templates over
//! `{args.NAME}` (the field's arguments), `{parent.NAME}` (a field of the parent object) and
//! `{keys}` (a batch's distinct keys). Pure data and parsing; rendering is the planner's.

use prost_reflect::MethodDescriptor;
use serde_json::Value as Json;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// `{args.a.b}`: an argument, or a key path inside one.
    Arg(Vec<String>),
    /// `{parent.name}`: a field of the parent object.
    Parent(String),
    /// `{keys}`: the distinct keys of a batch.
    Keys,
}

/// A string with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its pieces, in order.
    pub parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `{{` and `}}` are literal braces.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|(_, n)| *n == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(format!("`}}` at offset {at} closes nothing (write `}}}}` for a brace)")),
                '{' => {
                    let rest = &text[at + 1..];
                    let end = rest.find('}').ok_or_else(|| format!("`{{` at offset {at} is not closed"))?;
                    let placeholder = &rest[..end];
                    for _ in 0..placeholder.chars().count() + 1 {
                        chars.next();
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(parse_placeholder(placeholder)?);
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The placeholder, when the template is exactly one (its value keeps its JSON type).
    pub fn single(&self) -> Option<&Part> {
        match self.parts.as_slice() {
            [part] if !matches!(part, Part::Text(_)) => Some(part),
            _ => None,
        }
    }
}

fn parse_placeholder(text: &str) -> Result<Part, String> {
    let text = text.trim();
    let valid = |name: &str| {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if text == "keys" {
        return Ok(Part::Keys);
    }
    if let Some(path) = text.strip_prefix("args.") {
        let path: Vec<String> = path.split('.').map(str::to_owned).collect();
        if path.iter().all(|p| valid(p)) {
            return Ok(Part::Arg(path));
        }
    }
    if let Some(name) = text.strip_prefix("parent.")
        && valid(name)
    {
        return Ok(Part::Parent(name.to_owned()));
    }
    Err(format!("`{{{text}}}` is not a placeholder; use {{args.NAME}}, {{parent.NAME}} or {{keys}}"))
}

/// A JSON value with templates in its strings (a body, a gRPC request, a query value).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    /// A value without placeholders.
    Value(Json),
    /// A string template; exactly one placeholder keeps its value's JSON type.
    Text(Template),
    /// A list.
    List(Vec<ValueTemplate>),
    /// An object, in declaration order.
    Object(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    /// Every placeholder in the value.
    pub fn parts(&self) -> Vec<&Part> {
        let mut out = Vec::new();
        self.collect_parts(&mut out);
        out
    }

    fn collect_parts<'a>(&'a self, out: &mut Vec<&'a Part>) {
        match self {
            ValueTemplate::Value(_) => {}
            ValueTemplate::Text(template) => out.extend(template.parts.iter().filter(|p| !matches!(p, Part::Text(_)))),
            ValueTemplate::List(items) => items.iter().for_each(|i| i.collect_parts(out)),
            ValueTemplate::Object(fields) => fields.iter().for_each(|(_, v)| v.collect_parts(out)),
        }
    }
}

/// A REST call (`@rest`).
#[derive(Debug, Clone)]
pub struct RestCall {
    /// The source (and cluster) name.
    pub source: String,
    /// The HTTP method.
    pub method: http::Method,
    /// The path under the source's base URL.
    pub path: Template,
    /// Query parameters; a null value leaves the parameter out, a list repeats it.
    pub query: Vec<(String, ValueTemplate)>,
    /// Request headers.
    pub headers: Vec<(http::HeaderName, Template)>,
    /// The JSON body.
    pub body: Option<ValueTemplate>,
}

/// A sub-operation to a GraphQL source: one root field with the selection below it.
#[derive(Debug, Clone)]
pub struct GraphqlCall {
    /// The source (and cluster) name.
    pub source: String,
    /// Query or Mutation.
    pub operation: super::RootKind,
    /// The source's root field.
    pub field: String,
    /// Its arguments; None passes the GraphQL field's own arguments through by name.
    pub arguments: Option<ValueTemplate>,
    /// The source field's arguments and their types as SDL text (for the variable definitions).
    pub argument_types: Vec<(String, String)>,
}

/// The call a binding makes.
#[derive(Debug, Clone)]
pub enum BoundCall {
    /// A sub-operation to a GraphQL source.
    Graphql(GraphqlCall),
    /// A JSON REST call.
    Rest(RestCall),
    /// A unary gRPC call with a request built from a template (proto3 JSON).
    Grpc {
        /// The method.
        method: MethodDescriptor,
        /// The request message as proto3 JSON.
        request: ValueTemplate,
    },
}

/// A binding's batch form: one call for many parents.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Each parent's key (usually `{parent.NAME}`).
    pub key: Template,
    /// The key path, in each item of the answer's list, that equals a parent's key.
    pub matches: Vec<String>,
    /// Most keys in one call; more keys make more calls.
    pub max_size: usize,
}

/// What a field declared in schemas/ calls, and how its answer is read.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The call.
    pub call: BoundCall,
    /// The key path to the field's value inside the answer (empty: the whole answer).
    pub select: Vec<String>,
    /// The batch form, when the backend takes many keys in one call.
    pub batch: Option<Batch>,
    /// The parent's fields the templates read (fetched even when the client does not select them).
    pub parent_fields: Vec<String>,
    /// Where it is declared (`file:line`), for plans and errors.
    pub declared_at: String,
}

impl Binding {
    /// Every placeholder of the call and batch key.
    pub fn parts(&self) -> Vec<&Part> {
        let mut out = Vec::new();
        match &self.call {
            BoundCall::Rest(rest) => {
                out.extend(rest.path.parts.iter().filter(|p| !matches!(p, Part::Text(_))));
                for (_, value) in &rest.query {
                    out.extend(value.parts());
                }
                for (_, header) in &rest.headers {
                    out.extend(header.parts.iter().filter(|p| !matches!(p, Part::Text(_))));
                }
                if let Some(body) = &rest.body {
                    out.extend(body.parts());
                }
            }
            BoundCall::Grpc { request, .. } => out.extend(request.parts()),
            BoundCall::Graphql(call) => out.extend(call.arguments.iter().flat_map(ValueTemplate::parts)),
        }
        if let Some(batch) = &self.batch {
            out.extend(batch.key.parts.iter().filter(|p| !matches!(p, Part::Text(_))));
        }
        out
    }

    /// The cluster the call goes to, for REST and GraphQL sources (gRPC calls go to their
    /// service's).
    pub fn source(&self) -> Option<&str> {
        match &self.call {
            BoundCall::Rest(rest) => Some(&rest.source),
            BoundCall::Graphql(call) => Some(&call.source),
            BoundCall::Grpc { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_placeholders_and_escapes() {
        let table: &[(&str, Result<Vec<Part>, ()>)] = &[
            ("/authors", Ok(vec![Part::Text("/authors".into())])),
            ("/authors/{args.id}", Ok(vec![Part::Text("/authors/".into()), Part::Arg(vec!["id".into()])])),
            ("{parent.author}", Ok(vec![Part::Parent("author".into())])),
            ("{ keys }", Ok(vec![Part::Keys])),
            ("{args.filter.country}", Ok(vec![Part::Arg(vec!["filter".into(), "country".into()])])),
            ("a{{b}}c", Ok(vec![Part::Text("a{b}c".into())])),
            ("{parent}", Err(())),
            ("{parent.a.b}", Err(())),
            ("{args.}", Err(())),
            ("{nope}", Err(())),
            ("/x/{args.id", Err(())),
            ("/x/}", Err(())),
        ];
        for (text, want) in table {
            let got = Template::parse(text).map(|t| t.parts).map_err(|_| ());
            assert_eq!(&got, want, "{text}");
        }
    }

    #[test]
    fn single_placeholder_keeps_its_type() {
        assert!(Template::parse("{args.id}").expect("valid").single().is_some());
        assert!(Template::parse("id-{args.id}").expect("valid").single().is_none());
        assert!(Template::parse("plain").expect("valid").single().is_none());
    }
}
