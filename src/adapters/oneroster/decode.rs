//! Decoding a OneRoster export into student, guardian-link and org records.
//!
//! Joins need an index, not the data: the first pass keeps, per user, the byte offset of their row and a few
//! role flags; the second pass streams `users.csv` and reads the joined rows (demographics, guardians) back
//! by offset. Memory grows with the number of ids, never with the size of the rows.
//!
//! Who is a student: a user with the role `student` in `roles.csv` (1.2) or in the `role` column of
//! `users.csv` (1.1); a user with no role at all who is enrolled as a student. A user whose roles say
//! otherwise is not made a Patient because an enrollment says student (reported as a quirk).
//! Guardians: the users a student's `agentSourcedIds` name, and the guardian/parent/relative users whose
//! `agentSourcedIds` name the student.

use super::export::Export;
use super::tables;
use crate::adapters::csv_table::{CsvTable, Row, RowOffset, TableError, TableSpec, TextEncoding};
use crate::adapters::values::{object, values_or_null};
use crate::adapters::{Decoded, Position, QuirkLog, RecordError, SourceRecord};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Why a OneRoster export cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum OneRosterError {
    /// The export cannot be opened.
    #[error(transparent)]
    Export(#[from] super::export::ExportError),
    /// A table cannot be read.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The export has no users file.
    #[error(
        "{0}: no users.csv found; expected a OneRoster 1.1 or 1.2 CSV export (a folder or a zip holding users.csv)"
    )]
    NoUsers(String),
}

/// What the roster says about a user named as referring staff.
#[derive(Debug)]
pub enum StaffLookup {
    /// A user whose roles are staff roles (teacher, counselor, administrator...).
    Staff(Row),
    /// A user with no role at all in the roster.
    NoRole(Row),
    /// A user whose role is not staff: what they are.
    NotStaff(&'static str),
    /// No such user.
    NotInRoster,
}

const STUDENT: u8 = 1;
const GUARDIAN: u8 = 2;
const PARENT: u8 = 4;
const RELATIVE: u8 = 8;
const OTHER_ROLE: u8 = 16;
const ENROLLED_STUDENT: u8 = 32;

#[derive(Debug, Default, Clone)]
struct UserEntry {
    offset: Option<RowOffset>,
    roles: u8,
    org: Option<Box<str>>,
}

/// An opened, indexed OneRoster export.
pub struct OneRosterSource {
    _export: Export,
    users: CsvTable,
    demographics: Option<CsvTable>,
    index: HashMap<Box<str>, UserEntry>,
    demographic_rows: HashMap<Box<str>, RowOffset>,
    reverse_agents: HashMap<Box<str>, Vec<Box<str>>>,
    orgs: Vec<Row>,
    org_index: HashMap<String, usize>,
    early_errors: Vec<RecordError>,
    quirks: QuirkLog,
    version: String,
    tables_present: Vec<(String, Vec<String>)>,
}

impl OneRosterSource {
    /// Open and index an export folder or zip.
    pub fn open(
        path: &Path,
        encoding: TextEncoding,
        quirks: &QuirkLog,
    ) -> Result<Self, OneRosterError> {
        let export = Export::open(path)?;
        let open = |spec: &TableSpec| export.table(spec, encoding, quirks);
        let users = open(&tables::USERS)?
            .ok_or_else(|| OneRosterError::NoUsers(path.display().to_string()))?;
        let demographics = open(&tables::DEMOGRAPHICS)?;
        let orgs = open(&tables::ORGS)?;
        let roles = open(&tables::ROLES)?;
        let enrollments = open(&tables::ENROLLMENTS)?;
        let version = read_version(&export, encoding, quirks);
        let mut source = Self {
            users,
            demographics,
            index: HashMap::new(),
            demographic_rows: HashMap::new(),
            reverse_agents: HashMap::new(),
            orgs: Vec::new(),
            org_index: HashMap::new(),
            early_errors: Vec::new(),
            quirks: quirks.clone(),
            version,
            tables_present: Vec::new(),
            _export: export,
        };
        let (users_file, users_columns) = (
            source.users.file().to_owned(),
            source.users.columns().to_vec(),
        );
        source.note_table(&users_file, users_columns);
        if let Some(orgs) = orgs {
            source.index_orgs(&orgs)?;
        }
        if let Some(roles) = roles {
            source.index_roles(&roles)?;
        }
        if let Some(enrollments) = enrollments {
            source.index_enrollments(&enrollments)?;
        }
        source.index_users()?;
        source.index_demographics()?;
        Ok(source)
    }

    /// The OneRoster version the export declares (manifest), or what its files suggest.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every table found, with its resolved columns (for coverage reports).
    pub fn tables(&self) -> &[(String, Vec<String>)] {
        &self.tables_present
    }

    /// All records: orgs first, then each student followed by their guardian links. Rows that cannot be
    /// read come as errors in between; they never stop the stream.
    pub fn records(&self) -> Result<impl Iterator<Item = Decoded> + '_, TableError> {
        let orgs = self.orgs.iter().filter_map(|row| self.org_record(row));
        let early = self.early_errors.iter().cloned().map(Err);
        let users = self.users.rows()?.flat_map(move |item| -> Vec<Decoded> {
            match item {
                // Unreadable rows were reported by the indexing pass (in `early_errors`).
                Err(_) => Vec::new(),
                Ok((_, row)) => {
                    let id = row.get("sourcedId").unwrap_or_default().to_owned();
                    // A duplicate id was already reported during indexing; only its first row is used.
                    if !self.is_first_row(&id, row.line) {
                        return Vec::new();
                    }
                    self.student_records_from_row(row)
                }
            }
        });
        Ok(orgs.chain(early).chain(users))
    }

    /// The records of one student (the student, then their guardian links), looked up by sourcedId.
    pub fn student(&self, id: &str) -> Result<Vec<SourceRecord>, String> {
        let file = self.users.file();
        let entry = self
            .index
            .get(id)
            .filter(|e| e.offset.is_some())
            .ok_or_else(|| {
                format!("no user '{id}' in {file}: student '{id}' is not in the roster")
            })?;
        if !is_student(entry.roles) {
            return Err(format!(
                "user '{id}' in {file} line {} is not a student",
                entry.offset.map(offset_line).unwrap_or_default()
            ));
        }
        let row = self.read_user(entry).map_err(|e| e.to_string())?;
        if is_deleted(&row) {
            return Err(format!(
                "student '{id}' is deleted in {file} line {} (status 'tobedeleted')",
                row.line
            ));
        }
        self.student_records_from_row(row)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }

    /// A user's row (staff, guardian or student), if the export has them.
    pub fn user(&self, id: &str) -> Option<Row> {
        self.index
            .get(id)
            .and_then(|entry| self.read_user(entry).ok())
    }

    /// The user a referral names as its referring staff member, checked against the roster's roles.
    pub fn staff(&self, id: &str) -> StaffLookup {
        let Some(entry) = self.index.get(id).filter(|e| e.offset.is_some()) else {
            return StaffLookup::NotInRoster;
        };
        let Ok(row) = self.read_user(entry) else {
            return StaffLookup::NotInRoster;
        };
        if is_deleted(&row) {
            return StaffLookup::NotStaff("a user with status 'tobedeleted'");
        }
        if entry.roles & OTHER_ROLE != 0
            && entry.roles & (STUDENT | GUARDIAN | PARENT | RELATIVE) == 0
        {
            StaffLookup::Staff(row)
        } else if is_student(entry.roles) {
            StaffLookup::NotStaff("a student")
        } else if entry.roles & (GUARDIAN | PARENT | RELATIVE) != 0 {
            StaffLookup::NotStaff("a guardian, parent or relative")
        } else {
            StaffLookup::NoRole(row)
        }
    }

    /// The rows of the export that cannot be read or used (reported by a run that reads the roster for
    /// another file, such as a referral run).
    pub fn problems(&self) -> &[RecordError] {
        &self.early_errors
    }

    /// The org with this sourcedId.
    pub fn org(&self, id: &str) -> Option<&Row> {
        self.org_index.get(id).map(|&i| &self.orgs[i])
    }

    fn note_table(&mut self, file: &str, columns: Vec<String>) {
        self.tables_present.push((
            file.to_owned(),
            columns.into_iter().filter(|c| !c.is_empty()).collect(),
        ));
    }

    fn is_first_row(&self, id: &str, line: u64) -> bool {
        self.index
            .get(id)
            .and_then(|e| e.offset)
            .is_none_or(|o| offset_line(o) == line)
    }

    fn read_user(&self, entry: &UserEntry) -> Result<Row, RecordError> {
        let offset = entry.offset.ok_or_else(|| {
            RecordError::new(Position::file(self.users.file()), "user has no row")
        })?;
        self.users.read_at(offset)
    }

    fn index_orgs(&mut self, orgs: &CsvTable) -> Result<(), TableError> {
        self.note_table(orgs.file(), orgs.columns().to_vec());
        for item in orgs.rows()? {
            match item {
                Err(err) => self.early_errors.push(err),
                Ok((_, row)) => {
                    let id = row.get("sourcedId").unwrap_or_default().to_owned();
                    if let Some(&first) = self.org_index.get(&id) {
                        let first_line = self.orgs[first].line;
                        self.early_errors
                            .push(duplicate(orgs.file(), row.line, &id, first_line));
                        continue;
                    }
                    self.org_index.insert(id, self.orgs.len());
                    self.orgs.push(row);
                }
            }
        }
        Ok(())
    }

    fn index_roles(&mut self, roles: &CsvTable) -> Result<(), TableError> {
        self.note_table(roles.file(), roles.columns().to_vec());
        const READ: &[&str] = &["status", "userSourcedId", "role", "orgSourcedId"];
        for item in roles.rows_keeping(Some(READ))? {
            let Ok((_, row)) = item.map_err(|err| self.early_errors.push(err)) else {
                continue;
            };
            if is_deleted(&row) {
                continue;
            }
            let (Some(user), Some(role)) = (row.get("userSourcedId"), row.get("role")) else {
                self.early_errors.push(RecordError::new(
                    Position::line(roles.file(), row.line).with_field("userSourcedId"),
                    "a role needs userSourcedId and role",
                ));
                continue;
            };
            let flag = role_flag(role);
            let entry = self.index.entry(user.into()).or_default();
            entry.roles |= flag;
            if flag == STUDENT && entry.org.is_none() {
                entry.org = row.get("orgSourcedId").map(Into::into);
            }
        }
        Ok(())
    }

    fn index_enrollments(&mut self, enrollments: &CsvTable) -> Result<(), TableError> {
        self.note_table(enrollments.file(), enrollments.columns().to_vec());
        const READ: &[&str] = &["status", "role", "userSourcedId"];
        for item in enrollments.rows_keeping(Some(READ))? {
            let Ok((_, row)) = item.map_err(|err| self.early_errors.push(err)) else {
                continue;
            };
            if is_deleted(&row)
                || !row
                    .get("role")
                    .is_some_and(|r| r.eq_ignore_ascii_case("student"))
            {
                continue;
            }
            if let Some(user) = row.get("userSourcedId") {
                self.index.entry(user.into()).or_default().roles |= ENROLLED_STUDENT;
            }
        }
        Ok(())
    }

    fn index_users(&mut self) -> Result<(), TableError> {
        // A second handle on users.csv, so rows stream while the index grows (nothing is collected).
        let table = self.users.reopen();
        const READ: &[&str] = &["sourcedId", "role", "agentSourcedIds"];
        for item in table.rows_keeping(Some(READ))? {
            match item {
                Err(err) => self.early_errors.push(err),
                Ok((offset, row)) => self.index_user(offset, &row),
            }
        }
        let conflicting = self
            .index
            .values()
            .filter(|e| {
                e.roles & ENROLLED_STUDENT != 0
                    && e.roles & STUDENT == 0
                    && e.roles & !ENROLLED_STUDENT != 0
            })
            .count();
        for _ in 0..conflicting {
            self.quirks.note("enrollments.csv: users enrolled as student whose roles say otherwise were not treated as students", None);
        }
        Ok(())
    }

    fn index_user(&mut self, offset: RowOffset, row: &Row) {
        let Some(id) = row.get("sourcedId") else {
            self.early_errors.push(RecordError::new(
                Position::line(self.users.file(), row.line).with_field("sourcedId"),
                "empty sourcedId (expected the user's unique id)",
            ));
            return;
        };
        let entry = self.index.entry(id.into()).or_default();
        if let Some(first) = entry.offset {
            let error = duplicate(self.users.file(), row.line, id, offset_line(first));
            self.early_errors.push(error);
            return;
        }
        entry.offset = Some(offset);
        if let Some(role) = row.get("role") {
            entry.roles |= role_flag(role);
        }
        if entry.roles & OTHER_ROLE != 0
            && entry.roles & (STUDENT | GUARDIAN | PARENT | RELATIVE) == 0
            && split_ids(row.get("agentSourcedIds")).next().is_some()
        {
            self.quirks.note(
                "users.csv: agentSourcedIds of a staff user, who is not a guardian, parent or relative (no link made)",
                Some(row.line),
            );
        }
        if entry.roles & (GUARDIAN | PARENT | RELATIVE) != 0 {
            for child in split_ids(row.get("agentSourcedIds")) {
                self.reverse_agents
                    .entry(child.into())
                    .or_default()
                    .push(id.into());
            }
        }
    }

    fn index_demographics(&mut self) -> Result<(), TableError> {
        let Some(table) = self.demographics.as_ref() else {
            return Ok(());
        };
        let file = table.file().to_owned();
        let columns = table.columns().to_vec();
        let mut found = Vec::new();
        for item in table.rows_keeping(Some(&["sourcedId"]))? {
            match item {
                Err(err) => self.early_errors.push(err),
                Ok((offset, row)) => {
                    found.push((offset, row.get("sourcedId").map(str::to_owned), row.line))
                }
            }
        }
        self.note_table(&file, columns);
        for (offset, id, line) in found {
            let Some(id) = id else { continue };
            if let Some(first) = self.demographic_rows.get(id.as_str()) {
                self.early_errors
                    .push(duplicate(&file, line, &id, offset_line(*first)));
                continue;
            }
            self.demographic_rows.insert(id.into(), offset);
        }
        Ok(())
    }

    fn org_record(&self, row: &Row) -> Option<Decoded> {
        if is_deleted(row) {
            self.quirks.note(
                "orgs.csv: orgs with status 'tobedeleted' skipped",
                Some(row.line),
            );
            self.quirks
                .skip("orgs.csv", row.line, "status 'tobedeleted'");
            return None;
        }
        let Some(id) = row.get("sourcedId").map(str::to_owned) else {
            return Some(Err(RecordError::new(
                Position::line("orgs.csv", row.line).with_field("sourcedId"),
                "empty sourcedId (expected the org's unique id)",
            )));
        };
        if let Some(cycle) = self.parent_cycle(&id) {
            return Some(Err(RecordError::new(
                Position::line("orgs.csv", row.line).with_field("parentSourcedId"),
                format!(
                    "the org hierarchy has a cycle ({cycle}); expected each org's parents to end at a top org"
                ),
            )));
        }
        let parent = row.get("parentSourcedId").and_then(|p| {
            let found = self.org(p);
            if found.is_some_and(is_deleted) {
                self.quirks.note(
                    "orgs.csv: parentSourcedId naming an org with status 'tobedeleted' (partOf left out)",
                    Some(row.line),
                );
                return None;
            }
            if found.is_none() {
                self.quirks.note(
                    "orgs.csv: parentSourcedId naming an org not in the export (partOf left out)",
                    Some(row.line),
                );
            }
            found
        });
        Some(Ok(SourceRecord {
            kind: "org",
            key: id.clone(),
            group: format!("org:{id}"),
            position: Position::line("orgs.csv", row.line),
            context: object([
                ("org", Value::Object(row.values.clone())),
                ("parent", values_or_null(parent.map(|p| p.values.clone()))),
            ]),
            related: Vec::new(),
            joined: Vec::new(),
        }))
    }

    /// The cycle `a → b → a` when following `parentSourcedId` from `id` comes back to it.
    fn parent_cycle(&self, id: &str) -> Option<String> {
        let mut path = vec![id.to_owned()];
        let mut current = id.to_owned();
        while let Some(parent) = self.org(&current).and_then(|o| o.get("parentSourcedId")) {
            path.push(parent.to_owned());
            if parent == id {
                return Some(path.join(" → "));
            }
            if path.len() > self.orgs.len() + 1 {
                return None; // a cycle above this org, reported at its own orgs
            }
            current = parent.to_owned();
        }
        None
    }

    fn student_records_from_row(&self, row: Row) -> Vec<Decoded> {
        let id = row.get("sourcedId").unwrap_or_default().to_owned();
        let entry = self.index.get(id.as_str()).cloned().unwrap_or_default();
        if !is_student(entry.roles) {
            self.quirks.skip(
                self.users.file(),
                row.line,
                "not a student (staff, guardians and other users are read for joins, not converted)",
            );
            return Vec::new();
        }
        if is_deleted(&row) {
            self.quirks.note(
                "users.csv: students with status 'tobedeleted' skipped",
                Some(row.line),
            );
            self.quirks
                .skip(self.users.file(), row.line, "status 'tobedeleted'");
            return Vec::new();
        }
        // An unreadable demographics row is that row's problem: reported there, the student converts
        // without it.
        let mut demographics = self.demographics_for(&id).unwrap_or_else(|err| {
            self.quirks.reject_joined(err);
            None
        });
        if let Some(demographics) = demographics.as_mut() {
            self.check_birth_date(demographics, &row);
        }
        let joined: Vec<(&'static str, Position)> = demographics
            .iter()
            .map(|d| {
                (
                    "demographics",
                    Position::line(self.demographics_file(), d.line),
                )
            })
            .collect();
        let school = self.school_for(&row, &entry);
        let guardians = self.guardians_for(&row, &id);
        let position = Position::line(self.users.file(), row.line);
        let guardian_count = guardians.len();
        // The guardian links first (each holds a copy of the student's row), so the row moves into the
        // student's own record; the student's record still comes first.
        let links: Vec<Decoded> = guardians
            .into_iter()
            .map(|(guardian, relationship)| {
                let guardian_id = guardian.get("sourcedId").unwrap_or_default().to_owned();
                // The link is the guardian's row joined to the student's: a problem in it is at the guardian's line.
                Ok(SourceRecord {
                    kind: "guardian_link",
                    key: format!("{id}|{guardian_id}"),
                    group: id.clone(),
                    position: Position::line(self.users.file(), guardian.line),
                    context: object([
                        ("student", Value::Object(row.values.clone())),
                        ("guardian", Value::Object(guardian.values)),
                        ("relationship", Value::from(relationship)),
                    ]),
                    related: Vec::new(),
                    joined: Vec::new(),
                })
            })
            .collect();
        let mut out = Vec::with_capacity(1 + links.len());
        out.push(Ok(SourceRecord {
            kind: "student",
            key: id.clone(),
            group: id,
            position,
            context: object([
                ("user", Value::Object(row.values)),
                (
                    "demographics",
                    values_or_null(demographics.map(|d| d.values)),
                ),
                ("school", values_or_null(school.map(|s| s.values.clone()))),
                ("guardian_count", Value::from(guardian_count)),
            ]),
            related: Vec::new(),
            joined,
        }));
        out.extend(links);
        out
    }

    /// A birth date in the future or before 1900 is not plausible: rejected at its demographics.csv line and
    /// left out of the student, who converts without it.
    fn check_birth_date(&self, demographics: &mut Row, student: &Row) {
        let Some(text) = demographics.get("birthDate") else {
            return;
        };
        let Some(why) = implausible_birth_date(text, chrono::Utc::now().date_naive()) else {
            return;
        };
        self.quirks.reject_joined(RecordError::new(
            Position::line(self.demographics_file(), demographics.line).with_field("birthDate"),
            format!(
                "birthDate {text} is {why}: not a plausible birth date (left out of the student at {} line {}, which converts without it)",
                self.users.file(),
                student.line
            ),
        ));
        demographics.values.remove("birthDate");
    }

    fn demographics_file(&self) -> &str {
        self.demographics
            .as_ref()
            .map_or(tables::DEMOGRAPHICS.file, CsvTable::file)
    }

    fn demographics_for(&self, id: &str) -> Result<Option<Row>, RecordError> {
        match (self.demographics.as_ref(), self.demographic_rows.get(id)) {
            (Some(table), Some(offset)) => table.read_at(*offset).map(Some),
            _ => Ok(None),
        }
    }

    fn school_for(&self, row: &Row, entry: &UserEntry) -> Option<&Row> {
        let candidates = [
            row.get("primaryOrgSourcedId").map(str::to_owned),
            entry.org.as_deref().map(str::to_owned),
            split_ids(row.get("orgSourcedIds"))
                .next()
                .map(str::to_owned),
        ];
        let mut deleted = false;
        let school = candidates
            .into_iter()
            .flatten()
            .filter_map(|id| self.org(&id))
            .find(|org| {
                let unusable = is_deleted(org)
                    || self
                        .parent_cycle(org.get("sourcedId").unwrap_or_default())
                        .is_some();
                deleted |= unusable;
                !unusable
            });
        if deleted {
            self.quirks.note(
                format!(
                    "{}: student's school has status 'tobedeleted' or was rejected (not referenced{})",
                    self.users.file(),
                    if school.is_some() {
                        "; their next org is used"
                    } else {
                        ""
                    }
                ),
                Some(row.line),
            );
        }
        school
    }

    fn guardians_for(&self, row: &Row, student_id: &str) -> Vec<(Row, &'static str)> {
        let mut ids: Vec<String> = split_ids(row.get("agentSourcedIds"))
            .map(str::to_owned)
            .collect();
        if let Some(reverse) = self.reverse_agents.get(student_id) {
            ids.extend(reverse.iter().map(|g| g.to_string()));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for guardian_id in ids {
            if guardian_id == student_id || !seen.insert(guardian_id.clone()) {
                continue;
            }
            let Some(entry) = self
                .index
                .get(guardian_id.as_str())
                .filter(|e| e.offset.is_some())
            else {
                self.quirks.note(
                    "users.csv: agentSourcedIds naming a user not in the export (link skipped)",
                    Some(row.line),
                );
                continue;
            };
            match self.read_user(entry) {
                Ok(guardian) if is_deleted(&guardian) => self.quirks.note(
                    "users.csv: guardian with status 'tobedeleted' (link skipped)",
                    Some(row.line),
                ),
                Ok(_) if entry.roles & OTHER_ROLE != 0 && entry.roles & (GUARDIAN | PARENT | RELATIVE) == 0 => self.quirks.note(
                    "users.csv: agentSourcedIds naming a staff user, not a guardian, parent or relative (link skipped)",
                    Some(row.line),
                ),
                Ok(_) if is_student(entry.roles) && entry.roles & (GUARDIAN | PARENT | RELATIVE) == 0 => self.quirks.note(
                    "users.csv: agentSourcedIds naming a student, not a guardian (link skipped)",
                    Some(row.line),
                ),
                Ok(guardian) => out.push((guardian, self.relationship(entry.roles, row.line))),
                Err(_) => self.quirks.note(
                    "users.csv: guardian row unreadable (link skipped)",
                    Some(row.line),
                ),
            }
        }
        out
    }

    fn relationship(&self, roles: u8, line: u64) -> &'static str {
        if roles & PARENT != 0 {
            "parent"
        } else if roles & GUARDIAN != 0 {
            "guardian"
        } else if roles & RELATIVE != 0 {
            "relative"
        } else {
            self.quirks.note(
                "users.csv: agent without a guardian, parent or relative role read as guardian",
                Some(line),
            );
            "guardian"
        }
    }
}

fn read_version(export: &Export, encoding: TextEncoding, quirks: &QuirkLog) -> String {
    let from_manifest = export
        .find(tables::MANIFEST.file)
        .and_then(|p| CsvTable::open(&p, &tables::MANIFEST, encoding, quirks).ok())
        .and_then(|t| {
            let rows = t.rows().ok()?;
            rows.filter_map(Result::ok)
                .find(|(_, r)| r.get("propertyName") == Some("oneroster.version"))
                .and_then(|(_, r)| r.get("value").map(str::to_owned))
        });
    from_manifest.unwrap_or_else(|| {
        if export.find("roles.csv").is_some() {
            "1.2".into()
        } else {
            "1.1".into()
        }
    })
}

/// Why a birth date (ISO, or any text holding a four-digit year) is not plausible on `today`.
fn implausible_birth_date(text: &str, today: chrono::NaiveDate) -> Option<&'static str> {
    use chrono::Datelike;
    if let Some(date) = text
        .get(..10)
        .and_then(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
    {
        return if date > today {
            Some("in the future")
        } else if date.year() < 1900 {
            Some("before 1900")
        } else {
            None
        };
    }
    let year: i32 = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 4)?
        .parse()
        .ok()?;
    if year > today.year() {
        Some("in the future")
    } else if year < 1900 {
        Some("before 1900")
    } else {
        None
    }
}

fn role_flag(role: &str) -> u8 {
    match role.trim().to_ascii_lowercase().as_str() {
        "student" => STUDENT,
        "guardian" => GUARDIAN,
        "parent" => PARENT,
        "relative" => RELATIVE,
        _ => OTHER_ROLE,
    }
}

fn is_student(roles: u8) -> bool {
    roles & STUDENT != 0 || roles == ENROLLED_STUDENT
}

fn is_deleted(row: &Row) -> bool {
    row.get("status")
        .is_some_and(|s| s.eq_ignore_ascii_case("tobedeleted"))
}

/// Split a OneRoster id list (`a,b`, `"a, b"`, `{a},{b}`).
fn split_ids(list: Option<&str>) -> impl Iterator<Item = &str> {
    list.unwrap_or_default()
        .split(',')
        .map(|s| {
            s.trim()
                .trim_start_matches('{')
                .trim_end_matches('}')
                .trim()
        })
        .filter(|s| !s.is_empty())
}

fn offset_line(offset: RowOffset) -> u64 {
    offset.line()
}

fn duplicate(file: &str, line: u64, id: &str, first_line: u64) -> RecordError {
    RecordError::new(
        Position::line(file, line).with_field("sourcedId"),
        format!(
            "duplicate sourcedId '{id}' (first seen on line {first_line}); this row is not used (expected each sourcedId once)"
        ),
    )
}
