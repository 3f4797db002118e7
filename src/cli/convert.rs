//! `onedoor convert`: stream an export through a mapping into NDJSON (one resource per line) or one
//! transaction Bundle per referral, and print a summary: records in, resources out, rejections with their
//! reasons, tolerated quirks. Exits 1 when any record was rejected.
//!
//! Output files are never damaged by a failed run: `--output` (a file, or with `--to hmis-csv` a folder) and
//! `--report` are written into a temporary file (or folder) beside the target, fsynced, and renamed over it
//! only when the run completes (exit 0, or 1 with some records rejected: the output is complete). A run that
//! fails (exit 2) leaves the earlier output as it was and removes its temporary files. A target that is not a
//! regular file — a device or a pipe (`/dev/stdout`, a FIFO), or a symbolic link — is written in place: there
//! is nothing to rename over it, and renaming would replace the device or the link with a file.

use super::writeback::Writeback;
use super::{Cli, exit_code};
use crate::adapters::niem::IncidentHistory;
use crate::config;
use crate::consent::{ConsentGate, Disclosing, Registry, bases};
use crate::delivery::GatedSink;
use crate::delivery::registry::{self, LocalOutput};
use crate::mapping::EngineOptions;
use crate::pipeline::Sink;
use crate::pipeline::{self, ConvertRequest, NdjsonSink, OutputFormat, Summary};
use crate::store::audit::StoreTrail;
use anyhow::Context;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tempfile::{NamedTempFile, TempDir};

/// Bytes buffered before each write to the output (a 2 KB resource line at a time would be a system call
/// every few lines with the default 8 KB).
const OUTPUT_BUFFER: usize = 256 * 1024;

/// Arguments of `convert`.
#[derive(Debug, Clone, clap::Args)]
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
    /// The export: a folder, a zip, a CSV, JSON or NDJSON file; `-` reads it from standard input (named
    /// by --input-name).
    #[arg(long)]
    input: Option<PathBuf>,
    /// With `--input -`: the file name the stream is read as (its extension says what it is, `.zip` a zip).
    #[arg(long, default_value = "stdin.csv")]
    input_name: String,
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
    /// Override the mapping's source system URI. For HMIS, used as given instead of the mapping's followed by
    /// Export.csv's SourceID (needed to convert an Export.csv that names two sources).
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
    /// With --recipient: the organization holding the converted records (`system|value`), the source of
    /// each decision; default the configured --source's `org`. Without either, no consent limited to a
    /// custodian (`Consent.organization`) can permit (README "Consent").
    #[arg(long, requires = "recipient")]
    source_org: Option<String>,
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
    /// The secret salting the history's hashes (one per deployment); required with --incident-history.
    #[arg(long, env = "ONEDOOR_HISTORY_SALT")]
    history_salt: Option<String>,
    /// With --recipient: the store whose audit chain records each decision (sqlite://PATH or
    /// postgres://...; default: the configuration's server.database_url).
    #[arg(long, env = "ONEDOOR_DATABASE_URL")]
    database_url: Option<String>,
}

/// What a gated conversion writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// FHIR JSON, one released Bundle per line.
    Fhir,
    /// HUD HMIS CSV FY2024 files in a folder.
    HmisCsv,
}

/// The salt of a kept history: `--history-salt` or `ONEDOOR_HISTORY_SALT`, never the public default (hashes
/// under a known salt can be reversed by guessing names).
fn history_salt(args: &Args) -> anyhow::Result<&str> {
    args.history_salt.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        anyhow::anyhow!(
            "--incident-history needs --history-salt (or ONEDOOR_HISTORY_SALT): a secret of this deployment; \
             the built-in salt is public and would let anyone with the history file test names against it"
        )
    })
}

/// Run `convert`.
pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    // `--input -`: the export arrives on standard input and is spooled to a file of its name.
    let stdin = match args.input.as_deref() {
        Some(path) if path == Path::new("-") => Some(crate::adapters::input::spool(
            &args.input_name,
            &mut std::io::stdin().lock(),
        )?),
        _ => None,
    };
    let spooled_args;
    let args = match &stdin {
        Some(spooled) => {
            spooled_args = Args {
                input: Some(spooled.path().to_owned()),
                ..args.clone()
            };
            &spooled_args
        }
        None => args,
    };
    let (mut request, format) = resolve(cli, args)?;
    let history = args
        .incident_history
        .as_deref()
        .map(|path| load_history(path, history_salt(args)?))
        .transpose()?;
    request.incident_history = history.clone();
    let output = create_output(args)?;
    let mut side_file = None;
    let summary = match &args.recipient {
        None => {
            let out = BufWriter::with_capacity(OUTPUT_BUFFER, output.writer()?);
            pipeline::convert(&request, &mut NdjsonSink::new(out, format))?
        }
        Some(recipient) => {
            let (summary, side) = convert_gated(args, recipient, &request, &output)?;
            side_file = side;
            summary
        }
    };
    if let (Some(history), Some(path)) = (&history, &args.incident_history) {
        let history = history.lock().unwrap_or_else(|p| p.into_inner());
        history
            .save_file(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_summary(&summary);
    let report = args
        .report
        .as_deref()
        .map(|path| write_report(path, &summary))
        .transpose()?;
    if let Some(side) = side_file {
        side.commit()?;
    }
    output.commit()?;
    if let Some(report) = report {
        report.commit()?;
    }
    Ok(exit_code(summary.records_rejected > 0))
}

/// Convert, sending each referral bundle through the consent gate; only what it releases is written. With
/// `--output FILE` (FHIR NDJSON) the obligations of released records also go to `<FILE>.obligations.ndjson`
/// (staged like the output, returned to be committed when a record carried one).
fn convert_gated(
    args: &Args,
    recipient: &str,
    request: &ConvertRequest,
    output: &Output,
) -> anyhow::Result<(Summary, Option<StagedFile>)> {
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
    let runtime = super::store::runtime()?;
    let store = super::store::StoreArgs {
        database_url: args.database_url.clone(),
        config_path: args.config.clone(),
    }
    .open(&runtime)?;
    let trail = StoreTrail::new(store, runtime.handle().clone());
    let (source, policy) = gate_settings(args)?;
    let gate = ConsentGate::new(registry, legal, Some(Box::new(trail))).with_policy(policy);
    let time = chrono::DateTime::parse_from_rfc3339(&request.engine.now)
        .unwrap_or_else(|_| chrono::Utc::now().fixed_offset());
    let disclosing = Disclosing {
        recipient: recipient.to_owned(),
        purpose: args.purpose.clone(),
        source: Some(source),
    };
    let (kind, local, side) = if args.to == Encoding::HmisCsv {
        let dir = output
            .folder()
            .context("--to hmis-csv writes a folder: pass --output DIR")?;
        let folder = LocalOutput::Folder {
            dir: dir.to_owned(),
            project: args.hmis_project.clone(),
        };
        ("hmis-csv", folder, None)
    } else {
        let side = match (&args.output, output) {
            (Some(path), Output::File(_)) => Some(StagedFile::create(
                &crate::delivery::obligations::side_file_for(path),
            )?),
            _ => None,
        };
        let stream = LocalOutput::Stream {
            out: Box::new(BufWriter::new(output.stream()?)),
            side: match &side {
                Some(staged) => Some(Box::new(BufWriter::new(staged.handle()?))),
                None => None,
            },
        };
        ("file", stream, side)
    };
    let destination = registry::build_local(kind, recipient, local)?;
    let mut sink = GatedSink::new(
        gate,
        destination,
        runtime.handle().clone(),
        disclosing,
        time,
    );
    let summary = pipeline::convert(request, &mut sink)?;
    report_gate(&sink, recipient, args);
    drop(sink);
    let written = match &side {
        Some(staged) => staged.file().metadata()?.len() > 0,
        None => false,
    };
    Ok((summary, side.filter(|_| written)))
}

/// The source organization of a gated conversion (`--source-org`, else the configured source's `org`, else
/// [`UNNAMED_LOCAL_SOURCE`](crate::consent::decision::UNNAMED_LOCAL_SOURCE)) and the decision policy of the
/// configuration file (defaults when it does not exist).
fn gate_settings(args: &Args) -> anyhow::Result<(String, crate::consent::decision::Policy)> {
    let config = if args.config.exists() {
        Some(config::load(&args.config)?)
    } else {
        None
    };
    let configured = args.source.as_ref().and_then(|name| {
        config
            .as_ref()
            .and_then(|c| c.sources.get(name))
            .and_then(|s| s.org.clone())
    });
    let source = args
        .source_org
        .clone()
        .or(configured)
        .unwrap_or_else(|| crate::consent::decision::UNNAMED_LOCAL_SOURCE.to_owned());
    let policy = config.map(|c| c.consent_policy()).unwrap_or_default();
    Ok((source, policy))
}

fn report_gate(sink: &GatedSink, recipient: &str, args: &Args) {
    eprintln!(
        "consent gate: {} released to {recipient}, {} withheld, {} addressed to other agencies (audited in the store{})",
        sink.written().0,
        sink.withheld.len(),
        sink.not_addressed,
        args.database_url
            .as_deref()
            .map(|u| format!(" {}", u.split('@').next_back().unwrap_or(u)))
            .unwrap_or_default()
    );
    for withheld in &sink.withheld {
        eprintln!("  withheld: {withheld}");
    }
}

/// Where `convert` writes: standard output, or a file or folder staged beside its target.
enum Output {
    Stdout,
    File(StagedFile),
    Folder(StagedFolder),
}

impl Output {
    /// A writer into the output (a second handle on the staged file).
    fn writer(&self) -> anyhow::Result<Box<dyn Write>> {
        match self {
            Output::File(staged) => Ok(Box::new(Writeback::new(staged.handle()?))),
            _ => Ok(Box::new(std::io::stdout().lock())),
        }
    }

    /// A writer into the output that can move between threads (a destination's).
    fn stream(&self) -> anyhow::Result<Box<dyn Write + Send>> {
        match self {
            Output::File(staged) => Ok(Box::new(Writeback::new(staged.handle()?))),
            _ => Ok(Box::new(std::io::stdout())),
        }
    }

    /// The folder to write HMIS CSV files into (the staged one).
    fn folder(&self) -> Option<&Path> {
        match self {
            Output::Folder(staged) => Some(staged.temp.path()),
            _ => None,
        }
    }

    /// Replace the target with what was written: called only when the run succeeded.
    fn commit(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout => Ok(()),
            Output::File(staged) => staged.commit(),
            Output::Folder(staged) => staged.commit(),
        }
    }
}

/// Stage the output: a temporary file (or, for `--to hmis-csv` with `--recipient`, a folder) beside
/// `--output`, which replaces it on [`Output::commit`] and is removed if the run fails first.
fn create_output(args: &Args) -> anyhow::Result<Output> {
    match (&args.output, args.to) {
        (Some(path), Encoding::Fhir) => Ok(Output::File(StagedFile::create(path)?)),
        (Some(path), Encoding::HmisCsv) if args.recipient.is_some() => {
            Ok(Output::Folder(StagedFolder::create(path)?))
        }
        _ => Ok(Output::Stdout),
    }
}

/// The summary as JSON, staged beside `path`.
fn write_report(path: &Path, summary: &Summary) -> anyhow::Result<StagedFile> {
    let staged = StagedFile::create(path)?;
    // Buffered: serde_json writes each token apart (a system call each, thousands for a short report).
    let mut writer = BufWriter::new(staged.file());
    serde_json::to_writer_pretty(&mut writer, summary)
        .map_err(std::io::Error::from)
        .and_then(|()| writer.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    drop(writer);
    Ok(staged)
}

/// A temporary file in the target's folder, renamed over the target on commit, deleted when dropped; or,
/// for a target that is no regular file, the target itself.
struct StagedFile {
    staging: Staging,
    target: PathBuf,
}

enum Staging {
    /// Renamed over the target on commit.
    Temp(NamedTempFile),
    /// A device, a pipe or a symbolic link, written in place.
    InPlace(File),
}

impl StagedFile {
    /// Create the temporary file (and the target's folder if needed), with the target's permissions when
    /// it exists, else those a new file gets; or open the target itself when it is no regular file.
    fn create(target: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(!target.is_dir(), "{} is a folder", target.display());
        if let Some(file) = open_in_place(target)? {
            return Ok(Self {
                staging: Staging::InPlace(file),
                target: target.to_owned(),
            });
        }
        let temp = new_file_permissions(temp_builder())
            .tempfile_in(parent_folder(target)?)
            .with_context(|| {
                format!("cannot create a temporary file beside {}", target.display())
            })?;
        if let Ok(existing) = std::fs::metadata(target) {
            temp.as_file()
                .set_permissions(existing.permissions())
                .with_context(|| format!("cannot create {}", target.display()))?;
        }
        Ok(Self {
            staging: Staging::Temp(temp),
            target: target.to_owned(),
        })
    }

    /// The file written.
    fn file(&self) -> &File {
        match &self.staging {
            Staging::Temp(temp) => temp.as_file(),
            Staging::InPlace(file) => file,
        }
    }

    fn handle(&self) -> anyhow::Result<File> {
        let file = self.file().try_clone();
        file.with_context(|| format!("cannot write {}", self.target.display()))
    }

    /// Fsync the temporary file and rename it over the target (a target written in place is done).
    fn commit(self) -> anyhow::Result<()> {
        let target = self.target;
        let cannot = || format!("cannot write {}", target.display());
        let Staging::Temp(temp) = self.staging else {
            return Ok(());
        };
        temp.as_file().sync_all().with_context(cannot)?;
        temp.persist(&target)
            .map_err(|e| e.error)
            .with_context(cannot)?;
        sync_folder(&folder_of(&target))
    }
}

/// The target opened for writing when it exists and is no regular file (a device, a pipe, a symbolic link).
fn open_in_place(target: &Path) -> anyhow::Result<Option<File>> {
    let Ok(found) = std::fs::symlink_metadata(target) else {
        return Ok(None);
    };
    if found.is_file() {
        return Ok(None);
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(Some(file))
}

/// A temporary folder beside the target folder, holding copies of the target's CSV files (the HMIS
/// encoder appends to them); on commit each file is fsynced and renamed into the target, so every file
/// there is whole, old or new. Removed when dropped.
struct StagedFolder {
    temp: TempDir,
    target: PathBuf,
}

impl StagedFolder {
    fn create(target: &Path) -> anyhow::Result<Self> {
        let cannot = || format!("cannot write {}", target.display());
        let temp = temp_builder()
            .tempdir_in(parent_folder(target)?)
            .with_context(cannot)?;
        for source in csv_files(target).with_context(cannot)? {
            let copy = temp.path().join(source.file_name().unwrap_or_default());
            std::fs::copy(&source, copy).with_context(cannot)?;
        }
        Ok(Self {
            temp,
            target: target.to_owned(),
        })
    }

    fn commit(self) -> anyhow::Result<()> {
        let cannot = || format!("cannot write {}", self.target.display());
        std::fs::create_dir_all(&self.target).with_context(cannot)?;
        for staged in csv_files(self.temp.path()).with_context(cannot)? {
            File::open(&staged)
                .and_then(|f| f.sync_all())
                .with_context(cannot)?;
            let name = staged.file_name().unwrap_or_default();
            std::fs::rename(&staged, self.target.join(name)).with_context(cannot)?;
        }
        sync_folder(&self.target)
    }
}

/// The `.csv` files directly in `dir` (none when it does not exist).
fn csv_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            files.push(path);
        }
    }
    Ok(files)
}

/// Temporary names that say whose they are: `.onedoor-XXXXXX.tmp`.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".onedoor-").suffix(".tmp");
    builder
}

/// Create temporary files as a new output file would be (`0666` less the umask, not `0600`).
fn new_file_permissions(
    mut builder: tempfile::Builder<'static, 'static>,
) -> tempfile::Builder<'static, 'static> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
}

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.to_owned(),
        None => PathBuf::from("."),
    }
}

/// The folder `path` is in, created if missing.
fn parent_folder(path: &Path) -> anyhow::Result<PathBuf> {
    let parent = folder_of(path);
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    Ok(parent)
}

/// Make the renames into `folder` durable (where folders can be synced).
fn sync_folder(folder: &Path) -> anyhow::Result<()> {
    if cfg!(unix) {
        File::open(folder)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", folder.display()))?;
    }
    Ok(())
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

/// What a file's tally counts: CSV rows, XML elements (by the line each starts on), JSON objects, NDJSON
/// lines.
fn units_of(file: &str) -> &'static str {
    let lower = file.to_ascii_lowercase();
    if lower.ends_with(".xml") {
        "elements"
    } else if lower.ends_with(".ndjson") {
        "lines"
    } else if lower.ends_with(".json") {
        "objects"
    } else {
        "rows"
    }
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
    for file in &summary.files {
        let mut parts = vec![format!("{} converted", file.converted)];
        if file.without_output > 0 {
            parts.push(format!("{} with nothing to map", file.without_output));
        }
        parts.push(format!("{} rejected", file.rejected));
        parts.push(format!("{} skipped", file.skipped));
        if file.joined > 0 {
            parts.push(format!("{} read by other records", file.joined));
        }
        if file.unaccounted > 0 {
            parts.push(format!("{} UNACCOUNTED", file.unaccounted));
        }
        eprintln!(
            "  {}: {} {} = {}",
            file.file,
            file.rows,
            units_of(&file.file),
            parts.join(" + ")
        );
    }
    if summary.records_skipped > 0 {
        eprintln!(
            "  skipped: {} records (deletions, users who are not students, duplicates, elements read by others...; listed with their reason by --report)",
            summary.records_skipped
        );
    }
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
