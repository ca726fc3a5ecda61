//! google.api.http path templates (http.proto's grammar):
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! `{field}` is `{field=*}`. `**` matches zero or more segments and must come last. Parsing is
//! pure; errors name the template and the column.

use std::fmt;

/// One segment of a template, after variables are flattened into their segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text (compared with the request segment percent-decoded).
    Literal(String),
    /// `*`: any one segment.
    Single,
    /// `**`: zero or more segments; always the last.
    Multi,
}

/// A variable: the request field it binds and the segments it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The field path (`book.name` → `["book", "name"]`).
    pub field_path: Vec<String>,
    /// First segment index it covers.
    pub start: usize,
    /// One past its last segment index; for a variable ending in `**`, the template's length.
    pub end: usize,
}

impl Variable {
    /// True if the variable can span more than one segment (`=**` or several segments).
    pub fn is_multi_segment(&self, segments: &[Segment]) -> bool {
        self.end - self.start != 1 || segments[self.start] == Segment::Multi
    }

    /// The field path joined with dots.
    pub fn field_name(&self) -> String {
        self.field_path.join(".")
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// The segments in order.
    pub segments: Vec<Segment>,
    /// The `:verb` suffix, if any.
    pub verb: Option<String>,
    /// The variables, in order of appearance.
    pub variables: Vec<Variable>,
    source: String,
}

/// A template that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path template `{template}`, column {column}: {message}")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// 1-based column of the problem.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl PathTemplate {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Parser { text, bytes: text.as_bytes(), pos: 0 }.template()
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if the template ends in `**`.
    pub fn ends_with_multi(&self) -> bool {
        self.segments.last() == Some(&Segment::Multi)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, TemplateError> {
        Err(TemplateError { template: self.text.to_owned(), column: self.pos + 1, message: message.into() })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn template(mut self) -> Result<PathTemplate, TemplateError> {
        if self.peek() != Some(b'/') {
            return self.fail("a template starts with `/`");
        }
        self.pos += 1;
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        self.segments(&mut segments, Some(&mut variables))?;
        let verb = if self.peek() == Some(b':') {
            self.pos += 1;
            let verb = self.literal();
            if verb.is_empty() {
                return self.fail("`:` must be followed by a verb");
            }
            Some(verb)
        } else {
            None
        };
        if self.pos != self.bytes.len() {
            return self.fail(format!("unexpected `{}`", &self.text[self.pos..]));
        }
        if let Some(i) = segments.iter().position(|s| *s == Segment::Multi)
            && i + 1 != segments.len()
        {
            return Err(TemplateError {
                template: self.text.to_owned(),
                column: 1,
                message: "`**` may only be the last segment".into(),
            });
        }
        let mut seen = Vec::new();
        for variable in &variables {
            let name = variable.field_name();
            if seen.contains(&name) {
                return Err(TemplateError {
                    template: self.text.to_owned(),
                    column: 1,
                    message: format!("field `{name}` is bound twice"),
                });
            }
            seen.push(name);
        }
        Ok(PathTemplate { segments, verb, variables, source: self.text.to_owned() })
    }

    /// Segments until `}` (inside a variable), `:` (verb) or the end.
    fn segments(
        &mut self,
        segments: &mut Vec<Segment>,
        mut variables: Option<&mut Vec<Variable>>,
    ) -> Result<(), TemplateError> {
        loop {
            match self.peek() {
                Some(b'*') if self.bytes.get(self.pos + 1) == Some(&b'*') => {
                    self.pos += 2;
                    segments.push(Segment::Multi);
                }
                Some(b'*') => {
                    self.pos += 1;
                    segments.push(Segment::Single);
                }
                Some(b'{') => {
                    let Some(variables) = variables.as_deref_mut() else {
                        return self.fail("variables cannot be nested");
                    };
                    self.pos += 1;
                    let variable = self.variable(segments)?;
                    variables.push(variable);
                }
                _ => {
                    let literal = self.literal();
                    if literal.is_empty() {
                        return self.fail("empty segment");
                    }
                    segments.push(Segment::Literal(literal));
                }
            }
            match self.peek() {
                Some(b'/') => self.pos += 1,
                Some(b'}' | b':') | None => return Ok(()),
                Some(_) => return self.fail("expected `/`, `:` or the end"),
            }
        }
    }

    fn variable(&mut self, segments: &mut Vec<Segment>) -> Result<Variable, TemplateError> {
        let mut field_path = Vec::new();
        loop {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                self.pos += 1;
            }
            let ident = &self.text[start..self.pos];
            if ident.is_empty() || ident.as_bytes()[0].is_ascii_digit() {
                self.pos = start;
                return self.fail("expected a field name");
            }
            field_path.push(ident.to_owned());
            if self.peek() == Some(b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let start = segments.len();
        match self.peek() {
            Some(b'=') => {
                self.pos += 1;
                self.segments(segments, None)?;
            }
            Some(b'}') => segments.push(Segment::Single),
            _ => return self.fail("expected `=` or `}` after the field name"),
        }
        if self.peek() != Some(b'}') {
            return self.fail("expected `}`");
        }
        self.pos += 1;
        Ok(Variable { field_path, start, end: segments.len() })
    }

    /// A literal: any path characters except the template's own delimiters.
    fn literal(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|c| !matches!(c, b'/' | b'{' | b'}' | b'*' | b':' | b'=')) {
            self.pos += 1;
        }
        self.text[start..self.pos].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::Segment::{Literal, Multi, Single};
    use super::*;

    fn lit(s: &str) -> Segment {
        Literal(s.to_owned())
    }

    #[test]
    fn grammar_table() {
        type Case = (&'static str, Vec<Segment>, Option<&'static str>, Vec<(&'static str, usize, usize)>);
        let table: Vec<Case> = vec![
            ("/v1/shelves", vec![lit("v1"), lit("shelves")], None, vec![]),
            ("/v1/{name}", vec![lit("v1"), Single], None, vec![("name", 1, 2)]),
            (
                "/v1/{name=shelves/*/books/*}",
                vec![lit("v1"), lit("shelves"), Single, lit("books"), Single],
                None,
                vec![("name", 1, 5)],
            ),
            ("/v1/{book.name=shelves/*}", vec![lit("v1"), lit("shelves"), Single], None, vec![("book.name", 1, 3)]),
            ("/v1/{path=**}", vec![lit("v1"), Multi], None, vec![("path", 1, 2)]),
            ("/v1/*/x/**", vec![lit("v1"), Single, lit("x"), Multi], None, vec![]),
            ("/v1/books:import", vec![lit("v1"), lit("books")], Some("import"), vec![]),
            (
                "/v1/{book=shelves/*/books/*}:discuss",
                vec![lit("v1"), lit("shelves"), Single, lit("books"), Single],
                Some("discuss"),
                vec![("book", 1, 5)],
            ),
            ("/{a}/{b}", vec![Single, Single], None, vec![("a", 0, 1), ("b", 1, 2)]),
            ("/v1.x-y~z", vec![lit("v1.x-y~z")], None, vec![]),
        ];
        for (text, segments, verb, variables) in table {
            let template = PathTemplate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(template.segments, segments, "{text}");
            assert_eq!(template.verb.as_deref(), verb, "{text}");
            let got: Vec<(String, usize, usize)> =
                template.variables.iter().map(|v| (v.field_name(), v.start, v.end)).collect();
            let want: Vec<(String, usize, usize)> =
                variables.into_iter().map(|(n, s, e)| (n.to_owned(), s, e)).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn refused_templates_say_where() {
        let table = [
            ("v1/x", 1, "starts with `/`"),
            ("/v1//x", 5, "empty segment"),
            ("/v1/{name", 10, "expected `=` or `}`"),
            ("/v1/{na-me}", 8, "expected `=` or `}`"),
            ("/v1/{1x}", 6, "expected a field name"),
            ("/v1/{a={b}}", 8, "nested"),
            ("/v1/**/x", 1, "last segment"),
            ("/v1/x:", 7, "verb"),
            ("/v1/{a}/{a}", 1, "bound twice"),
            ("/", 2, "empty segment"),
        ];
        for (text, column, message) in table {
            let error = PathTemplate::parse(text).expect_err(text);
            assert_eq!(error.column, column, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn multi_segment_variables_are_recognised() {
        let t = PathTemplate::parse("/v1/{a}/{b=x/*}/{c=**}").expect("valid");
        let kinds: Vec<bool> = t.variables.iter().map(|v| v.is_multi_segment(&t.segments)).collect();
        assert_eq!(kinds, [false, true, true]);
    }
}
