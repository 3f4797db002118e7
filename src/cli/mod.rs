//! The command line: one file per subcommand. Exit codes: 0 success, 1 something was rejected or a check
//! failed, 2 the command could not run (bad arguments, unreadable input, broken mapping).

mod audit;
mod config;
mod conformance;
mod consent;
mod convert;
mod mappings;
mod partners;
mod serve;
mod store;
mod validate;
mod writeback;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// onedoor: school, agency and police exports → canonical FHIR R4 referrals.
#[derive(Debug, Parser)]
#[command(name = "onedoor", version, about)]
pub struct Cli {
    /// Folder of mapping files (`<adapter>/<mapping>.toml`).
    #[arg(
        long,
        global = true,
        env = "ONEDOOR_MAPPINGS",
        default_value = "mappings"
    )]
    pub mappings: PathBuf,
    /// Log more (repeat for debug). Logs never contain personal data.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Convert an export with a mapping into FHIR R4 NDJSON or Bundles.
    Convert(convert::Args),
    /// Validate FHIR R4 JSON, NDJSON or Bundles against the schema and the SDOHCC profile rules.
    Validate(validate::Args),
    /// Check, list and show mappings.
    #[command(subcommand)]
    Mappings(mappings::Command),
    /// Run the conformance cases, or a mapping over a corpus of real exports.
    Conformance(conformance::Args),
    /// Check the configuration file.
    #[command(subcommand)]
    Config(config::Command),
    /// Consent decisions and the disclosure log.
    #[command(subcommand)]
    Consent(consent::Command),
    /// Verify and export the audit log.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Run the gateway server.
    Serve(serve::Args),
    /// Manage partner API keys: add, list, revoke, rotate.
    #[command(subcommand)]
    Partners(partners::Command),
    /// Run an example receiving agency (accepts referrals and notifications, logs types and keys).
    ExampleReceiver {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
        /// Answer 503 to the first N requests (to watch retries).
        #[arg(long, default_value_t = 0)]
        fail_first: u32,
        /// Wait this long before each answer (a slow agency).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

/// Parse the command line and run the subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let outcome = match &cli.command {
        Command::Convert(args) => convert::run(&cli, args),
        Command::Validate(args) => validate::run(args),
        Command::Mappings(command) => mappings::run(&cli, command),
        Command::Conformance(args) => conformance::run(&cli, args),
        Command::Config(command) => config::run(command),
        Command::Consent(command) => consent::run(command),
        Command::Audit(command) => audit::run(command),
        Command::Serve(args) => serve::run(args),
        Command::Partners(command) => partners::run(command),
        Command::ExampleReceiver {
            listen,
            fail_first,
            delay_ms,
        } => serve::example_receiver(listen, *fail_first, *delay_ms),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ONEDOOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Exit code 1 when `failed`, else 0.
fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
