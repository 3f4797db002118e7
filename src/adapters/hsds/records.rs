//! The records HSDS JSON and HSDS CSV both yield: a service with its organization, locations and service
//! areas (each also a record of its own), and the record a single object becomes. `decode` (JSON) and `csv`
//! (tables put back together into the API's objects) share these, so neither imports the other's helpers.

use crate::adapters::{Decoded, Position, SourceRecord};
use serde_json::{Value, json};

pub(super) fn service_records(service: &Value, id: &str, position: Position) -> Vec<Decoded> {
    let locations: Vec<&Value> = service
        .get("service_at_locations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|sal| sal.get("location"))
        .collect();
    let location_ids: Vec<&str> = locations
        .iter()
        .filter_map(|l| l.get("id").and_then(Value::as_str))
        .collect();
    let organization = service.get("organization").cloned().unwrap_or(Value::Null);
    let areas: Vec<&Value> = list(service, "service_areas")
        .filter(|a| a.get("id").and_then(Value::as_str).is_some())
        .collect();
    let area_ids: Vec<&str> = areas
        .iter()
        .filter_map(|a| a.get("id").and_then(Value::as_str))
        .collect();
    let terms: Vec<&Value> = list(service, "attributes")
        .filter_map(|a| a.get("taxonomy_term"))
        .collect();
    let mut out = Vec::new();
    if let Some(org_id) = organization.get("id").and_then(Value::as_str) {
        out.push(Ok(record(
            "organization",
            org_id,
            position.clone(),
            json!({ "organization": organization }),
        )));
    }
    out.push(Ok(record(
        "service",
        id,
        position.clone(),
        json!({
            "service": service,
            "organization": organization,
            "location_ids": location_ids,
            "service_area_ids": area_ids,
            "taxonomy_terms": terms,
        }),
    )));
    for area in areas {
        if let Some(area_id) = area.get("id").and_then(Value::as_str) {
            out.push(Ok(record(
                "service_area",
                area_id,
                position.clone(),
                json!({ "service_area": area }),
            )));
        }
    }
    for location in locations {
        if let Some(location_id) = location.get("id").and_then(Value::as_str) {
            out.push(Ok(record(
                "location",
                location_id,
                position.clone(),
                json!({ "location": location }),
            )));
        }
    }
    out
}

fn list<'v>(value: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

pub(super) fn record(
    kind: &'static str,
    id: &str,
    position: Position,
    context: Value,
) -> SourceRecord {
    SourceRecord {
        kind,
        key: id.to_owned(),
        group: format!("{kind}:{id}"),
        position,
        context,
        related: Vec::new(),
        joined: Vec::new(),
    }
}
