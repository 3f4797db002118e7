//! `onedoor convert`: stream an export through a mapping into NDJSON (one resource per line) or one
//! transaction Bundle per referral, and print a summary: records in, resources out, rejections with their
//! reasons, tolerated quirks. Exits 1 when any record was rejected.

use super::{Cli, exit_code};
use crate::mapping::EngineOptions;
use crate::pipeline::{self, NdjsonSink, OutputFormat, Summary};
use anyhow::Context;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The mapping's name (`onedoor mappings list` shows them).
    #[arg(long)]
    mapping: String,
    /// The export: a folder, a zip, a CSV, JSON or NDJSON file.
    #[arg(long)]
    input: PathBuf,
    /// For referral mappings: the OneRoster export the referred students are in.
    #[arg(long)]
    roster: Option<PathBuf>,
    /// Where to write the output (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// One resource per line, or one transaction Bundle per referral per line.
    #[arg(long, value_enum, default_value_t)]
    format: OutputFormat,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The conversion time to stamp (RFC 3339), for reproducible output.
    #[arg(long)]
    now: Option<String>,
    /// Override the mapping's source system URI.
    #[arg(long)]
    source_system: Option<String>,
}

/// Run `convert`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let mut engine = EngineOptions {
        source_system: args.source_system.clone(),
        ..EngineOptions::default()
    };
    if let Some(now) = &args.now {
        chrono::DateTime::parse_from_rfc3339(now)
            .with_context(|| format!("--now '{now}' is not an RFC 3339 date-time"))?;
        engine.now = now.clone();
    }
    let request = pipeline::request(
        &cli.mappings,
        &args.mapping,
        &args.input,
        args.roster.as_deref(),
        engine,
    );
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = NdjsonSink::new(BufWriter::new(out), args.format);
    let summary = pipeline::convert(&request, &mut sink)?;
    print_summary(&summary);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(exit_code(summary.records_rejected > 0))
}

/// Print a conversion summary to standard error (the output may be on standard output).
pub fn print_summary(summary: &Summary) {
    eprintln!(
        "{}: {} records in, {} converted, {} with nothing to map, {} rejected; {} resources out in {} lines",
        summary.mapping,
        summary.records_in,
        summary.records_converted,
        summary.records_without_output,
        summary.records_rejected,
        summary.resources_out,
        summary.lines_out
    );
    for error in &summary.rejected {
        eprintln!("  rejected: {error}");
    }
    if summary.records_rejected as usize > summary.rejected.len() {
        eprintln!(
            "  ... and {} more rejections (see --report)",
            summary.records_rejected as usize - summary.rejected.len()
        );
    }
    for quirk in &summary.quirks {
        let first = quirk
            .first_line
            .map(|l| format!(", first on line {l}"))
            .unwrap_or_default();
        eprintln!("  tolerated: {} ({}x{first})", quirk.message, quirk.count);
    }
}
