//! What the gateway works out once from a submitted bundle: the referral it is (its key), its content
//! hash (equal means identical), its performer, person, ServiceRequest and Task, and how each resource
//! is indexed.

use super::performer::performer_org;
use super::{Accepted, Arrival};
use crate::consent::subject;
use crate::members::Members;
use crate::store::resources::ResourceWrite;
use crate::store::{HeldResources, ResourceIndex, StoredNow};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the gateway works out once from a submitted bundle.
pub(super) struct Plan {
    /// The referral it is (`ServiceRequest/id`), or its first resource for other bundles.
    pub(super) key: String,
    /// SHA-256 of its resources (sorted, Task and store metadata left out): equal means identical.
    pub(super) content_hash: String,
    pub(super) performer: Option<String>,
    patient: Option<String>,
    sender_org: String,
    service_request: Option<String>,
    pub(super) task: Option<String>,
    /// `Type/id` of each resource and of the referral's Task (which a revision keeps): what deciding it
    /// reads, worked out here, before the group commit's serial path.
    references: Vec<String>,
}

impl Plan {
    pub(super) fn of(bundle: &Value, sender_org: &str) -> Self {
        let resources = subject::resources(bundle);
        let first_of = |kind: &str| {
            resources
                .iter()
                .find(|r| r.get("resourceType").and_then(Value::as_str) == Some(kind))
                .copied()
        };
        let request = first_of("ServiceRequest");
        let id_of = |r: Option<&Value>| {
            r.and_then(|r| r.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let task = id_of(first_of("Task"));
        let mut references: Vec<String> = (resources.iter().copied())
            .map(crate::store::reference_of)
            .collect();
        references.extend(task.as_deref().map(|task| format!("Task/{task}")));
        Self {
            key: request
                .or(resources.first().copied())
                .map(crate::store::reference_of)
                .unwrap_or_default(),
            content_hash: content_hash(&resources),
            performer: request.and_then(|sr| performer_org(bundle, sr)),
            patient: request
                .and_then(|sr| sr.at(&["subject", "reference"]))
                .and_then(Value::as_str)
                .map(str::to_owned),
            sender_org: sender_org.to_owned(),
            service_request: id_of(request),
            task,
            references,
        }
    }

    pub(super) fn request<'a>(&self, bundle: &'a Value) -> Option<&'a Value> {
        subject::resources(bundle)
            .into_iter()
            .find(|r| r.get("resourceType").and_then(Value::as_str) == Some("ServiceRequest"))
    }

    /// `Type/id` of each resource of the bundle, and of the referral's Task (which a revision keeps).
    pub(super) fn references(&self) -> &[String] {
        &self.references
    }

    /// The type and id of each resource of the bundle, and of the referral's Task.
    pub(super) fn keys(&self) -> Vec<(&str, &str)> {
        (self.references.iter())
            .map(|r| r.split_once('/').unwrap_or((r.as_str(), "")))
            .collect()
    }

    pub(super) fn indexed<'b>(&self, bundle: &'b Value) -> Vec<(&'b Value, ResourceIndex)> {
        subject::resources(bundle)
            .into_iter()
            .map(|r| {
                let index = index_for(
                    r,
                    self.patient.clone(),
                    &self.sender_org,
                    self.performer.clone(),
                );
                (r, index)
            })
            .collect()
    }

    pub(super) fn accepted(
        &self,
        message: String,
        arrival: Arrival,
        revision: i64,
        routed: Vec<(String, String)>,
    ) -> Accepted {
        Accepted {
            message,
            arrival,
            revision,
            routed,
            service_request: self.service_request.clone(),
            service_request_stored: None,
            task: self.task.clone(),
        }
    }

    /// Its ServiceRequest as an acceptance that writes `writes` leaves it stored: the last of them that
    /// writes it, else as `held` (unchanged, or a duplicate).
    pub(super) fn stored_request(
        &self,
        held: &HeldResources,
        writes: &[ResourceWrite],
    ) -> Option<Box<StoredNow>> {
        let id = self.service_request.as_deref()?;
        let stored = match writes.iter().rev().find(|w| w.writes("ServiceRequest", id)) {
            Some(write) => StoredNow::Written(write.clone()),
            None => StoredNow::Held(held.get("ServiceRequest", id)?.clone()),
        };
        Some(Box::new(stored))
    }
}

/// SHA-256 over the resources sorted by reference, without the Task (the receiver's to change) and
/// without `meta.versionId` / `meta.lastUpdated` (the store's).
fn content_hash(resources: &[&Value]) -> String {
    let mut kept: Vec<(String, Value)> = resources
        .iter()
        .filter(|r| r.get("resourceType").and_then(Value::as_str) != Some("Task"))
        .map(|r| {
            let mut copy = (*r).clone();
            if let Some(meta) = copy.get_mut("meta").and_then(Value::as_object_mut) {
                meta.remove("versionId");
                meta.remove("lastUpdated");
            }
            (crate::store::reference_of(r), copy)
        })
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    let mut text = Vec::new();
    for (_, resource) in &kept {
        text.clear();
        crate::json_text::write(resource, &mut text);
        hasher.update(&text);
        hasher.update(b"\n");
    }
    format!("{:x}", hasher.finalize())
}

fn index_for(
    resource: &Value,
    patient: Option<String>,
    sender_org: &str,
    performer: Option<String>,
) -> ResourceIndex {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let reference = |pointer: &str| {
        resource
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ResourceIndex {
        patient: match kind {
            "Patient" => Some(format!(
                "Patient/{}",
                resource["id"].as_str().unwrap_or_default()
            )),
            "RelatedPerson" => reference("/patient/reference"),
            _ => patient,
        },
        sender_org: Some(sender_org.to_owned()),
        receiver_org: performer,
        status: resource["status"].as_str().map(str::to_owned),
        focus: reference("/focus/reference"),
    }
}
