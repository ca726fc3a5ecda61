//! Native gRPC ingress, the fast path: `content-type: application/grpc*` on any path is spliced
//! to the backend of the service named in the path, all four call kinds, messages undecoded,
//! trailers and status intact. The gateway itself answers grpc.health.v1 and server reflection
//! (v1, v1alpha) for everything registered. gRPC-Web is translated to gRPC by tonic-web around
//! this same handler. Refusals are gRPC statuses (trailers-only responses), never HTTP errors.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::header;
use tower::ServiceExt;

use super::grpc_local::LocalGrpcCache;
use crate::gateway::Served;

/// Services the gateway answers itself.
const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Headers that belong to one hop and are never forwarded (RFC 9110 section 7.6.1); `te` is
/// kept, gRPC requires `te: trailers`.
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "proxy-authorization"];

/// Which gRPC a request speaks, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrpcWire {
    /// `application/grpc`, `application/grpc+proto`, ...
    Native,
    /// `application/grpc-web`, `+proto`, `-text`.
    Web,
}

/// The gRPC a request speaks, if any, by its content type, looked up once: `application/grpc`
/// (PROTOCOL-HTTP2.md) and gRPC-Web's `application/grpc-web` and `application/grpc-web-text`,
/// each alone, with a `+` suffix (`+proto`, `+json`, …) or with parameters. Any other type that
/// merely starts alike (`application/grpcx`) is not gRPC.
pub(crate) fn grpc_wire(headers: &http::HeaderMap) -> Option<GrpcWire> {
    let content_type = headers.get(header::CONTENT_TYPE)?.as_bytes();
    let after = |text: &'_ [u8], prefix: &[u8]| -> Option<usize> {
        text.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix)).map(|_| prefix.len())
    };
    // The media type ends here, or goes on with a suffix or its parameters.
    let ends = |rest: &[u8]| rest.first().is_none_or(|b| *b == b'+' || *b == b';');
    let rest = &content_type[after(content_type, b"application/grpc")?..];
    if ends(rest) {
        return Some(GrpcWire::Native);
    }
    let web = &rest[after(rest, b"-web")?..];
    let text = after(web, b"-text").map(|at| &web[at..]);
    (ends(web) || text.is_some_and(ends)).then_some(GrpcWire::Web)
}

/// Native gRPC (`application/grpc`, `application/grpc+proto`, …), not gRPC-Web: the requests the
/// listener sends the short way (`gateway_router`'s `Routes::grpc`).
pub fn is_native_grpc(headers: &http::HeaderMap) -> bool {
    grpc_wire(headers) == Some(GrpcWire::Native)
}

/// Serves one native gRPC request.
/// `peer` is the client's address (the connection's; `forward::client_ip` reads forwarding
/// headers from trusted proxies).
pub(crate) async fn handle_grpc(
    served: Arc<Served>,
    local_grpc: &LocalGrpcCache,
    request: Request,
    peer: Option<std::net::SocketAddr>,
) -> Response {
    let path = request.uri().path();
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return status(tonic::Status::unimplemented(format!("`{path}` is not a gRPC method path")));
    };
    if matches!(service, HEALTH | REFLECTION_V1 | REFLECTION_V1ALPHA) {
        let local_services = local_grpc.for_snapshot(&served.snapshot).await;
        let service = match service {
            HEALTH => local_services.health.clone(),
            REFLECTION_V1 => local_services.reflection_v1.clone(),
            _ => local_services.reflection_v1alpha.clone(),
        };
        return local(service, request).await;
    }
    let snapshot = &served.snapshot;
    let Some(descriptor) = snapshot.registry.pool.get_service_by_name(service) else {
        return status(tonic::Status::unimplemented(format!("unknown service {service}")));
    };
    let Some(method) = descriptor.methods().find(|m| m.name() == method) else {
        return status(tonic::Status::unimplemented(format!("unknown method {method} for service {service}")));
    };
    // The path as the request holds it: a shared buffer (HTTP/2 decodes a repeated path from
    // its table), so naming the operation copies nothing.
    if let Some(path) = request.uri().path_and_query() {
        crate::telemetry::record::note_operation(path.clone());
    }
    // From here the names come from the descriptors, not from the request (which moves on).
    let service = descriptor.full_name();
    let Some(cluster) = snapshot.services.get(service).and_then(Option::as_deref) else {
        return status(tonic::Status::unavailable(format!("no backend serves {service}")));
    };
    let client = match served.upstreams.grpc(cluster) {
        Ok(client) => client,
        Err(error) => return status(tonic::Status::unavailable(error.to_string())),
    };
    let credentials = crate::policy::Credentials { headers: request.headers(), query: request.uri().query() };
    let identity = match snapshot.auth.authenticate(credentials).await {
        Ok(identity) => identity,
        Err(error) => return status(tonic::Status::unauthenticated(error.message)),
    };
    if let Err(denial) = snapshot.policies.check_method(&method, identity.as_deref()) {
        return status(match denial.anonymous {
            true => tonic::Status::unauthenticated(denial.message),
            false => tonic::Status::permission_denied(denial.message),
        });
    }
    if !snapshot.limiter.is_empty() {
        let caller = crate::policy::limits::Caller {
            identity: identity.as_deref(),
            headers: request.headers(),
            client_ip: super::forward::client_ip(request.headers(), peer, &snapshot.trusted_proxies),
        };
        let usage = snapshot.limiter.usage_of_call(&method, None);
        if let Err(refused) = snapshot.limiter.admit(&caller, &usage).await {
            let message = refused.to_string();
            return status(match refused {
                crate::policy::limits::Refused::Limited { .. } => tonic::Status::resource_exhausted(message),
                crate::policy::limits::Refused::Unavailable(_) => tonic::Status::unavailable(message),
            });
        }
    }
    let (mut parts, body) = request.into_parts();
    snapshot.auth.admit_headers(&mut parts.headers, identity.as_deref());
    let transform = snapshot.transforms.methods.get(method.full_name()).cloned();
    let client_ip = super::forward::client_ip(&parts.headers, peer, &snapshot.trusted_proxies);
    let values = crate::transform::Values { identity: identity.as_deref(), client_ip };
    if let Some(transform) = &transform {
        transform.request.apply_headers(&mut parts.headers, values);
    }
    if !snapshot.hash_claims.is_empty() {
        let claims = crate::policy::hash_claim_values(identity.as_deref(), &snapshot.hash_claims);
        parts.extensions.insert(crate::operation::HashClaims(claims));
    }
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    // The body may have been re-framed on the way in (gRPC-Web text is base64), and HTTP/2
    // frames carry their own lengths: a stale content-length would make the backend reset. One
    // the body still matches is kept (else the client connection writes it again).
    let length = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if length.is_none() || length != http_body::Body::size_hint(&body).exact() {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let deadline = match super::forward::grpc_timeout(&parts.headers) {
        Ok(deadline) => deadline,
        Err(error) => return status(tonic::Status::invalid_argument(error.to_string())),
    };
    let unary = !method.is_client_streaming() && !method.is_server_streaming();
    let upstream = http::Request::from_parts(parts, body);
    match client.forward(upstream, deadline, unary, client_ip).await {
        Ok(mut response) => {
            if let Some(deprecation) = snapshot.deprecations.get(service) {
                response.headers_mut().extend(deprecation.headers.iter().cloned());
            }
            if let Some(transform) = &transform {
                transform.response.apply_headers(response.headers_mut(), values);
            }
            response.map(Body::new)
        }
        Err(error) => status(tonic::Status::new(tonic::Code::from(error.code().grpc_code()), error.to_string())),
    }
}

async fn local<S>(service: S, request: Request) -> Response
where
    S: tower::Service<Request, Response = http::Response<tonic::body::Body>, Error = std::convert::Infallible>,
{
    match service.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

pub(crate) fn status(status: tonic::Status) -> Response {
    status.into_http::<tonic::body::Body>().map(Body::new)
}

#[cfg(test)]
mod native_grpc_tests {
    use super::{GrpcWire, grpc_wire, is_native_grpc};

    /// `grpc_wire` names the gRPC a request speaks (for the protocol label, the main way's
    /// dispatch and refusals before routing); only native gRPC takes the listener's short way.
    #[test]
    fn content_types_name_the_grpc_and_the_short_way() {
        // (content type, the gRPC it speaks, native)
        let table = [
            (Some("application/grpc"), Some(GrpcWire::Native), true),
            (Some("application/grpc+proto"), Some(GrpcWire::Native), true),
            (Some("Application/GRPC;charset=utf-8"), Some(GrpcWire::Native), true),
            (Some("application/grpc-web"), Some(GrpcWire::Web), false),
            (Some("application/grpc-web-text+proto"), Some(GrpcWire::Web), false),
            (Some("APPLICATION/GRPC-WEB-TEXT+proto"), Some(GrpcWire::Web), false),
            (Some("application/grpc-web-text"), Some(GrpcWire::Web), false),
            (Some("application/grpc-web;charset=utf-8"), Some(GrpcWire::Web), false),
            (Some("application/grpc+json"), Some(GrpcWire::Native), true),
            // Types that only start alike are not gRPC, for dispatch and the short way alike.
            (Some("application/grpcx"), None, false),
            (Some("application/grpc-webx"), None, false),
            (Some("application/grpc-web-textual"), None, false),
            (Some("application/grpc-"), None, false),
            (Some("application/json"), None, false),
            (Some("application/grp"), None, false),
            (None, None, false),
        ];
        for (content_type, wire, native) in table {
            let mut headers = http::HeaderMap::new();
            if let Some(value) = content_type {
                headers.insert(http::header::CONTENT_TYPE, value.parse().expect("header"));
            }
            assert_eq!(grpc_wire(&headers), wire, "{content_type:?}");
            assert_eq!(is_native_grpc(&headers), native, "{content_type:?}");
        }
    }
}
