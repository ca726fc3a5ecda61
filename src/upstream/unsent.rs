//! Which transport failures mean the backend never processed the call, so that sending it again
//! cannot run it twice: the stream was refused (REFUSED_STREAM: over the backend's
//! SETTINGS_MAX_CONCURRENT_STREAMS before the client knew it, RFC 9113 §8.7), it was above the
//! last stream a graceful GOAWAY let through (RFC 9113 §6.8), or it never left the gateway
//! because its connection closed first (hyper cancels the requests still queued or waiting for
//! a stream slot). gRPC clients retry these transparently (gRFC A6), whatever the method;
//! so does the gateway, without touching the retry budget or the endpoint's health.

use std::error::Error;

/// Whether `error` (or any error in its source chain) says the call never reached the backend's
/// handler.
pub fn never_processed(error: &(dyn Error + 'static)) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(error) = next {
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return refused_stream(h2);
        }
        if let Some(hyper) = error.downcast_ref::<hyper::Error>()
            && (hyper.is_canceled() || dispatch_gone(hyper))
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// REFUSED_STREAM from the peer, or a graceful GOAWAY's refusal of a stream above its last one.
fn refused_stream(error: &h2::Error) -> bool {
    error.is_remote()
        && match error.reason() {
            Some(h2::Reason::REFUSED_STREAM) => true,
            Some(h2::Reason::NO_ERROR) => error.is_go_away(),
            _ => false,
        }
}

/// hyper's "dispatch task is gone": the connection's task ended with the request still queued
/// there (waiting for a stream slot), never written. hyper has no accessor for this kind.
fn dispatch_gone(error: &hyper::Error) -> bool {
    error.is_user() && error.to_string().starts_with("dispatch task is gone")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(Box<dyn Error + Send + Sync + 'static>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("transport error")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self.0.as_ref())
        }
    }

    #[test]
    fn only_refusals_the_backend_made_before_processing_count() {
        // h2 errors made from a reason are local (the gateway reset the stream): never a refusal
        // by the backend, whatever the reason.
        type Case = (&'static str, Box<dyn Error + Send + Sync>, bool);
        let table: Vec<Case> = vec![
            ("a local REFUSED_STREAM", Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)), false),
            ("a local CANCEL", Box::new(h2::Error::from(h2::Reason::CANCEL)), false),
            ("an io error", Box::new(std::io::Error::other("connection reset")), false),
            ("a plain message", "refused".into(), false),
        ];
        for (what, error, want) in table {
            assert_eq!(never_processed(error.as_ref()), want, "{what}");
            let status = tonic::Status::from_error(Box::new(Wrapped(error)));
            assert_eq!(never_processed(&status), want, "{what}, inside a status");
        }
    }
}
