//! Federation entity fetches, as pure data: a field set (`upc`, `sku variant { id }`,
//! `... on Book { isbn }`) read into a tree; the representation of a parent (`__typename`, its
//! key fields and the fields a `@requires` names); one `_entities` fetch for many parents with
//! equal representations sent once; and its answer merged back into each parent, errors moved
//! to the parents' paths. The executor sends the request; everything here is testable without
//! a subgraph.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use crate::schema::FieldSet;

/// The representation of `parent` as entity `typename` for a subgraph: `__typename`, the key's
/// fields and the required fields. None when the parent lacks one of them (it cannot be
/// fetched; its fields from that subgraph are null).
pub fn representation(parent: &Json, typename: &str, key: &FieldSet, requires: Option<&FieldSet>) -> Option<Json> {
    let Json::Object(fields) = parent else { return None };
    let mut out = Map::new();
    out.insert("__typename".into(), Json::String(typename.to_owned()));
    if !key.copy(fields, typename, &mut out) {
        return None;
    }
    if let Some(requires) = requires
        && !requires.copy(fields, typename, &mut out)
    {
        return None;
    }
    Some(Json::Object(out))
}

/// One `_entities` fetch for many parents: the distinct representations, and which one each
/// parent uses.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityBatch {
    /// The representations sent, each once.
    pub representations: Vec<Json>,
    /// For each parent, its representation's index (None: it could not be represented).
    pub of_parent: Vec<Option<usize>>,
}

impl EntityBatch {
    /// Batches `parents` (in order), sending equal representations once.
    pub fn new(parents: &[Json], typename: &str, key: &FieldSet, requires: Option<&FieldSet>) -> EntityBatch {
        let mut representations: Vec<Json> = Vec::new();
        // Representations by hash; equal hashes are compared before they are merged.
        let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
        let of_parent = parents
            .iter()
            .map(|parent| {
                let represented = representation(parent, typename, key, requires)?;
                let mut hasher = rustc_hash::FxHasher::default();
                hash_json(&represented, &mut hasher);
                let candidates = seen.entry(std::hash::Hasher::finish(&hasher)).or_default();
                if let Some(&found) = candidates.iter().find(|&&i| representations[i] == represented) {
                    return Some(found);
                }
                representations.push(represented);
                candidates.push(representations.len() - 1);
                Some(representations.len() - 1)
            })
            .collect();
        EntityBatch { representations, of_parent }
    }

    /// The GraphQL request for the subgraph: `selection` (GraphQL text of the fields wanted,
    /// `{ name price }`) on `typename`, for every representation.
    pub fn request(&self, typename: &str, selection: &str) -> Json {
        let query = format!(
            "query($representations: [_Any!]!) {{ _entities(representations: $representations) {{ ... on {typename} {selection} }} }}"
        );
        serde_json::json!({ "query": query, "variables": { "representations": self.representations } })
    }

    /// Merges the subgraph's `answer` into `parents`: each parent gets its entity's fields (an
    /// object is merged into an existing object). Errors at `["_entities", n, ...]` are returned
    /// once per parent of representation `n`, with their path below the entity; other errors
    /// apply to every parent in the batch. Returns (parent index, path below it, message, code).
    pub fn merge(&self, parents: &mut [Json], answer: &Json) -> Vec<(usize, Vec<Json>, String, Option<String>)> {
        let entities = answer.pointer("/data/_entities").and_then(Json::as_array);
        for (parent, index) in parents.iter_mut().zip(&self.of_parent) {
            let entity = index.and_then(|i| entities.and_then(|e| e.get(i)));
            if let (Json::Object(target), Some(Json::Object(fields))) = (parent, entity) {
                for (name, value) in fields {
                    merge_value(target.entry(name.clone()).or_insert(Json::Null), value);
                }
            }
        }
        let mut errors = Vec::new();
        for error in answer.get("errors").and_then(Json::as_array).into_iter().flatten() {
            let message = error.get("message").and_then(Json::as_str).unwrap_or("the subgraph reported an error");
            let code = error.pointer("/extensions/code").and_then(Json::as_str).map(str::to_owned);
            let path = error.get("path").and_then(Json::as_array);
            let at = match path.map(Vec::as_slice) {
                Some([Json::String(root), Json::Number(n), rest @ ..]) if root == "_entities" => {
                    n.as_u64().map(|n| (Some(n as usize), rest.to_vec()))
                }
                _ => None,
            };
            let (representation, below) = at.unwrap_or((None, Vec::new()));
            for (parent, index) in self.of_parent.iter().enumerate() {
                if representation.is_none() || *index == representation {
                    errors.push((parent, below.clone(), message.to_owned(), code.clone()));
                }
            }
        }
        errors
    }
}

/// Feeds `value` to `hasher` (object fields in their order, which a representation's field set
/// fixes).
fn hash_json(value: &Json, hasher: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    match value {
        Json::Null => 0u8.hash(hasher),
        Json::Bool(b) => (1u8, b).hash(hasher),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => (2u8, i).hash(hasher),
            (None, Some(u)) => (2u8, u).hash(hasher),
            _ => (2u8, n.as_f64().unwrap_or_default().to_bits()).hash(hasher),
        },
        Json::String(s) => (3u8, s).hash(hasher),
        Json::Array(items) => {
            (4u8, items.len()).hash(hasher);
            items.iter().for_each(|item| hash_json(item, hasher));
        }
        Json::Object(fields) => {
            (5u8, fields.len()).hash(hasher);
            for (name, field) in fields {
                name.hash(hasher);
                hash_json(field, hasher);
            }
        }
    }
}

/// Merges `from` into `into`: objects field by field, anything else replaced.
fn merge_value(into: &mut Json, from: &Json) {
    match (into, from) {
        (Json::Object(target), Json::Object(source)) => {
            for (name, value) in source {
                merge_value(target.entry(name.clone()).or_insert(Json::Null), value);
            }
        }
        (into, from) => *into = from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn representations_carry_the_key_and_the_required_fields() {
        let key = FieldSet::parse("sku variant { id }").expect("key");
        let requires = FieldSet::parse("price weight").expect("requires");
        let parent = json!({"__typename": "Product", "sku": "s1", "variant": {"id": "v1", "color": "red"}, "price": 10, "weight": 2, "name": "Chair"});
        // (key, requires, parent, representation)
        let table = [
            (&key, None, parent.clone(), Some(json!({"__typename": "Product", "sku": "s1", "variant": {"id": "v1"}}))),
            (
                &key,
                Some(&requires),
                parent.clone(),
                Some(json!({"__typename": "Product", "sku": "s1", "variant": {"id": "v1"}, "price": 10, "weight": 2})),
            ),
            (&key, None, json!({"sku": "s1"}), None),
            (
                &key,
                None,
                json!({"sku": "s1", "variant": null}),
                Some(json!({"__typename": "Product", "sku": "s1", "variant": null})),
            ),
            (&key, None, json!("not an object"), None),
        ];
        for (key, requires, parent, expected) in table {
            assert_eq!(representation(&parent, "Product", key, requires), expected, "{parent}");
        }
        let on_type = FieldSet::parse("id ... on Book { isbn }").expect("set");
        let book = json!({"id": "1", "isbn": "978"});
        assert_eq!(
            representation(&book, "Book", &on_type, None),
            Some(json!({"__typename": "Book", "id": "1", "isbn": "978"}))
        );
        assert_eq!(representation(&book, "Movie", &on_type, None), Some(json!({"__typename": "Movie", "id": "1"})));
    }

    #[test]
    fn one_fetch_per_batch_with_equal_representations_sent_once_and_answers_merged_back() {
        let key = FieldSet::parse("upc").expect("key");
        let mut parents = vec![
            json!({"upc": "1", "name": "Table"}),
            json!({"upc": "2", "name": "Couch"}),
            json!({"upc": "1", "name": "Table"}),
            json!({"name": "no key"}),
        ];
        let batch = EntityBatch::new(&parents, "Product", &key, None);
        assert_eq!(
            batch.representations,
            [json!({"__typename": "Product", "upc": "1"}), json!({"__typename": "Product", "upc": "2"})]
        );
        assert_eq!(batch.of_parent, [Some(0), Some(1), Some(0), None]);
        let request = batch.request("Product", "{ inStock shippingEstimate }");
        assert_eq!(
            request["query"],
            "query($representations: [_Any!]!) { _entities(representations: $representations) { ... on Product { inStock shippingEstimate } } }"
        );
        assert_eq!(request["variables"]["representations"].as_array().map(Vec::len), Some(2));
        let answer = json!({
            "data": {"_entities": [{"inStock": true, "dimensions": {"w": 1}}, {"inStock": false, "dimensions": {"w": 2}}]},
            "errors": [
                {"message": "no estimate", "path": ["_entities", 1, "shippingEstimate"], "extensions": {"code": "NOT_FOUND"}},
                {"message": "slow subgraph"}
            ]
        });
        let errors = batch.merge(&mut parents, &answer);
        assert_eq!(parents[0], json!({"upc": "1", "name": "Table", "inStock": true, "dimensions": {"w": 1}}));
        assert_eq!(parents[2]["inStock"], true, "a shared representation answers both parents");
        assert_eq!(parents[1]["inStock"], false);
        assert_eq!(parents[3], json!({"name": "no key"}));
        assert_eq!(
            errors[0],
            (1, vec![json!("shippingEstimate")], "no estimate".to_owned(), Some("NOT_FOUND".to_owned()))
        );
        assert_eq!(
            errors.iter().filter(|e| e.2 == "slow subgraph").count(),
            4,
            "an error without a path concerns every parent"
        );
    }
}
