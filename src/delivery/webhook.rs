//! The `webhook` destination kind: POST the released Bundle as JSON to a URL. Notifications to a partner's
//! `notify_url` go the same way.

use super::destination::{BoxFuture, Delivery, Destination, Outcome};
use super::http::HttpPost;
use super::registry::{BuildError, Kind, Spec};

/// The registry entry.
pub const KIND: Kind = Kind {
    name: "webhook",
    remote: true,
    build,
};

/// POSTs each Bundle (or notification) to the URL.
pub struct Webhook(HttpPost);

fn build(spec: Spec<'_>) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(Webhook(HttpPost::new(
        spec.name,
        spec.destination,
    )?)))
}

impl Destination for Webhook {
    fn send<'a>(&'a self, delivery: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        self.0.post(delivery, "application/fhir+json")
    }
}
