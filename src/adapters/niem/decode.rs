//! Reading NIBRS submissions: every `.xml` file of an export, each a `nibrs:Submission` of `Report`s.
//! A Group A incident report (action I, A or R) gives one record per victim, with the repeat count from the
//! incident history; a delete (action D) removes the incident from the history; Group B arrest reports and
//! zero reports are read and reported as records the mapping builds nothing from.

use super::history::{IncidentHistory, RepeatCount};
use super::report::{self, VictimFacts, text};
use crate::adapters::xml::{self, Element};
use crate::adapters::{ContextTable, Decoded, Position, QuirkLog, RecordError, SourceRecord};
use chrono::NaiveDate;
use serde_json::{Value, json};
use std::path::Path;

/// The NIBRS 2019 submission namespace.
pub const NIBRS_2019: &str = "http://fbi.gov/cjis/nibrs/2019";

/// Largest submission file read.
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The variables a NIEM mapping sees.
pub const CONTEXT: &[ContextTable] = &[
    table("report"),
    table("incident"),
    table("victim"),
    table("person"),
    table("sequence"),
    table("age"),
    table("age_text"),
    table("minor"),
    table("offenses"),
    table("offense_codes"),
    table("relationships"),
    table("circumstances"),
    table("offenders"),
    table("location"),
    table("triggers"),
    table("repeat"),
];

const fn table(variable: &'static str) -> ContextTable {
    ContextTable {
        variable,
        table: "Report",
        columns: &[],
    }
}

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &["victim", "incident_delete", "arrest_report", "zero_report"];

/// How a NIEM source is read.
pub struct NiemOptions<'h> {
    /// The incidents seen so far; updated with this source's.
    pub history: &'h mut IncidentHistory,
    /// How far back an earlier incident counts.
    pub window_days: u32,
}

/// An opened export of NIBRS submissions.
pub struct NiemSource {
    records: Vec<Decoded>,
}

impl NiemSource {
    /// Read every submission file, in name order.
    pub fn open(path: &Path, quirks: &QuirkLog, options: NiemOptions<'_>) -> Result<Self, String> {
        let (files, _export) = xml::files_of(path)?;
        if files.is_empty() {
            return Err(format!(
                "{}: no .xml file found; expected NIBRS submissions",
                path.display()
            ));
        }
        let mut reader = Reader {
            options,
            quirks,
            records: Vec::new(),
        };
        for file in &files {
            reader.file(file);
        }
        Ok(Self {
            records: reader.records,
        })
    }

    /// The records, in file and report order.
    pub fn records(self) -> impl Iterator<Item = Decoded> {
        self.records.into_iter()
    }
}

struct Reader<'a, 'h> {
    options: NiemOptions<'h>,
    quirks: &'a QuirkLog,
    records: Vec<Decoded>,
}

impl Reader<'_, '_> {
    fn reject(&mut self, position: Position, why: impl Into<String>) {
        self.records.push(Err(RecordError::new(position, why)));
    }

    fn file(&mut self, path: &Path) {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut submission = match xml::from_file(path, MAX_FILE_BYTES) {
            Ok(submission) => submission,
            Err(why) => return self.reject(Position::file(&file), why),
        };
        let mut checked = false;
        // Elements read, counted by the line each starts on (the reconciliation's rows).
        let mut read = std::collections::BTreeSet::new();
        while let Some(next) = submission.next_element() {
            if !checked {
                checked = true;
                if let Err(why) = check_root(submission.root()) {
                    return self.reject(Position::file(&file), why);
                }
            }
            let next = next.map_err(|why| xml::record_error(&file, why));
            let line = match &next {
                Ok(element) => Some(element.line),
                Err(error) => error.position.line,
            };
            read.extend(line);
            let next = match next {
                Ok(element) => Ok(element),
                Err(error) => {
                    self.records.push(Err(error));
                    continue;
                }
            };
            match next {
                Ok(element) if element.name == "Report" => self.report(&file, element),
                Ok(element) if element.name == "MessageMetadata" => self.quirks.skip(
                    &file,
                    element.line,
                    "the submission's MessageMetadata: read with the file, not a report",
                ),
                Ok(element) => self.reject(
                    Position::line(&file, element.line).with_field(&element.name),
                    format!(
                        "<{}> is not part of a NIBRS submission (expected Report)",
                        element.name
                    ),
                ),
                Err(error) => self.records.push(Err(error)),
            }
        }
        self.quirks.rows_read(&file, read.len() as u64);
    }

    fn report(&mut self, file: &str, element: Element) {
        let position = Position::line(file, element.line);
        let report = element.value;
        let category = text(&report, "/ReportHeader/NIBRSReportCategoryCode").unwrap_or_default();
        let action = text(&report, "/ReportHeader/ReportActionCategoryCode").unwrap_or_default();
        let ori = text(&report, "/ReportHeader/ReportingAgency/OrganizationAugmentation/OrganizationORIIdentification/IdentificationID")
            .unwrap_or_default()
            .to_owned();
        let header = json!({"category": category, "action": action, "ori": ori});
        match (category, action) {
            ("GROUP A INCIDENT REPORT", "D") => self.deletion(position, &report, header),
            ("GROUP A INCIDENT REPORT", "I" | "A" | "R") => self.incident(position, &report, header),
            ("GROUP B ARREST REPORT", _) => self.carried("arrest_report", position, &report, header),
            ("ZERO REPORT", _) => self.carried("zero_report", position, &report, header),
            _ => self.reject(
                position.with_field("ReportHeader"),
                format!(
                    "report category '{category}' with action '{action}' is not read (expected a GROUP A \
                     INCIDENT REPORT with action I, A, R or D, a GROUP B ARREST REPORT or a ZERO REPORT)"
                ),
            ),
        }
    }

    fn deletion(&mut self, position: Position, report: &Value, header: Value) {
        let Some(incident) = incident(report, &header) else {
            return self.reject(
                position.with_field("Incident"),
                "a delete without an incident number",
            );
        };
        self.options.history.forget(&incident.key);
        let key = incident.key.clone();
        self.records.push(Ok(SourceRecord {
            kind: "incident_delete",
            key: key.clone(),
            group: format!("incident:{key}"),
            position,
            context: json!({"report": header, "incident": incident.context()}),
            related: Vec::new(),
            joined: Vec::new(),
        }));
    }

    fn carried(&mut self, kind: &'static str, position: Position, report: &Value, header: Value) {
        let key = format!("{}@{}", kind, position);
        self.records.push(Ok(SourceRecord {
            kind,
            key: key.clone(),
            group: key,
            position,
            context: json!({"report": header, "incident": report.get("Arrest")}),
            related: Vec::new(),
            joined: Vec::new(),
        }));
    }

    fn incident(&mut self, position: Position, report: &Value, header: Value) {
        let Some(incident) = incident(report, &header) else {
            return self.reject(
                position.with_field("Incident/ActivityIdentification"),
                "a Group A incident report without an incident number (expected nc:Incident/nc:ActivityIdentification/nc:IdentificationID)",
            );
        };
        let Some(date) = incident.date else {
            return self.reject(
                position.with_field("Incident/ActivityDate"),
                format!(
                    "incident {}: no usable date (expected nc:Date or nc:DateTime, YYYY-MM-DD)",
                    incident.number
                ),
            );
        };
        if header["action"] == "R" {
            self.options.history.forget(&incident.key);
        }
        if incident.used_month_only {
            self.quirks.note(
                "an incident dated by nc:YearMonthDate only is counted on the first of the month",
                position.line,
            );
        }
        let victims = report::victims(report);
        if victims.is_empty() {
            self.quirks.note(
                "a Group A incident report with no victim: nothing to refer",
                position.line,
            );
            if let Some(line) = position.line {
                self.quirks.skip(
                    &position.file,
                    line,
                    "a Group A incident report with no victim: nothing to refer",
                );
            }
        }
        for victim in victims {
            let repeat = self.repeat(&victim, &incident.key, date);
            self.records.push(Ok(victim_record(
                &position, &header, &incident, victim, repeat,
            )));
        }
    }

    fn repeat(&mut self, victim: &VictimFacts, incident: &str, date: NaiveDate) -> RepeatCount {
        let history = &mut *self.options.history;
        let mut keys = Vec::new();
        if let Some(parts) = &victim.person_key {
            keys.extend(history.key("person", &parts.each_ref().map(String::as_str)));
        }
        if let Some(parts) = &victim.address_key {
            keys.extend(history.key("address", &parts.each_ref().map(String::as_str)));
        }
        history.sight(&keys, incident, date, self.options.window_days)
    }
}

fn check_root(root: Option<(&str, Option<&str>)>) -> Result<(), String> {
    match root {
        Some(("Submission", Some(NIBRS_2019))) => Ok(()),
        Some((name, namespace)) => Err(format!(
            "root <{name}> in namespace '{}' is not a NIBRS 2019 submission (expected <nibrs:Submission> in \
             '{NIBRS_2019}')",
            namespace.unwrap_or("none")
        )),
        None => Err("no root element".into()),
    }
}

/// The incident a report is about.
struct Incident {
    number: String,
    key: String,
    date: Option<NaiveDate>,
    datetime: Option<String>,
    used_month_only: bool,
    raw: Value,
}

impl Incident {
    fn context(&self) -> Value {
        json!({
            "number": self.number,
            "key": self.key,
            "date": self.date.map(|d| d.to_string()),
            "datetime": self.datetime,
            "raw": self.raw,
        })
    }
}

fn incident(report: &Value, header: &Value) -> Option<Incident> {
    let raw = report.get("Incident")?;
    let number = text(raw, "/ActivityIdentification/IdentificationID")?.to_owned();
    let datetime = text(raw, "/ActivityDate/DateTime").map(str::to_owned);
    let day = |t: &str| NaiveDate::parse_from_str(t.get(..10).unwrap_or(t), "%Y-%m-%d").ok();
    let exact = datetime
        .as_deref()
        .and_then(day)
        .or_else(|| text(raw, "/ActivityDate/Date").and_then(day));
    let month = || {
        text(raw, "/ActivityDate/YearMonthDate")
            .and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok())
    };
    let (date, used_month_only) = match exact {
        Some(date) => (Some(date), false),
        None => (month(), month().is_some()),
    };
    Some(Incident {
        key: format!("{}/{number}", header["ori"].as_str().unwrap_or_default()),
        number,
        date,
        datetime,
        used_month_only,
        raw: raw.clone(),
    })
}

fn victim_record(
    position: &Position,
    header: &Value,
    incident: &Incident,
    victim: VictimFacts,
    repeat: RepeatCount,
) -> SourceRecord {
    let mut context = victim.context;
    context["report"] = header.clone();
    context["incident"] = incident.context();
    context["repeat"] = json!(repeat);
    let key = format!("{}#{}", incident.key, victim.sequence);
    SourceRecord {
        kind: "victim",
        key: key.clone(),
        group: format!("victim:{key}:{}", victim.id),
        position: position.clone().with_field(format!("Victim {}", victim.id)),
        context,
        related: Vec::new(),
        joined: Vec::new(),
    }
}
