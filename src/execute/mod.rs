//! The executor: runs a Plan's fetches through upstream clients (concurrently when there are
//! several) and decodes each answer into its response message. Batching, coalescing and
//! dependent fetches arrive with GraphQL. Streaming calls are in `stream`.

mod stream;

use std::time::Duration;

use futures_util::future::join_all;
use prost::Message;
use prost_reflect::DynamicMessage;

use crate::error::ErrorCode;
use crate::operation::{CallInput, Selection};
use crate::plan::{Fetch, Plan};
use crate::upstream::{UpstreamError, Upstreams};

pub use stream::{OutputStream, execute_streaming_fetch};

/// One fetch's answer.
#[derive(Debug)]
pub struct FetchOutput {
    /// The decoded response message.
    pub message: DynamicMessage,
    /// What the operation selected from it.
    pub selection: Selection,
    /// The backend's response headers and trailers.
    pub metadata: http::HeaderMap,
}

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecuteError {
    /// The backend call failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The client sent a request message that cannot be read.
    #[error("{0}")]
    Input(crate::operation::InputError),
    /// A unary fetch was given a stream of requests, or the reverse.
    #[error("{0}")]
    Shape(String),
    /// The backend's answer could not be decoded as the method's response type.
    #[error("the backend answered with an undecodable {type_name}")]
    Undecodable {
        /// The expected message type.
        type_name: String,
    },
}

impl ExecuteError {
    /// The edge error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ExecuteError::Upstream(e) => e.code(),
            ExecuteError::Input(e) => e.code,
            ExecuteError::Shape(_) => ErrorCode::Internal,
            ExecuteError::Undecodable { .. } => ErrorCode::UpstreamError,
        }
    }
}

/// Runs every fetch of `plan`; results are in the plan's order.
pub async fn execute_plan(plan: Plan, upstreams: &Upstreams) -> Vec<Result<FetchOutput, ExecuteError>> {
    if plan.fetches.len() == 1 {
        let fetch = plan.fetches.into_iter().next().expect("one fetch");
        return vec![run_fetch(fetch, upstreams).await];
    }
    if plan.serial {
        let mut results = Vec::with_capacity(plan.fetches.len());
        for fetch in plan.fetches {
            results.push(run_fetch(fetch, upstreams).await);
        }
        return results;
    }
    join_all(plan.fetches.into_iter().map(|fetch| run_fetch(fetch, upstreams))).await
}

async fn run_fetch(fetch: Fetch, upstreams: &Upstreams) -> Result<FetchOutput, ExecuteError> {
    let client = upstreams.grpc(&fetch.cluster)?;
    let path = grpc_path(&fetch);
    let CallInput::Message(input) = fetch.input else {
        return Err(ExecuteError::Shape(format!("{} takes one request message", fetch.method.full_name())));
    };
    let request = input.encode_to_vec().into();
    let timeout: Option<Duration> = fetch.timeout;
    let reply = client.unary(&path, request, &fetch.metadata, timeout).await?;
    let output = fetch.method.output();
    let message = DynamicMessage::decode(output.clone(), reply.body)
        .map_err(|_| ExecuteError::Undecodable { type_name: output.full_name().to_owned() })?;
    Ok(FetchOutput { message, selection: fetch.selection, metadata: reply.metadata.into_headers() })
}

fn grpc_path(fetch: &Fetch) -> String {
    format!("/{}/{}", fetch.method.parent_service().full_name(), fetch.method.name())
}
