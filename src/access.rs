//! What a partner may read (DESIGN.md section 13): what its own organization sent, and of everything else
//! only what the consent gate releases to it now.
//!
//! A receiving agency reads a referral's resources through the gate, not from the store: the newest
//! revision delivered to one of its destinations is decided again (a revocation stops reads at once),
//! redacted as decided, and the read is audited as a disclosure. A resource of a referral that was withheld
//! from it, or that the gate withholds now, does not exist for it (404, no search hit, no count). A Task is
//! read as it stands now (the receiver's status changes), provided the released referral carries it.

use crate::consent::audit::EntryKind;
use crate::consent::{Released, gate, subject};
use crate::gateway::{Gateway, GatewayError};
use crate::store::StoredResource;
use serde_json::Value;

/// Who reads: the organization a partner acts for, and the organizations it is custodian for.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The partner's name.
    pub partner: String,
    /// The organization it acts for (`system|value`).
    pub org: String,
    /// Its own organization and those it records consents for (`custodian_for`).
    pub custodian_of: Vec<String>,
}

impl Reader {
    /// The reader for a configured partner.
    pub fn of(gateway: &Gateway, partner: &str, org: &str) -> Self {
        let mut custodian_of = vec![org.to_owned()];
        if let Some(config) = gateway.config.partners.get(partner) {
            custodian_of.extend(config.custodian_for.iter().cloned());
        }
        Self {
            partner: partner.to_owned(),
            org: org.to_owned(),
            custodian_of,
        }
    }

    /// Whether it sent this resource (or is custodian of the consent).
    pub fn sent(&self, resource: &StoredResource) -> bool {
        resource
            .sender_org
            .as_deref()
            .is_some_and(|org| self.custodian_of.iter().any(|o| o == org))
    }
}

/// A resource as `reader` may see it, or `None` (not found, or not visible: the same to the caller).
pub async fn read(
    gateway: &Gateway,
    reader: &Reader,
    kind: &str,
    id: &str,
) -> Result<Option<Value>, GatewayError> {
    let Some(stored) = gateway.store.resource(kind, id).await? else {
        return Ok(None);
    };
    visible(gateway, reader, stored).await
}

/// What `reader` may see of a stored resource.
pub async fn visible(
    gateway: &Gateway,
    reader: &Reader,
    stored: StoredResource,
) -> Result<Option<Value>, GatewayError> {
    if reader.sent(&stored) {
        return Ok(Some(stored.body));
    }
    let Some(released) = released_copy(gateway, reader, &stored, Recording::Disclosure).await?
    else {
        return Ok(None);
    };
    Ok(Some(if stored.resource_type == "Task" {
        stored.body
    } else {
        released
    }))
}

/// Whether the resource reaches `reader` through the gate now (the receiver of a Task, for instance).
pub async fn released_to(
    gateway: &Gateway,
    reader: &Reader,
    stored: &StoredResource,
) -> Result<bool, GatewayError> {
    Ok(
        released_copy(gateway, reader, stored, Recording::Disclosure)
            .await?
            .is_some(),
    )
}

/// Whether `reader` may see the resource now, decided as a read is but neither audited nor recorded as a
/// disclosure: nothing is handed over (a search counting its `total` before it reads its page).
pub async fn may_see(
    gateway: &Gateway,
    reader: &Reader,
    stored: &StoredResource,
) -> Result<bool, GatewayError> {
    if reader.sent(stored) {
        return Ok(true);
    }
    Ok(released_copy(gateway, reader, stored, Recording::Nothing)
        .await?
        .is_some())
}

/// What a read-time decision leaves in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recording {
    /// The decision is audited and a release recorded as a disclosure: the reader gets the data.
    Disclosure,
    /// Nothing: the decision only tells whether the reader could get the data.
    Nothing,
}

/// The released copy of `stored` in the newest revision delivered to one of the reader's destinations,
/// decided again now and audited as a disclosure.
async fn released_copy(
    gateway: &Gateway,
    reader: &Reader,
    stored: &StoredResource,
    recording: Recording,
) -> Result<Option<Value>, GatewayError> {
    let destinations: Vec<String> = gateway
        .config
        .destinations
        .iter()
        .filter(|(_, d)| d.org == reader.org)
        .map(|(name, _)| name.clone())
        .collect();
    let store = &gateway.store;
    let Some((message_id, destination)) = store
        .delivered_with(&stored.resource_type, &stored.id, &destinations)
        .await?
    else {
        return Ok(None);
    };
    let Some(message) = store.message(&message_id).await? else {
        return Ok(None);
    };
    let source = gateway.source_of(&message).await?;
    let Some(request) = gateway.disclosing_to(&destination, source.as_deref()) else {
        return Ok(None);
    };
    let decided = match recording {
        Recording::Disclosure => decide_and_audit(gateway, &message.body, request).await?,
        Recording::Nothing => decide_only(gateway, &message.body, request).await?,
    };
    let Some(released) = decided else {
        return Ok(None);
    };
    Ok(subject::resources(released.record())
        .into_iter()
        .find(|r| {
            crate::canonical::bundle::type_and_id(r)
                == (stored.resource_type.as_str(), stored.id.as_str())
        })
        .cloned())
}

/// The read-time decision: audited, and when it releases, recorded as a disclosure (the reader has it).
async fn decide_and_audit(
    gateway: &Gateway,
    record: &Value,
    request: crate::consent::Disclosing,
) -> Result<Option<Released<Value>>, GatewayError> {
    let store = &gateway.store;
    let now = chrono::Utc::now().fixed_offset();
    let mut tx = store.begin().await?;
    let mut head = store.lock_chain(&mut tx).await?;
    let outcome = gateway
        .with_gate(&mut tx, |gate| {
            gate.release_for_delivery(record, request.clone(), now)
        })
        .await?;
    let released = match outcome {
        Ok(released) => {
            let entry = gate::audit_entry(released.decision(), &request, now)
                .for_delivery(EntryKind::Disclosed, "read");
            store
                .record_disclosure(&mut tx, None, released.disclosure())
                .await?;
            store.append_audit(&mut tx, &mut head, vec![entry]).await?;
            Some(released)
        }
        Err(crate::consent::Withheld::Denied(decision)) => {
            let entry = gate::audit_entry(&decision, &request, now);
            store.append_audit(&mut tx, &mut head, vec![entry]).await?;
            None
        }
        Err(_) => None,
    };
    tx.commit().await?;
    Ok(released)
}

/// The read-time decision without a trace: nothing is written (the transaction only reads the consent state).
async fn decide_only(
    gateway: &Gateway,
    record: &Value,
    request: crate::consent::Disclosing,
) -> Result<Option<Released<Value>>, GatewayError> {
    let now = chrono::Utc::now().fixed_offset();
    let mut tx = gateway.store.begin().await?;
    let outcome = gateway
        .with_gate(&mut tx, |gate| {
            gate.release_for_delivery(record, request, now)
        })
        .await?;
    tx.commit().await?;
    Ok(outcome.ok())
}

/// Whether the reader's organization (or one it is custodian for) holds a record of the person: an
/// identifier of one of its sources' systems, or the Patient it sent, found by reference or identifier.
pub async fn holds_person(
    gateway: &Gateway,
    reader: &Reader,
    person: &crate::consent::model::Party,
) -> Result<bool, GatewayError> {
    if let Some(person) = person
        .reference
        .as_deref()
        .and_then(|r| crate::record::ResourceRef::parse(r).ok())
        && let Some(stored) = gateway.store.resource(person.kind(), person.id()).await?
    {
        return Ok(reader.sent(&stored));
    }
    let Some(identifier) = person.identifier.as_deref() else {
        return Ok(false);
    };
    if identified_by_own_source(gateway, reader, identifier) {
        return Ok(true);
    }
    for org in &reader.custodian_of {
        let patients = gateway
            .store
            .search("Patient", &[("sender_org", org.clone())], PERSON_SCAN_LIMIT)
            .await?;
        let named = |p: &StoredResource| {
            p.body
                .get("identifier")
                .and_then(Value::as_array)
                .is_some_and(|ids| {
                    ids.iter()
                        .filter_map(crate::consent::model::identifier_key)
                        .any(|key| key == identifier)
                })
        };
        if patients.iter().any(named) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the identifier (`system|value`) is one of the partner's own source systems' (the district's
/// student ids, for the district's SIS): it holds that person's record whether or not it sent it yet.
fn identified_by_own_source(gateway: &Gateway, reader: &Reader, identifier: &str) -> bool {
    let Some((system, _)) = identifier.rsplit_once('|') else {
        return false;
    };
    let Some(partner) = gateway.config.partners.get(&reader.partner) else {
        return false;
    };
    partner
        .sources
        .iter()
        .filter_map(|name| gateway.config.sources.get(name))
        .filter(|source| source.org.as_deref().is_none_or(|org| org == reader.org))
        .filter_map(|source| source.source_system.as_deref())
        .any(|own| system == own || system.starts_with(&format!("{own}/")))
}

/// How many of an organization's Patients are looked through for an identifier.
const PERSON_SCAN_LIMIT: i64 = 100_000;
