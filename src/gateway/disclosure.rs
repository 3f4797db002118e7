//! What a destination is disclosed: who it discloses to and for what, which organization a message came
//! from, and the consent decision (audited) for each destination of a referral.

use super::{Gateway, GatewayError};
use crate::consent::audit::AuditEntry;
use crate::consent::{ConsentGate, Disclosing, gate};
use crate::store::consents::StateVersions;
use crate::store::{StoreError, WriteTx};
use chrono::{DateTime, FixedOffset};
use serde_json::Value;

/// Each destination with `pending` (consent lets it) or `withheld`, and the audit entries recording why.
pub(super) type Decisions = (Vec<(String, String)>, Vec<AuditEntry>);

/// Consent decisions made before the transaction ([`Gateway::decide_early`]): for which destinations, on
/// which consent state.
pub(super) struct DecidedEarly {
    versions: StateVersions,
    destinations: Vec<String>,
    decided: Decided,
}

/// The decisions for a record's destinations, not yet counted in the metrics.
struct Decided {
    routed: Vec<(String, String)>,
    entries: Vec<AuditEntry>,
    outcomes: Vec<String>,
}

impl Decided {
    /// Decide `record` for each of `requests` with `gate` at `now`.
    fn on(
        gate: &ConsentGate,
        record: &Value,
        requests: &[(String, Option<Disclosing>)],
        now: DateTime<FixedOffset>,
    ) -> Self {
        let mut decided = Self {
            routed: Vec::with_capacity(requests.len()),
            entries: Vec::with_capacity(requests.len()),
            outcomes: Vec::with_capacity(requests.len()),
        };
        for (name, request) in requests {
            let Some(request) = request else {
                decided.routed.push((name.clone(), "withheld".to_owned()));
                continue;
            };
            let decision = gate.decision(record, request, now);
            decided
                .outcomes
                .push(format!("{:?}", decision.outcome).to_lowercase());
            let status = if decision.permits() {
                "pending"
            } else {
                "withheld"
            };
            decided
                .entries
                .push(gate::audit_entry(&decision, request, now));
            decided.routed.push((name.clone(), status.to_owned()));
        }
        decided
    }

    /// The decisions, counted in the metrics now that they are the ones kept.
    fn counted(self) -> Decisions {
        for outcome in self.outcomes {
            metrics::counter!("onedoor_consent_decisions_total", "outcome" => outcome).increment(1);
        }
        (self.routed, self.entries)
    }
}

impl Gateway {
    /// The consent decision for each destination, and the audit entries to record with them; the source
    /// is the sending partner's organization. Decisions made `early` (before the transaction) are kept when
    /// they were made for these destinations on the consent state the store still has (its counters, read
    /// in `tx`, unchanged); otherwise, or without them, each is decided here.
    pub(super) async fn decide_all(
        &self,
        tx: &mut WriteTx<'_>,
        record: &Value,
        destinations: &[String],
        sender_org: &str,
        early: Option<DecidedEarly>,
    ) -> Result<Decisions, GatewayError> {
        if let Some(early) = early
            && early.destinations == destinations
            && early.versions == self.store.state_versions(tx).await?
        {
            return Ok(early.decided.counted());
        }
        let now = chrono::Utc::now().fixed_offset();
        let requests = self.requests(destinations, sender_org);
        let decided = self
            .with_gate(tx, |gate| Decided::on(gate, record, &requests, now))
            .await?;
        Ok(decided.counted())
    }

    /// The consent decisions for a new referral's routes, made before its transaction on the consent state
    /// this node last loaded (`None` before it has loaded any): kept by [`Gateway::decide_all`] only if
    /// the store's counters say that state is still current.
    pub(super) async fn decide_early(
        &self,
        record: &Value,
        destinations: Vec<String>,
        sender_org: &str,
    ) -> Option<DecidedEarly> {
        let (versions, gate) = self.gate_as_loaded().await?;
        let now = chrono::Utc::now().fixed_offset();
        let requests = self.requests(&destinations, sender_org);
        Some(DecidedEarly {
            versions,
            decided: Decided::on(&gate, record, &requests, now),
            destinations,
        })
    }

    /// Who each destination discloses to (`None`: not a configured destination, withheld).
    fn requests(
        &self,
        destinations: &[String],
        sender_org: &str,
    ) -> Vec<(String, Option<Disclosing>)> {
        (destinations.iter())
            .map(|name| (name.clone(), self.disclosing_to(name, Some(sender_org))))
            .collect()
    }

    /// Who a destination discloses to, for what, from which source organization (the sending partner's:
    /// `None` when it cannot be told, which the consent gate denies).
    pub fn disclosing_to(&self, destination: &str, source: Option<&str>) -> Option<Disclosing> {
        self.config
            .destinations
            .get(destination)
            .map(|target| Disclosing {
                recipient: target.org.clone(),
                purpose: target.purpose.clone(),
                source: source.map(str::to_owned),
            })
    }

    /// The organization a stored message came from: the organization that sent its referral (the sender
    /// the store holds for the referral's key resource, set from the authenticated partner at ingest), else
    /// the organization of the partner it came through.
    pub async fn source_of(
        &self,
        message: &crate::store::Message,
    ) -> Result<Option<String>, StoreError> {
        if let Ok(referral) = crate::record::ResourceRef::parse(&message.referral_key)
            && let Some(held) = self.store.resource(referral.kind(), referral.id()).await?
            && let Some(org) = held.sender_org
        {
            return Ok(Some(org));
        }
        Ok(message
            .source
            .strip_prefix("partner:")
            .and_then(|name| self.config.partners.get(name))
            .map(|partner| partner.org.clone()))
    }
}
