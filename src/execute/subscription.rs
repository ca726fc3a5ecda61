//! Subscription events: a server-streaming call opened once, each message it sends shaped and
//! stitched like a query's answer. Messages that arrive together (a burst) are stitched
//! together, so their stitched fields are one batched call rather than one per event.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use serde_json::Value as Json;

use super::graphql::{Context, FieldError, GraphqlOutput, message_json};
use super::shape::{complete, shape_value};
use super::stitch::run_stitches;
use super::{ExecuteError, OutputStream, execute_streaming_fetch};
use crate::operation::{Metadata, Selection, SelectionSet};
use crate::plan::{Fetch, Stitch};
use crate::schema::{GraphqlSchema, TypeRef};
use crate::upstream::Upstreams;

/// Most events stitched together.
const MAX_BURST: usize = 64;

/// An open subscription: the backend stream and what each event is shaped to.
pub struct SubscriptionEvents {
    messages: OutputStream,
    type_name: String,
    fields: SelectionSet,
    stitches: Vec<Stitch>,
    metadata: Metadata,
    stitch_timeout: Option<Duration>,
    ended: bool,
}

impl SubscriptionEvents {
    /// Opens `fetch` (a server-streaming method with a GraphQL selection); resolves once the
    /// backend has answered with headers. Stitched calls get `stitch_timeout` each; the stream
    /// itself has no deadline.
    pub async fn open(
        mut fetch: Fetch,
        upstreams: &Upstreams,
        stitch_timeout: Option<Duration>,
    ) -> Result<Self, ExecuteError> {
        let Selection::Graphql { type_name, fields, .. } = std::mem::replace(&mut fetch.selection, Selection::Whole)
        else {
            return Err(ExecuteError::Shape("a subscription has a GraphQL selection".into()));
        };
        let stitches = std::mem::take(&mut fetch.stitches);
        let metadata = fetch.metadata.clone();
        fetch.timeout = None;
        let (_, messages) = execute_streaming_fetch(fetch, upstreams).await?;
        Ok(SubscriptionEvents { messages, type_name, fields, stitches, metadata, stitch_timeout, ended: false })
    }

    /// The next events: waits for one, takes every other one already arrived (up to a burst),
    /// and shapes and stitches them together. None when the backend stream has ended; an error
    /// is the last item.
    pub async fn next_burst(
        &mut self,
        upstreams: &Upstreams,
        schema: &GraphqlSchema,
    ) -> Option<Vec<Result<GraphqlOutput, ExecuteError>>> {
        if self.ended {
            return None;
        }
        let mut messages = vec![self.messages.next().await?];
        while messages.len() < MAX_BURST && messages.last().is_some_and(Result::is_ok) {
            match self.messages.next().now_or_never() {
                Some(Some(message)) => messages.push(message),
                Some(None) => {
                    self.ended = true;
                    break;
                }
                None => break,
            }
        }
        let failure = match messages.last() {
            Some(Err(_)) => messages.pop().and_then(Result::err),
            _ => None,
        };
        if failure.is_some() {
            self.ended = true;
        }
        let ty = TypeRef { name: self.type_name.clone(), list: false, non_null: false, item_non_null: false };
        let mut errors = Vec::new();
        let mut values = Vec::with_capacity(messages.len());
        for (i, message) in messages.into_iter().flatten().enumerate() {
            let mut path = vec![Json::from(i)];
            values.push(shape_value(message_json(&message), &ty, &self.fields, schema, &mut path, &mut errors));
        }
        let count = values.len();
        let mut burst = Json::Array(values);
        if !self.stitches.is_empty() {
            let context = Context { upstreams, schema, metadata: &self.metadata, timeout: self.stitch_timeout };
            run_stitches(&mut burst, &self.stitches, &context, &mut errors).await;
        }
        let Json::Array(values) = burst else { return None };
        let mut out: Vec<Result<GraphqlOutput, ExecuteError>> = Vec::with_capacity(count + 1);
        for (i, mut value) in values.into_iter().enumerate() {
            let mut own: Vec<FieldError> = Vec::new();
            for error in errors.iter().filter(|e| e.path.first() == Some(&Json::from(i))) {
                own.push(FieldError { path: error.path[1..].to_vec(), ..error.clone() });
            }
            let done =
                self.stitches.is_empty() || complete(&mut value, &ty, &self.fields, schema, &mut Vec::new(), &mut own);
            out.push(Ok(GraphqlOutput { value, errors: own, complete: done }));
        }
        if let Some(failure) = failure {
            out.push(Err(failure));
        }
        Some(out)
    }
}
