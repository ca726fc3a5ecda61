//! Operation limits, checked before validation and before any backend call: document size and
//! token count on the text (so the parser never sees a huge document), then depth, field count,
//! aliases, root fields and directives on the parsed document with fragments expanded by
//! memoised counting, so a fragment that spreads the next twice, 25 levels deep, is measured in
//! microseconds instead of being expanded 33 million times.

use std::collections::HashMap;

use async_graphql_parser::Positioned;
use async_graphql_parser::types::{ExecutableDocument, Selection, SelectionSet};

use crate::config::GraphqlLimits;

/// A limit a document exceeds, named by its config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitExceeded(pub(crate) String);

/// Size and tokens, on the raw text; the number of tokens when within the limits.
pub(crate) fn check_text(query: &str, limits: &GraphqlLimits) -> Result<usize, LimitExceeded> {
    check_size(query.len(), limits)?;
    let tokens = count_tokens(query, limits.max_tokens as usize + 1);
    check_tokens(tokens, limits)?;
    Ok(tokens)
}

/// `check_text` for a text whose length and token count are known (a document parsed before:
/// the limits are checked anew, in case the config changed, without counting again).
pub(crate) fn check_counted(bytes: usize, tokens: usize, limits: &GraphqlLimits) -> Result<(), LimitExceeded> {
    check_size(bytes, limits)?;
    check_tokens(tokens, limits)
}

fn check_size(bytes: usize, limits: &GraphqlLimits) -> Result<(), LimitExceeded> {
    if bytes > limits.max_document_bytes as usize {
        return Err(LimitExceeded(format!(
            "the document is {bytes} bytes; the limit is {} (graphql.limits.max_document_bytes)",
            limits.max_document_bytes
        )));
    }
    Ok(())
}

fn check_tokens(tokens: usize, limits: &GraphqlLimits) -> Result<(), LimitExceeded> {
    if tokens > limits.max_tokens as usize {
        return Err(LimitExceeded(format!(
            "the document has more than {} tokens (graphql.limits.max_tokens)",
            limits.max_tokens
        )));
    }
    Ok(())
}

/// What a selection set amounts to once fragments are expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Measure {
    fields: u64,
    aliases: u64,
    depth: u64,
}

/// Depth, fields, aliases, root fields and directives of every operation in `document`.
pub(crate) fn check_document(document: &ExecutableDocument, limits: &GraphqlLimits) -> Result<(), LimitExceeded> {
    let mut measurer = Measurer { document, memo: HashMap::new(), visiting: Vec::new(), limits, directive_error: None };
    for (_, operation) in document.operations.iter() {
        let roots = operation.node.selection_set.node.items.len();
        if roots > limits.max_root_fields as usize {
            return Err(LimitExceeded(format!(
                "the operation selects {roots} root fields; the limit is {} (graphql.limits.max_root_fields)",
                limits.max_root_fields
            )));
        }
        let measure = measurer.set(&operation.node.selection_set);
        if let Some(error) = measurer.directive_error.take() {
            return Err(error);
        }
        if measure.depth > u64::from(limits.max_depth) {
            return Err(LimitExceeded(format!(
                "the operation is {} levels deep; the limit is {} (graphql.limits.max_depth)",
                measure.depth, limits.max_depth
            )));
        }
        if measure.fields > u64::from(limits.max_fields) {
            return Err(LimitExceeded(format!(
                "the operation selects {} fields once fragments are expanded; the limit is {} (graphql.limits.max_fields)",
                measure.fields, limits.max_fields
            )));
        }
        if measure.aliases > u64::from(limits.max_aliases) {
            return Err(LimitExceeded(format!(
                "the operation has {} aliases; the limit is {} (graphql.limits.max_aliases)",
                measure.aliases, limits.max_aliases
            )));
        }
    }
    Ok(())
}

struct Measurer<'a> {
    document: &'a ExecutableDocument,
    memo: HashMap<&'a str, Measure>,
    visiting: Vec<&'a str>,
    limits: &'a GraphqlLimits,
    directive_error: Option<LimitExceeded>,
}

impl<'a> Measurer<'a> {
    fn set(&mut self, set: &'a Positioned<SelectionSet>) -> Measure {
        let mut total = Measure::default();
        for item in &set.node.items {
            if item.node.directives().len() > self.limits.max_directives as usize && self.directive_error.is_none() {
                self.directive_error = Some(LimitExceeded(format!(
                    "a selection at line {} has {} directives; the limit is {} (graphql.limits.max_directives)",
                    item.pos.line,
                    item.node.directives().len(),
                    self.limits.max_directives
                )));
            }
            let measure = match &item.node {
                Selection::Field(field) => {
                    let inner = self.set(&field.node.selection_set);
                    Measure {
                        fields: inner.fields.saturating_add(1),
                        aliases: inner.aliases.saturating_add(u64::from(field.node.alias.is_some())),
                        depth: inner.depth.saturating_add(1),
                    }
                }
                Selection::InlineFragment(fragment) => self.set(&fragment.node.selection_set),
                Selection::FragmentSpread(spread) => self.fragment(spread.node.fragment_name.node.as_str()),
            };
            total.fields = total.fields.saturating_add(measure.fields);
            total.aliases = total.aliases.saturating_add(measure.aliases);
            total.depth = total.depth.max(measure.depth);
        }
        total
    }

    /// A fragment's measure, computed once; cycles measure zero (validation refuses them).
    fn fragment(&mut self, name: &'a str) -> Measure {
        if let Some(measure) = self.memo.get(name) {
            return *measure;
        }
        if self.visiting.contains(&name) {
            return Measure::default();
        }
        let Some((key, fragment)) = self.document.fragments.get_key_value(name) else { return Measure::default() };
        self.visiting.push(key.as_str());
        let measure = self.set(&fragment.node.selection_set);
        self.visiting.pop();
        self.memo.insert(key.as_str(), measure);
        measure
    }
}

/// Counts GraphQL lexical tokens (commas and comments are ignored tokens), stopping at `stop`.
fn count_tokens(text: &str, stop: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut count = 0;
    while i < bytes.len() && count < stop {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            0xEF if bytes[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => i += 3,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 3;
                count += 1;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                count += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                i += 3;
                count += 1;
            }
            c if c == b'_' || c.is_ascii_alphanumeric() || c == b'-' => {
                i += 1;
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                count += 1;
            }
            _ => {
                i += 1;
                count += 1;
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_counted_like_the_lexer() {
        assert_eq!(count_tokens("{ a, b }", 100), 4);
        assert_eq!(count_tokens("query Q($x: Int = -1.5) { f(s: \"a, b\") # comment\n ...F }", 100), 20);
        assert_eq!(count_tokens("\"\"\"block \"\" string\"\"\" x", 100), 2);
        assert_eq!(count_tokens(&"{ a ".repeat(1_000_000), 50), 50, "counting stops at the limit");
    }

    #[test]
    fn a_fragment_bomb_is_measured_without_expanding_it() {
        let mut document = String::from("{ ...F0 }\n");
        for level in 0..25 {
            document.push_str(&format!("fragment F{level} on Query {{ ...F{} ...F{} }}\n", level + 1, level + 1));
        }
        document.push_str("fragment F25 on Query { __typename }\n");
        let parsed = async_graphql_parser::parse_query(&document).expect("parses");
        let error = check_document(&parsed, &GraphqlLimits::default()).expect_err("refused");
        assert!(error.0.contains("33554432 fields"), "{}", error.0);
    }
}
