//! The planner: turns an Operation into a Plan, a DAG of backend fetches. A REST call is a
//! one-fetch plan; GraphQL adds dependent and batched fetches. Plans are pure data with a
//! `Display` for `switchyard plan` and snapshot tests. No I/O.

pub mod entities;
pub mod federation;
mod field_mask;
pub mod render;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prost_reflect::MethodDescriptor;

use crate::error::ErrorCode;
use crate::operation::{CallInput, CallTarget, FieldSelection, Metadata, Operation, Selection, SelectionSet};
use crate::schema::{Binding, BoundCall, GraphqlSchema, Resolver, RootKind, TypeRef};

/// What the planner needs from the snapshot: which cluster serves a service or source, and the
/// GraphQL schema (for stitched fields).
pub trait ServiceDirectory {
    /// The cluster serving gRPC service `full_name`, or None when no backend serves it.
    fn cluster_for(&self, full_name: &str) -> Option<&str>;
    /// True if a cluster named `name` exists (REST sources are served by the cluster of their name).
    fn has_cluster(&self, name: &str) -> bool;
    /// The GraphQL schema.
    fn graphql(&self) -> &GraphqlSchema;
    /// Whether `method` reads and whether it is idempotent (a snapshot reads them once).
    fn method_traits(&self, method: &MethodDescriptor) -> crate::registry::MethodTraits {
        crate::registry::MethodTraits::of(method)
    }
    /// The cache rule for calls of the method named `full_name` (REST), if any.
    fn cache_for_method(&self, _full_name: &str) -> Option<crate::cache::Rule> {
        None
    }
    /// The cache rule for calls made for REST route `index` (its method's rule included), if
    /// any.
    fn cache_for_route(&self, _index: usize) -> Option<crate::cache::Rule> {
        None
    }
    /// The cache rule for GraphQL field `type_name.field`'s fetch, if any.
    fn cache_for_field(&self, _type_name: &str, _field: &str) -> Option<crate::cache::Rule> {
        None
    }
    /// The cache store.
    fn cache_store(&self) -> Option<Arc<crate::cache::Cache>> {
        None
    }
    /// What a successful call of the method named `full_name` makes stale, if anything.
    fn cache_invalidation(&self, _full_name: &str) -> Option<crate::cache::Invalidation> {
        None
    }
    /// The header transformation of calls of the method named `full_name`, if any.
    fn transform_for_method(&self, _full_name: &str) -> Option<Arc<crate::transform::Transform>> {
        None
    }
    /// The header transformation of calls to source (cluster) `name`, if any.
    fn transform_for_source(&self, _name: &str) -> Option<Arc<crate::transform::Transform>> {
        None
    }
    /// Where plans of supergraph root fields are kept, if anywhere.
    fn federation_plans(&self) -> Option<&federation::PlanCache> {
        None
    }

    /// The Federation supergraph served, if any.
    fn supergraph(&self) -> Option<&crate::schema::Supergraph> {
        None
    }
}

/// The fetches to run for one operation: root fetches, each with the stitched fetches that
/// depend on its answer (a DAG whose edges are parent → child).
#[derive(Debug)]
pub struct Plan {
    /// Root fetches, in the operation's order.
    pub fetches: Vec<Fetch>,
    /// True when the root fetches must run one after another (mutations).
    pub serial: bool,
}

/// What a fetch sends.
#[derive(Debug)]
pub enum FetchCall {
    /// A gRPC method call.
    Grpc {
        /// The method.
        method: MethodDescriptor,
        /// The request message or messages.
        input: CallInput,
        /// Whether the method reads (coalescing) and is idempotent (retries).
        traits: crate::registry::MethodTraits,
    },
    /// A field declared in schemas/: its binding, rendered with the arguments when it runs.
    Bound {
        /// The binding.
        binding: Arc<Binding>,
        /// The field's arguments, by GraphQL name.
        arguments: serde_json::Map<String, serde_json::Value>,
    },
    /// A supergraph's root field: a fetch from its subgraph and the entity fetches below it.
    Subgraph(Arc<federation::SubgraphFetch>),
}

/// One root backend call.
#[derive(Debug)]
pub struct Fetch {
    /// The cluster to send it to; None when no backend serves it (it fails UNAVAILABLE).
    pub cluster: Option<String>,
    /// What to send.
    pub call: FetchCall,
    /// Metadata to send.
    pub metadata: Metadata,
    /// Deadline for the call.
    pub timeout: Option<Duration>,
    /// The part of the answer the operation selected.
    pub selection: Selection,
    /// A declared root field's type (lists and non-null included).
    pub output: Option<TypeRef>,
    /// The stitched fetches that wait for this one's answer.
    pub stitches: Vec<Stitch>,
    /// How its answer is cached, when it is.
    pub cache: Option<crate::cache::FetchCache>,
    /// What its success makes stale (writes).
    pub invalidates: Option<crate::cache::Invalidation>,
    /// The transformation of its calls, for body edits of REST sources.
    pub transform: Option<Arc<crate::transform::Transform>>,
    /// Entity fetches on its answer (a gRPC message whose type a supergraph shares), run before
    /// it is shaped.
    pub entities: Vec<federation::EntityFetch>,
}

/// A fetch for a stitched field: it runs once the objects at `path` are known, with one call
/// per distinct request (or one batched call per `max_size` keys) for all of them.
#[derive(Debug, Clone)]
pub struct Stitch {
    /// Response keys from the root field's value to the parent objects (lists are walked).
    pub path: Vec<String>,
    /// The parent objects' type.
    pub parent_type: String,
    /// The stitched field as selected.
    pub field: FieldSelection,
    /// The field's type.
    pub ty: TypeRef,
    /// What answers it.
    pub binding: Arc<Binding>,
    /// The cluster to call; None when no backend serves it.
    pub cluster: Option<String>,
    /// Stitched fetches below this one (their paths start at the root field's value too).
    pub stitches: Vec<Stitch>,
    /// How its answers are cached, when they are.
    pub cache: Option<crate::cache::FetchCache>,
    /// Its own metadata, when a transformation edits its source's headers (else the root's).
    pub metadata: Option<Metadata>,
    /// The transformation of its calls, for body edits of REST sources.
    pub transform: Option<Arc<crate::transform::Transform>>,
    /// Entity fetches on each answer (a gRPC message or REST JSON whose type a supergraph
    /// shares), their paths starting at the stitched field's value; run before it is shaped.
    pub entities: Vec<federation::EntityFetch>,
}

impl Fetch {
    /// The gRPC method, for method calls.
    pub fn method(&self) -> Option<&MethodDescriptor> {
        match &self.call {
            FetchCall::Grpc { method, .. } => Some(method),
            FetchCall::Bound { .. } | FetchCall::Subgraph(_) => None,
        }
    }

    /// A name for the call, for plans and logs.
    pub fn describe(&self) -> String {
        match &self.call {
            FetchCall::Grpc { method, .. } => method.full_name().to_owned(),
            FetchCall::Bound { binding, .. } => describe_binding(binding),
            FetchCall::Subgraph(fetch) => format!("subgraph {}", fetch.graph),
        }
    }
}

fn describe_binding(binding: &Binding) -> String {
    let call = match &binding.call {
        BoundCall::Rest(rest) => format!("{} {}:{}", rest.method, rest.source, template_text(&rest.path)),
        BoundCall::Grpc { method, .. } => method.full_name().to_owned(),
        BoundCall::Graphql(call) => format!("{}:{:?}.{}", call.source, call.operation, call.field),
    };
    match &binding.batch {
        Some(batch) => format!("{call} batched by {} (≤{})", template_text(&batch.key), batch.max_size),
        None => call,
    }
}

fn template_text(template: &crate::schema::Template) -> String {
    use crate::schema::Part;
    template
        .parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => text.clone(),
            Part::Arg(path) => format!("{{args.{}}}", path.join(".")),
            Part::Parent(name) => format!("{{parent.{name}}}"),
            Part::Keys => "{keys}".into(),
        })
        .collect()
}

fn write_fields(f: &mut fmt::Formatter<'_>, set: &crate::operation::SelectionSet) -> fmt::Result {
    for field in &set.fields {
        write!(f, " {}", field.response_key)?;
        if field.response_key != field.field_name {
            write!(f, ":{}", field.field_name)?;
        }
        if field.forbidden.is_some() {
            write!(f, "(forbidden)")?;
            continue;
        }
        if !field.children.fields.is_empty() {
            write!(f, " {{")?;
            write_fields(f, &field.children)?;
            write!(f, " }}")?;
        }
    }
    for (name, set) in &set.by_type {
        write!(f, " ... on {name} {{")?;
        write_fields(f, set)?;
        write!(f, " }}")?;
    }
    Ok(())
}

/// Why an operation cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The service has no backend.
    #[error("no backend serves {service}")]
    NoBackend {
        /// The service's full name.
        service: String,
    },
    /// A root field the schema does not declare (the snapshot changed under the operation).
    #[error("the schema has no field {field}")]
    UnknownField {
        /// `Query.name` or `Mutation.name`.
        field: String,
    },
    /// A supergraph field no fetch can reach.
    #[error("{field} cannot be planned: {why}")]
    Unplannable {
        /// `Type.field`.
        field: String,
        /// Why.
        why: String,
    },
}

impl PlanError {
    /// The edge error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            PlanError::NoBackend { .. } => ErrorCode::Unavailable,
            PlanError::UnknownField { .. } | PlanError::Unplannable { .. } => ErrorCode::Internal,
        }
    }
}

/// What caching needs from the request: the store, the vary values and the identity; `reads`
/// is false for mutations (never cached).
struct Caching {
    store: Option<Arc<crate::cache::Cache>>,
    vary: Arc<[(String, Vec<u8>)]>,
    identity: Option<Arc<str>>,
    reads: bool,
    /// The metadata every fetch starts from, and what transformations read.
    base: Metadata,
    who: Option<Arc<crate::operation::Identity>>,
    client_ip: Option<std::net::IpAddr>,
}

impl Caching {
    fn new(directory: &dyn ServiceDirectory, context: &crate::operation::RequestContext, reads: bool) -> Self {
        // Nothing is computed for caching when nothing is cached.
        let store = directory.cache_store().filter(|_| reads);
        let identity = context.identity.as_deref().filter(|_| store.is_some()).map(|i| Arc::from(i.key()));
        Caching {
            vary: if store.is_some() { context.vary.clone().into() } else { Arc::from([]) },
            store,
            identity,
            reads,
            base: context.metadata.clone().with_hash_inputs(context.hash.clone()),
            who: context.identity.clone(),
            client_ip: context.hash.client_ip,
        }
    }

    /// The metadata for a fetch that `transform` edits (None: no transformation applies).
    fn transformed(&self, transform: Option<Arc<crate::transform::Transform>>) -> Option<Metadata> {
        let transform = transform.filter(|t| !t.request.is_empty())?;
        let mut metadata = self.base.clone();
        let values = crate::transform::Values { identity: self.who.as_deref(), client_ip: self.client_ip };
        transform.request.apply_metadata(&mut metadata, values);
        Some(metadata)
    }

    /// Whether any fetch of this operation may be cached.
    fn active(&self) -> bool {
        self.store.is_some()
    }

    /// The fetch's cache settings under `rule`, tagged with `tags` (made only when it applies).
    fn fetch(
        &self,
        rule: Option<crate::cache::Rule>,
        tags: impl FnOnce() -> Vec<String>,
    ) -> Option<crate::cache::FetchCache> {
        let (true, Some(rule), Some(store)) = (self.reads, rule, self.store.clone()) else { return None };
        Some(crate::cache::FetchCache {
            store,
            identity: if rule.private { self.identity.clone() } else { None },
            rule,
            vary: self.vary.clone(),
            tags: tags().into(),
        })
    }
}

/// Plans `operation` against `directory`.
pub fn plan_operation(operation: Operation, directory: &dyn ServiceDirectory) -> Result<Plan, PlanError> {
    let context = operation.context;
    let serial = operation.kind == crate::operation::OperationKind::Mutation;
    let caching = Caching::new(directory, &context, operation.kind == crate::operation::OperationKind::Query);
    let root = match operation.kind {
        crate::operation::OperationKind::Mutation => "Mutation",
        crate::operation::OperationKind::Subscription => "Subscription",
        crate::operation::OperationKind::Query => "Query",
    };
    let mut fetches = Vec::with_capacity(operation.calls.len());
    for mut call in operation.calls {
        field_mask::fill_field_mask(&mut call, operation.kind, Some(directory.graphql()));
        let stitches = match &call.selection {
            Selection::Graphql { type_name, fields, .. } => {
                let mut stitches = Vec::new();
                plan_stitches(directory, &caching, type_name, fields, &mut Vec::new(), &mut stitches)?;
                stitches
            }
            _ => Vec::new(),
        };
        let graphql = matches!(call.selection, Selection::Graphql { .. });
        let mut entities = Vec::new();
        let (cluster, call_kind, output, cache, invalidates) = match call.target {
            CallTarget::Method(method) => {
                if let (Some(supergraph), Selection::Graphql { type_name, fields, .. }) =
                    (directory.supergraph(), &call.selection)
                {
                    let cluster_of = |binding: &Binding| binding_cluster(directory, binding);
                    entities = federation::plan_below_message(
                        supergraph,
                        directory.graphql(),
                        type_name,
                        fields,
                        &cluster_of,
                    )?;
                }
                let service = method.parent_service().full_name().to_owned();
                let cluster = directory.cluster_for(&service).ok_or(PlanError::NoBackend { service })?.to_owned();
                let traits = directory.method_traits(&method);
                let tags = || {
                    let mut tags = vec![method.full_name().to_owned()];
                    match &call.selection {
                        Selection::Graphql { type_name, fields, .. } => {
                            selected_types(directory.graphql(), type_name, fields, &mut tags)
                        }
                        _ => message_types(&method.output(), &mut tags),
                    }
                    tags
                };
                let rule = match caching.active() {
                    false => None,
                    true if graphql => root_field_of(directory.graphql(), &method)
                        .and_then(|field| directory.cache_for_field(root, &field)),
                    true if traits.reads => context
                        .route
                        .and_then(|route| directory.cache_for_route(route))
                        .or_else(|| directory.cache_for_method(method.full_name())),
                    true => None,
                };
                let cache = caching.fetch(rule, tags);
                let invalidates = directory.cache_invalidation(method.full_name());
                (Some(cluster), FetchCall::Grpc { method, input: call.input, traits }, None, cache, invalidates)
            }
            CallTarget::Field { root, name } => {
                let kind = match root {
                    "Mutation" => RootKind::Mutation,
                    "Subscription" => RootKind::Subscription,
                    _ => RootKind::Query,
                };
                let (binding, output) = match directory.graphql().root_field(kind, &name) {
                    Some(field) => match &field.resolver {
                        Resolver::Bound(binding) => (binding.clone(), field.output.clone()),
                        Resolver::Method(_) => return Err(PlanError::UnknownField { field: format!("{root}.{name}") }),
                    },
                    None => return Err(PlanError::UnknownField { field: format!("{root}.{name}") }),
                };
                let arguments = match call.input {
                    CallInput::Arguments(arguments) => arguments,
                    _ => serde_json::Map::new(),
                };
                let cache = caching.fetch(directory.cache_for_field(root, &name), || vec![output.name.clone()]);
                match (&binding.call, directory.supergraph(), &call.selection) {
                    (BoundCall::Graphql(remote), Some(supergraph), Selection::Graphql { response_key, fields, .. })
                        if remote.source == crate::schema::SUPERGRAPH_SOURCE =>
                    {
                        let cluster_of = |binding: &Binding| binding_cluster(directory, binding);
                        let plan = || {
                            let selected = FieldSelection {
                                response_key: response_key.clone(),
                                field_name: name.clone(),
                                children: (**fields).clone(),
                                arguments: Vec::new(),
                                defer: None,
                                forbidden: None,
                            };
                            federation::plan_root(
                                supergraph,
                                directory.graphql(),
                                kind,
                                &selected,
                                &arguments,
                                &output,
                                &cluster_of,
                            )
                        };
                        let fetch = match directory.federation_plans() {
                            Some(plans) => plans.get_or_plan(kind, (response_key, &name), fields, &arguments, plan)?,
                            None => std::sync::Arc::new(plan()?),
                        };
                        let cluster = directory.has_cluster(&fetch.graph).then(|| fetch.graph.clone());
                        (cluster, FetchCall::Subgraph(fetch), Some(output), cache, None)
                    }
                    (call_kind, supergraph, selection) => {
                        if let (BoundCall::Rest(_), Some(_), Selection::Graphql { fields, .. }) =
                            (call_kind, supergraph, selection)
                        {
                            entities = entities_below(directory, &binding, &output.name, fields)?;
                        }
                        let cluster = binding_cluster(directory, &binding);
                        (cluster, FetchCall::Bound { binding, arguments }, Some(output), cache, None)
                    }
                }
            }
        };
        let transform = match &call_kind {
            FetchCall::Grpc { method, .. } => directory.transform_for_method(method.full_name()),
            FetchCall::Bound { binding, .. } => binding_transform(directory, binding, cluster.as_deref()),
            FetchCall::Subgraph(_) => cluster.as_deref().and_then(|c| directory.transform_for_source(c)),
        };
        let metadata = caching.transformed(transform.clone()).unwrap_or_else(|| caching.base.clone());
        fetches.push(Fetch {
            cluster,
            call: call_kind,
            metadata,
            timeout: context.timeout,
            selection: call.selection,
            output,
            stitches,
            cache,
            invalidates,
            transform,
            entities,
        });
    }
    Ok(Plan { fetches, serial })
}

/// The cluster a binding calls: its REST source's, or its gRPC service's.
fn binding_cluster(directory: &dyn ServiceDirectory, binding: &Binding) -> Option<String> {
    match &binding.call {
        BoundCall::Rest(rest) => directory.has_cluster(&rest.source).then(|| rest.source.clone()),
        BoundCall::Graphql(call) => directory.has_cluster(&call.source).then(|| call.source.clone()),
        BoundCall::Grpc { method, .. } => directory.cluster_for(method.parent_service().full_name()).map(str::to_owned),
    }
}

/// The object types a selection holds (`type_name` and those of the fields selected in it),
/// as invalidation tags: an answer holding Books is dropped when Books change.
fn selected_types(schema: &GraphqlSchema, type_name: &str, selection: &SelectionSet, tags: &mut Vec<String>) {
    if !tags.iter().any(|t| t == type_name) {
        tags.push(type_name.to_owned());
    }
    for (name, set) in &selection.by_type {
        selected_types(schema, name, set, tags);
    }
    for field in selection.fields.iter().filter(|f| !f.children.fields.is_empty()) {
        if let Some(definition) = schema.object_field(type_name, &field.field_name) {
            selected_types(schema, &definition.ty.name, &field.children, tags);
        }
    }
}

/// The message types an answer of `message` may hold (short names, as GraphQL types are
/// named), as invalidation tags.
fn message_types(message: &prost_reflect::MessageDescriptor, tags: &mut Vec<String>) {
    if message.full_name().starts_with("google.") || tags.iter().any(|t| t == message.name()) {
        return;
    }
    tags.push(message.name().to_owned());
    for field in message.fields() {
        if let prost_reflect::Kind::Message(inner) = field.kind() {
            message_types(&inner, tags);
        }
    }
}

/// The transformation of a binding's calls: its gRPC method's, or its source's.
fn binding_transform(
    directory: &dyn ServiceDirectory,
    binding: &Binding,
    cluster: Option<&str>,
) -> Option<Arc<crate::transform::Transform>> {
    match &binding.call {
        BoundCall::Grpc { method, .. } => directory.transform_for_method(method.full_name()),
        _ => directory.transform_for_source(cluster?),
    }
}

/// The root field a generated method answers.
fn root_field_of(schema: &GraphqlSchema, method: &MethodDescriptor) -> Option<String> {
    schema.roots.values().flatten().find_map(|field| match &field.resolver {
        Resolver::Method(m) if m.full_name() == method.full_name() => Some(field.name.clone()),
        _ => None,
    })
}

/// The stitched fields under `selection` on `type_name`, at `path`, into `out`.
fn plan_stitches(
    directory: &dyn ServiceDirectory,
    caching: &Caching,
    type_name: &str,
    selection: &SelectionSet,
    path: &mut Vec<String>,
    out: &mut Vec<Stitch>,
) -> Result<(), PlanError> {
    let schema = directory.graphql();
    // Below an interface or union: each object type's stitched fields, for values of that type.
    for (concrete, set) in &selection.by_type {
        path.push(format!("{}{concrete}", federation::TYPE_STEP));
        plan_stitches(directory, caching, concrete, set, path, out)?;
        path.pop();
    }
    for selected in selection.fields.iter().filter(|f| f.forbidden.is_none()) {
        let Some(definition) = schema.object_field(type_name, &selected.field_name) else { continue };
        path.push(selected.response_key.clone());
        match definition.binding() {
            Some(binding) => {
                let transform = binding_transform(directory, binding, binding_cluster(directory, binding).as_deref());
                let mut nested = Vec::new();
                plan_stitches(directory, caching, &definition.ty.name, &selected.children, path, &mut nested)?;
                path.pop();
                out.push(Stitch {
                    path: path.clone(),
                    parent_type: type_name.to_owned(),
                    field: selected.clone(),
                    ty: definition.ty.clone(),
                    binding: binding.clone(),
                    cluster: binding_cluster(directory, binding),
                    stitches: nested,
                    cache: caching.fetch(directory.cache_for_field(type_name, &selected.field_name), || {
                        vec![type_name.to_owned(), definition.ty.name.clone()]
                    }),
                    metadata: caching.transformed(transform.clone()),
                    transform,
                    entities: entities_below(directory, binding, &definition.ty.name, &selected.children)?,
                });
                continue;
            }
            None if !selected.children.fields.is_empty() => {
                plan_stitches(directory, caching, &definition.ty.name, &selected.children, path, out)?;
            }
            None => {}
        }
        path.pop();
    }
    Ok(())
}

/// The entity fetches below a backend's answer of `type_name` for `selection`, when a
/// supergraph adds fields to that type: what a gRPC message or a REST source's JSON holds is
/// all there, so its keys are read from it.
fn entities_below(
    directory: &dyn ServiceDirectory,
    binding: &Binding,
    type_name: &str,
    selection: &SelectionSet,
) -> Result<Vec<federation::EntityFetch>, PlanError> {
    let Some(supergraph) = directory.supergraph() else { return Ok(Vec::new()) };
    if matches!(binding.call, BoundCall::Graphql(_)) {
        return Ok(Vec::new());
    }
    let cluster_of = |binding: &Binding| binding_cluster(directory, binding);
    federation::plan_below_message(supergraph, directory.graphql(), type_name, selection, &cluster_of)
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = if self.serial { "serial" } else { "concurrent" };
        writeln!(f, "Plan ({order}) {{")?;
        for (i, fetch) in self.fetches.iter().enumerate() {
            write!(f, "  [{i}] {} via {}", fetch.describe(), fetch.cluster.as_deref().unwrap_or("(no backend)"))?;
            match &fetch.selection {
                Selection::Field(field) => write!(f, " select .{}", field.name())?,
                Selection::Graphql { response_key, fields, .. } => {
                    write!(f, " as {response_key}")?;
                    if !fields.fields.is_empty() {
                        write!(f, " {{")?;
                        write_fields(f, fields)?;
                        write!(f, " }}")?;
                    }
                }
                Selection::Whole => {}
            }
            writeln!(f)?;
            if let FetchCall::Subgraph(subgraph) = &fetch.call {
                write!(f, "    {subgraph}")?;
            }
            federation::write_entities(f, &fetch.entities, 2)?;
            write_stitches(f, &fetch.stitches, 2)?;
        }
        write!(f, "}}")
    }
}

fn write_stitches(f: &mut fmt::Formatter<'_>, stitches: &[Stitch], depth: usize) -> fmt::Result {
    for stitch in stitches {
        let mut at = stitch.path.clone();
        at.push(stitch.field.response_key.clone());
        writeln!(
            f,
            "{:indent$}then {}.{} at {} ← {} via {}",
            "",
            stitch.parent_type,
            stitch.field.field_name,
            at.join("."),
            describe_binding(&stitch.binding),
            stitch.cluster.as_deref().unwrap_or("(no backend)"),
            indent = depth * 2
        )?;
        federation::write_entities(f, &stitch.entities, depth + 1)?;
        write_stitches(f, &stitch.stitches, depth + 1)?;
    }
    Ok(())
}
