//! Consents and the legal bases in force, and the version counters that tell a node another node changed
//! them.
//!
//! Consents are FHIR Consent resources (in `resources`, so the FHIR API reads them); every write of a
//! consent or of the legal bases bumps its counter in `state_versions` in the same transaction. A node
//! keeps the consent registry in memory and reads the counters inside each decision's transaction: when
//! they moved, it reloads before deciding (see `gateway::ConsentState`). Every such write first takes the
//! audit chain's head, as every deciding transaction does, so a transaction holding the head reads the
//! counters once (a group commit's submissions are decided on one read). A consent update names the version
//! it was based on (`If-Match`); when another node changed it meanwhile, the update is refused.

use super::{ResourceIndex, Store, StoreError, WriteTx};
use crate::consent::bases::LegalBasis;
use crate::members::Members;
use serde_json::Value;
use sqlx::Row;

/// The counters a node compares with what it loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateVersions {
    /// Bumped by every consent write.
    pub consents: i64,
    /// Bumped by every change of the legal bases.
    pub bases: i64,
}

impl Store {
    /// The counters, read inside `tx` (once while `tx` holds the audit chain's head: no consent write can
    /// change them before it commits). Read by a statement of their own, begun once the head is held: on
    /// PostgreSQL (Read Committed) a statement reads with the snapshot it began with, so the head's own
    /// `UPDATE … RETURNING` would return the counters from before a consent write it waited for
    /// (BENCHMARKS.md, issue 13 seventeenth round).
    pub async fn state_versions(&self, tx: &mut WriteTx<'_>) -> Result<StateVersions, StoreError> {
        if tx.holds_chain
            && let Some(versions) = tx.state_versions
        {
            return Ok(versions);
        }
        let versions = self.read_state_versions(tx).await?;
        if tx.holds_chain {
            tx.state_versions = Some(versions);
        }
        Ok(versions)
    }

    async fn read_state_versions(&self, tx: &mut WriteTx<'_>) -> Result<StateVersions, StoreError> {
        let rows = sqlx::query("SELECT name, version FROM state_versions")
            .fetch_all(tx.conn())
            .await?;
        let mut versions = StateVersions::default();
        for row in rows {
            let version: i64 = row.try_get("version")?;
            match row.try_get::<String, _>("name")?.as_str() {
                "consents" => versions.consents = version,
                "bases" => versions.bases = version,
                _ => {}
            }
        }
        Ok(versions)
    }

    /// Every stored Consent resource, read inside `tx`.
    pub async fn consent_resources(&self, tx: &mut WriteTx<'_>) -> Result<Vec<Value>, StoreError> {
        let rows =
            sqlx::query("SELECT body FROM resources WHERE resource_type = 'Consent' ORDER BY id")
                .fetch_all(tx.conn())
                .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .collect()
    }

    /// The legal bases in force, read inside `tx`.
    pub async fn legal_bases(&self, tx: &mut WriteTx<'_>) -> Result<Vec<LegalBasis>, StoreError> {
        let rows = sqlx::query("SELECT body FROM legal_bases ORDER BY position")
            .fetch_all(tx.conn())
            .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .collect()
    }

    /// Write a consent (create, update, revoke). With `expected`, the stored version must still be that
    /// one: another node's change meanwhile is a [`StoreError::VersionConflict`]. Returns the new version.
    pub async fn put_consent(
        &self,
        consent: &Value,
        index: &ResourceIndex,
        expected: Option<i64>,
    ) -> Result<i64, StoreError> {
        let id = consent
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut tx = self.begin().await?;
        self.bump(&mut tx, "consents").await?;
        let current = self.resource_version(&mut tx, "Consent", id).await?;
        if let Some(expected) = expected
            && current != Some(expected)
        {
            return Err(StoreError::VersionConflict(format!(
                "Consent/{id} is at version {}, not {expected}: it was changed meanwhile; read it again and reapply the change",
                current.map_or("none".to_owned(), |v| v.to_string())
            )));
        }
        let version = self.upsert_resource(&mut tx, consent, index).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Make the stored consents from the configured folder match it: a consent whose content differs
    /// from the stored one (or is new) is written. Consents recorded through the API stay. Returns how
    /// many were written.
    pub async fn sync_consents(&self, consents: &[Value]) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        self.bump(&mut tx, "consents").await?;
        let mut written = 0;
        for consent in consents {
            let id = consent
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let stored = self.resource_in(&mut tx, "Consent", id).await?;
            if stored.is_some_and(|s| without_meta(&s.body) == without_meta(consent)) {
                continue;
            }
            let index = ResourceIndex {
                // A consent from the configured folder belongs to the custodian it names.
                sender_org: crate::consent::model::custodian(consent),
                patient: consent
                    .at(&["patient", "reference"])
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                status: consent
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                ..ResourceIndex::default()
            };
            self.upsert_resource(&mut tx, consent, &index).await?;
            written += 1;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Make the stored legal bases those given (from the configured file); bumps the counter when they
    /// changed. Returns whether they did.
    pub async fn sync_legal_bases(&self, bases: &[LegalBasis]) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let stored = self.legal_bases(&mut tx).await?;
        let same = serde_json::to_value(&stored)? == serde_json::to_value(bases)?;
        if same {
            return Ok(false);
        }
        self.bump(&mut tx, "bases").await?;
        sqlx::query("DELETE FROM legal_bases")
            .execute(tx.conn())
            .await?;
        for (position, basis) in bases.iter().enumerate() {
            sqlx::query(&self.sql("INSERT INTO legal_bases (position, body) VALUES ($1, $2)"))
                .bind(position as i64)
                .bind(serde_json::to_string(basis)?)
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Move a counter, after taking the audit chain's head (held to the commit): a transaction deciding
    /// with the head held never sees the counters move under it.
    async fn bump(&self, tx: &mut WriteTx<'_>, name: &str) -> Result<(), StoreError> {
        self.lock_chain(tx).await?;
        tx.state_versions = None;
        sqlx::query(&self.sql("UPDATE state_versions SET version = version + 1 WHERE name = $1"))
            .bind(name)
            .execute(tx.conn())
            .await?;
        Ok(())
    }
}

fn without_meta(resource: &Value) -> Value {
    let mut copy = resource.clone();
    if let Some(object) = copy.as_object_mut() {
        object.remove("meta");
    }
    copy
}
