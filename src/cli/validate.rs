//! `onedoor validate FILE...`: validate FHIR R4 JSON resources, Bundles and NDJSON against the FHIR R4 JSON
//! schema, the typed model and the SDOHCC profile rules; every error is reported with its JSON path.
//! Exits 1 when anything is invalid.

use super::exit_code;
use crate::adapters::fhir::FhirSource;
use crate::validation::Validator;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// FHIR JSON or NDJSON files, or folders of them.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print only failures and the totals.
    #[arg(long, short)]
    quiet: bool,
}

/// Run `validate`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let validator = Validator::new();
    let (mut valid, mut invalid) = (0u64, 0u64);
    for path in &args.files {
        let source = FhirSource::open(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        source.for_each_resource(|lent| {
            let lent = match lent {
                Ok(lent) => lent,
                Err(error) => {
                    invalid += 1;
                    println!("INVALID {error}");
                    return;
                }
            };
            let issues = validator.validate(lent.resource);
            // The label is made only for a line printed (`--quiet` prints failures only).
            let label = || {
                format!(
                    "{} ({}/{})",
                    lent.position(),
                    lent.resource
                        .get("resourceType")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("?"),
                    lent.key()
                )
            };
            if issues.is_empty() {
                valid += 1;
                if !args.quiet {
                    println!("ok      {}", label());
                }
            } else {
                invalid += 1;
                println!("INVALID {}", label());
                for issue in issues {
                    println!("        {issue}");
                }
            }
        });
    }
    println!("{valid} valid, {invalid} invalid");
    Ok(exit_code(invalid > 0))
}
