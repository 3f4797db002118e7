//! API errors as FHIR OperationOutcome with the right HTTP status. Internal details are logged (without
//! personal data) and never shown to clients.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What can go wrong answering a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unknown credentials.
    #[error("authentication required: send Authorization: Bearer <api key>")]
    Unauthorized,
    /// Not found, or not visible to this partner.
    #[error("not found")]
    NotFound,
    /// Invalid input.
    #[error("{0}")]
    Invalid(String),
    /// Invalid FHIR, issue by issue.
    #[error("invalid FHIR: {} issue(s)", .0.len())]
    Unprocessable(Vec<crate::validation::Issue>),
    /// A malformed request: a query value out of range, a body that is not JSON (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the limit named (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request body stopped arriving (408).
    #[error("{0}")]
    Timeout(String),
    /// A workflow rule forbids it.
    #[error("{0}")]
    Conflict(String),
    /// The caller may see this but not do it.
    #[error("{0}")]
    NotAllowed(String),
    /// The update was based on a version that is no longer current (`If-Match`).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The admin API is not enabled or the token is wrong.
    #[error("forbidden")]
    Forbidden,
    /// Something failed inside.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "login"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not-found"),
            Self::Invalid(_) | Self::Unprocessable(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
            }
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "value"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-costly"),
            Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "business-rule"),
            Self::NotAllowed(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "conflict"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "exception"),
        }
    }
}

impl From<crate::gateway::GatewayError> for ApiError {
    fn from(err: crate::gateway::GatewayError) -> Self {
        use crate::gateway::GatewayError as G;
        match err {
            G::Invalid(why) => Self::Invalid(why),
            G::Unprocessable(issues) => Self::Unprocessable(issues),
            G::Conflict(why) => Self::Conflict(why),
            G::NotFound => Self::NotFound,
            G::NotAllowed(why) => Self::NotAllowed(why),
            G::Store(store) => store.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        match err {
            crate::store::StoreError::VersionConflict(why) => Self::PreconditionFailed(why),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// An OperationOutcome body.
pub fn outcome(severity: &str, code: &str, diagnostics: &str) -> serde_json::Value {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]})
}

/// An OperationOutcome of validation issues, each an error with its element as `expression` (a FHIRPath
/// such as `Bundle.entry[3].resource.meta`) and its JSON pointer as `location`-like detail in `diagnostics`.
pub fn issues_outcome(issues: &[crate::validation::Issue]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = issues
        .iter()
        .take(MAX_ISSUES)
        .map(|i| {
            json!({"severity": "error", "code": "invalid", "diagnostics": i.to_string(),
                   "expression": [fhirpath(&i.path)]})
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": list})
}

/// How many issues an error answer lists.
const MAX_ISSUES: usize = 100;

/// A JSON pointer (`/entry/3/resource/meta`) as a FHIRPath expression from the resource
/// (`entry[3].resource.meta`); the root is `$this`.
pub fn fhirpath(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    if out.is_empty() { "$this".into() } else { out }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let (status, code) = self.status_and_code();
        let body = match &self {
            Self::Unprocessable(issues) => issues_outcome(issues),
            _ => outcome("error", code, &self.to_string()),
        };
        (
            status,
            [("content-type", "application/fhir+json")],
            body.to_string(),
        )
            .into_response()
    }
}
