//! `onedoor convert`: stream an export through a mapping into NDJSON (one resource per line) or one
//! transaction Bundle per referral, and print a summary: records in, resources out, rejections with their
//! reasons, tolerated quirks. Exits 1 when any record was rejected.

use super::{Cli, exit_code};
use crate::adapters::niem::IncidentHistory;
use crate::config;
use crate::consent::audit::AuditLog;
use crate::consent::{ConsentGate, Disclosing, Registry, bases};
use crate::delivery::hmis_csv::HmisCsvDestination;
use crate::delivery::{GatedSink, NdjsonFileDestination};
use crate::mapping::EngineOptions;
use crate::pipeline::Sink;
use crate::pipeline::{self, ConvertRequest, NdjsonSink, OutputFormat, Summary};
use anyhow::Context;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A source configured in the configuration file (gives mapping, input, roster, format).
    #[arg(long, conflicts_with = "mapping")]
    source: Option<String>,
    /// The configuration file, for --source.
    #[arg(long, env = "ONEDOOR_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// The mapping's name (`onedoor mappings list` shows them).
    #[arg(long, required_unless_present = "source", requires = "input")]
    mapping: Option<String>,
    /// The export: a folder, a zip, a CSV, JSON or NDJSON file.
    #[arg(long)]
    input: Option<PathBuf>,
    /// For referral mappings: the OneRoster export the referred students are in.
    #[arg(long)]
    roster: Option<PathBuf>,
    /// Where to write the output (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// One resource per line, or one transaction Bundle per referral per line.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The conversion time to stamp (RFC 3339), for reproducible output.
    #[arg(long)]
    now: Option<String>,
    /// Override the mapping's source system URI.
    #[arg(long)]
    source_system: Option<String>,
    /// Release to this recipient organization only what the consent gate permits (`system|value` or
    /// `Organization/id`); every decision is audited. Implies one Bundle per referral.
    #[arg(long)]
    recipient: Option<String>,
    /// The purpose of use for --recipient.
    #[arg(long, default_value = "TREAT", requires = "recipient")]
    purpose: String,
    /// Consent resources for --recipient (JSON, NDJSON, or a folder).
    #[arg(long, requires = "recipient")]
    consents: Option<PathBuf>,
    /// Legal bases for --recipient (TOML).
    #[arg(long, requires = "recipient")]
    bases: Option<PathBuf>,
    /// With --recipient: write FHIR NDJSON (`fhir`) or an HMIS CSV folder (`hmis-csv`; --output is the folder).
    #[arg(long, value_enum, default_value = "fhir")]
    to: Encoding,
    /// With --to hmis-csv: the HMIS ProjectID the referrals are enrolled in.
    #[arg(long, default_value = "onedoor")]
    hmis_project: String,
    /// Repeat-incident history (`niem` mappings): a JSON-lines file of hashed person/address sightings, read
    /// before and appended after the run, so counts span runs. Without it only this run's incidents count.
    #[arg(long)]
    incident_history: Option<PathBuf>,
    /// The secret salting the history's hashes (set one per deployment).
    #[arg(long, env = "ONEDOOR_HISTORY_SALT", default_value = pipeline::DEFAULT_HISTORY_SALT, hide_default_value = true)]
    history_salt: String,
    /// The audit folder for --recipient.
    #[arg(long, env = "ONEDOOR_AUDIT_DIR", default_value = super::consent::DEFAULT_AUDIT_DIR)]
    audit_dir: PathBuf,
}

/// What a gated conversion writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// FHIR JSON, one released Bundle per line.
    Fhir,
    /// HUD HMIS CSV FY2024 files in a folder.
    HmisCsv,
}

/// Run `convert`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let (mut request, format) = resolve(cli, args)?;
    let history = args
        .incident_history
        .as_deref()
        .map(|path| load_history(path, &args.history_salt))
        .transpose()?;
    request.incident_history = history.clone();
    let out: Box<dyn Write> = match (&args.output, args.to) {
        (Some(path), Encoding::Fhir) => Box::new(create_output(path)?),
        _ => Box::new(std::io::stdout().lock()),
    };
    let summary = match &args.recipient {
        None => pipeline::convert(&request, &mut NdjsonSink::new(BufWriter::new(out), format))?,
        Some(recipient) => convert_gated(args, recipient, &request, out)?,
    };
    if let (Some(history), Some(path)) = (&history, &args.incident_history) {
        let history = history.lock().unwrap_or_else(|p| p.into_inner());
        history
            .save_file(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_summary(&summary);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(exit_code(summary.records_rejected > 0))
}

/// Convert, sending each referral bundle through the consent gate; only what it releases is written.
fn convert_gated(
    args: &Args,
    recipient: &str,
    request: &ConvertRequest,
    out: Box<dyn Write>,
) -> anyhow::Result<Summary> {
    let registry = match &args.consents {
        Some(path) => Registry::load(path, None)
            .with_context(|| format!("cannot read consents at {}", path.display()))?,
        None => Registry::new(),
    };
    for problem in registry.problems() {
        eprintln!("consent not used: {problem}");
    }
    let legal = match &args.bases {
        Some(path) => bases::load(path).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?,
        None => Vec::new(),
    };
    let gate = ConsentGate::new(registry, legal, Some(AuditLog::open(&args.audit_dir)?));
    let time = chrono::DateTime::parse_from_rfc3339(&request.engine.now)
        .unwrap_or_else(|_| chrono::Utc::now().fixed_offset());
    let disclosing = Disclosing {
        recipient: recipient.to_owned(),
        purpose: args.purpose.clone(),
        source: None,
    };
    if args.to == Encoding::HmisCsv {
        let dir = args
            .output
            .as_deref()
            .context("--to hmis-csv writes a folder: pass --output DIR")?;
        let destination = HmisCsvDestination::create(dir, &args.hmis_project)
            .with_context(|| format!("cannot write {}", dir.display()))?;
        let mut sink = GatedSink::new(gate, destination, disclosing, time);
        let summary = pipeline::convert(request, &mut sink)?;
        report_gate(&sink, recipient, args);
        return Ok(summary);
    }
    let mut sink = GatedSink::new(
        gate,
        NdjsonFileDestination::new(BufWriter::new(out)),
        disclosing,
        time,
    );
    let summary = pipeline::convert(request, &mut sink)?;
    report_gate(&sink, recipient, args);
    Ok(summary)
}

fn report_gate<D: crate::delivery::Destination>(sink: &GatedSink<D>, recipient: &str, args: &Args) {
    eprintln!(
        "consent gate: {} released to {recipient}, {} withheld, {} addressed to other agencies (audit in {})",
        sink.written().0,
        sink.withheld.len(),
        sink.not_addressed,
        args.audit_dir.display()
    );
    for withheld in &sink.withheld {
        eprintln!("  withheld: {withheld}");
    }
}

/// Create the output file, and its folder if needed.
fn create_output(path: &std::path::Path) -> anyhow::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// The request from the command line, or from a configured source with command-line overrides.
fn resolve(cli: &Cli, args: &Args) -> anyhow::Result<(ConvertRequest, OutputFormat)> {
    let mut engine = EngineOptions {
        source_system: args.source_system.clone(),
        ..EngineOptions::default()
    };
    if let Some(now) = &args.now {
        chrono::DateTime::parse_from_rfc3339(now)
            .with_context(|| format!("--now '{now}' is not an RFC 3339 date-time"))?;
        engine.now = now.clone();
    }
    let Some(name) = &args.source else {
        let mapping = args.mapping.as_deref().unwrap_or_default();
        let input = args
            .input
            .as_deref()
            .context("--input is required with --mapping")?;
        let request = pipeline::request(
            &cli.mappings,
            mapping,
            input,
            args.roster.as_deref(),
            engine,
        );
        return Ok((request, args.format.unwrap_or_default()));
    };
    let config = config::load(&args.config)?;
    let source = config.sources.get(name).with_context(|| {
        let known: Vec<&String> = config.sources.keys().collect();
        format!(
            "{}: no source named '{name}' (known: {known:?})",
            args.config.display()
        )
    })?;
    engine.source_system = engine
        .source_system
        .or_else(|| source.source_system.clone());
    let input = args
        .input
        .clone()
        .or_else(|| source.input.clone())
        .with_context(|| format!("source '{name}' has no input: pass --input"))?;
    let roster = args.roster.clone().or_else(|| source.roster.clone());
    let request = pipeline::request(
        &config.gateway.mappings,
        &source.mapping,
        &input,
        roster.as_deref(),
        engine,
    );
    Ok((request, args.format.unwrap_or(source.format)))
}

fn load_history(
    path: &std::path::Path,
    salt: &str,
) -> anyhow::Result<std::sync::Arc<std::sync::Mutex<IncidentHistory>>> {
    let mut history = IncidentHistory::new(salt);
    history
        .load_file(path)
        .with_context(|| format!("cannot read the incident history {}", path.display()))?;
    Ok(std::sync::Arc::new(std::sync::Mutex::new(history)))
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
