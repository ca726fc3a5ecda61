//! `switchyard openapi`: print the OpenAPI 3.1 document of the REST routes `serve` would serve.

use super::{CommandResult, Failure, SourceArgs, snapshot_or_problems};

pub(crate) async fn run(args: SourceArgs) -> CommandResult {
    let snapshot = snapshot_or_problems(args.sources(None, None)).await?;
    let text = serde_json::to_string_pretty(&snapshot.openapi()).map_err(Failure::runtime)?;
    println!("{text}");
    Ok(())
}
