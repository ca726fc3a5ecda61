//! What one request did, gathered while it runs for its access-log line and its metrics: the
//! operation it named, who made it, the backend calls it caused, its cache status, the error
//! codes it answered and the limit that refused it. The ingress middleware scopes a record
//! around the request's handling; the stages add to it through the `note_*` functions, which do
//! nothing outside a request (background refreshes, tests of a single stage).

use std::sync::{Arc, Mutex};

tokio::task_local! {
    static CURRENT: Arc<RequestRecord>;
}

/// One request's record; shared between the handler's task and the response body, which
/// finishes it.
#[derive(Debug, Default)]
pub struct RequestRecord {
    inner: Mutex<Recorded>,
}

/// What was recorded.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// The operation: a REST route (`GET /v1/{name=shelves/*}`), a gRPC method path, or a
    /// GraphQL operation name.
    pub operation: Option<String>,
    /// The verified identity's key (`provider/subject`).
    pub identity: Option<String>,
    /// Backend calls made for it (attempts: a retry is a second call).
    pub backend_calls: u32,
    /// The error codes it answered with (GraphQL answers may carry several).
    pub errors: Vec<String>,
    /// The rate limit or quota that refused it.
    pub rejected_by: Option<String>,
}

impl RequestRecord {
    /// Runs `future` with this record as the current request's.
    pub async fn scope<F: std::future::Future>(self: Arc<Self>, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// What has been recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.inner.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// What was recorded, taken out once the request has finished (no copy; the record is
    /// empty after).
    pub fn take(&self) -> Recorded {
        self.inner.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }

    fn update(&self, change: impl FnOnce(&mut Recorded)) {
        if let Ok(mut recorded) = self.inner.lock() {
            change(&mut recorded);
        }
    }
}

fn with_current(change: impl FnOnce(&mut Recorded)) {
    let _ = CURRENT.try_with(|record| record.update(change));
}

/// The request is operation `name` (the first name given wins: a batch is named by its first).
pub fn note_operation(name: impl Into<String>) {
    with_current(|r| {
        if r.operation.is_none() {
            r.operation = Some(name.into());
        }
    });
}

/// The request was made by `identity` (its key).
pub fn note_identity(identity: &str) {
    with_current(|r| r.identity = Some(identity.to_owned()));
}

/// The request made one more backend call.
pub fn note_backend_call() {
    with_current(|r| r.backend_calls += 1);
}

/// The request answered with error `code`: a gRPC status name for REST and gRPC answers,
/// `extensions.code` for GraphQL ones.
pub fn note_error(code: &str) {
    with_current(|r| r.errors.push(code.to_owned()));
}

/// The request was refused by the rate limit or quota `name`.
pub fn note_rejected(name: &str) {
    with_current(|r| r.rejected_by = Some(name.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notes_land_in_the_scoped_record_and_nowhere_else() {
        note_backend_call();
        let record = Arc::new(RequestRecord::default());
        record
            .clone()
            .scope(async {
                note_operation("GET /v1/{name=shelves/*}");
                note_operation("second");
                note_identity("corp/ada");
                note_backend_call();
                note_backend_call();
                note_error("NOT_FOUND");
                note_rejected("per-user");
            })
            .await;
        note_error("INTERNAL");
        let recorded = record.recorded();
        assert_eq!(recorded.operation.as_deref(), Some("GET /v1/{name=shelves/*}"));
        assert_eq!(recorded.identity.as_deref(), Some("corp/ada"));
        assert_eq!((recorded.backend_calls, &recorded.errors[..]), (2, &["NOT_FOUND".to_owned()][..]));
        assert_eq!(recorded.rejected_by.as_deref(), Some("per-user"));
        let taken = record.take();
        assert_eq!((taken.operation, taken.backend_calls), (recorded.operation, 2));
        assert_eq!(record.recorded().operation, None, "taken out");
    }
}
