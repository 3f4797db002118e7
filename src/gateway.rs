//! The gateway's core, shared by every way a referral arrives (FHIR REST, transaction Bundle, ingest):
//! validate, index the resources, route by performer (or need), ask the consent gate for each destination
//! (audited), and commit the message with its outbox rows in one transaction — before anything is
//! acknowledged. Also the closed loop: a receiver's Task status change, checked against the referral
//! workflow, stored, and notified to the referrer.

use crate::canonical::bundle;
use crate::canonical::task_status::{Actor, TaskStatus};
use crate::config::Config;
use crate::consent::model::{Party, identifier_key};
use crate::consent::{ConsentGate, Disclosing, subject};
use crate::directory;
use crate::store::{Message, ResourceIndex, Store, StoreError};
use crate::validation::Validator;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Why a submission or an update is refused.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The resource is not valid FHIR R4 / SDOHCC.
    #[error("{0}")]
    Invalid(String),
    /// A workflow rule forbids it (Task status change).
    #[error("{0}")]
    Conflict(String),
    /// Not found, or not visible to this partner (the two are indistinguishable on purpose).
    #[error("not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The consent gate could not audit.
    #[error("consent gate: {0}")]
    Consent(String),
}

/// What happened to an accepted submission.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// The stored message.
    pub message: String,
    /// False when the same source record was already accepted (idempotent resubmission).
    pub created: bool,
    /// Where it goes and whether consent let it (`pending`) or not (`withheld`).
    pub routed: Vec<(String, String)>,
    /// The ServiceRequest id, when the submission is a referral.
    pub service_request: Option<String>,
    /// The Task id.
    pub task: Option<String>,
}

/// The shared gateway state.
pub struct Gateway {
    /// The store.
    pub store: Store,
    /// The configuration.
    pub config: Config,
    /// The consent gate (one writer of the audit chain at a time).
    pub gate: Mutex<ConsentGate>,
    /// Held while a `niem` ingest reads, counts and saves the repeat-incident history (one at a time).
    pub history_lock: Arc<Mutex<()>>,
    validator: Validator,
}

impl Gateway {
    /// Assemble the gateway.
    pub fn new(store: Store, config: Config, gate: ConsentGate) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            gate: Mutex::new(gate),
            history_lock: Arc::new(Mutex::new(())),
            validator: Validator::new(),
        })
    }

    /// Validate a record; the error lists the issues with their paths.
    pub fn check(&self, record: &Value) -> Result<(), GatewayError> {
        let issues = self.validator.validate(record);
        if issues.is_empty() {
            return Ok(());
        }
        Err(GatewayError::Invalid(
            issues
                .iter()
                .take(10)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ))
    }

    /// Accept a referral bundle (or any bundle) from `source`, sent on behalf of `sender_org`.
    pub async fn accept(
        &self,
        source: &str,
        sender_org: &str,
        bundle: Value,
    ) -> Result<Accepted, GatewayError> {
        self.check(&bundle)?;
        let bundle = self.assign_from_directory(bundle).await?;
        let resources: Vec<Value> = subject::resources(&bundle).into_iter().cloned().collect();
        let request = resources
            .iter()
            .find(|r| r["resourceType"] == "ServiceRequest");
        let task = resources.iter().find(|r| r["resourceType"] == "Task");
        let performer = request.and_then(|sr| performer_org(&bundle, sr));
        let patient = request
            .and_then(|sr| sr.pointer("/subject/reference"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let indexed: Vec<(Value, ResourceIndex)> = resources
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    index_for(r, patient.clone(), sender_org, performer.clone()),
                )
            })
            .collect();
        let destinations = self.routes_for(performer.as_deref(), request);
        let mut routed = Vec::new();
        for destination in destinations {
            let status = self.decide(&bundle, &destination).await?;
            routed.push((destination, status));
        }
        let key = request
            .or(resources.first())
            .map(|r| {
                format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap_or_default(),
                    r["id"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let message = Message {
            id: uuid::Uuid::new_v4().to_string(),
            source: source.to_owned(),
            source_key: key,
            body: bundle,
        };
        let outbox: Vec<(String, String, String)> = routed
            .iter()
            .map(|(d, s)| ("referral".to_owned(), d.clone(), s.clone()))
            .collect();
        // One transaction: the resources, the message and its deliveries are all stored, or none is.
        let (id, created) = self
            .store
            .accept_message(&message, &indexed, &outbox)
            .await?;
        if created {
            metrics::counter!("onedoor_messages_accepted_total").increment(1);
        }
        tracing::info!(message = %id, created, destinations = routed.len(), "message accepted");
        Ok(Accepted {
            message: id,
            created,
            routed: if created { routed } else { Vec::new() },
            service_request: request.and_then(|r| r["id"].as_str()).map(str::to_owned),
            task: task.and_then(|r| r["id"].as_str()).map(str::to_owned),
        })
    }

    /// The destinations a referral goes to. A directory route sends it to the destination of the chosen
    /// service's organization when one is configured, else to its own destination.
    fn routes_for(&self, performer: Option<&str>, request: Option<&Value>) -> Vec<String> {
        let needs = request.map(needs_of).unwrap_or_default();
        let performer_destination = performer.and_then(|p| {
            self.config
                .destinations
                .iter()
                .find(|(_, d)| d.org == p)
                .map(|(name, _)| name.clone())
        });
        let mut out: Vec<String> = self
            .config
            .routes
            .iter()
            .filter(|r| {
                r.performer.as_deref().is_some_and(|p| Some(p) == performer)
                    || r.need.as_deref().is_some_and(|n| needs.contains(&n))
            })
            .map(
                |r| match (&performer_destination, r.directory_category.is_empty()) {
                    (Some(own), false) => own.clone(),
                    _ => r.destination.clone(),
                },
            )
            .collect();
        let mut seen = std::collections::HashSet::new();
        out.retain(|destination| seen.insert(destination.clone()));
        out
    }

    /// A referral that names no performer, with a need a directory route serves, gets the directory's best
    /// HealthcareService for the person as performer (and Task owner); the service and its organization
    /// travel in the bundle. Without a fitting service the referral is left as it came (and routed by need).
    async fn assign_from_directory(&self, mut bundle: Value) -> Result<Value, GatewayError> {
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
        let needs = needs_of(request);
        let Some(route) = self.config.routes.iter().find(|r| {
            !r.directory_category.is_empty()
                && r.need.as_deref().is_some_and(|n| needs.contains(&n))
        }) else {
            return Ok(bundle);
        };
        let subject = request
            .pointer("/subject/reference")
            .and_then(Value::as_str);
        let patient = resources
            .iter()
            .find(|r| {
                r["resourceType"] == "Patient"
                    && Some(format!("Patient/{}", r["id"].as_str().unwrap_or_default()).as_str())
                        == subject
            })
            .copied();
        let place = directory::Place::of_patient(patient);
        let services = self.stored_bodies("HealthcareService").await?;
        let locations = self
            .stored_bodies("Location")
            .await?
            .into_iter()
            .map(|l| {
                (
                    format!("Location/{}", l["id"].as_str().unwrap_or_default()),
                    l,
                )
            })
            .collect();
        let Some(choice) =
            directory::choose(&services, &locations, &route.directory_category, &place)
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

    async fn stored_bodies(&self, kind: &str) -> Result<Vec<Value>, GatewayError> {
        Ok(self
            .store
            .search(kind, &[], DIRECTORY_LIMIT)
            .await?
            .into_iter()
            .map(|r| r.body)
            .collect())
    }

    async fn provider_of(&self, service: &Value) -> Result<Option<Value>, GatewayError> {
        let Some(id) = service
            .pointer("/providedBy/reference")
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

    /// The consent decision for a destination now (audited): `pending` or `withheld`.
    async fn decide(&self, record: &Value, destination: &str) -> Result<String, GatewayError> {
        let Some(target) = self.config.destinations.get(destination) else {
            return Ok("withheld".into());
        };
        let request = Disclosing {
            recipient: target.org.clone(),
            purpose: target.purpose.clone(),
            source: None,
        };
        let decision = self
            .gate
            .lock()
            .await
            .decide(record, &request, chrono::Utc::now().fixed_offset())
            .map_err(|e| GatewayError::Consent(e.to_string()))?;
        let outcome = format!("{:?}", decision.outcome).to_lowercase();
        metrics::counter!("onedoor_consent_decisions_total", "outcome" => outcome).increment(1);
        Ok(if decision.permits() {
            "pending".into()
        } else {
            "withheld".into()
        })
    }

    /// Build the referral around a ServiceRequest posted on its own: the Patient and guardians already
    /// held, the performer Organization, and a new referral Task (requested, owned by the performer).
    pub async fn referral_from_request(
        &self,
        mut request: Value,
        sender_org: &str,
    ) -> Result<Value, GatewayError> {
        if request["id"].as_str().is_none_or(str::is_empty) {
            request["id"] = json!(uuid::Uuid::new_v4().to_string());
        }
        let sr_id = request["id"].as_str().unwrap_or_default().to_owned();
        let mut resources = vec![request.clone()];
        if let Some(patient) = request
            .pointer("/subject/reference")
            .and_then(Value::as_str)
        {
            let (kind, id) = patient.split_once('/').unwrap_or_default();
            if let Some(found) = self.store.resource(kind, id).await? {
                resources.push(found.body);
            }
            for guardian in self
                .store
                .search("RelatedPerson", &[("patient", patient.to_owned())], 20)
                .await?
            {
                resources.push(guardian.body);
            }
        }
        let performer = request["performer"]
            .as_array()
            .and_then(|p| p.first())
            .map(Party::from_reference)
            .and_then(|p| p.identifier);
        let performer_ref = performer
            .as_deref()
            .map(|org| organization_for(org, &mut resources));
        let requester_ref = organization_for(sender_org, &mut resources);
        if let Some(reference) = &performer_ref {
            request["performer"] = json!([{"reference": reference}]);
            resources[0] = request.clone();
        }
        resources.push(json!({
            "resourceType": "Task",
            "id": crate::canonical::ids::resource_id("urn:onedoor:gateway", "Task", &sr_id),
            "meta": {"profile": [crate::canonical::SDOHCC_TASK_REFERRAL]},
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill", "display": "Fulfill the focal request"}]},
            "focus": {"reference": format!("ServiceRequest/{sr_id}")},
            "for": request["subject"].clone(),
            "authoredOn": request["authoredOn"].as_str().map(str::to_owned).unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "requester": {"reference": requester_ref},
            "owner": performer_ref.map(|r| json!({"reference": r})).unwrap_or(Value::Null),
        }));
        let resources: Vec<Value> = resources
            .into_iter()
            .map(|r| crate::mapping::path::prune(r).unwrap_or_default())
            .collect();
        Ok(crate::canonical::bundle::transaction(&resources))
    }

    /// A Task status change by a partner (the receiver progresses it, the requester may cancel), checked
    /// against the referral workflow; the referrer is notified.
    pub async fn update_task(
        &self,
        partner_org: &str,
        id: &str,
        mut task: Value,
    ) -> Result<Value, GatewayError> {
        let stored = self
            .store
            .resource("Task", id)
            .await?
            .ok_or(GatewayError::NotFound)?;
        let actor = if stored.receiver_org.as_deref() == Some(partner_org) {
            Actor::Receiver
        } else if stored.sender_org.as_deref() == Some(partner_org) {
            Actor::Requester
        } else {
            return Err(GatewayError::NotFound);
        };
        task["id"] = json!(id);
        self.check(&task)?;
        let old: TaskStatus = stored.body["status"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(GatewayError::Invalid)?;
        let new: TaskStatus = task["status"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(GatewayError::Invalid)?;
        if old != new {
            let has_reason = task
                .pointer("/statusReason/text")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.trim().is_empty());
            old.transition(new, actor, has_reason)
                .map_err(|e| GatewayError::Conflict(e.to_string()))?;
        }
        for fixed in ["focus", "for", "requester", "owner", "intent", "code"] {
            if task.get(fixed) != stored.body.get(fixed) {
                return Err(GatewayError::Conflict(format!(
                    "Task.{fixed} cannot change (only status, statusReason, businessStatus, note and output may)"
                )));
            }
        }
        let index = ResourceIndex {
            patient: task
                .pointer("/for/reference")
                .and_then(Value::as_str)
                .map(str::to_owned),
            sender_org: stored.sender_org.clone(),
            receiver_org: stored.receiver_org.clone(),
            status: Some(new.code().to_owned()),
            focus: task
                .pointer("/focus/reference")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let version = self.store.put_resource(&task, &index).await?;
        tracing::info!(task = %id, status = %new, "task status changed");
        if old != new {
            self.notify_referrer(stored.sender_org.as_deref(), id, version)
                .await?;
        }
        Ok(self
            .store
            .resource("Task", id)
            .await?
            .map(|r| r.body)
            .unwrap_or(task))
    }

    /// Queue an id-only notification (Gravity subscription style) for the partners acting for the
    /// referrer.
    async fn notify_referrer(
        &self,
        org: Option<&str>,
        task_id: &str,
        version: i64,
    ) -> Result<(), GatewayError> {
        let Some(org) = org else { return Ok(()) };
        for (name, _) in self
            .config
            .partners
            .iter()
            .filter(|(_, p)| p.org == org && p.notify_url.is_some())
        {
            let body = notification(&self.config.server.base_url, task_id, version);
            let message = Message {
                id: uuid::Uuid::new_v4().to_string(),
                source: "notification".into(),
                source_key: format!("Task/{task_id}/_history/{version}/{name}"),
                body,
            };
            self.store
                .accept_message(
                    &message,
                    &[],
                    &[(
                        "notification".to_owned(),
                        name.clone(),
                        "pending".to_owned(),
                    )],
                )
                .await?;
        }
        Ok(())
    }
}

/// The id-only notification of a Task change: a `history` Bundle whose first entry is the
/// SubscriptionStatus-style Parameters and whose second names the Task, without its content.
pub fn notification(base_url: &str, task_id: &str, version: i64) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "history",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "entry": [
            {"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "type", "valueCode": "event-notification"},
                    {"name": "notification-event", "part": [
                        {"name": "event-number", "valueString": version.to_string()},
                        {"name": "focus", "valueReference": {"reference": format!("Task/{task_id}")}}
                    ]}
                ]
            }, "request": {"method": "GET", "url": "$status"}, "response": {"status": "200"}},
            {"fullUrl": format!("{base_url}/fhir/Task/{task_id}"), "request": {"method": "PUT", "url": format!("Task/{task_id}")}, "response": {"status": "200"}}
        ]
    })
}

/// How many directory services and locations are considered when choosing a performer.
const DIRECTORY_LIMIT: i64 = 10_000;

/// The SDOH need codes of a ServiceRequest (its category codings).
fn needs_of(request: &Value) -> Vec<&str> {
    request["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .filter_map(|c| c["code"].as_str())
        .collect()
}

/// Make `service` the performer of the bundle's ServiceRequest (and the owner of its Task when it has
/// none), and carry `added` resources in the bundle.
fn assign_performer(bundle: &mut Value, service: &Value, added: Vec<Value>) {
    let reference = json!({
        "reference": format!("HealthcareService/{}", service["id"].as_str().unwrap_or_default()),
        "display": service["name"],
    });
    let Some(entries) = bundle["entry"].as_array_mut() else {
        return;
    };
    for entry in entries.iter_mut() {
        let resource = &mut entry["resource"];
        match resource["resourceType"].as_str() {
            Some("ServiceRequest") => resource["performer"] = json!([reference.clone()]),
            Some("Task") if resource.get("owner").is_none() => {
                resource["owner"] = reference.clone()
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
    let missing: Vec<Value> = added
        .into_iter()
        .filter(|r| !present.contains(&(r["resourceType"].clone(), r["id"].clone())))
        .collect();
    if let Some(new_entries) = bundle::transaction(&missing)["entry"].as_array() {
        entries.extend(new_entries.iter().cloned());
    }
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
        found = find(found.pointer("/providedBy/reference")?.as_str()?)?;
    }
    found["identifier"]
        .as_array()?
        .iter()
        .find_map(identifier_key)
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

/// Find or add the Organization for `system|value`; returns its reference.
fn organization_for(org: &str, resources: &mut Vec<Value>) -> String {
    let (system, value) = org.split_once('|').unwrap_or(("", org));
    let id = crate::canonical::ids::resource_id(system, "Organization", value);
    if !resources
        .iter()
        .any(|r| r["resourceType"] == "Organization" && r["id"] == id.as_str())
    {
        resources.push(json!({"resourceType": "Organization", "id": id, "identifier": [{"system": system, "value": value}], "name": value}));
    }
    format!("Organization/{id}")
}
