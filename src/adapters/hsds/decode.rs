//! Reading HSDS JSON: each object is recognised by the fields HSDS gives it (a service has
//! `service_at_locations` or `eligibility_description` or an `organization`; a location has
//! `location_type` or coordinates; an organization has `organization_identifiers`, `legal_status` or
//! `services`). An object that is none of these is rejected with its file and position.

use crate::adapters::fhir::FhirSource;
use crate::adapters::{ContextTable, Decoded, Position, RecordError, SourceRecord};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;

/// The variables an HSDS mapping sees.
pub const CONTEXT: &[ContextTable] = &[
    ContextTable {
        variable: "organization",
        table: "organization",
        columns: &[],
    },
    ContextTable {
        variable: "service",
        table: "service",
        columns: &[],
    },
    ContextTable {
        variable: "location",
        table: "location",
        columns: &[],
    },
    ContextTable {
        variable: "location_ids",
        table: "service_at_location",
        columns: &[],
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &["organization", "service", "location"];

/// HSDS JSON files.
pub struct HsdsSource {
    files: Vec<std::path::PathBuf>,
}

impl HsdsSource {
    /// A JSON file or a folder of them.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            files: FhirSource::open(path)?.files().to_vec(),
        })
    }

    /// Every organization, service and location (each id once), in file order.
    pub fn records(&self) -> impl Iterator<Item = Decoded> + '_ {
        let mut seen = HashSet::new();
        self.files
            .iter()
            .flat_map(|file| file_records(file))
            .filter(move |r| match r {
                Ok(record) => seen.insert(format!("{}/{}", record.kind, record.key)),
                Err(_) => true,
            })
    }
}

fn file_records(path: &Path) -> Vec<Decoded> {
    let name = crate::adapters::csv_table::display_name(path);
    let value: Value = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(value) => value,
        Err(why) => {
            return vec![Err(RecordError::new(
                Position::file(&name),
                format!("not readable HSDS JSON: {why}"),
            ))];
        }
    };
    let items: Vec<&Value> = match (&value, value.get("contents")) {
        (_, Some(Value::Array(contents))) => contents.iter().collect(),
        (Value::Array(list), _) => list.iter().collect(),
        (object, _) => vec![object],
    };
    items
        .into_iter()
        .enumerate()
        .flat_map(|(index, item)| object_records(item, &name, index))
        .collect()
}

fn object_records(item: &Value, file: &str, index: usize) -> Vec<Decoded> {
    let position = Position::file(file).with_field(format!("object {}", index + 1));
    let Some(id) = item
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    else {
        return vec![Err(RecordError::new(
            position,
            "no id (expected the HSDS object's id)",
        ))];
    };
    let has = |field: &str| item.get(field).is_some_and(|v| !v.is_null());
    if has("service_at_locations")
        || has("eligibility_description")
        || (has("organization") && has("status"))
    {
        return service_records(item, id, position);
    }
    if has("location_type") || has("latitude") || has("addresses") && !has("services") {
        return vec![Ok(record(
            "location",
            id,
            position,
            json!({ "location": item }),
        ))];
    }
    if has("organization_identifiers") || has("legal_status") || has("services") || has("website") {
        let mut out = vec![Ok(record(
            "organization",
            id,
            position.clone(),
            json!({ "organization": item }),
        ))];
        for service in item
            .get("services")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(service_id) = service.get("id").and_then(Value::as_str) {
                let mut service = service.clone();
                service["organization"] = item.clone();
                out.extend(service_records(&service, service_id, position.clone()));
            }
        }
        return out;
    }
    vec![Err(RecordError::new(
        position,
        "not an HSDS organization, service or location (none of their identifying fields is present)",
    ))]
}

fn service_records(service: &Value, id: &str, position: Position) -> Vec<Decoded> {
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
        json!({ "service": service, "organization": organization, "location_ids": location_ids }),
    )));
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

fn record(kind: &'static str, id: &str, position: Position, context: Value) -> SourceRecord {
    SourceRecord {
        kind,
        key: id.to_owned(),
        group: format!("{kind}:{id}"),
        position,
        context,
        related: Vec::new(),
    }
}
