//! The referral workflow on Task updates: who a partner is for a Task (receiver or requester), which
//! status changes and which elements that role may make, and the update itself, conditional on the
//! version checked (If-Match), with the referrer notified.

use super::{Gateway, GatewayError};
use crate::access::Reader;
use crate::canonical::task_status::{Actor, TaskStatus};
use crate::members::Members;
use crate::store::{ResourceIndex, StoreError, StoredResource};
use serde_json::{Value, json};

impl Gateway {
    /// A Task status change by a partner (the receiver progresses it, the requester may cancel), checked
    /// against the referral workflow; the referrer is notified.
    pub async fn update_task(
        &self,
        reader: &Reader,
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
        let (old, new) = status_change(actor, &stored.body, &task)?;
        changes_allowed(actor, &stored.body, &task)?;
        let index = task_index(&task, &stored, new);
        // The new version and the referrer's notifications are committed together, on the condition that
        // the Task is still the version the change was checked against: of two simultaneous updates, the
        // second finds it changed (412), so a cancelled referral never comes back as accepted.
        let mut tx = self.store.begin().await?;
        let version = self
            .store
            .upsert_resource_at(&mut tx, &task, &index, Some(stored.version))
            .await?;
        if old != new {
            self.notify_referrer(
                &mut tx,
                stored.sender_org.as_deref(),
                id,
                version,
                new.code(),
            )
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
        reader: &Reader,
        stored: &StoredResource,
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
}

/// The stored and the new status of a Task update, once the workflow allows the change: a finished
/// referral does not change, and a status transition must be one `actor` may make.
fn status_change(
    actor: Actor,
    stored: &Value,
    task: &Value,
) -> Result<(TaskStatus, TaskStatus), GatewayError> {
    let old = status_of(stored)?;
    let new = status_of(task)?;
    if old.next().is_empty() && task_without_meta(task) != task_without_meta(stored) {
        return Err(GatewayError::Conflict(format!(
            "the Task is {old}: a finished referral does not change"
        )));
    }
    if old != new {
        let has_reason = task
            .at(&["statusReason", "text"])
            .and_then(Value::as_str)
            .is_some_and(|t| !t.trim().is_empty());
        old.transition(new, actor, has_reason)
            .map_err(|e| GatewayError::Conflict(e.to_string()))?;
    }
    Ok((old, new))
}

/// A Task's status (an empty or unknown one is invalid).
fn status_of(task: &Value) -> Result<TaskStatus, GatewayError> {
    task.get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .parse()
        .map_err(GatewayError::Invalid)
}

/// The index of an updated Task: its person, focus and new status; sender and receiver as stored.
fn task_index(task: &Value, stored: &StoredResource, new: TaskStatus) -> ResourceIndex {
    ResourceIndex {
        patient: task
            .at(&["for", "reference"])
            .and_then(Value::as_str)
            .map(str::to_owned),
        sender_org: stored.sender_org.clone(),
        receiver_org: stored.receiver_org.clone(),
        status: Some(new.code().to_owned()),
        focus: task
            .at(&["focus", "reference"])
            .and_then(Value::as_str)
            .map(str::to_owned),
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
