//! `switchyard plan QUERY`: print the plan `serve` would run for a GraphQL document.

use clap::Args;

use super::{CommandResult, Failure, SourceArgs, snapshot_or_problems};

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// The GraphQL document (or @FILE to read it from a file).
    query: String,
    /// The operation to plan, when the document has several.
    #[arg(long)]
    operation: Option<String>,
    /// Variables as a JSON object.
    #[arg(long, default_value = "{}")]
    variables: String,
    #[command(flatten)]
    sources: SourceArgs,
}

pub(crate) async fn run(args: PlanArgs) -> CommandResult {
    let query = match args.query.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| Failure::invalid(anyhow::anyhow!("cannot read {path}: {e}")))?
        }
        None => args.query.clone(),
    };
    let variables = match serde_json::from_str::<serde_json::Value>(&args.variables) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(Failure::invalid(anyhow::anyhow!("--variables must be a JSON object"))),
    };
    let snapshot = snapshot_or_problems(args.sources.sources(None, None)).await?;
    match crate::ingress::plan_query(
        &snapshot,
        &crate::ingress::GraphqlCaches::default(),
        &query,
        args.operation.as_deref(),
        &variables,
    ) {
        Ok(plan) => {
            println!("{plan}");
            Ok(())
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            Err(Failure::reported(format!("{} error(s) in the document", errors.len())))
        }
    }
}
