//! The `Snapshot`: everything served — config, descriptor pool, backend clusters and which
//! service each serves, schema files — built from its sources and validated as one unit, and
//! numbered by a generation. A snapshot is immutable; a change builds a new one off the hot
//! path and swaps it in (see `gateway`), and a failed build changes nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{
    BackendConfig, BackendProtocol, Config, ConfigDuration, Problem, check_endpoint_url, load_config_file,
};
use crate::registry::{Registration, Registry, RegistryDir, merge_registrations};
use crate::schema::{
    GraphqlSchema, INTROSPECTION_QUERY, IntrospectedSources, SchemaFile, SourceDecl, SourceKind, TrustedDocuments,
    apply_schema_files, declared_sources, generate_schema, introspection_sdl,
};
use crate::transcode::routes::{RestRoutes, RuleOverrides, build_routes};
use crate::transcode::rules_file::parse_rules_file;
pub use crate::upstream::Cluster;

/// Where a snapshot is built from: a config file, directories and the CLI's quick flags.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSources {
    /// The config file, if any (without one, `embedded_config` or the defaults apply).
    pub config_file: Option<PathBuf>,
    /// Config text made by the binary itself (the demo's), used when there is no config file.
    pub embedded_config: Option<String>,
    /// Overrides `sources.descriptors`.
    pub descriptors: Option<PathBuf>,
    /// Overrides `sources.schemas`.
    pub schemas: Option<PathBuf>,
    /// Overrides `sources.supergraph`.
    pub supergraph: Option<PathBuf>,
    /// A supergraph made by the binary itself (the demo's), used when none is configured.
    pub embedded_supergraph: Option<String>,
    /// Skip the descriptor directory entirely (the demo serves only its embedded protos).
    pub no_descriptor_dir: bool,
    /// `--backend NAME=URL,...` flags.
    pub backends: Vec<BackendFlag>,
    /// Registrations compiled into the binary (the demo's).
    pub embedded: Vec<Registration>,
    /// Schema files compiled into the binary (the demo's), served before the schemas directory's.
    pub embedded_schemas: Vec<SchemaFile>,
    /// Overrides `listener.listen`.
    pub listen: Option<SocketAddr>,
    /// Overrides `admin.listen`.
    pub admin: Option<SocketAddr>,
    /// Turns GraphiQL on whatever the config says (the demo).
    pub graphiql: bool,
    /// A registry change being checked before it is written: the registration NAME as it
    /// would be (None: removed), in place of what the descriptor directory holds.
    pub registry_change: Option<(String, Option<Registration>)>,
    /// The shared registry's registrations (`[sources] registry = "redis"`), read by the
    /// running gateway; served in place of the descriptor directory's.
    pub shared_registrations: Option<Vec<Registration>>,
}

/// One `--backend NAME=URL[,URL...]` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFlag {
    /// A service full name or a package prefix.
    pub name: String,
    /// Endpoint URLs.
    pub urls: Vec<String>,
}

impl std::str::FromStr for BackendFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, urls) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not NAME=URL[,URL...] (e.g. catalog.v1=http://127.0.0.1:50051)"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("`{text}`: the NAME before `=` is empty"));
        }
        let urls: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
        if urls.is_empty() {
            return Err(format!("`{text}`: no URL after `=`"));
        }
        for url in &urls {
            check_endpoint_url(url).map_err(|e| format!("--backend {name}: {e}"))?;
        }
        Ok(BackendFlag { name: name.to_owned(), urls })
    }
}

/// Everything served, as one immutable unit.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every successful build.
    pub generation: u64,
    /// Each called method's traits (reads, idempotent), read once from its options.
    pub method_traits: crate::registry::MethodTraitsMemo,
    /// When it was built.
    pub built_at: SystemTime,
    /// The effective config (file plus flags).
    pub config: Config,
    /// The merged descriptor registry.
    pub registry: Registry,
    /// Backend clusters by name.
    pub clusters: BTreeMap<String, Cluster>,
    /// Every registered gRPC service → the cluster serving it (None: no backend).
    pub services: BTreeMap<String, Option<String>>,
    /// REST routes: google.api.http bindings and the default `POST /{Service}/{Method}` routes.
    pub routes: RestRoutes,
    /// The GraphQL schema generated from the registered services.
    pub graphql: GraphqlSchema,
    /// The trusted documents, when configured.
    pub trusted_documents: Option<TrustedDocuments>,
    /// GraphQL schema files found in the schemas directory.
    pub schema_files: Vec<PathBuf>,
    /// Warnings from the build (served anyway).
    pub warnings: Vec<Problem>,
    /// Request headers some cluster hashes calls on (lower case; a cookie's is `cookie`).
    pub hash_headers: Vec<String>,
    /// Identity claims some cluster hashes calls on.
    pub hash_claims: Vec<String>,
    /// Verifies credentials (kept across reloads that leave `[auth]` as it was).
    pub auth: std::sync::Arc<crate::policy::Authenticator>,
    /// Authorization rules, indexed by method, route and GraphQL field.
    pub policies: crate::policy::PolicySet,
    /// Rate limits and quotas, with their counters' store (kept across reloads that keep it).
    pub limiter: crate::policy::limits::Limiter,
    /// `listener.trusted_proxies`, parsed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The gateway listener's TLS (`listener.tls`), read from its files at this build.
    pub tls: Option<crate::server::tls::ServerTls>,
    /// Which fetches are cached, resolved by method and GraphQL field.
    pub cache_rules: crate::cache::Rules,
    /// The fetch cache (kept across reloads that keep its size).
    pub cache: std::sync::Arc<crate::cache::Cache>,
    /// Header transformations by method and source.
    pub transforms: crate::transform::Transforms,
    /// Deprecated services (full name) and the headers their REST answers carry.
    pub deprecations: std::collections::HashMap<String, std::sync::Arc<crate::transform::Deprecation>>,
    /// The Federation supergraph served, when one is configured.
    pub supergraph: Option<std::sync::Arc<crate::schema::Supergraph>>,
    /// Plans of supergraph root fields already made for this snapshot.
    pub federation_plans: crate::plan::federation::PlanCache,
}

impl Snapshot {
    /// A short digest of everything registered: the same registrations give the same version.
    pub fn registry_version(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for registration in &self.registry.registrations {
            hasher.update(registration.name.as_bytes());
            hasher.update(registration.digest.as_bytes());
        }
        hex::encode(&hasher.finalize()[..6])
    }

    /// The OpenAPI 3.1 document of the REST routes.
    pub fn openapi(&self) -> serde_json::Value {
        crate::transcode::openapi::openapi_document(
            &self.routes,
            self.config.rest.proto_field_names.unwrap_or(false),
            &self.registry_version(),
        )
    }

    /// The cluster that serves gRPC service `full_name`, if any.
    pub fn cluster_for_service(&self, full_name: &str) -> Option<&Cluster> {
        self.services.get(full_name)?.as_ref().and_then(|c| self.clusters.get(c))
    }
}

/// `[[transforms]]` resolved per method and source.
fn transforms(
    config: &[crate::config::TransformConfig],
    served: &crate::policy::Served<'_>,
    clusters: &BTreeMap<String, Cluster>,
) -> (crate::transform::Transforms, Vec<Problem>) {
    use crate::policy::targets::{TargetIndex, Targets};
    let mut problems = Vec::new();
    let mut transforms = crate::transform::Transforms::default();
    for (i, transform) in config.iter().enumerate() {
        let at = |key: &str| format!("transforms[{i}].{key}");
        if transform.methods.is_empty() && transform.sources.is_empty() {
            problems
                .push(Problem::error(at("methods"), "the transformation applies to nothing: set methods or sources"));
            continue;
        }
        let mut index = TargetIndex::default();
        index.add(
            served,
            0,
            &Targets { methods: &transform.methods, routes: &[], fields: &[], types: &[] },
            &at,
            &mut problems,
        );
        let methods: Vec<String> =
            served.methods().iter().filter(|m| !index.method(m).is_empty()).map(|m| m.full_name().to_owned()).collect();
        for (j, source) in transform.sources.iter().enumerate() {
            if !clusters.contains_key(source) {
                problems.push(Problem::warning(
                    at(&format!("sources[{j}]")),
                    format!("no backend cluster is named `{source}`"),
                ));
            }
        }
        if let Err((key, why)) = transforms.add(transform, &methods) {
            problems.push(Problem::error(at(&key), why));
        }
    }
    (transforms, problems)
}

/// `[cache]`'s rules resolved per method and GraphQL field (several rules on one target
/// combine to the stricter). A target that matches nothing is a warning.
fn cache_rules(
    config: &crate::config::CacheConfig,
    served: &crate::policy::Served<'_>,
) -> (crate::cache::Rules, Vec<Problem>) {
    use crate::policy::targets::{TargetIndex, Targets};
    let mut problems = Vec::new();
    let mut index = TargetIndex::default();
    let mut compiled = Vec::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let at = |key: &str| format!("cache.rules[{i}].{key}");
        if rule.ttl.get().is_zero() {
            problems.push(Problem::error(at("ttl"), "must be longer than zero (remove the rule to cache nothing)"));
            continue;
        }
        let targets =
            Targets { methods: &rule.methods, routes: &rule.routes, fields: &rule.fields, types: &rule.types };
        if targets.is_empty() {
            problems
                .push(Problem::error(at("methods"), "the rule caches nothing: set methods, routes, fields or types"));
            continue;
        }
        index.add(served, compiled.len(), &targets, &at, &mut problems);
        compiled.push(crate::cache::Rule {
            ttl: rule.ttl.get(),
            private: rule.scope == crate::config::CacheScope::Private,
            stale: rule.stale_while_revalidate.map_or(std::time::Duration::ZERO, |d| d.get()),
        });
    }
    index.fold_methods_into_fields(served.schema());
    let combine = |rules: &[usize]| rules.iter().map(|&r| compiled[r].clone()).reduce(|a, b| a.and(&b));
    let mut resolved = crate::cache::Rules {
        vary: config.vary.iter().map(|h| h.to_ascii_lowercase()).collect(),
        ..Default::default()
    };
    for method in served.methods() {
        if let Some(rule) = combine(index.method(method)) {
            resolved.methods.insert(method.full_name().to_owned(), rule);
        }
    }
    for (route, method) in served.route_methods().enumerate() {
        if let Some(rule) = combine(index.route(route)) {
            let by_method = resolved.methods.get(method.full_name());
            resolved.routes.insert(route, by_method.map_or_else(|| rule.clone(), |m| m.and(&rule)));
        }
    }
    for (i, invalidation) in config.invalidations.iter().enumerate() {
        let at = |key: &str| format!("cache.invalidations[{i}].{key}");
        let mut writes = TargetIndex::default();
        let targets = Targets { methods: &invalidation.methods, routes: &[], fields: &[], types: &[] };
        writes.add(served, 0, &targets, &at, &mut problems);
        let mut tags: Vec<String> = Vec::new();
        for (j, pattern) in invalidation.drop_methods.iter().enumerate() {
            let mut dropped = TargetIndex::default();
            let one = [pattern.clone()];
            dropped.add(
                served,
                0,
                &Targets { methods: &one, routes: &[], fields: &[], types: &[] },
                &|_| at(&format!("drop_methods[{j}]")),
                &mut problems,
            );
            tags.extend(
                served.methods().iter().filter(|m| !dropped.method(m).is_empty()).map(|m| m.full_name().to_owned()),
            );
        }
        tags.extend(invalidation.drop_types.iter().cloned());
        if tags.is_empty() {
            problems.push(Problem::error(
                at("drop_methods"),
                "the invalidation drops nothing: set drop_methods or drop_types",
            ));
            continue;
        }
        let tags: std::sync::Arc<[String]> = tags.into();
        for method in served.methods().iter().filter(|m| !writes.method(m).is_empty()) {
            resolved.invalidations.insert(method.full_name().to_owned(), tags.clone());
        }
    }
    let schema = served.schema();
    let mut fields: Vec<(String, String)> = Vec::new();
    for (kind, roots) in &schema.roots {
        fields.extend(roots.iter().map(|f| (crate::policy::root_name(*kind).to_owned(), f.name.clone())));
    }
    for (type_name, definition) in &schema.types {
        if let crate::schema::TypeDef::Object { fields: object_fields, .. } = definition {
            fields.extend(object_fields.iter().map(|f| (type_name.clone(), f.name.clone())));
        }
    }
    for (type_name, field) in fields {
        if let Some(rule) = combine(index.field(&type_name, &field)) {
            resolved.fields.combine(&type_name, &field, rule);
        }
    }
    // `@cacheControl` in schemas/ is a rule on its field too.
    for ((type_name, field), (seconds, private)) in &schema.cache_hints {
        let hint = crate::cache::Rule {
            ttl: std::time::Duration::from_secs(*seconds),
            private: *private,
            stale: std::time::Duration::ZERO,
        };
        resolved.fields.combine(type_name, field, hint);
    }
    (resolved, problems)
}

/// Builds and validates a snapshot; on failure returns every problem found.
pub fn build_snapshot(sources: &SnapshotSources, generation: u64) -> Result<Snapshot, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut config = match &sources.config_file {
        Some(path) => match load_config_file(path) {
            Ok(loaded) => {
                problems.extend(loaded.warnings);
                loaded.config
            }
            Err(found) => return Err(found),
        },
        None => match &sources.embedded_config {
            Some(text) => {
                let (config, warnings) = crate::config::parse_config(text, &|name| std::env::var(name).ok())?;
                problems.extend(warnings);
                config
            }
            None => Config::default(),
        },
    };
    if let Some(listen) = sources.listen {
        config.listener.listen = listen;
    }
    if let Some(admin) = sources.admin {
        config.admin.listen = admin;
    }
    config.graphql.graphiql |= sources.graphiql;
    if let Some(dir) = &sources.descriptors {
        config.sources.descriptors = dir.clone();
    }
    if let Some(dir) = &sources.schemas {
        config.sources.schemas = dir.clone();
    }
    if let Some(file) = &sources.supergraph {
        config.sources.supergraph = Some(file.clone());
    }

    let registry = load_registry(sources, &config, &mut problems);
    let mut schema_texts = sources.embedded_schemas.clone();
    let schema_files = read_schema_dir(&config.sources.schemas, &mut schema_texts, &mut problems);
    let rest_sources = declared_sources(&schema_texts);
    // A GraphQL source's SDL file is its schema, not one of ours.
    schema_texts.retain(|file| !rest_sources.iter().any(|s| s.schema_file.as_deref() == Some(file.path.as_path())));
    let supergraph = load_supergraph(&config, sources.embedded_supergraph.as_deref(), &mut problems);
    let subgraph_names: Vec<&str> =
        supergraph.iter().flat_map(|(s, _)| s.subgraphs.iter().map(|g| g.name.as_str())).collect();
    let mut clusters = build_clusters(&config, &sources.backends, &rest_sources, &subgraph_names, &mut problems);
    if let Some((supergraph, _)) = &supergraph {
        subgraph_clusters(supergraph, &mut clusters, &mut problems);
    }
    check_sources(&rest_sources, &clusters, &mut problems);
    let introspected = introspect_sources(&rest_sources, &clusters);
    let services = assign_services(registry.as_ref(), &clusters, &mut problems);
    for service in config.rest.services.keys() {
        if !services.contains_key(service) {
            problems.push(Problem::warning(format!("rest.services.\"{service}\""), "names no registered service"));
        }
    }
    if let Some(registry) = &registry {
        check_header_bindings(&config, registry, &mut problems);
        check_method_timeouts(&config, registry, &mut problems);
    }
    let graphql = match &registry {
        Some(registry) => {
            let names: Vec<String> = services.keys().cloned().collect();
            let (mut schema, schema_problems) = generate_schema(&registry.pool, &names, &config.graphql);
            problems.extend(schema_problems);
            problems.extend(crate::schema::apply_field_config(&mut schema, &config.graphql.fields));
            problems.extend(crate::schema::apply_hidden_types(&mut schema, &config.graphql.hidden_types));
            problems.extend(crate::schema::apply_type_names(&mut schema, &config.graphql.type_names));
            // Root fields of deprecated services are deprecated in GraphQL too.
            for field in schema.roots.values_mut().flatten() {
                if let crate::schema::Resolver::Method(method) = &field.resolver
                    && config.deprecations.contains_key(method.parent_service().full_name())
                {
                    field.deprecated = true;
                }
            }
            problems.extend(apply_schema_files(
                &mut schema,
                &schema_texts,
                &introspected,
                &registry.pool,
                supergraph.as_ref().map(|(_, api)| api),
            ));
            schema
        }
        None => {
            // The schema files are still checked, against an empty registry.
            let mut schema = GraphqlSchema::default();
            problems.extend(apply_schema_files(
                &mut schema,
                &schema_texts,
                &introspected,
                &prost_reflect::DescriptorPool::new(),
                supergraph.as_ref().map(|(_, api)| api),
            ));
            schema
        }
    };
    let trusted_documents = load_trusted_documents(&config, &mut problems);
    let auth = match crate::policy::Authenticator::build(&config.auth) {
        Ok(auth) => Some(std::sync::Arc::new(auth)),
        Err(found) => {
            problems.extend(found.into_iter().map(|(key, why)| Problem::error(format!("auth.{key}"), why)));
            None
        }
    };
    for (i, provider) in config.auth.jwt.iter().enumerate() {
        if provider.issuer.is_none() {
            problems
                .push(Problem::warning(format!("auth.jwt[{i}].issuer"), "not set: any issuer's tokens are accepted"));
        }
        if provider.audiences.is_empty() {
            problems.push(Problem::warning(
                format!("auth.jwt[{i}].audiences"),
                "empty: tokens meant for any audience are accepted",
            ));
        }
    }
    let routes = match &registry {
        Some(registry) => {
            let names: Vec<String> = services.keys().cloned().collect();
            let overrides = load_http_rules(&config, &mut problems);
            for (service, prefix) in &config.rest.mounts {
                if !crate::config::is_path_prefix(prefix) {
                    problems.push(Problem::error(
                        format!("rest.mounts.\"{service}\""),
                        format!("`{prefix}` is not a path prefix (`/literal/segments`, no trailing slash)"),
                    ));
                }
                if !services.contains_key(service) {
                    problems.push(Problem::warning(
                        format!("rest.mounts.\"{service}\""),
                        format!("no registered service is `{service}`"),
                    ));
                }
            }
            let (routes, route_problems) = build_routes(&registry.pool, &names, &overrides, &config.rest.mounts);
            problems.extend(route_problems);
            routes
        }
        None => RestRoutes::default(),
    };
    let (policies, limiter, cache_rules, transforms) = {
        let pool = registry.as_ref().map(|r| r.pool.clone()).unwrap_or_default();
        let names: Vec<String> = services.keys().cloned().collect();
        let served = crate::policy::Served::new(&pool, &names, &routes, &graphql);
        let (policies, found) = crate::policy::PolicySet::build(&config.authorization, &served);
        problems.extend(found);
        let (limiter, found) = crate::policy::limits::Limiter::build(&config.rate_limits, &config.redis, &served);
        problems.extend(found);
        let (rules, found) = cache_rules(&config.cache, &served);
        problems.extend(found);
        let (transforms, found) = transforms(&config.transforms, &served, &clusters);
        problems.extend(found);
        (policies, limiter, rules, transforms)
    };
    let mut deprecations = std::collections::HashMap::new();
    for (service, deprecation) in &config.deprecations {
        match crate::transform::Deprecation::compile(deprecation) {
            Ok(compiled) => {
                deprecations.insert(service.clone(), std::sync::Arc::new(compiled));
            }
            Err((key, why)) => problems.push(Problem::error(format!("deprecations.\"{service}\".{key}"), why)),
        }
        if !services.contains_key(service) {
            problems.push(Problem::warning(
                format!("deprecations.\"{service}\""),
                format!("no registered service is `{service}`"),
            ));
        }
    }
    let tls = match &config.listener.tls {
        Some(tls) => match crate::server::tls::server_config(tls) {
            Ok(server) => Some(server),
            Err((key, why)) => {
                problems.push(Problem::error(format!("listener.tls.{key}"), why));
                None
            }
        },
        None => None,
    };
    let mut trusted_proxies = Vec::new();
    for (i, text) in config.listener.trusted_proxies.iter().enumerate() {
        let parsed = text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => problems.push(Problem::error(
                format!("listener.trusted_proxies[{i}]"),
                format!("`{text}` is not an IP address or CIDR block (10.0.0.0/8)"),
            )),
        }
    }

    let (Some(auth), Some(limiter)) = (auth, limiter) else {
        return Err(problems);
    };
    if problems.iter().any(Problem::is_error) {
        return Err(problems);
    }
    let mut hash_headers: Vec<String> = clusters
        .values()
        .filter_map(|c| match &c.hash_on {
            Some(crate::config::HashOn::Header(name)) => Some(name.to_ascii_lowercase()),
            Some(crate::config::HashOn::Cookie(_)) => Some("cookie".to_owned()),
            _ => None,
        })
        .collect();
    hash_headers.sort();
    hash_headers.dedup();
    let mut hash_claims: Vec<String> = clusters
        .values()
        .filter_map(|c| match &c.hash_on {
            Some(crate::config::HashOn::Claim(claim)) => Some(claim.clone()),
            _ => None,
        })
        .collect();
    hash_claims.sort();
    hash_claims.dedup();
    let second = match config.cache.redis {
        true => match crate::redis_pool::RedisPool::build(&config.redis) {
            Ok(pool) => Some(crate::cache::SecondLevel::new(pool)),
            Err((key, why)) => return Err(vec![Problem::error(format!("redis.{key}"), why)]),
        },
        false => None,
    };
    let cache = std::sync::Arc::new(crate::cache::Cache::with_second_level(config.cache.max_bytes, second));
    Ok(Snapshot {
        generation,
        method_traits: crate::registry::MethodTraitsMemo::default(),
        built_at: SystemTime::now(),
        config,
        registry: registry.unwrap_or_else(Registry::empty),
        clusters,
        services,
        routes,
        graphql,
        trusted_documents,
        schema_files,
        warnings: problems,
        hash_headers,
        hash_claims,
        auth,
        policies,
        limiter,
        trusted_proxies,
        tls,
        cache_rules,
        cache,
        transforms,
        deprecations,
        supergraph: supergraph.map(|(supergraph, _)| std::sync::Arc::new(supergraph)),
        federation_plans: Default::default(),
    })
}

/// The configured supergraph, read and parsed, with its API schema as a schema file; its
/// problems are named by the file.
fn load_supergraph(
    config: &Config,
    embedded: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<(crate::schema::Supergraph, SchemaFile)> {
    let embedded_path = PathBuf::from("(embedded supergraph)");
    let (path, text) = match (&config.sources.supergraph, embedded) {
        (Some(path), _) => match std::fs::read_to_string(path) {
            Ok(text) => (path, text),
            Err(e) => {
                problems.push(Problem::error("sources.supergraph", format!("cannot read {}: {e}", path.display())));
                return None;
            }
        },
        (None, Some(text)) => (&embedded_path, text.to_owned()),
        (None, None) => return None,
    };
    match crate::schema::parse_supergraph(&text) {
        Ok((supergraph, warnings)) => {
            problems.extend(warnings.into_iter().map(|p| p.in_file(path)));
            let api = SchemaFile {
                path: PathBuf::from(format!("{} (its API schema)", path.display())),
                text: supergraph.api_sdl.clone(),
            };
            Some((supergraph, api))
        }
        Err(found) => {
            problems.extend(found.into_iter().map(|p| p.in_file(path)));
            None
        }
    }
}

/// A cluster for each subgraph at the URL the supergraph gives it, unless a backend of the
/// subgraph's name is configured (or given with `--backend`).
fn subgraph_clusters(
    supergraph: &crate::schema::Supergraph,
    clusters: &mut BTreeMap<String, Cluster>,
    problems: &mut Vec<Problem>,
) {
    for subgraph in &supergraph.subgraphs {
        if let Some(existing) = clusters.get(&subgraph.name) {
            if existing.protocol != BackendProtocol::Graphql && existing.protocol != BackendProtocol::Http {
                problems.push(Problem::error(
                    format!("backends.{}", subgraph.name),
                    "the supergraph's subgraph of this name is a GraphQL service: set `protocol = \"graphql\"`",
                ));
            }
            continue;
        }
        let backend = BackendConfig::new(
            BackendProtocol::Graphql,
            vec![crate::config::EndpointConfig::Url(subgraph.url.clone())],
        );
        if let Some(cluster) =
            cluster_at(&subgraph.name, &backend, &format!("supergraph subgraph {}", subgraph.name), problems)
        {
            clusters.insert(subgraph.name.clone(), cluster);
        }
    }
}

fn load_registry(sources: &SnapshotSources, config: &Config, problems: &mut Vec<Problem>) -> Option<Registry> {
    let dir = &config.sources.descriptors;
    let mut registrations = sources.embedded.clone();
    if config.sources.registry == crate::config::RegistryStore::Redis
        && !config.redis.urls.is_empty()
        && let Err((key, why)) = crate::redis_pool::RedisPool::build(&config.redis)
    {
        problems.push(Problem::error(format!("redis.{key}"), why));
    }
    if let Some(shared) = &sources.shared_registrations {
        registrations.extend(shared.iter().cloned());
    } else if config.sources.registry == crate::config::RegistryStore::Redis {
        problems.push(Problem::warning(
            "sources.registry",
            "registrations are shared through Redis; only a running gateway reads them, so this build has none",
        ));
    } else if !sources.no_descriptor_dir {
        match RegistryDir::new(dir).read_all() {
            Ok(found) => registrations.extend(found),
            Err(e) => {
                problems.push(Problem::error("descriptors", e.to_string()).in_file(dir));
                return None;
            }
        }
    }
    if let Some((name, after)) = &sources.registry_change {
        registrations.retain(|r| &r.name != name);
        registrations.extend(after.iter().cloned());
    }
    match merge_registrations(registrations) {
        Ok(registry) => Some(registry),
        Err(e) => {
            problems.push(Problem::error("descriptors", e.to_string()).in_file(dir));
            None
        }
    }
}

fn build_clusters(
    config: &Config,
    flags: &[BackendFlag],
    rest_sources: &[SourceDecl],
    subgraphs: &[&str],
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Cluster> {
    let mut clusters = BTreeMap::new();
    let mut add = |name: &str, backend: &BackendConfig, path: String, clusters: &mut BTreeMap<String, Cluster>| {
        if let Some(cluster) = cluster_at(name, backend, &path, problems) {
            clusters.insert(name.to_owned(), cluster);
        }
    };
    for (name, backend) in &config.backends {
        add(name, backend, format!("backends.{name}"), &mut clusters);
    }
    for flag in flags {
        // A flag naming a declared source makes a cluster of that source's kind.
        let protocol = match rest_sources.iter().find(|s| s.name == flag.name).map(|s| s.kind) {
            Some(SourceKind::Rest) => BackendProtocol::Http,
            Some(SourceKind::Graphql) => BackendProtocol::Graphql,
            None if subgraphs.contains(&flag.name.as_str()) => BackendProtocol::Graphql,
            None => BackendProtocol::Grpc,
        };
        let mut backend =
            BackendConfig::new(protocol, flag.urls.iter().cloned().map(crate::config::EndpointConfig::Url).collect());
        backend.services = vec![flag.name.clone()];
        // The flag's cluster serves NAME only and shadows the config's claim on NAME.
        for cluster in clusters.values_mut() {
            cluster.serves.retain(|s| s != &flag.name);
        }
        add(&flag.name, &backend, format!("--backend {}", flag.name), &mut clusters);
    }
    clusters
}

/// The cluster `backend` (at config key `path`) defines; each problem found is added to
/// `problems`, and None is returned when the cluster cannot be served at all.
fn cluster_at(name: &str, backend: &BackendConfig, path: &str, problems: &mut Vec<Problem>) -> Option<Cluster> {
    let mut endpoints = Vec::new();
    let mut weights = Vec::new();
    let mut priorities = Vec::new();
    for (i, endpoint) in backend.endpoints.iter().enumerate() {
        match check_endpoint_url(endpoint.url()) {
            Ok(uri) => {
                endpoints.push(uri);
                weights.push(endpoint.weight());
                priorities.push(endpoint.priority());
            }
            Err(message) => problems.push(Problem::error(format!("{path}.endpoints[{i}]"), message)),
        }
    }
    let cluster = Cluster {
        name: name.to_owned(),
        protocol: backend.protocol,
        endpoints,
        weights,
        priorities,
        balancer: backend.balancer,
        hash_on: backend.hash_on.clone(),
        health_check: backend.health_check.clone(),
        retries: backend.retries.clone(),
        circuit_breaker: backend.circuit_breaker.clone(),
        outlier_detection: backend.outlier_detection.clone(),
        serves: backend.services.clone(),
        grpc_compression: backend.grpc_compression,
        timeout: backend.timeout.map(ConfigDuration::get),
        method_timeouts: backend.method_timeouts.iter().map(|(m, t)| (m.clone(), t.get())).collect(),
        connection: backend.connection.clone(),
        dns: backend.dns.clone(),
        coalesce: backend.coalesce,
        tls: match &backend.tls {
            Some(tls) => match crate::upstream::tls::TlsMaterial::load(tls) {
                Ok(material) => Some(material),
                Err(e) => {
                    problems.push(Problem::error(format!("{path}.tls.{}", e.key), e.message));
                    return None;
                }
            },
            None => None,
        },
    };
    Some(cluster)
}

/// The cluster `backends.NAME` defines, or every problem that refuses it (its TLS files are read
/// and checked).
pub fn cluster_from_config(name: &str, backend: &BackendConfig) -> Result<Cluster, String> {
    let mut problems = Vec::new();
    let cluster = cluster_at(name, backend, &format!("backends.{name}"), &mut problems);
    match cluster {
        Some(cluster) if problems.is_empty() => Ok(cluster),
        _ => Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
    }
}

/// Maps each registered service to the cluster with the longest matching claim.
fn assign_services(
    registry: Option<&Registry>,
    clusters: &BTreeMap<String, Cluster>,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, Option<String>> {
    let mut services = BTreeMap::new();
    let Some(registry) = registry else { return services };
    let mut used_claims: Vec<(&str, &str)> = Vec::new();
    for registration in &registry.registrations {
        for service in registration.service_names() {
            let best = clusters
                .values()
                .filter(|c| c.protocol == BackendProtocol::Grpc)
                .flat_map(|c| c.serves.iter().map(move |claim| (claim.as_str(), c.name.as_str())))
                .filter(|(claim, _)| claim_matches(claim, &service))
                .max_by_key(|(claim, _)| claim.len());
            match best {
                Some((claim, cluster)) => {
                    used_claims.push((claim, cluster));
                    services.insert(service, Some(cluster.to_owned()));
                }
                None => {
                    problems.push(Problem::warning(
                        format!("service {service}"),
                        format!(
                            "no backend serves it; its calls answer UNAVAILABLE (add --backend {service}=URL \
                             or list it in a backend's `services`)"
                        ),
                    ));
                    services.insert(service, None);
                }
            }
        }
    }
    for cluster in clusters.values().filter(|c| c.protocol == BackendProtocol::Grpc) {
        for claim in &cluster.serves {
            if !used_claims.iter().any(|(c, n)| c == claim && *n == cluster.name) {
                problems.push(Problem::warning(
                    format!("backend {}", cluster.name),
                    format!("`{claim}` matches no registered service"),
                ));
            }
        }
    }
    services
}

/// True if `claim` is the service's full name or one of its package prefixes.
fn claim_matches(claim: &str, service: &str) -> bool {
    service == claim || (service.starts_with(claim) && service.as_bytes().get(claim.len()) == Some(&b'.'))
}

fn check_method_timeouts(config: &Config, registry: &Registry, problems: &mut Vec<Problem>) {
    for method_name in config.rest.method_timeouts.keys() {
        let found = method_name.rsplit_once('.').and_then(|(service, method)| {
            registry.pool.get_service_by_name(service)?.methods().find(|m| m.name() == method)
        });
        if found.is_none() {
            problems.push(Problem::error(
                format!("rest.method_timeouts.\"{method_name}\""),
                "names no registered method (write package.Service.Method)",
            ));
        }
    }
}

fn check_header_bindings(config: &Config, registry: &Registry, problems: &mut Vec<Problem>) {
    for (method_name, bindings) in &config.rest.header_bindings {
        let path = format!("rest.header_bindings.\"{method_name}\"");
        let method = method_name.rsplit_once('.').and_then(|(service, method)| {
            registry.pool.get_service_by_name(service)?.methods().find(|m| m.name() == method)
        });
        let Some(method) = method else {
            problems.push(Problem::error(path, "names no registered method (write package.Service.Method)"));
            continue;
        };
        for (header, field) in bindings {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                problems.push(Problem::error(format!("{path}.\"{header}\""), "is not a valid header name"));
            }
            if let Err(message) = crate::transcode::binding::resolve_field_path(&method.input(), field) {
                problems.push(Problem::error(format!("{path}.\"{header}\""), message));
            }
        }
    }
}

fn load_trusted_documents(config: &Config, problems: &mut Vec<Problem>) -> Option<TrustedDocuments> {
    let trusted = config.graphql.trusted_documents.as_ref()?;
    let text = match std::fs::read_to_string(&trusted.file) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("cannot read {}: {e}", trusted.file.display());
            problems.push(Problem::error("graphql.trusted_documents.file", message));
            return None;
        }
    };
    match TrustedDocuments::from_json(&text, trusted.enforce) {
        Ok(documents) => Some(documents),
        Err(message) => {
            problems.push(Problem::error("", message).in_file(&trusted.file));
            None
        }
    }
}

fn load_http_rules(config: &Config, problems: &mut Vec<Problem>) -> RuleOverrides {
    let Some(path) = &config.rest.http_rules else { return RuleOverrides::new() };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(Problem::error("rest.http_rules", format!("cannot read {}: {e}", path.display())));
            return RuleOverrides::new();
        }
    };
    parse_rules_file(&text).unwrap_or_else(|e| {
        problems.push(Problem::error("", e.message).in_file(path).at_line(e.line));
        RuleOverrides::new()
    })
}

/// Reads the `*.graphql` files of `dir` (sorted) into `texts`; returns their paths.
fn read_schema_dir(dir: &Path, texts: &mut Vec<SchemaFile>, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql" || e == "graphqls"))
        .collect();
    files.sort();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => texts.push(SchemaFile { path: file.clone(), text }),
            Err(e) => problems.push(Problem::error("", format!("cannot read: {e}")).in_file(file)),
        }
    }
    files
}

/// The schemas of GraphQL sources declared without a `schema` file, by introspecting their
/// backends (at start-up and on every reload).
fn introspect_sources(sources: &[SourceDecl], clusters: &BTreeMap<String, Cluster>) -> IntrospectedSources {
    let mut out = IntrospectedSources::new();
    for source in sources.iter().filter(|s| s.kind == SourceKind::Graphql && s.schema_file.is_none()) {
        let Some(cluster) = clusters.get(&source.name) else { continue };
        let Some(endpoint) = cluster.endpoints.first() else { continue };
        let url = endpoint.to_string();
        let fetched = introspect(&url, cluster.tls.clone())
            .map(|text| SchemaFile { path: PathBuf::from(format!("{} (introspected from {url})", source.name)), text });
        out.insert(source.name.clone(), fetched);
    }
    out
}

/// Sends the introspection query to `url` and prints the answer as SDL. Runs on its own thread
/// and runtime: snapshots are built on blocking threads, off any runtime's workers.
fn introspect(url: &str, tls: Option<crate::upstream::tls::TlsMaterial>) -> Result<String, String> {
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    let url = url.to_owned();
    let fetch = move || -> Result<String, String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut builder = reqwest::Client::builder().timeout(TIMEOUT).no_proxy();
            if let Some(tls) = &tls {
                builder = tls.http(builder);
            }
            let client = builder.build().map_err(|e| e.to_string())?;
            let body = serde_json::json!({ "query": INTROSPECTION_QUERY }).to_string();
            let response = client
                .post(&url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            let answer: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|_| format!("{url} answered HTTP {} with something that is not JSON", status.as_u16()))?;
            introspection_sdl(&answer)
        })
    };
    std::thread::spawn(fetch).join().map_err(|_| "introspection failed unexpectedly".to_owned())?
}

/// Each declared source needs an HTTP cluster of its name; without one its fields answer
/// UNAVAILABLE (a warning, as for a service without a backend).
fn check_sources(sources: &[SourceDecl], clusters: &BTreeMap<String, Cluster>, problems: &mut Vec<Problem>) {
    for source in sources {
        match clusters.get(&source.name) {
            None => problems.push(Problem::warning(
                format!("source {}", source.name),
                format!(
                    "no backend serves it (declared at {}); its fields answer UNAVAILABLE (add --backend {}=URL or \
                     [backends.{}] with protocol = \"{}\")",
                    source.declared_at,
                    source.name,
                    source.name,
                    if source.kind == SourceKind::Rest { "http" } else { "graphql" }
                ),
            )),
            Some(cluster) if source.kind == SourceKind::Rest && cluster.protocol != BackendProtocol::Http => {
                problems.push(Problem::error(
                    format!("backends.{}", source.name),
                    format!("serves the REST source declared at {}; set protocol = \"http\"", source.declared_at),
                ));
            }
            Some(cluster) if source.kind == SourceKind::Graphql && cluster.protocol != BackendProtocol::Graphql => {
                problems.push(Problem::error(
                    format!("backends.{}", source.name),
                    format!("serves the GraphQL source declared at {}; set protocol = \"graphql\"", source.declared_at),
                ));
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_flag_syntax() {
        let flag: BackendFlag = "catalog.v1=http://127.0.0.1:1, http://127.0.0.1:2".parse().expect("valid");
        assert_eq!(flag.name, "catalog.v1");
        assert_eq!(flag.urls, ["http://127.0.0.1:1", "http://127.0.0.1:2"]);
        for bad in ["catalog.v1", "=http://h:1", "catalog.v1=", "catalog.v1=127.0.0.1:1"] {
            assert!(bad.parse::<BackendFlag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn claims_match_full_names_and_package_prefixes_only() {
        let table = [
            ("catalog.v1.Catalog", "catalog.v1.Catalog", true),
            ("catalog.v1", "catalog.v1.Catalog", true),
            ("catalog", "catalog.v1.Catalog", true),
            ("catalog.v", "catalog.v1.Catalog", false),
            ("catalog.v1.Catalog2", "catalog.v1.Catalog", false),
        ];
        for (claim, service, want) in table {
            assert_eq!(claim_matches(claim, service), want, "{claim} vs {service}");
        }
    }
}
