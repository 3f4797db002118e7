//! Partner authentication: an API key (`Authorization: Bearer <key>` or `X-API-Key`), stored only as its
//! SHA-256 hash, identifies a partner and the one organization it acts for. The admin API uses a separate
//! token from the environment (`ONEDOOR_ADMIN_TOKEN`); without it the admin API is off.

use super::AppState;
use super::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The calling partner.
#[derive(Debug, Clone)]
pub struct Partner {
    /// The partner's name (configuration).
    pub name: String,
    /// The organization it acts for (`system|value`).
    pub org: String,
}

/// SHA-256 of an API key, as stored.
pub fn key_hash(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

/// A new random API key (256 bits, shown once).
pub fn new_key() -> String {
    format!(
        "od_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn presented_key(parts: &Parts) -> Option<String> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .map(str::to_owned)
    };
    header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .or_else(|| header("x-api-key"))
}

impl FromRequestParts<Arc<AppState>> for Partner {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts).ok_or(ApiError::Unauthorized)?;
        let found = state
            .gateway
            .store
            .partner_by_key(&key_hash(&key))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Partner {
            name: found.name,
            org: found.org,
        })
    }
}

/// The admin caller (the `ONEDOOR_ADMIN_TOKEN` holder).
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let expected = state
            .admin_token_hash
            .as_deref()
            .ok_or(ApiError::Forbidden)?;
        let key = presented_key(parts).ok_or(ApiError::Unauthorized)?;
        if key_hash(&key) == expected {
            Ok(Admin)
        } else {
            Err(ApiError::Forbidden)
        }
    }
}
