//! The decision: given a record (a referral bundle), the source organization, the recipient organization,
//! the purpose of use and the time, answer Permit, Deny or NoConsent, with the obligations (data to
//! redact, notices to attach), the legal basis used, and an explanation naming the consent and provision
//! that decided.
//!
//! Rules (README "Consent"): a decision is made per person and per resource. Every resource of the record
//! (Bundle entries, contained resources, entries of nested Bundles) is about the people its
//! `subject`/`patient`/`for`/`beneficiary` name (a Patient is about itself, a contained resource that names
//! no one about whom its container is about, frame data that names no one about the referral's person); it
//! is released only when a decision for each of them permits it. For one person and one resource, every
//! consent in force is evaluated: a provision applies when its request conditions (period, actor, action,
//! purpose) and its data conditions (class, code, securityLabel, data, dataPeriod) hold, a nested provision
//! that applies overrides its parent, and among provisions of one level, and across consents, deny
//! overrides permit, whatever their order. 42 CFR Part 2 data (ETH and its specialisations) is permitted
//! only by a Part 2 consent or a court order that covers it. A legal basis permits only what no consent
//! decides and never what a consent denies. Default is deny (NoConsent).

use super::bases::{BasisKind, LegalBasis};
use super::codes::{self, PART2_LABELS, PART2_NOTICE};
use super::model::{Consent, DataMeaning, Party, Provision, Rule, Status};
use super::registry::Registry;
use super::subject::{self, Item, Person, Record, Subject};
use super::time::instant;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The source of a command-line conversion that names no source organization (`convert --recipient`
/// without `--source-org` or a configured source's `org`): the operator converts an export they hold, so a
/// decision is still made, but no consent limited to a custodian (`Consent.organization`) can apply. Any
/// other request without a source is denied.
pub const UNNAMED_LOCAL_SOURCE: &str = "urn:onedoor:local|unnamed-source";

/// What is asked.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The record: a referral Bundle (or one resource).
    pub record: &'a Value,
    /// The organization that holds the data (`system|value` or `Organization/id`): required (`None` is
    /// denied), or [`UNNAMED_LOCAL_SOURCE`] for a local conversion.
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
    /// Every resource withheld (`Type/id`, or `Type at /pointer`), whatever the reason.
    pub withheld_resources: Vec<String>,
    /// JSON pointers of the withheld resources in the record (what redaction removes).
    pub withheld_pointers: Vec<String>,
    /// Every consent that decided something in this decision (`Consent/id`), sorted.
    pub contributing: Vec<String>,
    /// Every person the record is about (`Patient/id`, or a reference to someone not in it).
    pub persons: Vec<String>,
    /// Literal references that resolve to nothing in the record, as (JSON pointer of the resource holding
    /// one, the reference): redaction removes them (keeping a logical identifier the reference carries).
    pub unresolved_references: Vec<(String, String)>,
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
            withheld_resources: Vec::new(),
            withheld_pointers: Vec::new(),
            contributing: Vec::new(),
            persons: Vec::new(),
            unresolved_references: Vec::new(),
        }
    }

    /// Whether the record may leave.
    pub fn permits(&self) -> bool {
        self.outcome == Outcome::Permit
    }

    /// Whether the release removes anything.
    pub fn redacts(&self) -> bool {
        !self.withheld_pointers.is_empty()
            || !self.unresolved_references.is_empty()
            || !self.redact_classes.is_empty()
            || !self.redact_labels.is_empty()
    }

    fn explain(&mut self, line: impl Into<String>) {
        self.explanation.push(line.into());
    }
}

/// Settings of the decision that are a deployment's choice.
#[derive(Debug, Clone)]
pub struct Policy {
    /// v3 RoleCode relationships whose holder may consent for a minor.
    pub custodial_roles: Vec<String>,
    /// The age from which a person's own consent is needed (FERPA: 18).
    pub age_of_majority: u32,
    /// Another age of consent for consents under a given policy code (a state's minor-consent rule for
    /// health data: `STATE` → 12, say); the highest applicable one counts.
    pub age_by_policy: BTreeMap<String, u32>,
    /// Organizations that hold other organizations' records as their custodian (a district for its
    /// schools: `[partners.X] custodian_for`): a request from the key's organization is also a request from
    /// each of them, so a consent naming one of them as custodian can apply.
    pub custodian_for: BTreeMap<String, Vec<String>>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            custodial_roles: codes::CUSTODIAL_ROLES
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            age_of_majority: subject::AGE_OF_MAJORITY,
            age_by_policy: BTreeMap::new(),
            custodian_for: BTreeMap::new(),
        }
    }
}

/// The youngest and oldest ages a policy may set as an age of consent.
const AGES: std::ops::RangeInclusive<u32> = 1..=25;

/// Every problem with a policy (`[consent]` in the configuration file): custodial roles that are not v3
/// RoleCode personal relationships, ages outside 1-25, ages of consent for a regime that is not a known
/// policy code. Each is `key: message`.
pub fn check_policy(policy: &Policy) -> Vec<String> {
    let mut problems = Vec::new();
    for role in &policy.custodial_roles {
        if !codes::PERSONAL_RELATIONSHIPS.contains(&role.as_str()) {
            problems.push(format!(
                "custodial_roles: '{role}' is not a v3 RoleCode personal relationship (codes are case-sensitive: PRN, MTH, FTH, GUARD, ...)"
            ));
        }
    }
    if !AGES.contains(&policy.age_of_majority) {
        problems.push(format!(
            "age_of_majority: {} is not an age from {} to {}",
            policy.age_of_majority,
            AGES.start(),
            AGES.end()
        ));
    }
    for (regime, age) in &policy.age_by_policy {
        if !codes::POLICIES.contains(&regime.as_str()) {
            problems.push(format!(
                "age_of_consent.{regime}: not a consent policy code (one of {})",
                codes::POLICIES.join(", ")
            ));
        }
        if !AGES.contains(age) {
            problems.push(format!(
                "age_of_consent.{regime}: {age} is not an age from {} to {}",
                AGES.start(),
                AGES.end()
            ));
        }
    }
    problems
}

struct Context<'a> {
    recipient: HashSet<String>,
    /// The source's aliases (`None` for a local conversion that names no source).
    source: Option<HashSet<String>>,
    purpose: &'a str,
    time: DateTime<FixedOffset>,
}

/// A provision whose request conditions hold, with its nested provisions that also hold.
struct Node<'c> {
    provision: &'c Provision,
    children: Vec<Node<'c>>,
}

/// A consent usable for one person: in force, from the right custodian, given by the right person.
struct Usable<'c> {
    consent: &'c Consent,
    root: Node<'c>,
}

/// The evaluation of one person.
struct PersonState<'c> {
    subject: Subject,
    usable: Vec<Usable<'c>>,
    bases: Vec<&'c LegalBasis>,
}

/// How a resource stands for one person.
#[derive(Debug, Clone)]
enum Verdict<'c> {
    /// Permitted by these consents (id, provision path), or by a legal basis.
    Permit {
        consents: Vec<(&'c str, &'c str)>,
        legal: Option<&'c LegalBasis>,
    },
    /// Denied by a consent's provision (the first by consent id; every denying consent is listed).
    Deny {
        consents: Vec<(&'c str, &'c str)>,
        scoped: bool,
        classes: &'c [String],
        labels: &'c [String],
    },
    /// Part 2 data that only a non-Part 2 consent or basis would permit.
    Part2Blocked { by_basis: bool },
    /// Nothing decides it.
    Nothing,
    /// It is about someone who is not in the record.
    Stranger(String),
}

/// The default policy, built once.
static DEFAULT_POLICY: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(Policy::default);

/// Decide, with the default [`Policy`].
pub fn decide(registry: &Registry, bases: &[LegalBasis], request: &Request<'_>) -> Decision {
    decide_with(registry, bases, request, &DEFAULT_POLICY)
}

/// Decide.
pub fn decide_with(
    registry: &Registry,
    bases: &[LegalBasis],
    request: &Request<'_>,
    policy: &Policy,
) -> Decision {
    let record = Record::read(request.record);
    let primary = match record.primary() {
        Some(Person::Known(p)) => p,
        Some(Person::Unknown(who)) => {
            let mut decision = Decision::new(who.clone());
            decision.outcome = Outcome::Deny;
            decision.explain(format!(
                "the referral is about {who}, who is not in the record: nothing can be released without knowing whose it is"
            ));
            return decision;
        }
        None => {
            let mut decision = Decision::new(String::new());
            decision.outcome = Outcome::Deny;
            decision.explain(
                "the record names no Patient: nothing can be released without knowing whose it is",
            );
            return decision;
        }
    };
    let mut decision = Decision::new(record.items[primary].reference.clone());
    if !codes::PURPOSES.contains(&request.purpose) {
        decision.outcome = Outcome::Deny;
        decision.explain(format!(
            "the purpose '{}' is not a v3 PurposeOfUse code (codes are case-sensitive: {}): nothing is released",
            request.purpose,
            codes::PURPOSES.join(", ")
        ));
        return decision;
    }
    // The source is required: the authenticated partner's organization on the server, `--source` on the
    // command line. A local conversion that names none decides with no custodian (see UNNAMED_LOCAL_SOURCE).
    let source = match request.source {
        None => {
            decision.outcome = Outcome::Deny;
            decision.explain(
                "the request names no source organization (the sending partner's organization, or --source): whose data it is cannot be told, so no consent can be checked against its custodian; nothing is released",
            );
            return decision;
        }
        Some(UNNAMED_LOCAL_SOURCE) => {
            decision.explain(
                "a local conversion that names no source organization: a consent limited to a custodian cannot apply (name the source with --source-org, or a configured source's org)",
            );
            None
        }
        Some(s) => Some(source_aliases(&record, s, policy, &mut decision)),
    };
    let context = Context {
        recipient: record.organization_aliases(request.recipient),
        source,
        purpose: request.purpose,
        time: request.time,
    };

    // Every person the record is about, the primary first.
    let mut people: Vec<usize> = vec![primary];
    people.extend(record.patients().into_iter().filter(|&p| p != primary));
    let mut states: BTreeMap<usize, PersonState<'_>> = BTreeMap::new();
    for &person in &people {
        let mut lines = Vec::new();
        let state = person_state(
            registry,
            bases,
            &record,
            person,
            context.source.as_ref(),
            &context,
            policy,
            &mut lines,
        );
        let prefix = if person == primary {
            String::new()
        } else {
            format!("for {}: ", record.items[person].reference)
        };
        for line in lines {
            decision.explain(format!("{prefix}{line}"));
        }
        states.insert(person, state);
    }
    let mut persons: BTreeSet<String> = people
        .iter()
        .map(|&p| record.items[p].reference.clone())
        .collect();

    // A verdict for every resource and every person it is about.
    let mut verdicts: Vec<Vec<(usize, Verdict)>> = Vec::with_capacity(record.items.len());
    for (index, item) in record.items.iter().enumerate() {
        let mut list = Vec::new();
        if item.pointer.is_empty() && item.kind == "Bundle" {
            verdicts.push(list);
            continue;
        }
        let about: Vec<Person> = if item.persons.is_empty() {
            vec![Person::Known(primary)]
        } else {
            item.persons.clone()
        };
        for person in about {
            match person {
                Person::Known(p) => {
                    let state = &states[&p];
                    list.push((p, verdict(state, &record, index, &context)));
                }
                Person::Unknown(who) => {
                    persons.insert(who.clone());
                    list.push((usize::MAX, Verdict::Stranger(who)));
                }
            }
        }
        verdicts.push(list);
    }
    decision.persons = persons.into_iter().collect();
    unresolvable(&record, &mut decision);

    let released = |index: usize, verdicts: &[Vec<(usize, Verdict)>]| {
        verdicts[index]
            .iter()
            .all(|(_, v)| matches!(v, Verdict::Permit { .. }))
    };
    let mut withheld: Vec<bool> = (0..record.items.len())
        .map(|i| !released(i, &verdicts))
        .collect();
    // Contained resources leave with their container; a Provenance of withheld data only is withheld.
    propagate(&record, &mut withheld);

    let mut contributing = BTreeSet::new();
    for list in &verdicts {
        for (_, v) in list {
            if let Verdict::Permit { consents, .. } | Verdict::Deny { consents, .. } = v {
                contributing.extend(consents.iter().map(|(id, _)| format!("Consent/{id}")));
            }
        }
    }
    decision.contributing = contributing.into_iter().collect();

    // The referral: its ServiceRequest, its Task, its Patient.
    let essential: Vec<usize> = essential_items(&record, primary);
    let lost: Vec<usize> = essential.iter().copied().filter(|&i| withheld[i]).collect();
    let request_item = essential
        .iter()
        .copied()
        .find(|&i| record.items[i].kind == "ServiceRequest")
        .unwrap_or(primary);
    if lost.is_empty() {
        permit(&mut decision, &verdicts, request_item, primary);
    } else {
        refuse(
            &mut decision,
            &record,
            &verdicts,
            &essential,
            &lost,
            primary,
            request,
        );
        if !decision.contributing.is_empty() {
            decision.explain(format!(
                "contributing consents: {}",
                decision.contributing.join(", ")
            ));
        }
        return decision;
    }

    // What is withheld, and why.
    let mut part2_blocked: Option<bool> = None;
    for (index, item) in record.items.iter().enumerate() {
        if !withheld[index] {
            continue;
        }
        decision.withheld_resources.push(item.reference.clone());
        decision.withheld_pointers.push(item.pointer.clone());
        let reason = verdicts[index]
            .iter()
            .find(|(_, v)| !matches!(v, Verdict::Permit { .. }))
            .map(|(_, v)| v.clone());
        let why = match reason {
            Some(Verdict::Deny {
                consents,
                scoped,
                classes,
                labels,
            }) => {
                if scoped {
                    decision.redact_classes.extend(classes.iter().cloned());
                    decision.redact_labels.extend(labels.iter().cloned());
                }
                consents
                    .iter()
                    .map(|(id, path)| {
                        format!(
                            "Consent/{id} {path}: deny applies{}",
                            scope_words(classes, labels)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            Some(Verdict::Part2Blocked { by_basis }) => {
                part2_blocked = Some(part2_blocked.unwrap_or(false) || by_basis);
                for label in PART2_LABELS {
                    decision.redact_labels.push((*label).to_owned());
                }
                "42 CFR Part 2 data, and nothing that covers Part 2 permits it".to_owned()
            }
            Some(Verdict::Stranger(who)) => {
                format!("it is about {who}, who is not in the record")
            }
            Some(Verdict::Nothing) => {
                let person = verdicts[index]
                    .iter()
                    .find(|(_, v)| matches!(v, Verdict::Nothing))
                    .map(|(p, _)| *p)
                    .unwrap_or(primary);
                if person == primary {
                    decision.redact_classes.push(item.kind.clone());
                    "no provision permits it".to_owned()
                } else {
                    format!(
                        "it is about {}, and nothing permits disclosing their data",
                        record.items[person].reference
                    )
                }
            }
            Some(Verdict::Permit { .. }) | None => match item.container {
                _ if item
                    .persons
                    .iter()
                    .any(|p| matches!(p, Person::Known(p) if *p != index && withheld[*p])) =>
                {
                    "the person it is about is withheld".to_owned()
                }
                Some(c) => format!(
                    "it is contained in {}, which is withheld",
                    record.items[c].reference
                ),
                None if item.kind == "Provenance" => {
                    "every target it describes is withheld".to_owned()
                }
                None => "it is inside withheld data".to_owned(),
            },
        };
        decision.explain(format!("{} is withheld: {why}", item.reference));
    }
    match part2_blocked {
        Some(true) => decision.explain(
            "the record holds 42 CFR Part 2 data (ETH/SUD) and this legal basis does not cover 42 CFR Part 2 data: that data is withheld",
        ),
        Some(false) => decision.explain(
            "the record holds 42 CFR Part 2 data (ETH/SUD) and the consent is not a 42 CFR Part 2 consent: that data is withheld",
        ),
        None => {}
    }
    let part2_released = record.items.iter().enumerate().any(|(i, item)| {
        !withheld[i]
            && item
                .labels
                .iter()
                .any(|l| codes::is_part2(l.system.as_deref(), &l.code))
    });
    if part2_released {
        decision.notices.push(PART2_NOTICE.to_owned());
        decision.explain(
            "the record holds 42 CFR Part 2 data, covered: the redisclosure notice travels with it",
        );
    }
    decision.redact_classes.sort();
    decision.redact_classes.dedup();
    decision.redact_labels.sort();
    decision.redact_labels.dedup();
    if !decision.contributing.is_empty() {
        decision.explain(format!(
            "contributing consents: {}",
            decision.contributing.join(", ")
        ));
    }
    decision
}

/// A literal reference that resolves to nothing in the record points to data no decision covered: it is
/// removed from what is released (its `display` with it; a logical identifier it carries stays, naming an
/// entity the record need not hold), and the explanation says so. A reference to directory data (an
/// Organization, a Practitioner, a HealthcareService...) points to no one's data and is kept as sent.
fn unresolvable(record: &Record<'_>, decision: &mut Decision) {
    for (index, target) in &record.dangling {
        let Some(item) = record.items.get(*index) else {
            continue;
        };
        if let Some(kind) = reference_type(target).filter(|k| codes::DIRECTORY_TYPES.contains(k)) {
            decision.explain(format!(
                "{} refers to {target}, which the record does not hold: an {kind} is directory data, not anyone's, kept as sent",
                item.reference
            ));
            continue;
        }
        decision.explain(format!(
            "{} refers to {target}, which the record does not hold: the reference is removed from what is released",
            item.reference
        ));
        decision
            .unresolved_references
            .push((item.pointer.clone(), target.clone()));
    }
}

/// The resource type a literal reference names (`Type/id`, `.../Type/id`, `.../Type/id/_history/n`), if it
/// names one (`#id` and `urn:uuid:` references do not).
fn reference_type(reference: &str) -> Option<&str> {
    let trimmed = reference.split("/_history/").next().unwrap_or(reference);
    let mut parts = trimmed.rsplit('/');
    let _id = parts.next()?;
    parts
        .next()
        .filter(|kind| kind.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// The names of the source organization, and of the organizations it holds records for as custodian.
fn source_aliases(
    record: &Record<'_>,
    source: &str,
    policy: &Policy,
    decision: &mut Decision,
) -> HashSet<String> {
    let mut aliases = record.organization_aliases(source);
    if let Some(held) = policy.custodian_for.get(source).filter(|h| !h.is_empty()) {
        decision.explain(format!(
            "the source {source} holds the records of {} as their custodian",
            held.join(", ")
        ));
        for other in held {
            aliases.extend(record.organization_aliases(other));
        }
    }
    aliases
}

#[allow(clippy::too_many_arguments)]
fn person_state<'c>(
    registry: &'c Registry,
    bases: &'c [LegalBasis],
    record: &Record<'_>,
    person: usize,
    source: Option<&HashSet<String>>,
    context: &Context<'_>,
    policy: &Policy,
    lines: &mut Vec<String>,
) -> PersonState<'c> {
    let subject = record.subject(
        person,
        context.time,
        &policy.custodial_roles,
        policy.age_of_majority,
    );
    describe_subject(&subject, lines);
    let mut consents = registry.for_patient(&subject.aliases);
    consents.sort_by(|a, b| a.id.cmp(&b.id));
    let mut usable = Vec::new();
    for consent in consents {
        if let Some(root) = usable_consent(consent, &subject, source, context, policy, lines) {
            usable.push(Usable { consent, root });
        }
    }
    let bases = bases
        .iter()
        .filter(|basis| match basis_applies(basis, &subject, context) {
            Ok(()) => true,
            Err(why) => {
                lines.push(format!(
                    "{} ({}) does not apply: {why}",
                    basis.kind.label(),
                    basis.reference
                ));
                false
            }
        })
        .collect();
    PersonState {
        subject,
        usable,
        bases,
    }
}

fn describe_subject(subject: &Subject, lines: &mut Vec<String>) {
    let who = match subject.age {
        Some(age) if subject.needs_guardian() => {
            format!("age {age}, a minor: a guardian's consent is needed")
        }
        Some(age) => format!("age {age}, an adult: their own consent is needed"),
        None => "age unknown (no birthDate): treated as a minor, a guardian's consent is needed"
            .to_owned(),
    };
    lines.push(format!("the record is about {} ({who})", subject.reference));
    for other in &subject.not_guardians {
        lines.push(format!(
            "{other}: they may not consent for {}",
            subject.reference
        ));
    }
}

fn usable_consent<'c>(
    consent: &'c Consent,
    subject: &Subject,
    source: Option<&HashSet<String>>,
    context: &Context<'_>,
    policy: &Policy,
    lines: &mut Vec<String>,
) -> Option<Node<'c>> {
    let name = format!("Consent/{}", consent.id);
    if consent.status != Status::Active {
        lines.push(format!(
            "{name} is not active ({:?}): it permits nothing",
            consent.status
        ));
        return None;
    }
    if let Some(dated) = consent.date_time
        && dated > context.time
    {
        lines.push(format!(
            "{name} is dated {}, after the decision time: not yet in force",
            dated.to_rfc3339()
        ));
        return None;
    }
    if !consent.organizations.is_empty() {
        match source {
            Some(source) if consent.organizations.iter().any(|o| o.is_any_of(source)) => {}
            Some(_) => {
                lines.push(format!(
                    "{name} covers data held by {}, not by the source",
                    names(&consent.organizations)
                ));
                return None;
            }
            None => {
                lines.push(format!(
                    "{name} covers data held by {}, and the request names no source organization",
                    names(&consent.organizations)
                ));
                return None;
            }
        }
    }
    if let Err(why) = performer_ok(consent, subject, policy) {
        lines.push(format!("{name} {why}: it does not cover this person"));
        return None;
    }
    let Some(provision) = &consent.provision else {
        lines.push(format!("{name} has no computable provision (its terms are only in its source document): it cannot permit anything automatically"));
        return None;
    };
    let node = prune(provision, context, &name, lines);
    if node.is_none() {
        lines.push(format!(
            "{name} provision does not apply to this recipient, purpose and time"
        ));
    }
    node
}

fn performer_ok(consent: &Consent, subject: &Subject, policy: &Policy) -> Result<(), String> {
    let majority = consent
        .policies
        .iter()
        .filter_map(|p| policy.age_by_policy.get(p))
        .copied()
        .max()
        .unwrap_or(subject.age_of_majority);
    let minor = subject.age.is_none_or(|age| age < majority);
    let by_guardian = consent
        .performers
        .iter()
        .any(|p| p.is_any_of(&subject.guardians));
    let by_self = consent.performers.is_empty()
        || consent
            .performers
            .iter()
            .any(|p| p.is_any_of(&subject.aliases));
    match (minor, by_guardian, by_self) {
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

fn names(parties: &[Party]) -> String {
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
    if !provision.sources.is_empty()
        && !context
            .source
            .as_ref()
            .is_some_and(|source| provision.sources.iter().any(|a| a.is_any_of(source)))
    {
        return Err(format!(
            "is about data from {}, not from this source",
            names(&provision.sources)
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

/// Keep the provisions whose request conditions hold (a nested provision only within its parent).
fn prune<'c>(
    provision: &'c Provision,
    context: &Context<'_>,
    consent: &str,
    lines: &mut Vec<String>,
) -> Option<Node<'c>> {
    if let Err(why) = applies(provision, context) {
        lines.push(format!(
            "{consent} {}: {:?} {why}",
            provision.path, provision.rule
        ));
        return None;
    }
    let scope = scope_text(provision);
    lines.push(format!(
        "{consent} {}: {} applies{}",
        provision.path,
        rule_name(provision.rule),
        scope
    ));
    if provision.rule == Rule::Deny && !provision.is_data_scoped() {
        lines.push(format!(
            "{consent} {} denies disclosure to this recipient for {}",
            provision.path, context.purpose
        ));
    }
    let children = provision
        .nested
        .iter()
        .filter_map(|n| prune(n, context, consent, lines))
        .collect();
    Some(Node {
        provision,
        children,
    })
}

/// What a pruned provision tree says about one resource: the rule of the deepest provision whose data
/// conditions hold; deny overrides permit among siblings.
fn evaluate<'c>(node: &Node<'c>, record: &Record<'_>, item: usize) -> Option<&'c Provision> {
    if !data_matches(node.provision, record, item) {
        return None;
    }
    let mut permit = None;
    for child in &node.children {
        match evaluate(child, record, item) {
            Some(p) if p.rule == Rule::Deny => return Some(p),
            Some(p) => permit = permit.or(Some(p)),
            None => {}
        }
    }
    Some(permit.unwrap_or(node.provision))
}

/// Whether a provision's data conditions hold for a resource. What cannot be told (a data period for data
/// without a date) counts as covered by a deny and not by a permit.
fn data_matches(provision: &Provision, record: &Record<'_>, index: usize) -> bool {
    let item = &record.items[index];
    let deny = provision.rule == Rule::Deny;
    let class_ok = (provision.classes.is_empty() && provision.profiles.is_empty())
        || provision.classes.contains(&item.kind)
        || provision.profiles.iter().any(|p| has_profile(item, p));
    if !class_ok {
        return false;
    }
    if !provision.codes.is_empty() && !item_codes(item).iter().any(|c| provision.codes.contains(c))
    {
        return false;
    }
    if !provision.labels.is_empty()
        && !item.labels.iter().any(|l| {
            provision
                .labels
                .iter()
                .any(|p| codes::label_covers(p, l.system.as_deref(), &l.code))
        })
    {
        return false;
    }
    if !provision.data.is_empty()
        && !provision
            .data
            .iter()
            .any(|(meaning, party)| data_covers(record, index, *meaning, party))
    {
        return false;
    }
    if provision.data_start.is_some() || provision.data_end.is_some() {
        match data_time(item.resource) {
            Some(t) => {
                if provision.data_start.is_some_and(|s| t < s)
                    || provision.data_end.is_some_and(|e| t > e)
                {
                    return false;
                }
            }
            // Frame data without a clinical time (a Patient, an Organization) is outside any data
            // period; other data without one is covered by a deny and not by a permit.
            None if subject::FRAME_TYPES.contains(&item.kind.as_str()) => return !deny,
            None => return deny,
        }
    }
    true
}

fn has_profile(item: &Item<'_>, profile: &str) -> bool {
    subject::field(item.resource, &["meta", "profile"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|p| {
            p.as_str()
                .is_some_and(|p| p.split('|').next() == Some(profile))
        })
        || profile.strip_prefix("http://hl7.org/fhir/StructureDefinition/")
            == Some(item.kind.as_str())
}

fn item_codes(item: &Item<'_>) -> Vec<String> {
    let mut found = Vec::new();
    for key in ["code", "category", "type"] {
        let concepts: Vec<&Value> = match item.resource.get(key) {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(other) => vec![other],
            None => continue,
        };
        for concept in concepts {
            for coding in concept
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(code) = coding.get("code").and_then(Value::as_str) {
                    let system = coding
                        .get("system")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    found.push(format!("{system}|{code}"));
                }
            }
        }
    }
    found
}

/// The elements that say who wrote a resource (`provision.data` meaning `authoredby`).
const AUTHOR_ELEMENTS: &[&str] = &[
    "author",
    "recorder",
    "asserter",
    "requester",
    "performer",
    "sender",
    "informationSource",
    "source",
];

fn data_covers(record: &Record<'_>, index: usize, meaning: DataMeaning, party: &Party) -> bool {
    let reference = party_value(party);
    let target = record.resolve(index, &reference);
    let item = &record.items[index];
    match meaning {
        DataMeaning::Instance => target == Some(index),
        DataMeaning::Related => {
            target.is_some_and(|t| t == index || record.items[t].refs.contains(&index))
        }
        DataMeaning::Dependents => target.is_some_and(|t| t == index || item.refs.contains(&t)),
        DataMeaning::AuthoredBy => AUTHOR_ELEMENTS.iter().any(|element| {
            let values: Vec<&Value> = match item.resource.get(*element) {
                Some(Value::Array(list)) => list.iter().collect(),
                Some(other) => vec![other],
                None => Vec::new(),
            };
            values.into_iter().any(|v| {
                let named = Party::from_reference(v);
                (named.reference.is_some() && named.reference == party.reference)
                    || (named.identifier.is_some() && named.identifier == party.identifier)
                    || (target.is_some() && record.resolve(index, v) == target)
            })
        }),
    }
}

fn party_value(party: &Party) -> Value {
    let mut value = serde_json::Map::new();
    if let Some(r) = &party.reference {
        value.insert("reference".into(), Value::String(r.clone()));
    }
    if let Some(i) = &party.identifier {
        let (system, code) = i.split_once('|').unwrap_or(("", i));
        value.insert(
            "identifier".into(),
            serde_json::json!({"system": system, "value": code}),
        );
    }
    Value::Object(value)
}

/// When the data was about (its clinical time), for `dataPeriod`.
fn data_time(resource: &Value) -> Option<DateTime<FixedOffset>> {
    const TIMES: &[&[&str]] = &[
        &["effectiveDateTime"],
        &["effectiveInstant"],
        &["effectivePeriod", "start"],
        &["onsetDateTime"],
        &["onsetPeriod", "start"],
        &["recordedDate"],
        &["occurrenceDateTime"],
        &["occurrencePeriod", "start"],
        &["performedDateTime"],
        &["performedPeriod", "start"],
        &["authoredOn"],
        &["issued"],
        &["authored"],
        &["date"],
        &["recorded"],
        &["created"],
        &["period", "start"],
    ];
    TIMES
        .iter()
        .find_map(|p| subject::field(resource, p).and_then(Value::as_str))
        .and_then(|t| instant(t, false))
}

fn verdict<'c>(
    state: &PersonState<'c>,
    record: &Record<'_>,
    index: usize,
    _context: &Context<'_>,
) -> Verdict<'c> {
    let item = &record.items[index];
    let part2 = item
        .labels
        .iter()
        .any(|l| codes::is_part2(l.system.as_deref(), &l.code));
    let mut permits = Vec::new();
    let mut denies: Vec<(&'c str, &'c str)> = Vec::new();
    let mut deny_scope: Option<(bool, &'c [String], &'c [String])> = None;
    let mut blocked = false;
    for usable in &state.usable {
        let Some(provision) = evaluate(&usable.root, record, index) else {
            continue;
        };
        match provision.rule {
            Rule::Deny => {
                denies.push((usable.consent.id.as_str(), provision.path.as_str()));
                if deny_scope.is_none() {
                    deny_scope = Some((
                        provision.is_data_scoped(),
                        &provision.classes,
                        &provision.labels,
                    ));
                }
            }
            Rule::Permit if part2 && !usable.consent.is_part2() => blocked = true,
            Rule::Permit => permits.push((usable.consent.id.as_str(), provision.path.as_str())),
        }
    }
    if let Some((scoped, classes, labels)) = deny_scope {
        return Verdict::Deny {
            consents: denies,
            scoped,
            classes,
            labels,
        };
    }
    if !permits.is_empty() {
        return Verdict::Permit {
            consents: permits,
            legal: None,
        };
    }
    let mut basis_blocked = false;
    for basis in &state.bases {
        if part2 && !basis.part2 {
            basis_blocked = true;
            continue;
        }
        return Verdict::Permit {
            consents: Vec::new(),
            legal: Some(*basis),
        };
    }
    if blocked || basis_blocked {
        return Verdict::Part2Blocked {
            by_basis: basis_blocked && !blocked,
        };
    }
    let _ = &state.subject;
    Verdict::Nothing
}

fn propagate(record: &Record<'_>, withheld: &mut [bool]) {
    // Data about a person leaves only with the person: a resource about someone whose Patient is withheld
    // is withheld too (it would point to no one).
    for index in 0..record.items.len() {
        let orphan = record.items[index].persons.iter().any(|p| match p {
            Person::Known(p) => *p != index && withheld[*p],
            Person::Unknown(_) => true,
        });
        if orphan {
            withheld[index] = true;
        }
    }
    // What is inside withheld data (contained in it, an entry of a withheld nested Bundle) goes with it;
    // items are in document order, so an outer item comes before what it holds.
    for index in 0..record.items.len() {
        let pointer = record.items[index].pointer.as_str();
        if withheld[index] || pointer.matches('/').count() <= 3 {
            continue;
        }
        let inside_withheld = (0..index).any(|other| {
            let outer = record.items[other].pointer.as_str();
            withheld[other]
                && !outer.is_empty()
                && pointer.len() > outer.len()
                && pointer.starts_with(outer)
                && pointer.as_bytes()[outer.len()] == b'/'
        });
        if inside_withheld {
            withheld[index] = true;
        }
    }
    for index in 0..record.items.len() {
        let item = &record.items[index];
        if item.kind != "Provenance" || withheld[index] {
            continue;
        }
        let targets: Vec<Option<usize>> = item
            .resource
            .get("target")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| record.resolve(index, t))
            .collect();
        if !targets.is_empty() && targets.iter().all(|t| t.is_some_and(|t| withheld[t])) {
            withheld[index] = true;
        }
    }
}

fn essential_items(record: &Record<'_>, primary: usize) -> Vec<usize> {
    let top = |item: &Item<'_>| item.container.is_none() && item.pointer.matches('/').count() <= 3;
    let request = record
        .items
        .iter()
        .position(|i| i.kind == "ServiceRequest" && top(i));
    let mut essential = vec![primary];
    if let Some(r) = request {
        essential.push(r);
        for (index, item) in record.items.iter().enumerate() {
            if item.kind == "Task"
                && top(item)
                && (item.refs.contains(&r) || item.persons.contains(&Person::Known(primary)))
            {
                essential.push(index);
            }
        }
    }
    essential.sort();
    essential.dedup();
    essential
}

fn permit(
    decision: &mut Decision,
    verdicts: &[Vec<(usize, Verdict)>],
    request_item: usize,
    primary: usize,
) {
    decision.outcome = Outcome::Permit;
    let verdict = verdicts[request_item]
        .iter()
        .find(|(p, _)| *p == primary)
        .map(|(_, v)| v.clone());
    match verdict {
        Some(Verdict::Permit {
            consents,
            legal: None,
        }) => {
            decision.basis = Basis::Consent;
            decision.authority = consents.first().map(|(id, _)| (*id).to_owned());
            decision.provision = consents.first().map(|(_, path)| (*path).to_owned());
            for (id, path) in &consents {
                decision.explain(format!("decided by Consent/{id} {path}: permit"));
            }
        }
        Some(Verdict::Permit {
            legal: Some(basis), ..
        }) => {
            decision.basis = Basis::Legal(basis.kind);
            decision.authority = Some(basis.reference.clone());
            decision.explain(format!(
                "no consent permits; permitted under {} ({}), window {} to {}",
                basis.kind.label(),
                basis.reference,
                basis.from,
                basis.until
            ));
        }
        _ => {}
    }
}

fn refuse(
    decision: &mut Decision,
    record: &Record<'_>,
    verdicts: &[Vec<(usize, Verdict)>],
    essential: &[usize],
    lost: &[usize],
    primary: usize,
    request: &Request<'_>,
) {
    let mut kinds: Vec<&str> = lost
        .iter()
        .map(|&i| record.items[i].kind.as_str())
        .collect();
    kinds.sort();
    kinds.dedup();
    // An explicit, whole-record deny of the referral decides; data-scoped denials leave an unusable
    // referral; nothing at all is the default.
    for &index in lost {
        for (person, v) in &verdicts[index] {
            if *person != primary {
                continue;
            }
            if let Verdict::Deny {
                consents, scoped, ..
            } = v
            {
                decision.outcome = Outcome::Deny;
                decision.basis = Basis::Consent;
                decision.authority = consents.first().map(|(id, _)| (*id).to_owned());
                decision.provision = consents.first().map(|(_, path)| (*path).to_owned());
                if !scoped {
                    for (id, path) in consents {
                        decision.explain(format!(
                            "Consent/{id} {path} denies disclosure to {} for {}: deny wins",
                            request.recipient, request.purpose
                        ));
                    }
                } else {
                    decision.explain(format!(
                        "what would remain is not a usable referral: the {} would be withheld",
                        kinds.join(", ")
                    ));
                }
                return;
            }
        }
    }
    let any_permit = essential.iter().any(|&i| {
        verdicts[i]
            .iter()
            .any(|(_, v)| matches!(v, Verdict::Permit { .. }))
    });
    let nothing = lost.iter().all(|&i| {
        verdicts[i]
            .iter()
            .all(|(_, v)| matches!(v, Verdict::Nothing))
    });
    if nothing && !any_permit {
        decision.explain(format!(
            "nothing permits disclosure to {} for {}: denied by default",
            request.recipient, request.purpose
        ));
        return;
    }
    decision.outcome = Outcome::Deny;
    decision.explain(format!(
        "what would remain is not a usable referral: the {} would be withheld",
        kinds.join(", ")
    ));
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::Permit => "permit",
        Rule::Deny => "deny",
    }
}

fn scope_words(classes: &[String], labels: &[String]) -> String {
    let mut parts = Vec::new();
    if !classes.is_empty() {
        parts.push(format!("data {}", classes.join("/")));
    }
    if !labels.is_empty() {
        parts.push(format!("labels {}", labels.join("/")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn scope_text(provision: &Provision) -> String {
    let mut parts = Vec::new();
    if !provision.actors.is_empty() {
        parts.push(format!("actor {}", names(&provision.actors)));
    }
    if !provision.sources.is_empty() {
        parts.push(format!("data from {}", names(&provision.sources)));
    }
    if !provision.purposes.is_empty() {
        parts.push(format!("purpose {}", provision.purposes.join("/")));
    }
    if !provision.classes.is_empty() || !provision.profiles.is_empty() {
        parts.push(format!(
            "data {}",
            [provision.classes.clone(), provision.profiles.clone()]
                .concat()
                .join("/")
        ));
    }
    if !provision.codes.is_empty() {
        parts.push(format!("codes {}", provision.codes.join("/")));
    }
    if !provision.labels.is_empty() {
        parts.push(format!("labels {}", provision.labels.join("/")));
    }
    if !provision.data.is_empty() {
        parts.push(format!(
            "data {}",
            provision
                .data
                .iter()
                .map(|(m, p)| format!("{} ({m:?})", p.describe()))
                .collect::<Vec<_>>()
                .join("/")
        ));
    }
    if provision.data_start.is_some() || provision.data_end.is_some() {
        parts.push(format!(
            "data period {} to {}",
            provision
                .data_start
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "any time".into()),
            provision
                .data_end
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "any time".into())
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
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
