//! Which destinations a referral goes to: the configured routes matching its performer organization or
//! one of its SDOH needs.

use super::Gateway;
use serde_json::Value;

impl Gateway {
    /// The destinations a referral goes to. A directory route sends it to the destination of the chosen
    /// service's organization when one is configured, else to its own destination.
    pub(super) fn routes_for(
        &self,
        performer: Option<&str>,
        request: Option<&Value>,
    ) -> Vec<String> {
        let needs = request.map(needs_of).unwrap_or_default();
        let performer_destination = self.destination_of(performer);
        let mut out: Vec<String> = self
            .config
            .routes
            .iter()
            .filter(|r| {
                r.performer.as_deref().is_some_and(|p| Some(p) == performer)
                    || r.need.as_deref().is_some_and(|n| needs.contains(&n))
            })
            .map(
                |r| match (&performer_destination, r.directory_category.is_empty()) {
                    (Some(own), false) => own.clone(),
                    _ => r.destination.clone(),
                },
            )
            .collect();
        let mut seen = std::collections::HashSet::new();
        out.retain(|destination| seen.insert(destination.clone()));
        out
    }

    /// The destination configured for the performer organization, if any.
    fn destination_of(&self, performer: Option<&str>) -> Option<String> {
        performer.and_then(|p| {
            self.config
                .destinations
                .iter()
                .find(|(_, d)| d.org == p)
                .map(|(name, _)| name.clone())
        })
    }
}

/// The SDOH need codes of a ServiceRequest (its category codings).
pub(super) fn needs_of(request: &Value) -> Vec<&str> {
    request["category"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .filter_map(|c| c["code"].as_str())
        .collect()
}
