//! The `onedoor` command: parse the command line and hand over to `cli::run`.

fn main() -> std::process::ExitCode {
    onedoor::cli::run()
}
