//! Deployment settings kept in the store, written once and then shared by every node: the repeat-incident
//! salt `serve` generates when `[gateway] history_salt` is not set (the built-in default salt is public,
//! so hashes under it could be reversed by guessing names; it is never used by `serve`).

use super::{Store, StoreError, now_ms};
use sqlx::Row;

/// The settings row of the generated repeat-incident salt.
const HISTORY_SALT: &str = "history_salt";

impl Store {
    /// The value of setting `name`: the stored one, or `candidate` stored now if there is none (the first
    /// writer wins, on any node).
    pub async fn setting_or_init(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        sqlx::query(&self.sql(
            "INSERT INTO settings (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        ))
        .bind(name)
        .bind(candidate)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        let row = sqlx::query(&self.sql("SELECT value FROM settings WHERE name = $1"))
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("value")?)
    }

    /// This deployment's repeat-incident salt: generated (256 random bits) and stored on first use.
    pub async fn history_salt(&self) -> Result<String, StoreError> {
        self.setting_or_init(HISTORY_SALT, &random_salt()).await
    }
}

fn random_salt() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
