//! The consent gate: the only way to obtain a [`Released`] record, which is the only thing encoders and
//! destinations accept. No code path can send an unchecked record.
//!
//! `Released` has private fields and no public constructor; this does not compile:
//!
//! ```compile_fail,E0451
//! let forged = onedoor::consent::Released { record: serde_json::json!({}), decision: todo!(), request: todo!() };
//! ```
//!
//! Every decision is audited before anything is released; a release is also written to the disclosure log.
//! A record prepared earlier is checked again with [`ConsentGate::recheck`] before it is sent, so a
//! revocation stops what was queued but not yet sent.

use super::audit::{AuditError, AuditLog, Audited, Disclosure};
use super::bases::LegalBasis;
use super::decision::{self, Decision, Request};
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
    /// The source organization, when known.
    pub source: Option<String>,
}

/// A record the gate released: redacted as the decision requires, with the decision that allowed it.
#[derive(Debug, Clone)]
pub struct Released<T> {
    record: T,
    decision: Decision,
    request: Disclosing,
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

/// The gate: consents, legal bases, and the audit log.
pub struct ConsentGate {
    registry: Registry,
    bases: Vec<LegalBasis>,
    audit: Option<AuditLog>,
    validator: Validator,
}

impl ConsentGate {
    /// A gate over a registry and legal bases; with an audit log, every decision is recorded.
    pub fn new(registry: Registry, bases: Vec<LegalBasis>, audit: Option<AuditLog>) -> Self {
        Self {
            registry,
            bases,
            audit,
            validator: Validator::new(),
        }
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
        let decision = decision::decide(
            &self.registry,
            &self.bases,
            &Request {
                record,
                source: request.source.as_deref(),
                recipient: &request.recipient,
                purpose: &request.purpose,
                time,
            },
        );
        if let Some(audit) = self.audit.as_mut() {
            let time = time.to_rfc3339();
            audit.record(&Audited {
                decision: &decision,
                recipient: &request.recipient,
                purpose: &request.purpose,
                source: request.source.as_deref(),
                time: &time,
            })?;
        }
        Ok(decision)
    }

    /// Decide, and release the record (redacted as required) when permitted.
    pub fn release(
        &mut self,
        record: Value,
        request: Disclosing,
        time: DateTime<FixedOffset>,
    ) -> Result<Released<Value>, Withheld> {
        let decision = self.decide(&record, &request, time)?;
        if !decision.permits() {
            return Err(Withheld::Denied(Box::new(decision)));
        }
        let released = redact::apply(&record, &decision);
        let issues = self.validator.validate(&released);
        if !issues.is_empty() {
            return Err(Withheld::Invalid(
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        if let Some(audit) = self.audit.as_ref() {
            audit.disclose(&disclosure(&record, &released, &decision, &request, time))?;
        }
        Ok(Released {
            record: released,
            decision,
            request,
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
