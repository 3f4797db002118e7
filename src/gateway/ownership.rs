//! Which records a sender may write: its own (or new ones); another organization's referral, person or
//! consent is never overwritten, while directory resources are shared; and never a consent, which is
//! recorded only through the Consent API, where its custodian is checked.

use super::{Gateway, GatewayError};
use crate::consent::subject;
use crate::store::HeldResources;
use serde_json::Value;

/// Resources that describe organizations and services, not people: many senders' referrals share them
/// (the food bank's Organization is in every referral to it). The consent gate reads them the same way.
const DIRECTORY_TYPES: &[&str] = crate::consent::codes::DIRECTORY_TYPES;

/// Resources a submission may not carry: the consent gate decides from every stored Consent, so a
/// Consent is recorded only with `POST`/`PUT /fhir/Consent` (or from the configured folder), where the
/// custodian of the person's record is checked — never as part of a referral or an upload.
const RECORDED_APART: &[&str] = &["Consent"];

/// Refuse a submission that carries a resource recorded apart ([`RECORDED_APART`]), naming it.
pub(super) fn carries_only_referral_records(bundle: &Value) -> Result<(), GatewayError> {
    for resource in subject::resources(bundle) {
        let (kind, id) = crate::canonical::bundle::type_and_id(resource);
        if RECORDED_APART.contains(&kind) {
            return Err(GatewayError::NotAllowed(format!(
                "{kind}/{id}: a consent is recorded with POST or PUT /fhir/{kind} by the custodian of the person's record, not inside a referral or an upload"
            )));
        }
    }
    Ok(())
}

impl Gateway {
    /// A submission may carry only records that are new or that its sender's organization sent before:
    /// another organization's referral, person or consent is never overwritten (directory resources,
    /// [`DIRECTORY_TYPES`], are shared).
    /// `held`: what the store holds of the bundle's resources, read in the acceptance's transaction.
    pub(super) fn owned_by_sender(
        &self,
        held: &HeldResources,
        bundle: &Value,
        sender_org: &str,
    ) -> Result<(), GatewayError> {
        for resource in subject::resources(bundle) {
            let (kind, id) = crate::canonical::bundle::type_and_id(resource);
            if DIRECTORY_TYPES.contains(&kind) {
                continue;
            }
            if let Some(held) = held.get(kind, id)
                && held
                    .sender_org
                    .as_deref()
                    .is_some_and(|org| org != sender_org)
            {
                return Err(GatewayError::NotAllowed(format!(
                    "{kind}/{id} is held for another organization: a partner may create or update only its own records"
                )));
            }
        }
        Ok(())
    }
}
