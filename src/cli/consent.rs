//! `onedoor consent check | disclosures`: answer a consent decision from the command line and explain it;
//! show who received what about a person.

use super::store::{StoreArgs, runtime};
use crate::consent::{ConsentGate, Decision, Disclosing, Outcome, Registry, bases};
use crate::store::audit::StoreTrail;
use anyhow::Context;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The `consent` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Decide whether a record may go to a recipient for a purpose, explain why, and write what may be
    /// released. Exit 0 when permitted, 1 when denied or no consent permits.
    Check(CheckArgs),
    /// Who received what about a person, when, under which basis.
    Disclosures {
        /// The person: `Patient/id`, an identifier `system|value`, or an identifier value.
        #[arg(long)]
        patient: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Arguments of `consent check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The record: a referral Bundle (JSON), as `convert --format bundle` writes one per line.
    #[arg(long)]
    bundle: PathBuf,
    /// Consent resources: a JSON or NDJSON file, or a folder of them.
    #[arg(long)]
    consents: Option<PathBuf>,
    /// Legal bases (TOML), see the README.
    #[arg(long)]
    bases: Option<PathBuf>,
    /// The recipient organization: `system|value` (as in codes/agency.csv) or `Organization/id`.
    #[arg(long)]
    recipient: String,
    /// The purpose of use (v3 PurposeOfUse: TREAT, COC, PUBHLTH...).
    #[arg(long, default_value = "TREAT")]
    purpose: String,
    /// The source organization holding the data (`system|value` or `Organization/id`): required for a
    /// decision; without it the record is denied, with the reason.
    #[arg(long)]
    source: Option<String>,
    /// The decision time (RFC 3339; default now).
    #[arg(long)]
    time: Option<String>,
    /// Write what may be released here.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// The store whose audit chain records the decision.
    #[command(flatten)]
    store: StoreArgs,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
}

/// Run a `consent` subcommand.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => check(args),
        Command::Disclosures { patient, store } => {
            let runtime = runtime()?;
            let store = store.open(&runtime)?;
            let found = runtime.block_on(store.disclosures(patient))?;
            for d in &found {
                println!(
                    "{}  to {}  for {}  under {:?} {}\n    released: {}{}",
                    d.time,
                    d.recipient,
                    d.purpose,
                    d.basis,
                    d.authority.clone().unwrap_or_default(),
                    d.resources.join(", "),
                    if d.withheld.is_empty() {
                        String::new()
                    } else {
                        format!("\n    withheld: {}", d.withheld.join(", "))
                    }
                );
            }
            println!("{} disclosure(s) about {patient}", found.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The decision policy (`[consent]` custodial roles and ages of consent) of the configuration file, when
/// it exists; the defaults otherwise.
pub fn policy(store: &StoreArgs) -> anyhow::Result<crate::consent::decision::Policy> {
    if !store.config_path.exists() {
        return Ok(crate::consent::decision::Policy::default());
    }
    let config = crate::config::load(&store.config_path)
        .with_context(|| format!("cannot read {}", store.config_path.display()))?;
    Ok(config.consent_policy())
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.bundle)
        .with_context(|| format!("cannot read {}", args.bundle.display()))?;
    let record: Value = serde_json::from_str(
        text.lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default(),
    )
    .or_else(|_| serde_json::from_str(&text))
    .with_context(|| format!("{}: not a FHIR JSON record", args.bundle.display()))?;
    // Validated here, where it enters: the gate validates only what it changes.
    let issues = crate::validation::Validator::new().validate(&record);
    if !issues.is_empty() {
        let listed: Vec<String> = issues.iter().take(20).map(ToString::to_string).collect();
        anyhow::bail!(
            "{}: not valid FHIR, so nothing is released:\n  {}",
            args.bundle.display(),
            listed.join("\n  ")
        );
    }
    let registry = load_registry(args.consents.as_deref(), &record)?;
    let legal = match &args.bases {
        Some(path) => bases::load(path).map_err(|problems| anyhow::anyhow!(problems.join("\n")))?,
        None => Vec::new(),
    };
    let time = match &args.time {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("--time '{t}' is not an RFC 3339 date-time"))?,
        None => chrono::Utc::now().fixed_offset(),
    };
    let runtime = runtime()?;
    let store = args.store.open(&runtime)?;
    let trail = StoreTrail::new(store, runtime.handle().clone());
    let mut gate =
        ConsentGate::new(registry, legal, Some(Box::new(trail))).with_policy(policy(&args.store)?);
    let request = Disclosing {
        recipient: args.recipient.clone(),
        purpose: args.purpose.clone(),
        source: args.source.clone(),
    };
    let result = gate.release(record, request, time);
    let decision = match &result {
        Ok(released) => released.decision().clone(),
        Err(crate::consent::Withheld::Denied(decision)) => (**decision).clone(),
        Err(other) => anyhow::bail!("{other}"),
    };
    print_decision(&decision, args.json)?;
    if let (Ok(released), Some(path)) = (&result, &args.output) {
        std::fs::write(path, serde_json::to_vec_pretty(released.record())?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("released record written to {}", path.display());
    }
    Ok(if decision.outcome == Outcome::Permit {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Load consents for a record and report those not admitted.
fn load_registry(path: Option<&Path>, record: &Value) -> anyhow::Result<Registry> {
    let Some(path) = path else {
        return Ok(Registry::new());
    };
    let registry = crate::consent::registry::load_for_record(path, record)
        .with_context(|| format!("cannot read consents at {}", path.display()))?;
    for problem in registry.problems() {
        eprintln!("consent not used: {problem}");
    }
    Ok(registry)
}

fn print_decision(decision: &Decision, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(decision)?);
        return Ok(());
    }
    let outcome = match (decision.outcome, decision.redacts()) {
        (Outcome::Permit, true) => "PERMIT (redacted)",
        (Outcome::Permit, false) => "PERMIT",
        (Outcome::Deny, _) => "DENY",
        (Outcome::NoConsent, _) => "NO CONSENT (denied by default)",
    };
    println!("decision: {outcome}");
    println!(
        "basis: {:?}{}{}",
        decision.basis,
        decision
            .authority
            .as_ref()
            .map(|a| format!(" {a}"))
            .unwrap_or_default(),
        decision
            .provision
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default()
    );
    if decision.redacts() {
        println!(
            "obligations: withhold {}",
            decision
                .redact_classes
                .iter()
                .chain(decision.redact_labels.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for notice in &decision.notices {
        println!("notice: {notice}");
    }
    println!("explanation:");
    for line in &decision.explanation {
        println!("  - {line}");
    }
    Ok(())
}
