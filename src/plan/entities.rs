//! Federation entity fetches, as pure data: a field set (`upc`, `sku variant { id }`,
//! `... on Book { isbn }`) read into a tree; the representation of a parent (`__typename`, its
//! key fields and the fields a `@requires` names); one `_entities` fetch for many parents with
//! equal representations sent once; and its answer merged back into each parent, errors moved
//! to the parents' paths. The executor sends the request; everything here is testable without
//! a subgraph.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::schema::FieldSet;
use crate::tree::{Object, Value};

/// The representation of `parent` as entity `typename` for a subgraph, as JSON text:
/// `__typename`, the key's fields and the required fields, read under `{prefix}{name}` (as the
/// planner fetched them). None when the parent lacks one of them (it cannot be fetched; its
/// fields from that subgraph are null).
pub fn representation(
    parent: &Object,
    typename: &str,
    key: &FieldSet,
    requires: Option<&FieldSet>,
    prefix: &str,
) -> Option<String> {
    // Plain fields (`upc`, `id`, `price weight`): written straight from the parent.
    if let (Some(key_fields), Some(required)) =
        (key.flat_fields(), requires.map_or(Some(Vec::new()), FieldSet::flat_fields))
    {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"__typename\":");
        serde_json::to_writer(&mut out, typename).ok()?;
        // The key's fields, then the required ones it does not name already.
        let mut fields = key_fields;
        for field in required {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        let mut name = String::with_capacity(prefix.len() + 16);
        for field in fields {
            name.clear();
            name.push_str(prefix);
            name.push_str(field);
            let value = parent.get(&name).or_else(|| parent.get(field))?;
            out.push(b',');
            serde_json::to_writer(&mut out, field).ok()?;
            out.push(b':');
            serde_json::to_writer(&mut out, value).ok()?;
        }
        out.push(b'}');
        return String::from_utf8(out).ok();
    }
    // Nested fields and type conditions.
    let mut out = Object::with_capacity(4);
    out.push("__typename".into(), Value::String(typename.into()));
    if !key.copy(parent, typename, &mut out, prefix) {
        return None;
    }
    if let Some(requires) = requires
        && !requires.copy(parent, typename, &mut out, prefix)
    {
        return None;
    }
    serde_json::to_string(&out).ok()
}

/// One `_entities` fetch for many parents: the distinct representations, and which one each
/// parent uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityBatch {
    /// The representations sent, each once, as JSON text.
    pub representations: Vec<String>,
    /// For each parent, its representation's index (None: it could not be represented).
    pub of_parent: Vec<Option<usize>>,
}

impl EntityBatch {
    /// Batches `parents` (in order), sending equal representations once.
    pub fn new<'a>(
        parents: impl IntoIterator<Item = &'a Object>,
        typename: &str,
        key: &FieldSet,
        requires: Option<&FieldSet>,
        prefix: &str,
    ) -> EntityBatch {
        let mut representations: Vec<String> = Vec::new();
        // By the text's hash, the first representation with it: no text is copied to be a key.
        let mut seen: HashMap<u64, usize, rustc_hash::FxBuildHasher> = HashMap::default();
        let of_parent = parents
            .into_iter()
            .map(|parent| {
                let represented = representation(parent, typename, key, requires, prefix)?;
                let hash = std::hash::BuildHasher::hash_one(&rustc_hash::FxBuildHasher, &represented);
                match seen.get(&hash) {
                    Some(&found) if representations[found] == represented => return Some(found),
                    // Another text with the same hash: look through them all (rare).
                    Some(_) => {
                        if let Some(found) = representations.iter().position(|r| *r == represented) {
                            return Some(found);
                        }
                    }
                    None => {
                        seen.insert(hash, representations.len());
                    }
                }
                representations.push(represented);
                Some(representations.len() - 1)
            })
            .collect();
        EntityBatch { representations, of_parent }
    }
}

/// One part of an entities request: a batch, its type, the selection on it and the variables
/// that selection uses (`(name, type, value)`).
pub struct EntitiesPart<'a> {
    /// The representations.
    pub batch: &'a EntityBatch,
    /// The entity type.
    pub typename: &'a str,
    /// The selection on it, ` { ... }`.
    pub selection: &'a str,
    /// Variables the selection uses.
    pub variables: &'a [(String, String, Json)],
}

/// One GraphQL request to a subgraph for several batches, as its JSON body: part `n` is
/// answered at `data.eN` (`eN: _entities(representations: $rN) { ... on Type { ... } }`). The
/// representations are written as they are, not parsed into a request value first.
pub fn entities_request(parts: &[EntitiesPart<'_>]) -> Vec<u8> {
    let mut declarations = Vec::new();
    let mut fields = String::new();
    for (n, part) in parts.iter().enumerate() {
        declarations.push(format!("$r{n}: [_Any!]!"));
        for (name, ty, _) in part.variables {
            declarations.push(format!("${name}: {ty}"));
        }
        fields.push_str(&format!(
            " e{n}: _entities(representations: $r{n}) {{ ... on {}{} }}",
            part.typename, part.selection
        ));
    }
    let query = format!("query Switchyard({}) {{{fields} }}", declarations.join(", "));
    let size: usize = parts.iter().flat_map(|p| &p.batch.representations).map(|r| r.len() + 1).sum();
    let mut body = Vec::with_capacity(query.len() + size + 64);
    body.extend_from_slice(b"{\"query\":");
    let _ = serde_json::to_writer(&mut body, &query);
    body.extend_from_slice(b",\"variables\":{");
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(format!("\"r{n}\":[").as_bytes());
        for (i, representation) in part.batch.representations.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(representation.as_bytes());
        }
        body.push(b']');
        for (name, _, value) in part.variables {
            body.push(b',');
            let _ = serde_json::to_writer(&mut body, name);
            body.push(b':');
            let _ = serde_json::to_writer(&mut body, value);
        }
    }
    body.extend_from_slice(b"}}");
    body
}

/// An error a subgraph reported for an entities request, placed: the part it concerns (None:
/// every part), the representation (None: every one of the part's), and its path below the
/// entity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityError {
    /// The part (`eN`), when the path names one.
    pub part: Option<usize>,
    /// The representation, when the path names one.
    pub representation: Option<usize>,
    /// The path below the entity.
    pub below: Vec<Json>,
    /// The message.
    pub message: String,
    /// `extensions.code`, if any.
    pub code: Option<String>,
}

/// The errors of an entities answer (its `errors`), placed by their paths
/// (`["e0", 3, "name"]`).
pub fn entity_errors(errors: &[Json]) -> Vec<EntityError> {
    let mut out = Vec::new();
    for error in errors {
        let message = error.get("message").and_then(Json::as_str).unwrap_or("the subgraph reported an error");
        let code = error.pointer("/extensions/code").and_then(Json::as_str).map(str::to_owned);
        let path = error.get("path").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
        let part = path.first().and_then(Json::as_str).and_then(|p| p.strip_prefix('e')).and_then(|n| n.parse().ok());
        let representation = part.and(path.get(1)).and_then(Json::as_u64).and_then(|n| usize::try_from(n).ok());
        let below = if representation.is_some() { path[2..].to_vec() } else { Vec::new() };
        out.push(EntityError { part, representation, below, message: message.to_owned(), code });
    }
    out
}

/// Feeds `value` to `hasher` (object fields in their order, which a representation's field set
/// fixes).
pub(crate) fn hash_json(value: &Json, hasher: &mut impl std::hash::Hasher) {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: &Json) -> Object {
        match crate::tree::Value::from_json(value.clone()) {
            crate::tree::Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

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
        ];
        let read = |text: Option<String>| text.map(|t| serde_json::from_str::<Json>(&t).expect("JSON"));
        for (key, requires, parent, expected) in table {
            assert_eq!(read(representation(&object(&parent), "Product", key, requires, "")), expected, "{parent}");
        }
        // Plain fields are written as they are, in order, each once; a missing one fails.
        let upc = FieldSet::parse("upc").expect("key");
        let needs = FieldSet::parse("upc price weight").expect("requires");
        let product = json!({"upc": "1", "price": 10, "weight": null, "name": "Chair"});
        assert_eq!(
            representation(&object(&product), "Product", &upc, Some(&needs), "").as_deref(),
            Some(r#"{"__typename":"Product","upc":"1","price":10,"weight":null}"#)
        );
        assert_eq!(representation(&object(&json!({"upc": "1", "price": 10})), "Product", &upc, Some(&needs), ""), None);
        let on_type = FieldSet::parse("id ... on Book { isbn }").expect("set");
        let book = json!({"id": "1", "isbn": "978"});
        assert_eq!(
            read(representation(&object(&book), "Book", &on_type, None, "")),
            Some(json!({"__typename": "Book", "id": "1", "isbn": "978"}))
        );
        assert_eq!(
            read(representation(&object(&book), "Movie", &on_type, None, "")),
            Some(json!({"__typename": "Movie", "id": "1"}))
        );
        // Fetched under the planner's aliases, read from them, never from the client's keys.
        let aliased = json!({"upc": "client's alias for another field", "_sy_upc": "1"});
        assert_eq!(
            read(representation(&object(&aliased), "Product", &upc, None, "_sy_")),
            Some(json!({"__typename": "Product", "upc": "1"}))
        );
    }

    #[test]
    fn one_fetch_per_batch_with_equal_representations_sent_once_and_errors_placed() {
        let key = FieldSet::parse("upc").expect("key");
        let parents =
            [json!({"upc": "1", "name": "Table"}), json!({"upc": "2"}), json!({"upc": "1"}), json!({"name": "no key"})];
        let parents: Vec<Object> = parents.iter().map(object).collect();
        let batch = EntityBatch::new(&parents, "Product", &key, None, "");
        assert_eq!(
            batch.representations,
            [r#"{"__typename":"Product","upc":"1"}"#, r#"{"__typename":"Product","upc":"2"}"#]
        );
        assert_eq!(batch.of_parent, [Some(0), Some(1), Some(0), None]);
        let users =
            EntityBatch::new(&[object(&json!({"id": "7"}))], "User", &FieldSet::parse("id").expect("key"), None, "");
        let variables = [("a0".to_owned(), "Int".to_owned(), json!(3))];
        let request: Json = serde_json::from_slice(&entities_request(&[
            EntitiesPart { batch: &batch, typename: "Product", selection: " { inStock }", variables: &[] },
            EntitiesPart {
                batch: &users,
                typename: "User",
                selection: " { reviews(first: $a0) { id } }",
                variables: &variables,
            },
        ]))
        .expect("a JSON body");
        assert_eq!(
            request["query"],
            "query Switchyard($r0: [_Any!]!, $r1: [_Any!]!, $a0: Int) { e0: _entities(representations: $r0) { ... on Product { inStock } } e1: _entities(representations: $r1) { ... on User { reviews(first: $a0) { id } } } }"
        );
        assert_eq!(request["variables"]["r0"].as_array().map(Vec::len), Some(2));
        assert_eq!(request["variables"]["a0"], 3);
        let answer = json!([
            {"message": "no estimate", "path": ["e0", 1, "shippingEstimate"], "extensions": {"code": "NOT_FOUND"}},
            {"message": "bad user", "path": ["e1"]},
            {"message": "slow subgraph"}
        ]);
        let errors = entity_errors(answer.as_array().expect("a list"));
        assert_eq!(
            errors[0],
            EntityError {
                part: Some(0),
                representation: Some(1),
                below: vec![json!("shippingEstimate")],
                message: "no estimate".into(),
                code: Some("NOT_FOUND".into())
            }
        );
        assert_eq!((errors[1].part, errors[1].representation), (Some(1), None));
        assert_eq!((errors[2].part, errors[2].representation), (None, None));
    }
}
