//! Upstream: every connection to a served backend. Today it holds the gRPC message codec for
//! dynamic (descriptor-driven) messages; the transcoding issue adds the fetch trait and gRPC/HTTP
//! clients, the pools issue the balancers, health checks and breakers. Upstream never sees an
//! Operation or a Plan, only fetch requests.

pub mod grpc_codec;
