//! Fragment spreads must not form cycles (spec 5.5.2.2), checked over the fragment graph in
//! one pass before anything inlines fragments: each fragment is entered once, so a cycle of
//! fragments that each spread the next twice costs as many steps as the document has spreads,
//! where following the spreads would take 2^levels.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql_parser::{Pos, Positioned};

use super::document::DocumentError;

/// One error per cycle, located at the spreads that form it, worded as graphql-js words it.
pub(crate) fn fragment_cycles(document: &ExecutableDocument) -> Vec<DocumentError> {
    let mut search =
        Search { document, entered: HashSet::new(), on_path: HashMap::new(), path: Vec::new(), errors: Vec::new() };
    // In document order, so the same document always reports the same cycles.
    let mut fragments: Vec<_> = document.fragments.iter().map(|(name, f)| (f.pos, name.as_str())).collect();
    fragments.sort_unstable();
    for (_, name) in fragments {
        search.enter(name);
    }
    search.errors
}

struct Search<'a> {
    document: &'a ExecutableDocument,
    /// Fragments already entered: each is searched once.
    entered: HashSet<&'a str>,
    /// The fragments the current path runs through, with where in `path` they start.
    on_path: HashMap<&'a str, usize>,
    /// The spreads followed so far.
    path: Vec<(&'a str, Pos)>,
    errors: Vec<DocumentError>,
}

impl<'a> Search<'a> {
    fn enter(&mut self, name: &'a str) {
        if !self.entered.insert(name) {
            return;
        }
        let Some(fragment) = self.document.fragments.get(name) else { return };
        let mut spreads = Vec::new();
        spreads_in(&fragment.node.selection_set, &mut spreads);
        // A fragment spread twice in one place closes the same cycle twice: report it once.
        let mut seen = HashSet::new();
        spreads.retain(|(spread, _)| seen.insert(*spread));
        self.on_path.insert(name, self.path.len());
        for (spread, pos) in spreads {
            self.path.push((spread, pos));
            match self.on_path.get(spread) {
                None => self.enter(spread),
                Some(&start) => {
                    let cycle = &self.path[start..];
                    let via: Vec<String> =
                        cycle[..cycle.len() - 1].iter().map(|(step, _)| format!("\"{step}\"")).collect();
                    let through = if via.is_empty() { String::new() } else { format!(" via {}", via.join(", ")) };
                    self.errors.push(DocumentError {
                        message: format!("Cannot spread fragment \"{spread}\" within itself{through}."),
                        locations: cycle.iter().map(|(_, pos)| (pos.line, pos.column)).collect(),
                    });
                }
            }
            self.path.pop();
        }
        self.on_path.remove(name);
    }
}

/// The fragment spreads anywhere in `set`, in document order, with where they are.
fn spreads_in<'a>(set: &'a Positioned<SelectionSet>, out: &mut Vec<(&'a str, Pos)>) {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => spreads_in(&field.node.selection_set, out),
            Selection::InlineFragment(fragment) => spreads_in(&fragment.node.selection_set, out),
            Selection::FragmentSpread(spread) => out.push((spread.node.fragment_name.node.as_str(), spread.pos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycles(document: &str) -> Vec<(String, Vec<(usize, usize)>)> {
        let parsed = async_graphql_parser::parse_query(document).expect("parses");
        fragment_cycles(&parsed).into_iter().map(|e| (e.message, e.locations)).collect()
    }

    #[test]
    fn cycles_are_found_once_each_with_graphql_js_wording() {
        type Case<'a> = (&'a str, Vec<(&'a str, Vec<(usize, usize)>)>);
        let table: Vec<Case> = vec![
            ("{ ...A } fragment A on Query { __typename }", vec![]),
            (
                "{ ...A } fragment A on Query { ...A }",
                vec![("Cannot spread fragment \"A\" within itself.", vec![(1, 32)])],
            ),
            (
                "{ ...A }\nfragment A on Query { ...B }\nfragment B on Query { ...A }",
                vec![("Cannot spread fragment \"A\" within itself via \"B\".", vec![(2, 23), (3, 23)])],
            ),
            (
                "{ ...A }\nfragment A on Query { x { ... on Query { ...B } } }\nfragment B on Query { y { ...C } }\nfragment C on Query { ...A }",
                vec![("Cannot spread fragment \"A\" within itself via \"B\", \"C\".", vec![(2, 42), (3, 27), (4, 23)])],
            ),
            // A spread of an undefined fragment is another rule's error, not a cycle.
            ("{ ...A } fragment A on Query { ...Missing }", vec![]),
            // Two fragments spreading one shared fragment twice: no cycle.
            (
                "{ ...A ...B } fragment A on Query { ...C ...C } fragment B on Query { ...C } fragment C on Query { z }",
                vec![],
            ),
        ];
        for (document, expected) in table {
            let expected: Vec<(String, Vec<(usize, usize)>)> =
                expected.into_iter().map(|(m, l)| (m.to_owned(), l)).collect();
            assert_eq!(cycles(document), expected, "{document}");
        }
    }

    #[test]
    fn a_doubling_cycle_is_found_in_linear_steps() {
        let mut document = String::from("{ ...F0 }\n");
        for level in 0..40 {
            document.push_str(&format!("fragment F{level} on Query {{ ...F{n} ...F{n} }}\n", n = level + 1));
        }
        document.push_str("fragment F40 on Query { ...F0 }\n");
        // 2^40 paths if the spreads were followed; one error for the one cycle when each
        // fragment is entered once.
        let found = cycles(&document);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].0.starts_with("Cannot spread fragment \"F0\" within itself via \"F1\", \"F2\""),
            "{}",
            found[0].0
        );
    }
}
