//! `ErrorCode`: the one closed list of error kinds, and the one mapping from each to an HTTP
//! status, a gRPC status code and a GraphQL `extensions.code` (DESIGN.md section 3, "Errors at
//! the edge"). Every layer's typed error reports its `ErrorCode`; only the protocol edges turn
//! it into a response. This module owns no error types of its own and does no I/O.

use http::StatusCode;

/// Every kind of failure a client can see, whatever protocol it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A request value is invalid.
    InvalidArgument,
    /// The system is not in a state required for the operation.
    FailedPrecondition,
    /// A value is outside its valid range.
    OutOfRange,
    /// A GraphQL document failed to parse.
    GraphqlParseFailed,
    /// A GraphQL document failed validation.
    GraphqlValidationFailed,
    /// An automatic persisted query hash is unknown.
    PersistedQueryNotFound,
    /// No or invalid credentials.
    Unauthenticated,
    /// Credentials are valid but not allowed.
    Forbidden,
    /// The resource does not exist.
    NotFound,
    /// No route or method matches the request.
    UnknownRoute,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The client's `Accept` cannot be satisfied.
    NotAcceptable,
    /// The request's content type is not supported.
    UnsupportedMediaType,
    /// The resource already exists.
    AlreadyExists,
    /// The operation was aborted (e.g. a concurrency conflict).
    Aborted,
    /// The body is larger than allowed.
    PayloadTooLarge,
    /// The URI is longer than allowed.
    UriTooLong,
    /// The headers are larger than allowed.
    HeadersTooLarge,
    /// The client did not send its request in time (a slow or stalled body).
    RequestTimeout,
    /// A rate limit was hit.
    RateLimited,
    /// A quota is exhausted.
    QuotaExhausted,
    /// The client went away.
    Cancelled,
    /// The feature is not implemented.
    NotImplemented,
    /// A backend answered something that is not a valid answer.
    UpstreamError,
    /// No healthy backend, breaker open, or the gateway is draining.
    Unavailable,
    /// The deadline passed.
    DeadlineExceeded,
    /// A bug or an unexpected state in the gateway.
    Internal,
    /// An error of unknown kind, e.g. from a backend.
    Unknown,
    /// Unrecoverable data loss.
    DataLoss,
}

/// gRPC status codes as numbers (PROTOCOL-HTTP2.md / google.rpc.Code); kept here so that `error`
/// depends on no gRPC framework type.
#[allow(missing_docs)]
pub mod grpc_code {
    pub const OK: i32 = 0;
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
    pub const UNAUTHENTICATED: i32 = 16;

    /// The code's canonical name (`NOT_FOUND`); `UNKNOWN` for numbers outside the list.
    pub fn name(code: i32) -> &'static str {
        const NAMES: [&str; 17] = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        usize::try_from(code).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or("UNKNOWN")
    }
}

impl ErrorCode {
    /// The HTTP status this error answers with.
    pub fn http_status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidArgument | FailedPrecondition | OutOfRange => StatusCode::BAD_REQUEST,
            GraphqlParseFailed | GraphqlValidationFailed => StatusCode::BAD_REQUEST,
            PersistedQueryNotFound => StatusCode::OK,
            Unauthenticated => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            NotFound | UnknownRoute => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AlreadyExists | Aborted => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            RateLimited | QuotaExhausted => StatusCode::TOO_MANY_REQUESTS,
            Cancelled => StatusCode::from_u16(499).expect("499 is a valid status code"),
            NotImplemented => StatusCode::NOT_IMPLEMENTED,
            UpstreamError => StatusCode::BAD_GATEWAY,
            Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Internal | Unknown | DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code this error answers with.
    pub fn grpc_code(self) -> i32 {
        use ErrorCode::*;
        use grpc_code as g;
        match self {
            InvalidArgument => g::INVALID_ARGUMENT,
            FailedPrecondition => g::FAILED_PRECONDITION,
            OutOfRange => g::OUT_OF_RANGE,
            GraphqlParseFailed | GraphqlValidationFailed => g::INVALID_ARGUMENT,
            PersistedQueryNotFound => g::NOT_FOUND,
            Unauthenticated => g::UNAUTHENTICATED,
            Forbidden => g::PERMISSION_DENIED,
            NotFound => g::NOT_FOUND,
            UnknownRoute | MethodNotAllowed | NotImplemented => g::UNIMPLEMENTED,
            NotAcceptable | UnsupportedMediaType => g::INVALID_ARGUMENT,
            AlreadyExists => g::ALREADY_EXISTS,
            Aborted => g::ABORTED,
            PayloadTooLarge | UriTooLong | HeadersTooLarge => g::RESOURCE_EXHAUSTED,
            RateLimited | QuotaExhausted => g::RESOURCE_EXHAUSTED,
            Cancelled => g::CANCELLED,
            UpstreamError | Internal => g::INTERNAL,
            Unavailable => g::UNAVAILABLE,
            DeadlineExceeded | RequestTimeout => g::DEADLINE_EXCEEDED,
            Unknown => g::UNKNOWN,
            DataLoss => g::DATA_LOSS,
        }
    }

    /// The GraphQL `extensions.code` this error carries.
    pub fn graphql_code(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidArgument | FailedPrecondition | OutOfRange => "BAD_USER_INPUT",
            GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Unauthenticated => "UNAUTHENTICATED",
            Forbidden => "FORBIDDEN",
            NotFound | UnknownRoute => "NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            NotAcceptable | UnsupportedMediaType => "BAD_REQUEST",
            PayloadTooLarge | UriTooLong | HeadersTooLarge => "BAD_REQUEST",
            AlreadyExists | Aborted => "CONFLICT",
            RateLimited | QuotaExhausted => "RATE_LIMITED",
            Cancelled => "CANCELLED",
            NotImplemented => "NOT_IMPLEMENTED",
            UpstreamError => "UPSTREAM_ERROR",
            Unavailable => "UNAVAILABLE",
            DeadlineExceeded | RequestTimeout => "TIMEOUT",
            Internal | Unknown | DataLoss => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The error a backend's gRPC status code stands for.
    pub fn from_grpc_code(code: i32) -> ErrorCode {
        use ErrorCode::*;
        use grpc_code as g;
        match code {
            g::CANCELLED => Cancelled,
            g::INVALID_ARGUMENT => InvalidArgument,
            g::DEADLINE_EXCEEDED => DeadlineExceeded,
            g::NOT_FOUND => NotFound,
            g::ALREADY_EXISTS => AlreadyExists,
            g::PERMISSION_DENIED => Forbidden,
            g::RESOURCE_EXHAUSTED => RateLimited,
            g::FAILED_PRECONDITION => FailedPrecondition,
            g::ABORTED => Aborted,
            g::OUT_OF_RANGE => OutOfRange,
            g::UNIMPLEMENTED => NotImplemented,
            g::INTERNAL => Internal,
            g::UNAVAILABLE => Unavailable,
            g::DATA_LOSS => DataLoss,
            g::UNAUTHENTICATED => Unauthenticated,
            _ => Unknown,
        }
    }

    /// The error a REST backend's HTTP status stands for (DESIGN.md: 400, 401, 403, 404, 409
    /// and 429 by their rows, other 4xx invalid argument, 502/503/504 unavailable, other 5xx
    /// internal).
    pub fn from_backend_http_status(status: u16) -> ErrorCode {
        use ErrorCode::*;
        match status {
            401 => Unauthenticated,
            403 => Forbidden,
            404 => NotFound,
            409 => AlreadyExists,
            429 => RateLimited,
            400..=499 => InvalidArgument,
            502..=504 => Unavailable,
            _ => Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN.md's backend mapping: each gRPC status maps to exactly one HTTP status.
    #[test]
    fn backend_grpc_status_maps_to_the_designed_http_status() {
        let table = [
            (grpc_code::CANCELLED, 499),
            (grpc_code::UNKNOWN, 500),
            (grpc_code::INVALID_ARGUMENT, 400),
            (grpc_code::DEADLINE_EXCEEDED, 504),
            (grpc_code::NOT_FOUND, 404),
            (grpc_code::ALREADY_EXISTS, 409),
            (grpc_code::PERMISSION_DENIED, 403),
            (grpc_code::RESOURCE_EXHAUSTED, 429),
            (grpc_code::FAILED_PRECONDITION, 400),
            (grpc_code::ABORTED, 409),
            (grpc_code::OUT_OF_RANGE, 400),
            (grpc_code::UNIMPLEMENTED, 501),
            (grpc_code::INTERNAL, 500),
            (grpc_code::UNAVAILABLE, 503),
            (grpc_code::DATA_LOSS, 500),
            (grpc_code::UNAUTHENTICATED, 401),
        ];
        for (grpc, http) in table {
            let code = ErrorCode::from_grpc_code(grpc);
            assert_eq!(code.http_status().as_u16(), http, "gRPC code {grpc}");
            assert_eq!(code.grpc_code(), grpc, "gRPC code {grpc} round trip");
        }
    }

    #[test]
    fn gateway_errors_map_to_the_designed_triples() {
        let table = [
            (ErrorCode::UnknownRoute, 404, grpc_code::UNIMPLEMENTED, "NOT_FOUND"),
            (ErrorCode::MethodNotAllowed, 405, grpc_code::UNIMPLEMENTED, "METHOD_NOT_ALLOWED"),
            (ErrorCode::PayloadTooLarge, 413, grpc_code::RESOURCE_EXHAUSTED, "BAD_REQUEST"),
            (ErrorCode::HeadersTooLarge, 431, grpc_code::RESOURCE_EXHAUSTED, "BAD_REQUEST"),
            (ErrorCode::RateLimited, 429, grpc_code::RESOURCE_EXHAUSTED, "RATE_LIMITED"),
            (ErrorCode::UpstreamError, 502, grpc_code::INTERNAL, "UPSTREAM_ERROR"),
            (ErrorCode::Unavailable, 503, grpc_code::UNAVAILABLE, "UNAVAILABLE"),
            (ErrorCode::DeadlineExceeded, 504, grpc_code::DEADLINE_EXCEEDED, "TIMEOUT"),
            (ErrorCode::PersistedQueryNotFound, 200, grpc_code::NOT_FOUND, "PERSISTED_QUERY_NOT_FOUND"),
            (ErrorCode::GraphqlParseFailed, 400, grpc_code::INVALID_ARGUMENT, "GRAPHQL_PARSE_FAILED"),
        ];
        for (code, http, grpc, gql) in table {
            assert_eq!(code.http_status().as_u16(), http, "{code:?}");
            assert_eq!(code.grpc_code(), grpc, "{code:?}");
            assert_eq!(code.graphql_code(), gql, "{code:?}");
        }
    }
}
