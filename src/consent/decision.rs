//! The decision: given a record (a referral bundle), the source organization, the recipient organization,
//! the purpose of use and the time, answer Permit, Deny or NoConsent, with the obligations (data to
//! redact, notices to attach), the legal basis used, and an explanation naming the consent and provision
//! that decided.
//!
//! Rules: default is deny (NoConsent). Only active consents in their period count. The most specific
//! provision wins (a nested provision overrides its parent for what it covers); at the same level, deny
//! beats permit, and across consents a deny beats a permit. A minor's consent must come from a guardian;
//! an adult's from themselves. 42 CFR Part 2 data (ETH/SUD labels) leaves only under a Part 2 consent or a
//! court order that covers it; otherwise it is redacted. Legal bases apply only when no consent permits.

use super::bases::{BasisKind, LegalBasis};
use super::codes::{PART2_LABELS, PART2_NOTICE};
use super::model::{Consent, Provision, Rule, Status};
use super::registry::Registry;
use super::subject::{self, Subject};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

/// What is asked.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The record: a referral Bundle (or one resource).
    pub record: &'a Value,
    /// The organization that holds the data (`system|value` or `Organization/id`), if known.
    pub source: Option<&'a str>,
    /// The organization that would receive it.
    pub recipient: &'a str,
    /// The purpose of use (v3 PurposeOfUse code).
    pub purpose: &'a str,
    /// When.
    pub time: DateTime<FixedOffset>,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// May be released (possibly with obligations).
    Permit,
    /// A consent forbids it, or what may be released is not a usable referral.
    Deny,
    /// Nothing permits it: the default.
    NoConsent,
}

/// What the permission rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// A consent.
    Consent,
    /// A configured legal basis.
    Legal(BasisKind),
    /// Nothing.
    None,
}

/// A decision with its obligations and explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Permit, Deny or NoConsent.
    pub outcome: Outcome,
    /// What it rests on.
    pub basis: Basis,
    /// The consent id, or the legal basis reference.
    pub authority: Option<String>,
    /// The provision that decided (`provision.provision[0]`).
    pub provision: Option<String>,
    /// Resource types to remove before release.
    pub redact_classes: Vec<String>,
    /// Security labels whose resources are removed before release.
    pub redact_labels: Vec<String>,
    /// Notices that must travel with the record (the 42 CFR Part 2 redisclosure notice).
    pub notices: Vec<String>,
    /// Why, step by step.
    pub explanation: Vec<String>,
    /// The subject (`Patient/id`).
    pub patient: String,
}

impl Decision {
    fn new(patient: String) -> Self {
        Self {
            outcome: Outcome::NoConsent,
            basis: Basis::None,
            authority: None,
            provision: None,
            redact_classes: Vec::new(),
            redact_labels: Vec::new(),
            notices: Vec::new(),
            explanation: Vec::new(),
            patient,
        }
    }

    /// Whether the record may leave.
    pub fn permits(&self) -> bool {
        self.outcome == Outcome::Permit
    }

    /// Whether the release removes anything.
    pub fn redacts(&self) -> bool {
        !self.redact_classes.is_empty() || !self.redact_labels.is_empty()
    }

    fn explain(&mut self, line: impl Into<String>) {
        self.explanation.push(line.into());
    }
}

/// What one provision (with its exceptions) does to the request.
#[derive(Debug, Clone)]
enum Effect {
    /// Deny the whole record.
    Deny { path: String },
    /// Deny some data only (the rest is up to other provisions).
    DenyData {
        path: String,
        classes: Vec<String>,
        labels: Vec<String>,
    },
    /// Permit, possibly only some data, possibly with data removed.
    Permit {
        path: String,
        only: Option<(Vec<String>, Vec<String>)>,
        redact_classes: Vec<String>,
        redact_labels: Vec<String>,
    },
}

struct Context<'a> {
    recipient: HashSet<String>,
    purpose: &'a str,
    time: DateTime<FixedOffset>,
}

/// Decide.
pub fn decide(registry: &Registry, bases: &[LegalBasis], request: &Request<'_>) -> Decision {
    let Some(subject) = subject::subject(request.record, request.time) else {
        let mut decision = Decision::new(String::new());
        decision.outcome = Outcome::Deny;
        decision.explain(
            "the record names no Patient: nothing can be released without knowing whose it is",
        );
        return decision;
    };
    let mut decision = Decision::new(subject.reference.clone());
    describe_subject(&subject, &mut decision);
    let context = Context {
        recipient: subject::organization_aliases(request.record, request.recipient),
        purpose: request.purpose,
        time: request.time,
    };
    let source = request
        .source
        .map(|s| subject::organization_aliases(request.record, s));
    let mut permits: Vec<(&Consent, Effect)> = Vec::new();
    let mut data_denials: Vec<(&Consent, Effect)> = Vec::new();
    for consent in registry.for_patient(&subject.aliases) {
        let Some(effect) =
            consent_effect(consent, &subject, source.as_ref(), &context, &mut decision)
        else {
            continue;
        };
        match effect {
            Effect::Deny { path } => {
                decision.outcome = Outcome::Deny;
                decision.basis = Basis::Consent;
                decision.authority = Some(consent.id.clone());
                decision.explain(format!(
                    "Consent/{} {path} denies disclosure to {} for {}: deny wins",
                    consent.id, request.recipient, request.purpose
                ));
                decision.provision = Some(path);
                return decision;
            }
            Effect::DenyData { .. } => data_denials.push((consent, effect)),
            Effect::Permit { .. } => permits.push((consent, effect)),
        }
    }
    match permits.into_iter().next() {
        Some((consent, effect)) => {
            permit_by_consent(consent, effect, &data_denials, request, decision)
        }
        None => legal_basis_or_default(bases, &subject, &context, request, decision),
    }
}

fn describe_subject(subject: &Subject, decision: &mut Decision) {
    let who = match subject.age {
        Some(age) if subject.needs_guardian() => {
            format!("age {age}, a minor: a guardian's consent is needed")
        }
        Some(age) => format!("age {age}, an adult: their own consent is needed"),
        None => "age unknown (no birthDate): treated as a minor, a guardian's consent is needed"
            .to_owned(),
    };
    decision.explain(format!("the record is about {} ({who})", subject.reference));
}

fn consent_effect(
    consent: &Consent,
    subject: &Subject,
    source: Option<&HashSet<String>>,
    context: &Context<'_>,
    decision: &mut Decision,
) -> Option<Effect> {
    let name = format!("Consent/{}", consent.id);
    if consent.status != Status::Active {
        decision.explain(format!(
            "{name} is not active ({:?}): it permits nothing",
            consent.status
        ));
        return None;
    }
    if let (Some(source), false) = (source, consent.organizations.is_empty())
        && !consent.organizations.iter().any(|o| o.is_any_of(source))
    {
        decision.explain(format!(
            "{name} covers data held by {}, not by the source",
            names(&consent.organizations)
        ));
        return None;
    }
    if let Err(why) = performer_ok(consent, subject) {
        decision.explain(format!("{name} {why}: it does not cover this person"));
        return None;
    }
    let Some(provision) = &consent.provision else {
        decision.explain(format!("{name} has no computable provision (its terms are only in its source document): it cannot permit anything automatically"));
        return None;
    };
    let effect = evaluate(provision, context, &name, decision);
    if effect.is_none() {
        decision.explain(format!(
            "{name} provision does not apply to this recipient, purpose and time"
        ));
    }
    effect
}

fn performer_ok(consent: &Consent, subject: &Subject) -> Result<(), String> {
    let by_guardian = consent
        .performers
        .iter()
        .any(|p| p.is_any_of(&subject.guardians));
    let by_self = consent.performers.is_empty()
        || consent
            .performers
            .iter()
            .any(|p| p.is_any_of(&subject.aliases));
    match (subject.needs_guardian(), by_guardian, by_self) {
        (true, true, _) => Ok(()),
        (true, false, _) => Err(format!(
            "was given by {}, not by a guardian of the minor",
            performer_names(consent)
        )),
        (false, _, true) => Ok(()),
        (false, _, false) => Err(format!(
            "was given by {}, but the person is an adult and must consent themselves",
            performer_names(consent)
        )),
    }
}

fn performer_names(consent: &Consent) -> String {
    if consent.performers.is_empty() {
        "no one named (the person themselves)".to_owned()
    } else {
        names(&consent.performers)
    }
}

fn names(parties: &[super::model::Party]) -> String {
    parties
        .iter()
        .map(|p| p.describe())
        .collect::<Vec<_>>()
        .join(", ")
}

fn applies(provision: &Provision, context: &Context<'_>) -> Result<(), String> {
    if provision.start.is_some_and(|s| context.time < s) {
        return Err(format!(
            "not yet valid (starts {})",
            provision.start.map(|s| s.to_rfc3339()).unwrap_or_default()
        ));
    }
    if provision.end.is_some_and(|e| context.time > e) {
        return Err(format!(
            "expired (ended {})",
            provision.end.map(|e| e.to_rfc3339()).unwrap_or_default()
        ));
    }
    if !provision.actors.is_empty()
        && !provision
            .actors
            .iter()
            .any(|a| a.is_any_of(&context.recipient))
    {
        return Err(format!(
            "is for {}, not this recipient",
            names(&provision.actors)
        ));
    }
    if !provision.purposes.is_empty() && !provision.purposes.iter().any(|p| p == context.purpose) {
        return Err(format!(
            "is for purpose {}, not {}",
            provision.purposes.join("/"),
            context.purpose
        ));
    }
    if !provision.actions.is_empty() && !provision.actions.iter().any(|a| a == "disclose") {
        return Err(format!(
            "covers {}, not disclosure",
            provision.actions.join("/")
        ));
    }
    Ok(())
}

fn evaluate(
    provision: &Provision,
    context: &Context<'_>,
    consent: &str,
    decision: &mut Decision,
) -> Option<Effect> {
    if let Err(why) = applies(provision, context) {
        decision.explain(format!(
            "{consent} {}: {:?} {why}",
            provision.path, provision.rule
        ));
        return None;
    }
    let path = provision.path.clone();
    let mut effect = match (provision.rule, provision.is_data_scoped()) {
        (Rule::Permit, false) => Effect::Permit {
            path,
            only: None,
            redact_classes: Vec::new(),
            redact_labels: Vec::new(),
        },
        (Rule::Permit, true) => Effect::Permit {
            path,
            only: Some((provision.classes.clone(), provision.labels.clone())),
            redact_classes: Vec::new(),
            redact_labels: Vec::new(),
        },
        (Rule::Deny, false) => Effect::Deny { path },
        (Rule::Deny, true) => Effect::DenyData {
            path,
            classes: provision.classes.clone(),
            labels: provision.labels.clone(),
        },
    };
    decision.explain(format!(
        "{consent} {}: {} applies{}",
        provision.path,
        rule_name(provision.rule),
        scope_text(provision)
    ));
    let children: Vec<Effect> = provision
        .nested
        .iter()
        .filter_map(|n| evaluate(n, context, consent, decision))
        .collect();
    if let Some(deny) = children.iter().find(|c| matches!(c, Effect::Deny { .. })) {
        return Some(deny.clone());
    }
    for child in children {
        effect = combine(effect, child);
    }
    Some(effect)
}

fn combine(parent: Effect, child: Effect) -> Effect {
    match (parent, child) {
        (
            Effect::Permit {
                path,
                only,
                mut redact_classes,
                mut redact_labels,
            },
            Effect::DenyData {
                classes, labels, ..
            },
        ) => {
            redact_classes.extend(classes);
            redact_labels.extend(labels);
            Effect::Permit {
                path,
                only,
                redact_classes,
                redact_labels,
            }
        }
        (Effect::Deny { .. } | Effect::DenyData { .. }, permit @ Effect::Permit { .. }) => permit,
        (parent, _) => parent,
    }
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::Permit => "permit",
        Rule::Deny => "deny",
    }
}

fn scope_text(provision: &Provision) -> String {
    let mut parts = Vec::new();
    if !provision.actors.is_empty() {
        parts.push(format!("actor {}", names(&provision.actors)));
    }
    if !provision.purposes.is_empty() {
        parts.push(format!("purpose {}", provision.purposes.join("/")));
    }
    if !provision.classes.is_empty() {
        parts.push(format!("data {}", provision.classes.join("/")));
    }
    if !provision.labels.is_empty() {
        parts.push(format!("labels {}", provision.labels.join("/")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn permit_by_consent(
    consent: &Consent,
    effect: Effect,
    data_denials: &[(&Consent, Effect)],
    request: &Request<'_>,
    mut decision: Decision,
) -> Decision {
    let Effect::Permit {
        path,
        only,
        redact_classes,
        redact_labels,
    } = effect
    else {
        return decision;
    };
    decision.outcome = Outcome::Permit;
    decision.basis = Basis::Consent;
    decision.authority = Some(consent.id.clone());
    decision.explain(format!("decided by Consent/{} {path}: permit", consent.id));
    decision.provision = Some(path);
    decision.redact_classes = redact_classes;
    decision.redact_labels = redact_labels;
    for (other, denial) in data_denials {
        if let Effect::DenyData {
            path,
            classes,
            labels,
        } = denial
        {
            decision.explain(format!(
                "Consent/{} {path} withholds {}",
                other.id,
                [classes.clone(), labels.clone()].concat().join(", ")
            ));
            decision.redact_classes.extend(classes.iter().cloned());
            decision.redact_labels.extend(labels.iter().cloned());
        }
    }
    if let Some((classes, labels)) = only {
        keep_only(request.record, &classes, &labels, &mut decision);
    }
    part2(
        request.record,
        consent.is_part2(),
        "the consent is not a 42 CFR Part 2 consent",
        &mut decision,
    );
    finish(request.record, decision)
}

fn keep_only(record: &Value, classes: &[String], labels: &[String], decision: &mut Decision) {
    for (kind, resource_labels) in subject::inventory(record) {
        let kept = classes.contains(&kind) || resource_labels.iter().any(|l| labels.contains(l));
        if !kept && !decision.redact_classes.contains(&kind) {
            decision.redact_classes.push(kind);
        }
    }
}

fn part2(record: &Value, covered: bool, why_not: &str, decision: &mut Decision) {
    let has_part2 = subject::inventory(record)
        .iter()
        .any(|(_, labels)| labels.iter().any(|l| PART2_LABELS.contains(&l.as_str())));
    if !has_part2 {
        return;
    }
    if covered {
        decision.notices.push(PART2_NOTICE.to_owned());
        decision.explain(
            "the record holds 42 CFR Part 2 data, covered: the redisclosure notice travels with it",
        );
        return;
    }
    decision.explain(format!(
        "the record holds 42 CFR Part 2 data (ETH/SUD) and {why_not}: that data is withheld"
    ));
    for label in PART2_LABELS {
        if !decision.redact_labels.iter().any(|l| l == label) {
            decision.redact_labels.push((*label).to_owned());
        }
    }
}

/// A usable referral keeps its ServiceRequest, its Task (when it had one) and its Patient.
fn finish(record: &Value, mut decision: Decision) -> Decision {
    if !decision.redacts() {
        return decision;
    }
    let inventory = subject::inventory(record);
    let removed = |kind: &str, labels: &[String]| {
        decision.redact_classes.iter().any(|c| c == kind)
            || labels.iter().any(|l| decision.redact_labels.contains(l))
    };
    let essential = ["ServiceRequest", "Task", "Patient"];
    let lost: Vec<&str> = inventory
        .iter()
        .filter(|(kind, labels)| essential.contains(&kind.as_str()) && removed(kind, labels))
        .map(|(k, _)| k.as_str())
        .collect();
    if !lost.is_empty() {
        decision.outcome = Outcome::Deny;
        decision.explain(format!(
            "what would remain is not a usable referral: the {} would be withheld",
            lost.join(", ")
        ));
    } else {
        decision.redact_classes.sort();
        decision.redact_classes.dedup();
        decision.redact_labels.sort();
        decision.redact_labels.dedup();
    }
    decision
}

fn legal_basis_or_default(
    bases: &[LegalBasis],
    subject: &Subject,
    context: &Context<'_>,
    request: &Request<'_>,
    mut decision: Decision,
) -> Decision {
    for basis in bases {
        match basis_applies(basis, subject, context) {
            Ok(()) => {
                decision.outcome = Outcome::Permit;
                decision.basis = Basis::Legal(basis.kind);
                decision.authority = Some(basis.reference.clone());
                decision.explain(format!(
                    "no consent permits; permitted under {} ({}), window {} to {}",
                    basis.kind.label(),
                    basis.reference,
                    basis.from,
                    basis.until
                ));
                part2(
                    request.record,
                    basis.part2,
                    "this legal basis does not cover 42 CFR Part 2 data",
                    &mut decision,
                );
                return finish(request.record, decision);
            }
            Err(why) => decision.explain(format!(
                "{} ({}) does not apply: {why}",
                basis.kind.label(),
                basis.reference
            )),
        }
    }
    decision.explain(format!(
        "nothing permits disclosure to {} for {}: denied by default",
        request.recipient, request.purpose
    ));
    decision
}

fn basis_applies(
    basis: &LegalBasis,
    subject: &Subject,
    context: &Context<'_>,
) -> Result<(), String> {
    if !context.recipient.contains(&basis.recipient) {
        return Err(format!("it is for {}", basis.recipient));
    }
    let (from, until) = basis.window().ok_or("its window is unreadable")?;
    if context.time < from || context.time > until {
        return Err(format!(
            "outside its window {} to {}",
            basis.from, basis.until
        ));
    }
    if !basis.purposes.is_empty() && !basis.purposes.iter().any(|p| p == context.purpose) {
        return Err(format!("it covers purpose {}", basis.purposes.join("/")));
    }
    if !basis.patients.is_empty() && !basis.patients.iter().any(|p| subject.aliases.contains(p)) {
        return Err("it does not cover this person".to_owned());
    }
    Ok(())
}
