//! Sending released records: FHIR REST (POST a transaction Bundle to the server's base URL), webhook (POST
//! the JSON), file (append NDJSON); and the id-only notifications to referrers. HTTP goes through reqwest
//! with rustls: TLS verification is always on; a destination may add a CA and a client identity (mutual
//! TLS). Every request carries `Idempotency-Key` and `X-Request-Id`.

use super::encode::fhir_json_line;
use super::obligations;
use crate::config::{Config, DestinationKind};
use crate::consent::Released;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Why a send failed (the outbox retries).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver answered with an error status.
    #[error("receiver answered HTTP {status}")]
    Status {
        /// The status.
        status: u16,
        /// How long the receiver asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The request did not complete.
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// Anything else (file, configuration).
    #[error("{0}")]
    Other(String),
}

/// HTTP clients per destination, built once.
pub struct Sender {
    clients: HashMap<String, reqwest::Client>,
    plain: reqwest::Client,
    config: Config,
}

impl Sender {
    /// Build the clients; a destination's CA or client identity that cannot be read is an error.
    pub fn new(config: &Config) -> Result<Self, String> {
        let mut clients = HashMap::new();
        for (name, destination) in &config.destinations {
            let mut builder = reqwest::Client::builder()
                .use_rustls_tls()
                .timeout(Duration::from_millis(destination.timeout_ms));
            if let Some(ca) = &destination.ca_file {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("destinations.{name}.ca_file: {e}"))?;
                let cert = reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| format!("destinations.{name}.ca_file: {e}"))?;
                builder = builder.add_root_certificate(cert);
            }
            if let Some(identity) = &destination.client_identity {
                let pem = std::fs::read(identity)
                    .map_err(|e| format!("destinations.{name}.client_identity: {e}"))?;
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("destinations.{name}.client_identity: {e}"))?;
                builder = builder.identity(identity);
            }
            clients.insert(
                name.clone(),
                builder
                    .build()
                    .map_err(|e| format!("destinations.{name}: {e}"))?,
            );
        }
        let plain = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            clients,
            plain,
            config: config.clone(),
        })
    }

    /// Deliver a released referral to a destination.
    pub async fn send(
        &self,
        destination: &str,
        released: &Released<Value>,
        key: &str,
    ) -> Result<(), SendError> {
        let target = self
            .config
            .destinations
            .get(destination)
            .ok_or_else(|| SendError::Other(format!("no destination '{destination}'")))?;
        if target.kind == DestinationKind::File
            && target.format == crate::config::DestinationFormat::HmisCsv
        {
            let mut encoder = crate::adapters::hmis::HmisCsvEncoder::create(
                std::path::Path::new(&target.endpoint),
                "onedoor",
            )
            .map_err(|e| SendError::Other(e.to_string()))?;
            let side = std::path::Path::new(&target.endpoint).join(obligations::HMIS_SIDE_FILE);
            obligations::append(&side, released)
                .map_err(|e| SendError::Other(format!("{}: {e}", side.display())))?;
            return encoder
                .encode(released)
                .map_err(|e| SendError::Other(e.to_string()));
        }
        if target.kind == DestinationKind::File {
            let path = std::path::Path::new(&target.endpoint);
            let side = obligations::side_file_for(path);
            obligations::append(&side, released)
                .map_err(|e| SendError::Other(format!("{}: {e}", side.display())))?;
            return super::file::append_line(path, &fhir_json_line(released))
                .map_err(|e| SendError::Other(format!("{}: {e}", path.display())));
        }
        let client = self.clients.get(destination).unwrap_or(&self.plain);
        let mut request = client
            .post(&target.endpoint)
            .header("Content-Type", "application/fhir+json")
            .header("Idempotency-Key", key)
            .header("X-Request-Id", key)
            .body(serde_json::to_vec(released.record()).unwrap_or_default());
        if let Some(token) = target
            .token_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
        {
            request = request.bearer_auth(token);
        }
        check(request.send().await?)
    }

    /// Deliver an id-only notification to a partner's `notify_url`.
    pub async fn notify(&self, partner: &str, body: &Value, key: &str) -> Result<(), SendError> {
        let url = self
            .config
            .partners
            .get(partner)
            .and_then(|p| p.notify_url.clone())
            .ok_or_else(|| SendError::Other(format!("partner '{partner}' has no notify_url")))?;
        let response = self
            .plain
            .post(url)
            .header("Content-Type", "application/fhir+json")
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await?;
        check(response)
    }
}

impl SendError {
    /// How long the receiver asked to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn check(response: reqwest::Response) -> Result<(), SendError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    Err(SendError::Status {
        status: status.as_u16(),
        retry_after,
    })
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
    use super::parse_retry_after;
    use std::time::Duration;

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
