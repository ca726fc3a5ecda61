//! Whole GraphQL responses in the fetch cache: a query whose every root field and every
//! stitched field is covered by a cache rule is answered from memory while its shortest TTL
//! lasts. The key is the document, the operation name and the variables, the vary values and —
//! when any part is private, or authorization rules may shape the answer — the identity. Its
//! tags are its parts' (methods, types), so invalidations and writes drop it too. Answers with
//! errors are never stored.

use std::sync::Arc;

use bytes::Bytes;

use super::GraphqlRequest;
use super::document::{Prepared, RootEntry};
use crate::cache::{Cache, Entry, Key, Rule};
use crate::operation::{OperationKind, RequestContext, SelectionSet};
use crate::schema::{GraphqlSchema, Resolver};
use crate::snapshot::Snapshot;

/// A cacheable operation's key, rule and tags (named by the operation and the schema: copied
/// only when a miss needs them, so a hit allocates none).
pub(super) struct ResponseCache<'a> {
    store: Arc<Cache>,
    key: Key,
    rule: Rule,
    tags: Vec<&'a str>,
}

/// What storing an answer needs.
struct Store {
    store: Arc<Cache>,
    key: Key,
    rule: Rule,
    tags: Arc<[String]>,
}

/// What a lookup found.
pub(super) enum Lookup {
    /// The stored answer's JSON text.
    Hit(Bytes),
    /// Nothing fresh: the answer is to be computed, then stored.
    Miss(Missed),
}

/// A cacheable operation whose answer was not stored: what to store it under, with its tags'
/// versions from before it ran (an invalidation while it runs keeps it out).
pub(super) struct Missed {
    cache: Store,
    versions: Vec<u64>,
}

impl<'a> ResponseCache<'a> {
    /// The operation's cache settings, when every part of it is cacheable.
    pub(super) fn of(
        snapshot: &'a Snapshot,
        prepared: &'a Prepared,
        request: &GraphqlRequest,
        context: &RequestContext,
    ) -> Option<ResponseCache<'a>> {
        let rules = &snapshot.cache_rules;
        if prepared.kind != OperationKind::Query || rules.fields.is_empty() {
            return None;
        }
        let mut rule: Option<Rule> = None;
        let mut tags = Vec::new();
        let mut combine = |found: &Rule| rule = Some(rule.as_ref().map_or_else(|| found.clone(), |r| r.and(found)));
        for entry in &prepared.entries {
            let RootEntry::Call(call) = entry else { continue };
            if call.forbidden.is_some() {
                return None;
            }
            let found = rules.fields.get("Query", &call.root.name)?;
            combine(found);
            if let Resolver::Method(method) = &call.root.resolver {
                tags.push(method.full_name());
            }
            tags.push(call.type_name.as_str());
            stitched_parts(&snapshot.graphql, rules, &call.type_name, &call.fields, &mut combine, &mut tags)?;
        }
        let rule = rule?;
        let private = rule.private || !snapshot.policies.is_empty();
        let identity = context.identity.as_deref().filter(|_| private).map(|i| Arc::from(i.key()));
        tags.sort_unstable();
        tags.dedup();
        let store = snapshot.cache.clone();
        let key = Key::graphql(
            &request.query,
            request.operation_name.as_deref(),
            &request.variables,
            context.vary.clone().into(),
            identity,
        );
        Some(ResponseCache { store, key, rule, tags })
    }

    /// The stored answer's body (JSON text, sent as it is), if it is still fresh; else what
    /// storing the answer about to be computed needs.
    pub(super) fn lookup(self) -> Lookup {
        match self.store.get_body(&self.key) {
            Some(body) => Lookup::Hit(body),
            None => {
                let ResponseCache { store, key, rule, tags } = self;
                let tags: Arc<[String]> = tags.into_iter().map(str::to_owned).collect();
                let versions = store.versions_of(&tags);
                Lookup::Miss(Missed { cache: Store { store, key, rule, tags }, versions })
            }
        }
    }
}

impl Missed {
    /// Stores `body`, the answer's JSON text, unless the answer carries errors.
    pub(super) fn store(self, body: Bytes, has_errors: bool) {
        if has_errors {
            return;
        }
        let Missed { cache, versions } = self;
        let entry = Entry {
            body,
            metadata: http::HeaderMap::new(),
            ttl: cache.rule.ttl,
            stale: std::time::Duration::ZERO,
            stored: std::time::Instant::now(),
            tags: cache.tags,
            versions,
        };
        cache.store.insert(cache.key, entry);
    }
}

/// Combines the rules of the stitched fields under `selection` (on `type_name`); None when one
/// of them has no rule (the response is then not cacheable as a whole).
fn stitched_parts<'a>(
    schema: &'a GraphqlSchema,
    rules: &crate::cache::Rules,
    type_name: &'a str,
    selection: &'a SelectionSet,
    combine: &mut dyn FnMut(&Rule),
    tags: &mut Vec<&'a str>,
) -> Option<()> {
    for (name, set) in &selection.by_type {
        stitched_parts(schema, rules, name, set, combine, tags)?;
    }
    for field in &selection.fields {
        if field.forbidden.is_some() {
            return None;
        }
        let Some(definition) = schema.object_field(type_name, &field.field_name) else { continue };
        if definition.binding().is_some() {
            combine(rules.fields.get(type_name, &field.field_name)?);
            tags.push(type_name);
            tags.push(definition.ty.name.as_str());
        }
        if !field.children.fields.is_empty() {
            stitched_parts(schema, rules, &definition.ty.name, &field.children, combine, tags)?;
        }
    }
    Some(())
}
