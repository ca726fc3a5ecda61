//! `switchyard check`: print every problem in config, descriptors and schemas; exit 1 if any
//! is an error.

use super::{CommandResult, Failure, SourceArgs};
use crate::snapshot::build_snapshot;

pub(crate) async fn run(args: SourceArgs) -> CommandResult {
    let sources = args.sources(None, None);
    let built = tokio::task::spawn_blocking(move || build_snapshot(&sources, 1)).await.map_err(Failure::runtime)?;
    match built {
        Ok(snapshot) => {
            for warning in &snapshot.warnings {
                println!("{warning}");
            }
            let services = snapshot.services.len();
            let served = snapshot.services.values().filter(|c| c.is_some()).count();
            let supergraph = snapshot
                .supergraph
                .as_ref()
                .map(|s| format!(", a supergraph of {} subgraph(s)", s.subgraphs.len()))
                .unwrap_or_default();
            println!(
                "ok: {} registration(s), {services} service(s) ({served} with a backend), {} cluster(s), {} schema file(s){supergraph}, {} warning(s)",
                snapshot.registry.registrations.len(),
                snapshot.clusters.len(),
                snapshot.schema_files.len(),
                snapshot.warnings.len(),
            );
            Ok(())
        }
        Err(problems) => {
            for problem in &problems {
                println!("{problem}");
            }
            let errors = problems.iter().filter(|p| p.is_error()).count();
            let warnings = problems.len() - errors;
            Err(Failure::reported(format!("{errors} error(s), {warnings} warning(s)")))
        }
    }
}
