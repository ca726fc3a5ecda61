//! The gateway in the bench's own process, serving the demo registration from `backend` on
//! ephemeral loopback ports.

/// Starts the gateway; its listening addresses are on the returned server.
pub(crate) async fn start_demo_gateway(backend: String) -> switchyard::server::RunningServer {
    let sources = switchyard::snapshot::SnapshotSources {
        embedded: vec![switchyard::demo::demo_registration().expect("demo")],
        no_descriptor_dir: true,
        schemas: Some("/nonexistent".into()),
        backends: vec![switchyard::snapshot::BackendFlag { name: "catalog.v1".into(), urls: vec![backend] }],
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        admin: Some("127.0.0.1:0".parse().expect("addr")),
        ..Default::default()
    };
    let snapshot = switchyard::snapshot::build_snapshot(&sources, 1).expect("snapshot");
    switchyard::server::start_server(switchyard::gateway::Gateway::new(snapshot, sources)).await.expect("gateway")
}
