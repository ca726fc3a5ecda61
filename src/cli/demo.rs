//! `switchyard demo`: the demo backend in-process on loopback, the gateway wired to it, the
//! URLs and copy-paste commands printed; runs until Ctrl-C and shuts everything down cleanly.

use std::net::SocketAddr;

use clap::Args;

use super::{CommandResult, Failure};
use crate::demo::{DEMO_SERVICE, demo_registration, start_demo_backend};
use crate::server::start_server;
use crate::snapshot::{BackendFlag, SnapshotSources};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Gateway listener address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Admin listener address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin: SocketAddr,
}

pub(crate) async fn run(args: DemoArgs) -> CommandResult {
    let backend = start_demo_backend(SocketAddr::from(([127, 0, 0, 1], 0))).await.map_err(Failure::runtime)?;
    let sources = SnapshotSources {
        embedded: vec![demo_registration().map_err(Failure::runtime)?],
        no_descriptor_dir: true,
        backends: vec![BackendFlag { name: "catalog.v1".into(), urls: vec![backend.url()] }],
        listen: Some(args.listen),
        admin: Some(args.admin),
        ..SnapshotSources::default()
    };
    let (gateway, mut signal) = super::serve::start(sources).await?;
    let server = start_server(gateway).await.map_err(Failure::runtime)?;
    print_banner(server.gateway_addr, server.admin_addr, &backend.url());
    signal.recv().await;
    println!("shutting down");
    server.shutdown().await;
    backend.shutdown().await;
    Ok(())
}

fn print_banner(gateway: SocketAddr, admin: SocketAddr, backend: &str) {
    let backend_addr = backend.trim_start_matches("http://");
    println!(
        "\
Switchyard demo is running. Ctrl-C stops it.

  gateway         http://{gateway}
  admin           http://{admin}
  demo backend    {backend}  (gRPC: {DEMO_SERVICE}, with health and reflection)

Try:
  curl -s http://{admin}/readyz                 # ready, which services go to which backend
  curl -s http://{admin}/healthz                # liveness
  curl -s -X POST http://{admin}/admin/reload   # rebuild and swap the snapshot
  curl -si http://{gateway}/v1/shelves/1/books  # REST transcoding arrives with the next release: 404 for now

  # register the demo backend's services in a local registry, by server reflection:
  switchyard descriptors pull {backend} --dir /tmp/switchyard-demo
  switchyard descriptors list --dir /tmp/switchyard-demo

  # or talk gRPC to the backend directly (grpcurl uses its reflection):
  grpcurl -plaintext {backend_addr} list
  grpcurl -plaintext -d '{{\"name\":\"shelves/1/books/1\"}}' {backend_addr} {DEMO_SERVICE}/GetBook
"
    );
}
