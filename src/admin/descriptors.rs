//! The registry of a running gateway: `GET /admin/descriptors` (registrations, their listings
//! and versions), `POST /admin/descriptors?name=NAME[&allow_breaking=true]` with a binary
//! FileDescriptorSet, `DELETE /admin/descriptors/{name}` and
//! `POST /admin/descriptors/{name}/rollback`. A change is checked against the registry, then
//! against the whole gateway (the snapshot is built with it); only then is it written through
//! to the descriptor directory — or to the registry in Redis that every instance follows — and
//! served. `switchyard descriptors ... --gateway ADMIN_URL`
//! speaks this API.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::reload::{Refusal, Store, apply_registry_change};
use crate::error::ErrorCode;
use crate::gateway::Gateway;
use crate::registry::{
    Changed, CompatReport, Pending, Registration, RegistryDir, RegistryError, describe_registration, describe_versions,
};

/// The largest descriptor set accepted (large API surfaces with their imports run to a few MiB).
pub(super) const MAX_SET_BYTES: usize = 64 * 1024 * 1024;

/// Where this gateway's registrations are written (None: it serves only compiled-in ones).
fn store(gateway: &Gateway) -> Option<Store> {
    if let Some(shared) = gateway.shared_registry() {
        return Some(Store::Shared(shared.clone()));
    }
    (!gateway.sources().no_descriptor_dir)
        .then(|| Store::Directory(RegistryDir::new(&gateway.snapshot().config.sources.descriptors)))
}

/// A google.rpc.Status-shaped refusal with extra fields.
fn refusal(code: ErrorCode, message: &str, extra: Value) -> Response {
    let mut body = json!({"code": code.grpc_code(), "message": message});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (code.http_status(), Json(body)).into_response()
}

fn changes(report: &CompatReport) -> Value {
    Value::Array(report.changes.iter().map(|c| json!({"breaking": c.breaking, "what": c.what})).collect())
}

fn registry_refusal(error: RegistryError) -> Response {
    let extra = match &error {
        RegistryError::Breaking { report, .. } => json!({"changes": changes(report)}),
        _ => json!({}),
    };
    refusal(error.code(), &error.to_string(), extra)
}

/// `GET /admin/descriptors`.
pub(super) async fn list(State(gateway): State<Arc<Gateway>>) -> Response {
    let snapshot = gateway.snapshot();
    let store = store(&gateway);
    // The shared registry's versions are read first (async); a directory's in the task below.
    let mut shared_versions = std::collections::BTreeMap::new();
    if let Some(Store::Shared(shared)) = &store {
        for registration in &snapshot.registry.registrations {
            let versions = shared.store().versions(&registration.name).await.unwrap_or_default();
            shared_versions.insert(registration.name.clone(), versions);
        }
    }
    let listed = tokio::task::spawn_blocking(move || {
        let registry = &snapshot.registry;
        let mut registrations = Vec::new();
        for registration in &registry.registrations {
            let versions = match &store {
                Some(Store::Directory(dir)) => dir.versions(&registration.name).unwrap_or_default(),
                Some(Store::Shared(_)) => shared_versions.remove(&registration.name).unwrap_or_default(),
                None => Vec::new(),
            };
            let mut listing = describe_registration(registration, &registry.pool);
            if !versions.is_empty() {
                listing.push_str(&describe_versions(&versions));
            }
            registrations.push(json!({
                "name": registration.name,
                "digest": registration.digest,
                "services": registration.service_names().collect::<Vec<_>>(),
                "versions": versions.iter().map(|v| json!({
                    "number": v.number,
                    "digest": v.digest,
                    "written": humantime::format_rfc3339_seconds(v.written).to_string(),
                    "current": v.current,
                })).collect::<Vec<_>>(),
                "listing": listing,
            }));
        }
        let (kind, directory) = match &store {
            Some(Store::Directory(dir)) => ("directory", Some(dir.path().display().to_string())),
            Some(Store::Shared(_)) => ("redis", None),
            None => ("none", None),
        };
        json!({
            "store": kind,
            "directory": directory,
            "generation": snapshot.generation,
            "registrations": registrations,
        })
    })
    .await;
    match listed {
        Ok(body) => Json(body).into_response(),
        Err(error) => refusal(ErrorCode::Internal, &error.to_string(), json!({})),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddQuery {
    name: String,
    #[serde(default)]
    allow_breaking: bool,
}

/// `POST /admin/descriptors?name=NAME[&allow_breaking=true]`, body: a FileDescriptorSet.
pub(super) async fn add(
    State(gateway): State<Arc<Gateway>>,
    Query(query): Query<AddQuery>,
    body: axum::body::Bytes,
) -> Response {
    let registration = match Registration::decode(&query.name, &body) {
        Ok(registration) => registration,
        Err(error) => return registry_refusal(error),
    };
    apply(&gateway, Operation::Add(registration, query.allow_breaking)).await
}

/// `DELETE /admin/descriptors/{name}`.
pub(super) async fn remove(State(gateway): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    apply(&gateway, Operation::Remove(name)).await
}

/// `POST /admin/descriptors/{name}/rollback`.
pub(super) async fn rollback(State(gateway): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    apply(&gateway, Operation::Rollback(name)).await
}

/// A change asked of the registry.
#[derive(Clone)]
enum Operation {
    Add(Registration, bool),
    Remove(String),
    Rollback(String),
}

/// Checks `operation` against `store` as it is now.
async fn prepare(store: &Store, operation: Operation) -> Result<Pending, RegistryError> {
    match store {
        Store::Directory(dir) => {
            let dir = dir.clone();
            let path = dir.path().to_owned();
            tokio::task::spawn_blocking(move || match operation {
                Operation::Add(registration, allow_breaking) => dir.prepare_add(&registration, allow_breaking),
                Operation::Remove(name) => dir.prepare_remove(&name),
                Operation::Rollback(name) => dir.prepare_rollback(&name),
            })
            .await
            .map_err(|e| RegistryError::Read { path, source: std::io::Error::other(e.to_string()) })?
        }
        Store::Shared(shared) => match operation {
            Operation::Add(registration, allow_breaking) => {
                shared.store().prepare_add(&registration, allow_breaking).await
            }
            Operation::Remove(name) => shared.store().prepare_remove(&name).await,
            Operation::Rollback(name) => shared.store().prepare_rollback(&name).await,
        },
    }
}

/// How many more times a change to the shared registry is checked when another instance's
/// change was written first.
const STALE_RETRIES: usize = 5;

/// Checks a change against the gateway's store, applies it to the gateway (written only if the
/// gateway would serve it), and answers what it did.
async fn apply(gateway: &Arc<Gateway>, operation: Operation) -> Response {
    let Some(store) = store(gateway) else {
        let message = "this gateway serves only the descriptors compiled into it; it has no descriptor directory";
        return refusal(ErrorCode::FailedPrecondition, message, json!({}));
    };
    let mut retries = 0;
    loop {
        let pending = match prepare(&store, operation.clone()).await {
            Ok(pending) => pending,
            Err(error) => return registry_refusal(error),
        };
        let name = pending.name().to_owned();
        match apply_registry_change(gateway, store.clone(), pending).await {
            Ok((changed, snapshot)) => return applied(&name, &changed, &snapshot),
            Err(Refusal::Store(RegistryError::Stale { .. })) if retries < STALE_RETRIES => retries += 1,
            Err(Refusal::Store(error)) => return registry_refusal(error),
            Err(Refusal::Build(problems)) => {
                let message = format!(
                    "the gateway would not serve the change, so nothing was written; {} problem(s)",
                    problems.len()
                );
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                let generation = gateway.snapshot().generation;
                return refusal(
                    ErrorCode::InvalidArgument,
                    &message,
                    json!({"problems": problems, "generation": generation}),
                );
            }
        }
    }
}

/// The answer to an applied change.
fn applied(name: &str, changed: &Changed, snapshot: &crate::snapshot::Snapshot) -> Response {
    let current = snapshot.registry.registrations.iter().find(|r| r.name == name);
    let (outcome, report) = match changed {
        Changed::Added(None) => ("added", None),
        Changed::Added(Some(report)) => ("replaced", Some(report)),
        Changed::Unchanged => ("unchanged", None),
        Changed::Removed(_) => ("removed", None),
        Changed::RolledBack(_, report) => ("rolled_back", Some(report)),
    };
    let digest = match changed {
        Changed::Removed(removed) => Some(removed.digest.clone()),
        _ => current.map(|r| r.digest.clone()),
    };
    Json(json!({
        "outcome": outcome,
        "name": name,
        "digest": digest,
        "services": current.map(|r| r.service_names().collect::<Vec<_>>()).unwrap_or_default(),
        "changes": report.map(changes).unwrap_or(json!([])),
        "generation": snapshot.generation,
    }))
    .into_response()
}
