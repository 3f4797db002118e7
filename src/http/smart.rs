//! SMART Backend Services (HL7 SMART App Launch, "backend services"): how a partner system obtains a
//! short-lived access token without a shared secret.
//!
//! The partner registers its public keys (`[partners.NAME] jwks` inline, or `jwks_file`) and the scopes it
//! may be granted (`scopes`). It signs a JWT assertion (RS384 or ES384; `iss` = `sub` = its name, `aud` =
//! `{server.base_url}/auth/token`, `exp` at most five minutes ahead, a fresh `jti`) and posts it to
//! `POST /auth/token` (`grant_type=client_credentials`, `client_assertion_type=urn:ietf:params:oauth:
//! client-assertion-type:jwt-bearer`, `client_assertion`, `scope`). The assertion ids seen are kept in the
//! store until they expire, so a replay is refused on every node. The answer is an opaque access token
//! (`odt_...`, [`TOKEN_SECONDS`] long), stored only as an HMAC like API keys, with the granted scopes:
//! each requested scope that lies within one the partner may be granted. The partner extractor accepts it
//! as a bearer credential and [`super::auth::Partner::allows`] applies its scopes. Errors follow OAuth 2.0
//! (RFC 6749 section 5.2, RFC 7523): `invalid_client` (401) for any assertion that does not authenticate,
//! `invalid_request`, `unsupported_grant_type` and `invalid_scope` (400).
//!
//! `/.well-known/smart-configuration` (also under `/fhir`) and the CapabilityStatement advertise it.

use super::AppState;
use super::auth::{TOKEN_PREFIX, hex, random_bytes};
use crate::config::Config;
use crate::store::now_ms;
use crate::store::partners::TokenRow;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// How long an access token works, in seconds.
pub const TOKEN_SECONDS: i64 = 300;
/// How far ahead an assertion's `exp` may be (five minutes, and 30 s of clock skew).
const MAX_ASSERTION_SECONDS: i64 = 300 + 30;
/// The length of an access token's id (after `odt_`).
pub const TOKEN_ID_CHARS: usize = 16;
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS384, Algorithm::ES384];

/// A SMART system scope: `system/<Type or *>.<read | write | * | v2 letters cruds>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The resource type, or `*`.
    pub resource: String,
    /// Whether it allows reading (and searching).
    pub read: bool,
    /// Whether it allows creating, updating and deleting.
    pub write: bool,
}

impl Scope {
    /// Parse a system scope; `None` for anything else (patient/user scopes, scopes with restrictions).
    pub fn parse(text: &str) -> Option<Self> {
        let (resource, permission) = text.strip_prefix("system/")?.split_once('.')?;
        let valid_type = resource == "*"
            || (!resource.is_empty() && resource.chars().all(|c| c.is_ascii_alphanumeric()));
        if !valid_type {
            return None;
        }
        let (read, write) = match permission {
            "read" => (true, false),
            "write" => (false, true),
            "*" => (true, true),
            v2 if !v2.is_empty() && v2.chars().all(|c| "cruds".contains(c)) => {
                (v2.contains(['r', 's']), v2.contains(['c', 'u', 'd']))
            }
            _ => return None,
        };
        Some(Self {
            resource: resource.to_owned(),
            read,
            write,
        })
    }

    /// Whether it allows reading or writing `resource_type`.
    pub fn allows(&self, resource_type: &str, write: bool) -> bool {
        (self.resource == "*" || self.resource == resource_type)
            && if write { self.write } else { self.read }
    }

    /// Whether everything it allows is allowed by `wider`.
    pub fn within(&self, wider: &Scope) -> bool {
        (wider.resource == "*" || wider.resource == self.resource)
            && (!self.read || wider.read)
            && (!self.write || wider.write)
    }
}

/// Why a token request was refused (OAuth 2.0 error codes).
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A parameter is missing or wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// Only `client_credentials` is supported.
    #[error("grant_type must be client_credentials")]
    UnsupportedGrantType,
    /// The assertion does not authenticate the client.
    #[error("{0}")]
    InvalidClient(String),
    /// None of the requested scopes may be granted.
    #[error("{0}")]
    InvalidScope(String),
    /// Something failed inside.
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            Self::InvalidClient(_) => (StatusCode::UNAUTHORIZED, "invalid_client"),
            Self::InvalidScope(_) => (StatusCode::BAD_REQUEST, "invalid_scope"),
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "token request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
            }
        };
        let body = json!({"error": code, "error_description": self.to_string()});
        (status, no_store(), axum::Json(body)).into_response()
    }
}

fn no_store() -> [(&'static str, &'static str); 2] {
    [("cache-control", "no-store"), ("pragma", "no-cache")]
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(err: crate::store::StoreError) -> Self {
        Self::Internal(err.to_string())
    }
}

/// The token endpoint's URL: the audience an assertion must name.
pub fn token_url(config: &Config) -> String {
    format!(
        "{}/auth/token",
        config.server.base_url.trim_end_matches('/')
    )
}

/// The claims of a client assertion.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    exp: i64,
    #[serde(default)]
    jti: String,
}

/// `GET /.well-known/smart-configuration`.
pub async fn configuration(State(state): State<Arc<AppState>>) -> Response {
    let config = &state.gateway.config;
    let mut scopes = vec!["system/*.read".to_owned(), "system/*.write".to_owned()];
    for kind in ["ServiceRequest", "Task", "Consent", "Patient"] {
        scopes.push(format!("system/{kind}.read"));
        scopes.push(format!("system/{kind}.write"));
    }
    axum::Json(json!({
        "token_endpoint": token_url(config),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": scopes,
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }))
    .into_response()
}

/// The CapabilityStatement's `rest.security`: SMART on FHIR with the token endpoint.
pub fn capability_security(config: &Config) -> Value {
    json!({
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
        "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                        "extension": [{"url": "token", "valueUri": token_url(config)}]}],
        "description": "A partner authenticates with an API key (Authorization: Bearer <key>), a client certificate bound to it, \
                        or a SMART Backend Services access token (client_credentials with a private_key_jwt assertion, RS384 or ES384)"
    })
}

/// `POST /auth/token`.
pub async fn token(
    State(state): State<Arc<AppState>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(form) = form.map_err(|e| OAuthError::InvalidRequest(e.body_text()))?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType);
    }
    if field("client_assertion_type") != ASSERTION_TYPE {
        return Err(OAuthError::InvalidRequest(format!(
            "client_assertion_type must be {ASSERTION_TYPE}"
        )));
    }
    let config = &state.gateway.config;
    let claims = verify_assertion(config, field("client_assertion"))?;
    if !field("client_id").is_empty() && field("client_id") != claims.iss {
        return Err(OAuthError::InvalidClient(
            "client_id is not the assertion's issuer".into(),
        ));
    }
    let scopes = granted(config, &claims.iss, field("scope"))?;
    if !state
        .gateway
        .store
        .record_jti(&claims.iss, &claims.jti, claims.exp.saturating_mul(1000))
        .await?
    {
        return Err(OAuthError::InvalidClient(
            "the assertion's jti was used before".into(),
        ));
    }
    issue(&state, &claims.iss, &scopes).await
}

async fn issue(state: &AppState, partner: &str, scopes: &[String]) -> Result<Response, OAuthError> {
    let id = hex(&random_bytes::<8>());
    let token = format!("{TOKEN_PREFIX}{id}{}", hex(&random_bytes::<32>()));
    let scope = scopes.join(" ");
    let row = TokenRow {
        partner: partner.to_owned(),
        hash: state.credentials.hash(&token),
        scopes: scope.clone(),
        expires_at: now_ms() + TOKEN_SECONDS * 1000,
    };
    state.gateway.store.add_access_token(&id, &row).await?;
    tracing::info!(partner, scope = %scope, "access token issued");
    let body = json!({"access_token": token, "token_type": "bearer", "expires_in": TOKEN_SECONDS, "scope": scope});
    Ok((no_store(), axum::Json(body)).into_response())
}

/// The requested scopes that lie within one the partner may be granted.
fn granted(config: &Config, partner: &str, requested: &str) -> Result<Vec<String>, OAuthError> {
    if requested.trim().is_empty() {
        return Err(OAuthError::InvalidScope(
            "give the scopes requested (scope=...)".into(),
        ));
    }
    let allowed: Vec<Scope> = config
        .partners
        .get(partner)
        .map(|p| p.scopes.iter().filter_map(|s| Scope::parse(s)).collect())
        .unwrap_or_default();
    let scopes: Vec<String> = requested
        .split_whitespace()
        .filter(|s| Scope::parse(s).is_some_and(|s| allowed.iter().any(|a| s.within(a))))
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope(
            "none of the requested scopes may be granted to this client".into(),
        ));
    }
    Ok(scopes)
}

/// Verify a client assertion: its signature with one of the partner's registered keys, and its claims.
fn verify_assertion(config: &Config, assertion: &str) -> Result<Claims, OAuthError> {
    let _ = super::jwt_crypto::install();
    let invalid = |why: &str| OAuthError::InvalidClient(why.to_owned());
    if assertion.is_empty() {
        return Err(OAuthError::InvalidRequest(
            "client_assertion is missing".into(),
        ));
    }
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| invalid("the client assertion is not a signed JWT"))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(invalid("the assertion must be signed with RS384 or ES384"));
    }
    let unverified: Claims = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| invalid("the assertion lacks iss, exp or jti"))?;
    let partner = &unverified.iss;
    let keys = registered_keys(config, partner)?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_url(config)]);
    validation.set_issuer(&[partner]);
    validation.sub = Some(partner.clone());
    validation.leeway = 30;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let mut last = invalid("no registered key of this client verifies the assertion");
    for jwk in keys
        .keys
        .iter()
        .filter(|k| fits(k, header.alg, header.kid.as_deref()))
    {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<Claims>(assertion, &key, &validation) {
            Ok(data) => return check_claims(data.claims),
            Err(err) => last = explain(&err),
        }
    }
    Err(last)
}

fn check_claims(claims: Claims) -> Result<Claims, OAuthError> {
    let now = now_ms() / 1000;
    if claims.exp - now > MAX_ASSERTION_SECONDS {
        return Err(OAuthError::InvalidClient(
            "the assertion's exp is more than five minutes ahead".into(),
        ));
    }
    if claims.jti.is_empty() || claims.jti.len() > 255 {
        return Err(OAuthError::InvalidClient(
            "the assertion needs a jti (at most 255 characters)".into(),
        ));
    }
    Ok(claims)
}

fn explain(err: &jsonwebtoken::errors::Error) -> OAuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    let why = match err.kind() {
        K::ExpiredSignature => "the assertion has expired",
        K::InvalidAudience => "the assertion's aud is not this token endpoint",
        K::InvalidIssuer | K::InvalidSubject => {
            "the assertion's iss and sub must both be the client id"
        }
        K::ImmatureSignature => "the assertion is not valid yet",
        K::MissingRequiredClaim(_) => "the assertion lacks iss, sub, aud or exp",
        _ => "no registered key of this client verifies the assertion",
    };
    OAuthError::InvalidClient(why.to_owned())
}

/// Whether a registered key may verify an assertion signed with `alg` (and named `kid`).
fn fits(jwk: &Jwk, alg: Algorithm, kid: Option<&str>) -> bool {
    let family = matches!(
        (&jwk.algorithm, alg),
        (AlgorithmParameters::RSA(_), Algorithm::RS384)
            | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES384)
    );
    let named = match (kid, jwk.common.key_id.as_deref()) {
        (Some(wanted), Some(id)) => wanted == id,
        _ => true,
    };
    family && named
}

/// The partner's JWKS (inline or from its file).
fn registered_keys(config: &Config, partner: &str) -> Result<JwkSet, OAuthError> {
    let unknown = || OAuthError::InvalidClient("unknown client".into());
    let settings = config.partners.get(partner).ok_or_else(unknown)?;
    let jwks = match (&settings.jwks, &settings.jwks_file) {
        (Some(inline), _) => parse_jwks(inline),
        (None, Some(path)) => read_jwks(path),
        (None, None) => return Err(unknown()),
    };
    jwks.map_err(|why| {
        tracing::error!(partner, %why, "the partner's JWKS cannot be read");
        OAuthError::InvalidClient("the client's registered keys cannot be read".into())
    })
}

/// A JWKS from configuration: a table or JSON text.
pub fn parse_jwks(value: &Value) -> Result<JwkSet, String> {
    let parsed = match value {
        Value::String(text) => serde_json::from_str(text),
        other => serde_json::from_value(other.clone()),
    };
    parsed.map_err(|e| format!("not a JWKS ({{\"keys\": [...]}}): {e}"))
}

/// A JWKS file: read and parsed, or why it cannot be.
fn read_jwks(path: &std::path::Path) -> Result<JwkSet, String> {
    match std::fs::read_to_string(path) {
        Err(_) if !path.is_file() => Err(format!("{} does not exist", path.display())),
        Err(err) => Err(format!("{}: {err}", path.display())),
        Ok(text) => parse_jwks(&Value::String(text)),
    }
}

/// What is wrong with a partner's JWKS: that it does not parse, or that none of its keys can ever verify an
/// assertion (each named with why). A JWKS may hold other keys beside the ones it signs with: those are
/// passed over at the token endpoint and not reported.
fn jwks_problems(at: &str, jwks: Result<JwkSet, String>) -> Vec<String> {
    let jwks = match jwks {
        Err(why) => return vec![format!("{at}: {why}")],
        Ok(jwks) => jwks,
    };
    let mut reasons = Vec::new();
    for (index, jwk) in jwks.keys.iter().enumerate() {
        let Some(why) = super::jwt_crypto::unusable(jwk) else {
            return Vec::new();
        };
        let kid = jwk.common.key_id.as_deref().unwrap_or("(no kid)");
        reasons.push(format!("key {index} '{kid}': {why}"));
    }
    let reasons = if reasons.is_empty() {
        "it holds none".to_owned()
    } else {
        reasons.join("; ")
    };
    vec![format!(
        "{at}: no key that can verify an RS384 or ES384 assertion ({reasons})"
    )]
}

/// Configuration checks for the partners' credentials: a readable JWKS whose keys can verify assertions, with
/// the scopes that may be granted, scopes that parse, and no certificate binding shared by two partners.
pub fn check_partners(config: &Config, shown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bindings: HashMap<String, &str> = HashMap::new();
    for (name, partner) in &config.partners {
        let at = format!("{shown}: partners.{name}");
        if partner.jwks.is_some() && partner.jwks_file.is_some() {
            problems.push(format!("{at}: give jwks or jwks_file, not both"));
        }
        if let Some(inline) = &partner.jwks {
            problems.extend(jwks_problems(&format!("{at}.jwks"), parse_jwks(inline)));
        }
        if let Some(path) = &partner.jwks_file {
            problems.extend(jwks_problems(&format!("{at}.jwks_file"), read_jwks(path)));
        }
        let smart = partner.jwks.is_some() || partner.jwks_file.is_some();
        if smart && partner.scopes.is_empty() {
            problems.push(format!(
                "{at}.scopes: give the scopes it may be granted (e.g. [\"system/*.read\"])"
            ));
        }
        for scope in partner.scopes.iter().filter(|s| Scope::parse(s).is_none()) {
            problems.push(format!(
                "{at}.scopes: '{scope}' is not a system scope (system/<Type or *>.<read|write|*>)"
            ));
        }
        for binding in [&partner.cert_subject, &partner.cert_san]
            .into_iter()
            .flatten()
        {
            if let Some(other) = bindings.insert(binding.clone(), name) {
                problems.push(format!(
                    "{at}: the certificate '{binding}' is already bound to partners.{other}"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn scopes_parse_and_nest() {
        let all_read = Scope::parse("system/*.read").unwrap();
        let task_read = Scope::parse("system/Task.read").unwrap();
        let task_all = Scope::parse("system/Task.*").unwrap();
        assert!(task_read.within(&all_read));
        assert!(!task_all.within(&all_read));
        assert!(task_read.within(&task_all));
        assert!(!all_read.within(&task_all));
        for bad in [
            "patient/*.read",
            "system/Task",
            "system/.read",
            "system/Task.x",
            "system/Ta-sk.read",
            "system/Task.rs?x=1",
        ] {
            assert!(Scope::parse(bad).is_none(), "{bad}");
        }
    }
}
