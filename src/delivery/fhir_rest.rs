//! The `fhir-rest` destination kind: POST the released transaction Bundle to a FHIR server's base URL.

use super::destination::{BoxFuture, Delivery, Destination, Outcome};
use super::http::HttpPost;
use super::registry::{BuildError, Kind, Spec};

/// The registry entry.
pub const KIND: Kind = Kind {
    name: "fhir-rest",
    remote: true,
    build,
};

/// POSTs each Bundle to the FHIR server.
pub struct FhirRest(HttpPost);

fn build(spec: Spec<'_>) -> Result<Box<dyn Destination>, BuildError> {
    Ok(Box::new(FhirRest(HttpPost::new(
        spec.name,
        spec.destination,
    )?)))
}

impl Destination for FhirRest {
    fn send<'a>(&'a self, delivery: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        self.0.post(delivery, "application/fhir+json")
    }
}
