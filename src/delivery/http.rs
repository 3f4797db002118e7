//! What the HTTP destination kinds (`fhir-rest`, `webhook`) and notifications share: a reqwest client with
//! rustls (TLS verification always on; a destination may add a CA and a client identity for mutual TLS),
//! the POST with `Idempotency-Key` and `X-Request-Id`, an optional bearer token from the environment (or a
//! Subscription channel's own headers), and
//! the reading of the answer: 2xx delivered; 408, 409, 425, 429 and 5xx retried (at least `Retry-After`);
//! other 4xx permanent; a request that does not complete retried.

use super::destination::{BoxFuture, Delivery, Outcome};
use super::registry::BuildError;
use crate::config;
use std::time::Duration;

/// POSTs JSON to one URL.
pub struct HttpPost {
    client: reqwest::Client,
    endpoint: String,
    token_env: Option<String>,
    headers: reqwest::header::HeaderMap,
}

impl HttpPost {
    /// The client of destination `name` (its timeout, CA and client identity).
    pub fn new(name: &str, destination: &config::Destination) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_millis(destination.timeout_ms));
        if let Some(ca) = &destination.ca_file {
            let cert = read_pem(name, "ca_file", ca)
                .and_then(|pem| reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string()))
                .map_err(|detail| BuildError::new(name, "ca_file", detail))?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some(identity) = &destination.client_identity {
            let identity = read_pem(name, "client_identity", identity)
                .and_then(|pem| reqwest::Identity::from_pem(&pem).map_err(|e| e.to_string()))
                .map_err(|detail| BuildError::new(name, "client_identity", detail))?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| BuildError::new(name, "endpoint", e.to_string()))?;
        Ok(Self {
            client,
            endpoint: destination.endpoint.clone(),
            token_env: destination.token_env.clone(),
            headers: reqwest::header::HeaderMap::new(),
        })
    }

    /// A Subscription's channel: `client` (shared by every channel) POSTing to `endpoint` with the
    /// channel's `headers` (`Name: value`, checked when the Subscription was created; any that no longer
    /// parse are left out).
    pub fn channel(client: reqwest::Client, endpoint: &str, headers: &[String]) -> Self {
        let mut map = reqwest::header::HeaderMap::new();
        for header in headers {
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(value.trim()),
            ) {
                map.append(name, value);
            }
        }
        Self {
            client,
            endpoint: endpoint.to_owned(),
            token_env: None,
            headers: map,
        }
    }

    /// POST the delivery's JSON with `content_type`.
    pub fn post<'a>(
        &'a self,
        delivery: Delivery<'a>,
        content_type: &'static str,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut request = self
                .client
                .post(&self.endpoint)
                .headers(self.headers.clone())
                .header("Content-Type", content_type)
                .header("Idempotency-Key", delivery.key)
                .header("X-Request-Id", delivery.key)
                .body(serde_json::to_vec(delivery.body()).unwrap_or_default());
            if let Some(token) = self.token_env.as_ref().and_then(|v| std::env::var(v).ok()) {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) => outcome_of(&response),
                Err(err) => Outcome::retry(format!("request failed: {}", without_url(err))),
            }
        })
    }
}

fn read_pem(_name: &str, _key: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The error without the URL (which may carry a token in its query).
fn without_url(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "no answer"
    };
    format!("{kind}: {}", err.without_url())
}

/// The outcome of an answer.
pub fn outcome_of(response: &reqwest::Response) -> Outcome {
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok());
    outcome_of_status(response.status().as_u16(), retry_after)
}

/// The outcome of an answer's status and `Retry-After` header.
pub fn outcome_of_status(status: u16, retry_after: Option<&str>) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Delivered;
    }
    let reason = format!("receiver answered HTTP {status}");
    let retryable = status >= 500 || matches!(status, 408 | 409 | 425 | 429);
    if !retryable && (400..500).contains(&status) {
        return Outcome::Permanent { reason };
    }
    let after = retry_after.and_then(parse_retry_after);
    Outcome::Retry { reason, after }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3); a date in the past is no wait.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::{outcome_of_status, parse_retry_after};
    use crate::delivery::Outcome;
    use std::time::Duration;

    #[test]
    fn answers_are_delivered_retried_or_refused_for_good() {
        assert_eq!(outcome_of_status(201, None), Outcome::Delivered);
        assert_eq!(
            outcome_of_status(503, Some("7")),
            Outcome::Retry {
                reason: "receiver answered HTTP 503".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        for retried in [408, 409, 425, 429, 500, 502] {
            assert!(
                matches!(outcome_of_status(retried, None), Outcome::Retry { .. }),
                "{retried}"
            );
        }
        for refused in [400, 401, 403, 404, 413, 422] {
            assert!(
                matches!(outcome_of_status(refused, None), Outcome::Permanent { .. }),
                "{refused}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
