//! The route table: a segment trie over path templates, so matching costs depend on the
//! request path's depth, not on the number of routes. Literal children are tried before `*`,
//! then `**`; a `:verb` suffix on the last segment is tried as a verb first, then as part of the
//! segment. A path that matches only under other HTTP methods is a 405 with those methods.

use std::borrow::Cow;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use http::Method;

use super::percent::{Keep, percent_decode};
use super::template::{PathTemplate, Segment};

/// A route's place in the table.
#[derive(Debug)]
pub struct RouteEntry<T> {
    /// The HTTP method (custom verbs included).
    pub method: Method,
    /// The path template.
    pub template: PathTemplate,
    /// What the route leads to.
    pub value: T,
    /// `METHOD template`, the route's name in telemetry (made once, shared by every request).
    pub name: std::sync::Arc<str>,
}

/// A successful match.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    /// The matched route.
    pub route: &'a RouteEntry<T>,
    /// Its index in the table.
    pub index: usize,
    /// Each template variable's decoded value, in the template's variable order.
    pub variables: Vec<String>,
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// No route has this path.
    #[error("no route matches the path")]
    NotFound,
    /// Routes have this path, but not for this method.
    #[error("the path does not accept this method")]
    MethodNotAllowed {
        /// The methods it accepts.
        allowed: Vec<Method>,
    },
    /// The path cannot be routed safely (bad escape, dot segment).
    #[error("{0}")]
    BadPath(String),
}

/// Two routes with the same method, shape and verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Index of the route already in the table.
    pub existing: usize,
}

#[derive(Debug)]
struct Endpoint {
    verb: Option<Box<str>>,
    method: Method,
    route: usize,
}

#[derive(Debug, Default)]
struct Node {
    literals: FxHashMap<Box<str>, Node>,
    single: Option<Box<Node>>,
    ends: Vec<Endpoint>,
    multi_ends: Vec<Endpoint>,
}

/// Routes by method and path template.
#[derive(Debug)]
pub struct RouteTable<T> {
    root: Node,
    routes: Vec<RouteEntry<T>>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable { root: Node::default(), routes: Vec::new() }
    }
}

impl<T> RouteTable<T> {
    /// Adds a route, or names the route it conflicts with.
    pub fn insert(&mut self, method: Method, template: PathTemplate, value: T) -> Result<usize, Conflict> {
        let mut node = &mut self.root;
        let mut multi = false;
        for segment in &template.segments {
            match segment {
                Segment::Literal(text) => node = node.literals.entry(text.as_str().into()).or_default(),
                Segment::Single => node = node.single.get_or_insert_with(Box::default),
                Segment::Multi => multi = true,
            }
        }
        let ends = if multi { &mut node.multi_ends } else { &mut node.ends };
        let verb = template.verb.as_deref();
        if let Some(existing) = ends.iter().find(|e| e.method == method && e.verb.as_deref() == verb) {
            return Err(Conflict { existing: existing.route });
        }
        let index = self.routes.len();
        ends.push(Endpoint { verb: verb.map(Into::into), method: method.clone(), route: index });
        let name = format!("{method} {template}").into();
        self.routes.push(RouteEntry { method, template, value, name });
        Ok(index)
    }

    /// Every route, in insertion order.
    pub fn routes(&self) -> &[RouteEntry<T>] {
        &self.routes
    }

    /// The route at `index`.
    pub fn route(&self, index: usize) -> &RouteEntry<T> {
        &self.routes[index]
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the route for `method` and `path` (no query string) and decodes its variables.
    pub fn find(&self, method: &Method, path: &str) -> Result<RouteMatch<'_, T>, MatchError> {
        let Some(rest) = path.strip_prefix('/') else { return Err(MatchError::NotFound) };
        // Paths are short: segment lists live on the stack.
        let raw: SmallVec<[&str; 16]> = rest.split('/').collect();
        let mut decoded: SmallVec<[Cow<'_, str>; 16]> = SmallVec::with_capacity(raw.len());
        for segment in &raw {
            let text = percent_decode(segment, Keep::Nothing, false).map_err(|e| MatchError::BadPath(e.to_string()))?;
            if text == "." || text == ".." {
                return Err(MatchError::BadPath(format!("the path `{path}` contains a dot segment")));
            }
            decoded.push(text);
        }
        let mut allowed = Vec::new();
        if let Some(last) = raw.last()
            && let Some(colon) = last.rfind(':')
        {
            let verb = &last[colon + 1..];
            let mut trimmed_raw = raw.clone();
            let trimmed = &last[..colon];
            *trimmed_raw.last_mut().expect("non-empty") = trimmed;
            let mut trimmed_decoded = decoded.clone();
            *trimmed_decoded.last_mut().expect("non-empty") =
                percent_decode(trimmed, Keep::Nothing, false).map_err(|e| MatchError::BadPath(e.to_string()))?;
            let keys: SmallVec<[&str; 16]> = trimmed_decoded.iter().map(|s| s.as_ref()).collect();
            if let Some(route) = walk(&self.root, &keys, 0, Some(verb), method, &mut allowed) {
                return self.bind(route, &trimmed_raw);
            }
        }
        let keys: SmallVec<[&str; 16]> = decoded.iter().map(|s| s.as_ref()).collect();
        if let Some(route) = walk(&self.root, &keys, 0, None, method, &mut allowed) {
            return self.bind(route, &raw);
        }
        if allowed.is_empty() {
            Err(MatchError::NotFound)
        } else {
            allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            allowed.dedup();
            Err(MatchError::MethodNotAllowed { allowed })
        }
    }

    fn bind<'a>(&'a self, index: usize, raw: &[&str]) -> Result<RouteMatch<'a, T>, MatchError> {
        let route = &self.routes[index];
        let segments = &route.template.segments;
        let mut variables = Vec::with_capacity(route.template.variables.len());
        for variable in &route.template.variables {
            let end = if variable.end == segments.len() && route.template.ends_with_multi() {
                raw.len()
            } else {
                variable.end
            };
            let joined = raw[variable.start..end].join("/");
            let keep = if variable.is_multi_segment(segments) { Keep::EncodedSlash } else { Keep::Nothing };
            let value = percent_decode(&joined, keep, false).map_err(|e| MatchError::BadPath(e.to_string()))?;
            variables.push(value.into_owned());
        }
        Ok(RouteMatch { route, index, variables })
    }
}

fn walk(
    node: &Node,
    segments: &[&str],
    at: usize,
    verb: Option<&str>,
    method: &Method,
    allowed: &mut Vec<Method>,
) -> Option<usize> {
    if at == segments.len() {
        if let Some(route) = pick(&node.ends, verb, method, allowed) {
            return Some(route);
        }
    } else {
        let segment = segments[at];
        if let Some(child) = node.literals.get(segment)
            && let Some(route) = walk(child, segments, at + 1, verb, method, allowed)
        {
            return Some(route);
        }
        if !segment.is_empty()
            && let Some(child) = &node.single
            && let Some(route) = walk(child, segments, at + 1, verb, method, allowed)
        {
            return Some(route);
        }
    }
    pick(&node.multi_ends, verb, method, allowed)
}

fn pick(ends: &[Endpoint], verb: Option<&str>, method: &Method, allowed: &mut Vec<Method>) -> Option<usize> {
    let mut found = None;
    for end in ends.iter().filter(|e| e.verb.as_deref() == verb) {
        if end.method == method {
            found = Some(end.route);
        } else {
            allowed.push(end.method.clone());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable<String> {
        let mut table = RouteTable::default();
        for (method, template) in routes {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let parsed = PathTemplate::parse(template).expect("template");
            table.insert(method.clone(), parsed, format!("{method} {template}")).expect("no conflict");
        }
        table
    }

    #[test]
    fn matching_table() {
        let t = table(&[
            ("GET", "/v1/{name=shelves/*/books/*}"),
            ("GET", "/v1/{parent=shelves/*}/books"),
            ("POST", "/v1/{parent=shelves/*}/books"),
            ("GET", "/v1/{parent=shelves/*}/books:watch"),
            ("POST", "/v1/books:import"),
            ("GET", "/v1/shelves/special/books/{id}"),
            ("GET", "/files/{path=**}"),
            ("GET", "/static/**"),
            ("GET", "/v1/{name=shelves/*/books/*}:discuss"),
            ("POST", "/catalog.v1.Catalog/GetBook"),
        ]);
        type Case<'a> = (&'a str, &'a str, Result<(&'a str, &'a [&'a str]), MatchError>);
        let cases: &[Case<'_>] = &[
            ("GET", "/v1/shelves/1/books/2", Ok(("GET /v1/{name=shelves/*/books/*}", &["shelves/1/books/2"]))),
            ("GET", "/v1/shelves/1/books", Ok(("GET /v1/{parent=shelves/*}/books", &["shelves/1"]))),
            ("POST", "/v1/shelves/1/books", Ok(("POST /v1/{parent=shelves/*}/books", &["shelves/1"]))),
            ("GET", "/v1/shelves/1/books:watch", Ok(("GET /v1/{parent=shelves/*}/books:watch", &["shelves/1"]))),
            ("POST", "/v1/books:import", Ok(("POST /v1/books:import", &[]))),
            ("GET", "/v1/shelves/special/books/7", Ok(("GET /v1/shelves/special/books/{id}", &["7"]))),
            ("GET", "/v1/shelves/other/books/7", Ok(("GET /v1/{name=shelves/*/books/*}", &["shelves/other/books/7"]))),
            ("GET", "/files/a/b/c.txt", Ok(("GET /files/{path=**}", &["a/b/c.txt"]))),
            ("GET", "/files", Ok(("GET /files/{path=**}", &[""]))),
            ("GET", "/files/a%2Fb/c", Ok(("GET /files/{path=**}", &["a%2Fb/c"]))),
            ("GET", "/static/x/y", Ok(("GET /static/**", &[]))),
            (
                "GET",
                "/v1/shelves/1/books/2:discuss",
                Ok(("GET /v1/{name=shelves/*/books/*}:discuss", &["shelves/1/books/2"])),
            ),
            ("GET", "/v1/shelves/1/books/a:b", Ok(("GET /v1/{name=shelves/*/books/*}", &["shelves/1/books/a:b"]))),
            ("GET", "/v1/shelves/a%2Fb/books/2", Ok(("GET /v1/{name=shelves/*/books/*}", &["shelves/a%2Fb/books/2"]))),
            ("GET", "/v1/shelves/special/books/a%2Fb", Ok(("GET /v1/shelves/special/books/{id}", &["a/b"]))),
            ("GET", "/v1/shelves/a%20b/books", Ok(("GET /v1/{parent=shelves/*}/books", &["shelves/a b"]))),
            ("POST", "/catalog.v1.Catalog/GetBook", Ok(("POST /catalog.v1.Catalog/GetBook", &[]))),
            ("GET", "/v1/shelves/1", Err(MatchError::NotFound)),
            ("GET", "/v1/shelves//books", Err(MatchError::NotFound)),
            ("GET", "/v1/shelves/1/books/", Err(MatchError::NotFound)),
            ("GET", "", Err(MatchError::NotFound)),
            (
                "DELETE",
                "/v1/shelves/1/books",
                Err(MatchError::MethodNotAllowed { allowed: vec![Method::GET, Method::POST] }),
            ),
            ("GET", "/v1/books:import", Err(MatchError::MethodNotAllowed { allowed: vec![Method::POST] })),
        ];
        for (method, path, want) in cases {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let got = t.find(&method, path).map(|m| (m.route.value.clone(), m.variables));
            let want = want.clone().map(|(v, vars)| (v.to_owned(), vars.iter().map(|s| (*s).to_owned()).collect()));
            assert_eq!(got, want, "{method} {path}");
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let t = table(&[("GET", "/v1/{name=**}")]);
        for path in ["/v1/../admin", "/v1/a/%2e%2e/b", "/v1/./x", "/v1/%zz"] {
            assert!(matches!(t.find(&Method::GET, path), Err(MatchError::BadPath(_))), "{path}");
        }
    }

    #[test]
    fn same_shape_same_method_conflicts() {
        let mut t = table(&[("GET", "/v1/{name=shelves/*}")]);
        let again = PathTemplate::parse("/v1/{parent=shelves/*}").expect("template");
        assert_eq!(t.insert(Method::GET, again.clone(), "x".into()), Err(Conflict { existing: 0 }));
        assert!(t.insert(Method::POST, again, "y".into()).is_ok());
        let verb = PathTemplate::parse("/v1/{name=shelves/*}:undelete").expect("template");
        assert!(t.insert(Method::GET, verb, "z".into()).is_ok(), "a verb makes a different route");
    }
}
