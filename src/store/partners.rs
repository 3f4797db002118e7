//! Partners and their credentials: each partner acts for one organization; its API key is kept only as a
//! hash.

use super::{Store, StoreError, now_ms};
use sqlx::Row;

/// A partner found by its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerRow {
    /// The partner's name (`[partners.NAME]`).
    pub name: String,
    /// The organization it acts for (`system|value`).
    pub org: String,
}

impl Store {
    /// Register (or rotate) a partner's API key hash.
    pub async fn add_partner(
        &self,
        name: &str,
        org: &str,
        key_hash: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql("DELETE FROM partners WHERE name = $1"))
            .bind(name)
            .execute(tx.conn())
            .await?;
        sqlx::query(
            &self.sql(
                "INSERT INTO partners (name, org, key_hash, created_at) VALUES ($1, $2, $3, $4)",
            ),
        )
        .bind(name)
        .bind(org)
        .bind(key_hash)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    /// The partner whose key hashes to `key_hash`.
    pub async fn partner_by_key(&self, key_hash: &str) -> Result<Option<PartnerRow>, StoreError> {
        let row = sqlx::query(&self.sql("SELECT name, org FROM partners WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(PartnerRow {
                name: r.try_get("name")?,
                org: r.try_get("org")?,
            })
        })
        .transpose()
    }
}
