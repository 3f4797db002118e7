//! Who performs a referral: a referral that names no performer gets the directory's best
//! HealthcareService for the person, and a named performer resolves to its organization.

use super::routing::needs_of;
use super::{Gateway, GatewayError};
use crate::canonical::bundle;
use crate::config::Route;
use crate::consent::model::{Party, identifier_key};
use crate::consent::subject;
use crate::members::Members;
use serde_json::{Value, json};
use std::collections::HashMap;

/// How many directory services and locations are considered when choosing a performer.
const DIRECTORY_LIMIT: i64 = 10_000;

impl Gateway {
    /// A referral that names no performer, with a need a directory route serves, gets the directory's best
    /// HealthcareService for the person as performer (and Task owner); the service and its organization
    /// travel in the bundle. Without a fitting service the referral is left as it came (and routed by need).
    pub(super) async fn assign_from_directory(
        &self,
        mut bundle: Value,
    ) -> Result<Value, GatewayError> {
        let resources = subject::resources(&bundle);
        let Some(request) = resources
            .iter()
            .find(|r| r["resourceType"] == "ServiceRequest")
        else {
            return Ok(bundle);
        };
        if request["performer"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
        {
            return Ok(bundle);
        }
        let Some(route) = self.directory_route(request) else {
            return Ok(bundle);
        };
        let place = crate::directory::Place::of_patient(patient_of(&resources, request));
        let services = self.stored_bodies("HealthcareService").await?;
        let locations = self.stored_locations().await?;
        let Some(choice) =
            crate::directory::choose(&services, &locations, &route.directory_category, &place)
        else {
            tracing::warn!(need = ?route.need, "no directory service serves this need in the person's area");
            return Ok(bundle);
        };
        tracing::info!(service = %choice.service["id"], coverage = ?choice.coverage, "performer chosen from the directory");
        let mut added = vec![choice.service.clone()];
        if let Some(org) = self.provider_of(choice.service).await? {
            added.push(org);
        }
        assign_performer(&mut bundle, choice.service, added);
        self.check(&bundle)?;
        Ok(bundle)
    }

    /// The first directory route serving one of the ServiceRequest's needs.
    fn directory_route(&self, request: &Value) -> Option<&Route> {
        let needs = needs_of(request);
        self.config.routes.iter().find(|r| {
            !r.directory_category.is_empty()
                && r.need.as_deref().is_some_and(|n| needs.contains(&n))
        })
    }

    async fn stored_bodies(&self, kind: &str) -> Result<Vec<Value>, GatewayError> {
        Ok(self
            .store
            .search(kind, &[], DIRECTORY_LIMIT)
            .await?
            .into_iter()
            .map(|r| r.body)
            .collect())
    }

    /// The directory's Locations by reference (`Location/id`).
    async fn stored_locations(&self) -> Result<HashMap<String, Value>, GatewayError> {
        Ok(self
            .stored_bodies("Location")
            .await?
            .into_iter()
            .map(|l| {
                (
                    format!("Location/{}", l["id"].as_str().unwrap_or_default()),
                    l,
                )
            })
            .collect())
    }

    async fn provider_of(&self, service: &Value) -> Result<Option<Value>, GatewayError> {
        let Some(id) = service
            .at(&["providedBy", "reference"])
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("Organization/"))
        else {
            return Ok(None);
        };
        Ok(self
            .store
            .resource("Organization", id)
            .await?
            .map(|r| r.body))
    }
}

/// The Patient the ServiceRequest's subject names, among the bundle's resources.
fn patient_of<'a>(resources: &[&'a Value], request: &Value) -> Option<&'a Value> {
    let subject = request
        .at(&["subject", "reference"])
        .and_then(Value::as_str);
    resources
        .iter()
        .find(|r| {
            r["resourceType"] == "Patient"
                && Some(format!("Patient/{}", r["id"].as_str().unwrap_or_default()).as_str())
                    == subject
        })
        .copied()
}

/// Make `service` the performer of the bundle's ServiceRequest (and the owner of its Task when it has
/// none), and carry `added` resources in the bundle.
fn assign_performer(bundle: &mut Value, service: &Value, added: Vec<Value>) {
    let reference = json!({
        "reference": format!("HealthcareService/{}", service["id"].as_str().unwrap_or_default()),
        "display": service["name"],
    });
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return;
    };
    for entry in entries.iter_mut() {
        // Checked writes: an entry or resource that is not an object is left alone (validation refuses it).
        let Some(resource) = entry.get_mut("resource").and_then(Value::as_object_mut) else {
            continue;
        };
        match resource.get("resourceType").and_then(Value::as_str) {
            Some("ServiceRequest") => {
                resource.insert("performer".into(), json!([reference.clone()]));
            }
            Some("Task") if !resource.contains_key("owner") => {
                resource.insert("owner".into(), reference.clone());
            }
            _ => {}
        }
    }
    let present: Vec<(Value, Value)> = entries
        .iter()
        .map(|e| {
            (
                e["resource"]["resourceType"].clone(),
                e["resource"]["id"].clone(),
            )
        })
        .collect();
    let missing = (added.into_iter())
        .filter(|r| !present.contains(&(r["resourceType"].clone(), r["id"].clone())));
    entries.extend(missing.map(bundle::entry));
}

/// The performer organization of a ServiceRequest, as `system|value`, resolved in the bundle (through
/// `providedBy` when the performer is a HealthcareService).
pub fn performer_org(bundle: &Value, request: &Value) -> Option<String> {
    let performer = request["performer"].as_array()?.first()?;
    let party = Party::from_reference(performer);
    if let Some(identifier) = party.identifier {
        return Some(identifier);
    }
    let find = |reference: &str| {
        subject::resources(bundle).into_iter().find(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            ) == reference
        })
    };
    let mut found = find(&party.reference?)?;
    if found["resourceType"] == "HealthcareService" {
        found = find(found.at(&["providedBy", "reference"])?.as_str()?)?;
    }
    found["identifier"]
        .as_array()?
        .iter()
        .find_map(identifier_key)
}
