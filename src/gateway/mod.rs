//! The gateway's core, shared by every way a referral arrives (FHIR REST, transaction Bundle, ingest):
//! validate, index the resources, route by performer (or need), ask the consent gate for each destination
//! (audited), and commit the message with its outbox rows in one transaction — before anything is
//! acknowledged. Also the closed loop: a receiver's Task status change, checked against the referral
//! workflow, stored, and notified to the referrer.

use crate::canonical::bundle;
use crate::canonical::task_status::{Actor, TaskStatus};
use crate::config::Config;
use crate::consent::model::{Party, identifier_key};
use crate::consent::{ConsentGate, Disclosing, Registry, gate, model, subject};
use crate::directory;
use crate::store::consents::StateVersions;
use crate::store::jobs::ClaimedJob;
use crate::store::messages::NewDelivery;
use crate::store::{
    DeliveryKind, DeliveryStatus, Message, ResourceIndex, Store, StoreError, WriteTx,
};
use crate::validation::Validator;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
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
    /// The consent gate could not decide.
    #[error("consent gate: {0}")]
    Consent(String),
    /// The caller may see this but not do it.
    #[error("{0}")]
    NotAllowed(String),
}

/// What an accepted submission was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    /// A referral (or record) not held before.
    New,
    /// A changed copy of a held one: stored as its next revision and delivered again.
    Updated,
    /// An identical copy of a held one: nothing stored, nothing delivered.
    Duplicate,
}

/// What happened to an accepted submission.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// The stored message (the new revision, or the one held when a duplicate).
    pub message: String,
    /// New, updated or duplicate.
    pub arrival: Arrival,
    /// The referral's revision (1, 2...).
    pub revision: i64,
    /// Where it goes and whether consent let it (`pending`) or not (`withheld`).
    pub routed: Vec<(String, String)>,
    /// The ServiceRequest id, when the submission is a referral.
    pub service_request: Option<String>,
    /// The Task id.
    pub task: Option<String>,
}

impl Accepted {
    /// Whether something new was stored (a new referral or a new revision).
    pub fn created(&self) -> bool {
        self.arrival != Arrival::Duplicate
    }
}

/// A job's place, advanced in the transaction that stores each of its records.
pub struct JobCursor {
    /// The job as claimed, with its counts so far.
    pub job: ClaimedJob,
    /// The node holding it.
    pub node: String,
    /// Its lease, extended at each record.
    pub lease_ms: i64,
}

/// The consent registry and legal bases this node decided from last, with the store's counters they
/// were loaded at. Every decision reads the counters in its own transaction and reloads when another
/// node (or the CLI) changed consents or bases.
struct ConsentState {
    versions: Option<StateVersions>,
    gate: ConsentGate,
}

/// The shared gateway state.
pub struct Gateway {
    /// The store.
    pub store: Store,
    /// The configuration.
    pub config: Config,
    /// This node's name in claims (jobs).
    pub node: String,
    /// Wakes the job runner when an upload is stored.
    pub jobs_waiting: tokio::sync::Notify,
    consents: Mutex<ConsentState>,
    /// Held while a `niem` ingest reads, counts and saves the repeat-incident history (one at a time).
    pub history_lock: Arc<Mutex<()>>,
    validator: Validator,
}

impl Gateway {
    /// Assemble the gateway.
    pub fn new(store: Store, config: Config) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            node: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            jobs_waiting: tokio::sync::Notify::new(),
            consents: Mutex::new(ConsentState {
                versions: None,
                gate: ConsentGate::new(Registry::new(), Vec::new(), None),
            }),
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

    /// Run `decide` with the consent gate as the store has it now: the counters are read inside `tx`, and
    /// consents and bases reloaded (inside `tx`) when another node changed them since this node last
    /// looked.
    pub async fn with_gate<T>(
        &self,
        tx: &mut WriteTx<'_>,
        decide: impl FnOnce(&ConsentGate) -> T,
    ) -> Result<T, GatewayError> {
        let versions = self.store.state_versions(tx).await?;
        let mut state = self.consents.lock().await;
        if state.versions != Some(versions) {
            state.gate = self.load_gate(tx).await?;
            state.versions = Some(versions);
            tracing::debug!(
                consents = versions.consents,
                bases = versions.bases,
                "consent state reloaded from the store"
            );
        }
        Ok(decide(&state.gate))
    }

    async fn load_gate(&self, tx: &mut WriteTx<'_>) -> Result<ConsentGate, GatewayError> {
        let mut registry = Registry::new();
        for resource in self.store.consent_resources(tx).await? {
            match model::parse(&resource) {
                Ok(consent) => registry.upsert(consent),
                Err(problems) => {
                    let id = crate::store::reference_of(&resource);
                    tracing::warn!(consent = %id, problems = problems.len(), "a stored consent cannot be read and permits nothing");
                }
            }
        }
        let bases = self.store.legal_bases(tx).await?;
        Ok(ConsentGate::new(registry, bases, None).with_policy(self.config.consent_policy()))
    }

    /// Accept a referral bundle (or any bundle) from `source`, sent on behalf of `sender_org`.
    pub async fn accept(
        &self,
        source: &str,
        sender_org: &str,
        bundle: Value,
    ) -> Result<Accepted, GatewayError> {
        self.accept_for_job(source, sender_org, bundle, None).await
    }

    /// Accept a bundle; with a job cursor, the job advances in the same transaction.
    ///
    /// One referral is one referral whatever path it comes by: its key is its ServiceRequest (whose id the
    /// mappings derive from the source system and record id). An identical copy is a duplicate; a changed
    /// copy is the next revision, decided again and delivered to every destination that had the earlier
    /// one as well as to the current routes; the Task keeps its status and its history shows the revision.
    pub async fn accept_for_job(
        &self,
        source: &str,
        sender_org: &str,
        bundle: Value,
        job: Option<&mut JobCursor>,
    ) -> Result<Accepted, GatewayError> {
        self.check(&bundle)?;
        let bundle = self.assign_from_directory(bundle).await?;
        let plan = Plan::of(&bundle, sender_org);
        let mut tx = self.store.begin().await?;
        let mut head = self.store.lock_chain(&mut tx).await?;
        self.owned_by_sender(&mut tx, &bundle, sender_org).await?;
        let latest = self.store.latest_revision(&mut tx, &plan.key).await?;
        let (arrival, revision) = match &latest {
            Some(held) if held.content_hash == plan.content_hash => {
                (Arrival::Duplicate, held.revision)
            }
            Some(held) => (Arrival::Updated, held.revision + 1),
            None => (Arrival::New, 1),
        };
        if arrival == Arrival::Duplicate {
            advance(&self.store, &mut tx, job, arrival).await?;
            tx.commit().await?;
            return Ok(plan.accepted(
                latest.map(|l| l.id).unwrap_or_default(),
                arrival,
                revision,
                Vec::new(),
            ));
        }
        let mut destinations = self.routes_for(plan.performer.as_deref(), plan.request(&bundle));
        if arrival == Arrival::Updated {
            for earlier in self.store.earlier_recipients(&mut tx, &plan.key).await? {
                if !destinations.contains(&earlier) {
                    destinations.push(earlier);
                }
            }
        }
        let body = self
            .keep_held_task(&mut tx, bundle, &plan, revision)
            .await?;
        let (routed, entries) = self
            .decide_all(&mut tx, &body, &destinations, sender_org)
            .await?;
        self.store.append_audit(&mut tx, &mut head, entries).await?;
        for (resource, index) in plan.indexed(&body) {
            self.store
                .upsert_resource(&mut tx, &resource, &index)
                .await?;
        }
        let message = Message {
            id: uuid::Uuid::new_v4().to_string(),
            source: source.to_owned(),
            referral_key: plan.key.clone(),
            revision,
            content_hash: plan.content_hash.clone(),
            body,
        };
        let deliveries: Vec<NewDelivery> = routed
            .iter()
            .map(|(destination, status)| NewDelivery {
                kind: DeliveryKind::Referral,
                destination: destination.clone(),
                status: if status == "pending" {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Withheld
                },
            })
            .collect();
        self.store
            .insert_message(&mut tx, &message, &deliveries)
            .await?;
        advance(&self.store, &mut tx, job, arrival).await?;
        tx.commit().await?;
        metrics::counter!("onedoor_messages_accepted_total").increment(1);
        tracing::info!(message = %message.id, revision, arrival = ?arrival, destinations = routed.len(), "message accepted");
        Ok(plan.accepted(message.id, arrival, revision, routed))
    }

    /// A submission may carry only records that are new or that its sender's organization sent before:
    /// another organization's referral, person or consent is never overwritten (directory resources,
    /// [`DIRECTORY_TYPES`], are shared).
    async fn owned_by_sender(
        &self,
        tx: &mut WriteTx<'_>,
        bundle: &Value,
        sender_org: &str,
    ) -> Result<(), GatewayError> {
        for resource in subject::resources(bundle) {
            let (kind, id) = crate::canonical::bundle::type_and_id(resource);
            if DIRECTORY_TYPES.contains(&kind) {
                continue;
            }
            if let Some(held) = self.store.resource_in(tx, kind, id).await?
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

    /// A new revision keeps the Task as the receiver left it (its status is not reset), with a note that
    /// the referral was revised; the bundle carries that Task.
    async fn keep_held_task(
        &self,
        tx: &mut WriteTx<'_>,
        mut bundle: Value,
        plan: &Plan,
        revision: i64,
    ) -> Result<Value, GatewayError> {
        let Some(task_id) = plan.task.as_deref() else {
            return Ok(bundle);
        };
        let Some(held) = self.store.resource_in(tx, "Task", task_id).await? else {
            return Ok(bundle);
        };
        let mut task = held.body;
        if revision > 1 {
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
        if let Some(meta) = task.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
        }
        replace_entry(&mut bundle, "Task", task_id, task);
        Ok(bundle)
    }

    /// The consent decision for each destination, and the audit entries to record with them; the source
    /// is the sending partner's organization.
    async fn decide_all(
        &self,
        tx: &mut WriteTx<'_>,
        record: &Value,
        destinations: &[String],
        sender_org: &str,
    ) -> Result<
        (
            Vec<(String, String)>,
            Vec<crate::consent::audit::AuditEntry>,
        ),
        GatewayError,
    > {
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
        if let Some((kind, id)) = message.referral_key.split_once('/')
            && let Some(held) = self.store.resource(kind, id).await?
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

    /// Build the referral around a ServiceRequest posted on its own: the Patient and guardians already
    /// held, the performer Organization, and a new referral Task (requested, owned by the performer).
    pub async fn referral_from_request(
        &self,
        mut request: Value,
        sender_org: &str,
    ) -> Result<Value, GatewayError> {
        let invalid = |e: crate::checked::NotAnObject| GatewayError::Invalid(e.to_string());
        if request["id"].as_str().is_none_or(str::is_empty) {
            let id = json!(uuid::Uuid::new_v4().to_string());
            crate::checked::set(&mut request, "ServiceRequest", "id", id).map_err(invalid)?;
        }
        let sr_id = request["id"].as_str().unwrap_or_default().to_owned();
        let mut resources = vec![request.clone()];
        if let Some(patient) = request
            .pointer("/subject/reference")
            .and_then(Value::as_str)
        {
            let (kind, id) = patient.split_once('/').unwrap_or_default();
            // Only what this sender itself holds here: never another organization's record of the person.
            let own =
                |r: &crate::store::StoredResource| r.sender_org.as_deref() == Some(sender_org);
            if let Some(found) = self.store.resource(kind, id).await?.filter(own) {
                resources.push(found.body);
            }
            for guardian in self
                .store
                .search("RelatedPerson", &[("patient", patient.to_owned())], 20)
                .await?
                .into_iter()
                .filter(own)
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
            let performer = json!([{"reference": reference}]);
            crate::checked::set(&mut request, "ServiceRequest", "performer", performer)
                .map_err(invalid)?;
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
        reader: &crate::access::Reader,
        id: &str,
        mut task: Value,
        if_match: Option<i64>,
    ) -> Result<Value, GatewayError> {
        let stored = self
            .store
            .resource("Task", id)
            .await?
            .ok_or(GatewayError::NotFound)?;
        let actor = self.task_actor(reader, &stored).await?;
        if let Some(expected) = if_match.filter(|v| *v != stored.version) {
            return Err(GatewayError::Store(StoreError::VersionConflict(format!(
                "Task/{id} is at version {}, not {expected} (If-Match): it was changed meanwhile; read it again and reapply the change",
                stored.version
            ))));
        }
        match task.as_object_mut() {
            Some(object) => object.insert("id".into(), json!(id)),
            None => return Err(GatewayError::Invalid("expected a Task object".into())),
        };
        self.check(&task)?;
        let old: TaskStatus = stored
            .body
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .parse()
            .map_err(GatewayError::Invalid)?;
        let new: TaskStatus = task
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .parse()
            .map_err(GatewayError::Invalid)?;
        if old.next().is_empty() && task_without_meta(&task) != task_without_meta(&stored.body) {
            return Err(GatewayError::Conflict(format!(
                "the Task is {old}: a finished referral does not change"
            )));
        }
        if old != new {
            let has_reason = task
                .pointer("/statusReason/text")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.trim().is_empty());
            old.transition(new, actor, has_reason)
                .map_err(|e| GatewayError::Conflict(e.to_string()))?;
        }
        changes_allowed(actor, &stored.body, &task)?;
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
        // The new version and the referrer's notifications are committed together, on the condition that
        // the Task is still the version the change was checked against: of two simultaneous updates, the
        // second finds it changed (412), so a cancelled referral never comes back as accepted.
        let mut tx = self.store.begin().await?;
        let version = self
            .store
            .upsert_resource_at(&mut tx, &task, &index, Some(stored.version))
            .await?;
        if old != new {
            self.notify_referrer(&mut tx, stored.sender_org.as_deref(), id, version)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(task = %id, status = %new, "task status changed");
        Ok(self
            .store
            .resource("Task", id)
            .await?
            .map(|r| r.body)
            .unwrap_or(task))
    }

    /// Who a partner is for this Task: its receiver (the referral was released to it) or its requester;
    /// anyone else does not see it.
    async fn task_actor(
        &self,
        reader: &crate::access::Reader,
        stored: &crate::store::StoredResource,
    ) -> Result<Actor, GatewayError> {
        if reader.sent(stored) {
            return Ok(Actor::Requester);
        }
        if stored.receiver_org.as_deref() == Some(reader.org.as_str())
            && crate::access::released_to(self, reader, stored).await?
        {
            return Ok(Actor::Receiver);
        }
        Err(GatewayError::NotFound)
    }

    /// Queue an id-only notification (Gravity subscription style) for the partners acting for the
    /// referrer, inside `tx`.
    async fn notify_referrer(
        &self,
        tx: &mut WriteTx<'_>,
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
            let message = Message {
                id: uuid::Uuid::new_v4().to_string(),
                source: "notification".into(),
                referral_key: format!("notification:Task/{task_id}/_history/{version}/{name}"),
                revision: 1,
                content_hash: String::new(),
                body: notification(&self.config.server.base_url, task_id, version),
            };
            let delivery = NewDelivery {
                kind: DeliveryKind::Notification,
                destination: name.clone(),
                status: DeliveryStatus::Pending,
            };
            self.store.insert_message(tx, &message, &[delivery]).await?;
        }
        Ok(())
    }
}

/// The elements a role may change in a Task (DESIGN.md section 3): the receiver progresses it, the
/// requester may only cancel it (with a reason). Everything else — identifiers, dates, priority,
/// description, references, security labels — stays as stored.
fn changes_allowed(actor: Actor, stored: &Value, task: &Value) -> Result<(), GatewayError> {
    let allowed: &[&str] = match actor {
        Actor::Receiver => &[
            "status",
            "statusReason",
            "businessStatus",
            "note",
            "output",
            "lastModified",
        ],
        Actor::Requester => &["status", "statusReason", "lastModified"],
    };
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut names = keys(stored);
    names.extend(keys(task));
    names.sort();
    names.dedup();
    for name in names.iter().filter(|n| !allowed.contains(&n.as_str())) {
        let (before, after) = if name == "meta" {
            (task_meta(stored), task_meta(task))
        } else {
            (stored.get(name).cloned(), task.get(name).cloned())
        };
        if before != after {
            return Err(GatewayError::NotAllowed(format!(
                "Task.{name} cannot be changed by the {} (it may change only {})",
                match actor {
                    Actor::Receiver => "receiver",
                    Actor::Requester => "requester",
                },
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// A Task's `meta` without what the store sets (`versionId`, `lastUpdated`).
fn task_meta(task: &Value) -> Option<Value> {
    let mut meta = task.get("meta")?.clone();
    if let Some(object) = meta.as_object_mut() {
        object.remove("versionId");
        object.remove("lastUpdated");
        if object.is_empty() {
            return None;
        }
    }
    Some(meta)
}

/// A Task compared without the store's metadata.
fn task_without_meta(task: &Value) -> Value {
    let mut copy = task.clone();
    if let Some(object) = copy.as_object_mut() {
        match task_meta(task) {
            Some(meta) => object.insert("meta".into(), meta),
            None => object.remove("meta"),
        };
    }
    copy
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

/// Resources that describe organizations and services, not people: many senders' referrals share them
/// (the food bank's Organization is in every referral to it). The consent gate reads them the same way.
const DIRECTORY_TYPES: &[&str] = crate::consent::codes::DIRECTORY_TYPES;

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

/// What the gateway works out once from a submitted bundle.
struct Plan {
    /// The referral it is (`ServiceRequest/id`), or its first resource for other bundles.
    key: String,
    /// SHA-256 of its resources (sorted, Task and store metadata left out): equal means identical.
    content_hash: String,
    performer: Option<String>,
    patient: Option<String>,
    sender_org: String,
    service_request: Option<String>,
    task: Option<String>,
}

impl Plan {
    fn of(bundle: &Value, sender_org: &str) -> Self {
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
        Self {
            key: request
                .or(resources.first().copied())
                .map(crate::store::reference_of)
                .unwrap_or_default(),
            content_hash: content_hash(&resources),
            performer: request.and_then(|sr| performer_org(bundle, sr)),
            patient: request
                .and_then(|sr| sr.pointer("/subject/reference"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            sender_org: sender_org.to_owned(),
            service_request: id_of(request),
            task: id_of(first_of("Task")),
        }
    }

    fn request<'a>(&self, bundle: &'a Value) -> Option<&'a Value> {
        subject::resources(bundle)
            .into_iter()
            .find(|r| r.get("resourceType").and_then(Value::as_str) == Some("ServiceRequest"))
    }

    fn indexed(&self, bundle: &Value) -> Vec<(Value, ResourceIndex)> {
        subject::resources(bundle)
            .into_iter()
            .map(|r| {
                let index = index_for(
                    r,
                    self.patient.clone(),
                    &self.sender_org,
                    self.performer.clone(),
                );
                (r.clone(), index)
            })
            .collect()
    }

    fn accepted(
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
            task: self.task.clone(),
        }
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
    for (_, resource) in &kept {
        hasher.update(resource.to_string().as_bytes());
        hasher.update(b"\n");
    }
    format!("{:x}", hasher.finalize())
}

/// Advance a job (if any) by one record in `tx`.
async fn advance(
    store: &Store,
    tx: &mut WriteTx<'_>,
    job: Option<&mut JobCursor>,
    arrival: Arrival,
) -> Result<(), StoreError> {
    let Some(cursor) = job else { return Ok(()) };
    cursor.job.records_done += 1;
    match arrival {
        Arrival::New => cursor.job.counts.accepted += 1,
        Arrival::Updated => cursor.job.counts.updated += 1,
        Arrival::Duplicate => cursor.job.counts.duplicates += 1,
    }
    store
        .job_progress(tx, &cursor.job, &cursor.node, cursor.lease_ms)
        .await
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
