//! FHIR resources as the gateway holds them, with what access control needs (sender and receiver
//! organizations, patient, status, Task focus), and every earlier version kept so a Task's history shows
//! each change (a status from the receiver, a new revision from the referrer). A resource's current
//! version is its row in `resources`, stored once; the update that supersedes a version copies it into
//! `resource_versions` (BENCHMARKS.md, issue 13, twenty-first round: a new referral no longer writes its
//! resources' bodies twice).

use super::store_meta::{same_but_store_meta, stored_text};
use super::{AnyQuery, Insert, ROWS_PER_STATEMENT, RowsInsert, Store, StoreError, WriteTx, now_ms};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored FHIR resource with what access control needs.
#[derive(Debug, Clone)]
pub struct StoredResource {
    /// Type.
    pub resource_type: String,
    /// Id.
    pub id: String,
    /// Version (1, 2...).
    pub version: i64,
    /// The resource.
    pub body: Value,
    /// The organization that sent it (requester), `system|value`.
    pub sender_org: Option<String>,
    /// The organization it was sent to (performer/owner), `system|value`.
    pub receiver_org: Option<String>,
}

/// What to index a resource by.
#[derive(Debug, Clone, Default)]
pub struct ResourceIndex {
    /// `Patient/id`.
    pub patient: Option<String>,
    /// Sender organization.
    pub sender_org: Option<String>,
    /// Receiver organization.
    pub receiver_org: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Task.focus reference.
    pub focus: Option<String>,
}

impl Store {
    /// Insert or update a resource (version + 1 on update) in a transaction of its own.
    pub async fn put_resource(
        &self,
        resource: &Value,
        index: &ResourceIndex,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let version = self.upsert_resource(&mut tx, resource, index).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// The current version of a resource, read inside `tx`.
    pub async fn resource_version(
        &self,
        tx: &mut WriteTx<'_>,
        kind: &str,
        id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            &self.sql("SELECT version FROM resources WHERE resource_type = $1 AND id = $2"),
        )
        .bind(kind)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
        row.map(|r| Ok(r.try_get::<i64, _>("version")?)).transpose()
    }

    /// Insert or update a resource inside `tx`; the version it supersedes is kept in its history.
    pub async fn upsert_resource(
        &self,
        tx: &mut WriteTx<'_>,
        resource: &Value,
        index: &ResourceIndex,
    ) -> Result<i64, StoreError> {
        self.upsert_resource_at(tx, resource, index, None).await
    }

    /// As [`Store::upsert_resource`], and with `expected` an update of that version only: the row is
    /// updated on the condition that its version is still `expected` (on PostgreSQL the second of two
    /// simultaneous updates waits for the first's row lock, then finds the version changed), so of two
    /// writers based on one version exactly one succeeds and the other gets
    /// [`StoreError::VersionConflict`].
    pub async fn upsert_resource_at(
        &self,
        tx: &mut WriteTx<'_>,
        resource: &Value,
        index: &ResourceIndex,
        expected: Option<i64>,
    ) -> Result<i64, StoreError> {
        let (kind, id) = crate::canonical::bundle::type_and_id(resource);
        let held = self.held(tx, kind, id).await?;
        if expected.is_none()
            && let Some(held) = held.as_ref().filter(|h| h.is(resource, index))
        {
            // The same resource, indexed the same: a no-op update keeps its version (as FHIR servers do).
            return Ok(held.version);
        }
        let current = held.map(|h| h.version);
        let base = expected.or(current);
        if expected.is_some() && current != expected {
            return Err(conflict(kind, id, current, expected));
        }
        let version = base.map_or(1, |v| v + 1);
        let now = now_ms();
        // An update is conditional on the version read (or expected) in this transaction.
        let query = if current.is_some() {
            "UPDATE resources SET version = $3, body = $4, patient = $5, sender_org = $6, receiver_org = $7, status = $8, focus = $9, updated_at = $10 WHERE resource_type = $1 AND id = $2 AND version = $11"
        } else {
            "INSERT INTO resources (resource_type, id, version, body, patient, sender_org, receiver_org, status, focus, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        };
        let text = stored_text(resource, version, now);
        let sql = self.sql(query);
        let mut statement =
            bind_resource(sqlx::query(&sql), (kind, id), version, &text, index).bind(now);
        // An update binds the version it is based on, and the version it supersedes goes into the history
        // first, in the same transaction.
        if let Some(current) = current {
            statement = statement.bind(base.unwrap_or_default());
            self.keep_superseded(tx, (kind, id), current).await?;
        }
        let done = statement.execute(tx.conn()).await?;
        if done.rows_affected() == 0 {
            return Err(conflict(kind, id, current, expected));
        }
        Ok(version)
    }
}

/// The rows held for a set of resources, read in one query (an acceptance reads each of its resources once:
/// for the ownership check, the Task it keeps, and its writes).
#[derive(Debug, Default)]
pub struct HeldResources {
    rows: std::collections::HashMap<(String, String), (StoredResource, ResourceIndex)>,
}

impl HeldResources {
    /// The held resource `kind`/`id`, if it was asked for and is held.
    pub fn get(&self, kind: &str, id: &str) -> Option<&StoredResource> {
        self.rows
            .get(&(kind.to_owned(), id.to_owned()))
            .map(|(stored, _)| stored)
    }
}

impl Store {
    /// The held rows of the resources `keys` (type and id), read inside `tx` in one query per
    /// [`ROWS_PER_STATEMENT`] keys.
    pub async fn held_resources(
        &self,
        tx: &mut WriteTx<'_>,
        keys: &[(&str, &str)],
    ) -> Result<HeldResources, StoreError> {
        let mut held = HeldResources::default();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let wanted: Vec<String> = (0..chunk.len())
                .map(|i| format!("(resource_type = ${} AND id = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = self.sql(&format!(
                "SELECT * FROM resources WHERE {}",
                wanted.join(" OR ")
            ));
            let mut query = sqlx::query(&sql);
            for (kind, id) in chunk {
                query = query.bind(*kind).bind(*id);
            }
            for row in query.fetch_all(tx.conn()).await? {
                let index = ResourceIndex {
                    patient: row.try_get("patient")?,
                    sender_org: row.try_get("sender_org")?,
                    receiver_org: row.try_get("receiver_org")?,
                    status: row.try_get("status")?,
                    focus: row.try_get("focus")?,
                };
                let stored = stored_resource(&row)?;
                let key = (stored.resource_type.clone(), stored.id.clone());
                held.rows.insert(key, (stored, index));
            }
        }
        Ok(held)
    }

    /// Insert or update `resources` inside `tx` as [`Store::upsert_resource`] does each, given what
    /// [`Store::held_resources`] read of them in this transaction ([`HeldResources::plan_writes`], then
    /// [`Store::write_resources`]).
    pub async fn upsert_resources(
        &self,
        tx: &mut WriteTx<'_>,
        resources: &[(Value, ResourceIndex)],
        held: &HeldResources,
    ) -> Result<(), StoreError> {
        self.write_resources(tx, &held.plan_writes(resources)).await
    }

    /// Write planned resource versions inside `tx`: each changed row updated on the condition that its
    /// version is still the one read (else [`StoreError::VersionConflict`]), then new rows and every
    /// version inserted as a group commit's are ([`Store::write_gathered`], with nothing else gathered).
    pub async fn write_resources(
        &self,
        tx: &mut WriteTx<'_>,
        writes: &[ResourceWrite],
    ) -> Result<(), StoreError> {
        self.write_gathered(tx, &[], writes, &[]).await
    }

    /// Update each held row `writes` changes, on the condition that its version is still the one read
    /// (else [`StoreError::VersionConflict`]); the rest of the writes are [`ResourceRows`]' inserts.
    pub(crate) async fn update_changed(
        &self,
        tx: &mut WriteTx<'_>,
        writes: &[ResourceWrite],
        now: i64,
    ) -> Result<(), StoreError> {
        for write in writes {
            if let RowWrite::Update { base } = write.row {
                self.update_row(tx, write, base, now).await?;
            }
        }
        Ok(())
    }

    /// Update one held row to `write`, on the condition that its version is still `base`.
    async fn update_row(
        &self,
        tx: &mut WriteTx<'_>,
        write: &ResourceWrite,
        base: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let sql = self.sql(
            "UPDATE resources SET version = $3, body = $4, patient = $5, sender_org = $6, receiver_org = $7, status = $8, focus = $9, updated_at = $10 WHERE resource_type = $1 AND id = $2 AND version = $11",
        );
        self.keep_superseded(tx, (&write.kind, &write.id), base)
            .await?;
        let done = bind_row(sqlx::query(&sql), write)
            .bind(now)
            .bind(base)
            .execute(tx.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(conflict(&write.kind, &write.id, Some(base), None));
        }
        Ok(())
    }

    /// Copy version `version` of `kind/id`, about to be superseded, from its row into the history, inside
    /// `tx` and before the update. A copy already there is left as it is: on PostgreSQL the second of two
    /// simultaneous updates waits here for the first, then its update finds the version changed
    /// ([`StoreError::VersionConflict`]).
    async fn keep_superseded(
        &self,
        tx: &mut WriteTx<'_>,
        (kind, id): (&str, &str),
        version: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "INSERT INTO resource_versions (resource_type, id, version, body, updated_at) \
             SELECT resource_type, id, version, body, updated_at FROM resources \
             WHERE resource_type = $1 AND id = $2 AND version = $3 ON CONFLICT DO NOTHING",
        ))
        .bind(kind)
        .bind(id)
        .bind(version)
        .execute(tx.conn())
        .await?;
        Ok(())
    }
}

/// What planned writes insert: the new rows, and into the history the versions a later one of the same
/// plan supersedes ([`RowWrite::VersionOnly`]). The held versions their updates supersede are copied into
/// the history by [`Store::update_changed`].
pub(crate) struct ResourceRows<'w> {
    now: i64,
    new: Vec<&'w ResourceWrite>,
    superseded: Vec<&'w ResourceWrite>,
}

impl<'w> ResourceRows<'w> {
    /// The inserts of `writes` (their changed rows are updated by [`Store::update_changed`]).
    pub(crate) fn new(writes: &'w [ResourceWrite], now: i64) -> Self {
        let rows = |kind: RowWrite| writes.iter().filter(move |w| w.row == kind);
        Self {
            now,
            new: rows(RowWrite::Insert).collect(),
            superseded: rows(RowWrite::VersionOnly).collect(),
        }
    }

    /// The two inserts, in table order: new rows, then superseded versions.
    pub(crate) fn inserts<'r>(&'r self) -> [Box<dyn RowsInsert + 'r>; 2] {
        [
            Box::new(Insert {
                into: "resources (resource_type, id, version, body, patient, sender_org, receiver_org, status, focus, updated_at)",
                columns: &["", "", "", "", "", "", "", "", "", "$1"],
                rows: &self.new,
                shared: Some(self.now),
                bind: |query, row| bind_row(query, row),
            }),
            Box::new(Insert {
                into: "resource_versions (resource_type, id, version, body, updated_at)",
                columns: &["", "", "", "", "$1"],
                rows: &self.superseded,
                shared: Some(self.now),
                bind: |query, row| {
                    query
                        .bind(&row.kind)
                        .bind(&row.id)
                        .bind(row.version)
                        .bind(&row.text)
                },
            }),
        ]
    }
}

/// Bind a resource row's columns in table order: type, id, version, body, then its index (patient, sender
/// and receiver organizations, status, focus).
fn bind_row<'q>(query: AnyQuery<'q>, row: &'q ResourceWrite) -> AnyQuery<'q> {
    bind_resource(
        query,
        (&row.kind, &row.id),
        row.version,
        &row.text,
        &row.index,
    )
}

fn bind_resource<'q>(
    query: AnyQuery<'q>,
    (kind, id): (&'q str, &'q str),
    version: i64,
    text: &'q str,
    index: &ResourceIndex,
) -> AnyQuery<'q> {
    query
        .bind(kind)
        .bind(id)
        .bind(version)
        .bind(text)
        .bind(index.patient.clone())
        .bind(index.sender_org.clone())
        .bind(index.receiver_org.clone())
        .bind(index.status.clone())
        .bind(index.focus.clone())
}

/// A resource version to write, planned against what is held ([`HeldResources::plan_writes`]) and written
/// later, with others, by [`Store::write_resources`].
#[derive(Debug, Clone)]
pub struct ResourceWrite {
    kind: String,
    id: String,
    version: i64,
    /// The body with the store's `meta.versionId` and `meta.lastUpdated`, as JSON text.
    text: String,
    index: ResourceIndex,
    /// What happens to the row (the last version of a resource written carries it).
    row: RowWrite,
}

impl ResourceWrite {
    /// `Type/id` of the resource written.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind, self.id)
    }

    /// The resource as this write leaves it stored: what a read returns once it has committed (until a
    /// later write), read from the very text written.
    pub fn stored(&self) -> Result<StoredResource, StoreError> {
        Ok(StoredResource {
            resource_type: self.kind.clone(),
            id: self.id.clone(),
            version: self.version,
            body: serde_json::from_str(&self.text)?,
            sender_org: self.index.sender_org.clone(),
            receiver_org: self.index.receiver_org.clone(),
        })
    }

    /// Whether this writes `kind`/`id`.
    pub fn writes(&self, kind: &str, id: &str) -> bool {
        self.kind == kind && self.id == id
    }
}

/// A resource as an acceptance leaves it stored, for its answer: as held, or the text just written, read
/// by whoever answers ([`StoredNow::resource`]) rather than inside the group commit.
#[derive(Debug, Clone)]
pub enum StoredNow {
    /// Held, unchanged by the acceptance.
    Held(StoredResource),
    /// Written by the acceptance.
    Written(ResourceWrite),
}

impl StoredNow {
    /// The resource.
    pub fn resource(self) -> Result<StoredResource, StoreError> {
        match self {
            Self::Held(held) => Ok(held),
            Self::Written(write) => write.stored(),
        }
    }
}

/// What a planned version does to the resource's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowWrite {
    /// A new row.
    Insert,
    /// The held row, on the condition that its version is still `base`.
    Update { base: i64 },
    /// Only the history (a later version of the same resource carries the row).
    VersionOnly,
}

impl HeldResources {
    /// The versions that upserting `resources` one after another would write, given these held rows: an
    /// unchanged resource (store meta aside, indexed the same) writes nothing; a changed or new one the
    /// next version; a resource listed twice two successive versions, of which the last carries the row.
    pub fn plan_writes<R: std::borrow::Borrow<Value>>(
        &self,
        resources: &[(R, ResourceIndex)],
    ) -> Vec<ResourceWrite> {
        self.plan_versions(resources).0
    }

    /// [`HeldResources::plan_writes`], with the version each of `resources` is stored at once they are
    /// written: the one written for it, or the one held (or planned before it) that it is the same as.
    pub fn plan_versions<R: std::borrow::Borrow<Value>>(
        &self,
        resources: &[(R, ResourceIndex)],
    ) -> (Vec<ResourceWrite>, Vec<i64>) {
        let now = now_ms();
        let mut versions = Vec::with_capacity(resources.len());
        let mut planned: std::collections::HashMap<
            (String, String),
            (i64, &Value, &ResourceIndex),
        > = std::collections::HashMap::new();
        let mut writes = Vec::new();
        for (resource, index) in resources {
            let resource = resource.borrow();
            let (kind, id) = crate::canonical::bundle::type_and_id(resource);
            let key = (kind.to_owned(), id.to_owned());
            let current = planned.get(&key).copied().or_else(|| {
                self.rows
                    .get(&key)
                    .map(|(stored, held_index)| (stored.version, &stored.body, held_index))
            });
            if let Some((held_version, body, held_index)) = current
                && same_resource(body, held_index, resource, index)
            {
                versions.push(held_version);
                continue;
            }
            let version = current.map_or(1, |(version, _, _)| version + 1);
            let row = match self.rows.get(&key) {
                Some((stored, _)) => RowWrite::Update {
                    base: stored.version,
                },
                None => RowWrite::Insert,
            };
            // An earlier version of the same resource in this plan keeps only its history entry.
            for earlier in writes
                .iter_mut()
                .filter(|w: &&mut ResourceWrite| w.kind == key.0 && w.id == key.1)
            {
                earlier.row = RowWrite::VersionOnly;
            }
            writes.push(ResourceWrite {
                kind: key.0.clone(),
                id: key.1.clone(),
                version,
                text: stored_text(resource, version, now),
                index: index.clone(),
                row,
            });
            planned.insert(key, (version, resource, index));
            versions.push(version);
        }
        (writes, versions)
    }
}

/// Whether `resource` with `index` is what is held (its `meta.versionId` and `meta.lastUpdated` aside).
fn same_resource(
    held: &Value,
    held_index: &ResourceIndex,
    resource: &Value,
    index: &ResourceIndex,
) -> bool {
    held_index.patient == index.patient
        && held_index.sender_org == index.sender_org
        && held_index.receiver_org == index.receiver_org
        && held_index.status == index.status
        && held_index.focus == index.focus
        && same_but_store_meta(held, resource)
}

/// What the store holds of a resource, to tell a no-op update.
struct Held {
    version: i64,
    body: String,
    index: ResourceIndex,
}

impl Held {
    /// Whether `resource` with `index` is what is held (its `meta.versionId` and `meta.lastUpdated` aside).
    fn is(&self, resource: &Value, index: &ResourceIndex) -> bool {
        serde_json::from_str::<Value>(&self.body)
            .is_ok_and(|held| same_resource(&held, &self.index, resource, index))
    }
}

impl Store {
    /// The version, body and index of a held resource, read inside `tx`.
    async fn held(
        &self,
        tx: &mut WriteTx<'_>,
        kind: &str,
        id: &str,
    ) -> Result<Option<Held>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT version, body, patient, sender_org, receiver_org, status, focus FROM resources WHERE resource_type = $1 AND id = $2",
        ))
        .bind(kind)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
        row.map(|r| {
            Ok(Held {
                version: r.try_get("version")?,
                body: r.try_get("body")?,
                index: ResourceIndex {
                    patient: r.try_get("patient")?,
                    sender_org: r.try_get("sender_org")?,
                    receiver_org: r.try_get("receiver_org")?,
                    status: r.try_get("status")?,
                    focus: r.try_get("focus")?,
                },
            })
        })
        .transpose()
    }
}

impl Store {
    /// Whether `sender_org` sent a Task `id` whose focus is `focus` (a `Type/id` reference): an index
    /// lookup, no body read.
    pub async fn holds_task_of(
        &self,
        id: &str,
        sender_org: &str,
        focus: &str,
    ) -> Result<bool, StoreError> {
        let found = sqlx::query(&self.sql(
            "SELECT 1 FROM resources WHERE resource_type = 'Task' AND id = $1 \
             AND sender_org = $2 AND focus = $3",
        ))
        .bind(id)
        .bind(sender_org)
        .bind(focus)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    /// A resource by type and id.
    pub async fn resource(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let mut conn = self.pool().connection().await?;
        let found = self.resource_on(conn.conn(), kind, id).await?;
        conn.give_back();
        Ok(found)
    }

    /// A resource as stored now, read inside `tx`.
    pub async fn resource_in(
        &self,
        tx: &mut WriteTx<'_>,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.resource_on(tx.conn(), kind, id).await
    }

    async fn resource_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let row =
            sqlx::query(&self.sql("SELECT * FROM resources WHERE resource_type = $1 AND id = $2"))
                .bind(kind)
                .bind(id)
                .fetch_optional(conn)
                .await?;
        row.as_ref().map(stored_resource).transpose()
    }

    /// Every version of a resource, newest first: the current one, then those it superseded.
    pub async fn history(&self, kind: &str, id: &str) -> Result<Vec<Value>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT body, version FROM resources WHERE resource_type = $1 AND id = $2 \
             UNION ALL SELECT body, version FROM resource_versions WHERE resource_type = $1 AND id = $2 \
             ORDER BY version DESC",
        ))
        .bind(kind)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .collect()
    }

    /// One version of a resource (`vread`), as it was stored then.
    pub async fn resource_at(
        &self,
        kind: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT body FROM resources WHERE resource_type = $1 AND id = $2 AND version = $3 \
             UNION ALL SELECT body FROM resource_versions WHERE resource_type = $1 AND id = $2 AND version = $3",
        ))
        .bind(kind)
        .bind(id)
        .bind(version)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .transpose()
    }

    /// Every resource of a type matching a search, in a stable order (last updated first, then by id):
    /// the indexed fields equal to their values, sent by or sent to `org`, and last updated as each
    /// `(operator, milliseconds)` of `updated` says (operators `>=`, `<=`, `>`, `<`).
    pub async fn search_matches(
        &self,
        kind: &str,
        filters: &[(&str, String)],
        org: &str,
        updated: &[(&str, i64)],
    ) -> Result<Vec<StoredResource>, StoreError> {
        let mut query = String::from(
            "SELECT * FROM resources WHERE resource_type = $1 AND (sender_org = $2 OR receiver_org = $2)",
        );
        let mut next = 3;
        for (column, _) in filters {
            query.push_str(&format!(" AND {} = ${next}", indexed_column(column)?));
            next += 1;
        }
        for (operator, _) in updated {
            query.push_str(&format!(
                " AND updated_at {} ${next}",
                comparison(operator)?
            ));
            next += 1;
        }
        query.push_str(" ORDER BY updated_at DESC, id ASC");
        let sql = self.sql(&query);
        let mut q = sqlx::query(&sql).bind(kind).bind(org);
        for (_, value) in filters {
            q = q.bind(value.clone());
        }
        for (_, at) in updated {
            q = q.bind(*at);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(stored_resource).collect()
    }

    /// A person and those held as related to them, in one read: the resource `kind`/`id` if held, and the
    /// RelatedPersons whose patient is `reference` (the person's reference as the request gave it), newest
    /// first, at most `limit` of them.
    pub async fn person_and_related(
        &self,
        (kind, id): (&str, &str),
        reference: &str,
        limit: i64,
    ) -> Result<(Option<StoredResource>, Vec<StoredResource>), StoreError> {
        let sql = self.sql(
            "SELECT * FROM (SELECT resources.*, CAST(0 AS BIGINT) AS part FROM resources \
             WHERE resource_type = $1 AND id = $2 \
             UNION ALL SELECT * FROM (SELECT resources.*, CAST(1 AS BIGINT) AS part FROM resources \
             WHERE resource_type = 'RelatedPerson' AND patient = $3 ORDER BY updated_at DESC LIMIT $4) AS related) \
             AS found ORDER BY part, updated_at DESC",
        );
        let rows = sqlx::query(&sql)
            .bind(kind)
            .bind(id)
            .bind(reference)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        let mut person = None;
        let mut related = Vec::new();
        for row in &rows {
            let stored = stored_resource(row)?;
            if row.try_get::<i64, _>("part")? == 0 {
                person = Some(stored);
            } else {
                related.push(stored);
            }
        }
        Ok((person, related))
    }

    /// Search resources of a type by the indexed fields (`patient`, `status`, `focus`, `sender_org`,
    /// `receiver_org`), limited.
    pub async fn search(
        &self,
        kind: &str,
        filters: &[(&str, String)],
        limit: i64,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let mut query = String::from("SELECT * FROM resources WHERE resource_type = $1");
        for (index, (column, _)) in filters.iter().enumerate() {
            query.push_str(&format!(
                " AND {} = ${}",
                indexed_column(column)?,
                index + 2
            ));
        }
        query.push_str(&format!(
            " ORDER BY updated_at DESC LIMIT ${}",
            filters.len() + 2
        ));
        let sql = self.sql(&query);
        let mut q = sqlx::query(&sql).bind(kind);
        for (_, value) in filters {
            q = q.bind(value.clone());
        }
        let rows = q.bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(stored_resource).collect()
    }
}

/// Only these comparisons are put into SQL.
fn comparison(operator: &str) -> Result<&'static str, StoreError> {
    [">=", "<=", ">", "<"]
        .into_iter()
        .find(|c| *c == operator)
        .ok_or_else(|| StoreError::Corrupt(format!("'{operator}' is not a comparison")))
}

/// The error of an update based on a version that is no longer current.
fn conflict(kind: &str, id: &str, current: Option<i64>, expected: Option<i64>) -> StoreError {
    StoreError::VersionConflict(format!(
        "{kind}/{id} is at version {}, not {}: it was changed meanwhile; read it again and reapply the change",
        current.map_or("none".to_owned(), |v| v.to_string()),
        expected.map_or("none".to_owned(), |v| v.to_string()),
    ))
}

/// Only indexed columns can be searched (the name is put into SQL).
fn indexed_column(column: &str) -> Result<&'static str, StoreError> {
    ["patient", "status", "focus", "sender_org", "receiver_org"]
        .into_iter()
        .find(|c| *c == column)
        .ok_or_else(|| StoreError::Corrupt(format!("'{column}' is not an indexed column")))
}

fn stored_resource(row: &AnyRow) -> Result<StoredResource, StoreError> {
    Ok(StoredResource {
        resource_type: row.try_get("resource_type")?,
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        body: serde_json::from_str(&row.try_get::<String, _>("body")?)?,
        sender_org: row.try_get("sender_org")?,
        receiver_org: row.try_get("receiver_org")?,
    })
}
