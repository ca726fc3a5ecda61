//! `switchyard descriptors add | pull | list | remove | rollback` on a registry directory.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::admin_client::{AdminClient, describe_outcome};
use super::{CommandResult, Failure};
use crate::registry::{
    AddOutcome, Registration, RegistryDir, RegistryError, compile_sources, describe_registration, describe_versions,
    pull_from_server,
};

#[derive(Debug, Subcommand)]
pub(crate) enum DescriptorsCommand {
    /// Register .proto files (compiled in-process) or binary FileDescriptorSets.
    Add(AddArgs),
    /// Register the services of a live server, read by gRPC server reflection.
    Pull(PullArgs),
    /// List registrations: services, methods, call kinds, HTTP bindings, digest.
    List(DirArgs),
    /// Remove a registration (its versions stay in the history).
    Remove(RemoveArgs),
    /// Restore the version before the current one (or a removed registration's last version).
    Rollback(RemoveArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DirArgs {
    /// Registry directory.
    #[arg(long, value_name = "DIR", default_value = "descriptors")]
    dir: PathBuf,
    /// Work on a running gateway instead, through its admin listener (http://127.0.0.1:9090):
    /// the change is served at once and written through to the gateway's descriptor directory
    /// (or to the registry in Redis every instance follows).
    #[arg(long, value_name = "ADMIN_URL")]
    gateway: Option<String>,
    /// The gateway's admin token.
    #[arg(long, value_name = "TOKEN", env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl DirArgs {
    /// The running gateway named by `--gateway`, if any.
    fn gateway(&self) -> Option<AdminClient> {
        self.gateway.as_deref().map(|url| AdminClient::new(url, self.token.clone()))
    }
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// .proto files, or binary FileDescriptorSets (.binpb, .pb, .desc, .protoset).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Import root for .proto files; repeatable [default: each file's directory].
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    includes: Vec<PathBuf>,
    /// Registration name [default: the proto package of the first file].
    #[arg(long)]
    name: Option<String>,
    /// Replace an existing registration even when the change breaks its clients.
    #[arg(long)]
    allow_breaking: bool,
    #[command(flatten)]
    dir: DirArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// The server's URL (http://host:port).
    url: String,
    /// Only these services (full names); repeatable [default: all but health and reflection].
    #[arg(long = "service", value_name = "NAME")]
    services: Vec<String>,
    /// Registration name [default: the first service's package].
    #[arg(long)]
    name: Option<String>,
    /// Replace an existing registration even when the change breaks its clients.
    #[arg(long)]
    allow_breaking: bool,
    #[command(flatten)]
    dir: DirArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    /// The registration.
    name: String,
    #[command(flatten)]
    dir: DirArgs,
}

pub(crate) async fn run(command: DescriptorsCommand) -> CommandResult {
    let is_remove = matches!(command, DescriptorsCommand::Remove(_));
    match command {
        DescriptorsCommand::Add(args) => {
            let allow_breaking = args.allow_breaking;
            let registration = tokio::task::spawn_blocking(move || {
                compile_sources(&args.files, &args.includes, args.name.as_deref()).map(|r| (r, args.dir))
            })
            .await
            .map_err(Failure::runtime)?;
            let (registration, dir) = registration.map_err(failure)?;
            store(&dir, &registration, allow_breaking).await
        }
        DescriptorsCommand::Pull(args) => {
            let registration =
                pull_from_server(&args.url, &args.services, args.name.as_deref()).await.map_err(failure)?;
            store(&args.dir, &registration, args.allow_breaking).await
        }
        DescriptorsCommand::List(args) if args.gateway.is_some() => {
            let Some(gateway) = args.gateway() else { return Ok(()) };
            let answer = gateway.list().await?;
            let registrations = answer["registrations"].as_array().cloned().unwrap_or_default();
            if registrations.is_empty() {
                println!("no registrations on the gateway at {}", gateway.base());
            }
            for registration in registrations {
                print!("{}", registration["listing"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        DescriptorsCommand::Remove(args) | DescriptorsCommand::Rollback(args) if args.dir.gateway.is_some() => {
            let Some(gateway) = args.dir.gateway() else { return Ok(()) };
            let answer = match is_remove {
                true => gateway.remove(&args.name).await?,
                false => gateway.rollback(&args.name).await?,
            };
            print!("{}", describe_outcome(&answer, gateway.base()));
            Ok(())
        }
        DescriptorsCommand::List(args) => {
            let registry = RegistryDir::new(&args.dir).load().map_err(failure)?;
            if registry.registrations.is_empty() {
                println!("no registrations in {}", args.dir.display());
            }
            let dir = RegistryDir::new(&args.dir);
            for registration in &registry.registrations {
                print!("{}", describe_registration(registration, &registry.pool));
                print!("{}", describe_versions(&dir.versions(&registration.name).map_err(failure)?));
            }
            Ok(())
        }
        DescriptorsCommand::Remove(args) => {
            let removed = RegistryDir::new(&args.dir.dir).remove(&args.name).map_err(failure)?;
            println!("removed {} ({}) from {}", removed.name, removed.digest, args.dir.dir.display());
            Ok(())
        }
        DescriptorsCommand::Rollback(args) => {
            let (restored, report) = RegistryDir::new(&args.dir.dir).rollback(&args.name).map_err(failure)?;
            println!(
                "rolled {} back to {} in {}; what changed:",
                restored.name,
                restored.digest,
                args.dir.dir.display()
            );
            print!("{report}");
            Ok(())
        }
    }
}

async fn store(target: &DirArgs, registration: &Registration, allow_breaking: bool) -> CommandResult {
    if let Some(gateway) = target.gateway() {
        let answer = gateway.add(registration, allow_breaking).await?;
        print!("{}", describe_outcome(&answer, gateway.base()));
        return Ok(());
    }
    let dir = RegistryDir::new(&target.dir);
    match dir.add(registration, allow_breaking).map_err(failure)? {
        AddOutcome::Added => {
            let services: Vec<String> = registration.service_names().collect();
            println!(
                "added {} ({}) to {}: {} file(s); services: {}",
                registration.name,
                registration.digest,
                dir.path().display(),
                registration.files.len(),
                if services.is_empty() { "none".to_owned() } else { services.join(", ") }
            );
        }
        AddOutcome::Replaced(report) => {
            println!(
                "replaced {} with {} in {}; what changed:",
                registration.name,
                registration.digest,
                dir.path().display()
            );
            print!("{report}");
        }
        AddOutcome::Unchanged => {
            println!(
                "{} is already registered with the same contents ({}); nothing changed",
                registration.name, registration.digest
            );
        }
    }
    Ok(())
}

fn failure(error: RegistryError) -> Failure {
    if error.is_invalid_input() { Failure::invalid(error) } else { Failure::runtime(error) }
}
