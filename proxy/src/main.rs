//! The `switchyard` binary: everything lives in the library; this only runs the CLI.

fn main() -> std::process::ExitCode {
    switchyard::cli::main()
}
