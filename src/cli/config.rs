//! `onedoor config check [--config FILE]`: validate the configuration without running anything; every
//! problem is listed with the file and key.

use crate::config;
use std::path::PathBuf;
use std::process::ExitCode;

/// The `config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate the configuration file; exit 1 on any problem.
    Check {
        /// The configuration file.
        #[arg(long, env = "ONEDOOR_CONFIG", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

/// Run a `config` subcommand.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let Command::Check { config: path } = command;
    match config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} source(s): {})",
                path.display(),
                config.sources.len(),
                config
                    .sources
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            println!("{err}");
            Ok(ExitCode::from(1))
        }
    }
}
