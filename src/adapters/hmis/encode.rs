//! The HMIS CSV encoder: referrals released by the consent gate, written as HUD HMIS CSV FY2024 (Export.csv,
//! Client.csv, Enrollment.csv, Event.csv, with the full headers) so an HMIS can import them. Files in the
//! folder are appended to; the header is written when a file is new or empty. Each client, enrollment and
//! event is written once per folder: the ids already in the files are read when the encoder opens, so
//! repeated deliveries (one encoder per delivery on the server, or a redelivery after a crash) add no
//! duplicate rows.
//! `HashStatus` is 1 (unhashed): names leave only under the consent decision that released them.
//!
//! What the canonical model carries is kept: the client's id, names, birth date and gender fields; each
//! enrollment's id, entry date and ReferralSource (Encounter), its exit's id, date and Destination; each
//! service's id, enrollment, date, RecordType, TypeProvided and FAAmount (Procedure); the referral's event id,
//! enrollment, date, HUD 4.20 event code (from the ServiceRequest's `urn:onedoor:hud:4.20` category), and the
//! result (Task status completed → 1, rejected → 2 or 3 by the reason) with its date. A referral from another
//! source gets an enrollment made for it (`OD-<event>`).
//!
//! Crash safety: each row is one `write_all` on a file opened with `O_APPEND` (with the header, in the same
//! write, when the file is empty), then `sync_data`. A row torn by a crash (the file does not end with a
//! newline) is truncated back to the last newline outside quotes, the end of the last whole row, when the
//! encoder opens and before every append, so the next row is never glued to it and the ids read on open come
//! from whole rows only; a torn header leaves an empty file, which gets its header again. (CSV is truncated,
//! not ended with a newline as the NDJSON file destination does, because a short row breaks the whole file
//! for a CSV reader; the rows cut were never acknowledged, so they are delivered again.) A crash between
//! files leaves every file whole: a redelivery writes the rows that are missing and skips those already
//! there. One writer per folder at a time is assumed, as for the id sets.

use super::tables;
use crate::consent::Released;
use crate::consent::subject::resources;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The code system of HUD 4.20 Coordinated Entry events.
pub const HUD_EVENT_SYSTEM: &str = "urn:onedoor:hud:4.20";
/// The code systems the mapping gives HUD's ReferralSource (R1), Destination (3.12), Services RecordType and
/// TypeProvided (a system per record type, after this prefix), and the note prefix of an FAAmount.
const REFERRAL_SOURCE_SYSTEM: &str = "urn:onedoor:hud:R1";
const DESTINATION_SYSTEM: &str = "urn:onedoor:hud:3.12";
const RECORD_TYPE_SYSTEM: &str = "urn:onedoor:hud:services-record-type";
const SERVICE_TYPE_SYSTEM: &str = "urn:onedoor:hud:services:";
const FINANCIAL_ASSISTANCE: &str = "Financial assistance: ";
const EXPORT_ID: &str = "onedoor";
/// The files the encoder writes (a torn last row in any of them is cut when it opens).
const FILES: [&str; 6] = [
    "Export.csv",
    "Client.csv",
    "Enrollment.csv",
    "Exit.csv",
    "Services.csv",
    "Event.csv",
];

/// Writes released referrals into an HMIS CSV folder.
pub struct HmisCsvEncoder {
    dir: PathBuf,
    project_id: String,
    clients_written: HashSet<String>,
    enrollments_written: HashSet<String>,
    exits_written: HashSet<String>,
    services_written: HashSet<String>,
    events_written: HashSet<String>,
    /// Referrals written without a HUD event code (their client and enrollment are written, no Event row).
    pub without_event_code: u64,
}

impl HmisCsvEncoder {
    /// Prepare `dir` (created if missing; Export.csv written once). Enrollments go to `project_id`.
    pub fn create(dir: &Path, project_id: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for name in FILES {
            drop_partial_row_of(&dir.join(name))?;
        }
        let export = dir.join("Export.csv");
        if ids_in(&export, "ExportID")?.is_empty() {
            let now = timestamp();
            let mut row: HashMap<&str, String> = HashMap::new();
            row.insert("ExportID", EXPORT_ID.into());
            row.insert("SourceType", "3".into());
            row.insert("SourceName", "onedoor referral gateway".into());
            row.insert("ExportDate", now.clone());
            row.insert("ExportStartDate", now[..10].to_owned());
            row.insert("ExportEndDate", now[..10].to_owned());
            row.insert("SoftwareName", "onedoor".into());
            row.insert("SoftwareVersion", env!("CARGO_PKG_VERSION").into());
            row.insert("CSVVersion", "2024 v1.4".into());
            row.insert("ExportPeriodType", "3".into());
            row.insert("ExportDirective", "2".into());
            row.insert("HashStatus", "1".into());
            append(&export, tables::EXPORT_COLUMNS, &row)?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            project_id: project_id.to_owned(),
            clients_written: ids_in(&dir.join("Client.csv"), "PersonalID")?,
            enrollments_written: ids_in(&dir.join("Enrollment.csv"), "EnrollmentID")?,
            exits_written: ids_in(&dir.join("Exit.csv"), "ExitID")?,
            services_written: ids_in(&dir.join("Services.csv"), "ServicesID")?,
            events_written: ids_in(&dir.join("Event.csv"), "EventID")?,
            without_event_code: 0,
        })
    }

    /// Write one released bundle: its client, the enrollments (with their exits) and services it carries, and
    /// its referral as an Event.
    pub fn encode(&mut self, released: &Released<Value>) -> io::Result<()> {
        let all = resources(released.record());
        let of_kind = |kind: &'static str| {
            all.iter()
                .copied()
                .filter(move |r| r["resourceType"] == kind)
        };
        // A bundle without a Patient (an Organization) has nothing for an HMIS.
        let Some(patient) = of_kind("Patient").next() else {
            return Ok(());
        };
        let personal_id = identifier(patient, "/clients").unwrap_or_else(|| text(patient, "/id"));
        if self.clients_written.insert(personal_id.clone()) {
            append(
                &self.dir.join("Client.csv"),
                &tables::client_columns_fy2024(),
                &client_row(patient, &personal_id),
            )?;
        }
        for encounter in of_kind("Encounter") {
            self.encounter(encounter, &personal_id)?;
        }
        for procedure in of_kind("Procedure") {
            self.service(procedure, &personal_id)?;
        }
        match of_kind("ServiceRequest").next() {
            Some(request) => self.referral(request, of_kind("Task").next(), &personal_id),
            None => Ok(()),
        }
    }

    /// An HMIS enrollment (Encounter) as an Enrollment row, and an Exit row when it has ended.
    fn encounter(&mut self, encounter: &Value, personal_id: &str) -> io::Result<()> {
        let Some(enrollment_id) = identifier(encounter, "/enrollments") else {
            return Ok(());
        };
        let entry = day(&text(encounter, "/period/start"));
        let referral_source = coding_code(
            &encounter["hospitalization"]["admitSource"],
            REFERRAL_SOURCE_SYSTEM,
        );
        self.enrollment(&enrollment_id, personal_id, &entry, &referral_source)?;
        let exit_date = day(&text(encounter, "/period/end"));
        if exit_date.is_empty() {
            return Ok(());
        }
        let exit_id =
            identifier(encounter, "/exits").unwrap_or_else(|| format!("OD-{enrollment_id}"));
        if !self.exits_written.insert(exit_id.clone()) {
            return Ok(());
        }
        let disposition = &encounter["hospitalization"]["dischargeDisposition"];
        let mut exit = common_row();
        exit.extend([
            ("ExitID", exit_id),
            ("EnrollmentID", enrollment_id),
            ("PersonalID", personal_id.to_owned()),
            ("ExitDate", exit_date),
            ("Destination", coding_code(disposition, DESTINATION_SYSTEM)),
        ]);
        if exit["Destination"].is_empty() {
            exit.insert("OtherDestination", text(disposition, "/text"));
        }
        append(&self.dir.join("Exit.csv"), tables::EXIT_COLUMNS, &exit)
    }

    /// An Enrollment row, once per id.
    fn enrollment(
        &mut self,
        enrollment_id: &str,
        personal_id: &str,
        entry: &str,
        referral_source: &str,
    ) -> io::Result<()> {
        if !self.enrollments_written.insert(enrollment_id.to_owned()) {
            return Ok(());
        }
        let mut enrollment = common_row();
        enrollment.extend([
            ("EnrollmentID", enrollment_id.to_owned()),
            ("PersonalID", personal_id.to_owned()),
            ("ProjectID", self.project_id.clone()),
            ("EntryDate", entry.to_owned()),
            ("HouseholdID", enrollment_id.to_owned()),
            ("RelationshipToHoH", "1".into()),
            ("ReferralSource", referral_source.to_owned()),
        ]);
        append(
            &self.dir.join("Enrollment.csv"),
            tables::ENROLLMENT_COLUMNS,
            &enrollment,
        )
    }

    /// A service (Procedure) as a Services row.
    fn service(&mut self, procedure: &Value, personal_id: &str) -> io::Result<()> {
        let Some(services_id) = identifier(procedure, "/services") else {
            return Ok(());
        };
        if !self.services_written.insert(services_id.clone()) {
            return Ok(());
        }
        let type_provided = procedure["code"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| {
                c["system"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(SERVICE_TYPE_SYSTEM))
            })
            .and_then(|c| c["code"].as_str())
            .unwrap_or_default()
            .to_owned();
        let amount = procedure["note"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["text"].as_str()?.strip_prefix(FINANCIAL_ASSISTANCE))
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut service = common_row();
        service.extend([
            ("ServicesID", services_id),
            (
                "EnrollmentID",
                reference_identifier(&procedure["encounter"]),
            ),
            ("PersonalID", personal_id.to_owned()),
            ("DateProvided", day(&text(procedure, "/performedDateTime"))),
            ("RecordType", categories_code(procedure, RECORD_TYPE_SYSTEM)),
            ("TypeProvided", type_provided),
            ("FAAmount", amount),
        ]);
        append(
            &self.dir.join("Services.csv"),
            tables::SERVICES_COLUMNS,
            &service,
        )
    }

    /// A referral (ServiceRequest) as an Event row in its enrollment (or an enrollment made for it).
    fn referral(
        &mut self,
        request: &Value,
        task: Option<&Value>,
        personal_id: &str,
    ) -> io::Result<()> {
        let event_id = identifier(request, "/events").unwrap_or_else(|| text(request, "/id"));
        let date = day(&text(request, "/authoredOn"));
        let enrollment_id = match reference_identifier(&request["encounter"]) {
            known if !known.is_empty() => known,
            _ => {
                let made = format!("OD-{event_id}");
                self.enrollment(&made, personal_id, &date, "")?;
                made
            }
        };
        let Some(code) = hud_event(request) else {
            self.without_event_code += 1;
            return Ok(());
        };
        if !self.events_written.insert(event_id.clone()) {
            return Ok(());
        }
        let mut event = common_row();
        event.extend([
            ("EventID", event_id),
            ("EnrollmentID", enrollment_id),
            ("PersonalID", personal_id.to_owned()),
            ("EventDate", date),
            ("Event", code),
        ]);
        if let Some(task) = task {
            let (result, when) = referral_result(task);
            event.insert("ReferralResult", result);
            event.insert("ResultDate", when);
        }
        append(&self.dir.join("Event.csv"), tables::EVENT_COLUMNS, &event)
    }
}

/// The code of the coding of `concept` in `system` (empty when there is none).
fn coding_code(concept: &Value, system: &str) -> String {
    concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["system"] == system)
        .and_then(|c| c["code"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The code in `system` among a resource's categories.
fn categories_code(resource: &Value, system: &str) -> String {
    resource["category"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&resource["category"]))
        .map(|c| coding_code(c, system))
        .find(|c| !c.is_empty())
        .unwrap_or_default()
}

/// The identifier value a Reference carries beside its reference (the source id of what it points at).
fn reference_identifier(reference: &Value) -> String {
    text(reference, "/identifier/value")
}

/// The date part of a FHIR date or dateTime.
fn day(value: &str) -> String {
    value.chars().take(10).collect()
}

/// The values of one column of a CSV file already in the folder (none when the file does not exist yet).
fn ids_in(path: &Path, column: &str) -> io::Result<HashSet<String>> {
    if !path.exists() {
        return Ok(HashSet::new());
    }
    let mut reader = csv::Reader::from_path(path).map_err(io::Error::other)?;
    let Some(index) = reader
        .headers()
        .map_err(io::Error::other)?
        .iter()
        .position(|h| h == column)
    else {
        return Ok(HashSet::new());
    };
    reader
        .records()
        .map(|row| {
            row.map(|r| r.get(index).unwrap_or_default().to_owned())
                .map_err(io::Error::other)
        })
        .collect()
}

fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn common_row() -> HashMap<&'static str, String> {
    let now = timestamp();
    HashMap::from([
        ("DateCreated", now.clone()),
        ("DateUpdated", now),
        ("UserID", "onedoor".to_owned()),
        ("ExportID", EXPORT_ID.to_owned()),
    ])
}

fn text(resource: &Value, pointer: &str) -> String {
    resource
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The value of the identifier whose system ends with `suffix`.
fn identifier(resource: &Value, suffix: &str) -> Option<String> {
    resource["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"].as_str().is_some_and(|s| s.ends_with(suffix)))
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
}

fn client_row(patient: &Value, personal_id: &str) -> HashMap<&'static str, String> {
    let name = &patient["name"][0];
    let given: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let named = name["family"].is_string() && !given.is_empty();
    let dob = text(patient, "/birthDate");
    // A birth date known only to the year (or month) is an approximate DOB: HMIS writes it as a full date
    // with DOBDataQuality 2.
    let (dob, dob_quality) = match dob.len() {
        0 => (dob, "99"),
        4 => (format!("{dob}-01-01"), "2"),
        7 => (format!("{dob}-01"), "2"),
        _ => (dob, "1"),
    };
    let gender = text(patient, "/gender");
    let flag = |on: bool| if on { "1" } else { "0" }.to_owned();
    let mut row = common_row();
    row.extend([
        ("PersonalID", personal_id.to_owned()),
        (
            "FirstName",
            given.first().copied().unwrap_or_default().to_owned(),
        ),
        (
            "MiddleName",
            given.get(1).copied().unwrap_or_default().to_owned(),
        ),
        (
            "LastName",
            name["family"].as_str().unwrap_or_default().to_owned(),
        ),
        (
            "NameSuffix",
            name["suffix"][0].as_str().unwrap_or_default().to_owned(),
        ),
        ("NameDataQuality", if named { "1" } else { "99" }.to_owned()),
        ("SSNDataQuality", "99".to_owned()),
        ("DOB", dob),
        ("DOBDataQuality", dob_quality.to_owned()),
        ("RaceNone", "99".to_owned()),
        ("Woman", flag(gender == "female")),
        ("Man", flag(gender == "male")),
        ("DifferentIdentity", flag(gender == "other")),
        ("VeteranStatus", "99".to_owned()),
    ]);
    if gender.is_empty() || gender == "unknown" {
        row.insert("GenderNone", "99".to_owned());
    }
    row
}

fn hud_event(request: &Value) -> Option<String> {
    request["category"]
        .as_array()?
        .iter()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .find(|c| c["system"] == HUD_EVENT_SYSTEM)
        .and_then(|c| c["code"].as_str())
        .map(str::to_owned)
}

/// HUD ReferralResult and ResultDate from the Task.
fn referral_result(task: &Value) -> (String, String) {
    let when = text(task, "/lastModified")
        .chars()
        .take(10)
        .collect::<String>();
    let reason = text(task, "/statusReason/text").to_lowercase();
    let result = match task["status"].as_str().unwrap_or_default() {
        "completed" => "1",
        "rejected" | "cancelled" if reason.contains("client") => "2",
        "rejected" | "cancelled" => "3",
        _ => return (String::new(), String::new()),
    };
    (result.to_owned(), when)
}

/// Append a row atomically (with the header first when the file is empty), fields in the header's order:
/// a torn last row is cut first, then one `write_all` on an `O_APPEND` file and `sync_data`.
fn append(path: &Path, columns: &[&str], row: &HashMap<&str, String>) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let new = drop_partial_row(&mut file)? == 0;
    file.write_all(&row_bytes(columns, row, new)?)?;
    file.sync_data()?;
    if new {
        sync_parent(path)?;
    }
    Ok(())
}

/// The CSV bytes of a row (after the header when `header`).
fn row_bytes(columns: &[&str], row: &HashMap<&str, String>, header: bool) -> io::Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    if header {
        writer.write_record(columns)?;
    }
    writer.write_record(
        columns
            .iter()
            .map(|c| row.get(c).map(String::as_str).unwrap_or_default()),
    )?;
    writer.into_inner().map_err(|e| e.into_error())
}

/// [`drop_partial_row`] on the file at `path`, when there is one (no file is made).
fn drop_partial_row_of(path: &Path) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut file = OpenOptions::new().read(true).append(true).open(path)?;
    drop_partial_row(&mut file).map(|_| ())
}

/// Cut a row a crash left partial (the file does not end with a newline) back to the end of the last whole
/// row, so nothing is glued to it; a torn header leaves the file empty. Returns the file's length after.
fn drop_partial_row(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    file.seek(SeekFrom::Start(0))?;
    let whole = end_of_last_whole_row(BufReader::new(&*file))?;
    file.set_len(whole)?;
    file.sync_data()?;
    Ok(whole)
}

/// The offset just past the last newline outside quotes (a quoted field may hold newlines).
fn end_of_last_whole_row(reader: impl io::BufRead) -> io::Result<u64> {
    let (mut quoted, mut at, mut end) = (false, 0u64, 0u64);
    for byte in reader.bytes() {
        at += 1;
        match byte? {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => end = at,
            _ => {}
        }
    }
    Ok(end)
}

/// Make a new file's directory entry durable (where directories can be synced).
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if cfg!(unix) => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{HmisCsvEncoder, append, ids_in};
    use std::collections::HashMap;

    const COLUMNS: &[&str] = &["PersonalID", "FirstName"];

    fn row(id: &str, name: &str) -> HashMap<&'static str, String> {
        HashMap::from([
            ("PersonalID", id.to_owned()),
            ("FirstName", name.to_owned()),
        ])
    }

    #[test]
    fn a_row_torn_by_a_crash_is_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Client.csv");
        std::fs::write(&path, "PersonalID,FirstName\nC1,\"Ann\nMarie\"\nC2,Bo").unwrap();
        append(&path, COLUMNS, &row("C3", "Cy")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "PersonalID,FirstName\nC1,\"Ann\nMarie\"\nC3,Cy\n");
    }

    #[test]
    fn an_empty_or_torn_header_file_gets_its_header_again() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("Empty.csv");
        let torn = dir.path().join("Torn.csv");
        std::fs::write(&empty, "").unwrap();
        std::fs::write(&torn, "Personal").unwrap();
        for path in [&empty, &torn] {
            append(path, COLUMNS, &row("C1", "Al")).unwrap();
            let text = std::fs::read_to_string(path).unwrap();
            assert_eq!(text, "PersonalID,FirstName\nC1,Al\n", "{}", path.display());
        }
    }

    #[test]
    fn opening_cuts_torn_rows_and_writes_a_missing_export_row() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Export.csv"), "").unwrap();
        std::fs::write(
            dir.path().join("Client.csv"),
            "PersonalID,FirstName\nC1,Al\nC2",
        )
        .unwrap();
        HmisCsvEncoder::create(dir.path(), "p").unwrap();
        let clients = ids_in(&dir.path().join("Client.csv"), "PersonalID").unwrap();
        assert_eq!(clients.into_iter().collect::<Vec<_>>(), ["C1"]);
        let exports = ids_in(&dir.path().join("Export.csv"), "ExportID").unwrap();
        assert_eq!(exports.len(), 1);
        assert!(
            !dir.path().join("Exit.csv").exists(),
            "no empty files are made"
        );
    }
}
