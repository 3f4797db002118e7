//! Repeat-incident history for police sources: salted hashes of person and address keys, never names.

use super::{Store, StoreError};
use crate::record::Sighting;
use sqlx::Row;

impl Store {
    /// Every repeat-incident sighting recorded.
    pub async fn incident_sightings(&self) -> Result<Vec<Sighting>, StoreError> {
        let rows = sqlx::query("SELECT key, incident, occurred, seq FROM incident_sightings")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let occurred: String = r.try_get("occurred")?;
                Ok(Sighting {
                    key: r.try_get("key")?,
                    incident: r.try_get("incident")?,
                    date: occurred.parse().map_err(|_| {
                        StoreError::Corrupt(format!("incident_sightings.occurred '{occurred}'"))
                    })?,
                    seq: r.try_get::<i64, _>("seq")? as u64,
                })
            })
            .collect()
    }

    /// Record a run's history changes in one transaction: forgotten incidents removed, new sightings added.
    pub async fn save_incident_history(
        &self,
        forgotten: &[String],
        added: &[Sighting],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for incident in forgotten {
            sqlx::query(&self.sql("DELETE FROM incident_sightings WHERE incident = $1"))
                .bind(incident)
                .execute(tx.conn())
                .await?;
        }
        for sighting in added {
            sqlx::query(&self.sql(
                "INSERT INTO incident_sightings (key, incident, occurred, seq) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key, incident) DO NOTHING",
            ))
            .bind(&sighting.key)
            .bind(&sighting.incident)
            .bind(sighting.date.to_string())
            .bind(sighting.seq as i64)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }
}
