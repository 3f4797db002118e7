//! Decoding an HMIS export: clients are indexed by `PersonalID` (row offsets), enrollments and exits by
//! `EnrollmentID`; projects, organizations and the export row are small and held. Clients stream first, then
//! enrollments (each with its exit, if any), exits, services, events (each joined to its enrollment, client,
//! project and organization), then organizations.

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
    exits: Option<CsvTable>,
    services: Option<CsvTable>,
    events: Option<CsvTable>,
    client_rows: HashMap<String, RowOffset>,
    enrollment_rows: HashMap<String, RowOffset>,
    exit_rows: HashMap<String, RowOffset>,
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
        let (exits, services) = (open(&tables::EXIT)?, open(&tables::SERVICES)?);
        let (export_table, project_table, organization_table) = (
            open(&tables::EXPORT)?,
            open(&tables::PROJECT)?,
            open(&tables::ORGANIZATION)?,
        );
        let mut source = Self {
            enrollments,
            exits,
            services,
            events,
            client_rows: HashMap::new(),
            enrollment_rows: HashMap::new(),
            exit_rows: HashMap::new(),
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
        if let Some(table) = source.exits.as_ref().map(CsvTable::reopen) {
            source.exit_rows = index(&table, "EnrollmentID")?;
            source.note(&table);
        }
        let others: Vec<CsvTable> = [&source.services, &source.events]
            .into_iter()
            .flatten()
            .map(CsvTable::reopen)
            .collect();
        others.iter().for_each(|table| source.note(table));
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

    /// Clients, enrollments, exits, services, referral events, then organizations. Deleted rows are skipped
    /// and counted.
    pub fn records(&self) -> Result<impl Iterator<Item = Decoded> + '_, TableError> {
        let clients = self.clients.rows()?.filter_map(move |item| match item {
            Err(err) => Some(Err(err)),
            Ok((_, row)) => self
                .live(row, "Client.csv")
                .map(|row| Ok(self.client_record(row))),
        });
        let enrollments =
            self.stream(&self.enrollments, "Enrollment.csv", Self::enrollment_record)?;
        let exits = self.stream(&self.exits, "Exit.csv", Self::exit_record)?;
        let services = self.stream(&self.services, "Services.csv", Self::service_record)?;
        let events = self.stream(&self.events, "Event.csv", Self::event_record)?;
        let organizations = self
            .organizations
            .iter()
            .cloned()
            .filter_map(move |row| self.live(row, "Organization.csv"))
            .map(move |row| Ok(self.organization_record(row)));
        Ok(clients
            .chain(enrollments)
            .chain(exits)
            .chain(services)
            .chain(events)
            .chain(organizations))
    }

    /// The live rows of an optional table, each made into a record by `make`.
    fn stream<'s>(
        &'s self,
        table: &'s Option<CsvTable>,
        file: &'static str,
        make: fn(&Self, Row) -> Decoded,
    ) -> Result<impl Iterator<Item = Decoded> + 's, TableError> {
        let rows = match table {
            Some(table) => Some(table.rows()?),
            None => None,
        };
        Ok(rows
            .into_iter()
            .flatten()
            .filter_map(move |item| match item {
                Err(err) => Some(Err(err)),
                Ok((_, row)) => self.live(row, file).map(|row| make(self, row)),
            }))
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

    /// The client a row names by `PersonalID`, or a rejection naming the row and the field.
    fn client_of(&self, row: &Row, position: &Position) -> Result<Row, RecordError> {
        let personal = row.get("PersonalID").unwrap_or_default();
        match self.client_rows.get(personal) {
            Some(offset) => self.clients.read_at(*offset),
            None => Err(RecordError::new(
                position.clone().with_field("PersonalID"),
                format!(
                    "no client '{personal}' in Client.csv (expected the PersonalID of a client in the export)"
                ),
            )),
        }
    }

    /// The enrollment with this id, if the export has it.
    fn enrollment(&self, id: Option<&str>) -> Result<Option<Row>, RecordError> {
        match (
            id.and_then(|e| self.enrollment_rows.get(e)),
            &self.enrollments,
        ) {
            (Some(offset), Some(table)) => table.read_at(*offset).map(Some),
            _ => Ok(None),
        }
    }

    /// The exit of an enrollment, if the export has one.
    fn exit_of(&self, enrollment_id: Option<&str>) -> Result<Option<Row>, RecordError> {
        match (
            enrollment_id.and_then(|e| self.exit_rows.get(e)),
            &self.exits,
        ) {
            (Some(offset), Some(table)) => table.read_at(*offset).map(Some),
            _ => Ok(None),
        }
    }

    /// The project and organization of an enrollment, as context values.
    fn project_and_organization(&self, enrollment: Option<&Row>) -> (Value, Value) {
        let project = enrollment
            .and_then(|e| e.get("ProjectID"))
            .and_then(|p| self.projects.get(p));
        let organization = project.and_then(|p| p.get("OrganizationID")).and_then(|o| {
            self.organizations
                .iter()
                .find(|r| r.get("OrganizationID") == Some(o))
        });
        let values =
            |row: Option<&Row>| row.map_or(Value::Null, |r| Value::Object(r.values.clone()));
        (values(project), values(organization))
    }

    /// A record of one enrollment-level row (`kind`, also its variable in the context), joined to its client, enrollment, project and
    /// organization; the client travels with it, so its bundle carries the Patient.
    fn joined_record(
        &self,
        kind: &'static str,
        key: &str,
        row: Row,
        client: Row,
        enrollment: Option<Row>,
        position: Position,
    ) -> SourceRecord {
        let (project, organization) = self.project_and_organization(enrollment.as_ref());
        let mut context = json!({
            "client": client.values.clone(),
            "enrollment": enrollment.map(|e| e.values),
            "project": project,
            "organization": organization,
            "export": self.export_row,
        });
        context[kind] = Value::Object(row.values);
        SourceRecord {
            kind,
            key: key.to_owned(),
            group: format!("{kind}:{key}"),
            position,
            context,
            related: vec![self.client_record(client)],
        }
    }

    fn enrollment_record(&self, row: Row) -> Decoded {
        let position = Position::line("Enrollment.csv", row.line);
        let id = row.get("EnrollmentID").unwrap_or_default().to_owned();
        let client = self.client_of(&row, &position)?;
        let exit = self.exit_of(Some(&id))?;
        let mut record =
            self.joined_record("enrollment", &id, row.clone(), client, Some(row), position);
        record.context["exit"] = exit.map_or(Value::Null, |e| Value::Object(e.values));
        Ok(record)
    }

    fn exit_record(&self, row: Row) -> Decoded {
        let position = Position::line("Exit.csv", row.line);
        let id = row.get("EnrollmentID").unwrap_or_default().to_owned();
        let Some(enrollment) = self.enrollment(Some(&id))? else {
            return Err(RecordError::new(
                position.with_field("EnrollmentID"),
                format!(
                    "no enrollment '{id}' in Enrollment.csv (expected the EnrollmentID of an enrollment in the export)"
                ),
            ));
        };
        let client = self.client_of(&enrollment, &position)?;
        Ok(self.joined_record("exit", &id, row, client, Some(enrollment), position))
    }

    fn service_record(&self, row: Row) -> Decoded {
        let position = Position::line("Services.csv", row.line);
        let id = row.get("ServicesID").unwrap_or_default().to_owned();
        let client = self.client_of(&row, &position)?;
        let enrollment = self.enrollment(row.get("EnrollmentID"))?;
        Ok(self.joined_record("service", &id, row, client, enrollment, position))
    }

    fn event_record(&self, row: Row) -> Decoded {
        let position = Position::line("Event.csv", row.line);
        let id = row.get("EventID").unwrap_or_default().to_owned();
        let client = self.client_of(&row, &position)?;
        let enrollment = self.enrollment(row.get("EnrollmentID"))?;
        Ok(self.joined_record("event", &id, row, client, enrollment, position))
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
