//! Partners and their credentials (migration `0004_credentials.sql`): each partner acts for one
//! organization (`partners`) and holds any number of API keys (`partner_keys`), each kept only as an
//! HMAC-SHA-256 under the server secret, found by a short non-secret prefix and then verified. A key may
//! expire, be revoked, or be given a grace end when it is rotated out. Also here: the server secret itself
//! (`server_secret`, written once so every node shares it), the SMART assertion ids already seen
//! (`smart_jtis`, so a replay is refused on every node) and the access tokens issued (`access_tokens`).

use super::{Store, StoreError, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored key, as the authenticator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The key's id (non-secret, shown by `partners list`).
    pub id: String,
    /// The partner it belongs to.
    pub partner: String,
    /// Hex HMAC-SHA-256 of the key under the server secret.
    pub hash: String,
    /// When it stops working (ms since the epoch), if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// When a rotation's grace ends, if it was rotated out.
    pub grace_until: Option<i64>,
    /// When it was last used (updated at most once a minute).
    pub last_used_at: Option<i64>,
}

/// A key as `partners list` shows it (never the key or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListing {
    /// The partner.
    pub partner: String,
    /// Its organization.
    pub org: String,
    /// The key's id.
    pub id: String,
    /// The key's lookup prefix (non-secret).
    pub prefix: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it expires.
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// When a rotation's grace ends.
    pub grace_until: Option<i64>,
    /// When it was last used.
    pub last_used_at: Option<i64>,
}

/// A new key to store.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// The partner.
    pub partner: &'a str,
    /// Its organization (recorded in `partners`).
    pub org: &'a str,
    /// The key's id.
    pub id: &'a str,
    /// The key's lookup prefix.
    pub prefix: &'a str,
    /// Hex HMAC of the key.
    pub hash: &'a str,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
}

/// An access token issued at `/auth/token`, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The partner it was issued to.
    pub partner: String,
    /// Hex HMAC of the token.
    pub hash: String,
    /// The granted scopes, space-separated.
    pub scopes: String,
    /// When it expires (ms).
    pub expires_at: i64,
}

const KEY_COLUMNS: &str =
    "id, partner, hash, expires_at, revoked_at, grace_until, last_used_at, created_at";

fn key_row(row: &AnyRow) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        id: row.try_get("id")?,
        partner: row.try_get("partner")?,
        hash: row.try_get("hash")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        grace_until: row.try_get("grace_until")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Store {
    /// Store a new key for a partner (recording the partner and its organization).
    pub async fn add_partner_key(&self, key: &NewKey<'_>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_key(self, &mut tx, key).await?;
        tx.commit().await
    }

    /// Rotate: a new key, and every current key of the partner keeps working until `grace_until` (or its
    /// own earlier expiry), in one transaction.
    pub async fn rotate_partner_key(
        &self,
        key: &NewKey<'_>,
        grace_until: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let rotated = sqlx::query(&self.sql(
            "UPDATE partner_keys SET grace_until = $1 WHERE partner = $2 AND revoked_at IS NULL \
             AND (grace_until IS NULL OR grace_until > $1)",
        ))
        .bind(grace_until)
        .bind(key.partner)
        .execute(tx.conn())
        .await?
        .rows_affected();
        insert_key(self, &mut tx, key).await?;
        tx.commit().await?;
        Ok(rotated)
    }

    /// Revoke one key of a partner (`key_id`) or all of them, and end the partner's access tokens with
    /// them; returns how many keys were revoked.
    pub async fn revoke_partner_keys(
        &self,
        partner: &str,
        key_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let sql = self.sql(
            "UPDATE partner_keys SET revoked_at = $1 WHERE partner = $2 AND revoked_at IS NULL \
             AND ($3 = '' OR id = $3)",
        );
        let revoked = sqlx::query(&sql)
            .bind(now)
            .bind(partner)
            .bind(key_id.unwrap_or_default())
            .execute(tx.conn())
            .await?
            .rows_affected();
        if key_id.is_none() {
            sqlx::query(&self.sql("DELETE FROM access_tokens WHERE partner = $1"))
                .bind(partner)
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    /// The keys whose lookup prefix is `prefix` (usually one).
    pub async fn keys_by_prefix(&self, prefix: &str) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {KEY_COLUMNS} FROM partner_keys WHERE prefix = $1"
        )))
        .bind(prefix)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key_row).collect()
    }

    /// Record that a key was used now.
    pub async fn touch_partner_key(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql("UPDATE partner_keys SET last_used_at = $1 WHERE id = $2"))
            .bind(now_ms())
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Every key of every partner (or of one), oldest first.
    pub async fn list_partner_keys(
        &self,
        partner: Option<&str>,
    ) -> Result<Vec<KeyListing>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT k.id, k.partner, p.org, k.prefix, k.created_at, k.expires_at, k.revoked_at, k.grace_until, \
             k.last_used_at FROM partner_keys k JOIN partners p ON p.name = k.partner \
             WHERE ($1 = '' OR k.partner = $1) ORDER BY k.partner, k.created_at, k.id",
        ))
        .bind(partner.unwrap_or_default())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyListing {
                    partner: r.try_get("partner")?,
                    org: r.try_get("org")?,
                    id: r.try_get("id")?,
                    prefix: r.try_get("prefix")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                    grace_until: r.try_get("grace_until")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// The server secret shared by every node: the stored one, or `candidate` stored now if there is none
    /// yet (the first node to write it wins; the others read the winner's).
    pub async fn server_secret(&self, candidate: &str) -> Result<String, StoreError> {
        if let Some(secret) = self.stored_secret().await? {
            return Ok(secret);
        }
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql(
            "INSERT INTO server_secret (id, secret, created_at) VALUES (1, $1, $2) ON CONFLICT DO NOTHING",
        ))
        .bind(candidate)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        self.stored_secret()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the server secret was not stored".into()))
    }

    async fn stored_secret(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT secret FROM server_secret WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("secret")).transpose()?)
    }

    /// Record a SMART assertion id; `false` when it was seen before (a replay). Ids past their expiry
    /// are forgotten (an expired assertion is refused anyway).
    pub async fn record_jti(
        &self,
        partner: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query(&self.sql("DELETE FROM smart_jtis WHERE expires_at < $1"))
            .bind(now)
            .execute(tx.conn())
            .await?;
        let inserted = sqlx::query(&self.sql(
            "INSERT INTO smart_jtis (partner, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        ))
        .bind(partner)
        .bind(jti)
        .bind(expires_at)
        .execute(tx.conn())
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// Store an access token (its HMAC) with its scopes; expired tokens are removed.
    pub async fn add_access_token(&self, id: &str, token: &TokenRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query(&self.sql("DELETE FROM access_tokens WHERE expires_at < $1"))
            .bind(now)
            .execute(tx.conn())
            .await?;
        sqlx::query(&self.sql(
            "INSERT INTO access_tokens (id, partner, hash, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        ))
        .bind(id)
        .bind(&token.partner)
        .bind(&token.hash)
        .bind(&token.scopes)
        .bind(now)
        .bind(token.expires_at)
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    /// The access token with id `id`.
    pub async fn access_token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(
            &self.sql("SELECT partner, hash, scopes, expires_at FROM access_tokens WHERE id = $1"),
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(TokenRow {
                partner: r.try_get("partner")?,
                hash: r.try_get("hash")?,
                scopes: r.try_get("scopes")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }
}

async fn insert_key(
    store: &Store,
    tx: &mut super::WriteTx<'_>,
    key: &NewKey<'_>,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(&store.sql(
        "INSERT INTO partners (name, org, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET org = $2",
    ))
    .bind(key.partner)
    .bind(key.org)
    .bind(now)
    .execute(tx.conn())
    .await?;
    sqlx::query(&store.sql(
        "INSERT INTO partner_keys (id, partner, prefix, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    ))
    .bind(key.id)
    .bind(key.partner)
    .bind(key.prefix)
    .bind(key.hash)
    .bind(now)
    .bind(key.expires_at)
    .execute(tx.conn())
    .await?;
    Ok(())
}
