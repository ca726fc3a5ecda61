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
    pub operation: Option<OperationName>,
    /// The verified identity's key (`provider/subject`).
    pub identity: Option<String>,
    /// Backend calls made for it (attempts: a retry is a second call).
    pub backend_calls: u32,
    /// The error codes it answered with (GraphQL answers may carry several).
    pub errors: Vec<String>,
    /// The rate limit or quota that refused it.
    pub rejected_by: Option<String>,
}

/// An operation's name, held without a copy where it can be: a REST route's name is made once
/// per route, a gRPC method's path is the request's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationName {
    /// A name of its own.
    Text(String),
    /// A name made once and shared.
    Shared(Arc<str>),
    /// A gRPC request's path (`/package.Service/Method`; a query, if any, is not part of it).
    Path(http::uri::PathAndQuery),
}

impl std::ops::Deref for OperationName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            OperationName::Text(text) => text,
            OperationName::Shared(text) => text,
            OperationName::Path(path) => path.path(),
        }
    }
}

impl From<String> for OperationName {
    fn from(text: String) -> Self {
        OperationName::Text(text)
    }
}

impl From<&str> for OperationName {
    fn from(text: &str) -> Self {
        OperationName::Text(text.to_owned())
    }
}

impl From<Arc<str>> for OperationName {
    fn from(text: Arc<str>) -> Self {
        OperationName::Shared(text)
    }
}

impl From<http::uri::PathAndQuery> for OperationName {
    fn from(path: http::uri::PathAndQuery) -> Self {
        OperationName::Path(path)
    }
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
pub fn note_operation(name: impl Into<OperationName>) {
    with_current(|r| {
        if r.operation.is_none() {
            r.operation = Some(name.into());
        }
    });
}

/// The request was made by `identity` (its key).
pub fn note_identity(identity: impl Into<String>) {
    with_current(|r| r.identity = Some(identity.into()));
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

    #[test]
    fn operation_names_read_as_their_text_whatever_holds_them() {
        let table: [(OperationName, &str); 4] = [
            ("GetBook".into(), "GetBook"),
            (String::from("query Books").into(), "query Books"),
            (Arc::<str>::from("GET /v1/{name=shelves/*}").into(), "GET /v1/{name=shelves/*}"),
            (
                http::uri::PathAndQuery::from_static("/catalog.v1.Catalog/GetBook?x=1").into(),
                "/catalog.v1.Catalog/GetBook",
            ),
        ];
        for (name, text) in table {
            assert_eq!(&*name, text);
        }
    }
}
