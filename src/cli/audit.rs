//! `onedoor audit verify | export | checkpoint`: check the store's audit chain (a changed, removed,
//! reordered or cut-off entry is found and named), export it as FHIR AuditEvent NDJSON, and sign its head
//! as a checkpoint an auditor keeps (`verify --checkpoint FILE` then proves the chain still holds what it
//! held then).

use super::store::{StoreArgs, runtime};
use crate::consent::audit::{self, AuditEntry};
use crate::store::audit::checkpoint::Checkpoint;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify the audit chain and its head; exit 1 when it is broken.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Also check the chain against a signed checkpoint taken earlier.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Print the audit chain as FHIR AuditEvent resources, one per line.
    Export {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Sign the chain's head (length and last hash) with an Ed25519 key and print the checkpoint (JSON).
    Checkpoint {
        #[command(flatten)]
        store: StoreArgs,
        /// The signing key (PKCS#8); created, mode 0600, when it does not exist.
        #[arg(
            long,
            env = "ONEDOOR_AUDIT_KEY",
            default_value = "var/audit-signing.key"
        )]
        key: PathBuf,
    },
}

/// Run an `audit` subcommand.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    match command {
        Command::Verify { store, checkpoint } => {
            let store = store.open(&runtime)?;
            let (entries, head) = runtime.block_on(store.audit_chain())?;
            let mut problems = audit::verify_chain(&entries, &head)
                .err()
                .unwrap_or_default();
            if let Some(path) = checkpoint {
                problems.extend(check_checkpoint(path, &entries)?);
            }
            Ok(report(entries.len(), &problems))
        }
        Command::Export { store } => {
            let store = store.open(&runtime)?;
            let (entries, _) = runtime.block_on(store.audit_chain())?;
            for entry in &entries {
                println!("{}", serde_json::to_string(&audit::audit_event(entry))?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoint { store, key } => {
            let store = store.open(&runtime)?;
            let (entries, head) = runtime.block_on(store.audit_chain())?;
            if let Err(problems) = audit::verify_chain(&entries, &head) {
                return Ok(report(entries.len(), &problems));
            }
            let checkpoint = Checkpoint::sign(&head, key)?;
            println!("{}", serde_json::to_string_pretty(&checkpoint)?);
            eprintln!(
                "checkpoint of {} entries signed with the key whose public half is {}",
                checkpoint.length, checkpoint.public_key
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn report(count: usize, problems: &[String]) -> ExitCode {
    if problems.is_empty() {
        println!("audit chain: {count} entries, chain intact");
        return ExitCode::SUCCESS;
    }
    for problem in problems {
        println!("audit chain: {problem}");
    }
    println!("audit chain BROKEN: {} problem(s)", problems.len());
    ExitCode::from(1)
}

/// What does not hold of a checkpoint: its signature, and the chain still holding its entry at its length.
fn check_checkpoint(path: &std::path::Path, entries: &[AuditEntry]) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let checkpoint: Checkpoint = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an audit checkpoint", path.display()))?;
    let mut problems = Vec::new();
    if let Err(err) = checkpoint.check_signature() {
        problems.push(format!("{}: {err}", path.display()));
    }
    let at = checkpoint
        .length
        .checked_sub(1)
        .and_then(|i| entries.get(i as usize));
    match at {
        Some(entry) if entry.hash == checkpoint.hash => {}
        Some(_) => problems.push(format!(
            "entry {} is not the one the checkpoint of {} signed (the chain was rewritten)",
            checkpoint.length, checkpoint.time
        )),
        None if checkpoint.length == 0 => {}
        None => problems.push(format!(
            "the chain holds {} entries, fewer than the {} the checkpoint of {} signed (entries were cut off)",
            entries.len(),
            checkpoint.length,
            checkpoint.time
        )),
    }
    Ok(problems)
}
