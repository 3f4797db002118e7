//! `onedoor conformance`: placeholder replaced below.
use super::Cli;
use std::process::ExitCode;
/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {}
/// Run.
pub fn run(_cli: &Cli, _args: &Args) -> anyhow::Result<ExitCode> { Ok(ExitCode::SUCCESS) }
