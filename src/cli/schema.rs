//! `switchyard schema`: print the GraphQL SDL that `serve` would serve.

use super::{CommandResult, SourceArgs, snapshot_or_problems};

pub(crate) async fn run(args: SourceArgs) -> CommandResult {
    let snapshot = snapshot_or_problems(args.sources(None, None)).await?;
    print!("{}", snapshot.graphql.to_sdl());
    Ok(())
}
