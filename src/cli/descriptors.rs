//! `switchyard descriptors add | pull | list | remove | rollback` on a registry directory.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CommandResult, Failure};
use crate::registry::{
    AddOutcome, Registration, RegistryDir, RegistryError, compile_sources, describe_registration, pull_from_server,
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
    match command {
        DescriptorsCommand::Add(args) => {
            let allow_breaking = args.allow_breaking;
            let registration = tokio::task::spawn_blocking(move || {
                compile_sources(&args.files, &args.includes, args.name.as_deref()).map(|r| (r, args.dir))
            })
            .await
            .map_err(Failure::runtime)?;
            let (registration, dir) = registration.map_err(failure)?;
            store(&RegistryDir::new(dir.dir), &registration, allow_breaking)
        }
        DescriptorsCommand::Pull(args) => {
            let registration =
                pull_from_server(&args.url, &args.services, args.name.as_deref()).await.map_err(failure)?;
            store(&RegistryDir::new(args.dir.dir), &registration, args.allow_breaking)
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

/// `  versions:` and one line per version, newest first.
fn describe_versions(versions: &[crate::registry::Version]) -> String {
    let mut out = String::from("  versions:\n");
    for version in versions.iter().rev() {
        let written = humantime::format_rfc3339_seconds(version.written);
        let current = if version.current { "  (current)" } else { "" };
        out.push_str(&format!("    {:>3}  {}  {written}{current}\n", version.number, version.digest));
    }
    out
}

fn store(dir: &RegistryDir, registration: &Registration, allow_breaking: bool) -> CommandResult {
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
