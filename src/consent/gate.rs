//! The consent gate: the only way to obtain a [`Released`] record, which is the only thing encoders and
//! destinations accept. No code path can send an unchecked record.
//!
//! `Released` has private fields and no public constructor; this does not compile:
//!
//! ```compile_fail,E0451
//! let forged = onedoor::consent::Released { record: serde_json::json!({}), decision: todo!(), request: todo!() };
//! ```
//!
//! Every decision is audited before anything is released: through the gate's [`AuditTrail`] (the CLI, the
//! conformance runner), or, for the server, by the caller in the store transaction that also records what
//! the decision led to ([`ConsentGate::decision`] and [`ConsentGate::release_for_delivery`] return what
//! to audit; the gateway and the outbox write it in the same transaction as the message, the withheld
//! mark or the delivery). A disclosure is recorded when the receiver has the record: for a delivery, in
//! the transaction that marks it delivered ([`Released::disclosure`]).
//! A record prepared earlier is checked again with [`ConsentGate::recheck`] before it is sent, so a
//! revocation stops what was queued but not yet sent.

use super::audit::{AuditEntry, AuditError, AuditTrail, Audited, Disclosure};
use super::bases::LegalBasis;
use super::decision::{self, Decision, Policy, Request};
use super::model::identifier_key;
use super::redact;
use super::registry::Registry;
use super::subject;
use crate::validation::Validator;
use chrono::{DateTime, FixedOffset};
use serde_json::Value;

/// Who a record goes to, for what, from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosing {
    /// The recipient organization (`system|value` or `Organization/id`).
    pub recipient: String,
    /// The purpose of use.
    pub purpose: String,
    /// The source organization: the sending partner's, or `--source`; `None` is denied (see
    /// [`decision::UNNAMED_LOCAL_SOURCE`] for local conversions).
    pub source: Option<String>,
}

/// A record the gate released: redacted as the decision requires, with the decision that allowed it.
#[derive(Debug, Clone)]
pub struct Released<T> {
    record: T,
    decision: Decision,
    request: Disclosing,
    disclosure: Disclosure,
}

impl<T> Released<T> {
    /// The released record.
    pub fn record(&self) -> &T {
        &self.record
    }

    /// The decision that released it.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// To whom and for what it was released.
    pub fn disclosing(&self) -> &Disclosing {
        &self.request
    }

    /// The disclosure to record once the receiver has it.
    pub fn disclosure(&self) -> &Disclosure {
        &self.disclosure
    }
}

/// Why the gate did not release a record.
#[derive(Debug, thiserror::Error)]
pub enum Withheld {
    /// The decision was Deny or NoConsent.
    #[error("withheld: {:?}: {}", .0.outcome, .0.explanation.last().cloned().unwrap_or_default())]
    Denied(Box<Decision>),
    /// The redacted record would not be valid FHIR (a bug: reported, never sent).
    #[error("withheld: the redacted record is not valid FHIR: {0}")]
    Invalid(String),
    /// The decision could not be audited, so nothing is released.
    #[error("withheld: the decision could not be audited: {0}")]
    Audit(#[from] AuditError),
}

/// The gate: consents, legal bases, and the audit trail.
pub struct ConsentGate {
    registry: Registry,
    bases: Vec<LegalBasis>,
    trail: Option<Box<dyn AuditTrail>>,
    validator: Validator,
    policy: Policy,
}

/// The audit entry for a decision.
pub fn audit_entry(
    decision: &Decision,
    request: &Disclosing,
    time: DateTime<FixedOffset>,
) -> AuditEntry {
    AuditEntry::draft(&Audited {
        decision,
        recipient: &request.recipient,
        purpose: &request.purpose,
        source: request.source.as_deref(),
        time: &time.to_rfc3339(),
    })
}

impl ConsentGate {
    /// A gate over a registry and legal bases; with a trail, every decision it makes through
    /// [`ConsentGate::decide`] and [`ConsentGate::release`] is recorded there.
    pub fn new(
        registry: Registry,
        bases: Vec<LegalBasis>,
        trail: Option<Box<dyn AuditTrail>>,
    ) -> Self {
        Self {
            registry,
            bases,
            trail,
            validator: Validator::new(),
            policy: Policy::default(),
        }
    }

    /// The same gate deciding under `policy` (custodial roles, ages of consent: `[consent]` in the
    /// configuration file).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy it decides under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The decision, not yet audited: the caller records [`audit_entry`] in the transaction that acts
    /// on it.
    pub fn decision(
        &self,
        record: &Value,
        request: &Disclosing,
        time: DateTime<FixedOffset>,
    ) -> Decision {
        decision::decide_with(
            &self.registry,
            &self.bases,
            &Request {
                record,
                source: request.source.as_deref(),
                recipient: &request.recipient,
                purpose: &request.purpose,
                time,
            },
            &self.policy,
        )
    }

    /// Decide and, when permitted, prepare the released record for a delivery; nothing is audited yet:
    /// the caller audits the decision before sending and records the disclosure when the receiver
    /// acknowledges.
    pub fn release_for_delivery(
        &self,
        record: &Value,
        request: Disclosing,
        time: DateTime<FixedOffset>,
    ) -> Result<Released<Value>, Withheld> {
        let decision = self.decision(record, &request, time);
        self.prepare(record, decision, request, time)
    }

    /// The registry (to update consents, such as a revocation).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Decide without releasing (for `consent check`'s explanation); the decision is audited.
    pub fn decide(
        &mut self,
        record: &Value,
        request: &Disclosing,
        time: DateTime<FixedOffset>,
    ) -> Result<Decision, Withheld> {
        let decision = self.decision(record, request, time);
        if let Some(trail) = self.trail.as_mut() {
            trail.record(audit_entry(&decision, request, time))?;
        }
        Ok(decision)
    }

    /// Decide, and release the record (redacted as required) when permitted; the decision is audited and
    /// the release recorded as a disclosure on the gate's trail (its caller writes it out at once).
    pub fn release(
        &mut self,
        record: Value,
        request: Disclosing,
        time: DateTime<FixedOffset>,
    ) -> Result<Released<Value>, Withheld> {
        let decision = self.decide(&record, &request, time)?;
        let released = self.prepare(&record, decision, request, time)?;
        if let Some(trail) = self.trail.as_mut() {
            trail.disclose(released.disclosure())?;
        }
        Ok(released)
    }

    fn prepare(
        &self,
        record: &Value,
        decision: Decision,
        request: Disclosing,
        time: DateTime<FixedOffset>,
    ) -> Result<Released<Value>, Withheld> {
        if !decision.permits() {
            return Err(Withheld::Denied(Box::new(decision)));
        }
        let released = redact::apply(record, &decision);
        // What reaches the gate was validated where it entered (the pipeline validates every resource it
        // writes; the gateway checks every referral it accepts, and stores and sends only those), so a
        // release equal to its record is not validated again: only what the gate changed is (a redaction
        // may leave a resource that fails its profile, and is then refused).
        let issues = if released == *record {
            Vec::new()
        } else {
            self.validator.validate(&released)
        };
        if !issues.is_empty() {
            return Err(Withheld::Invalid(
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let disclosure = disclosure(record, &released, &decision, &request, time);
        Ok(Released {
            record: released,
            decision,
            request,
            disclosure,
        })
    }

    /// Check a released record again before sending it (consents may have changed since): the original
    /// record is decided anew, and released again or withheld.
    pub fn recheck(
        &mut self,
        original: Value,
        released: Released<Value>,
        time: DateTime<FixedOffset>,
    ) -> Result<Released<Value>, Withheld> {
        self.release(original, released.request, time)
    }
}

fn disclosure(
    original: &Value,
    released: &Value,
    decision: &Decision,
    request: &Disclosing,
    time: DateTime<FixedOffset>,
) -> Disclosure {
    let reference = |r: &&Value| {
        format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        )
    };
    let sent: Vec<String> = subject::resources(released).iter().map(reference).collect();
    let withheld = subject::resources(original)
        .iter()
        .map(reference)
        .filter(|r| !sent.contains(r))
        .collect();
    let identifiers = subject::resources(original)
        .into_iter()
        .find(|r| format!("Patient/{}", r["id"].as_str().unwrap_or_default()) == decision.patient)
        .and_then(|p| p.get("identifier").and_then(Value::as_array))
        .map(|ids| ids.iter().filter_map(identifier_key).collect())
        .unwrap_or_default();
    Disclosure {
        time: time.to_rfc3339(),
        patient: decision.patient.clone(),
        patient_identifiers: identifiers,
        recipient: request.recipient.clone(),
        purpose: request.purpose.clone(),
        basis: decision.basis,
        authority: decision.authority.clone(),
        resources: sent,
        withheld,
    }
}
