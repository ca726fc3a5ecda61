//! Planning a root field of a Federation supergraph: one GraphQL fetch to the subgraph that owns
//! the field, selecting everything that subgraph resolves (what a `@provides` provides
//! included); each field it cannot resolve goes to an entity fetch (`_entities`) on a subgraph
//! that can, chosen so the fields of one parent type at one path go to as few subgraphs as
//! possible, keyed by a key whose fields the parent's subgraph returns. A field's `@requires`
//! fields are fetched first — in the parent's fetch when its subgraph resolves them, else by
//! an entity fetch the requiring one waits for — and sent in the representations. Key and
//! required fields travel under `_sy_` aliases, apart from whatever the client selected under
//! the same names. The result is a tree: each entity fetch runs once its parent fetch has
//! answered, for every parent object at its path at once. Pure; the executor sends it.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::PlanError;
use crate::operation::{FieldSelection, SelectionSet, typename_selection};
use crate::plan::render::remote_key;
use crate::schema::{FieldSet, GraphqlSchema, RootKind, SuperField, SuperType, Supergraph, TypeRef};

/// The alias prefix of fields a plan fetches for itself (keys, required fields).
pub const INTERNAL_PREFIX: &str = "_sy_";

/// A path step that keeps only the objects of one type (`@Book`): below an interface or union,
/// an entity fetch concerns the values of one object type.
pub const TYPE_STEP: char = '@';

/// A root field's fetch from its subgraph, with the entity fetches below it.
#[derive(Debug, Clone)]
pub struct SubgraphFetch {
    /// The subgraph (its name is its cluster's).
    pub graph: String,
    /// The GraphQL request's query.
    pub document: String,
    /// Its variables.
    pub variables: Map<String, Json>,
    /// The root field's response key in the answer's `data`.
    pub response_key: String,
    /// Entity fetches that wait for this one.
    pub entities: Vec<EntityFetch>,
}

/// A variable of a fetch: its name, its type as SDL and its value.
pub type Variable = (String, String, Json);

/// One entity fetch: fields of the objects at `path`, from a subgraph or from the call
/// schemas/ declares for the type.
#[derive(Debug, Clone)]
pub struct EntityFetch {
    /// Keys from the root field's value to the parent objects (lists walked): response keys,
    /// or json_names below a gRPC answer.
    pub path: Vec<String>,
    /// The parents' (entity) type.
    pub type_name: String,
    /// The alias prefix the parents' key and required fields are under (`_sy_`, or none in a
    /// gRPC answer, where they are the message's own fields).
    pub key_prefix: &'static str,
    /// Entity fetches that wait for this one.
    pub then: Vec<EntityFetch>,
    /// Who resolves it.
    pub source: EntitySource,
}

/// Who resolves an entity fetch.
#[derive(Debug, Clone)]
pub enum EntitySource {
    /// A subgraph's `_entities`.
    Subgraph(SubgraphEntities),
    /// The gRPC or REST call schemas/ declares for the type (`extend type Book @grpc(...)`),
    /// batched or deduplicated as a stitched field's is; its answer is merged into the parent.
    Call {
        /// The call.
        binding: std::sync::Arc<crate::schema::Binding>,
        /// The cluster serving it, if any.
        cluster: Option<String>,
    },
}

/// The `_entities` side of an entity fetch.
#[derive(Debug, Clone)]
pub struct SubgraphEntities {
    /// The subgraph asked.
    pub graph: String,
    /// The key the representations carry.
    pub key: FieldSet,
    /// The key as written in the supergraph (for plans).
    pub key_text: String,
    /// Fields of the parent the subgraph requires, carried in the representations.
    pub requires: Option<FieldSet>,
    /// The selection on the entity type, ` { ... }`.
    pub selection: String,
    /// Variables the selection uses.
    pub variables: Vec<Variable>,
}

/// Plans of supergraph root fields by what determines them — the root kind, the field's
/// normalised selection and its argument values (planned fetches carry them as variables) —
/// so a repeated operation is planned once per snapshot. Bounded by the plans' document sizes.
#[derive(Clone)]
pub struct PlanCache {
    plans: moka::sync::Cache<u64, Arc<CachedPlan>>,
}

struct CachedPlan {
    kind: RootKind,
    response_key: String,
    field_name: String,
    children: Arc<SelectionSet>,
    arguments: Map<String, Json>,
    fetch: Arc<SubgraphFetch>,
}

impl fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlanCache({} plans)", self.plans.entry_count())
    }
}

impl Default for PlanCache {
    fn default() -> Self {
        let plans = moka::sync::Cache::builder()
            .weigher(|_: &u64, plan: &Arc<CachedPlan>| u32::try_from(plan.fetch.document.len()).unwrap_or(u32::MAX))
            .max_capacity(16 * 1024 * 1024)
            .build();
        PlanCache { plans }
    }
}

impl PlanCache {
    /// The plan for root field `field_name` under `response_key`, selecting `children`, with
    /// `arguments`: the cached one, or `plan`'s (kept when it succeeds). Nothing is copied to
    /// look a plan up.
    pub fn get_or_plan(
        &self,
        kind: RootKind,
        (response_key, field_name): (&str, &str),
        children: &Arc<SelectionSet>,
        arguments: &Map<String, Json>,
        plan: impl FnOnce() -> Result<SubgraphFetch, PlanError>,
    ) -> Result<Arc<SubgraphFetch>, PlanError> {
        let mut hasher = rustc_hash::FxHasher::default();
        kind.hash(&mut hasher);
        response_key.hash(&mut hasher);
        field_name.hash(&mut hasher);
        hash_set(children, &mut hasher);
        for (name, value) in arguments {
            name.hash(&mut hasher);
            crate::plan::entities::hash_json(value, &mut hasher);
        }
        let key = hasher.finish();
        if let Some(found) = self.plans.get(&key)
            && found.kind == kind
            && found.response_key == response_key
            && found.field_name == field_name
            && (Arc::ptr_eq(&found.children, children) || found.children == *children)
            && found.arguments == *arguments
        {
            return Ok(found.fetch.clone());
        }
        let fetch = Arc::new(plan()?);
        let cached = CachedPlan {
            kind,
            response_key: response_key.to_owned(),
            field_name: field_name.to_owned(),
            children: Arc::clone(children),
            arguments: arguments.clone(),
            fetch: fetch.clone(),
        };
        self.plans.insert(key, Arc::new(cached));
        Ok(fetch)
    }
}

/// Hashes everything of a selection that planning reads.
fn hash_selection(selected: &FieldSelection, hasher: &mut impl Hasher) {
    selected.response_key.hash(hasher);
    selected.field_name.hash(hasher);
    selected.defer.hash(hasher);
    selected.forbidden.is_some().hash(hasher);
    for (name, value) in &selected.arguments {
        name.hash(hasher);
        crate::plan::entities::hash_json(value, hasher);
    }
    hash_set(&selected.children, hasher);
}

fn hash_set(set: &SelectionSet, hasher: &mut impl Hasher) {
    set.fields.len().hash(hasher);
    set.fields.iter().for_each(|field| hash_selection(field, hasher));
    for (name, inner) in &set.by_type {
        name.hash(hasher);
        hash_set(inner, hasher);
    }
}

/// Plans root field `selected` (of root `kind`, with `arguments`) of `supergraph`, whose API
/// schema is `schema`.
pub fn plan_root(
    supergraph: &Supergraph,
    schema: &GraphqlSchema,
    kind: RootKind,
    selected: &FieldSelection,
    arguments: &Map<String, Json>,
    output: &TypeRef,
    cluster_of: ClusterOf<'_>,
) -> Result<SubgraphFetch, PlanError> {
    let (root_key, keyword) = match kind {
        RootKind::Query => ("query", "query"),
        RootKind::Mutation => ("mutation", "mutation"),
        RootKind::Subscription => ("subscription", "subscription"),
    };
    let root_name = supergraph.roots.get(root_key).map_or(keyword, String::as_str);
    let unplannable =
        |why: String| PlanError::Unplannable { field: format!("{root_name}.{}", selected.field_name), why };
    let root = supergraph.types.get(root_name).ok_or_else(|| unplannable("the supergraph has no such type".into()))?;
    let field =
        root.field(&selected.field_name).ok_or_else(|| unplannable("the supergraph has no such field".into()))?;
    let graph = *root.resolving(field).first().ok_or_else(|| unplannable("no subgraph resolves it".into()))?;
    let mut planner = Planner { supergraph, schema, cluster_of, next_variable: 0 };
    let mut variables = Vec::new();
    let definition = schema.root_field(kind, &selected.field_name);
    let mut argument_text = Vec::new();
    for (name, value) in arguments.iter().filter(|(_, v)| !v.is_null()) {
        let ty = definition
            .and_then(|d| d.arguments.iter().find(|a| &a.name == name))
            .map(|a| a.ty.to_string())
            .ok_or_else(|| unplannable(format!("it has no argument `{name}`")))?;
        argument_text.push(format!("{name}: ${}", planner.variable(ty, value.clone(), &mut variables)));
    }
    let mut body = remote_key_text(selected);
    if !argument_text.is_empty() {
        body.push('(');
        body.push_str(&argument_text.join(", "));
        body.push(')');
    }
    let mut entities = Vec::new();
    if !selected.children.fields.is_empty() {
        let scope = Scope { graph: Some(graph), provided: provides_in(field, graph) };
        let path = &mut Vec::new();
        planner.select(scope, &output.name, &selected.children, &[], path, &mut body, &mut variables, &mut entities)?;
    }
    let mut document = format!("{keyword} Switchyard");
    if !variables.is_empty() {
        let declarations: Vec<String> = variables.iter().map(|(name, ty, _)| format!("${name}: {ty}")).collect();
        document.push_str(&format!("({})", declarations.join(", ")));
    }
    document.push_str(&format!(" {{ {body} }}"));
    Ok(SubgraphFetch {
        graph: supergraph.subgraphs[graph].name.clone(),
        document,
        variables: variables.into_iter().map(|(name, _, value)| (name, value)).collect(),
        response_key: remote_key(&selected.response_key, &selected.field_name),
        entities,
    })
}

/// The entity fetches below a backend's answer (a gRPC message, or a REST source's JSON) of
/// type `type_name` for `selection`: the fields of a type the supergraph shares with that
/// backend's type (`extend type Book @grpc(...)` in schemas/) that only subgraphs resolve.
pub fn plan_below_message(
    supergraph: &Supergraph,
    schema: &GraphqlSchema,
    type_name: &str,
    selection: &SelectionSet,
    cluster_of: ClusterOf<'_>,
) -> Result<Vec<EntityFetch>, PlanError> {
    let mut planner = Planner { supergraph, schema, cluster_of, next_variable: 0 };
    let mut entities = Vec::new();
    planner.below_message(type_name, selection, &mut Vec::new(), &mut entities)?;
    Ok(entities)
}

impl Planner<'_> {
    fn below_message(
        &mut self,
        type_name: &str,
        selection: &SelectionSet,
        path: &mut Vec<String>,
        entities: &mut Vec<EntityFetch>,
    ) -> Result<(), PlanError> {
        let mut remote = Vec::new();
        for selected in selection.fields.iter().filter(|f| f.forbidden.is_none()) {
            let Some(definition) = self.schema.object_field(type_name, &selected.field_name) else { continue };
            match &definition.source {
                crate::schema::FieldSource::Proto(field) if !selected.children.fields.is_empty() => {
                    path.push(field.json_name().to_owned());
                    self.below_message(&definition.ty.name, &selected.children, path, entities)?;
                    path.pop();
                }
                crate::schema::FieldSource::Json(keys) if !selected.children.fields.is_empty() => {
                    path.extend(keys.iter().cloned());
                    self.below_message(&definition.ty.name, &selected.children, path, entities)?;
                    path.truncate(path.len() - keys.len());
                }
                crate::schema::FieldSource::Remote => remote.push(selected),
                _ => {}
            }
        }
        if remote.is_empty() {
            return Ok(());
        }
        let Some(ty) = self.supergraph.types.get(type_name) else { return Ok(()) };
        let scope = Scope { graph: None, provided: None };
        self.entity_fetches(scope, ty, &remote, path, &mut Vec::new(), entities)
    }
}

/// `key: name` (or `name`) for a selected field.
fn remote_key_text(selected: &FieldSelection) -> String {
    let key = remote_key(&selected.response_key, &selected.field_name);
    if key == selected.field_name { key } else { format!("{key}: {}", selected.field_name) }
}

/// What `field` provides of its value when `graph` resolves it.
fn provides_in(field: &SuperField, graph: usize) -> Option<&FieldSet> {
    field.joins.iter().find(|j| j.graph == Some(graph))?.provides_set.as_ref()
}

/// Where a selection is fetched from: a subgraph (None: a gRPC answer, whose message fields
/// are all there), and what the field above provides.
#[derive(Clone, Copy)]
struct Scope<'a> {
    graph: Option<usize>,
    provided: Option<&'a FieldSet>,
}

impl Scope<'_> {
    /// The prefix the planner's own fields are under in this scope's answers.
    fn prefix(&self) -> &'static str {
        if self.graph.is_some() { INTERNAL_PREFIX } else { "" }
    }
}

/// The cluster serving a declared call, if any.
pub type ClusterOf<'a> = &'a dyn Fn(&crate::schema::Binding) -> Option<String>;

struct Planner<'a> {
    supergraph: &'a Supergraph,
    schema: &'a GraphqlSchema,
    cluster_of: ClusterOf<'a>,
    next_variable: usize,
}

/// The fields of one parent type at one path that one subgraph will resolve.
struct Group {
    graph: usize,
    fields: Vec<FieldSelection>,
    /// Fields fetched for another group's `@requires` (aliased selection text).
    extra: Vec<String>,
    key_text: String,
    key: FieldSet,
    requires: Option<FieldSet>,
    /// The groups whose answers this one's representations need (its key's, its required
    /// fields'); it is fetched at a level below all of them.
    after: Vec<usize>,
    /// The top-level fields other groups require of it (fetched under `extra`): their own
    /// `@requires` count as its.
    extra_names: Vec<String>,
    /// Its key comes from an `after` group's answer, not from the parent's fetch.
    chained: bool,
    /// The interface it fetches the fields through (the subgraph has it as an
    /// `@interfaceObject`): the representations' and the selection's type.
    via_interface: Option<String>,
}

impl Group {
    /// A group for `graph` keyed by `key`, waiting for nothing yet.
    fn new(graph: usize, fields: Vec<FieldSelection>, key_text: String, key: FieldSet) -> Group {
        Group {
            graph,
            fields,
            extra: Vec::new(),
            key_text,
            key,
            requires: None,
            after: Vec::new(),
            extra_names: Vec::new(),
            chained: false,
            via_interface: None,
        }
    }

    /// Has this group also fetch `set` for another group (under the planner's aliases).
    fn fetch_also(&mut self, set: &FieldSet) {
        push_pieces(&mut self.extra, set);
        self.extra_names.extend(set.top_level().iter().map(|name| (*name).to_owned()));
    }
}

impl Planner<'_> {
    fn variable(&mut self, ty: String, value: Json, variables: &mut Vec<Variable>) -> String {
        let name = format!("a{}", self.next_variable);
        self.next_variable += 1;
        variables.push((name.clone(), ty, value));
        name
    }

    fn graph_name(&self, graph: usize) -> &str {
        &self.supergraph.subgraphs[graph].name
    }

    /// True when `scope`'s answer has field `name` of `ty`.
    fn available(&self, scope: Scope<'_>, ty: &SuperType, name: &str) -> bool {
        match scope.graph {
            Some(graph) => {
                scope.provided.is_some_and(|p| p.has(name))
                    || ty.field(name).is_some_and(|field| ty.resolves(field, graph))
            }
            // A backend's own answer: a message field (read by its json_name, which is the
            // field's name) or a declared type's field read from the key of its name.
            None => self.schema.object_field(&ty.name, name).is_some_and(|f| match &f.source {
                crate::schema::FieldSource::Proto(_) => true,
                crate::schema::FieldSource::Json(keys) => keys.len() == 1 && keys[0] == name,
                _ => false,
            }),
        }
    }

    /// Writes ` { ... }` for `selection` on `type_name` (and the `extra` fields, aliased
    /// selection text) as fetched in `scope`, with the variables it uses; what the subgraph
    /// cannot resolve becomes entity fetches.
    #[allow(clippy::too_many_arguments)]
    fn select(
        &mut self,
        scope: Scope<'_>,
        type_name: &str,
        selection: &SelectionSet,
        extra: &[String],
        path: &mut Vec<String>,
        out: &mut String,
        variables: &mut Vec<Variable>,
        entities: &mut Vec<EntityFetch>,
    ) -> Result<(), PlanError> {
        let Some(ty) = self.supergraph.types.get(type_name) else { return Ok(()) };
        if self.schema.is_abstract(type_name) {
            match scope.graph {
                // A subgraph that sees an interface as an object type knows no implementation.
                Some(graph) if ty.interface_object_in(graph) => {
                    if !selection.by_type.is_empty() {
                        return self
                            .resolve_interface_object(scope, ty, selection, extra, path, out, variables, entities);
                    }
                }
                _ => return self.select_abstract(scope, ty, selection, extra, path, out, variables, entities),
            }
        }
        let mut local: Vec<String> = Vec::new();
        let mut remote: Vec<&FieldSelection> = Vec::new();
        let mut called = false;
        for selected in selection.fields.iter().filter(|f| f.forbidden.is_none()) {
            if selected.field_name == "__typename" {
                local.push(remote_key_text(selected));
                continue;
            }
            let Some(field) = ty.field(&selected.field_name) else {
                // A field of the message (or JSON answer) a declared call resolves the type from.
                called |= self.schema.entities.contains_key(type_name)
                    && self.schema.object_field(type_name, &selected.field_name).is_some_and(|f| {
                        matches!(f.source, crate::schema::FieldSource::Proto(_) | crate::schema::FieldSource::Json(_))
                    });
                continue;
            };
            if !self.available(scope, ty, &selected.field_name) {
                remote.push(selected);
                continue;
            }
            let mut text = remote_key_text(selected);
            let arguments = self.arguments(type_name, selected, variables)?;
            if !arguments.is_empty() {
                text.push_str(&format!("({})", arguments.join(", ")));
            }
            if !selected.children.fields.is_empty() {
                let child_type = self
                    .schema
                    .object_field(type_name, &selected.field_name)
                    .map(|d| d.ty.name.clone())
                    .unwrap_or_default();
                let provided = scope.graph.and_then(|graph| provides_in(field, graph));
                let inherited = scope.provided.and_then(|p| p.child(&selected.field_name));
                let child = Scope { graph: scope.graph, provided: provided.or(inherited) };
                path.push(selected.response_key.clone());
                self.select(child, &child_type, &selected.children, &[], path, &mut text, variables, entities)?;
                path.pop();
            }
            local.push(text);
        }
        if !remote.is_empty() {
            self.entity_fetches(scope, ty, &remote, path, &mut local, entities)?;
        }
        if called {
            entities.push(self.call_fetch(scope, ty, path, &mut local)?);
        }
        for piece in extra {
            push_once(&mut local, piece.clone());
        }
        drop_plain_duplicates(&mut local);
        if local.is_empty() {
            local.push("__typename".into());
        }
        out.push_str(" { ");
        out.push_str(&local.join(" "));
        out.push_str(" }");
        Ok(())
    }

    /// Writes ` { __typename ... on T { ... } }` for an interface or union: each object type
    /// the subgraph can return, selected as an object (its entity fetches only for parents of
    /// that type: the path's `@T` step).
    #[allow(clippy::too_many_arguments)]
    fn select_abstract(
        &mut self,
        scope: Scope<'_>,
        ty: &SuperType,
        selection: &SelectionSet,
        extra: &[String],
        path: &mut Vec<String>,
        out: &mut String,
        variables: &mut Vec<Variable>,
        entities: &mut Vec<EntityFetch>,
    ) -> Result<(), PlanError> {
        let mut pieces = vec![remote_key_text(&typename_selection())];
        for (concrete, set) in &selection.by_type {
            if scope.graph.is_some_and(|graph| !self.returns(ty, concrete, graph)) {
                continue;
            }
            let mut text = format!("... on {concrete}");
            path.push(format!("{TYPE_STEP}{concrete}"));
            self.select(scope, concrete, set, &[], path, &mut text, variables, entities)?;
            path.pop();
            pieces.push(text);
        }
        pieces.extend(extra.iter().cloned());
        out.push_str(" { ");
        out.push_str(&pieces.join(" "));
        out.push_str(" }");
        Ok(())
    }

    /// Whether subgraph `graph` can return object type `concrete` as a value of abstract `ty`:
    /// a member of the union, or an implementation of the interface, there.
    fn returns(&self, ty: &SuperType, concrete: &str, graph: usize) -> bool {
        match ty.kind {
            crate::schema::SuperKind::Union => ty.members.iter().any(|(g, m)| *g == graph && m == concrete),
            _ => self
                .supergraph
                .types
                .get(concrete)
                .is_some_and(|c| c.implements.iter().any(|(g, i)| *g == graph && *i == ty.name)),
        }
    }

    /// An interface value from a subgraph that sees the interface as an object type
    /// (`@interfaceObject`): that subgraph cannot tell the value's object type, so it gives
    /// the key and the interface fields it resolves that every object type selects alike; the
    /// rest — `__typename` and the fragments — comes from a subgraph that has the interface
    /// itself, by an entity fetch on the interface.
    #[allow(clippy::too_many_arguments)]
    fn resolve_interface_object(
        &mut self,
        scope: Scope<'_>,
        ty: &SuperType,
        selection: &SelectionSet,
        extra: &[String],
        path: &mut Vec<String>,
        out: &mut String,
        variables: &mut Vec<Variable>,
        entities: &mut Vec<EntityFetch>,
    ) -> Result<(), PlanError> {
        let owner = (0..self.supergraph.subgraphs.len())
            .filter(|&g| Some(g) != scope.graph && ty.defined_in(g) && !ty.interface_object_in(g))
            .find_map(|g| Some((g, self.reachable_key(scope, ty, g)?)));
        let Some((owner, (key_text, key))) = owner else {
            return Err(PlanError::Unplannable {
                field: ty.name.clone(),
                why: format!(
                    "subgraph {} has it as an @interfaceObject, and no subgraph that has the interface itself can be reached by a key it returns",
                    scope.graph.map_or("?", |g| self.graph_name(g))
                ),
            });
        };
        let (first, rest) = self.common_fields(scope, ty, selection);
        let mut local = Vec::new();
        push_pieces(&mut local, &key);
        local.extend(extra.iter().cloned());
        self.select(scope, &ty.name, &first, &local, path, out, variables, entities)?;
        let mut text = String::new();
        let mut variables = Vec::new();
        let mut below = Vec::new();
        let inner = Scope { graph: Some(owner), provided: None };
        self.select_abstract(inner, ty, &rest, &[], path, &mut text, &mut variables, &mut below)?;
        entities.push(EntityFetch {
            path: path.clone(),
            type_name: ty.name.clone(),
            key_prefix: scope.prefix(),
            then: below,
            source: EntitySource::Subgraph(SubgraphEntities {
                graph: self.graph_name(owner).to_owned(),
                key,
                key_text,
                requires: None,
                selection: text,
                variables,
            }),
        });
        Ok(())
    }

    /// Splits an interface's selection for a subgraph (`scope`) that has it as an object: the
    /// interface fields `scope` resolves that every object type selects alike (same key, same
    /// field, same arguments and selection below), and what is left for each object type.
    fn common_fields(
        &self,
        scope: Scope<'_>,
        ty: &SuperType,
        selection: &SelectionSet,
    ) -> (SelectionSet, SelectionSet) {
        let mut rest = selection.clone();
        let Some((_, first_set)) = selection.by_type.first() else { return (SelectionSet::default(), rest) };
        let common: Vec<FieldSelection> = first_set
            .fields
            .iter()
            .filter(|f| {
                f.field_name != "__typename" && f.forbidden.is_none() && self.available(scope, ty, &f.field_name)
            })
            .filter(|f| selection.by_type.iter().all(|(_, set)| set.fields.contains(f)))
            .cloned()
            .collect();
        for (_, set) in &mut rest.by_type {
            set.fields.retain(|f| !common.contains(f));
        }
        (SelectionSet::new(common), rest)
    }

    /// A subgraph that adds `field` to `ty` through an interface it sees as an object type
    /// (`@interfaceObject`), reachable by a key of that interface the parent's fetch
    /// returns: (the interface, the subgraph, the key's text, the key).
    fn through_interface(
        &self,
        scope: Scope<'_>,
        ty: &SuperType,
        field: &SuperField,
    ) -> Option<(String, usize, String, FieldSet)> {
        // Each interface once (`implements` lists it per subgraph), in declaration order.
        let mut interfaces: Vec<&str> = Vec::new();
        for (_, name) in &ty.implements {
            if !interfaces.contains(&name.as_str()) {
                interfaces.push(name);
            }
        }
        interfaces.into_iter().find_map(|name| {
            let interface = self.supergraph.types.get(name)?;
            let own = interface.field(&field.name)?;
            interface.resolving(own).into_iter().filter(|&g| interface.interface_object_in(g)).find_map(|graph| {
                let (text, key) = interface
                    .key_sets_in(graph)
                    .find(|(_, key)| key.top_level().iter().all(|name| self.available(scope, ty, name)))?;
                Some((name.to_owned(), graph, text.to_owned(), key.clone()))
            })
        })
    }

    /// `name: $aN` for each argument of a selected field, as variables.
    fn arguments(
        &mut self,
        type_name: &str,
        selected: &FieldSelection,
        variables: &mut Vec<Variable>,
    ) -> Result<Vec<String>, PlanError> {
        let mut out = Vec::new();
        for (name, value) in selected.arguments.iter().filter(|(_, v)| !v.is_null()) {
            let ty = self
                .schema
                .object_field(type_name, &selected.field_name)
                .and_then(|d| d.arguments.iter().find(|a| &a.name == name))
                .map(|a| a.ty.to_string())
                .ok_or_else(|| PlanError::Unplannable {
                    field: format!("{type_name}.{}", selected.field_name),
                    why: format!("it has no argument `{name}`"),
                })?;
            out.push(format!("{name}: ${}", self.variable(ty, value.clone(), variables)));
        }
        Ok(out)
    }

    /// The first key of `ty` that `graph` resolves and whose fields `scope` returns.
    fn reachable_key(&self, scope: Scope<'_>, ty: &SuperType, graph: usize) -> Option<(String, FieldSet)> {
        ty.key_sets_in(graph).find_map(|(text, key)| {
            key.top_level().iter().all(|name| self.available(scope, ty, name)).then(|| (text.to_owned(), key.clone()))
        })
    }

    /// A subgraph other than `scope`'s that resolves `field` of `ty` and can be reached by a
    /// key, preferring one of `chosen`.
    fn owner(&self, scope: Scope<'_>, ty: &SuperType, field: &SuperField, chosen: &[usize]) -> Option<usize> {
        let candidates: Vec<usize> = ty
            .resolving(field)
            .into_iter()
            .filter(|&g| Some(g) != scope.graph && self.reachable_key(scope, ty, g).is_some())
            .collect();
        candidates.iter().copied().find(|g| chosen.contains(g)).or_else(|| candidates.first().copied())
    }

    /// Entity fetches for the `remote` fields of `ty` at `path`; the key and required fields
    /// they need from `scope`'s fetch are added to `local`.
    fn entity_fetches(
        &mut self,
        scope: Scope<'_>,
        ty: &SuperType,
        remote: &[&FieldSelection],
        path: &mut Vec<String>,
        local: &mut Vec<String>,
        entities: &mut Vec<EntityFetch>,
    ) -> Result<(), PlanError> {
        let mut groups: Vec<Group> = Vec::new();
        for selected in remote {
            let Some(field) = ty.field(&selected.field_name) else { continue };
            let chosen: Vec<usize> = groups.iter().map(|g| g.graph).collect();
            if let Some(group) = groups
                .iter_mut()
                .find(|g| Some(g.graph) != scope.graph && g.via_interface.is_none() && ty.resolves(field, g.graph))
            {
                group.fields.push((*selected).clone());
                continue;
            }
            if let Some(graph) = self.owner(scope, ty, field, &chosen) {
                groups.push(self.group(scope, ty, graph, vec![(*selected).clone()], field)?);
                continue;
            }
            if let Some((interface, graph, key_text, key)) = self.through_interface(scope, ty, field) {
                match groups.iter_mut().find(|g| g.graph == graph && g.via_interface.as_deref() == Some(&interface)) {
                    Some(group) => group.fields.push((*selected).clone()),
                    None => groups.push(Group {
                        via_interface: Some(interface),
                        ..Group::new(graph, vec![(*selected).clone()], key_text, key)
                    }),
                }
                continue;
            }
            // No key of a resolving subgraph comes with the parent: fetch one from a subgraph
            // that does return it first.
            let (via, graph, key_text, key) =
                self.key_chain(scope, ty, field, &chosen).ok_or_else(|| self.unreachable(scope, ty, field))?;
            let provider = match groups.iter().position(|g| g.graph == via && !g.chained) {
                Some(existing) => existing,
                None => {
                    groups.push(self.group(scope, ty, via, Vec::new(), field)?);
                    groups.len() - 1
                }
            };
            groups[provider].fetch_also(&key);
            groups.push(Group {
                after: vec![provider],
                chained: true,
                ..Group::new(graph, vec![(*selected).clone()], key_text, key)
            });
        }
        // Each group's required fields: from `scope`'s fetch where it resolves them, else from
        // a group fetched first (groups added here for other groups' requires included, so a
        // requirement of a requirement is seen).
        let mut index = 0;
        while index < groups.len() {
            self.place_requirements(scope, ty, &mut groups, index, local)?;
            index += 1;
        }
        for group in groups.iter().filter(|g| !g.chained && scope.graph.is_some()) {
            push_pieces(local, &group.key);
        }
        // Build the fetches; a group that waits for another goes below it.
        let mut built: Vec<Option<EntityFetch>> = Vec::with_capacity(groups.len());
        for group in &groups {
            let mut selection = SelectionSet::new(group.fields.clone());
            selection.fields.retain(|f| f.forbidden.is_none());
            let mut text = String::new();
            let mut variables = Vec::new();
            let mut below = Vec::new();
            let inner = Scope { graph: Some(group.graph), provided: None };
            let type_name = group.via_interface.as_deref().unwrap_or(&ty.name);
            self.select(inner, type_name, &selection, &group.extra, path, &mut text, &mut variables, &mut below)?;
            built.push(Some(EntityFetch {
                path: path.clone(),
                type_name: type_name.to_owned(),
                key_prefix: scope.prefix(),
                then: below,
                source: EntitySource::Subgraph(SubgraphEntities {
                    graph: self.graph_name(group.graph).to_owned(),
                    key: group.key.clone(),
                    key_text: group.key_text.clone(),
                    requires: group.requires.clone(),
                    selection: text,
                    variables,
                }),
            }));
        }
        // Each group goes below its deepest provider, so every provider's answer is merged (a
        // level earlier, at least) before its representations are made; deeper groups move
        // first, taking their own dependents with them.
        let depths = group_depths(&groups).ok_or_else(|| PlanError::Unplannable {
            field: ty.name.clone(),
            why: "its key and @requires fields depend on each other in a cycle".into(),
        })?;
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(depths[i]));
        for index in order {
            let Some(&provider) = groups[index].after.iter().max_by_key(|&&p| depths[p]) else { continue };
            if let Some(fetch) = built[index].take()
                && let Some(provider) = built[provider].as_mut()
            {
                provider.then.push(fetch);
            }
        }
        entities.extend(built.into_iter().flatten());
        Ok(())
    }

    /// Group `index`'s required fields (its own fields' and those others ask of it): from
    /// `scope`'s fetch where it resolves them (added to `local`), else from a group fetched
    /// first — one already going to the subgraph that resolves them, or a new one.
    fn place_requirements(
        &self,
        scope: Scope<'_>,
        ty: &SuperType,
        groups: &mut Vec<Group>,
        index: usize,
        local: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        let graph = groups[index].graph;
        let names = groups[index].fields.iter().map(|f| f.field_name.as_str());
        let requires = names
            .chain(groups[index].extra_names.iter().map(String::as_str))
            .filter_map(|name| ty.field(name))
            .filter_map(|f| f.joins.iter().find(|j| j.graph == Some(graph))?.requires_set.clone())
            .reduce(|a, b| a.union(&b));
        let Some(requires) = requires else { return Ok(()) };
        let (here, elsewhere) = requires.partition(|name| self.available(scope, ty, name));
        if !here.is_empty() && scope.graph.is_some() {
            push_pieces(local, &here);
        }
        if !elsewhere.is_empty() {
            let first = elsewhere.top_level()[0].to_owned();
            let field = ty.field(&first).ok_or_else(|| PlanError::Unplannable {
                field: format!("{}.{first}", ty.name),
                why: "a @requires names a field the type does not have".into(),
            })?;
            let chosen: Vec<usize> =
                groups.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, g)| g.graph).collect();
            let graph = self.owner(scope, ty, field, &chosen).ok_or_else(|| self.unreachable(scope, ty, field))?;
            // A group already going there fetches them too (it may wait for others itself: this
            // one then goes a level below it).
            let existing = groups.iter().enumerate().position(|(i, g)| {
                i != index && g.graph == graph && g.via_interface.is_none() && !waits_for(groups, i, index)
            });
            let provider = match existing {
                Some(existing) => existing,
                None => {
                    groups.push(self.group(scope, ty, graph, Vec::new(), field)?);
                    groups.len() - 1
                }
            };
            groups[provider].fetch_also(&elsewhere);
            groups[index].after.push(provider);
        }
        groups[index].requires = Some(requires);
        Ok(())
    }

    /// The declared call resolving `ty` for the objects at `path`, its key fields added to
    /// `local`.
    fn call_fetch(
        &self,
        scope: Scope<'_>,
        ty: &SuperType,
        path: &[String],
        local: &mut Vec<String>,
    ) -> Result<EntityFetch, PlanError> {
        let binding = self.schema.entities.get(&ty.name).cloned().ok_or_else(|| PlanError::Unplannable {
            field: ty.name.clone(),
            why: "no call is declared for it".into(),
        })?;
        for key in &binding.parent_fields {
            if !self.available(scope, ty, key) {
                return Err(PlanError::Unplannable {
                    field: format!("{}.{key}", ty.name),
                    why: format!(
                        "the call declared for {} needs it, and the parent's fetch does not return it",
                        ty.name
                    ),
                });
            }
            if scope.graph.is_some() {
                push_once(local, format!("{INTERNAL_PREFIX}{key}: {key}"));
            }
        }
        Ok(EntityFetch {
            path: path.to_vec(),
            type_name: ty.name.clone(),
            key_prefix: scope.prefix(),
            then: Vec::new(),
            source: EntitySource::Call { cluster: (self.cluster_of)(&binding), binding },
        })
    }

    /// A subgraph `via`, reachable from `scope`, that resolves every field of a key of a
    /// subgraph that resolves `field`: (via, that subgraph, the key's text, the key).
    fn key_chain(
        &self,
        scope: Scope<'_>,
        ty: &SuperType,
        field: &SuperField,
        chosen: &[usize],
    ) -> Option<(usize, usize, String, FieldSet)> {
        let mut found = Vec::new();
        for graph in ty.resolving(field).into_iter().filter(|&g| Some(g) != scope.graph) {
            for (text, key) in ty.key_sets_in(graph) {
                for via in 0..self.supergraph.subgraphs.len() {
                    let returns_key =
                        key.top_level().iter().all(|name| ty.field(name).is_some_and(|f| ty.resolves(f, via)));
                    if via != graph
                        && Some(via) != scope.graph
                        && returns_key
                        && self.reachable_key(scope, ty, via).is_some()
                    {
                        found.push((via, graph, text.to_owned(), key.clone()));
                    }
                }
            }
        }
        let preferred = found.iter().position(|(via, ..)| chosen.contains(via)).unwrap_or(0);
        (!found.is_empty()).then(|| found.swap_remove(preferred))
    }

    /// A group for `graph`, keyed by its first key `scope` returns (the callers chose `graph`
    /// for having one; `field` names what is unplannable if it has none).
    fn group(
        &self,
        scope: Scope<'_>,
        ty: &SuperType,
        graph: usize,
        fields: Vec<FieldSelection>,
        field: &SuperField,
    ) -> Result<Group, PlanError> {
        let (key_text, key) = self.reachable_key(scope, ty, graph).ok_or_else(|| self.unreachable(scope, ty, field))?;
        Ok(Group::new(graph, fields, key_text, key))
    }

    fn unreachable(&self, scope: Scope<'_>, ty: &SuperType, field: &SuperField) -> PlanError {
        let others: Vec<&str> = ty.resolving(field).into_iter().map(|g| self.graph_name(g)).collect();
        PlanError::Unplannable {
            field: format!("{}.{}", ty.name, field.name),
            why: format!(
                "{} does not resolve it, and no key of {} it returns leads to one that does ({})",
                scope
                    .graph
                    .map_or_else(|| "the gRPC answer".to_owned(), |g| format!("subgraph {}", self.graph_name(g))),
                ty.name,
                if others.is_empty() { "none does".to_owned() } else { others.join(", ") }
            ),
        }
    }
}

/// Whether group `index` waits (directly or not) for group `other`.
fn waits_for(groups: &[Group], index: usize, other: usize) -> bool {
    let mut stack = vec![index];
    let mut seen = vec![false; groups.len()];
    while let Some(at) = stack.pop() {
        for &provider in &groups[at].after {
            if provider == other {
                return true;
            }
            if !std::mem::replace(&mut seen[provider], true) {
                stack.push(provider);
            }
        }
    }
    false
}

/// Each group's level below the parent's fetch: 0 without providers, else one more than its
/// deepest provider's. None when providers form a cycle.
fn group_depths(groups: &[Group]) -> Option<Vec<usize>> {
    fn depth(groups: &[Group], index: usize, known: &mut [Option<usize>], visiting: &mut Vec<usize>) -> Option<usize> {
        if let Some(found) = known[index] {
            return Some(found);
        }
        if visiting.contains(&index) {
            return None;
        }
        visiting.push(index);
        let mut deepest = None;
        for &provider in &groups[index].after {
            let below = depth(groups, provider, known, visiting)?;
            deepest = Some(deepest.map_or(below, |d: usize| d.max(below)));
        }
        visiting.pop();
        let found = deepest.map_or(0, |d| d + 1);
        known[index] = Some(found);
        Some(found)
    }
    let mut known = vec![None; groups.len()];
    (0..groups.len()).map(|i| depth(groups, i, &mut known, &mut Vec::new())).collect()
}

/// Leaves out a planner field (`_sy_upc: upc`) the selection has under its own name already
/// (`upc`, a plain leaf the client selected): the readers fall back to the plain name, and the
/// subgraph answers (and the router parses and merges) the field once.
fn drop_plain_duplicates(pieces: &mut Vec<String>) {
    let plain = |name: &str| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let selected: Vec<String> = pieces.iter().filter(|p| plain(p)).cloned().collect();
    pieces.retain(|piece| {
        let Some((alias, field)) = piece.strip_prefix(INTERNAL_PREFIX).and_then(|rest| rest.split_once(": ")) else {
            return true;
        };
        !(alias == field && plain(field) && selected.iter().any(|s| s == field))
    });
}

/// Adds `set`'s fields, under the planner's aliases, to a selection's pieces (each once).
fn push_pieces(pieces: &mut Vec<String>, set: &FieldSet) {
    for piece in set.selection_pieces(INTERNAL_PREFIX) {
        push_once(pieces, piece);
    }
}

/// Adds `text` to a selection's pieces unless it is there already.
fn push_once(pieces: &mut Vec<String>, text: String) {
    if !pieces.contains(&text) {
        pieces.push(text);
    }
}

impl fmt::Display for SubgraphFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "subgraph {}: {}", self.graph, self.document)?;
        write_entities(f, &self.entities, 2)
    }
}

/// The entity fetches below a fetch, one per line, indented by depth.
pub fn write_entities(f: &mut fmt::Formatter<'_>, entities: &[EntityFetch], depth: usize) -> fmt::Result {
    for entity in entities {
        let at = if entity.path.is_empty() { "(root)".to_owned() } else { entity.path.join(".") };
        match &entity.source {
            EntitySource::Subgraph(subgraph) => {
                write!(
                    f,
                    "{:indent$}then _entities {} by {{ {} }}",
                    "",
                    entity.type_name,
                    subgraph.key_text,
                    indent = depth * 2
                )?;
                if let Some(requires) = &subgraph.requires {
                    write!(f, " with {{ {} }}", requires.selection_text(""))?;
                }
                writeln!(f, " at {at} from {}:{}", subgraph.graph, subgraph.selection)?;
            }
            EntitySource::Call { binding, cluster } => writeln!(
                f,
                "{:indent$}then {} by {{ {} }} at {at} ← {} via {}",
                "",
                entity.type_name,
                binding.parent_fields.join(" "),
                super::describe_binding(binding),
                cluster.as_deref().unwrap_or("(no backend)"),
                indent = depth * 2
            )?,
        }
        write_entities(f, &entity.then, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::json;

    use super::*;

    fn field(name: &str, children: Vec<FieldSelection>) -> FieldSelection {
        FieldSelection {
            response_key: name.into(),
            field_name: name.into(),
            children: SelectionSet::new(children),
            arguments: Vec::new(),
            defer: None,
            forbidden: None,
        }
    }

    fn fetch(document: &str) -> SubgraphFetch {
        SubgraphFetch {
            graph: "accounts".into(),
            document: document.into(),
            variables: Map::new(),
            response_key: "me".into(),
            entities: Vec::new(),
        }
    }

    #[test]
    fn planner_fields_the_client_selected_plainly_are_fetched_once() {
        let pieces = |list: &[&str]| list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        // (pieces, what is fetched)
        let table = [
            (pieces(&["upc", "name", "_sy_upc: upc"]), pieces(&["upc", "name"])),
            // Aliased, with arguments or with a selection: not the plain field; the alias stays.
            (pieces(&["upc: name", "_sy_upc: upc"]), pieces(&["upc: name", "_sy_upc: upc"])),
            (
                pieces(&["price(currency: $a0)", "_sy_price: price"]),
                pieces(&["price(currency: $a0)", "_sy_price: price"]),
            ),
            (
                pieces(&["variant { id color }", "_sy_variant: variant { id }"]),
                pieces(&["variant { id color }", "_sy_variant: variant { id }"]),
            ),
            (pieces(&["_sy_id: id", "_sy_weight: weight"]), pieces(&["_sy_id: id", "_sy_weight: weight"])),
        ];
        for (mut given, expected) in table {
            let before = given.clone();
            drop_plain_duplicates(&mut given);
            assert_eq!(given, expected, "{before:?}");
        }
    }

    fn names(field: &FieldSelection) -> (&str, &str) {
        (&field.response_key, &field.field_name)
    }

    #[test]
    fn a_root_field_is_planned_once_per_selection_and_arguments() {
        let cache = PlanCache::default();
        let planned = Cell::new(0);
        let plan = |document: &str| {
            planned.set(planned.get() + 1);
            Ok(fetch(document))
        };
        let me = field("me", vec![field("id", Vec::new()), field("name", Vec::new())]);
        let none = Map::new();
        let first = cache
            .get_or_plan(RootKind::Query, names(&me), &Arc::new(me.children.clone()), &none, || plan("a"))
            .expect("planned");
        let again = cache
            .get_or_plan(RootKind::Query, names(&me), &Arc::new(me.children.clone()), &none, || plan("b"))
            .expect("cached");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(planned.get(), 1);
        // Another argument value, another selection, another root kind: planned anew.
        let with_id: Map<String, Json> = [("id".to_owned(), json!("2"))].into_iter().collect();
        cache
            .get_or_plan(RootKind::Query, names(&me), &Arc::new(me.children.clone()), &with_id, || plan("c"))
            .expect("planned");
        let fewer = field("me", vec![field("id", Vec::new())]);
        cache
            .get_or_plan(RootKind::Query, names(&fewer), &Arc::new(fewer.children.clone()), &none, || plan("d"))
            .expect("planned");
        cache
            .get_or_plan(RootKind::Mutation, names(&me), &Arc::new(me.children.clone()), &none, || plan("e"))
            .expect("planned");
        assert_eq!(planned.get(), 4);
        // A failed plan is not kept.
        let failing = field("nope", Vec::new());
        let unplannable = || Err(PlanError::Unplannable { field: "Query.nope".into(), why: "test".into() });
        assert!(
            cache
                .get_or_plan(RootKind::Query, names(&failing), &Arc::new(failing.children.clone()), &none, unplannable)
                .is_err()
        );
        cache
            .get_or_plan(RootKind::Query, names(&failing), &Arc::new(failing.children.clone()), &none, || plan("f"))
            .expect("planned");
        assert_eq!(planned.get(), 5);
    }
}
