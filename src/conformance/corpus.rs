//! `onedoor conformance --corpus DIR --mapping NAME`: run a mapping over a folder of real exports and report
//! per-record results, the schema errors, and which source columns the mapping never reads (coverage).

use crate::mapping::EngineOptions;
use crate::pipeline::{self, ConvertRequest, NdjsonSink, OutputFormat, PipelineError, Summary};
use std::path::Path;

/// Run a corpus; output is discarded (only the summary with per-record outcomes is kept).
pub fn run(
    corpus: &Path,
    mapping: &str,
    roster: Option<&Path>,
    mappings_dir: &Path,
) -> Result<Summary, PipelineError> {
    let request = ConvertRequest {
        mappings_dir: mappings_dir.to_owned(),
        mapping: mapping.to_owned(),
        input: corpus.to_owned(),
        roster: roster.map(Path::to_owned),
        engine: EngineOptions::default(),
        keep_outcomes: true,
        incident_history: None,
    };
    let mut sink = NdjsonSink::new(std::io::sink(), OutputFormat::Ndjson);
    pipeline::convert(&request, &mut sink)
}

/// The readable corpus report.
pub fn text(corpus: &Path, summary: &Summary) -> String {
    let mut out = format!(
        "corpus {} with mapping {}\n",
        corpus.display(),
        summary.mapping
    );
    for outcome in &summary.outcomes {
        let detail = if outcome.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", outcome.detail)
        };
        out.push_str(&format!(
            "  {:<14} {}{detail}\n",
            outcome.outcome, outcome.position
        ));
    }
    out.push_str(&format!(
        "{} records: {} converted, {} with nothing to map, {} rejected; {} resources\n",
        summary.records_in,
        summary.records_converted,
        summary.records_without_output,
        summary.records_rejected,
        summary.resources_out
    ));
    for quirk in &summary.quirks {
        out.push_str(&format!(
            "  tolerated: {} ({}x)\n",
            quirk.message, quirk.count
        ));
    }
    if !summary.coverage.is_empty() {
        out.push_str("coverage (source columns never read by the mapping or the adapter):\n");
        for table in &summary.coverage {
            let unread = if table.unread.is_empty() {
                "none".to_owned()
            } else {
                table.unread.join(", ")
            };
            out.push_str(&format!(
                "  {:<18} read {:>2} of {:>2}; unread: {unread}\n",
                table.file,
                table.read.len(),
                table.read.len() + table.unread.len()
            ));
        }
    }
    out
}
