//! `onedoor conformance [PATH]`: run the conformance cases (exit 1 on any failure, or when a mapping has no
//! case), with `--junit FILE` and `--json FILE` reports; or `--corpus DIR --mapping NAME` to run a mapping
//! over real exports and report per-record results and coverage.

use super::{Cli, exit_code};
use crate::conformance::{corpus, report, run_suite};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `conformance`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The suite root, an adapter or mapping folder, or one case folder.
    #[arg(default_value = "conformance")]
    path: PathBuf,
    /// Write a JUnit XML report.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write a JSON report.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run a mapping over a folder of real exports instead of the cases.
    #[arg(long, requires = "mapping")]
    corpus: Option<PathBuf>,
    /// The mapping for --corpus.
    #[arg(long)]
    mapping: Option<String>,
    /// The roster for --corpus with a referral mapping.
    #[arg(long)]
    roster: Option<PathBuf>,
    /// With --corpus: how many rejected records are tolerated before exiting 1 (known defects of a corpus).
    #[arg(long, default_value_t = 0)]
    max_rejected: u64,
}

/// Run `conformance`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    if let (Some(dir), Some(mapping)) = (&args.corpus, &args.mapping) {
        let summary = corpus::run(dir, mapping, args.roster.as_deref(), &cli.mappings)?;
        print!("{}", corpus::text(dir, &summary));
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(exit_code(summary.records_rejected > args.max_rejected));
    }
    if !args.path.exists() {
        anyhow::bail!("{}: no such conformance folder", args.path.display());
    }
    // Run on the whole suite, every mapping must have cases; on a part of it, only that part runs.
    let require_cases = args.path.file_name().is_some_and(|n| n == "conformance");
    let result = run_suite(&args.path, &cli.mappings, require_cases);
    print!("{}", report::text(&result));
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&result)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report::json(&result)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(exit_code(result.failed()))
}
