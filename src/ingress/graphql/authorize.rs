//! The policy stage of a GraphQL operation: each root field, and every field below it, is
//! checked against the authorization rules (which include the rules of the methods root and
//! stitched fields call). Denied fields are marked so that nothing is fetched for them and they
//! are answered null with FORBIDDEN errors at their paths; with `graphql_denied = "reject"` the
//! whole operation is refused instead. Then the operation is charged against the rate limits
//! and quotas that count it (each use of a counted field, or its estimated cost).

use http::StatusCode;
use serde_json::{Value as Json, json};

use super::Refusal;
use super::document::{Prepared, RootEntry};
use crate::config::GraphqlDenied;
use crate::error::ErrorCode;
use crate::operation::{Identity, OperationKind, SelectionSet};

/// Applies the rules to `prepared` for `identity`. Err when the operation must be refused.
pub(super) fn authorize(
    snapshot: &crate::snapshot::Snapshot,
    prepared: &mut Prepared,
    identity: Option<&Identity>,
) -> Result<(), Refusal> {
    let policies = &snapshot.policies;
    if policies.is_empty() {
        return Ok(());
    }
    let mut denied: Vec<(Vec<String>, String, (usize, usize))> = Vec::new();
    for entry in &mut prepared.entries {
        let RootEntry::Call(call) = entry else { continue };
        let root = root_name(call.kind);
        if let Err(denial) = policies.check_field(root, &call.root.name, identity) {
            denied.push((vec![call.response_key.clone()], denial.message.clone(), call.location));
            call.forbidden = Some(denial.message);
            continue;
        }
        // The selection is shared with the cached shape: marked on a copy, kept only if marked.
        let mut marked = (*call.fields).clone();
        if policies.mark_forbidden(&snapshot.graphql, &call.type_name, &mut marked, identity) > 0 {
            call.fields = std::sync::Arc::new(marked);
            let mut path = vec![call.response_key.clone()];
            collect(&call.fields, &mut path, call.location, &mut denied);
        }
    }
    if denied.is_empty() || policies.graphql_denied() == GraphqlDenied::Null {
        return Ok(());
    }
    let errors: Vec<Json> = denied
        .iter()
        .map(|(path, message, (line, column))| {
            json!({
                "message": message,
                "locations": [{"line": line, "column": column}],
                "path": path,
                "extensions": {"code": ErrorCode::Forbidden.graphql_code()}
            })
        })
        .collect();
    let message = denied.first().map(|d| d.1.clone()).unwrap_or_default();
    Err(Refusal { errors: Some(errors), ..Refusal::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message) })
}

/// The paths (response keys; list items are not numbered) and reasons of forbidden fields.
fn collect(
    selection: &SelectionSet,
    path: &mut Vec<String>,
    location: (usize, usize),
    out: &mut Vec<(Vec<String>, String, (usize, usize))>,
) {
    for (_, set) in &selection.by_type {
        collect(set, path, location, out);
    }
    for field in &selection.fields {
        path.push(field.response_key.clone());
        match &field.forbidden {
            Some(why) => out.push((path.clone(), why.to_string(), location)),
            None => collect(&field.children, path, location, out),
        }
        path.pop();
    }
}

/// Charges the operation against the limits that count it; a refusal is 429 (503 when the
/// counters' store is down and limits fail closed) with a RATE_LIMITED error.
pub(super) async fn admit(
    snapshot: &crate::snapshot::Snapshot,
    prepared: &Prepared,
    context: &crate::operation::RequestContext,
    headers: &http::HeaderMap,
) -> Result<(), Refusal> {
    let limiter = &snapshot.limiter;
    if limiter.is_empty() {
        return Ok(());
    }
    let roots: Vec<(&str, &str, &str, &SelectionSet)> = prepared
        .entries
        .iter()
        .filter_map(|entry| match entry {
            RootEntry::Call(call) if call.forbidden.is_none() => {
                Some((root_name(call.kind), call.root.name.as_str(), call.type_name.as_str(), &*call.fields))
            }
            _ => None,
        })
        .collect();
    let usage = limiter.usage_of_graphql(&snapshot.graphql, &roots, prepared.cost);
    let caller = crate::policy::limits::Caller {
        identity: context.identity.as_deref(),
        headers,
        client_ip: context.hash.client_ip,
    };
    match limiter.admit(&caller, &usage).await {
        Ok(_) => Ok(()),
        Err(refused) => {
            let code = refused.code();
            Err(Refusal {
                headers: refused.headers().to_vec(),
                ..Refusal::new(code.http_status(), code, refused.to_string())
            })
        }
    }
}

fn root_name(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Query => "Query",
        OperationKind::Mutation => "Mutation",
        OperationKind::Subscription => "Subscription",
    }
}
