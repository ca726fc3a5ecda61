//! The command line: raw flags (clap) → validated arguments → one function per subcommand, each
//! in its own file. Exit codes: 0 success, 1 invalid input, 2 usage error (clap), 3 runtime
//! failure. anyhow lives here and in main.rs only.

mod admin_client;
mod check;
mod config;
mod demo;
mod descriptors;
mod openapi;
mod plan;
mod routes;
mod schema;
mod serve;
mod signal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::snapshot::{BackendFlag, SnapshotSources};

/// Switchyard is one gateway for your gRPC and REST backends. Clients reach them the way they
/// want: as a stitched GraphQL API, as JSON REST transcoded to gRPC by google.api.http rules, as
/// WebSocket subscriptions backed by gRPC streams, or as plain gRPC through its load balancer.
/// Register proto descriptors with `switchyard descriptors`, serve them with `switchyard
/// serve`, or try everything at once with `switchyard demo`.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// Log filter (e.g. `info`, `switchyard=debug`); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info", value_name = "FILTER")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded demo: demo backends in-process, the gateway wired to them.
    Demo(demo::DemoArgs),
    /// Serve the registered descriptors and schemas.
    Serve(serve::ServeArgs),
    /// Print every problem in the config, descriptors and schemas; exit 1 if there is one.
    Check(SourceArgs),
    /// Print the REST route table: method, path template, gRPC method, call kind, body mapping.
    Routes(SourceArgs),
    /// Print the plan of a GraphQL document: the backend calls it makes, and in what order.
    Plan(plan::PlanArgs),
    /// Print the GraphQL schema (SDL) generated from the registered services.
    Schema(SourceArgs),
    /// Print the OpenAPI 3.1 document of the REST routes.
    Openapi(SourceArgs),
    /// Manage the descriptor registry.
    #[command(subcommand)]
    Descriptors(descriptors::DescriptorsCommand),
    /// The config file's JSON Schema.
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

/// The flags that say what a gateway serves (shared by serve, check and later commands).
#[derive(Debug, Clone, Args)]
pub(crate) struct SourceArgs {
    /// Config file (TOML). Without one, defaults apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Descriptor registry directory [default: descriptors/, or sources.descriptors].
    #[arg(long, value_name = "DIR")]
    descriptors: Option<PathBuf>,
    /// GraphQL schema directory [default: schemas/, or sources.schemas].
    #[arg(long, value_name = "DIR")]
    schemas: Option<PathBuf>,
    /// An Apollo Federation v2 supergraph SDL file to serve [default: sources.supergraph].
    #[arg(long, value_name = "FILE")]
    supergraph: Option<PathBuf>,
    /// A backend cluster named NAME serving the gRPC service or package NAME
    /// (e.g. catalog.v1=http://127.0.0.1:50051); repeatable.
    #[arg(long = "backend", value_name = "NAME=URL[,URL...]")]
    backends: Vec<BackendFlag>,
}

impl SourceArgs {
    fn sources(&self, listen: Option<SocketAddr>, admin: Option<SocketAddr>) -> SnapshotSources {
        SnapshotSources {
            config_file: self.config.clone(),
            descriptors: self.descriptors.clone(),
            schemas: self.schemas.clone(),
            supergraph: self.supergraph.clone(),
            backends: self.backends.clone(),
            listen,
            admin,
            ..SnapshotSources::default()
        }
    }
}

/// A failed command and its exit code.
pub(crate) struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    /// Invalid input: exit 1.
    pub(crate) fn invalid(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: 1, error: error.into() }
    }

    /// Runtime failure: exit 3.
    pub(crate) fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: 3, error: error.into() }
    }

    /// Problems already printed: exit 1 with a summary line.
    pub(crate) fn reported(summary: String) -> Self {
        Failure { code: 1, error: anyhow::anyhow!(summary) }
    }
}

type CommandResult = Result<(), Failure>;

/// Builds the snapshot `serve` would serve, or prints every problem and fails (the inspection
/// commands: routes, openapi, schema, plan).
async fn snapshot_or_problems(sources: SnapshotSources) -> Result<crate::snapshot::Snapshot, Failure> {
    let built = tokio::task::spawn_blocking(move || crate::snapshot::build_snapshot(&sources, 1))
        .await
        .map_err(Failure::runtime)?;
    built.map_err(|problems| {
        for problem in &problems {
            eprintln!("{problem}");
        }
        Failure::reported("the sources have problems; see `switchyard check`".into())
    })
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let tracing = match &cli.command {
        Command::Serve(args) => args.tracing_config(),
        _ => crate::config::TracingConfig::default(),
    };
    let exporting = {
        // The exporters' connections live on the runtime.
        let _entered = runtime.enter();
        match crate::telemetry::otel::layer(&tracing) {
            Ok(layer) => layer,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(1);
            }
        }
    };
    init_logging(&cli.log, exporting);
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Check(args) => check::run(args).await,
            Command::Routes(args) => routes::run(args).await,
            Command::Openapi(args) => openapi::run(args).await,
            Command::Schema(args) => schema::run(args).await,
            Command::Plan(args) => plan::run(args).await,
            Command::Descriptors(command) => descriptors::run(command).await,
            Command::Config(command) => config::run(command),
        }
    });
    // Background tasks (connections being torn down) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// Log lines to stderr, filtered by `--log` / RUST_LOG; with the OpenTelemetry layer when the
/// config exports spans (its own filter: the gateway's spans at info and above).
fn init_logging(default_filter: &str, exporting: Option<crate::telemetry::otel::OtelLayer>) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // Exported spans are the gateway's own at info and above, whatever the log filter says.
    let spans = tracing_subscriber::filter::Targets::new().with_target("switchyard", tracing::Level::INFO);
    let exporting = exporting.map(|layer| layer.with_filter(spans));
    let _ = tracing_subscriber::registry().with(exporting).with(lines.with_filter(filter)).try_init();
}
