//! The Tasks and Organizations the gateway writes itself: the referral built around a ServiceRequest
//! posted on its own (Patient, guardians, Organizations, a new Task), and a revised referral's held Task.

use super::plan::Plan;
use super::{Gateway, GatewayError};
use crate::consent::model::Party;
use crate::members::Members;
use crate::store::HeldResources;
use serde_json::{Value, json};

/// At most this many guardians (RelatedPersons) of a referral's subject are carried with it.
const MAX_GUARDIANS: i64 = 20;

/// A referral the gateway built around a ServiceRequest posted on its own, which it validated as posted:
/// the request is the bundle's first entry ([`Gateway::accept_built`] validates every other one).
pub struct BuiltReferral {
    pub(super) bundle: Value,
}

impl Gateway {
    /// Build the referral around a ServiceRequest posted on its own, once it is valid FHIR (422 with the
    /// issues, at the request's own paths, when not): the Patient and guardians already held, the
    /// performer Organization, and a new referral Task (requested, owned by the performer).
    pub async fn referral_from_request(
        &self,
        mut request: Value,
        sender_org: &str,
    ) -> Result<BuiltReferral, GatewayError> {
        self.check(&request)?;
        let invalid = |e: crate::checked::NotAnObject| GatewayError::Invalid(e.to_string());
        let assigned_here = request["id"].as_str().is_none_or(str::is_empty);
        if assigned_here {
            let id = json!(uuid::Uuid::now_v7().to_string());
            crate::checked::set(&mut request, "ServiceRequest", "id", id).map_err(invalid)?;
        }
        let sr_id = request["id"].as_str().unwrap_or_default().to_owned();
        let task_id = (self.task_id_for(&sr_id, sender_org, assigned_here)).await?;
        // Everything but the request itself, which moves in first once its performer is set.
        let mut others = self.held_for_subject(&request, sender_org).await?;
        let performer = request["performer"]
            .as_array()
            .and_then(|p| p.first())
            .map(Party::from_reference)
            .and_then(|p| p.identifier);
        let performer_ref = performer
            .as_deref()
            .map(|org| organization_for(org, &mut others));
        let requester_ref = organization_for(sender_org, &mut others);
        if let Some(reference) = &performer_ref {
            let performer = json!([{"reference": reference}]);
            crate::checked::set(&mut request, "ServiceRequest", "performer", performer)
                .map_err(invalid)?;
        }
        let task = referral_task(&request, &task_id, requester_ref, performer_ref);
        let mut resources = Vec::with_capacity(others.len() + 2);
        resources.push(request);
        resources.extend(others);
        resources.push(task);
        let resources: Vec<Value> = resources
            .into_iter()
            .map(|r| crate::mapping::path::prune(r).unwrap_or_default())
            .collect();
        // The request first: the entry already validated.
        Ok(BuiltReferral {
            bundle: crate::canonical::bundle::transaction(resources),
        })
    }

    /// The id of the referral Task made for the ServiceRequest `sr_id` ([`referral_task_id`]). A referral
    /// first stored by an earlier onedoor has its Task named by [`legacy_task_id`]; while `sender_org` holds
    /// that Task of this request, a revision keeps it. Only a ServiceRequest whose id the sender chose can
    /// have one (an id assigned here is new), and only a UUID's Task is named differently now. Read before
    /// the group commit's transaction: stored Tasks are never deleted, and no onedoor since makes one under
    /// the earlier id (nodes sharing a store run one version: README, "Several nodes over one PostgreSQL").
    async fn task_id_for(
        &self,
        sr_id: &str,
        sender_org: &str,
        assigned_here: bool,
    ) -> Result<String, GatewayError> {
        let legacy = legacy_task_id(sr_id);
        let Some(task_id) = time_ordered_task_id(sr_id, &legacy) else {
            return Ok(legacy);
        };
        let focus = format!("ServiceRequest/{sr_id}");
        if !assigned_here && (self.store.holds_task_of(&legacy, sender_org, &focus)).await? {
            return Ok(legacy);
        }
        Ok(task_id)
    }

    /// The request's Patient and its guardians (RelatedPersons), as far as this sender itself holds them.
    async fn held_for_subject(
        &self,
        request: &Value,
        sender_org: &str,
    ) -> Result<Vec<Value>, GatewayError> {
        let mut resources = Vec::new();
        let Some(patient) = request
            .at(&["subject", "reference"])
            .and_then(Value::as_str)
        else {
            return Ok(resources);
        };
        // Only what this sender itself holds here: never another organization's record of the person.
        let own = |r: &crate::store::StoredResource| r.sender_org.as_deref() == Some(sender_org);
        let (person, guardians) = match crate::record::ResourceRef::parse(patient) {
            // The person and their guardians in one read.
            Ok(subject) => {
                (self.store)
                    .person_and_related((subject.kind(), subject.id()), patient, MAX_GUARDIANS)
                    .await?
            }
            Err(_) => {
                let filter = [("patient", patient.to_owned())];
                let guardians = self.store.search("RelatedPerson", &filter, MAX_GUARDIANS);
                (None, guardians.await?)
            }
        };
        resources.extend(person.filter(own).map(|p| p.body));
        resources.extend(guardians.into_iter().filter(own).map(|g| g.body));
        Ok(resources)
    }

    /// A new revision keeps the Task as the receiver left it (its status is not reset), with a note that
    /// the referral was revised; the bundle carries that Task.
    pub(super) fn keep_held_task(
        &self,
        held: &HeldResources,
        mut bundle: Value,
        plan: &Plan,
        revision: i64,
    ) -> Result<Value, GatewayError> {
        let Some(task_id) = plan.task.as_deref() else {
            return Ok(bundle);
        };
        let Some(held) = held.get("Task", task_id) else {
            return Ok(bundle);
        };
        let mut task = held.body.clone();
        if revision > 1 {
            note_revision(&mut task, revision);
        }
        if let Some(meta) = task.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
        }
        replace_entry(&mut bundle, "Task", task_id, task);
        Ok(bundle)
    }
}

/// The id of the referral Task of the ServiceRequest `sr_id`: a UUID derived from it, as
/// [`legacy_task_id`] is, but when `sr_id` is itself a UUID its first 48 bits are the ServiceRequest's
/// (UUIDv8). The ids the gateway assigns are time-ordered UUIDs (v7), so a new referral's Task then lands,
/// as its ServiceRequest does, on the last page of each b-tree keyed by resource id instead of on a page of
/// its own in each (BENCHMARKS.md, issue 13 seventeenth round). Any other id: [`legacy_task_id`].
pub fn referral_task_id(sr_id: &str) -> String {
    let legacy = legacy_task_id(sr_id);
    time_ordered_task_id(sr_id, &legacy).unwrap_or(legacy)
}

/// [`referral_task_id`] when `sr_id` is a UUID written as FHIR ids are (36 characters, hyphenated); `legacy`
/// is its [`legacy_task_id`].
fn time_ordered_task_id(sr_id: &str, legacy: &str) -> Option<String> {
    let request = uuid::Uuid::try_parse(sr_id)
        .ok()
        .filter(|_| sr_id.len() == 36)?;
    let mut bytes = *uuid::Uuid::try_parse(legacy).ok()?.as_bytes();
    bytes[..6].copy_from_slice(&request.as_bytes()[..6]);
    Some(uuid::Uuid::new_v8(bytes).hyphenated().to_string())
}

/// The id onedoor gave the referral Task of the ServiceRequest `sr_id` before [`referral_task_id`].
pub fn legacy_task_id(sr_id: &str) -> String {
    crate::canonical::ids::resource_id("urn:onedoor:gateway", "Task", sr_id)
}

/// A new referral Task, `task_id`, for the request: requested, owned by the performer when there is one.
fn referral_task(
    request: &Value,
    task_id: &str,
    requester_ref: String,
    performer_ref: Option<String>,
) -> Value {
    let sr_id = request
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    json!({
        "resourceType": "Task",
        "id": task_id,
        "meta": {"profile": [crate::canonical::SDOHCC_TASK_REFERRAL]},
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill", "display": "Fulfill the focal request"}]},
        "focus": {"reference": format!("ServiceRequest/{sr_id}")},
        "for": request["subject"].clone(),
        "authoredOn": request["authoredOn"].as_str().map(str::to_owned).unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "requester": {"reference": requester_ref},
        "owner": performer_ref.map(|r| json!({"reference": r})).unwrap_or(Value::Null),
    })
}

/// Add a note to a held Task that the referrer sent revision `revision`.
fn note_revision(task: &mut Value, revision: i64) {
    let note = json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "text": format!("The referrer sent revision {revision} of this referral; it was delivered again."),
    });
    match task.get_mut("note").and_then(Value::as_array_mut) {
        Some(notes) => notes.push(note),
        None => {
            if let Some(object) = task.as_object_mut() {
                object.insert("note".into(), json!([note]));
            }
        }
    }
}

/// Replace the resource `kind/id` in a bundle's entries.
fn replace_entry(bundle: &mut Value, kind: &str, id: &str, resource: Value) {
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return;
    };
    for entry in entries {
        let matches = entry.get("resource").is_some_and(|r| {
            r.get("resourceType").and_then(Value::as_str) == Some(kind)
                && r.get("id").and_then(Value::as_str) == Some(id)
        });
        if matches && let Some(object) = entry.as_object_mut() {
            object.insert("resource".into(), resource.clone());
        }
    }
}

/// Find or add the Organization for `system|value`; returns its reference.
fn organization_for(org: &str, resources: &mut Vec<Value>) -> String {
    let parsed = crate::record::OrgRef::parse(org).ok();
    let (system, value) = parsed
        .as_ref()
        .map_or(("", org), |o| (o.system(), o.value()));
    let id = crate::canonical::ids::resource_id(system, "Organization", value);
    if !resources
        .iter()
        .any(|r| r["resourceType"] == "Organization" && r["id"] == id.as_str())
    {
        resources.push(json!({"resourceType": "Organization", "id": id, "identifier": [{"system": system, "value": value}], "name": value}));
    }
    format!("Organization/{id}")
}
