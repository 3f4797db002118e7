//! Reading HSDS JSON: each object is recognised by the fields HSDS gives it (a service has
//! `service_at_locations` or `eligibility_description` or an `organization`; a location has
//! `location_type` or coordinates; an organization has `organization_identifiers`, `legal_status` or
//! `services`). An object that is none of these is rejected with its file and position.

use super::records::{record, service_records};
use crate::adapters::csv_table::TextEncoding;
use crate::adapters::fhir::FhirSource;
use crate::adapters::{ContextTable, Decoded, Position, QuirkLog, RecordError};
use serde_json::{Value, json};
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
    ContextTable {
        variable: "service_area_ids",
        table: "service_area",
        columns: &[],
    },
    ContextTable {
        variable: "taxonomy_terms",
        table: "attribute",
        columns: &[],
    },
    ContextTable {
        variable: "service_area",
        table: "service_area",
        columns: &[],
    },
];

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &["organization", "service", "location", "service_area"];

/// HSDS JSON files, or an HSDS CSV folder.
pub struct HsdsSource {
    files: Vec<std::path::PathBuf>,
    tabular: Option<Vec<Decoded>>,
    quirks: QuirkLog,
}

impl HsdsSource {
    /// A JSON file or a folder of them; a folder (or zip) holding `services.csv`, `organizations.csv` or
    /// `locations.csv` is read as HSDS CSV.
    pub fn open(path: &Path, encoding: TextEncoding, quirks: &QuirkLog) -> Result<Self, String> {
        if let Some(records) = super::csv::open(path, encoding, quirks)? {
            return Ok(Self {
                files: Vec::new(),
                tabular: Some(records),
                quirks: quirks.clone(),
            });
        }
        let files = FhirSource::open(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
            .files()
            .to_vec();
        Ok(Self {
            files,
            tabular: None,
            quirks: quirks.clone(),
        })
    }

    /// Every organization, service, location and service area (each id once), in file order. A record read
    /// again (the organization a service embeds, the same id twice) is listed as skipped where it is (its
    /// element is accounted for by what else it holds, when it holds something else).
    pub fn records(self) -> impl Iterator<Item = Decoded> {
        let mut seen: std::collections::HashMap<String, String> = Default::default();
        let quirks = self.quirks.clone();
        let counting = self.quirks;
        let decoded: Box<dyn Iterator<Item = Decoded> + Send> = match self.tabular {
            Some(records) => Box::new(records.into_iter()),
            None => Box::new(
                self.files
                    .into_iter()
                    .flat_map(move |file| file_records(&file, &counting)),
            ),
        };
        decoded.filter(move |r| match r {
            Ok(record) => {
                let key = format!("{}/{}", record.kind, record.key);
                if let Some(first) = seen.get(&key) {
                    quirks.skip_at(
                        &record.position,
                        format!(
                            "the {} '{}' again (first read at {first})",
                            record.kind, record.key
                        ),
                    );
                    return false;
                }
                seen.insert(key, record.position.to_string());
                true
            }
            Err(_) => true,
        })
    }
}

fn file_records(path: &Path, quirks: &QuirkLog) -> Vec<Decoded> {
    let name = crate::adapters::csv_table::display_name(path);
    let value: Value = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| match crate::adapters::csv_table::utf16_bom(&b) {
            Some(why) => Err(why),
            None => serde_json::from_slice(&b).map_err(|e| e.to_string()),
        }) {
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
    // The reconciliation's rows: the file's objects.
    quirks.rows_read(&name, items.len() as u64);
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
    classify(item, id, position)
}

fn classify(item: &Value, id: &str, position: Position) -> Vec<Decoded> {
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
