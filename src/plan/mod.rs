//! The planner: turns an Operation into a Plan, a DAG of backend fetches. A REST call is a
//! one-fetch plan; GraphQL adds dependent and batched fetches. Plans are pure data with a
//! `Display` for `switchyard plan` and snapshot tests. No I/O.

mod field_mask;

use std::fmt;
use std::time::Duration;

use prost_reflect::MethodDescriptor;

use crate::error::ErrorCode;
use crate::operation::{CallInput, Metadata, Operation, Selection};

/// What the planner needs from the snapshot: which cluster serves a service.
pub trait ServiceDirectory {
    /// The cluster serving gRPC service `full_name`, or None when no backend serves it.
    fn cluster_for(&self, full_name: &str) -> Option<&str>;
}

/// The fetches to run for one operation.
#[derive(Debug)]
pub struct Plan {
    /// Fetches in dependency order; today none depend on another.
    pub fetches: Vec<Fetch>,
    /// True when the fetches must run one after another (mutations).
    pub serial: bool,
}

/// One backend call.
#[derive(Debug)]
pub struct Fetch {
    /// The cluster to send it to.
    pub cluster: String,
    /// The gRPC method.
    pub method: MethodDescriptor,
    /// The request message or messages.
    pub input: CallInput,
    /// Metadata to send.
    pub metadata: Metadata,
    /// Deadline for the call.
    pub timeout: Option<Duration>,
    /// The part of the answer the operation selected.
    pub selection: Selection,
}

fn write_fields(f: &mut fmt::Formatter<'_>, set: &crate::operation::SelectionSet) -> fmt::Result {
    for field in &set.fields {
        write!(f, " {}", field.response_key)?;
        if field.response_key != field.field_name {
            write!(f, ":{}", field.field_name)?;
        }
        if !field.children.fields.is_empty() {
            write!(f, " {{")?;
            write_fields(f, &field.children)?;
            write!(f, " }}")?;
        }
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
}

impl PlanError {
    /// The edge error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            PlanError::NoBackend { .. } => ErrorCode::Unavailable,
        }
    }
}

/// Plans `operation` against `directory`.
pub fn plan_operation(operation: Operation, directory: &dyn ServiceDirectory) -> Result<Plan, PlanError> {
    let context = operation.context;
    let serial = operation.kind == crate::operation::OperationKind::Mutation;
    let mut fetches = Vec::with_capacity(operation.calls.len());
    for mut call in operation.calls {
        field_mask::fill_field_mask(&mut call, operation.kind);
        let service = call.method.parent_service().full_name().to_owned();
        let cluster = directory.cluster_for(&service).ok_or(PlanError::NoBackend { service })?.to_owned();
        fetches.push(Fetch {
            cluster,
            method: call.method,
            input: call.input,
            metadata: context.metadata.clone(),
            timeout: context.timeout,
            selection: call.selection,
        });
    }
    Ok(Plan { fetches, serial })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = if self.serial { "serial" } else { "concurrent" };
        writeln!(f, "Plan ({order}) {{")?;
        for (i, fetch) in self.fetches.iter().enumerate() {
            write!(f, "  [{i}] {} via {}", fetch.method.full_name(), fetch.cluster)?;
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
        }
        write!(f, "}}")
    }
}
