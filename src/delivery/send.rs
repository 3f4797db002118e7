//! The server's destinations, built once from the configuration through the
//! [`registry`](super::registry): one per `[destinations.NAME]`, and a webhook per partner with a
//! `notify_url` for the id-only notifications to referrers. Each attempt is bounded by its destination's
//! `timeout_ms` (notifications: `server.notify_timeout_ms`); a timeout is a retryable failure.

use super::destination::{Delivery, Destination, Outcome};
use super::registry::{self, BuildError};
use crate::config::{self, Config};
use crate::consent::Released;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// A built destination with its limits.
struct Target {
    destination: Box<dyn Destination>,
    timeout: Duration,
    max_in_flight: usize,
}

/// Every destination and notification endpoint of the configuration, built once.
pub struct Sender {
    destinations: HashMap<String, Target>,
    notifiers: HashMap<String, Target>,
    default_in_flight: usize,
}

impl Sender {
    /// Build them; a destination's CA or client identity that cannot be read is an error.
    pub fn new(config: &Config) -> Result<Self, String> {
        Self::build(config).map_err(|e| e.to_string())
    }

    fn build(config: &Config) -> Result<Self, BuildError> {
        let default_in_flight = config.server.destination_max_in_flight.max(1);
        let mut destinations = HashMap::new();
        for (name, destination) in &config.destinations {
            let target = Target {
                destination: registry::build(name, destination)?,
                timeout: Duration::from_millis(destination.timeout_ms),
                max_in_flight: destination
                    .max_in_flight
                    .unwrap_or(default_in_flight)
                    .max(1),
            };
            destinations.insert(name.clone(), target);
        }
        let mut notifiers = HashMap::new();
        for (name, partner) in &config.partners {
            let Some(url) = &partner.notify_url else {
                continue;
            };
            let mut endpoint = config::Destination::local(super::webhook::KIND.name, &partner.org);
            endpoint.endpoint = url.clone();
            endpoint.timeout_ms = config.server.notify_timeout_ms;
            let target = Target {
                destination: registry::build(&format!("notify:{name}"), &endpoint)?,
                timeout: Duration::from_millis(config.server.notify_timeout_ms),
                max_in_flight: default_in_flight,
            };
            notifiers.insert(name.clone(), target);
        }
        Ok(Self {
            destinations,
            notifiers,
            default_in_flight,
        })
    }

    /// How many deliveries may be in flight at once to a destination (`notification`: to a partner's
    /// notification endpoint).
    pub fn max_in_flight(&self, name: &str, notification: bool) -> usize {
        let targets = if notification {
            &self.notifiers
        } else {
            &self.destinations
        };
        targets
            .get(name)
            .map_or(self.default_in_flight, |t| t.max_in_flight)
    }

    /// Deliver a released referral to a destination.
    pub async fn send(&self, destination: &str, released: &Released<Value>, key: &str) -> Outcome {
        let Some(target) = self.destinations.get(destination) else {
            return Outcome::retry(format!("no destination '{destination}'"));
        };
        attempt(target, Delivery::released(released, key)).await
    }

    /// Deliver an id-only notification to a partner's `notify_url`.
    pub async fn notify(&self, partner: &str, body: &Value, key: &str) -> Outcome {
        let Some(target) = self.notifiers.get(partner) else {
            return Outcome::retry(format!("partner '{partner}' has no notify_url"));
        };
        attempt(target, Delivery::notification(body, key)).await
    }
}

/// One attempt within the target's timeout.
async fn attempt(target: &Target, delivery: Delivery<'_>) -> Outcome {
    match tokio::time::timeout(target.timeout, target.destination.send(delivery)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::retry(format!(
            "no answer within {} ms",
            target.timeout.as_millis()
        )),
    }
}
