//! Decoding an HMIS export: clients are indexed by `PersonalID` (row offsets), enrollments by
//! `EnrollmentID`; projects, organizations and the export row are small and held. Clients stream first,
//! then events (each joined to its enrollment, client, project and organization), then organizations.

use super::tables;
use crate::adapters::csv_table::{CsvTable, Row, RowOffset, TableError, TableSpec, TextEncoding};
use crate::adapters::oneroster::{Export, ExportError};
use crate::adapters::{Decoded, Position, QuirkLog, RecordError, SourceRecord};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

/// Why an HMIS export cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum HmisError {
    /// The export cannot be opened.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A table cannot be read.
    #[error(transparent)]
    Table(#[from] TableError),
    /// No Client.csv.
    #[error("{0}: no Client.csv found; expected a HUD HMIS CSV export (a folder or a zip)")]
    NoClients(String),
}

/// An opened, indexed HMIS export.
pub struct HmisSource {
    _export: Export,
    clients: CsvTable,
    enrollments: Option<CsvTable>,
    events: Option<CsvTable>,
    client_rows: HashMap<String, RowOffset>,
    enrollment_rows: HashMap<String, RowOffset>,
    projects: HashMap<String, Row>,
    organizations: Vec<Row>,
    export_row: Value,
    quirks: QuirkLog,
    tables_present: Vec<(String, Vec<String>)>,
}

impl HmisSource {
    /// Open and index an export folder or zip.
    pub fn open(path: &Path, encoding: TextEncoding, quirks: &QuirkLog) -> Result<Self, HmisError> {
        let export = Export::open(path)?;
        let open = |spec: &TableSpec| export.table(spec, encoding, quirks);
        let clients = open(&tables::CLIENT)?
            .ok_or_else(|| HmisError::NoClients(path.display().to_string()))?;
        let (enrollments, events) = (open(&tables::ENROLLMENT)?, open(&tables::EVENT)?);
        let (export_table, project_table, organization_table) = (
            open(&tables::EXPORT)?,
            open(&tables::PROJECT)?,
            open(&tables::ORGANIZATION)?,
        );
        let mut source = Self {
            enrollments,
            events,
            client_rows: HashMap::new(),
            enrollment_rows: HashMap::new(),
            projects: HashMap::new(),
            organizations: Vec::new(),
            export_row: Value::Null,
            quirks: quirks.clone(),
            tables_present: Vec::new(),
            clients,
            _export: export,
        };
        if let Some(table) = export_table {
            source.export_row = table
                .rows()?
                .filter_map(Result::ok)
                .next()
                .map(|(_, r)| Value::Object(r.values))
                .unwrap_or_default();
            source.note(&table);
        }
        if let Some(table) = project_table {
            for (_, row) in table.rows()?.filter_map(Result::ok) {
                if let Some(id) = row.get("ProjectID").map(str::to_owned) {
                    source.projects.insert(id, row);
                }
            }
            source.note(&table);
        }
        if let Some(table) = organization_table {
            source.organizations = table
                .rows()?
                .filter_map(Result::ok)
                .map(|(_, r)| r)
                .collect();
            source.note(&table);
        }
        source.client_rows = index(&source.clients, "PersonalID")?;
        let clients = source.clients.reopen();
        source.note(&clients);
        if let Some(table) = source.enrollments.as_ref().map(CsvTable::reopen) {
            source.enrollment_rows = index(&table, "EnrollmentID")?;
            source.note(&table);
        }
        if let Some(table) = source.events.as_ref().map(CsvTable::reopen) {
            source.note(&table);
        }
        Ok(source)
    }

    /// Every table found, with its columns (for coverage reports).
    pub fn tables(&self) -> &[(String, Vec<String>)] {
        &self.tables_present
    }

    fn note(&mut self, table: &CsvTable) {
        self.tables_present.push((
            table.file().to_owned(),
            table
                .columns()
                .iter()
                .filter(|c| !c.is_empty())
                .cloned()
                .collect(),
        ));
    }

    /// Clients, then referral events, then organizations. Deleted rows are skipped and counted.
    pub fn records(&self) -> Result<impl Iterator<Item = Decoded> + '_, TableError> {
        let clients = self.clients.rows()?.filter_map(move |item| match item {
            Err(err) => Some(Err(err)),
            Ok((_, row)) => self
                .live(row, "Client.csv")
                .map(|row| Ok(self.client_record(row))),
        });
        let events = match &self.events {
            Some(table) => Some(table.rows()?),
            None => None,
        };
        let events = events
            .into_iter()
            .flatten()
            .filter_map(move |item| match item {
                Err(err) => Some(Err(err)),
                Ok((_, row)) => self
                    .live(row, "Event.csv")
                    .map(|row| self.event_record(row)),
            });
        let organizations = self
            .organizations
            .iter()
            .cloned()
            .filter_map(move |row| self.live(row, "Organization.csv"))
            .map(move |row| Ok(self.organization_record(row)));
        Ok(clients.chain(events).chain(organizations))
    }

    fn live(&self, row: Row, file: &str) -> Option<Row> {
        if row.get("DateDeleted").is_some() {
            self.quirks.note(
                format!("{file}: rows with DateDeleted are deletions (skipped)"),
                Some(row.line),
            );
            return None;
        }
        Some(row)
    }

    fn client_record(&self, row: Row) -> SourceRecord {
        let id = row.get("PersonalID").unwrap_or_default().to_owned();
        SourceRecord {
            kind: "client",
            key: id.clone(),
            group: format!("client:{id}"),
            position: Position::line("Client.csv", row.line),
            context: json!({ "client": row.values, "export": self.export_row }),
            related: Vec::new(),
        }
    }

    fn event_record(&self, row: Row) -> Decoded {
        let position = Position::line("Event.csv", row.line);
        let id = row.get("EventID").unwrap_or_default().to_owned();
        let personal = row.get("PersonalID").unwrap_or_default();
        let client_row = match self.client_rows.get(personal) {
            Some(offset) => self.clients.read_at(*offset)?,
            None => {
                return Err(RecordError::new(
                    position.with_field("PersonalID"),
                    format!(
                        "no client '{personal}' in Client.csv (expected the PersonalID of a client in the export)"
                    ),
                ));
            }
        };
        let enrollment = match (
            row.get("EnrollmentID")
                .and_then(|e| self.enrollment_rows.get(e)),
            &self.enrollments,
        ) {
            (Some(offset), Some(table)) => Some(table.read_at(*offset)?),
            _ => None,
        };
        let project = enrollment
            .as_ref()
            .and_then(|e| e.get("ProjectID"))
            .and_then(|p| self.projects.get(p));
        let organization = project.and_then(|p| p.get("OrganizationID")).and_then(|o| {
            self.organizations
                .iter()
                .find(|r| r.get("OrganizationID") == Some(o))
        });
        Ok(SourceRecord {
            kind: "event",
            key: id.clone(),
            group: format!("event:{id}"),
            position,
            context: json!({
                "event": row.values,
                "client": client_row.values.clone(),
                "enrollment": enrollment.map(|e| e.values),
                "project": project.map(|p| &p.values),
                "organization": organization.map(|o| &o.values),
                "export": self.export_row,
            }),
            // The client travels with the referral, so its bundle carries the Patient.
            related: vec![self.client_record(client_row)],
        })
    }

    fn organization_record(&self, row: Row) -> SourceRecord {
        let id = row.get("OrganizationID").unwrap_or_default().to_owned();
        SourceRecord {
            kind: "organization",
            key: id.clone(),
            group: format!("organization:{id}"),
            position: Position::line("Organization.csv", row.line),
            context: json!({ "organization": row.values, "export": self.export_row }),
            related: Vec::new(),
        }
    }
}

fn index(table: &CsvTable, column: &str) -> Result<HashMap<String, RowOffset>, TableError> {
    let mut found = HashMap::new();
    for (offset, row) in table.rows()?.filter_map(Result::ok) {
        if let Some(id) = row.get(column) {
            found.entry(id.to_owned()).or_insert(offset);
        }
    }
    Ok(found)
}
