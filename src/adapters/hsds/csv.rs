//! HSDS 3.0 CSV (the tabular form: one CSV per table, linked by `*_id` columns): `organizations.csv`,
//! `services.csv`, `locations.csv`, `service_at_location.csv` (or `service_at_locations.csv`),
//! `service_areas.csv`, `addresses.csv`, `phones.csv`, `attributes.csv`, `taxonomy_terms.csv`,
//! `taxonomies.csv`. The rows are put back together into the objects the HSDS API returns (a service with its
//! organization, `service_at_locations[].location` with its addresses, `service_areas`, `phones` and
//! `attributes[].taxonomy_term`), so the JSON mapping reads CSV unchanged. Directory tables are small: they are
//! held in memory. Every row keeps its position (file and line); a row pointing at an id that is not in its
//! table is rejected with its line and column.

use super::records::{record, service_records};
use crate::adapters::csv_table::{Row, TableSpec, TextEncoding};
use crate::adapters::oneroster::Export;
use crate::adapters::{Decoded, Position, QuirkLog, RecordError};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

const fn spec(file: &'static str, columns: &'static [&'static str]) -> TableSpec {
    TableSpec {
        file,
        columns,
        required: &["id"],
        aliases: &[],
    }
}

const ORGANIZATIONS: TableSpec = spec(
    "organizations.csv",
    &[
        "id",
        "name",
        "alternate_name",
        "description",
        "email",
        "website",
        "tax_status",
        "tax_id",
        "year_incorporated",
        "legal_status",
        "logo",
        "uri",
        "parent_organization_id",
    ],
);
const SERVICES: TableSpec = spec(
    "services.csv",
    &[
        "id",
        "organization_id",
        "program_id",
        "name",
        "alternate_name",
        "description",
        "url",
        "email",
        "status",
        "interpretation_services",
        "application_process",
        "fees_description",
        "wait_time",
        "fees",
        "accreditations",
        "eligibility_description",
        "minimum_age",
        "maximum_age",
        "assured_date",
        "assurer_email",
        "licenses",
        "alert",
        "last_modified",
    ],
);
const LOCATIONS: TableSpec = spec(
    "locations.csv",
    &[
        "id",
        "location_type",
        "url",
        "organization_id",
        "name",
        "alternate_name",
        "description",
        "transportation",
        "latitude",
        "longitude",
        "external_identifier",
        "external_identifier_type",
    ],
);
const SERVICE_AT_LOCATION_COLUMNS: &[&str] = &["id", "service_id", "location_id", "description"];
const SERVICE_AT_LOCATION: TableSpec = spec("service_at_location.csv", SERVICE_AT_LOCATION_COLUMNS);
const SERVICE_AT_LOCATIONS: TableSpec =
    spec("service_at_locations.csv", SERVICE_AT_LOCATION_COLUMNS);
const SERVICE_AREAS: TableSpec = spec(
    "service_areas.csv",
    &[
        "id",
        "service_id",
        "name",
        "description",
        "extent",
        "extent_type",
        "uri",
    ],
);
const ADDRESSES: TableSpec = spec(
    "addresses.csv",
    &[
        "id",
        "location_id",
        "attention",
        "address_1",
        "address_2",
        "city",
        "region",
        "state_province",
        "postal_code",
        "country",
        "address_type",
    ],
);
const PHONES: TableSpec = spec(
    "phones.csv",
    &[
        "id",
        "location_id",
        "service_id",
        "organization_id",
        "contact_id",
        "service_at_location_id",
        "number",
        "extension",
        "type",
        "description",
    ],
);
const ATTRIBUTES: TableSpec = spec(
    "attributes.csv",
    &[
        "id",
        "link_id",
        "taxonomy_term_id",
        "link_type",
        "link_entity",
        "value",
    ],
);
const TAXONOMY_TERMS: TableSpec = spec(
    "taxonomy_terms.csv",
    &[
        "id",
        "code",
        "name",
        "description",
        "parent_id",
        "taxonomy",
        "language",
        "taxonomy_id",
        "term_uri",
    ],
);
const TAXONOMIES: TableSpec = spec(
    "taxonomies.csv",
    &["id", "name", "description", "uri", "version"],
);

/// The rows of one table, and the rows that could not be read.
struct Table {
    file: &'static str,
    rows: Vec<Row>,
}

impl Table {
    fn by(&self, column: &str) -> HashMap<String, Vec<&Row>> {
        let mut found: HashMap<String, Vec<&Row>> = HashMap::new();
        for row in &self.rows {
            if let Some(key) = row.get(column) {
                found.entry(key.to_owned()).or_default().push(row);
            }
        }
        found
    }

    fn position(&self, row: &Row, field: &str) -> Position {
        Position::line(self.file, row.line).with_field(field)
    }
}

/// An HSDS CSV export, put back together.
struct Directory {
    organizations: Table,
    services: Table,
    locations: Table,
    at_locations: Table,
    areas: Table,
    addresses: Table,
    phones: Table,
    attributes: Table,
    terms: Table,
    taxonomies: Table,
}

/// The records of an HSDS CSV folder or zip, or `None` when `path` is not one.
pub fn open(
    path: &Path,
    encoding: TextEncoding,
    quirks: &QuirkLog,
) -> Result<Option<Vec<Decoded>>, String> {
    let zipped = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if path.is_file() && !zipped {
        return Ok(None);
    }
    let export = Export::open(path).map_err(|e| e.to_string())?;
    if [&ORGANIZATIONS, &SERVICES, &LOCATIONS]
        .iter()
        .all(|s| export.find(s.file).is_none())
    {
        return Ok(None);
    }
    let mut errors = Vec::new();
    let mut load = |spec: &TableSpec| -> Result<Table, String> {
        let mut rows = Vec::new();
        if let Some(table) = export
            .table(spec, encoding, quirks)
            .map_err(|e| e.to_string())?
        {
            for item in table.rows().map_err(|e| e.to_string())? {
                match item {
                    Ok((_, row)) => rows.push(row),
                    Err(error) => errors.push(Err(error)),
                }
            }
        }
        Ok(Table {
            file: spec.file,
            rows,
        })
    };
    let mut at_locations = load(&SERVICE_AT_LOCATION)?;
    at_locations.rows.extend(load(&SERVICE_AT_LOCATIONS)?.rows);
    let directory = Directory {
        organizations: load(&ORGANIZATIONS)?,
        services: load(&SERVICES)?,
        locations: load(&LOCATIONS)?,
        at_locations,
        areas: load(&SERVICE_AREAS)?,
        addresses: load(&ADDRESSES)?,
        phones: load(&PHONES)?,
        attributes: load(&ATTRIBUTES)?,
        terms: load(&TAXONOMY_TERMS)?,
        taxonomies: load(&TAXONOMIES)?,
    };
    let mut records = errors;
    records.extend(directory.records());
    Ok(Some(records))
}

/// A second row with an id already seen in its table: rejected naming the first (which is the one used).
fn duplicate(
    seen: &mut HashMap<String, u64>,
    id: &str,
    position: &Position,
) -> Option<RecordError> {
    let line = position.line.unwrap_or_default();
    match seen.get(id) {
        Some(first) => Some(RecordError::new(
            position.clone().with_field("id"),
            format!(
                "duplicate id '{id}' (first seen on line {first}); this row is not used (expected each id once)"
            ),
        )),
        None => {
            seen.insert(id.to_owned(), line);
            None
        }
    }
}

fn object(row: &Row) -> Map<String, Value> {
    row.values.clone()
}

fn objects(rows: Option<&Vec<&Row>>) -> Value {
    Value::Array(
        rows.into_iter()
            .flatten()
            .map(|r| Value::Object(object(r)))
            .collect(),
    )
}

impl Directory {
    fn records(&self) -> Vec<Decoded> {
        let mut out = Vec::new();
        let organizations = self.organization_objects();
        let mut seen = HashMap::new();
        for row in &self.organizations.rows {
            let position = Position::line(self.organizations.file, row.line);
            let Some(id) = row.get("id") else {
                out.push(Err(RecordError::new(
                    position.with_field("id"),
                    "no id (expected the organization's id)",
                )));
                continue;
            };
            if let Some(error) = duplicate(&mut seen, id, &position) {
                out.push(Err(error));
                continue;
            }
            out.push(Ok(record(
                "organization",
                id,
                position,
                serde_json::json!({ "organization": organizations.get(id) }),
            )));
        }
        let locations = self.location_objects(&mut out);
        // Each location from its own row first, so the row is where it is converted (a service's copy of it
        // is then the same record again).
        let mut seen = HashMap::new();
        for row in &self.locations.rows {
            let position = Position::line(self.locations.file, row.line);
            let Some(id) = row.get("id") else {
                out.push(Err(RecordError::new(
                    position.with_field("id"),
                    "no id (expected the location's id)",
                )));
                continue;
            };
            if let Some(error) = duplicate(&mut seen, id, &position) {
                out.push(Err(error));
                continue;
            }
            if let Some(location) = locations.get(id) {
                out.push(Ok(record(
                    "location",
                    id,
                    position,
                    serde_json::json!({ "location": location }),
                )));
            }
        }
        out.extend(self.service_records(&organizations, &locations));
        out
    }

    fn organization_objects(&self) -> HashMap<String, Value> {
        let phones = self.phones.by("organization_id");
        self.organizations
            .rows
            .iter()
            .filter_map(|row| {
                let id = row.get("id")?.to_owned();
                let mut org = object(row);
                org.insert("phones".into(), objects(phones.get(&id)));
                Some((id, Value::Object(org)))
            })
            .fold(HashMap::new(), |mut found, (id, org)| {
                found.entry(id).or_insert(org); // the first row of an id is the one used
                found
            })
    }

    /// Locations with their addresses and phones; coordinates as numbers (a row whose coordinates are not
    /// numbers is rejected).
    fn location_objects(&self, out: &mut Vec<Decoded>) -> HashMap<String, Value> {
        let (addresses, phones) = (
            self.addresses.by("location_id"),
            self.phones.by("location_id"),
        );
        let mut found = HashMap::new();
        for row in &self.locations.rows {
            let Some(id) = row.get("id") else { continue };
            let mut location = object(row);
            let mut bad = false;
            for field in ["latitude", "longitude"] {
                let Some(text) = row.get(field) else { continue };
                match text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    Some(number) => {
                        location.insert(field.into(), Value::Number(number));
                    }
                    None => {
                        bad = true;
                        out.push(Err(RecordError::new(
                            self.locations.position(row, field),
                            format!("'{text}' is not a number (expected decimal degrees)"),
                        )));
                    }
                }
            }
            if bad {
                continue;
            }
            location.insert("addresses".into(), objects(addresses.get(id)));
            location.insert("phones".into(), objects(phones.get(id)));
            // The first row of an id is the one used (a later one is rejected as a duplicate).
            found
                .entry(id.to_owned())
                .or_insert(Value::Object(location));
        }
        found
    }

    fn service_records(
        &self,
        organizations: &HashMap<String, Value>,
        locations: &HashMap<String, Value>,
    ) -> Vec<Decoded> {
        let at_locations = self.at_locations.by("service_id");
        let areas = self.areas.by("service_id");
        let phones = self.phones.by("service_id");
        let attributes = self.attributes.by("link_id");
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for row in &self.services.rows {
            let position = Position::line(self.services.file, row.line);
            let Some(id) = row.get("id") else {
                out.push(Err(RecordError::new(
                    position.with_field("id"),
                    "no id (expected the service's id)",
                )));
                continue;
            };
            if let Some(error) = duplicate(&mut seen, id, &position) {
                out.push(Err(error));
                continue;
            }
            let mut service = object(row);
            if let Some(org_id) = row.get("organization_id") {
                let Some(org) = organizations.get(org_id) else {
                    out.push(Err(RecordError::new(
                        position.with_field("organization_id"),
                        format!("no organization '{org_id}' in organizations.csv (expected the id of an organization)"),
                    )));
                    continue;
                };
                service.insert("organization".into(), org.clone());
            }
            let links = at_locations.get(id).into_iter().flatten();
            let mut placed = Vec::new();
            for link in links {
                match link.get("location_id").and_then(|l| locations.get(l)) {
                    Some(location) => {
                        let mut at = object(link);
                        at.insert("location".into(), location.clone());
                        placed.push(Value::Object(at));
                    }
                    None => out.push(Err(RecordError::new(
                        self.at_locations.position(link, "location_id"),
                        format!(
                            "no location '{}' in locations.csv (expected the id of a location)",
                            link.get("location_id").unwrap_or_default()
                        ),
                    ))),
                }
            }
            service.insert("service_at_locations".into(), Value::Array(placed));
            service.insert("service_areas".into(), objects(areas.get(id)));
            service.insert("phones".into(), objects(phones.get(id)));
            let attached = self.attributes_of(attributes.get(id), &mut out);
            service.insert("attributes".into(), attached);
            out.extend(service_records(&Value::Object(service), id, position));
        }
        out
    }

    /// A service's attributes, each with its taxonomy term and the term's taxonomy.
    fn attributes_of(&self, rows: Option<&Vec<&Row>>, out: &mut Vec<Decoded>) -> Value {
        let terms = self.terms.by("id");
        let taxonomies = self.taxonomies.by("id");
        let mut attached = Vec::new();
        for row in rows.into_iter().flatten() {
            let mut attribute = object(row);
            if let Some(term_id) = row.get("taxonomy_term_id") {
                let Some(term) = terms.get(term_id).and_then(|t| t.first()) else {
                    out.push(Err(RecordError::new(
                        self.attributes.position(row, "taxonomy_term_id"),
                        format!("no taxonomy term '{term_id}' in taxonomy_terms.csv (expected the id of a term)"),
                    )));
                    continue;
                };
                let mut term_value = object(term);
                if let Some(taxonomy) = term
                    .get("taxonomy_id")
                    .and_then(|t| taxonomies.get(t))
                    .and_then(|t| t.first())
                {
                    term_value.insert("taxonomy_detail".into(), Value::Object(object(taxonomy)));
                }
                attribute.insert("taxonomy_term".into(), Value::Object(term_value));
            }
            attached.push(Value::Object(attribute));
        }
        Value::Array(attached)
    }
}
