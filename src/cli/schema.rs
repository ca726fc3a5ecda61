//! `switchyard schema`: print the GraphQL SDL that `serve` would serve.

use super::{CommandResult, Failure, SourceArgs};
use crate::snapshot::build_snapshot;

pub(crate) async fn run(args: SourceArgs) -> CommandResult {
    let sources = args.sources(None, None);
    let built = tokio::task::spawn_blocking(move || build_snapshot(&sources, 1)).await.map_err(Failure::runtime)?;
    match built {
        Ok(snapshot) => {
            print!("{}", snapshot.graphql.to_sdl());
            Ok(())
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            Err(Failure::reported("the sources have problems; see `switchyard check`".into()))
        }
    }
}
