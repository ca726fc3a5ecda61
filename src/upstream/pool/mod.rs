//! Backend pools: how each call of a cluster chooses an endpoint (`balancer`). Health checks,
//! outlier ejection, circuit breaking and retries join here with the pools issue's next slices.

pub mod balancer;

pub use balancer::{Algorithm, Balancer, EndpointLoad, InFlight, Member};
