//! The `switchyard` binary: parses the command line and runs it (see `switchyard --help`).

/// mimalloc: the gateway allocates many small, short-lived JSON values per request (answers,
/// representations, shaped responses); glibc's malloc spent over a third of the CPU in
/// `cargo bench --bench federation_load`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchyard::cli::main()
}
