//! Decoding an HMIS export: clients are indexed by `PersonalID` (row offsets), enrollments and exits by
//! `EnrollmentID`; projects, organizations and the export row are small and held. Clients stream first, then
//! enrollments (each with its exit, if any), exits, services, events (each joined to its enrollment, client,
//! project and organization), then organizations.

use super::tables;
use crate::adapters::csv_table::{CsvTable, Row, RowOffset, TableError, TableSpec, TextEncoding};
use crate::adapters::oneroster::{Export, ExportError};
use crate::adapters::{Decoded, Position, QuirkLog, RecordError, SourceRecord};
use crate::record::id_table::IdTable;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
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
    /// Export.csv names more than one source: their PersonalIDs could name different people.
    #[error(
        "Export.csv line {second_line}, field SourceID: a second source ('{second}'; line {first_line} names '{first}'): the clients of two HMIS sources would share ids; convert each source's export on its own, or pass --source-system to say they are one source"
    )]
    MixedSources {
        /// The first SourceID.
        first: String,
        /// Its line.
        first_line: u64,
        /// Another SourceID.
        second: String,
        /// Its line.
        second_line: u64,
    },
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
    deleted_clients: HashSet<String>,
    deleted_enrollments: HashSet<String>,
    projects: HashMap<String, Row>,
    organizations: Vec<Row>,
    export_row: Value,
    /// The SourceID of each Export.csv row that has one, with its line.
    source_ids: Vec<(u64, String)>,
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
            deleted_clients: HashSet::new(),
            deleted_enrollments: HashSet::new(),
            projects: HashMap::new(),
            organizations: Vec::new(),
            export_row: Value::Null,
            source_ids: Vec::new(),
            quirks: quirks.clone(),
            tables_present: Vec::new(),
            clients,
            _export: export,
        };
        let export_missing = export_table.is_none();
        if let Some(table) = export_table {
            for (_, row) in table.rows()?.filter_map(Result::ok) {
                if let Some(id) = row.get("SourceID") {
                    source.source_ids.push((row.line, id.to_owned()));
                }
                if source.export_row.is_null() {
                    source.export_row = Value::Object(row.values);
                }
            }
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
        if export_missing || source.export_row.get("HashStatus").is_none() {
            quirks.note(
                "Export.csv: no HashStatus (or no Export.csv): the export is not known to be unhashed, so names are not output",
                None,
            );
        }
        (source.client_rows, source.deleted_clients) = index(&source.clients, "PersonalID")?;
        let clients = source.clients.reopen();
        source.note(&clients);
        if let Some(table) = source.enrollments.as_ref().map(CsvTable::reopen) {
            (source.enrollment_rows, source.deleted_enrollments) = index(&table, "EnrollmentID")?;
            source.note(&table);
        }
        if let Some(table) = source.exits.as_ref().map(CsvTable::reopen) {
            source.exit_rows = index(&table, "EnrollmentID")?.0;
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

    /// The source system the export's ids and identifiers are derived in: `explicit` (`--source-system`, a
    /// configured source) as given; otherwise `base` (the mapping's) followed by Export.csv's SourceID, so
    /// PersonalID 101 of two HMIS sources is two Patients. An export that names no SourceID (or has no
    /// Export.csv) keeps `base`, with a quirk; one whose Export.csv names two sources is refused unless the
    /// source system is given.
    pub fn source_system(&self, base: &str, explicit: Option<&str>) -> Result<String, HmisError> {
        let mut ids = self.source_ids.iter();
        let first = ids.next();
        if let (Some((first_line, first)), None) = (first, explicit)
            && let Some((second_line, second)) = ids.find(|(_, id)| id != first)
        {
            return Err(HmisError::MixedSources {
                first: first.clone(),
                first_line: *first_line,
                second: second.clone(),
                second_line: *second_line,
            });
        }
        if let Some(explicit) = explicit {
            return Ok(explicit.to_owned());
        }
        match first {
            Some((_, id)) => Ok(format!("{base}/{}", uri_segment(id))),
            None => {
                self.quirks.note(
                    "Export.csv: no SourceID (or no Export.csv): ids are derived from the mapping's source system alone, so clients of two sources with one PersonalID would be one Patient (pass --source-system to name the source)",
                    None,
                );
                Ok(base.to_owned())
            }
        }
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
        let clients = self.stream(
            Some(&self.clients),
            "Client.csv",
            "PersonalID",
            |source, row| Some(Ok(source.client_record(row))),
        )?;
        let enrollments = self.stream(
            self.enrollments.as_ref(),
            "Enrollment.csv",
            "EnrollmentID",
            Self::enrollment_record,
        )?;
        let exits = self.stream(
            self.exits.as_ref(),
            "Exit.csv",
            "EnrollmentID",
            Self::exit_record,
        )?;
        let services = self.stream(
            self.services.as_ref(),
            "Services.csv",
            "ServicesID",
            Self::service_record,
        )?;
        let events = self.stream(
            self.events.as_ref(),
            "Event.csv",
            "EventID",
            Self::event_record,
        )?;
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

    /// The live rows of an optional table, each made into a record by `make` (which may skip it, saying
    /// why). A second live row with the same `key` is rejected naming the first; the first is used.
    fn stream<'s>(
        &'s self,
        table: Option<&'s CsvTable>,
        file: &'static str,
        key: &'static str,
        make: fn(&Self, Row) -> Option<Decoded>,
    ) -> Result<impl Iterator<Item = Decoded> + 's, TableError> {
        let rows = match table {
            Some(table) => Some(table.rows()?),
            None => None,
        };
        // Each id seen, by its 128-bit hash, past a number on disk (`IdTable`).
        let mut seen = IdTable::default();
        Ok(rows
            .into_iter()
            .flatten()
            .filter_map(move |item| match item {
                Err(err) => Some(Err(err)),
                Ok((_, row)) => {
                    let row = self.live(row, file)?;
                    if let Some(id) = row.get(key) {
                        let at = Position::line(file, row.line).with_field(key);
                        match seen.insert(id, [row.line, 0, 0]) {
                            Ok(None) => {}
                            Ok(Some([first, ..])) => {
                                return Some(Err(RecordError::new(
                                    at,
                                    format!(
                                        "duplicate {key} '{id}' (first seen on line {first}); this row is not used (expected each {key} once)"
                                    ),
                                )));
                            }
                            Err(err) => {
                                return Some(Err(RecordError::new(
                                    at,
                                    format!("cannot check {key} '{id}' against the ids seen: {err}"),
                                )));
                            }
                        }
                    }
                    make(self, row)
                }
            }))
    }

    /// Whether a row hangs off a deleted client or enrollment: such rows are skipped, with the reason.
    fn hangs_off_deleted(&self, row: &Row, file: &str) -> bool {
        let client = row
            .get("PersonalID")
            .is_some_and(|p| self.deleted_clients.contains(p) && !self.client_rows.contains_key(p));
        let enrollment = row.get("EnrollmentID").is_some_and(|e| {
            self.deleted_enrollments.contains(e) && !self.enrollment_rows.contains_key(e)
        });
        if client || enrollment {
            self.quirks.skip(
                file,
                row.line,
                if client {
                    "its client is deleted"
                } else {
                    "its enrollment is deleted"
                },
            );
            self.quirks.note(
                format!(
                    "{file}: rows of a deleted {} (skipped with it)",
                    if client { "client" } else { "enrollment" }
                ),
                Some(row.line),
            );
        }
        client || enrollment
    }

    /// A service's or event's date must fall within its enrollment (from its EntryDate to its exit's ExitDate);
    /// one outside is reported.
    fn check_within(
        &self,
        row: &Row,
        enrollment: &Row,
        file: &str,
        column: &str,
    ) -> Result<(), RecordError> {
        let Some(date) = row.get(column).and_then(iso_date) else {
            return Ok(());
        };
        let entry = enrollment.get("EntryDate").and_then(iso_date);
        let exit = self
            .exit_of(enrollment.get("EnrollmentID"))?
            .and_then(|e| e.get("ExitDate").and_then(iso_date));
        if entry.is_some_and(|e| date < e) || exit.is_some_and(|e| date > e) {
            self.quirks.note(
                format!("{file}: {column} outside its enrollment (before its EntryDate or after its ExitDate)"),
                Some(row.line),
            );
        }
        Ok(())
    }

    /// The enrollment a service, event or exit names; it must exist and belong to the row's client.
    fn enrollment_of(
        &self,
        row: &Row,
        client: Option<&Row>,
        position: &Position,
    ) -> Result<Row, RecordError> {
        let id = row.get("EnrollmentID").unwrap_or_default();
        let Some(enrollment) = self.enrollment(Some(id))? else {
            return Err(RecordError::new(
                position.clone().with_field("EnrollmentID"),
                format!(
                    "no enrollment '{id}' in Enrollment.csv (expected the EnrollmentID of an enrollment in the export)"
                ),
            ));
        };
        let Some(client) = client else {
            return Ok(enrollment);
        };
        let (theirs, ours) = (
            enrollment.get("PersonalID").unwrap_or_default(),
            client.get("PersonalID").unwrap_or_default(),
        );
        if theirs != ours {
            return Err(RecordError::new(
                position.clone().with_field("PersonalID"),
                format!(
                    "client '{ours}' is not the client of enrollment '{id}' (Enrollment.csv line {} names client '{theirs}'); expected the PersonalID of the enrollment's client",
                    enrollment.line
                ),
            ));
        }
        Ok(enrollment)
    }

    fn live(&self, row: Row, file: &str) -> Option<Row> {
        if row.get("DateDeleted").is_some() {
            self.quirks.note(
                format!("{file}: rows with DateDeleted are deletions (skipped)"),
                Some(row.line),
            );
            self.quirks.skip(file, row.line, "deleted (DateDeleted)");
            return None;
        }
        Some(row)
    }

    /// Data quality and plausibility of a client row: placeholder names, approximate and impossible birth
    /// dates are reported (once per row), and an impossible birth date is left out.
    fn client_quality(&self, row: &mut Row) {
        let line = Some(row.line);
        let has_name = ["FirstName", "MiddleName", "LastName"]
            .iter()
            .any(|c| row.get(c).is_some());
        if has_name && matches!(row.get("NameDataQuality"), Some("8" | "9" | "99")) {
            self.quirks.note(
                "Client.csv: names with NameDataQuality 8, 9 or 99 are placeholders (name not output)",
                line,
            );
        }
        if row.get("DOBDataQuality") == Some("2") && row.get("DOB").is_some() {
            self.quirks.note(
                "Client.csv: approximate DOB (DOBDataQuality 2) output as its year only",
                line,
            );
        }
        let Some(dob) = row.get("DOB").and_then(iso_date) else {
            return;
        };
        let export_date = self
            .export_row
            .get("ExportDate")
            .and_then(Value::as_str)
            .and_then(iso_date)
            .unwrap_or_else(|| chrono::Utc::now().date_naive());
        let why = if dob > export_date {
            "after the export date"
        } else if dob < chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default() {
            "before 1900"
        } else {
            return;
        };
        self.quirks.note(
            format!("Client.csv: DOB {why} is not plausible (birthDate left out)"),
            line,
        );
        row.values.remove("DOB");
    }

    fn client_record(&self, mut row: Row) -> SourceRecord {
        self.client_quality(&mut row);
        let id = row.get("PersonalID").unwrap_or_default().to_owned();
        SourceRecord {
            kind: "client",
            key: id.clone(),
            group: format!("client:{id}"),
            position: Position::line("Client.csv", row.line),
            context: json!({ "client": row.values, "export": self.export_row }),
            related: Vec::new(),
            joined: Vec::new(),
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
        let enrollment_line = enrollment.as_ref().map(|e| e.line);
        let mut context = json!({
            "client": client.values.clone(),
            "enrollment": enrollment.map(|e| e.values),
            "project": project,
            "organization": organization,
            "export": self.export_row,
        });
        context[kind] = Value::Object(row.values);
        // A value of the enrollment that cannot be mapped is the enrollment row's problem, reported there.
        let joined = match enrollment_line {
            Some(line) if kind != "enrollment" => {
                vec![("enrollment", Position::line("Enrollment.csv", line))]
            }
            _ => Vec::new(),
        };
        SourceRecord {
            kind,
            key: key.to_owned(),
            group: format!("{kind}:{key}"),
            position,
            context,
            related: vec![self.client_record(client)],
            joined,
        }
    }

    /// An enrollment builds its Encounter when it has no usable exit: none, or one rejected (its client is
    /// not the enrollment's, it is dated before the entry). With a rejected exit the Encounter carries no end
    /// and status `unknown` (`exit_rejected`), so its services and events still refer to an Encounter that
    /// exists, and the enrollment is reported.
    fn enrollment_record(&self, row: Row) -> Option<Decoded> {
        if self.hangs_off_deleted(&row, "Enrollment.csv") {
            return None;
        }
        let position = Position::line("Enrollment.csv", row.line);
        let id = row.get("EnrollmentID").unwrap_or_default().to_owned();
        Some((|| {
            let client = self.client_of(&row, &position)?;
            let exit = self.exit_of(Some(&id))?;
            let rejected = exit.as_ref().is_some_and(|e| {
                self.checked_exit(e, &Position::line("Exit.csv", e.line))
                    .is_err()
            });
            if rejected {
                self.quirks.note(
                    "Enrollment.csv: enrollments whose Exit.csv row is rejected are output without it (Encounter status unknown, no end date)",
                    Some(row.line),
                );
            }
            let mut record =
                self.joined_record("enrollment", &id, row.clone(), client, Some(row), position);
            record.context["exit"] = match exit {
                Some(e) if !rejected => Value::Object(e.values),
                _ => Value::Null,
            };
            record.context["exit_rejected"] = Value::Bool(rejected);
            Ok(record)
        })())
    }

    /// An exit's client and enrollment, checked: the enrollment exists, the exit's client (when it names
    /// one) is the enrollment's, and the exit is not dated before the entry.
    fn checked_exit(&self, row: &Row, position: &Position) -> Result<(Row, Row), RecordError> {
        // The enrollment first: an exit's problem is usually that its enrollment is not there.
        let enrollment = self.enrollment_of(row, None, position)?;
        let (client, enrollment) = if row.get("PersonalID").is_some() {
            let client = self.client_of(row, position)?;
            let enrollment = self.enrollment_of(row, Some(&client), position)?;
            (client, enrollment)
        } else {
            (self.client_of(&enrollment, position)?, enrollment)
        };
        let (entry, exit) = (
            enrollment.get("EntryDate").and_then(iso_date),
            row.get("ExitDate").and_then(iso_date),
        );
        if let (Some(entry), Some(exit)) = (entry, exit)
            && exit < entry
        {
            return Err(RecordError::new(
                position.clone().with_field("ExitDate"),
                format!(
                    "ExitDate {exit} is before the enrollment's EntryDate {entry} (Enrollment.csv line {}); expected an exit on or after the entry (the enrollment is output without its exit)",
                    enrollment.line
                ),
            ));
        }
        Ok((client, enrollment))
    }

    fn exit_record(&self, row: Row) -> Option<Decoded> {
        if self.hangs_off_deleted(&row, "Exit.csv") {
            return None;
        }
        let position = Position::line("Exit.csv", row.line);
        let id = row.get("EnrollmentID").unwrap_or_default().to_owned();
        Some((|| {
            let (client, enrollment) = self.checked_exit(&row, &position)?;
            let line = row.line;
            let mut record =
                self.joined_record("exit", &id, row, client, Some(enrollment), position);
            // A value of the exit row that cannot be mapped (an unknown Destination) rejects that value at
            // the exit's line and leaves it out: the enrollment's Encounter is still built from its exit.
            record
                .joined
                .push(("exit", Position::line("Exit.csv", line)));
            Ok(record)
        })())
    }

    fn service_record(&self, row: Row) -> Option<Decoded> {
        if self.hangs_off_deleted(&row, "Services.csv") {
            return None;
        }
        let position = Position::line("Services.csv", row.line);
        let id = row.get("ServicesID").unwrap_or_default().to_owned();
        Some((|| {
            let client = self.client_of(&row, &position)?;
            let enrollment = self.enrollment_of(&row, Some(&client), &position)?;
            self.check_within(&row, &enrollment, "Services.csv", "DateProvided")?;
            Ok(self.joined_record("service", &id, row, client, Some(enrollment), position))
        })())
    }

    fn event_record(&self, row: Row) -> Option<Decoded> {
        if self.hangs_off_deleted(&row, "Event.csv") {
            return None;
        }
        let position = Position::line("Event.csv", row.line);
        let id = row.get("EventID").unwrap_or_default().to_owned();
        // HUD 4.20 Event is 1 to 18: another value is no event HUD knows (never "nothing to map").
        let code = row.get("Event").unwrap_or_default();
        if !code.parse::<u8>().is_ok_and(|n| (1..=18).contains(&n)) {
            return Some(Err(RecordError::new(
                position.with_field("Event"),
                format!(
                    "unknown code '{code}' in HUD 4.20 Event (expected 1 to 18: 2 is a problem-solving service, the others referrals)"
                ),
            )));
        }
        Some((|| {
            let client = self.client_of(&row, &position)?;
            let enrollment = self.enrollment_of(&row, Some(&client), &position)?;
            self.check_within(&row, &enrollment, "Event.csv", "EventDate")?;
            Ok(self.joined_record("event", &id, row, client, Some(enrollment), position))
        })())
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
            joined: Vec::new(),
        }
    }
}

/// A SourceID as one URI path segment: unreserved characters as they are, every other byte percent-encoded,
/// so no SourceID can contain the `/` that separates it from what follows.
fn uri_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An ISO date (`2024-05-01`, or the date of an ISO date-time); other forms are not compared.
fn iso_date(text: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// The first live row of each id, and the ids that only deleted rows hold.
fn index(
    table: &CsvTable,
    column: &str,
) -> Result<(HashMap<String, RowOffset>, HashSet<String>), TableError> {
    let mut found = HashMap::new();
    let mut deleted = HashSet::new();
    for (offset, row) in table.rows()?.filter_map(Result::ok) {
        if let Some(id) = row.get(column) {
            if row.get("DateDeleted").is_some() {
                deleted.insert(id.to_owned());
            } else {
                found.entry(id.to_owned()).or_insert(offset);
            }
        }
    }
    Ok((found, deleted))
}
