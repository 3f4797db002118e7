//! The server's destinations, built once from the configuration through the
//! [`registry`](super::registry): one per `[destinations.NAME]`, and the client of the Subscription
//! channels the referrers' id-only notifications go through (`channel`). Each attempt is bounded by its
//! destination's `timeout_ms` (notifications: `server.notify_timeout_ms`); a timeout is a retryable
//! failure.

use super::channel::Channels;
use super::destination::{Delivery, Destination, Outcome};
use super::registry::{self, BuildError};
use crate::config::Config;
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
    channels: Channels,
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
        let channels = Channels::new(config.server.notify_timeout_ms)
            .map_err(|detail| BuildError::new("notifications", "notify_timeout_ms", detail))?;
        Ok(Self {
            destinations,
            channels,
            default_in_flight,
        })
    }

    /// How many deliveries may be in flight at once to a destination (`notification`: to a
    /// Subscription's endpoint, which takes the default).
    pub fn max_in_flight(&self, name: &str, notification: bool) -> usize {
        if notification {
            return self.default_in_flight;
        }
        self.destinations
            .get(name)
            .map_or(self.default_in_flight, |t| t.max_in_flight)
    }

    /// The Subscription channels' client.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// Deliver a released referral to a destination.
    pub async fn send(&self, destination: &str, released: &Released<Value>, key: &str) -> Outcome {
        let Some(target) = self.destinations.get(destination) else {
            return Outcome::retry(format!("no destination '{destination}'"));
        };
        attempt(target, Delivery::released(released, key)).await
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
