//! What a destination is disclosed: who it discloses to and for what, which organization a message came
//! from, and the consent decision (audited) for each destination of a referral.

use super::{Gateway, GatewayError};
use crate::consent::audit::AuditEntry;
use crate::consent::{Disclosing, gate};
use crate::store::{StoreError, WriteTx};
use serde_json::Value;

/// Each destination with `pending` (consent lets it) or `withheld`, and the audit entries recording why.
pub(super) type Decisions = (Vec<(String, String)>, Vec<AuditEntry>);

impl Gateway {
    /// The consent decision for each destination, and the audit entries to record with them; the source
    /// is the sending partner's organization.
    pub(super) async fn decide_all(
        &self,
        tx: &mut WriteTx<'_>,
        record: &Value,
        destinations: &[String],
        sender_org: &str,
    ) -> Result<Decisions, GatewayError> {
        let now = chrono::Utc::now().fixed_offset();
        let requests: Vec<(String, Option<Disclosing>)> = destinations
            .iter()
            .map(|name| (name.clone(), self.disclosing_to(name, Some(sender_org))))
            .collect();
        self.with_gate(tx, |gate| {
            let mut routed = Vec::new();
            let mut entries = Vec::new();
            for (name, request) in &requests {
                let Some(request) = request else {
                    routed.push((name.clone(), "withheld".to_owned()));
                    continue;
                };
                let decision = gate.decision(record, request, now);
                let outcome = format!("{:?}", decision.outcome).to_lowercase();
                metrics::counter!("onedoor_consent_decisions_total", "outcome" => outcome)
                    .increment(1);
                let status = if decision.permits() {
                    "pending"
                } else {
                    "withheld"
                };
                entries.push(gate::audit_entry(&decision, request, now));
                routed.push((name.clone(), status.to_owned()));
            }
            (routed, entries)
        })
        .await
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
