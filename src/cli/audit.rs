//! `onedoor audit verify | export`: check the hash chain of the audit log (a changed, removed or reordered
//! entry is found and named), and export the log as FHIR AuditEvent NDJSON.

use super::consent::DEFAULT_AUDIT_DIR;
use crate::consent::audit;
use std::path::PathBuf;
use std::process::ExitCode;

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify the audit log's hash chain; exit 1 when it is broken.
    Verify {
        /// The audit folder.
        #[arg(long, env = "ONEDOOR_AUDIT_DIR", default_value = DEFAULT_AUDIT_DIR)]
        audit_dir: PathBuf,
    },
    /// Print the audit log as FHIR AuditEvent resources, one per line.
    Export {
        /// The audit folder.
        #[arg(long, env = "ONEDOOR_AUDIT_DIR", default_value = DEFAULT_AUDIT_DIR)]
        audit_dir: PathBuf,
    },
}

/// Run an `audit` subcommand.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Verify { audit_dir } => match audit::verify(audit_dir) {
            Ok(count) => {
                println!(
                    "{}: {count} entries, chain intact",
                    audit_dir.join(audit::AUDIT_FILE).display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                for problem in &problems {
                    println!("{}: {problem}", audit_dir.join(audit::AUDIT_FILE).display());
                }
                println!("audit chain BROKEN: {} problem(s)", problems.len());
                Ok(ExitCode::from(1))
            }
        },
        Command::Export { audit_dir } => {
            for event in audit::audit_events(audit_dir)? {
                println!("{}", serde_json::to_string(&event)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
