//! `switchyard config schema`: the config file's JSON Schema (draft 2020-12), as `check` uses
//! it, for editors and CI linters.

use std::io::Write;

use clap::Subcommand;

use super::CommandResult;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the config's JSON Schema.
    Schema,
}

pub(crate) fn run(command: ConfigCommand) -> CommandResult {
    match command {
        ConfigCommand::Schema => {
            let schema = crate::config::config_json_schema();
            let text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            // A reader that stops early (`| head`) is not a failure.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            Ok(())
        }
    }
}
