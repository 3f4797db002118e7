//! The service directory as a routing target: choosing, for a referral that names no performer, a
//! HealthcareService of the directory (loaded from an HSDS source) whose category serves the need and whose
//! service area covers the person.
//!
//! A service matches when one of its `category` or `type` codings (code or display) or texts equals one of
//! the route's `directory_category` terms, ignoring case, and it is not `active: false`. Coverage is read from
//! `coverageArea` Locations (postal code, city, county, state, or a name equal to one of them — an HSDS service
//! area is a name): a service whose area names the person's postal code ranks above one naming their city,
//! then their county (`Address.district`), then their state; a service with no
//! service area is eligible everywhere but ranks last; a service whose area names none of them is not
//! eligible. Ties go to the service id that sorts first, so the choice is reproducible.

use crate::members::Members;
use serde_json::Value;
use std::collections::HashMap;

/// How well a service's area covers the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Coverage {
    /// The service has no service area: eligible, ranked last.
    Unstated,
    /// The area names the person's state.
    State,
    /// The area names the person's county (`Address.district`; "Harbor County" and "Harbor" agree).
    District,
    /// The area names the person's city.
    City,
    /// The area names the person's postal code.
    PostalCode,
}

/// The service chosen and why.
#[derive(Debug, Clone)]
pub struct Choice<'d> {
    /// The HealthcareService.
    pub service: &'d Value,
    /// How its area covers the person.
    pub coverage: Coverage,
}

/// Where the person lives, as the directory can match it.
#[derive(Debug, Default, Clone)]
pub struct Place {
    postal_code: Option<String>,
    city: Option<String>,
    district: Option<String>,
    state: Option<String>,
}

impl Place {
    /// The first address of a Patient.
    pub fn of_patient(patient: Option<&Value>) -> Self {
        let address = patient.and_then(|p| p.pointer("/address/0"));
        let field = |name: &str| {
            address
                .and_then(|a| a.get(name))
                .and_then(Value::as_str)
                .map(normalise)
                .filter(|v| !v.is_empty())
        };
        Self {
            postal_code: field("postalCode"),
            city: field("city"),
            district: field("district").map(|d| county(&d)),
            state: field("state"),
        }
    }
}

fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A county name without the word "county", normalised.
fn county(text: &str) -> String {
    let text = normalise(text);
    text.strip_suffix(" county").unwrap_or(&text).to_owned()
}

/// Choose the best service of `services` for `place` among those in `categories`; `locations` resolves
/// `coverageArea` references (`Location/id`).
pub fn choose<'d>(
    services: &'d [Value],
    locations: &HashMap<String, Value>,
    categories: &[String],
    place: &Place,
) -> Option<Choice<'d>> {
    let wanted: Vec<String> = categories.iter().map(|c| normalise(c)).collect();
    let mut eligible: Vec<Choice<'d>> = services
        .iter()
        .filter(|s| s["active"] != Value::Bool(false) && serves(s, &wanted))
        .filter_map(|service| {
            coverage(service, locations, place).map(|coverage| Choice { service, coverage })
        })
        .collect();
    eligible.sort_by(|a, b| {
        b.coverage
            .cmp(&a.coverage)
            .then_with(|| a.service["id"].as_str().cmp(&b.service["id"].as_str()))
    });
    eligible.into_iter().next()
}

fn serves(service: &Value, wanted: &[String]) -> bool {
    ["category", "type"]
        .iter()
        .flat_map(|field| service[*field].as_array().into_iter().flatten())
        .flat_map(|concept| {
            let codings = concept["coding"].as_array().into_iter().flatten();
            codings
                .flat_map(|c| [c.get("code"), c.get("display")])
                .chain([concept.get("text")])
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
        })
        .any(|term| wanted.contains(&normalise(term)))
}

fn coverage(
    service: &Value,
    locations: &HashMap<String, Value>,
    place: &Place,
) -> Option<Coverage> {
    let areas: Vec<&Value> = service["coverageArea"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if areas.is_empty() {
        return Some(Coverage::Unstated);
    }
    areas
        .iter()
        .filter_map(|area| area_coverage(area, locations, place))
        .max()
}

fn area_coverage(
    area: &Value,
    locations: &HashMap<String, Value>,
    place: &Place,
) -> Option<Coverage> {
    let location = area["reference"].as_str().and_then(|r| locations.get(r));
    let mut names: Vec<(Option<&str>, Option<Coverage>)> = vec![(area["display"].as_str(), None)];
    if let Some(location) = location {
        names.push((location["name"].as_str(), None));
        names.push((
            location
                .at(&["address", "postalCode"])
                .and_then(Value::as_str),
            Some(Coverage::PostalCode),
        ));
        names.push((
            location.at(&["address", "city"]).and_then(Value::as_str),
            Some(Coverage::City),
        ));
        names.push((
            location
                .at(&["address", "district"])
                .and_then(Value::as_str),
            None,
        ));
        names.push((
            location.at(&["address", "state"]).and_then(Value::as_str),
            Some(Coverage::State),
        ));
    }
    let candidates = [
        (place.postal_code.as_deref(), Coverage::PostalCode),
        (place.city.as_deref(), Coverage::City),
        (place.district.as_deref(), Coverage::District),
        (place.state.as_deref(), Coverage::State),
    ];
    names
        .iter()
        .filter_map(|(name, only)| Some(((*name)?, *only)))
        .flat_map(|(name, only)| {
            candidates.iter().filter_map(move |(value, level)| {
                let fits = only.is_none_or(|o| o == *level);
                let name = if *level == Coverage::District {
                    county(name)
                } else {
                    normalise(name)
                };
                (fits && *value == Some(name.as_str())).then_some(*level)
            })
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(id: &str, category: &str, areas: &[&str]) -> Value {
        json!({
            "resourceType": "HealthcareService", "id": id,
            "category": [{"coding": [{"code": category}], "text": category}],
            "coverageArea": areas.iter().map(|a| json!({"reference": format!("Location/{a}")})).collect::<Vec<_>>()
        })
    }

    fn locations() -> HashMap<String, Value> {
        [
            ("Location/zip", json!({"address": {"postalCode": "93721"}})),
            (
                "Location/city",
                json!({"address": {"city": "Fresno", "state": "CA"}}),
            ),
            ("Location/county", json!({"name": "Kern County"})),
            ("Location/fresno-county", json!({"name": "Fresno County"})),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn place() -> Place {
        Place::of_patient(Some(
            &json!({"address": [{"postalCode": "93721", "city": "fresno", "state": "CA"}]}),
        ))
    }

    #[test]
    fn the_service_whose_area_is_most_specific_to_the_person_wins() {
        let services = [
            service("a-statewide", "Food Pantry", &[]),
            service("b-city", "food pantry", &["city"]),
            service("c-zip", "Food Pantry", &["zip"]),
            service("d-housing", "Housing", &["zip"]),
        ];
        let chosen = choose(&services, &locations(), &["food pantry".into()], &place()).unwrap();
        assert_eq!(chosen.service["id"], "c-zip");
        assert_eq!(chosen.coverage, Coverage::PostalCode);
    }

    #[test]
    fn a_service_for_another_area_or_another_need_is_never_chosen() {
        let services = [
            service("kern", "Food Pantry", &["county"]),
            service("h", "Housing", &[]),
        ];
        assert!(choose(&services, &locations(), &["Food Pantry".into()], &place()).is_none());
        let inactive = [json!({"id": "x", "active": false, "category": [{"text": "Food Pantry"}]})];
        assert!(choose(&inactive, &locations(), &["Food Pantry".into()], &place()).is_none());
    }
}
