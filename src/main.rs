//! The `switchyard` binary: parses the command line and runs it (see `switchyard --help`).

fn main() -> std::process::ExitCode {
    switchyard::cli::main()
}
