//! HTTP/2 connections to one gRPC endpoint: calls share a connection until it carries
//! `MAX_STREAMS_PER_CONNECTION` calls at once, then another connection is opened, as a
//! backend's max-concurrent-streams setting (hyper's default is 200) would otherwise make the
//! next calls wait. Connections are opened lazily and kept for reuse.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::http2::{Connection, Dialer};

/// Calls one connection carries at once before another is opened: below the common server
/// limits (hyper 200, grpc-go 100 on some deployments), so calls never queue behind them.
pub const MAX_STREAMS_PER_CONNECTION: usize = 90;

/// The connections to one endpoint.
#[derive(Debug)]
pub struct EndpointConnections {
    dialer: Arc<Dialer>,
    connections: Mutex<Vec<(Connection, Arc<AtomicUsize>)>>,
}

/// A call's hold on one connection; dropping it frees the stream slot.
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EndpointConnections {
    /// Connections `dialer` opens (the first one made now, opened on first use).
    pub fn new(dialer: Dialer) -> Self {
        let dialer = Arc::new(dialer);
        let first = (Connection::lazy(dialer.clone()), Arc::new(AtomicUsize::new(0)));
        EndpointConnections { dialer, connections: Mutex::new(vec![first]) }
    }

    /// A connection with a free stream slot, opening one if every connection is full.
    pub fn acquire(&self) -> (Connection, StreamSlot) {
        let mut connections = self.connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = connections.iter().find(|(_, used)| used.load(Ordering::Acquire) < MAX_STREAMS_PER_CONNECTION);
        let (connection, used) = match found {
            Some((connection, used)) => (connection.clone(), used.clone()),
            None => {
                let opened = (Connection::lazy(self.dialer.clone()), Arc::new(AtomicUsize::new(0)));
                connections.push(opened.clone());
                opened
            }
        };
        used.fetch_add(1, Ordering::AcqRel);
        (connection, StreamSlot(used))
    }

    /// How many connections are open (or will open on first use).
    pub fn count(&self) -> usize {
        self.connections.lock().map(|c| c.len()).unwrap_or(0)
    }
}

impl super::Handle for EndpointConnections {
    /// grpc.health.v1 Check for the configured service name: SERVING passes.
    fn check<'a>(&'a self, config: &'a crate::config::HealthCheckConfig) -> futures_util::future::BoxFuture<'a, bool> {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_check_response::ServingStatus;
        let (connection, _slot) = self.acquire();
        let request = HealthCheckRequest { service: config.grpc_service.clone() };
        Box::pin(async move {
            let _slot = _slot;
            let answer = tonic_health::pb::health_client::HealthClient::new(connection).check(request).await;
            matches!(answer, Ok(response) if response.get_ref().status == ServingStatus::Serving as i32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_connections_open_another_and_freed_slots_are_reused() {
        let dialer = Dialer {
            address: "127.0.0.1:9".into(),
            scheme: http::uri::Scheme::HTTP,
            authority: http::uri::Authority::from_static("127.0.0.1:9"),
            tls: None,
            connect_timeout: std::time::Duration::from_secs(1),
            keepalive_interval: None,
            keepalive_timeout: std::time::Duration::from_secs(20),
            keepalive_while_idle: false,
            stream_window: 256 * 1024,
        };
        let connections = EndpointConnections::new(dialer);
        let mut held = Vec::new();
        for _ in 0..MAX_STREAMS_PER_CONNECTION {
            held.push(connections.acquire());
        }
        assert_eq!(connections.count(), 1);
        held.push(connections.acquire());
        assert_eq!(connections.count(), 2, "the first connection is full");
        held.remove(0);
        let _reused = connections.acquire();
        assert_eq!(connections.count(), 2, "a freed slot on the first connection is used again");
    }
}
