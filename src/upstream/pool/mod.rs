//! Backend pools: a cluster's current members (`members`, re-resolved by `dns`), how each call
//! chooses one (`balancer`), the HTTP/2 connections to a gRPC endpoint (`connections`, each
//! one an `http2::Connection`), active health checks (`health`), the circuit breaker
//! (`breaker`) and retries (`retry`).

pub mod balancer;
pub mod breaker;
pub mod connections;
pub mod dns;
pub mod health;
pub mod http2;
pub mod members;
pub mod retry;

pub use balancer::{Algorithm, Balancer, EndpointLoad, InFlight, Member};
pub use breaker::{Breaker, Refused};
pub use connections::{EndpointConnections, StreamSlot};
pub use members::{Endpoints, Handle, Pool, Spec, Target};
pub use retry::RetryBudget;

use crate::config::HashOn;
use crate::operation::Metadata;

/// A call's consistent-hashing key under `hash_on`, read from `metadata`'s hash inputs: the
/// header's value, the cookie's value, or the client's IP address. None when the call has no
/// such input (the balancer then goes round robin).
pub fn hash_key(hash_on: Option<&HashOn>, metadata: &Metadata) -> Option<Vec<u8>> {
    let inputs = metadata.hash_inputs()?;
    match hash_on? {
        HashOn::Header(name) => inputs.headers.get(&name.to_ascii_lowercase()).map(<[u8]>::to_vec),
        HashOn::Cookie(name) => inputs.headers.iter().filter(|(n, _)| *n == "cookie").find_map(|(_, value)| {
            std::str::from_utf8(value).ok()?.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then(|| value.as_bytes().to_vec())
            })
        }),
        HashOn::ClientIp => inputs.client_ip.map(|ip| ip.to_string().into_bytes()),
        HashOn::Claim(claim) => inputs.claims.iter().find(|(c, _)| c == claim).map(|(_, v)| v.clone().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::HashInputs;

    #[test]
    fn hash_keys_come_from_headers_cookies_and_addresses() {
        let mut headers = Metadata::default();
        headers.push("x-user", "u7");
        headers.push("cookie", "theme=dark; session=s42");
        let claims = vec![("sub".to_owned(), "ada".to_owned())];
        let inputs = HashInputs { client_ip: Some("10.1.2.3".parse().expect("ip")), headers, claims };
        let metadata = Metadata::default().with_hash_inputs(inputs);
        let table: &[(Option<HashOn>, Option<&str>)] = &[
            (Some(HashOn::Header("X-User".into())), Some("u7")),
            (Some(HashOn::Header("x-missing".into())), None),
            (Some(HashOn::Cookie("session".into())), Some("s42")),
            (Some(HashOn::Cookie("nope".into())), None),
            (Some(HashOn::ClientIp), Some("10.1.2.3")),
            (Some(HashOn::Claim("sub".into())), Some("ada")),
            (Some(HashOn::Claim("tenant".into())), None),
            (None, None),
        ];
        for (hash_on, want) in table {
            let got = hash_key(hash_on.as_ref(), &metadata);
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{hash_on:?}");
        }
        assert_eq!(hash_key(Some(&HashOn::ClientIp), &Metadata::default()), None);
    }
}
