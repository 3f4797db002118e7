//! Who is calling. A partner presents one of three credentials, each tied to one `[partners.NAME]` and the
//! one organization it acts for:
//!
//! - an **API key** (`Authorization: Bearer <key>` or `X-API-Key`), kept in the store only as an
//!   HMAC-SHA-256 under the server secret ([`Credentials`]), found by its non-secret prefix (its first
//!   [`PREFIX_CHARS`] characters) and verified in constant time; a key may expire, be revoked, or be
//!   rotated out with a grace period (`onedoor partners`);
//! - a **SMART Backend Services access token** (`odt_...`, from `POST /auth/token`, see [`super::smart`]),
//!   which also carries the scopes it was granted;
//! - a **client certificate** on a mutual-TLS connection, bound to the partner whose `cert_subject` (subject
//!   common name or whole subject) or `cert_san` (a subject alternative name) it matches. With a key or a
//!   token over such a connection, both must name the same partner: a key of partner B over a connection
//!   with A's certificate is refused (401).
//!
//! Every refusal is 401 with an OperationOutcome saying why in general terms (missing, malformed, not
//! valid, expired, revoked, certificate mismatch), never which part of a credential matched. The admin API
//! uses `ONEDOOR_ADMIN_TOKEN`, kept as an HMAC too; a partner's valid credential there is 403.

use super::AppState;
use super::error::outcome;
use super::smart::Scope;
use super::tls::PeerIdentity;
use crate::config::Config;
use crate::store::{Store, StoreError, now_ms};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;

/// How many leading characters of a key are its (non-secret) lookup prefix.
pub const PREFIX_CHARS: usize = 11;
/// The shortest key `partners add --key` accepts.
pub const MIN_KEY_CHARS: usize = 16;
/// Access tokens start with this.
pub const TOKEN_PREFIX: &str = "odt_";
/// How often `last used` is written at most, per key (ms).
const TOUCH_EVERY_MS: i64 = 60_000;

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential at all.
    #[error("authentication required: send Authorization: Bearer <api key or access token>")]
    Missing,
    /// A credential that cannot be one (wrong scheme, empty, not text).
    #[error("the credential is malformed: send Authorization: Bearer <api key or access token>")]
    Malformed,
    /// No key or token like it, or the partner is no longer configured.
    #[error("the credential is not valid")]
    Invalid,
    /// Past its expiry (or past the grace of a rotation).
    #[error("the credential has expired")]
    Expired,
    /// Revoked.
    #[error("the credential has been revoked")]
    Revoked,
    /// A key or token of another partner than the client certificate's.
    #[error("the credential and the client certificate do not belong to the same partner")]
    CertificateMismatch,
    /// The admin API is off (`ONEDOOR_ADMIN_TOKEN` unset).
    #[error("the admin API is not enabled")]
    AdminDisabled,
    /// A partner's valid credential on the admin API.
    #[error("the admin API needs the admin token")]
    NotAdmin,
    /// An access token whose scopes do not cover the request.
    #[error("the access token's scopes do not allow {0}")]
    Scope(String),
    /// The store failed.
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Expired => (StatusCode::UNAUTHORIZED, "expired"),
            Self::AdminDisabled | Self::NotAdmin | Self::Scope(_) => {
                (StatusCode::FORBIDDEN, "forbidden")
            }
            Self::Store(err) => {
                tracing::error!(error = %err, "authentication failed inside");
                (StatusCode::INTERNAL_SERVER_ERROR, "exception")
            }
            _ => (StatusCode::UNAUTHORIZED, "login"),
        };
        let body = outcome("error", code, &self.to_string()).to_string();
        let mut response =
            (status, [("content-type", "application/fhir+json")], body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The server secret keys and tokens are hashed under: `ONEDOOR_SECRET` when set (then a copy of the
/// database alone cannot be used to test guessed keys), otherwise a random secret generated once and
/// kept in the store, so every node shares it.
#[derive(Clone)]
pub struct Credentials {
    secret: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    /// The secret from `ONEDOOR_SECRET`, or the store's (created on first use).
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        if let Some(secret) = std::env::var("ONEDOOR_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
        {
            return Ok(Self::from_secret(secret.as_bytes()));
        }
        let stored = store.server_secret(&hex(&random_bytes::<32>())).await?;
        Ok(Self::from_secret(stored.as_bytes()))
    }

    /// Credentials under a given secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            secret: Arc::new(secret.to_vec()),
        }
    }

    fn mac(&self, value: &str) -> Hmac<Sha256> {
        // HMAC accepts a key of any length: `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(value.as_bytes());
        mac
    }

    /// Hex HMAC-SHA-256 of `value`, as stored.
    pub fn hash(&self, value: &str) -> String {
        hex(&self.mac(value).finalize().into_bytes())
    }

    /// Whether `value` hashes to `stored`, compared in constant time.
    pub fn verify(&self, value: &str, stored: &str) -> bool {
        unhex(stored).is_some_and(|bytes| self.mac(value).verify_slice(&bytes).is_ok())
    }
}

/// Hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `N` random bytes from the system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|_| panic!("the system's random generator failed"));
    bytes
}

/// A new random key and its id: `od_<id><secret>`, 8 hex characters of id and 256 bits of secret, so the
/// lookup prefix (`od_<id>`) holds nothing secret.
pub fn new_key() -> (String, String) {
    let id = hex(&random_bytes::<4>());
    let key = format!("od_{id}{}", hex(&random_bytes::<32>()));
    (id, key)
}

/// A new key id (for a key given with `--key`).
pub fn new_key_id() -> String {
    hex(&random_bytes::<4>())
}

/// The lookup prefix of a key: its first [`PREFIX_CHARS`] characters.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(PREFIX_CHARS).collect()
}

/// How the partner authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An API key (its id).
    ApiKey(String),
    /// A SMART Backend Services access token.
    AccessToken,
    /// A client certificate alone.
    Certificate,
}

/// The calling partner.
#[derive(Debug, Clone)]
pub struct Partner {
    /// The partner's name (configuration).
    pub name: String,
    /// The organization it acts for (`system|value`).
    pub org: String,
    /// The SMART scopes of its access token; `None` for an API key or a certificate (all of the partner's
    /// rights).
    pub scopes: Option<Vec<String>>,
    /// How it authenticated.
    pub via: Via,
}

impl Partner {
    /// Whether the credential allows reading (`write == false`) or writing `resource_type` (SMART v1
    /// scopes: `system/ServiceRequest.write`, `system/*.read`, `system/Task.*`; v2 `cruds` letters too).
    /// An API key or a certificate allows everything; the partner's own rights apply on top either way.
    pub fn allows(&self, resource_type: &str, write: bool) -> bool {
        match &self.scopes {
            None => true,
            Some(scopes) => scopes
                .iter()
                .filter_map(|s| Scope::parse(s))
                .any(|s| s.allows(resource_type, write)),
        }
    }
}

/// Where the presented credential is: `Ok(None)` when there is none.
fn presented(parts: &Parts) -> Result<Option<String>, AuthError> {
    let header = |name: &str| -> Result<Option<String>, AuthError> {
        match parts.headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|_| AuthError::Malformed),
        }
    };
    let value = match header("authorization")? {
        Some(auth) => {
            let (scheme, token) = auth.split_once(' ').ok_or(AuthError::Malformed)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AuthError::Malformed);
            }
            token.trim().to_owned()
        }
        None => match header("x-api-key")? {
            Some(key) => key,
            None => return Ok(None),
        },
    };
    if value.is_empty() || value.len() > 512 || value.chars().any(|c| c.is_whitespace()) {
        return Err(AuthError::Malformed);
    }
    Ok(Some(value))
}

fn org_of(config: &Config, partner: &str) -> Result<String, AuthError> {
    config
        .partners
        .get(partner)
        .map(|p| p.org.clone())
        .ok_or(AuthError::Invalid)
}

async fn by_key(state: &AppState, key: &str) -> Result<Partner, AuthError> {
    let store = &state.gateway.store;
    let rows = store.keys_by_prefix(&key_prefix(key)).await?;
    let mut found = None;
    for row in rows {
        if state.credentials.verify(key, &row.hash) {
            found = Some(row);
        }
    }
    let row = found.ok_or(AuthError::Invalid)?;
    let now = now_ms();
    if row.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if [row.expires_at, row.grace_until]
        .into_iter()
        .flatten()
        .any(|end| end <= now)
    {
        return Err(AuthError::Expired);
    }
    let org = org_of(&state.gateway.config, &row.partner)?;
    if row.last_used_at.is_none_or(|at| now - at > TOUCH_EVERY_MS) {
        let (store, id) = (store.clone(), row.id.clone());
        tokio::spawn(async move {
            if let Err(err) = store.touch_partner_key(&id).await {
                tracing::debug!(error = %err, "key last-used time not recorded");
            }
        });
    }
    Ok(Partner {
        name: row.partner,
        org,
        scopes: None,
        via: Via::ApiKey(row.id),
    })
}

async fn by_token(state: &AppState, token: &str) -> Result<Partner, AuthError> {
    let id = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.get(..super::smart::TOKEN_ID_CHARS))
        .ok_or(AuthError::Invalid)?;
    let row = state
        .gateway
        .store
        .access_token(id)
        .await?
        .filter(|row| state.credentials.verify(token, &row.hash))
        .ok_or(AuthError::Invalid)?;
    if row.expires_at <= now_ms() {
        return Err(AuthError::Expired);
    }
    let org = org_of(&state.gateway.config, &row.partner)?;
    Ok(Partner {
        name: row.partner,
        org,
        scopes: Some(row.scopes.split_whitespace().map(str::to_owned).collect()),
        via: Via::AccessToken,
    })
}

/// The partners a certificate is bound to (`cert_subject` or `cert_san`).
pub fn bound_partners<'a>(config: &'a Config, peer: &PeerIdentity) -> Vec<&'a str> {
    config
        .partners
        .iter()
        .filter(|(_, p)| {
            p.cert_subject
                .as_deref()
                .is_some_and(|s| peer.has_subject(s))
                || p.cert_san.as_deref().is_some_and(|s| peer.has_san(s))
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// A key or token over a mutual-TLS connection must be the certificate's partner's; a partner bound to a
/// certificate must present it when any certificate is presented.
fn check_certificate(
    config: &Config,
    partner: &Partner,
    peer: Option<&PeerIdentity>,
) -> Result<(), AuthError> {
    let Some(peer) = peer else { return Ok(()) };
    let owners = bound_partners(config, peer);
    let bound = config
        .partners
        .get(&partner.name)
        .is_some_and(|p| p.cert_subject.is_some() || p.cert_san.is_some());
    if owners.contains(&partner.name.as_str()) || (owners.is_empty() && !bound) {
        Ok(())
    } else {
        Err(AuthError::CertificateMismatch)
    }
}

fn by_certificate(config: &Config, peer: &PeerIdentity) -> Result<Partner, AuthError> {
    match bound_partners(config, peer).as_slice() {
        [name] => Ok(Partner {
            name: (*name).to_owned(),
            org: org_of(config, name)?,
            scopes: None,
            via: Via::Certificate,
        }),
        [] => Err(AuthError::Missing),
        _ => Err(AuthError::Invalid),
    }
}

/// Authenticate a partner from a request's parts.
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Partner, AuthError> {
    let peer = parts.extensions.get::<PeerIdentity>();
    let config = &state.gateway.config;
    let partner = match presented(parts)? {
        Some(token) if token.starts_with(TOKEN_PREFIX) => by_token(state, &token).await?,
        Some(key) => by_key(state, &key).await?,
        None => match peer {
            Some(peer) => by_certificate(config, peer)?,
            None => return Err(AuthError::Missing),
        },
    };
    check_certificate(config, &partner, peer)?;
    if let Some((kind, write)) = required_scope(&parts.method, parts.uri.path())
        && !partner.allows(&kind, write)
    {
        let mode = if write { "writing" } else { "reading" };
        return Err(AuthError::Scope(format!("{mode} {kind}")));
    }
    Ok(partner)
}

/// What a request needs of an access token's scopes, read from its method and path: `GET /fhir/{Type}...`
/// reads `Type`, any other method writes it (`$validate` only reads); a transaction (`POST /fhir`) and an
/// upload (`POST /ingest/...`) write ServiceRequest; `GET /jobs/...` reads ServiceRequest. Handlers may
/// check more finely with [`Partner::allows`] (each entry of a transaction). `None`: no scope needed.
pub fn required_scope(method: &axum::http::Method, path: &str) -> Option<(String, bool)> {
    let write = !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next()) {
        (Some("fhir"), None | Some("")) => Some(("ServiceRequest".into(), write)),
        (Some("fhir"), Some(kind)) if kind.starts_with(|c: char| c.is_ascii_uppercase()) => {
            let validate = segments.any(|s| s.starts_with('$'));
            Some((kind.to_owned(), write && !validate))
        }
        (Some("ingest"), _) => Some(("ServiceRequest".into(), true)),
        (Some("jobs"), _) => Some(("ServiceRequest".into(), false)),
        _ => None,
    }
}

impl FromRequestParts<Arc<AppState>> for Partner {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await
    }
}

/// The admin caller (the `ONEDOOR_ADMIN_TOKEN` holder).
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = presented(parts)?.ok_or(AuthError::Missing)?;
        let expected = state
            .admin_token_hash
            .as_deref()
            .ok_or(AuthError::AdminDisabled)?;
        if state.credentials.verify(&token, expected) {
            return Ok(Admin);
        }
        // A partner's valid credential: known, but not the admin.
        match authenticate(parts, state).await {
            Ok(_) | Err(AuthError::Scope(_)) => Err(AuthError::NotAdmin),
            Err(AuthError::Store(err)) => Err(AuthError::Store(err)),
            Err(_) => Err(AuthError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_verified() {
        let a = Credentials::from_secret(b"one");
        let b = Credentials::from_secret(b"two");
        let hash = a.hash("od_key");
        assert_eq!(hash.len(), 64);
        assert!(a.verify("od_key", &hash));
        assert!(!a.verify("od_kez", &hash));
        assert!(!b.verify("od_key", &hash));
        assert!(!a.verify("od_key", "zz"));
        assert!(!a.verify("od_key", "é"));
    }

    #[test]
    fn requests_need_the_scope_of_their_resource() {
        use axum::http::Method;
        let need = |m: Method, p: &str| required_scope(&m, p);
        assert_eq!(
            need(Method::GET, "/fhir/Task/1"),
            Some(("Task".into(), false))
        );
        assert_eq!(
            need(Method::PUT, "/fhir/Task/1"),
            Some(("Task".into(), true))
        );
        assert_eq!(
            need(Method::POST, "/fhir"),
            Some(("ServiceRequest".into(), true))
        );
        assert_eq!(
            need(Method::POST, "/fhir/Consent/$validate"),
            Some(("Consent".into(), false))
        );
        assert_eq!(need(Method::POST, "/fhir/$validate"), None);
        assert_eq!(
            need(Method::POST, "/ingest/x"),
            Some(("ServiceRequest".into(), true))
        );
        assert_eq!(
            need(Method::GET, "/jobs/1"),
            Some(("ServiceRequest".into(), false))
        );
        assert_eq!(need(Method::GET, "/admin/messages"), None);
    }

    #[test]
    fn generated_keys_carry_their_id_in_the_prefix() {
        let (id, key) = new_key();
        assert_eq!(key_prefix(&key), format!("od_{id}"));
        assert_eq!(key.len(), 3 + 8 + 64);
    }

    fn partner(scopes: &[&str]) -> Partner {
        Partner {
            name: "p".into(),
            org: "s|v".into(),
            scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            via: Via::AccessToken,
        }
    }

    #[test]
    fn scopes_allow_by_type_and_mode() {
        let read_all = partner(&["system/*.read"]);
        assert!(read_all.allows("Task", false));
        assert!(!read_all.allows("ServiceRequest", true));
        let task = partner(&["system/Task.*", "system/ServiceRequest.write"]);
        assert!(task.allows("Task", true) && task.allows("Task", false));
        assert!(task.allows("ServiceRequest", true));
        assert!(!task.allows("ServiceRequest", false));
        assert!(!task.allows("Consent", true));
        let v2 = partner(&[
            "system/Patient.rs",
            "patient/Task.write",
            "system/Consent.cu",
        ]);
        assert!(v2.allows("Patient", false) && !v2.allows("Patient", true));
        assert!(
            !v2.allows("Task", true),
            "patient/ scopes are not system scopes"
        );
        assert!(v2.allows("Consent", true) && !v2.allows("Consent", false));
        assert!(!partner(&[]).allows("Task", false));
        let key = Partner {
            scopes: None,
            ..partner(&[])
        };
        assert!(key.allows("Consent", true));
    }
}
